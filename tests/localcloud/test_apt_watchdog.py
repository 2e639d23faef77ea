"""The apt watchdog's reading of /proc/<pid>/net/tcp and of LOCALCLOUD_APT_WATCHDOG (aptwatch.py).
Its effect on a real stuck http method in a machine is proven in tests/machines/test_nspawn_backend.py."""
import pytest

from localcloud.backends.nspawn import aptwatch

# 198.18.0.1:3142 in /proc/net/tcp's notation (the address in host byte order)
PROXY = ("198.18.0.1", 3142)
TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 020112C6:A1B2 010012C6:0C46 08 00000000:00000000 00:00000000 00000000     0        0 1001 1 0 20 4 30 10 -1
   1: 020112C6:A1B3 010012C6:0C46 01 00000000:00000000 00:00000000 00000000     0        0 1002 1 0 20 4 30 10 -1
   2: 020112C6:A1B4 010012C6:0C47 08 00000000:00000000 00:00000000 00000000     0        0 1003 1 0 20 4 30 10 -1
   3: 020112C6:A1B5 020012C6:0C46 08 00000000:00000000 00:00000000 00000000     0        0 1004 1 0 20 4 30 10 -1
"""


def test_only_connections_to_the_proxy_that_it_closed_count():
    # 1002 is established, 1003 goes to another port, 1004 to another address
    assert aptwatch.half_closed_sockets(TCP, PROXY) == {1001}


@pytest.mark.parametrize("value, seconds", [("", 120.0), ("45", 45.0), ("0", 0.0), ("soon", 120.0)])
def test_the_delay_comes_from_the_environment(monkeypatch, value, seconds):
    monkeypatch.setenv("LOCALCLOUD_APT_WATCHDOG", value)
    assert aptwatch.after_from_env() == seconds


def test_a_switched_off_watchdog_neither_looks_nor_starts():
    watchdog = aptwatch.AptMethodWatchdog(lambda: {"lc-1": "web-1"}, lambda: PROXY, after=0)
    watchdog.start()
    assert watchdog._thread is None and watchdog.look() == []
