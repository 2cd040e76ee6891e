from __future__ import annotations

import json
import stat
import time

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.perry.fleet.plugins.module_utils import worker_health as wc
from ansible_collections.perry.fleet.plugins.module_utils import transport, worker_process
from ansible_collections.perry.fleet.plugins.module_utils.errors import SpecError
from ansible_collections.perry.fleet.plugins.module_utils.module_args import workspace_names
from ansible_collections.perry.fleet.plugins.module_utils.parallel import run_parallel
from ansible_collections.perry.fleet.plugins.module_utils.engine import EngineTimeout, Result
from ansible_collections.perry.fleet.plugins.module_utils.transport import Response, Target
from ansible_collections.perry.fleet.plugins.modules import perry_worker_health

HEALTHY = '{"status":"ok","version":"0.1.0","sessionCount":3}'


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


class ScriptedTransport:
    """Answers /health from a script of (status, body|None, error, seconds) entries; the last one repeats."""

    def __init__(self, clock, script):
        self.clock = clock
        self.script = list(script)
        self.requests = []

    def request(self, target, path, method="GET", timeout=2.0, hard_timeout=None, max_bytes=None):
        self.requests.append((path, timeout, hard_timeout))
        status, body, error, secs = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        secs = min(secs, timeout)
        self.clock.sleep(secs)
        return Response(status, body or "", target.transport, secs, error)


class ExecRecorder:
    """An engine that only records execs (pkill/pgrep/sh/tail) and answers from a table."""

    def __init__(self, answers=None):
        self.answers = answers or {}
        self.calls = []
        self.commands = []

    def run(self, args, timeout=None, check=True, stdin=None, record=True, max_output=None):
        self.calls.append(list(args))
        for key, res in self.answers.items():
            if key in args:
                if callable(res):
                    return res(args)
                return res
        return Result(0, "", "", 0.0)


def tgt(**kw):
    return Target("alice", "workspace-alice", kw.pop("transport", "exec"), **kw)


def run_check(script, opts=None, engine=None, target=None):
    clock = Clock()
    opts = opts or wc.HealthOptions(timeout=3, interval=0.2, request_timeout=2)
    transport = ScriptedTransport(clock, script)
    check = wc.HealthCheck(engine or ExecRecorder(), transport, target or tgt(), opts, clock() + opts.timeout,
                           clock=clock, sleep=clock.sleep)
    return check.run(), transport, clock, check


# ------------------------------------------------------------------------------------ health waits
def test_healthy_at_once():
    out, transport, clock, _unused1 = run_check([(200, HEALTHY, None, 0.05)])
    assert out["healthy"] and out["status"] == 200 and out["version"] == "0.1.0" and out["sessionCount"] == 3
    assert out["attempts"] == 1 and out["error"] is None and out["transport"] == "exec"


def test_becomes_healthy_after_refusals():
    out, transport, _unused1, _unused2 = run_check([(0, None, "connection refused", 0.01)] * 3 + [(200, HEALTHY, None, 0.01)])
    assert out["healthy"] and out["attempts"] == 4


def test_frozen_worker_fails_at_the_deadline_with_the_last_error():
    out, transport, clock, _unused1 = run_check([(0, None, "timed out: frozen", 2.0)])
    assert not out["healthy"] and out["error"] == "timed out: frozen"
    assert clock.now - 100.0 <= 3.0 + 1e-6
    # every request is bounded by what is left, and the host-side kill never goes past deadline + 0.5 s
    for _unused1, timeout, hard in transport.requests:
        assert timeout <= 2 and hard <= 2 + 1.0
    assert transport.requests[-1][1] <= 1.0 + 1e-6 and transport.requests[-1][2] <= transport.requests[-1][1] + 0.5 + 1e-6


def test_request_timeout_never_exceeds_time_left():
    opts = wc.HealthOptions(timeout=1.0, interval=0.2, request_timeout=5)
    out, transport, clock, _unused1 = run_check([(0, None, "refused", 0.0)], opts)
    assert all(t <= 1.0 for _unused1, t, _unused2 in transport.requests)
    assert clock.now - 100.0 <= 1.0 + 1e-6


def test_backoff_between_attempts():
    opts = wc.HealthOptions(timeout=5, interval=0.2, request_timeout=1)
    out, transport, clock, _unused1 = run_check([(0, None, "refused", 0.0)], opts)
    # 0.2, 0.3, 0.45, 0.675, 1.0, 1.0, ... -> far fewer than 5 / 0.2 attempts
    assert 6 <= out["attempts"] <= 10


def test_missing_and_stopped_containers_fail_fast_without_requests():
    out, transport, _unused1, _unused2 = run_check([(200, HEALTHY, None, 0)], target=tgt(state="missing"))
    assert "does not exist" in out["error"] and transport.requests == []
    out, transport, _unused1, _unused2 = run_check([(200, HEALTHY, None, 0)], target=tgt(state="stopped", state_detail="exited"))
    assert "not running (state: exited)" in out["error"] and transport.requests == []
    out, transport, _unused1, _unused2 = run_check([(200, HEALTHY, None, 0)], target=tgt(state="paused", state_detail="paused"))
    assert "is paused: unpause it" in out["error"] and transport.requests == []


@pytest.mark.parametrize("body", ["ok", "", "[]", '{"status":"ok"}', '{"status":"up","version":"1","sessionCount":0}',
                                  '{"status":"ok","version":"","sessionCount":0}',
                                  '{"status":"ok","version":"1","sessionCount":true}', '{"status":"ok","version":"1'])
def test_anything_answering_200_is_not_healthy_unless_it_is_the_workers_json(body):
    # issue 19 defect 5: "200 on 7392" is not enough; the body must be the worker's /health JSON
    opts = wc.HealthOptions(timeout=1, interval=0.2, request_timeout=0.5)
    out, _unused1, _unused2, _unused3 = run_check([(200, body, None, 0.0)], opts)
    assert not out["healthy"] and "not the worker's answer" in out["error"]


def test_auth_is_reported_and_a_worker_without_token_is_warned_about():
    out = run_check([(200, HEALTHY[:-1] + ',"auth":"token"}', None, 0.0)])[0]
    assert out["healthy"] and out["auth"] == "token" and wc.auth_warning("a", out["auth"]) is None
    out = run_check([(200, HEALTHY, None, 0.0)])[0]
    assert out["healthy"] and out["auth"] is None and "recreate it" in wc.auth_warning("a", None)
    assert "PERRY_WORKER_AUTH=none" in wc.auth_warning("a", "none")


# ------------------------------------------------------------------------------------ versions
def test_expected_version_matches():
    opts = wc.HealthOptions(timeout=3, expected_version="0.1.0")
    out, _unused1, _unused2, _unused3 = run_check([(200, HEALTHY, None, 0.01)], opts)
    assert out["healthy"] and out["version_ok"] is True and out["error"] is None


def test_mismatch_without_restart_waits_then_reports():
    opts = wc.HealthOptions(timeout=2, expected_version="9.9.9")
    out, transport, clock, _unused1 = run_check([(200, HEALTHY, None, 0.01)], opts)
    assert out["healthy"] and out["version_ok"] is False and "differs from expected 9.9.9" in out["error"]
    assert clock.now - 100.0 >= 2.0 - 1e-6 and len(transport.requests) > 1


def test_mismatch_is_fixed_by_a_supervisor_restart():
    opts = wc.HealthOptions(timeout=10, expected_version="0.2.0", restart_on_mismatch=True)
    new = '{"status":"ok","version":"0.2.0","sessionCount":0}'
    engine = ExecRecorder()
    script = [(200, HEALTHY, None, 0.01), (0, None, "refused", 0.01), (200, new, None, 0.01)]
    out = run_check(script, opts, engine)[0]
    assert out["healthy"] and out["version_ok"] and out["restarted"] and out["error"] is None
    pkill = [c for c in engine.calls if "pkill" in c]
    assert pkill == [["exec", "-u", "workspace", "workspace-alice", "pkill", "-f", worker_process.PATTERN]]
    assert not any("sh" in c for c in engine.calls)  # the supervisor did it


def test_mismatch_restart_starts_the_worker_when_no_supervisor_does():
    opts = wc.HealthOptions(timeout=15, expected_version="0.2.0", restart_on_mismatch=True)
    new = '{"status":"ok","version":"0.2.0","sessionCount":0}'
    engine = ExecRecorder({"pgrep": Result(1, "", "", 0.0)})
    script = [(200, HEALTHY, None, 0.01)] + [(0, None, "refused", 0.01)] * 8 + [(200, new, None, 0.01)]
    out, _unused1, _unused2, check = run_check(script, opts, engine)
    assert out["healthy"] and out["version_ok"] and out["restarted"]
    starts = [c for c in engine.calls if c[4:6] == ["sh", "-c"]]
    assert len(starts) == 1 and "nohup" in starts[0][6] and "/tmp/perry-worker.log" in starts[0][6]
    assert starts[0][:4] == ["exec", "-u", "workspace", "workspace-alice"]
    assert any("started worker" in a for a in out["actions"])


def test_restart_does_not_start_a_second_worker_when_one_is_coming_up():
    opts = wc.HealthOptions(timeout=15, expected_version="0.2.0", restart_on_mismatch=True)
    engine = ExecRecorder({"pgrep": Result(0, "123\n", "", 0.0)})
    script = [(200, HEALTHY, None, 0.01)] + [(0, None, "refused", 0.01)] * 8 + [(200, '{"status":"ok","version":"0.2.0","sessionCount":0}', None, 0)]
    out, _unused1, _unused2, _unused3 = run_check(script, opts, engine)
    assert out["healthy"] and not any(c[4:6] == ["sh", "-c"] for c in engine.calls)


def test_same_wrong_version_after_restart_fails_at_once():
    opts = wc.HealthOptions(timeout=15, expected_version="0.2.0", restart_on_mismatch=True)
    script = [(200, HEALTHY, None, 0.01), (0, None, "refused", 0.01), (200, HEALTHY, None, 0.01)]
    out, _unused1, clock, _unused2 = run_check(script, opts)
    assert out["version_ok"] is False and "still differs" in out["error"] and "sync" in out["error"]
    assert clock.now - 100.0 < 5


def test_old_worker_still_answering_right_after_pkill_is_not_final():
    opts = wc.HealthOptions(timeout=15, expected_version="0.2.0", restart_on_mismatch=True)
    script = [(200, HEALTHY, None, 0.01), (200, HEALTHY, None, 0.01), (0, None, "refused", 0.01),
              (200, '{"status":"ok","version":"0.2.0","sessionCount":0}', None, 0.01)]
    out, _unused1, _unused2, _unused3 = run_check(script, opts)
    assert out["healthy"] and out["version_ok"] and out["error"] is None


def test_check_mode_reports_would_restart_and_changes_nothing():
    opts = wc.HealthOptions(timeout=5, expected_version="0.2.0", restart_on_mismatch=True, check_mode=True)
    engine = ExecRecorder()
    out, transport, _unused1, _unused2 = run_check([(200, HEALTHY, None, 0.01)], opts, engine)
    assert out["would_restart"] and not out["restarted"] and out["error"] is None and out["version_ok"] is False
    assert engine.calls == [] and len(transport.requests) == 1


# ------------------------------------------------------------------------------------ many at once
class ManyEngine:
    """Transport-level fake: a 'frozen' container takes the whole request timeout."""

    def __init__(self, frozen=()):
        self.frozen = set(frozen)
        self.commands = []
        self.calls = []

    def run(self, args, timeout=None, check=True, stdin=None, record=True, max_output=None):
        self.calls.append(list(args))
        container = args[3] if args[1] == "-u" else args[1]
        if args[-2:] == ["-n", "20"] or worker_process.LOG_TAIL_SCRIPT in args:
            return Result(0, "line 1\nboom: EADDRINUSE\n", "", 0.01)
        if container in self.frozen:
            max_time = float(args[args.index("--max-time") + 1])
            time.sleep(max_time)
            return Result(28, "\n000", "", max_time)
        return Result(0, HEALTHY + "\n200", "", 0.01)


def test_check_many_runs_in_parallel_and_tails_the_log_of_failures():
    engine = ManyEngine(frozen={"workspace-b"})
    targets = [Target(n, "workspace-" + n, "exec") for n in ("a", "b", "c")]
    opts = wc.HealthOptions(timeout=1.0, interval=0.1, request_timeout=0.4)
    t0 = time.monotonic()
    out = wc.check_many(engine, targets, opts, t0)
    took = time.monotonic() - t0
    assert took < 2.0
    assert [r["healthy"] for r in out] == [True, False, True]
    assert out[1]["log_tail"].endswith("EADDRINUSE") and out[0]["log_tail"] is None
    assert "timed out" in out[1]["error"]
    msg = wc.failure_message(out, opts)
    assert "1 of 3" in msg and "workspace-b" in msg and "via exec" in msg and "EADDRINUSE" in msg


def test_check_many_skips_the_log_when_the_engine_stalled():
    class Stalled:
        commands = []
        calls = []

        def run(self, args, timeout=None, check=True, stdin=None, record=True, max_output=None):
            self.calls.append(args)
            raise EngineTimeout("engine command timed out", cmd="docker exec")
    engine = Stalled()
    out = wc.check_many(engine, [Target("a", "workspace-a", "exec")], wc.HealthOptions(timeout=0.3, interval=0.1), time.monotonic())
    assert "engine stalled" in out[0]["error"] and out[0]["log_tail"] is None
    assert not any(worker_process.LOG_TAIL_SCRIPT in c for c in engine.calls)


def test_run_parallel_abandons_a_stuck_item():
    t0 = time.monotonic()
    res = run_parallel(lambda x: time.sleep(x) or x, [0.0, 5.0], bound=0.3)
    assert time.monotonic() - t0 < 1.0
    assert res[0] == 0.0 and isinstance(res[1], TimeoutError)


def test_run_parallel_reports_exceptions_per_item():
    def f(x):
        if x:
            raise RuntimeError("bad %s" % x)
        return "ok"
    res = run_parallel(f, [0, 1], bound=1)
    assert res[0] == "ok" and isinstance(res[1], RuntimeError)


def test_workspace_names():
    assert workspace_names({"name": "a"}) == ["a"]
    assert workspace_names({"names": ["b", "a", "b"]}) == ["b", "a"]
    with pytest.raises(SpecError):
        workspace_names({"names": []})
    with pytest.raises(ValueError, match="invalid"):
        workspace_names({"name": "Bad_Name"})


# ------------------------------------------------------------------------------------ the module
class ModuleEngine(ManyEngine):
    kind = "podman"
    url = None

    def __init__(self, containers, frozen=(), stall_inspect=False):
        super().__init__(frozen)
        self.containers = containers
        self.stall_inspect = stall_inspect

    def inspect(self, names, timeout=None):
        self.commands.append({"cmd": "inspect " + " ".join(names)})
        if self.stall_inspect:
            raise EngineTimeout("engine command timed out after %.1f s: podman inspect" % timeout, cmd="podman inspect",
                                elapsed=timeout)
        return {n: self.containers[n] for n in names if n in self.containers}


def running(name):
    return {"Name": "/" + name, "State": {"Running": True, "Status": "running"}, "Config": {"Labels": {}},
            "NetworkSettings": {"Networks": {}, "Ports": {}}}


def call_module(args, engine, monkeypatch, capsys, check_mode=False):
    monkeypatch.setattr(perry_worker_health, "make_engine", lambda p, secrets=(): engine)
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args):
        with pytest.raises(SystemExit) as info:
            perry_worker_health.main()
    out = json.loads(capsys.readouterr().out)
    return info.value.code, out


def test_module_all_healthy(monkeypatch, capsys):
    engine = ModuleEngine({"workspace-a": running("workspace-a"), "workspace-b": running("workspace-b")})
    rc, out = call_module({"names": ["a", "b"], "runtime": "podman"}, engine, monkeypatch, capsys)
    assert rc == 0 and out["all_healthy"] and not out["changed"] and out["unhealthy"] == []
    assert [w["transport"] for w in out["workspaces"]] == ["exec", "exec"]
    assert sum(1 for c in engine.commands if c["cmd"].startswith("inspect")) == 1


def test_module_frozen_worker_fails_within_timeout_plus_one(monkeypatch, capsys):
    engine = ModuleEngine({"workspace-a": running("workspace-a")}, frozen={"workspace-a"})
    t0 = time.monotonic()
    rc, out = call_module({"name": "a", "runtime": "podman", "timeout": 1.5, "request_timeout": 1}, engine,
                          monkeypatch, capsys)
    assert time.monotonic() - t0 < 2.5
    assert rc == 1 and out["failed"] and "timed out" in out["msg"] and "EADDRINUSE" in out["msg"]
    assert out["unhealthy"] == ["a"]


def test_module_fail_on_unhealthy_false_returns_results(monkeypatch, capsys):
    engine = ModuleEngine({})
    rc, out = call_module({"name": "a", "runtime": "podman", "fail_on_unhealthy": False}, engine, monkeypatch, capsys)
    assert rc == 0 and not out["all_healthy"] and "does not exist" in out["workspaces"][0]["error"]


def test_module_stalled_inspect_fails_at_the_deadline(monkeypatch, capsys):
    engine = ModuleEngine({}, stall_inspect=True)
    rc, out = call_module({"name": "a", "runtime": "podman", "timeout": 3}, engine, monkeypatch, capsys)
    assert rc == 1 and "cannot inspect" in out["msg"] and "timed out after 3.0 s" in out["msg"]


def test_module_check_mode_would_restart(monkeypatch, capsys):
    engine = ModuleEngine({"workspace-a": running("workspace-a")})
    rc, out = call_module({"name": "a", "runtime": "podman", "expected_version": "0.2.0", "restart_on_mismatch": True},
                          engine, monkeypatch, capsys, check_mode=True)
    assert rc == 0 and out["changed"] and out["workspaces"][0]["would_restart"]
    assert not any("pkill" in c for c in engine.calls)


def test_module_rejects_bad_options(monkeypatch, capsys):
    rc, out = call_module({"name": "a", "timeout": 0}, ModuleEngine({}), monkeypatch, capsys)
    assert rc == 1 and "timeout must be greater than 0" in out["msg"]
    rc, out = call_module({"name": "a", "names": ["b"]}, ModuleEngine({}), monkeypatch, capsys)
    assert rc == 1 and "mutually exclusive" in out["msg"]


def test_module_with_a_real_stalled_engine_cli(tmp_path, monkeypatch, capsys):
    cli = tmp_path / "podman"
    cli.write_text("#!/bin/sh\nexec sleep 600\n")
    cli.chmod(cli.stat().st_mode | stat.S_IEXEC)
    with patch_module_args({"name": "a", "runtime": "podman", "engine_cli": str(cli), "timeout": 1}):
        t0 = time.monotonic()
        with pytest.raises(SystemExit):
            perry_worker_health.main()
    assert time.monotonic() - t0 < 2.0
    out = json.loads(capsys.readouterr().out)
    assert out["failed"] and "timed out" in out["msg"]


def test_process_start_is_in_the_recent_past():
    now = time.monotonic()
    started = wc.process_start()
    assert now - 5.0 <= started <= time.monotonic()


def test_log_is_read_during_the_last_attempt_not_after_it():
    engine = ManyEngine(frozen={"workspace-b"})
    opts = wc.HealthOptions(timeout=1.0, interval=0.1, request_timeout=0.6)
    out = wc.check_many(engine, [Target("b", "workspace-b", "exec")], opts, time.monotonic())
    tails = [c for c in engine.calls if worker_process.LOG_TAIL_SCRIPT in c]
    assert len(tails) == 1 and out[0]["log_tail"].endswith("EADDRINUSE")
    # the tail ran before the final curl finished: it is not the last engine call
    assert engine.calls[-1][6] == transport.CURL_WRAPPER


def test_a_last_exec_cut_by_the_deadline_does_not_mask_the_real_error():
    # issue 19: the squeezed last attempt used to replace "not the worker's answer" by "engine stalled" and
    # suppress the log tail
    class Squeezed(ScriptedTransport):
        def request(self, target, path, method="GET", timeout=2.0, hard_timeout=None, max_bytes=None):
            if self.requests:
                self.requests.append((path, timeout, hard_timeout))
                self.clock.sleep(hard_timeout)
                return Response(0, "", "exec", hard_timeout, "the engine did not finish the exec", engine_stalled=True)
            return super().request(target, path, method, timeout, hard_timeout, max_bytes)
    clock = Clock()
    opts = wc.HealthOptions(timeout=3, interval=0.2, request_timeout=2)
    transport = Squeezed(clock, [(200, "hello", None, 1.5)])
    check = wc.HealthCheck(ExecRecorder(), transport, tgt(), opts, clock() + opts.timeout, clock=clock,
                           sleep=clock.sleep)
    out = check.run()
    assert len(transport.requests) >= 2 and not out["healthy"]
    assert "not the worker's answer" in out["error"] and not check.engine_stalled
