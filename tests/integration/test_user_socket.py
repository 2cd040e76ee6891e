"""A rootless workspace given its user's own podman (issue 14 §1, perry_workspace_engine=user_socket), on this
machine's rootless podman: from inside, as workspace, `docker load` and `docker run --rm` work through the relay of
the user's socket (which the workspace user cannot open itself); the choice is refused where it would break tenancy
(a second workspace in that podman, rootful podman) with nothing created; a restarted service is reconnected and
health reports the engine as its own field."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from topology import (BASE_IMAGE, TOPOLOGIES, USER_SOCKET_TOPOLOGY, build_workspace_image, random_prefix, run_module,
                      run_playbook, start_podman_service)

# A host user of this test's own (the test bed's USER_SOCKET_TEST_USER): a workspace with the user's socket must be
# alone in the user's podman, so the rootless topology's user, busy with other tests, cannot be it.
TOPO = USER_SOCKET_TOPOLOGY
USER = TOPO.become_user
ROLE = [{"name": "workspace", "ansible.builtin.include_role": {"name": "perry.fleet.workspace"}}]
UID = int(subprocess.run(["id", "-u", USER], capture_output=True, text=True, check=True, timeout=10).stdout)
# A service of this test's own (it stops and restarts it): the test bed's one on the user's default socket
# (scripts/testbed/user-podman, what the role uses without perry_workspace_user_socket) serves Molecule.
SOCKET = "/run/user/%d/perry-test-engine/podman.sock" % UID


def converge(image, names, topology=TOPO, check=False, **role_vars) -> dict:
    return run_playbook(ROLE, topology, check=check, timeout=900, extra_vars=dict(dict(
        perry_workspace_runtime="podman", perry_workspace_image=image, perry_workspace_engine="user_socket",
        perry_workspace_user_socket=SOCKET, perry_workspace_list=[{"name": n} for n in names]), **role_vars))


def failure(out) -> str:
    return " ".join(str(t.get("msg", "")) for t in out["tasks"] if t.get("failed"))


def inside(name, script, user="workspace", stdin=None, timeout=180) -> subprocess.CompletedProcess:
    return TOPO.cli("exec", "-i", "-u", user, "workspace-" + name, "sh", "-c", script, input=stdin,
                    timeout=timeout, check=False)


def ours(prefix) -> list:
    return [n for n in TOPO.cli("ps", "-a", "--format", "{{.Names}}").stdout.split() + TOPO.volume_names()
            if prefix in n]


def stop_service(proc) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


@pytest.fixture
def service():
    # the user is this test's alone: a workspace a killed earlier run left there would make every converge refuse
    left = TOPO.cli("ps", "-a", "-q", "--filter", "label=perry.fleet.spec-hash", check=False).stdout.split()
    if left:
        TOPO.cli("rm", "-f", *left, check=False, timeout=300)
    proc = start_podman_service(SOCKET, user=USER)
    holder = {"proc": proc}
    yield holder
    if holder["proc"].poll() is None:
        stop_service(holder["proc"])


@pytest.fixture
def topology():
    return TOPO   # conftest's prefix cleans up on it


def test_rootless_workspace_gets_the_users_own_podman_alone(service, prefix):
    image = build_workspace_image(TOPO)
    a, b = prefix + "a", prefix + "b"

    # two workspaces in one user's podman with the user's socket: refused before anything is created
    out = converge(image, [a, b])
    assert out["rc"] != 0 and "must be the only one of its host user" in failure(out), failure(out) or out["stdout"][-3000:]
    assert ours(prefix) == [], ours(prefix)

    # check mode says it would create it, and creates nothing
    out = converge(image, [a], check=True)
    assert out["rc"] == 0, out["stdout"][-4000:]
    assert ours(prefix) == [], ours(prefix)

    out = converge(image, [a])
    assert out["rc"] == 0, out["stdout"][-4000:]
    health = run_module("perry.fleet.perry_worker_health", {"names": [a]}, TOPO)
    [row] = health["workspaces"]
    assert row["healthy"] is True and row["engine"]["reachable"] is True, row

    # the workspace user reaches the engine only through the relay: the mounted socket itself is root's (the host user's)
    relay = inside(a, "stat -c '%a %U' /run/perry-engine/podman.sock; "
                      "curl -sS --max-time 5 --unix-socket /run/perry-user-engine/podman.sock http://d/_ping")
    assert relay.stdout.splitlines()[0] == "600 workspace", relay.stdout + relay.stderr
    assert "Permission denied" in relay.stderr or "Couldn't connect" in relay.stderr, relay.stdout + relay.stderr
    saved = podman_bytes("save", BASE_IMAGE)
    load = podman_bytes("exec", "-i", "-u", "workspace", "workspace-" + a, "docker", "load", stdin=saved)
    assert b"Loaded image" in load, load[-500:]
    run = inside(a, "docker run --rm %s sh -c 'echo nested-in-$(id -un)'" % BASE_IMAGE)
    assert run.returncode == 0 and run.stdout.strip() == "nested-in-root", run.stdout + run.stderr
    # the engine is the user's podman: the workspace sees itself there (what makes it the user's only workspace)
    assert "workspace-" + a in inside(a, "docker ps -a --format '{{.Names}}'").stdout.split()

    # a second workspace beside it (even without an engine) is refused, and nothing of it is created
    out = converge(image, [b], perry_workspace_engine="none")
    assert out["rc"] != 0 and "must be the only one of its host user" in failure(out), failure(out) or out["stdout"][-3000:]
    assert "workspace-" + b not in ours(prefix), ours(prefix)

    # idempotent: the converge changes nothing
    out = converge(image, [a])
    assert out["rc"] == 0, out["stdout"][-4000:]
    [ws] = [t for t in out["tasks"] if t["_task"].endswith("Workspaces exist in the wanted state, worker synced")]
    assert ws["changed"] is False, ws

    # the user's service stopped: the engine is reported down, the worker stays healthy; started again, the relay
    # reaches the new socket without a converge
    stop_service(service["proc"])
    time.sleep(6)   # the worker caches its engine probe for 5 s
    [row] = run_module("perry.fleet.perry_worker_health", {"names": [a]}, TOPO)["workspaces"]
    assert row["healthy"] is True and row["engine"]["reachable"] is False, row
    service["proc"] = start_podman_service(SOCKET, user=USER)
    time.sleep(6)
    [row] = run_module("perry.fleet.perry_worker_health", {"names": [a]}, TOPO)["workspaces"]
    assert row["engine"]["reachable"] is True, row
    assert inside(a, "docker version --format '{{.Server.Version}}'").returncode == 0

    out = converge(image, [a], perry_workspace_state="absent", perry_workspace_purge=True)
    assert out["rc"] == 0, out["stdout"][-4000:]
    assert ours(prefix) == [], ours(prefix)
    # the user's socket directory is the user's: removing the workspace leaves it and its socket alone
    assert os.path.exists(SOCKET)


def podman_bytes(*args, stdin=None) -> bytes:
    """The rootless user's podman with binary input and output (image archives)."""
    argv = ["runuser", "-u", USER, "--", "env", "XDG_RUNTIME_DIR=/run/user/%d" % UID,
            "HOME=/home/" + USER, "podman", *args]
    res = subprocess.run(argv, input=stdin, capture_output=True, timeout=300, check=False, cwd="/")
    assert res.returncode == 0, res.stderr.decode(errors="replace")[-1500:]
    return res.stdout


def test_user_socket_is_refused_on_rootful_podman():
    # root's engine socket is root on the host: never a workspace's, refused in preflight before anything is made
    name = random_prefix() + "root"
    out = converge("localhost/unused:latest", [name], TOPOLOGIES["podman-rootful"])
    assert out["rc"] != 0 and "never given to a workspace" in failure(out), failure(out) or out["stdout"][-3000:]
    assert TOPOLOGIES["podman-rootful"].inspect("workspace-" + name) is None
