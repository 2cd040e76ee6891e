"""Issue 19, files, links and the image: root never follows the workspace user (real engines, real images).

Each test plants what a hostile or unlucky workspace user could (links, binaries on PATH, FIFOs, directories)
and checks from the outside that nothing outside the home changed and nothing the user planted ran as root.
"""

from __future__ import annotations

import glob
import json
import shutil
import time

import pytest

from topology import _BUILDERS, BASE_IMAGE, run_module, run_playbook

MODULE = "perry.fleet.perry_workspace"
HOME = "/home/workspace"
# Root-owned directories outside the home that the planted links point at (each must stay as it is).
TARGETS = {"files": "/srv", "secrets": "/opt", "ssh": "/usr/local/share"}
# Binaries a root exec or the root entrypoint could pick up from ~/.local/bin (first on the image's PATH).
PLANTED = ("sh bash cat dd head tr stat sha256sum cut mkdir ln chown chmod install mv rm true uname mktemp base64 "
           "printf touch grep sed awk date env setpriv find pgrep ssh-keygen cp id ls sleep kill tail").split()
# Every planted binary logs the uid it ran as, then runs the real one.
WRAPPER = '#!/usr/bin/bash\nprintf "%s %s\\n" "$(/usr/bin/id -u)" "${0##*/}" >> /tmp/planted.log\n' \
          'exec "/usr/bin/${0##*/}" "$@"\n'


def ok(result):
    assert not result.get("failed"), json.dumps({k: result.get(k) for k in ("msg", "stderr", "commands")}, indent=1)
    return result


def as_user(topology, cname, script, check=True, input=None):
    return topology.cli("exec", "-i", "-u", "workspace", cname, "/bin/sh", "-c", script, check=check, input=input)


def as_root(topology, cname, script, check=True):
    """The test's own root exec: a fixed PATH, or it would run the planted binaries itself."""
    return topology.cli("exec", "-u", "root", "--env", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", cname, "/bin/sh", "-c",
                        script, check=check)


def outside_state(topology, cname) -> str:
    """Owner, mode and entries of each target directory, as root sees them."""
    return as_root(topology, cname, "for d in %s; do stat -c '%%U:%%G %%a %%n' $d; ls -A $d; done"
                   % " ".join(TARGETS.values())).stdout


def artifact_for(topology, worker_artifacts):
    return worker_artifacts["binary" if topology.runtime == "docker" else "dist"]


@pytest.mark.parametrize("topology", ["podman-rootful", "docker"], indirect=True)
def test_root_never_follows_links_or_runs_binaries_the_user_planted(topology, workspace_image, worker_artifacts, prefix):
    name = prefix + "links"
    cname = "workspace-" + name
    base = {"name": name, "image": workspace_image, "worker_source": artifact_for(topology, worker_artifacts),
            "secret_env": {"H3_TOKEN": "tok-" + prefix}, "env": {"SSH_PUBLIC_KEY": "ssh-ed25519 AAAAC3Nzplanted h3"},
            "files": [{"dest": "~/.h3/ok.txt", "content": "one\n"}]}
    ok(run_module(MODULE, base, topology))
    before = outside_state(topology, cname)
    # The user plants: binaries named like every tool a root step uses, first on the image's PATH; and links from
    # the home to root-owned directories where the module (files) and the entrypoint (secrets, ssh key) write.
    as_user(topology, cname, "set -e; cd ~/.local/bin; cat > .w; chmod 755 .w; for b in %s; do ln -sf .w $b; done"
            % " ".join(PLANTED), input=WRAPPER)
    as_user(topology, cname, "set -e; rm -rf ~/.config/perry ~/.ssh ~/.cfg; ln -s %s ~/.config/perry; ln -s %s ~/.ssh; "
            "ln -s %s ~/.cfg" % (TARGETS["secrets"], TARGETS["ssh"], TARGETS["files"]))
    # An operator's slip forces a worker reinstall (the probe and install run as root); the restart runs the
    # root entrypoint again (authorized_keys), and new file content forces a placement. secret_env is left out of
    # this run (it is applied in place: leaving it out recreates nothing) and tried on its own below.
    as_root(topology, cname, "/usr/bin/rm -f /usr/local/lib/perry/MANIFEST")
    r = ok(run_module(MODULE, dict(base, secret_env={}, state="restarted",
                                   files=[{"dest": "~/.h3/ok.txt", "content": "two\n"}]), topology))
    w = r["workspaces"][0]
    assert "restart" in " ".join(w["actions"]) and w["worker"]["changed"] and w["files"]["changed"], w["actions"]
    # The secrets file is written as the user: through the planted ~/.config/perry -> /opt it is refused.
    bad = run_module(MODULE, dict(base, secret_env={"H3_TOKEN": "rotated-" + prefix}), topology)
    assert bad.get("failed") and "placing files" in bad["msg"] and "Permission denied" in bad["msg"], bad.get("msg")
    assert "rotated-" + prefix not in json.dumps(bad)
    # A file whose parent is a link to /srv: written as the user, so the write is refused there, with a message.
    bad = run_module(MODULE, dict(base, files=[{"dest": "~/.cfg/h3-pwned", "content": "x\n"}]), topology)
    assert bad.get("failed") and "placing files" in bad["msg"] and "Permission denied" in bad["msg"], bad.get("msg")
    assert outside_state(topology, cname) == before
    ran = as_root(topology, cname, "cat /tmp/planted.log 2>/dev/null || true").stdout.split("\n")
    assert not [line for line in ran if line.startswith("0 ")], ran  # nothing the user planted ran as root
    assert as_user(topology, cname, "cat ~/.h3/ok.txt").stdout == "two\n"
    log = as_root(topology, cname, "cat /var/log/perry-entrypoint.log").stdout
    assert "authorized_keys as workspace FAILED" in log


@pytest.mark.parametrize("topology", ["podman-rootful", "docker"], indirect=True)
@pytest.mark.parametrize("plant", ["fifo", "symlink", "huge"])
def test_a_planted_files_manifest_never_blocks_and_is_repaired(topology, workspace_image, prefix, plant):
    name = prefix + "man"
    cname = "workspace-" + name
    args = {"name": name, "image": workspace_image, "engine_timeout": 30, "files": [{"dest": "~/.h3.conf", "content": "a\n"}]}
    ok(run_module(MODULE, args, topology))
    manifest = HOME + "/.config/perry-fleet/files.manifest"
    digest = as_user(topology, cname, "cat " + manifest).stdout.strip()
    plants = {
        "fifo": "rm -f {m}; mkfifo {m}",
        # the right digest, behind a link: not trusted (a link could point anywhere), replaced by a regular file
        "symlink": "cp {m} ~/elsewhere; rm -f {m}; ln -s ~/elsewhere {m}",
        "huge": "rm -f {m}; head -c 64M /dev/zero > {m}",
    }
    as_user(topology, cname, plants[plant].format(m=manifest))
    start = time.monotonic()
    r = ok(run_module(MODULE, args, topology))
    took = time.monotonic() - start
    assert took < 25, took  # before: the FIFO held the exec until engine_timeout (30 s) and the run failed
    assert r["workspaces"][0]["files"]["changed"]
    kind = as_user(topology, cname, "stat -c '%F %s' " + manifest).stdout.strip()
    assert kind == "regular file 65", kind
    assert as_user(topology, cname, "cat " + manifest).stdout.strip() == digest
    assert not ok(run_module(MODULE, args, topology))["changed"]


@pytest.mark.parametrize("topology", ["podman-rootful", "docker"], indirect=True)
def test_a_file_dest_that_is_a_directory_is_refused_in_check_mode_too(topology, workspace_image, prefix):
    name = prefix + "dir"
    cname = "workspace-" + name
    ok(run_module(MODULE, {"name": name, "image": workspace_image}, topology))
    as_user(topology, cname, "mkdir -p ~/.h3cfg/settings.json && echo keep > ~/.h3cfg/settings.json/mine")
    args = {"name": name, "image": workspace_image, "files": [{"dest": "~/.h3cfg/settings.json", "content": "{}"}]}
    for check in (True, False):
        r = run_module(MODULE, args, topology, check=check)
        assert r.get("failed") and "settings.json is a directory" in r["msg"] and "Nothing was placed" in r["msg"], r
    assert as_user(topology, cname, "ls -A ~/.h3cfg/settings.json").stdout.split() == ["mine"]  # no <dest>/0


@pytest.mark.parametrize("topology", ["podman-rootful", "docker"], indirect=True)
def test_a_deleted_managed_file_or_worker_is_restored(topology, workspace_image, worker_artifacts, prefix):
    name = prefix + "rest"
    cname = "workspace-" + name
    args = {"name": name, "image": workspace_image, "worker_source": artifact_for(topology, worker_artifacts),
            "files": [{"dest": "~/.h3/a.txt", "content": "a\n", "mode": "0640"}, {"dest": "~/.h3/b.txt", "content": "b\n"}]}
    ok(run_module(MODULE, args, topology))
    as_user(topology, cname, "rm ~/.h3/a.txt; chmod 600 ~/.h3/b.txt")
    as_root(topology, cname, "/usr/bin/rm -f /usr/local/bin/perry")
    for check in (True, False):  # check mode predicts exactly what the real run does
        w = ok(run_module(MODULE, args, topology, check=check))["workspaces"][0]
        assert "worker restore" in w["actions"] and "place 2 file(s)" in w["actions"], w["actions"]
        assert w["files"]["restored"] == [HOME + "/.h3/a.txt", HOME + "/.h3/b.txt"]
    assert as_user(topology, cname, "stat -c '%a %s' ~/.h3/a.txt ~/.h3/b.txt").stdout.split("\n")[:2] == ["640 2", "644 2"]
    assert as_root(topology, cname, "test -x /usr/local/bin/perry && echo yes").stdout.strip() == "yes"
    assert not ok(run_module(MODULE, args, topology))["changed"]


# ------------------------------------------------------------------------------------------- the image role
def _image_id(topology, ref):
    res = topology.cli("image", "inspect", "--format", "{{.Id}}", ref, check=False)
    return res.stdout.strip() if res.returncode == 0 else None


@pytest.mark.parametrize("topology", ["podman-rootful"], indirect=True)
def test_the_image_role_never_adopts_a_derived_or_dangling_image(topology, workspace_image, prefix):
    """Images built FROM ours inherit the content-hash label; only the role's own build may be re-tagged."""
    ours = _image_id(topology, workspace_image)
    derived = "localhost/%sderived:latest" % prefix
    target = "localhost/%sperry:latest" % prefix
    work_dir = "/var/tmp/perry-image-%s" % prefix.rstrip("-")  # this test's own build context
    made = []
    try:
        # dangling first (older), then a tagged derived image with ENTRYPOINT [] (newest: listed first)
        topology.cli("build", "-t", derived, "-", input="FROM %s\nRUN touch /h3-dangling\n" % workspace_image, timeout=300)
        dangling = _image_id(topology, derived)
        made.append(dangling)
        topology.cli("untag", derived, derived)  # podman untag IMAGE NAME: without NAME it drops every tag
        topology.cli("build", "-t", derived, "-", input="FROM %s\nENTRYPOINT []\n" % workspace_image, timeout=300)
        made.append(_image_id(topology, derived))
        # the same build settings as the workspace image (conftest's build_workspace_image): the same content hash
        extra = dict(_BUILDERS[topology.name], perry_image_base=BASE_IMAGE, perry_image_work_dir=work_dir,
                     perry_image_ca_certificates=sorted(glob.glob("/usr/local/share/ca-certificates/*.crt")),
                     **{"perry_image_%s_version" % a: "" for a in ("claude_code", "opencode", "codex", "pi", "gh")})
        role = [{"name": "image", "ansible.builtin.include_role": {"name": "perry.fleet.image"}}]
        for existing in (None, derived):  # a new name; then the name already on a derived image
            if existing:
                topology.cli("tag", existing, target)
            out = run_playbook(role, extra_vars=dict(extra, perry_image_name=target), timeout=3000)
            assert out["rc"] == 0, out["stdout"][-3000:]
            assert _image_id(topology, target) == ours, (existing, _image_id(topology, target), ours)
        entrypoint = topology.cli("image", "inspect", "--format", "{{json .Config.Entrypoint}}", target).stdout
        assert json.loads(entrypoint) == ["/usr/bin/tini", "--", "/bin/bash", "/usr/local/bin/perry-entrypoint"]
        assert dangling != ours
    finally:  # only what this test made: the tag it added to ours, the two derived images by id
        topology.cli("untag", target, target, check=False)
        for image_id in made:
            if image_id and image_id != ours:
                topology.cli("rmi", "-f", image_id, check=False)
        shutil.rmtree(work_dir, ignore_errors=True)
