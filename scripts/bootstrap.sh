#!/usr/bin/env bash
# Prepare a machine for `make test`: Debian packages the tests need, the
# project virtualenv `.venv` (pinned requirements-dev.txt + localcloud editable)
# and the second toolchain `.venv-ansible14` (pinned requirements-ansible14.txt:
# ansible 14 / ansible-core 2.21 / hetzner.hcloud 6.x on the pyenv Python 3.12).
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
DEB_PACKAGES=(hcloud-cli sqlite3 openssh-client openssl git python3-venv jq graphviz)
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

# --- second toolchain: the current ansible on Python >= 3.12 ----------------------
# Its own venv and stamp (hash of requirements-ansible14.txt, this script and the
# Python version), so either venv is rebuilt alone when its inputs change.
VENV14=${VENV14:-.venv-ansible14}
find_python312() {
    local candidate
    for candidate in "${PYTHON14:-}" python3.12 "$(pyenv root 2>/dev/null)"/versions/3.12*/bin/python3.12 \
        "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12 /root/.pyenv/versions/3.12*/bin/python3.12; do
        [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 || continue
        "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 12) else 1)' 2>/dev/null \
            && { command -v "$candidate"; return 0; }
    done
    return 1
}
ansible14_venv() {
    local python14 hash14 stamp14="$VENV14/.bootstrap-stamp"
    if ! python14=$(find_python312); then
        log "warning: no Python >= 3.12 found (set PYTHON14=...): $VENV14 (hetzner.hcloud 6.x) not built"
        return 0
    fi
    hash14=$({ cat requirements-ansible14.txt "$SELF"; "$python14" -c 'import sys; print(sys.version)'; } \
        | sha256sum | cut -d' ' -f1)
    if [ -x "$VENV14/bin/python" ] && [ -f "$stamp14" ] && [ "$(cat "$stamp14")" = "$hash14" ]; then
        VENV="$VENV14" link_collection
        return 0
    fi
    log "building $VENV14 with $("$python14" --version 2>&1) (requirements-ansible14.txt)"
    rm -rf "$VENV14"
    "$python14" -m venv "$VENV14"
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 "$VENV14/bin/python" -m pip install -q -r requirements-ansible14.txt
    "$VENV14/bin/python" -m pip check >&2
    VENV="$VENV14" link_collection
    echo "$hash14" >"$stamp14"
}

# --- promtool and amtool (Debian's prometheus and prometheus-alertmanager, unpacked) -------
# The monitoring tests check the alert rules with `promtool test rules` and the Alertmanager
# configuration with `amtool check-config` on the controller. The packages are unpacked into
# the venv, not installed: the host must not run a Prometheus of its own. The prometheus binary
# is kept too (as venv/bin/prometheus-server): tests/integration/test_status.py starts one on
# loopback for the length of a test, to ask its HTTP API the way status.yml does.
prometheus_tools() {
    local tmp pkg
    [ -x "$VENV/bin/promtool" ] && [ -x "$VENV/bin/amtool" ] && [ -x "$VENV/bin/prometheus-server" ] && return 0
    tmp=$(mktemp -d)
    if ! (cd "$tmp" && apt-get download -qq prometheus prometheus-alertmanager >/dev/null 2>&1); then
        log "updating the package lists to download promtool and amtool"
        apt-get update -qq
        (cd "$tmp" && apt-get download -qq prometheus prometheus-alertmanager >/dev/null)
    fi
    mkdir -p "$VENV/opt/prometheus"
    for pkg in "$tmp"/*.deb; do dpkg-deb -x "$pkg" "$tmp/root"; done
    cp "$tmp/root/usr/bin/promtool" "$tmp/root/usr/bin/amtool" "$tmp/root/usr/bin/prometheus" "$VENV/opt/prometheus/"
    ln -sfn ../opt/prometheus/promtool "$VENV/bin/promtool"
    ln -sfn ../opt/prometheus/amtool "$VENV/bin/amtool"
    ln -sfn ../opt/prometheus/prometheus "$VENV/bin/prometheus-server"
    rm -rf "$tmp"
    log "promtool and amtool: $("$VENV/bin/promtool" --version 2>&1 | head -n1)"
}

if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$inputs_hash" ]; then
    link_collection
    prometheus_tools
    ansible14_venv
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
prometheus_tools
echo "$inputs_hash" >"$STAMP"
ansible14_venv
log "done in $((SECONDS - started))s"
