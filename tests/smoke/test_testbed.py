"""The test bed itself: every engine topology runs a container that answers exec.

These fail loudly, with the engine's own words, when an engine is missing or misconfigured
(for example dockerd not running), so later failures are never blamed on the collection.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from topology import random_prefix

BASE_IMAGE = "localhost/perry-base:bookworm"


def _must(result: subprocess.CompletedProcess, what: str) -> str:
    if result.returncode != 0:
        pytest.fail("%s failed (rc=%d): %s" % (what, result.returncode, (result.stderr or result.stdout).strip()[-1500:]))
    return result.stdout


def test_container_runs_and_answers_exec(topology):
    name = "workspace-%ssmoke" % random_prefix()
    flags = ["--privileged"] if topology.runtime == "docker" else []
    try:
        _must(topology.cli("version", check=False, timeout=30), "%s: engine version" % topology.name)
        _must(topology.cli("run", "-d", "--name", name, "--stop-signal", "KILL", *flags, BASE_IMAGE, "sleep", "300", check=False, timeout=120),
              "%s: run %s" % (topology.name, BASE_IMAGE))
        out = _must(topology.cli("exec", name, "sh", "-c", "echo exec-ok; id -u", check=False, timeout=60),
                    "%s: exec" % topology.name)
        assert out.split() == ["exec-ok", "0"]
    finally:
        topology.cli("rm", "-f", name, check=False, timeout=60)


def test_rootless_podman_is_really_rootless():
    from topology import TOPOLOGIES
    info = json.loads(_must(TOPOLOGIES["podman-rootless"].cli("info", "--format", "json", check=False), "podman info"))
    assert info["host"]["security"]["rootless"] is True


def test_docker_privileged_gets_all_devices():
    from topology import TOPOLOGIES
    docker = TOPOLOGIES["docker"]
    out = _must(docker.cli("run", "--rm", "--privileged", BASE_IMAGE, "sh", "-c", "ls /dev | wc -l", check=False),
                "docker run --privileged")
    assert int(out.strip()) > 20, "a privileged container should see the host's devices"
