# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Where the API token comes from when the ``api_token`` option is not set.

The order (docs/provisioning.md, "Where the token comes from"), first found wins:

1. the ``api_token`` option (e.g. an ansible-vault variable through ``module_defaults``);
2. the ``HCLOUD_TOKEN`` environment variable (hcloud CLI, hcloud-python, hetzner.hcloud);
3. the ``HETZNER_API_TOKEN`` environment variable (the ``.env`` file habit: ``set -a; . ./.env``);
4. the token of the hcloud CLI's active context: ``HCLOUD_CONFIG`` or ``~/.config/hcloud/cli.toml``,
   context ``HCLOUD_CONTEXT`` or the file's ``active_context`` (what ``hcloud context use`` set).

Nothing here logs or returns the token in a message; modules declare ``api_token`` with
``no_log`` so a token found here is masked in every result, also at -vvvv.
"""

from __future__ import annotations

import os

try:
    import tomllib
    HAS_TOMLLIB = True
except ImportError:  # pragma: no cover - Python < 3.11
    HAS_TOMLLIB = False

from ansible.module_utils.errors import AnsibleFallbackNotFound

TOKEN_ENV_VARS = ("HCLOUD_TOKEN", "HETZNER_API_TOKEN")
DEFAULT_CLI_CONFIG = "~/.config/hcloud/cli.toml"
MISSING_TOKEN = ("no API token: set the api_token option (e.g. from an ansible-vault variable), "
                 "HCLOUD_TOKEN or HETZNER_API_TOKEN, or select an hcloud CLI context (hcloud context use NAME)")


def cli_config_path(environ=None) -> str:
    environ = os.environ if environ is None else environ
    return os.path.expanduser(environ.get("HCLOUD_CONFIG") or DEFAULT_CLI_CONFIG)


def cli_context_token(environ=None) -> str | None:
    """The token of the hcloud CLI's active context, or None (no file, no context, unreadable)."""
    environ = os.environ if environ is None else environ
    path = cli_config_path(environ)
    if not HAS_TOMLLIB or not os.path.isfile(path):
        return None
    try:
        with open(path, "rb") as handle:
            config = tomllib.load(handle)
    except (OSError, ValueError):
        return None  # a broken CLI config is the CLI's business; the other sources still apply
    active = environ.get("HCLOUD_CONTEXT") or config.get("active_context")
    for context in config.get("contexts") or []:
        if isinstance(context, dict) and context.get("name") == active and context.get("token"):
            return str(context["token"])
    return None


def find_token(environ=None) -> str | None:
    """The first token of the environment variables, then the CLI context (None if there is none)."""
    environ = os.environ if environ is None else environ
    for name in TOKEN_ENV_VARS:
        if environ.get(name):
            return environ[name]
    return cli_context_token(environ)


def token_fallback() -> str:
    """AnsibleModule ``fallback`` for ``api_token``: the sources after the option, in order."""
    token = find_token()
    if not token:
        raise AnsibleFallbackNotFound
    return token
