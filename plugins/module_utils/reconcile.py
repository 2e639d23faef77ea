# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Plans and their execution: the data structures shared by every resource type.

Planning is pure: ``plan_<kind>(desired, actual, ctx)`` (see planners.py) reads only its
arguments and returns a :class:`Plan`.  Executing a plan is separate: :func:`start_phase`
issues the requests of one phase and returns the started actions *without waiting*, so a
caller that converges many resources (the stack module) can start phase N of every plan and
wait for all their actions in one batched poll.  :func:`run_plan` does that for one plan.
"""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

from .api import HetznerError, RESOURCE_PATHS, actions_of


class Ref:
    """A reference to a resource by name whose id is only known at execution time
    (because it is created in the same run)."""

    __slots__ = ("kind", "name")

    def __init__(self, kind: str, name: str):
        self.kind = kind
        self.name = name

    def __eq__(self, other):
        return isinstance(other, Ref) and (self.kind, self.name) == (other.kind, other.name)

    def __hash__(self):
        return hash((self.kind, self.name))

    def __repr__(self):
        return "<%s:%s>" % (self.kind, self.name)


def jsonable(value: Any) -> Any:
    """Replace Refs by their printable form (for check mode output and diffs)."""
    if isinstance(value, Ref):
        return repr(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


class Step:
    """One request: create, update (one PUT with all changed fields), action, or delete.

    ``target`` is the id of an existing resource or a Ref for one created in this run.
    """

    __slots__ = ("op", "kind", "target", "command", "body")

    def __init__(self, op: str, kind: str, target, command: str | None = None, body: dict | None = None):
        if op not in ("create", "update", "action", "delete"):
            raise ValueError("unknown step op %r" % op)
        self.op = op
        self.kind = kind
        self.target = target
        self.command = command
        self.body = body

    def to_dict(self) -> dict:
        result = {"op": self.op, "kind": self.kind, "target": jsonable(self.target), "command": self.command}
        if self.body is not None:
            result["body"] = jsonable(self.body)
        return result

    def __repr__(self):
        return "Step(%r)" % self.to_dict()


class Plan:
    """What it takes to get one resource from its actual to its desired state.

    phases: list of lists of Steps. Steps of one phase may run concurrently; a phase starts
            only when every action of the previous phase has finished (actions lock their
            resource, so two actions on the same resource are never in one phase).
    diff:   {"before": normalised actual or {}, "after": normalised desired or {}}
    after:  the planned object in normalised form (None for a deletion)
    errors: validation failures; a plan with errors must not be executed
    warnings: advice that does not block (e.g. SSH open to the world)
    """

    def __init__(self, kind: str, name: str, actual_id: int | None = None):
        self.kind = kind
        self.name = name
        self.actual_id = actual_id
        self.operation = "none"  # create | update | delete | none
        self.phases: list[list[Step]] = []
        self.before: dict | None = None
        self.after: dict | None = None
        self.errors: list[str] = []
        self.warnings: list[str] = []

    @property
    def target(self):
        return self.actual_id if self.actual_id is not None else Ref(self.kind, self.name)

    @property
    def changed(self) -> bool:
        return any(self.phases)

    @property
    def diff(self) -> dict:
        return {"before": jsonable(self.before or {}), "after": jsonable(self.after or {})}

    def add(self, *steps: Step, same_phase: bool = False) -> None:
        """Append steps; each call opens a new phase unless same_phase is set."""
        steps = [s for s in steps if s is not None]
        if not steps:
            return
        if same_phase and self.phases:
            self.phases[-1].extend(steps)
        else:
            self.phases.append(list(steps))

    def steps(self) -> list[Step]:
        return [step for phase in self.phases for step in phase]

    def to_dict(self) -> dict:
        return {"kind": self.kind, "name": self.name, "operation": self.operation,
                "phases": [[s.to_dict() for s in phase] for phase in self.phases],
                "errors": list(self.errors), "warnings": list(self.warnings)}


# Small read-only kinds that are listed whole when one of them is needed.
CATALOGUE_KINDS = {"location", "server_type", "load_balancer_type"}


class Context:
    """What the planners read: existing objects by kind, plus names that will exist because they
    are created in the same run (``pending``).

    Without a ``loader`` the context is pure data, gathered before planning (the stack lists every
    kind once). With a ``loader`` (the per-resource modules) a lookup that misses reads just that
    object (by name or id) and keeps it, so a module reads its own resource and the ones it
    references, whatever else the project holds; ``all(kind)`` lists a kind the first time it is
    needed. Safe to share between threads (the stack records created objects from a pool).
    """

    BULK_AFTER = 3  # by-id misses of one kind after which the whole kind is listed instead

    def __init__(self, objects: dict[str, list[dict]] | None = None, pending: set | None = None, loader=None):
        self._lock = threading.RLock()
        self.objects: dict[str, list[dict]] = {k: list(v) for k, v in (objects or {}).items()}
        self.pending: set = set(pending or ())  # {(kind, name)}
        self.loader = loader
        self._complete = set(self.objects)  # kinds listed in full: a miss there is final
        self._missed: set = set()           # (kind, key) the loader did not find
        self._id_misses: dict[str, int] = {}

    # -- writing (copy on write: readers iterate a list that is never changed) ------------------
    def add(self, kind: str, obj: dict) -> None:
        with self._lock:
            items = [o for o in self.objects.get(kind, []) if o.get("id") != obj.get("id")]
            items.append(obj)
            self.objects[kind] = items

    def set_all(self, kind: str, objs: list[dict]) -> None:
        """The complete list of a kind (objects of it added before and not listed are kept)."""
        with self._lock:
            listed = {o.get("id") for o in objs}
            self.objects[kind] = list(objs) + [o for o in self.objects.get(kind, []) if o.get("id") not in listed]
            self._complete.add(kind)

    def forget(self, kind: str) -> None:
        """Drop what is known of a kind (it changed): the loader reads it again when needed."""
        with self._lock:
            self.objects.pop(kind, None)
            self._complete.discard(kind)
            self._missed = {m for m in self._missed if m[0] != kind}

    # -- reading ---------------------------------------------------------------------------
    def _lazy(self, kind: str) -> bool:
        return self.loader is not None and kind not in self._complete

    def all(self, kind: str) -> list[dict]:
        if self._lazy(kind):
            with self._lock:
                if self._lazy(kind):
                    self.set_all(kind, self.loader.list(kind))
        return self.objects.get(kind, [])

    def _scan(self, kind: str, key: str, value) -> dict | None:
        for obj in self.objects.get(kind, []):
            if obj.get(key) == value:
                return obj
        return None

    def _load(self, kind: str, key: str, value, fetch) -> dict | None:
        """Read one object through the loader, once (a miss is remembered too)."""
        with self._lock:
            obj = self._scan(kind, key, value)
            if obj is None and (kind, key, value) not in self._missed:
                obj = fetch(kind, value)
                if obj is None:
                    self._missed.add((kind, key, value))
                else:
                    self.add(kind, obj)
            return obj

    def by_name(self, kind: str, name) -> dict | None:
        obj = self._scan(kind, "name", name)
        if obj is None and self._lazy(kind) and name is not None:
            if kind in CATALOGUE_KINDS:  # a few objects, and a miss is reported with the full list
                self.all(kind)
                return self._scan(kind, "name", name)
            obj = self._load(kind, "name", name, self.loader.by_name)
        return obj

    def by_id(self, kind: str, ident) -> dict | None:
        obj = self._scan(kind, "id", ident)
        if obj is None and self._lazy(kind) and isinstance(ident, int):
            with self._lock:
                self._id_misses[kind] = self._id_misses.get(kind, 0) + 1
                many = self._id_misses[kind] > self.BULK_AFTER
            if many:  # many objects of this kind are referenced: one list is cheaper
                self.all(kind)
                return self._scan(kind, "id", ident)
            obj = self._load(kind, "id", ident, self.loader.by_id)
        return obj

    def images(self, name) -> list[dict]:
        """Images matching a name, an id or a snapshot description."""
        if self.loader is not None and name is not None and ("image", "query", str(name)) not in self._missed:
            with self._lock:
                for obj in self.loader.images(name):
                    self.add("image", obj)
                self._missed.add(("image", "query", str(name)))  # asked once: do not ask again
        return [i for i in self.objects.get("image", []) if i.get("name") == name or str(i.get("id")) == str(name)
                or (i.get("description") == name and i.get("type") == "snapshot")]

    def lookup(self, kind: str, value) -> dict | None:
        """By name, else by id when the value is an int or a numeric string."""
        if value is None:
            return None
        obj = self.by_name(kind, value) if isinstance(value, str) else None
        if obj is None and (isinstance(value, int) or (isinstance(value, str) and value.isdigit())):
            obj = self.by_id(kind, int(value))
        return obj

    def name_of(self, kind: str, ident) -> Any:
        """Name for an id (falls back to the id itself when the object is unknown)."""
        if isinstance(ident, dict):
            ident = ident.get("id")
        obj = self.by_id(kind, ident)
        return obj.get("name") if obj and obj.get("name") else ident

    def canonical_name(self, kind: str, value) -> Any:
        """What the user wrote (name or id) -> the name used in normalised forms."""
        obj = self.lookup(kind, value)
        if obj is not None and obj.get("name"):
            return obj["name"]
        return value

    def reference(self, kind: str, value, option: str, errors: list[str]):
        """Resolve a reference for a request body: the id of an existing object, a Ref for a
        pending one, else None with an error naming the option."""
        obj = self.lookup(kind, value)
        if obj is not None:
            return obj["id"]
        if (kind, value) in self.pending:
            return Ref(kind, value)
        errors.append("%s: %s %r does not exist; create it first or fix the name" % (option, kind, value))
        return None


class ApiLoader:
    """What a Context with a loader reads: one object by name or id, a whole kind, images by name."""

    def __init__(self, api):
        self.api = api

    def list(self, kind: str) -> list[dict]:
        return self.api.list(kind)

    def by_name(self, kind: str, name) -> dict | None:
        found = self.api.list(kind, name=name)
        return found[0] if found else None

    def by_id(self, kind: str, ident: int) -> dict | None:
        return self.api.get(kind, ident)

    def images(self, name) -> list[dict]:
        if str(name).isdigit():
            obj = self.api.get("image", int(name))
            return [obj] if obj else []
        return self.api.list("image", name=name, include_deprecated="true")


# Objects an API object embeds whole: enough to plan an unchanged resource without reading them.
EMBEDDED = {
    "server": (("server_type", "server_type"), ("location", "location"), ("image", "image"),
               ("placement_group", "placement_group")),
    "volume": (("location", "location"),),
    "load_balancer": (("location", "location"), ("load_balancer_type", "load_balancer_type")),
    "floating_ip": (("location", "home_location"),),
}


def harvest(ctx: Context, kind: str, obj: dict) -> None:
    """Add the catalogue objects ``obj`` embeds (server type, location, image, ...) to ``ctx``."""
    for embedded_kind, key in EMBEDDED.get(kind, ()):
        value = obj.get(key)
        if key == "location" and not value:
            value = (obj.get("datacenter") or {}).get("location")
        if isinstance(value, dict) and value.get("id") is not None and ctx._scan(embedded_kind, "id", value["id"]) is None:
            ctx.add(embedded_kind, value)


class Resolver:
    """Execution-time id lookup. Knows the objects created during the run."""

    def __init__(self, api, ctx: Context | None = None):
        self.api = api
        self.ctx = ctx or Context()

    def record(self, kind: str, obj: dict) -> None:
        self.ctx.add(kind, obj)

    def id_of(self, ref) -> int:
        if not isinstance(ref, Ref):
            return ref
        obj = self.ctx.by_name(ref.kind, ref.name)
        if obj is None:
            obj = self.api.find(ref.kind, ref.name)
            if obj is not None:
                self.record(ref.kind, obj)
        if obj is None:
            raise HetznerError("%s %r does not exist (it should have been created earlier in this run)"
                               % (ref.kind, ref.name))
        return obj["id"]

    def resolve(self, value):
        if isinstance(value, Ref):
            return self.id_of(value)
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value


# Answers to a retried request whose first attempt was applied but whose answer was lost (a 502 or
# 503 after the fact, a reset connection): the wanted state is there already.
ALREADY_DONE = {"server_already_attached", "firewall_already_applied", "target_already_defined",
                "volume_already_attached", "load_balancer_already_attached", "source_port_already_used",
                "server_already_added"}
# Request body keys that name another resource (its id, {"id": id} or a list of those).
BODY_REFERENCES = {"server": "server", "servers": "server", "network": "network", "networks": "network",
                   "firewall": "firewall", "firewalls": "firewall", "volume": "volume",
                   "load_balancer": "load_balancer", "floating_ip": "floating_ip"}


def referenced_resources(value, kind=None) -> set:
    """(kind, id) of every resource a resolved request body names."""
    found = set()
    if kind is not None:
        if isinstance(value, int) and not isinstance(value, bool):
            found.add((kind, value))
        elif isinstance(value, dict) and isinstance(value.get("id"), int):
            found.add((kind, value["id"]))
    if isinstance(value, dict):
        for key, item in value.items():
            found |= referenced_resources(item, BODY_REFERENCES.get(key))
    elif isinstance(value, list):
        for item in value:
            found |= referenced_resources(item, kind)
    return found


def _send(api, step: Step, body, ident, resolver: Resolver) -> list[dict]:
    if step.op == "create":
        data = api.create(step.kind, body)
        obj = data.get(step.kind)
        if obj is not None:
            resolver.record(step.kind, obj)
        return actions_of(data)
    if step.op == "update":
        data = api.update(step.kind, ident, body)
        if data.get(step.kind):
            resolver.record(step.kind, data[step.kind])
        return []
    if step.op == "delete":
        data = api.delete(step.kind, ident)
        return actions_of(data or {})
    return api.action(step.kind, ident, step.command, body)


def execute_step(api, step: Step, resolver: Resolver, adopt=None, lock_wait: float = 600.0) -> list[dict]:
    """Issue one request; returns the actions it started (not waited for).

    * ``locked``: an action is still running on the resource (left by a killed run, or another
      client's): wait for the running actions of every resource the request names, then send it again
      (for up to ``lock_wait`` seconds).
    * Answers that mean "already done" after a retried request whose first answer was lost: a delete
      answered ``not_found``, an attach/apply/add answered ``*_already_*``.
    * ``uniqueness_error`` on a create: ``adopt(step)`` may return the existing object to take over
      (the stack does when the object carries its labels); its running actions are waited for.
    """
    body = resolver.resolve(step.body) if step.body is not None else None
    ident = resolver.id_of(step.target) if step.op != "create" else None
    deadline = time.monotonic() + lock_wait
    pause = 0.5
    while True:
        try:
            return _send(api, step, body, ident, resolver)
        except HetznerError as exc:
            if exc.code == "locked" and time.monotonic() < deadline:
                resources = referenced_resources(body or {})
                if ident is not None:
                    resources.add((step.kind, ident))
                running = [a for kind, rid in sorted(resources) for a in api.running_actions(kind, rid)]
                if running:
                    api.wait(running, timeout=max(1.0, deadline - time.monotonic()), raise_on_error=False)
                else:  # the lock went away in between, or its action is not listed yet
                    time.sleep(pause)
                    pause = min(pause * 2, 5.0)
                continue
            if step.op == "delete" and exc.code == "not_found":
                return []
            if step.op == "action" and exc.code in ALREADY_DONE:
                return []
            if step.op == "create" and exc.code == "uniqueness_error" and adopt is not None:
                obj = adopt(step)
                if obj is not None:
                    resolver.record(step.kind, obj)
                    return api.running_actions(step.kind, obj["id"])
            raise


def start_phase(api, plan: Plan, index: int, resolver: Resolver) -> list[dict]:
    """Start every step of phase ``index`` of ``plan``; return the running actions."""
    if plan.errors:
        raise HetznerError("refusing to execute a plan with errors: " + "; ".join(plan.errors))
    actions: list[dict] = []
    for step in plan.phases[index]:
        actions.extend(execute_step(api, step, resolver))
    return actions


def run_plan(api, plan: Plan, resolver: Resolver, timeout: float = 900.0) -> dict | None:
    """Execute a whole plan (phase by phase, waiting for each phase's actions together)
    and return the resulting API object (None after a deletion)."""
    for index in range(len(plan.phases)):
        actions = start_phase(api, plan, index, resolver)
        if actions:
            api.wait(actions, timeout=timeout)
    return fetch_result(api, plan, resolver)


def fetch_result(api, plan: Plan, resolver: Resolver) -> dict | None:
    if plan.operation == "delete":
        return None
    try:
        ident = resolver.id_of(plan.target)
    except HetznerError:
        return None
    obj = api.get(plan.kind, ident)
    if obj is not None:
        resolver.record(plan.kind, obj)
    return obj


# Keys whose dict value is a whole (user-defined map), replaced rather than merged.
REPLACED_KEYS = frozenset(("labels",))


def deep_merge(base, overlay):
    """Overlay specified (non-None) values onto base; dicts merge recursively (except maps named in
    REPLACED_KEYS, such as labels, which the user gives completely), lists replace."""
    if not isinstance(base, dict) or not isinstance(overlay, dict):
        return copy.deepcopy(overlay) if overlay is not None else copy.deepcopy(base)
    result = copy.deepcopy(base)
    for key, value in overlay.items():
        if value is None:
            continue
        if isinstance(value, dict) and isinstance(result.get(key), dict) and key not in REPLACED_KEYS:
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def changed_keys(before: dict, after: dict) -> list[str]:
    return [k for k in after if before.get(k) != after.get(k)]


def collection_path(kind: str) -> str:
    return RESOURCE_PATHS[kind]
