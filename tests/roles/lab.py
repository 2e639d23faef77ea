# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The role lab: one local cloud with machines per pytest session, shared by every role test.

    from lab import lab          # the fixture (imported: there is no conftest.py here, see below)

    def test_something(lab):
        run = lab.playbook("playbooks/harden.yml", limit="rolelab-web-1")
        run.assert_ok()
        assert run.recap["rolelab-web-1"]["changed"] == 0
        lab.ssh("rolelab-web-1", "nft list ruleset")
        fresh = lab.fresh_host("debian-13")          # a brand-new server, e.g. for check mode

What it does once per session (the first test that asks for `lab`):
- starts `localcloud serve --machines nspawn` (start_cloud waits for the host lock; only one local
  cloud with machines may run on a host);
- provisions tests/roles/lab_stack.yml with this collection's stack module (one ansible-playbook run);
- writes an inventory for this collection's inventory plugin (groups web/app/db/monitoring from the
  `tier` label, hcloud_private_ipv4 etc.) with group_vars, and an ansible.cfg (pipelining, SSH
  ControlPersist, forks) that every run uses;
- at the end of the session stops the cloud and runs `localcloud down` (also after failures).

There is deliberately no conftest.py: tests/localcloud and tests/integration do `from conftest
import ...`, and a second module named conftest would shadow theirs in a shared session. A fixture
imported into several test modules is a separate fixture in each, so the Lab itself is a module-level
singleton: every module gets the same one.
"""
from __future__ import annotations

import copy
import json
import os
import shlex
import subprocess
import sys
import sysconfig
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BIN = Path(sys.executable).parent
# The directory whose ansible_collections/autoscale/hetzner links to this checkout (scripts/bootstrap.sh).
COLLECTIONS = Path(sysconfig.get_paths()["purelib"])
if str(ROOT / "localcloud") not in sys.path:
    sys.path.insert(0, str(ROOT / "localcloud"))
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

# The parts the end-to-end tests use too.
from harness import (  # noqa: E402,F401  pylint: disable=wrong-import-position,unused-import
    SSH_OPTS, PlaybookRun, http_get, machines_skip_reason, ssh, tcp_from, tcp_from_controller)

# The controller as the machines see it: the host side of the public bridge of the local cloud's
# slot (198.18.0.1 in slot 0, lc-pub); Lab.controller_ip is the one of the running lab.
CONTROLLER_IP = "198.18.0.1"


def skip_reason() -> str | None:
    return machines_skip_reason("role tests")


@dataclass
class Host:
    name: str
    ip: str            # public IPv4 (how Ansible and the controller reach it)
    private_ip: str
    image: str


def load_stack() -> dict:
    """The lab topology (tests/roles/lab_stack.yml) as a dict, for a Lab with a variant of it (benchmarks)."""
    return yaml.safe_load((HERE / "lab_stack.yml").read_text())


class Lab:
    """One local cloud with machines and the lab topology; see the module docstring."""

    def __init__(self, workdir: Path, stack: dict | None = None):
        self.dir = workdir
        self.cloud = None
        self.key = workdir / "id_ed25519"
        self.inventory = workdir / "inventory"
        self.ansible_cfg = workdir / "ansible.cfg"
        self.stack = stack or load_stack()
        self.controller_ip = CONTROLLER_IP
        self.hosts: dict[str, Host] = {}
        self._fresh = 0
        self._provision_lock = threading.Lock()
        self.timings: dict[str, float] = {}
        self._once: dict[str, object] = {}
        self._once_lock = threading.RLock()   # once() may call once() (the first converge makes the second)

    # --- life cycle -------------------------------------------------------------------------
    def start(self) -> "Lab":
        from localcloud.testing import start_cloud
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "rolelab", "-f", str(self.key)], check=True)
        self.stack["ssh_keys"][0]["public_key"] = (self.key.with_suffix(".pub")).read_text().strip()
        t0 = time.monotonic()
        # --action-time 0.1: the API's actions are quick; the machines take what they take.
        self.cloud = start_cloud(self.dir / "cloud", "--machines", "nspawn", "--action-time", "0.1", "--rate-limit", "0")
        self.timings["cloud start (lock wait included)"] = time.monotonic() - t0
        from localcloud.backends.nspawn.slots import Slot, recorded_slot
        self.controller_ip = Slot(recorded_slot(self.dir / "cloud") or 0).host_ip   # start_cloud takes a free slot
        for firewall in self.stack.get("firewalls", []):
            for rule in firewall.get("rules", []):
                rule["source_ips"] = [f"{self.controller_ip}/32" if s == f"{CONTROLLER_IP}/32" else s
                                      for s in rule.get("source_ips", [])]
        self._write_config()
        t0 = time.monotonic()
        self.provision()
        self.timings["provision (stack module)"] = time.monotonic() - t0
        t0 = time.monotonic()
        self.wait_for_ssh(list(self.hosts))
        self.timings["wait for ssh + cloud-init"] = time.monotonic() - t0
        return self

    def close(self):
        if self.cloud is None:
            return
        self.cloud.stop()
        subprocess.run([sys.executable, "-m", "localcloud.cli", "down", "--state", str(self.cloud.state)],
                       cwd=ROOT / "localcloud", capture_output=True, timeout=600)
        self.cloud = None

    @property
    def env(self) -> dict[str, str]:
        env = {**os.environ, **self.cloud.env, "ANSIBLE_CONFIG": str(self.ansible_cfg),
               "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
        # This checkout's collection (the venv's site-packages links it; the ansible package's collections
        # are there too), and nothing else: a copy installed in ~/.ansible/collections (ansible-galaxy's
        # default path, which ansible searches first) would otherwise shadow the roles under test.
        env["ANSIBLE_COLLECTIONS_PATH"] = str(COLLECTIONS)
        return env

    def _write_config(self):
        self.inventory.mkdir(parents=True, exist_ok=True)
        (self.inventory / "group_vars").mkdir(exist_ok=True)
        (self.inventory / "rolelab.hcloud.yml").write_text(yaml.safe_dump({
            "plugin": "autoscale.hetzner.hcloud",
            "label_selector": "stack=rolelab",
            "connect_with": "public_ipv4",
            "network": "rolelab-net",
        }))
        # Variables a user of the collection would have in group_vars.
        (self.inventory / "group_vars" / "all.yml").write_text(yaml.safe_dump({
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(self.key),
            "ansible_python_interpreter": "/usr/bin/python3",
            "admin_sources": [f"{self.controller_ip}/32"],
            "hetzner_stack": self.stack,
        }, sort_keys=False))
        # One Debian 12 host offers post-quantum key exchanges only (ssh-audit's plain scan then has no warning).
        (self.inventory / "group_vars" / "monitoring.yml").write_text(yaml.safe_dump({
            "ssh_hardening_post_quantum_kex_only": True,
        }))
        # The web tier is reached by SSH from anywhere (its Cloud Firewall says so too): fail2ban's case.
        (self.inventory / "group_vars" / "web.yml").write_text(yaml.safe_dump({
            "host_firewall_ssh_sources": ["0.0.0.0/0", "::/0"],
        }))
        (self.dir / "localhost.ini").write_text(
            'localhost ansible_connection=local ansible_python_interpreter="{{ ansible_playbook_python }}"\n')
        roles_path = HERE / "roles"
        import ansible  # pylint: disable=import-outside-toplevel
        # This checkout's collection (the venv's site-packages links it): a copy installed in
        # ~/.ansible/collections would otherwise shadow it, and the lab would test that copy.
        collections_path = Path(ansible.__file__).resolve().parents[1]
        self.ansible_cfg.write_text(f"""[defaults]
inventory = {self.inventory}
roles_path = {roles_path}
collections_path = {collections_path}
forks = 20
host_key_checking = False
retry_files_enabled = False
timeout = 20
stdout_callback = default
deprecation_warnings = False
interpreter_python = /usr/bin/python3

[ssh_connection]
pipelining = True
# sshd's MaxStartups (10:30:60) drops new connections for up to LoginGraceTime after a burst such as
# ssh-audit's scan of every host; ssh then exits 255 ("Connection reset by peer") and Ansible retries
retries = 5
ssh_args = -o ControlMaster=auto -o ControlPersist=300s -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o LogLevel=ERROR
""")

    # --- provisioning ---------------------------------------------------------------------------
    def provision(self):
        """Converge lab_stack.yml (plus fresh hosts) with the stack module, then read the servers back."""
        with self._provision_lock:
            vars_file = self.dir / "stack-vars.yml"
            vars_file.write_text(yaml.safe_dump({"stack": self.stack}, sort_keys=False))
            run = self.playbook(HERE / "playbooks" / "provision.yml", inventory=self.dir / "localhost.ini",
                                extra_vars_file=vars_file)
            run.assert_ok()
            self._read_servers()

    def _read_servers(self):
        from hcloud import Client
        client = Client(token=self.cloud.token, api_endpoint=self.cloud.endpoint)
        for server in client.servers.get_all(label_selector="stack=rolelab"):
            private = server.private_net[0].ip if server.private_net else ""
            self.hosts[server.name] = Host(server.name, server.public_net.ipv4.ip, private, server.image.name)

    def fresh_host(self, image: str = "debian-12") -> Host:
        """A brand-new server of the lab (tier `fresh`, in the lab network), for check mode and as a client."""
        return self.fresh_hosts([image])[0]

    def wait_for_ssh(self, names, timeout: float = 300):
        """SSH login works and cloud-init is done (it writes the password drop-in and root's keys)."""
        def wait(name):
            deadline = time.monotonic() + timeout
            while True:
                proc = self.ssh(name, "cloud-init status --wait >/dev/null 2>&1; cloud-init status", check=False, timeout=120)
                if proc.returncode in (0, 2) and "done" in proc.stdout:   # 2: done with recoverable errors
                    return
                if time.monotonic() > deadline:
                    raise AssertionError(f"{name}: no SSH login / cloud-init not done within {timeout}s: {proc.stderr}")
                time.sleep(0.5)
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(wait, names))

    # --- running things ---------------------------------------------------------------------------
    def playbook(self, playbook, limit: str | None = None, extra_vars: dict | None = None, check: bool = False,
                 inventory: Path | None = None, extra_vars_file: Path | None = None, timeout: float = 1800) -> PlaybookRun:
        args = [str(BIN / "ansible-playbook"), str(playbook)]
        if inventory:
            args += ["-i", str(inventory)]
        if limit:
            args += ["--limit", limit]
        if extra_vars:
            args += ["-e", json.dumps(extra_vars)]
        if extra_vars_file:
            args += ["-e", f"@{extra_vars_file}"]
        if check:
            args += ["--check"]
        t0 = time.monotonic()
        try:
            proc = subprocess.run(args, cwd=HERE, env=self.env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            # Say which task hung on which host, and what the hosts were doing: a bare TimeoutExpired
            # told CI nothing more than "harden.yml took 30 minutes".
            def text(out):
                return out.decode(errors="replace") if isinstance(out, bytes) else (out or "")
            output = text(e.stdout) + text(e.stderr)
            with (self.dir / "runs.log").open("a") as f:
                f.write(f"\n===== {shlex.join(args)}  (killed after {timeout:.0f} s)\n{output}")
            raise AssertionError(f"ansible-playbook {shlex.join(args[1:])} still ran after {timeout:.0f} s; "
                                 f"its last lines:\n{output[-3000:]}\n{self.diagnose()}") from None
        seconds = time.monotonic() - t0
        output = proc.stdout + proc.stderr
        log = self.dir / "runs.log"
        with log.open("a") as f:
            f.write(f"\n===== {shlex.join(args)}  (rc {proc.returncode}, {seconds:.1f} s)\n{output}")
        return PlaybookRun.parse(args[1:], proc.returncode, output, seconds)

    def diagnose(self) -> str:
        """What every lab host started last (its 15 youngest processes) and its TCP connections that are not
        established, plus the end of the apt proxy's error log: what a hung playbook waits on."""
        def host(name):
            try:
                proc = self.ssh(name, "ps -eo pid,etimes,stat,args --sort=-etimes | grep -v ' \\[' | tail -n 15; "
                                      "ss -tanp | grep -v -e ESTAB -e LISTEN", check=False, timeout=20)
            except (subprocess.SubprocessError, OSError) as e:
                return f"--- {name}\n(no answer: {e})"
            return f"--- {name}\n{proc.stdout}{proc.stderr}"
        with ThreadPoolExecutor(max_workers=8) as pool:
            parts = list(pool.map(host, sorted(self.hosts)))
        from localcloud.backends.nspawn.slots import Slot, recorded_slot
        err = Slot(recorded_slot(self.dir / "cloud") or 0).apt_cache / "log" / "apt-cacher.err"
        if err.exists():
            parts.append(f"--- {err} (last lines)\n" + "\n".join(err.read_text(errors="replace").splitlines()[-20:]))
        serve_log = self.dir / "cloud" / "serve.log"
        if serve_log.exists():
            ended = [line for line in serve_log.read_text(errors="replace").splitlines() if "apt watchdog" in line]
            parts.append("--- the apt watchdog (localcloud aptwatch.py): "
                         + ("\n".join(ended[-10:]) if ended else "ended no http method"))
        return "\n".join(parts)

    def harden(self, limit: str = "hcloud:!fresh", **kwargs) -> PlaybookRun:
        """playbooks/harden.yml of the collection: ssh_hardening, fail2ban, host_firewall."""
        return self.playbook(ROOT / "playbooks" / "harden.yml", limit=limit, **kwargs)

    def once(self, key: str, make):
        """make() the first time key is asked for in this session, the same result afterwards
        (e.g. the first converge of a set of roles, shared by every test module that needs it)."""
        with self._once_lock:
            if key not in self._once:
                self._once[key] = make()
            return self._once[key]

    def fresh_hosts(self, images) -> list[Host]:
        """Several brand-new servers at once (one stack run)."""
        names = []
        with self._provision_lock:
            tier = next((t for t in self.stack["tiers"] if t["name"] == "fresh"), None)
            if tier is None:
                web = next(t for t in self.stack["tiers"] if t["name"] == "web")
                tier = {**copy.deepcopy(web), "name": "fresh", "firewalls": ["rolelab-web"], "servers": []}
                self.stack["tiers"].append(tier)
            for image in images:
                self._fresh += 1
                names.append(f"rolelab-fresh-{self._fresh}")
                tier["servers"].append({"name": names[-1], "ip": f"10.77.1.{100 + self._fresh}", "image": image})
        self.provision()
        self.wait_for_ssh(names)
        return [self.hosts[n] for n in names]

    def ip(self, name: str) -> str:
        return self.hosts[name].ip

    def ssh(self, name: str, command: str, check: bool = True, timeout: float = 60, user: str = "root"):
        """Run a command on a lab host over SSH (a fresh connection; no multiplexing); see harness.ssh."""
        return ssh(self.ip(name), self.key, command, check=check, timeout=timeout, user=user)

    def tcp(self, source: str | None, ip: str, port: int, timeout: float = 3) -> str:
        """open, refused or filtered (no answer): a TCP connect from a lab host, or from the controller (None)."""
        if source is None:
            return tcp_from_controller(ip, port, timeout)
        return tcp_from(self.ip(source), self.key, ip, port, timeout)

    def assert_tcp_matrix(self, title: str, matrix):
        """Each (from, to, address, port, expected) of matrix: a TCP connect (self.tcp) from a lab host
        (None: the controller); expected is open, refused or filtered, or None for "anything but open".
        Prints the table, then fails with every row that differs."""
        rows, wrong = [], []
        for source, target, address, port, expected in matrix:
            got = self.tcp(source, address, port)
            ok = got == expected if expected else got != "open"
            rows.append(f"{source or 'controller':18} -> {target:14} {address:>12}:{port:<5} {got:9} {'ok' if ok else 'WRONG'}")
            if not ok:
                wrong.append(rows[-1])
        print(f"\n{title}:\n" + "\n".join(rows))
        assert not wrong, wrong

    def api(self):
        from hcloud import Client
        return Client(token=self.cloud.token, api_endpoint=self.cloud.endpoint)


_LAB: Lab | None = None


@pytest.fixture(scope="session")
def lab(request, tmp_path_factory):
    """The session's lab (created by the first test that asks; closed at the end of the session)."""
    global _LAB   # pylint: disable=global-statement
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    if _LAB is None:
        _LAB = Lab(tmp_path_factory.mktemp("rolelab"))
        request.session.config.add_cleanup(_LAB.close)   # once, whichever module created it
        _LAB.start()
    return _LAB


@pytest.fixture(scope="session")
def hardened(lab):
    """The first run of playbooks/harden.yml (ssh_hardening, fail2ban, host_firewall) on the lab's hosts.

    The second run follows at once (lab.once("harden-second")), before any test changes a host, so
    test_security_baseline.py can check it changed nothing whatever order the tests run in.
    """
    def converge():
        first = lab.harden().assert_ok()
        lab.once("harden-second", lab.harden)
        return first
    return lab.once("harden", converge)


# The web and app roles on one web and one app host (tests/roles/playbooks/web_app.yml): the app without
# a database (the demo app keeps its visits in memory), on its own port, not the host firewall's tier
# port 8080 (test_host_firewall's stand-in service may still listen there).
WEB_APP_PLAYBOOK = HERE / "playbooks" / "web_app.yml"
WEB_APP_HOSTS = ("rolelab-web-1", "rolelab-app-1")
WEB_APP_VARS = {"app_database": False, "app_port": 8081}


@pytest.fixture(scope="session")
def web_app(lab, hardened):
    """The first run of the web and app roles on WEB_APP_HOSTS, shared by test_web_app.py and the
    monitoring tests (the load balancer's URL, which the blackbox exporter probes, answers through it)."""
    return lab.once("web-app", lambda: lab.playbook(WEB_APP_PLAYBOOK, limit=",".join(WEB_APP_HOSTS),
                                                      extra_vars=WEB_APP_VARS).assert_ok())


@pytest.fixture(scope="session")
def fresh(lab):
    """Two brand-new servers (Debian 12 and 13) no role ever converges: check-mode runs, negative
    controls, clients (an attacker, a witness). Bad-input runs may touch them only in preflight."""
    return lab.once("fresh-12-13", lambda: lab.fresh_hosts(["debian-12", "debian-13"]))
