from __future__ import annotations

import socket
import threading
import time

import pytest

from ansible_collections.perry.fleet.plugins.module_utils.ports import (
    HostPortLock, PortAllocator, bind_probe, published_ports)
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
