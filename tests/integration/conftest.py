"""Fixtures for integration tests: workspace images built by our own image role, worker artifacts."""

from __future__ import annotations

import glob
import os
import subprocess

import pytest

from topology import REPO, run_playbook

BASE_IMAGE = "localhost/perry-base:bookworm"
WORKSPACE_IMAGE = "localhost/perry:latest"
# Which engine store a topology's images live in, and how the image role reaches it.
_BUILDERS = {
    "podman-rootful": {"perry_image_engine": "podman", "perry_image_runtime": "podman"},
    "podman-rootless": {"perry_image_engine": "podman", "perry_image_runtime": "podman"},
    "docker-cli-podman": {"perry_image_engine": "podman", "perry_image_runtime": "podman"},  # same store as rootful
    "docker": {"perry_image_engine": "docker", "perry_image_engine_cli": "/usr/bin/docker", "perry_image_runtime": "docker"},
}
_built: dict = {}


def build_workspace_image(topology) -> str:
    """Build (or find, by content hash) the workspace image for a topology with roles/image."""
    store = "rootless" if topology.become_user else _BUILDERS[topology.name]["perry_image_engine"]
    if store in _built:
        return _built[store]
    extra = dict(_BUILDERS[topology.name])
    extra.update({
        "perry_image_name": WORKSPACE_IMAGE,
        "perry_image_base": BASE_IMAGE,
        "perry_image_ca_certificates": sorted(glob.glob("/usr/local/share/ca-certificates/*.crt")),
        # Agents are optional; tests skip them to keep builds short (site.yml installs them).
        "perry_image_claude_code_version": "",
        "perry_image_opencode_version": "",
    })
    out = run_playbook([{"name": "image", "ansible.builtin.include_role": {"name": "perry.fleet.image"}}],
                       topology if topology.become_user else None, extra_vars=extra, timeout=3000)
    if out["rc"] != 0:
        pytest.fail("building the workspace image for %s failed:\n%s" % (topology.name, out["stdout"][-4000:]))
    _built[store] = WORKSPACE_IMAGE
    return WORKSPACE_IMAGE


@pytest.fixture
def workspace_image(topology):
    return build_workspace_image(topology)


@pytest.fixture(scope="session")
def worker_artifacts():
    """The worker built once per source hash (worker/build-cached.sh), readable by every test user."""
    cache = os.path.join(os.environ.get("PERRY_FLEET_CACHE", "/var/cache/perry-fleet"), "worker")
    out = subprocess.run([os.path.join(REPO, "worker", "build-cached.sh"), cache], check=True,
                         capture_output=True, text=True, timeout=600).stdout.strip()
    return {"dist": os.path.join(out, "dist"), "binary": os.path.join(out, "perry")}


@pytest.fixture
def prefix(topology):
    """A random workspace-name prefix; everything with it is removed afterwards."""
    from topology import random_prefix
    value = random_prefix()
    yield value
    topology.cleanup(value)
