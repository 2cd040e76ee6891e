from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.perry.fleet.plugins.filter import day_two as d

INFO = [{"name": n, "container": "workspace-" + n, "running": r, "state": "running" if r else "stopped",
         "started_at": "2026-01-01T00:00:00.000000000Z", "restart_count": i}
        for i, (n, r) in enumerate([("alice", True), ("bob", True), ("ci-1", False), ("ci-2", True)])]
T0 = 1767225600.0  # 2026-01-01T00:00:00Z


def test_selection_by_names_globs_and_label():
    assert d.selection_patterns("alice, bob,,") == ["alice", "bob"]
    assert d.selection_patterns(["ci-*"]) == ["ci-*"] and d.selection_patterns(None) == []
    assert d.select_workspaces(INFO, "alice,ci-*") == ["alice", "ci-1", "ci-2"]
    assert d.select_workspaces(INFO, "*") == ["alice", "bob", "ci-1", "ci-2"]
    assert d.select_workspaces(INFO, "*", ["workspace-bob", "/workspace-ci-1"]) == ["bob", "ci-1"]
    assert d.select_workspaces(INFO, "alice", ["workspace-bob"]) == []
    assert d.unmatched_patterns(INFO, "alice,carol,x-*") == ["carol"]


def test_sizes_and_durations():
    assert d.parse_size("4g") == 4 * 1024 ** 3 and d.parse_size("512M") == 512 * 1024 ** 2
    assert d.parse_size("1.5GiB") == int(1.5 * 1024 ** 3) and d.parse_size(1024) == 1024 and d.parse_size("") is None
    assert d.format_size(4 * 1024 ** 3) == "4g" and d.format_size(1536 * 1024 ** 2) == "1536m"
    assert d.parse_duration("90") == 90 and d.parse_duration("4h") == 14400 and d.parse_duration("2d") == 172800
    for bad in ("lots", "4x", "-1h"):
        with pytest.raises(AnsibleFilterError, match="not understood"):
            d.parse_duration(bad)
    with pytest.raises(AnsibleFilterError, match="for example 4g"):
        d.parse_size("four gigs")


def test_capacity_defaults_from_the_budget_and_refusal_with_numbers():
    plan = d.capacity_plan([{"name": "a"}, {"name": "b", "memory": "2g", "cpus": 1.5}],
                           {"memory": "8g", "cpus": 4, "workspaces": 4}, ["a", "old"])
    assert plan["ok"], plan["msg"]
    assert plan["defaults"] == {"memory": "2g", "cpus": 1.0}
    assert plan["workspaces"][0] == {"name": "a", "memory": "2g", "cpus": 1.0}
    assert plan["totals"] == {"workspaces": 3, "memory": 6 * 1024 ** 3, "cpus": 3.5, "others": ["old"]}

    plan = d.capacity_plan([{"name": "a", "memory": "6g"}, {"name": "b", "memory": "3g"}, {"name": "c"}],
                           {"memory": "8g", "cpus": 2, "workspaces": 2})
    assert not plan["ok"]
    assert "3 workspaces (3 in this run, 0 others already on the host) > budget of 2" in plan["msg"]
    assert "memory 13g > budget 8g" in plan["msg"] and "cpus 3 > budget 2" in plan["msg"]
    assert plan["msg"].endswith("Nothing was created.")

    # Absent ones free their share; no budget = no limits and always ok.
    plan = d.capacity_plan([{"name": "a"}, {"name": "gone", "state": "absent"}], {"workspaces": 1}, ["gone"])
    assert plan["ok"] and plan["totals"]["workspaces"] == 1
    assert plan["workspaces"] == [{"name": "a"}, {"name": "gone", "state": "absent"}]
    plan = d.capacity_plan([{"name": "a", "state": "started"}, {"name": "b"}], {"workspaces": 1}, [], "absent")
    assert plan["ok"] and plan["totals"]["workspaces"] == 1
    assert d.capacity_plan([{"name": "a"}], {})["ok"]
    with pytest.raises(AnsibleFilterError, match="greater than 0"):
        d.capacity_plan([{"name": "a"}], {"cpus": 0})


def test_prune_candidates_are_the_old_ones_oldest_first():
    now = T0 + 100 * 86400
    sessions = [{"workspace": "alice", "id": "new", "agent_type": "claude-code", "last_activity": (now - 86400) * 1000},
                {"workspace": "alice", "id": "old", "agent_type": "codex", "last_activity": (now - 40 * 86400) * 1000},
                {"workspace": "bob", "id": "older", "agent_type": "pi", "last_activity": (now - 50 * 86400) * 1000},
                {"workspace": "bob", "id": "untimed", "agent_type": "pi", "last_activity": 0}]
    out = d.prune_candidates(sessions, 30, now)
    assert [(x["workspace"], x["id"], x["age_days"]) for x in out] == [("bob", "older", 50.0), ("alice", "old", 40.0)]
    assert d.prune_candidates(sessions, "60", now) == []


def test_ssh_connections_count_established_port_22_only():
    text = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
   1: 0B0058C0:0016 010058C0:D2F4 01 00000000:00000000 00:00000000 00000000     0        0 2 1
   2: 0B0058C0:1CE0 010058C0:D2F6 01 00000000:00000000 00:00000000 00000000  1000        0 3 1
  sl  local_address                         remote_address                        st tx_queue rx_queue
   0: 0000000000000000FFFF00000B0058C0:0016 0000000000000000FFFF0000010058C0:E000 01 00000000:00000000
"""
    assert d.ssh_connections(text) == 2 and d.ssh_connections("") == 0


def test_idle_plan_keeps_agents_at_work_and_ssh_users():
    now = T0 + 10 * 86400
    sessions = [
        {"name": "alice", "ok": True, "total": 1, "sessions": [{"last_activity": (now - 600) * 1000}]},
        {"name": "bob", "ok": True, "total": 0, "sessions": []},
        {"name": "ci-2", "ok": False, "error": "worker down", "sessions": []},
    ]
    plan = {p["name"]: p for p in d.idle_plan(INFO, sessions, {"alice": 0, "bob": 0, "ci-2": 0}, "4h", now,
                                              since_filtered=True)}
    assert set(plan) == {"alice", "bob", "ci-2"}  # ci-1 is not running
    assert not plan["alice"]["stop"] and plan["alice"]["reason"] == "kept: agent session active 10m0s ago"
    assert plan["bob"]["stop"] and "no agent session activity within 4h" in plan["bob"]["reason"]
    assert not plan["ci-2"]["stop"] and "worker down" in plan["ci-2"]["reason"]
    # An SSH connection keeps an otherwise idle workspace; unreadable SSH state keeps it too.
    plan = {p["name"]: p for p in d.idle_plan(INFO, sessions, {"bob": 1}, "4h", now, ["alice", "bob"], True)}
    assert set(plan) == {"alice", "bob"}
    assert not plan["bob"]["stop"] and plan["bob"]["reason"] == "kept: 1 SSH connection(s)"
    assert not plan["alice"]["stop"] and "SSH connections could not be read" in plan["alice"]["reason"]
    # A fresh start counts as activity; the page of a since-filtered listing may lack a workspace's sessions.
    fresh = [dict(INFO[1], started_at="2026-01-11T23:00:00Z")]
    plan = d.idle_plan(fresh, [{"name": "bob", "ok": True, "total": 0}], {"bob": 0}, "4h", T0 + 10 * 86400 + 3600 * 23.5)
    assert not plan[0]["stop"] and plan[0]["reason"] == "kept: started 30m0s ago"
    plan = d.idle_plan(INFO[1:2], [{"name": "bob", "ok": True, "total": 3, "sessions": []}], {"bob": 0}, "4h", now,
                       since_filtered=True)
    assert not plan[0]["stop"] and plan[0]["reason"] == "kept: 3 agent session(s) active within 4h"


def test_prometheus_metrics_text():
    host = {"host": "dev1", "workspaces": [
        {"name": "alice", "container": "workspace-alice", "state": "running", "running": True, "health": "healthy",
         "sessions_by_agent": {"claude-code": 2, "codex": 1}, "last_activity": 1767225600500},
        {"name": 'we"ird', "container": "workspace-x", "state": "stopped", "running": False, "health": None,
         "sessions_by_agent": {}, "last_activity": None}]}
    text = d.prometheus_metrics(host, INFO, ["/workspace-alice|3|false", "workspace-x||true"], now=T0)
    assert 'perry_workspaces{host="dev1",state="running"} 1\n' in text
    assert 'perry_workspaces{host="dev1",state="stopped"} 1\n' in text
    assert 'perry_workspace_health{host="dev1",workspace="alice",health="healthy"} 1\n' in text
    assert 'perry_workspace_sessions{host="dev1",workspace="alice",agent="codex"} 1\n' in text
    assert 'perry_workspace_last_activity_timestamp_seconds{host="dev1",workspace="alice"} 1767225600.5\n' in text
    assert 'perry_workspace_restarts_total{host="dev1",workspace="alice"} 0\n' in text
    assert 'perry_workspace_oom_kills_total{host="dev1",workspace="alice"} 3\n' in text
    assert 'perry_workspace_oom_killed{host="dev1",workspace="we\\"ird"} 1\n' in text
    assert 'perry_workspace_oom_kills_total{host="dev1",workspace="we' not in text  # unreadable: absent, not 0
    assert text.count("# TYPE ") == 9 and text.endswith("\n")
