# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The API token the modules and the inventory plugin would use, for playbooks that check or pass it
themselves (site.yml's input check, verify.yml's GET /pricing): module_utils/credentials.py, so a
playbook cannot accept fewer sources, or another order, than the modules do."""

from __future__ import annotations

DOCUMENTATION = r"""
name: hcloud_token
version_added: 0.1.0
short_description: The Hetzner Cloud API token the collection's modules would use
description:
  - Returns the first token found, in the order the modules and the inventory plugin use when their
    C(api_token) option is not set. First the E(HCLOUD_TOKEN) environment variable, then E(HETZNER_API_TOKEN)
    (a C(.env) file exported with C(set -a; . ./.env)), then the token of the hcloud CLI's active context in
    C(~/.config/hcloud/cli.toml) (or E(HCLOUD_CONFIG); the context E(HCLOUD_CONTEXT), else the file's
    C(active_context)).
  - Returns an empty string when there is none, so a playbook can say what to set.
  - The value is a secret. Use it only where it is not printed, in a length check or a C(no_log) task.
author:
  - autoscale.hetzner contributors (@autoscale)
options: {}
"""

EXAMPLES = r"""
- name: Stop early without a token
  ansible.builtin.assert:
    that: lookup('autoscale.hetzner.hcloud_token') | length > 0
    fail_msg: set HCLOUD_TOKEN, HETZNER_API_TOKEN, or select an hcloud CLI context (hcloud context use NAME)
    quiet: true

- name: Ask the API for its prices
  ansible.builtin.uri:
    url: https://api.hetzner.cloud/v1/pricing
    headers:
      Authorization: "Bearer {{ lookup('autoscale.hetzner.hcloud_token') }}"
  no_log: true
  register: pricing
"""

RETURN = r"""
_raw:
  description: The token, or an empty string when no source has one.
  type: list
  elements: str
"""

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.autoscale.hetzner.plugins.module_utils.credentials import find_token


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        if terms:
            raise AnsibleLookupError("autoscale.hetzner.hcloud_token takes no terms (it reads the environment "
                                     "and the hcloud CLI's configuration)")
        self.set_options(var_options=variables, direct=kwargs)
        return [find_token() or ""]
