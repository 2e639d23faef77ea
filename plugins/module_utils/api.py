# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Client factory, error mapping and batched action waiting.

Everything here speaks plain JSON dicts: the reconcile layer compares API objects as the API
returns them, so there is no model class in between that could hide or rename a field.
"""

from __future__ import annotations

import time
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

# Kinds whose list endpoint has no `name` filter in practice is none; floating IPs are named
# optionally, so lookup by name may legitimately find nothing.


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


def build_client(token: str, endpoint: str | None = None, timeout: float = 30.0):
    """The one client factory. Raises HetznerError if hcloud is missing or the token is empty."""
    if not HAS_HCLOUD:
        raise HetznerError("the Python library 'hcloud' is required on the controller: "
                           "pip install hcloud (import error: %s)" % HCLOUD_IMPORT_ERROR)
    if not token:
        raise HetznerError(MISSING_TOKEN, field="api_token")
    return Client(token=token, api_endpoint=(endpoint or DEFAULT_ENDPOINT).rstrip("/"),
                  application_name=USER_AGENT_NAME, application_version=USER_AGENT_VERSION,
                  timeout=timeout)


class HetznerApi:
    """Thin JSON layer over `hcloud.Client.request` (which already retries conflict/429/5xx).

    All methods return plain dicts. Errors are raised as HetznerError.
    """

    def __init__(self, client, poll_interval: float = 0.5, poll_max_interval: float = 3.0):
        self.client = client
        self.poll_interval = poll_interval
        self.poll_max_interval = poll_max_interval

    # -- raw ------------------------------------------------------------------
    def request(self, method: str, path: str, params: dict | None = None, body: dict | None = None,
                doing: str | None = None) -> dict:
        kwargs: dict[str, Any] = {}
        if params:
            kwargs["params"] = params
        if body is not None:
            kwargs["json"] = body
        try:
            return self.client.request(method, path, **kwargs) or {}
        except Exception as exc:  # hcloud errors, and connection errors from requests
            if isinstance(exc, HetznerError):
                raise
            if isinstance(exc, HCloudException) and HAS_HCLOUD:
                raise describe_api_error(exc, doing or "%s %s" % (method, path)) from exc
            raise HetznerError("%s %s failed: %s" % (doing or method, path, exc)) from exc

    # -- reading --------------------------------------------------------------
    def list(self, kind: str, **filters) -> list[dict]:
        """All objects of a kind, following pagination. Filters are query parameters."""
        path = "/" + RESOURCE_PATHS[kind]
        root = RESOURCE_PATHS[kind]
        params = {k: v for k, v in filters.items() if v is not None}
        params["per_page"] = 50
        page = 1
        result: list[dict] = []
        while page:
            params["page"] = page
            data = self.request("GET", path, params=dict(params))
            result.extend(data.get(root) or [])
            pagination = (data.get("meta") or {}).get("pagination") or {}
            page = pagination.get("next_page")
        return result

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
    def wait(self, actions: list[dict], timeout: float = 900.0) -> list[dict]:
        """Wait for many actions together, polling `GET /actions?id=..&id=..` in chunks of 25.

        Raises HetznerError naming the first failed action (command, resources, error).
        """
        pending = {a["id"]: a for a in actions if a and a.get("status") == "running"}
        done = {a["id"]: a for a in actions if a and a.get("status") != "running"}
        interval = self.poll_interval
        deadline = time.monotonic() + timeout
        while pending:
            time.sleep(interval)
            ids = list(pending)
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
            interval = min(interval * 1.5, self.poll_max_interval)
        for action in done.values():
            if action.get("status") == "error":
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
