"""Every benchmark in one run (called by benchmarks/run): tables on stdout, report.md + results.json + PNGs.

Order (sequential, so no part competes with another for the two cores):
  1. converge + health, perry.fleet vs anchor, podman-rootless (health latency of podman transports measured
     on its workspaces while they exist), then docker (docker transports likewise)
  2. create cost, N up to 30, podman-rootless
  3. worker session listing benchmark (bun)
  4. bad-input matrix: case counts from tests/integration/bad_inputs.py and a timed pytest run
  5. scale on one host, podman-rootful: create 30 vs the anchor's loop, no-op converge of 100 vs 10, memory at 100
  6. a simulated fleet: site.yml on 1, 2, 4, 8 dev hosts (containers), forks 5 and 20
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

import common
import stats
import anchor_converge
import create_cost
import engine_cost
import fleet_scale
import health_latency
import scale_cost
from topology import TOPOLOGIES, build_workspace_image  # pylint: disable=wrong-import-order

RESULTS = os.path.join(common.HERE, "results")
BAD_INPUTS = os.path.join(common.REPO, "tests", "integration", "bad_inputs.py")
BAD_INPUT_TEST = os.path.join(common.REPO, "tests", "integration", "test_bad_input.py")
BAD_INPUT_BUDGET = 120  # seconds ("under ~2 minutes"); over this the pytest run is cut and reported as such


# ------------------------------------------------------------------------------------------ parts
SESSIONS_TARGET = 50.0   # issue 16: GET /sessions at 5,000 sessions >= 50x faster than the full rescan, p95 included
CONVERGE_TARGET = 0.15   # issue 16: converge + health N=10, perry.fleet / anchor
PARTS = ("converge", "create", "sessions", "bad-inputs", "scale", "fleet", "engine")


def sessions_bench(sessions: int = 5000, modes: str = "watch,stat-walk,full-rescan", idle_s: int = 60,
                   calls: int = 30) -> dict:
    """worker/bench/sessions_bench.js at one size: its table rows and ratio lines, parsed."""
    bun = os.environ.get("BUN") or "bun"
    start = time.monotonic()
    env = dict(os.environ, BENCH_SESSIONS=str(sessions), BENCH_MODES=modes, BENCH_IDLE_S=str(idle_s),
               BENCH_CALLS=str(calls))
    proc = common.run([bun, "bench/sessions_bench.js"], 900, cwd=os.path.join(common.REPO, "worker"), env=env)
    out = {"seconds": time.monotonic() - start, "stdout": proc.stdout, "rows": [], "sessions": sessions,
           "loadavg_at_start": list(os.getloadavg()), "ratios": {}, "ratio_lines": []}
    header = None
    for line in proc.stdout.splitlines():
        if not line.startswith("|") or set(line) <= set("|- "):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if header is None:
            header = cells
        else:
            out["rows"].append(dict(zip(header, cells)))
        out["header"] = header
    for line in proc.stdout.splitlines():
        if line.startswith("ratio full-rescan / "):
            out["ratio_lines"].append(line.strip())
            mode = line.split("/", 1)[1].split(":", 1)[0].strip()
            nums = dict(kv.strip().rsplit(" ", 1) for kv in line.split(":", 1)[1].split(","))
            out["ratios"][mode] = {k: float(v.rstrip("x")) for k, v in nums.items()}
        if line.startswith("seeded "):
            out["seed_line"] = line.strip()
        if line.startswith("bun "):
            out["bun_line"] = line.strip()
    if not out["rows"]:
        raise RuntimeError("sessions_bench printed no table:\n" + proc.stdout[-2000:] + proc.stderr[-2000:])
    return out


def sessions_parts() -> dict:
    """The issue-16 worker figures: 5,000 sessions in every mode (idle CPU over 60 s in watch mode), then
    50,000 sessions in watch mode (peak RSS)."""
    return {"at_5000": sessions_bench(5000), "at_50000": sessions_bench(50000, modes="watch", idle_s=0, calls=10)}


def sessions_verdict(sb: dict) -> str:
    r = (sb.get("at_5000") or {}).get("ratios", {}).get("watch")
    if not r:
        return "no watch-mode ratio measured"
    ok = r["median"] >= SESSIONS_TARGET and r["p95"] >= SESSIONS_TARGET
    return ("full rescan / watch at 5,000 sessions: median %.1fx, p95 %.1fx (target >= %.0fx, p95 included): %s"
            % (r["median"], r["p95"], SESSIONS_TARGET, "met" if ok else "MISSED"))


def _field(case, name):
    if isinstance(case, dict):
        return case.get(name)
    return getattr(case, name, None)


def bad_inputs(run_tests: bool = True) -> dict:
    out = {"present": os.path.exists(BAD_INPUTS), "test_present": os.path.exists(BAD_INPUT_TEST)}
    if not out["present"]:
        return out
    try:
        spec = importlib.util.spec_from_file_location("perry_bench_bad_inputs", BAD_INPUTS)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        cases = list(getattr(mod, "CASES"))
    except Exception as exc:  # pylint: disable=broad-except  # another engineer's file: report, do not crash
        out["error"] = "could not import bad_inputs.CASES: %s: %s" % (type(exc).__name__, exc)
        return out
    by_target, by_cat, by_both = {}, {}, {}
    for case in cases:
        target, cat = str(_field(case, "target")), str(_field(case, "category"))
        by_target[target] = by_target.get(target, 0) + 1
        by_cat[cat] = by_cat.get(cat, 0) + 1
        by_both.setdefault(target, {}).setdefault(cat, 0)
        by_both[target][cat] += 1
    out.update(total=len(cases), by_target=by_target, by_category=by_cat, by_target_category=by_both)
    if not (run_tests and out["test_present"]):
        return out
    with tempfile.TemporaryDirectory(prefix="perry-bench-junit-") as tmp:
        xml = os.path.join(tmp, "junit.xml")
        argv = [topo_python("pytest"), "-q", "-p", "no:cacheprovider", BAD_INPUT_TEST, "--junitxml=%s" % xml]
        start = time.monotonic()
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=BAD_INPUT_BUDGET, cwd=common.REPO, check=False)
        except subprocess.TimeoutExpired:
            out["pytest"] = {"timed_out": True, "budget_s": BAD_INPUT_BUDGET}
            return out
        seconds = time.monotonic() - start
        res = {"timed_out": False, "seconds": seconds, "rc": proc.returncode, "tail": proc.stdout.strip().splitlines()[-1:]}
        if os.path.exists(xml):
            root = ET.parse(xml).getroot()
            suite = root if root.tag == "testsuite" else root.find("testsuite")
            tests, fails, errs, skips = (int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
            res.update(tests=tests, failures=fails, errors=errs, skipped=skips, passed=tests - fails - errs - skips)
        out["pytest"] = res
    return out


def topo_python(tool: str) -> str:
    return common.topology.venv_bin(tool)


# ------------------------------------------------------------------------------------------ plots
def plots(results: dict, outdir: str) -> list:
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    files = []
    conv = {k: v for k, v in (results.get("converge") or {}).items() if "error" not in v}
    if conv:
        fig, axes = plt.subplots(1, len(conv), figsize=(6 * len(conv), 4.2), squeeze=False)
        for ax, (name, res) in zip(axes[0], conv.items()):
            ns = res["sizes"]
            for side, color, label in (("perry", "tab:blue", "perry.fleet"), ("anchor", "tab:red", "anchor (%s)" % (
                    "containers.podman" if "podman" in name else "community.docker"))):
                med = [res["by_n"][n][side + "_summary"]["median"] for n in ns]
                lo = [m - res["by_n"][n][side + "_summary"]["min"] for m, n in zip(med, ns)]
                hi = [res["by_n"][n][side + "_summary"]["max"] - m for m, n in zip(med, ns)]
                ax.errorbar(ns, med, yerr=[lo, hi], marker="o", capsize=4, color=color, label=label)
            ax.set_title("idempotent converge + health, %s" % name)
            ax.set_xlabel("workspaces (N)")
            ax.set_ylabel("seconds (median, bars: min-max of %d)" % res["reps"])
            ax.set_xticks(ns)
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
        files.append(_save(fig, outdir, "converge_vs_n.png"))
        plt.close(fig)
    cc = results.get("create")
    if cc and "error" not in cc and cc.get("fit_create_s"):
        ns = cc["sizes"]
        fig, ax = plt.subplots(figsize=(6, 4.2))
        ys = [cc["by_n"][n]["create_s"] for n in ns]
        fit = cc["fit_create_s"]
        ax.plot(ns, ys, "o", color="tab:blue", label="create run (whole ansible-playbook)")
        ax.plot([0, max(ns)], [fit["intercept"], fit["intercept"] + fit["slope"] * max(ns)], "--", color="tab:gray",
                label="fit: %.2f s/workspace + %.2f s, R²=%.3f" % (fit["slope"], fit["intercept"], fit["r2"]))
        ax.set_title("create N workspaces with worker, %s" % cc["topology"])
        ax.set_xlabel("workspaces (N)")
        ax.set_ylabel("seconds")
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        files.append(_save(fig, outdir, "create_seconds_vs_n.png"))
        plt.close(fig)
        fig, ax = plt.subplots(figsize=(6, 4.2))
        for key, color, label in (("worker_rss_mib", "tab:green", "worker RSS, sum"),
                                  ("container_rss_mib", "tab:orange", "container RSS (all processes), sum"),
                                  ("total_mib", "tab:purple", "container + host helpers PSS, sum")):
            ys = [cc["by_n"][n][key] for n in ns]
            fit = cc["fit_" + key]
            ax.plot(ns, ys, "o", color=color, label=label)
            ax.plot([0, max(ns)], [fit["intercept"], fit["intercept"] + fit["slope"] * max(ns)], "--", color=color,
                    label="fit: %.1f MiB/workspace, R²=%.3f" % (fit["slope"], fit["r2"]))
        ax.set_title("memory of N workspaces, %s" % cc["topology"])
        ax.set_xlabel("workspaces (N)")
        ax.set_ylabel("MiB")
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        files.append(_save(fig, outdir, "memory_vs_n.png"))
        plt.close(fig)
    lat = results.get("latency")
    if lat:
        fig, ax = plt.subplots(figsize=(7, 3.6))
        labels = list(lat)
        ax.barh(labels, [lat[k]["median_ms"] for k in labels], color="tab:blue", label="median")
        ax.plot([lat[k]["p95_ms"] for k in labels], labels, "k|", markersize=14, label="p95")
        ax.set_xscale("log")
        ax.set_xlabel("ms per GET /health (log scale)")
        ax.set_title("worker health latency per transport, %d calls each" % lat[labels[0]]["n"])
        ax.grid(alpha=0.3, axis="x")
        ax.legend()
        fig.tight_layout()
        files.append(_save(fig, outdir, "health_latency.png"))
        plt.close(fig)
    return files


def _save(fig, outdir, name):
    path = os.path.join(outdir, name)
    fig.savefig(path, dpi=110)
    return name


# ------------------------------------------------------------------------------------------ report
def _int_keys(obj: dict) -> dict:
    """JSON made the N keys of by_n strings; the parts index them by int."""
    return {int(k) if isinstance(k, str) and k.isdigit() else k: v for k, v in obj.items()}


def measured_note(results: dict, key: str) -> str:
    """Where a partial run (--parts) re-measured a part: when, at what load, on which commit."""
    m = (results.get("measured") or {}).get(key)
    if not m:
        return ""
    return (" **Re-measured on its own** (`benchmarks/run --parts ...`) on %s, load average at start %s, collection "
            "at `%s`." % (m["date"], " / ".join("%.2f" % x for x in m["loadavg"]), m["commit"][:12]))


def render(results: dict, pngs: list) -> tuple:
    """(markdown, stdout text)."""
    md, txt = [], []
    m = results["machine"]
    md.append("# perry.fleet benchmarks\n")
    md.append("Written by `benchmarks/run` on %s in %.1f minutes (wall time of the whole command, image check included). "
              "**All figures are from one run on a shared machine** (other engineers' test suites may have been running "
              "on the same engines and cores): read ratios and slopes, not absolutes.\n" % (m["date"], results["wall_s"] / 60))
    md.append(stats.markdown_table(["machine", ""], [
        ["cores", m["cores"]], ["memory (MemTotal)", "%.1f GiB" % m["memory_gib"]], ["kernel", m["kernel"]],
        ["podman", m["podman"]], ["docker", m["docker"]], ["python", m["python"]],
        ["load average at start (1/5/15 min)", " / ".join("%.2f" % x for x in m["loadavg_at_start"])],
        ["collection measured", "`%s` (%s), a `git archive` snapshot of HEAD"
         % (results["git"]["commit"][:12], results["git"]["subject"])],
    ]))
    md.append("")
    if results.get("measured"):
        prev = results.get("previous_run") or {}
        md.append("**Partial run** (`benchmarks/run --parts ...`): the parts marked \"re-measured\" below were measured "
                  "again (%s); every other figure is from the full run of %s (collection `%s`).\n"
                  % (", ".join(sorted(results["measured"])), prev.get("date"), (prev.get("commit") or "")[:12]))
    for fail in results.get("failures", []):
        md.append("**Phase `%s` failed (attempt %d)**: `%s`\n" % (fail["phase"], fail["attempt"], fail["error"][:600].replace("`", "'")))
    conv = {k: v for k, v in (results.get("converge") or {}).items() if "error" not in v}
    if conv:
        reps = next(iter(conv.values()))["reps"]
        md.append("## 1. Idempotent converge + health: perry.fleet vs anchor\n")
        md.append("One `ansible-playbook` process per measurement (start-up included). perry.fleet: `perry_workspace` (list "
                  "form, worker synced) + `perry_worker_health` (names). Anchor: per workspace `podman_container` / "
                  "`docker_container` + `*_container_exec true` + `*_container_exec curl /health`. Both sides' containers "
                  "exist before timing (anchor run twice untimed); smaller N use the first names of the N=%d set. "
                  "**%d interleaved repetitions** (for each rep, for each N: perry, then anchor); median and min-max. "
                  "Rootless runs go through `become` (su) on both sides alike. "
                  "The anchor's containers carry no worker, so its health exec is refused at once (failed_when: false): "
                  "that makes the anchor cheaper than a real check, never dearer.\n"
                  % (max(next(iter(conv.values()))["sizes"]), reps))
        for name, res in conv.items():
            md.append("### %s\n" % name)
            note = measured_note(results, "converge:" + name)
            if note:
                md.append(note.strip() + "\n")
            rows = anchor_converge.table_rows(res)
            md.append(stats.markdown_table(anchor_converge.HEADER, rows))
            setup = res["setup"]
            md.append("\nSetup (untimed in the table): perry.fleet created %d workspaces in %.1f s; the anchor created its "
                      "%d containers in %.1f s; the anchor's second run changed something: %s.\n"
                      % (max(res["sizes"]), setup["perry_create_s"], max(res["sizes"]), setup["anchor_create_s"],
                         "yes" if setup["anchor_second_run_changed"] else "no"))
            txt.append("converge + health, %s (median of %d interleaved reps)\n%s\n"
                       % (name, reps, stats.text_table(anchor_converge.HEADER, rows)))
        n10 = [(name, res["by_n"][max(res["sizes"])]["ratio"]) for name, res in conv.items()]
        verdicts = ", ".join("%s **%.2f** (%s)" % (k, v, "met" if v <= CONVERGE_TARGET else "missed") for k, v in n10)
        md.append("Ratio perry/anchor at N=%d: %s (target <= %.2f, issue 16).\n"
                  % (max(next(iter(conv.values()))["sizes"]), verdicts, CONVERGE_TARGET))
        txt.append("converge + health ratio perry/anchor at N=max: " + ", ".join(
            "%s %.2f (%s)" % (k, v, "met" if v <= CONVERGE_TARGET else "MISSED") for k, v in n10) +
            " (target <= %.2f)\n" % CONVERGE_TARGET)
        if "converge_vs_n.png" in pngs:
            md.append("![converge seconds vs N](converge_vs_n.png)\n")
    lat = results.get("latency")
    if lat:
        md.append("## 2. Worker health latency per transport\n")
        md.append("Single `GET /health` requests through the collection's own `Transport.request()` (targets chosen by "
                  "`select_target()`), in-process: no ansible-playbook start-up. One warm-up call, then %d timed calls "
                  "each, on a perry.fleet workspace of the converge benchmark. `http` is only used for an IP inside "
                  "docker0's subnet.\n" % lat[next(iter(lat))]["n"])
        rows = health_latency.table_rows(lat)
        md.append(stats.markdown_table(health_latency.HEADER, rows, 1))
        md.append("")
        txt.append("health latency per transport\n%s\n" % stats.text_table(health_latency.HEADER, rows, 1))
        if "health_latency.png" in pngs:
            md.append("![health latency](health_latency.png)\n")
    cc = results.get("create")
    if cc and "error" not in cc:
        md.append("## 3. Create cost up to N=%d workspaces (%s)\n" % (max(cc["sizes"]), cc["topology"]))
        md.append("For each N, from scratch: one `perry_workspace` run creates N workspaces with `worker_source` (timed: "
                  "the whole ansible-playbook process), `perry_worker_health` waits for every worker (untimed), then memory "
                  "is read from the host's /proc: worker RSS (VmRSS of the `perry worker serve` process), container PSS "
                  "(every process in its PID namespace; PSS shares common pages between containers instead of counting them "
                  "N times) and host helpers PSS (conmon, slirp4netns, rootlessport serving that container). Rootless "
                  "podman on this cgroup v1 host has no per-container cgroup, so `podman stats` has no memory figure. "
                  "Everything is removed before the next N. RSS counts pages shared by all containers (bun and the libraries "
                  "come from the same image layer) once per container; PSS splits them, hence PSS < summed RSS.\n")
        rows = create_cost.table_rows(cc)
        md.append(stats.markdown_table(create_cost.HEADER, rows))
        md.append("\nLeast-squares line over N (slope = cost per workspace; R² = how linear):\n")
        frows = create_cost.fit_rows(cc)
        md.append(stats.markdown_table(create_cost.FIT_HEADER, frows, 3))
        md.append("")
        txt.append("create cost, %s\n%s\n\n%s\n"
                   % (cc["topology"], stats.text_table(create_cost.HEADER, rows), stats.text_table(create_cost.FIT_HEADER, frows, 3)))
        for png, alt in (("create_seconds_vs_n.png", "create seconds vs N"), ("memory_vs_n.png", "memory vs N")):
            if png in pngs:
                md.append("![%s](%s)\n" % (alt, png))
    sb = results.get("sessions")
    if sb and "error" not in sb:
        md.append("## 4. Worker session listing (worker/bench/sessions_bench.js)\n")
        md.append("`cd worker && $BUN bench/sessions_bench.js` (env BENCH_SESSIONS, BENCH_MODES, BENCH_IDLE_S). "
                  "`watch`: the default worker (watchers feed a dirty set; a GET re-checks only changed paths); "
                  "`stat-walk`: `--no-watch` (one stat per file per GET, the worker before issue 16); `full-rescan`: "
                  "Perry's behaviour. A GET is timed from the request to the whole body received; the body is parsed "
                  "and its count checked outside the timed part. \"1 file changed\" appends to one session before "
                  "each call and times until a GET shows it. Idle CPU: utime+stime of the watch-mode worker over the "
                  "stated seconds with no change.%s\n" % measured_note(results, "sessions"))
        for key in sorted((k for k in sb if str(k).startswith("at_")), key=lambda k: int(k[3:])):
            part, size = sb[key], key[3:]
            if "error" in part or not part.get("rows"):
                continue
            md.append("### %s sessions\n" % format(int(size), ","))
            load = " / ".join("%.2f" % x for x in part["loadavg_at_start"])
            md.append("%s; %s; load average at start %s\n" % (part.get("seed_line", ""), part.get("bun_line", ""), load))
            header = part["header"]
            srows = [[r.get(h, "") for h in header] for r in part["rows"]]
            md.append(stats.markdown_table(header, srows))
            md.append("")
            for line in part.get("ratio_lines", []):
                md.append("%s\n" % line)
            txt.append("worker session listing, %s sessions\n%s\n%s\n" % (size, stats.text_table(header, srows),
                                                                          "\n".join(part.get("ratio_lines", []))))
        verdict = sessions_verdict(sb)
        md.append("**%s.**\n" % verdict)
        txt.append(verdict + "\n")
    bi = results.get("bad_inputs")
    md.append("## 5. Bad-input matrix\n")
    if bi is None:
        md.append("Skipped (--skip-bad-inputs).\n")
    elif "error" in bi and "present" not in bi:
        md.append("The count failed: %s\n" % bi["error"])
    elif not bi.get("present"):
        md.append("`tests/integration/bad_inputs.py`: not present.\n")
        txt.append("bad-input matrix: not present\n")
    elif bi.get("error"):
        md.append("`tests/integration/bad_inputs.py` present but %s.\n" % bi["error"])
        txt.append("bad-input matrix: %s\n" % bi["error"])
    else:
        cats = sorted(bi["by_category"])
        targets = sorted(bi["by_target"])
        rows = [[t] + [bi["by_target_category"][t].get(c, 0) or "" for c in cats] + [bi["by_target"][t]] for t in targets]
        rows.append(["**total**"] + [bi["by_category"][c] for c in cats] + [bi["total"]])
        md.append("%d cases in `tests/integration/bad_inputs.py` (`CASES`), by target (rows) and category (columns):\n"
                  % bi["total"])
        md.append(stats.markdown_table(["target"] + cats + ["total"], rows))
        md.append("")
        trow = [[t, bi["by_target"][t]] for t in targets] + [["total", bi["total"]]]
        txt.append("bad-input cases by target\n%s\n" % stats.text_table(["target", "cases"], trow))
        py = bi.get("pytest")
        if py is None:
            line = "`tests/integration/test_bad_input.py` not run (%s)." % ("not present" if not bi.get("test_present")
                                                                            else "--skip-bad-input-tests")
        elif py.get("timed_out"):
            line = "`pytest tests/integration/test_bad_input.py` did not finish within the %d s budget; no pass count." % py["budget_s"]
        elif "tests" in py:
            line = ("`pytest -q tests/integration/test_bad_input.py` (working tree, not the snapshot): **%d passed** of %d "
                    "(%d failed, %d errors, %d skipped) in %.1f s." % (py["passed"], py["tests"], py["failures"], py["errors"],
                                                                       py["skipped"], py["seconds"]))
        else:
            line = "pytest exited %d without a junit report: %s" % (py["rc"], " ".join(py.get("tail", [])))
        md.append(line + "\n")
        txt.append(line.replace("`", "").replace("**", "") + "\n")
    sc = results.get("scale")
    if sc and "error" not in sc:
        md.append("## 6. Scale on one host: create 30, no-op converge of 100 (benchmarks/scale_cost.py)\n")
        md.append(measured_note(results, "scale").strip() + "\n" if measured_note(results, "scale") else "")
        lines = scale_cost.report_lines(sc)
        md.append("\n".join(lines) + "\n")
        txt.append("scale on one host\n" + "\n".join(lines).replace("**", "") + "\n")
    fl = results.get("fleet")
    if fl and "error" not in fl:
        md.append("## 7. A simulated fleet: site.yml against host count (benchmarks/fleet_scale.py)\n")
        md.append(measured_note(results, "fleet").strip() + "\n" if measured_note(results, "fleet") else "")
        lines = fleet_scale.report_lines(fl)
        md.append("\n".join(lines) + "\n")
        txt.append("simulated fleet\n" + "\n".join(lines).replace("**", "") + "\n")
    en = results.get("engine")
    if en and "error" not in en:
        md.append("## 8. An engine per podman workspace: its cost (benchmarks/engine_cost.py)\n")
        md.append(measured_note(results, "engine").strip() + "\n" if measured_note(results, "engine") else "")
        lines = engine_cost.report_lines(en)
        md.append("\n".join(lines) + "\n")
        txt.append("engine per workspace\n" + "\n".join(lines).replace("**", "") + "\n")
    md.append("## Phases\n")
    md.append(stats.markdown_table(["phase", "seconds"], [[k, v] for k, v in results["phases"].items()] +
                                   [["**total (wall)**", results["wall_s"]]], 1))
    md.append("\nRaw numbers (every sample): [results.json](results.json).\n")
    return "\n".join(md), "\n".join(txt)


# ------------------------------------------------------------------------------------------ main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (N 1 2, 1 rep, create N 1 3, 10 latency calls)")
    parser.add_argument("--reps", type=int, default=None, help="converge repetitions (default 3, quick 1)")
    parser.add_argument("--out", default=None, help="output directory (default benchmarks/results; quick: a temp dir)")
    parser.add_argument("--skip-bad-input-tests", action="store_true")
    parser.add_argument("--skip-bad-inputs", action="store_true")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help="comma-separated subset of %s; with a subset the other parts of the existing "
                             "results.json are kept and the report says which parts this run re-measured" % ",".join(PARTS))
    parser.add_argument("--topologies", default="podman-rootless,docker",
                        help="converge topologies (podman-rootful, podman-rootless, docker)")
    args = parser.parse_args()
    parts = [x for x in args.parts.split(",") if x]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error("unknown part(s) %s: use %s" % (", ".join(unknown), ", ".join(PARTS)))
    conv_topos = [x for x in args.topologies.split(",") if x]
    bad = sorted(set(conv_topos) - {"podman-rootful", "podman-rootless", "docker"})
    if bad:
        parser.error("unknown topology %s: use podman-rootful, podman-rootless, docker" % ", ".join(bad))
    t0 = time.monotonic()
    sizes = [1, 2] if args.quick else [1, 5, 10]
    create_sizes = [1, 3] if args.quick else [1, 5, 10, 20, 30]
    reps = args.reps or (1 if args.quick else 3)
    calls = 10 if args.quick else health_latency.CALLS
    outdir = args.out or (tempfile.mkdtemp(prefix="perry-bench-quick-") if args.quick else RESULTS)
    os.makedirs(outdir, exist_ok=True)
    results = {"machine": common.machine_info(), "git": common.git_head(), "phases": {},
               "settings": {"converge_sizes": sizes, "reps": reps, "create_sizes": create_sizes, "latency_calls": calls}}
    phases = results["phases"]
    results["failures"] = []
    partial = set(parts) != set(PARTS) or conv_topos != ["podman-rootless", "docker"]
    previous = {}
    if partial and os.path.exists(os.path.join(outdir, "results.json")):
        with open(os.path.join(outdir, "results.json")) as fh:
            previous = json.load(fh, object_hook=_int_keys)
    measured = dict(previous.get("measured") or {})

    def stamp(key):
        measured[key] = {"date": results["machine"]["date"], "loadavg": list(os.getloadavg()),
                         "commit": results["git"]["commit"]}

    def phase(name, func, *a, **kw):
        start = time.monotonic()
        common.log("== " + name)
        try:
            return func(*a, **kw)
        finally:
            phases[name] = phases.get(name, 0.0) + time.monotonic() - start

    def attempt(name, func, *a, retries=1, **kw):
        """A phase that is run again once if it fails (the engines are shared: someone may restart dockerd);
        a second failure is recorded in the report instead of ending the run."""
        for i in range(retries + 1):
            try:
                return phase(name, func, *a, **kw)
            except Exception as exc:  # pylint: disable=broad-except
                err = "%s: %s" % (type(exc).__name__, str(exc)[:1500])
                common.log("%s failed (attempt %d): %s" % (name, i + 1, err))
                results["failures"].append({"phase": name, "attempt": i + 1, "error": err})
                for topo in TOPOLOGIES.values():
                    if topo.name in ("podman-rootless", "docker"):
                        common.wait_for_engine(topo)
        return {"error": err}

    common.use_snapshot()
    try:
        need_engines = "converge" in parts or "create" in parts or "scale" in parts
        artifacts = phase("worker build (cached)", common.worker_artifacts) if need_engines else None
        topos = [TOPOLOGIES[n] for n in conv_topos] if "converge" in parts else []
        if "create" in parts and TOPOLOGIES["podman-rootless"] not in topos:
            topos.append(TOPOLOGIES["podman-rootless"])
        images = {t.name: phase("image %s (cached by hash)" % t.name, build_workspace_image, t) for t in topos}
        results["converge"] = dict(previous.get("converge") or {})
        results["latency"] = dict(previous.get("latency") or {})
        for topo in topos if "converge" in parts else []:
            if topo.name not in conv_topos:
                continue
            measure_lat = health_latency.measure_podman if topo.runtime == "podman" else health_latency.measure_docker

            def ready(names, topo=topo, measure_lat=measure_lat):
                start = time.monotonic()
                out = measure_lat(topo, names[0], calls)
                phases["health latency %s" % topo.name] = time.monotonic() - start
                results["latency"].update(out)
                return True
            stamp("converge:" + topo.name)
            results["converge"][topo.name] = attempt("converge %s" % topo.name, anchor_converge.measure, topo, sizes, reps,
                                                     common.worker_for(topo, artifacts), images[topo.name], on_ready=ready)
        if "create" in parts:
            rl = TOPOLOGIES["podman-rootless"]
            stamp("create")
            results["create"] = attempt("create cost %s" % rl.name, create_cost.measure, rl, create_sizes,
                                        common.worker_for(rl, artifacts), images[rl.name])
        else:
            results["create"] = previous.get("create")
        if "scale" in parts:
            rf = TOPOLOGIES["podman-rootful"]
            image = images.get(rf.name) or phase("image %s (cached by hash)" % rf.name, build_workspace_image, rf)
            stamp("scale")
            results["scale"] = attempt("scale %s" % rf.name, scale_cost.measure, rf, image,
                                       common.worker_for(rf, artifacts), 2 if args.quick else 3, retries=0)
        else:
            results["scale"] = previous.get("scale")
        if "fleet" in parts:
            stamp("fleet")
            results["fleet"] = attempt("fleet", fleet_scale.measure, 2 if args.quick else 8, 1 if args.quick else 2,
                                       retries=0)
        else:
            results["fleet"] = previous.get("fleet")
        if "engine" in parts:
            rf = TOPOLOGIES["podman-rootful"]
            image = images.get(rf.name) or phase("image %s (cached by hash)" % rf.name, build_workspace_image, rf)
            stamp("engine")
            results["engine"] = attempt("engine cost %s" % rf.name, engine_cost.measure, rf, image, 3,
                                        1 if args.quick else 2, retries=0)
        else:
            results["engine"] = previous.get("engine")
    finally:
        common.cleanup_all()
        common.drop_snapshot()
    if "sessions" in parts:
        stamp("sessions")
        results["sessions"] = attempt("worker sessions bench", sessions_parts, retries=0)
    else:
        results["sessions"] = previous.get("sessions")
    if "bad-inputs" in parts and not args.skip_bad_inputs:
        stamp("bad-inputs")
        results["bad_inputs"] = attempt("bad-input matrix", bad_inputs, not args.skip_bad_input_tests, retries=0)
    else:
        results["bad_inputs"] = previous.get("bad_inputs") if "bad-inputs" not in parts else None
    if partial:
        results["measured"] = measured
        results["previous_run"] = previous.get("previous_run") or {
            "date": (previous.get("machine") or {}).get("date"), "commit": (previous.get("git") or {}).get("commit")}
    start = time.monotonic()
    pngs = plots(results, outdir)
    phases["plots"] = time.monotonic() - start
    results["wall_s"] = time.monotonic() - t0
    md, txt = render(results, pngs)
    with open(os.path.join(outdir, "report.md"), "w") as fh:
        fh.write(md)
    with open(os.path.join(outdir, "results.json"), "w") as fh:
        json.dump(results, fh, indent=1, default=str)
    print(txt)
    print("wall time %.1f s (%.1f min); report: %s" % (results["wall_s"], results["wall_s"] / 60, os.path.join(outdir, "report.md")))


if __name__ == "__main__":
    sys.exit(main())
