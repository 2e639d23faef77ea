"""The layering the local cloud promises (localcloud/backends/base.py): the model drives the machine
backend from its action effects and after-commit hooks, once the request's transaction has
committed, never from inside it; a rejected request never reaches the backend.

A recording backend stands in for the machines (in-process API, no root): every call that changes a
machine, a volume, a load balancer, a route or an image is recorded with whether a transaction was
open at that moment and whether the resource it names is in the committed state.
"""
from __future__ import annotations

import time

import pytest

from conftest import ssh_public_key
from fastapi.testclient import TestClient
from localcloud.api.app import create_app
from localcloud.backends.base import MachineBackend
from localcloud.config import Settings
from localcloud.model.base import Cloud

# the backend calls that change something (queries such as machine_status may run anywhere)
CHANGES = ("create_server", "restore_server", "power", "rebuild", "delete_server", "attach_network",
           "detach_network", "set_firewall", "create_volume", "resize_volume", "delete_volume", "attach_volume",
           "detach_volume", "set_public_ipv4", "set_server_type", "route_floating_ip", "set_load_balancer",
           "delete_load_balancer", "reset_password", "create_image", "delete_image")


class RecordingBackend(MachineBackend):
    """Records (call, transaction open?, first argument) and then does what the API-only backend does."""

    def __init__(self):
        self.cloud: Cloud | None = None
        self.calls: list[tuple[str, bool, object]] = []


def _recorder(name):
    def call(self, *args, **kwargs):
        self.calls.append((name, self.cloud.store.active, args[0] if args else None))
        return getattr(MachineBackend, name)(self, *args, **kwargs)
    return call


for _name in CHANGES:
    setattr(RecordingBackend, _name, _recorder(_name))


class Api:
    def __init__(self, tmp_path):
        self.backend = RecordingBackend()
        self.cloud = Cloud(tmp_path, settings=Settings(action_time=0.0, rate_limit=0), backend=self.backend)
        self.backend.cloud = self.cloud
        self.client = TestClient(create_app(self.cloud))
        token = self.cloud.default_project()["_tokens"][0]["token"]
        self.headers = {"Authorization": f"Bearer {token}"}

    def __call__(self, method, path, body=None, status=None):
        resp = self.client.request(method, "/v1" + path, json=body, headers=self.headers)
        if status is None:
            assert resp.status_code < 300, (method, path, resp.status_code, resp.text[:600])
        else:
            assert resp.status_code == status, (method, path, resp.status_code, resp.text[:600])
        return resp.json() if resp.content else {}

    def wait(self, *actions):
        """Complete the actions (the ticker of `serve` is not running in-process)."""
        deadline = time.monotonic() + 10
        for action in actions:
            while self.cloud.store.get("action", action["id"])["status"] == "running":
                assert time.monotonic() < deadline, action
                self.cloud.advance()
                time.sleep(0.01)
            assert self.cloud.store.get("action", action["id"])["status"] == "success", action


@pytest.fixture
def api(tmp_path):
    return Api(tmp_path)


def test_backend_runs_after_the_commit(api):
    key = api("POST", "/ssh_keys", {"name": "k", "public_key": ssh_public_key("layering")})["ssh_key"]
    net = api("POST", "/networks", {"name": "n", "ip_range": "10.70.0.0/16", "subnets": [
        {"type": "cloud", "network_zone": "eu-central", "ip_range": "10.70.1.0/24"}]})["network"]
    made = api("POST", "/servers", {"name": "s1", "server_type": "cx23", "image": "debian-12", "location": "fsn1",
                                    "ssh_keys": [key["id"]], "networks": [net["id"]], "labels": {"role": "web"}})
    api.wait(made["action"], *made["next_actions"])
    sid = made["server"]["id"]
    vol = api("POST", "/volumes", {"name": "v", "size": 10, "server": sid, "format": "ext4", "automount": True})
    api.wait(vol["action"], *vol["next_actions"])
    vid = vol["volume"]["id"]
    api.wait(api("POST", f"/volumes/{vid}/actions/resize", {"size": 20})["action"])
    lb = api("POST", "/load_balancers", {
        "name": "lb", "load_balancer_type": "lb11", "location": "fsn1", "network": net["id"],
        "services": [{"protocol": "tcp", "listen_port": 80, "destination_port": 80}],
        "targets": [{"type": "label_selector", "label_selector": {"selector": "role=web"}, "use_private_ip": True}]})
    api.wait(lb["action"])
    fip = api("POST", "/floating_ips", {"type": "ipv4", "server": sid})
    api.wait(fip["action"])
    fw = api("POST", "/firewalls", {"name": "fw", "rules": [
        {"direction": "in", "protocol": "tcp", "port": "22", "source_ips": ["0.0.0.0/0"]}],
        "apply_to": [{"type": "server", "server": {"id": sid}}]})
    api.wait(*fw["actions"])
    api.wait(api("POST", f"/servers/{sid}/actions/detach_from_network", {"network": net["id"]})["action"])
    api.wait(api("POST", f"/servers/{sid}/actions/attach_to_network", {"network": net["id"]})["action"])
    api.wait(api("POST", f"/servers/{sid}/actions/poweroff")["action"])
    api.wait(api("POST", f"/servers/{sid}/actions/change_type", {"server_type": "cx33", "upgrade_disk": False})["action"])
    image = api("POST", f"/servers/{sid}/actions/create_image", {"type": "snapshot", "description": "snap"})
    api.wait(image["action"])
    api("DELETE", f"/images/{image['image']['id']}")
    api.wait(api("POST", f"/servers/{sid}/actions/rebuild", {"image": "debian-12"})["action"])
    api.wait(api("POST", f"/volumes/{vid}/actions/detach")["action"])
    api.wait(api("DELETE", f"/servers/{sid}")["action"])
    api("DELETE", f"/load_balancers/{lb['load_balancer']['id']}")
    api("DELETE", f"/volumes/{vid}")

    called = {name for name, _, _ in api.backend.calls}
    expected = {"create_server", "detach_network", "attach_network", "create_volume", "attach_volume", "resize_volume",
                "set_load_balancer", "route_floating_ip", "set_firewall", "power", "set_server_type",
                "create_image", "delete_image", "rebuild", "detach_volume", "delete_server",
                "delete_load_balancer", "delete_volume"}
    assert expected <= called, f"not driven: {sorted(expected - called)}"
    inside = [(name, arg) for name, active, arg in api.backend.calls if active]
    assert inside == [], f"backend called inside the request's transaction: {inside}"


def test_a_rejected_request_never_reaches_the_backend(api):
    key = api("POST", "/ssh_keys", {"name": "k", "public_key": ssh_public_key("rejected")})["ssh_key"]
    made = api("POST", "/servers", {"name": "s1", "server_type": "cx23", "image": "debian-12", "location": "fsn1",
                                    "ssh_keys": [key["id"]]})
    api.wait(made["action"], *made["next_actions"])
    before = list(api.backend.calls)
    # a volume for a server that does not exist; a load balancer whose second target is unknown
    api("POST", "/volumes", {"name": "v", "size": 10, "server": 999999, "format": "ext4"}, status=422)
    api("POST", "/load_balancers", {
        "name": "lb", "load_balancer_type": "lb11", "location": "fsn1",
        "services": [{"protocol": "tcp", "listen_port": 80, "destination_port": 80}],
        "targets": [{"type": "server", "server": {"id": made["server"]["id"]}},
                    {"type": "server", "server": {"id": 999999}}]}, status=422)
    assert api.backend.calls == before
    assert api("GET", "/volumes")["volumes"] == [] and api("GET", "/load_balancers")["load_balancers"] == []
