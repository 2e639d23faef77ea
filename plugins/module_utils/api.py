# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Client factory, error mapping and batched action waiting.

Everything here speaks plain JSON dicts: the reconcile layer compares API objects as the API
returns them, so there is no model class in between that could hide or rename a field.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .credentials import MISSING_TOKEN

try:
    from hcloud import Client, HCloudException
    HAS_HCLOUD = True
    HCLOUD_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - exercised only without the library
    Client = None
    HCloudException = Exception
    HAS_HCLOUD = False
    HCLOUD_IMPORT_ERROR = exc

try:  # hcloud-python is built on requests
    from requests.exceptions import ConnectionError as ConnectionError_
    HAS_REQUESTS = True
except ImportError:  # pragma: no cover - exercised only without the library
    ConnectionError_ = None
    HAS_REQUESTS = False

DEFAULT_ENDPOINT = "https://api.hetzner.cloud/v1"
USER_AGENT_NAME = "autoscale.hetzner"
USER_AGENT_VERSION = "0.1.0"

# kind (singular, as used in module names) -> collection path of the API
RESOURCE_PATHS = {
    "ssh_key": "ssh_keys",
    "network": "networks",
    "firewall": "firewalls",
    "server": "servers",
    "volume": "volumes",
    "floating_ip": "floating_ips",
    "placement_group": "placement_groups",
    "load_balancer": "load_balancers",
    "server_type": "server_types",
    "location": "locations",
    "image": "images",
    "load_balancer_type": "load_balancer_types",
    "primary_ip": "primary_ips",
}

# Kinds whose resources have actions (GET /<kinds>/{id}/actions).
KINDS_WITH_ACTIONS = {"server", "network", "firewall", "volume", "load_balancer", "floating_ip", "primary_ip"}
PER_PAGE = 50


class HetznerError(Exception):
    """An API or action failure, reduced to what a user needs to fix it."""

    def __init__(self, message: str, code: str | None = None, details: Any = None,
                 field: str | None = None, action: dict | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details
        self.field = field
        self.action = action

    def failure(self) -> dict:
        """The `failure` key modules return: code, message, details, field, action."""
        return {"code": self.code, "message": self.message, "details": self.details,
                "field": self.field, "action": self.action}


# API request field -> module option, where they differ. Used to name the option to fix.
FIELD_TO_OPTION = {
    "ssh_keys": "ssh_keys",
    "public_net": "enable_ipv4/enable_ipv6",
    "home_location": "home_location",
    "load_balancer_type": "load_balancer_type",
}

HINTS = {
    "uniqueness_error": "a resource with this value already exists; choose another name or adopt the existing one",
    "protected": "the resource is protected; set delete_protection/rebuild_protection to false first",
    "locked": "another action is running on the resource; retry when it has finished",
    "resource_limit_exceeded": "the project quota is exhausted; delete resources or ask Hetzner for a higher limit",
    "unauthorized": "check api_token (or HCLOUD_TOKEN) and api_endpoint (or HCLOUD_ENDPOINT)",
    "token_readonly": "the token is read-only; create a Read & Write token",
    "resource_unavailable": "the requested product is not orderable right now; pick another server type or location",
    "ip_not_available": "the fixed private IP is taken; choose a free one or omit ip",
    "no_subnet_available": "the network has no subnet in the server's network zone; add one with network.subnets",
    "server_not_stopped": "the server must be stopped first",
    "resource_in_use": "detach the resource first (e.g. remove the firewall from its servers)",
    "must_be_unassigned": "unassign the IP first",
    "firewall_managed_by_label_selector": "the server is matched by a label selector of this firewall; change its labels instead",
    "private_net_only_server": "Cloud Firewalls only filter public interfaces; this server has none",
}


def describe_api_error(exc: BaseException, doing: str | None = None) -> HetznerError:
    """Map an hcloud APIException (or any exception) to a HetznerError with a clear message.

    The message names the failing field(s) from `details.fields` and adds a hint for the code.
    """
    if isinstance(exc, HetznerError):
        return exc
    code = getattr(exc, "code", None)
    message = getattr(exc, "message", None) or str(exc)
    details = getattr(exc, "details", None)
    fields = []
    if isinstance(details, dict):
        for field in details.get("fields") or []:
            if isinstance(field, dict) and field.get("name"):
                name = field["name"]
                option = FIELD_TO_OPTION.get(name.split(".")[0].split("[")[0], name)
                msgs = "; ".join(field.get("messages") or [])
                fields.append((option, msgs))
    parts = []
    if doing:
        parts.append("%s failed:" % doing)
    parts.append(message)
    if code is not None:
        parts.append("(%s)" % code)
    for option, msgs in fields:
        parts.append("- field '%s'%s" % (option, (": " + msgs) if msgs else ""))
    hint = HINTS.get(str(code))
    if hint:
        parts.append("- fix: " + hint)
    return HetznerError(" ".join(parts), code=str(code) if code is not None else None, details=details,
                        field=fields[0][0] if fields else None)


def build_client(token: str, endpoint: str | None = None, timeout: float = 30.0,
                 application_name: str = USER_AGENT_NAME, application_version: str = USER_AGENT_VERSION):
    """The one client factory. Raises HetznerError if hcloud is missing or the token is empty."""
    if not HAS_HCLOUD:
        raise HetznerError("the Python library 'hcloud' is required on the controller: "
                           "pip install hcloud (import error: %s)" % HCLOUD_IMPORT_ERROR)
    if not token:
        raise HetznerError(MISSING_TOKEN, field="api_token")
    return Client(token=token, api_endpoint=(endpoint or DEFAULT_ENDPOINT).rstrip("/"),
                  application_name=application_name, application_version=application_version,
                  timeout=timeout)


# Answers worth another try. hcloud-python's Client.request already retries rate_limit_exceeded (429),
# conflict (409), bad_gateway (502) and timeout (504) itself, with exponential backoff; 503 and refused or
# reset connections it gives up on at once. A retried write whose first answer was lost is recognised by
# the callers (uniqueness_error after a create, not_found after a delete, *_already_* after an action).
RETRIED_CODES = {"unavailable", 503, "503"}


def is_retryable(exc: BaseException) -> bool:
    if HAS_HCLOUD and isinstance(exc, HCloudException) and getattr(exc, "code", None) in RETRIED_CODES:
        return True
    return HAS_REQUESTS and isinstance(exc, ConnectionError_)


class Transport:
    """The one way requests reach the API: one hcloud Client per thread (a requests.Session must not be
    shared between threads), retries of what hcloud-python does not retry, and a request counter.

    ``factory()`` builds a client; anything with ``request(method, path, **kwargs) -> dict`` will do.
    ``requests`` counts the requests sent through it, retries included (hcloud-python's own retries of
    429/409/502/504 happen inside one call and are not seen here).
    """

    def __init__(self, factory, retries: int = 5, backoff: float = 0.5, backoff_cap: float = 8.0):
        self._factory = factory
        self._local = threading.local()
        self._lock = threading.Lock()
        self.retries = retries
        self.backoff = backoff
        self.backoff_cap = backoff_cap
        self.requests = 0

    def client(self):
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._factory()
        return client

    def request(self, method: str, path: str, **kwargs) -> dict:
        attempt = 0
        while True:
            with self._lock:
                self.requests += 1
            try:
                return self.client().request(method, path, **kwargs) or {}
            except Exception as exc:  # pylint: disable=broad-except
                if attempt >= self.retries or not is_retryable(exc):
                    raise
            delay = min(self.backoff_cap, self.backoff * (2 ** attempt))
            time.sleep(delay / 2 + random.uniform(0, delay / 2))
            attempt += 1


def make_transport(token: str, endpoint: str | None = None, **kwargs) -> Transport:
    """A Transport whose per-thread clients come from :func:`build_client` (checked once, here)."""
    build_client(token, endpoint, **kwargs)  # fail early, in the caller's thread, on a missing library/token
    return Transport(lambda: build_client(token, endpoint, **kwargs))


class HetznerApi:
    """Thin JSON layer over a :class:`Transport` (or any object with ``request()``).

    All methods return plain dicts. Errors are raised as HetznerError.
    """

    def __init__(self, client, poll_interval: float = 0.5, poll_max_interval: float = 3.0, parallel: int = 8):
        self.transport = client if isinstance(client, Transport) else Transport(lambda: client)
        self.poll_interval = poll_interval
        self.poll_max_interval = poll_max_interval
        self.parallel = max(1, parallel)

    @property
    def requests(self) -> int:
        """Requests sent so far (retries included)."""
        return self.transport.requests

    # -- raw ------------------------------------------------------------------
    def request(self, method: str, path: str, params: dict | None = None, body: dict | None = None,
                doing: str | None = None) -> dict:
        kwargs: dict[str, Any] = {}
        if params:
            kwargs["params"] = params
        if body is not None:
            kwargs["json"] = body
        try:
            return self.transport.request(method, path, **kwargs) or {}
        except Exception as exc:  # hcloud errors, and connection errors from requests
            if isinstance(exc, HetznerError):
                raise
            if isinstance(exc, HCloudException) and HAS_HCLOUD:
                raise describe_api_error(exc, doing or "%s %s" % (method, path)) from exc
            raise HetznerError("%s %s failed: %s" % (doing or method, path, exc)) from exc

    # -- reading --------------------------------------------------------------
    def list_path(self, path: str, root: str, params: dict | None = None) -> list[dict]:
        """Every item of a collection: page 1, then all other pages at once when page 1 tells how many
        there are (else one after the other, following next_page)."""
        params = {k: v for k, v in (params or {}).items() if v is not None}

        def page(number):
            data = self.request("GET", path, params=dict(params, page=number, per_page=PER_PAGE))
            return data.get(root) or [], (data.get("meta") or {}).get("pagination") or {}

        items, pagination = page(1)
        last_page = pagination.get("last_page")
        if last_page and last_page > 1:
            numbers = range(2, last_page + 1)
            if self.parallel > 1:
                with ThreadPoolExecutor(max_workers=min(self.parallel, len(numbers))) as pool:
                    pages = list(pool.map(lambda n: page(n)[0], numbers))
            else:
                pages = [page(n)[0] for n in numbers]
            for page_items in pages:
                items.extend(page_items)
            return items
        next_page = pagination.get("next_page")
        while next_page:
            page_items, pagination = page(next_page)
            items.extend(page_items)
            next_page = pagination.get("next_page")
        return items

    def list(self, kind: str, **filters) -> list[dict]:
        """All objects of a kind, following pagination. Filters are query parameters."""
        return self.list_path("/" + RESOURCE_PATHS[kind], RESOURCE_PATHS[kind], filters)

    def get(self, kind: str, ident: int) -> dict | None:
        """One object by id, None when it does not exist."""
        try:
            data = self.request("GET", "/%s/%s" % (RESOURCE_PATHS[kind], ident))
        except HetznerError as exc:
            if exc.code == "not_found":
                return None
            raise
        return data.get(kind)

    def find(self, kind: str, name: str | None = None, ident: int | None = None) -> dict | None:
        """Look up by id (if given) else by exact name; a numeric name is tried as id as well."""
        if ident is not None:
            return self.get(kind, ident)
        if name is None:
            return None
        found = self.list(kind, name=name)
        if found:
            return found[0]
        if str(name).isdigit():
            return self.get(kind, int(name))
        return None

    def running_actions(self, kind: str, ident: int) -> list[dict]:
        """The actions still running on one resource (e.g. left by a run that was killed)."""
        if kind not in KINDS_WITH_ACTIONS or not isinstance(ident, int):
            return []
        data = self.request("GET", "/%s/%s/actions" % (RESOURCE_PATHS[kind], ident), params={"status": "running"})
        return [a for a in data.get("actions") or [] if a.get("status") == "running"]

    # -- writing --------------------------------------------------------------
    def create(self, kind: str, body: dict) -> dict:
        return self.request("POST", "/" + RESOURCE_PATHS[kind], body=body,
                            doing="creating %s %r" % (kind, body.get("name")))

    def update(self, kind: str, ident: int, body: dict) -> dict:
        return self.request("PUT", "/%s/%s" % (RESOURCE_PATHS[kind], ident), body=body,
                            doing="updating %s %s" % (kind, ident))

    def delete(self, kind: str, ident: int) -> dict:
        return self.request("DELETE", "/%s/%s" % (RESOURCE_PATHS[kind], ident),
                            doing="deleting %s %s" % (kind, ident))

    def action(self, kind: str, ident: int, command: str, body: dict | None = None) -> list[dict]:
        """POST /<kind>/{id}/actions/<command>; returns the started actions (0..n)."""
        data = self.request("POST", "/%s/%s/actions/%s" % (RESOURCE_PATHS[kind], ident, command), body=body,
                            doing="%s on %s %s" % (command, kind, ident))
        return actions_of(data)

    # -- waiting --------------------------------------------------------------
    def wait(self, actions: list[dict], timeout: float = 900.0, raise_on_error: bool = True) -> list[dict]:
        """Wait for many actions together, polling `GET /actions?id=..&id=..` in chunks of 25.

        Raises HetznerError naming the first failed action (command, resources, error), unless
        ``raise_on_error`` is false (then the finished actions are returned, failed ones included).
        """
        pending = {a["id"]: a for a in actions if a and a.get("status") == "running"}
        done = {a["id"]: a for a in actions if a and a.get("status") != "running"}
        interval = self.poll_interval
        deadline = time.monotonic() + timeout
        while pending:
            time.sleep(interval)
            ids = list(pending)
            before = len(pending)
            for start in range(0, len(ids), 25):
                chunk = ids[start:start + 25]
                data = self.request("GET", "/actions", params={"id": chunk}, doing="polling actions")
                for action in data.get("actions") or []:
                    if action.get("status") != "running":
                        pending.pop(action["id"], None)
                        done[action["id"]] = action
            if pending and time.monotonic() > deadline:
                raise HetznerError("timed out after %ss waiting for actions %s"
                                   % (timeout, ", ".join(describe_action(a) for a in pending.values())))
            # Polls grow apart while nothing finishes; when something did, what is left is often its
            # successor (start_server after create_server, a quick action): look again soon.
            interval = self.poll_interval if len(pending) < before else min(interval * 1.5, self.poll_max_interval)
        for action in done.values():
            if raise_on_error and action.get("status") == "error":
                error = action.get("error") or {}
                raise HetznerError("action %s failed: %s (%s)" % (describe_action(action), error.get("message"),
                                                                  error.get("code")),
                                   code=error.get("code"), action=action)
        return [done[a["id"]] for a in actions if a and a.get("id") in done]


def actions_of(data: dict) -> list[dict]:
    """Every action in a response: `action`, `actions` and `next_actions`."""
    result = []
    if data.get("action"):
        result.append(data["action"])
    result.extend(data.get("actions") or [])
    result.extend(data.get("next_actions") or [])
    return result


def describe_action(action: dict) -> str:
    resources = ",".join("%s/%s" % (r.get("type"), r.get("id")) for r in action.get("resources") or [])
    return "%s#%s[%s]" % (action.get("command"), action.get("id"), resources)
