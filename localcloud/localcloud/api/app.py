"""FastAPI application: auth, rate limit, faults and request counting around thin handlers."""
from __future__ import annotations

import asyncio
import json
import traceback
from collections import Counter

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import errors
from ..faults import Faults
from ..config import check_pricing
from ..listing import paginate, parse_bool, sort_items
from ..model.base import OMIT, Cloud, Outcome
from ..ratelimit import RateLimiter
from .routes import CATALOGUE, RESOURCES, RRSET_ACTIONS
from .schemas import check


def _json(status: int, body, headers=None) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status_code=status,
                    media_type="application/json", headers=headers)


async def read_body(request: Request) -> dict:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise errors.json_error(f"request body is not valid JSON: {err}") from None
    if not isinstance(body, dict):
        raise errors.json_error("request body must be a JSON object")
    return body


class Stats:
    def __init__(self):
        self.total = 0
        self.by_route: Counter = Counter()

    def count(self, method: str, template: str) -> None:
        self.total += 1
        self.by_route[f"{method} {template}"] += 1

    def as_dict(self) -> dict:
        return {"total": self.total, "by_route": dict(self.by_route.most_common())}


def create_app(cloud: Cloud, faults: Faults | None = None) -> FastAPI:
    faults = faults or cloud.faults or Faults()
    cloud.faults = faults
    limiter = RateLimiter(cloud.settings)
    stats = Stats()
    app = FastAPI(title="localcloud", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.cloud, app.state.faults, app.state.stats = cloud, faults, stats

    def endpoint(method: str, template: str, handler, status: int = 200):
        """Wrap a model call with everything every /v1 request goes through."""
        async def run(request: Request):
            stats.count(method, template)
            headers = {}
            fault = faults.decide(method, request.url.path)
            try:
                if fault and fault.delay:
                    await asyncio.sleep(fault.delay)
                if fault and fault.status and fault.phase == "before":
                    raise fault.error()
                auth = request.headers.get("authorization", "")
                project, readonly = cloud.authenticate(auth[7:] if auth.lower().startswith("bearer ") else None)
                allowed, headers = limiter.take(project)
                if not allowed:
                    raise errors.rate_limit_exceeded()
                if readonly and method != "GET":
                    raise errors.token_readonly()
                body = await read_body(request) if method in ("POST", "PUT") else {}
                cloud.advance()
                with cloud.transaction():
                    result = handler(project, request, body)
                if fault and fault.status:
                    raise fault.error()
            except errors.APIError as err:
                return _json(err.status, err.body(), headers)
            if result is None:
                return Response(status_code=204, headers=headers)
            return _json(status, result, headers)
        app.add_api_route(template, run, methods=[method], include_in_schema=False)

    def envelope(model, result):
        """The response body for what a model call returned: an Outcome, an action, a list of
        actions, or a stored object of the model's kind."""
        if result is None:
            return None
        if isinstance(result, Outcome):
            body = {}
            if result.resource is not None:
                owner = result.model or model
                body[owner.kind] = owner.render(result.resource)
            if result.action is not OMIT:
                body["action"] = cloud.action_json(result.action) if result.action is not None else None
            if result.actions is not None:
                body["actions"] = [cloud.action_json(a) for a in result.actions]
            if result.next_actions is not None:
                body["next_actions"] = [cloud.action_json(a) for a in result.next_actions]
            body.update(result.extra)
            return body
        if isinstance(result, list):
            return {"actions": [cloud.action_json(a) for a in result]}
        if "command" in result and "resources" in result:
            return {"action": cloud.action_json(result)}
        return {model.kind: model.render(result)}

    # --- resources
    for plural, (create_schema, update_schema, actions) in RESOURCES.items():
        model = cloud.resources[plural]
        singular = model.kind
        base = f"/v1/{plural}"

        def list_(project, request, body, model=model, plural=plural):
            items, meta = model.list(project, request.query_params)
            return {plural: items, "meta": meta}

        def create(project, request, body, model=model, schema=create_schema):
            return envelope(model, model.create(project, check(schema, body)))

        def get(project, request, body, model=model, singular=singular):
            return {singular: model.render(model.get(project, request.path_params["id"]))}

        def update(project, request, body, model=model, schema=update_schema):
            return envelope(model, model.update(project, request.path_params["id"], check(schema, body)))

        def delete(project, request, body, model=model):
            return envelope(model, model.delete(project, request.path_params["id"]))

        endpoint("GET", base, list_)
        if getattr(model, "creatable", True):
            endpoint("POST", base, create, 201)
        if model.has_actions:
            _action_routes(endpoint, cloud, base, model)
        endpoint("GET", base + "/{id}", get)
        endpoint("PUT", base + "/{id}", update)
        endpoint("DELETE", base + "/{id}", delete, 200 if plural == "servers" else getattr(model, "delete_status", 204))
        for name, method_name in actions.items():
            def act(project, request, body, model=model, name=name, method_name=method_name):
                method = getattr(model, method_name)
                oid = request.path_params["id"]
                result = method(project, oid, name) if method_name == "power" else method(project, oid, body)
                return envelope(model, result)
            endpoint("POST", f"{base}/{{id}}/actions/{name}", act, 201)

    _zone_routes(endpoint, cloud.resources["zones"], check)

    def server_metrics(project, request, body):
        return {"metrics": cloud.servers.metrics(project, request.path_params["id"], request.query_params)}
    endpoint("GET", "/v1/servers/{id}/metrics", server_metrics)

    # --- catalogue
    for plural, (singular, attribute, lookup) in CATALOGUE.items():
        def list_catalogue(project, request, body, plural=plural, attribute=attribute):
            return _list_catalogue(cloud, plural, attribute, request.query_params)

        def get_catalogue(project, request, body, singular=singular, lookup=lookup):
            ref = request.path_params["id"]
            found = getattr(cloud.catalog, lookup)(int(ref)) if ref.isdigit() else None
            if found is None:
                raise errors.not_found(singular.replace("_", " "), ref)
            return {singular: found}
        endpoint("GET", f"/v1/{plural}", list_catalogue)
        endpoint("GET", f"/v1/{plural}/{{id}}", get_catalogue)

    endpoint("GET", "/v1/pricing",
             lambda project, request, body: {"pricing": cloud.settings.pricing or cloud.catalog.pricing()})

    def list_isos(project, request, body):
        return _list_isos(cloud, request.query_params)

    def get_iso(project, request, body):
        ref = request.path_params["id"]
        found = cloud.catalog.iso(int(ref)) if ref.isdigit() else None
        if found is None:
            raise errors.not_found("ISO", ref)
        return {"iso": found}
    endpoint("GET", "/v1/isos", list_isos)
    endpoint("GET", "/v1/isos/{id}", get_iso)

    def datacenters_gone():
        if not cloud.settings.legacy_datacenters:
            raise errors.APIError(410, "deprecated_api_endpoint",
                                  "datacenters were removed on 2026-10-01: use locations and server_type.locations",
                                  {"announcement": "https://docs.hetzner.cloud/changelog#2026-06-02-datacenters-deprecated"})

    def list_datacenters(project, request, body):
        datacenters_gone()
        listing = _list_catalogue(cloud, "datacenters", "legacy_datacenters", request.query_params)
        return {**listing, "recommendation": cloud.catalog.legacy_datacenter("fsn1")["id"]}

    def get_datacenter(project, request, body):
        datacenters_gone()
        ref = request.path_params["id"]
        found = next((dc for dc in cloud.catalog.legacy_datacenters if str(dc["id"]) == ref), None)
        if found is None:
            raise errors.not_found("datacenter", ref)
        return {"datacenter": found}
    endpoint("GET", "/v1/datacenters", list_datacenters)
    endpoint("GET", "/v1/datacenters/{id}", get_datacenter)

    # --- actions
    def actions_by_id(project, request, body):
        ids = request.query_params.getlist("id")
        if not ids:
            raise errors.invalid_input("id", "is required: GET /actions?id=1&id=2 (listing all actions was removed)")
        found = []
        for ref in ids:
            if not ref.isdigit():
                raise errors.invalid_input("id", f"'{ref}' is not an action ID")
            action = cloud.store.get("action", int(ref))
            if action is not None and action["_project"] == project:
                found.append(action)
        items = sort_items(found, request.query_params.getlist("sort"), ("id", "command", "status", "started", "finished"))
        page, meta = paginate(items, request.query_params.get("page"), request.query_params.get("per_page"))
        return {"actions": [cloud.action_json(a) for a in page], "meta": meta}

    def action_by_id(project, request, body):
        action = cloud.store.get("action", int(request.path_params["id"])) if request.path_params["id"].isdigit() else None
        if action is None or action["_project"] != project:
            raise errors.not_found("action", request.path_params["id"])
        return {"action": cloud.action_json(action)}
    endpoint("GET", "/v1/actions", actions_by_id)
    endpoint("GET", "/v1/actions/{id}", action_by_id)

    _admin_routes(app, cloud, faults, stats)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc):
        if exc.status_code == 405:
            err = errors.method_not_allowed()
        else:
            err = errors.route_not_found(request.method, request.url.path)
        return _json(err.status, err.body())

    @app.exception_handler(Exception)
    async def crash(request, exc):
        traceback.print_exc()
        return _json(500, {"error": {"code": "server_error", "message": f"internal error: {exc}", "details": None}})

    return app


def _zone_routes(endpoint, zones, check):
    """RRSets (addressed by name and type inside a zone given by ID or name) and the zone file."""
    from .schemas import CreateRRSet, UpdateLabels
    base = "/v1/zones/{id}"
    rrset = base + "/rrsets/{rr_name}/{rr_type}"

    def key(request):
        return request.path_params["id"], request.path_params["rr_name"], request.path_params["rr_type"]

    endpoint("GET", base + "/zonefile", lambda project, request, body: zones.zonefile(project, request.path_params["id"]))
    endpoint("GET", base + "/rrsets",
             lambda project, request, body: zones.list_rrsets(project, request.path_params["id"], request.query_params))
    endpoint("POST", base + "/rrsets",
             lambda project, request, body: zones.create_rrset(project, request.path_params["id"], check(CreateRRSet, body)),
             201)
    endpoint("GET", rrset, lambda project, request, body: zones.get_rrset(project, *key(request)))
    endpoint("PUT", rrset, lambda project, request, body: zones.update_rrset(project, *key(request),
                                                                             check(UpdateLabels, body)))
    endpoint("DELETE", rrset, lambda project, request, body: zones.delete_rrset(project, *key(request)), 201)
    for name, status in RRSET_ACTIONS.items():
        endpoint("POST", f"{rrset}/actions/{name}",
                 lambda project, request, body, name=name: zones.rrset_action(project, *key(request), name, body), status)


def _action_routes(endpoint, cloud, base, model):
    kind = model.kind

    def list_all(project, request, body):
        return _action_list(cloud, project, kind, None, request.query_params)

    def get_one(project, request, body):
        return _action_get(cloud, project, kind, None, request.path_params["action_id"])

    def list_for(project, request, body):
        resource = model.get(project, request.path_params["id"])
        return _action_list(cloud, project, kind, resource["id"], request.query_params)

    def get_for(project, request, body):
        resource = model.get(project, request.path_params["id"])
        return _action_get(cloud, project, kind, resource["id"], request.path_params["action_id"])
    endpoint("GET", base + "/actions", list_all)
    endpoint("GET", base + "/actions/{action_id}", get_one)
    endpoint("GET", base + "/{id}/actions", list_for)
    endpoint("GET", base + "/{id}/actions/{action_id}", get_for)


def _action_list(cloud, project, kind, rid, query):
    items = list(cloud.actions_for(project, kind, rid))
    ids = query.getlist("id")
    if ids:
        items = [a for a in items if str(a["id"]) in ids]
    statuses = query.getlist("status")
    if statuses:
        items = [a for a in items if a["status"] in statuses]
    items = sort_items(items, query.getlist("sort"), ("id", "command", "status", "started", "finished"))
    page, meta = paginate(items, query.get("page"), query.get("per_page"))
    return {"actions": [cloud.action_json(a) for a in page], "meta": meta}


def _action_get(cloud, project, kind, rid, action_id):
    action = cloud.store.get("action", int(action_id)) if str(action_id).isdigit() else None
    if action is None or action["_project"] != project or not any(
            r["type"] == kind and (rid is None or r["id"] == rid) for r in action["resources"]):
        raise errors.not_found("action", action_id)
    return {"action": cloud.action_json(action)}


def _list_catalogue(cloud, plural, attribute, query):
    items = list(getattr(cloud.catalog, attribute))
    name = query.get("name")
    if name is not None:
        items = [i for i in items if i.get("name") == name]
    if plural == "locations":
        items = sort_items(items, query.getlist("sort"), ("id", "name"))
    page, meta = paginate(items, query.get("page"), query.get("per_page"))
    return {plural: page, "meta": meta}


def _list_isos(cloud, query):
    """ISOs past their deprecation's unavailable_after drop out of the list (GET /isos/{id} still
    answers); ``architecture`` keeps ISOs for any architecture only with include_architecture_wildcard."""
    from datetime import datetime, timezone
    now = datetime.now(timezone.utc)
    items = [i for i in cloud.catalog.isos if i["deprecation"] is None or datetime.fromisoformat(
        i["deprecation"]["unavailable_after"].replace("Z", "+00:00")) > now]
    name = query.get("name")
    if name is not None:
        items = [i for i in items if i["name"] == name]
    architecture = query.get("architecture")
    if architecture is not None:
        if architecture not in ("x86", "arm"):
            raise errors.invalid_input("architecture", f"'{architecture}' is not x86 or arm")
        wildcard = parse_bool(query.get("include_architecture_wildcard", "false"), "include_architecture_wildcard")
        items = [i for i in items if i["architecture"] == architecture or (wildcard and i["architecture"] is None)]
    page, meta = paginate(items, query.get("page"), query.get("per_page"))
    return {"isos": page, "meta": meta}


def _admin_routes(app, cloud, faults, stats):
    """Local-cloud controls (not part of the Hetzner API): faults, stats, settings, projects."""

    async def guarded(request, func):
        try:
            body = await read_body(request) if request.method in ("POST", "PUT") else {}
            with cloud.transaction():
                return _json(200, func(body))
        except errors.APIError as err:
            return _json(err.status, err.body())

    @app.get("/_localcloud/faults")
    async def get_faults(request: Request):
        return await guarded(request, lambda body: faults.describe())

    @app.put("/_localcloud/faults")
    async def put_faults(request: Request):
        return await guarded(request, lambda body: (faults.configure(body), faults.describe())[1])

    @app.delete("/_localcloud/faults")
    async def clear_faults(request: Request):
        return await guarded(request, lambda body: (faults.configure({}), faults.describe())[1])

    @app.get("/_localcloud/stats")
    async def get_stats(request: Request):
        return await guarded(request, lambda body: stats.as_dict())

    @app.delete("/_localcloud/stats")
    async def reset_stats(request: Request):
        def reset(body):
            stats.total = 0
            stats.by_route.clear()
            return stats.as_dict()
        return await guarded(request, reset)

    @app.get("/_localcloud/config")
    async def get_config(request: Request):
        return await guarded(request, lambda body: cloud.settings.as_dict())

    @app.put("/_localcloud/config")
    async def put_config(request: Request):
        return await guarded(request, lambda body: (cloud.settings.update(body), cloud.settings.as_dict())[1])

    @app.get("/_localcloud/pricing")
    async def get_pricing(request: Request):
        return await guarded(request, lambda body: {"pricing": cloud.settings.pricing or cloud.catalog.pricing(),
                                                    "overridden": cloud.settings.pricing is not None})

    @app.put("/_localcloud/pricing")
    async def put_pricing(request: Request):
        def replace(body):
            cloud.settings.pricing = check_pricing(body)
            return {"pricing": cloud.settings.pricing, "overridden": True}
        return await guarded(request, replace)

    @app.delete("/_localcloud/pricing")
    async def reset_pricing(request: Request):
        def reset(body):
            cloud.settings.pricing = None
            return {"pricing": cloud.catalog.pricing(), "overridden": False}
        return await guarded(request, reset)

    @app.post("/_localcloud/projects")
    async def new_project(request: Request):
        def make(body):
            name = body.get("name") or "project"
            project = cloud.create_project(name)
            tokens = project["_tokens"]
            return {"project": {"id": project["id"], "name": project["name"]},
                    "token": tokens[0]["token"], "readonly_token": tokens[1]["token"]}
        return await guarded(request, make)
