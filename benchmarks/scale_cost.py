"""Scale on one host (issue 16 §2): create 30 in one task vs the anchor's loop, a no-op converge of 100 vs 10,
memory per workspace at 100.

  create 30 : perry.fleet  one perry_workspace task for 30 workspaces (parallel creates under the port lock)
              anchor       its loop of 30 podman_container/docker_container tasks (benchmarks/anchor_converge.py)
              engine       30 bare `<engine> run -d` of the same image, one after another: the engine's own cost
                           per run, the limit a serial loop cannot beat
  N=100     : one perry_workspace task creates 100 (timed), every worker is waited for, memory is read from /proc
              (benchmarks/create_cost.py), then no-op converge + health of the first 10 and of all 100,
              interleaved repetitions; ratio t(100) / t(10)

Every workspace here uses port ranges of its own (SSH 41000-41299, worker 41300-41499), so a run never takes
ports from other workspaces on the machine and 100 fit (the default worker range holds 109).

Run alone: $VENV/bin/python benchmarks/scale_cost.py --topology podman-rootful --reps 3
`benchmarks/run --parts scale` calls measure().
"""

from __future__ import annotations

import argparse
import json
import time

import common
import stats
import anchor_converge
import create_cost
from topology import TOPOLOGIES, build_workspace_image  # pylint: disable=wrong-import-order

SSH_RANGE = [41000, 41299]
WORKER_RANGE = [41300, 41499]
CREATE_N = 30
SCALE_N = 100
SMALL_N = 10
NOOP_TARGET = 2.0        # issue 16: no-op converge of 100 <= 2x the time of 10
CREATE_TARGET = 0.5      # issue 16: create 30 in one task <= 0.5x the anchor's loop
WORKER_RSS_TARGET = 25.0  # issue 16: the worker's RSS at idle <= 25 MiB
MIB = 1024.0


def perry_tasks(topo, image, names, worker) -> list:
    ranges = {"ssh_port_range": SSH_RANGE}
    if topo.runtime == "podman":
        ranges["worker_port_range"] = WORKER_RANGE
    return [
        {"perry.fleet.perry_workspace": dict(topo.engine_args(), image=image, worker_source=worker, **ranges,
                                             workspaces=[{"name": n} for n in names])},
        {"perry.fleet.perry_worker_health": dict(topo.engine_args(), names=names, timeout=300)},
    ]


def engine_runs(topo, image, names) -> list:
    """Seconds of each bare `run -d` (same image, a home volume, a label), one after another."""
    seconds = []
    for name in names:
        start = time.monotonic()
        topo.cli("run", "-d", "--name", "workspace-" + name, "-v", "workspace-%s:/home/workspace" % name,
                 "--label", "workspace.name=" + name, image, timeout=120)
        seconds.append(time.monotonic() - start)
    return seconds


def create_30(topo, image, worker) -> dict:
    out = {"n": CREATE_N}
    prefixes = {side: common.new_prefix(topo) for side in ("perry", "anchor", "engine")}
    names = {side: common.names_for(p, side[0], CREATE_N) for side, p in prefixes.items()}
    try:
        common.log("%s: create %d, perry.fleet (one task)" % (topo.name, CREATE_N))
        out["perry_s"], _r = common.timed_playbook(perry_tasks(topo, image, names["perry"], worker)[:1], topo, 1800)
        common.log("%s: create %d, anchor (a task per container)" % (topo.name, CREATE_N))
        ports = dict(zip(names["anchor"], zip(anchor_converge.free_loopback_ports(CREATE_N),
                                              anchor_converge.free_loopback_ports(CREATE_N, 32000, 34000))))
        out["anchor_s"], _r = common.timed_playbook(anchor_converge.anchor_tasks(topo, image, names["anchor"], ports),
                                                    topo, 1800)
        common.log("%s: create %d, bare engine runs" % (topo.name, CREATE_N))
        runs = engine_runs(topo, image, names["engine"])
        out["engine_runs_s"] = runs
        out["engine_sum_s"] = sum(runs)
        out["engine_per_run"] = stats.summary(runs)
    finally:
        for prefix in prefixes.values():
            topo.cleanup(prefix)
    out["ratio_perry_anchor"] = stats.ratio(out["perry_s"], out["anchor_s"])
    out["ratio_perry_engine"] = stats.ratio(out["perry_s"], out["engine_sum_s"])
    common.log("%s create %d: perry %.1f s, anchor %.1f s (ratio %.2f), bare engine runs %.1f s"
               % (topo.name, CREATE_N, out["perry_s"], out["anchor_s"], out["ratio_perry_anchor"], out["engine_sum_s"]))
    return out


def scale_100(topo, image, worker, reps: int, settle: float = 5.0) -> dict:
    prefix = common.new_prefix(topo)
    names = common.names_for(prefix, "s", SCALE_N)
    out = {"n": SCALE_N, "small_n": SMALL_N, "reps": reps, "noop": {SMALL_N: [], SCALE_N: []}, "changed": []}
    try:
        common.log("%s: create %d (one task) and wait for every worker" % (topo.name, SCALE_N))
        out["create_s"], _r = common.timed_playbook(perry_tasks(topo, image, names, worker), topo, 2400)
        time.sleep(settle)
        mem = create_cost.memory_of(topo, names)
        missing = [m["name"] for m in mem if m["workers"] != 1]
        if missing:
            raise RuntimeError("no (or more than one) worker process in %s" % ", ".join(missing))
        worker_rss = [m["worker_rss_kib"] / MIB for m in mem]
        out["memory"] = {
            "worker_rss_mib": stats.summary(worker_rss),
            "container_pss_mib_per_ws": sum(m["container_pss_kib"] for m in mem) / MIB / SCALE_N,
            "helpers_pss_mib_per_ws": sum(m["helpers_pss_kib"] for m in mem) / MIB / SCALE_N,
            "helpers": sorted(set(h for m in mem for h in m["helpers"])),
        }
        out["memory"]["total_mib_per_ws"] = (out["memory"]["container_pss_mib_per_ws"]
                                             + out["memory"]["helpers_pss_mib_per_ws"])
        for rep in range(reps):
            for n in (SMALL_N, SCALE_N):
                sec, res = common.timed_playbook(perry_tasks(topo, image, names[:n], worker), topo, 900)
                out["noop"][n].append(sec)
                out["changed"].append(anchor_converge.any_changed(res))
                common.log("%s rep %d no-op N=%d: %.2f s" % (topo.name, rep + 1, n, sec))
    finally:
        start = time.monotonic()
        topo.cleanup(prefix)
        out["cleanup_s"] = time.monotonic() - start
    out["noop_summary"] = {n: stats.summary(v) for n, v in out["noop"].items()}
    out["ratio_noop"] = stats.ratio(out["noop_summary"][SCALE_N]["median"], out["noop_summary"][SMALL_N]["median"])
    return out


def measure(topo, image, worker, reps: int = 3) -> dict:
    return {"topology": topo.name, "create_30": create_30(topo, image, worker),
            "scale_100": scale_100(topo, image, worker, reps)}


def verdict(value: float, target: float, what: str) -> str:
    if value is None:
        return "%s: not measured" % what
    if value <= target:
        return "%s **%.2f** (met, target <= %.2f)" % (what, value, target)
    return "%s **%.2f** (MISSED by %.2f, target <= %.2f)" % (what, value, value - target, target)


def report_lines(result: dict) -> list:
    c, s = result["create_30"], result["scale_100"]
    mem = s["memory"]
    lines = [
        "Topology: %s. Port ranges of its own (SSH %d-%d, worker %d-%d)." % ((result["topology"],) + tuple(SSH_RANGE + WORKER_RANGE)),
        "",
        "### Create %d" % c["n"],
        "",
        stats.markdown_table(["side", "seconds", "per workspace s"], [
            ["perry.fleet, one perry_workspace task", c["perry_s"], c["perry_s"] / c["n"]],
            ["anchor, a task per container", c["anchor_s"], c["anchor_s"] / c["n"]],
            ["bare `run -d`, one after another (engine's own cost)", c["engine_sum_s"], c["engine_sum_s"] / c["n"]],
        ]),
        "",
        "Bare `run -d` per container: median %.2f s, min-max %s." % (
            c["engine_per_run"]["median"], stats.range_text(c["engine_per_run"]["min"], c["engine_per_run"]["max"])),
        "",
        verdict(c["ratio_perry_anchor"], CREATE_TARGET, "Ratio perry.fleet / anchor at create %d:" % c["n"])
        + "; perry.fleet / bare serial engine runs: %.2f." % c["ratio_perry_engine"],
        "",
        "### No-op converge + health, %d vs %d (%d interleaved repetitions)" % (s["n"], s["small_n"], s["reps"]),
        "",
        stats.markdown_table(["N", "median s", "min-max"], [
            [n, s["noop_summary"][n]["median"], stats.range_text(s["noop_summary"][n]["min"], s["noop_summary"][n]["max"])]
            for n in (s["small_n"], s["n"])]),
        "",
        "Creating the %d (one task, every worker waited for): %.1f s. Any no-op run changed something: %s." % (
            s["n"], s["create_s"], "YES" if any(s["changed"]) else "no"),
        "",
        verdict(s["ratio_noop"], NOOP_TARGET, "Ratio t(%d) / t(%d):" % (s["n"], s["small_n"])),
        "",
        "### Memory per workspace at N=%d" % s["n"],
        "",
        stats.markdown_table(["quantity", "MiB"], [
            ["worker RSS, median", mem["worker_rss_mib"]["median"]],
            ["worker RSS, max", mem["worker_rss_mib"]["max"]],
            ["container PSS per workspace", mem["container_pss_mib_per_ws"]],
            ["host helpers PSS per workspace (%s)" % (", ".join(mem["helpers"]) or "-"), mem["helpers_pss_mib_per_ws"]],
            ["container + helpers PSS per workspace", mem["total_mib_per_ws"]],
        ]),
        "",
        verdict(mem["worker_rss_mib"]["median"], WORKER_RSS_TARGET, "Worker RSS at idle (median, MiB):"),
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--topology", default="podman-rootful", choices=["podman-rootful", "podman-rootless", "docker"])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", default=None, help="also write the raw numbers here")
    args = parser.parse_args()
    common.use_snapshot()
    try:
        topo = TOPOLOGIES[args.topology]
        image = build_workspace_image(topo)
        worker = common.worker_for(topo, common.worker_artifacts())
        result = measure(topo, image, worker, args.reps)
    finally:
        common.cleanup_all()
        common.drop_snapshot()
    print("\n".join(report_lines(result)))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
