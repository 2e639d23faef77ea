#!/usr/bin/env bash
# Prepare a machine for `make test`: Debian packages the tests need and the
# project virtualenv `.venv` (pinned requirements-dev.txt + localcloud editable).
#
# Idempotent and fast when already done: a stamp file in .venv records the hash
# of the inputs (requirement files, localcloud/pyproject.toml, this script and
# the package list); when it matches and the Debian packages are present,
# nothing is done. Needs root (or sudo) only when Debian packages are missing.
#
# Packages for the machine tests (systemd-container, debootstrap, apt-cacher-ng,
# nftables, ...) are NOT installed here: the local cloud installs them itself
# at first use.
set -euo pipefail

SELF="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$SELF")/.."

started=$SECONDS
DEB_PACKAGES=(hcloud-cli sqlite3 openssh-client git python3-venv jq)
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
STAMP="$VENV/.bootstrap-stamp"

log() { printf '[bootstrap] %s\n' "$*" >&2; }

# --- Debian packages ---------------------------------------------------------
missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]})); then
    SUDO=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { log "need root to install: ${missing[*]}"; exit 1; }
        SUDO=(sudo)
    fi
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- virtualenv ---------------------------------------------------------------
inputs_hash=$(
    {
        cat requirements.txt requirements-dev.txt localcloud/pyproject.toml "$SELF"
        "$PYTHON" -c 'import sys; print(sys.version)'
    } | sha256sum | cut -d' ' -f1
)

# The collection itself, importable as ansible_collections.autoscale.hetzner by
# the venv's Python and found by ansible/ansible-playbook from .venv without any
# ANSIBLE_COLLECTIONS_PATH: a symlink to the repo root next to the collections the
# `ansible` package brings (ansible scans sys.path for ansible_collections/).
#
# Also a plain path entry for the localcloud sources: setuptools' editable
# install is an import hook that runs after the normal path finder, so with the
# repo root as cwd (`python -m pytest`) the localcloud/ project directory would
# win as an empty namespace package. A real package on sys.path beats that.
link_collection() {
    local site link
    for site in "$VENV"/lib/python3*/site-packages; do
        if [ "$(cat "$site/localcloud-src.pth" 2>/dev/null)" != "$PWD/localcloud" ]; then
            echo "$PWD/localcloud" >"$site/localcloud-src.pth"
        fi
        link="$site/ansible_collections/autoscale/hetzner"
        if [ "$(readlink "$link" 2>/dev/null)" != "$PWD" ]; then
            mkdir -p "$(dirname "$link")"
            ln -sfn "$PWD" "$link"
        fi
    done
}

if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$inputs_hash" ]; then
    link_collection
    exit 0
fi

"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' \
    || log "warning: $PYTHON is $("$PYTHON" --version 2>&1), the tests are pinned for Python 3.11"

# A venv from another Python (python3 changed) is rebuilt rather than patched.
if [ -x "$VENV/bin/python" ] \
    && [ "$("$VENV/bin/python" -c 'import sys; print(sys.version)' 2>/dev/null)" != "$("$PYTHON" -c 'import sys; print(sys.version)')" ]; then
    log "$VENV was made with another Python, recreating it"
    rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
fi

log "installing requirements-dev.txt and localcloud (editable)"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -r requirements-dev.txt
"$VENV/bin/python" -m pip install -q --no-deps -e localcloud/
# Fail here, not in some test, if the pins are inconsistent.
"$VENV/bin/python" -m pip check >&2

link_collection
echo "$inputs_hash" >"$STAMP"
log "done in $((SECONDS - started))s"
