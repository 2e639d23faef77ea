#!/usr/bin/env python3
# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""`make demo` / `make demo-down`: site.yml on the local cloud, no Hetzner account, no token.

    make demo                              # the minimal scenario (3 web + 1 db)
    DEMO_SCENARIO=production make demo     # the production scenario (LB, 3 web, 2 app, 2 db, monitoring)
    make demo-down                         # remove every demo (machines, networks, state)

`up` starts a local cloud with machines (systemd-nspawn, in a free slot of this host) whose state
lives in .demo/<scenario>/, creates a dedicated SSH key unless DEMO_SSH_KEY names one (as the
original plan's quick-deploy script does: ~/.ssh/hetzner_autoscale), and runs playbooks/site.yml
with the scenario's inventory against it: the inventory plugin and the modules read HCLOUD_ENDPOINT
and HCLOUD_TOKEN from the local cloud's env file. The local cloud and its machines keep running;
a second `make demo` reuses them and changes nothing. Everything the demo needs that is not in the
inventory goes in .demo/<scenario>/demo-vars.yml (admin key, the controller's address as the admin
network, a known_hosts file of its own).

Environment: DEMO_SCENARIO (minimal|production), DEMO_SSH_KEY (a private key with its .pub beside
it), DEMO_DIR (default .demo), DEMO_ARGS (more ansible-playbook arguments, e.g. "-e web_servers=4").
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SCENARIOS = ("minimal", "production")
DEFAULT_KEY = Path("~/.ssh/hetzner_autoscale").expanduser()
RECAP = re.compile(r"^(?P<host>\S+)\s+: ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)\s+"
                   r"failed=(?P<failed>\d+)")


class DemoError(Exception):
    """A problem the user can fix; the message says what to set."""


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def demo_root() -> Path:
    return Path(os.environ.get("DEMO_DIR") or ROOT / ".demo").resolve()


def check_host() -> None:
    if not sys.platform.startswith("linux"):
        raise DemoError("make demo needs Linux (Debian 12): the local cloud's machines are systemd-nspawn containers.")
    if os.geteuid() != 0:
        raise DemoError("make demo needs root: the local cloud's machines are systemd-nspawn containers with their own "
                        "network namespaces. Run it as root (sudo make demo).")
    for tool in ("ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            raise DemoError(f"{tool} is missing: apt-get install openssh-client (make venv installs it).")


def ssh_key() -> Path:
    """The private key whose .pub goes on the servers: DEMO_SSH_KEY, else a dedicated one (created once)."""
    given = os.environ.get("DEMO_SSH_KEY", "").strip()
    if given:
        key = Path(given).expanduser()
        if not key.is_file():
            raise DemoError(f"DEMO_SSH_KEY: {key} does not exist. Point it at a private key with its .pub beside it "
                            f"(e.g. DEMO_SSH_KEY=~/.ssh/id_ed25519), or unset it: make demo then creates {DEFAULT_KEY}.")
        if not key.with_name(key.name + ".pub").is_file():
            raise DemoError(f"DEMO_SSH_KEY: {key}.pub does not exist; make it with ssh-keygen -y -f {key} > {key}.pub")
        return key
    if not DEFAULT_KEY.is_file():
        DEFAULT_KEY.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "autoscale-demo", "-f", str(DEFAULT_KEY)],
                       check=True)
        say(f"created the SSH key {DEFAULT_KEY} (set DEMO_SSH_KEY to use another)")
    return DEFAULT_KEY


def cloud_env(state: Path) -> dict[str, str] | None:
    """HCLOUD_ENDPOINT/HCLOUD_TOKEN of the local cloud in state, when it runs and answers."""
    import urllib.request
    env_file, pid_file = state / "env", state / "serve.pid"
    if not (env_file.exists() and pid_file.exists()):
        return None
    try:
        os.kill(int(pid_file.read_text().strip()), 0)
        values = dict(line.split("=", 1) for line in env_file.read_text().split())
        urllib.request.urlopen(values["HCLOUD_ENDPOINT"].rsplit("/v1", 1)[0] + "/_localcloud/config", timeout=3)
    except (OSError, ValueError, KeyError):
        return None
    return values


def start_cloud(state: Path) -> dict[str, str]:
    """The scenario's local cloud: the running one, or a new serve (which keeps running after make demo)."""
    env = cloud_env(state)
    if env:
        say(f"local cloud running ({env['HCLOUD_ENDPOINT']}, state {state})")
        return env
    sys.path.insert(0, str(ROOT / "localcloud"))
    from localcloud.testing import start_cloud as start   # pylint: disable=import-outside-toplevel
    say(f"starting the local cloud with machines (state {state}; the first start on a machine installs "
        "systemd-nspawn and builds the Debian images: a few minutes)")
    t0 = time.monotonic()
    cloud = start(state, "--machines", "nspawn")
    say(f"local cloud up in {time.monotonic() - t0:.0f} s: {cloud.endpoint}")
    return cloud.env


def controller_ip(state: Path) -> str:
    """The controller as the machines see it: the host side of the public bridge of the cloud's slot."""
    sys.path.insert(0, str(ROOT / "localcloud"))
    from localcloud.backends.nspawn.slots import Slot, recorded_slot  # pylint: disable=import-outside-toplevel
    return Slot(recorded_slot(state) or 0).host_ip


def write_vars(work: Path, key: Path, controller: str) -> Path:
    path = work / "demo-vars.yml"
    demo_vars = {
        # Comments cannot go in JSON; this file is written by scripts/demo.py on every make demo.
        "admin_public_key_file": str(key) + ".pub",
        "ansible_ssh_private_key_file": str(key),
        "admin_sources": [f"{controller}/32"],
        "ansible_ssh_common_args": f"-o UserKnownHostsFile={work / 'known_hosts'}",
        # The generated database passwords belong to this demo (make demo-down removes them with it).
        "credentials_dir": str(work / "credentials"),
        # Grafana's APT repository is out of the local cloud machines' reach (they reach Debian's
        # archive only): the grafana role says so and skips; Prometheus and Alertmanager run.
        "grafana_when_unreachable": "skip",
    }
    path.write_text(json.dumps(demo_vars, indent=1) + "\n")
    return path


def ansible_env(work: Path, cloud: dict[str, str]) -> dict[str, str]:
    import ansible  # pylint: disable=import-outside-toplevel
    # The user's ANSIBLE_* settings stay (e.g. ANSIBLE_CALLBACKS_ENABLED), except those that would
    # point the demo at another configuration, inventory or copy of the collection.
    redirect = ("ANSIBLE_CONFIG", "ANSIBLE_INVENTORY", "ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_COLLECTIONS_PATHS")
    env = {key: value for key, value in os.environ.items() if not key.startswith("HCLOUD_") and key not in redirect}
    env.update(cloud)
    env.update({
        "PATH": f"{BIN}:{env.get('PATH', '')}",
        # This checkout's collection, even when another copy is installed in ~/.ansible/collections.
        "ANSIBLE_COLLECTIONS_PATH": str(Path(ansible.__file__).resolve().parents[1]),
        "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(work / "facts"),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(work / "cp"),
        "ANSIBLE_FORCE_COLOR": env.get("ANSIBLE_FORCE_COLOR", "1" if sys.stdout.isatty() else "0"),
    })
    return env


def run_site(scenario: str, work: Path, env: dict[str, str], vars_file: Path) -> tuple[int, str, float]:
    args = [str(BIN / "ansible-playbook"), "-i", str(ROOT / "inventories" / scenario), str(ROOT / "playbooks" / "site.yml"),
            "-e", f"@{vars_file}", *shlex.split(os.environ.get("DEMO_ARGS", ""))]
    say("running " + " ".join(shlex.quote(a) for a in args))
    t0 = time.monotonic()
    lines = []
    with subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          bufsize=1) as proc, (work / "site.log").open("a") as log:
        log.write(f"\n===== {time.strftime('%F %T')} {shlex.join(args)}\n")
        for line in proc.stdout:
            sys.stdout.write(line)
            log.write(line)
            lines.append(line)
        rc = proc.wait()
    return rc, "".join(lines), time.monotonic() - t0


def recap(output: str) -> dict[str, dict[str, int]]:
    counts = {}
    plain = re.sub(r"\x1b\[[0-9;]*m", "", output)
    for line in plain.splitlines()[::-1]:
        m = RECAP.match(line)
        if m:
            counts.setdefault(m.group("host"), {k: int(v) for k, v in m.groupdict().items() if k != "host"})
        elif counts and line.startswith("PLAY RECAP"):
            break
    return counts


def outcome(counts: dict[str, dict[str, int]]) -> str:
    """What the recap says about the servers. No recap (site.yml interrupted, or failed before its
    end) says nothing about them: then that, not "changed=0"."""
    servers = {h: c for h, c in counts.items() if h != "localhost"}
    if not servers:
        return "no play recap for the servers (site.yml did not get to its end)"
    changed = [h for h, c in servers.items() if c["changed"]]
    return "changed=0 on every host" if not changed else f"changed on {len(changed)} of {len(servers)} hosts"


def up(scenario: str) -> int:
    if scenario not in SCENARIOS:
        raise DemoError(f"DEMO_SCENARIO: {scenario!r} is not a scenario; set DEMO_SCENARIO=minimal or DEMO_SCENARIO=production.")
    check_host()
    work = demo_root() / scenario
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    key = ssh_key()
    cloud = start_cloud(work / "cloud")
    vars_file = write_vars(work, key, controller_ip(work / "cloud"))
    rc, output, seconds = run_site(scenario, work, ansible_env(work, cloud), vars_file)
    print()
    say(f"site.yml for {scenario}: rc {rc} in {seconds:.0f} s ({time.monotonic() - started:.0f} s in all); "
        + outcome(recap(output)))
    if rc != 0:
        say(f"site.yml failed; the log is {work / 'site.log'}. Fix what it says and run make demo again.")
        return rc
    say(f"SSH in: ssh -i {key} -o UserKnownHostsFile={work / 'known_hosts'} root@<public IP above>")
    say(f"The local cloud keeps running: {work / 'cloud' / 'env'} holds HCLOUD_ENDPOINT and HCLOUD_TOKEN "
        f"(set -a; . {work / 'cloud' / 'env'}; set +a; then ansible-playbook -i inventories/{scenario} ...).")
    say("Remove everything: make demo-down")
    return 0


def down() -> int:
    root = demo_root()
    demos = sorted(p.parent for p in root.glob("*/cloud")) if root.exists() else []
    if not demos:
        say(f"nothing to remove ({root} holds no demo)")
        return 0
    for work in demos:
        for socket in glob.glob(str(work / "cp" / "*")):   # SSH masters of the demo's connections
            subprocess.run(["ssh", "-O", "exit", "-o", f"ControlPath={socket}", "x"], capture_output=True, timeout=10,
                           check=False)
        say(f"removing the {work.name} demo: local cloud, machines, networks ({work / 'cloud'})")
        proc = subprocess.run([sys.executable, "-m", "localcloud.cli", "down", "--state", str(work / "cloud")],
                              cwd=ROOT / "localcloud", capture_output=True, text=True, timeout=900, check=False)
        if proc.returncode != 0:
            say(f"localcloud down failed ({proc.returncode}): {proc.stdout[-1500:]}{proc.stderr[-1500:]}")
            return proc.returncode
        shutil.rmtree(work)
    say("done (the SSH key stays: " + str(DEFAULT_KEY) + ")")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument("--scenario", default=os.environ.get("DEMO_SCENARIO") or "minimal")
    args = parser.parse_args()
    try:
        return up(args.scenario) if args.command == "up" else down()
    except DemoError as exc:
        say(str(exc))
        return 2


if __name__ == "__main__":
    sys.exit(main())
