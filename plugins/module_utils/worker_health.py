# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bounded wait until workers answer ``GET /health`` (with the expected version), for many workspaces at once.

All workspaces are checked in parallel under one monotonic deadline counted from the module's process start; a
worker of the wrong version may be restarted (worker_process.py) and, when no supervisor brings it back, started.

Healthy means: the whole /health body arrived within the request's deadline (at most HEALTH_MAX_BYTES) and is the
worker's JSON (``status: ok``, a string ``version``, an integer ``sessionCount``): anything else answering 200 on
7392 is not a worker. The worker's ``auth`` field is returned; a worker that enforces no token (``none``, or a
worker too old to say) is healthy but comes with a warning saying what to do.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

from ansible_collections.perry.fleet.plugins.module_utils import layout
from ansible_collections.perry.fleet.plugins.module_utils import worker_process
from ansible_collections.perry.fleet.plugins.module_utils.errors import EngineError
from ansible_collections.perry.fleet.plugins.module_utils.parallel import run_parallel
from ansible_collections.perry.fleet.plugins.module_utils.transport import EXEC_GRACE, MIN_REQUEST_TIME, Target, Transport
from ansible_collections.perry.fleet.plugins.module_utils.waiter import wait_until

SUPERVISOR_GRACE = 3.0    # seconds an image supervisor gets to bring a killed worker back
LOG_TIMEOUT = 0.6         # a log tail read after the deadline: keep it short
FINISH_RESERVE = 0.3      # seconds of the deadline kept for collecting results and the log tail
HEALTH_MAX_BYTES = 64 * 1024  # a /health answer is about 200 bytes


def finish_reserve(timeout: float) -> float:
    """The part of a ``timeout`` kept for collecting results: at most a tenth of it, so a short budget stays short
    (a last exec is killed at the budget, not 0.3 s after it)."""
    return min(FINISH_RESERVE, timeout / 10)


def engine_status(engine) -> dict | None:
    """The worker's report of its workspace's container engine (its own field: an engine that is down leaves the
    worker healthy); None from a worker too old to say."""
    if not isinstance(engine, dict):
        return None
    return {"configured": bool(engine.get("configured")), "reachable": engine.get("reachable"),
            "url": engine.get("url"), "error": engine.get("error")}


def health_doc_problem(doc) -> str | None:
    """Why a 2xx /health body is not the worker's answer; None when it is."""
    if not isinstance(doc, dict):
        return "the body is not a JSON object"
    if doc.get("status") != "ok":
        return "status is %r, not 'ok'" % (doc.get("status"),)
    if not isinstance(doc.get("version"), str) or not doc["version"]:
        return "no version string"
    count = doc.get("sessionCount")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        return "no sessionCount integer"
    return None


def auth_warning(name: str, auth) -> str | None:
    """What to do when a healthy worker enforces no token (issue 19: other workspaces could read its sessions)."""
    if auth == "token":
        return None
    if auth == "none":
        return ("workspace %s: its worker requires no token (PERRY_WORKER_AUTH=none in its env): every workspace on "
                "the same bridge can read and delete its sessions; remove that setting and recreate it" % name)
    return ("workspace %s: its worker enforces no token (created before perry.fleet gave workers tokens): every "
            "workspace on the same bridge can read and delete its sessions; recreate it (perry.fleet.perry_workspace "
            "state=absent, which keeps its volumes, then state=present) with the current image" % name)


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
        self.engine_stalled = False
        self.prefetch = None

    def base(self) -> dict:
        t = self.target
        return {"name": t.workspace, "container": t.container, "healthy": False, "status": 0, "version": None,
                "sessionCount": None, "transport": t.transport, "fallback": t.fallback, "attempts": 0,
                "elapsed": 0.0, "error": None, "version_ok": None, "restarted": False, "would_restart": False,
                "actions": [], "log_tail": None, "auth": None}

    def run(self) -> dict:
        out = self.base()
        t = self.target
        if not t.running:
            out["error"] = t.not_running_error()
            return out
        start = self.clock()
        waited = wait_until(self.probe, max(self.deadline - start, 0.0), interval=self.opts.interval,
                            clock=self.clock, sleep=self.sleep)
        resp = self.last
        doc = self.last_doc
        out.update(attempts=self.requests, elapsed=round(waited.elapsed, 3), actions=self.actions,
                   restarted=self.restarted_at is not None, would_restart=self.would_restart)
        out["fallback"] = t.fallback  # an automatic published choice may have fallen back to exec meanwhile
        if resp is not None:
            out.update(status=resp.status, transport=resp.transport)
            if resp.ok and not health_doc_problem(doc):
                out.update(healthy=True, version=doc.get("version"), sessionCount=doc.get("sessionCount"),
                           auth=doc.get("auth"), engine=engine_status(doc.get("engine")))
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
        if self.errors and t >= remaining and self.prefetch is None and not self.engine_stalled:
            self._prefetch_log()  # likely the last attempt: read the log meanwhile, not after the deadline
        self.requests += 1
        hard = min(t + EXEC_GRACE, remaining + finish_reserve(self.opts.timeout))
        resp = self.transport.request(self.target, "/health", timeout=t, hard_timeout=hard,
                                      max_bytes=HEALTH_MAX_BYTES)
        self.last = resp
        if resp.engine_stalled and hard < t + EXEC_GRACE and self.errors:
            # The overall deadline, not the engine, cut this last exec short: it says nothing about the worker
            # or the engine, so the previous attempt's error stays the one reported (and the log is still read).
            return False, resp
        self.engine_stalled = resp.engine_stalled
        if not resp.ok:
            if self.restarted_at is not None:
                self.seen_down = True
            self.errors.append(resp.error or "HTTP %d from /health: %s" % (resp.status, resp.body[-200:]))
            self._maybe_start()
            return False, resp
        doc = resp.json()
        problem = health_doc_problem(doc)
        if problem:
            self.last_doc = {}
            self.errors.append("HTTP %d from /health but not the worker's answer (%s): is something else listening on "
                               "7392? body: %s" % (resp.status, problem, resp.body[:200]))
            return False, resp
        self.last_doc = doc
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
        thread = threading.Thread(
            target=lambda: box.update(tail=worker_process.log_tail(self.engine, self.target.container, LOG_TIMEOUT)),
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

    def _exec(self, step, timeout) -> tuple:
        """(rc, stderr) of one worker_process step; rc None when the engine call itself failed."""
        try:
            res = step(self.engine, self.target.container, timeout)
            return res.rc, res.stderr
        except EngineError as exc:
            return None, exc.msg

    def _budget(self, most: float) -> float:
        return max(min(most, self.deadline - self.clock() + 0.5), MIN_REQUEST_TIME)

    def _restart(self, version) -> None:
        rc, err = self._exec(worker_process.stop, self._budget(5))
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
        rc, _err = self._exec(worker_process.find, self._budget(3))
        if rc == 0:
            self.actions.append("worker process exists (starting up); not starting another")
            return
        rc, err = self._exec(worker_process.start, self._budget(5))
        self.actions.append("started worker with nohup (rc=%s): no supervisor restarted it within %.0f s"
                            % (rc, self.opts.supervisor_grace))
        if rc != 0:
            self.errors.append("starting the worker failed (rc=%s): %s" % (rc, (err or "").strip()[-200:]))


def check_many(engine, targets: list, opts: HealthOptions, start: float, transport: Transport | None = None,
               clock=time.monotonic) -> list:
    """Health of every target in parallel, all under one deadline ``start + opts.timeout``; then the
    worker log tail of the unhealthy ones (skipped when the engine itself stalled)."""
    transport = transport or Transport(engine)
    # Probes stop a little before the deadline so that results and log tails fit inside it.
    deadline = start + opts.timeout - finish_reserve(opts.timeout)
    checks = [HealthCheck(engine, transport, t, opts, deadline, clock=clock) for t in targets]
    results = run_parallel(lambda c: c.run(), checks, bound=max(deadline - clock(), 0) + EXEC_GRACE + 0.5)
    out = []
    for check, res in zip(checks, results):
        if isinstance(res, BaseException):
            base = check.base()
            base["error"] = "health check failed: %s" % res
            res = base
        out.append(res)
    stalled = any(c.engine_stalled for c in checks)
    failed = [r for r, c in zip(out, checks) if r["error"] and not r["healthy"] and not stalled and c.target.running]
    by_container = {c.target.container: c for c in checks}
    missing = []
    for r in failed:
        started, tail = by_container[r["container"]].prefetched_log(wait=deadline + FINISH_RESERVE - clock())
        if started:
            r["log_tail"] = tail  # None when the read did not finish in time: no second exec after the deadline
        else:
            missing.append(r)
    if missing:
        tails = run_parallel(lambda r: worker_process.log_tail(engine, r["container"], LOG_TIMEOUT), missing,
                             bound=LOG_TIMEOUT + 0.3)
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
            text += "; last lines of %s:\n%s" % (layout.WORKER_LOG, r["log_tail"])
        parts.append(text)
    return "worker not healthy in %d of %d workspace(s): %s" % (len(parts), len(results), "\n".join(parts))
