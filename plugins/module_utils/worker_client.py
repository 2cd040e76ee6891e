# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The worker's HTTP API (reference §4) as the collection uses it, over any transport.

Owns: resolving many workspaces to targets from ONE batched inspect, the bounded health wait (with
the optional restart on a version mismatch), the session calls, and the agent-side normalisation of
sessions (reference §4 "Agent-side consumption"), all in one place so both modules agree.
Many workspaces are handled in parallel threads, each under the same monotonic deadline.
"""

from __future__ import annotations

import datetime
import os
import threading
import time
import traceback
from dataclasses import dataclass

from ansible_collections.perry.fleet.plugins.module_utils.engine import EngineError
from ansible_collections.perry.fleet.plugins.module_utils.transport import (
    EXEC_GRACE, MIN_REQUEST_TIME, WORKSPACE_USER, RouteTable, Target, Transport, select_target, session_path)
from ansible_collections.perry.fleet.plugins.module_utils.waiter import wait_until
from ansible_collections.perry.fleet.plugins.module_utils.workspace_spec import container_name, validate_name

try:
    import jmespath
    HAS_JMESPATH = True
    JMESPATH_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - depends on the controller's Python
    jmespath = None
    HAS_JMESPATH = False
    JMESPATH_IMPORT_ERROR = traceback.format_exc()

WORKER_LOG = "/tmp/perry-worker.log"
WORKER_BIN = "/usr/local/bin/perry"
WORKSPACE_HOME = "/home/workspace"
# Matches "/usr/local/bin/perry worker serve" and the dist form ".../perry/cli.js worker serve";
# the bracket keeps a shell's own command line from matching.
WORKER_PROCESS_RE = "[p]erry.* worker serve"
START_SCRIPT = ("if [ -x {bin} ]; then P={bin}; else P=perry; fi; cd {home} 2>/dev/null || cd /; "
                "HOME={home} nohup \"$P\" worker serve >{log} 2>&1 </dev/null &").format(
                    bin=WORKER_BIN, home=WORKSPACE_HOME, log=WORKER_LOG)
SUPERVISOR_GRACE = 3.0    # seconds an image supervisor gets to bring a killed worker back
LOG_LINES = 20
LOG_TIMEOUT = 0.6         # a log tail read after the deadline: keep it short
FINISH_RESERVE = 0.3      # seconds of the deadline kept for collecting results and the log tail
MAX_PARALLEL = 32

# Agent-side consumption (reference §4): the agent calls Claude sessions "claude-code".
AGENT_TYPE_ALIASES = {"claude": "claude-code"}
AGENT_TYPES = ("claude-code", "claude", "opencode", "pi", "codex")


class WorkerError(Exception):
    pass


# ------------------------------------------------------------------------------------ resolving
def workspace_names(name, names) -> list:
    """Validated, de-duplicated workspace names from the ``name``/``names`` options."""
    out = ([name] if name else []) + list(names or [])
    if not out:
        raise WorkerError("give the workspace in name or names")
    return list(dict.fromkeys(validate_name(n) for n in out))


def resolve_targets(engine, names: list, transport: str, runtime: str, timeout: float | None = None,
                    routes: RouteTable | None = None, host_check=None) -> list:
    """One inspect for all workspaces, then a transport per workspace (Target)."""
    containers = [container_name(n) for n in names]
    found = engine.inspect(containers, timeout=timeout)
    routes = routes or RouteTable()
    cache = {}

    def shared_check():  # engine locality is the same for every workspace: decide it once
        if "v" not in cache:
            from ansible_collections.perry.fleet.plugins.module_utils.transport import engine_shares_host_network
            cache["v"] = (host_check or (lambda: engine_shares_host_network(engine)))()
        return cache["v"]

    return [select_target(n, c, found.get(c), transport, runtime, engine, routes=routes, host_check=shared_check)
            for n, c in zip(names, containers)]


def run_parallel(func, items: list, bound: float) -> list:
    """func(item) for every item in daemon threads; a thread still running after ``bound`` seconds
    is abandoned and reported as a TimeoutError (every call below is bounded already: this is the
    backstop that guarantees the module returns)."""
    results = [None] * len(items)
    done = [False] * len(items)
    gate = threading.Semaphore(MAX_PARALLEL)

    def one(i, item):
        with gate:
            try:
                results[i] = func(item)
            except Exception as exc:  # reported per workspace, never a crash of the whole task
                results[i] = exc
            done[i] = True

    threads = [threading.Thread(target=one, args=(i, it), daemon=True) for i, it in enumerate(items)]
    for t in threads:
        t.start()
    end = time.monotonic() + bound
    for t in threads:
        t.join(max(end - time.monotonic(), 0))
    for i, finished in enumerate(done):
        if not finished:
            results[i] = TimeoutError("no answer within %.1f s" % bound)
    return results


# ------------------------------------------------------------------------------------- health
@dataclass
class HealthOptions:
    timeout: float = 15.0
    interval: float = 0.2
    request_timeout: float = 2.0
    expected_version: str | None = None
    restart_on_mismatch: bool = False
    check_mode: bool = False
    supervisor_grace: float = SUPERVISOR_GRACE


class HealthCheck:
    """Waits until one workspace's worker answers 2xx on /health (and has the expected version)."""

    def __init__(self, engine, transport: Transport, target: Target, opts: HealthOptions, deadline: float,
                 clock=time.monotonic, sleep=time.sleep):
        self.engine = engine
        self.transport = transport
        self.target = target
        self.opts = opts
        self.deadline = deadline
        self.clock = clock
        self.sleep = sleep
        self.requests = 0
        self.last = None
        self.last_doc = {}
        self.errors = []
        self.actions = []
        self.restarted_at = None
        self.started_by_us = False
        self.would_restart = False
        self.mismatch_after_restart = False
        self.seen_down = False
        self.prefetch = None

    def base(self) -> dict:
        t = self.target
        return {"name": t.workspace, "container": t.container, "healthy": False, "status": 0, "version": None,
                "sessionCount": None, "transport": t.transport, "fallback": t.fallback, "attempts": 0,
                "elapsed": 0.0, "error": None, "version_ok": None, "restarted": False, "would_restart": False,
                "actions": [], "log_tail": None}

    def run(self) -> dict:
        out = self.base()
        t = self.target
        if not t.exists:
            out["error"] = "container %s does not exist: create it with perry.fleet.perry_workspace" % t.container
            return out
        if not t.running:
            out["error"] = "container %s is not running (state: %s): start it first" % (t.container, t.state)
            return out
        start = self.clock()
        waited = wait_until(self.probe, max(self.deadline - start, 0.0), interval=self.opts.interval,
                            clock=self.clock, sleep=self.sleep)
        resp = self.last
        doc = self.last_doc
        out.update(attempts=self.requests, elapsed=round(waited.elapsed, 3), actions=self.actions,
                   restarted=self.restarted_at is not None, would_restart=self.would_restart)
        if resp is not None:
            out.update(status=resp.status, transport=resp.transport)
            if resp.ok:
                out.update(healthy=True, version=doc.get("version"), sessionCount=doc.get("sessionCount"))
        if self.opts.expected_version is not None and out["healthy"]:
            out["version_ok"] = out["version"] == self.opts.expected_version
        out["error"] = self.error(out, waited)
        return out

    def error(self, out: dict, waited) -> str | None:
        expected = self.opts.expected_version
        if out["healthy"] and out["version_ok"] is False:
            if self.would_restart:
                return None  # check mode: reported as would_restart, nothing else to say
            if self.mismatch_after_restart:
                return ("worker version %s still differs from expected %s after a restart: the installed worker is "
                        "that version; sync the wanted one (perry.fleet.perry_workspace worker_source)"
                        % (out["version"], expected))
            return ("worker version %s differs from expected %s (waited %.1f s; set restart_on_mismatch to restart "
                    "it, or sync the wanted worker)" % (out["version"], expected, waited.elapsed))
        if out["healthy"]:
            return None
        last = self.errors[-1] if self.errors else "no request could be made before the deadline"
        return last

    def probe(self, remaining: float):
        if remaining < MIN_REQUEST_TIME and self.requests:
            return False, None
        t = max(min(self.opts.request_timeout, remaining), MIN_REQUEST_TIME)
        if self.errors and t >= remaining and self.prefetch is None and "engine stalled" not in self.errors[-1]:
            self._prefetch_log()  # likely the last attempt: read the log meanwhile, not after the deadline
        self.requests += 1
        resp = self.transport.request(self.target, "/health", timeout=t,
                                      hard_timeout=min(t + EXEC_GRACE, remaining + FINISH_RESERVE))
        self.last = resp
        if not resp.ok:
            if self.restarted_at is not None:
                self.seen_down = True
            self.errors.append(resp.error or "HTTP %d from /health: %s" % (resp.status, resp.body[-200:]))
            self._maybe_start()
            return False, resp
        doc = resp.json()
        self.last_doc = doc if isinstance(doc, dict) else {}
        expected = self.opts.expected_version
        version = self.last_doc.get("version")
        if expected is None or version == expected:
            return True, resp
        self.errors.append("version %s, expected %s" % (version, expected))
        if not self.opts.restart_on_mismatch:
            return False, resp  # keep polling: the worker may be being replaced right now
        if self.restarted_at is not None:
            if self.seen_down or self.clock() - self.restarted_at > self.opts.supervisor_grace:
                self.mismatch_after_restart = True
                return True, resp  # a fresh worker with the same wrong version: waiting cannot help
            return False, resp     # the old worker may still be shutting down
        if self.opts.check_mode:
            self.would_restart = True
            self.actions.append("would restart the worker (version %s, expected %s)" % (version, expected))
            return True, resp
        self._restart(version)
        return False, resp

    def _prefetch_log(self) -> None:
        box = {}
        thread = threading.Thread(target=lambda: box.update(tail=read_log_tail(self.engine, self.target.container)),
                                  daemon=True)
        self.prefetch = (thread, box)
        thread.start()

    def prefetched_log(self, wait: float = 0.05):
        """(started, tail): the log tail read during the last attempt (waiting up to ``wait`` for it)."""
        if self.prefetch is None:
            return False, None
        thread, box = self.prefetch
        thread.join(max(wait, 0.0))
        return True, box.get("tail")

    def _exec(self, args, timeout) -> tuple:
        try:
            res = self.engine.run(["exec", "-u", WORKSPACE_USER, self.target.container] + list(args),
                                  timeout=timeout, check=False)
            return res.rc, res.stderr
        except EngineError as exc:
            return None, exc.msg

    def _budget(self, most: float) -> float:
        return max(min(most, self.deadline - self.clock() + 0.5), MIN_REQUEST_TIME)

    def _restart(self, version) -> None:
        rc, err = self._exec(["pkill", "-f", WORKER_PROCESS_RE], self._budget(5))
        self.restarted_at = self.clock()
        self.actions.append("killed worker %s (pkill rc=%s)" % (version, rc))
        if rc not in (0, 1):
            self.errors.append("pkill of the worker failed (rc=%s): %s" % (rc, (err or "").strip()[-200:]))

    def _maybe_start(self) -> None:
        """After a restart, start the worker ourselves when no supervisor brought it back."""
        if self.restarted_at is None or self.started_by_us:
            return
        if self.clock() - self.restarted_at < self.opts.supervisor_grace:
            return
        self.started_by_us = True
        rc, _err = self._exec(["pgrep", "-f", WORKER_PROCESS_RE], self._budget(3))
        if rc == 0:
            self.actions.append("worker process exists (starting up); not starting another")
            return
        rc, err = self._exec(["sh", "-c", START_SCRIPT], self._budget(5))
        self.actions.append("started worker with nohup (rc=%s): no supervisor restarted it within %.0f s"
                            % (rc, self.opts.supervisor_grace))
        if rc != 0:
            self.errors.append("starting the worker failed (rc=%s): %s" % (rc, (err or "").strip()[-200:]))


def read_log_tail(engine, container: str, lines: int = LOG_LINES, timeout: float = LOG_TIMEOUT) -> str | None:
    """The last lines of the worker's log, or None when they cannot be read quickly."""
    try:
        res = engine.run(["exec", container, "tail", "-n", str(lines), WORKER_LOG], timeout=timeout, check=False)
    except EngineError:
        return None
    if res.rc != 0:
        return None
    return res.stdout.rstrip("\n")


def check_many(engine, targets: list, opts: HealthOptions, start: float, transport: Transport | None = None,
               clock=time.monotonic) -> list:
    """Health of every target in parallel, all under one deadline ``start + opts.timeout``; then the
    worker log tail of the unhealthy ones (skipped when the engine itself stalled)."""
    transport = transport or Transport(engine)
    # Probes stop a little before the deadline so that results and log tails fit inside it.
    deadline = start + opts.timeout - min(FINISH_RESERVE, opts.timeout / 10)
    checks = [HealthCheck(engine, transport, t, opts, deadline, clock=clock) for t in targets]
    results = run_parallel(lambda c: c.run(), checks, bound=max(deadline - clock(), 0) + EXEC_GRACE + 0.5)
    out = []
    for check, res in zip(checks, results):
        if isinstance(res, BaseException):
            base = check.base()
            base["error"] = "health check failed: %s" % res
            res = base
        out.append(res)
    stalled = any("engine stalled" in (r.get("error") or "") for r in out)
    failed = [r for r in out if r["error"] and not r["healthy"] and not stalled
              and not r["error"].startswith("container ")]
    by_container = {c.target.container: c for c in checks}
    missing = []
    for r in failed:
        started, tail = by_container[r["container"]].prefetched_log(wait=deadline + FINISH_RESERVE - clock())
        if started:
            r["log_tail"] = tail  # None when the read did not finish in time: no second exec after the deadline
        else:
            missing.append(r)
    if missing:
        tails = run_parallel(lambda r: read_log_tail(engine, r["container"]), missing, bound=LOG_TIMEOUT + 0.3)
        for r, tail in zip(missing, tails):
            r["log_tail"] = tail if isinstance(tail, str) else None
    return out


def process_start(clock=time.monotonic) -> float:
    """The monotonic time this process started (Linux), so a deadline also covers interpreter start-up and
    module imports; falls back to now."""
    now = clock()
    try:
        with open("/proc/self/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime, ticks since boot
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - started
    except (OSError, ValueError, IndexError, AttributeError):
        return now
    return now - min(max(age, 0.0), 5.0)


def failure_message(results: list, opts: HealthOptions) -> str:
    parts = []
    for r in results:
        if not r["error"]:
            continue
        tried = "%d request(s) via %s in %.1f s" % (r["attempts"], r["transport"], r["elapsed"])
        if r["fallback"]:
            tried += " (%s)" % r["fallback"]
        text = "%s: %s [%s; timeout %s s, request_timeout %s s]" % (
            r["container"], r["error"], tried, opts.timeout, opts.request_timeout)
        if r.get("log_tail"):
            text += "; last lines of %s:\n%s" % (WORKER_LOG, r["log_tail"])
        parts.append(text)
    return "worker not healthy in %d of %d workspace(s): %s" % (len(parts), len(results), "\n".join(parts))


# ------------------------------------------------------------------------------------ sessions
def normalize_agent_type(value):
    return AGENT_TYPE_ALIASES.get(value, value)


def normalize_session(raw: dict, workspace: str) -> dict:
    """The ONE place a worker session becomes what this collection returns (agent-side consumption,
    reference §4): ``agentType`` claude -> claude-code (the worker's value kept as ``workerAgentType``),
    ``mtime`` = lastActivity / 1000 (seconds; lastActivity stays in ms), ``projectPath`` = directory,
    ``name`` = title, and ``workspace`` = the workspace it came from."""
    session = dict(raw)
    worker_type = raw.get("agentType")
    session["workerAgentType"] = worker_type
    session["agentType"] = normalize_agent_type(worker_type)
    last = raw.get("lastActivity")
    if isinstance(last, (int, float)) and not isinstance(last, bool):
        session["lastActivity"] = int(last)
        session["mtime"] = last / 1000.0
    else:
        session["lastActivity"] = None
        session["mtime"] = None
    session["projectPath"] = raw.get("directory")
    session["name"] = raw.get("title")
    session["workspace"] = workspace
    return session


def parse_since(value) -> int | None:
    """Milliseconds since the epoch from an int/float (ms), a digit string (ms) or an ISO 8601 date or
    date-time (naive means UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise WorkerError("since must be milliseconds since the epoch or an ISO 8601 date, not a boolean")
    if isinstance(value, (int, float)):
        return int(value)
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        if len(text) == 10:
            dt = datetime.datetime.combine(datetime.date.fromisoformat(text), datetime.time())
        else:
            dt = datetime.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise WorkerError("since %r is neither milliseconds since the epoch nor an ISO 8601 date "
                          "(e.g. 2026-01-31 or 2026-01-31T12:00:00Z)" % value) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return int(dt.timestamp() * 1000)


def validate_session_id(value):
    """One id as the worker lists it (ses_..., a UUID, a file stem); '..' would climb the worker's URL path."""
    if value is None:
        return None
    text = str(value)
    if not text.strip() or text.strip(".") == "" or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise WorkerError("session_id %r is not a session id: give one id as perry_sessions lists it (not empty, "
                          "not '.' or '..', no control characters)" % value)
    return text


def filter_sessions(sessions: list, agent_types=None, since_ms: int | None = None) -> list:
    wanted = {normalize_agent_type(a) for a in agent_types or []}
    out = []
    for s in sessions:
        if wanted and s.get("agentType") not in wanted:
            continue
        if since_ms is not None and (s.get("lastActivity") is None or s["lastActivity"] < since_ms):
            continue
        out.append(s)
    return out


def sort_sessions(sessions: list) -> list:
    return sorted(sessions, key=lambda s: (-(s.get("lastActivity") or 0), s.get("workspace") or "", s.get("id") or ""))


def compile_query(expr: str):
    if not HAS_JMESPATH:
        raise WorkerError("the query option needs the Python library jmespath on the managed host "
                          "(pip install jmespath)")
    try:
        return jmespath.compile(expr)
    except jmespath.exceptions.JMESPathError as exc:
        raise WorkerError("query %r is not a valid JMESPath expression: %s" % (expr, exc)) from None


def apply_query(compiled, sessions: list):
    return compiled.search(sessions)


class SessionClient:
    """The session routes of one workspace's worker, each one bounded request."""

    def __init__(self, transport: Transport, target: Target, timeout: float):
        self.transport = transport
        self.target = target
        self.timeout = timeout

    def _call(self, path: str, method: str = "GET", allow=()):
        resp = self.transport.request(self.target, path, method=method, timeout=self.timeout)
        if resp.status == 0:
            raise WorkerError("worker unreachable via %s: %s" % (resp.transport, resp.error))
        doc = resp.json()
        if resp.ok or resp.status in allow:
            if not isinstance(doc, dict):
                raise WorkerError("%s %s: HTTP %d with a body that is not a JSON object: %s"
                                  % (method, path, resp.status, resp.body[:200]))
            return resp.status, doc
        detail = doc.get("error") if isinstance(doc, dict) else resp.body[:200]
        raise WorkerError("%s %s: HTTP %d: %s" % (method, path, resp.status, detail))

    def list(self) -> list:
        doc = self._call("/sessions")[1]
        sessions = doc.get("sessions")
        if not isinstance(sessions, list):
            raise WorkerError("GET /sessions: no sessions array in the answer")
        return [normalize_session(s, self.target.workspace) for s in sessions if isinstance(s, dict)]

    def get(self, session_id: str):
        status, doc = self._call(session_path(session_id), allow=(404,))
        if status == 404 or not isinstance(doc.get("session"), dict):
            return None
        return normalize_session(doc["session"], self.target.workspace)

    def messages(self, session_id: str, limit: int, offset: int) -> dict:
        doc = self._call(session_path(session_id, "/messages?limit=%d&offset=%d" % (limit, offset)))[1]
        return {"id": doc.get("id", session_id), "messages": doc.get("messages") or [],
                "total": doc.get("total", 0), "limit": limit, "offset": offset}

    def delete(self, session_id: str) -> bool:
        """True when deleted, False when the worker no longer knew the session (404)."""
        status = self._call(session_path(session_id), method="DELETE", allow=(404,))[0]
        return status != 404
