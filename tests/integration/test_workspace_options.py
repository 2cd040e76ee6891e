"""perry_workspace's labels, extra ports, pull=always and the docker_host alias on real engines (issue 17)."""

from __future__ import annotations

import json
import re
import socket

import pytest

from topology import TOPOLOGIES, build_workspace_image, random_prefix, run_module, run_playbook

MODULE = "perry.fleet.perry_workspace"


@pytest.fixture(params=["podman-rootful", "docker"])
def engine(request):
    topo = TOPOLOGIES[request.param]
    prefix = random_prefix()
    try:
        image = build_workspace_image(topo)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield topo, image, prefix
    topo.cleanup(prefix)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ok(result):
    assert not result.get("failed"), json.dumps({k: result.get(k) for k in ("msg", "commands")}, indent=1)
    return result


def test_labels_ports_and_pull_on_a_real_engine(engine):
    topo, image, prefix = engine
    name = prefix + "opt"
    host_port = free_port()
    args = dict(topo.engine_args(), name=name, image=image, state="present",
                labels={"com.example.team": "platform"},
                ports=[{"container_port": 3000, "host_port": host_port}])
    r = ok(run_module(MODULE, args, topo))
    w = r["workspaces"][0]
    assert r["changed"] and w["ports"]["extra"] == [
        {"container_port": 3000, "host_port": host_port, "protocol": "tcp", "bind_address": "127.0.0.1"}]
    c = topo.inspect("workspace-" + name)
    assert c["Config"]["Labels"]["com.example.team"] == "platform"
    assert c["Config"]["Labels"]["workspace.name"] == name
    assert c["HostConfig"]["PortBindings"]["3000/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(host_port)}]

    # Idempotent, and the old option name still works (with a deprecation) without recreating anything.
    assert not ok(run_module(MODULE, args, topo))["changed"]

    # A reserved label and a duplicate host port are refused before anything changes.
    bad = ok_failed(run_module(MODULE, dict(args, labels={"perry.fleet.spec-hash": "x"}), topo))
    assert "reserved" in bad["msg"]
    bad = ok_failed(run_module(MODULE, dict(args, ports=args["ports"] + [{"container_port": 3001, "host_port": host_port}]), topo))
    assert "listed twice" in bad["msg"]
    other = ok_failed(run_module(MODULE, dict(args, name=prefix + "two"), topo))
    assert "already used by workspace-" + name in other["msg"]
    assert topo.inspect("workspace-" + prefix + "two") is None
    assert topo.inspect("workspace-" + name)["Id"] == c["Id"]

    # pull=always on an image only this machine has: a clear error, the workspace untouched.
    bad = ok_failed(run_module(MODULE, dict(args, pull="always"), topo))
    assert "could not be pulled (pull=always)" in bad["msg"] and "pull=missing" in bad["msg"]
    assert topo.inspect("workspace-" + name)["Id"] == c["Id"]

    # A changed label recreates (labels cannot change in place) and keeps the ports.
    r = ok(run_module(MODULE, dict(args, labels={"com.example.team": "infra"}), topo))
    assert "recreate" in r["workspaces"][0]["actions"]
    c = topo.inspect("workspace-" + name)
    assert c["Config"]["Labels"]["com.example.team"] == "infra"
    assert c["HostConfig"]["PortBindings"]["3000/tcp"][0]["HostPort"] == str(host_port)


def test_the_deprecated_docker_host_alias_warns_and_recreates_nothing():
    topo = TOPOLOGIES["podman-rootful"]
    prefix = random_prefix()
    try:
        image = build_workspace_image(topo)
        args = dict(topo.engine_args(), name=prefix + "dh", image=image, state="present")
        ok(run_module(MODULE, dict(args, docker_host="tcp://podman-in-podman:2375"), topo))
        r = ok(run_module(MODULE, dict(args, workspace_docker_host="tcp://podman-in-podman:2375"), topo))
        assert not r["changed"]
        r = ok(run_module(MODULE, dict(args, docker_host="tcp://podman-in-podman:2375"), topo))
        assert not r["changed"]
        assert any("docker_host" in d["msg"] and d.get("collection_name") == "perry.fleet"
                   for d in r.get("deprecations", [])), r.get("deprecations")
        env = topo.inspect("workspace-" + prefix + "dh")["Config"]["Env"]
        assert "DOCKER_HOST=tcp://podman-in-podman:2375" in env
    finally:
        topo.cleanup(prefix)


def ok_failed(result):
    assert result.get("failed"), json.dumps({k: result.get(k) for k in ("changed", "workspaces")}, indent=1)
    return result


def free_ssh_port(topo) -> int:
    """A port of the SSH range no container publishes and nothing listens on (other runs may share the host)."""
    held = set()
    for line in topo.cli("ps", "-a", "--format", "{{.Ports}}").stdout.splitlines():
        held.update(int(p) for p in re.findall(r":(\d+)->", line))
    for port in range(2399, 2300, -1):
        if port in held:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise AssertionError("no free SSH port in 2301-2399")


def test_the_workspace_role_passes_entry_options_through():
    """perry_workspace_list entries with ssh_port, bind_address, image, adopt, labels and ports (issue 17)."""
    topo = TOPOLOGIES["podman-rootful"]
    prefix = random_prefix()
    name = prefix + "role"
    try:
        image = build_workspace_image(topo)
        topo.cli("volume", "create", "workspace-" + name)   # unlabelled, as Perry made it: needs adopt
        ssh_port, extra = free_ssh_port(topo), free_port()
        entry = {"name": name, "state": "present", "image": image, "ssh_port": ssh_port, "bind_address": "127.0.0.1",
                 "adopt": True, "labels": {"com.example.team": "platform"},
                 "ports": [{"container_port": 3000, "host_port": extra}]}
        # The role-wide image does not exist: only the entry's image lets the run succeed.
        role_vars = {"perry_workspace_runtime": "podman", "perry_workspace_image": "localhost/%snot-there:1" % prefix,
                     "perry_workspace_list": [entry]}
        out = run_playbook([{"name": "workspace", "ansible.builtin.include_role": {"name": "perry.fleet.workspace"}}],
                           extra_vars=role_vars, timeout=600)
        assert out["rc"] == 0, out["stdout"][-4000:]
        c = topo.inspect("workspace-" + name)
        assert c["Config"]["Labels"]["com.example.team"] == "platform"
        bindings = c["HostConfig"]["PortBindings"]
        assert bindings["22/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(ssh_port)}]
        assert bindings["3000/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(extra)}]
        # A key the module does not know is refused by the role's argument spec, naming it.
        bad = run_playbook([{"name": "workspace", "ansible.builtin.include_role": {"name": "perry.fleet.workspace"}}],
                           extra_vars=dict(role_vars, perry_workspace_list=[dict(entry, sshport=1)]), timeout=300)
        assert bad["rc"] != 0 and "sshport" in json.dumps(bad["tasks"][-1])
    finally:
        topo.cleanup(prefix)


def test_the_documented_minimum_engines_are_the_ones_tested():
    """requirements: (doc_fragments/engine.py) claims Podman 4.3 and Docker 20.10 are tested: the engines these
    tests run must be those major.minor versions, or the claim (or the test bed) is out of date."""
    import yaml
    from ansible_collections.perry.fleet.plugins.doc_fragments.engine import ModuleDocFragment
    reqs = " ".join(yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["requirements"])
    podman_min = re.search(r"Podman >= (\d+\.\d+)", reqs).group(1)
    docker_min = re.search(r"docker\s+CLI >= (\d+\.\d+)", reqs).group(1)
    podman = TOPOLOGIES["podman-rootful"].cli("version", "--format", "{{.Client.Version}}").stdout.strip()
    docker = TOPOLOGIES["docker"].cli("version", "--format", "{{.Server.Version}} {{.Client.Version}}").stdout.split()
    assert podman.startswith(podman_min + "."), (podman, podman_min)
    assert all(v.startswith(docker_min + ".") for v in docker), (docker, docker_min)


def test_rootless_preflight_says_workspaces_will_not_survive_a_reboot():
    """This test bed has no systemd: nothing starts rootless containers at boot, and preflight says so (warn) or
    stops before anything is created (fail)."""
    topo = TOPOLOGIES["podman-rootless"]
    prefix = random_prefix()
    role = [{"name": "workspace", "ansible.builtin.include_role": {"name": "perry.fleet.workspace"}}]
    base = {"perry_workspace_runtime": "podman", "perry_workspace_list": [{"name": prefix + "boot"}]}
    try:
        out = run_playbook(role, topo, extra_vars=dict(base, perry_workspace_state="absent"), timeout=300)
        assert out["rc"] == 0, out["stdout"][-3000:]
        warned = [t for t in out["tasks"] if "will not come back after a reboot" in str(t.get("msg"))]
        assert warned and "no systemd" in warned[0]["msg"] and "podman start --all" in warned[0]["msg"]
        out = run_playbook(role, topo, extra_vars=dict(base, perry_workspace_rootless_reboot="fail"), timeout=300)
        assert out["rc"] != 0
        failed = out["tasks"][-1]
        assert failed.get("failed") and "Nothing was created" in failed["msg"] and "no systemd" in failed["msg"]
        assert topo.inspect("workspace-" + prefix + "boot") is None
        out = run_playbook(role, topo, extra_vars=dict(base, perry_workspace_state="absent",
                                                       perry_workspace_rootless_reboot="ignore"), timeout=300)
        assert out["rc"] == 0 and not [t for t in out["tasks"] if "reboot" in str(t.get("msg"))]
    finally:
        topo.cleanup(prefix)
