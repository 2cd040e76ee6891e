# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host-wide allocation of SSH (2200-2400) and worker (7392-7500) host ports.

Perry probed 127.0.0.1 only and ignored stopped containers, so a stopped workspace's port could be
handed out twice. Here: a host-wide lock held from allocation until the container
exists, every container's published ports (running or stopped, from inspect), the ports already
chosen in this run, and a bind probe on 0.0.0.0 (catches listeners on any IPv4 address).
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import time

from ansible_collections.perry.fleet.plugins.module_utils import engine as eng
from ansible_collections.perry.fleet.plugins.module_utils.errors import WorkspaceError

DEFAULT_LOCK_PATH = "/tmp/perry-fleet-ports.lock"


def published_ports(container: dict) -> set:
    """Host ports a container publishes or has asked for, whether it runs or not."""
    return {b.host_port for b in eng.port_bindings(container)}


def port_holders(containers) -> dict:
    """port -> container name, for error messages and exclusion."""
    holders = {}
    for c in containers:
        for port in published_ports(c):
            holders.setdefault(port, (c.get("Name") or "").lstrip("/"))
    return holders


def bind_probe(port: int, address: str = "0.0.0.0") -> bool:
    """True when nothing listens on the port (no SO_REUSEADDR: a TIME_WAIT is not a listener)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((address, port))
        return True
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            return False
        raise
    finally:
        sock.close()


class HostPortLock:
    """flock on a shared file; opened read-only so users other than its creator can lock it too."""

    def __init__(self, path: str = DEFAULT_LOCK_PATH, timeout: float = 60.0):
        self.path = path
        self.timeout = timeout
        self._fd = None

    def __enter__(self):
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CREAT, 0o644)
        except OSError as exc:
            raise WorkspaceError("cannot open the port lock %s: %s (set port_lock_path to a path this user can "
                                 "create or read)" % (self.path, exc)) from None
        deadline = time.monotonic() + self.timeout
        delay = 0.02
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise WorkspaceError("timed out after %.0f s waiting for the host port lock %s (another perry.fleet "
                                         "run holds it; retry, or raise engine_timeout)" % (self.timeout, self.path)) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.25)
        self._fd = fd
        return self

    def __exit__(self, *exc):
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class PortAllocator:
    """Picks free ports given every container's inspect data; remembers what it handed out."""

    def __init__(self, containers, probe=None):
        self.holders = port_holders(containers)
        self.taken = set(self.holders)
        self.probe = probe or bind_probe

    def allocate(self, port_range, what: str) -> int:
        lo, hi = port_range
        for port in range(lo, hi + 1):
            if port in self.taken:
                continue
            if not self.probe(port):
                self.holders.setdefault(port, "a process on this host")
                self.taken.add(port)
                continue
            self.taken.add(port)
            return port
        held = ", ".join("%d=%s" % (p, self.holders.get(p, "this run")) for p in range(lo, hi + 1)[:10])
        raise WorkspaceError(
            "no free %s port in range %d-%d: all %d are taken (first holders: %s). Remove unused "
            "workspaces or widen the range." % (what, lo, hi, hi - lo + 1, held))

    def claim(self, port: int, what: str, owner: str) -> int:
        """A port the user asked for, or the one a workspace already had: it must not be someone else's."""
        holder = self.holders.get(port)
        if holder and holder != owner:
            raise WorkspaceError("%s port %d is already used by %s: choose another or leave it unset" % (what, port, holder))
        if holder is None and not self.probe(port):
            raise WorkspaceError("%s port %d is in use by a process on this host: choose another or leave it unset" % (what, port))
        self.taken.add(port)
        return port
