"""Issue 15 §4, secrets and files in place, on real engines with our image: rotating a secret or editing a file keeps
the container and its running processes (an agent mid-task), new shells see the new values, and no secret value
is in the engine's config (inspect) at any point.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time

import pytest

from topology import run_module

MODULE = "perry.fleet.perry_workspace"


def ok(result):
    assert not result.get("failed"), json.dumps({k: result.get(k) for k in ("msg", "stderr", "commands")}, indent=1)
    return result


def login_shell(topology, cname, script):
    """A login shell of the workspace user (what ssh gives): it loads ~/.config/perry/secrets.env."""
    return topology.cli("exec", "-u", "workspace", cname, "bash", "-lc", script).stdout.strip()


def agent_pid(topology, cname):
    out = topology.cli("exec", cname, "sh", "-c", "pgrep -fx 'sleep 86399' || true").stdout.split()
    return out[0] if out else None


@pytest.mark.parametrize("topology", ["podman-rootful", "podman-rootless", "docker"], indirect=True)
def test_a_rotated_secret_and_an_edited_file_keep_the_container_and_its_agent(topology, workspace_image, prefix):
    name = prefix + "inplace"
    cname = "workspace-" + name
    one, two = "first-" + prefix + "value", "second-" + prefix + "value"
    base = {"name": name, "image": workspace_image, "env": {"PLAIN_SETTING": "plain"}}
    created = ok(run_module(MODULE, dict(base, secret_env={"AGENT_TOKEN": one},
                                         files=[{"dest": "~/.inplace.conf", "content": "v1\n"}]), topology))
    first = created["workspaces"][0]
    assert login_shell(topology, cname, 'echo "$AGENT_TOKEN|$PLAIN_SETTING"') == one + "|plain"
    # a long-running process standing in for an agent mid-task
    topology.cli("exec", "-d", "-u", "workspace", cname, "sleep", "86399")
    pid = agent_pid(topology, cname)
    assert pid, "the stand-in agent did not start"

    rotated = ok(run_module(MODULE, dict(base, secret_env={"AGENT_TOKEN": two, "SECOND_KEY": "k2 it's"},
                                         files=[{"dest": "~/.inplace.conf", "content": "v2\n"}]), topology))
    w = rotated["workspaces"][0]
    assert rotated["changed"] and w["container_id"] == first["container_id"], w
    assert w["actions"] == ["place 3 file(s)"] and "recreate_reasons" not in w, w   # env.sh, secrets.env, the file
    assert agent_pid(topology, cname) == pid, "the running process did not survive the rotation"
    assert login_shell(topology, cname, 'echo "$AGENT_TOKEN|$SECOND_KEY"; cat ~/.inplace.conf') == two + "|k2 it's\nv2"
    mode = topology.cli("exec", cname, "stat", "-c", "%a %U", "/home/workspace/.config/perry/secrets.env").stdout.split()
    assert mode == ["600", "workspace"]
    inspected = topology.cli("inspect", cname).stdout
    assert one not in inspected and two not in inspected and "AGENT_TOKEN" not in inspected
    assert one not in json.dumps(rotated) and two not in json.dumps(rotated)

    again = ok(run_module(MODULE, dict(base, secret_env={"AGENT_TOKEN": two, "SECOND_KEY": "k2 it's"},
                                       files=[{"dest": "~/.inplace.conf", "content": "v2\n"}]), topology))
    assert not again["changed"], again["workspaces"][0]["actions"]

    # a restart runs the entrypoint again: it must leave the secrets written in place alone
    ok(run_module(MODULE, dict(base, state="restarted", secret_env={"AGENT_TOKEN": two, "SECOND_KEY": "k2 it's"}),
                  topology))
    assert login_shell(topology, cname, 'echo "$AGENT_TOKEN"') == two
    topology.cli("exec", "-d", "-u", "workspace", cname, "sleep", "86399")   # the restart ended the first one
    pid = agent_pid(topology, cname)
    assert pid, "the stand-in agent did not start"

    # an env change is a file in place too: same container, the agent keeps going, new shells see the value, and
    # the engine's config never carries it
    env_change = ok(run_module(MODULE, dict(base, env={"PLAIN_SETTING": "changed " + prefix},
                                            secret_env={"AGENT_TOKEN": two}), topology))["workspaces"][0]
    assert env_change["container_id"] == first["container_id"], env_change
    assert env_change["actions"] == ["place 2 file(s)"] and "recreate_reasons" not in env_change, env_change
    assert agent_pid(topology, cname) == pid, "the running process did not survive the env change"
    assert login_shell(topology, cname, 'echo "$PLAIN_SETTING|$AGENT_TOKEN"') == "changed " + prefix + "|" + two
    assert "changed " + prefix not in topology.cli("inspect", cname).stdout
    mode = topology.cli("exec", cname, "stat", "-c", "%a %U", "/home/workspace/.config/perry/env.sh").stdout.split()
    assert mode == ["644", "workspace"]


@pytest.mark.parametrize("topology", ["podman-rootful", "podman-rootless", "docker"], indirect=True)
def test_limits_are_updated_in_place_on_docker_and_recreate_on_podman(topology, workspace_image, prefix):
    name = prefix + "limits"
    cname = "workspace-" + name
    base = {"name": name, "image": workspace_image, "memory": "256m", "cpus": 1.0, "pids_limit": 300}
    first = ok(run_module(MODULE, base, topology))["workspaces"][0]
    topology.cli("exec", "-d", "-u", "workspace", cname, "sleep", "86399")
    pid = agent_pid(topology, cname)
    assert pid, "the stand-in agent did not start"
    more = dict(base, memory="512m", cpus=1.5, pids_limit=400)

    checked = ok(run_module(MODULE, more, topology, check=True, diff=True))
    check = checked["workspaces"][0]
    if topology.runtime == "docker":
        assert check["actions"] == ["update_resources"], check
        assert checked["diff"]["before"][name] == {"resources": {"memory": "256m", "cpus": 1.0, "pids_limit": 300}}
        assert checked["diff"]["after"][name] == {"resources": {"memory": "512m", "cpus": 1.5, "pids_limit": 400}}
    else:
        assert "recreate" in check["actions"] and check["recreate_reasons"] == ["resources"], check
    # rootless podman on this host's cgroup v1 accepts limits and ignores them (inspect shows 0): nothing to read
    limits_shown = not topology.become_user
    host_config = json.loads(topology.cli("inspect", cname).stdout)[0]["HostConfig"]
    if limits_shown:
        assert host_config["Memory"] == 256 * 1024 ** 2, "check mode changed the container"

    done = ok(run_module(MODULE, more, topology))["workspaces"][0]
    host_config = json.loads(topology.cli("inspect", cname).stdout)[0]["HostConfig"]
    if limits_shown:
        assert (host_config["Memory"], host_config["NanoCpus"], host_config["PidsLimit"]) == (
            512 * 1024 ** 2, 1500000000, 400), host_config
    if topology.runtime == "docker":
        assert done["container_id"] == first["container_id"] and done["actions"] == ["update_resources"], done
        assert "recreate_reasons" not in done
        assert agent_pid(topology, cname) == pid, "the running process did not survive the update"
    else:
        # podman 4.3 cannot: `podman update` fails (rc 125) or leaves HostConfig as it was, so the module recreates
        assert done["container_id"] != first["container_id"] and done["recreate_reasons"] == ["resources"], done
    again = ok(run_module(MODULE, more, topology))
    assert not again["changed"], again["workspaces"][0]["actions"]


@pytest.mark.parametrize("topology", ["podman-rootful", "podman-rootless", "docker"], indirect=True)
def test_a_worker_upgrade_keeps_the_container_and_a_running_process(topology, workspace_image, prefix, worker_artifacts):
    """A new worker release (same dist with changed content) is synced into the running container and restarted
    there; the container and a process started in it (an agent mid-task) stay, and the new worker answers."""
    name = prefix + "wup"
    cname = "workspace-" + name
    release = tempfile.mkdtemp(prefix="perry-worker-release-", dir="/var/tmp")  # readable by the rootless user
    try:
        os.chmod(release, 0o755)
        new = os.path.join(release, "dist")
        shutil.copytree(worker_artifacts["dist"], new)
        with open(os.path.join(new, "cli.js"), "a") as fh:
            fh.write("\n// perry.fleet test: another worker release\n")
        base = {"name": name, "image": workspace_image}
        ok(run_module(MODULE, dict(base, worker_source=worker_artifacts["dist"]), topology))
        cid = topology.inspect(cname)["Id"]
        topology.cli("exec", "-d", "-u", "workspace", cname, "sleep", "86396")
        time.sleep(0.5)
        pid = topology.cli("exec", cname, "sh", "-c", "pgrep -fx 'sleep 86396' || true").stdout.split()
        assert pid, "the stand-in agent did not start"
        upgraded = ok(run_module(MODULE, dict(base, worker_source=new), topology))
        w = upgraded["workspaces"][0]
        assert w["worker"]["changed"] and not any(a.startswith("recreate") for a in w["actions"]), w
        assert topology.inspect(cname)["Id"] == cid
        assert topology.cli("exec", cname, "sh", "-c", "pgrep -fx 'sleep 86396' || true").stdout.split() == pid
        health = ok(run_module("perry.fleet.perry_worker_health", {"name": name, "timeout": 60}, topology))
        assert health["workspaces"][0]["healthy"], health
    finally:
        shutil.rmtree(release, ignore_errors=True)
