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


def main():
    with open(os.path.join(ROOT, "galaxy.yml"), encoding="utf-8") as f:
        patterns = yaml.safe_load(f).get("build_ignore") or []
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, stdout=subprocess.PIPE,
    ).stdout.decode()
    files = sorted({p for p in out.split("\0") if p})
    for path in files:
        # skip tracked files deleted in the work tree, and ignored paths
        if os.path.lexists(os.path.join(ROOT, path)) and not ignored(path, patterns):
            sys.stdout.write(path + "\n")


if __name__ == "__main__":
    main()
