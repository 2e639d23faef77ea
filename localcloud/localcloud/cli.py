"""`localcloud serve` and `localcloud down`."""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path

from .config import Settings, check_pricing, parse_action_times
from .errors import APIError


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"'{value}' is not HOST:PORT, e.g. 127.0.0.1:8080")
    return host or "127.0.0.1", int(port)


def _action_times(value: str) -> dict[str, float]:
    try:
        return parse_action_times(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{err}: use COMMAND=SECONDS,... e.g. create_server=10,attach_to_network=2") from None


def _slot(value: str):
    if value == "auto":
        return value
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"'{value}' is not a slot: give a number (0 to 7) or auto")
    return int(value)


def make_backend(name: str, lock_wait: float = 0, slot: int | str = 0):
    if name == "none":
        from .backends.base import MachineBackend
        return MachineBackend()
    if os.geteuid() != 0:
        sys.exit("localcloud: --machines nspawn needs root (it creates network namespaces, bridges and "
                 "nspawn machines); run it as root or use --machines none")
    from .backends.nspawn import NspawnBackend
    return NspawnBackend(lock_wait=lock_wait, slot=slot)


def write_env(state: Path, host: str, port: int, token: str, readonly_token: str = "") -> None:
    """The env file: the endpoint and the default project's tokens (HCLOUD_TOKEN read & write; the read-only
    one, for what only reads, such as the node_exporter role's stack cost collector)."""
    env = state / "env"
    tmp = state / "env.tmp"
    tmp.write_text(f"HCLOUD_ENDPOINT=http://{host}:{port}/v1\nHCLOUD_TOKEN={token}\n"
                   + (f"HCLOUD_TOKEN_READONLY={readonly_token}\n" if readonly_token else ""))
    os.replace(tmp, env)


def serve(args) -> int:
    import uvicorn

    from .api.app import create_app
    from .faults import Faults
    from .model.base import Cloud

    state = Path(args.state).resolve()
    state.mkdir(parents=True, exist_ok=True)
    # the env file appears once the API is up (scripts wait for it): never leave a stale one
    (state / "env").unlink(missing_ok=True)
    faults = Faults(json.loads(Path(args.faults).read_text()) if args.faults else None)
    pricing = None
    if args.pricing:
        try:
            pricing = check_pricing(json.loads(Path(args.pricing).read_text()))
        except (OSError, ValueError, APIError) as err:
            sys.exit(f"localcloud: --pricing {args.pricing}: {getattr(err, 'message', err)}")
    settings = Settings(action_time=args.action_time, action_times=args.action_times or {}, rate_limit=args.rate_limit,
                        legacy_datacenters=args.legacy_datacenters, pricing=pricing)
    backend = make_backend(args.machines, lock_wait=args.lock_wait, slot=args.slot)
    try:
        backend.open(state)
    except RuntimeError as err:          # the backend's user-facing failures (BackendError)
        sys.exit(f"localcloud: {err}")
    backend.warm_up()
    cloud = Cloud(state, settings=settings, backend=backend, faults=faults)
    cloud.restore_backend()
    app = create_app(cloud, faults)
    project = cloud.default_project()
    host, port = args.listen

    async def tick():
        while True:
            await asyncio.sleep(0.1)
            with contextlib.suppress(Exception):
                cloud.advance()

    @app.on_event("startup")
    async def started():
        app.state.ticker = asyncio.create_task(tick())
        write_env(state, host, port, project["_tokens"][0]["token"],
                  next((t["token"] for t in project["_tokens"] if t.get("readonly")), ""))
        (state / "serve.pid").write_text(str(os.getpid()))

    # Clients keep connections alive and poll actions every few seconds (hcloud-python backs off to
    # 5 s): with uvicorn's default 5 s keep-alive the server closes a connection exactly when the
    # client reuses it, and the client sees "connection reset". Keep idle connections like a proxy would.
    config = uvicorn.Config(app, host=host, port=port, log_level=args.log_level, access_log=False,
                            lifespan="on", timeout_keep_alive=75)
    server = uvicorn.Server(config)
    try:
        server.run()
    finally:
        backend.close()
        cloud.store.close()
        with contextlib.suppress(FileNotFoundError):
            (state / "serve.pid").unlink()
    return 0


def down(args) -> int:
    state = Path(args.state).resolve()
    pid_file = state / "serve.pid"
    if pid_file.exists():
        pid = int(pid_file.read_text().strip() or 0)
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
                for _ in range(100):
                    time.sleep(0.1)
                    os.kill(pid, 0)
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()
    if (state / "machines").exists():
        make_backend("nspawn")            # root check with a clear message
        from .backends.nspawn import NspawnBackend
        try:
            NspawnBackend.cleanup(state)
        except RuntimeError as err:
            sys.exit(f"localcloud: {err}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="localcloud", description="A local Hetzner Cloud API (and machines).")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve", help="serve the API")
    run.add_argument("--listen", type=_listen, default=("127.0.0.1", 8080), metavar="HOST:PORT")
    run.add_argument("--state", required=True, metavar="DIR", help="state directory (SQLite, env file)")
    run.add_argument("--machines", choices=("none", "nspawn"), default="none",
                     help="what stands behind a server: nothing (API only) or a systemd-nspawn machine (root)")
    run.add_argument("--action-time", type=float, default=0.5, metavar="SECONDS",
                     help="how long every action runs (default 0.5)")
    run.add_argument("--action-times", type=_action_times, default=None, metavar="CMD=S,...",
                     help="per-command action times, e.g. create_server=10,attach_to_network=2")
    run.add_argument("--rate-limit", type=int, default=3600, metavar="N",
                     help="requests per hour per project (default 3600 as on Hetzner; 0 = unlimited)")
    run.add_argument("--legacy-datacenters", action="store_true",
                     help="serve GET /datacenters and the datacenter of servers and primary IPs, removed from the API "
                          "in 2026 but still read by hetzner.hcloud 5.x (also PUT /_localcloud/config)")
    run.add_argument("--pricing", metavar="FILE",
                     help="answer GET /pricing with this JSON (the object GET /pricing returns) instead of the "
                          "catalogue's prices; also PUT /_localcloud/pricing while running, see docs/localcloud.md")
    run.add_argument("--faults", metavar="FILE", help="fault injection settings (JSON), see docs/localcloud.md")
    run.add_argument("--lock-wait", type=float, metavar="SECONDS",
                     default=float(os.environ.get("LOCALCLOUD_LOCK_WAIT") or 0),
                     help="with --machines nspawn: wait this long for another local cloud with machines on this "
                          "host to stop, instead of exiting at once (default $LOCALCLOUD_LOCK_WAIT or 0)")
    run.add_argument("--slot", type=_slot, metavar="N|auto", default=_slot(os.environ.get("LOCALCLOUD_SLOT") or "0"),
                     help="with --machines nspawn: which of the host's slots for local clouds with machines to use "
                          "(0-7, own bridge, names and public /18 each), or auto: the first free one "
                          "(default $LOCALCLOUD_SLOT or 0; a state dir keeps the slot it was made in)")
    run.add_argument("--log-level", default="warning")
    stop = sub.add_parser("down", help="stop serve and remove every machine and network it made")
    stop.add_argument("--state", required=True, metavar="DIR")
    args = parser.parse_args(argv)
    return serve(args) if args.command == "serve" else down(args)


if __name__ == "__main__":
    sys.exit(main())
