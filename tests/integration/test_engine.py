"""A container engine for every podman workspace (issue 14 §1), on this machine's rootful podman: the workspace role's
default (perry_workspace_engine=auto) gives each workspace its own engine container; from inside, as workspace,
`docker version`, `volume create`, `load`, `run --rm` and `build` work; one workspace's agent cannot see or reach
another's containers nor the host's engine; the engine follows its workspace (idempotent, killed and reconnected,
purged with it); health reports the engine as its own field."""

from __future__ import annotations

import subprocess
import time

import pytest

from topology import BASE_IMAGE, TOPOLOGIES, build_workspace_image, random_prefix, run_module, run_playbook

TOPO = TOPOLOGIES["podman-rootful"]
ROLE = [{"name": "workspace", "ansible.builtin.include_role": {"name": "perry.fleet.workspace"}}]


def converge(image, names, **role_vars) -> dict:
    return run_playbook(ROLE, timeout=900, extra_vars=dict(
        perry_workspace_runtime="podman", perry_workspace_image=image,
        perry_workspace_list=[{"name": n} for n in names], **role_vars))


def report(out) -> dict:
    facts = [t["ansible_facts"]["perry_workspace_report"] for t in out["tasks"]
             if "perry_workspace_report" in t.get("ansible_facts", {})]
    assert facts, out["stdout"][-3000:]
    return {row["name"]: row for row in facts[-1]}


def docker(name, *args, check=True, timeout=180, stdin=None) -> subprocess.CompletedProcess:
    """The docker CLI inside the workspace, as its user, with the environment the workspace gives it."""
    argv = ["podman", "exec", "-i", "-u", "workspace", "workspace-" + name, "docker", *args]
    res = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout, check=False)
    if check and res.returncode != 0:
        words = res.stderr.decode(errors="replace")[-1500:]
        raise AssertionError("docker %s in %s failed (rc %d): %s" % (" ".join(args), name, res.returncode, words))
    return res


def out_of(res) -> str:
    return res.stdout.decode(errors="replace")


def engine_tasks_changed(out) -> list:
    return [t["_task"] for t in out["tasks"] if t.get("changed") and "ngine" in t["_task"]]


@pytest.fixture
def prefix():
    value = random_prefix()
    yield value
    TOPO.cleanup(value)


def test_every_workspace_has_its_own_engine_isolated_and_following_it(prefix):
    image = build_workspace_image(TOPO)
    a, b = prefix + "a", prefix + "b"
    # check mode on a host without them: the run says what it would do and creates nothing, engines included
    out = run_playbook(ROLE, check=True, timeout=900, extra_vars=dict(
        perry_workspace_runtime="podman", perry_workspace_image=image, perry_workspace_list=[{"name": a}]))
    assert out["rc"] == 0, out["stdout"][-4000:]
    made = [n for n in TOPO.cli("ps", "-a", "--format", "{{.Names}}").stdout.split()
            + TOPO.volume_names()
            + TOPO.cli("network", "ls", "--format", "{{.Name}}").stdout.split() if prefix in n]
    assert made == [], made

    out = converge(image, [a, b])
    assert out["rc"] == 0, out["stdout"][-4000:]
    rows = report(out)
    assert rows[a]["engine"] == "up" and rows[b]["engine"] == "up", rows
    assert "ENGINE" in str([t.get("msg") for t in out["tasks"]])

    # from inside, as workspace: the engine is the workspace's own, through its socket only
    assert out_of(docker(a, "version", "--format", "{{.Server.Version}}")).strip()
    stat = TOPO.cli("exec", "workspace-" + a, "stat", "-c", "%a %u", "/run/perry-engine/podman.sock").stdout.split()
    assert stat == ["600", "1000"], stat
    docker(a, "volume", "create", "agent-data")
    saved = subprocess.run(["podman", "save", BASE_IMAGE], capture_output=True, timeout=300, check=True).stdout
    assert "Loaded image" in out_of(docker(a, "load", stdin=saved, timeout=300))
    assert out_of(docker(a, "run", "--rm", "-v", "agent-data:/data", BASE_IMAGE, "sh", "-c",
                         "echo nested > /data/x; cat /data/x")).strip() == "nested"
    build = "FROM %s\nRUN echo built > /built\n" % BASE_IMAGE
    TOPO.cli("exec", "-i", "-u", "workspace", "workspace-" + a, "sh", "-c",
             "mkdir -p ~/ctx && cat > ~/ctx/Dockerfile", input=build, timeout=60)
    docker(a, "build", "-q", "-t", "agent-built", "/home/workspace/ctx", timeout=300)
    assert out_of(docker(a, "run", "--rm", "agent-built", "cat", "/built")).strip() == "built"
    docker(a, "run", "-d", "--name", "a-sleeper", BASE_IMAGE, "sleep", "600")

    # isolation: b sees none of a's containers, images or volumes, and has no other engine socket at all
    assert "a-sleeper" in out_of(docker(a, "ps", "--format", "{{.Names}}"))
    assert "a-sleeper" not in out_of(docker(b, "ps", "-a", "--format", "{{.Names}}"))
    assert "agent-data" not in out_of(docker(b, "volume", "ls", "-q"))
    assert docker(b, "exec", "a-sleeper", "true", check=False).returncode != 0
    sockets = TOPO.cli("exec", "workspace-" + b, "sh", "-c",
                       "find / \\( -path /proc -o -path /sys \\) -prune -o -type s -print 2>/dev/null; "
                       "ls /run/podman /var/run/docker.sock 2>&1 || true").stdout
    assert "/run/perry-engine/podman.sock" in sockets and "podman/podman.sock" not in sockets, sockets
    mounts = [m.get("Name") for m in TOPO.inspect("workspace-" + b)["Mounts"]]
    assert set(mounts) == {"workspace-" + b, "perry-engine-%s-sock" % b}, mounts
    networks = set(TOPO.inspect("perry-engine-" + a)["NetworkSettings"]["Networks"])
    assert networks == {"perry-engine-" + a}, networks

    # idempotent: nothing of the engines runs again
    out = converge(image, [a, b])
    assert out["rc"] == 0, out["stdout"][-4000:]
    assert engine_tasks_changed(out) == [], engine_tasks_changed(out)
    [engines] = [t for t in out["tasks"] if t["_task"].endswith("Engine containers in the wanted state")]
    assert not engines.get("results"), engines   # the one listing found nothing to do: no module ran

    # an engine stopped under a running workspace: reported down, the worker stays healthy; the next converge
    # starts it again and the workspace reconnects (same socket path, storage kept)
    TOPO.cli("stop", "-t", "5", "perry-engine-" + a, timeout=60)
    time.sleep(6)   # the worker caches its engine probe for 5 s
    health = run_module("perry.fleet.perry_worker_health", {"names": [a]}, TOPO)
    [row] = health["workspaces"]
    assert row["healthy"] is True and row["engine"]["reachable"] is False, row
    out = converge(image, [a, b])
    assert out["rc"] == 0, out["stdout"][-4000:]
    assert report(out)[a]["engine"] == "up"
    assert "a-sleeper" in out_of(docker(a, "ps", "-a", "--format", "{{.Names}}"))

    # stopped and removed with the workspace; purge removes its storage, socket volume and network
    out = converge(image, [a], perry_workspace_state="stopped")
    assert out["rc"] == 0, out["stdout"][-4000:]
    assert TOPO.inspect("perry-engine-" + a)["State"]["Status"] in ("exited", "stopped")
    out = converge(image, [a, b], perry_workspace_state="absent", perry_workspace_purge=True)
    assert out["rc"] == 0, out["stdout"][-4000:]
    assert TOPO.inspect("perry-engine-" + a) is None and TOPO.inspect("perry-engine-" + b) is None
    left = TOPO.volume_names() + TOPO.cli("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert not [n for n in left if n.startswith("perry-engine-" + prefix)], left
