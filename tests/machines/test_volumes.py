"""Volumes are block devices and server disks are kept, through the API and both Ansible collections.

A volume created with format ext4 + automount (autoscale.hetzner.volume) is mounted in its server at
/mnt/HC_Volume_<id> with hc-utils' fstab line; moved to a second server (hetzner.hcloud.volume_attachment) the
data is there in the same place and the first server no longer has the device; a resize from 10
to 20 GB shows a 20 GB device in the running machine; deleting the server keeps the volume and its
data. A file on a server's own disk and one on its volume survive a `serve` restart and kill -9 +
restart (the machine boots from its kept disk, the volume is mounted again from fstab); rebuild
(hetzner.hcloud.server) gives an empty disk; deleting a server removes its disk, deleting a volume
its backing file. A snapshot copies a server's disk: a server created from it (hetzner.hcloud.server)
has the files written before the snapshot, not those after. Root on Linux only.
"""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from machines_helpers import (  # noqa: F401  (ssh, ssh_key: fixtures)
    API, down, machines_cloud, playbook, skip_reason, ssh, ssh_key, until)

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")
GIB = 1024 ** 3


class Cloud:
    """The running local cloud; restarted by the tests on the same state directory."""

    def __init__(self, state: Path):
        self.state = state
        self.start()

    def start(self):
        self.cloud = machines_cloud(self.state)
        self.api = API(self.cloud)

    def restart(self, sig=signal.SIGTERM):
        if sig == signal.SIGKILL:
            os.kill(self.cloud.process.pid, signal.SIGKILL)
            self.cloud.process.wait(timeout=30)
        else:
            self.cloud.stop(sig)
        self.start()


@pytest.fixture(scope="module")
def lc(tmp_path_factory):
    state = tmp_path_factory.mktemp("volumes-state")
    holder = Cloud(state)
    try:
        yield holder
    finally:
        holder.cloud.stop()
        result = down(state)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def servers(lc, ssh, ssh_key):
    key = lc.api("POST", "/ssh_keys", {"name": "vol", "public_key": ssh_key.with_suffix(".pub").read_text()})
    made = {name: lc.api.server(name, key["ssh_key"]["id"]) for name in ("vol-a", "vol-b")}
    ips = {name: s["public_net"]["ipv4"]["ip"] for name, s in made.items()}
    for ip in ips.values():
        ssh.wait(ip)
    return {name: (s["id"], ips[name]) for name, s in made.items()}


def volume(lc, name):
    return lc.api("GET", f"/volumes?name={name}")["volumes"][0]


def test_volume_automount_moves_grows_and_outlives_its_server(lc, servers, ssh, tmp_path):
    (a_id, a_ip), (b_id, b_ip) = servers["vol-a"], servers["vol-b"]
    playbook(lc.cloud, tmp_path, """
    - autoscale.hetzner.volume:
        name: data
        size: 10
        server: vol-a
        format: ext4
        automount: true
""")
    vid = volume(lc, "data")["id"]
    mnt, dev = f"/mnt/HC_Volume_{vid}", f"/dev/disk/by-id/scsi-0HC_Volume_{vid}"
    assert ssh.run(a_ip, f"findmnt -n -o SOURCE,FSTYPE {mnt}").stdout.split() == ["/dev/sdb", "ext4"]
    fstab = ssh.run(a_ip, "cat /etc/fstab").stdout
    assert f"{dev} {mnt} ext4 discard,nofail,defaults 0 0" in fstab.splitlines()
    ssh.run(a_ip, f"echo written-on-a > {mnt}/data.txt && sync")

    playbook(lc.cloud, tmp_path, """
    - hetzner.hcloud.volume_attachment:
        volume: data
        server: vol-b
        automount: true
""")
    assert volume(lc, "data")["server"] == b_id
    gone = ssh.run(a_ip, f"test -e {dev} || echo no-device; findmnt {mnt} || echo not-mounted; ls /dev/sd* 2>&1", check=False)
    assert "no-device" in gone.stdout and "not-mounted" in gone.stdout and "No such file" in gone.stdout
    assert ssh.run(b_ip, f"cat {mnt}/data.txt").stdout.strip() == "written-on-a"

    playbook(lc.cloud, tmp_path, """
    - hetzner.hcloud.volume:
        name: data
        size: 20
""")
    assert volume(lc, "data")["size"] == 20
    assert int(ssh.run(b_ip, f"blockdev --getsize64 {dev}").stdout) == 20 * GIB
    # growing the filesystem is the user's job, as on Hetzner (unmounted here: online resize2fs needs
    # CAP_SYS_RESOURCE, which the machines get only where the host has it)
    ssh.run(b_ip, f"umount {mnt} && e2fsck -fy {dev} >/dev/null && resize2fs {dev} && mount {mnt}")
    assert int(ssh.run(b_ip, f"df -B1 --output=size {mnt} | tail -1").stdout) > 19 * GIB

    deleted = lc.api("DELETE", f"/servers/{b_id}")
    lc.api.wait(deleted["action"])
    assert volume(lc, "data")["server"] is None
    assert not (lc.state / "disks" / str(b_id)).exists(), "deleting a server removes its disk"
    lc.api.wait(lc.api("POST", f"/volumes/{vid}/actions/attach", {"server": a_id, "automount": True})["action"])
    assert ssh.run(a_ip, f"cat {mnt}/data.txt").stdout.strip() == "written-on-a"


def test_disk_and_volume_survive_restart_and_kill_9_rebuild_gives_a_new_disk(lc, servers, ssh, tmp_path):
    a_id, a_ip = servers["vol-a"]
    vid = volume(lc, "data")["id"]
    mnt = f"/mnt/HC_Volume_{vid}"
    ssh.run(a_ip, f"echo on-the-root-disk > /root/marker && echo on-the-volume > {mnt}/marker && sync")
    for how in (signal.SIGTERM, signal.SIGKILL):
        lc.restart(how)
        ssh.wait(a_ip, timeout=120)
        out = ssh.run(a_ip, f"cat /root/marker {mnt}/marker; findmnt -n -o SOURCE {mnt}").stdout.split()
        assert out == ["on-the-root-disk", "on-the-volume", "/dev/sdb"], (how, out)
        assert lc.api("GET", f"/servers/{a_id}")["server"]["status"] == "running"

    playbook(lc.cloud, tmp_path, """
    - hetzner.hcloud.server:
        name: vol-a
        image: debian-12
        state: rebuild
""")
    ssh.wait(a_ip, timeout=120)
    after = ssh.run(a_ip, f"cat /root/marker 2>&1; test -b /dev/disk/by-id/scsi-0HC_Volume_{vid} && echo attached")
    assert "No such file" in after.stdout and "attached" in after.stdout


def test_volume_delete_removes_its_data(lc, servers):
    vid = volume(lc, "data")["id"]
    backing = lc.state / "volumes" / f"HC_Volume_{vid}.img"
    assert backing.exists()
    lc.api.wait(lc.api("POST", f"/volumes/{vid}/actions/detach", {})["action"])
    lc.api("DELETE", f"/volumes/{vid}")
    until(lambda: not backing.exists(), 10, message="the volume's backing file should be gone")


def test_snapshot_copies_the_disk(lc, servers, ssh, tmp_path):
    a_id, a_ip = servers["vol-a"]
    ssh.run(a_ip, "echo in-the-snapshot > /root/snapshotted && sync")
    made = lc.api("POST", f"/servers/{a_id}/actions/create_image", {"type": "snapshot", "description": "vol-a"})
    lc.api.wait(made["action"])
    image_id = made["image"]["id"]
    assert lc.api("GET", f"/images/{image_id}")["image"]["status"] == "available"
    ssh.run(a_ip, "echo too-late > /root/after-the-snapshot && sync")

    playbook(lc.cloud, tmp_path, f"""
    - hetzner.hcloud.server:
        name: vol-c
        server_type: cx23
        image: "{image_id}"
        location: fsn1
        ssh_keys: [vol]
        state: started
""")
    c = lc.api("GET", "/servers?name=vol-c")["servers"][0]
    c_ip = c["public_net"]["ipv4"]["ip"]
    ssh.wait(c_ip, timeout=120)
    out = ssh.run(c_ip, "hostname; cat /root/snapshotted; test -e /root/after-the-snapshot || echo not-copied").stdout.split()
    assert out == ["vol-c", "in-the-snapshot", "not-copied"]
    assert ssh.run(a_ip, "cat /root/snapshotted").stdout.strip() == "in-the-snapshot"     # the source keeps its disk

    copy = lc.state / "images" / str(image_id)
    assert copy.is_dir()
    lc.api("DELETE", f"/images/{image_id}")
    until(lambda: not copy.exists(), 10, message="deleting the image removes its disk copy")
    lc.api.wait(lc.api("DELETE", f"/servers/{c['id']}")["action"])
