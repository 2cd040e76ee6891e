from __future__ import annotations

import collections
import copy

import pytest

from ansible_collections.perry.fleet.plugins.module_utils import layout
from ansible_collections.perry.fleet.plugins.module_utils import workspace_spec as ws
from ansible_collections.perry.fleet.plugins.module_utils.errors import EngineError, WorkspaceError
from ansible_collections.perry.fleet.plugins.module_utils.workspace import Settings, WorkspaceManager, validate

from .fake_engine import FakeEngine

IMAGE = "localhost/perry:latest"
Run = collections.namedtuple("Run", "manager results")


def params(**kw):
    p = {k: None for k in ws.ITEM_OPTIONS + ("workspaces",)}
    p.update(state="started", image=IMAGE, env={}, secret_env={})
    p.update(kw)
    return p


def converge(engine, runtime="podman", check=False, lock=None, **kw):
    settings = Settings(runtime=runtime, check_mode=check, port_lock_path=lock or "/tmp/perry-fleet-unit.lock")
    settings.start_timeout = 2
    manager = WorkspaceManager(engine, settings)
    items = validate(params(**kw), settings)
    return Run(manager, manager.apply(manager.plan(items)))


@pytest.fixture(autouse=True)
def no_real_port_probe(monkeypatch):
    monkeypatch.setattr("ansible_collections.perry.fleet.plugins.module_utils.ports.bind_probe", lambda port, address="0.0.0.0": True)


def test_create_then_idempotent_with_one_inspect():
    eng = FakeEngine()
    manager, res = converge(eng, name="alice")
    assert manager.changed and res[0]["actions"] == ["create volume workspace-alice", "create", "start"]
    assert res[0]["ports"] == {"ssh": 2200, "worker": 7392, "bind_address": "127.0.0.1"}
    eng.commands.clear()
    manager, res = converge(eng, name="alice")
    assert not manager.changed and res[0]["actions"] == []
    assert [c["cmd"] for c in eng.commands] == ["fake inspect workspace-alice workspace-alice.perry-fleet-replaced " + IMAGE]


def test_list_form_is_one_inspect_for_twenty():
    eng = FakeEngine()
    names = [{"name": "w%02d" % i} for i in range(20)]
    converge(eng, workspaces=names)
    eng.commands.clear()
    manager, res = converge(eng, workspaces=names)
    assert not manager.changed and len(eng.commands) == 1
    ssh = [r["ports"]["ssh"] for r in res]
    assert len(set(ssh)) == 20 and len({r["ports"]["worker"] for r in res}) == 20


def test_image_change_recreates_keeps_volumes_and_ports():
    eng = FakeEngine(images=(IMAGE, "localhost/perry:v2"))
    first = converge(eng, name="alice").results
    res = converge(eng, name="alice", image="localhost/perry:v2").results
    assert res[0]["actions"] == ["recreate", "start"]
    assert res[0]["ports"] == first[0]["ports"]
    assert "workspace-alice" in eng.volumes


def test_env_change_is_a_file_in_place_not_a_recreate():
    eng = FakeEngine()
    first = converge(eng, name="alice", env={"A": "1"}).results[0]
    assert "A" not in eng.files_seen["workspace-alice"]["--env-file"]   # not in the engine's config
    res = converge(eng, name="alice", env={"A": "2", "B": "x y"}).results[0]
    assert res["container_id"] == first["container_id"] and res["actions"] == ["place 1 file(s)"]
    assert "recreate_reasons" not in res and "A=2\nB='x y'\n" in _placed(eng)


def test_diff_shows_only_changed_keys():
    eng = FakeEngine()
    converge(eng, name="alice", labels={"a": "1"})
    res = converge(eng, name="alice", labels={"a": "2"}).results
    assert res[0]["diff"]["before"] == {"labels": {"a": "1"}} and res[0]["diff"]["after"] == {"labels": {"a": "2"}}


def _old_container(eng, name, env, runtime="docker", **kw):
    """Make workspace-<name> look created by a release whose schema-1 label hashed env and carried it in Config.Env."""
    c = eng.containers[layout.container_name(name)]
    label = dict(ws.spec_from_labels(c["Config"]["Labels"]), env=env)
    c["Config"]["Labels"][layout.LABEL_SPEC] = __import__("json").dumps(label)
    c["Config"]["Labels"][layout.LABEL_SPEC_HASH] = "v1:" + ws._digest(ws._without_unset({"public": label}))
    c["Config"]["Env"] += ["%s=%s" % kv for kv in env.items()]


def test_an_old_container_carrying_env_is_not_recreated_by_the_upgrade():
    eng = FakeEngine()
    first = converge(eng, runtime="docker", name="alice", memory="1g").results[0]
    _old_container(eng, "alice", {"A": "1", "GONE": "x"})
    res = converge(eng, runtime="docker", name="alice", memory="1g", env={"A": "1"}).results[0]
    assert res["container_id"] == first["container_id"] and res["actions"] == ["place 1 file(s)"], res
    assert "unset GONE\nA=1\n" in _placed(eng)
    assert res["diff"] == {"before": {}, "after": {}} or "env" not in res["diff"]["after"]


def test_docker_limits_are_updated_in_place_and_podman_recreates():
    eng = FakeEngine()
    first = converge(eng, runtime="docker", name="alice", memory="1g", cpus=1.0).results[0]
    eng.commands.clear()
    check = converge(eng, runtime="docker", check=True, name="alice", memory="2g", cpus=1.0, pids_limit=50).results[0]
    assert check["actions"] == ["update_resources"] and not [c for c in eng.commands if "update" in c["cmd"]]
    assert check["diff"] == {"before": {"resources": {"memory": "1g", "cpus": 1.0, "pids_limit": None}},
                             "after": {"resources": {"memory": "2g", "cpus": 1.0, "pids_limit": 50}}}
    res = converge(eng, runtime="docker", name="alice", memory="2g", cpus=1.0, pids_limit=50).results[0]
    assert res["container_id"] == first["container_id"] and res["actions"] == ["update_resources"]
    assert "recreate_reasons" not in res and res["spec_hash"] == first["spec_hash"]
    hc = eng.containers["workspace-alice"]["HostConfig"]
    assert (hc["Memory"], hc["NanoCpus"], hc["PidsLimit"]) == (2 * 1024 ** 3, 1000000000, 50)
    eng.commands.clear()
    again = converge(eng, runtime="docker", name="alice", memory="2g", cpus=1.0, pids_limit=50).results[0]
    assert again["actions"] == [] and len(eng.commands) == 1   # compared from the one inspect
    unset = converge(eng, runtime="docker", name="alice", cpus=1.0, pids_limit=50).results[0]
    assert "recreate" in unset["actions"] and unset["recreate_reasons"] == ["resources"]

    eng = FakeEngine()
    converge(eng, name="bob", memory="1g")
    res = converge(eng, name="bob", memory="2g").results[0]
    assert "recreate" in res["actions"] and res["recreate_reasons"] == ["resources"]


def _placed(eng) -> str:
    """Every file content the fake engine's execs received on stdin, decoded (install_script's base64)."""
    import base64
    import re
    blocks = re.findall(r"<<'PERRY_FLEET_EOF'\n(.*?)\nPERRY_FLEET_EOF", "".join(eng.stdin_seen), re.S)
    return "".join(base64.b64decode(b).decode() for b in blocks)


def test_secrets_are_a_file_in_the_workspace_never_engine_config_or_results():
    eng = FakeEngine()
    res = converge(eng, name="alice", secret_env={"TOKEN": "s3cret"}, env={"PLAIN": "v"}).results
    files = eng.files_seen["workspace-alice"]
    assert "TOKEN" not in files["--env-file"] and ws.SECRET_KEYS_ENV not in files["--env-file"]
    assert "PLAIN" not in files["--env-file"] and "PLAIN=v" in _placed(eng)
    assert "s3cret" not in repr(res) and "s3cret" not in repr(eng.commands) and "s3cret" not in repr(files)
    assert "\nTOKEN=s3cret\n" in _placed(eng)   # on the exec's stdin, written as the workspace user
    assert "place 2 file(s)" in res[0]["actions"]


def test_a_rotated_secret_is_placed_in_place_without_recreate():
    eng = FakeEngine()
    first = converge(eng, name="alice", secret_env={"TOKEN": "old"}).results[0]
    again = converge(eng, name="alice", secret_env={"TOKEN": "new", "MORE": "x y"}).results[0]
    assert again["container_id"] == first["container_id"] and again["spec_hash"] == first["spec_hash"]
    assert again["actions"] == ["place 1 file(s)"] and "recreate_reasons" not in again
    assert "MORE='x y'\nTOKEN=new" in _placed(eng)


def test_recreate_says_which_keys_forced_it():
    eng = FakeEngine(images=(IMAGE, "localhost/perry:v2"))
    converge(eng, name="alice", env={"A": "1"}, labels={"x": "1"})
    res = converge(eng, name="alice", image="localhost/perry:v2", env={"A": "2"}, labels={"x": "2"}).results[0]
    assert res["recreate_reasons"] == ["image", "image_id", "labels"]


def test_check_mode_changes_nothing_and_says_what_it_would_do():
    eng = FakeEngine()
    manager, res = converge(eng, name="alice", check=True)
    assert manager.changed and res[0]["actions"] == ["create volume workspace-alice", "create", "start"]
    assert not eng.containers and not eng.volumes
    assert res[0]["ports"]["ssh"] is None  # nothing allocated


def test_check_mode_writes_no_port_claims_and_a_run_does(tmp_path):
    lock = str(tmp_path / "ports.lock")
    converge(FakeEngine(), name="alice", check=True, lock=lock, ssh_port=2222)
    assert not (tmp_path / "ports.claims").exists()
    converge(FakeEngine(), name="alice", lock=lock, ssh_port=2222)
    assert [p.name for p in (tmp_path / "ports.claims").iterdir()]


def test_stop_start_restart_cycle():
    eng = FakeEngine()
    converge(eng, name="alice")
    res = converge(eng, name="alice", state="stopped").results
    assert res[0]["actions"] == ["stop"] and not res[0]["running"]
    res = converge(eng, name="alice", state="stopped").results
    assert res[0]["actions"] == []
    res = converge(eng, name="alice", state="started").results
    assert res[0]["actions"] == ["start"] and res[0]["running"]
    res = converge(eng, name="alice", state="restarted").results
    assert res[0]["actions"] == ["restart"]


def test_present_creates_without_starting():
    eng = FakeEngine()
    res = converge(eng, name="alice", state="present").results
    assert res[0]["actions"] == ["create volume workspace-alice", "create"] and not res[0]["running"]


def test_absent_keeps_volumes_unless_purge():
    eng = FakeEngine()
    converge(eng, runtime="docker", name="alice")
    assert eng.volumes == {"workspace-alice", "workspace-alice-docker"}
    res = converge(eng, runtime="docker", name="alice", state="absent").results
    assert res[0]["actions"] == ["remove container"] and eng.volumes == {"workspace-alice", "workspace-alice-docker"}
    res = converge(eng, runtime="docker", name="alice", state="absent", purge=True, check=True).results
    assert eng.volumes == {"workspace-alice", "workspace-alice-docker"}
    res = converge(eng, runtime="docker", name="alice", state="absent", purge=True).results
    assert not eng.volumes and not eng.containers


def test_docker_profile_applied():
    eng = FakeEngine()
    res = converge(eng, runtime="docker", name="alice").results
    c = eng.containers["workspace-alice"]
    assert c["HostConfig"]["Privileged"] and res[0]["ports"]["worker"] is None
    assert res[0]["volumes"] == {"home": "workspace-alice", "docker": "workspace-alice-docker"}


def test_foreign_container_is_not_touched_without_adopt():
    eng = FakeEngine()
    eng.containers["workspace-alice"] = {"Id": "x", "Name": "/workspace-alice", "State": {"Running": True},
                                         "Config": {"Labels": {"workspace.name": "alice"}}, "HostConfig": {}}
    with pytest.raises(WorkspaceError, match="adopt=true"):
        converge(eng, name="alice")
    assert eng.containers["workspace-alice"]["Id"] == "x"
    res = converge(eng, name="alice", adopt=True).results
    assert res[0]["actions"][0] == "create volume workspace-alice" and "recreate" in res[0]["actions"]


def test_missing_image_without_registry_fails_before_creating():
    eng = FakeEngine()
    with pytest.raises(WorkspaceError, match="perry.fleet.image"):
        converge(eng, name="alice", image="localhost/nope:1")
    assert not eng.containers and not eng.volumes


@pytest.mark.parametrize("kw,fragment", [
    (dict(runtime="podman", name="a", privileged=True), "privileged=true is refused"),
    (dict(runtime="docker", name="a", docker_host="tcp://x:2375"), "only with runtime=podman"),
    (dict(runtime="podman", name="a", docker_host="garbage"), "not an engine URL"),
    (dict(runtime="podman", name="a", ssh_port=22), "outside its range"),
    (dict(runtime="docker", name="a", worker_port=7400), "only with runtime=podman"),
    (dict(runtime="podman", name="a", memory="lots"), "memory"),
    (dict(runtime="podman", name="a", image=None), "image is required"),
    (dict(runtime="podman", workspaces=[{"name": "a"}, {"name": "a"}]), "listed twice"),
    (dict(runtime="podman", name="a", env={"X": "1"}, secret_env={"X": "2"}), "both env and secret_env"),
])
def test_bad_input_creates_nothing(kw, fragment):
    eng = FakeEngine()
    with pytest.raises(ValueError, match=fragment):
        converge(eng, **kw)
    assert not eng.containers and not eng.volumes and not eng.commands


def test_requested_port_held_by_another_workspace_is_refused():
    eng = FakeEngine()
    converge(eng, name="alice")
    with pytest.raises(WorkspaceError, match="already used by workspace-alice"):
        converge(eng, name="bob", ssh_port=2200)
    assert "workspace-bob" not in eng.containers and "workspace-bob" not in eng.volumes


def pause(eng, name):
    eng.containers["workspace-" + name]["State"].update(Paused=True, Status="paused")


@pytest.mark.parametrize("state, actions, running", [
    ("started", ["unpause"], True),
    ("present", [], False),
    ("stopped", ["stop"], False),
    ("restarted", ["restart"], True),
])
def test_a_paused_workspace_is_not_running(state, actions, running):
    eng = FakeEngine()
    converge(eng, name="alice")
    pause(eng, "alice")
    eng.commands.clear()
    _unused, res = converge(eng, name="alice", state=state)
    assert res[0]["actions"] == actions and res[0]["running"] is running
    verbs = [c["cmd"].split()[1] for c in eng.commands]
    if state in ("stopped", "restarted"):  # a paused process cannot take the stop signal: unpause first
        assert verbs.index("unpause") < verbs.index("stop")


def test_a_paused_workspace_is_removed():
    eng = FakeEngine()
    converge(eng, name="alice")
    pause(eng, "alice")
    _unused, res = converge(eng, name="alice", state="absent")
    assert res[0]["actions"] == ["remove container"] and "workspace-alice" not in eng.containers


# -- issue 19: volumes are ours only by their labels ---------------------------------------------------
def test_volumes_are_created_with_workspace_and_role_labels():
    eng = FakeEngine()
    converge(eng, runtime="docker", name="x")
    assert eng.volume_labels["workspace-x"][layout.LABEL_VOLUME_ROLE] == "home"
    assert eng.volume_labels["workspace-x-docker"] == layout.volume_labels("x", "docker")


def test_docker_x_refuses_the_home_volume_of_x_docker():
    eng = FakeEngine()
    converge(eng, runtime="docker", name="x-docker")
    with pytest.raises(WorkspaceError, match="home volume of workspace x-docker"):
        converge(eng, runtime="docker", name="x")
    assert "workspace-x" not in eng.containers and "workspace-x" not in eng.volumes


def test_purge_of_x_keeps_x_dockers_volumes_and_says_so():
    eng = FakeEngine()
    converge(eng, name="x-docker")
    eng.containers.pop("workspace-x-docker")  # even with no container using it
    manager, res = converge(eng, name="x", state="absent", purge=True)
    assert "workspace-x-docker" in eng.volumes and not manager.changed and res[0]["actions"] == []
    assert "home volume of workspace x-docker" in res[0]["notes"][0]


def test_volumes_of_perry_fleet_0_1_count_by_their_name_label():
    eng = FakeEngine()
    eng.volumes |= {"workspace-x-docker"}
    eng.volume_labels["workspace-x-docker"] = {layout.LABEL_NAME: "x-docker", layout.LABEL_MANAGED: "true"}
    assert layout.volume_owner("workspace-x-docker", eng.volume_labels["workspace-x-docker"]) == ("x-docker", "home")
    with pytest.raises(WorkspaceError, match="home volume of workspace x-docker"):
        converge(eng, runtime="docker", name="x")
    res = converge(eng, runtime="podman", name="x-docker").results
    assert "create" in res[0]["actions"]


def test_an_unlabelled_volume_needs_adopt_and_is_then_purged():
    eng = FakeEngine()
    eng.volumes.add("workspace-z")
    with pytest.raises(WorkspaceError, match="adopt=true"):
        converge(eng, name="z")
    with pytest.raises(WorkspaceError, match="adopt=true"):
        converge(eng, name="z", check=True)
    assert not eng.containers
    converge(eng, name="z", adopt=True)
    converge(eng, name="z", env={"B": "1"})  # recreate: our container mounts it, no adopt needed
    _unused, res = converge(eng, name="z", state="absent", purge=True)
    assert "remove volume workspace-z" in res[0]["actions"] and "workspace-z" not in eng.volumes


def test_purge_refuses_while_another_container_uses_the_volume():
    eng = FakeEngine()
    converge(eng, name="y")
    eng.containers["foreign"] = {"Id": "f", "Name": "/foreign", "State": {"Running": True}, "Config": {"Labels": {}},
                                 "HostConfig": {}, "Mounts": [{"Name": "workspace-y", "Destination": "/data"}]}
    with pytest.raises(WorkspaceError, match="used by container.s. foreign"):
        converge(eng, name="y", state="absent", purge=True)
    assert "workspace-y" in eng.containers and "workspace-y" in eng.volumes
    assert not [c for c in eng.commands if c["cmd"].startswith(("fake rm", "fake volume rm"))]


def test_volume_rm_is_never_forced():
    eng = FakeEngine()
    converge(eng, name="y")
    converge(eng, name="y", state="absent", purge=True)
    assert [c["cmd"] for c in eng.commands if "volume rm" in c["cmd"]] == ["fake volume rm workspace-y"]


# -- issue 19: recreate, ports, env size, check mode, present ----------------------------------------
def test_a_failed_recreate_puts_the_old_container_back():
    eng = FakeEngine()
    converge(eng, name="r")
    old_id = eng.containers["workspace-r"]["Id"]
    real_create = eng._create

    def failing(args):
        raise EngineError("create failed", rc=125)
    eng._create = failing
    with pytest.raises(EngineError, match="create failed"):
        converge(eng, name="r", labels={"a": "1"})
    assert eng.containers["workspace-r"]["Id"] == old_id and list(eng.containers) == ["workspace-r"]
    eng._create = real_create
    res = converge(eng, name="r", labels={"a": "1"}).results
    assert res[0]["actions"][0] == "recreate" and list(eng.containers) == ["workspace-r"]


def test_env_files_are_memfds_never_files_on_disk():
    eng = FakeEngine()
    converge(eng, name="alice", secret_env={"TOKEN": "s3cret"})
    create = [c["cmd"] for c in eng.commands if c["cmd"].startswith("fake create")][0]
    assert "--env-file /dev/fd/" in create and "--label-file /dev/fd/" in create


@pytest.mark.parametrize("kw,fragment", [
    (dict(secret_env={"BIG": "x" * 70000}), "takes at most 65535"),
    (dict(labels={"a%d" % i: "y" * 9000 for i in range(8)}), "label about"),
    (dict(workspaces=[{"name": "a", "ssh_port": 2250}, {"name": "b", "ssh_port": 2250}]), "asked for by both"),
])
def test_refused_before_any_volume_or_container(kw, fragment):
    eng = FakeEngine()
    kw.setdefault("name", None if "workspaces" in kw else "alice")
    with pytest.raises(ValueError, match=fragment):
        converge(eng, **kw)
    assert not eng.containers and not eng.volumes


def test_one_task_refuses_x_and_x_docker_under_docker_only():
    with pytest.raises(ValueError, match="would share volume workspace-x-docker"):
        converge(FakeEngine(), runtime="docker", workspaces=[{"name": "x"}, {"name": "x-docker"}])
    converge(FakeEngine(), runtime="podman", workspaces=[{"name": "x"}, {"name": "x-docker"}])


def test_present_on_a_running_workspace_places_files(monkeypatch):
    placed = []
    monkeypatch.setattr("ansible_collections.perry.fleet.plugins.module_utils.workspace.FilesSync.sync",
                        lambda self, container, files, check_mode=False, inspected=None:
                        placed.append(container) or {"count": len(files), "changed": True})
    eng = FakeEngine()
    converge(eng, name="alice")
    files = [{"dest": "~/.gitconfig", "content": "x"}]
    res = converge(eng, name="alice", state="present", files=files).results
    assert placed == ["workspace-alice"] and res[0]["actions"] == ["place 1 file(s)"]
    converge(eng, name="alice", state="stopped")
    res = converge(eng, name="alice", state="present", files=files).results
    assert placed == ["workspace-alice"] and res[0]["actions"] == []


@pytest.mark.parametrize("state", ["stopped", "paused", "running", "missing"])
def test_check_mode_predicts_the_run_for_every_state(state):
    def fleet():
        eng = FakeEngine()
        if state != "missing":
            converge(eng, name="alice")
        if state == "stopped":
            converge(eng, name="alice", state="stopped")
        if state == "paused":
            pause(eng, "alice")
        return eng
    predicted = converge(fleet(), name="alice", check=True).results
    done = converge(fleet(), name="alice").results
    assert predicted[0]["actions"] == done[0]["actions"] and predicted[0]["running"] == done[0]["running"]


def test_a_recreate_killed_after_the_rename_is_finished_by_the_next_run():
    eng = FakeEngine()
    first = converge(eng, name="r").results
    eng.run(["rename", "workspace-r", "workspace-r.perry-fleet-replaced"])  # killed right after the rename
    res = converge(eng, name="r").results
    assert res[0]["actions"] == ["restore container workspace-r.perry-fleet-replaced"]
    assert list(eng.containers) == ["workspace-r"] and res[0]["ports"] == first[0]["ports"]


def test_a_recreate_killed_before_the_old_container_was_removed_is_cleaned_up():
    eng = FakeEngine()
    converge(eng, name="r")
    eng.run(["rename", "workspace-r", "workspace-r.perry-fleet-replaced"])
    eng.containers["workspace-r"] = dict(copy.deepcopy(eng.containers["workspace-r.perry-fleet-replaced"]),
                                         Name="/workspace-r", Id="new")  # the new one was created, then the run died
    res = converge(eng, name="r").results
    assert res[0]["actions"] == ["remove container workspace-r.perry-fleet-replaced"]
    assert list(eng.containers) == ["workspace-r"] and eng.containers["workspace-r"]["Id"] == "new"


def test_a_foreign_container_with_the_aside_name_is_never_touched():
    eng = FakeEngine()
    aside = "workspace-r.perry-fleet-replaced"
    eng.containers[aside] = {"Id": "f", "Name": "/" + aside, "State": {"Running": True}, "Config": {"Labels": {}},
                             "HostConfig": {}}
    res = converge(eng, name="r").results
    assert "workspace-r.perry-fleet-replaced" in eng.containers and "create" in res[0]["actions"]


def test_adopt_never_takes_a_volume_labelled_for_another_workspace():
    eng = FakeEngine()
    converge(eng, runtime="docker", name="x-docker")
    with pytest.raises(WorkspaceError, match="home volume of workspace x-docker"):
        converge(eng, runtime="docker", name="x", adopt=True)
    _unused, res = converge(eng, runtime="docker", name="x", state="absent", purge=True, adopt=True)
    assert "workspace-x-docker" in eng.volumes and res[0]["actions"] == []


def test_creates_run_in_parallel_and_every_failure_is_named():
    """Many new workspaces are created at once (issue 16: create 30 in one task); two failing creates are both
    named in one error, and the ones that did not fail exist."""
    import threading
    eng = FakeEngine()
    real_create, barrier = eng._create, threading.Barrier(3, timeout=5)

    def overlapping(args):
        barrier.wait()   # only returns once three creates are in flight together: a serial loop would time out
        name = args[args.index("--name") + 1]
        if name in ("workspace-b", "workspace-c"):
            raise EngineError("create of %s refused" % name, rc=125)
        return real_create(args)
    eng._create = overlapping
    with pytest.raises(WorkspaceError, match=r"create failed for 2 workspace\(s\): b: .*refused; c: .*refused"):
        converge(eng, workspaces=[{"name": "a"}, {"name": "b"}, {"name": "c"}])
    assert list(eng.containers) == ["workspace-a"]


@pytest.fixture
def user_socket(monkeypatch):
    """A path the module sees as a unix socket of a non-root user (os.stat is the host check it makes)."""
    import os
    import stat as stat_mod
    path = "/run/user/1000/podman/podman.sock"
    real_stat = os.stat
    fake = os.stat_result((stat_mod.S_IFSOCK | 0o600, 0, 0, 1, 1000, 1000, 0, 0, 0, 0))
    monkeypatch.setattr(ws.os, "stat", lambda p, *a, **k: fake if p == path else real_stat(p, *a, **k))
    return path


def test_user_engine_socket_mounts_its_directory_for_root_and_relays_it(user_socket):
    eng = FakeEngine()
    manager, res = converge(eng, name="solo", user_engine_socket=user_socket)
    assert manager.changed and "create" in res[0]["actions"]
    mounts = eng.containers["workspace-solo"]["Mounts"]
    assert {"Name": "/run/user/1000/podman", "Destination": layout.USER_ENGINE_DIR} in mounts
    [create] = [c["cmd"] for c in eng.commands if c["cmd"].startswith("fake create")]
    assert user_socket not in create   # on the create's argv only as the mount of its directory
    spec = manager_spec(name="solo", user_engine_socket=user_socket)
    env = spec.container_env()
    assert env["DOCKER_HOST"] == layout.ENGINE_DOCKER_HOST
    assert env[layout.USER_ENGINE_RELAY_ENV] == layout.USER_ENGINE_DIR + "/podman.sock"
    eng.commands.clear()
    manager, res = converge(eng, name="solo", user_engine_socket=user_socket)
    assert not manager.changed and res[0]["actions"] == []


def manager_spec(**item):
    settings = Settings(runtime="podman")
    [validated] = validate(params(**item), settings)
    return WorkspaceManager(FakeEngine(), settings)._desired_spec(validated, None, None)


def test_user_engine_socket_workspace_must_be_alone_in_its_podman(user_socket):
    eng = FakeEngine()
    with pytest.raises(WorkspaceError, match="must be the only one of its host user"):
        converge(eng, workspaces=[{"name": "a", "user_engine_socket": user_socket}, {"name": "b"}])
    assert eng.containers == {}
    converge(eng, name="a", user_engine_socket=user_socket)
    with pytest.raises(WorkspaceError, match="workspace a gets the user's own podman.*also hold b"):
        converge(eng, name="b")   # a second one beside it, even without an engine
    assert set(eng.containers) == {"workspace-a"}
    # removing the holder in the same run lets the other one in
    converge(eng, workspaces=[{"name": "a", "state": "absent"}, {"name": "b"}])
    assert set(eng.containers) == {"workspace-b"}


@pytest.mark.parametrize("kw, fragment", [
    ({"user_engine_socket": "relative/podman.sock"}, "must be an absolute path"),
    ({"user_engine_socket": "/run/user/1000/../0/podman.sock"}, "must be an absolute path"),
    ({"user_engine_socket": "/nonexistent/podman.sock"}, "Start the user's podman API service"),
    ({"user_engine_socket": "/etc/hostname"}, "is not a socket"),
    ({"user_engine_socket": "/run/user/1000/podman/podman.sock", "workspace_docker_host": "tcp://x:2375"}, "set one"),
])
def test_user_engine_socket_bad_input_is_refused_before_anything(user_socket, kw, fragment):
    eng = FakeEngine()
    with pytest.raises(ws.SpecError, match=fragment):
        converge(eng, name="solo", **kw)
    assert eng.commands == []


def test_user_engine_socket_of_root_and_of_docker_runtime_refused(monkeypatch):
    import os
    import stat as stat_mod
    root_sock = os.stat_result((stat_mod.S_IFSOCK | 0o660, 0, 0, 1, 0, 0, 0, 0, 0, 0))
    monkeypatch.setattr(ws.os, "stat", lambda p, *a, **k: root_sock)
    with pytest.raises(ws.SpecError, match="belongs to root"):
        converge(FakeEngine(), name="solo", user_engine_socket="/run/podman/podman.sock")
    with pytest.raises(ws.SpecError, match="for runtime=podman"):
        converge(FakeEngine(), runtime="docker", name="solo", user_engine_socket="/run/podman/podman.sock")
