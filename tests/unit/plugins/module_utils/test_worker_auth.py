"""worker_auth.py: the per-workspace worker token and its host key (issue 19, defect 2)."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from ansible_collections.perry.fleet.plugins.module_utils import worker_auth as wa
from ansible_collections.perry.fleet.plugins.module_utils.errors import WorkerError


def test_key_is_created_once_private_and_tokens_are_per_name(private_worker_key):
    key = wa.host_key()
    st = os.stat(private_worker_key)
    assert len(key) == 32 and stat.S_IMODE(st.st_mode) == 0o600
    assert stat.S_IMODE(os.stat(private_worker_key.parent).st_mode) == 0o700
    assert wa.host_key() == key
    a, b = wa.token("a", key), wa.token("b", key)
    assert a != b and len(a) == 64 and a == wa.token("a", key)
    assert wa.token("a", os.urandom(32)) != a


def test_racing_creators_agree_on_one_key(private_worker_key):
    keys = []
    threads = [threading.Thread(target=lambda: keys.append(wa.host_key())) for _unused in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(keys) == 8 and len(set(keys)) == 1 and sorted(os.listdir(private_worker_key.parent)) == ["worker.key"]


@pytest.mark.parametrize("make,needle", [
    (lambda p: (p.write_bytes(b"x" * 32), p.chmod(0o644)), "not readable by others"),
    (lambda p: (p.write_bytes(b"short"), p.chmod(0o600)), "is not 32 bytes"),
    (lambda p: os.mkfifo(p, 0o600), "not a regular file"),
    (lambda p: p.symlink_to("/etc/passwd"), "cannot read or create"),
])
def test_a_bad_key_file_is_refused_with_advice(private_worker_key, make, needle):
    private_worker_key.parent.mkdir(mode=0o700)
    make(private_worker_key)
    with pytest.raises(WorkerError, match=needle):
        wa.host_key()


def test_default_key_paths(monkeypatch):
    monkeypatch.delenv(wa.KEY_ENV)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert wa.default_key_path() == "/var/lib/perry-fleet/worker.key"
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_STATE_HOME", "/s")
    assert wa.default_key_path() == "/s/perry-fleet/worker.key"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", "/home/u")
    assert wa.default_key_path() == "/home/u/.local/state/perry-fleet/worker.key"


def test_header_reads_the_key_lazily(private_worker_key):
    auth = wa.WorkerAuth()
    assert not private_worker_key.exists()
    h = auth.header("alice")
    assert h == {"Authorization": "Bearer " + wa.token("alice", wa.host_key())}
