# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A read-only stand-in for GET /servers and GET /networks, with paging and a request log.

Just enough of the API for the inventory plugin's unit tests; the real behaviour is tested
against the local cloud in tests/integration/test_inventory.py.
"""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


def make_server(server_id, name, labels=None, status="running", location="nbg1", server_type="cx23",
                ipv4=None, private_net=None, image="debian-12"):
    return {
        "id": server_id,
        "name": name,
        "status": status,
        "created": "2026-01-01T00:00:00Z",
        "server_type": {"id": 1, "name": server_type, "architecture": "x86", "cores": 2, "memory": 4.0, "disk": 40},
        "location": {"id": 2, "name": location, "network_zone": "eu-central"},
        "image": {"id": 114690387, "name": image, "description": image, "os_flavor": image.split("-")[0]},
        "public_net": {
            "ipv4": {"id": server_id, "ip": ipv4, "blocked": False, "dns_ptr": ""} if ipv4 else None,
            "ipv6": {"id": server_id, "ip": "2001:db8:%x::/64" % server_id, "blocked": False, "dns_ptr": []},
            "floating_ips": [],
            "firewalls": [],
        },
        "private_net": [
            {"network": net, "ip": ip, "alias_ips": [], "mac_address": "86:00:00:00:00:01"}
            for net, ip in (private_net or [])
        ],
        "labels": labels or {},
        "protection": {"delete": False, "rebuild": False},
        "placement_group": None,
        "volumes": [],
        "load_balancers": [],
        "rescue_enabled": False,
        "locked": False,
    }


def _matches(labels, selector):
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


class FakeHcloudAPI:
    """Serves servers/networks on 127.0.0.1:<random port>/v1 and records every request."""

    def __init__(self, servers=(), networks=()):
        self.servers = list(servers)
        self.networks = list(networks)
        self.requests = []
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                url = urlparse(self.path)
                query = parse_qs(url.query)
                with api._lock:
                    api.requests.append((url.path, query))
                if self.headers.get("Authorization") != "Bearer test-token":
                    return self._send(401, {"error": {"code": "unauthorized", "message": "unable to authenticate"}})
                if url.path == "/v1/servers":
                    items = api.servers
                    if "label_selector" in query:
                        items = [s for s in items if _matches(s["labels"], query["label_selector"][0])]
                    if "status" in query:
                        items = [s for s in items if s["status"] in query["status"]]
                    return self._send_page("servers", items, query)
                if url.path == "/v1/networks":
                    return self._send_page("networks", api.networks, query)
                return self._send(404, {"error": {"code": "not_found", "message": "not found"}})

            def _send_page(self, key, items, query):
                page = int(query.get("page", ["1"])[0])
                per_page = min(int(query.get("per_page", ["25"])[0]), 50)
                last_page = max(1, math.ceil(len(items) / per_page))
                body = {
                    key: items[(page - 1) * per_page: page * per_page],
                    "meta": {"pagination": {
                        "page": page, "per_page": per_page,
                        "previous_page": page - 1 if page > 1 else None,
                        "next_page": page + 1 if page < last_page else None,
                        "last_page": last_page, "total_entries": len(items),
                    }},
                }
                return self._send(200, body)

            def _send(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = "http://127.0.0.1:%d/v1" % self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()
