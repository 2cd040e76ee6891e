"""What an engine per workspace costs (issue 14 §1), on rootful podman, measured side by side in one run:
the workspace role creating N workspaces with perry_workspace_engine=none and with =workspace (interleaved
repetitions), then a no-op converge of each, and the memory of the workspace containers and of their engine
containers (PSS of every process in each container's PID namespace, plus its conmon; benchmarks/create_cost.py).

Run alone: $VENV/bin/python benchmarks/engine_cost.py --reps 2
`benchmarks/run --parts engine` calls measure().
"""

from __future__ import annotations

import argparse
import json
import time

import common
import stats
import create_cost
from topology import TOPOLOGIES, build_workspace_image, run_playbook  # pylint: disable=wrong-import-order

ROLE = [{"name": "workspace", "ansible.builtin.include_role": {"name": "perry.fleet.workspace"}}]
MODES = ("none", "workspace")
MIB = 1024.0


def converge(image, names, mode) -> float:
    start = time.monotonic()
    out = run_playbook(ROLE, timeout=1200, extra_vars={
        "perry_workspace_runtime": "podman", "perry_workspace_image": image, "perry_workspace_engine": mode,
        "perry_workspace_list": [{"name": n} for n in names]})
    elapsed = time.monotonic() - start
    if out["rc"] != 0:
        raise RuntimeError("converge (engine=%s) failed: %s" % (mode, out["stdout"][-2000:]))
    return elapsed


def engine_memory(topo, names) -> list:
    data = json.loads(topo.cli("container", "inspect", *["perry-engine-" + n for n in names], timeout=300).stdout)
    procs = create_cost.proc_table()
    return [create_cost.container_memory(int(d["State"]["Pid"]), "", procs) for d in data]


def measure(topo, image, n: int = 3, reps: int = 2, settle: float = 10.0) -> dict:
    samples = {m: {"create_s": [], "noop_s": [], "workspace_pss_mib": [], "engine_pss_mib": []} for m in MODES}
    for rep in range(reps):
        for mode in MODES if rep % 2 == 0 else reversed(MODES):
            prefix = common.new_prefix(topo)
            names = common.names_for(prefix, "eng", n)
            try:
                common.log("engine cost: rep %d, engine=%s, create %d" % (rep + 1, mode, n))
                samples[mode]["create_s"].append(converge(image, names, mode))
                samples[mode]["noop_s"].append(converge(image, names, mode))
                time.sleep(settle)   # idle: the engines' and workers' start-up work is over
                ws = create_cost.memory_of(topo, names)
                samples[mode]["workspace_pss_mib"].append(
                    sum(m["container_pss_kib"] + m["helpers_pss_kib"] for m in ws) / MIB / n)
                if mode == "workspace":
                    eng = engine_memory(topo, names)
                    samples[mode]["engine_pss_mib"].append(
                        sum(m["container_pss_kib"] + m["helpers_pss_kib"] for m in eng) / MIB / n)
            finally:
                topo.cleanup(prefix)
    summary = {m: {k: stats.summary(v) for k, v in s.items() if v} for m, s in samples.items()}
    none, ws = summary["none"], summary["workspace"]
    return {"topology": topo.name, "n": n, "reps": reps, "samples": samples, "summary": summary,
            "extra_create_s_per_workspace": (ws["create_s"]["median"] - none["create_s"]["median"]) / n,
            "extra_noop_s": ws["noop_s"]["median"] - none["noop_s"]["median"],
            "engine_pss_mib_per_workspace": ws["engine_pss_mib"]["median"]}


def report_lines(result: dict) -> list:
    s = result["summary"]
    rows = []
    for mode in MODES:
        row = s[mode]
        rows.append(["engine=%s" % mode, row["create_s"]["median"], row["noop_s"]["median"],
                     row["workspace_pss_mib"]["median"], row.get("engine_pss_mib", {}).get("median", 0.0)])
    return [
        "Topology: %s. The workspace role, N=%d workspaces, %d interleaved repetitions (medians)." % (
            result["topology"], result["n"], result["reps"]),
        "",
        stats.markdown_table(["side", "create N (s)", "no-op converge (s)", "workspace PSS per workspace (MiB)",
                              "engine PSS per workspace (MiB)"], rows),
        "",
        "An engine per workspace costs **%.2f s more create time per workspace**, %.2f s more on a no-op converge "
        "of %d, and **%.1f MiB PSS per workspace** for its engine at idle (podman service, tini, conmon)." % (
            result["extra_create_s_per_workspace"], result["extra_noop_s"], result["n"],
            result["engine_pss_mib_per_workspace"]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3)
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args()
    topo = TOPOLOGIES["podman-rootful"]
    result = measure(topo, build_workspace_image(topo), args.n, args.reps)
    print("\n".join(report_lines(result)))


if __name__ == "__main__":
    main()
