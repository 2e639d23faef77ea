"""Snapshots and backups, ISOs, certificates and DNS zones, driven by hcloud-python (the official
client) where it covers them, and by plain HTTP where a raw answer (code, message, field) is checked.
"""
from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hcloud import APIException
from hcloud.certificates import Certificate
from hcloud.images import Image
from hcloud.load_balancers import LoadBalancerService, LoadBalancerServiceHttp
from hcloud.server_types import ServerType
from hcloud.zones import Zone, ZoneRecord, ZoneRRSet


def _server(client, name, **kw):
    created = client.servers.create(name=name, server_type=ServerType(name="cx23"), image=Image(name="debian-12"),
                                    **kw)
    created.action.wait_until_finished()
    for action in created.next_actions:
        action.wait_until_finished()
    return client.servers.get_by_id(created.server.id)


def _self_signed(domains, days=30, key=None):
    key = key or ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domains[0])]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domains[0])]))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in domains]), critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return cert, cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


# --- images -------------------------------------------------------------------------------------

def test_snapshot_lifecycle_with_hcloud_python(project):
    client = project.client()
    server = _server(client, "snap-src", labels={"app": "web"})
    made = server.create_image(description="before upgrade", labels={"kind": "nightly"})
    assert made.image.status == "creating" and made.image.type == "snapshot"
    made.action.wait_until_finished()
    image = client.images.get_by_id(made.image.id)
    assert image.status == "available" and image.name is None and image.bound_to is None
    assert image.created_from.id == server.id and image.created_from.name == "snap-src"
    assert image.os_flavor == "debian" and image.architecture == "x86" and image.disk_size == 40
    assert {a.command for a in client.images.get_actions_list(image).actions} == {"create_image"}

    # filters the collection's image_info uses: type and label selector
    assert [i.id for i in client.images.get_all(type=["snapshot"])] == [image.id]
    assert [i.id for i in client.images.get_all(label_selector="kind=nightly")] == [image.id]
    assert all(i.type == "system" for i in client.images.get_all(type=["system"]))
    assert client.images.get_all(type=["backup"]) == []

    image.update(description="renamed", labels={"kind": "weekly"})
    assert client.images.get_by_id(image.id).description == "renamed"
    image.change_protection(delete=True).wait_until_finished()
    with pytest.raises(APIException) as refused:
        image.delete()
    assert refused.value.code == "protected"
    image.change_protection(delete=False).wait_until_finished()

    # rebuild from the snapshot by id, and a new server from it
    rebuilt = server.rebuild(Image(id=image.id))
    rebuilt.action.wait_until_finished()
    assert client.servers.get_by_id(server.id).image.id == image.id
    clone = _server(client, "snap-clone").id
    clone = client.servers.create(name="snap-clone2", server_type=ServerType(name="cx23"), image=Image(id=image.id))
    clone.action.wait_until_finished()
    assert client.servers.get_by_id(clone.server.id).image.id == image.id

    # snapshots survive the server; a system image cannot be deleted
    server.delete().wait_until_finished()
    assert client.images.get_by_id(image.id).created_from.id == server.id
    answer = project.call("DELETE", "/images/114690387")
    assert answer.status == 422 and answer.error["code"] == "unsupported_error", answer.body
    assert image.delete() is True
    assert project.call("GET", f"/images/{image.id}").status == 404


def test_backups_need_backups_enabled_and_go_with_the_server(project):
    client = project.client()
    server = _server(client, "bk")
    answer = project.call("POST", f"/servers/{server.id}/actions/create_image", {"type": "backup"})
    assert answer.status == 422 and answer.error["code"] == "backup_not_enabled", answer.body
    server.enable_backup().wait_until_finished()
    backups = []
    for _ in range(8):
        made = server.create_image(type="backup")
        made.action.wait_until_finished()
        backups.append(made.image.id)
    listed = client.images.get_all(type=["backup"], bound_to=[str(server.id)])
    assert [i.id for i in listed] == backups[1:], "7 backup slots: the oldest goes"
    keep = client.images.get_by_id(backups[-1])
    keep.update(type="snapshot")
    kept = client.images.get_by_id(keep.id)
    assert kept.type == "snapshot" and kept.bound_to is None
    server.disable_backup().wait_until_finished()
    assert client.images.get_all(type=["backup"]) == []
    server.enable_backup().wait_until_finished()
    server.create_image(type="backup").action.wait_until_finished()
    server.delete().wait_until_finished()
    assert client.images.get_all(type=["backup"]) == [], "backups are deleted with their server"
    assert [i.id for i in client.images.get_all(type=["snapshot"])] == [kept.id]


def test_image_errors_name_the_field(project):
    created = project.ok("POST", "/servers", {"name": "e", "server_type": "cx23", "image": "debian-12"})
    server = created["server"]
    for action in [created["action"], *created["next_actions"]]:
        project.wait(action)
    answer = project.call("POST", f"/servers/{server['id']}/actions/create_image", {"type": "app"})
    assert answer.status == 422 and answer.error["details"]["fields"][0]["name"] == "type"
    answer = project.call("GET", "/images?type=bogus")
    assert answer.status == 422 and answer.error["details"]["fields"][0]["name"] == "type"
    answer = project.call("POST", f"/servers/{server['id']}/actions/rebuild", {"image": 999999999})
    assert answer.status == 422 and answer.error["details"]["fields"][0]["name"] == "image"


# --- catalogue: removed server types, ISOs --------------------------------------------------------

def test_removed_server_type_readable_by_id_only(project):
    listed = {t["id"] for t in project.ok("GET", "/server_types?per_page=50")["server_types"]}
    assert 1 not in listed
    cx11 = project.ok("GET", "/server_types/1")["server_type"]
    assert cx11["name"] == "cx11" and cx11["deprecated"] is True
    assert cx11["deprecation"]["unavailable_after"] < dt.datetime.now(dt.timezone.utc).isoformat()
    client = project.client()
    assert client.server_types.get_by_id(1).name == "cx11"
    assert client.server_types.get_by_name("cx11") is None
    answer = project.call("POST", "/servers", {"name": "old", "server_type": 1, "image": "debian-12"})
    assert answer.status == 422 and answer.error["details"]["fields"][0]["name"] in ("server_type", "location")


def test_isos_list_filter_attach(project):
    client = project.client()
    isos = client.isos.get_all()
    names = {i.name for i in isos}
    assert "virtio-win-0.1.266.iso" in names and "FreeBSD-13.4-RELEASE-amd64-disc1.iso" not in names
    assert client.isos.get_by_id(9004).deprecation is not None, "a removed ISO stays readable by id"
    arm = {i.name for i in client.isos.get_all(architecture=["arm"])}
    assert arm == {"FreeBSD-14.3-RELEASE-arm64-aarch64-disc1.iso"}
    arm_any = {i.name for i in client.isos.get_all(architecture=["arm"], include_architecture_wildcard=True)}
    assert arm_any == arm | {"netboot.xyz.iso"}
    server = _server(client, "iso")
    server.attach_iso(client.isos.get_by_name("virtio-win-0.1.266.iso")).wait_until_finished()
    assert client.servers.get_by_id(server.id).iso.name == "virtio-win-0.1.266.iso"
    answer = project.call("POST", f"/servers/{server.id}/actions/attach_iso", {"iso": 9003})
    assert answer.status == 422 and answer.error["details"]["fields"][0]["name"] == "iso"
    server.detach_iso().wait_until_finished()
    assert client.servers.get_by_id(server.id).iso is None


# --- smaller rules --------------------------------------------------------------------------------

def test_server_without_any_network_when_not_started(project):
    body = {"name": "dark", "server_type": "cx23", "image": "debian-12",
            "public_net": {"enable_ipv4": False, "enable_ipv6": False}}
    answer = project.call("POST", "/servers", body)
    assert answer.status == 422 and answer.error["details"]["fields"][0]["name"] == "public_net"
    created = project.ok("POST", "/servers", {**body, "start_after_create": False})
    assert created["next_actions"] == []
    project.wait(created["action"])
    answer = project.call("POST", f"/servers/{created['server']['id']}/actions/poweron")
    assert answer.status == 422 and answer.error["code"] == "unsupported_error", answer.body


def test_error_naming_several_fields(project):
    answer = project.call("POST", "/floating_ips", {"type": "ipv4"})
    assert answer.status == 422
    assert answer.error["message"] == "invalid input in fields 'server', 'home_location'"
    assert [f["name"] for f in answer.error["details"]["fields"]] == ["server", "home_location"]


def test_http_service_timeout_idle_defaults_to_50(project):
    lb = project.ok("POST", "/load_balancers", {"name": "lb", "load_balancer_type": "lb11", "location": "nbg1",
                                                "services": [{"protocol": "http", "listen_port": 80,
                                                              "destination_port": 8080}]})["load_balancer"]
    assert lb["services"][0]["http"]["timeout_idle"] == 50


@pytest.mark.parametrize("ip, code", [("192.0.2.10", "ip_not_owned"), ("198.18.1.1", "cloud_resource_ip_not_allowed"),
                                      ("not-an-ip", "invalid_input")])
def test_ip_targets(project, ip, code):
    lb = project.ok("POST", "/load_balancers", {"name": "lb", "load_balancer_type": "lb11",
                                                "location": "nbg1"})["load_balancer"]
    project.wait(project.ok("GET", f"/load_balancers/{lb['id']}/actions")["actions"][0])
    answer = project.call("POST", f"/load_balancers/{lb['id']}/actions/add_target", {"type": "ip", "ip": {"ip": ip}})
    assert answer.status == 422 and answer.error["code"] == code, answer.body


# --- certificates ---------------------------------------------------------------------------------

def test_uploaded_certificate(project):
    client = project.client()
    cert, pem, key = _self_signed(["example.com", "www.example.com"])
    made = client.certificates.create(name="site", certificate=pem, private_key=key, labels={"t": "1"})
    got = client.certificates.get_by_id(made.id)
    assert got.type == "uploaded" and got.domain_names == ["example.com", "www.example.com"]
    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    assert got.fingerprint == ":".join(digest[i:i + 2] for i in range(0, 64, 2))
    assert got.not_valid_after == cert.not_valid_after_utc and got.not_valid_before == cert.not_valid_before_utc
    assert got.status is None and got.certificate == pem
    assert [c["id"] for c in project.ok("GET", "/certificates?type=uploaded")["certificates"]] == [got.id]
    assert project.ok("GET", "/certificates?type=managed")["certificates"] == []
    got.update(name="site2", labels={"t": "2"})
    assert client.certificates.get_by_name("site2").labels == {"t": "2"}

    answer = project.call("POST", "/certificates", {"name": "bad", "certificate": "nope", "private_key": key})
    assert answer.status == 422 and answer.error["details"]["fields"][0]["name"] == "certificate"
    _other, _pem, other_key = _self_signed(["example.org"])
    answer = project.call("POST", "/certificates", {"name": "bad", "certificate": pem, "private_key": other_key})
    assert answer.status == 422 and answer.error["details"]["fields"][0]["name"] == "private_key"
    answer = project.call("POST", "/certificates", {"name": "site2", "certificate": pem, "private_key": key})
    assert answer.status == 409 and answer.error["code"] == "uniqueness_error"
    assert len(client.certificates.get_all()) == 1, "bad input changes nothing"


def test_managed_certificate_needs_the_zone_and_is_issued_by_the_local_ca(project, cloud):
    client = project.client()
    made = client.certificates.create_managed(name="managed", domain_names=["example.net", "*.example.net"])
    assert made.certificate.status.issuance == "pending" and made.certificate.status.renewal == "unavailable"
    assert made.action.command == "create_certificate"
    final = project.wait({"id": made.action.id})
    assert final["status"] == "error" and final["error"]["code"] == "dns_zone_not_found"
    failed = client.certificates.get_by_id(made.certificate.id)
    assert failed.status.issuance == "failed" and failed.status.error.code == "dns_zone_not_found"

    client.zones.create(name="example.net", mode="primary").action.wait_until_finished()
    retry = failed.retry_issuance()
    retry.wait_until_finished()
    issued = client.certificates.get_by_id(failed.id)
    assert issued.status.issuance == "completed" and issued.status.renewal == "scheduled"
    assert issued.status.error is None
    chain = x509.load_pem_x509_certificates(issued.certificate.encode())
    ca = x509.load_pem_x509_certificate((cloud.state / "ca" / "ca.pem").read_bytes())
    chain[0].verify_directly_issued_by(ca)
    san = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["example.net", "*.example.net"]
    assert (issued.not_valid_after - issued.not_valid_before).days == 90
    answer = project.call("POST", f"/certificates/{issued.id}/actions/retry")
    assert answer.status == 422 and answer.error["code"] == "unsupported_error"


def test_https_service_uses_certificates(project):
    client = project.client()
    _cert, pem, key = _self_signed(["shop.example.com"])
    cert = client.certificates.create(name="shop", certificate=pem, private_key=key)
    pending = project.ok("POST", "/certificates", {"name": "pending", "type": "managed",
                                                   "domain_names": ["nowhere.example"]})["certificate"]
    lb = client.load_balancers.create(name="lb", load_balancer_type=client.load_balancer_types.get_by_name("lb11"),
                                      location=client.locations.get_by_name("nbg1"))
    lb.action.wait_until_finished()
    lb = lb.load_balancer
    no_cert = project.call("POST", f"/load_balancers/{lb.id}/actions/add_service",
                           {"protocol": "https", "listen_port": 443, "destination_port": 80})
    assert no_cert.status == 422 and no_cert.error["details"]["fields"][0]["name"] == "http.certificates"
    not_issued = project.call("POST", f"/load_balancers/{lb.id}/actions/add_service",
                              {"protocol": "https", "listen_port": 443, "destination_port": 80,
                               "http": {"certificates": [pending["id"]]}})
    assert not_issued.status == 422
    assert not_issued.error["details"]["fields"][0]["name"] == "http.certificates[0]"
    lb.add_service(LoadBalancerService(protocol="https", listen_port=443, destination_port=80,
                                       http=LoadBalancerServiceHttp(certificates=[Certificate(id=cert.id)],
                                                                    redirect_http=True))).wait_until_finished()
    service = client.load_balancers.get_by_id(lb.id).services[0]
    assert [c.id for c in service.http.certificates] == [cert.id] and service.http.timeout_idle == 50
    used_by = project.ok("GET", f"/certificates/{cert.id}")["certificate"]["used_by"]
    assert used_by == [{"id": lb.id, "type": "load_balancer"}]
    answer = project.call("DELETE", f"/certificates/{cert.id}")
    assert answer.status == 422 and answer.error["code"] == "resource_in_use"
    lb.delete_service(service).wait_until_finished()
    assert project.ok("GET", f"/certificates/{cert.id}")["certificate"]["used_by"] == []
    assert project.call("DELETE", f"/certificates/{cert.id}").status == 204


# --- DNS zones ------------------------------------------------------------------------------------

def test_zone_and_rrsets_with_hcloud_python(project):
    client = project.client()
    made = client.zones.create(name="example.com", mode="primary", ttl=3600, labels={"env": "prod"},
                               rrsets=[ZoneRRSet(name="www", type="A", records=[ZoneRecord(value="198.18.1.10")])])
    made.action.wait_until_finished()
    zone = client.zones.get("example.com")
    assert zone.id == made.zone.id and zone.record_count == 5            # SOA, 3 NS, www A
    assert zone.authoritative_nameservers.assigned == ["hydrogen.ns.hetzner.com.", "oxygen.ns.hetzner.com.",
                                                       "helium.ns.hetzner.de."]
    rrsets = {(r.name, r.type) for r in client.zones.get_rrset_all(zone)}
    assert rrsets == {("@", "SOA"), ("@", "NS"), ("www", "A")}

    created = client.zones.create_rrset(zone, name="api", type="AAAA", ttl=300,
                                        records=[ZoneRecord(value="2001:db8::1", comment="v6")])
    created.action.wait_until_finished()
    rrset = client.zones.get_rrset(zone, "api", "AAAA")
    assert rrset.id == "api/AAAA" and rrset.ttl == 300 and rrset.records[0].comment == "v6"
    client.zones.add_rrset_records(rrset, records=[ZoneRecord(value="2001:db8::2")]).wait_until_finished()
    client.zones.set_rrset_records(rrset, records=[ZoneRecord(value="2001:db8::3")]).wait_until_finished()
    client.zones.change_rrset_ttl(rrset, ttl=None).wait_until_finished()
    rrset = client.zones.get_rrset(zone, "api", "AAAA")
    assert [r.value for r in rrset.records] == ["2001:db8::3"] and rrset.ttl is None
    client.zones.change_rrset_protection(rrset, change=True).wait_until_finished()
    answer = project.call("POST", f"/zones/{zone.id}/rrsets/api/AAAA/actions/set_records",
                          {"records": [{"value": "2001:db8::4"}]})
    assert answer.status == 423 and answer.error["code"] == "protected"
    client.zones.change_rrset_protection(rrset, change=False).wait_until_finished()
    client.zones.remove_rrset_records(rrset, records=[ZoneRecord(value="2001:db8::3")]).wait_until_finished()
    assert project.call("GET", "/zones/example.com/rrsets/api/AAAA").status == 404, "an empty RRSet goes away"

    # add_records creates a missing RRSet; the zone file has every record and imports back
    client.zones.add_rrset_records(ZoneRRSet(zone=zone, name="mail", type="MX"),
                                   records=[ZoneRecord(value="10 mx.example.com.")]).wait_until_finished()
    zonefile = client.zones.export_zonefile(zone).zonefile
    assert "mail\tIN\tMX\t10 mx.example.com." in zonefile and "www\tIN\tA\t198.18.1.10" in zonefile
    client.zones.import_zonefile(zone, zonefile + "txt 600 IN TXT \"hello\"\n").wait_until_finished()
    txt = client.zones.get_rrset(zone, "txt", "TXT")
    assert txt.ttl == 600 and txt.records[0].value == '"hello"'
    client.zones.change_ttl(zone, ttl=7200).wait_until_finished()
    client.zones.change_protection(zone, delete=True).wait_until_finished()
    assert project.call("DELETE", f"/zones/{zone.id}").error["code"] == "protected"
    client.zones.change_protection(zone, delete=False).wait_until_finished()
    client.zones.delete(zone).action.wait_until_finished()
    assert client.zones.get_all() == []


def test_zone_input_errors_name_the_field(project):
    answer = project.call("POST", "/zones", {"name": "Example..com", "mode": "primary"})
    assert answer.status == 422 and answer.error["details"]["fields"][0]["name"] == "name"
    answer = project.call("POST", "/zones", {"name": "example.org", "mode": "primary", "rrsets": [
        {"name": "www", "type": "A", "records": [{"value": "not-an-ip"}]}]})
    assert answer.status == 422 and answer.error["details"]["fields"][0]["name"] == "rrsets[0].records[0].value"
    assert project.ok("GET", "/zones")["zones"] == [], "bad input changes nothing"
    made = project.ok("POST", "/zones", {"name": "example.org", "mode": "primary", "rrsets": [
        {"name": "www", "type": "CNAME", "records": [{"value": "example.org."}]}]})
    project.wait(made["action"])
    answer = project.call("POST", "/zones/example.org/rrsets", {"name": "www", "type": "A",
                                                               "records": [{"value": "198.18.0.1"}]})
    assert answer.status == 422 and answer.error["details"]["fields"][0]["name"] == "type"
    secondary = project.ok("POST", "/zones", {"name": "example.info", "mode": "secondary",
                                              "primary_nameservers": [{"address": "198.51.100.1"}]})["zone"]
    answer = project.call("GET", f"/zones/{secondary['id']}/rrsets")
    assert answer.status == 422 and answer.error["code"] == "incorrect_zone_mode"
    assert Zone  # the client type is what hcloud-python hands back
