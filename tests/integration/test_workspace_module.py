"""perry_workspace on real engines: every topology, real images from roles/image."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import pytest

from topology import REPO, TOPOLOGIES, build_workspace_image, run_module, venv_bin

MODULE = "perry.fleet.perry_workspace"


def ok(result):
    assert not result.get("failed"), json.dumps({k: result.get(k) for k in ("msg", "stderr", "cmd", "commands")}, indent=1)
    return result


def derived_image(topology, base, tag):
    """A different image id on the same content (a new label), to drive recreate."""
    name = "localhost/perry-derived:%s" % tag
    topology.cli("build", "-t", name, "-", input="FROM %s\nLABEL perry.test.tag=%s\n" % (base, tag), timeout=300)
    return name


def test_lifecycle(topology, workspace_image, prefix):
    name = prefix + "life"
    cname = "workspace-" + name
    r = ok(run_module(MODULE, {"name": name, "image": workspace_image, "env": {"PLAIN": "hello"},
                               "secret_env": {"PERRY_TEST_TOKEN": "tok-" + prefix}}, topology))
    w = r["workspaces"][0]
    assert r["changed"] and "create" in w["actions"] and w["running"]
    assert 2200 <= w["ports"]["ssh"] <= 2400
    assert "tok-" + prefix not in json.dumps(r)

    # The runtime gating table, read back from the engine.
    c = topology.inspect(cname)
    labels = c["Config"]["Labels"]
    assert labels["workspace.name"] == name and labels["workspace.managed"] == "true"
    assert c["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    mounts = {m.get("Name"): m["Destination"] for m in c["Mounts"]}
    assert mounts[cname] == "/home/workspace"
    bindings = c["HostConfig"]["PortBindings"]
    assert bindings["22/tcp"][0]["HostIp"] == "127.0.0.1"
    if topology.runtime == "docker":
        assert c["HostConfig"]["Privileged"] is True
        assert c["Config"]["Hostname"] == name
        assert mounts[cname + "-docker"] == "/var/lib/docker"
        assert "7392/tcp" not in bindings
    else:
        assert c["HostConfig"]["Privileged"] is False
        assert c["Config"]["Hostname"] != name
        assert "/var/lib/docker" not in mounts.values()
        assert bindings["7392/tcp"][0] == {"HostIp": "127.0.0.1", "HostPort": str(w["ports"]["worker"])}
        assert 7392 <= w["ports"]["worker"] <= 7500

    if topology.runtime == "docker":
        # Docker-in-Docker: the workspace's own dockerd answers (privileged + /var/lib/docker volume).
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            res = topology.cli("exec", cname, "docker", "version", "--format", "{{.Server.Version}}", check=False)
            if res.returncode == 0 and res.stdout.strip():
                break
            time.sleep(1)
        assert res.returncode == 0, "dockerd inside the workspace did not answer: %s" % res.stderr
    else:
        env = topology.cli("exec", cname, "env").stdout
        assert "DOCKER_HOST=" not in env  # nothing forwarded unless docker_host is given

    # Idempotent: changed=false after a single inspect. Rootless podman adds one exec that reads the files manifest
    # (secret_env is written as a file; the volume's files belong to a sub-uid the module cannot read from outside).
    r2 = ok(run_module(MODULE, {"name": name, "image": workspace_image, "env": {"PLAIN": "hello"},
                                "secret_env": {"PERRY_TEST_TOKEN": "tok-" + prefix}}, topology))
    assert not r2["changed"]
    cmds = [c["cmd"] for c in r2["commands"]]
    assert " inspect " in cmds[0], cmds
    if topology.become_user:
        assert len(cmds) == 2 and " exec " in cmds[1] and "files.manifest" in cmds[1], cmds
    else:
        assert len(cmds) == 1, cmds

    # Home data survives an image change (recreate keeps volumes and ports).
    topology.cli("exec", cname, "sh", "-c", "echo kept > /home/workspace/marker")
    new_image = derived_image(topology, workspace_image, prefix.rstrip("-"))
    r3 = ok(run_module(MODULE, {"name": name, "image": new_image, "env": {"PLAIN": "hello"},
                                "secret_env": {"PERRY_TEST_TOKEN": "tok-" + prefix}}, topology, diff=True))
    w3 = r3["workspaces"][0]
    assert "recreate" in w3["actions"] and w3["ports"] == w["ports"]
    assert topology.cli("exec", cname, "cat", "/home/workspace/marker").stdout.strip() == "kept"

    # stop / start
    r4 = ok(run_module(MODULE, {"name": name, "image": new_image, "state": "stopped", "env": {"PLAIN": "hello"},
                                "secret_env": {"PERRY_TEST_TOKEN": "tok-" + prefix}}, topology))
    assert r4["workspaces"][0]["actions"] == ["stop"] and not topology.inspect(cname)["State"]["Running"]
    r5 = ok(run_module(MODULE, {"name": name, "image": new_image, "state": "started", "env": {"PLAIN": "hello"},
                                "secret_env": {"PERRY_TEST_TOKEN": "tok-" + prefix}}, topology))
    assert r5["workspaces"][0]["actions"] == ["start"] and topology.inspect(cname)["State"]["Running"]

    # absent in check mode removes nothing; absent keeps volumes; purge removes them.
    r6 = ok(run_module(MODULE, {"name": name, "state": "absent", "purge": True}, topology, check=True))
    assert r6["changed"] and topology.inspect(cname) is not None
    ok(run_module(MODULE, {"name": name, "state": "absent"}, topology))
    assert topology.inspect(cname) is None
    vols = topology.volume_names()
    assert cname in vols
    ok(run_module(MODULE, {"name": name, "state": "absent", "purge": True}, topology))
    vols = topology.volume_names()
    assert cname not in vols and cname + "-docker" not in vols
    topology.cli("rmi", new_image, check=False)


def test_check_mode_creates_nothing(topology, workspace_image, prefix):
    name = prefix + "check"
    r = ok(run_module(MODULE, {"name": name, "image": workspace_image}, topology, check=True, diff=True))
    volumes = ["workspace-" + name] + (["workspace-%s-docker" % name] if topology.runtime == "docker" else [])
    assert r["changed"] and r["workspaces"][0]["actions"] == ["create volume " + v for v in volumes] + ["create", "start"]
    assert topology.inspect("workspace-" + name) is None
    assert "workspace-" + name not in topology.volume_names()


@pytest.mark.parametrize("args,fragment", [
    ({"name": "Bad_Name"}, "invalid"),
    ({"name": "a;touch /tmp/pwned"}, "invalid"),
    ({"name": "../../etc"}, "invalid"),
    ({"name": "x" * 64}, "at most 63"),
    ({"name": ""}, "empty"),
    ({"name": "ok", "image": "localhost/no-such-image:1", "pull": "never"}, "perry.fleet.image"),
    ({"name": "ok", "ssh_port": 80}, "outside its range"),
    ({"name": "ok", "ssh_port_range": [2400, 2200]}, "not a valid port range"),
    ({"name": "ok", "engine_cli": "/nonexistent/podman"}, "not found"),
    ({"name": "ok", "engine_url": "garbage"}, "not an engine URL"),
    ({"name": "ok", "engine_url": "tcp://127.0.0.1:1"}, "cannot inspect"),
])
def test_bad_input_creates_nothing(topology, workspace_image, prefix, args, fragment):
    args = dict(args)
    if args.get("name") == "ok":
        args["name"] = prefix + "ok"
    args.setdefault("image", workspace_image)
    r = run_module(MODULE, args, topology)
    assert r.get("failed") and fragment in r["msg"], r.get("msg")
    assert not [n for n in topology.cli("ps", "-a", "--format", "{{.Names}}").stdout.split() if n.startswith("workspace-" + prefix)]
    assert not [v for v in topology.volume_names() if v.startswith("workspace-" + prefix)]


def test_runtime_specific_refusals(topology, workspace_image, prefix):
    if topology.runtime == "podman":
        r = run_module(MODULE, {"name": prefix + "p", "image": workspace_image, "privileged": True}, topology)
        assert r.get("failed") and "privileged=true is refused" in r["msg"]
    else:
        r = run_module(MODULE, {"name": prefix + "p", "image": workspace_image, "docker_host": "tcp://x:2375"}, topology)
        assert r.get("failed") and "only with runtime=podman" in r["msg"]


def test_worker_sync(topology, workspace_image, worker_artifacts, prefix):
    """Profile default artifact (docker: binary, podman: dist); second sync is a no-op; worker answers inside."""
    name = prefix + "wk"
    source = worker_artifacts["binary" if topology.runtime == "docker" else "dist"]
    args = {"name": name, "image": workspace_image, "worker_source": source}
    r = ok(run_module(MODULE, args, topology))
    w = r["workspaces"][0]
    assert w["worker"]["changed"] and w["worker"]["kind"] == ("binary" if topology.runtime == "docker" else "dist")
    r2 = ok(run_module(MODULE, args, topology))
    assert not r2["changed"] and not r2["workspaces"][0]["worker"]["changed"]
    # The manifest is read in the container's writable layer on this host: the inspect is the only engine call.
    assert [c["cmd"].split()[1] for c in r2["commands"]] == ["inspect"], r2["commands"]
    assert 0 < sum(c["elapsed"] for c in r2["commands"]) <= r2["elapsed"]
    cname = "workspace-" + name
    stat = topology.cli("exec", cname, "stat", "-c", "%U:%G %a", "/usr/local/bin/perry").stdout.strip()
    assert stat == "root:root 755"
    assert topology.cli("exec", "-u", "workspace", cname, "/home/workspace/.local/bin/perry", "--version").stdout.strip()
    # The image's supervisor starts the synced worker; it answers on 7392 inside.
    deadline = time.monotonic() + 30
    body = ""
    while time.monotonic() < deadline:
        res = topology.cli("exec", "-u", "workspace", cname, "curl", "-s", "--max-time", "2", "-H", "@/etc/perry/worker.auth",
                           "http://localhost:7392/health", check=False)
        body = res.stdout
        if res.returncode == 0 and '"ok"' in body:
            break
        time.sleep(0.5)
    assert json.loads(body)["status"] == "ok"


@pytest.mark.parametrize("topology_name", ["podman-rootful", "docker"])
def test_a_paused_workspace_is_paused_for_every_module(topology_name, worker_artifacts, prefix_any):
    """One reading of "paused" everywhere: info says paused, health and sessions say so without a request, and
    perry_workspace state=started unpauses it (the worker then answers). The build directory form of worker_source
    gives each runtime its profile's format."""
    topology = TOPOLOGIES[topology_name]
    image = build_workspace_image(topology)
    prefix = prefix_any(topology)
    name = prefix + "pause"
    build_dir = os.path.dirname(worker_artifacts["dist"])
    args = {"name": name, "image": image, "worker_source": build_dir}
    w = ok(run_module(MODULE, args, topology))["workspaces"][0]
    assert w["worker"]["kind"] == ("binary" if topology.runtime == "docker" else "dist")
    ok(run_module("perry.fleet.perry_worker_health", {"name": name, "timeout": 30}, topology))
    topology.pause("workspace-" + name)
    info = ok(run_module("perry.fleet.perry_workspace_info", {"names": [name]}, topology))["workspaces"][0]
    assert info["state"] == "paused" and not info["running"], info
    health = run_module("perry.fleet.perry_worker_health", {"name": name, "timeout": 5}, topology)
    assert health.get("failed") and "is paused: unpause it" in health["msg"] and health["workspaces"][0]["attempts"] == 0
    sessions = ok(run_module("perry.fleet.perry_sessions", {"name": name}, topology))
    assert "is paused" in sessions["workspaces"][0]["error"]
    r = ok(run_module(MODULE, args, topology))
    assert r["workspaces"][0]["actions"] == ["unpause"] and r["workspaces"][0]["running"], r["workspaces"]
    ok(run_module("perry.fleet.perry_worker_health", {"name": name, "timeout": 30}, topology))
    topology.pause("workspace-" + name)
    r = ok(run_module(MODULE, dict(args, state="stopped"), topology))
    assert r["workspaces"][0]["actions"] == ["stop"] and topology.inspect("workspace-" + name)["State"]["Status"] == "exited"


@pytest.mark.parametrize("topology_name", ["podman-rootful", "docker"])
def test_twenty_concurrent_creates_never_share_a_port(topology_name):
    """20 forks, each its own module run on this host: the host port lock keeps every port unique."""
    from topology import TOPOLOGIES, random_prefix
    from topology import build_workspace_image
    topo = TOPOLOGIES[topology_name]
    image = build_workspace_image(topo)
    prefix = random_prefix()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            inventory = os.path.join(tmp, "hosts")
            with open(inventory, "w") as fh:
                fh.write("\n".join("w%02d ansible_connection=local ansible_python_interpreter=%s" % (i, sys.executable) for i in range(20)))
            play = os.path.join(tmp, "play.yml")
            with open(play, "w") as fh:
                json.dump([{"hosts": "all", "gather_facts": False, "tasks": [{
                    "perry.fleet.perry_workspace": dict(topo.engine_args(), name=prefix + "{{ inventory_hostname }}",
                                                        image=image, state="present"),
                    "register": "ws"}, {"ansible.builtin.copy": {
                        "dest": os.path.join(tmp, "{{ inventory_hostname }}.json"), "content": "{{ ws | to_json }}"},
                        "delegate_to": "localhost"}]}], fh)
            proc = subprocess.run([venv_bin("ansible-playbook"), "-i", inventory, "-f", "20", play], cwd=REPO,
                                  capture_output=True, text=True, timeout=900, check=False)
            assert proc.returncode == 0, proc.stdout[-4000:]
            results = [json.load(open(os.path.join(tmp, "w%02d.json" % i)))["workspaces"][0] for i in range(20)]
        ssh = [r["ports"]["ssh"] for r in results]
        assert len(set(ssh)) == 20, sorted(ssh)
        if topo.runtime == "podman":
            worker = [r["ports"]["worker"] for r in results]
            assert len(set(worker)) == 20, sorted(worker)
        # The engine agrees: no two containers publish the same host port.
        published = []
        for r in results:
            c = topo.inspect("workspace-" + r["name"])
            published += [b["HostPort"] for v in c["HostConfig"]["PortBindings"].values() for b in v]
        assert len(published) == len(set(published))
    finally:
        topo.cleanup(prefix)


def test_docker_host_is_forwarded_into_podman_workspaces(topology, workspace_image, prefix):
    if topology.runtime != "podman":
        pytest.skip("docker_host is a podman-profile feature (docker refuses it: test_runtime_specific_refusals)")
    name = prefix + "dh"
    ok(run_module(MODULE, {"name": name, "image": workspace_image, "docker_host": "tcp://podman-in-podman:2375"}, topology))
    env = topology.cli("exec", "workspace-" + name, "env").stdout.splitlines()
    assert "DOCKER_HOST=tcp://podman-in-podman:2375" in env
    # The image's entrypoint sees it and does not start a Docker engine of its own.
    assert topology.cli("exec", "workspace-" + name, "sh", "-c", "pgrep -x dockerd || echo none").stdout.strip() == "none"


def test_files_are_placed_with_perry_modes_and_no_recursive_chmod(topology, workspace_image, prefix):
    name = prefix + "files"
    cname = "workspace-" + name
    secret = "tok-" + prefix
    files = [{"dest": "~/.claude/.credentials.json", "content": '{"token": "%s"}' % secret},
             {"dest": "~/.ssh/authorized_keys", "content": "ssh-ed25519 AAAAC3Nz test"},
             {"dest": "~/.config/git/nested/config", "content": "[user]\n\tname = t\n"}]
    r = ok(run_module(MODULE, {"name": name, "image": workspace_image, "files": files}, topology, verbosity=1))
    assert "place 3 file(s)" in r["workspaces"][0]["actions"]
    assert secret not in r["_stdout"]
    modes = topology.cli("exec", cname, "stat", "-c", "%a %U %n", "/home/workspace/.ssh", "/home/workspace/.ssh/authorized_keys",
                         "/home/workspace/.claude/.credentials.json", "/home/workspace/.config/git/nested",
                         "/home/workspace/.config/git/nested/config").stdout.split("\n")
    assert modes[:5] == ["700 workspace /home/workspace/.ssh", "600 workspace /home/workspace/.ssh/authorized_keys",
                         "600 workspace /home/workspace/.claude/.credentials.json",
                         "755 workspace /home/workspace/.config/git/nested",
                         "644 workspace /home/workspace/.config/git/nested/config"]
    again = ok(run_module(MODULE, {"name": name, "image": workspace_image, "files": files}, topology))
    assert not again["changed"]
    calls = [c["cmd"].split()[1] for c in again["commands"]]
    # Root reads the manifest in the home volume on this host; the rootless user cannot (the volume belongs to
    # the container's subuids), so there it costs one exec.
    assert calls == (["inspect", "exec"] if topology.become_user else ["inspect"]), calls
    bad = run_module(MODULE, {"name": name, "image": workspace_image, "files": [{"dest": "../../etc/passwd", "content": "x"}]},
                     topology)
    assert bad.get("failed") and "outside the workspace home" in bad["msg"]
