"""Options added for issue 17: workspace_docker_host (docker_host deprecated), labels, ports, pull=always; and the
promise that an upgrade recreates nothing for a workspace that does not use them."""

from __future__ import annotations

import pytest

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.perry.fleet.plugins.module_utils import layout
from ansible_collections.perry.fleet.plugins.module_utils import workspace_spec as ws
from ansible_collections.perry.fleet.plugins.module_utils.errors import SpecError, WorkspaceError
from ansible_collections.perry.fleet.plugins.module_utils.runtime_profile import PROFILES
from ansible_collections.perry.fleet.plugins.module_utils.workspace import Settings, WorkspaceManager, validate

from .fake_engine import FakeEngine
from .test_workspace import IMAGE, converge, params

# spec_hash() of two fixed specs, then the labels older releases gave them. The schema-0 digests were computed with
# perry.fleet 0.1.0's formula before these options existed (commit fd2acd1); the v1 hashes after secrets left the
# hash (v1 was never released); v2 after env (and docker's resources) left it. An old label must keep matching:
# otherwise every existing workspace is recreated on upgrade.
PINNED = {
    "docker": "v2:3b04767f80cccca2274a41812b9b8c67c33ce74cc8488adbefe1e8c20e6ae9b4",
    "podman": "v2:4048b81b0db6b942eefcecd7764c45dd6e31a57f37564f0595b83fa3aeaabfda",
}
LEGACY = {
    "docker": ("v1:05930b47fd1a8771b9c693a053eae7e8000a83c47a51cf9f3acee8984cfb2175",
               "cebfc3c996c4e9ba554bcce876c372d3fa0ab01656bbd493d07504eae30afef7"),
    "podman": ("v1:554be5be48c644b5600242c45f513c2b5ae3280f894c8e6894185118e45f6a9a",
               "a6baec8ab8ca98860cef9b68b38532b25e66476a3e5ad20487a6d3d142553a15"),
}


def legacy_label(s):
    """The spec label a container of schema 0 or 1 carries: the public spec with its env."""
    return dict(s.public(), env=dict(s.env))


def fixed_spec(runtime, **kw):
    base = dict(name="alice", profile=PROFILES[runtime], image="localhost/perry:latest", image_id="abc",
                privileged=PROFILES[runtime].privileged, env={"A": "1"}, secret_env={"T": "s"},
                docker_host="tcp://pip:2375" if runtime == "podman" else None, memory="1g", cpus=1.5,
                pids_limit=100, ssh_port=2200, worker_port=7392 if runtime == "podman" else None)
    base.update(kw)
    return ws.WorkspaceSpec(**base)


@pytest.fixture(autouse=True)
def no_real_port_probe(monkeypatch):
    monkeypatch.setattr("ansible_collections.perry.fleet.plugins.module_utils.ports.bind_probe",
                        lambda port, address="0.0.0.0": True)


@pytest.mark.parametrize("runtime", ["docker", "podman"])
def test_hash_of_a_workspace_without_the_new_options_is_unchanged(runtime):
    s = fixed_spec(runtime)
    assert s.spec_hash() == PINNED[runtime]
    for old in LEGACY[runtime]:                        # v1 and 0.1.0 (schema 0) labels still match
        assert s.matches_hash(old, legacy_label(s))
        assert s.matches_hash(old)                     # without a readable spec label: the spec's own values
    # env is applied in place now: a changed env still matches the old label (the file brings it in step)...
    assert fixed_spec(runtime, env={"A": "2"}).matches_hash(LEGACY[runtime][0], legacy_label(s))
    # ...and so are docker's limits (the label holds the ones created with; HostConfig is compared next)
    changed = fixed_spec(runtime, memory="2g")
    assert changed.matches_hash(LEGACY[runtime][0], legacy_label(s)) == (runtime == "docker")
    assert not fixed_spec(runtime, image_id="def").matches_hash(LEGACY[runtime][0], legacy_label(s))
    assert "labels" not in s.public() and "extra" not in s.public()["ports"]


@pytest.mark.parametrize("runtime", ["docker", "podman"])
def test_the_new_options_change_the_hash_when_set(runtime):
    h = fixed_spec(runtime).spec_hash()
    assert fixed_spec(runtime, user_labels={"com.example.team": "a"}).spec_hash() != h
    port = {"container_port": 3000, "host_port": 13000, "protocol": "tcp", "bind_address": "127.0.0.1"}
    assert fixed_spec(runtime, extra_ports=[port]).spec_hash() != h


def argspec():
    spec = {"runtime": {"type": "str", "default": "podman"}}
    spec.update(ws.argument_spec())
    return spec


def test_docker_host_is_a_deprecated_alias_top_level_and_in_entries():
    result = ArgumentSpecValidator(argspec()).validate(
        {"docker_host": "tcp://a:2375", "workspaces": [{"name": "x", "docker_host": "tcp://b:2375"}]})
    assert not result.error_messages
    assert [(d["version"], d["collection_name"]) for d in result._deprecations] == [("2.0.0", "perry.fleet")] * 2
    p = result.validated_parameters
    items = ws.expand_items(p)
    assert items[0]["workspace_docker_host"] == "tcp://b:2375" and "docker_host" not in items[0]
    # The single form, as AnsibleModule leaves it (the alias next to the new name), and from a direct caller.
    single = ws.expand_items(dict(p, workspaces=None, name="y"))
    assert single[0]["workspace_docker_host"] == "tcp://a:2375"
    assert ws.expand_items({"name": "z", "docker_host": "tcp://c:2375"})[0]["workspace_docker_host"] == "tcp://c:2375"


def test_the_alias_reaches_the_container_as_docker_host():
    eng = FakeEngine()
    converge(eng, name="alice", docker_host="tcp://podman-in-podman:2375")
    files = eng.files_seen["workspace-alice"]
    assert files["--env-file"]["DOCKER_HOST"] == "tcp://podman-in-podman:2375"
    eng.commands.clear()
    manager, res = converge(eng, name="alice", workspace_docker_host="tcp://podman-in-podman:2375")
    assert not manager.changed and res[0]["actions"] == []   # the rename recreates nothing


def test_user_labels_are_merged_under_perrys_own():
    eng = FakeEngine()
    res = converge(eng, name="alice", labels={"com.example.team": "platform", "tier": 3}).results
    labels = eng.containers["workspace-alice"]["Config"]["Labels"]
    assert labels["com.example.team"] == "platform" and labels["tier"] == "3"
    assert labels[layout.LABEL_NAME] == "alice" and labels[layout.LABEL_MANAGED] == "true"
    assert res[0]["actions"][-2:] == ["create", "start"]
    assert not converge(eng, name="alice", labels={"tier": "3", "com.example.team": "platform"}).manager.changed
    res = converge(eng, name="alice", labels={"tier": "4", "com.example.team": "platform"}).results
    assert "recreate" in res[0]["actions"]
    assert res[0]["diff"]["before"] == {"labels": {"com.example.team": "platform", "tier": "3"}}


@pytest.mark.parametrize("labels,fragment", [
    ({"perry.fleet.spec-hash": "x"}, "reserved"),
    ({"perry.fleet.anything": "x"}, "reserved"),
    ({layout.LABEL_NAME: "bob"}, "reserved"),
    ({layout.LABEL_MANAGED: "false"}, "reserved"),
    ({"a=b": "x"}, "label key"),
    ({"": "x"}, "label key"),
    ({"ok": "line\nbreak"}, "newline"),
    ("team=a", "mapping"),
])
def test_bad_labels_are_refused_before_anything(labels, fragment):
    eng = FakeEngine()
    with pytest.raises(SpecError, match=fragment):
        converge(eng, name="alice", labels=labels)
    assert not eng.commands


def test_extra_ports_are_published_and_returned():
    eng = FakeEngine()
    ports = [{"container_port": 3000, "host_port": 13000},
             {"container_port": 53, "host_port": 10053, "protocol": "udp", "bind_address": "0.0.0.0"}]
    res = converge(eng, name="alice", ports=ports).results
    bindings = eng.containers["workspace-alice"]["HostConfig"]["PortBindings"]
    assert bindings["3000/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": "13000"}]
    assert bindings["53/udp"] == [{"HostIp": "0.0.0.0", "HostPort": "10053"}]
    assert [p["host_port"] for p in res[0]["ports"]["extra"]] == [10053, 13000]   # sorted
    assert not converge(eng, name="alice", ports=list(reversed(ports))).manager.changed   # order does not matter


@pytest.mark.parametrize("kw,fragment", [
    (dict(ports=[{"container_port": 22, "host_port": 13000}]), "perry.fleet's own"),
    (dict(ports=[{"container_port": 7392, "host_port": 13000}]), "perry.fleet's own"),
    (dict(ports=[{"container_port": 0, "host_port": 13000}]), "outside its range"),
    (dict(ports=[{"container_port": 80, "host_port": 70000}]), "outside its range"),
    (dict(ports=[{"container_port": 80}]), "needs host_port"),
    (dict(ports=[{"container_port": 80, "host_port": 13000, "proto": "tcp"}]), "unknown key"),
    (dict(ports=[{"container_port": 80, "host_port": 13000, "protocol": "sctp"}]), "tcp or udp"),
    (dict(ports=[{"container_port": 80, "host_port": 13000, "bind_address": "::1"}]), "IPv4"),
    (dict(ports=[{"container_port": 80, "host_port": 13000}, {"container_port": 81, "host_port": 13000}]),
     "listed twice"),
    (dict(ssh_port=2210, ports=[{"container_port": 80, "host_port": 2210}]), "this workspace's ssh port"),
    (dict(workspaces=[{"name": "a", "ports": [{"container_port": 80, "host_port": 13000}]},
                      {"name": "b", "ports": [{"container_port": 81, "host_port": 13000}]}]), "asked for by both"),
    (dict(workspaces=[{"name": "a", "ssh_port": 2230},
                      {"name": "b", "ports": [{"container_port": 81, "host_port": 2230}]}]), "asked for by both"),
])
def test_bad_ports_are_refused_before_anything(kw, fragment):
    eng = FakeEngine()
    kw.setdefault("name", None if "workspaces" in kw else "alice")
    with pytest.raises(SpecError, match=fragment):
        converge(eng, **kw)
    assert not eng.commands


def test_an_extra_port_another_container_publishes_is_refused_before_creating():
    eng = FakeEngine()
    converge(eng, name="alice", ports=[{"container_port": 3000, "host_port": 13000}])
    with pytest.raises(WorkspaceError, match="13000 is already used by workspace-alice"):
        converge(eng, name="bob", ports=[{"container_port": 3000, "host_port": 13000}])
    assert "workspace-bob" not in eng.containers and "workspace-bob" not in eng.volumes


class PullingEngine(FakeEngine):
    """A registry that serves a newer image of IMAGE on pull (when moved) or the same one."""

    def __init__(self):
        super().__init__()
        self.moved = False

    def pull(self, ref, timeout=None):
        self.commands.append({"cmd": "fake pull " + ref})
        if self.moved:
            self.images[ref] = {"Id": "sha256:%064d" % 99, "RepoTags": [ref]}


def converge_pull(eng, pull, check=False):
    settings = Settings(runtime="podman", check_mode=check, pull=pull, port_lock_path="/tmp/perry-fleet-unit.lock")
    manager = WorkspaceManager(eng, settings)
    return manager, manager.apply(manager.plan(validate(params(name="alice"), settings)))


def test_pull_always_pulls_present_images_and_changes_only_when_the_image_moved():
    eng = PullingEngine()
    converge_pull(eng, "missing")
    assert not any(c["cmd"].startswith("fake pull") for c in eng.commands)
    eng.commands.clear()
    manager, res = converge_pull(eng, "always")
    assert "fake pull " + IMAGE in [c["cmd"] for c in eng.commands]
    assert not manager.changed and res[0]["actions"] == []
    eng.moved = True
    eng.commands.clear()
    manager, res = converge_pull(eng, "always", check=True)
    assert not any(c["cmd"].startswith("fake pull") for c in eng.commands)   # check mode never pulls
    manager, res = converge_pull(eng, "always")
    assert manager.changed and "recreate" in res[0]["actions"]


def test_pull_always_of_a_local_only_image_fails_with_advice():
    eng = FakeEngine()   # its pull fails: no registry
    with pytest.raises(WorkspaceError, match="pull=always.*use pull=missing"):
        converge_pull(eng, "always")
    assert not eng.containers and not eng.volumes


def test_every_new_option_is_in_the_entry_keys():
    assert {"labels", "ports", "workspace_docker_host"} <= set(ws.ITEM_OPTIONS)
    assert ws.ITEM_ALIASES == {"docker_host": "workspace_docker_host"}


@pytest.mark.parametrize("runtime", ["docker", "podman"])
def test_env_and_dockers_limits_are_not_in_the_hash(runtime):
    h = fixed_spec(runtime).spec_hash()
    assert fixed_spec(runtime, env={"B": "2"}).spec_hash() == h
    assert (fixed_spec(runtime, memory="2g", cpus=2.0, pids_limit=7).spec_hash() == h) == (runtime == "docker")
