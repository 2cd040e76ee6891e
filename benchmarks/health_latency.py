"""Worker /health latency per transport: median and p95 of single requests, in-process (no ansible startup).

Transports (plugins/module_utils/transport.py), each timed as one Transport.request() call:
  exec       `<engine> exec -u workspace <c> curl .../health`   rootless podman and docker
  published  http://127.0.0.1:<published worker port>/health     rootless podman (perry publishes 7392)
  http       http://<container IP>:7392/health                   docker, only an IP on this host's docker0 bridge
Targets are chosen by the collection's own select_target(); http is additionally refused here unless the IP lies in
docker0's subnet, so no request ever leaves for a nested container or any other address.

Run alone: $VENV/bin/python benchmarks/health_latency.py [--calls 50]   (creates one workspace per engine with a
worker, measures, removes them). `benchmarks/run` calls measure_podman()/measure_docker() on the converge
benchmark's workspaces instead.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import shutil
import subprocess
import tempfile
import time

import common
import stats
from topology import TOPOLOGIES, build_workspace_image  # pylint: disable=wrong-import-order

CALLS = 50


def _imports():
    common.use_snapshot()
    from ansible_collections.perry.fleet.plugins.module_utils.engine import Engine  # pylint: disable=import-outside-toplevel
    from ansible_collections.perry.fleet.plugins.module_utils import transport  # pylint: disable=import-outside-toplevel
    return Engine, transport


def rootless_wrapper(user: str) -> str:
    """A `podman` that runs as the rootless user (what `become` does for the modules); returns its directory."""
    uid = int(common.run(["id", "-u", user], 30).stdout)
    wdir = tempfile.mkdtemp(prefix="perry-bench-rl-")
    os.chmod(wdir, 0o755)
    path = os.path.join(wdir, "podman")
    with open(path, "w") as fh:
        fh.write('#!/bin/sh\nexec runuser -u %s -- env XDG_RUNTIME_DIR=/run/user/%d HOME=/home/%s podman "$@"\n'
                 % (user, uid, user))
    os.chmod(path, 0o755)
    return wdir


def docker0_network():
    out = common.run(["ip", "-j", "addr", "show", "docker0"], 30).stdout
    for info in json.loads(out)[0]["addr_info"]:
        if info["family"] == "inet":
            return ipaddress.ip_network("%s/%d" % (info["local"], info["prefixlen"]), strict=False)
    raise RuntimeError("docker0 has no IPv4 address")


def rootless_key(user: str) -> bytes:
    """The worker key of ``user`` (its workspaces' tokens derive from it, not from root's), read as that user."""
    return subprocess.run(["runuser", "-u", user, "--", "sh", "-c",
                           'cat "${XDG_STATE_HOME:-$HOME/.local/state}/perry-fleet/worker.key"'],
                          capture_output=True, check=True, timeout=30).stdout


def time_calls(transport_mod, engine, target, calls: int, auth=None) -> dict:
    client = transport_mod.Transport(engine, auth=auth)
    warm = client.request(target, "/health", timeout=10)
    if not warm.ok:
        raise RuntimeError("health over %s failed: %s" % (target.transport, warm.error))
    times = []
    for _i in range(calls):
        start = time.monotonic()
        resp = client.request(target, "/health", timeout=10)
        times.append((time.monotonic() - start) * 1000.0)
        if not resp.ok:
            raise RuntimeError("health over %s failed: %s" % (target.transport, resp.error))
    return {"transport": target.transport, "median_ms": stats.median(times), "p95_ms": stats.p95(times),
            "min_ms": min(times), "max_ms": max(times), "n": len(times), "samples_ms": times}


def measure_podman(topo, workspace: str, calls: int = CALLS) -> dict:
    """exec and published on a podman topology (rootless: through a runuser wrapper)."""
    Engine, tr = _imports()
    wdir = rootless_wrapper(topo.become_user) if topo.become_user else None
    try:
        engine = Engine(cli=os.path.join(wdir, "podman") if wdir else "podman")
        container = "workspace-" + workspace
        data = engine.inspect([container])[container]
        label = "rootless podman" if topo.become_user else "rootful podman"
        auth = None
        if topo.become_user:
            from ansible_collections.perry.fleet.plugins.module_utils.worker_auth import WorkerAuth
            auth = WorkerAuth(key=rootless_key(topo.become_user))
        out = {}
        for wanted in ("exec", "published"):
            target = tr.select_target(workspace, container, data, wanted, "podman", engine)
            if target.transport != wanted:
                raise RuntimeError("%s was not usable: %s" % (wanted, target.fallback))
            if wanted == "published" and target.host != "127.0.0.1":
                raise RuntimeError("published target is not loopback: %s" % target.host)
            row = time_calls(tr, engine, target, calls, auth=auth)
            row["where"] = "127.0.0.1:%d" % target.port if wanted == "published" else "exec curl localhost:7392"
            out["%s (%s)" % (wanted, label)] = row
        return out
    finally:
        if wdir:
            shutil.rmtree(wdir, ignore_errors=True)


def measure_docker(topo, workspace: str, calls: int = CALLS) -> dict:
    """exec and http (container IP on docker0) on docker."""
    Engine, tr = _imports()
    engine = Engine(cli=topo.engine_cli)
    container = "workspace-" + workspace
    data = engine.inspect([container])[container]
    bridge = docker0_network()
    out = {}
    for wanted in ("exec", "http"):
        target = tr.select_target(workspace, container, data, wanted, "docker", engine)
        if target.transport != wanted:
            raise RuntimeError("%s was not usable: %s" % (wanted, target.fallback))
        if wanted == "http" and ipaddress.ip_address(target.host) not in bridge:
            raise RuntimeError("container IP %s is not on docker0 (%s): not contacting it" % (target.host, bridge))
        row = time_calls(tr, engine, target, calls)
        row["where"] = "%s:%d (docker0 %s)" % (target.host, target.port, bridge) if wanted == "http" else "exec curl localhost:7392"
        out["%s (docker)" % wanted] = row
    return out


HEADER = ["transport", "where", "median ms", "p95 ms", "min-max ms", "calls"]


def table_rows(results: dict) -> list:
    return [[label, r["where"], r["median_ms"], r["p95_ms"], stats.range_text(r["min_ms"], r["max_ms"], 1), r["n"]]
            for label, r in results.items()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=CALLS)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    common.use_snapshot()
    artifacts = common.worker_artifacts()
    results = {}
    try:
        for name, measure in (("podman-rootless", measure_podman), ("docker", measure_docker)):
            topo = TOPOLOGIES[name]
            image = build_workspace_image(topo)
            prefix = common.new_prefix(topo)
            ws = prefix + "lat"
            try:
                from anchor_converge import perry_tasks  # pylint: disable=import-outside-toplevel
                common.timed_playbook(perry_tasks(topo, image, [ws], common.worker_for(topo, artifacts)), topo)
                results.update(measure(topo, ws, args.calls))
            finally:
                topo.cleanup(prefix)
    finally:
        common.cleanup_all()
        common.drop_snapshot()
    print(stats.text_table(HEADER, table_rows(results), 1))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    try:
        main()
    except subprocess.TimeoutExpired as exc:
        raise SystemExit("timed out: %s" % exc)
