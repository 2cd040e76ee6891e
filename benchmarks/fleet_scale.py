"""A simulated fleet (issue 16 §4): `site.yml` converge time against the number of dev hosts, forks 5 and 20.

The dev hosts are privileged rootful-podman containers with their own podman and python3, reached with the
containers.podman.podman connection: molecule's fleet scenario, made and removed by its own create.yml and
destroy.yml with an inventory of HOSTS hosts written here (one workspace each, runtime podman). The workspace
image is built once on this machine and loaded into every host (create.yml).

For each forks value (ansible's default 5, the project's ansible.cfg 20) and host count (1, 2, 4, 8: `--limit`
to the first n hosts), the whole `ansible-playbook site.yml` process is timed: first the converge that creates
the hosts' workspaces (once per host, in the order 1, 2, 4, 8 hosts, so each run creates only the new hosts'
workspaces and its time is the slowest new host's), then idempotent converges, interleaved repetitions.
If time grew with the sum of the hosts, t(8) / t(1) would be near 8; with the slowest host, near 1.

Run alone: $VENV/bin/python benchmarks/fleet_scale.py --hosts 8 --reps 2
`benchmarks/run --parts fleet` calls measure().
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import common
import stats
import yaml

FLEET = os.path.join(common.REPO, "molecule", "fleet")
SIZES = (1, 2, 4, 8)
FORKS = (5, 20)
PREFIX = "bench-fleet-"


def inventory(hosts: int) -> dict:
    names = ["%s%d" % (PREFIX, i + 1) for i in range(hosts)]
    return {"perry_hosts": {
        "hosts": {n: {"perry_workspace_list": [{"name": n + "a"}]} for n in names},
        "vars": {
            "ansible_connection": "containers.podman.podman",
            "ansible_python_interpreter": "/usr/bin/python3",
            "perry_runtime": "podman",
            "perry_image_name": "localhost/perry:molecule",
            "perry_image_base": "localhost/perry-base:bookworm",
            "perry_image_ca_certificates": "{{ query('ansible.builtin.fileglob', '/usr/local/share/ca-certificates/*.crt') | sort }}",
            "perry_image_claude_code_version": "",
            "perry_image_opencode_version": "",
            "perry_workspace_runtime": "podman",
            # No engine is provisioned inside a dev host: the fleet measures the workspace itself.
            "perry_workspace_docker_host": "tcp://podman-in-podman:2375",
        }}}


def playbook(path: str, inv: str, timeout: float, forks: int = 20, limit: list | None = None) -> tuple:
    """(seconds of the whole ansible-playbook process, recap line per host)."""
    argv = [common.topology.venv_bin("ansible-playbook"), "-i", inv, path]
    if limit:
        argv += ["--limit", ",".join(limit)]
    env = dict(os.environ, ANSIBLE_FORKS=str(forks), ANSIBLE_NOCOLOR="1",
               ANSIBLE_COLLECTIONS_PATH=common.topology.COLLECTIONS)
    start = time.monotonic()
    proc = common.run(argv, timeout, check=False, cwd=common.REPO, env=env)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError("%s failed (rc %d):\n%s" % (os.path.basename(path), proc.returncode, proc.stdout[-3000:]))
    recap = [line.strip() for line in proc.stdout.splitlines() if line.startswith(PREFIX) and "ok=" in line]
    return seconds, recap


def changed(recap: list) -> bool:
    return any("changed=0" not in line for line in recap)


def measure(hosts: int = 8, reps: int = 2) -> dict:
    sizes = [n for n in SIZES if n <= hosts]
    names = ["%s%d" % (PREFIX, i + 1) for i in range(hosts)]
    out = {"hosts": hosts, "sizes": sizes, "forks": list(FORKS), "reps": reps, "create": {}, "noop": {},
           "noop_changed": False}
    with tempfile.TemporaryDirectory(prefix="perry-fleet-bench-") as tmp:
        inv = os.path.join(tmp, "inventory.yml")
        with open(inv, "w") as fh:
            yaml.safe_dump(inventory(hosts), fh)
        site = os.path.join(common.REPO, "site.yml")
        try:
            common.log("fleet: %d dev hosts (molecule/fleet/create.yml)" % hosts)
            out["hosts_create_s"], _r = playbook(os.path.join(FLEET, "create.yml"), inv, 2400)
            for n in sizes:
                sec, recap = playbook(site, inv, 1800, limit=names[:n])
                out["create"][n] = sec
                common.log("fleet: site.yml creating on hosts 1-%d: %.1f s" % (n, sec))
            for forks in FORKS:
                out["noop"][forks] = {n: [] for n in sizes}
            for rep in range(reps):
                for forks in FORKS:
                    for n in sizes:
                        sec, recap = playbook(site, inv, 1800, forks=forks, limit=names[:n])
                        out["noop"][forks][n].append(sec)
                        out["noop_changed"] = out["noop_changed"] or changed(recap)
                        common.log("fleet rep %d forks %d hosts %d: no-op %.1f s" % (rep + 1, forks, n, sec))
        finally:
            playbook(os.path.join(FLEET, "destroy.yml"), inv, 600)
    out["noop_summary"] = {f: {n: stats.summary(v) for n, v in by_n.items()} for f, by_n in out["noop"].items()}
    return out


def report_lines(result: dict) -> list:
    sizes, forks = result["sizes"], result["forks"]
    rows = []
    for n in sizes:
        row = [n]
        for f in forks:
            s = result["noop_summary"][f][n]
            row += [s["median"], stats.range_text(s["min"], s["max"])]
        base = result["noop_summary"][forks[-1]][sizes[0]]["median"]
        row.append(stats.ratio(result["noop_summary"][forks[-1]][n]["median"], base))
        rows.append(row)
    header = ["hosts"] + [h for f in forks for h in ("forks %d median s" % f, "forks %d min-max" % f)]
    header.append("t(n) / t(1), forks %d" % forks[-1])
    lines = [
        "Dev hosts: privileged rootful-podman containers (molecule/fleet), one workspace each, made in %.0f s. "
        "Idempotent `site.yml`, %d interleaved repetitions; any changed: %s." % (
            result["hosts_create_s"], result["reps"], "YES" if result["noop_changed"] else "no"),
        "",
        stats.markdown_table(header, rows),
        "",
        "First converge (creates the workspaces of the hosts added since the previous size, forks 20):",
        "",
        stats.markdown_table(["hosts", "seconds"], [[n, result["create"][n]] for n in sizes]),
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=8)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--json", default=None, help="also write the raw numbers here")
    args = parser.parse_args()
    common.use_snapshot()
    try:
        result = measure(args.hosts, args.reps)
    finally:
        common.drop_snapshot()
    print("\n".join(report_lines(result)))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
