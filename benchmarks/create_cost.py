"""Create cost as the number of workspaces on one host grows: seconds and memory per workspace.

For each N (default 1 5 10 20 30) on one topology (default podman-rootless), from scratch:
  1. one perry_workspace run creates N workspaces with worker_source (each runs the worker); timed as the
     whole ansible-playbook process (start-up included: the fit's intercept), engine calls counted;
  2. perry_worker_health waits until every worker answers (untimed);
  3. memory is read from the host's /proc, no engine call:
       worker RSS      VmRSS of the process whose cmdline matches "(^|/)perry( |/current/cli.js )worker serve"
       container       sum of PSS (smaps_rollup) of every process in the container's PID namespace
       host helpers    PSS of its conmon (parent of the container's init), slirp4netns and rootlessport
                       (processes that serve the container's network namespace from outside it)
     PSS splits shared pages between the processes that map them, so sums over many containers do not count
     the shared image libraries N times. (Rootless podman on this cgroup v1 host has no per-container cgroup,
     so `podman stats` cannot report memory; /proc is the one source that works for every topology.)
  4. everything with the run's prefix is removed before the next N.
A least-squares line over N gives seconds and MiB per workspace (slope) and R^2 (linearity).

Run alone: $VENV/bin/python benchmarks/create_cost.py [--topology podman-rootless] [--n 1 5 10 20 30]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import common
import stats
from topology import TOPOLOGIES, build_workspace_image  # pylint: disable=wrong-import-order

MIB = 1024.0


def _read(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _kib(text: str, key: str) -> int:
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _link(pid: int, ns: str) -> str | None:
    try:
        return os.readlink("/proc/%d/ns/%s" % (pid, ns))
    except OSError:
        return None


def proc_table() -> dict:
    """pid -> {cmd, comm, ppid, pidns, netns} for every process on the host."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        status = _read("/proc/%d/status" % pid)
        if not status:
            continue
        ppid = _kib(status, "PPid")
        table[pid] = {"cmd": _read("/proc/%d/cmdline" % pid).replace("\0", " ").strip(),
                      "comm": _read("/proc/%d/comm" % pid).strip(), "ppid": ppid,
                      "pidns": _link(pid, "pid"), "netns": _link(pid, "net")}
    return table


def pss_kib(pid: int) -> int:
    return _kib(_read("/proc/%d/smaps_rollup" % pid), "Pss")


def rss_kib(pid: int) -> int:
    return _kib(_read("/proc/%d/status" % pid), "VmRSS")


def container_memory(init_pid: int, sandbox_key: str, procs: dict) -> dict:
    """Memory of one container from its init's host PID (see the module docstring)."""
    me = procs.get(init_pid)
    if me is None:
        raise RuntimeError("container init pid %d is not running" % init_pid)
    inside = [p for p, info in procs.items() if info["pidns"] == me["pidns"]]
    workers = [p for p in inside if common.WORKER_RE.search(procs[p]["cmd"])]
    helpers = set()
    if procs.get(me["ppid"], {}).get("comm") in ("conmon", "containerd-shim", "containerd-shim-runc-v2"):
        helpers.add(me["ppid"])
    for p, info in procs.items():
        if p in inside:
            continue
        if info["netns"] == me["netns"] and info["netns"] != procs.get(1, {}).get("netns"):
            helpers.add(p)  # rootlessport-child and friends
            if procs.get(info["ppid"], {}).get("comm", "").startswith("rootlessport"):
                helpers.add(info["ppid"])
        elif info["comm"] == "slirp4netns" and (
                (sandbox_key and sandbox_key in info["cmd"]) or (" %d " % init_pid) in " %s " % info["cmd"]):
            helpers.add(p)
    return {"worker_rss_kib": sum(rss_kib(p) for p in workers), "workers": len(workers),
            "container_pss_kib": sum(pss_kib(p) for p in inside), "container_rss_kib": sum(rss_kib(p) for p in inside),
            "processes": len(inside), "helpers_pss_kib": sum(pss_kib(p) for p in helpers),
            "helpers": sorted(procs[p]["comm"] for p in helpers)}


def memory_of(topo, names: list) -> list:
    containers = ["workspace-" + n for n in names]
    data = json.loads(topo.cli("container", "inspect", *containers, timeout=300).stdout)
    procs = proc_table()
    out = []
    for item in data:
        pid = int((item.get("State") or {}).get("Pid") or 0)
        key = (item.get("NetworkSettings") or {}).get("SandboxKey") or ""
        row = container_memory(pid, key, procs)
        row["name"] = item.get("Name", "").lstrip("/")
        out.append(row)
    return out


def measure(topo, sizes, worker, image, settle: float = 2.0) -> dict:
    result = {"topology": topo.name, "sizes": list(sizes), "by_n": {}}
    for n in sizes:
        prefix = common.new_prefix(topo)
        names = common.names_for(prefix, "c", n)
        try:
            create = {"perry.fleet.perry_workspace": dict(topo.engine_args(), image=image, worker_source=worker,
                                                          workspaces=[{"name": x} for x in names])}
            sec, out = common.timed_playbook([create], topo, timeout=1800)
            engine_calls = len(out["tasks"][0].get("commands") or [])
            health = {"perry.fleet.perry_worker_health": dict(topo.engine_args(), names=names, timeout=120)}
            hsec, _out = common.timed_playbook([health], topo, timeout=600)
            time.sleep(settle)
            mem = memory_of(topo, names)
            missing = [m["name"] for m in mem if m["workers"] != 1]
            if missing:
                raise RuntimeError("no (or more than one) worker process in %s" % ", ".join(missing))
            row = {"create_s": sec, "engine_calls": engine_calls, "health_s": hsec,
                   "worker_rss_mib": sum(m["worker_rss_kib"] for m in mem) / MIB,
                   "container_pss_mib": sum(m["container_pss_kib"] for m in mem) / MIB,
                   "container_rss_mib": sum(m["container_rss_kib"] for m in mem) / MIB,
                   "helpers_pss_mib": sum(m["helpers_pss_kib"] for m in mem) / MIB,
                   "helpers": sorted(set(h for m in mem for h in m["helpers"])),
                   "per_container": mem}
            row["total_mib"] = row["container_pss_mib"] + row["helpers_pss_mib"]
            common.log("%s create N=%d: %.1f s (%d engine calls), workers %.0f MiB RSS, containers+helpers %.0f MiB PSS"
                       % (topo.name, n, sec, engine_calls, row["worker_rss_mib"], row["total_mib"]))
        finally:
            start = time.monotonic()
            topo.cleanup(prefix)
            cleanup_s = time.monotonic() - start
        row["cleanup_s"] = cleanup_s
        result["by_n"][n] = row
    xs = list(sizes)
    if len(set(xs)) >= 2:
        for key in ("create_s", "worker_rss_mib", "container_rss_mib", "container_pss_mib", "total_mib"):
            result["fit_" + key] = stats.linear_fit(xs, [result["by_n"][n][key] for n in xs])
    return result


HEADER = ["N", "create s", "engine calls", "s / workspace", "worker RSS MiB (sum)", "container PSS MiB (sum)",
          "helpers PSS MiB (sum)", "MiB / workspace (container+helpers)", "cleanup s"]


def table_rows(result) -> list:
    rows = []
    for n in result["sizes"]:
        r = result["by_n"][n]
        rows.append([n, r["create_s"], r["engine_calls"], r["create_s"] / n, r["worker_rss_mib"], r["container_pss_mib"],
                     r["helpers_pss_mib"], r["total_mib"] / n, r["cleanup_s"]])
    return rows


FIT_HEADER = ["quantity", "slope (per workspace)", "intercept", "R^2"]
FIT_LABELS = [("create_s", "create, whole playbook (s)"), ("worker_rss_mib", "worker RSS (MiB)"),
              ("container_rss_mib", "container RSS, all its processes (MiB)"), ("container_pss_mib", "container PSS (MiB)"),
              ("total_mib", "container + helpers PSS (MiB)")]


def fit_rows(result) -> list:
    rows = []
    for key, label in FIT_LABELS:
        fit = result.get("fit_" + key)
        if fit:
            rows.append([label, fit["slope"], fit["intercept"], "%.4f" % fit["r2"]])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--topology", default="podman-rootless", choices=["podman-rootful", "podman-rootless", "docker"])
    parser.add_argument("--n", type=int, nargs="+", default=[1, 5, 10, 20, 30])
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    common.use_snapshot()
    try:
        topo = TOPOLOGIES[args.topology]
        image = build_workspace_image(topo)
        result = measure(topo, args.n, common.worker_for(topo, common.worker_artifacts()), image)
    finally:
        common.cleanup_all()
        common.drop_snapshot()
    print(stats.text_table(HEADER, table_rows(result)))
    print()
    print(stats.text_table(FIT_HEADER, fit_rows(result), 3))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
