# Shared by every test suite: make `ansible_collections.perry.fleet` importable from this tree, and
# the engine fixtures that smoke and integration tests use.
import os
import subprocess
import sys
import time

import pytest

COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH", "/opt/perry-fleet/collections").split(":")[0]
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "integration"))

from topology import PODMAN_SOCKET, TOPOLOGIES  # noqa: E402  pylint: disable=wrong-import-position


@pytest.fixture(scope="session")
def podman_socket():
    """Rootful podman's Docker-compatible API on a unix socket, for the docker CLI (Perry's PR #171 setup)."""
    os.makedirs(os.path.dirname(PODMAN_SOCKET), exist_ok=True)
    if os.path.exists(PODMAN_SOCKET):
        os.unlink(PODMAN_SOCKET)
    proc = subprocess.Popen(["podman", "system", "service", "--time=0", "unix://" + PODMAN_SOCKET],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if os.path.exists(PODMAN_SOCKET):
            probe = subprocess.run(["/usr/bin/docker", "version", "--format", "{{.Server.Version}}"], check=False,
                                   env=dict(os.environ, DOCKER_HOST="unix://" + PODMAN_SOCKET),
                                   capture_output=True, text=True, timeout=10)
            if probe.returncode == 0:
                break
        if proc.poll() is not None:
            pytest.fail("podman system service exited: %s" % proc.stderr.read().decode()[-2000:])
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("podman system service did not answer on %s within 30 s" % PODMAN_SOCKET)
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
