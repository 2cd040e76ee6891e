"""Idempotent converge + health, perry.fleet vs a playbook built only from the dependency collections.

For N workspaces on one topology both sides manage the same kind of containers (Perry's volume, labels,
ports, restart policy) and run the same checks (container accepts exec, worker health over exec curl):
  perry.fleet : perry_workspace (list form) + perry_worker_health (names)
  anchor      : per workspace: podman_container (or docker_container) + podman_container_exec `true`
                + podman_container_exec curl /health      (containers.podman / community.docker)
The anchor's containers carry no synced worker, so its health exec gets "connection refused" at once
(failed_when: false): that makes the anchor slightly cheaper than a real check, never dearer.

The largest N of each side is created once (untimed, and the anchor is run once more untimed so its timed
runs are idempotent too); smaller N use the first names of that set. Repetitions are interleaved
(for each rep, for each N: perry, anchor) in one run; we report medians, min-max and the ratio perry/anchor.

Run alone: $VENV/bin/python benchmarks/anchor_converge.py --topology podman-rootless --n 1 5 10 --reps 3
`benchmarks/run` imports measure(). Figures are from one run on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import random
import socket

import common
import stats
from topology import TOPOLOGIES, build_workspace_image  # pylint: disable=wrong-import-order

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
    for name in names:
        ssh, worker = ports[name]
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


def free_loopback_ports(count: int, low: int = 30000, high: int = 32000) -> list:
    """Ports that nothing listens on at 127.0.0.1 now, outside perry.fleet's ranges (2200-2400, 7392-7500)."""
    found = []
    candidates = list(range(low, high))
    random.shuffle(candidates)
    for port in candidates:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        found.append(port)
        if len(found) == count:
            return found
    raise RuntimeError("not enough free loopback ports in %d-%d" % (low, high))


def any_changed(out) -> bool:
    return any(t.get("changed") for t in out["tasks"])


def measure(topo, sizes, reps, worker, image, on_ready=None) -> dict:
    """Interleaved timings for each N in sizes; on_ready(perry_names) runs once while the workspaces exist."""
    nmax = max(sizes)
    pp, ap = common.new_prefix(topo), common.new_prefix(topo)
    perry_names = common.names_for(pp, "p", nmax)
    anchor_names = common.names_for(ap, "a", nmax)
    result = {"topology": topo.name, "reps": reps, "sizes": list(sizes), "setup": {}, "by_n": {}, "ready": None}
    try:
        common.log("%s: creating %d perry.fleet workspaces (untimed setup)" % (topo.name, nmax))
        sec, _out = common.timed_playbook(perry_tasks(topo, image, perry_names, worker), topo, timeout=1800)
        result["setup"]["perry_create_s"] = sec
        ports = dict(zip(anchor_names, zip(free_loopback_ports(nmax), free_loopback_ports(nmax, 32000, 34000))))
        common.log("%s: creating %d anchor containers (untimed setup, twice)" % (topo.name, nmax))
        sec, _out = common.timed_playbook(anchor_tasks(topo, image, anchor_names, ports), topo, timeout=1800)
        result["setup"]["anchor_create_s"] = sec
        sec, out = common.timed_playbook(anchor_tasks(topo, image, anchor_names, ports), topo, timeout=1800)
        result["setup"]["anchor_second_run_changed"] = any_changed(out)
        if on_ready is not None:
            result["ready"] = on_ready(perry_names)
        for n in sizes:
            result["by_n"][n] = {"perry": [], "anchor": [], "perry_changed": [], "anchor_changed": []}
        for rep in range(reps):
            for n in sizes:
                row = result["by_n"][n]
                sec, out = common.timed_playbook(perry_tasks(topo, image, perry_names[:n], worker), topo)
                row["perry"].append(sec)
                row["perry_changed"].append(any_changed(out))
                sec, out = common.timed_playbook(anchor_tasks(topo, image, anchor_names[:n], ports), topo)
                row["anchor"].append(sec)
                row["anchor_changed"].append(any_changed(out))
                common.log("%s rep %d N=%d: perry %.2f s, anchor %.2f s" % (topo.name, rep + 1, n, row["perry"][-1], sec))
    finally:
        topo.cleanup(pp)
        topo.cleanup(ap)
    for n, row in result["by_n"].items():
        row["perry_summary"] = stats.summary(row["perry"])
        row["anchor_summary"] = stats.summary(row["anchor"])
        row["ratio"] = stats.ratio(row["perry_summary"]["median"], row["anchor_summary"]["median"])
    return result


def table_rows(result) -> list:
    rows = []
    for n in result["sizes"]:
        row = result["by_n"][n]
        p, a = row["perry_summary"], row["anchor_summary"]
        rows.append([n, p["median"], stats.range_text(p["min"], p["max"]), a["median"], stats.range_text(a["min"], a["max"]),
                     row["ratio"], "no" if not any(row["perry_changed"]) else "CHANGED",
                     "no" if not any(row["anchor_changed"]) else "CHANGED"])
    return rows


HEADER = ["N", "perry.fleet s (median)", "perry min-max", "anchor s (median)", "anchor min-max", "ratio perry/anchor",
          "perry changed", "anchor changed"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--topology", default="podman-rootless", choices=["podman-rootful", "podman-rootless", "docker"])
    parser.add_argument("--n", type=int, nargs="+", default=[1, 5, 10])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--worker", default=None, help="worker artifact path (default: build the collection's)")
    parser.add_argument("--json", default=None, help="also write the raw numbers here")
    args = parser.parse_args()
    common.use_snapshot()
    try:
        topo = TOPOLOGIES[args.topology]
        image = build_workspace_image(topo)
        worker = args.worker or common.worker_for(topo, common.worker_artifacts())
        result = measure(topo, args.n, args.reps, worker, image)
    finally:
        common.cleanup_all()
        common.drop_snapshot()
    print("\nidempotent converge + health, %s, median of %d interleaved runs" % (args.topology, args.reps))
    print(stats.text_table(HEADER, table_rows(result)))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
