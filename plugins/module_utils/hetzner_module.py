# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Ansible glue shared by every per-resource module and every _info module.

A resource module is: its argument_spec + ``run_resource_module(kind, spec)``.  The flow is
the same for all: look the resource up by name, gather the Context, plan (pure), fail on
validation errors before changing anything, return the planned object in check mode, else run
the plan and return the resulting object, ``diff`` and the executed ``plan``.
"""

from __future__ import annotations

from ansible_collections.autoscale.hetzner.plugins.module_utils.credentials import token_fallback
from ansible.module_utils.basic import AnsibleModule, env_fallback

from .api import HetznerApi, HetznerError, make_transport, DEFAULT_ENDPOINT
from .reconcile import ApiLoader, Context, Resolver, harvest, run_plan
from .planners import plan as make_plan, planned_object, represent
from . import specs
from . import validation as v


class HetznerModule(AnsibleModule):
    """AnsibleModule whose argument errors name the full path of the offending key.

    Ansible's own messages for nested options say ``found in tiers -> servers``, never which element,
    and stop at the first problem. When Ansible refuses the arguments, every problem is reported as
    ``tiers[1].servers[0].ipp: unknown key; did you mean ip?`` (see specs.py), with changed=false.
    """

    def __init__(self, *args, **kwargs):
        self._checking_arguments = True
        super().__init__(*args, **kwargs)
        self._checking_arguments = False

    def fail_json(self, msg, **kwargs):  # pylint: disable=arguments-differ
        if getattr(self, "_checking_arguments", False) and getattr(self, "validation_result", None) is not None:
            constraints = {name: getattr(self, name, None) for name in specs.CONSTRAINTS}
            problems = specs.argument_errors(self.argument_spec, self.params, constraints=constraints)
            if problems:
                msg = "invalid options, nothing was changed:\n- " + "\n- ".join(problems)
                kwargs["errors"] = problems
            kwargs.setdefault("changed", False)
        super().fail_json(msg=msg, **kwargs)


def common_argument_spec() -> dict:
    return {
        # not required: build_client() says which sources were tried (credentials.py) when none had one
        "api_token": {"type": "str", "no_log": True, "fallback": (token_fallback,)},
        "api_endpoint": {"type": "str", "default": DEFAULT_ENDPOINT, "aliases": ["endpoint"],
                         "fallback": (env_fallback, ["HCLOUD_ENDPOINT"])},
    }


def api_from_module(module: AnsibleModule, **kwargs) -> HetznerApi:
    try:
        return HetznerApi(make_transport(module.params["api_token"], module.params["api_endpoint"]), **kwargs)
    except HetznerError as exc:
        module.fail_json(msg=str(exc), failure=exc.failure(), changed=False)
    return None  # not reached


def fail(module: AnsibleModule, exc: HetznerError, **extra):
    extra.setdefault("changed", False)
    module.fail_json(msg=str(exc), failure=exc.failure(), **extra)


def result_key(kind: str) -> str:
    return "hcloud_%s" % kind


def desired_from_params(params: dict, spec: dict) -> dict:
    return {key: params.get(key) for key in spec}


def lazy_context(api, kind: str, objects) -> Context:
    """A Context that reads referenced objects on demand, seeded with ``objects`` of ``kind`` and the
    catalogue objects they embed."""
    ctx = Context(loader=ApiLoader(api))
    for obj in objects:
        ctx.add(kind, obj)
        harvest(ctx, kind, obj)
    return ctx


def rename_deprecated_values(module: AnsibleModule, renamed_values: dict) -> None:
    """Old values kept as deprecated aliases: ``{"state": {"rebuilt": "rebuild"}}`` turns state=rebuilt into
    state=rebuild with a deprecation warning, so the planners only know the new value."""
    for option, renames in renamed_values.items():
        old = module.params.get(option)
        if old in renames:
            new = renames[old]
            module.deprecate("%s: %s is renamed %s (the name hetzner.hcloud uses for the same thing); write %s: %s"
                             % (option, old, new, option, new), version="1.0.0", collection_name="autoscale.hetzner")
            module.params[option] = new


def run_resource_module(kind: str, spec: dict, required_if=None, mutually_exclusive=None,
                        supports_check_mode: bool = True, renamed_values=None) -> None:
    """Find the resource by name, read what it references (only that), plan, and apply the plan.

    An unchanged run sends one request for the resource plus one per referenced object that the
    resource does not embed (a server's network and firewall, a volume's server)."""
    argument_spec = common_argument_spec()
    argument_spec.update(specs.copy_spec(spec))
    module = HetznerModule(argument_spec=argument_spec, supports_check_mode=supports_check_mode,
                           required_if=required_if or [], mutually_exclusive=mutually_exclusive or [])
    rename_deprecated_values(module, renamed_values or {})
    desired = desired_from_params(module.params, spec)
    problems = v.static_errors(kind, desired)
    if problems:  # nothing was read or changed
        module.fail_json(msg="%s %r: nothing was changed because the request is invalid: %s" % (
            kind, desired["name"], " | ".join(problems)), errors=problems, changed=False)
    api = api_from_module(module)
    try:
        actual = api.find(kind, desired["name"])
        ctx = lazy_context(api, kind, [actual] if actual is not None else [])
        plan = make_plan(kind, desired, actual, ctx)
    except HetznerError as exc:
        fail(module, exc)
        return
    for warning in plan.warnings:
        module.warn(warning)
    result = {"changed": plan.changed, "diff": plan.diff, "plan": plan.to_dict()}
    if plan.errors:
        result["changed"] = False
        module.fail_json(msg="%s %r: nothing was changed because the request is invalid: %s" % (
            kind, desired["name"], " | ".join(plan.errors)), errors=plan.errors, **result)
    if module.check_mode or not plan.changed:
        if not plan.changed and actual is not None:
            result[result_key(kind)] = represent(kind, actual, ctx)
        else:
            result[result_key(kind)] = planned_object(plan)
        module.exit_json(**result)
    try:
        resolver = Resolver(api, ctx)
        obj = run_plan(api, plan, resolver)
        if obj is not None and kind == "server":
            ctx.forget("firewall")  # which firewalls apply to it changed: read them again
        result[result_key(kind)] = represent(kind, obj, ctx) if obj is not None else None
    except HetznerError as exc:
        fail(module, exc, plan=plan.to_dict(), changed=True)
        return
    module.exit_json(**result)


def info_argument_spec() -> dict:
    spec = common_argument_spec()
    spec.update({
        "id": {"type": "int"},
        "name": {"type": "str"},
        "label_selector": {"type": "str"},
    })
    return spec


def run_info_module(kind: str) -> None:
    module = HetznerModule(argument_spec=info_argument_spec(), supports_check_mode=True)
    api = api_from_module(module)
    params = module.params
    try:
        if params["id"] is not None:
            obj = api.get(kind, params["id"])
            objects = [obj] if obj else []
        else:
            objects = api.list(kind, name=params["name"], label_selector=params["label_selector"])
        ctx = lazy_context(api, kind, objects)
        info = [represent(kind, obj, ctx) for obj in objects]
    except HetznerError as exc:
        fail(module, exc)
        return
    module.exit_json(changed=False, **{"%s_info" % result_key(kind): info})
