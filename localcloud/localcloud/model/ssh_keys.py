"""SSH keys: fingerprint computed from the key, unique by name and by fingerprint."""
from __future__ import annotations

import base64
import binascii
import hashlib
import struct

from .. import errors
from ..labels import validate_labels
from .base import Outcome, ResourceModel

KEY_TYPES = (
    "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
)


def fingerprint(public_key: str) -> str:
    """MD5 of the decoded key blob, as the API and `ssh-keygen -E md5 -l` show it; invalid_input if malformed."""
    def bad(reason):
        return errors.invalid_input(
            "public_key", f"is not a valid OpenSSH public key ({reason}); paste one line like 'ssh-ed25519 AAAA... comment'"
        )

    if not isinstance(public_key, str):
        raise bad("it must be a string")
    parts = public_key.strip().split()
    if len(parts) < 2:
        raise bad("expected '<type> <base64>'")
    key_type, encoded = parts[0], parts[1]
    if key_type not in KEY_TYPES:
        raise bad(f"unsupported key type '{key_type}'")
    try:
        blob = base64.b64decode(encoded, validate=True)
        (length,) = struct.unpack(">I", blob[:4])
        embedded = blob[4:4 + length].decode()
    except (binascii.Error, struct.error, UnicodeDecodeError, ValueError):
        raise bad("the base64 part does not decode") from None
    if embedded != key_type:
        raise bad(f"the key data is of type '{embedded}', not '{key_type}'")
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, 32, 2))


class SSHKeys(ResourceModel):
    kind = "ssh_key"
    plural = "ssh_keys"
    label = "SSH key"
    sort_fields = ("id", "name")
    has_actions = False
    id_start = 2000

    def filter(self, items, query):
        wanted = query.get("fingerprint")
        return [k for k in items if k["fingerprint"] == wanted] if wanted is not None else items

    def create(self, project: int, body: dict) -> dict:
        self.validate_name(body.get("name"))
        print_ = fingerprint(body.get("public_key"))
        labels = validate_labels(body.get("labels"))
        self.unique_name(project, body["name"])
        for other in self.objects(project):
            if other["fingerprint"] == print_:
                raise errors.uniqueness("public_key", "SSH key with the same fingerprint already exists")
        key = self.new(project, name=body["name"], fingerprint=print_,
                       public_key=body["public_key"].strip(), labels=labels)
        self.store.put(self.kind, key)
        return Outcome(key)

    def delete(self, project: int, oid) -> None:
        key = self.get(project, oid)
        self.store.delete(self.kind, key["id"])
