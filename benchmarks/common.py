"""Shared plumbing for the benchmarks: the collection snapshot, the worker artifacts, machine facts, timed runs.

Every benchmark runs against a snapshot of the committed collection (``git archive HEAD``) so that work in
progress in the shared checkout cannot change (or break) the code being measured half-way through a run.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
sys.path.insert(0, HERE)

import topology  # noqa: E402  pylint: disable=wrong-import-position

CACHE = os.environ.get("PERRY_FLEET_CACHE", "/var/cache/perry-fleet")
COLLECTION_DIRS = ["galaxy.yml", "meta", "plugins", "roles", "playbooks"]
_snapshot = {}
_prefixes = []   # (topology, prefix) of every workspace set made in this process, for cleanup_all()


def log(msg: str) -> None:
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def run(argv, timeout: float, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=check, **kw)


def git_head() -> dict:
    sha = run(["git", "-C", REPO, "rev-parse", "HEAD"], 30).stdout.strip()
    subject = run(["git", "-C", REPO, "log", "-1", "--format=%s"], 30).stdout.strip()
    return {"commit": sha, "subject": subject}


def use_snapshot() -> str:
    """Point topology.run_playbook (and in-process imports) at a snapshot of HEAD's collection; returns its path."""
    if "path" in _snapshot:
        return _snapshot["path"]
    root = tempfile.mkdtemp(prefix="perry-bench-collection-")
    dest = os.path.join(root, "ansible_collections", "perry", "fleet")
    os.makedirs(dest)
    archive = subprocess.run(["git", "-C", REPO, "archive", "--format=tar", "HEAD"] + COLLECTION_DIRS,
                             capture_output=True, timeout=120, check=True).stdout
    subprocess.run(["tar", "-x", "-C", dest], input=archive, capture_output=True, timeout=120, check=True)
    os.chmod(root, 0o755)  # the rootless user's become runs read these files
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o755)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o644)
    topology.COLLECTIONS = root
    sys.path.insert(0, root)
    _snapshot["path"] = root
    return root


def drop_snapshot() -> None:
    path = _snapshot.pop("path", None)
    if path:
        shutil.rmtree(path, ignore_errors=True)


def worker_artifacts() -> dict:
    """The worker built once per source hash (as tests/integration/conftest.py does)."""
    out = run([os.path.join(REPO, "worker", "build-cached.sh"), os.path.join(CACHE, "worker")], 600).stdout.strip()
    return {"dist": os.path.join(out, "dist"), "binary": os.path.join(out, "perry")}


def worker_for(topo, artifacts: dict) -> str:
    return artifacts["binary"] if topo.runtime == "docker" else artifacts["dist"]


def machine_info() -> dict:
    mem_kib = 0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])

    def version(argv):
        try:
            return run(argv, 30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "unavailable"
    load = os.getloadavg()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "host": platform.node(),
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1048576.0, 1),
        "kernel": platform.release(),
        "podman": version(["podman", "--version"]),
        "docker": version(["/usr/bin/docker", "version", "--format", "client {{.Client.Version}}, server {{.Server.Version}}"]),
        "python": platform.python_version(),
        "loadavg_at_start": [round(x, 2) for x in load],
    }


def timed_playbook(tasks: list, topo, timeout: float = 900) -> tuple:
    """(seconds of the whole ansible-playbook process, its result dict)."""
    start = time.monotonic()
    out = topology.run_playbook(tasks, topo, raise_on_fail=True, timeout=timeout)
    return time.monotonic() - start, out


def new_prefix(topo) -> str:
    """A random workspace-name prefix, remembered so cleanup_all() can remove what a failed cleanup left."""
    prefix = topology.random_prefix()
    _prefixes.append((topo, prefix))
    return prefix


def cleanup_all() -> None:
    """Remove every workspace set this process made (again): a `finally` cleanup fails silently while an engine
    is being restarted by someone else, and the containers' restart policy brings them back afterwards."""
    for topo, prefix in _prefixes:
        wait_for_engine(topo)
        topo.cleanup(prefix)


def wait_for_engine(topo, timeout: float = 90) -> bool:
    """Poll the engine until it answers (another engineer may be restarting dockerd); False after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if topo.cli("version", check=False, timeout=20).returncode == 0:
                return True
        except subprocess.TimeoutExpired:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(2)


def names_for(prefix: str, tag: str, n: int) -> list:
    return ["%s%s%02d" % (prefix, tag, i) for i in range(n)]


WORKER_RE = re.compile(r"(^|/)perry( |/current/cli\.js )worker serve")
