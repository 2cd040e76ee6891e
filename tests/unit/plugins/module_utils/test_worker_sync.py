from __future__ import annotations

import pytest

from .fake_engine import EngineVerbs
from ansible_collections.perry.fleet.plugins.module_utils.engine import Result
from ansible_collections.perry.fleet.plugins.module_utils.worker_sync import (
    BIN_PATH, MANIFEST, WorkerArtifact, WorkerSync)
from ansible_collections.perry.fleet.plugins.module_utils.errors import PerryError as WorkerSyncError


def elf(tmp_path, machine):
    path = tmp_path / "perry"
    path.write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 11 + machine.to_bytes(2, "little") + b"\0" * 100)
    return str(path)


class RecordingEngine(EngineVerbs):
    url = None

    def __init__(self, arch="x86_64", manifest="", intact=True):
        self.arch, self.manifest, self.intact, self.calls = arch, manifest, intact, []

    def run(self, args, timeout=None, check=True, stdin=None, record=True, max_output=None):
        self.calls.append(args)
        if args[0] == "exec" and "uname -m" in args[-1]:
            return Result(0, "%s\n%s\n%s\n" % (self.arch, self.manifest, "intact" if self.intact else "broken"), "", 0.0)
        return Result(0, "", "", 0.0)


def test_binary_arch_is_read_from_elf(tmp_path):
    assert WorkerArtifact.from_path(elf(tmp_path, 62)).arch == "x86_64"
    assert WorkerArtifact.from_path(elf(tmp_path, 183)).arch == "aarch64"


def test_non_elf_binary_is_refused(tmp_path):
    path = tmp_path / "perry"
    path.write_text("#!/bin/sh\n")
    with pytest.raises(WorkerSyncError, match="not a Linux"):
        WorkerArtifact.from_path(str(path))


def test_dist_needs_entry_and_digest_tracks_content(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(WorkerSyncError, match="cli.js"):
        WorkerArtifact.from_path(str(tmp_path / "d"))
    (tmp_path / "d" / "cli.js").write_text("a")
    first = WorkerArtifact.from_path(str(tmp_path / "d")).digest
    (tmp_path / "d" / "cli.js").write_text("b")
    assert WorkerArtifact.from_path(str(tmp_path / "d")).digest != first


def test_missing_source_says_how_to_build(tmp_path):
    with pytest.raises(WorkerSyncError, match="build.sh"):
        WorkerArtifact.from_path(str(tmp_path / "nope"))


def test_arch_mismatch_is_refused_before_copying(tmp_path):
    engine = RecordingEngine(arch="aarch64")
    sync = WorkerSync(engine, WorkerArtifact.from_path(elf(tmp_path, 62)), timeout=5)
    with pytest.raises(WorkerSyncError, match="built for x86_64 but container c runs aarch64"):
        sync.sync("c")
    assert len(engine.calls) == 1


def test_unchanged_worker_costs_one_exec(tmp_path):
    art = WorkerArtifact.from_path(elf(tmp_path, 62))
    engine = RecordingEngine(manifest="binary " + art.digest)
    result = WorkerSync(engine, art, timeout=5).sync("c")
    assert result["changed"] is False and len(engine.calls) == 1


def test_changed_worker_copies_to_temp_then_renames_and_writes_manifest_last(tmp_path):
    art = WorkerArtifact.from_path(elf(tmp_path, 62))
    engine = RecordingEngine(manifest="binary old")
    result = WorkerSync(engine, art, timeout=5).sync("c")
    assert result["action"] == "update"
    cp = [c for c in engine.calls if c[0] == "cp"][0]
    assert cp[2].startswith("c:/usr/local/bin/perry.new-")
    finalize = [c for c in engine.calls if c[0] == "exec" and "mv -f" in c[-1]][0][-1]
    assert finalize.index("/usr/local/bin/perry.new-") < finalize.index(MANIFEST)


def test_check_mode_reports_without_copying(tmp_path):
    art = WorkerArtifact.from_path(elf(tmp_path, 62))
    engine = RecordingEngine(manifest="")
    result = WorkerSync(engine, art, timeout=5).sync("c", check_mode=True)
    assert result == {"kind": "binary", "digest": art.digest, "changed": True, "action": "install"}
    assert len(engine.calls) == 1


def upper_dir_with_manifest(tmp_path, line, binary=None):
    upper = tmp_path / "upper"
    (upper / MANIFEST.lstrip("/")).parent.mkdir(parents=True)
    (upper / MANIFEST.lstrip("/")).write_text(line + "\n")
    if binary is not None:  # the installed worker, as the container's writable layer holds it
        (upper / BIN_PATH.lstrip("/")).parent.mkdir(parents=True)
        (upper / BIN_PATH.lstrip("/")).write_bytes(open(binary, "rb").read())
        (upper / BIN_PATH.lstrip("/")).chmod(0o755)
    return {"GraphDriver": {"Data": {"UpperDir": str(upper)}}, "Mounts": []}


def test_unchanged_worker_read_on_this_host_costs_no_exec(tmp_path):
    art = WorkerArtifact.from_path(elf(tmp_path, 62))
    engine = RecordingEngine(manifest="binary " + art.digest)
    inspected = upper_dir_with_manifest(tmp_path, "binary " + art.digest, binary=art.path)
    result = WorkerSync(engine, art, timeout=5).sync("c", inspected=inspected)
    assert result["changed"] is False and engine.calls == []


def test_a_deleted_worker_behind_a_current_manifest_is_installed_again(tmp_path):
    art = WorkerArtifact.from_path(elf(tmp_path, 62))
    inspected = upper_dir_with_manifest(tmp_path, "binary " + art.digest)  # manifest says installed, no binary
    engine = RecordingEngine(manifest="binary " + art.digest, intact=False)
    result = WorkerSync(engine, art, timeout=5).sync("c", inspected=inspected, check_mode=True)
    assert result["changed"] is True and result["action"] == "restore" and len(engine.calls) == 1


def test_root_execs_use_absolute_paths_a_fixed_path_and_link_as_the_user(tmp_path):
    art = WorkerArtifact.from_path(elf(tmp_path, 62))
    engine = RecordingEngine(manifest="binary old")
    WorkerSync(engine, art, timeout=5).sync("c")
    execs = [c for c in engine.calls if c[0] == "exec" and c[c.index("-u") + 1] == "root"]
    assert len(execs) == 2  # probe, finalize (the restart is worker_process's, as the workspace user)
    for args in execs:
        assert args[args.index("-u") + 1] == "root" and args[args.index("--env") + 1] == "PATH=/usr/sbin:/usr/bin:/sbin:/bin"
        assert args[args.index("c") + 1] == "/bin/sh"
    finalize = [c for c in execs if "ln -sfn" in c[-1]][0][-1]
    assert "/usr/bin/setpriv --reuid=workspace --regid=workspace --init-groups -- /bin/sh -c" in finalize
    assert "chown -h" not in finalize


def test_a_different_manifest_on_this_host_is_confirmed_by_exec_not_trusted(tmp_path):
    art = WorkerArtifact.from_path(elf(tmp_path, 62))
    engine = RecordingEngine(manifest="binary " + art.digest)  # what the container really says
    inspected = upper_dir_with_manifest(tmp_path, "binary stale")
    result = WorkerSync(engine, art, timeout=5).sync("c", inspected=inspected)
    assert result["changed"] is False and len(engine.calls) == 1


def test_a_remote_engine_never_reads_this_hosts_paths(tmp_path):
    art = WorkerArtifact.from_path(elf(tmp_path, 62))
    engine = RecordingEngine(manifest="binary old")
    engine.url = "tcp://127.0.0.1:2375"
    inspected = upper_dir_with_manifest(tmp_path, "binary " + art.digest)
    result = WorkerSync(engine, art, timeout=5).sync("c", inspected=inspected, check_mode=True)
    assert result["changed"] is True and len(engine.calls) == 1


def test_probe_reads_one_line_per_answer_whatever_the_manifest_ends_with(tmp_path):
    """The probe's shell output is arch, manifest, intact: a manifest written with a trailing newline (as the sync
    writes it) must not push 'intact' to a fourth line (it did, and every remote-engine run 'restored' the worker)."""
    import subprocess
    import types
    from ansible_collections.perry.fleet.plugins.module_utils import worker_sync as m
    seen = {}

    class Recorder:
        def run(self, argv, timeout=None, **kw):
            seen["script"] = argv[-1]
            return types.SimpleNamespace(stdout="", rc=0)

    sync = m.WorkerSync(Recorder(), types.SimpleNamespace(kind="dist", digest="d" * 64, entry_size=5, arch=None), 5)
    sync.probe("c")
    manifest = tmp_path / "MANIFEST"
    for content in ("dist abc\n", "dist abc"):
        manifest.write_text(content)
        out = subprocess.run(["sh", "-c", seen["script"].replace(m.MANIFEST, str(manifest))],
                             capture_output=True, text=True, timeout=10, check=False).stdout
        assert out.splitlines()[1:] == ["dist abc", "broken"], out
