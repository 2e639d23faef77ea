"""An lxcfs killed with -9 leaves its FUSE mount behind, answering "Transport endpoint is not
connected" to every stat. The next local cloud on that slot must clear it and start its own lxcfs,
not fail every server create (a CI run on a host where a session had been killed did exactly that).
Root on Linux only, with lxcfs and /dev/fuse (scripts/bootstrap.sh installs lxcfs).
"""
from __future__ import annotations

import errno
import os
import signal
import threading
import time

import pytest

from localcloud.backends.nspawn.host import mounts_under, pid_alive, which
from localcloud.backends.nspawn.sizes import Lxcfs, teardown_lxcfs
from machines_helpers import skip_reason

pytestmark = pytest.mark.skipif(
    skip_reason() is not None or not which("lxcfs") or not os.path.exists("/dev/fuse"),
    reason=skip_reason() or "lxcfs or /dev/fuse missing")


class State:
    """The little of the backend's state file that Lxcfs uses."""

    def __init__(self):
        self.lock = threading.Lock()
        self.data: dict = {}

    def save(self):
        pass


def test_a_new_lxcfs_replaces_one_killed_with_minus_9(tmp_path):
    mount = tmp_path / "lxcfs"
    first_state, second_state = State(), State()
    first = Lxcfs(first_state, mount)
    try:
        assert first.ensure(), (mount.parent / "lxcfs.log").read_text()
        os.kill(first.pid, signal.SIGKILL)
        stale = None
        for _ in range(100):                              # the kernel drops the FUSE connection at exit
            try:
                os.stat(mount / "proc" / "meminfo")
            except OSError as exc:
                stale = exc
                break
            time.sleep(0.05)
        assert stale is not None and stale.errno == errno.ENOTCONN
        assert not pid_alive(first.pid) or open(f"/proc/{first.pid}/stat").read().split()[2] == "Z"
        assert str(mount) in mounts_under(mount)

        second = Lxcfs(second_state, mount)
        assert second.ensure()
        assert "MemTotal" in (mount / "proc" / "meminfo").read_text()
        assert mounts_under(mount) == [str(mount)]        # the stale one is gone, not stacked
    finally:
        teardown_lxcfs(second_state.data.get("lxcfs"))
        teardown_lxcfs(first_state.data.get("lxcfs"))
    assert not mounts_under(mount)
