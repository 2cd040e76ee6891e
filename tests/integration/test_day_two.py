"""Day-two playbooks end to end on rootful podman, through ansible-playbook: stop/start/restart/sync over a
selection, session pruning, agent-aware idle stop, the metrics file and the capacity budget.

Three workspaces are made by the collection's own module from the image our image role builds; sessions are
seeded as the worker indexes them (Claude Code JSONL files, lastActivity = the file's mtime).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import time

import pytest

from topology import REPO, TOPOLOGIES, build_workspace_image, random_prefix, run_module, run_playbook, venv_bin

TOPO = TOPOLOGIES["podman-rootful"]
DAY = 86400


def must(res: subprocess.CompletedProcess, what: str) -> str:
    if res.returncode != 0:
        pytest.fail("%s failed (rc=%d): %s" % (what, res.returncode, (res.stderr or res.stdout)[-3000:]))
    return res.stdout


def playbook(name: str, *args: str, check: bool = False, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default",
               ANSIBLE_CALLBACK_RESULT_FORMAT="json")  # one line per message (yaml folds long ones)
    argv = [venv_bin("ansible-playbook"), "playbooks/%s.yml" % name, "-e", "runtime=podman"] + list(args)
    if check:
        argv.append("--check")
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def recap(res: subprocess.CompletedProcess) -> dict:
    m = re.search(r"localhost\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", res.stdout)
    assert m, res.stdout[-3000:] + res.stderr[-2000:]
    return {"ok": int(m.group(1)), "changed": int(m.group(2)), "failed": int(m.group(4))}


def ok(res: subprocess.CompletedProcess, changed: int | None = None) -> str:
    r = recap(res)
    assert res.returncode == 0 and r["failed"] == 0, res.stdout[-4000:] + res.stderr[-2000:]
    if changed is not None:
        assert r["changed"] == changed, res.stdout[-4000:]
    return res.stdout


def state(container: str) -> dict:
    data = TOPO.inspect(container)
    assert data, "no container " + container
    return data["State"]


def seed_session(container: str, session_id: str, age_seconds: float, title: str) -> None:
    """A Claude Code session whose last activity (file mtime) lies age_seconds in the past."""
    text = "\n".join(json.dumps(x) for x in (
        {"type": "user", "message": {"role": "user", "content": [{"type": "text", "text": title}]},
         "timestamp": "2026-01-01T00:00:00.000Z"},
        {"type": "assistant", "message": {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
         "timestamp": "2026-01-01T00:00:01.000Z"},
    )) + "\n"
    path = "/home/workspace/.claude/projects/-home-workspace-proj/%s.jsonl" % session_id
    stamp = "@%d" % int(time.time() - age_seconds)
    must(TOPO.cli("exec", "-i", "-u", "workspace", container, "sh", "-c",
                  'mkdir -p "$(dirname "$1")" && base64 -d > "$1" && touch -d "$2" "$1"', "sh", path, stamp,
                  input=base64.b64encode(text.encode()).decode(), check=False, timeout=60), "seed " + session_id)


def session_ids(name: str) -> list:
    res = run_module("perry.fleet.perry_sessions", {"names": [name]}, TOPO, timeout=300)
    assert not res.get("failed") and not res.get("failed_workspaces"), res.get("msg") or res
    return sorted(s["id"] for s in res["sessions"])


@pytest.fixture(scope="module")
def fleet():
    """Three running workspaces a, b, c (removed, purged, afterwards)."""
    image = build_workspace_image(TOPO)
    prefix = random_prefix()
    names = [prefix + x for x in ("a", "b", "c")]
    try:
        role_vars = {"perry_workspace_runtime": "podman", "perry_workspace_image": image,
                     "perry_workspace_list": [{"name": n, "memory": "512m"} for n in names]}
        out = run_playbook([{"name": "workspace", "ansible.builtin.include_role": {"name": "perry.fleet.workspace"}}],
                           extra_vars=role_vars, timeout=900)
        assert out["rc"] == 0, out["stdout"][-4000:]
        yield {"prefix": prefix, "names": names, "containers": ["workspace-" + n for n in names], "image": image}
    finally:
        run_module("perry.fleet.perry_workspace", {"workspaces": [{"name": n} for n in names], "state": "absent",
                                                   "purge": True}, TOPO, timeout=300)
        TOPO.cleanup(prefix)


# ------------------------------------------------------------------------------------------ 1. lifecycle
def test_stop_start_restart_over_a_selection(fleet):
    a, b, c = fleet["names"]
    ca, cb, cc = fleet["containers"]
    sel = "workspaces=%s,%s" % (a, b)

    out = ok(playbook("stop", "-e", sel, check=True), changed=1)
    assert "stop 2 of 2 selected workspace(s): %s, %s" % (ca, cb) in out, out
    assert all(state(x)["Running"] for x in fleet["containers"]), "check mode stopped something"

    ok(playbook("stop", "-e", sel), changed=1)
    assert not state(ca)["Running"] and not state(cb)["Running"] and state(cc)["Running"]
    out = ok(playbook("stop", "-e", sel), changed=0)  # idempotent
    assert "none, all already in that state" in out

    # A glob pattern selects; a name this host lacks is reported, not fatal.
    out = ok(playbook("start", "-e", "workspaces=%s[ab],%snope" % (fleet["prefix"], fleet["prefix"])), changed=1)
    assert "Not on this host (skipped): %snope" % fleet["prefix"] in out
    assert state(ca)["Running"] and state(cb)["Running"]
    ok(playbook("start", "-e", sel), changed=0)
    health = run_module("perry.fleet.perry_worker_health", {"names": [a, b], "timeout": 60}, TOPO)
    assert not health.get("failed") and health["unhealthy"] == [], health

    # Label selection: only c, by its workspace.name label.
    before, before_a = state(cc)["StartedAt"], state(ca)["StartedAt"]
    ok(playbook("restart", "-e", "workspace_label=workspace.name=" + c), changed=1)
    assert state(cc)["Running"] and state(cc)["StartedAt"] != before
    assert state(ca)["StartedAt"] == before_a

    # No selection: refused, nothing changed.
    res = playbook("stop")
    assert res.returncode != 0 and "Name the workspaces" in res.stdout, res.stdout[-2000:]
    assert all(state(x)["Running"] for x in fleet["containers"])


def test_sync_reapplies_files_in_place(fleet, tmp_path):
    a = fleet["names"][0]
    ca = fleet["containers"][0]
    ident = TOPO.inspect(ca)["Id"]
    inv_vars = tmp_path / "vars.json"
    # The same spec as the fixture made, plus a file: synced into the running container without recreating it.
    inv_vars.write_text(json.dumps({
        "perry_workspace_image": fleet["image"],
        "perry_workspace_list": [{"name": n, "memory": "512m"} for n in fleet["names"]],
        "perry_workspace_files": [{"dest": "~/.day-two-sync", "content": "synced\n"}]}))
    out = ok(playbook("sync", "-e", "@%s" % inv_vars, "-e", "workspaces=" + a, check=True))
    assert TOPO.cli("exec", ca, "test", "-e", "/home/workspace/.day-two-sync", check=False).returncode != 0, out
    ok(playbook("sync", "-e", "@%s" % inv_vars, "-e", "workspaces=" + a))
    assert TOPO.cli("exec", ca, "cat", "/home/workspace/.day-two-sync").stdout == "synced\n"
    assert TOPO.inspect(ca)["Id"] == ident, "sync recreated the container"
    # Only the selected workspace got it.
    assert TOPO.cli("exec", fleet["containers"][1], "test", "-e", "/home/workspace/.day-two-sync",
                    check=False).returncode != 0
    ok(playbook("sync", "-e", "@%s" % inv_vars, "-e", "workspaces=" + a), changed=0)


def test_prune_sessions_older_than_n_days(fleet):
    a, b, _c = fleet["names"]
    ca, cb, _cc = fleet["containers"]
    seed_session(ca, "prune-old", 40 * DAY, "old one")
    seed_session(ca, "prune-new", 2 * DAY, "new one")
    seed_session(cb, "prune-old-b", 35 * DAY, "old in b")
    sel = "workspaces=%s,%s" % (a, b)

    out = ok(playbook("prune-sessions", "-e", sel, "-e", "older_than_days=30", check=True), changed=1)
    assert "2 session(s) older than 30 day(s)" in out and "%s/claude-code/prune-old " % a in out, out
    assert session_ids(a) == ["prune-new", "prune-old"] and session_ids(b) == ["prune-old-b"]

    ok(playbook("prune-sessions", "-e", sel, "-e", "older_than_days=30"))
    assert session_ids(a) == ["prune-new"] and session_ids(b) == []
    out = ok(playbook("prune-sessions", "-e", sel, "-e", "older_than_days=30"), changed=0)
    assert "0 session(s) older than 30 day(s)" in out

    res = playbook("prune-sessions", "-e", sel, "-e", "older_than_days=-1")
    assert res.returncode != 0 and "greater than 0" in res.stdout


# ------------------------------------------------------------------------------------------ 2. metrics
def test_metrics_file_parses_and_counts(fleet, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    a, b, c = fleet["names"]
    cb, cc = fleet["containers"][1], fleet["containers"][2]
    seed_session(cb, "metrics-1", 60, "metrics")
    # A real OOM kill inside c (512m limit, no swap here): tail holds one 700 MiB line.
    oom = TOPO.cli("exec", cc, "sh", "-c", "head -c 700m /dev/zero | tail > /dev/null", check=False, timeout=120)
    assert oom.returncode != 0, "the 700 MiB tail was not killed"
    metrics_dir = tmp_path / "textfile"
    args = ("-e", "perry_report_metrics_dir=%s" % metrics_dir, "-e", "perry_report_dir=%s" % (tmp_path / "report"))
    ok(playbook("report", *args))
    path = metrics_dir / "perry_fleet.prom"
    assert sorted(os.listdir(metrics_dir)) == ["perry_fleet.prom"], "temp file left behind"
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    fams = {f.name: f for f in text_string_to_metric_families(path.read_text())}

    def value(family: str, **labels) -> float | None:
        found = [s.value for s in fams[family].samples
                 if all(s.labels.get(k) == v for k, v in labels.items())]
        assert len(found) <= 1, (family, labels, found)
        return found[0] if found else None

    for name in (a, b, c):
        assert value("perry_workspace_up", workspace=name) == 1
        assert value("perry_workspace_health", workspace=name, health="healthy") == 1
        assert value("perry_workspace_restarts", workspace=name) is not None  # the parser drops the _total suffix
    assert fams["perry_workspace_restarts"].type == "counter" and fams["perry_workspaces"].type == "gauge"
    assert value("perry_workspaces", host="localhost", state="running") >= 3
    assert value("perry_workspace_sessions", workspace=b, agent="claude-code") == len(session_ids(b)) >= 1
    last = value("perry_workspace_last_activity_timestamp_seconds", workspace=b)
    assert last and abs(last - (time.time() - 60)) < 120, last
    assert value("perry_workspace_oom_kills", workspace=c) >= 1
    assert value("perry_workspace_oom_kills", workspace=a) == 0

    # Nothing changed: the file is left as it is (same inode, same mtime).
    before, old_text = path.stat(), path.read_text()
    ok(playbook("report", *args))
    after = path.stat()
    if path.read_text() == old_text:  # under heavy load a health answer may flip between runs
        assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)


# ------------------------------------------------------------------------------------------ 3. idle stop
def test_idle_stop_keeps_agents_at_work_and_ssh_users(fleet):
    import socket

    a, b, c = fleet["names"]
    ca, cb, cc = fleet["containers"]
    idle_after = 20
    # Every workspace must have run longer than idle_after (a fresh start counts as activity).
    for x in fleet["containers"]:
        started = TOPO.cli("inspect", "--format", "{{.State.StartedAt.Unix}}", x).stdout.strip()
        wait = int(started) + idle_after + 2 - time.time()
        if wait > 0:
            time.sleep(wait)
    seed_session(ca, "idle-recent", 2, "agent at work")  # a: an agent session active just now
    seed_session(cb, "idle-old", 2 * DAY, "long done")   # b: only old sessions: idle
    seed_session(cc, "idle-old-c", 2 * DAY, "long done")  # c: old sessions, but someone is on SSH
    port = int(TOPO.inspect(cc)["HostConfig"]["PortBindings"]["22/tcp"][0]["HostPort"])
    sel = ("-e", "workspaces=%s" % ",".join(fleet["names"]), "-e", "idle_after=%ds" % idle_after)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        assert conn.recv(64).startswith(b"SSH-"), "sshd did not greet"
        out = ok(playbook("idle-stop", *sel, check=True), changed=1)
        assert "%s: idle: no agent session activity within %ds" % (b, idle_after) in out, out
        assert "%s: kept: agent session active" % a in out and "%s: kept: 1 SSH connection(s)" % c in out, out
        assert all(state(x)["Running"] for x in fleet["containers"]), "check mode stopped something"

        seed_session(ca, "idle-recent", 2, "agent at work")  # the agent keeps writing
        ok(playbook("idle-stop", *sel), changed=1)
        assert state(ca)["Running"] and state(cc)["Running"] and not state(cb)["Running"]
        seed_session(ca, "idle-recent", 2, "agent at work")
        ok(playbook("idle-stop", *sel), changed=0)  # b is stopped now, a and c still busy
    # Data untouched: b's session is there after a start.
    ok(playbook("start", "-e", "workspaces=" + b))
    assert "idle-old" in session_ids(b)


# ------------------------------------------------------------------------------------------ 4. capacity
def test_budget_refusal_creates_nothing_and_defaults_limits(fleet):
    prefix = fleet["prefix"]
    new = [prefix + "x", prefix + "y"]
    base = {"perry_workspace_runtime": "podman", "perry_workspace_image": fleet["image"],
            "perry_workspace_list": [{"name": n} for n in new]}
    role = [{"name": "workspace", "ansible.builtin.include_role": {"name": "perry.fleet.workspace"}}]
    out = run_playbook(role, extra_vars=dict(base, perry_workspace_budget={"workspaces": 2, "memory": "1g"}),
                       timeout=600)
    assert out["rc"] != 0
    msg = out["tasks"][-1]["msg"]
    assert "over budget" in msg and "> budget of 2" in msg and "(2 in this run, " in msg, msg
    assert "memory" in msg and "> budget 1g" in msg and msg.endswith("Nothing was created."), msg
    assert not any(TOPO.inspect("workspace-" + n) for n in new), "a workspace was created despite the refusal"
    assert not any(v.startswith("workspace-" + prefix + "x") for v in TOPO.volume_names())

    # A roomy budget: x is created with the budget's share as its limits.
    ok_vars = dict(base, perry_workspace_list=[{"name": new[0]}],
                   perry_workspace_budget={"workspaces": 1000, "memory": "1000g", "cpus": 1000})
    out = run_playbook(role, extra_vars=ok_vars, timeout=600)
    assert out["rc"] == 0, out["stdout"][-3000:]
    host_config = TOPO.inspect("workspace-" + new[0])["HostConfig"]
    assert host_config["Memory"] == 1024 ** 3 and host_config["NanoCpus"] == 10 ** 9, host_config
    run_module("perry.fleet.perry_workspace", {"name": new[0], "state": "absent", "purge": True}, TOPO, timeout=300)
