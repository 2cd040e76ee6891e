"""Rolling a secret across N workspaces: in place (today) against a recreate of the same N (what a rotation cost
before secrets left the engine config), measured side by side in one run.

Run: $VENV/bin/python benchmarks/secret_roll.py [--topology podman-rootful] [--n 10] [--reps 3]
One perry_workspace task (list form) per sample, the whole ansible-playbook process timed. Per rep: the secret is
rotated for all N (in place: same containers, a stand-in agent process in each keeps running), then a user label is
changed for all N, which the engine cannot change in place (recreate: new containers, the processes are gone).
Figures are from one run on a shared machine: read the ratio, not the absolutes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

from stats import median, ratio, spread, text_table  # noqa: E402  pylint: disable=wrong-import-position
from topology import TOPOLOGIES, build_workspace_image, random_prefix, run_playbook  # noqa: E402  pylint: disable=wrong-import-position

AGENT = "sleep 86397"   # the stand-in for an agent at work


def converge(topo, image, names, secret, label) -> tuple:
    """(seconds of one perry_workspace run, its workspaces[] result)."""
    task = {"perry.fleet.perry_workspace": dict(
        topo.engine_args(), image=image,
        workspaces=[{"name": n, "secret_env": {"BENCH_API_KEY": secret}, "labels": {"bench.rev": label}} for n in names])}
    start = time.monotonic()
    out = run_playbook([task], topo, raise_on_fail=True, timeout=1800)
    return time.monotonic() - start, out["tasks"][0]["workspaces"]


def agents_running(topo, names) -> int:
    alive = 0
    for n in names:
        res = topo.cli("exec", "workspace-" + n, "sh", "-c", "pgrep -fx '%s' || true" % AGENT, check=False, timeout=60)
        alive += bool(res.stdout.split())
    return alive


def start_agents(topo, names) -> None:
    for n in names:
        topo.cli("exec", "-d", "-u", "workspace", "workspace-" + n, *AGENT.split(), timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--topology", default="podman-rootful", choices=sorted(TOPOLOGIES))
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    topo = TOPOLOGIES[args.topology]
    image = build_workspace_image(topo)
    prefix = random_prefix()
    names = ["%sroll%02d" % (prefix, i) for i in range(args.n)]
    in_place, recreate, survived, survived_recreate = [], [], [], []
    try:
        converge(topo, image, names, "secret-0", "0")
        for rep in range(1, args.reps + 1):
            start_agents(topo, names)
            seconds, ws = converge(topo, image, names, "secret-%d" % rep, str(rep - 1))
            assert all("recreate" not in w["actions"] for w in ws), [w["actions"] for w in ws]
            in_place.append(seconds)
            survived.append(agents_running(topo, names))
            seconds, ws = converge(topo, image, names, "secret-%d" % rep, str(rep))
            assert all("recreate" in w["actions"] for w in ws), [w["actions"] for w in ws]
            recreate.append(seconds)
            survived_recreate.append(agents_running(topo, names))
    finally:
        topo.cleanup(prefix)
    rows = [("secret rotated in place", median(in_place), "%.2f-%.2f" % spread(in_place), "%d/%d" % (min(survived), args.n)),
            ("same N recreated (label change)", median(recreate), "%.2f-%.2f" % spread(recreate), "%d/%d" % (max(survived_recreate), args.n))]
    print("\nrolling a secret across N=%d workspaces, topology %s, median of %d (whole ansible-playbook process)"
          % (args.n, args.topology, args.reps))
    print(text_table(["what", "seconds", "min-max", "agents still running"], rows))
    print("ratio in place / recreate: %.2f" % ratio(median(in_place), median(recreate)))


if __name__ == "__main__":
    main()
