"""The collection as a user gets it: the built tarball (no self link, no test bed), installed into a clean path,
and the ``perry`` action group setting engine options once through module_defaults."""

from __future__ import annotations

import os
import subprocess
import tarfile

from topology import REPO, TOPOLOGIES, run_playbook, venv_bin


def test_tarball_is_clean_and_works_installed(tmp_path):
    out = tmp_path / "build"
    subprocess.run([venv_bin("ansible-galaxy"), "collection", "build", "--output-path", str(out), REPO],
                   check=True, capture_output=True, text=True, timeout=120)
    (tarball,) = out.iterdir()
    with tarfile.open(tarball) as tar:
        members = tar.getmembers()
    names = {m.name for m in members}
    assert not [m.name for m in members if m.issym() or m.islnk()], "the tarball must hold no links"
    for unwanted in ("scripts", "benchmarks", "molecule", ".collections", "ansible.cfg", "requirements.txt",
                     "pytest.ini"):
        assert not [n for n in names if n == unwanted or n.startswith(unwanted + "/")], unwanted
    for wanted in ("COPYING", "CHANGELOG.rst", "changelogs/changelog.yaml", "meta/runtime.yml",
                   "plugins/modules/perry_workspace.py", "roles/workspace/tasks/main.yml"):
        assert wanted in names, wanted

    install = tmp_path / "installed"
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(install))   # not the checkout's .collections link
    subprocess.run([venv_bin("ansible-galaxy"), "collection", "install", "--offline", "--no-deps", "--force", "-p",
                    str(install), str(tarball)], check=True, capture_output=True, text=True, timeout=120, env=env)
    assert (install / "ansible_collections" / "perry" / "fleet" / "COPYING").is_file()
    doc = subprocess.run([venv_bin("ansible-doc"), "perry.fleet.perry_workspace"], capture_output=True, text=True,
                         timeout=120, env=env, cwd=str(tmp_path))
    assert doc.returncode == 0 and "perry_workspace" in doc.stdout, doc.stderr[-2000:]
    # The playbooks ship inside the collection: `ansible-playbook perry.fleet.site` resolves from the install.
    for playbook in ("perry.fleet.site", "perry.fleet.teardown", "perry.fleet.report"):
        syntax = subprocess.run([venv_bin("ansible-playbook"), "-i", "localhost,", "--syntax-check", playbook],
                                capture_output=True, text=True, timeout=120, env=env, cwd=str(tmp_path))
        assert syntax.returncode == 0, (playbook, syntax.stdout[-1500:], syntax.stderr[-1500:])


def test_module_defaults_group_sets_engine_options_once():
    rootful = TOPOLOGIES["podman-rootful"]
    play = [{"name": "info", "perry.fleet.perry_workspace_info": {},
             "module_defaults": {"group/perry.fleet.perry": dict(rootful.engine_args(), engine_timeout=17)}}]
    out = run_playbook(play, raise_on_fail=True)
    result = out["tasks"][0]
    assert result["invocation"]["module_args"]["runtime"] == "podman"
    assert result["invocation"]["module_args"]["engine_timeout"] == 17
