"""The collection as a user gets it: the built tarball (no self link, no test bed), installed into a clean path,
used from there (ansible-doc, the playbooks by FQCN, site.yml provisioning with no bun on the controller), and the
``perry`` action group setting engine options once through module_defaults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile

import pytest
import yaml

from topology import REPO, TOPOLOGIES, build_workspace_image, random_prefix, run_playbook, venv_bin


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(tarball, environment whose ANSIBLE_COLLECTIONS_PATH is a clean install of it)."""
    tmp = tmp_path_factory.mktemp("galaxy")
    out = tmp / "build"
    subprocess.run([venv_bin("ansible-galaxy"), "collection", "build", "--output-path", str(out), REPO],
                   check=True, capture_output=True, text=True, timeout=120)
    (tarball,) = out.iterdir()
    install = tmp / "installed"
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(install))   # not the checkout's .collections link
    subprocess.run([venv_bin("ansible-galaxy"), "collection", "install", "--offline", "--no-deps", "--force", "-p",
                    str(install), str(tarball)], check=True, capture_output=True, text=True, timeout=120, env=env)
    assert (install / "ansible_collections" / "perry" / "fleet" / "COPYING").is_file()
    return tarball, env, tmp


def test_tarball_is_clean_and_works_installed(installed):
    tarball, env, tmp = installed
    with tarfile.open(tarball) as tar:
        members = tar.getmembers()
    names = {m.name for m in members}
    assert not [m.name for m in members if m.issym() or m.islnk()], "the tarball must hold no links"
    for unwanted in ("scripts", "benchmarks", "molecule", ".collections", "ansible.cfg", "requirements.txt",
                     "pytest.ini"):
        assert not [n for n in names if n == unwanted or n.startswith(unwanted + "/")], unwanted
    for wanted in ("COPYING", "CHANGELOG.rst", "changelogs/changelog.yaml", "meta/runtime.yml",
                   "plugins/modules/perry_workspace.py", "roles/workspace/tasks/main.yml",
                   "roles/workspace/files/worker/dist/cli.js", "playbooks/site.yml"):
        assert wanted in names, wanted

    doc = subprocess.run([venv_bin("ansible-doc"), "perry.fleet.perry_workspace"], capture_output=True, text=True,
                         timeout=120, env=env, cwd=str(tmp), check=False)
    assert doc.returncode == 0 and "perry_workspace" in doc.stdout, doc.stderr[-2000:]
    # The playbooks ship inside the collection: `ansible-playbook perry.fleet.site` resolves from the install.
    for playbook in ("perry.fleet.site", "perry.fleet.teardown", "perry.fleet.report"):
        syntax = subprocess.run([venv_bin("ansible-playbook"), "-i", "localhost,", "--syntax-check", playbook],
                                capture_output=True, text=True, timeout=120, env=env, cwd=str(tmp), check=False)
        assert syntax.returncode == 0, (playbook, syntax.stdout[-1500:], syntax.stderr[-1500:])


def test_installed_site_provisions_without_bun_on_the_controller(installed):
    """perry.fleet.site from the install, with the controller's bun out of reach (BUN names no bun: build.sh then
    takes no other), provisions a healthy workspace with the JS dist shipped in the role."""
    env, tmp = installed[1:]
    podman = TOPOLOGIES["podman-rootful"]
    build_workspace_image(podman)   # the tests' image settings (agents off), so the site run only re-tags
    name = random_prefix() + "nobun"
    # The user's own inventory (the checkout's inventory/local.yml is not in the tarball): this machine, air-gapped.
    with open(os.path.join(REPO, "inventory", "local.yml")) as fh:
        inventory_doc = yaml.safe_load(fh)
    inventory_doc["perry_hosts"]["hosts"]["localhost"]["ansible_python_interpreter"] = sys.executable
    inventory = tmp / "inventory.yml"
    inventory.write_text(json.dumps(inventory_doc))
    extra = {"runtime": "podman", "perry_workspace_list": [{"name": name}],
             "perry_workspace_worker_cache": str(tmp / "worker-cache"),
             "perry_image_claude_code_version": "", "perry_image_opencode_version": "",
             "perry_image_codex_version": "", "perry_image_pi_version": "", "perry_image_gh_version": ""}
    try:
        proc = subprocess.run([venv_bin("ansible-playbook"), "-i", str(inventory), "perry.fleet.site",
                               "-e", json.dumps(extra)], capture_output=True, text=True, timeout=900,
                              env=dict(env, BUN="/nonexistent/bun", ANSIBLE_CALLBACK_RESULT_FORMAT="yaml"), cwd=str(tmp), check=False)
        assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
        rows = [ln.split() for ln in proc.stdout.splitlines() if ln.strip().startswith(name + " ")]
        assert rows, proc.stdout[-3000:]
        row = rows[-1]
        assert row[1] == "True" and row[4] == "True", row  # WORKSPACE RUNNING SSH WORKER HEALTHY ...
        # nothing built: no build in the cache (build-cached.sh's .lock may be there)
        cache = tmp / "worker-cache"
        assert not cache.exists() or not [p for p in cache.iterdir() if not p.name.startswith(".")], "nothing built"
        listing = podman.cli("exec", "workspace-" + name, "cat", "/usr/local/bin/perry").stdout
        assert "bun" in listing, "the shipped JS dist runs behind the bun wrapper: %s" % listing[:200]
    finally:
        podman.cleanup(name)


def test_module_defaults_group_sets_engine_options_once():
    rootful = TOPOLOGIES["podman-rootful"]
    play = [{"name": "info", "perry.fleet.perry_workspace_info": {},
             "module_defaults": {"group/perry.fleet.perry": dict(rootful.engine_args(), engine_timeout=17)}}]
    out = run_playbook(play, raise_on_fail=True)
    result = out["tasks"][0]
    assert result["invocation"]["module_args"]["runtime"] == "podman"
    assert result["invocation"]["module_args"]["engine_timeout"] == 17
