"""Faults, races and security of perry_workspace on real engines (issue: fault / bad-input / security suite)."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import threading
import time

import pytest

import test_engine as engine_suite
import test_start_tasks as start_suite
from test_ssh import bridge_gateway
from topology import (BASE_IMAGE, COLLECTIONS, REPO, TOPOLOGIES, WORKSPACE_IMAGE, Topology, build_workspace_image,
                      random_prefix, run_module, run_module_direct, run_playbook, start_podman_service, venv_bin)

MODULE = "perry.fleet.perry_workspace"
TESTBED_DOCKERD = os.path.join(REPO, "scripts", "testbed", "dockerd")  # how scripts/setup-testbed runs dockerd


@pytest.fixture
def rootful():
    return TOPOLOGIES["podman-rootful"]


@pytest.fixture
def stalled_cli(tmp_path):
    """An engine CLI that accepts the call and never answers."""
    path = tmp_path / "podman"
    path.write_text("#!/bin/sh\nexec sleep 600\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


@pytest.mark.serial  # a deadline is timed: alone, after the parallel run (scripts/test)
def test_stalled_engine_fails_within_timeout_plus_one_second(stalled_cli):
    result, elapsed = run_module_direct(MODULE, {"name": "stall", "runtime": "podman", "engine_cli": stalled_cli,
                                                 "image": WORKSPACE_IMAGE, "engine_timeout": 3})
    assert result.get("failed") and "timed out after" in result["msg"], result
    assert elapsed < 3 + 1, "took %.2f s" % elapsed
    assert result["elapsed"] >= 3


def test_container_removed_out_of_band_is_recreated_with_its_data(rootful, prefix_rootful):
    image = build_workspace_image(rootful)
    name = prefix_rootful + "oob"
    first = run_module(MODULE, {"name": name, "image": image, "runtime": "podman"}, rootful)
    assert not first.get("failed"), first.get("msg")
    rootful.cli("exec", "workspace-" + name, "sh", "-c", "echo precious > /home/workspace/data")
    rootful.cli("rm", "-f", "workspace-" + name)
    again = run_module(MODULE, {"name": name, "image": image, "runtime": "podman"}, rootful)
    assert not again.get("failed"), again.get("msg")
    assert "create" in again["workspaces"][0]["actions"]
    assert rootful.cli("exec", "workspace-" + name, "cat", "/home/workspace/data").stdout.strip() == "precious"


def test_engine_service_restarted_mid_run_converges(prefix_rootful):
    """The docker CLI against a podman API service that is killed between runs: the run in flight
    fails with the engine's words, and the next one converges once the service is back."""
    socket_path = "/run/perry-fleet-test/faults-%s.sock" % prefix_rootful.rstrip("-")
    topo = Topology("faults-docker-cli-podman", "podman", "/usr/bin/docker", engine_url="unix://" + socket_path)
    image = build_workspace_image(TOPOLOGIES["podman-rootful"])
    name = prefix_rootful + "svc"
    proc = start_podman_service(socket_path)
    try:
        assert not run_module(MODULE, {"name": name, "image": image}, topo).get("failed")
    finally:
        proc.kill()
        proc.wait(timeout=10)
    down = run_module(MODULE, {"name": name, "image": image, "engine_timeout": 10}, topo)
    assert down.get("failed") and down["msg"]
    proc = start_podman_service(socket_path)
    try:
        back = run_module(MODULE, {"name": name, "image": image}, topo)
        assert not back.get("failed") and not back["changed"], back.get("msg")
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_two_playbooks_racing_on_one_host_never_share_a_port(rootful):
    image = build_workspace_image(rootful)
    prefixes = [random_prefix(), random_prefix()]
    results = {}

    def run(px):
        task = {"perry.fleet.perry_workspace": {"runtime": "podman", "image": image, "state": "present",
                                                "workspaces": [{"name": px + "r%d" % i} for i in range(5)]}}
        results[px] = run_playbook([task], rootful, timeout=600)

    try:
        threads = [threading.Thread(target=run, args=(px,)) for px in prefixes]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        ports = []
        for px in prefixes:
            res = results[px]["tasks"][0]
            assert not res.get("failed"), res.get("msg")
            ports += [w["ports"]["ssh"] for w in res["workspaces"]] + [w["ports"]["worker"] for w in res["workspaces"]]
        assert len(ports) == len(set(ports)) == 20
    finally:
        for px in prefixes:
            rootful.cleanup(px)


def test_interrupted_worker_sync_keeps_a_working_worker(rootful, prefix_rootful, worker_artifacts, tmp_path):
    """Kill the sync mid-copy: the old worker stays installed and answers; the next run completes."""
    image = build_workspace_image(rootful)
    name = prefix_rootful + "ws"
    cname = "workspace-" + name
    r = run_module(MODULE, {"name": name, "image": image, "runtime": "podman", "worker_source": worker_artifacts["dist"]}, rootful)
    assert not r.get("failed"), r.get("msg")
    # A bigger, different dist so the copy takes a moment.
    new_dist = tmp_path / "dist"
    subprocess.run(["cp", "-r", worker_artifacts["dist"], str(new_dist)], check=True)
    (new_dist / "padding.bin").write_bytes(os.urandom(64 << 20))
    args = {"name": name, "image": image, "runtime": "podman", "worker_source": str(new_dist)}
    payload = tmp_path / "args.json"
    payload.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    proc = subprocess.Popen([venv_bin("python"), "-m", "ansible_collections.perry.fleet.plugins.modules.perry_workspace",
                             str(payload)], env=dict(os.environ, PYTHONPATH=COLLECTIONS),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    # Wait until the copy has started (the staging dir appears), then kill the whole run.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if rootful.cli("exec", cname, "sh", "-c", "ls -d /usr/local/lib/perry/releases/*.tmp 2>/dev/null", check=False).stdout.strip():
            break
        time.sleep(0.05)
    os.killpg(proc.pid, 9)
    proc.wait(timeout=10)
    version = rootful.cli("exec", "-u", "workspace", cname, "/usr/local/bin/perry", "--version", check=False)
    assert version.returncode == 0, version.stderr
    again = run_module(MODULE, args, rootful)
    assert not again.get("failed"), again.get("msg")
    assert rootful.cli("exec", cname, "test", "-f", "/usr/local/lib/perry/current/padding.bin", check=False).returncode == 0


def test_secrets_never_leak(rootful, prefix_rootful):
    """Not in any process's argv during a run, not in results, not in -vvv output, not in a
    world-readable file inside the workspace."""
    image = build_workspace_image(rootful)
    secret = "perry-secret-" + os.urandom(6).hex()
    name = prefix_rootful + "sec"
    seen = []
    done = threading.Event()

    def sample():
        while not done.is_set():
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        with open("/proc/%s/cmdline" % pid, "rb") as fh:
                            if secret.encode() in fh.read():
                                seen.append(pid)
                    except OSError:
                        pass
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        out = run_playbook([{"perry.fleet.perry_workspace": {"name": name, "image": image, "runtime": "podman",
                                                             "secret_env": {"API_TOKEN": secret}}}],
                           rootful, verbosity=3)
    finally:
        done.set()
        sampler.join()
    assert out["rc"] == 0, out["stdout"][-2000:]
    assert not seen, "secret seen in argv of pids %s" % seen
    assert secret not in out["stdout"] and secret not in out["stderr"]
    # Inside: only in 0600 files (and the container's env, which only root on the host can read).
    leaks = rootful.cli("exec", "workspace-" + name, "sh", "-c",
                        "grep -rlsF %s / --exclude-dir=proc --exclude-dir=sys 2>/dev/null | while read f; do "
                        "[ $(( $(stat -c %%a \"$f\") %% 10 )) -ne 0 ] && echo \"$f\"; done; true" % secret, timeout=300).stdout
    assert not leaks.strip(), "world-readable files hold the secret: %s" % leaks


def test_podman_workspaces_are_unprivileged_and_bind_loopback(rootful, prefix_rootful):
    image = build_workspace_image(rootful)
    name = prefix_rootful + "priv"
    r = run_module(MODULE, {"name": name, "image": image, "runtime": "podman"}, rootful)
    assert not r.get("failed"), r.get("msg")
    c = rootful.inspect("workspace-" + name)
    assert c["HostConfig"]["Privileged"] is False
    for bindings in c["HostConfig"]["PortBindings"].values():
        assert all(b["HostIp"] == "127.0.0.1" for b in bindings)


def test_home_volume_removed_out_of_band_is_recreated_and_reported(rootful, prefix_rootful):
    """(a) absent workspace, kept volume removed by someone: the next `started` run makes a fresh volume and
    container and says so; (b) a running workspace's volume force-removed (podman removes the container
    with it): the next run converges the same way."""
    image = build_workspace_image(rootful)
    name = prefix_rootful + "vol"
    cname = "workspace-" + name
    args = {"name": name, "image": image, "runtime": "podman"}
    assert not run_module(MODULE, args, rootful).get("failed")
    rootful.cli("exec", cname, "sh", "-c", "echo old > /home/workspace/data")
    gone = run_module(MODULE, dict(args, state="absent"), rootful)
    assert not gone.get("failed") and cname in rootful.volume_names(), gone.get("msg")
    rootful.cli("volume", "rm", cname)
    again = run_module(MODULE, args, rootful)
    assert not again.get("failed"), again.get("msg")
    w = again["workspaces"][0]
    assert again["changed"] and w["actions"] == ["create volume %s" % cname, "create", "start"] and w["running"], w
    assert cname in rootful.volume_names()
    assert rootful.cli("exec", cname, "ls", "/home/workspace/data", check=False).returncode != 0  # a fresh volume

    rootful.cli("volume", "rm", "-f", cname, timeout=120)  # podman: removes the running container with it
    assert rootful.inspect(cname) is None
    back = run_module(MODULE, args, rootful)
    assert not back.get("failed"), back.get("msg")
    w = back["workspaces"][0]
    assert w["actions"] == ["create volume %s" % cname, "create", "start"] and w["running"], w
    assert rootful.inspect(cname)["State"]["Running"]
    assert not run_module(MODULE, args, rootful)["changed"]


def _testbed_dockerd(verb: str) -> None:
    done = subprocess.run([TESTBED_DOCKERD, verb], capture_output=True, text=True, timeout=150, check=False)
    assert done.returncode == 0, "scripts/testbed/dockerd %s failed: %s" % (verb, done.stderr[-3000:])


@pytest.fixture
def prefix_docker():
    value = random_prefix()
    yield value
    TOPOLOGIES["docker"].cleanup(value)


@pytest.mark.serial  # stops dockerd, which the parallel tests use: alone, after them (scripts/test)
def test_dockerd_restarted_mid_run_converges(prefix_docker, worker_artifacts):
    """The real dockerd stops under a docker workspace: perry_workspace and perry_worker_health fail within
    their timeouts + 1 s with the engine's words and delete nothing; once dockerd is back (started as the
    test bed starts it) the next run converges, home data intact, and health turns healthy."""
    docker = TOPOLOGIES["docker"]
    image = build_workspace_image(docker)
    name = prefix_docker + "dkd"
    cname = "workspace-" + name
    args = {"name": name, "image": image, "runtime": "docker", "engine_cli": "/usr/bin/docker",
            "worker_source": worker_artifacts["binary"]}
    first = run_module(MODULE, args, docker)
    assert not first.get("failed"), first.get("msg")
    docker.cli("exec", cname, "sh", "-c", "echo precious > /home/workspace/data")
    container_id = docker.inspect(cname)["Id"]
    try:
        _testbed_dockerd("stop")
        down, took = run_module_direct(MODULE, dict(args, engine_timeout=5), timeout=30)
        print("dockerd down: perry_workspace %.2f s: %s" % (took, down.get("msg")))
        assert down.get("failed") and "Cannot connect to the Docker daemon" in down["msg"], down
        assert took < 5 + 1, "perry_workspace took %.2f s" % took
        assert [c for c in down["commands"] if " inspect " in c["cmd"]] and not [
            c for c in down["commands"] if any(v in c["cmd"].split() for v in ("rm", "create", "stop"))], down["commands"]
        health, took = run_module_direct("perry.fleet.perry_worker_health",
                                         {"name": name, "runtime": "docker", "engine_cli": "/usr/bin/docker", "timeout": 3},
                                         timeout=30)
        print("dockerd down: perry_worker_health %.2f s: %s" % (took, health.get("msg")))
        assert health.get("failed") and "Cannot connect to the Docker daemon" in health["msg"], health
        assert took < 3 + 1, "perry_worker_health took %.2f s" % took
    finally:
        _testbed_dockerd("start")
    # Nothing was deleted while dockerd was down: the same container and its volumes are there.
    assert docker.inspect(cname)["Id"] == container_id
    assert {cname, cname + "-docker"} <= set(docker.volume_names())
    back = run_module(MODULE, args, docker)
    assert not back.get("failed"), back.get("msg")
    w = back["workspaces"][0]
    assert w["running"] and "create" not in w["actions"] and "recreate" not in w["actions"], w
    assert docker.inspect(cname)["State"]["Running"]
    assert docker.cli("exec", cname, "cat", "/home/workspace/data").stdout.strip() == "precious"
    healthy = run_module("perry.fleet.perry_worker_health", {"name": name, "timeout": 60}, docker)
    assert not healthy.get("failed") and healthy["workspaces"][0]["healthy"], healthy.get("msg")


def test_engine_killed_under_a_running_workspace_is_reported_and_reconnected_with_its_images(rootful, prefix_rootful):
    """SIGKILL of a workspace's own engine (perry-engine-<name>): the workspace and its worker stay up, docker inside
    fails fast with the engine's words (no hang), health reports the engine down, and the next converge restarts it
    on the same storage (the image loaded before is still there) and the same socket."""
    converge, docker, out_of, report = (engine_suite.converge, engine_suite.docker, engine_suite.out_of,
                                        engine_suite.report)
    image = build_workspace_image(rootful)
    name = prefix_rootful + "ekill"
    out = converge(image, [name])
    assert out["rc"] == 0 and report(out)[name]["engine"] == "up", out["stdout"][-4000:]
    saved = subprocess.run(["podman", "save", BASE_IMAGE], capture_output=True, timeout=300, check=True).stdout
    docker(name, "load", stdin=saved, timeout=300)

    rootful.cli("kill", "-s", "KILL", "perry-engine-" + name, timeout=60)
    started = time.monotonic()
    res = docker(name, "version", check=False, timeout=60)
    assert res.returncode != 0 and time.monotonic() - started < 30, res.stderr[-500:]
    assert b"Cannot connect" in res.stderr or b"connection refused" in res.stderr.lower(), res.stderr[-500:]
    health = run_module("perry.fleet.perry_worker_health", {"runtime": "podman", "names": [name], "timeout": 30},
                        rootful)
    [row] = health["workspaces"]
    assert row["healthy"] is True and row["engine"]["reachable"] is False, row
    assert "ECONNREFUSED" in row["engine"]["error"], row["engine"]

    out = converge(image, [name])
    assert out["rc"] == 0 and report(out)[name]["engine"] == "up", out["stdout"][-4000:]
    assert BASE_IMAGE.rsplit("/", maxsplit=1)[-1] in out_of(docker(name, "images", "--format", "{{.Repository}}:{{.Tag}}"))
    assert out_of(docker(name, "run", "--rm", BASE_IMAGE, "echo", "back")).strip() == "back"


def test_clone_from_a_server_that_never_answers_is_bounded_reported_and_the_workspace_stays_up(
        rootful, prefix_rootful):
    """A git server that accepts the connection and then says nothing (a hung proxy, a dead network path): the clone
    is cut at perry_workspace_repo_clone_timeout, the role reports INIT failed with the reason and returns; the
    workspace is running and healthy, nothing half-cloned is left in ~, and the next start retries."""
    converge, report = start_suite.converge, start_suite.report
    image = build_workspace_image(rootful)
    name = prefix_rootful + "hang"
    silent = socket.socket()
    silent.bind((bridge_gateway(), 0))
    silent.listen(16)   # the kernel completes the handshakes; nobody ever reads or writes
    url = "http://%s:%d/app.git" % silent.getsockname()
    try:
        started = time.monotonic()
        out = converge(image, [{"name": name, "repo_url": url}], perry_workspace_repo_clone_timeout=5)
        took = time.monotonic() - started
        assert out["rc"] == 0, out["stdout"][-4000:]
        row = report(out)[name]
        assert row["running"] is True and row["healthy"] is True and row["init"] == "failed", row
        assert "git clone %s failed" % url in row["init_problems"][0], row
        assert took < 240, took
        home = rootful.cli("exec", "-u", "workspace", "workspace-" + name, "ls", "-A", "/home/workspace").stdout
        assert "app" not in home.split(), home
        log = rootful.cli("exec", "workspace-" + name, "cat", "/home/workspace/.cache/perry/post-start.log").stdout
        assert "timeout 5 s" in log and "clone FAILED" in log, log[-2000:]
    finally:
        silent.close()
