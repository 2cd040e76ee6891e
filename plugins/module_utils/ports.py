# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host-wide allocation of SSH (2200-2400) and worker (7392-7500) host ports.

Perry probed 127.0.0.1 only and ignored stopped containers, so a stopped workspace's port could be
handed out twice. Here: a host-wide lock held from allocation until the container
exists, every container's published ports (running or stopped, from inspect), the ports already
chosen in this run (claimed or allocated: one port is never given to two workspaces of a run), and a bind
probe on 0.0.0.0 (catches listeners on any IPv4 address).

The engines of one host cannot see each other's containers (dockerd, root's podman, every user's rootless podman),
and a stopped container binds nothing, so neither inspect nor the probe sees the ports of another engine's stopped
workspace: handed out again, they made that workspace unable to start. So each engine's ports are also written,
under the lock, to a claims file of its own beside the lock (PortClaims), and allocation skips every other engine's.

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
import hashlib
import json
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


class PortClaims:
    """The host ports of each engine's containers, running or stopped: one JSON file per engine in a directory beside
    the host port lock (``/tmp/perry-fleet-ports.claims/`` for the default lock), written under the lock by that
    engine's runs and read by every other engine's. An engine is named by where it keeps its containers
    (Engine.store_root) and its user, so two ways to one engine (podman's CLI, the docker CLI on its socket) share one
    file.

    Claims are advisory and never fail a run: a file that cannot be written is a note, one that is not a small
    regular JSON file of port numbers is skipped (never followed or waited on). The directory is sticky and
    world-writable like /tmp, so a user replaces only their own file. A file keeps an engine's ports until its next
    create (containers removed meanwhile included): ports are held too long, never handed out twice."""

    MAX_BYTES = 64 * 1024

    def __init__(self, lock_path: str, store_root: str, uid: int | None = None):
        base = lock_path[:-len(".lock")] if lock_path.endswith(".lock") else lock_path
        self.dir = base + ".claims"
        self.uid = os.getuid() if uid is None else uid
        self.engine = store_root
        self.name = "%d-%s.json" % (self.uid, hashlib.sha256(store_root.encode()).hexdigest()[:16])

    def others(self) -> dict:
        """port -> who holds it, from every other engine's file."""
        held = {}
        try:
            names = sorted(n for n in os.listdir(self.dir) if n.endswith(".json") and n != self.name)
        except OSError:
            return held
        for name in names:
            found = self._read(os.path.join(self.dir, name))
            if found is None:
                continue
            doc, owner = found
            if name.split("-", 1)[0] != str(owner):
                continue   # a file named for another user's engine: not that engine's claims
            who = "a container of another engine (%s, uid %d; claims file %s)" % (
                str(doc.get("engine"))[:200], owner, os.path.join(self.dir, name))
            for port in doc.get("ports") or []:
                if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536:
                    held.setdefault(port, who)
        return held

    def _read(self, path: str) -> tuple | None:
        """(document, owner uid) of a small regular JSON file, else None."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size > self.MAX_BYTES:
                return None
            doc = json.loads(os.read(fd, self.MAX_BYTES + 1).decode("utf-8", "replace"))
            return (doc, st.st_uid) if isinstance(doc, dict) else None
        except (OSError, ValueError):
            return None
        finally:
            os.close(fd)

    def record(self, ports) -> str | None:
        """Write this engine's ports (atomically); a note saying why not, instead of raising."""
        doc = json.dumps({"engine": self.engine, "ports": sorted(ports)})   # the owner is the file's (fstat)
        tmp = os.path.join(self.dir, ".%s.%d.tmp" % (self.name, os.getpid()))
        try:
            self._ensure_dir()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            try:
                os.fchmod(fd, 0o644)   # every user's runs read it
                os.write(fd, doc.encode())
            finally:
                os.close(fd)
            os.rename(tmp, os.path.join(self.dir, self.name))
        except OSError as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            return ("the ports of this engine's containers were not recorded in %s (%s): other engines on this host "
                    "may hand out a stopped workspace's ports; make the directory a sticky world-writable one (mode "
                    "1777) or set port_lock_path elsewhere" % (self.dir, exc.strerror or exc))
        return None

    def _ensure_dir(self) -> None:
        try:
            os.mkdir(self.dir, 0o1777)
            os.chmod(self.dir, 0o1777)   # whatever the umask: every user writes their own file here
        except FileExistsError:
            pass
        st = os.lstat(self.dir)
        if not stat.S_ISDIR(st.st_mode):
            raise OSError(errno.ENOTDIR, "not a directory (a link or file is never followed)")


class PortAllocator:
    """Picks free ports given every container's inspect data and the other engines' claims; remembers what it handed
    out."""

    def __init__(self, containers, probe=None, claimed: dict | None = None):
        self.holders = port_holders(containers)
        self.own = set(self.holders)          # this engine's containers' ports, before this run
        for port, who in (claimed or {}).items():
            self.holders.setdefault(port, who)
        self.taken = set(self.holders)
        self.probe = probe or bind_probe
        self.handed = set()                   # allocated or claimed in this run

    def ours(self) -> set:
        """This engine's ports once the run's containers exist: what PortClaims.record writes."""
        return self.own | self.handed

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
            self.handed.add(port)
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
        self.handed.add(port)
        return port
