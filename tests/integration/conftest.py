"""Fixtures for integration tests: workspace images built by our own image role, worker artifacts."""

from __future__ import annotations

import os
import subprocess

import pytest

from topology import REPO, build_workspace_image


@pytest.fixture
def workspace_image(topology):
    try:
        return build_workspace_image(topology)
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def worker_artifacts():
    """The worker built once per source hash (worker/build-cached.sh), readable by every test user."""
    cache = os.path.join(os.environ.get("PERRY_FLEET_CACHE", "/var/cache/perry-fleet"), "worker")
    out = subprocess.run([os.path.join(REPO, "worker", "build-cached.sh"), cache], check=True,
                         capture_output=True, text=True, timeout=600).stdout.strip()
    return {"dist": os.path.join(out, "dist"), "binary": os.path.join(out, "perry")}


@pytest.fixture
def prefix(topology):
    """A random workspace-name prefix; everything with it is removed afterwards."""
    from topology import random_prefix
    value = random_prefix()
    yield value
    topology.cleanup(value)


@pytest.fixture
def prefix_rootful():
    """A random prefix on rootful podman, cleaned up afterwards (for tests that pick their topology)."""
    from topology import TOPOLOGIES, random_prefix
    value = random_prefix()
    yield value
    TOPOLOGIES["podman-rootful"].cleanup(value)


@pytest.fixture
def prefix_any():
    """prefix_any(topology): a random prefix on that topology, cleaned up afterwards (tests that pick topologies)."""
    from topology import random_prefix
    made = []

    def make(topology):
        value = random_prefix()
        made.append((topology, value))
        return value
    yield make
    for topology, value in made:
        topology.cleanup(value)
