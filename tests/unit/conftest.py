# Copyright (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make `ansible_collections.autoscale.hetzner` importable for plain pytest runs.

ansible-test does this itself; for `pytest tests/unit` we link the repository root into
.cache/collections/ansible_collections/autoscale/hetzner and put that on the collection path.
"""

from __future__ import annotations

import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
COLLECTIONS = os.path.join(ROOT, ".cache", "collections")


def ensure_collection_path() -> str:
    link = os.path.join(COLLECTIONS, "ansible_collections", "autoscale", "hetzner")
    if not os.path.exists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        try:
            os.symlink(ROOT, link)
        except FileExistsError:
            pass
    if COLLECTIONS not in sys.path:
        sys.path.insert(0, COLLECTIONS)
    paths = os.environ.get("ANSIBLE_COLLECTIONS_PATH", "")
    if COLLECTIONS not in paths.split(os.pathsep):
        os.environ["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join(p for p in (COLLECTIONS, paths) if p)
    try:  # if Ansible's collection finder is already installed, teach it the path as well
        from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder
        finder = next((f for f in sys.meta_path if isinstance(f, _AnsibleCollectionFinder)), None)
        if finder is not None and COLLECTIONS not in finder._n_configured_paths:
            finder._n_configured_paths.insert(0, COLLECTIONS)
            finder._n_cached_collection_paths = None
            finder._n_cached_collection_qualified_paths = None
    except ImportError:
        pass
    return COLLECTIONS


ensure_collection_path()
