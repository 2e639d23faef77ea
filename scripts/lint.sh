#!/usr/bin/env bash
# `make lint`: yamllint on the YAML files git knows (see .yamllint), then
# ansible-lint --profile production on the collection metadata (galaxy.yml,
# meta/runtime.yml) and on playbooks/ and roles/ when they hold YAML files
# (ansible-lint is configured in .ansible-lint: offline, no Galaxy server).
set -euo pipefail
cd "$(dirname "$0")/.."
case ":$PATH:" in *":$PWD/.venv/bin:"*) ;; *) export PATH="$PWD/.venv/bin:$PATH" ;; esac
# ansible-lint puts $ANSIBLE_HOME/collections (~/.ansible) first on the collections path: a copy of
# this collection installed there by hand (the README's `ansible-galaxy collection install`) would
# shadow this checkout's roles. A home of its own in .cache keeps the checkout's collection first.
export ANSIBLE_HOME="$PWD/.cache/ansible-home"

list_yaml() {
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git ls-files --cached --others --exclude-standard -- '*.yml' '*.yaml' '.yamllint' '.ansible-lint'
    else  # no git checkout (e.g. an exported tree): every YAML file outside generated dirs
        find . \( -name .git -o -name .venv -o -name build -o -name output -o -name .cache -o -name .state \) -prune \
            -o -type f \( -name '*.yml' -o -name '*.yaml' -o -name .yamllint -o -name .ansible-lint \) -print | sed 's|^\./||'
    fi
}
mapfile -t yaml_files < <(list_yaml | while read -r f; do [ -f "$f" ] && printf '%s\n' "$f"; done)
if ((${#yaml_files[@]})); then
    echo "yamllint: ${#yaml_files[@]} files"
    yamllint --strict "${yaml_files[@]}"
fi

targets=(galaxy.yml meta/runtime.yml)
for d in playbooks roles; do
    if [ -d "$d" ] && [ -n "$(find "$d" -type f \( -name '*.yml' -o -name '*.yaml' \) -print -quit)" ]; then
        targets+=("$d")
    fi
done
# This checkout's collection (the venv's site-packages links it), not a copy installed in
# ~/.ansible/collections that would shadow it (its roles, not ours, would be syntax-checked):
# ansible-lint puts $ANSIBLE_HOME/collections (default ~/.ansible) first, so it gets a home of its own.
ANSIBLE_COLLECTIONS_PATH="$(python -c 'import ansible, pathlib; print(pathlib.Path(ansible.__file__).resolve().parents[1])')"
export ANSIBLE_COLLECTIONS_PATH ANSIBLE_HOME="$PWD/.cache/ansible-home"
echo "ansible-lint --profile production ${targets[*]}"
ansible-lint --profile production "${targets[@]}"
