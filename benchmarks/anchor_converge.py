"""Idempotent converge, perry.fleet vs a playbook built only from the dependency collections.

For N = 1, 5, 10 workspaces on one topology, both sides manage the same kind of containers
(Perry's volume, labels, ports, restart policy) and run the same checks (container accepts exec,
worker health over exec curl):
  perry.fleet : perry_workspace (list form) + perry_worker_health (names)
  anchor      : per workspace: podman_container (or docker_container) + podman_container_exec `true`
                + podman_container_exec curl /health      (containers.podman / community.docker)
The anchor's containers carry no synced worker, so its health exec gets "connection refused" at once
(failed_when: false): that makes the anchor slightly cheaper than a real check, never dearer.
Repetitions are interleaved (perry, anchor, perry, anchor, ...) in one run; we report medians and the
ratio perry/anchor. Run: $VENV/bin/python benchmarks/anchor_converge.py [--topology podman-rootless]
Figures are from one run on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

from topology import TOPOLOGIES, build_workspace_image, random_prefix, run_playbook  # noqa: E402  pylint: disable=wrong-import-position

HEALTH = ["curl", "-s", "--connect-timeout", "1", "--max-time", "2", "http://localhost:7392/health"]


def perry_tasks(topo, image, names, worker):
    return [
        {"perry.fleet.perry_workspace": dict(topo.engine_args(), image=image, worker_source=worker,
                                             workspaces=[{"name": n} for n in names])},
        {"perry.fleet.perry_worker_health": dict(topo.engine_args(), names=names, timeout=60)},
    ]


def anchor_tasks(topo, image, names, ports):
    podman = topo.runtime == "podman"
    tasks = []
    for name, (ssh, worker) in zip(names, ports):
        cname = "workspace-" + name
        if podman:
            tasks.append({"containers.podman.podman_container": {
                "name": cname, "image": image, "state": "started", "restart_policy": "unless-stopped",
                "volume": ["%s:/home/workspace:rw" % cname],
                "publish": ["127.0.0.1:%d:22/tcp" % ssh, "127.0.0.1:%d:7392/tcp" % worker],
                "label": {"workspace.name": name, "workspace.managed": "true"}}})
            tasks.append({"containers.podman.podman_container_exec": {"name": cname, "command": "true"},
                          "changed_when": False})
            tasks.append({"containers.podman.podman_container_exec": {"name": cname, "argv": HEALTH, "user": "workspace"},
                          "changed_when": False, "failed_when": False})
        else:
            tasks.append({"community.docker.docker_container": {
                "name": cname, "image": image, "state": "started", "restart_policy": "unless-stopped",
                "privileged": True, "hostname": name,
                "volumes": ["%s:/home/workspace:rw" % cname, "%s-docker:/var/lib/docker:rw" % cname],
                "published_ports": ["127.0.0.1:%d:22/tcp" % ssh],
                "labels": {"workspace.name": name, "workspace.managed": "true"}}})
            tasks.append({"community.docker.docker_container_exec": {"container": cname, "command": "true"},
                          "changed_when": False})
            tasks.append({"community.docker.docker_container_exec": {"container": cname, "argv": HEALTH, "user": "workspace"},
                          "changed_when": False, "failed_when": False})
    return tasks


def timed(tasks, topo):
    start = time.monotonic()
    out = run_playbook(tasks, topo, raise_on_fail=True, timeout=1800)
    elapsed = time.monotonic() - start
    changed = any(t.get("changed") for t in out["tasks"])
    return elapsed, changed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--topology", default="podman-rootless", choices=["podman-rootful", "podman-rootless", "docker"])
    parser.add_argument("--n", type=int, nargs="+", default=[1, 5, 10])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--worker", default=None, help="worker artifact path (default: build the collection's)")
    args = parser.parse_args()
    topo = TOPOLOGIES[args.topology]
    image = build_workspace_image(topo)
    if args.worker is None:
        import subprocess
        out = subprocess.run([os.path.join(HERE, "..", "worker", "build-cached.sh"), "/var/cache/perry-fleet/worker"],
                             check=True, capture_output=True, text=True).stdout.strip()
        args.worker = os.path.join(out, "perry" if topo.runtime == "docker" else "dist")
    rows = []
    for n in args.n:
        pp, ap = random_prefix(), random_prefix()
        perry_names = ["%sp%02d" % (pp, i) for i in range(n)]
        anchor_names = ["%sa%02d" % (ap, i) for i in range(n)]
        try:
            first = run_playbook(perry_tasks(topo, image, perry_names, args.worker)[:1], topo, raise_on_fail=True)
            ports = [(w["ports"]["ssh"] + 100 if w["ports"]["ssh"] + 100 <= 2400 else w["ports"]["ssh"] - 100,
                      (w["ports"]["worker"] or 7392) + 50) for w in first["tasks"][0]["workspaces"]]
            run_playbook(perry_tasks(topo, image, perry_names, args.worker), topo, raise_on_fail=True)
            pt, at = [], []
            for _rep in range(args.reps):
                sec, changed = timed(perry_tasks(topo, image, perry_names, args.worker), topo)
                assert not changed, "perry.fleet run was not idempotent"
                pt.append(sec)
                sec, changed = timed(anchor_tasks(topo, image, anchor_names, ports), topo)
                at.append(sec)
            rows.append((n, statistics.median(pt), statistics.median(at)))
        finally:
            topo.cleanup(pp)
            topo.cleanup(ap)
    print("\nidempotent converge + health, %s, median of %d interleaved runs; %s, %d cores"
          % (args.topology, args.reps, platform.node(), os.cpu_count()))
    print("%-4s %-14s %-14s %-8s" % ("N", "perry.fleet s", "anchor s", "ratio"))
    for n, p, a in rows:
        print("%-4d %-14.2f %-14.2f %-8.2f" % (n, p, a, p / a))


if __name__ == "__main__":
    main()
