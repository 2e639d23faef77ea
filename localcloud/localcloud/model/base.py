"""The cloud: projects and tokens, resource registry, actions and locks, transactions."""
from __future__ import annotations

import logging
import secrets
import time
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .. import errors
from ..backends.base import MachineBackend
from ..config import Settings
from ..labels import parse_selector, selector_matches, validate_labels
from ..listing import paginate, sort_items
from ..store import Store

log = logging.getLogger("localcloud")

EFFECTS: dict[str, callable] = {}
MACHINE_EFFECTS: dict[str, callable] = {}


def effect(name: str):
    """Register what happens to the resources when an action of this kind completes."""
    def register(func):
        EFFECTS[name] = func
        return func
    return register


def machine_effect(name: str):
    """Register what the machine backend does when an action of this kind starts.

    The function ``(cloud, action, args, secret) -> Future | None`` runs after the transaction that
    started the action (or, for a next action, released it) has committed, never inside it: it reads
    the committed state and calls the backend. The action completes when the returned future is done
    and fails with its exception. ``secret`` holds what must not be stored (a root password)."""
    def register(func):
        MACHINE_EFFECTS[name] = func
        return func
    return register


def failed(exc: BaseException) -> Future:
    future: Future = Future()
    future.set_exception(exc)
    return future


OMIT = object()
# declarative data paths: a commit that wrote one of these kinds syncs that resource type's backend
SYNCED_BY = {
    "load_balancers": {"server", "load_balancer", "network", "primary_ip", "certificate"},
    "floating_ips": {"floating_ip", "server", "primary_ip"},
}


@dataclass
class Outcome:
    """What a model call did, for the HTTP handler to put into the response envelope."""
    resource: dict | None = None          # the stored object; the handler renders it under its kind
    model: object = None                  # the resource's model when it is not the called one's
    action: object = OMIT                 # an action, None (answered as null) or OMIT (left out)
    actions: list[dict] | None = None
    next_actions: list[dict] | None = None
    extra: dict = field(default_factory=dict)   # further top-level keys, e.g. root_password


def iso(epoch: float | None = None) -> str:
    moment = datetime.fromtimestamp(time.time() if epoch is None else epoch, tz=timezone.utc)
    return moment.replace(microsecond=0).isoformat()


def public(obj: dict) -> dict:
    """The stored object without its internal (underscore) keys."""
    return {k: v for k, v in obj.items() if not k.startswith("_")}


class Cloud:
    def __init__(self, state_dir: Path, settings: Settings | None = None, backend: MachineBackend | None = None,
                 faults=None):
        from ..catalog import CATALOG
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store(self.state_dir / "cloud.sqlite3")
        self.settings = settings or Settings()
        self.backend = backend or MachineBackend()
        self.faults = faults
        self.catalog = CATALOG
        self.jobs: dict[int, Future] = {}
        self.running: set[int] = {a["id"] for a in self.store.all("action") if a["status"] == "running"}
        self.tokens: dict[str, tuple[int, bool]] = {}
        for project in self.store.all("project"):
            for token in project["_tokens"]:
                self.tokens[token["token"]] = (project["id"], token["readonly"])
        self._after_commit: dict[object, callable] = {}
        self._starting: list[int] = []              # actions whose machine effect runs after the commit
        self._secrets: dict[int, dict] = {}         # per action, kept in memory only
        self._memo: dict | None = None
        from . import resources          # noqa: F401  (registers every resource type)
        self.resources = {cls.plural: cls(self) for cls in resources.RESOURCE_TYPES}
        for model in self.resources.values():
            setattr(self, model.plural, model)

    # --- transactions
    @contextmanager
    def transaction(self):
        """One request's changes: all or nothing. The machine backend is driven only after the commit
        (machine effects of the actions started, then the after_commit hooks), so a rejected
        request never touches a machine and a machine never sees uncommitted state."""
        if self.store.active:               # nested: the outermost transaction commits and drives
            yield
            return
        try:
            with self.store.transaction():
                yield
        except BaseException:
            for aid in [aid for aid in self._secrets if self.store.get("action", aid) is None]:
                del self._secrets[aid]           # of actions the rollback removed
            self._starting.clear()
            self._after_commit.clear()
            raise
        self._drive_backend()

    def _drive_backend(self) -> None:
        while True:
            for plural, kinds in SYNCED_BY.items():
                if self.store.committed_kinds & kinds:
                    self._after_commit.setdefault(plural, self.resources[plural].sync_backend)
            self.store.committed_kinds = set()
            if not (self._starting or self._after_commit):
                return
            starting, self._starting = self._starting, []
            for aid in starting:
                action = self.store.get("action", aid)
                secret = self._secrets.pop(aid, {})
                if action is None or action["status"] != "running":
                    continue
                try:
                    job = MACHINE_EFFECTS[action["_machine"]](self, action, action["_args"], secret)
                except Exception as exc:  # noqa: BLE001 - the action turns into an error, with this message
                    log.warning("action %s (%s): %s", aid, action["command"], exc)
                    job = failed(exc)
                if job is not None:
                    self.jobs[aid] = job
            hooks, self._after_commit = self._after_commit, {}
            for hook in hooks.values():
                try:
                    hook()
                except Exception:  # noqa: BLE001 - a backend failure must not fail the committed request
                    log.exception("after-commit hook failed")

    def restore_backend(self) -> None:
        """After a restart: the backend gets back what the API holds (volumes' storage, every
        server's machine from its kept disk, firewalls)."""
        self.volumes.restore()
        self.servers.restore_machines()
        self.firewalls.sync_backend()
        self.floating_ips.sync_backend()
        self.load_balancers.sync_backend()

    def after_commit(self, key, hook=None) -> None:
        """Run ``hook`` (default: the named sync, e.g. "firewalls") once after the commit."""
        if hook is None:
            hook = self.resources[key].sync_backend
        self._after_commit[key] = hook

    # --- derived indexes, built once per list response (nothing changes while a list renders)
    @contextmanager
    def memo_scope(self):
        outer = self._memo
        if outer is None:
            self._memo = {}
        try:
            yield
        finally:
            if outer is None:
                self._memo = None

    def memo(self, key, build):
        """build() once per memo_scope (e.g. server id -> volume ids for a page of servers); outside
        a scope every call builds afresh, so writes never see a stale index."""
        if self._memo is None:
            return build()
        if key not in self._memo:
            self._memo[key] = build()
        return self._memo[key]

    # --- projects and tokens
    def create_project(self, name: str) -> dict:
        with self.transaction():
            project = {
                "id": self.store.next_id("project", 1),
                "name": name,
                "_tokens": [
                    {"token": secrets.token_hex(32), "readonly": False},
                    {"token": secrets.token_hex(32), "readonly": True},
                ],
                "created": iso(),
            }
            self.store.put("project", project)
        for token in project["_tokens"]:
            self.tokens[token["token"]] = (project["id"], token["readonly"])
        return project

    def default_project(self) -> dict:
        projects = sorted(self.store.all("project"), key=lambda p: p["id"])
        return projects[0] if projects else self.create_project("default")

    def authenticate(self, token: str | None) -> tuple[int, bool]:
        if not token or token not in self.tokens:
            raise errors.unauthorized()
        return self.tokens[token]

    # --- actions
    def start_action(self, project: int, command: str, resources: list[tuple[str, int]], *,
                     effect_name: str | None = None, args: dict | None = None, after: int | None = None,
                     machine: str | None = None, secret: dict | None = None, error_effect: str | None = None,
                     duration: float | None = None) -> dict:
        """An action row. ``machine`` names the machine effect that drives the backend once this
        action starts (after the commit); the action completes when that work is done."""
        now = time.time()
        action = {
            "id": self.store.next_id("action", 10_000_000),
            "command": command,
            "status": "running",
            "progress": 0,
            "started": iso(now),
            "finished": None,
            "resources": [{"id": rid, "type": rtype} for rtype, rid in resources],
            "error": None,
            "_project": project,
            "_duration": self.settings.duration(command) if duration is None else duration,
            "_after": after,
            "_effect": effect_name,
            "_machine": machine,
            "_error_effect": error_effect,
            "_args": args or {},
            "_fail": bool(self.faults and self.faults.should_fail_action(command)),
        }
        action["_due"] = None if after is not None else now + action["_duration"]
        self.store.put("action", action)
        self.running.add(action["id"])
        if machine is not None:
            if secret:
                self._secrets[action["id"]] = secret
            if after is None:
                self._starting.append(action["id"])
        return action

    def action_json(self, action: dict) -> dict:
        return public(action)

    def locked_resources(self) -> set[tuple[str, int]]:
        """(type, id) of every resource locked by a running action: the action's first resource."""
        def build():
            locked = set()
            for aid in self.running:
                action = self.store.get("action", aid)
                first = action["resources"][0] if action["resources"] else None
                if first and action["_effect"] != "nothing":
                    locked.add((first["type"], first["id"]))
            return locked
        return self.memo("locked", build)

    def locked(self, rtype: str, rid: int) -> bool:
        return (rtype, rid) in self.locked_resources()

    def assert_unlocked(self, rtype: str, rid: int, label: str) -> None:
        if self.locked(rtype, rid):
            raise errors.locked(label, rid)

    def advance(self) -> None:
        """Complete every action that is due (and whose machine job is done); apply its effect."""
        if not self.running:
            return
        now = time.time()
        due = []
        for aid in sorted(self.running):
            action = self.store.get("action", aid)
            if action["_due"] is None or now < action["_due"]:
                continue
            job = self.jobs.get(aid)
            if job is not None and not job.done():
                continue
            due.append(action)
        if not due:
            return
        with self.transaction():
            for action in due:
                self._finish(action, now)

    def _finish(self, action: dict, now: float) -> None:
        action = self.store.edit("action", action["id"])
        job = self.jobs.pop(action["id"], None)
        error = None
        if job is not None and job.exception() is not None:
            error = {"code": "action_failed", "message": f"Action failed: {job.exception()}"}
        elif action["_fail"]:
            error = {"code": "action_failed", "message": "Action failed (fault injected by the local cloud)"}
        action.update(status="error" if error else "success", progress=100, finished=iso(now), error=error)
        self.running.discard(action["id"])
        handler = EFFECTS.get(action["_error_effect"] if error else action["_effect"])
        if handler:
            handler(self, action, action["_args"])
        for aid in list(self.running):
            successor = self.store.get("action", aid)
            if successor["_after"] == action["id"]:
                successor = self.store.edit("action", aid)
                successor["_due"] = now + successor["_duration"]
                if error:
                    successor["_fail"] = True
                elif successor.get("_machine"):
                    self._starting.append(aid)

    def actions_for(self, project: int, rtype: str | None = None, rid: int | None = None):
        for action in self.store.all("action"):
            if action["_project"] != project:
                continue
            if rtype is None or any(
                r["type"] == rtype and (rid is None or r["id"] == rid) for r in action["resources"]
            ):
                yield action


class ResourceModel:
    """Rules shared by every labelled, named, project-scoped resource type."""

    kind = ""            # store kind == action resource type, e.g. "server"
    plural = ""          # URL segment and list root key, e.g. "servers"
    label = ""           # human name used in messages, e.g. "Server"
    sort_fields: tuple[str, ...] = ("id", "name", "created")
    extra_filters: tuple[str, ...] = ()
    id_start = 1000
    has_labels = True
    has_actions = True

    def __init__(self, cloud: Cloud):
        self.cloud = cloud
        self.store = cloud.store

    # --- lookup
    def objects(self, project: int):
        return [obj for obj in self.store.all(self.kind) if obj["_project"] == project]

    def get(self, project: int, oid) -> dict:
        try:
            oid = int(oid)
        except (TypeError, ValueError):
            raise errors.not_found(self.label, oid) from None
        obj = self.store.get(self.kind, oid)
        if obj is None or obj["_project"] != project:
            raise errors.not_found(self.label, oid)
        return obj

    def by_name(self, project: int, name: str) -> dict | None:
        for obj in self.store.all(self.kind):
            if obj["_project"] == project and obj.get("name") == name:
                return obj
        return None

    def resolve(self, project: int, ref, field: str) -> dict:
        """A reference given as ID (int or numeric string) or name, from a request body."""
        obj = None
        if isinstance(ref, bool):
            obj = None
        elif isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            obj = self.store.get(self.kind, int(ref))
            obj = obj if obj is not None and obj["_project"] == project else None
        elif isinstance(ref, str):
            obj = self.by_name(project, ref)
        if obj is None:
            raise errors.invalid_input(field, f"{self.label.lower()} '{ref}' does not exist in this project")
        return obj

    def unique_name(self, project: int, name: str, exclude: int | None = None) -> None:
        other = self.by_name(project, name)
        if other is not None and other["id"] != exclude:
            raise errors.uniqueness("name", f"name '{name}' is already used by {self.label.lower()} {other['id']}")

    # --- rendering and listing
    def render(self, obj: dict) -> dict:
        return public(obj)

    def list(self, project: int, query) -> tuple[list[dict], dict]:
        items = self.objects(project)
        name = query.get("name")
        if name is not None:
            items = [obj for obj in items if obj.get("name") == name]
        selector = query.get("label_selector")
        if selector is not None and self.has_labels:
            requirements = parse_selector(selector)
            items = [obj for obj in items if selector_matches(requirements, obj.get("labels", {}))]
        items = self.filter(items, query)
        items = sort_items(items, query.getlist("sort"), self.sort_fields)
        page, meta = paginate(items, query.get("page"), query.get("per_page"))
        with self.cloud.memo_scope():
            return [self.render(obj) for obj in page], meta

    def filter(self, items: list[dict], query) -> list[dict]:
        return items

    # --- common writes
    def new(self, project: int, **fields) -> dict:
        obj = {"id": self.store.next_id(self.kind, self.id_start), "_project": project, "created": iso()}
        obj.update(fields)
        return obj

    def update(self, project: int, oid, body: dict) -> dict:
        obj = self.get(project, oid)
        changes = {}
        if body.get("name") is not None:
            self.validate_name(body["name"])
            self.unique_name(project, body["name"], exclude=obj["id"])
            changes["name"] = body["name"]
        if body.get("labels") is not None:
            changes["labels"] = validate_labels(body["labels"])
        changes.update(self.update_extra(project, obj, body))
        obj = self.store.edit(self.kind, obj["id"])
        obj.update(changes)
        self.after_update(obj, changes)
        return obj

    def update_extra(self, project: int, obj: dict, body: dict) -> dict:
        return {}

    def after_update(self, obj: dict, changes: dict) -> None:
        pass

    def validate_name(self, name) -> None:
        if not isinstance(name, str) or not name.strip():
            raise errors.invalid_input("name", "must be a non-empty string")
        if len(name) > 128:
            raise errors.invalid_input("name", "is too long: at most 128 characters")

    def check_delete_protection(self, obj: dict) -> None:
        if obj.get("protection", {}).get("delete"):
            raise errors.protected(self.label.lower(), obj["id"])

    def change_protection(self, project: int, oid, body: dict) -> dict:
        obj = self.get(project, oid)
        if not isinstance(body.get("delete"), bool):
            raise errors.invalid_input("delete", "must be true or false")
        obj = self.store.edit(self.kind, obj["id"])
        obj["protection"]["delete"] = body["delete"]
        return self.cloud.start_action(project, "change_protection", [(self.kind, obj["id"])], duration=0)
