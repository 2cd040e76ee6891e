"""Issue 19, the worker side, on real engines with workspaces made by perry_workspace from our image role's image:

* defect 2: a workspace cannot reach another workspace's worker (the per-workspace token, worker_auth.py): from
  INSIDE workspace A, B's /health, /sessions and DELETE answer 401 and give no data, even with A's own token;
  the modules still report B healthy and list its sessions on every transport;
* defect 5: a worker that sends 200 headers and then stalls is not healthy (curl's exit code is honoured), and a
  200 that is not the worker's JSON is not healthy either;
* defect 4: a 100 MB answer and a 20 MB log line leave the module's memory and result small; 20,000 sessions
  come back paged.

The fake worker is a real process inside a real workspace: the image's supervisor runs /usr/local/bin/perry, which
the test replaces by a small Python server and restores afterwards. Network rule: the cross-workspace requests go
from one container to another container's IP on the bridge this machine made (podman0 / docker0); the host talks
only to 127.0.0.1 and to those bridge IPs (transport http, after its directly-connected check).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import pytest

from ansible_collections.perry.fleet.plugins.module_utils.engine import Engine
from ansible_collections.perry.fleet.plugins.module_utils.transport import Target, Transport
from ansible_collections.perry.fleet.plugins.module_utils import worker_process
from ansible_collections.perry.fleet.plugins.module_utils.worker_process import PATTERN
from topology import COLLECTIONS, TOPOLOGIES, build_workspace_image, random_prefix, run_module_direct

WORKSPACE = "perry.fleet.perry_workspace"
HEALTH = "perry.fleet.perry_worker_health"
SESSIONS = "perry.fleet.perry_sessions"
TOPOS = ["podman-rootful", "docker"]
SECRET_WORDS = "private-words-of-b"

# The fake worker: GET /health and /sessions answer as /tmp/fake-mode says (stall | huge | notjson); it first
# logs one 20 MB line, as a misbehaving worker might.
FAKE_WORKER = r'''#!/usr/bin/python3
import http.server, socketserver, sys, time
sys.stdout.write("x" * (20 * 1024 * 1024) + "\n"); sys.stdout.flush()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        mode = open("/tmp/fake-mode").read().strip()
        if mode == "stall":
            self.send_response(200); self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "200"); self.end_headers()
            self.wfile.write(b'{"status":"ok",'); self.wfile.flush(); time.sleep(120)
        elif mode == "huge":
            self.send_response(200); self.send_header("Content-Type", "application/json"); self.end_headers()
            self.wfile.write(b'{"sessions":[')
            chunk = b'{"id":"' + b"y" * 1000 + b'","agentType":"claude","lastActivity":1},'
            for _ in range(100 * 1024 * 1024 // len(chunk)):
                self.wfile.write(chunk)
            self.wfile.write(b'{"id":"last"}],"status":"ok","version":"9","sessionCount":1}')
        elif mode == "legacy":  # a worker from before tokens: the right JSON, no auth field
            body = b'{"status":"ok","version":"0.1.0","sessionCount":0}'
            self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
            self.wfile.write(body)
        else:
            body = b"hello from something else"
            self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
            self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
S(("0.0.0.0", 7392), H).serve_forever()
'''


def ok(result):
    assert not result.get("failed"), json.dumps({k: result.get(k) for k in ("msg", "workspaces", "commands")},
                                                indent=1)[-6000:]
    return result


# Linux carries a process's peak RSS across fork and exec, so a module forked straight from this (by then large)
# pytest process would report pytest's size. A small launcher forks the module instead and reports its peak.
LAUNCHER = r"""
import json, os, sys
peak_fd = int(sys.argv[1])
pid = os.fork()
if pid == 0:
    os.close(peak_fd)
    os.execv(sys.executable, [sys.executable] + sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
os.write(peak_fd, json.dumps({"status": status, "maxrss_kib": usage.ru_maxrss}).encode())
"""


def measured(module: str, args: dict, timeout: float = 180) -> tuple:
    """(result, peak RSS in MiB, bytes of JSON printed) of the module run as its own process."""
    payload = {"ANSIBLE_MODULE_ARGS": args}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(payload, fh)
        path = fh.name
    try:
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as peak:
            proc = subprocess.Popen([sys.executable, "-S", "-c", LAUNCHER, str(peak.fileno()), "-m",
                                     "ansible_collections.perry.fleet.plugins.modules." + module.split(".")[-1], path],
                                    stdout=out, stderr=subprocess.DEVNULL, pass_fds=(peak.fileno(),),
                                    env=dict(os.environ, PYTHONPATH=COLLECTIONS), cwd="/", start_new_session=True)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
                raise AssertionError("%s did not finish within %s s" % (module, timeout))
            out.seek(0)
            text = out.read().decode()
            peak.seek(0)
            maxrss_kib = json.loads(peak.read().decode())["maxrss_kib"]
    finally:
        os.unlink(path)
    result = json.loads(text.strip().splitlines()[-1])
    return result, maxrss_kib / 1024.0, len(text)


class Fleet:
    def __init__(self, topo, prefix, image, worker_build):
        self.topo, self.prefix, self.image, self.worker_build = topo, prefix, image, worker_build
        self.a, self.b, self.c = prefix + "a", prefix + "b", prefix + "c"

    def args(self, **kw):
        return dict(self.topo.engine_args(), **kw)

    def exec(self, name, *argv, user="workspace", timeout=120, check=True, input=None):
        flags = ["-i"] if input is not None else []
        return self.topo.cli("exec", *flags, "-u", user, "workspace-" + name, *argv, timeout=timeout, check=check,
                             input=input)

    def ip(self, name) -> str:
        c = self.topo.inspect("workspace-" + name)
        ips = [n.get("IPAddress") for n in (c["NetworkSettings"].get("Networks") or {}).values() if n.get("IPAddress")]
        ips = ips or [c["NetworkSettings"].get("IPAddress")]
        assert ips and ips[0], "no container IP for %s" % name
        return ips[0]

    def healthy(self, names, transport="auto", timeout=90):
        return ok(run_module_direct(HEALTH, self.args(names=names, transport=transport, timeout=timeout),
                                    timeout=timeout + 30)[0])


@pytest.fixture(scope="module", params=TOPOS)
def fleet(request, worker_artifacts):
    topo = TOPOLOGIES[request.param]
    image = build_workspace_image(topo)
    prefix = random_prefix()
    f = Fleet(topo, prefix, image, os.path.dirname(worker_artifacts["dist"]))
    try:
        ok(run_module_direct(WORKSPACE, f.args(workspaces=[{"name": n} for n in (f.a, f.b, f.c)], image=image,
                                               worker_source=f.worker_build), timeout=600)[0])
        # B holds a private session
        f.exec(f.b, "sh", "-c", "mkdir -p ~/.claude/projects/p && printf '%s\\n' "
               "'{\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":\"" + SECRET_WORDS + "\"}}' "
               "> ~/.claude/projects/p/secret.jsonl")
        f.healthy([f.a, f.b, f.c])
        yield f
    finally:
        topo.cleanup(prefix)


def curl_from(fleet, name, url, *extra):
    """(status, body) of curl run INSIDE workspace ``name`` (as its user) to another container."""
    res = fleet.exec(name, "curl", "-s", "--noproxy", "*", "-m", "5", "-w", "\n%{http_code}", *extra, url, check=False)
    body, _sep, status = res.stdout.rpartition("\n")
    return int(status or 0), body


# ------------------------------------------------------------------------------------------- defect 2
def test_another_workspace_cannot_read_or_delete_sessions(fleet):
    b_ip = fleet.ip(fleet.b)
    own_token = fleet.exec(fleet.a, "cat", "/etc/perry/worker.auth").stdout.strip()
    assert own_token.startswith("Authorization: Bearer ")
    for extra in ((), ("-H", own_token), ("-H", "Authorization: Bearer " + "0" * 64)):
        for method, path in (("GET", "/health"), ("GET", "/sessions"), ("GET", "/sessions/secret"),
                             ("GET", "/sessions/secret/messages"), ("DELETE", "/sessions/secret")):
            status, body = curl_from(fleet, fleet.a, "http://%s:7392%s" % (b_ip, path), "-X", method, *extra)
            assert status == 401, (method, path, extra[:1], status, body[:300])
            assert SECRET_WORDS not in body and "version" not in body and "secret" not in body
    # still there, and B's own modules see it on every transport
    fleet.exec(fleet.b, "test", "-f", "/home/workspace/.claude/projects/p/secret.jsonl")
    used = set()
    for transport in ("exec", "http", "published", "auto"):
        h = fleet.healthy([fleet.b], transport=transport)["workspaces"][0]
        assert h["healthy"] and h["auth"] == "token", h
        s = ok(run_module_direct(SESSIONS, fleet.args(name=fleet.b, transport=transport))[0])
        w = s["workspaces"][0]
        assert [x["id"] for x in s["sessions"]] == ["secret"] and w["ok"], w
        used.add(w["transport"])
    # exec always; http where the bridge is local (both here); published on podman (docker does not publish 7392)
    assert {"exec", "http"} <= used and ("published" in used) == (fleet.topo.runtime == "podman"), used


def test_token_never_on_the_host_argv_nor_in_results_nor_in_the_environment(fleet):
    r = ok(run_module_direct(SESSIONS, fleet.args(name=fleet.b, transport="exec"))[0])
    token = fleet.exec(fleet.b, "cat", "/etc/perry/worker.auth").stdout.strip().split()[-1]
    assert len(token) == 64
    assert token not in json.dumps(r)
    assert "-H @/etc/perry/worker.auth" not in json.dumps(r["commands"])  # the wrapper adds it inside
    # Not in what the entrypoint writes or starts: /etc/environment, the worker's and sshd's environment.
    # (An `exec` gets the container's configured env, the token included: exec is the host's own access.)
    pids = fleet.exec(fleet.b, "pgrep", "-f", "[p]erry.*worker serve", user="root").stdout.split()
    assert pids
    env = fleet.exec(fleet.b, "python3", "-c", "import sys\nfor p in sys.argv[1:]: print(open(p, 'rb').read())",
                     "/etc/environment", *["/proc/%s/environ" % p for p in pids]).stdout  # the worker's own user
    assert "HOME=" in env and token not in env and "PERRY_WORKER_TOKEN" not in env, env[-2000:]
    mode = fleet.exec(fleet.b, "stat", "-c", "%U:%G %a", "/etc/perry/worker.auth").stdout.split()
    assert mode == ["root:workspace", "640"]


# ------------------------------------------------------------------------------------------- defects 5, 4
@pytest.fixture
def fake_worker(fleet):
    """Workspace C's supervisor runs the fake worker instead of the real one; restored afterwards."""
    c = fleet.c
    fleet.exec(c, "sh", "-c", "cp -p /usr/local/bin/perry /usr/local/bin/.perry-real && cat > /tmp/fake-perry && "
               "install -m 0755 /tmp/fake-perry /usr/local/bin/perry && echo notjson > /tmp/fake-mode && "
               "chmod 0644 /tmp/fake-mode && pkill -f '%s' || true" % PATTERN, user="root", input=FAKE_WORKER)

    def mode(value):
        fleet.exec(c, "sh", "-c", "echo %s > /tmp/fake-mode" % value, user="root")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the supervisor starts the fake within ~2 s
        if curl_from(fleet, c, "http://localhost:7392/health")[1] == "hello from something else":
            break
        time.sleep(0.5)
    else:
        pytest.fail("the fake worker did not come up: %s" % fleet.exec(
            c, "sh", "-c", "tail -c 600 /var/log/perry-entrypoint.log; ps ax | grep -v ps", user="root").stdout)
    yield mode
    fleet.exec(c, "sh", "-c", "mv -f /usr/local/bin/.perry-real /usr/local/bin/perry && "
               "pkill -f '%s' || true" % PATTERN, user="root")
    fleet.healthy([c])


@pytest.mark.serial  # a deadline is timed: alone, after the parallel run (scripts/test)
def test_headers_then_stall_is_not_healthy_on_any_transport(fleet, fake_worker):
    fake_worker("stall")
    for transport in ("exec", "http", "published"):
        r, _unused = run_module_direct(HEALTH, fleet.args(name=fleet.c, transport=transport, timeout=4,
                                                          request_timeout=1.5), timeout=30)
        w = r["workspaces"][0]
        assert r.get("failed") and not w["healthy"] and w["status"] == 0, (transport, w)
        assert r["elapsed"] < 4 + 1.5, r["elapsed"]
        assert "timed out" in w["error"] or "did not finish the exec" in w["error"], w["error"]
    # One exec request with room to spare: curl exits 28 after printing "200", and that is what is reported.
    engine = Engine(cli=fleet.topo.engine_cli)
    target = Target(fleet.c, "workspace-" + fleet.c, "exec")
    resp = Transport(engine).request(target, "/health", timeout=1.5, hard_timeout=10)
    assert resp.status == 0 and not resp.ok and resp.body == "", resp
    assert "curl exit 28" in resp.error and "after HTTP 200 headers" in resp.error, resp.error


def test_a_200_that_is_not_the_worker_is_not_healthy_and_the_log_is_capped(fleet, fake_worker):
    fake_worker("notjson")
    r, rss, printed = measured(HEALTH, fleet.args(name=fleet.c, transport="exec", timeout=3))
    w = r["workspaces"][0]
    assert r.get("failed") and not w["healthy"] and "not the worker's answer" in w["error"], w
    # the 20 MB log line: the tail is 8 KiB, the message small, the process small
    # (the module's tail read is best effort, LOG_TIMEOUT s: on a slow engine it may be None; read one directly too)
    assert w["log_tail"] is None or len(w["log_tail"]) <= 8192
    tail = worker_process.log_tail(Engine(cli=fleet.topo.engine_cli), "workspace-" + fleet.c, 15)
    assert tail is not None and 0 < len(tail) <= 8192 and tail.endswith("x" * 100), (tail or "")[:200]
    assert len(r["msg"]) < 12 * 1024 and printed < 64 * 1024, (len(r["msg"]), printed)
    print("notjson+20MB log: peak RSS %.1f MiB, printed %d bytes" % (rss, printed))
    assert rss < 120


def test_a_100_mb_answer_is_cut_and_memory_stays_small(fleet, fake_worker):
    fake_worker("huge")
    for transport in ("exec", "http", "published"):
        r, rss, printed = measured(SESSIONS, fleet.args(name=fleet.c, transport=transport, request_timeout=60))
        w = r["workspaces"][0]
        print("100 MB answer via %s (%s): peak RSS %.1f MiB, printed %d bytes"
              % (transport, w["transport"], rss, printed))
        assert not w["ok"] and "larger than 4194304 bytes" in w["error"], w
        assert r["sessions"] == [] and printed < 64 * 1024
        assert rss < 120, "peak RSS %.1f MiB via %s" % (rss, w["transport"])


def test_twenty_thousand_sessions_come_back_paged(fleet):
    b = fleet.b
    fleet.exec(b, "python3", "-c", (
        "import os\n"
        "d = os.path.expanduser('~/.claude/projects/bulk')\n"
        "os.makedirs(d, exist_ok=True)\n"
        "for i in range(20000):\n"
        "    p = os.path.join(d, 's%05d.jsonl' % i)\n"
        "    open(p, 'w').write('{\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":\"q%d\"}}\\n' % i)\n"
        "    os.utime(p, (1700000000 + i, 1700000000 + i))\n"), timeout=300)
    try:
        r, rss, printed = measured(SESSIONS, fleet.args(name=b, request_timeout=60))
        ok(r)
        print("20,000 sessions, first page: peak RSS %.1f MiB, printed %d bytes, %s"
              % (rss, printed, r["workspaces"][0]["transport"]))
        assert r["total"] == 20001 and len(r["sessions"]) == 100 and r["truncated"] and r["limit"] == 100
        assert printed < 1024 * 1024 and rss < 120
        last = ok(run_module_direct(SESSIONS, fleet.args(name=b, offset=19950, limit=100, request_timeout=60))[0])
        assert len(last["sessions"]) == 51 and not last["truncated"] and last["total"] == 20001
        assert last["sessions"][-1]["id"] == "s00000"  # oldest last
        pair = ok(run_module_direct(SESSIONS, fleet.args(names=[fleet.a, b], limit=10, request_timeout=60))[0])
        assert pair["total"] == 20001 and [x["id"] for x in pair["sessions"]][:2] == ["secret", "s19999"]
    finally:
        fleet.exec(b, "rm", "-rf", "/home/workspace/.claude/projects/bulk")


# ------------------------------------------------------------------------------------------- defect 2: what to do
def test_a_worker_without_token_is_healthy_with_a_warning_saying_to_recreate(fleet, fake_worker):
    fake_worker("legacy")
    r = ok(run_module_direct(HEALTH, fleet.args(name=fleet.c, transport="exec", timeout=10))[0])
    w = r["workspaces"][0]
    assert w["healthy"] and w["auth"] is None
    warnings = json.dumps(r.get("warnings"))  # strings, or ansible 2.19's structured warning summaries
    assert "enforces no token" in warnings and "recreate it" in warnings, warnings


def test_a_token_the_host_did_not_derive_gets_401_with_what_to_do(fleet):
    c = fleet.c
    fleet.exec(c, "sh", "-c", "cp -p /etc/perry/worker.auth /etc/perry/.keep && printf 'Authorization: Bearer %s\\n' "
               "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n') > /etc/perry/worker.auth && "
               "pkill -f '" + PATTERN + "'", user="root")
    try:
        # wait for the supervisor to restart the worker with the new token (exec sends the container's own file);
        # a fixed sleep was too short on a loaded CI machine (status 0: nothing answered yet)
        fleet.healthy([c], transport="exec")
        direct = "published" if fleet.topo.runtime == "podman" else "http"
        r = run_module_direct(HEALTH, fleet.args(name=c, transport=direct, timeout=8))[0]
        w = r["workspaces"][0]
        assert r.get("failed") and not w["healthy"] and w["status"] == 401 and w["transport"] == direct, w
        assert "rejected this host's token" in w["error"] and "recreate it" in w["error"], w["error"]
        # exec sends the container's own file: still healthy
        assert fleet.healthy([c], transport="exec")["workspaces"][0]["auth"] == "token"
    finally:
        fleet.exec(c, "sh", "-c", "mv -f /etc/perry/.keep /etc/perry/worker.auth && pkill -f '%s'" % PATTERN,
                   user="root")
        time.sleep(3)
        fleet.healthy([c], transport="auto")
