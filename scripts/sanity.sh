#!/usr/bin/env bash
# Run `ansible-test sanity --venv --python 3.11` on the collection (ansible-core 2.19, .venv), or
# with SANITY_TOOLCHAIN=ansible14 `--python 3.12` with the ansible-test of .venv-ansible14
# (ansible-core 2.21); `make sanity` runs both.
#
# ansible-test needs the collection at …/ansible_collections/<ns>/<name>/ and
# checks every file it finds there. We copy the collection's files (the list
# from scripts/collection_files.py: git's file list minus galaxy.yml's
# build_ignore, i.e. without localcloud/, its tests, scripts/, .ci/) to
#   build/sanity/ansible_collections/autoscale/hetzner/
# ansible-test takes its file list from the nearest enclosing git checkout (it
# walks up the tree, and would find this repo, where build/ is ignored), so the
# copy is made a git repo of its own (`git init`, nothing committed: ansible-test
# lists --cached and --others files) with tests/output excluded via
# .git/info/exclude; tests/output is kept between runs (ansible-test's caches).
# No tests/sanity/ignore-*.txt files.
#
# ansible-test --venv downloads get-pip.py from ci-files.testing.ansible.com,
# which is unreachable here; a stand-in in its cache bootstraps pip from the
# interpreter's bundled wheel and installs the rest from PyPI.
#
# Extra arguments go to ansible-test, e.g. `make sanity SANITY_ARGS="--test pep8"`.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
case "${SANITY_TOOLCHAIN:-}" in
    "") VENV="$ROOT/.venv" PYVER=3.11 WORK="$ROOT/build/sanity" ;;
    ansible14) VENV="$ROOT/.venv-ansible14" PYVER=3.12 WORK="$ROOT/build/sanity-ansible14" ;;
    *) echo "SANITY_TOOLCHAIN: unknown toolchain ${SANITY_TOOLCHAIN} (empty or ansible14)" >&2; exit 2 ;;
esac
if [ ! -x "$VENV/bin/ansible-test" ]; then
    # .venv-ansible14 needs a Python >= 3.12 (scripts/bootstrap.sh); CI has one, so there it is an error.
    echo "sanity: $VENV/bin/ansible-test missing (make venv builds it)" >&2
    [ -z "${CI:-}" ] && [ -n "${SANITY_TOOLCHAIN:-}" ] && exit 0
    exit 1
fi
PY="$VENV/bin/python"
DEST="$WORK/ansible_collections/autoscale/hetzner"

# --- get-pip stand-in for ansible-test's bootstrap --------------------------------
pip_version=$("$PY" - "$PYVER" <<'PYEOF'
from ansible_test._internal.python_requirements import get_venv_packages
from ansible_test._internal.host_configs import NativePythonConfig
import sys
print(get_venv_packages(NativePythonConfig(version=sys.argv[1]))["pip"])
PYEOF
)
cache="$HOME/.ansible/test/cache"
getpip="$cache/get_pip_${pip_version//./_}.py"
if [ ! -s "$getpip" ]; then
    mkdir -p "$cache"
    cat >"$getpip.tmp" <<'PYEOF'
# Stand-in for get-pip.py (written by scripts/sanity.sh of autoscale.hetzner):
# bootstrap pip from the interpreter's bundled wheel, then install what
# ansible-test asks for from the package index.
import subprocess, sys
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", *args])
PYEOF
    mv "$getpip.tmp" "$getpip"
fi

# --- the copy of the collection ------------------------------------------------
mkdir -p "$DEST"
# remove everything but .git and tests/output (ansible-test's venvs and caches)
find "$DEST" -mindepth 1 -maxdepth 1 ! -name tests ! -name .git -exec rm -rf {} +
if [ -d "$DEST/tests" ]; then
    find "$DEST/tests" -mindepth 1 -maxdepth 1 ! -name output -exec rm -rf {} +
fi
if [ ! -d "$DEST/.git" ]; then
    git -C "$DEST" init -q
    printf '/tests/output/\n' >>"$DEST/.git/info/exclude"
fi
"$PY" scripts/collection_files.py >"$WORK/files.txt"
# tests/ is not in the artefact, but tests/config.yml is ansible-test's configuration (python_requires)
echo tests/config.yml >>"$WORK/files.txt"
tar -C "$ROOT" -cf - --no-recursion -T "$WORK/files.txt" | tar -C "$DEST" -xf -

# Dependencies (hetzner.hcloud, ...) next to the collection, so imports of their
# module_utils resolve; ansible-test only tests autoscale.hetzner itself.
site=$("$PY" -c 'import ansible_collections, os; print(os.path.dirname(ansible_collections.__path__[0]))')
for dep in $("$PY" -c 'import yaml; print(" ".join(yaml.safe_load(open("galaxy.yml")).get("dependencies") or {}))'); do
    ns=${dep%%.*} name=${dep#*.}
    mkdir -p "$WORK/ansible_collections/$ns"
    ln -sfn "$site/ansible_collections/$ns/$name" "$WORK/ansible_collections/$ns/$name"
done

cd "$DEST"
export PATH="$VENV/bin:$PATH"
exec ansible-test sanity --venv --python "$PYVER" --color no "$@"
