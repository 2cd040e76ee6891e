"""The ansible-test integration targets (tests/integration/targets/) run against the installed tarball, as CI runs
them: build, install into a clean path, then ``ansible-test integration --local`` from the installed tree on
rootful podman with the image our image role builds. The pytest fault and security suites stay as they are."""

from __future__ import annotations

import os
import subprocess

import yaml

from topology import REPO, TOPOLOGIES, build_workspace_image, random_prefix, venv_bin

TARGETS = ("perry_workspace", "perry_workspace_info", "perry_sessions")


def test_integration_targets_pass_against_the_installed_tarball(tmp_path):
    topo = TOPOLOGIES["podman-rootful"]
    image = build_workspace_image(topo)
    out = tmp_path / "build"
    subprocess.run([venv_bin("ansible-galaxy"), "collection", "build", "--output-path", str(out), REPO],
                   check=True, capture_output=True, text=True, timeout=120)
    (tarball,) = out.iterdir()
    install = tmp_path / "installed"
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(install), ANSIBLE_NOCOLOR="1")
    subprocess.run([venv_bin("ansible-galaxy"), "collection", "install", "--offline", "--no-deps", "--force", "-p",
                    str(install), str(tarball)], check=True, capture_output=True, text=True, timeout=120, env=env)
    root = install / "ansible_collections" / "perry" / "fleet"
    assert sorted(p.name for p in (root / "tests" / "integration" / "targets").iterdir()) == sorted(TARGETS)
    prefix = random_prefix()
    # ansible-test passes this file's variables to every target.
    config = {"perry_test_runtime": "podman", "perry_test_image": image, "perry_test_prefix": prefix,
              "perry_test_worker": str(root / "roles" / "workspace" / "files" / "worker" / "dist")}
    (root / "tests" / "integration" / "integration_config.yml").write_text(yaml.safe_dump(config))
    try:
        res = subprocess.run([venv_bin("ansible-test"), "integration", "--local", "--allow-unsupported",
                              "--color", "no"] + list(TARGETS),
                             cwd=str(root), env=env, capture_output=True, text=True, timeout=600, check=False)
        assert res.returncode == 0, (res.stdout[-5000:], res.stderr[-3000:])
        for target in TARGETS:
            assert "Running %s integration test role" % target in res.stdout, res.stdout[-3000:]
        assert "failed=0" in res.stdout and "failed=1" not in res.stdout
    finally:
        topo.cleanup(prefix)
