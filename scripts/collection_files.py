#!/usr/bin/env python3
"""Print the files that make up the collection, one per line, relative to the repo root.

"The collection" = what git knows (tracked files plus untracked, not ignored
ones, so work in progress is included) minus the `build_ignore` patterns of
galaxy.yml, matched the way `ansible-galaxy collection build` matches them
(fnmatch against the relative path of a file or of any of its parent dirs).

`make sanity` copies exactly these files to build/sanity/ansible_collections/
autoscale/hetzner/ and runs ansible-test there. Why a copy: ansible-test
applies the collection rules to every file it finds in the collection (there is
no option to exclude directories other than ignore files, which we do not use),
while the local cloud (localcloud/), its tests and the CI/dev helpers are a
separate Python project that is not part of the Galaxy artefact either.
"""
import fnmatch
import os
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ignored(path, patterns):
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatch(c, p) for c in candidates for p in patterns)


# Used only without git (e.g. an exported tarball): what .gitignore would drop.
NOT_SOURCE_DIRS = {".git", "__pycache__", ".venv", "build", ".pytest_cache", ".cache", ".state", "output"}


def known_files():
    """Tracked plus untracked-but-not-ignored files; every file if this is no git checkout."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        ).stdout.decode()
        return {p for p in out.split("\0") if p}
    except (OSError, subprocess.CalledProcessError) as exc:
        if os.path.isdir(os.path.join(ROOT, ".git")):
            raise SystemExit(f"git ls-files failed in {ROOT}: {getattr(exc, 'stderr', b'').decode().strip() or exc}")
    files = set()
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in NOT_SOURCE_DIRS]
        rel = os.path.relpath(dirpath, ROOT)
        for name in filenames:
            if not name.endswith((".pyc", ".egg-info")):
                files.add(os.path.normpath(os.path.join(rel, name)))
    return files


def main():
    with open(os.path.join(ROOT, "galaxy.yml"), encoding="utf-8") as f:
        patterns = yaml.safe_load(f).get("build_ignore") or []
    files = sorted(known_files())
    for path in files:
        # skip tracked files deleted in the work tree, and ignored paths
        if os.path.lexists(os.path.join(ROOT, path)) and not ignored(path, patterns):
            sys.stdout.write(path + "\n")


if __name__ == "__main__":
    main()
