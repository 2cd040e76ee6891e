from __future__ import annotations

import pytest

from .fake_engine import EngineVerbs
from ansible_collections.perry.fleet.plugins.module_utils.engine import Result
from ansible_collections.perry.fleet.plugins.module_utils.errors import SpecError as FilesError
from ansible_collections.perry.fleet.plugins.module_utils.workspace_files import (
    FilesSync, build_files, default_mode, install_script, manifest_digest, normalize_dest)


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
    script = install_script(files, "/tmp/stage", manifest_digest(files))
    assert "install -d -o workspace -g workspace -m 0700 /home/workspace/.ssh" in script
    assert "install -d -o workspace -g workspace -m 0700 /home/workspace/.ssh/keys" in script
    assert "install -d -o workspace -g workspace -m 0755 /home/workspace/.config/x" in script
    assert "chmod -R" not in script
    assert "install -o workspace -g workspace -m 0600 /tmp/stage/1 /home/workspace/.ssh/keys/id" in script


def test_content_never_in_the_script_and_digest_tracks_changes():
    files = build_files([{"dest": "~/.claude/.credentials.json", "content": "s3cret-token"}])
    assert "s3cret-token" not in install_script(files, "/tmp/s", manifest_digest(files))
    other = build_files([{"dest": "~/.claude/.credentials.json", "content": "rotated"}])
    assert manifest_digest(files) != manifest_digest(other)


class ManifestEngine(EngineVerbs):
    url = None

    def __init__(self, manifest):
        self.manifest, self.calls = manifest, []

    def run(self, args, timeout=None, check=True, stdin=None, record=True, max_output=None):
        self.calls.append(args)
        return Result(0, self.manifest + "\n" if args[-1].endswith("files.manifest") else "", "", 0.0)


def test_unchanged_files_read_in_the_home_volume_on_this_host_cost_no_exec(tmp_path):
    files = build_files([{"dest": "~/.gitconfig", "content": "[user]\n"}])
    digest = manifest_digest(files)
    (tmp_path / ".config" / "perry-fleet").mkdir(parents=True)
    (tmp_path / ".config" / "perry-fleet" / "files.manifest").write_text(digest + "\n")
    inspected = {"Mounts": [{"Source": str(tmp_path), "Destination": "/home/workspace"}]}
    engine = ManifestEngine(digest)
    assert FilesSync(engine, 5).sync("c", files, inspected=inspected)["changed"] is False
    assert engine.calls == []
    assert FilesSync(engine, 5).sync("c", files)["changed"] is False  # without the inspect: one exec
    assert len(engine.calls) == 1
