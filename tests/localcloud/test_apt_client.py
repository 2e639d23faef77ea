"""The apt configuration every local-cloud machine gets (network.apt_client_conf), run by this host's
own apt-get (Debian 12's, as in the machines) against a proxy on loopback that stalls on purpose.

Why it matters: CI lost a run when a lab machine's apt sat behind apt-cacher-ng in trouble (it had
logged "Failure to move file ... out of the way"): apt waits on a stalled proxy connection for its
120 s timeout, once per file, and the playbook hit its 30-minute limit."""
import os
import shutil
import socket
import subprocess
import threading
from collections import Counter

import pytest

from localcloud.backends.nspawn.network import apt_client_conf

pytestmark = pytest.mark.skipif(shutil.which("apt-get") is None or os.geteuid() != 0,
                                reason="needs Debian's apt-get, as root (the machines' apt)")

IN_RELEASE = "http://deb.debian.org/debian/dists/bookworm/InRelease"


class StallingProxy:
    """An HTTP proxy on 127.0.0.1 that never answers its first request (it reads it, half-closes and
    holds the connection, as seen behind apt-cacher-ng) and answers every later one with a 404.
    It never forwards anything."""

    def __init__(self):
        self.requests = Counter()
        self.held = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        buf = b""
        while b"\r\n\r\n" not in buf:
            data = conn.recv(65536)
            if not data:
                conn.close()
                return
            buf += data
        path = buf.split(b"\r\n")[0].split(b" ")[1].decode()
        self.requests[path] += 1
        if sum(self.requests.values()) == 1:
            self.held.append(conn)          # no answer, no close: the client's timeout decides
            return
        conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        conn.close()

    def close(self):
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def proxy():
    p = StallingProxy()
    yield p
    p.close()


def test_apt_gives_up_a_stalled_proxy_connection_and_asks_again(proxy, tmp_path):
    (tmp_path / "lists" / "partial").mkdir(parents=True)
    (tmp_path / "cache" / "archives" / "partial").mkdir(parents=True)
    (tmp_path / "sources.list").write_text("deb http://deb.debian.org/debian bookworm main\n")
    (tmp_path / "apt.conf").write_text(apt_client_conf(f"http://127.0.0.1:{proxy.port}"))
    # With apt's default 120 s timeout the stalled request is still pending when this limit ends it.
    subprocess.run(
        ["apt-get", "update", "-c", str(tmp_path / "apt.conf"),
         "-o", f"Dir::Etc::sourcelist={tmp_path / 'sources.list'}", "-o", "Dir::Etc::sourceparts=-",
         "-o", f"Dir::State::Lists={tmp_path / 'lists'}", "-o", f"Dir::Cache={tmp_path / 'cache'}",
         "-o", "APT::Sandbox::User=root"],
        capture_output=True, text=True, timeout=90)
    assert proxy.requests[IN_RELEASE] >= 2, dict(proxy.requests)
