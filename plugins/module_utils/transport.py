# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the host reaches a workspace's worker (port 7392): one request, always bounded, never retried.

Three transports (reference §3, §5):

* ``exec``: ``<cli> exec -u workspace <c> curl -s --noproxy '*' --connect-timeout C --max-time T
  -w '\\n%{http_code}' [-X M] http://localhost:7392<path>``; the status code is the last stdout line,
  the body the lines before it. The host additionally kills the exec after T + grace, so a stalled
  engine cannot hang the caller either (the seed's bug: no --max-time and no exec timeout).
* ``http``: a direct request to the container's IP, only when that IP is on a bridge this host is
  directly attached to (a link route without gateway, checked with ``ip -j route get`` or
  /proc/net/route) and the engine runs rootful in this host's network namespace. Otherwise no packet is
  sent there and the exec transport is used instead, with the reason recorded.
* ``published``: a direct request to ``127.0.0.1:<host port>`` where the workspace publishes 7392.

Selection happens once per task from one batched ``inspect``; ``auto`` follows the runtime profile.
Direct requests never use proxies and are bounded by a socket timeout plus a watchdog that shuts the
socket down at the deadline, so a server that trickles bytes cannot stretch the bound either.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import quote

from ansible_collections.perry.fleet.plugins.module_utils.engine import EngineError, EngineTimeout, effective_url
from ansible_collections.perry.fleet.plugins.module_utils.runtime_profile import get_profile
from ansible_collections.perry.fleet.plugins.module_utils.workspace_spec import LABEL_SPEC, WORKER_PORT

TRANSPORTS = ("auto", "exec", "http", "published")
WORKSPACE_USER = "workspace"
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


class TransportError(Exception):
    pass


@dataclass
class Response:
    """What one request gave. ``status`` is 0 when no HTTP answer arrived; ``error`` says why."""

    status: int
    body: str
    transport: str
    elapsed: float
    error: str | None = None

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
    requested: str = "auto"
    host: str | None = None        # http: container IP; published: 127.0.0.1
    port: int = WORKER_PORT
    fallback: str | None = None    # why the requested transport was not used
    exists: bool = True
    running: bool = True
    state: str = "running"
    notes: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"transport": self.transport, "requested": self.requested, "host": self.host,
                "port": self.port if self.transport != "exec" else WORKER_PORT, "fallback": self.fallback}


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


# --------------------------------------------------------------------- directly connected networks
@dataclass(frozen=True)
class Route:
    network: ipaddress.IPv4Network
    dev: str
    gateway: str | None
    flags: int = 1


def parse_proc_route(text: str) -> list:
    """Routes from /proc/net/route (main table, IPv4; addresses are little-endian hex)."""
    routes = []
    for line in text.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 8:
            continue
        try:
            dest = _le_ip(cols[1])
            gateway = _le_ip(cols[2])
            flags = int(cols[3], 16)
            mask = _le_ip(cols[7])
            network = ipaddress.IPv4Network("%s/%s" % (dest, mask), strict=False)
        except ValueError:
            continue
        routes.append(Route(network, cols[0], None if gateway == "0.0.0.0" else gateway, flags))
    return routes


def _le_ip(hexval: str) -> str:
    return str(ipaddress.IPv4Address(int(hexval, 16).to_bytes(4, "little")))


RTF_UP, RTF_GATEWAY, RTF_REJECT = 0x1, 0x2, 0x200


def lookup_proc_route(ip: str, routes: list):
    """Longest-prefix match like the kernel's main table; None when nothing matches."""
    addr = ipaddress.IPv4Address(ip)
    best = None
    for route in routes:
        if not route.flags & RTF_UP or addr not in route.network:
            continue
        if best is None or route.network.prefixlen > best.network.prefixlen:
            best = route
    return best


def parse_ip_route_get(text: str) -> dict | None:
    """The first entry of ``ip -j route get IP`` (the route the kernel would really use)."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else None


class RouteTable:
    """Answers "is this IP on a bridge this host is directly attached to?" without sending anything.

    Uses ``ip -j route get`` (policy routing included) when ``ip`` exists, else /proc/net/route.
    ``sysfs`` is where interface kinds are read (tests point it elsewhere).
    """

    def __init__(self, ip_cmd: str | None = "auto", proc_route: str = "/proc/net/route",
                 sysfs: str = "/sys/class/net", runner=None):
        self.ip_cmd = shutil.which("ip") if ip_cmd == "auto" else ip_cmd
        self.proc_route = proc_route
        self.sysfs = sysfs
        self.runner = runner or _run_quiet
        self._proc_routes = None
        self._cache = {}

    def check(self, ip: str) -> tuple:
        """(ok, reason). ok only for an IPv4 address reached through a link route (no gateway) on a
        local bridge interface that is up."""
        if ip in self._cache:
            return self._cache[ip]
        self._cache[ip] = result = self._check(ip)
        return result

    def _check(self, ip: str) -> tuple:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False, "%r is not an IP address" % ip
        if addr.version != 4:
            return False, "%s is not IPv4 (only IPv4 bridge routes are checked)" % ip
        if addr.is_loopback or addr.is_unspecified or addr.is_multicast:
            return False, "%s is not a container address" % ip
        route = None
        if self.ip_cmd:
            out = self.runner([self.ip_cmd, "-j", "route", "get", ip])
            entry = parse_ip_route_get(out) if out is not None else None
            if entry is not None:
                if entry.get("type") not in (None, "unicast"):
                    return False, "%s is a %s route here, not a container on a bridge" % (ip, entry.get("type"))
                route = (entry.get("dev"), entry.get("gateway"))
        if route is None:
            if self._proc_routes is None:
                try:
                    with open(self.proc_route) as fh:
                        self._proc_routes = parse_proc_route(fh.read())
                except OSError:
                    self._proc_routes = []
            match = lookup_proc_route(ip, self._proc_routes)
            if match is None:
                return False, "no route to %s on this host" % ip
            if match.flags & RTF_REJECT:
                return False, "%s matches a reject route" % ip
            route = (match.dev, match.gateway)
        dev, gateway = route
        if gateway:
            return False, "%s is routed through gateway %s (dev %s), not directly connected" % (ip, gateway, dev)
        if not dev:
            return False, "no interface for %s" % ip
        if not os.path.isdir(os.path.join(self.sysfs, dev, "bridge")):
            return False, "%s is on %s, which is not a local bridge (only container bridges are used)" % (ip, dev)
        operstate = _read(os.path.join(self.sysfs, dev, "operstate"))
        if operstate == "down":
            return False, "bridge %s for %s is down" % (dev, ip)
        return True, "%s is directly connected on bridge %s" % (ip, dev)


def _read(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return ""


def _run_quiet(argv) -> str | None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=3, check=False,
                              env=dict(os.environ, LC_ALL="C"))
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def engine_shares_host_network(engine, environ=None, geteuid=os.geteuid, stat=os.stat) -> tuple:
    """(ok, reason): do this engine's container IPs live in this host's network namespace?

    A tcp:// or ssh:// engine is another machine or a nested engine (the podman-in-podman sidecar):
    its container IPs are not ours, even when the same subnet exists here. A socket (or CLI default)
    of a non-root user is a rootless engine whose bridges live in a private namespace.
    """
    url = effective_url(engine, environ)
    kind = getattr(engine, "kind", "docker")
    if url:
        if not url.startswith("unix://"):
            return False, "engine %s is remote or nested: its container IPs are not on this host" % url
        path = url[len("unix://"):]
        try:
            owner = stat(path).st_uid
        except OSError as exc:
            return False, "cannot stat engine socket %s (%s)" % (path, exc.strerror)
        if owner != 0:
            return False, "engine socket %s belongs to uid %d (rootless engine: private network namespace)" % (
                path, owner)
        return True, "rootful engine socket %s" % path
    if kind == "podman" and geteuid() != 0:
        return False, "rootless podman: container IPs live in the user's network namespace"
    return True, "rootful %s on this host" % kind


# ------------------------------------------------------------------------------------- selection
def container_ips(container: dict) -> list:
    nets = ((container.get("NetworkSettings") or {}).get("Networks") or {})
    ips = [n.get("IPAddress") for _name, n in sorted(nets.items()) if isinstance(n, dict) and n.get("IPAddress")]
    top = (container.get("NetworkSettings") or {}).get("IPAddress")
    if top and top not in ips:
        ips.append(top)
    return ips


def published_port(container: dict) -> tuple:
    """(port, reason): the host port publishing 7392/tcp on loopback or all addresses."""
    key = "%d/tcp" % WORKER_PORT
    sources = [((container.get("NetworkSettings") or {}).get("Ports") or {}).get(key),
               ((container.get("HostConfig") or {}).get("PortBindings") or {}).get(key)]
    others = []
    for bindings in sources:
        for b in bindings or []:
            host_ip = (b or {}).get("HostIp") or ""
            try:
                port = int((b or {}).get("HostPort") or 0)
            except ValueError:
                port = 0
            if not port:
                continue
            if host_ip in ("", "0.0.0.0", "::", LOOPBACK, "localhost"):
                return port, "published on %s:%d" % (host_ip or "*", port)
            others.append("%s:%d" % (host_ip, port))
    if others:
        return None, "7392/tcp is published only on %s, not on 127.0.0.1" % ", ".join(others)
    labels = (container.get("Config") or {}).get("Labels") or {}
    try:
        port = int(((json.loads(labels.get(LABEL_SPEC) or "{}").get("ports") or {}).get("worker")) or 0)
    except (ValueError, TypeError, AttributeError):
        port = 0
    if port:
        return port, "worker port %d from the %s label" % (port, LABEL_SPEC)
    return None, "the container does not publish 7392/tcp"


def container_state(container: dict | None) -> tuple:
    if container is None:
        return False, False, "missing"
    state = container.get("State") or {}
    if isinstance(state, str):  # some docker-compat outputs
        return True, state == "running", state
    running = bool(state.get("Running")) and not state.get("Paused")
    return True, running, state.get("Status") or ("running" if running else "stopped")


def select_target(workspace: str, container_name: str, container: dict | None, requested: str, runtime: str,
                  engine, routes: RouteTable | None = None, host_check=None) -> Target:
    """Decide the transport for one workspace from its inspect data (no I/O except route lookups)."""
    if requested not in TRANSPORTS:
        raise TransportError("transport %r is unknown: use one of %s" % (requested, ", ".join(TRANSPORTS)))
    wanted = get_profile(runtime).default_transport if requested == "auto" else requested
    exists, running, state = container_state(container)
    target = Target(workspace, container_name, "exec", requested, exists=exists, running=running, state=state)
    if not exists or not running:
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
            target.notes.append(why)
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
        argv = ["exec", "-u", WORKSPACE_USER, target.container] + curl_argv(path, method, timeout)
        try:
            res = self.engine.run(argv, timeout=hard, check=False)
        except EngineTimeout as exc:
            return Response(0, "", "exec", time.monotonic() - start,
                            error="the engine did not finish the exec within %s s (engine stalled?): %s"
                            % (_secs(hard), exc.cmd))
        except EngineError as exc:
            return Response(0, "", "exec", time.monotonic() - start, error=exc.msg)
        status, body = parse_curl_output(res.stdout)
        error = None
        if status == 0:
            error = explain_curl(res.rc, res.stderr, timeout)
        return Response(status, body, "exec", res.elapsed, error=error)


def session_path(session_id: str, suffix: str = "") -> str:
    return "/sessions/%s%s" % (quote(session_id, safe=""), suffix)
