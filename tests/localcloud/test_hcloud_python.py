"""hcloud-python against the local cloud: paging, actions, label selectors, sort, name filter."""
from __future__ import annotations

import ipaddress

import pytest
from hcloud import APIException
from hcloud.images import Image
from hcloud.locations import Location
from hcloud.networks import NetworkSubnet
from hcloud.server_types import ServerType

from conftest import ssh_public_key


def _create_keys(project, count: int, labels=lambda i: {}):
    for i in range(count):
        project.ok("POST", "/ssh_keys", {"name": f"key-{i:03d}", "public_key": ssh_public_key(f"{project.token}-{i}"),
                                         "labels": labels(i)})


def test_get_all_follows_pages(project):
    _create_keys(project, 130, labels=lambda i: {"parity": "even" if i % 2 == 0 else "odd", "n": str(i)})
    client = project.client()
    keys = client.ssh_keys.get_all()
    assert len(keys) == 130
    assert [k.name for k in keys] == [f"key-{i:03d}" for i in range(130)]
    assert len({k.id for k in keys}) == 130

    page = client.ssh_keys.get_list(page=3, per_page=50)
    assert [k.name for k in page.ssh_keys] == [f"key-{i:03d}" for i in range(100, 130)]
    pagination = page.meta.pagination
    assert (pagination.page, pagination.per_page, pagination.previous_page, pagination.next_page,
            pagination.last_page, pagination.total_entries) == (3, 50, 2, None, 3, 130)

    even = client.ssh_keys.get_all(label_selector="parity=even")
    assert len(even) == 65 and all(k.labels["parity"] == "even" for k in even)
    assert [k.name for k in client.ssh_keys.get_all(label_selector="parity=odd,n in (1,3,4)")] == ["key-001", "key-003"]
    assert client.ssh_keys.get_all(label_selector="missing") == []
    assert len(client.ssh_keys.get_all(label_selector="!missing")) == 130

    # hcloud-python's get_all has no sort: the same request it makes, with sort
    desc = client.request("GET", "/ssh_keys", params={"sort": "name:desc", "per_page": 3})
    assert [k["name"] for k in desc["ssh_keys"]] == ["key-129", "key-128", "key-127"]
    assert client.ssh_keys.get_by_name("key-042").labels == {"parity": "even", "n": "42"}
    assert client.ssh_keys.get_by_name("nope") is None
    assert client.ssh_keys.get_by_fingerprint(keys[7].fingerprint).name == "key-007"


def test_servers_and_actions(project):
    client = project.client()
    network = client.networks.create(name="net", ip_range="10.0.0.0/16", subnets=[
        NetworkSubnet(type="cloud", ip_range="10.0.1.0/24", network_zone="eu-central")])
    key = client.ssh_keys.create(name="k", public_key=ssh_public_key("py-key"))
    created = []
    for i in range(3):
        response = client.servers.create(
            name=f"web-{i}", server_type=ServerType(name="cx23"), image=Image(name="debian-12"),
            location=Location(name="nbg1"), ssh_keys=[key], networks=[network], labels={"tier": "web", "i": str(i)})
        assert response.action.command == "create_server"
        assert response.action.status == "running"
        assert response.root_password is None
        created.append(response)
    for response in created:
        response.action.wait_until_finished(max_retries=200)
        assert response.action.status == "success"
        assert response.next_actions, "start_server and attach_to_network follow create_server"
        for action in response.next_actions:
            action.wait_until_finished(max_retries=200)
            assert action.status == "success"
            assert action.finished is not None and action.progress == 100

    sorted_ = client.request("GET", "/servers", params={"label_selector": "tier=web", "sort": "name:desc"})
    assert [s["name"] for s in sorted_["servers"]] == ["web-2", "web-1", "web-0"]
    servers = client.servers.get_all(label_selector="tier=web")
    assert [s.name for s in servers] == ["web-0", "web-1", "web-2"]
    for server in servers:
        assert server.status == "running"
        assert server.server_type.name == "cx23" and server.location.name == "nbg1"
        assert ipaddress.ip_address(server.private_net[0].ip) in ipaddress.ip_network("10.0.1.0/24")
        assert server.private_net[0].network.id == network.id
    assert len({s.private_net[0].ip for s in servers}) == 3
    assert [s.name for s in client.servers.get_all(label_selector="tier=web,i!=1")] == ["web-0", "web-2"]
    assert [s.name for s in client.servers.get_all(status=["running"], name="web-1")] == ["web-1"]

    # power off and wait
    server = client.servers.get_by_name("web-0")
    action = server.power_off()
    assert action.command == "stop_server"
    action.wait_until_finished(max_retries=200)
    assert client.servers.get_by_id(server.id).status == "off"

    # GET /actions?id=..&id=.. answers exactly the asked actions
    ids = [r.action.id for r in created]
    answer = project.ok("GET", "/actions?" + "&".join(f"id={i}" for i in ids))
    assert sorted(a["id"] for a in answer["actions"]) == sorted(ids)
    assert {a["command"] for a in answer["actions"]} == {"create_server"}
    one = client.actions.get_by_id(ids[0])
    assert one.command == "create_server" and one.resources[0]["type"] == "server"

    # per-resource action lists
    actions = client.servers.get_actions_list(server, sort=["id:asc"]).actions
    assert [a.command for a in actions][:2] == ["create_server", "start_server"]
    assert actions[-1].command == "stop_server"

    # delete everything, waiting on the delete actions
    for server in client.servers.get_all():
        server.delete().wait_until_finished(max_retries=200)
    assert client.servers.get_all() == []
    network.delete()
    key.delete()
    assert client.networks.get_all() == [] and client.ssh_keys.get_all() == []


def test_130_servers_paged(project):
    client = project.client()
    for i in range(130):
        project.ok("POST", "/servers", {"name": f"s{i:03d}", "server_type": "cx23", "image": "debian-12",
                                        "location": "fsn1", "labels": {"group": str(i % 3)},
                                        "start_after_create": False})
    servers = client.servers.get_all()
    assert [s.name for s in servers] == [f"s{i:03d}" for i in range(130)]
    assert len(client.servers.get_all(label_selector="group in (0,1)")) == 87
    assert [s.name for s in client.servers.get_all(name="s077")] == ["s077"]
    by_created = client.request("GET", "/servers", params={"sort": ["created:desc", "id:desc"], "per_page": 50})
    assert by_created["servers"][0]["name"] == "s129" and len(by_created["servers"]) == 50


def test_errors_raise_api_exception(project):
    client = project.client()
    with pytest.raises(APIException) as caught:
        client.servers.create(name="old", server_type=ServerType(name="cx22"), image=Image(name="debian-12"),
                              location=Location(name="nbg1"))
    assert caught.value.code == "invalid_input"
    assert "cx23" in caught.value.message
    assert caught.value.details["fields"][0]["name"] == "server_type"
    client.ssh_keys.create(name="dup", public_key=ssh_public_key("dup-1"))
    with pytest.raises(APIException) as caught:
        client.ssh_keys.create(name="dup", public_key=ssh_public_key("dup-2"))
    assert caught.value.code == "uniqueness_error"


def test_catalogue_lookups(project):
    client = project.client()
    assert client.server_types.get_by_name("cx23").cores == 2
    assert client.locations.get_by_name("nbg1").network_zone == "eu-central"
    image = client.images.get_by_name_and_architecture("debian-12", "x86")
    assert image.name == "debian-12" and image.architecture == "x86"
    assert len(client.load_balancer_types.get_all()) == 3


def test_client_retries_injected_faults(project):
    """hcloud-python retries rate_limit_exceeded, conflict, bad_gateway and timeout: a scripted run of
    them is invisible to the caller, and a 503 (not retried) surfaces as APIException."""
    project.ok("POST", "/ssh_keys", {"name": "k", "public_key": ssh_public_key("retry")})
    client = project.client()
    client._client._retry_interval_func = lambda retries: 0.01     # keep the test fast
    cloud = project.cloud
    try:
        cloud.admin("PUT", "faults", {"script": [
            {"status": status, "method": "GET", "path": "^/v1/ssh_keys$"} for status in (429, 409, 502, 504)]})
        assert [k.name for k in client.ssh_keys.get_all()] == ["k"]
        assert cloud.admin("GET", "faults")["injected"]["requests"] == 4
        cloud.admin("PUT", "faults", {"script": [{"status": 503, "method": "GET", "path": "^/v1/ssh_keys$"}]})
        with pytest.raises(APIException) as caught:
            client.ssh_keys.get_all()
        assert caught.value.code == "unavailable"
    finally:
        cloud.admin("DELETE", "faults")
