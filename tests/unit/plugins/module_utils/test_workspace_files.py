from __future__ import annotations

import base64

import pytest

from .fake_engine import EngineVerbs
from ansible_collections.perry.fleet.plugins.module_utils.engine import Result
from ansible_collections.perry.fleet.plugins.module_utils.errors import SpecError as FilesError, WorkspaceError
from ansible_collections.perry.fleet.plugins.module_utils.workspace_files import (
    PROBE_SCRIPT, FilesSync, build_files, default_mode, expected_state, install_script, manifest_digest,
    normalize_dest, probe_argv)


@pytest.mark.parametrize("dest,mode", [
    ("/home/workspace/.ssh/authorized_keys", "0600"), ("/home/workspace/.ssh/id_ed25519", "0600"),
    ("/home/workspace/.ssh/id_ed25519.pub", "0644"), ("/home/workspace/.ssh/config", "0644"),
    ("/home/workspace/.claude/.credentials.json", "0600"), ("/home/workspace/.codex/auth.json", "0600"),
    ("/home/workspace/.gitconfig", "0644"),
])
def test_perry_default_modes(dest, mode):
    assert default_mode(dest) == mode


@pytest.mark.parametrize("dest", ["../etc/passwd", "/etc/passwd", "~/../../etc/shadow", "", "/home/workspacex/a"])
def test_paths_outside_home_are_refused(dest):
    with pytest.raises(FilesError):
        normalize_dest(dest)


def test_tilde_and_relative_paths_land_in_home():
    assert normalize_dest("~/.gitconfig") == "/home/workspace/.gitconfig"
    assert normalize_dest(".claude/settings.json") == "/home/workspace/.claude/settings.json"


def test_entries_need_exactly_one_source(tmp_path):
    with pytest.raises(FilesError, match="exactly one"):
        build_files([{"dest": "~/a"}])
    with pytest.raises(FilesError, match="exactly one"):
        build_files([{"dest": "~/a", "content": "x", "src": str(tmp_path)}])
    with pytest.raises(FilesError, match="not a file"):
        build_files([{"dest": "~/a", "src": str(tmp_path / "missing")}])
    with pytest.raises(FilesError, match="octal"):
        build_files([{"dest": "~/a", "content": "x", "mode": "rw"}])


def test_directories_get_directory_modes_never_a_recursive_chmod():
    files = build_files([{"dest": "~/.ssh/keys/id", "content": "k"}, {"dest": "~/.config/x/y.json", "content": "{}"}])
    script = install_script(files, manifest_digest(files))
    assert "[ -d /home/workspace/.ssh ] || mkdir -m 0700 /home/workspace/.ssh" in script
    assert "[ -d /home/workspace/.ssh/keys ] || mkdir -m 0700 /home/workspace/.ssh/keys" in script
    assert "[ -d /home/workspace/.config/x ] || mkdir -m 0755 /home/workspace/.config/x" in script
    assert "chmod -R" not in script
    # written beside the dest, then renamed over it: a link at the dest is replaced, never followed
    assert "mv -fT \"$t\" /home/workspace/.ssh/keys/id" in script


def test_content_travels_on_stdin_base64_never_in_argv_and_digest_tracks_changes():
    files = build_files([{"dest": "~/.claude/.credentials.json", "content": "s3cret-token"}])
    script = install_script(files, manifest_digest(files))
    assert "s3cret-token" not in script and base64.b64encode(b"s3cret-token").decode() in script
    assert "s3cret-token" not in " ".join(probe_argv(files))
    other = build_files([{"dest": "~/.claude/.credentials.json", "content": "rotated"}])
    assert manifest_digest(files) != manifest_digest(other)


class ProbeEngine(EngineVerbs):
    """Answers PROBE_SCRIPT with a manifest line and one state line per file; records every call."""
    url = None

    def __init__(self, manifest, states=None):
        self.manifest, self.states, self.calls, self.stdins = manifest, states, [], []

    def run(self, args, timeout=None, check=True, stdin=None, record=True, max_output=None):
        self.calls.append(args)
        self.stdins.append(stdin)
        if PROBE_SCRIPT in args:
            return Result(0, self.manifest + "\n" + "".join(s + "\n" for s in self.states or []), "", 0.0)
        return Result(0, "", "", 0.0)


def test_every_exec_runs_as_the_workspace_user_with_a_fixed_path():
    files = build_files([{"dest": "~/.gitconfig", "content": "[user]\n"}])
    engine = ProbeEngine("", ["missing"])
    assert FilesSync(engine, 5).sync("c", files)["changed"] is True
    assert len(engine.calls) == 2
    for args in engine.calls:
        assert args[0] == "exec" and args[args.index("-u") + 1] == "workspace" and "root" not in args
        assert args[args.index("--env") + 1] == "PATH=/usr/sbin:/usr/bin:/sbin:/bin"
    assert engine.calls[1][-2:] == ["/bin/sh", "-s"] and "-i" in engine.calls[1] and "base64 -d" in engine.stdins[1]


def test_unchanged_files_read_in_the_home_volume_on_this_host_cost_no_exec(tmp_path):
    files = build_files([{"dest": "~/.gitconfig", "content": "[user]\n"}])
    digest = manifest_digest(files)
    (tmp_path / ".config" / "perry-fleet").mkdir(parents=True)
    (tmp_path / ".config" / "perry-fleet" / "files.manifest").write_text(digest + "\n")
    (tmp_path / ".gitconfig").write_bytes(b"[user]\n")
    (tmp_path / ".gitconfig").chmod(0o644)
    inspected = {"Mounts": [{"Source": str(tmp_path), "Destination": "/home/workspace"}]}
    engine = ProbeEngine(digest, [expected_state(files[0])])
    assert FilesSync(engine, 5).sync("c", files, inspected=inspected)["changed"] is False
    assert engine.calls == []
    assert FilesSync(engine, 5).sync("c", files)["changed"] is False  # without the inspect: one exec
    assert len(engine.calls) == 1
    # deleted on the host side: the manifest alone is not trusted, the exec probe decides and the file is placed
    (tmp_path / ".gitconfig").unlink()
    engine = ProbeEngine(digest, ["missing"])
    result = FilesSync(engine, 5).sync("c", files, inspected=inspected)
    assert result["changed"] is True and result["restored"] == ["/home/workspace/.gitconfig"]
    assert len(engine.calls) == 2


@pytest.mark.parametrize("state", ["missing", "link", "other", "file 600 7 -", "file 644 7 " + "0" * 64])
def test_a_managed_file_that_drifted_is_placed_again(state):
    files = build_files([{"dest": "~/.gitconfig", "content": "[user]\n"}])
    engine = ProbeEngine(manifest_digest(files), [state])
    result = FilesSync(engine, 5).sync("c", files, check_mode=True)
    assert result["changed"] is True and result["restored"] == ["/home/workspace/.gitconfig"]
    assert len(engine.calls) == 1  # check mode: probed, nothing placed


@pytest.mark.parametrize("check_mode", [True, False])
def test_a_dest_that_is_a_directory_is_refused_in_check_mode_too(check_mode):
    files = build_files([{"dest": "~/.gitconfig", "content": "x"}, {"dest": "~/.claude/settings.json", "content": "{}"}])
    engine = ProbeEngine("", ["dir", "missing"])  # sorted by dest: .claude/settings.json first
    with pytest.raises(WorkspaceError, match=r"\.claude/settings\.json is a directory.*Nothing was placed"):
        FilesSync(engine, 5).sync("c", files, check_mode=check_mode)
    assert len(engine.calls) == 1


def _tree(tmp_path):
    gh = tmp_path / "gh"
    (gh / "sub").mkdir(parents=True)
    (gh / "hosts.yml").write_text("github.com:\n  oauth_token: t0ken\n")
    (gh / "sub" / "config.yml").write_text("git_protocol: https\n")
    return gh


def test_a_directory_src_is_a_tree_of_secret_files_with_private_dirs(tmp_path):
    files = build_files([{"dest": "~/.config/gh", "src": str(_tree(tmp_path))}])
    assert [(f.dest, f.mode, f.tree) for f in files] == [
        ("/home/workspace/.config/gh/hosts.yml", "0600", "/home/workspace/.config/gh"),
        ("/home/workspace/.config/gh/sub/config.yml", "0600", "/home/workspace/.config/gh")]
    script = install_script(files, manifest_digest(files))
    assert "mkdir -m 0755 /home/workspace/.config\n" in script           # above the tree: the usual mode
    assert "mkdir -m 0700 /home/workspace/.config/gh\n" in script
    assert "mkdir -m 0700 /home/workspace/.config/gh/sub\n" in script
    again = build_files([{"dest": "~/.config/gh", "src": str(tmp_path / "gh"), "mode": "0640"}])
    assert {f.mode for f in again} == {"0640"}
    assert manifest_digest(build_files([{"dest": "~/.config/gh", "src": str(tmp_path / "gh")}])) == manifest_digest(files)


@pytest.mark.parametrize("spoil,message", [
    (lambda gh: (gh / "link").symlink_to("/etc/passwd"), "link.*never follows links"),
    (lambda gh: (gh / "dirlink").symlink_to(gh / "sub"), "dirlink.*symbolic link"),
    (lambda gh: __import__("os").mkfifo(gh / "fifo"), "not a regular file"),
])
def test_a_tree_with_links_or_special_files_is_refused(tmp_path, spoil, message):
    gh = _tree(tmp_path)
    spoil(gh)
    with pytest.raises(FilesError, match=message):
        build_files([{"dest": "~/.config/gh", "src": str(gh)}])


def test_a_tree_over_its_caps_is_refused(tmp_path, monkeypatch):
    from ansible_collections.perry.fleet.plugins.module_utils import workspace_files
    gh = _tree(tmp_path)
    monkeypatch.setattr(workspace_files, "MAX_TREE_FILES", 1)
    with pytest.raises(FilesError, match="more than 1 files"):
        build_files([{"dest": "~/.config/gh", "src": str(gh)}])
    monkeypatch.setattr(workspace_files, "MAX_TREE_FILES", 1000)
    monkeypatch.setattr(workspace_files, "MAX_TREE_BYTES", 10)
    with pytest.raises(FilesError, match="larger than"):
        build_files([{"dest": "~/.config/gh", "src": str(gh)}])
    link = tmp_path / "ghlink"
    link.symlink_to(gh)
    with pytest.raises(FilesError, match="is a symbolic link"):
        build_files([{"dest": "~/.config/gh", "src": str(link)}])
