# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the host reaches a workspace's worker (port 7392): one request, always bounded, never retried.

Three transports (the worker API and Perry's exec transport: docs/perry-compat.md):

* ``exec``: ``<cli> exec -u workspace <c> /bin/sh -c '...' sh /etc/perry/worker.auth curl -s --noproxy '*'
  --connect-timeout C --max-time T --max-filesize N -w '\\n%{http_code}' [-X M] http://localhost:7392<path>``;
  the wrapper adds ``-H @/etc/perry/worker.auth`` (the workspace's token, read inside the container, never on the
  host's argv) when that file is readable. The status code is the last stdout line, the body the lines before it,
  and only when curl exits 0: a worker that sends headers and then stalls makes curl exit 28, which is a failure
  however the status line reads. The host additionally kills the exec after T + grace and reads at most N bytes
  of its output (Engine.run max_output), so neither a stalled engine nor a huge answer can hang or swell the caller.
* ``http``: a direct request to the container's IP, only when routes.py says that IP is on a bridge this
  host is directly attached to and the engine runs rootful in this host's network namespace. Otherwise no
  packet is sent there and the exec transport is used instead, with the reason recorded.
* ``published``: a direct request to ``127.0.0.1:<host port>`` where the workspace publishes 7392, only when the
  engine is on this host (a unix socket or the CLI's default): a remote or nested engine's published ports are on
  its own loopback, so exec is used for it.

Selection happens once per task from one batched ``inspect`` (resolve_targets); ``auto`` follows the runtime
profile, and on a profile that publishes the worker port (podman) it takes ``published`` whenever the engine is
local and the port is published (0.9 ms instead of about 120 ms for an exec), exec otherwise. A 401 on that
automatic choice (a token the host did not derive) is retried once over exec, which sends the workspace's own
token file as before, and the target stays on exec with the 401 recorded as its ``fallback``.

Direct requests never use proxies and are bounded by a socket timeout plus a watchdog that shuts the
socket down at the deadline, so a server that trickles bytes cannot stretch the bound either; they send the
workspace's token (worker_auth.py) and read at most ``max_bytes`` of the body. An answer cut at the cap is a failure
that says so (``truncated``), never a partial success.
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
from ansible_collections.perry.fleet.plugins.module_utils.errors import EngineError, EngineTimeout, SpecError, WorkerError
from ansible_collections.perry.fleet.plugins.module_utils.worker_auth import AUTH_FILE, WorkerAuth, default_key_path
from ansible_collections.perry.fleet.plugins.module_utils.routes import RouteTable, container_ips, engine_shares_host_network
from ansible_collections.perry.fleet.plugins.module_utils.runtime_profile import get_profile

TRANSPORTS = ("auto", "exec", "http", "published")
WORKER_PORT = layout.WORKER_PORT
EXEC_GRACE = 1.0          # seconds the host waits beyond curl's --max-time before killing the exec
CONNECT_TIMEOUT = 1.0     # curl --connect-timeout (capped by the request timeout)
MIN_REQUEST_TIME = 0.05   # below this there is no point starting a request
LOOPBACK = "127.0.0.1"
MAX_BODY = 4 * 1024 * 1024   # bytes of one worker answer, any route (a page of sessions is far below this)
STATUS_LINE = 16             # the "\n%{http_code}" curl appends, with room to spare
# Adds the token header when the workspace has a token file ($1); the file's path is argv, its content never is.
CURL_WRAPPER = 'if [ -r "$1" ]; then f=$1; shift; exec curl -H "@$f" "$@"; fi; shift; exec curl "$@"'

# curl exit codes worth explaining (curl(1) "EXIT CODES")
CURL_ERRORS = {
    6: "could not resolve host",
    26: "curl could not read the token file %s" % AUTH_FILE,
    7: "connection refused: nothing listens on port 7392 (worker not running?)",
    28: "timed out: the worker accepted the connection but did not answer in time (frozen or busy?)",
    52: "empty reply from the worker",
    56: "connection reset while receiving from the worker",
    63: "the answer is larger than the cap (--max-filesize)",
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
    truncated: bool = False        # the answer passed the byte cap and was cut (status is then 0)

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
    auto: bool = False             # published chosen by "auto": a 401 there falls back to exec
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
def curl_argv(path: str, method: str = "GET", max_time: float = 2.0, max_bytes: int = MAX_BODY) -> list:
    """The command run inside the container: CURL_WRAPPER (adds the token header from the workspace's own file)
    around curl; every value is an argv element, no value reaches a shell."""
    max_time = max(max_time, MIN_REQUEST_TIME)
    argv = ["/bin/sh", "-c", CURL_WRAPPER, "sh", AUTH_FILE,
            "-s", "--noproxy", "*",
            "--connect-timeout", _secs(min(CONNECT_TIMEOUT, max_time)),
            "--max-time", _secs(max_time),
            "--max-filesize", str(max_bytes),
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


def explain_curl(rc: int | None, stderr: str, max_time: float, max_bytes: int = MAX_BODY) -> str:
    stderr = (stderr or "").strip()
    if rc in CURL_ERRORS:
        msg = "curl exit %d: %s" % (rc, CURL_ERRORS[rc])
        if rc == 28:
            msg += " (--max-time %s)" % _secs(max_time)
        if rc == 63:
            msg += " of %d bytes" % max_bytes
        return msg
    if rc in EXEC_ERRORS:
        return "exec exit %d: %s%s" % (rc, EXEC_ERRORS[rc], (": " + stderr[-300:]) if stderr else "")
    return "exec exit %s%s" % (rc, (": " + stderr[-300:]) if stderr else " (no HTTP status)")


# ------------------------------------------------------------------------------------ direct HTTP
def cut_message(max_bytes: int) -> str:
    return "the worker's answer is larger than %d bytes and was cut there (not used)" % max_bytes


def rejected_message(transport: str) -> str:
    """What a 401 means and what to do, per transport."""
    if transport == "exec":
        return ("HTTP 401: the worker rejected the token in its own %s (replaced while the worker ran?): restart the "
                "container (perry.fleet.perry_workspace state=stopped, then started)" % AUTH_FILE)
    return ("HTTP 401: the worker rejected this host's token for the workspace: it was created without one, by "
            "another user or host, or before the worker key of this user (%s) changed: recreate it "
            "(perry.fleet.perry_workspace state=absent, which keeps its volumes, then state=present), or use "
            "transport=exec" % default_key_path())


def http_request(host: str, port: int, path: str, method: str = "GET", timeout: float = 2.0,
                 transport: str = "http", headers: dict | None = None, max_bytes: int = MAX_BODY) -> Response:
    """One HTTP request with a hard overall bound and at most ``max_bytes`` of body read; proxies are never
    used (http.client has none)."""
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
        conn.request(method, path, headers=dict(headers or {}, Accept="application/json", Connection="close"))
        resp = conn.getresponse()
        raw = resp.read(max_bytes + 1)
        status = resp.status
        if expired.is_set():
            raise socket.timeout("deadline")
        if len(raw) > max_bytes:
            return Response(0, "", transport, time.monotonic() - start, error=cut_message(max_bytes), truncated=True)
        return Response(status, raw.decode("utf-8", "replace"), transport, time.monotonic() - start,
                        error=rejected_message(transport) if status == 401 else None)
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
    profile = get_profile(runtime)
    wanted = profile.default_transport if requested == "auto" else requested
    target = Target(workspace, container_name, "exec", state=eng.container_state(container),
                    state_detail=eng.state_detail(container))
    if requested == "auto" and profile.publish_worker_port and target.running and eng.is_local(engine):
        port, _reason = published_port(container)
        if port is not None:  # otherwise exec, as the profile says, with nothing to report
            target.transport, target.host, target.port, target.auto = "published", LOOPBACK, port, True
            return target
    if not target.running:
        target.transport = wanted
        return target
    if wanted == "exec":
        return target
    if wanted == "published":
        if not eng.is_local(engine):
            target.fallback = ("published unavailable (engine %s is remote or nested: its published ports are not on "
                               "this host's loopback); using exec" % eng.effective_url(engine))
            return target
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

    def __init__(self, engine, http=http_request, auth: WorkerAuth | None = None):
        self.engine = engine
        self.http = http
        self.auth = auth or WorkerAuth()

    def request(self, target: Target, path: str, method: str = "GET", timeout: float = 2.0,
                hard_timeout: float | None = None, max_bytes: int = MAX_BODY) -> Response:
        """``timeout`` bounds the HTTP exchange; ``hard_timeout`` (default timeout + EXEC_GRACE) is when
        the host kills an exec whose engine does not return; at most ``max_bytes`` of the answer are read."""
        if target.transport == "exec":
            hard = timeout + EXEC_GRACE if hard_timeout is None else max(hard_timeout, timeout)
            return self._exec(target, path, method, timeout, hard, max_bytes)
        try:
            headers = self.auth.header(target.workspace)
        except WorkerError as exc:
            if not target.auto:
                return Response(0, "", target.transport, 0.0, error=exc.msg)
            return self._fall_back(target, "the host's worker key is unusable (%s)" % exc.msg, path, method, timeout,
                                   hard_timeout, max_bytes, 0.0)
        resp = self.http(target.host, target.port, path, method=method, timeout=timeout, transport=target.transport,
                         headers=headers, max_bytes=max_bytes)
        if resp.status == 401 and target.auto:
            return self._fall_back(target, "127.0.0.1:%d answered 401 to this host's token" % target.port, path,
                                   method, timeout, hard_timeout, max_bytes, resp.elapsed)
        return resp

    def _fall_back(self, target: Target, why: str, path: str, method: str, timeout: float,
                   hard_timeout: float | None, max_bytes: int, spent: float) -> Response:
        """The automatic published choice did not work with this host's token: exec (the workspace's own token
        file) from now on for this target, as before that choice existed; the reason is kept in its fallback."""
        target.transport, target.host, target.port, target.auto = "exec", None, WORKER_PORT, False
        target.fallback = "published: %s; using exec" % why
        hard = timeout + EXEC_GRACE if hard_timeout is None else max(hard_timeout, timeout)
        resp = self._exec(target, path, method, timeout, hard, max_bytes)
        resp.elapsed += spent
        return resp

    def _exec(self, target: Target, path: str, method: str, timeout: float, hard: float,
              max_bytes: int = MAX_BODY) -> Response:
        start = time.monotonic()
        argv = ["exec", "-u", layout.USER, target.container] + curl_argv(path, method, timeout, max_bytes)
        try:
            res = self.engine.run(argv, timeout=hard, check=False, max_output=max_bytes + STATUS_LINE)
        except EngineTimeout as exc:
            return Response(0, "", "exec", time.monotonic() - start, engine_stalled=True,
                            error="the engine did not finish the exec within %s s (engine stalled?): %s"
                            % (_secs(hard), exc.cmd))
        except EngineError as exc:
            return Response(0, "", "exec", time.monotonic() - start, error=exc.msg)
        if getattr(res, "truncated", False):
            return Response(0, "", "exec", res.elapsed, error=cut_message(max_bytes), truncated=True)
        status, body = parse_curl_output(res.stdout)
        if res.rc != 0 or status == 0:
            # curl's exit code wins over the status line: 28 after "200" headers is a stalled body, not a success
            why = explain_curl(res.rc, res.stderr, timeout, max_bytes)
            if status:
                why += " (after HTTP %d headers: the body did not arrive whole)" % status
            return Response(0, "", "exec", res.elapsed, error=why, truncated=res.rc == 63)
        return Response(status, body, "exec", res.elapsed, error=rejected_message("exec") if status == 401 else None)


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
