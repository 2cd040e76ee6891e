# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the host reaches a workspace's worker (port 7392): one request, always bounded, never retried.

Three transports (the worker API and Perry's exec transport: docs/perry-compat.md):

* ``exec``: ``<cli> exec -u workspace <c> curl -s --noproxy '*' --connect-timeout C --max-time T
  -w '\\n%{http_code}' [-X M] http://localhost:7392<path>``; the status code is the last stdout line,
  the body the lines before it. The host additionally kills the exec after T + grace, so a stalled
  engine cannot hang the caller either (the seed's bug: no --max-time and no exec timeout).
* ``http``: a direct request to the container's IP, only when routes.py says that IP is on a bridge this
  host is directly attached to and the engine runs rootful in this host's network namespace. Otherwise no
  packet is sent there and the exec transport is used instead, with the reason recorded.
* ``published``: a direct request to ``127.0.0.1:<host port>`` where the workspace publishes 7392.

Selection happens once per task from one batched ``inspect`` (resolve_targets); ``auto`` follows the runtime
profile. Direct requests never use proxies and are bounded by a socket timeout plus a watchdog that shuts the
socket down at the deadline, so a server that trickles bytes cannot stretch the bound either.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import quote

from ansible_collections.perry.fleet.plugins.module_utils import engine as eng
from ansible_collections.perry.fleet.plugins.module_utils import layout
from ansible_collections.perry.fleet.plugins.module_utils.errors import EngineError, EngineTimeout, SpecError
from ansible_collections.perry.fleet.plugins.module_utils.routes import RouteTable, container_ips, engine_shares_host_network
from ansible_collections.perry.fleet.plugins.module_utils.runtime_profile import get_profile

TRANSPORTS = ("auto", "exec", "http", "published")
WORKER_PORT = layout.WORKER_PORT
EXEC_GRACE = 1.0          # seconds the host waits beyond curl's --max-time before killing the exec
CONNECT_TIMEOUT = 1.0     # curl --connect-timeout (capped by the request timeout)
MIN_REQUEST_TIME = 0.05   # below this there is no point starting a request
LOOPBACK = "127.0.0.1"

# curl exit codes worth explaining (curl(1) "EXIT CODES")
CURL_ERRORS = {
    6: "could not resolve host",
    7: "connection refused: nothing listens on port 7392 (worker not running?)",
    28: "timed out: the worker accepted the connection but did not answer in time (frozen or busy?)",
    52: "empty reply from the worker",
    56: "connection reset while receiving from the worker",
}
# `exec` exit codes of docker/podman themselves (the command never ran)
EXEC_ERRORS = {
    126: "the command in the container cannot be invoked",
    127: "curl is not installed in the container (the exec transport needs it)",
}


@dataclass
class Response:
    """What one request gave. ``status`` is 0 when no HTTP answer arrived; ``error`` says why."""

    status: int
    body: str
    transport: str
    elapsed: float
    error: str | None = None
    engine_stalled: bool = False   # the engine itself did not finish the exec: asking it again is pointless

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self):
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None


@dataclass
class Target:
    """Where one workspace's worker is and how it is reached (decided once per task)."""

    workspace: str
    container: str
    transport: str = "exec"        # exec | http | published
    host: str | None = None        # http: container IP; published: 127.0.0.1
    port: int = WORKER_PORT
    fallback: str | None = None    # why the requested transport was not used
    state: str = "running"         # engine.container_state: missing | running | paused | stopped
    state_detail: str = "running"  # the engine's own word, for messages

    @property
    def exists(self) -> bool:
        return self.state != "missing"

    @property
    def running(self) -> bool:
        return self.state == "running"

    def not_running_error(self) -> str | None:
        """Why nothing can be asked of this worker, with what to do; None when the container runs."""
        if self.state == "missing":
            return "container %s does not exist: create it with perry.fleet.perry_workspace" % self.container
        if self.state == "paused":
            return ("container %s is paused: unpause it (perry.fleet.perry_workspace state=started)" % self.container)
        if self.state != "running":
            return "container %s is not running (state: %s): start it first" % (self.container, self.state_detail)
        return None


# ---------------------------------------------------------------------------------------------- curl
def curl_argv(path: str, method: str = "GET", max_time: float = 2.0) -> list:
    """The curl command run inside the container (no shell: argv goes straight to exec)."""
    max_time = max(max_time, MIN_REQUEST_TIME)
    argv = ["curl", "-s", "--noproxy", "*",
            "--connect-timeout", _secs(min(CONNECT_TIMEOUT, max_time)),
            "--max-time", _secs(max_time),
            "-w", "\n%{http_code}"]
    if method != "GET":
        argv += ["-X", method]
    argv.append("http://localhost:%d%s" % (WORKER_PORT, path))
    return argv


def _secs(value: float) -> str:
    return ("%.3f" % value).rstrip("0").rstrip(".")


def parse_curl_output(stdout: str) -> tuple:
    """(status, body) from ``curl -w '\\n%{http_code}'`` output, as Perry parses it: trim, the last
    line is the status code (0 when missing or not a number), the lines before it the body."""
    lines = (stdout or "").strip().split("\n")
    last = lines.pop().strip()
    status = int(last) if last.isdigit() else 0
    return status, "\n".join(lines)


def explain_curl(rc: int | None, stderr: str, max_time: float) -> str:
    stderr = (stderr or "").strip()
    if rc in CURL_ERRORS:
        msg = "curl exit %d: %s" % (rc, CURL_ERRORS[rc])
        if rc == 28:
            msg += " (--max-time %s)" % _secs(max_time)
        return msg
    if rc in EXEC_ERRORS:
        return "exec exit %d: %s%s" % (rc, EXEC_ERRORS[rc], (": " + stderr[-300:]) if stderr else "")
    return "exec exit %s%s" % (rc, (": " + stderr[-300:]) if stderr else " (no HTTP status)")


# ------------------------------------------------------------------------------------ direct HTTP
def http_request(host: str, port: int, path: str, method: str = "GET", timeout: float = 2.0,
                 transport: str = "http") -> Response:
    """One HTTP request with a hard overall bound; proxies are never used (http.client has none)."""
    start = time.monotonic()
    timeout = max(timeout, MIN_REQUEST_TIME)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    expired = threading.Event()

    def watchdog():
        expired.set()
        sock = conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    timer = threading.Timer(timeout, watchdog)
    timer.daemon = True
    timer.start()
    try:
        conn.request(method, path, headers={"Accept": "application/json", "Connection": "close"})
        resp = conn.getresponse()
        body = resp.read().decode("utf-8", "replace")
        status = resp.status
        if expired.is_set():
            raise socket.timeout("deadline")
        return Response(status, body, transport, time.monotonic() - start)
    except (OSError, http.client.HTTPException) as exc:
        elapsed = time.monotonic() - start
        if expired.is_set() or isinstance(exc, socket.timeout):
            why = ("timed out after %s s: the worker accepted the connection but did not answer (frozen or busy?)"
                   % _secs(timeout))
        elif isinstance(exc, ConnectionRefusedError):
            why = "connection refused: nothing listens on %s:%d (worker not running?)" % (host, port)
        else:
            why = "%s: %s" % (type(exc).__name__, exc)
        return Response(0, "", transport, elapsed, error=why)
    finally:
        timer.cancel()
        conn.close()


# ------------------------------------------------------------------------------------- selection
def published_port(container: dict) -> tuple:
    """(port, reason): the host port publishing 7392/tcp on loopback or all addresses."""
    key = "%d/tcp" % WORKER_PORT
    others = []
    for b in eng.port_bindings(container):
        if b.container_port != key:
            continue
        if b.host_ip in ("", "0.0.0.0", "::", LOOPBACK, "localhost"):
            return b.host_port, "published on %s:%d" % (b.host_ip or "*", b.host_port)
        others.append("%s:%d" % (b.host_ip, b.host_port))
    if others:
        return None, "7392/tcp is published only on %s, not on 127.0.0.1" % ", ".join(others)
    # Some docker-compatible APIs (the docker CLI against podman) leave the bindings of a fresh container out;
    # the port perry.fleet published is also in its spec label.
    try:
        port = int(((json.loads(eng.labels(container).get(layout.LABEL_SPEC) or "{}").get("ports") or {})
                    .get("worker")) or 0)
    except (ValueError, TypeError, AttributeError):
        port = 0
    if port:
        return port, "worker port %d from the %s label" % (port, layout.LABEL_SPEC)
    return None, "the container does not publish 7392/tcp"


def select_target(workspace: str, container_name: str, container: dict | None, requested: str, runtime: str,
                  engine, routes: RouteTable | None = None, host_check=None) -> Target:
    """Decide the transport for one workspace from its inspect data (no I/O except route lookups)."""
    if requested not in TRANSPORTS:
        raise SpecError("transport %r is unknown: use one of %s" % (requested, ", ".join(TRANSPORTS)))
    wanted = get_profile(runtime).default_transport if requested == "auto" else requested
    target = Target(workspace, container_name, "exec", state=eng.container_state(container),
                    state_detail=eng.state_detail(container))
    if not target.running:
        target.transport = wanted
        return target
    if wanted == "exec":
        return target
    if wanted == "published":
        port, reason = published_port(container)
        if port is None:
            target.fallback = "published unavailable (%s); using exec" % reason
            return target
        target.transport, target.host, target.port = "published", LOOPBACK, port
        return target
    # http: only to an IP on a bridge of this very host
    ok, reason = (host_check or (lambda: engine_shares_host_network(engine)))()
    if not ok:
        target.fallback = "http unavailable (%s); using exec" % reason
        return target
    routes = routes or RouteTable()
    ips = container_ips(container)
    reasons = []
    for ip in ips:
        ok, why = routes.check(ip)
        if ok:
            target.transport, target.host, target.port = "http", ip, WORKER_PORT
            return target
        reasons.append(why)
    target.fallback = "http unavailable (%s); using exec" % ("; ".join(reasons) or "the container has no IP address")
    return target


# --------------------------------------------------------------------------------------- request
class Transport:
    """Sends one request to a target's worker; every path through here is bounded by ``timeout``
    (plus EXEC_GRACE for the host-side kill of an exec)."""

    def __init__(self, engine, http=http_request):
        self.engine = engine
        self.http = http

    def request(self, target: Target, path: str, method: str = "GET", timeout: float = 2.0,
                hard_timeout: float | None = None) -> Response:
        """``timeout`` bounds the HTTP exchange; ``hard_timeout`` (default timeout + EXEC_GRACE) is when
        the host kills an exec whose engine does not return."""
        if target.transport == "exec":
            hard = timeout + EXEC_GRACE if hard_timeout is None else max(hard_timeout, timeout)
            return self._exec(target, path, method, timeout, hard)
        return self.http(target.host, target.port, path, method=method, timeout=timeout, transport=target.transport)

    def _exec(self, target: Target, path: str, method: str, timeout: float, hard: float) -> Response:
        start = time.monotonic()
        argv = ["exec", "-u", layout.USER, target.container] + curl_argv(path, method, timeout)
        try:
            res = self.engine.run(argv, timeout=hard, check=False)
        except EngineTimeout as exc:
            return Response(0, "", "exec", time.monotonic() - start, engine_stalled=True,
                            error="the engine did not finish the exec within %s s (engine stalled?): %s"
                            % (_secs(hard), exc.cmd))
        except EngineError as exc:
            return Response(0, "", "exec", time.monotonic() - start, error=exc.msg)
        status, body = parse_curl_output(res.stdout)
        error = None
        if status == 0:
            error = explain_curl(res.rc, res.stderr, timeout)
        return Response(status, body, "exec", res.elapsed, error=error)


def resolve_targets(engine, names: list, transport: str, runtime: str, timeout: float | None = None,
                    routes: RouteTable | None = None, host_check=None) -> list:
    """One inspect for all workspaces, then a Target per workspace (engine locality decided once)."""
    containers = [layout.container_name(n) for n in names]
    found = engine.inspect(containers, timeout=timeout)
    routes = routes or RouteTable()
    cache = {}

    def shared_check():
        if "v" not in cache:
            cache["v"] = (host_check or (lambda: engine_shares_host_network(engine)))()
        return cache["v"]

    return [select_target(n, c, found.get(c), transport, runtime, engine, routes=routes, host_check=shared_check)
            for n, c in zip(names, containers)]


def session_path(session_id: str, suffix: str = "") -> str:
    return "/sessions/%s%s" % (quote(session_id, safe=""), suffix)
