# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading a small file of a container from the host, through the paths its inspect reports.

An idempotent run only needs to know whether a manifest line in the container equals the one it would
write. With a local engine the file is on this host already, in the container's writable layer
(GraphDriver UpperDir) or in a volume (Mounts[].Source), so reading it there saves one `exec` per
workspace (~0.1-0.3 s each, more under rootless podman). Every failure returns None and callers fall
back to `exec`; only an exact match is trusted, so a stale or unreadable file costs the exec, never a
wrong answer. The container controls those directories: symlinks are never followed, only regular files
are read (opened O_NONBLOCK, so a FIFO planted there never blocks), and reads are bounded.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import stat

from ansible_collections.perry.fleet.plugins.module_utils import engine as eng

MAX_BYTES = 4096


def host_path(container: dict | None, path: str) -> tuple | None:
    """(root on this host, path relative to it) where the container's ``path`` lives, or None."""
    if not container:
        return None
    path = posixpath.normpath(path)
    best = None
    for mount in container.get("Mounts") or []:
        dest, source = mount.get("Destination") or "", mount.get("Source") or ""
        if source and (path == dest or path.startswith(dest.rstrip("/") + "/")):
            if best is None or len(dest) > len(best[0]):
                best = (dest, source)
    if best is not None:
        return best[1], posixpath.relpath(path, best[0])
    upper = ((container.get("GraphDriver") or {}).get("Data") or {}).get("UpperDir")
    return (upper, path.lstrip("/")) if upper else None


def _open_no_follow(engine, container: dict | None, path: str) -> tuple | None:
    """(fds to close, fd of the regular file) for the container's ``path`` on this host, no link followed at any
    component and nothing but a regular file opened (O_NONBLOCK: a FIFO never blocks); None when it cannot be."""
    where = host_path(container, path) if eng.is_local(engine) else None
    if where is None:
        return None
    root, rel = where
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if ".." in parts or not parts:
        return None
    fds = []
    try:
        fds.append(os.open(root, os.O_RDONLY | os.O_DIRECTORY))
        for part in parts[:-1]:
            fds.append(os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fds[-1]))
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fds[-1])
        fds.append(fd)
        if stat.S_ISREG(os.fstat(fd).st_mode):
            return fds, fd
    except OSError:  # missing, not readable by this user, a symlink (ELOOP), ...
        pass
    _close(fds)
    return None


def _close(fds) -> None:
    for fd in reversed(fds):
        os.close(fd)


def read_on_host(engine, container: dict | None, path: str) -> str | None:
    """The text (at most MAX_BYTES) of the container's regular file ``path`` read on this host, or None."""
    opened = _open_no_follow(engine, container, path)
    if opened is None:
        return None
    fds, fd = opened
    try:
        return os.read(fd, MAX_BYTES).decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        _close(fds)


def stat_on_host(engine, container: dict | None, path: str) -> os.stat_result | None:
    """The stat of the container's regular file ``path`` on this host (no link followed), or None."""
    opened = _open_no_follow(engine, container, path)
    if opened is None:
        return None
    fds, fd = opened
    try:
        return os.fstat(fd)
    finally:
        _close(fds)


def file_state_on_host(engine, container: dict | None, path: str, size: int) -> tuple | None:
    """(permission bits, sha256) of the container's regular file ``path`` when it is ``size`` bytes long, read on
    this host; ("size", None) for another size (not hashed: a file swollen to gigabytes costs nothing); None when
    it cannot be read here (callers fall back to exec)."""
    opened = _open_no_follow(engine, container, path)
    if opened is None:
        return None
    fds, fd = opened
    try:
        st = os.fstat(fd)
        if st.st_size != size:
            return "size", None
        digest = hashlib.sha256()
        remaining = size
        while remaining > 0:
            block = os.read(fd, min(remaining, 1 << 20))
            if not block:
                break
            digest.update(block)
            remaining -= len(block)
        return stat.S_IMODE(st.st_mode), digest.hexdigest()
    except OSError:
        return None
    finally:
        _close(fds)
