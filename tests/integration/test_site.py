"""site.yml and playbooks/teardown.yml as a user runs them: `ansible-playbook site.yml -e runtime=podman`."""

from __future__ import annotations

import json
import re
import subprocess

from topology import AGENTS_OFF, REPO, TOPOLOGIES, build_workspace_image, random_prefix, venv_bin


def playbook(*args, timeout=1800):
    proc = subprocess.run([venv_bin("ansible-playbook"), *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    return proc.stdout


def test_site_provisions_idempotently_and_teardown_keeps_volumes_unless_purged():
    podman = TOPOLOGIES["podman-rootful"]
    build_workspace_image(podman)  # warms the cache with the tests' image settings (agents off)
    name = random_prefix() + "site"
    extra = json.dumps(dict(AGENTS_OFF, runtime="podman", perry_workspace_list=[{"name": name}]))
    try:
        out = playbook("site.yml", "-e", extra)
        row = [ln.split() for ln in out.splitlines() if ln.strip().startswith(name + " ")][-1]
        assert row[1] == "True" and row[4] == "True", row  # WORKSPACE RUNNING SSH WORKER HEALTHY ...
        again = playbook("site.yml", "-e", extra)
        recap = re.search(r"localhost\s+: ok=\d+\s+changed=(\d+)", again)
        assert recap and recap.group(1) == "0", again[-3000:]
        playbook("playbooks/teardown.yml", "-e", extra)
        assert podman.inspect("workspace-" + name) is None
        assert "workspace-" + name in podman.volume_names()
        playbook("playbooks/teardown.yml", "-e", json.dumps(dict(json.loads(extra), purge=True)))
        assert "workspace-" + name not in podman.volume_names()
    finally:
        podman.cleanup(name)
