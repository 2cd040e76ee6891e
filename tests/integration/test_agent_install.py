"""Issue 15 §3, agent versions changed in place, on real engines with our image and the real npm registry: an agent
the image left out is installed, then switched to another version, in the same container, while a process running
the agent's command keeps going; a broken version, a wrong integrity and a registry that never answers each fail
clearly within their bound and leave the version in use as it was.

The plain test image has no agents (build_workspace_image), so pi starts missing; pi is the smallest of the four.
"""

from __future__ import annotations

import json
import time

import pytest

from topology import run_module

MODULE = "perry.fleet.perry_agent_install"
# Each topology downloads and installs pi three times (about two minutes each).
TOPOLOGY_NAMES = ["podman-rootful", "podman-rootless", "docker"]
PI = {  # the registry's dist.integrity of @mariozechner/pi-coding-agent at each version
    "0.73.1": "sha512-gXQh3SaZmWTfVMc4Ao5+LGbVeKvzyO7tolok0nLsZgq9nGjZx/EEU3NM8C+qUnB4Nvs2rswG5qOVgLzQkq0fHQ==",
    "0.73.0": "sha512-Fs2dRIgtjDT8X5VDGNGzxj251B0FvkRsgX03YJv1FK4wg5Maj+jkf8/5A6tbPnPcXsCgs41xxJRf3tF5vJRccA==",
}


def ok(result):
    assert not result.get("failed"), json.dumps({k: result.get(k) for k in ("msg", "workspaces")}, indent=1)[-3000:]
    return result


def pi(version):
    return {"pi": {"version": version, "integrity": PI.get(version, PI["0.73.0"])}}


def pi_version(topology, cname):
    """What a new login shell of the workspace user (what ssh gives) runs as pi."""
    res = topology.cli("exec", "-u", "workspace", cname, "bash", "-lc", "pi --version 2>&1", check=False)
    return res.stdout.strip() if res.returncode == 0 else None


@pytest.mark.parametrize("topology", TOPOLOGY_NAMES, indirect=True)
def test_an_agent_is_installed_and_switched_in_place_and_a_failed_install_keeps_the_old(topology, workspace_image, prefix):
    name = prefix + "agents"
    cname = "workspace-" + name
    try:
        ok(run_module("perry.fleet.perry_workspace", {"name": name, "image": workspace_image}, topology))
        cid = topology.inspect(cname)["Id"]
        assert pi_version(topology, cname) is None, "the plain test image should have no pi"

        # check mode says what would change and installs nothing
        would = ok(run_module(MODULE, {"names": [name], "agents": pi("0.73.1")}, topology, check=True, diff=True))
        assert would["changed"] and would["workspaces"][0]["agents"]["pi"] == {"before": None, "after": "0.73.1", "image": None}
        assert would["diff"] == {"before": {name: {"pi": None}}, "after": {name: {"pi": "0.73.1"}}}
        assert pi_version(topology, cname) is None

        ok(run_module(MODULE, {"names": [name], "agents": pi("0.73.1")}, topology))
        assert pi_version(topology, cname) == "0.73.1"
        again = ok(run_module(MODULE, {"names": [name], "agents": pi("0.73.1")}, topology))
        assert not again["changed"]
        assert len(again["commands"]) == 1 and " exec " in again["commands"][0]["cmd"], again["commands"]

        # An agent at work (a process started through the agent's command) while its version is switched.
        topology.cli("exec", "-d", "-u", "workspace", cname, "bash", "-c", "exec -a /usr/local/bin/pi sleep 86398")
        time.sleep(0.5)
        pid = topology.cli("exec", cname, "sh", "-c", "pgrep -f '^/usr/local/bin/pi 86398' || true").stdout.split()
        assert pid, "the stand-in agent did not start"
        ok(run_module(MODULE, {"names": [name], "agents": pi("0.73.0")}, topology))
        assert pi_version(topology, cname) == "0.73.0"
        assert topology.cli("exec", cname, "sh", "-c", "pgrep -f '^/usr/local/bin/pi 86398' || true").stdout.split() == pid
        kept = topology.cli("exec", cname, "ls", "/opt/perry/agents/pi").stdout.split()
        assert kept == ["0.73.0", "0.73.1"], kept

        # A version the registry does not have: fails with npm's words, the old version stays in use.
        bad = run_module(MODULE, {"names": [name], "agents": pi("0.73.99")}, topology)
        assert bad["failed"] and bad["failed_names"] == [name], bad
        assert "0.73.99" in bad["msg"] and "old version stays in use" in bad["msg"], bad["msg"]
        assert "ETARGET" in bad["msg"] or "No matching version" in bad["msg"], bad["msg"]
        assert pi_version(topology, cname) == "0.73.0"

        # A wrong pinned integrity: refused by the tarball check, nothing switched.
        wrong = run_module(MODULE, {"names": [name], "agents": {"pi": {"version": "0.72.1", "integrity": PI["0.73.0"]}}}, topology)
        assert wrong["failed"] and "integrity" in wrong["msg"] and "0.72.1" in wrong["msg"], wrong["msg"]
        assert pi_version(topology, cname) == "0.73.0"

        # A registry that accepts connections and never answers (inside the workspace, on its own loopback).
        topology.cli("exec", "-d", "-u", "workspace", cname, "node", "-e",
                     "require('net').createServer(() => {}).listen(4873, '127.0.0.1')")
        time.sleep(1)
        start = time.monotonic()
        stalled = run_module(MODULE, {"names": [name], "agents": pi("0.72.1"), "registry": "http://127.0.0.1:4873/",
                                      "timeout": 20}, topology)
        elapsed = time.monotonic() - start
        assert stalled["failed"] and "timeout=20" in stalled["msg"], stalled["msg"]
        assert elapsed < 20 + 30, "the stalled registry held the task for %.0f s" % elapsed
        assert pi_version(topology, cname) == "0.73.0"
        # The container is the one made at the start: nothing here recreated it.
        assert topology.inspect(cname)["Id"] == cid
        # The next install clears what the killed one left, and a version installed before is switched to again.
        ok(run_module(MODULE, {"names": [name], "agents": pi("0.73.1")}, topology))
        leftovers = topology.cli("exec", cname, "sh", "-c", "ls -A /opt/perry/agents/pi").stdout.split()
        assert not [e for e in leftovers if e.startswith(".partial")], leftovers
        assert pi_version(topology, cname) == "0.73.1"
    finally:
        run_module("perry.fleet.perry_workspace", {"name": name, "state": "absent", "purge": True}, topology, timeout=300)
