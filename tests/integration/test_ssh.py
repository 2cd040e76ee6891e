"""SSH from the developers' machines (issue 14 §4): a real key login through a non-loopback address of this machine
(the rootful podman bridge's gateway), keys from public key files on the controller applied in place, a password
login refused, a private key refused before anything is created."""

from __future__ import annotations

import os
import subprocess

import pytest

from topology import REPO, TOPOLOGIES, build_workspace_image, random_prefix, run_playbook

TOPO = TOPOLOGIES["podman-rootful"]
ROLE = [{"name": "workspace", "ansible.builtin.include_role": {"name": "perry.fleet.workspace"}}]


def bridge_gateway() -> str:
    """The default podman network's gateway: an address of this host on a bridge the test bed's podman made (asked
    of the test bed's git server script, which serves on it and makes sure the bridge is up)."""
    return subprocess.run([os.path.join(REPO, "scripts", "testbed", "gitd"), "gateway", "podman"], capture_output=True,
                          text=True, check=True, timeout=60).stdout.strip()


def keypair(tmp_path, name) -> tuple:
    key = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True, timeout=30)
    return str(key), str(key) + ".pub"


def ssh(key, port, host, *extra, command="id -un") -> subprocess.CompletedProcess:
    argv = ["ssh", "-i", key, "-p", str(port), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10", "-o", "IdentitiesOnly=yes", *extra,
            "workspace@" + host, command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def converge(image, name, gateway, keys, **item) -> dict:
    out = run_playbook(ROLE, timeout=900, extra_vars={
        "perry_workspace_runtime": "podman", "perry_workspace_image": image,
        "perry_workspace_ssh_bind_address": gateway, "perry_workspace_ssh_authorize": keys,
        "perry_workspace_list": [dict(name=name, **item)]})
    return out


def report_of(out) -> dict:
    facts = [t["ansible_facts"]["perry_workspace_report"] for t in out["tasks"]
             if "perry_workspace_report" in t.get("ansible_facts", {})]
    assert facts, out["stdout"][-3000:]
    return facts[-1][0]


@pytest.fixture
def name():
    value = random_prefix() + "ssh"
    yield value
    TOPO.cleanup(value)


def test_key_login_from_a_bridge_address_keys_rotated_in_place(tmp_path, name):
    image = build_workspace_image(TOPO)
    gateway = bridge_gateway()
    assert not gateway.startswith("127."), gateway
    key1, pub1 = keypair(tmp_path, "one")
    key2, pub2 = keypair(tmp_path, "two")

    out = converge(image, name, gateway, [pub1])
    assert out["rc"] == 0, out["stdout"][-4000:]
    row = report_of(out)
    port = row["ssh_port"]
    assert row["bind_address"] == gateway
    assert row["ssh_command"] == "ssh -p %d workspace@%s" % (port, gateway)
    table = [t["msg"] for t in out["tasks"] if "LOGIN" in str(t.get("msg", ""))]
    assert table and row["ssh_command"] in table[0], table

    login = ssh(key1, port, gateway)
    assert login.returncode == 0 and login.stdout.strip() == "workspace", login.stderr
    refused = ssh(key1, port, gateway, "-o", "PreferredAuthentications=password,keyboard-interactive",
                  "-o", "PubkeyAuthentication=no")
    assert refused.returncode == 255 and "Permission denied" in refused.stderr, refused.stderr
    mode = TOPO.cli("exec", "workspace-" + name, "stat", "-c", "%a %U", "/home/workspace/.ssh/authorized_keys").stdout
    assert mode.split() == ["600", "workspace"], mode
    container_id = TOPO.inspect("workspace-" + name)["Id"]

    # rotated: the new key only, in place (same container, so running agents keep going)
    out = converge(image, name, gateway, [], ssh_authorize=[pub2])
    assert out["rc"] == 0, out["stdout"][-4000:]
    assert TOPO.inspect("workspace-" + name)["Id"] == container_id
    assert ssh(key2, port, gateway).returncode == 0
    old = ssh(key1, port, gateway)
    assert old.returncode == 255 and "Permission denied" in old.stderr, old.stderr
    again = converge(image, name, gateway, [], ssh_authorize=[pub2])
    # perry_workspace's result is the one whose entries carry ports and actions
    [converged] = [t for t in again["tasks"] if isinstance(t.get("workspaces"), list) and t["workspaces"]
                   and "actions" in t["workspaces"][0] and "ports" in t["workspaces"][0]]
    assert converged["changed"] is False, converged["workspaces"][0]["actions"]


def test_a_private_key_to_authorize_is_refused_before_anything_is_created(tmp_path, name):
    key1, _pub = keypair(tmp_path, "private")
    out = converge(build_workspace_image(TOPO), name, "127.0.0.1", [key1])
    assert out["rc"] != 0
    assert "is a private key" in out["stdout"], out["stdout"][-3000:]
    assert TOPO.inspect("workspace-" + name) is None
