"""The worker shipped in roles/workspace/files/worker (for controllers without bun) is built from today's sources."""

from __future__ import annotations

import hashlib
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER = os.path.join(ROOT, "worker")
SHIPPED = os.path.join(ROOT, "roles", "workspace", "files", "worker")


def source_hash() -> str:
    """worker/build-cached.sh's hash: sha256sum of every file under src/ and build.sh, sorted, then hashed again."""
    paths = ["build.sh"] + [os.path.relpath(os.path.join(d, f), WORKER)
                            for d, _dirs, files in os.walk(os.path.join(WORKER, "src")) for f in files]
    lines = ""
    for rel in sorted(paths, key=lambda p: p.encode()):
        with open(os.path.join(WORKER, rel), "rb") as fh:
            lines += "%s  %s\n" % (hashlib.sha256(fh.read()).hexdigest(), rel)
    return hashlib.sha256(lines.encode()).hexdigest()[:16]


def test_shipped_worker_matches_the_sources():
    with open(os.path.join(SHIPPED, "SOURCE")) as fh:
        shipped = fh.read().strip()
    assert shipped == source_hash(), "the shipped worker is stale: run worker/ship.sh and commit the result"
    assert os.path.getsize(os.path.join(SHIPPED, "dist", "cli.js")) > 1000


def test_shipped_version_is_the_sources_version():
    with open(os.path.join(SHIPPED, "VERSION")) as fh:
        shipped = fh.read().strip()
    with open(os.path.join(WORKER, "src", "version.js")) as fh:
        assert '"%s"' % shipped in fh.read()
