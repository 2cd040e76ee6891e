"""The README's main job as a new user runs it (issue 14's done-when): `sudo scripts/up` on this machine's podman,
then inside the workspace `dev` as `workspace`: `docker run --rm` of an image loaded into its own engine, this
checkout cloned into ~ from the test bed's git server (scripts/testbed/gitd), the post-start script ran, and an SSH
key login through a non-loopback address of this machine (the podman bridge's gateway); a password login is refused.

The main job owns the workspace `dev`: this test refuses to run when one exists already (a user's), and removes
it (purge) at the end."""

from __future__ import annotations

import json
import os
import socket
import subprocess

import pytest

from test_ssh import bridge_gateway, keypair, ssh
from topology import AGENTS_OFF, BASE_IMAGE, REPO, TOPOLOGIES, build_workspace_image, venv_bin

TOPO = TOPOLOGIES["podman-rootful"]


def inside(script, timeout=120, stdin=None) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", "exec", "-i", "-u", "workspace", "workspace-dev", "sh", "-c", script],
                          stdin=stdin, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def main_job_workspace():
    if TOPO.inspect("workspace-dev") is not None:
        pytest.fail("a workspace 'dev' exists on this machine: this test runs the main job, which owns it. Remove it "
                    "first: ansible-playbook playbooks/teardown.yml -e runtime=podman -e purge=true")
    yield "dev"
    subprocess.run([venv_bin("ansible-playbook"), "playbooks/teardown.yml", "-e", "runtime=podman", "-e", "purge=true"],
                   cwd=REPO, capture_output=True, timeout=600, check=False)
    TOPO.cleanup("dev")


def test_scripts_up_gives_a_dev_box_with_engine_repo_post_start_and_ssh(tmp_path, main_job_workspace):
    build_workspace_image(TOPO)  # the agents-off image, cached by content hash (scripts/up finds it)
    key, pub = keypair(tmp_path, "developer")
    # agents are not what this test is about; without them the image is the one the other tests cached
    extra = dict(AGENTS_OFF, perry_workspace_ssh_authorize=[pub])
    proc = subprocess.run([os.path.join(REPO, "scripts", "up"), "-e", json.dumps(extra)], cwd=REPO,
                          capture_output=True, text=True, timeout=1800, check=False)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    row = [ln.split() for ln in proc.stdout.splitlines() if ln.strip().startswith("dev ")][-1]
    # WORKSPACE RUNNING SSH WORKER HEALTHY VERSION TRANSPORT ENGINE SESSIONS INIT LOGIN
    assert row[1] == "True" and row[4] == "True" and row[7] == "up" and row[9] == "ok", row
    port = int(row[2])
    assert row[-4:] == ["ssh", "-p", str(port), "workspace@" + socket.gethostname()], row  # the LOGIN line

    # its own engine: an image loaded into it from outside, run from inside
    tar = str(tmp_path / "base.tar")
    subprocess.run(["podman", "save", "-o", tar, BASE_IMAGE], check=True, capture_output=True, timeout=300)
    with open(tar, "rb") as image:
        load = inside("docker load", stdin=image, timeout=300)
    assert "Loaded image" in load.stdout, load.stdout + load.stderr
    run = inside("docker run --rm %s cat /etc/debian_version" % BASE_IMAGE, timeout=120)
    assert run.stdout.strip().startswith("12"), run.stdout + run.stderr

    # the configured repo: this checkout's commit, cloned into ~/perry-fleet
    head = subprocess.run(["git", "-c", "safe.directory=*", "-C", REPO, "rev-parse", "HEAD"], capture_output=True,
                          text=True, timeout=30, check=True).stdout.strip()
    assert inside("git -C ~/perry-fleet rev-parse HEAD").stdout.strip() == head

    # the post-start script ran (its output is in the workspace's log)
    log = inside("cat ~/.cache/perry/post-start.log").stdout
    assert "perry-fleet at %s" % head[:7] in log, log[-2000:]

    # SSH from a non-loopback address of this machine, keys only
    gateway = bridge_gateway()
    assert not gateway.startswith("127."), gateway
    login = ssh(key, port, gateway, command="git -C ~/perry-fleet rev-parse HEAD")
    assert login.returncode == 0 and login.stdout.strip() == head, login.stderr
    refused = ssh(key, port, gateway, "-o", "PreferredAuthentications=password,keyboard-interactive",
                  "-o", "PubkeyAuthentication=no")
    assert refused.returncode == 255 and "Permission denied" in refused.stderr, refused.stderr
