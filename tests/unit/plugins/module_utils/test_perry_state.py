"""Perry's state.json interop: config dir order, agent detection, the proper-lockfile-style lock, safe reads and
atomic writes, and the merge that writes only our entries (perry_state, perry_state_store)."""

from __future__ import annotations

import json
import os
import stat
import time

import pytest

from ansible_collections.perry.fleet.plugins.module_utils import perry_state as ps
from ansible_collections.perry.fleet.plugins.module_utils import perry_state_store as store
from ansible_collections.perry.fleet.plugins.module_utils.errors import PerryError, SpecError

FOREIGN = {"name": "perrys", "status": "stopped", "containerId": "f" * 64, "created": "2026-01-01T00:00:00.000Z",
           "repo": "https://example.com/r.git", "ports": {"ssh": 2300, "http": 8080,
                                                          "forwards": [{"host": 3000, "container": 3000}]},
           "lastUsed": "2026-02-01T00:00:00.000Z", "tailscale": {"status": "connected", "ip": "100.1.2.3"},
           "startup": {"steps": [{"id": "x", "status": "done"}], "updatedAt": "2026-02-01T00:00:00.000Z"}}


def ours(name="alice", cid="a" * 64, ssh=2201, status="running", created="2026-12-02T10:00:00.000Z"):
    return {"name": name, "status": status, "containerId": cid, "created": created, "ports": {"ssh": ssh}}


def no_agents():
    return []


# ---------------------------------------------------------------------------------------------- config dir
def test_config_dir_follows_perrys_order():
    env = {"HOME": "/home/u", "PERRY_CONFIG_DIR": "/p", "WS_CONFIG_DIR": "/w"}
    assert store.config_dir("/x", env) == "/x"
    assert store.config_dir(None, env) == "/w"
    assert store.config_dir(None, {"HOME": "/home/u", "PERRY_CONFIG_DIR": "/p"}) == "/p"
    assert store.config_dir("", {"HOME": "/home/u"}) == "/home/u/.config/perry"
    with pytest.raises(SpecError, match="config_dir"):
        store.config_dir(None, {})


# ---------------------------------------------------------------------------------------------- agent
@pytest.mark.parametrize("argv, agent", [
    (["perry", "agent", "run"], True),
    (["/root/.perry/bin/perry", "agent", "run", "--port", "7391"], True),
    (["node", "/usr/local/bin/perry", "agent", "run"], True),
    (["bun", "/usr/lib/node_modules/@gricha/perry/dist/index.js", "agent", "run"], True),
    (["/usr/local/bin/perry", "worker", "serve"], False),      # the worker in a workspace container
    (["perry", "agent", "install"], False),
    (["perry", "list"], False),
    (["vim", "agent", "run"], False),
    (["python3", "-c", "perry agent run"], False),
    (["/opt/perryish/bin/tool", "agent", "run"], False),
])
def test_what_counts_as_a_perry_agent(argv, agent):
    assert store.is_perry_agent(argv) is agent


def test_agents_are_found_in_proc(tmp_path):
    for pid, argv in ((10, ["/bin/sh", "/tmp/x/perry", "agent", "run", "--token", "s3cret"]), (11, ["sleep", "10"]),
                      (os.getpid(), ["perry", "agent", "run"])):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (tmp_path / "12").mkdir()    # a process that went away: no cmdline
    (tmp_path / "self").mkdir()
    assert store.perry_agents(str(tmp_path)) == [{"pid": 10, "cmdline": "/bin/sh /tmp/x/perry agent run"}]


def test_a_running_agent_refuses_any_change_and_nothing_is_written(tmp_path):
    (tmp_path / "state.json").write_text(json.dumps({"workspaces": {"perrys": FOREIGN}}))
    before = (tmp_path / "state.json").read_bytes()

    def agents():
        return [{"pid": 42, "cmdline": "perry agent run"}]
    with pytest.raises(PerryError, match=r"Perry agent runs on this host \(pid 42: perry agent run\).*nothing was"):
        ps.converge(str(tmp_path), {"alice": ours()}, [], 1, False, find_agents=agents)
    with pytest.raises(PerryError, match="Perry agent"):
        ps.converge(str(tmp_path), {"alice": ours()}, [], 1, True, find_agents=agents)   # check mode predicts it
    assert (tmp_path / "state.json").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["state.json"]


def test_a_running_agent_does_not_matter_when_nothing_changes(tmp_path):
    ps.converge(str(tmp_path), {"alice": ours()}, [], 1, False, find_agents=no_agents)
    out = ps.converge(str(tmp_path), {"alice": ours()}, [], 1, False,
                      find_agents=lambda: [{"pid": 1, "cmdline": "perry agent run"}])
    assert not out["changed"]


# ---------------------------------------------------------------------------------------------- merge
def test_plan_writes_ours_and_keeps_foreign_entries_and_keys():
    state = {"workspaces": {"perrys": FOREIGN}, "future": {"k": [1, 2]}}
    out = ps.plan(state, {}, {"alice": ours()}, [])
    assert out["state"]["workspaces"]["perrys"] == FOREIGN and out["state"]["future"] == {"k": [1, 2]}
    assert out["state"]["workspaces"]["alice"] == ours()
    assert out["written"] == ["alice"] and out["before"] == {"alice": None}
    assert out["sidecar"] == {"workspaces": {"alice": {"containerId": "a" * 64}}}
    assert state == {"workspaces": {"perrys": FOREIGN}, "future": {"k": [1, 2]}}, "input changed"


def test_a_foreign_entry_of_the_same_name_is_left_alone():
    state = {"workspaces": {"alice": dict(FOREIGN, name="alice")}}
    out = ps.plan(state, {}, {"alice": ours()}, ["alice"])
    assert out["state"] == state and out["written"] == [] and out["removed"] == []
    assert [s["name"] for s in out["left_alone"]] == ["alice", "alice"]
    assert "did not write" in out["left_alone"][0]["reason"]


def test_an_entry_perry_rewrote_for_its_own_container_is_perrys_again():
    sidecar = {"workspaces": {"alice": {"containerId": "a" * 64}}}
    state = {"workspaces": {"alice": ours(cid="b" * 64)}}       # Perry recreated it
    out = ps.plan(state, sidecar, {}, ["alice"])
    assert out["removed"] == [] and out["state"] == state and out["sidecar"]["workspaces"] == {}


def test_our_update_keeps_perrys_additions_and_the_first_created():
    sidecar = {"workspaces": {"alice": {"containerId": "a" * 64}}}
    current = dict(ours(), lastUsed="2026-12-02T11:00:00.000Z", ports={"ssh": 2201, "http": 8080})
    wanted = ours(cid="c" * 64, ssh=2205, status="stopped", created="2026-12-03T00:00:00.000Z")   # recreated
    out = ps.plan({"workspaces": {"alice": current}}, sidecar, {"alice": wanted}, [])
    new = out["state"]["workspaces"]["alice"]
    assert new == dict(current, containerId="c" * 64, status="stopped", ports={"ssh": 2205, "http": 8080})
    assert new["created"] == "2026-12-02T10:00:00.000Z"
    assert out["sidecar"]["workspaces"]["alice"] == {"containerId": "c" * 64}


def test_unchanged_is_no_change():
    sidecar = {"workspaces": {"alice": {"containerId": "a" * 64}}}
    out = ps.plan({"workspaces": {"alice": ours()}}, sidecar, {"alice": ours()}, [])
    assert out["written"] == [] and out["sidecar"] == sidecar


def test_absent_removes_only_ours():
    sidecar = {"workspaces": {"alice": {"containerId": "a" * 64}, "gone": {"containerId": "9"}}}
    state = {"workspaces": {"alice": ours(), "perrys": FOREIGN}}
    out = ps.plan(state, sidecar, {}, ["alice", "perrys", "gone"])
    assert out["state"] == {"workspaces": {"perrys": FOREIGN}} and out["removed"] == ["alice"]
    assert out["sidecar"] == {"workspaces": {}} and out["after"] == {"alice": None}


def test_entry_from_inspect_data():
    c = {"Id": "d" * 64, "Name": "/workspace-alice", "Created": "2026-12-02T15:37:12.123456789+01:00",
         "State": {"Running": True, "Status": "running"},
         "Config": {"Labels": {"workspace.name": "alice", "workspace.managed": "true"}},
         "HostConfig": {"PortBindings": {"22/tcp": [{"HostIp": "127.0.0.1", "HostPort": "2207"}]}}}
    assert ps.entry_from_container(c, "https://x/r.git") == {
        "name": "alice", "status": "running", "containerId": "d" * 64, "created": "2026-12-02T14:37:12.123Z",
        "ports": {"ssh": 2207}, "repo": "https://x/r.git"}
    with pytest.raises(SpecError, match="no SSH port"):
        ps.entry_from_container(dict(c, HostConfig={}))
    with pytest.raises(SpecError, match="not a Perry workspace"):
        ps.entry_from_container(dict(c, Config={"Labels": {}}))


@pytest.mark.parametrize("engine, iso", [
    ("2026-12-02T14:37:12Z", "2026-12-02T14:37:12.000Z"),
    ("2026-12-02T14:37:12.5Z", "2026-12-02T14:37:12.500Z"),
    ("2026-12-02 14:37:12.123456789 +0000 UTC", None),
    ("2026-12-02T14:37:12.1234-0200", "2026-12-02T16:37:12.123Z"),
    (None, None),
])
def test_iso_time(engine, iso):
    assert ps.iso_time(engine) == iso


# ---------------------------------------------------------------------------------------------- files
def test_round_trip_writes_perrys_format_and_keeps_mode(tmp_path):
    doc = {"workspaces": {"perrys": FOREIGN}, "extra": "é"}
    (tmp_path / "state.json").write_text(json.dumps(doc))
    os.chmod(tmp_path / "state.json", 0o640)
    out = ps.converge(str(tmp_path), {"alice": ours()}, [], 1, False, find_agents=no_agents)
    assert out["changed"] and out["written"] == ["alice"]
    text = (tmp_path / "state.json").read_text()
    assert json.loads(text) == dict(doc, workspaces={"perrys": FOREIGN, "alice": ours()})
    assert text.startswith('{\n  "workspaces": {\n    "perrys": {') and '"é"' in text
    assert stat.S_IMODE(os.stat(tmp_path / "state.json").st_mode) == 0o640
    assert stat.S_IMODE(os.stat(tmp_path / ps.SIDECAR_FILE).st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == [ps.SIDECAR_FILE, "state.json"]    # no temp file, lock released
    mtime = os.stat(tmp_path / "state.json").st_mtime_ns
    assert not ps.converge(str(tmp_path), {"alice": ours()}, [], 1, False, find_agents=no_agents)["changed"]
    assert os.stat(tmp_path / "state.json").st_mtime_ns == mtime
    out = ps.converge(str(tmp_path), {}, ["alice"], 1, False, find_agents=no_agents)
    assert out["removed"] == ["alice"] and json.loads((tmp_path / "state.json").read_text()) == doc


def test_a_missing_directory_is_created_and_a_missing_file_is_perrys_default(tmp_path):
    where = tmp_path / "home" / ".config" / "perry"
    out = ps.converge(str(where), {"alice": ours()}, [], 1, False, find_agents=no_agents)
    assert out["changed"] and stat.S_IMODE(os.stat(where).st_mode) == 0o700
    assert json.loads((where / "state.json").read_text()) == {"workspaces": {"alice": ours()}}
    assert not ps.converge(str(tmp_path / "nope"), {}, ["alice"], 1, False, find_agents=no_agents)["changed"]
    assert not (tmp_path / "nope").exists()


@pytest.mark.parametrize("make, match", [
    (lambda p: (p / "state.json").symlink_to(p / "elsewhere.json"), "symbolic link"),
    (lambda p: os.mkfifo(p / "state.json"), "not a regular file"),
    (lambda p: (p / "state.json").write_text('{"workspaces": {'), "not valid JSON"),
    (lambda p: (p / "state.json").write_text('[1]'), "not hold a JSON object"),
    (lambda p: (p / "state.json").write_text('{"workspaces": [1]}'), "'workspaces' is not an object"),
    (lambda p: (p / "state.json").write_bytes(b" " * (store.MAX_FILE_BYTES + 1)), "larger than"),
    (lambda p: (p / ps.SIDECAR_FILE).symlink_to(p / "elsewhere.json"), "symbolic link"),
    (lambda p: (p / ".state.lock").symlink_to(p / "lockdir"), "not a lock directory"),
])
def test_bad_files_are_refused_with_nothing_written(tmp_path, make, match):
    (tmp_path / "elsewhere.json").write_text('{"workspaces": {}}')
    (tmp_path / "lockdir").mkdir()
    make(tmp_path)
    before = {p: (os.lstat(tmp_path / p).st_mtime_ns) for p in os.listdir(tmp_path)}
    with pytest.raises(PerryError, match=match):
        ps.converge(str(tmp_path), {"alice": ours()}, [], 1, False, find_agents=no_agents)
    assert {p: (os.lstat(tmp_path / p).st_mtime_ns) for p in os.listdir(tmp_path)} == before
    assert (tmp_path / "elsewhere.json").read_text() == '{"workspaces": {}}'


# ---------------------------------------------------------------------------------------------- lock
def test_a_fresh_lock_is_waited_for_then_refused(tmp_path):
    (tmp_path / ".state.lock").mkdir()
    start = time.monotonic()
    with pytest.raises(PerryError, match=r"state lock .* held by another process .* within 0.5 s"):
        ps.converge(str(tmp_path), {"alice": ours()}, [], 0.5, False, find_agents=no_agents)
    assert 0.4 < time.monotonic() - start < 3
    assert (tmp_path / ".state.lock").is_dir() and not (tmp_path / "state.json").exists()


def test_a_lock_released_meanwhile_is_taken(tmp_path):
    cdir = store.ConfigDir(str(tmp_path))
    os.mkdir(tmp_path / ".state.lock")
    calls = []

    def clock():
        calls.append(1)
        if len(calls) == 2:
            os.rmdir(tmp_path / ".state.lock")
        return time.time()
    with store.StateLock(cdir, 5, clock=clock) as lock:
        assert (tmp_path / ".state.lock").is_dir() and not lock.took_over
    assert not (tmp_path / ".state.lock").exists()
    cdir.close()


def test_a_stale_lock_is_taken_over(tmp_path):
    (tmp_path / ".state.lock").mkdir()
    old = time.time() - store.LOCK_STALE_SECONDS - 5
    os.utime(tmp_path / ".state.lock", (old, old))
    out = ps.converge(str(tmp_path), {"alice": ours()}, [], 2, False, find_agents=no_agents)
    assert out["changed"] and out["lock_taken_over"] and not (tmp_path / ".state.lock").exists()


def test_a_lock_taken_over_meanwhile_is_not_released_and_not_written_under(tmp_path):
    with store.ConfigDir(str(tmp_path)) as cdir:
        with store.StateLock(cdir, 1) as lock:
            # Someone found our lock stale and took it: its mtime is no longer ours.
            os.rmdir(tmp_path / ".state.lock")
            os.mkdir(tmp_path / ".state.lock")
            os.utime(tmp_path / ".state.lock", (1, 1))
            with pytest.raises(PerryError, match="taken over"):
                lock.check()
        assert (tmp_path / ".state.lock").is_dir(), "released a lock that was not ours"


# ---------------------------------------------------------------------------------------------- directory links
def test_a_link_of_ours_in_the_config_path_is_followed(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "perry").symlink_to(tmp_path / "real")
    assert ps.converge(str(tmp_path / "perry"), {"alice": ours()}, [], 1, False, find_agents=no_agents)["changed"]
    assert (tmp_path / "real" / "state.json").is_file()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a link another owner")
def test_a_link_another_user_planted_in_the_config_path_is_refused(tmp_path):
    (tmp_path / "target").mkdir()
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / ".config").symlink_to(tmp_path / "target")
    os.lchown(tmp_path / "home" / ".config", 65534, 65534)
    with pytest.raises(PerryError, match=r"\.config is a symbolic link owned by uid 65534.*nothing was written"):
        ps.converge(str(tmp_path / "home" / ".config" / "perry"), {"alice": ours()}, [], 1, False,
                    find_agents=no_agents)
    assert os.listdir(tmp_path / "target") == []


def test_a_file_in_the_config_path_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(PerryError, match="not a directory"):
        ps.converge(str(tmp_path / "file" / "perry"), {"alice": ours()}, [], 1, False, find_agents=no_agents)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to write another user's files")
def test_a_root_run_leaves_a_users_files_theirs(tmp_path):
    where = tmp_path / "home"
    where.mkdir()
    os.chown(where, 65534, 65534)
    out = ps.converge(str(where / ".config" / "perry"), {"alice": ours()}, [], 1, False, find_agents=no_agents)
    assert out["changed"]
    for path in (where / ".config", where / ".config" / "perry", where / ".config" / "perry" / "state.json",
                 where / ".config" / "perry" / ps.SIDECAR_FILE):
        assert (os.stat(path).st_uid, os.stat(path).st_gid) == (65534, 65534), path
    state = where / ".config" / "perry" / "state.json"
    os.chown(state, 65534, 0)     # an existing file keeps its owner and group
    ps.converge(str(where / ".config" / "perry"), {"bob": ours("bob", "b" * 64)}, [], 1, False, find_agents=no_agents)
    assert (os.stat(state).st_uid, os.stat(state).st_gid) == (65534, 0)
    assert set(json.loads(state.read_text())["workspaces"]) == {"alice", "bob"}


def test_a_crash_between_the_two_writes_never_orphans_an_entry_of_ours(tmp_path, monkeypatch):
    (tmp_path / "state.json").write_text(json.dumps({"workspaces": {"perrys": FOREIGN}}))
    real = os.rename

    def crash_on_state(src, dst, **kw):
        if dst == store.STATE_FILE:
            raise OSError(5, "disk gone")
        return real(src, dst, **kw)
    monkeypatch.setattr(store.os, "rename", crash_on_state)
    with pytest.raises(PerryError, match="cannot write .*state.json: disk gone; the file is as it was"):
        ps.converge(str(tmp_path), {"alice": ours()}, [], 1, False, find_agents=no_agents)
    assert json.loads((tmp_path / "state.json").read_text()) == {"workspaces": {"perrys": FOREIGN}}
    assert "alice" in json.loads((tmp_path / ps.SIDECAR_FILE).read_text())["workspaces"]
    assert not (tmp_path / ".state.lock").exists(), "lock not released after the failure"
    monkeypatch.setattr(store.os, "rename", real)
    assert sorted(os.listdir(tmp_path)) == [ps.SIDECAR_FILE, "state.json"], "temp file left behind"
    out = ps.converge(str(tmp_path), {"alice": ours()}, [], 1, False, find_agents=no_agents)
    assert out["written"] == ["alice"] and not out["left_alone"]
