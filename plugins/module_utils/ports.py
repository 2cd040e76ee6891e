# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host-wide allocation of SSH (2200-2400) and worker (7392-7500) host ports.

Perry probed 127.0.0.1 only and ignored stopped containers, so a stopped workspace's port could be
handed out twice. Here: a host-wide lock held from allocation until the container
exists, every container's published ports (running or stopped, from inspect), the ports already
chosen in this run (claimed or allocated: one port is never given to two workspaces of a run), and a bind
probe on 0.0.0.0 (catches listeners on any IPv4 address).

The lock is host-wide on purpose (ports are host-wide, whichever user or engine asks), so every user must be able
to open the same file: an existing lock is opened without O_CREAT, because with fs.protected_regular=1 (systemd's
default) O_CREAT on another user's file in a sticky directory such as /tmp fails even when it exists. It is
opened O_NOFOLLOW|O_NONBLOCK and must be a regular file (a planted symlink or FIFO is refused, never followed or
waited on). Any local user can hold it and so delay creates (decided, docs/hardening.md): the timeout error names
the process holding it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import pwd
import socket
import stat
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
        fd = open_lock_file(self.path)
        deadline = time.monotonic() + self.timeout
        delay = 0.02
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = lock_holder(fd)
                    os.close(fd)
                    raise WorkspaceError("timed out after %.0f s waiting for the host port lock %s, held by %s (another "
                                         "perry.fleet run, or any local user who opened it): retry, raise engine_timeout, "
                                         "or give this user's runs a private port_lock_path"
                                         % (self.timeout, self.path, holder)) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.25)
        self._fd = fd
        return self

    def __exit__(self, *exc):
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def open_lock_file(path: str) -> int:
    """A read-only fd on the lock file, creating it (0644) only when missing; never follows a link or blocks."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    for _attempt in range(3):
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            try:
                fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o644)
                os.fchmod(fd, 0o644)  # whatever the umask: other users must be able to open it
            except FileExistsError:
                continue  # created by a concurrent run between the two opens: open that one
            except OSError as exc:
                raise _lock_error(path, exc) from None
        except OSError as exc:
            raise _lock_error(path, exc) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise WorkspaceError("the port lock %s is not a regular file: remove it (a run recreates it) or set "
                                 "port_lock_path elsewhere" % path)
        return fd
    raise WorkspaceError("the port lock %s kept appearing and vanishing: retry" % path)


def _lock_error(path: str, exc: OSError) -> WorkspaceError:
    return WorkspaceError("cannot open the port lock %s: %s (a symlink is refused; set port_lock_path to a regular file "
                          "this user can read, or to a directory where it can create one)" % (path, exc.strerror or exc))


def lock_holder(fd: int) -> str:
    """'pid N (user U)' of the process holding a flock on fd's file, from /proc/locks; 'unknown' otherwise."""
    st = os.fstat(fd)
    inode = "%02x:%02x:%d" % (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    try:
        with open("/proc/locks") as fh:
            for line in fh:
                fields = line.split()
                if "FLOCK" in fields and "->" not in fields and fields[-3] == inode:  # "->": a waiter
                    pid = fields[-4]
                    try:
                        user = pwd.getpwuid(os.stat("/proc/%s" % pid).st_uid).pw_name
                    except (OSError, KeyError):
                        user = "?"
                    return "pid %s (user %s)" % (pid, user)
    except OSError:
        pass
    return "an unknown process"


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
            raise WorkspaceError(
                "%s port %d is in use on this host, but by no container of this engine: a process, or a container "
                "of another engine or user (those are seen only while they run, and a stopped one takes the port "
                "back when it starts). Choose another port, leave it unset, or remove that container."
                % (what, port))
        self.holders[port] = owner  # claimed in this run: a second workspace asking for it is refused
        self.taken.add(port)
        return port
