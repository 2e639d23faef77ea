# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Common options of every autoscale.hetzner module that talks to the Hetzner Cloud API.
    DOCUMENTATION = r"""
options:
  api_token:
    description:
      - The API token of the Hetzner Cloud project (Read & Write for modules that change things).
      - Keep it in an ansible-vault encrypted variable and pass it to every module of the collection
        at once with C(module_defaults) for C(group/autoscale.hetzner.hcloud).
      - If not set, the first of these is used, in this order
        - the E(HCLOUD_TOKEN) environment variable,
        - the E(HETZNER_API_TOKEN) environment variable (a C(.env) file exported with C(set -a; . ./.env)),
        - the token of the hcloud CLI's active context (C(hcloud context use NAME)) in
          C(~/.config/hcloud/cli.toml), or the file in E(HCLOUD_CONFIG), context E(HCLOUD_CONTEXT) if set.
      - The module fails, naming these sources, if none has a token. The token is never printed
        (it is a C(no_log) value, also at C(-vvvv) and in error messages).
    type: str
  api_endpoint:
    description:
      - The base URL of the Hetzner Cloud API.
      - If not set, the value of the E(HCLOUD_ENDPOINT) environment variable is used, then the default.
      - Point it at the local cloud (C(localcloud serve)) for tests.
    default: https://api.hetzner.cloud/v1
    type: str
    aliases: [endpoint]
requirements:
  - hcloud >= 2.0 (the official Hetzner Cloud Python library)
seealso:
  - name: Hetzner Cloud API reference
    description: Complete reference of the API these modules call.
    link: https://docs.hetzner.cloud
"""

    # Options and attributes shared by every *_info module (they only read).
    INFO = r"""
attributes:
  check_mode:
    support: full
    description: Can run in check_mode and return changed status prediction without modifying target.
    details: This module only reads.
  diff_mode:
    support: none
    description: Reading does not change anything, so there is no diff.
options:
  id:
    description: Only the object with this ID.
    type: int
  name:
    description: Only the object with exactly this name.
    type: str
  label_selector:
    description: Only objects whose labels match this selector, for example C(env=prod,role in (web,db)).
    type: str
"""

    # Attributes shared by every resource module (they plan, then change).
    RESOURCE = r"""
attributes:
  check_mode:
    support: full
    description: Can run in check_mode and return changed status prediction without modifying target.
    details: Returns the planned object, with the plan the real run would carry out.
  diff_mode:
    support: full
    description: Returns details on what has changed (or would change in check mode) as C(diff.before) and C(diff.after).
"""
