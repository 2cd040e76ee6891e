"""Molecule scenarios (molecule/<scenario>/): `molecule test -s <scenario>` per scenario, on this machine's engines.

Each scenario converges, checks idempotence (changed=0 on the second converge), verifies (gating table read
from the engine, worker health, a seeded Claude session, home data kept across an image change) and destroys
its workspaces. Slow (1-3 minutes each), so they carry the `molecule` marker: `pytest -m "not molecule"` skips
them, `pytest tests/integration/test_molecule.py` runs only them.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from topology import COLLECTIONS, REPO, venv_bin

# Seconds per scenario: a warm run takes 1.5-3 minutes (fleet: more); the first sidecar and fleet runs also build their engine images
# and a cold image cache rebuilds the workspace image.
SCENARIOS = {
    "podman-rootful": 1200,
    "podman-rootless": 1200,
    "docker": 1500,
    "sidecar": 1800,
    "fleet": 2400,
}
SCENARIOS_PRESENT = sorted(s for s in SCENARIOS if os.path.isfile(os.path.join(REPO, "molecule", s, "molecule.yml")))

pytestmark = [pytest.mark.molecule]


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s in SCENARIOS_PRESENT])
def test_molecule_scenario(scenario):
    if os.geteuid() != 0:
        pytest.skip("molecule scenarios drive rootful engines and su to the rootless user: run as root")
    molecule = venv_bin("molecule")
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(molecule) + os.pathsep + env.get("PATH", "")
    env["ANSIBLE_COLLECTIONS_PATH"] = COLLECTIONS
    env.update({"NO_COLOR": "1", "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "PY_COLORS": "0"})
    start = time.monotonic()
    try:
        proc = subprocess.run([molecule, "test", "-s", scenario], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=SCENARIOS[scenario], check=False, start_new_session=True)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"")
        out = out.decode(errors="replace") if isinstance(out, bytes) else out
        pytest.fail("molecule test -s %s timed out after %d s:\n%s" % (scenario, SCENARIOS[scenario], out[-6000:]))
    elapsed = time.monotonic() - start
    print("molecule scenario %s: rc=%d in %.0f s" % (scenario, proc.returncode, elapsed))
    assert proc.returncode == 0, "molecule test -s %s failed (rc=%d, %.0f s):\n%s\n%s" % (
        scenario, proc.returncode, elapsed, proc.stdout[-8000:], proc.stderr[-4000:])
    assert "idempotence" in proc.stdout + proc.stderr
