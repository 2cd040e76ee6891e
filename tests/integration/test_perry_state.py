"""Perry interop on rootful podman: the workspace role (perry_workspace_perry_state on) lists its workspace in a
Perry state.json that already holds Perry's own entries and keys, which survive; the entry carries the real
container id and SSH port; a re-run changes nothing; day-two stop/start update its status; a running Perry agent process (a real process whose argv looks
like Perry's) makes it refuse with nothing written; a fresh lock held by another process is waited for and then
refused within the bound; a stale one is taken over; removal takes out only our entry.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from topology import TOPOLOGIES, build_workspace_image, random_prefix, run_module, run_module_direct, run_playbook

TOPO = TOPOLOGIES["podman-rootful"]
MODULE = "perry.fleet.perry_state"
SIDECAR = ".perry-fleet-state.json"

PERRYS = {
    "name": "perry-made", "status": "stopped", "containerId": "0123456789abcdef" * 4,
    "created": "2026-01-02T03:04:05.678Z", "repo": "https://example.invalid/app.git",
    "ports": {"ssh": 2399, "http": 8080, "forwards": [{"host": 3000, "container": 3000}]},
    "lastUsed": "2026-02-03T04:05:06.789Z", "tailscale": {"status": "connected", "hostname": "perry-made",
                                                          "ip": "100.64.0.7"},
    "startup": {"steps": [{"id": "clone", "label": "Clone ü", "status": "done"}], "updatedAt": "2026-02-03T04:05:07.000Z"},
}
BROKEN = {"name": "half", "status": "error", "containerId": "", "created": "2026-03-01T00:00:00.000Z",
          "ports": {"ssh": 2398}}
FOREIGN_DOC = {"workspaces": {"perry-made": PERRYS, "half": BROKEN}, "futureKey": {"kept": [1, "two", None]}}


def ok(result):
    assert not result.get("failed"), json.dumps({k: result.get(k) for k in ("msg", "stderr", "commands")}, indent=1)
    return result


def load(path) -> dict:
    with open(path) as fh:
        return json.load(fh)


def perry_state_task(out: dict) -> dict:
    """The role's perry_state result among the playbook's task results."""
    found = [t for t in out["tasks"] if "lock_taken_over" in t]
    assert len(found) == 1, out["stdout"][-3000:]
    return found[0]


@pytest.fixture(scope="module")
def image():
    return build_workspace_image(TOPO)


def role(image, name, config_dir, state="started"):
    role_vars = {"perry_workspace_runtime": "podman", "perry_workspace_image": image,
                 "perry_workspace_state": state, "perry_workspace_purge": state == "absent",
                 "perry_workspace_perry_state": True, "perry_workspace_perry_config_dir": str(config_dir),
                 "perry_workspace_list": [{"name": name, "memory": "512m"}]}
    return run_playbook([{"name": "workspace", "ansible.builtin.include_role": {"name": "perry.fleet.workspace"}}],
                        extra_vars=role_vars, timeout=900)


def lifecycle(name, config_dir, action):
    role_vars = {"perry_workspace_runtime": "podman", "perry_workspace_action": action, "perry_workspace_select": [name],
                 "perry_workspace_perry_state": True, "perry_workspace_perry_config_dir": str(config_dir)}
    task = {"name": "lifecycle", "ansible.builtin.include_role": {"name": "perry.fleet.workspace", "tasks_from": "lifecycle"}}
    return run_playbook([task], extra_vars=role_vars, timeout=600)


@pytest.fixture
def fake_agent(tmp_path):
    """start(): a real process whose command line is `<python> <dir>/perry agent run`, as the npm script's is."""
    procs = []

    def start():
        bindir = tmp_path / "fake-perry-bin"
        bindir.mkdir(exist_ok=True)
        script = bindir / "perry"
        script.write_text("import time\ntime.sleep(600)\n")
        proc = subprocess.Popen([sys.executable, str(script), "agent", "run"])
        procs.append(proc)
        return proc
    yield start
    for proc in procs:
        proc.kill()
        proc.wait(timeout=30)


@pytest.fixture
def lock_holder():
    """hold(dir): another process holding Perry's lock as proper-lockfile does (mkdir, mtime refreshed each 1 s)."""
    procs = []

    def hold(config_dir):
        code = textwrap.dedent("""
            import os, sys, time
            lock = os.path.join(sys.argv[1], ".state.lock")
            os.mkdir(lock)
            print("held", flush=True)
            while True:
                time.sleep(1)
                os.utime(lock)
        """)
        proc = subprocess.Popen([sys.executable, "-c", code, str(config_dir)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "held"
        procs.append((proc, config_dir))
        return proc
    yield hold
    for proc, config_dir in procs:
        proc.kill()
        proc.wait(timeout=30)
        try:
            os.rmdir(os.path.join(str(config_dir), ".state.lock"))
        except FileNotFoundError:
            pass


def test_state_json_round_trip_with_foreign_entries(image, tmp_path, fake_agent, lock_holder):
    prefix = random_prefix()
    name = prefix + "ps"
    container = "workspace-" + name
    config_dir = tmp_path / "perry"
    config_dir.mkdir()
    state_file = config_dir / "state.json"
    state_file.write_text(json.dumps(FOREIGN_DOC, indent=2))
    os.chmod(state_file, 0o644)
    try:
        # 1. Provision with the opt-in on: our entry next to Perry's, which survive.
        out = role(image, name, config_dir)
        assert out["rc"] == 0, out["stdout"][-4000:]
        res = perry_state_task(out)
        assert res["changed"] and res["written"] == [name] and res["left_alone"] == [], res
        doc = load(state_file)
        assert doc["futureKey"] == FOREIGN_DOC["futureKey"]
        assert doc["workspaces"]["perry-made"] == PERRYS and doc["workspaces"]["half"] == BROKEN
        data = TOPO.inspect(container)
        ssh = int(data["HostConfig"]["PortBindings"]["22/tcp"][0]["HostPort"])
        entry = doc["workspaces"][name]
        assert entry == {"name": name, "status": "running", "containerId": data["Id"], "created": entry["created"],
                         "ports": {"ssh": ssh}}, entry
        assert len(data["Id"]) == 64 and entry["created"].endswith("Z") and entry["created"][:10] == data["Created"][:10]
        assert stat.S_IMODE(os.stat(state_file).st_mode) == 0o644
        assert stat.S_IMODE(os.stat(config_dir / SIDECAR).st_mode) == 0o600
        assert load(config_dir / SIDECAR) == {"workspaces": {name: {"containerId": data["Id"]}}}
        assert sorted(os.listdir(config_dir)) == [SIDECAR, "state.json"], "temp file or lock left behind"
        text = state_file.read_text()
        assert text.startswith('{\n  "workspaces": {\n    "perry-made": {') and "Clone ü" in text

        # 2. A re-run changes nothing and does not rewrite the file.
        mtime = os.stat(state_file).st_mtime_ns
        res = perry_state_task(role(image, name, config_dir))
        assert not res["changed"] and res["written"] == [], res
        assert os.stat(state_file).st_mtime_ns == mtime

        # 2b. Day-two stop and start (tasks_from lifecycle) keep the entry's status in step, Perry's untouched.
        for action, status in (("stop", "stopped"), ("start", "running")):
            out = lifecycle(name, config_dir, action)
            assert out["rc"] == 0, out["stdout"][-4000:]
            res = perry_state_task(out)
            assert res["changed"] and res["written"] == [name], res
            doc = load(state_file)
            assert doc["workspaces"][name] == dict(entry, status=status), doc["workspaces"][name]
            assert doc["workspaces"]["perry-made"] == PERRYS and doc["futureKey"] == FOREIGN_DOC["futureKey"]

        # 3. A Perry agent runs: any change is refused, naming it; nothing written. Unchanged runs still pass.
        agent = fake_agent()
        time.sleep(0.5)
        args = {"workspaces": [{"name": name, "repo": "https://example.invalid/ours.git"}],
                "config_dir": str(config_dir)}
        before = state_file.read_bytes()
        res = run_module(MODULE, args, TOPO)
        assert res.get("failed") and "a Perry agent runs on this host (pid %d:" % agent.pid in res["msg"], res
        assert "nothing was written" in res["msg"] and [a["pid"] for a in res["agents"]] == [agent.pid]
        res = run_module(MODULE, dict(args, state="absent"), TOPO, check=True)
        assert res.get("failed") and "Perry agent" in res["msg"], res
        assert state_file.read_bytes() == before and sorted(os.listdir(config_dir)) == [SIDECAR, "state.json"]
        assert not ok(run_module(MODULE, {"workspaces": [{"name": name}], "config_dir": str(config_dir)},
                                 TOPO))["changed"]
        agent.kill()
        agent.wait(timeout=30)

        # 4. Check and diff mode of a change: before/after of our entry only.
        res = ok(run_module(MODULE, args, TOPO, check=True, diff=True))
        assert res["changed"] and res["written"] == [name] and state_file.read_bytes() == before
        assert res["diff"]["before"] == {name: entry}
        assert res["diff"]["after"] == {name: dict(entry, repo="https://example.invalid/ours.git")}

        # 5. A fresh lock (refreshed by its holder) is waited for, then refused within the bound; nothing written.
        holder = lock_holder(config_dir)
        res, seconds = run_module_direct(MODULE, dict(TOPO.engine_args(), lock_timeout=3, **args), timeout=60)
        assert res.get("failed") and "held by another process" in res["msg"] and "within 3 s" in res["msg"], res
        assert 3 <= seconds < 15, seconds
        assert state_file.read_bytes() == before and (config_dir / ".state.lock").is_dir()
        holder.kill()
        holder.wait(timeout=30)

        # 6. The lock its holder left behind goes stale (mtime > 10 s old) and is taken over.
        old = time.time() - 30
        os.utime(config_dir / ".state.lock", (old, old))
        res = ok(run_module(MODULE, args, TOPO))
        assert res["changed"] and res["lock_taken_over"] and res["written"] == [name], res
        assert not (config_dir / ".state.lock").exists()
        doc = load(state_file)
        assert doc["workspaces"][name]["repo"] == "https://example.invalid/ours.git"
        assert doc["workspaces"]["perry-made"] == PERRYS and doc["futureKey"] == FOREIGN_DOC["futureKey"]

        # 7. Perry's own entry of a name we manage is never taken over, nor removed.
        res = ok(run_module(MODULE, {"workspaces": [{"name": "perry-made"}], "config_dir": str(config_dir),
                                     "state": "absent"}, TOPO))
        assert not res["changed"] and res["left_alone"][0]["name"] == "perry-made", res
        assert load(state_file)["workspaces"]["perry-made"] == PERRYS

        # 8. Teardown through the role: our entry goes, everything else stays.
        out = role(image, name, config_dir, state="absent")
        assert out["rc"] == 0, out["stdout"][-4000:]
        res = perry_state_task(out)
        assert res["changed"] and res["removed"] == [name], res
        assert load(state_file) == FOREIGN_DOC
        assert load(config_dir / SIDECAR) == {"workspaces": {}}
        assert TOPO.inspect(container) is None
    finally:
        run_module("perry.fleet.perry_workspace", {"name": name, "state": "absent", "purge": True}, TOPO, timeout=300)
        TOPO.cleanup(prefix)
