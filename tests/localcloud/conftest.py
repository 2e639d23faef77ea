"""Shared fixtures: one local cloud per test session (per xdist worker), a fresh project per test."""
from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO / "localcloud") not in sys.path:
    sys.path.insert(0, str(_REPO / "localcloud"))

from localcloud.testing import LONG_MARKER, RunningCloud, long_tests_first, start_cloud  # noqa: E402

# The Hetzner OpenAPI spec lives beside the repository (../shared), never inside it.
SPEC_PATH = _REPO.parent / "shared" / "specs" / "hcloud-openapi.json"
ACTION_TIME = 0.05


def pytest_configure(config):
    config.addinivalue_line("markers", LONG_MARKER)


def pytest_collection_modifyitems(items):
    long_tests_first(items)


@dataclass
class Answer:
    status: int
    body: dict | None
    headers: dict               # lower-case names

    @property
    def error(self) -> dict:
        return (self.body or {}).get("error") or {}


def call(endpoint: str, token: str | None, method: str, path: str, body=None, raw: bytes | None = None,
         timeout: float = 30) -> Answer:
    """One HTTP request to the API; never raises on HTTP errors."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(endpoint + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            content = response.read()
            status, hdrs = response.status, {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as err:
        content, status, hdrs = err.read(), err.code, {k.lower(): v for k, v in err.headers.items()}
    return Answer(status, json.loads(content) if content else None, hdrs)


@dataclass
class Project:
    cloud: RunningCloud
    token: str
    readonly_token: str

    @property
    def endpoint(self) -> str:
        return self.cloud.endpoint

    @property
    def env(self) -> dict[str, str]:
        return {"HCLOUD_ENDPOINT": self.cloud.endpoint, "HCLOUD_TOKEN": self.token}

    def call(self, method: str, path: str, body=None, token: str | None = "default", **kw) -> Answer:
        return call(self.endpoint, self.token if token == "default" else token, method, path, body, **kw)

    def ok(self, method: str, path: str, body=None) -> dict | None:
        answer = self.call(method, path, body)
        assert answer.status < 300, (method, path, body, answer.status, answer.body)
        return answer.body

    def wait(self, action: dict, timeout: float = 20) -> dict:
        import time
        deadline = time.time() + timeout
        while True:
            current = self.ok("GET", f"/actions/{action['id']}")["action"]
            if current["status"] != "running":
                return current
            assert time.time() < deadline, f"action {action} still running"
            time.sleep(0.03)

    def client(self, **kw):
        from hcloud import Client
        return Client(token=self.token, api_endpoint=self.endpoint, poll_interval=0.05, **kw)


def new_project(cloud: RunningCloud, name: str = "test") -> Project:
    made = cloud.admin("POST", "projects", {"name": name})
    return Project(cloud, made["token"], made["readonly_token"])


@pytest.fixture(scope="session")
def cloud(tmp_path_factory):
    running = start_cloud(tmp_path_factory.mktemp("localcloud"), "--action-time", str(ACTION_TIME), "--rate-limit", "0")
    yield running
    running.stop()


@pytest.fixture
def project(cloud, request) -> Project:
    return new_project(cloud, request.node.name[:60])


def spec_missing() -> None:
    """Skip a spec-based test when the spec is not beside the repository, but fail in CI
    (``CI=true`` from .ci/run), where a missing spec would silently drop every conformance check."""
    if SPEC_PATH.exists():
        return
    message = f"the Hetzner OpenAPI spec is not at {SPEC_PATH} (../shared/specs/ relative to the repository)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def null_tolerant(node):
    """OpenAPI 3.0 ignores ``nullable`` next to a bare ``allOf`` (no ``type``), so the spec's
    ``"deprecation": {"allOf": [$ref], "nullable": true}`` would reject the null the real API
    returns. Rewrite those to ``anyOf: [{allOf}, null]``."""
    if isinstance(node, list):
        return [null_tolerant(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: null_tolerant(v) for k, v in node.items()}
    if node.get("nullable") is True and "allOf" in node and "type" not in node:
        node["anyOf"] = [{"allOf": node.pop("allOf")}, {"enum": [None]}]
    return node


@pytest.fixture(scope="session")
def spec() -> dict:
    spec_missing()
    return json.loads(SPEC_PATH.read_text())


def ssh_public_key(seed: int | str, comment: str = "test") -> str:
    """A well-formed ed25519 public key line, distinct per seed (no ssh-keygen needed)."""
    import base64
    import hashlib
    import struct

    def part(data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + data

    blob = part(b"ssh-ed25519") + part(hashlib.sha256(str(seed).encode()).digest())
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} {comment}"
