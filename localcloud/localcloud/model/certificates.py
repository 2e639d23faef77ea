"""Certificates: uploaded (PEM checked, fingerprint, validity and domain names read from it) and
managed (issued by the local cloud's own CA for domains whose DNS zone is in the project, as
Hetzner issues them through Let's Encrypt for domains in Hetzner DNS).

The CA lives in the state directory (``ca/ca.key``, ``ca/ca.pem``), so certificates issued before a
restart stay verifiable with the same ``ca.pem``; ``localcloud.testing`` and the docs point clients
at it to trust the load balancers' TLS.
"""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .. import errors
from ..labels import validate_labels
from .base import Outcome, ResourceModel, effect

DOMAIN_RE = re.compile(r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
MANAGED_VALIDITY = dt.timedelta(days=90)        # Let's Encrypt's lifetime
MAX_DOMAINS = 100


def _time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def fingerprint(cert: x509.Certificate) -> str:
    digest = cert.fingerprint(hashes.SHA256()).hex()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def domain_names(cert: x509.Certificate) -> list[str]:
    """DNS names of the subjectAltName extension; the subject CN when there is none."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = san.get_values_for_type(x509.DNSName)
        if names:
            return list(names)
    except x509.ExtensionNotFound:
        pass
    return [attr.value for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]


def parse_uploaded(certificate, private_key) -> tuple[list[x509.Certificate], object]:
    """The chain and key of an uploaded certificate; invalid_input naming the field otherwise."""
    if not isinstance(certificate, str) or "-----BEGIN CERTIFICATE-----" not in certificate:
        raise errors.invalid_input("certificate", "is required for an uploaded certificate: the certificate "
                                                  "(and its chain) in PEM format, '-----BEGIN CERTIFICATE-----' ...")
    try:
        chain = x509.load_pem_x509_certificates(certificate.encode())
    except ValueError as err:
        raise errors.invalid_input("certificate", f"is not a valid PEM certificate: {err}") from None
    if not isinstance(private_key, str) or "PRIVATE KEY-----" not in private_key:
        raise errors.invalid_input("private_key", "is required for an uploaded certificate: the unencrypted "
                                                  "private key in PEM format")
    try:
        key = serialization.load_pem_private_key(private_key.encode(), password=None)
    except (ValueError, TypeError) as err:
        raise errors.invalid_input("private_key", f"is not a valid unencrypted PEM private key: {err}") from None
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    leaf = chain[0].public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if public != leaf:
        raise errors.invalid_input("private_key", "does not belong to the certificate (the first certificate in "
                                                  "the chain must be the one the key signs for)")
    for child, parent in zip(chain, chain[1:]):
        if child.issuer != parent.subject:
            raise errors.invalid_input("certificate", "the chain is out of order: each certificate must be followed "
                                                      "by the one that issued it")
    return chain, key


class LocalCA:
    """The local cloud's certificate authority (an ECDSA P-256 key and a self-signed root)."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self._key = None
        self._cert = None

    @property
    def pem_path(self) -> Path:
        return self.directory / "ca.pem"

    def _load(self):
        if self._cert is not None:
            return
        key_path = self.directory / "ca.key"
        if key_path.exists() and self.pem_path.exists():
            self._key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            self._cert = x509.load_pem_x509_certificate(self.pem_path.read_bytes())
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "localcloud"),
                          x509.NameAttribute(NameOID.COMMON_NAME, "localcloud CA")])
        now = dt.datetime.now(dt.timezone.utc)
        self._cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        key_path.write_bytes(self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()))
        key_path.chmod(0o600)
        self.pem_path.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, domains: list[str]) -> tuple[str, str]:
        """(certificate chain PEM, private key PEM) for the domains, valid for 90 days from now."""
        self._load()
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domains[0])]))
            .issuer_name(self._cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + MANAGED_VALIDITY)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in domains]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        chain = cert.public_bytes(serialization.Encoding.PEM) + self._cert.public_bytes(serialization.Encoding.PEM)
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        return chain.decode(), key_pem.decode()


class Certificates(ResourceModel):
    kind = "certificate"
    plural = "certificates"
    label = "Certificate"
    id_start = 4000

    def __init__(self, cloud):
        super().__init__(cloud)
        self.ca = LocalCA(cloud.state_dir / "ca")

    def filter(self, items, query):
        kinds = query.getlist("type")
        for kind in kinds:
            if kind not in ("uploaded", "managed"):
                raise errors.invalid_input("type", f"'{kind}' is not uploaded or managed")
        return [c for c in items if c["type"] in kinds] if kinds else items

    def render(self, obj: dict) -> dict:
        data = super().render(obj)
        data["used_by"] = [{"id": lb_id, "type": "load_balancer"} for lb_id in self.used_by(obj)]
        return data

    def used_by(self, cert: dict) -> list[int]:
        def build():
            index: dict[int, list[int]] = {}
            for lb in self.cloud.load_balancers.objects(cert["_project"]):
                for cid in sorted({c for s in lb["services"] for c in ((s.get("http") or {}).get("certificates") or [])}):
                    index.setdefault(cid, []).append(lb["id"])
            return index
        return self.cloud.memo(("certificate_users", cert["_project"]), build).get(cert["id"], [])

    # --- creation
    def create(self, project: int, body: dict) -> dict:
        self.validate_name(body.get("name"))
        labels = validate_labels(body.get("labels"))
        kind = body.get("type") or "uploaded"
        if kind not in ("uploaded", "managed"):
            raise errors.invalid_input("type", f"'{kind}' is not uploaded or managed")
        if kind == "uploaded":
            chain, _key = parse_uploaded(body.get("certificate"), body.get("private_key"))
            leaf = chain[0]
            self.unique_name(project, body["name"])
            cert = self.new(project, name=body["name"], labels=labels, type="uploaded",
                            certificate=body["certificate"], domain_names=domain_names(leaf),
                            fingerprint=fingerprint(leaf), not_valid_before=_time(leaf.not_valid_before_utc),
                            not_valid_after=_time(leaf.not_valid_after_utc), status=None,
                            _private_key=body["private_key"])
            self.store.put(self.kind, cert)
            return Outcome(cert, action=None)
        domains = self._domains(body.get("domain_names"))
        self.unique_name(project, body["name"])
        cert = self.new(project, name=body["name"], labels=labels, type="managed", certificate=None,
                        domain_names=domains, fingerprint=None, not_valid_before=None, not_valid_after=None,
                        status={"issuance": "pending", "renewal": "unavailable", "error": None}, _private_key=None)
        self.store.put(self.kind, cert)
        action = self.cloud.start_action(project, "create_certificate", [(self.kind, cert["id"])],
                                         effect_name="certificate_issue")
        return Outcome(cert, action=action)

    @staticmethod
    def _domains(value) -> list[str]:
        if not isinstance(value, list) or not value:
            raise errors.invalid_input("domain_names", "a managed certificate needs at least one domain name, "
                                                       "e.g. [\"example.com\", \"*.example.com\"]")
        if len(value) > MAX_DOMAINS:
            raise errors.invalid_input("domain_names", f"at most {MAX_DOMAINS} domain names")
        domains = []
        for index, name in enumerate(value):
            if not isinstance(name, str) or not DOMAIN_RE.match(name.lower()):
                raise errors.invalid_input(f"domain_names[{index}]", f"'{name}' is not a domain name "
                                                                     "(e.g. example.com or *.example.com)")
            if name.lower() not in domains:
                domains.append(name.lower())
        return domains

    # --- retry (managed only, after a failed issuance or renewal)
    def retry(self, project: int, oid, body: dict) -> dict:
        cert = self.get(project, oid)
        self.cloud.assert_unlocked(self.kind, cert["id"], "certificate")
        status = cert["status"] or {}
        if cert["type"] != "managed" or "failed" not in (status.get("issuance"), status.get("renewal")):
            raise errors.unsupported(f"certificate {cert['id']} has no failed issuance or renewal "
                                                      "to retry (only managed certificates can be retried)")
        edited = self.store.edit(self.kind, cert["id"])
        if status.get("issuance") == "failed":
            edited["status"] = {"issuance": "pending", "renewal": "unavailable", "error": None}
        else:
            edited["status"] = {**status, "renewal": "pending", "error": None}
        return self.cloud.start_action(project, "issue_certificate", [(self.kind, cert["id"])],
                                       effect_name="certificate_issue")

    # --- issuance: the domains must be in a primary DNS zone of the project
    def zone_problem(self, project: int, domains: list[str]) -> tuple[str, str] | None:
        zones = self.cloud.resources["zones"].objects(project)
        for domain in domains:
            bare = domain[2:] if domain.startswith("*.") else domain
            zone = max((z for z in zones if bare == z["name"] or bare.endswith("." + z["name"])),
                       key=lambda z: len(z["name"]), default=None)
            if zone is None:
                return "dns_zone_not_found", (f"no DNS zone of this project contains {domain}: create the zone "
                                              "(POST /zones) so the domain can be validated")
            if zone["mode"] == "secondary":
                return "dns_zone_is_secondary_zone", (f"zone {zone['name']} is a secondary zone: validation needs "
                                                      "a primary zone")
        return None

    def issue(self, cert: dict) -> None:
        chain_pem, key_pem = self.ca.issue(cert["domain_names"])
        leaf = x509.load_pem_x509_certificates(chain_pem.encode())[0]
        cert.update(certificate=chain_pem, fingerprint=fingerprint(leaf),
                    not_valid_before=_time(leaf.not_valid_before_utc), not_valid_after=_time(leaf.not_valid_after_utc),
                    status={"issuance": "completed", "renewal": "scheduled", "error": None}, _private_key=key_pem)

    # --- use by load balancers
    def check_service(self, project: int, service: dict, field: str, max_certificates: int) -> None:
        """Every certificate an https service names exists in the project and is issued."""
        http = service.get("http") or {}
        refs = http.get("certificates") or []
        prefix = f"{field}.http.certificates" if field else "http.certificates"
        if not isinstance(refs, list):
            raise errors.invalid_input(prefix, "must be a list of certificate IDs")
        if service["protocol"] != "https":
            if refs:
                raise errors.invalid_input(prefix, f"only https services take certificates, this one is {service['protocol']}")
            return
        if len(refs) > max_certificates:
            raise errors.invalid_input(prefix, f"this load balancer type takes at most {max_certificates} certificates")
        for index, ref in enumerate(refs):
            if not isinstance(ref, int) or isinstance(ref, bool):
                raise errors.invalid_input(f"{prefix}[{index}]", "must be a certificate ID")
            cert = self.store.get(self.kind, ref)
            if cert is None or cert["_project"] != project:
                raise errors.invalid_input(f"{prefix}[{index}]", f"certificate {ref} does not exist in this project")
            if cert["certificate"] is None:
                raise errors.invalid_input(f"{prefix}[{index}]", f"certificate {ref} is not issued yet "
                                                                 f"(issuance {cert['status']['issuance']})")

    def delete(self, project: int, oid) -> None:
        cert = self.get(project, oid)
        users = self.used_by(cert)
        if users:
            raise errors.resource_in_use(f"certificate {cert['id']} is still in use by load balancer "
                                         f"{', '.join(map(str, users))}: remove it from their https services first")
        self.store.delete(self.kind, cert["id"])
        return None


@effect("certificate_issue")
def _certificate_issue(cloud, action, args):
    cert_id = action["resources"][0]["id"]
    cert = cloud.store.get("certificate", cert_id)
    if cert is None:
        return
    model = cloud.resources["certificates"]
    edited = cloud.store.edit("certificate", cert_id)
    problem = model.zone_problem(cert["_project"], cert["domain_names"])
    if problem is None:
        model.issue(edited)
        return
    code, message = problem
    status = edited["status"]
    if status["issuance"] == "completed":
        edited["status"] = {**status, "renewal": "failed", "error": {"code": code, "message": message}}
    else:
        edited["status"] = {"issuance": "failed", "renewal": "unavailable", "error": {"code": code, "message": message}}
    action.update(status="error", error={"code": code, "message": message})

