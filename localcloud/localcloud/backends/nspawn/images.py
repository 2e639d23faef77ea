"""Cached Debian base images (debootstrap once per suite, reused across runs and CI runs).

The base is the read-only lower layer of every machine's overlayfs, so it is never changed once
built: a change of the recipe gives a new directory name (the recipe hash is part of it).
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import time
from pathlib import Path

from .host import BackendError, CommandError, log, run, safe_rmtree, write_file

SUITES = {"debian-12": "bookworm", "debian-13": "trixie"}
MIRROR = "http://deb.debian.org/debian"
SECURITY = "http://deb.debian.org/debian-security"
# stage 1 (debootstrap --include): what the measured reference recipe used
BOOTSTRAP = ["systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "iproute2", "sudo"]
# stage 2 (apt-get in a chroot, through the proxy): debootstrap cannot order cloud-init's
# python dependencies ("Failure while configuring base packages ... python3-cryptography")
PACKAGES = ["cloud-init", "python3-apt", "iputils-ping", "ca-certificates", "curl", "gnupg",
            "procps", "netbase", "less", "locales"]

# cloud-init as on a Hetzner server, with only the NoCloud seed dir as data source.
CLOUD_CFG = """\
# localcloud: servers boot from a NoCloud seed in /var/lib/cloud/seed/nocloud/
datasource_list: [ NoCloud, None ]
datasource:
  NoCloud:
    fs_label: null
# the machine's addresses are configured from the host (no DHCP in the local cloud)
network: {config: disabled}
# like Hetzner: the ssh_keys of the API go to root
disable_root: false
users: []
"""
DS_IDENTIFY = "policy: search,found=all,maybe=all,notfound=disabled\n"
# sshd must not start before cloud-init wrote host keys and root's authorized_keys
SSH_AFTER_CLOUD_INIT = "[Unit]\nAfter=cloud-init.service cloud-init-local.service\n"


def recipe_hash() -> str:
    text = repr((BOOTSTRAP, PACKAGES, CLOUD_CFG, DS_IDENTIFY, SSH_AFTER_CLOUD_INIT, 4))
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def cache_dir() -> Path:
    return Path(os.environ.get("LOCALCLOUD_IMAGE_CACHE", "/var/cache/localcloud/images"))


def image_path(suite: str) -> Path:
    return cache_dir() / f"{suite}-{recipe_hash()}"


def sources_list(suite: str) -> str:
    return (f"deb {MIRROR} {suite} main\n"
            f"deb {MIRROR} {suite}-updates main\n"
            f"deb {SECURITY} {suite}-security main\n")


def ensure_image(suite: str, proxy_url: str) -> Path:
    """Return the base rootfs of a suite, building it first if it is not in the cache."""
    path = image_path(suite)
    if (path / ".localcloud-image").exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{suite}.lock", "w") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)            # one builder per suite, also across processes
        if (path / ".localcloud-image").exists():
            return path
        t0 = time.monotonic()
        for stale in path.parent.glob(f".{suite}-*.build-*"):    # left by a killed build
            safe_rmtree(stale)
        tmp = path.parent / f".{path.name}.build-{os.getpid()}"
        last: Exception | None = None
        for attempt in range(3):
            if tmp.exists():
                safe_rmtree(tmp)
            try:
                _debootstrap(suite, tmp, proxy_url)
                break
            except CommandError as exc:
                last = exc
                log.warning("debootstrap %s failed (attempt %d): %s", suite, attempt + 1, exc)
                time.sleep(2 + 3 * attempt)
        else:
            if tmp.exists():
                safe_rmtree(tmp)
            raise BackendError(f"could not build the {suite} base image with debootstrap "
                               f"(through apt-cacher-ng at {proxy_url}): {last}")
        _finish(tmp, suite)
        write_file(tmp / ".localcloud-image",
                   f"suite={suite}\nrecipe={recipe_hash()}\nbuild_seconds={time.monotonic() - t0:.1f}\n")
        os.rename(tmp, path)
        log.info("built %s base image in %.1fs: %s", suite, time.monotonic() - t0, path)
        _prune_old(suite, path)
        return path


def _debootstrap(suite: str, target: Path, proxy_url: str) -> None:
    env = {"http_proxy": proxy_url, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8"}
    run(["debootstrap", "--variant=minbase", "--include=" + ",".join(BOOTSTRAP),
         "--keyring=/usr/share/keyrings/debian-archive-keyring.gpg", suite, target, MIRROR],
        env=env, timeout=1800)
    write_file(target / "etc/apt/sources.list", sources_list(suite))
    write_file(target / "etc/apt/apt.conf.d/01build-proxy", f'Acquire::http::Proxy "{proxy_url}";\n')
    write_file(target / "usr/sbin/policy-rc.d", "#!/bin/sh\nexit 101\n", 0o755)  # start nothing
    mounts = []
    try:
        for src, fstype in (("proc", "proc"), ("sysfs", "sysfs")):
            dst = target / src.replace("sysfs", "sys")
            run(["mount", "-t", fstype, src, dst])
            mounts.append(dst)
        run(["mount", "--bind", "/dev", target / "dev"])
        mounts.append(target / "dev")
        chroot = ["chroot", target]
        for attempt in range(3):
            try:
                run([*chroot, "apt-get", "update", "-q"], env=env, timeout=600)
                run([*chroot, "apt-get", "install", "-y", "-q", "--no-install-recommends",
                     *PACKAGES], env=env, timeout=1800)
                break
            except CommandError:
                if attempt == 2:
                    raise
                time.sleep(2 + 3 * attempt)
        run([*chroot, "apt-get", "clean"], env=env, check=False)
        # the locale cloud-init sets (en_US.UTF-8), generated once here instead of on every boot
        write_file(target / "etc/locale.gen", "en_US.UTF-8 UTF-8\n")
        run([*chroot, "locale-gen"], env=env)
        write_file(target / "etc/default/locale", "LANG=en_US.UTF-8\n")
    finally:
        for m in reversed(mounts):
            run(["umount", m], check=False)
            if os.path.ismount(m):
                run(["umount", "-l", m], check=False)
        for p in (target / "usr/sbin/policy-rc.d", target / "etc/apt/apt.conf.d/01build-proxy"):
            p.unlink(missing_ok=True)
    for lists in (target / "var/lib/apt/lists").glob("*_*"):
        lists.unlink()                          # machines run apt-get update themselves


def _finish(root: Path, suite: str) -> None:
    for deb in (root / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    write_file(root / "etc/apt/sources.list", sources_list(suite))
    write_file(root / "etc/apt/apt.conf.d/02no-keep-debs", 'APT::Keep-Downloaded-Packages "false";\n')
    # identity is per machine: emptied here, written into each machine's own layer
    write_file(root / "etc/machine-id", "")
    for p in [root / "var/lib/dbus/machine-id", root / "etc/hostname",
              *(root / "etc/ssh").glob("ssh_host_*")]:
        if p.exists() or p.is_symlink():
            p.unlink()
    write_file(root / "etc/resolv.conf", "# localcloud: no DNS inside the local cloud; apt goes "
                                         "through the proxy, which resolves names\n")
    write_file(root / "etc/cloud/cloud.cfg.d/99_localcloud.cfg", CLOUD_CFG)
    write_file(root / "etc/cloud/ds-identify.cfg", DS_IDENTIFY)
    write_file(root / "etc/systemd/system/ssh.service.d/10-localcloud.conf", SSH_AFTER_CLOUD_INIT)
    # what cloud-init's set_passwords writes for ssh_pwauth: true (Hetzner's vendor default); having
    # it in place saves an sshd restart during boot. A user-data that changes it still restarts sshd.
    write_file(root / "etc/ssh/sshd_config.d/50-cloud-init.conf", "PasswordAuthentication yes\n", 0o600)
    # units that cannot work in a container
    mask = root / "etc/systemd/system"
    for unit in ("nvmf-autoconnect.service", "systemd-networkd-wait-online.service"):
        link = mask / unit
        if not link.exists() and not link.is_symlink():
            link.symlink_to("/dev/null")


def _prune_old(suite: str, keep: Path) -> None:
    """Drop base images of older recipes that no machine uses (an overlay lower must not vanish)."""
    mounts = Path("/proc/mounts").read_text()
    for old in cache_dir().glob(f"{suite}-*"):
        if old != keep and old.is_dir() and str(old) not in mounts:
            safe_rmtree(old)
