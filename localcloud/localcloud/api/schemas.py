"""Request body types, checked with pydantic before the model applies its rules.

Only the JSON types are checked here (a string where a string belongs, a list where a list
belongs); every rule about values lives in the model. Unknown keys are accepted, as the API does.
"""
from __future__ import annotations

from typing import Any, Optional, Union

from pydantic import BaseModel, ConfigDict, StrictBool, StrictInt, StrictStr, ValidationError

from .. import errors

Ref = Union[StrictInt, StrictStr]
Labels = Optional[dict[str, Any]]


class Body(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class Named(Body):
    name: StrictStr
    labels: Labels = None


class Update(Body):
    name: Optional[StrictStr] = None
    labels: Labels = None


class CreateSSHKey(Named):
    public_key: StrictStr


class CreateNetwork(Named):
    ip_range: StrictStr
    subnets: Optional[list[Any]] = None
    routes: Optional[list[Any]] = None
    expose_routes_to_vswitch: Optional[StrictBool] = None


class CreateFirewall(Named):
    rules: Optional[list[Any]] = None
    apply_to: Optional[list[Any]] = None


class CreateServer(Named):
    server_type: Ref
    image: Ref
    location: Optional[Ref] = None
    datacenter: Optional[Ref] = None
    start_after_create: Optional[StrictBool] = None
    ssh_keys: Optional[list[Ref]] = None
    volumes: Optional[list[StrictInt]] = None
    networks: Optional[list[StrictInt]] = None
    firewalls: Optional[list[Any]] = None
    user_data: Optional[StrictStr] = None
    automount: Optional[StrictBool] = None
    placement_group: Optional[StrictInt] = None
    public_net: Optional[dict[str, Any]] = None


class UpdateImage(Body):
    description: Optional[StrictStr] = None
    type: Optional[StrictStr] = None
    labels: Labels = None


class UpdateLabels(Body):
    labels: Labels = None


class CreateCertificate(Named):
    type: Optional[StrictStr] = None
    certificate: Optional[StrictStr] = None
    private_key: Optional[StrictStr] = None
    domain_names: Optional[list[StrictStr]] = None


class CreateZone(Named):
    mode: StrictStr
    ttl: Optional[StrictInt] = None
    primary_nameservers: Optional[list[Any]] = None
    rrsets: Optional[list[Any]] = None
    zonefile: Optional[StrictStr] = None


class CreateRRSet(Named):
    type: StrictStr
    records: list[Any]
    ttl: Optional[StrictInt] = None


class CreatePlacementGroup(Named):
    type: StrictStr


class CreateVolume(Named):
    size: StrictInt
    location: Optional[Ref] = None
    server: Optional[StrictInt] = None
    automount: Optional[StrictBool] = None
    format: Optional[StrictStr] = None


class CreateFloatingIP(Body):
    type: StrictStr
    name: Optional[StrictStr] = None
    description: Optional[StrictStr] = None
    server: Optional[StrictInt] = None
    home_location: Optional[Ref] = None
    labels: Labels = None


class CreatePrimaryIP(Named):
    type: StrictStr
    assignee_type: Optional[StrictStr] = None
    assignee_id: Optional[StrictInt] = None
    location: Optional[Ref] = None
    datacenter: Optional[Ref] = None
    auto_delete: Optional[StrictBool] = None


class CreateLoadBalancer(Named):
    load_balancer_type: Ref
    location: Optional[Ref] = None
    network_zone: Optional[StrictStr] = None
    algorithm: Optional[dict[str, Any]] = None
    services: Optional[list[Any]] = None
    targets: Optional[list[Any]] = None
    network: Optional[StrictInt] = None
    public_interface: Optional[StrictBool] = None


def check(schema: type[BaseModel] | None, body: dict) -> dict:
    """Raise invalid_input naming every offending field; return the body unchanged."""
    if schema is None:
        return body
    try:
        schema.model_validate(body)
    except ValidationError as err:
        fields: dict[str, list[str]] = {}
        for problem in err.errors():
            message = "is required" if problem["type"] == "missing" else problem["msg"].lower()
            fields.setdefault(field_name(problem["loc"]), []).append(message)
        raise errors.invalid_fields(fields) from None
    return body


_UNION_MEMBERS = {"int", "str", "bool"}


def field_name(location) -> str:
    """('ssh_keys', 0, 'int') -> 'ssh_keys[0]': pydantic adds the union member, the API names only the field."""
    name = ""
    for part in location:
        if isinstance(part, int):
            name += f"[{part}]"
        elif part in _UNION_MEMBERS or str(part).startswith(("function-", "union[", "dict[", "list[")):
            continue
        else:
            name += f".{part}" if name else str(part)
    return name or "body"
