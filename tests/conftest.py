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


# The slowest files first (seconds in one serial run, 2026-12-06: molecule 962, agent_install 430, health_sessions 193,
# agents 169, hardening_worker 158, ...). scripts/test hands whole files to pytest-xdist workers (--dist loadfile: a
# file's module-scoped fixtures are built once, and the Molecule scenarios, which share image tags and the test bed's
# rootless users, run one after another) in this order, so the long files start while short ones remain to fill the
# other workers' gaps at the end.
SLOW_FIRST = ("test_molecule", "test_agent_install", "test_health_sessions", "test_agents", "test_hardening_worker",
              "test_workspace_module", "test_day_two", "test_bad_input", "test_image_role", "test_engine", "test_site",
              "test_user_socket", "test_up", "test_hardening_files", "test_start_tasks")


def pytest_collection_modifyitems(items):
    """Slow files first (SLOW_FIRST), each file's tests in their own order."""
    def rank(item):
        name = item.module.__name__.rsplit(".", 1)[-1]
        return SLOW_FIRST.index(name) if name in SLOW_FIRST else len(SLOW_FIRST)
    items.sort(key=rank)
