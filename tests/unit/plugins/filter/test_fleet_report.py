"""perry.fleet.fleet_report_host / fleet_report: the report role's rows and totals, as pure functions."""

from __future__ import annotations

import json

from ansible_collections.perry.fleet.plugins.filter import perry as f

NOW = 1_800_000_000.0
ID_A = "sha256:" + "a" * 64
ID_B = "b" * 64


def info(name, state="running", ssh=2200, worker=7392, bind="127.0.0.1", image="localhost/perry:latest", image_id=ID_A,
         started="2027-01-15T08:00:00.123456789Z", limits=None):
    return {"name": name, "container": "workspace-" + name, "state": state, "running": state == "running",
            "image": image, "image_id": image_id[len("sha256:"):] if image_id.startswith("sha256:") else image_id,
            "ports": {"ssh": ssh, "worker": worker, "bind_address": bind}, "started_at": started,
            "limits": limits or {"memory": None, "cpus": None, "pids": None}}


def healthy(name, version="0.1.0"):
    return {"name": name, "healthy": True, "status": 200, "version": version, "transport": "exec", "error": None}


def sessions_ok(name, items):
    return {"name": name, "ok": True, "error": None, "sessions": items, "count": len(items)}


def host(ws, health=(), sessions=(), images=("localhost/perry:latest |" + ID_A,), **options):
    o = {"host": "devbox", "runtime": "podman", "source": "discovered", "now": NOW,
         "budgets": {"health_timeout": 10.0, "request_timeout": 15.0, "engine_timeout": 60.0}}
    o.update(options)
    return f.fleet_report_host(list(ws), list(health), list(sessions), list(images), o)


def row(report, name):
    (found,) = [w for w in report["workspaces"] if w["name"] == name]
    return found


def test_healthy_row_has_ssh_line_uptime_limits_and_sessions():
    items = [{"agent_type": "codex", "title": "b", "last_activity": 1_700_000_000_000},
             {"agent_type": "claude-code", "title": "a" * 100, "last_activity": 1_700_000_100_000},
             {"agent_type": "codex", "title": "c", "last_activity": None}]
    started = "2027-01-14T05:00:00Z"  # 27 h before NOW
    limits = {"memory": 4294967296, "cpus": 1.5, "pids": 512}   # as perry_workspace_info returns them
    r = host([info("a", started=started, limits=limits)], [healthy("a")], [sessions_ok("a", items)], title_length=10)
    w = row(r, "a")
    assert w["ok"] and w["health"] == "healthy" and w["status"] == "ok" and w["reason"] is None
    assert w["ssh_command"] == "ssh -p 2200 workspace@127.0.0.1"
    assert w["uptime_seconds"] == int(NOW - f.parse_started_at(started)) and w["uptime"] == "1d 3h"
    assert w["limits"] == {"memory": 4294967296, "cpus": 1.5, "pids": 512}
    assert w["limits_text"] == "mem 4 GiB · 1.5 cpu · 512 pids"
    assert w["session_count"] == 3 and w["sessions_by_agent"] == {"claude-code": 1, "codex": 2}
    assert w["last_activity"] == 1_700_000_100_000 and w["last_activity_utc"] == "2023-11-14 22:15:00"
    assert [t["title"] for t in w["newest_titles"]] == ["a" * 9 + "…", "b", "c"]
    assert w["newest_titles"][2]["last_activity"] is None
    assert w["image_drift"] is False and w["details"] == []


def test_wildcard_bind_uses_the_inventory_host():
    w = row(host([info("a", bind="0.0.0.0")], [healthy("a")]), "a")
    assert w["ssh_command"] == "ssh -p 2200 workspace@devbox"


def test_missing_or_zero_activity_is_never_1970():
    for items, shown in (([], "never"), ([{"agent_type": "codex", "last_activity": 0}], "never"),
                         ([{"agent_type": "codex"}], "never"), ([{"agent_type": "codex", "last_activity": "x"}], "never")):
        w = row(host([info("a")], [healthy("a")], [sessions_ok("a", items)]), "a")
        assert w["last_activity"] is None and w["last_activity_utc"] == shown, items
        assert "1970" not in json.dumps(w)
    w = row(host([info("a", state="stopped")]), "a")
    assert w["last_activity_utc"] == "-" and w["session_count"] is None


def test_unknown_when_the_health_budget_ran_out_but_sessions_answered():
    late = {"name": "a", "healthy": False, "status": 0, "version": None, "transport": "exec",
            "error": "worker not healthy after 0.1 s: curl: (28) Operation timed out\nmore text", "elapsed": 0.1}
    w = row(host([info("a")], [late], [sessions_ok("a", [])], budgets={"health_timeout": 0.1}), "a")
    assert w["health"] == "unknown" and w["status"] == "unknown" and not w["ok"]
    assert "0.1 s" in w["reason"] and "perry_report_health_timeout" in w["reason"]
    # The same health answer with sessions failing too: the worker is really down.
    failed = {"name": "a", "ok": False, "error": "worker unreachable via exec: connection refused", "sessions": []}
    w = row(host([info("a")], [dict(late)], [failed]), "a")
    assert w["health"] == "unhealthy" and w["status"] == "unhealthy"
    assert w["reason"] == "worker not healthy after 0.1 s: curl: (28) Operation timed out …"
    assert "\n" not in w["reason"]
    texts = {d["what"]: d["text"] for d in w["details"]}
    assert texts["health"].endswith("more text") and "connection refused" in texts["sessions"]


def test_reason_is_one_line_and_details_carry_the_full_text_and_commands():
    err = "engine command failed (rc=1): podman exec workspace-a curl ...\n" + "x" * 10000
    h = {"name": "a", "healthy": False, "status": 500, "error": err, "log_tail": "boom", "transport": "exec"}
    cmds = [{"cmd": "podman exec workspace-a curl -s http://127.0.0.1:7392/health", "rc": 7, "elapsed": 0.2},
            {"cmd": "podman exec workspace-other true", "rc": 0, "elapsed": 0.1}]
    w = row(host([info("a")], [h], [{"name": "a", "ok": False, "error": "down"}], commands=cmds), "a")
    assert w["reason"].startswith("engine command failed") and "\n" not in w["reason"] and len(w["reason"]) <= 162
    texts = {d["what"]: d["text"] for d in w["details"]}
    assert len(texts["health"]) < 4100 and "cut at 4000" in texts["health"]
    assert texts["worker log (tail)"] == "boom"
    assert "workspace-a curl" in texts["engine commands"] and "workspace-other" not in texts["engine commands"]


def test_duplicate_host_ports_name_the_other_workspace():
    ws = [info("a", ssh=2250), info("b", state="stopped", ssh=2250, worker=None), info("c", ssh=2251, worker=7393),
          info("d", ssh=2252, bind="127.0.0.2", worker=7394), info("e", ssh=2252, bind="127.0.0.3", worker=7395)]
    r = host(ws, [healthy("a"), healthy("c"), healthy("d"), healthy("e")])
    assert [(p["port"], p["workspace"]) for p in row(r, "a")["port_conflicts"]] == [(2250, "b")]
    assert [(p["port"], p["workspace"]) for p in row(r, "b")["port_conflicts"]] == [(2250, "a")]
    assert row(r, "c")["port_conflicts"] == []
    assert row(r, "d")["port_conflicts"] == [] and row(r, "e")["port_conflicts"] == []  # other addresses
    wild = host([info("a", ssh=2260, bind="0.0.0.0"), info("b", ssh=2260, worker=7400)], [healthy("a"), healthy("b")])
    assert row(wild, "b")["port_conflicts"][0]["workspace"] == "a"
    assert f.fleet_report([r, wild], ["h1", "h2"])["summary"]["port_conflicts"] == 4


def test_image_drift_compares_the_containers_id_with_the_names_id_now():
    r = host([info("a"), info("b", image="localhost/gone:latest"), info("c", image="localhost/perry")],
             [healthy("a"), healthy("b"), healthy("c")], images=["localhost/perry:latest other:1 |sha256:" + ID_B])
    assert row(r, "a")["image_drift"] is True and row(r, "a")["image_current_id"] == ID_B
    assert row(r, "b")["image_drift"] is None  # name no longer exists: unknown, not drift
    assert row(r, "c")["image_drift"] is True  # untagged name means :latest
    assert f.fleet_report([r], ["h"])["summary"]["image_drift"] == 2


def test_states_order_and_totals():
    ws = [info("ok"), info("down", state="stopped"), info("paused", state="paused"), info("sick")]
    sick = {"name": "sick", "healthy": False, "status": 503, "error": "503"}
    r = host(ws, [healthy("ok"), sick], expected=["ok", "gone"])
    assert [w["name"] for w in r["workspaces"]] == ["sick", "gone", "down", "paused", "ok"]
    gone = row(r, "gone")
    assert gone["state"] == "missing" and gone["reason"] == "no container workspace-gone on this host"
    assert row(r, "down")["reason"] == "not running" and row(r, "down")["health"] is None
    assert row(r, "down")["uptime"] is None
    report = f.fleet_report([r, None], ["a", "b"], "2027-01-01T00:00:00Z", "podman")
    s = report["summary"]
    assert (s["hosts"], s["hosts_failed"], s["workspaces"], s["running"], s["stopped"], s["missing"]) == (2, 1, 5, 2, 2, 1)
    assert (s["healthy"], s["unhealthy"], s["unknown"]) == (1, 1, 0)
    assert report["hosts"][1] == {"host": "b", "runtime": "podman", "source": None, "budgets": {},
                                  "error": "host failed or unreachable before it was reported", "workspaces": []}
    assert report["budgets"]["health_timeout"] == 10.0


def test_expected_worker_version_is_compared():
    r = host([info("a"), info("b", ssh=2201, worker=7393)], [healthy("a", "0.1.0"), healthy("b", "0.2.0")],
             expected_version="0.2.0")
    assert row(r, "a")["version_ok"] is False and row(r, "a")["reason"] == "worker 0.1.0, expected 0.2.0"
    assert row(r, "b")["version_ok"] is True and row(r, "b")["reason"] is None
    assert f.fleet_report([r], ["h"])["summary"]["version_mismatch"] == 1


def test_the_chart_is_wide_enough_for_its_labels():
    c = f.chart({"claude-code": 123456, "a-very-long-agent-name": 1})
    for b in c["bars"]:
        assert b["label_x"] >= len(b["agent"]) * 7
        assert c["width"] >= b["value_x"] + len(str(b["count"])) * 8
    assert f.chart({})["bars"] == []


def test_parsers():
    assert f.parse_started_at("0001-01-01T00:00:00Z") is None and f.parse_started_at("") is None
    assert f.parse_started_at("2027-01-15T09:00:00+01:00") == f.parse_started_at("2027-01-15T08:00:00Z")
    assert f.parse_started_at("2027-01-15 08:00:00.5 +0000 UTC") == f.parse_started_at("2027-01-15T08:00:00Z") + 0.5
    assert [f.human_duration(x) for x in (5, 125, 7260, 90000, None)] == ["5s", "2m", "2h 1m", "1d 1h", None]


def test_no_environment_or_labels_are_carried():
    w = info("a")
    w["env"] = {"SECRET": "s3cret"}
    w["labels"] = {"perry.fleet.spec": "{\"env\": {\"SECRET\": \"s3cret\"}}"}
    assert "s3cret" not in json.dumps(host([w], [healthy("a")]))


def test_a_failed_health_check_makes_rows_unknown_or_unhealthy_by_their_sessions():
    msg = "cannot inspect the workspaces' containers: engine command timed out after 0.1 s: podman inspect ..."
    failed = {"name": "b", "ok": False, "error": "worker unreachable via exec: connection refused"}
    r = host([info("a"), info("b", ssh=2201, worker=7393)], [], [sessions_ok("a", []), failed], health_error=msg,
             budgets={"health_timeout": 0.05})
    a, b = row(r, "a"), row(r, "b")
    assert a["health"] == "unknown" and "0.05 s" in a["reason"] and "perry_report_health_timeout" in a["reason"]
    assert b["health"] == "unhealthy" and b["reason"].startswith("health check failed: cannot inspect")
    assert {d["what"]: d["text"] for d in b["details"]}["health"] == msg
