#!/usr/bin/env bash
# `make lint`: yamllint on the YAML files git knows (see .yamllint), then
# ansible-lint --profile production on playbooks/ and roles/ when they hold
# anything (ansible-lint is configured in .ansible-lint: offline, no Galaxy).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

mapfile -t yaml_files < <(git ls-files --cached --others --exclude-standard -- '*.yml' '*.yaml' '.yamllint' '.ansible-lint' \
    | while read -r f; do [ -f "$f" ] && printf '%s\n' "$f"; done)
if ((${#yaml_files[@]})); then
    echo "yamllint: ${#yaml_files[@]} files"
    yamllint --strict "${yaml_files[@]}"
fi

targets=()
for d in playbooks roles; do
    if [ -d "$d" ] && [ -n "$(find "$d" -type f \( -name '*.yml' -o -name '*.yaml' \) -print -quit)" ]; then
        targets+=("$d")
    fi
done
if ((${#targets[@]})); then
    echo "ansible-lint --profile production ${targets[*]}"
    ansible-lint --profile production "${targets[@]}"
else
    echo "ansible-lint: no playbooks or roles yet, skipped"
fi
