from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, unquote

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.perry.fleet.plugins.module_utils import sessions as wc
from ansible_collections.perry.fleet.plugins.module_utils.errors import SpecError
from ansible_collections.perry.fleet.plugins.module_utils.engine import Result
from ansible_collections.perry.fleet.plugins.modules import perry_sessions

CLAUDE = {"id": "test-session", "agentType": "claude", "title": "Hello from test", "directory": "-home-workspace-proj",
          "filePath": "/home/workspace/.claude/projects/-home-workspace-proj/test-session.jsonl", "messageCount": 3,
          "firstPrompt": "Hello from test", "lastActivity": 1767225600123}
OPENCODE = {"id": "ses_test123", "agentType": "opencode", "title": "Test OpenCode Session", "directory": "/home/workspace/x",
            "filePath": "", "messageCount": 2, "firstPrompt": "Test OpenCode Session", "lastActivity": 1735689600000}
CODEX = {"id": "0199-codex", "agentType": "codex", "title": "fix the build", "directory": "/home/workspace/app",
         "filePath": "/home/workspace/.codex/sessions/2026/01/01/rollout-x.jsonl", "messageCount": 4,
         "firstPrompt": "fix the build", "lastActivity": 1767312000000}


# ------------------------------------------------------------------------------------ normalisation
def test_normalize_session_is_the_agent_side_mapping():
    s = wc.normalize_session(CLAUDE, "alice")
    assert s["agent_type"] == "claude-code" and s["worker_agent_type"] == "claude"
    assert s["last_activity"] == 1767225600123 and s["mtime"] == pytest.approx(1767225600.123)
    assert s["project_path"] == "-home-workspace-proj" == s["directory"]
    assert s["name"] == "Hello from test" == s["title"]
    assert s["workspace"] == "alice" and s["id"] == "test-session" and s["message_count"] == 3
    assert CLAUDE["agentType"] == "claude"  # input untouched
    # Every key snake_case (issue 17): the worker's camelCase never reaches a result.
    assert set(s) == {"id", "agent_type", "worker_agent_type", "title", "name", "directory", "project_path",
                      "file_path", "message_count", "first_prompt", "last_activity", "mtime", "workspace"}


def test_normalize_keeps_other_agents_and_survives_odd_input():
    assert wc.normalize_session(OPENCODE, "b")["agent_type"] == "opencode"
    s = wc.normalize_session({"id": "x", "lastActivity": "soon"}, "b")
    assert s["mtime"] is None and s["last_activity"] is None and s["name"] is None


@pytest.mark.parametrize("value,ms", [
    (None, None), ("", None), (1767225600000, 1767225600000), ("1767225600000", 1767225600000),
    ("2026-01-01", 1767225600000), ("2026-01-01T00:00:00Z", 1767225600000),
    ("2026-01-01T01:00:00+01:00", 1767225600000), ("2026-01-01T00:00:01", 1767225601000),
])
def test_parse_since(value, ms):
    assert wc.parse_since(value) == ms


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01", True, float("inf"), float("-inf"), float("nan"), ".inf",
                                   10 ** 400, -10 ** 30, -1e308, "9" * 400, "-" + "9" * 30])
def test_parse_since_rejects(value):
    with pytest.raises(SpecError):
        wc.parse_since(value)


def test_filters_accept_claude_and_claude_code():
    sessions = [wc.normalize_session(s, "w") for s in (CLAUDE, OPENCODE, CODEX)]
    assert [s["id"] for s in wc.filter_sessions(sessions, ["claude"])] == ["test-session"]
    assert [s["id"] for s in wc.filter_sessions(sessions, ["claude-code", "codex"])] == ["test-session", "0199-codex"]
    assert [s["id"] for s in wc.filter_sessions(sessions, None, wc.parse_since("2026-01-01"))] == ["test-session", "0199-codex"]
    assert wc.filter_sessions(sessions, ["pi"]) == []


def test_sort_is_newest_first_then_workspace_and_id():
    a = wc.normalize_session(dict(CLAUDE, lastActivity=5), "b")
    b = wc.normalize_session(dict(CLAUDE, lastActivity=5), "a")
    c = wc.normalize_session(dict(CLAUDE, lastActivity=9), "z")
    assert [(s["workspace"], s["last_activity"]) for s in wc.sort_sessions([a, b, c])] == [("z", 9), ("a", 5), ("b", 5)]


def test_jmespath_query():
    sessions = [wc.normalize_session(s, "w") for s in (CLAUDE, OPENCODE, CODEX)]
    q = wc.compile_query("[?message_count > `2`].{id: id, ws: workspace}")
    assert q.search(sessions) == [{"id": "test-session", "ws": "w"}, {"id": "0199-codex", "ws": "w"}]
    assert wc.compile_query("length(@)").search(sessions) == 3
    with pytest.raises(SpecError, match="not a valid JMESPath"):
        wc.compile_query("[?")


def test_missing_jmespath_gives_a_clear_error(monkeypatch):
    monkeypatch.setattr(wc, "HAS_JMESPATH", False)
    with pytest.raises(SpecError, match="pip install jmespath"):
        wc.compile_query("[]")


# ------------------------------------------------------------------------------------ a fake fleet
class FleetEngine:
    """Containers whose workers are simulated behind `exec ... curl`; 'down' ones refuse connections."""

    kind = "podman"
    url = None

    def __init__(self, workers, down=(), stopped=(), paging=False):
        self.paging = paging  # a worker that pages (limit/offset/agentType/since, total) or an old one
        self.workers = {"workspace-" + k: {s["id"]: dict(s) for s in v} for k, v in workers.items()}
        self.down = {"workspace-" + d for d in down}
        self.stopped = {"workspace-" + d for d in stopped}
        self.commands = []
        self.calls = []

    def inspect(self, names, timeout=None):
        self.commands.append({"cmd": "inspect " + " ".join(names)})
        out = {}
        for n in names:
            if n in self.workers or n in self.down or n in self.stopped:
                run = n not in self.stopped
                out[n] = {"Name": "/" + n, "State": {"Running": run, "Status": "running" if run else "exited"},
                          "Config": {"Labels": {}}, "NetworkSettings": {"Networks": {}, "Ports": {}}}
        return out

    def run(self, args, timeout=None, check=True, stdin=None, record=True, max_output=None):
        self.calls.append(list(args))
        container = args[3]
        if container in self.down:
            return Result(7, "\n000", "", 0.01)
        method = args[args.index("-X") + 1] if "-X" in args else "GET"
        status, body = self.route(self.workers[container], method, args[-1][len("http://localhost:7392"):], self.paging)
        return Result(0, json.dumps(body) + "\n%d" % status, "", 0.01)

    @staticmethod
    def route(sessions, method, path, paging=False):
        path, _unused1, query = path.partition("?")
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts == ["sessions"]:
            listed = sorted(sessions.values(), key=lambda s: (-s["lastActivity"], s["id"]))
            if not paging:
                return 200, {"sessions": listed}
            q = parse_qs(query)
            kinds = set(q.get("agentType", []))
            since = int(q["since"][0]) if "since" in q else None
            listed = [s for s in listed if (not kinds or s["agentType"] in kinds)
                      and (since is None or s["lastActivity"] >= since)]
            off, lim = int(q["offset"][0]), int(q["limit"][0])
            return 200, {"sessions": listed[off:off + lim], "total": len(listed), "offset": off, "limit": lim}
        if len(parts) == 2 and method == "GET":
            s = sessions.get(parts[1])
            return (200, {"session": s}) if s else (404, {"error": "Session not found"})
        if len(parts) == 2 and method == "DELETE":
            if sessions.pop(parts[1], None):
                return 200, {"success": True}
            return 404, {"success": False, "error": "Session not found"}
        if len(parts) == 3 and parts[2] == "messages":
            q = dict(kv.split("=") for kv in query.split("&"))
            msgs = [{"type": "user", "content": "m%d" % i} for i in range(7)] if parts[1] in sessions else []
            total, limit, offset = len(msgs), int(q["limit"]), int(q["offset"])
            return 200, {"id": parts[1], "messages": msgs[max(0, total - offset - limit):total - offset], "total": total}
        return 404, {"error": "Not Found"}


def call(args, engine, monkeypatch, capsys, check=False, diff=False):
    monkeypatch.setattr(perry_sessions, "make_engine", lambda p, secrets=(): engine)
    args = dict(args, runtime="podman")
    if check:
        args["_ansible_check_mode"] = True
    if diff:
        args["_ansible_diff"] = True
    with patch_module_args(args):
        with pytest.raises(SystemExit) as info:
            perry_sessions.main()
    return info.value.code, json.loads(capsys.readouterr().out)


@pytest.fixture
def fleet():
    return FleetEngine({"a": [CLAUDE, OPENCODE], "b": [CODEX, dict(CLAUDE, id="other", lastActivity=1)]},
                       down=["c"], stopped=["d"])


def test_list_across_workspaces_with_unreachable_ones_reported(fleet, monkeypatch, capsys):
    rc, out = call({"names": ["a", "b", "c", "d", "e"]}, fleet, monkeypatch, capsys)
    assert rc == 0 and not out["changed"]
    assert [s["id"] for s in out["sessions"]] == ["0199-codex", "test-session", "ses_test123", "other"]
    assert {s["workspace"] for s in out["sessions"]} == {"a", "b"}
    ws = {w["name"]: w for w in out["workspaces"]}
    assert ws["a"]["ok"] and ws["a"]["count"] == 2 and ws["a"]["sessions"][0]["agent_type"] == "claude-code"
    assert "connection refused" in ws["c"]["error"] and not ws["c"]["ok"]
    assert "not running" in ws["d"]["error"] and "does not exist" in ws["e"]["error"]
    assert out["failed_workspaces"] == ["c", "d", "e"]
    assert sum(1 for c in fleet.commands if c["cmd"].startswith("inspect")) == 1


def test_fail_on_error(fleet, monkeypatch, capsys):
    rc, out = call({"names": ["a", "c"], "fail_on_error": True}, fleet, monkeypatch, capsys)
    assert rc == 1 and "c: worker unreachable" in out["msg"] and len(out["sessions"]) == 2


def test_filters_and_query(fleet, monkeypatch, capsys):
    rc, out = call({"names": ["a", "b"], "agent_type": ["claude"], "since": "2025-06-01",
                    "query": "[].join('@', [id, workspace])"}, fleet, monkeypatch, capsys)
    assert rc == 0 and [s["id"] for s in out["sessions"]] == ["test-session"]
    assert out["query_result"] == ["test-session@a"]


def test_get_one_session_and_its_messages(fleet, monkeypatch, capsys):
    rc, out = call({"names": ["a", "b"], "session_id": "test-session", "messages": True, "limit": 3, "offset": 2},
                   fleet, monkeypatch, capsys)
    ws = {w["name"]: w for w in out["workspaces"]}
    assert ws["a"]["session"]["name"] == "Hello from test" and ws["b"]["session"] is None
    assert ws["a"]["messages"]["total"] == 7 and [m["content"] for m in ws["a"]["messages"]["messages"]] == ["m2", "m3", "m4"]
    assert ws["b"]["messages"]["total"] == 0
    assert [s["workspace"] for s in out["sessions"]] == ["a"]


def test_ids_are_url_encoded(monkeypatch, capsys):
    engine = FleetEngine({"a": [dict(CLAUDE, id="we ird/id")]})
    rc, out = call({"name": "a", "session_id": "we ird/id"}, engine, monkeypatch, capsys)
    assert out["workspaces"][0]["session"]["id"] == "we ird/id"
    assert engine.calls[-1][-1].endswith("/sessions/we%20ird%2Fid")


def test_delete_check_mode_and_diff(fleet, monkeypatch, capsys):
    rc, out = call({"names": ["a", "b"], "session_id": "test-session", "state": "absent"}, fleet, monkeypatch, capsys,
                   check=True, diff=True)
    assert rc == 0 and out["changed"] and out["diff"]["before"] == {"sessions": ["a/test-session"]}
    assert "test-session" in fleet.workers["workspace-a"]  # nothing deleted
    assert not any("DELETE" in c for c in fleet.calls)
    assert [w["deleted"] for w in out["workspaces"]] == [True, False]


def test_delete_then_idempotent(fleet, monkeypatch, capsys):
    rc, out = call({"names": ["a", "b"], "session_id": "test-session", "state": "absent"}, fleet, monkeypatch, capsys)
    assert rc == 0 and out["changed"] and "test-session" not in fleet.workers["workspace-a"]
    assert [s["id"] for s in out["sessions"]] == ["test-session"]
    rc, out = call({"names": ["a", "b"], "session_id": "test-session", "state": "absent"}, fleet, monkeypatch, capsys)
    assert rc == 0 and not out["changed"] and out["sessions"] == []


def test_state_absent_needs_session_id(fleet, monkeypatch, capsys):
    rc, out = call({"name": "a", "state": "absent"}, fleet, monkeypatch, capsys)
    assert rc == 1 and "session_id" in out["msg"]


def test_bad_since_and_query_are_refused_before_any_engine_call(fleet, monkeypatch, capsys):
    rc, out = call({"name": "a", "since": "tomorrow"}, fleet, monkeypatch, capsys)
    assert rc == 1 and "ISO 8601" in out["msg"]
    rc, out = call({"name": "a", "query": "[?"}, fleet, monkeypatch, capsys)
    assert rc == 1 and "JMESPath" in out["msg"]
    assert fleet.commands == []


def test_worker_errors_are_reported_per_workspace(monkeypatch, capsys):
    class Broken(FleetEngine):
        def run(self, args, timeout=None, check=True, stdin=None, record=True, max_output=None):
            return Result(0, "<html>oops</html>\n500", "", 0.01)
    rc, out = call({"name": "a"}, Broken({"a": []}), monkeypatch, capsys)
    assert rc == 0 and "HTTP 500" in out["workspaces"][0]["error"]


def test_a_slow_worker_is_bounded(monkeypatch, capsys):
    class Slow(FleetEngine):
        def run(self, args, timeout=None, check=True, stdin=None, record=True, max_output=None):
            max_time = float(args[args.index("--max-time") + 1])
            time.sleep(max_time)
            return Result(28, "\n000", "", max_time)
    t0 = time.monotonic()
    rc, out = call({"names": ["a", "b"], "request_timeout": 0.5}, Slow({"a": [], "b": []}), monkeypatch, capsys)
    assert time.monotonic() - t0 < 1.5
    assert all("timed out" in w["error"] for w in out["workspaces"])


# ------------------------------------------------------------------------------------ paging (issue 19, defect 4)
def many(n, ws, base=1767225600000):
    return [dict(CLAUDE if i % 3 else CODEX, id="%s-%03d" % (ws, i), lastActivity=base + (i // 2) * 1000)
            for i in range(n)]


@pytest.mark.parametrize("paging", [True, False])
@pytest.mark.parametrize("names", [["a"], ["a", "b"]])
def test_pages_cover_every_session_once_newest_first(paging, names, monkeypatch, capsys):
    engine = FleetEngine({"a": many(23, "a"), "b": many(11, "b")}, paging=paging)
    everything = call({"names": names, "limit": 1000}, engine, monkeypatch, capsys)[1]
    assert everything["total"] == len(everything["sessions"]) == (23 if names == ["a"] else 34)
    assert not everything["truncated"]
    seen, offset = [], 0
    while True:
        rc, out = call({"names": names, "limit": 5, "offset": offset}, engine, monkeypatch, capsys)
        assert rc == 0 and len(out["sessions"]) <= 5 and out["total"] == everything["total"]
        assert sum(w["count"] for w in out["workspaces"]) == len(out["sessions"])
        seen += [(s["workspace"], s["id"]) for s in out["sessions"]]
        offset += len(out["sessions"])
        if not out["truncated"]:
            break
    assert seen == [(s["workspace"], s["id"]) for s in everything["sessions"]]


def test_default_page_is_100_and_filters_reach_the_worker(monkeypatch, capsys):
    engine = FleetEngine({"a": many(250, "a")}, paging=True)
    rc, out = call({"name": "a"}, engine, monkeypatch, capsys)
    assert rc == 0 and len(out["sessions"]) == 100 and out["total"] == 250 and out["truncated"] and out["limit"] == 100
    asked = engine.calls[-1][-1]
    assert "limit=100" in asked and "offset=0" in asked
    rc, out = call({"name": "a", "agent_type": ["claude-code"], "since": 1767225600000 + 50000}, engine, monkeypatch,
                   capsys)
    asked = engine.calls[-1][-1]
    assert "agentType=claude" in asked and "since=1767225650000" in asked
    assert out["total"] == len([s for s in many(250, "a") if s["agentType"] == "claude"
                                and s["lastActivity"] >= 1767225650000])


def test_a_cut_answer_fails_the_workspace_with_advice(monkeypatch, capsys):
    class Huge(FleetEngine):
        def run(self, args, timeout=None, check=True, stdin=None, record=True, max_output=None):
            return Result(-9, "x" * 10, "", 0.1, truncated=True)
    rc, out = call({"name": "a"}, Huge({"a": []}), monkeypatch, capsys)
    assert rc == 0 and out["sessions"] == [] and "larger than" in out["workspaces"][0]["error"]
    assert "smaller limit" in out["workspaces"][0]["error"]
