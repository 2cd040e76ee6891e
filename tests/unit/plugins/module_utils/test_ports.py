from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from ansible_collections.perry.fleet.plugins.module_utils.ports import (
    HostPortLock, PortAllocator, PortClaims, bind_probe, published_ports)
from ansible_collections.perry.fleet.plugins.module_utils.errors import WorkspaceError as PortError


def container(name, *ports, running=False):
    return {"Name": "/" + name, "State": {"Running": running},
            "HostConfig": {"PortBindings": {"22/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(p)} for p in ports]}},
            "NetworkSettings": {"Ports": {}}}


def test_stopped_containers_ports_count():
    assert published_ports(container("a", 2200, 2201)) == {2200, 2201}


def test_allocation_skips_held_and_probed_ports():
    busy = {2202}
    alloc = PortAllocator([container("workspace-a", 2200), container("other", 2201)], probe=lambda p: p not in busy)
    assert alloc.allocate((2200, 2205), "ssh") == 2203
    assert alloc.allocate((2200, 2205), "ssh") == 2204


def test_exhausted_range_names_range_and_holders():
    alloc = PortAllocator([container("workspace-a", 2200), container("workspace-b", 2201)], probe=lambda p: True)
    with pytest.raises(PortError, match=r"2200-2201.*2200=workspace-a.*2201=workspace-b"):
        alloc.allocate((2200, 2201), "ssh")


def test_claim_refuses_someone_elses_port_but_allows_own():
    alloc = PortAllocator([container("workspace-a", 2200)], probe=lambda p: True)
    assert alloc.claim(2200, "ssh", "workspace-a") == 2200
    with pytest.raises(PortError, match="already used by workspace-a"):
        alloc.claim(2200, "ssh", "workspace-b")


def test_bind_probe_sees_a_real_listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    try:
        assert bind_probe(port) is False
    finally:
        sock.close()
    assert bind_probe(port) is True


def test_lock_serialises_and_times_out(tmp_path):
    path = str(tmp_path / "lock")
    held = threading.Event()
    release = threading.Event()

    def holder():
        with HostPortLock(path, timeout=5):
            held.set()
            release.wait(5)

    t = threading.Thread(target=holder)
    t.start()
    held.wait(5)
    start = time.monotonic()
    with pytest.raises(PortError, match="timed out"):
        with HostPortLock(path, timeout=0.3):
            pass
    assert time.monotonic() - start < 2
    release.set()
    t.join()
    with HostPortLock(path, timeout=1):
        pass


def test_a_port_claimed_in_this_run_is_refused_to_another_workspace():
    """Issue 19 defect 10: claim() remembered nothing, so one explicit port went to two workspaces."""
    alloc = PortAllocator([], probe=lambda p: True)
    assert alloc.claim(2250, "ssh", "workspace-a") == 2250
    assert alloc.claim(2250, "ssh", "workspace-a") == 2250  # its own: fine
    with pytest.raises(PortError, match="already used by workspace-a"):
        alloc.claim(2250, "ssh", "workspace-b")
    assert alloc.allocate((2250, 2251), "ssh") == 2251


def test_an_existing_lock_is_opened_without_o_creat(tmp_path, monkeypatch):
    """fs.protected_regular=1: O_CREAT on another user's file in a sticky dir fails with EACCES even though the
    file exists (the kernel's rule, simulated here: this test bed runs with protected_regular=0)."""
    import os
    path = tmp_path / "ports.lock"
    path.write_text("")
    real_open = os.open

    def protected_open(p, flags, *args, **kw):
        if flags & os.O_CREAT and os.path.exists(p):
            raise PermissionError(13, "Permission denied")
        return real_open(p, flags, *args, **kw)

    monkeypatch.setattr(os, "open", protected_open)
    with HostPortLock(str(path), timeout=1):
        pass


def test_a_missing_lock_is_created_world_readable(tmp_path):
    import os
    path = tmp_path / "ports.lock"
    old = os.umask(0o077)
    try:
        with HostPortLock(str(path), timeout=1):
            pass
    finally:
        os.umask(old)
    assert oct(path.stat().st_mode & 0o777) == "0o644"


@pytest.mark.parametrize("plant", ["fifo", "symlink"])
def test_a_planted_fifo_or_symlink_lock_is_refused_at_once(tmp_path, plant):
    import os
    path = tmp_path / "ports.lock"
    if plant == "fifo":
        os.mkfifo(path)  # opening it read-only without O_NONBLOCK waits for a writer forever
    else:
        os.symlink(tmp_path / "elsewhere", path)
    start = time.monotonic()
    with pytest.raises(PortError, match="port lock"):
        with HostPortLock(str(path), timeout=1):
            pass
    assert time.monotonic() - start < 1
    assert not (tmp_path / "elsewhere").exists()


def test_lock_timeout_names_the_holder(tmp_path):
    import fcntl
    import os
    path = str(tmp_path / "ports.lock")
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        with pytest.raises(PortError, match="held by pid %d" % os.getpid()):
            with HostPortLock(path, timeout=0.2):
                pass


# -- claims: the ports of other engines' containers, running or stopped ------------------------------------------
def test_claims_written_by_one_engine_are_skipped_by_another(tmp_path):
    lock = str(tmp_path / "ports.lock")
    rootless = PortClaims(lock, "/home/u/.local/share/containers/storage")
    assert rootless.record({2200, 7392}) is None
    assert (tmp_path / "ports.claims").stat().st_mode & 0o7777 == 0o1777   # sticky, every user writes their own
    docker = PortClaims(lock, "/var/lib/docker")
    held = docker.others()
    assert set(held) == {2200, 7392} and "/home/u/.local/share/containers/storage" in held[2200]
    assert rootless.others() == {}   # its own file is not another engine's
    alloc = PortAllocator([container("workspace-d", 2201)], probe=lambda p: True, claimed=held)
    assert alloc.allocate((2200, 2205), "ssh") == 2202   # 2200: claimed by the other engine; 2201: this engine's
    with pytest.raises(PortError, match="another engine"):
        alloc.claim(2200, "ssh", "workspace-x")
    assert alloc.ours() == {2201, 2202}   # what this engine records: its containers and what the run handed out


def test_a_claims_file_that_is_not_a_small_regular_json_file_is_skipped(tmp_path):
    lock = str(tmp_path / "ports.lock")
    me = PortClaims(lock, "/var/lib/docker")
    me.record({2210})
    claims = tmp_path / "ports.claims"
    uid = os.getuid()
    (claims / ("%d-big.json" % uid)).write_text('{"ports": [2201], "pad": "%s"}' % ("x" * PortClaims.MAX_BYTES))
    (claims / ("%d-bad.json" % uid)).write_text("not json")
    (claims / ("%d-list.json" % uid)).write_text("[2202]")
    (claims / ("%d-str.json" % uid)).write_text('{"ports": ["2203", 0, 70000, true]}')
    os.symlink(str(claims / me.name), str(claims / ("%d-link.json" % uid)))
    os.mkfifo(str(claims / ("%d-fifo.json" % uid)))
    (claims / ("%d-ok.json" % (uid + 1))).write_text('{"ports": [2204]}')   # named for another user: not theirs
    (claims / ("%d-good.json" % uid)).write_text('{"engine": "/x", "ports": [2205]}')
    other = PortClaims(lock, "/var/lib/containers/storage")
    assert set(other.others()) == {2205, 2210}   # the good one and the first engine's own; the link to it is skipped


def test_claims_that_cannot_be_written_are_a_note_not_a_failure(tmp_path):
    (tmp_path / "ports.claims").write_text("a file where the directory goes")
    note = PortClaims(str(tmp_path / "ports.lock"), "/var/lib/docker").record({2200})
    assert note and "were not recorded" in note and "1777" in note
