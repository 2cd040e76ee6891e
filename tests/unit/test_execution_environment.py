"""execution-environment.yml is a valid ansible-builder 3 definition that builds what docs/scale.md promises.

`ansible-builder create` (no engine, no network) turns it into a build context; the test checks the generated
Containerfile and context: fixed base image, ansible-core 2.19.x and ansible-runner, the collections
containers.podman, community.docker and perry.fleet (from the tarball placed by additional_build_files),
jmespath, podman-remote and a docker client for RPM platforms.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EE_FILE = os.path.join(REPO, "execution-environment.yml")


def _definition() -> dict:
    with open(EE_FILE) as fh:
        return yaml.safe_load(fh)


def _ansible_galaxy() -> str:
    found = os.path.join(os.path.dirname(sys.executable), "ansible-galaxy")
    return found if os.path.exists(found) else shutil.which("ansible-galaxy") or "ansible-galaxy"


def test_definition_shape():
    ee = _definition()
    assert ee["version"] == 3
    base = ee["images"]["base_image"]["name"]
    assert "$" not in base and "{{" not in base and ":" in base, "base image must be a fixed reference: %s" % base
    deps = ee["dependencies"]
    assert re.fullmatch(r"ansible-core>=2\.19,<2\.20", deps["ansible_core"]["package_pip"])
    assert deps["ansible_runner"]["package_pip"].startswith("ansible-runner")
    with open(os.path.join(REPO, "requirements.txt")) as fh:
        pinned = re.search(r"^ansible-core==(\d+\.\d+)\.", fh.read(), re.M)
    assert pinned and pinned.group(1) == "2.19", "the EE and requirements.txt must carry the same ansible-core line"
    names = [c["name"] for c in deps["galaxy"]["collections"]]
    assert names[:2] == ["containers.podman", "community.docker"]
    tarball = [c for c in deps["galaxy"]["collections"] if c.get("type") == "file"]
    assert len(tarball) == 1 and tarball[0]["name"].endswith("/perry-fleet.tar.gz")
    srcs = [f["src"] for f in ee["additional_build_files"]]
    assert "build/perry-fleet.tar.gz" in srcs


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    pytest.importorskip("ansible_builder", reason="ansible-builder is not installed in this venv "
                                                  "(requirements.txt: ansible-builder==3.2.0)")
    work = tmp_path_factory.mktemp("ee")
    # The definition next to a freshly built collection tarball, as the documented build does it.
    shutil.copy(EE_FILE, work / "execution-environment.yml")
    build = work / "build"
    build.mkdir()
    res = subprocess.run([_ansible_galaxy(), "collection", "build", "--force", "--output-path", str(build), REPO],
                         capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    built = glob.glob(str(build / "perry-fleet-*.tar.gz"))
    assert len(built) == 1, built
    os.rename(built[0], build / "perry-fleet.tar.gz")
    ctx = work / "context"
    res = subprocess.run([sys.executable, "-m", "ansible_builder", "create", "-f", "execution-environment.yml",
                          "-c", str(ctx), "--output-filename", "Containerfile"],
                         cwd=work, capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    return ctx


def test_containerfile(context):
    with open(context / "Containerfile") as fh:
        text = fh.read()
    ee = _definition()
    assert 'ARG EE_BASE_IMAGE="%s"' % ee["images"]["base_image"]["name"] in text
    assert 'ARG PKGMGR="%s"' % ee["options"]["package_manager_path"] in text
    assert re.search(r'ARG ANSIBLE_INSTALL_REFS="ansible-core>=2\.19,<2\.20 ansible-runner"', text)
    assert "ansible-galaxy collection install" in text and "-r requirements.yml" in text
    assert "/output/scripts/install-from-bindep" in text
    # The final stage fails the build when a collection or a client is missing.
    for name in ("containers.podman", "community.docker", "perry.fleet", "podman-remote", "docker --version",
                 "import jmespath"):
        assert name in text, name
    assert text.rstrip().endswith('CMD ["bash"]')


def test_context_dependencies(context):
    build = context / "_build"
    with open(build / "requirements.yml") as fh:
        galaxy = yaml.safe_load(fh)
    names = {c["name"]: c for c in galaxy["collections"]}
    assert {"containers.podman", "community.docker", "/build/collections/perry-fleet.tar.gz"} <= set(names)
    assert names["/build/collections/perry-fleet.tar.gz"]["type"] == "file"
    # The tarball is in the context (copied into /build by the galaxy stage) and is this collection.
    with tarfile.open(build / "collections" / "perry-fleet.tar.gz") as tar:
        manifest = json.load(tar.extractfile("MANIFEST.json"))
        members = tar.getnames()
    info = manifest["collection_info"]
    assert (info["namespace"], info["name"]) == ("perry", "fleet")
    assert {"plugins/modules/perry_workspace.py", "roles/report/tasks/main.yml", "playbooks/report.yml"} <= set(members)
    with open(build / "bindep.txt") as fh:
        bindep = fh.read().splitlines()
    assert "podman-remote [platform:rpm]" in bindep
    assert any(re.match(r"^(docker-cli|moby-engine|docker-ce-cli) \[platform:rpm\]$", line) for line in bindep), bindep
    with open(build / "requirements.txt") as fh:
        assert "jmespath" in fh.read().split()
