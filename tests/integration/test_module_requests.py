# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a per-resource module costs on an unchanged run, in a project with 500 other resources.

A module reads its own resource by name and the resources it references (a server's network and
firewall, a volume's server), never whole lists: at most 3 requests, counted by the local cloud.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import yaml

from test_stack import PUBLIC_KEY, admin_url, new_project  # noqa: E402  pylint: disable=wrong-import-position

# The resources under test, in the order a playbook creates them.
MODULE_TASKS = [
    ("ssh_key", {"name": "req-key", "public_key": PUBLIC_KEY}),
    ("placement_group", {"name": "req-pg"}),
    ("network", {"name": "req-net", "ip_range": "10.20.0.0/16",
                 "subnets": [{"ip_range": "10.20.1.0/24", "network_zone": "eu-central"}]}),
    ("firewall", {"name": "req-fw", "rules": [{"protocol": "tcp", "port": "443", "source_ips": ["0.0.0.0/0"]}]}),
    ("server", {"name": "req-srv", "server_type": "cx23", "image": "debian-12", "location": "nbg1",
                "ssh_keys": ["req-key"], "networks": [{"network": "req-net", "ip": "10.20.1.10"}],
                "firewalls": ["req-fw"], "placement_group": "req-pg", "labels": {"role": "web"}}),
    ("volume", {"name": "req-vol", "size": 10, "server": "req-srv", "format": "ext4"}),
    ("floating_ip", {"name": "req-ip", "type": "ipv4", "server": "req-srv", "home_location": "nbg1"}),
    ("load_balancer", {"name": "req-lb", "load_balancer_type": "lb11", "location": "nbg1", "network": "req-net",
                       "services": [{"protocol": "http", "listen_port": 80}],
                       "targets": [{"type": "label_selector", "label_selector": "role=web", "use_private_ip": True}]}),
    ("firewall", {"name": "req-fw", "apply_to_servers": ["req-srv"],
                  "rules": [{"protocol": "tcp", "port": "443", "source_ips": ["0.0.0.0/0"]}]}),
    # the info modules read what they are asked for, by name (server_info used to list servers and
    # firewalls twice)
    ("server_info", {"name": "req-srv"}),
    ("volume_info", {"name": "req-vol"}),
    ("load_balancer_info", {"name": "req-lb"}),
    ("firewall_info", {"name": "req-fw"}),
    ("network_info", {"name": "req-net"}),
    ("floating_ip_info", {"name": "req-ip"}),
]
OTHERS = 500


def fill_project(localcloud, token):
    """500 resources that are none of the module's business: servers, networks, firewalls, volumes,
    placement groups (100 each)."""
    headers = {"Authorization": "Bearer " + token}

    def create(item):
        path, body = item
        answer = requests.post("%s/%s" % (localcloud["endpoint"], path), json=body, headers=headers, timeout=30)
        assert answer.status_code in (200, 201), answer.text

    items = []
    for i in range(OTHERS // 5):
        items.append(("servers", {"name": "other-%d" % i, "server_type": "cx23", "image": "debian-12",
                                  "location": "fsn1"}))
        items.append(("networks", {"name": "other-%d" % i, "ip_range": "10.%d.0.0/16" % (100 + i % 100)}))
        items.append(("firewalls", {"name": "other-%d" % i}))
        items.append(("volumes", {"name": "other-%d" % i, "size": 10, "location": "fsn1"}))
        items.append(("placement_groups", {"name": "other-%d" % i, "type": "spread"}))
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(create, items))


def stats_task(name):
    return {"name": name, "ansible.builtin.uri": {"url": "{{ admin }}/_localcloud/stats", "return_content": True},
            "register": name.replace(" ", "_")}


@pytest.mark.long
def test_unchanged_module_runs_send_at_most_three_requests_among_500_other_resources(localcloud, run_playbook):
    token = new_project(localcloud, "module-requests")
    fill_project(localcloud, token)
    tasks = []
    for index, (module, options) in enumerate(MODULE_TASKS):
        tasks.append({"name": "create %d %s" % (index, module), "autoscale.hetzner." + module: options})
    for index, (module, options) in enumerate(MODULE_TASKS):
        tasks.append(stats_task("before %d" % index))
        tasks.append({"name": "rerun %d %s" % (index, module), "autoscale.hetzner." + module: options})
        tasks.append(stats_task("after %d" % index))
    playbook = yaml.safe_dump([{"hosts": "localhost", "gather_facts": False,
                                "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}",
                                         "admin": admin_url(localcloud, "")},
                                "tasks": tasks}], sort_keys=False, width=1000)
    result = run_playbook(playbook, env={"HCLOUD_TOKEN": token, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"})
    assert result.rc == 0, result.output[-4000:]
    outcomes = {task["task"]["name"]: task["hosts"]["localhost"]
                for play in json.loads(result.stdout)["plays"] for task in play["tasks"]}
    costs = {}
    for index, (module, _options) in enumerate(MODULE_TASKS):
        rerun = outcomes["rerun %d %s" % (index, module)]
        assert rerun["changed"] is False, (module, rerun.get("plan"))
        before = json.loads(outcomes["before %d" % index]["content"])["total"]
        after = json.loads(outcomes["after %d" % index]["content"])["total"]
        costs["%d %s" % (index, module)] = after - before
    print("requests per unchanged module run:", costs)
    assert all(cost <= 3 for cost in costs.values()), costs
    assert outcomes["rerun 4 server"]["hcloud_server"]["firewalls"] == ["req-fw"]
    assert outcomes["rerun 4 server"]["hcloud_server"]["networks"][0]["network"] == "req-net"
    found = outcomes["rerun 9 server_info"]["hcloud_server_info"]
    assert [s["name"] for s in found] == ["req-srv"] and found[0]["firewalls"] == ["req-fw"], found
