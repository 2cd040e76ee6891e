from __future__ import annotations

import json
import socket
import stat
import threading
import time
from types import SimpleNamespace

import pytest

from ansible_collections.perry.fleet.plugins.module_utils import transport as tr
from ansible_collections.perry.fleet.plugins.module_utils.engine import Engine, EngineTimeout, Result
from ansible_collections.perry.fleet.plugins.module_utils import routes as rt
from ansible_collections.perry.fleet.plugins.module_utils.errors import SpecError
from ansible_collections.perry.fleet.plugins.module_utils.layout import LABEL_SPEC


# ------------------------------------------------------------------------------------ curl output
@pytest.mark.parametrize("stdout,status,body", [
    ('{"status":"ok","version":"0.1.0"}\n200', 200, '{"status":"ok","version":"0.1.0"}'),
    ('{"a":1}\n{"b":2}\n404', 404, '{"a":1}\n{"b":2}'),
    ("\n000", 0, ""),
    ("", 0, ""),
    ("garbage", 0, ""),
    ('{"x":1}\n200\n', 200, '{"x":1}'),
    ("  \n  204  \n", 204, ""),
])
def test_parse_curl_output(stdout, status, body):
    assert tr.parse_curl_output(stdout) == (status, body)


def test_curl_argv_is_bounded_and_never_proxied():
    argv = tr.curl_argv("/health", "GET", 2)
    assert argv[:5] == ["/bin/sh", "-c", tr.CURL_WRAPPER, "sh", "/etc/perry/worker.auth"]
    assert argv[5:9] == ["-s", "--noproxy", "*", "--connect-timeout"]
    assert argv[argv.index("--max-filesize") + 1] == str(tr.MAX_BODY)
    assert argv[argv.index("--max-time") + 1] == "2"
    assert argv[argv.index("--connect-timeout") + 1] == "1"
    assert argv[argv.index("-w") + 1] == "\n%{http_code}"
    assert "-X" not in argv and argv[-1] == "http://localhost:7392/health"


def test_curl_argv_method_and_sub_second_timeouts():
    argv = tr.curl_argv("/sessions/a%2Fb", "DELETE", 0.25)
    assert argv[argv.index("-X") + 1] == "DELETE"
    assert argv[argv.index("--max-time") + 1] == "0.25"
    assert argv[argv.index("--connect-timeout") + 1] == "0.25"  # never longer than max-time


@pytest.mark.parametrize("rc,needle", [(7, "connection refused"), (28, "--max-time 2"), (127, "curl is not installed"),
                                       (1, "exec exit 1")])
def test_curl_errors_are_explained(rc, needle):
    assert needle in tr.explain_curl(rc, "", 2)


def test_session_path_encodes_ids():
    assert tr.session_path("a/b c") == "/sessions/a%2Fb%20c"
    assert tr.session_path("x", "/messages?limit=1") == "/sessions/x/messages?limit=1"


# ------------------------------------------------------------------------------------ exec transport
class ScriptedEngine:
    kind = "docker"
    url = None

    def __init__(self, *results):
        self.results = list(results)
        self.calls = []
        self.commands = []

    def run(self, args, timeout=None, check=True, stdin=None, record=True, max_output=None):
        self.calls.append((list(args), timeout))
        self.max_output = max_output
        res = self.results.pop(0)
        if isinstance(res, Exception):
            raise res
        return res


def target(transport="exec", **kw):
    return tr.Target("alice", "workspace-alice", transport, host=kw.pop("host", None), port=kw.pop("port", 7392), **kw)


def test_exec_transport_parses_status_and_bounds_the_exec():
    eng = ScriptedEngine(Result(0, '{"status":"ok"}\n200', "", 0.05))
    resp = tr.Transport(eng).request(target(), "/health", timeout=2)
    assert resp.ok and resp.status == 200 and resp.json() == {"status": "ok"} and resp.transport == "exec"
    args, timeout = eng.calls[0]
    assert args[:4] == ["exec", "-u", "workspace", "workspace-alice"] and args[4:6] == ["/bin/sh", "-c"]
    assert timeout == 2 + tr.EXEC_GRACE
    assert eng.max_output == tr.MAX_BODY + tr.STATUS_LINE


def test_exec_transport_hard_timeout_is_honoured_but_never_below_the_request_timeout():
    eng = ScriptedEngine(Result(0, "\n200", "", 0.0), Result(0, "\n200", "", 0.0))
    tr.Transport(eng).request(target(), "/health", timeout=2, hard_timeout=2.3)
    tr.Transport(eng).request(target(), "/health", timeout=2, hard_timeout=1)
    assert [t for _unused1, t in eng.calls] == [2.3, 2]


def test_exec_transport_reports_a_stalled_engine():
    eng = ScriptedEngine(EngineTimeout("timed out", cmd="docker exec ..."))
    resp = tr.Transport(eng).request(target(), "/health", timeout=1)
    assert resp.status == 0 and "engine stalled" in resp.error


def test_exec_transport_reports_curl_timeout():
    eng = ScriptedEngine(Result(28, "\n000", "", 2.0))
    resp = tr.Transport(eng).request(target(), "/health", timeout=2)
    assert not resp.ok and "did not answer" in resp.error


def test_exec_transport_honours_curl_exit_code_after_200_headers():
    # issue 19 defect 5: a worker that sends "200" headers and stalls makes curl print 200 and exit 28
    eng = ScriptedEngine(Result(28, '{"status":"o\n200', "", 2.0))
    resp = tr.Transport(eng).request(target(), "/health", timeout=2)
    assert resp.status == 0 and not resp.ok and "curl exit 28" in resp.error and "after HTTP 200" in resp.error


def test_exec_transport_reports_a_cut_answer():
    eng = ScriptedEngine(Result(-9, "x" * 100, "", 0.1, truncated=True), Result(63, "\n200", "", 0.1))
    for _unused in range(2):
        resp = tr.Transport(eng).request(target(), "/sessions", timeout=2, max_bytes=50)
        assert resp.status == 0 and resp.truncated and resp.body == ""


def test_exec_transport_explains_401():
    eng = ScriptedEngine(Result(0, '{"error":"unauthorized"}\n401', "", 0.1))
    resp = tr.Transport(eng).request(target(), "/health", timeout=2)
    assert resp.status == 401 and "restart the container" in resp.error


def test_engine_run_caps_output_and_kills_the_command(tmp_path):
    cli = tmp_path / "docker"
    cli.write_text('#!/bin/sh\nhead -c "$1" /dev/zero | tr "\\0" x\necho done >&2\n[ "$1" -lt 2000 ] || sleep 30\n')
    cli.chmod(cli.stat().st_mode | stat.S_IEXEC)
    t0 = time.monotonic()
    res = Engine(cli=str(cli)).run(["50000000"], timeout=10, check=False, max_output=1000)
    assert time.monotonic() - t0 < 5
    assert res.truncated and res.stdout == "x" * 1000
    small = Engine(cli=str(cli)).run(["999"], timeout=10, check=False, max_output=1000)
    assert not small.truncated and small.rc == 0 and small.stdout == "x" * 999 and small.stderr == "done\n"


def test_exec_against_a_real_stalled_cli_is_killed(tmp_path):
    cli = tmp_path / "docker"
    cli.write_text("#!/bin/sh\nexec sleep 60\n")
    cli.chmod(cli.stat().st_mode | stat.S_IEXEC)
    t0 = time.monotonic()
    resp = tr.Transport(Engine(cli=str(cli))).request(target(), "/health", timeout=0.3, hard_timeout=0.6)
    assert time.monotonic() - t0 < 1.5
    assert resp.status == 0 and "engine stalled" in resp.error


# ------------------------------------------------------------------------------------ direct HTTP
@pytest.fixture
def server():
    """A loopback server: 'ok' answers /health, 'frozen' accepts and never answers, 'trickle' dribbles."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    mode = {"v": "ok"}
    conns = []
    stop = threading.Event()

    def serve():
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _unused1 = srv.accept()
            except OSError:
                continue
            conns.append(conn)
            if mode["v"] == "ok":
                conn.recv(4096)
                body = b'{"status":"ok","version":"0.1.0","sessionCount":2}'
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                             b"Connection: close\r\n\r\n%s" % (len(body), body))
                conn.close()
            elif mode["v"] == "trickle":
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
                for _unused1 in range(40):
                    if stop.is_set():
                        break
                    try:
                        conn.sendall(b"x")
                    except OSError:
                        break
                    time.sleep(0.1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield SimpleNamespace(port=srv.getsockname()[1], mode=mode)
    stop.set()
    thread.join(2)
    for c in conns:
        c.close()
    srv.close()


def test_http_request_ok(server):
    resp = tr.http_request("127.0.0.1", server.port, "/health", timeout=2, transport="published")
    assert resp.ok and resp.json()["sessionCount"] == 2 and resp.transport == "published"


def test_http_request_to_a_frozen_server_times_out(server):
    server.mode["v"] = "frozen"
    t0 = time.monotonic()
    resp = tr.http_request("127.0.0.1", server.port, "/health", timeout=0.5)
    assert time.monotonic() - t0 < 1.0
    assert resp.status == 0 and "timed out" in resp.error


def test_http_request_to_a_trickling_server_is_cut_at_the_deadline(server):
    server.mode["v"] = "trickle"
    t0 = time.monotonic()
    resp = tr.http_request("127.0.0.1", server.port, "/health", timeout=0.6)
    assert time.monotonic() - t0 < 1.2
    assert resp.status == 0 and "timed out" in resp.error


def test_http_request_refused():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    resp = tr.http_request("127.0.0.1", port, "/health", timeout=1)
    assert resp.status == 0 and "connection refused" in resp.error


def test_http_request_ignores_proxy_environment(server, monkeypatch):
    monkeypatch.setenv("http_proxy", "http://192.0.2.99:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://192.0.2.99:3128")
    assert tr.http_request("127.0.0.1", server.port, "/health", timeout=1).ok


# ------------------------------------------------------------------------------ directly connected
PROC_ROUTE = """Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
podman0\t0000580A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
"""


@pytest.fixture
def sysfs(tmp_path):
    for dev, bridge, state in (("docker0", True, "up"), ("podman0", True, "up"), ("eth0", False, "up"),
                               ("br-down", True, "down")):
        (tmp_path / dev).mkdir()
        if bridge:
            (tmp_path / dev / "bridge").mkdir()
        (tmp_path / dev / "operstate").write_text(state + "\n")
    return str(tmp_path)


@pytest.fixture
def proc_route(tmp_path):
    path = tmp_path / "route"
    path.write_text(PROC_ROUTE)
    return str(path)


def test_parse_proc_route():
    routes = rt.parse_proc_route(PROC_ROUTE)
    assert [(str(r.network), r.dev, r.gateway) for r in routes] == [
        ("0.0.0.0/0", "eth0", "192.0.2.1"), ("172.17.0.0/16", "docker0", None),
        ("10.88.0.0/16", "podman0", None), ("192.0.2.0/24", "eth0", None)]
    assert rt.lookup_proc_route("172.17.0.5", routes).dev == "docker0"
    assert rt.lookup_proc_route("10.90.0.3", routes).gateway == "192.0.2.1"


@pytest.mark.parametrize("ip,ok,needle", [
    ("172.17.0.5", True, "bridge docker0"),
    ("10.88.0.7", True, "bridge podman0"),
    ("10.90.0.3", False, "gateway 192.0.2.1"),       # a nested engine's subnet: routed away -> never
    ("192.0.2.50", False, "not a local bridge"),      # the LAN: directly connected but not a bridge
    ("127.0.0.1", False, "not a container address"),
    ("fd00::5", False, "not IPv4"),
    ("nonsense", False, "not an IP address"),
])
def test_route_table_from_proc(ip, ok, needle, proc_route, sysfs):
    table = rt.RouteTable(ip_cmd=None, proc_route=proc_route, sysfs=sysfs)
    got, why = table.check(ip)
    assert got is ok and needle in why


def test_route_table_prefers_ip_route_get(proc_route, sysfs):
    answers = {
        "172.17.0.5": '[{"dst":"172.17.0.5","dev":"docker0","prefsrc":"172.17.0.1","flags":[]}]',
        "10.90.0.3": '[{"dst":"10.90.0.3","gateway":"192.0.2.1","dev":"eth0","flags":[]}]',
        "192.0.2.2": '[{"type":"local","dst":"192.0.2.2","dev":"lo","flags":[]}]',
        "10.91.0.3": '[{"dst":"10.91.0.3","dev":"br-down","flags":[]}]',
    }
    calls = []

    def runner(argv):
        calls.append(argv)
        return answers.get(argv[-1])

    table = rt.RouteTable(ip_cmd="/sbin/ip", proc_route=proc_route, sysfs=sysfs, runner=runner)
    assert table.check("172.17.0.5")[0] is True
    assert table.check("172.17.0.5")[0] is True and len(calls) == 1  # cached
    assert "gateway" in table.check("10.90.0.3")[1]
    assert "local route" in table.check("192.0.2.2")[1]
    assert "is down" in table.check("10.91.0.3")[1]
    # ip fails (no answer) -> /proc/net/route decides
    assert table.check("10.88.0.9")[0] is True
    assert calls[0] == ["/sbin/ip", "-j", "route", "get", "172.17.0.5"]


def test_route_table_without_any_route_source(tmp_path, sysfs):
    table = rt.RouteTable(ip_cmd=None, proc_route=str(tmp_path / "missing"), sysfs=sysfs)
    assert table.check("172.17.0.5") == (False, "no route to 172.17.0.5 on this host")


class StatResult:
    def __init__(self, uid):
        self.st_uid = uid


@pytest.mark.parametrize("kind,url,env,euid,owner,ok,needle", [
    ("docker", None, {}, 0, 0, True, "rootful docker"),
    ("docker", None, {}, 1000, 0, True, "rootful docker"),  # docker CLI as a user still talks to dockerd
    ("podman", None, {}, 0, 0, True, "rootful podman"),
    ("podman", None, {}, 1001, 0, False, "rootless podman"),
    ("docker", "tcp://127.0.0.1:2375", {}, 0, 0, False, "remote or nested"),
    ("docker", "ssh://me@host", {}, 0, 0, False, "remote or nested"),
    ("docker", "unix:///run/podman/podman.sock", {}, 0, 0, True, "rootful engine socket"),
    ("docker", "unix:///run/user/1001/podman/podman.sock", {}, 0, 1001, False, "rootless engine"),
    ("docker", None, {"DOCKER_HOST": "tcp://10.0.0.5:2376"}, 0, 0, False, "remote or nested"),
    ("podman", None, {"CONTAINER_HOST": "ssh://x"}, 0, 0, False, "remote or nested"),
])
def test_engine_shares_host_network(kind, url, env, euid, owner, ok, needle):
    eng = SimpleNamespace(kind=kind, url=url)
    got, why = rt.engine_shares_host_network(eng, environ=env, geteuid=lambda: euid, stat=lambda p: StatResult(owner))
    assert got is ok and needle in why


def test_engine_socket_that_cannot_be_stat_ed_is_not_trusted():
    def boom(path):
        raise FileNotFoundError(2, "No such file or directory")
    eng = SimpleNamespace(kind="docker", url="unix:///nope.sock")
    ok, why = rt.engine_shares_host_network(eng, environ={}, stat=boom)
    assert not ok and "cannot stat" in why


# ------------------------------------------------------------------------------------ selection
def container(ip="172.17.0.5", ports=None, labels=None, running=True, networks=None):
    nets = networks if networks is not None else ({"bridge": {"IPAddress": ip}} if ip else {})
    return {"Id": "c1", "Name": "/workspace-alice", "State": {"Running": running, "Status": "running" if running else "exited"},
            "Config": {"Labels": labels or {}},
            "HostConfig": {"PortBindings": {}},
            "NetworkSettings": {"Networks": nets, "Ports": ports or {}}}


class AlwaysRoutes:
    def __init__(self, ok=True, why="directly connected"):
        self.ok, self.why, self.asked = ok, why, []

    def check(self, ip):
        self.asked.append(ip)
        return self.ok, self.why


def local_route():
    """Stand-in for the host route check: the container IP is on a local bridge."""
    return (True, "rootful docker on this host")


def test_auto_follows_the_profile():
    eng = SimpleNamespace(kind="docker", url=None)
    t = tr.select_target("alice", "workspace-alice", container(), "auto", "docker", eng, AlwaysRoutes(), local_route)
    assert (t.transport, t.host, t.port, t.fallback) == ("http", "172.17.0.5", 7392, None)
    t = tr.select_target("alice", "workspace-alice", container(), "auto", "podman", eng, AlwaysRoutes(), local_route)
    assert (t.transport, t.fallback) == ("exec", None)


PUBLISHED = {"7392/tcp": [{"HostIp": "127.0.0.1", "HostPort": "7401"}]}


def test_auto_on_podman_takes_the_published_port_of_a_local_engine():
    for url in (None, "unix:///run/podman/podman.sock"):
        eng = SimpleNamespace(kind="podman", url=url)
        t = tr.select_target("a", "workspace-a", container(ports=PUBLISHED), "auto", "podman", eng)
        assert (t.transport, t.host, t.port, t.fallback, t.auto) == ("published", "127.0.0.1", 7401, None, True)


def test_auto_on_podman_stays_on_exec_for_a_remote_or_nested_engine_or_no_published_port():
    for url in ("tcp://10.90.0.1:8080", "ssh://core@host/run/podman/podman.sock"):
        eng = SimpleNamespace(kind="podman", url=url)
        t = tr.select_target("a", "workspace-a", container(ports=PUBLISHED), "auto", "podman", eng)
        assert (t.transport, t.fallback, t.auto) == ("exec", None, False)
    t = tr.select_target("a", "workspace-a", container(), "auto", "podman", SimpleNamespace(kind="podman", url=None))
    assert (t.transport, t.fallback) == ("exec", None)


def test_explicit_published_of_a_remote_engine_falls_back_to_exec():
    eng = SimpleNamespace(kind="podman", url="tcp://10.90.0.1:8080")
    t = tr.select_target("a", "workspace-a", container(ports=PUBLISHED), "published", "podman", eng)
    assert t.transport == "exec" and "remote or nested" in t.fallback and "tcp://10.90.0.1:8080" in t.fallback


def _fake_http(status):
    calls = []

    def http(host, port, path, method="GET", timeout=2.0, transport="http", headers=None, max_bytes=tr.MAX_BODY):
        calls.append((host, port, path, headers))
        return tr.Response(status, '{"error":"unauthorized"}' if status == 401 else '{"status":"ok"}', transport, 0.001,
                           error=tr.rejected_message(transport) if status == 401 else None)
    return http, calls


def test_a_401_on_the_automatic_published_choice_is_retried_once_over_exec(private_worker_key):
    http, calls = _fake_http(401)
    eng = ScriptedEngine(Result(0, '{"status":"ok"}\n200', "", 0.05), Result(0, '{"status":"ok"}\n200', "", 0.05))
    t = target("published", host="127.0.0.1", port=7401, auto=True)
    transport = tr.Transport(eng, http=http)
    resp = transport.request(t, "/health", timeout=2)
    assert resp.ok and resp.transport == "exec" and len(calls) == 1 and "Authorization" in calls[0][3]
    assert t.transport == "exec" and "answered 401" in t.fallback and not t.auto
    assert transport.request(t, "/health", timeout=2).transport == "exec" and len(calls) == 1  # stays on exec
    assert len(eng.calls) == 2 and eng.calls[0][0][:4] == ["exec", "-u", "workspace", "workspace-alice"]


def test_a_401_on_an_explicit_published_transport_is_reported_not_retried(private_worker_key):
    http, calls = _fake_http(401)
    eng = ScriptedEngine()
    t = target("published", host="127.0.0.1", port=7401)
    resp = tr.Transport(eng, http=http).request(t, "/health", timeout=2)
    assert resp.status == 401 and resp.transport == "published" and "recreate it" in resp.error
    assert eng.calls == [] and t.fallback is None


def test_an_unusable_host_key_on_the_automatic_choice_uses_exec(tmp_path, monkeypatch):
    key = tmp_path / "worker.key"
    key.write_bytes(b"short")
    key.chmod(0o600)
    monkeypatch.setenv("PERRY_FLEET_WORKER_KEY", str(key))
    http, calls = _fake_http(200)
    eng = ScriptedEngine(Result(0, '{"status":"ok"}\n200', "", 0.05))
    t = target("published", host="127.0.0.1", port=7401, auto=True)
    resp = tr.Transport(eng, http=http).request(t, "/health", timeout=2)
    assert resp.ok and resp.transport == "exec" and calls == [] and "worker key" in t.fallback
    explicit = target("published", host="127.0.0.1", port=7401)
    resp = tr.Transport(ScriptedEngine(), http=http).request(explicit, "/health", timeout=2)
    assert resp.status == 0 and "not 32 bytes" in resp.error


def test_http_falls_back_to_exec_when_not_directly_connected():
    routes = AlwaysRoutes(False, "10.90.0.3 is routed through gateway 192.0.2.1 (dev eth0), not directly connected")
    t = tr.select_target("a", "workspace-a", container(ip="10.90.0.3"), "http", "docker", None, routes, local_route)
    assert t.transport == "exec" and "gateway 192.0.2.1" in t.fallback and t.host is None


def test_http_falls_back_when_the_engine_is_not_local():
    routes = AlwaysRoutes()
    t = tr.select_target("a", "workspace-a", container(), "http", "docker", None, routes,
                         lambda: (False, "engine tcp://127.0.0.1:2375 is remote or nested"))
    assert t.transport == "exec" and "remote or nested" in t.fallback
    assert routes.asked == []  # no route lookup either


def test_http_without_ip_falls_back():
    t = tr.select_target("a", "workspace-a", container(ip=None), "http", "docker", None, AlwaysRoutes(), local_route)
    assert t.transport == "exec" and "no IP address" in t.fallback


def test_http_picks_the_first_directly_connected_ip_of_many_networks():
    class Routes:
        def check(self, ip):
            return (ip.startswith("172.18."), "checked " + ip)
    nets = {"a-remote": {"IPAddress": "10.90.0.2"}, "b-local": {"IPAddress": "172.18.0.4"}}
    t = tr.select_target("a", "workspace-a", container(networks=nets), "http", "docker", None, Routes(), local_route)
    assert (t.transport, t.host) == ("http", "172.18.0.4")


def test_published_from_port_bindings():
    ports = {"7392/tcp": [{"HostIp": "127.0.0.1", "HostPort": "7401"}], "22/tcp": [{"HostIp": "127.0.0.1", "HostPort": "2201"}]}
    t = tr.select_target("a", "workspace-a", container(ports=ports), "published", "podman", None)
    assert (t.transport, t.host, t.port) == ("published", "127.0.0.1", 7401)


def test_published_from_the_spec_label():
    labels = {LABEL_SPEC: json.dumps({"ports": {"ssh": 2200, "worker": 7405}})}
    t = tr.select_target("a", "workspace-a", container(labels=labels), "published", "podman", None)
    assert (t.transport, t.host, t.port) == ("published", "127.0.0.1", 7405)


def test_published_on_another_address_is_not_used():
    ports = {"7392/tcp": [{"HostIp": "192.0.2.2", "HostPort": "7401"}]}
    t = tr.select_target("a", "workspace-a", container(ports=ports), "published", "podman", None)
    assert t.transport == "exec" and "192.0.2.2:7401" in t.fallback


def test_published_missing_falls_back():
    t = tr.select_target("a", "workspace-a", container(), "published", "podman", None)
    assert t.transport == "exec" and "does not publish" in t.fallback


def test_missing_and_stopped_containers():
    t = tr.select_target("a", "workspace-a", None, "auto", "docker", None)
    assert not t.exists and not t.running and t.state == "missing"
    t = tr.select_target("a", "workspace-a", container(running=False), "auto", "docker", None)
    assert t.exists and not t.running and t.state == "stopped" and t.state_detail == "exited"
    assert "not running (state: exited)" in t.not_running_error()


def test_a_paused_container_is_not_running():
    c = container()
    c["State"].update(Paused=True, Status="paused")
    t = tr.select_target("a", "workspace-a", c, "auto", "docker", None)
    assert t.exists and not t.running and t.state == "paused" and "unpause" in t.not_running_error()


def test_unknown_transport():
    with pytest.raises(SpecError, match="use one of"):
        tr.select_target("a", "workspace-a", container(), "carrier-pigeon", "docker", None)


def test_container_ips_dedupes_top_level_address():
    c = container()
    c["NetworkSettings"]["IPAddress"] = "172.17.0.5"
    assert rt.container_ips(c) == ["172.17.0.5"]


def test_http_request_sends_the_workspace_token_and_caps_the_body(private_worker_key):
    from ansible_collections.perry.fleet.plugins.module_utils import worker_auth
    seen = {}
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)

    def serve():
        for body in (b"x" * 5000, b'{"error":"unauthorized"}'):
            conn, _unused = srv.accept()
            seen.setdefault("req", conn.recv(65536).decode())
            status = b"200 OK" if len(body) > 100 else b"401 Unauthorized"
            conn.sendall(b"HTTP/1.1 " + status + b"\r\nConnection: close\r\n\r\n" + body)
            conn.close()
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    t = tr.Target("alice", "workspace-alice", "published", host="127.0.0.1", port=srv.getsockname()[1])
    big = tr.Transport(engine=None).request(t, "/sessions", timeout=2, max_bytes=1000)
    assert big.status == 0 and big.truncated and "larger than 1000 bytes" in big.error
    assert "Authorization: Bearer %s" % worker_auth.token("alice", worker_auth.host_key()) in seen["req"]
    denied = tr.Transport(engine=None).request(t, "/health", timeout=2)
    assert denied.status == 401 and "recreate it" in denied.error and str(private_worker_key) in denied.error
    thread.join(2)
    srv.close()
