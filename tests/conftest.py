# Shared by every test suite: make `ansible_collections.perry.fleet` importable from this tree, and
# the engine fixtures that smoke and integration tests use.
import os
import subprocess
import sys

import pytest

COLLECTIONS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".collections")
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "integration"))

from topology import PODMAN_SOCKET, TOPOLOGIES, start_podman_service  # noqa: E402  pylint: disable=wrong-import-position


@pytest.fixture(scope="session")
def podman_socket():
    """Rootful podman's Docker-compatible API on a unix socket, for the docker CLI (Perry's PR #171 setup)."""
    try:
        proc = start_podman_service()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield "unix://" + PODMAN_SOCKET
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(params=sorted(TOPOLOGIES))
def topology(request):
    """Each engine topology in turn; the docker-CLI-on-podman one brings its socket up first."""
    topo = TOPOLOGIES[request.param]
    if topo.name == "docker-cli-podman":
        request.getfixturevalue("podman_socket")
    return topo


def pytest_collection_modifyitems(items):
    """Molecule scenarios last: they are the slowest, and the module tests should report first."""
    items.sort(key=lambda item: item.get_closest_marker("molecule") is not None)
