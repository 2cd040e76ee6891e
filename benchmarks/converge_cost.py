"""Cost of an idempotent perry_workspace run for N workspaces: engine calls and seconds.

Run: $VENV/bin/python benchmarks/converge_cost.py [--topology podman-rootful] [--n 1 10] [--reps 5]
Creates N workspaces (prefix bench-), measures repeated no-change runs, removes everything.
Figures are from one run on a shared machine: read them as ratios, not absolutes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

from topology import TOPOLOGIES, build_workspace_image, random_prefix, run_playbook  # noqa: E402  pylint: disable=wrong-import-position


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--topology", default="podman-rootful", choices=sorted(TOPOLOGIES))
    parser.add_argument("--n", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    topo = TOPOLOGIES[args.topology]
    image = build_workspace_image(topo)
    rows = []
    for n in args.n:
        prefix = random_prefix()
        task = {"perry.fleet.perry_workspace": dict(topo.engine_args(), image=image,
                                                    workspaces=[{"name": "%sb%02d" % (prefix, i)} for i in range(n)]),
                "register": "r"}
        try:
            run_playbook([task], topo, raise_on_fail=True, timeout=1800)
            times, calls = [], []
            for _rep in range(args.reps):
                start = time.monotonic()
                out = run_playbook([task], topo, raise_on_fail=True)
                times.append(time.monotonic() - start)
                res = out["tasks"][0]
                assert not res["changed"], "not idempotent"
                calls.append(len(res["commands"]))
                module_seconds = sum(c.get("elapsed", 0) for c in res["commands"])
            rows.append((n, statistics.median(times), calls[-1], module_seconds))
        finally:
            topo.cleanup(prefix)
    print("\nidempotent perry_workspace run, topology %s, median of %d (whole ansible-playbook process)" % (args.topology, args.reps))
    print("%-4s %-12s %-13s %-22s" % ("N", "seconds", "engine calls", "engine seconds (last)"))
    for n, sec, calls, eng in rows:
        print("%-4d %-12.2f %-13d %-22.3f" % (n, sec, calls, eng))


if __name__ == "__main__":
    main()
