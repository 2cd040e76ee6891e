# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Perry's config directory on the host, as files: where it is, its state lock, reading and writing its JSON files
without following planted links, and whether a Perry agent runs.

- Where: explicit path, else E(WS_CONFIG_DIR), else E(PERRY_CONFIG_DIR), else ``$HOME/.config/perry`` (Perry's order).
- Lock: Perry takes ``<dir>/.state.lock`` with proper-lockfile, which is a *directory* made by ``mkdir`` (atomic)
  whose mtime the holder refreshes; a lock whose mtime is older than 10 s is stale and may be removed and taken.
  We do the same (bounded wait, stale takeover, release only a lock that is still ours).
- Files: every path is opened relative to the directory's fd with O_NOFOLLOW, so a symlink planted at
  ``state.json``, the lock or our sidecar is refused, never followed. Reads are size-capped; writes go to a temp
  file in the same directory (fsync) renamed over the old one (then the directory is fsync'd), keeping the old
  file's mode and owner.
- Agent: the Perry agent keeps state.json in memory and rewrites all of it on every change, so an edit made while
  it runs is lost. A process counts as a Perry agent when its argv holds the perry program (a file named
  ``perry``, or a script inside a directory named ``perry``) followed later by ``agent run``: the compiled binary
  (``perry agent run``), the npm script (``node .../bin/perry agent run``) and a JS dist
  (``bun .../perry/dist/index.js agent run``) all look like that.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import stat
import time

from ansible_collections.perry.fleet.plugins.module_utils.errors import PerryError, SpecError
from ansible_collections.perry.fleet.plugins.module_utils.waiter import wait_until

STATE_FILE = "state.json"
LOCK_DIR = ".state.lock"
LOCK_STALE_SECONDS = 10.0      # proper-lockfile's default, which Perry keeps
MAX_FILE_BYTES = 4 * 1024 * 1024
_OPEN_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_OPEN_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class StateFileError(PerryError):
    """Perry's config directory or one of its files cannot be used as it is; nothing was written."""


def config_dir(explicit: str | None, environ=None) -> str:
    """Perry's config directory: explicit, WS_CONFIG_DIR, PERRY_CONFIG_DIR, then $HOME/.config/perry."""
    env = os.environ if environ is None else environ
    for value in (explicit, env.get("WS_CONFIG_DIR"), env.get("PERRY_CONFIG_DIR")):
        if value:
            return os.path.abspath(os.path.expanduser(value))
    home = env.get("HOME")
    if not home:
        raise SpecError("HOME is not set, so Perry's config directory is unknown: set config_dir")
    return os.path.join(home, ".config", "perry")


# ------------------------------------------------------------------------------------------------ agent process
def is_perry_program(arg: str) -> bool:
    base = os.path.basename(arg)
    if base in ("perry", "perry.exe"):
        return True
    parts = arg.split("/")[:-1]
    return base.endswith((".js", ".mjs", ".cjs", ".ts")) and any(p == "perry" for p in parts)


def agent_command(argv: list) -> list | None:
    """The argv up to ``agent run`` when it is a Perry agent's (what follows, flags that may hold a token, is
    never reported), else None."""
    for i, arg in enumerate(argv):
        if is_perry_program(arg):
            for j in range(i + 1, len(argv) - 1):
                if argv[j:j + 2] == ["agent", "run"]:
                    return argv[:j + 2]
            return None
    return None


def is_perry_agent(argv: list) -> bool:
    return agent_command(argv) is not None


def perry_agents(proc: str = "/proc") -> list:
    """[{pid, cmdline}] of the Perry agent processes this host's /proc shows (containers' processes included)."""
    out = []
    own = os.getpid()
    try:
        pids = [int(p) for p in os.listdir(proc) if p.isdigit()]
    except OSError:
        return out
    for pid in sorted(pids):
        if pid == own:
            continue
        try:
            with open(os.path.join(proc, str(pid), "cmdline"), "rb") as fh:
                raw = fh.read(65536)
        except OSError:      # gone meanwhile, or not ours to read
            continue
        command = agent_command([a.decode("utf-8", "replace") for a in raw.split(b"\0") if a])
        if command:
            out.append({"pid": pid, "cmdline": " ".join(command)[:300]})
    return out


# ------------------------------------------------------------------------------------------------ directory
class ConfigDir:
    """An open fd on the config directory; every file operation is relative to it and follows no link."""

    def __init__(self, path: str, create: bool = False):
        self.path = path
        self.fd = _open_dir(path, create)      # None: missing; reads see Perry's defaults, nothing is written
        st = os.fstat(self.fd) if self.fd is not None else None
        self.owner = (st.st_uid, st.st_gid) if st else None

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def where(self, name: str) -> str:
        return os.path.join(self.path, name)

    def read_json(self, name: str, default, max_bytes: int = MAX_FILE_BYTES) -> tuple:
        """(parsed JSON object, (mode, uid, gid) or None when the file is missing). Refuses links, non-regular
        files, files over max_bytes and anything but a JSON object, saying what to do."""
        if self.fd is None:
            return default, None
        try:
            fd = os.open(name, _OPEN_READ, dir_fd=self.fd)
        except FileNotFoundError:
            return default, None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StateFileError("%s is a symbolic link: refusing to follow it. Replace it with the real file "
                                     "(or remove it); nothing was written." % self.where(name))
            raise StateFileError("cannot read %s: %s" % (self.where(name), exc.strerror))
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise StateFileError("%s is not a regular file: remove it; nothing was written." % self.where(name))
            data = b""
            while len(data) <= max_bytes:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                data += chunk
        finally:
            os.close(fd)
        if len(data) > max_bytes:
            raise StateFileError("%s is larger than %d bytes: that is not a Perry state file this collection "
                                 "will rewrite. Check it; nothing was written." % (self.where(name), max_bytes))
        try:
            value = json.loads(data.decode("utf-8")) if data.strip() else default
        except (UnicodeDecodeError, ValueError) as exc:
            raise StateFileError("%s is not valid JSON (%s): fix or move it; nothing was written."
                                 % (self.where(name), exc))
        if not isinstance(value, dict):
            raise StateFileError("%s does not hold a JSON object: fix or move it; nothing was written."
                                 % self.where(name))
        return value, (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)

    def write_json(self, name: str, value: dict, keep: tuple | None, new_mode: int = 0o600) -> None:
        """Atomically replace ``name`` with ``value`` as Perry writes JSON (2-space indent), keeping the old file's
        mode and owner (``keep``); a new file gets ``new_mode`` and the directory's owner."""
        if self.fd is None:
            raise StateFileError("Perry's config directory %s does not exist" % self.path)
        text = json.dumps(value, indent=2, ensure_ascii=False)
        mode, uid, gid = keep if keep else (new_mode,) + self.owner
        tmp = ".%s.perry-fleet-%s.tmp" % (name, secrets.token_hex(4))
        try:
            fd = os.open(tmp, _OPEN_NEW, 0o600, dir_fd=self.fd)
            try:
                try:
                    os.fchmod(fd, mode)
                    if os.geteuid() == 0:
                        os.fchown(fd, uid, gid)
                    data = memoryview(text.encode("utf-8"))
                    while data:
                        data = data[os.write(fd, data):]
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.rename(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
            except BaseException:
                try:
                    os.unlink(tmp, dir_fd=self.fd)
                except OSError:
                    pass
                raise
            os.fsync(self.fd)
        except OSError as exc:
            raise StateFileError("cannot write %s: %s; the file is as it was before this write."
                                 % (self.where(name), exc.strerror or exc))


def _refuse(path: str, why: str):
    raise StateFileError("Perry's config directory %s cannot be used: %s. Give its real path in config_dir; nothing "
                         "was written." % (path, why))


def _open_dir(path: str, create: bool):
    """An fd on the directory, opened component by component without following links, so nobody can swap a
    component for a link between check and use. A link in the given path is followed only when root or this user
    owns it (a user's dotfile link is fine; one planted by another user for a root run is not). Missing components
    are made 0700 when ``create``, owned (as root) like their parent: a root run must not leave a user's
    ~/.config/perry root-owned. None when the directory is missing and not to be created."""
    path = os.path.abspath(path)
    prefix = "/"
    for comp in [c for c in path.split("/") if c]:
        prefix = os.path.join(prefix, comp)
        try:
            st = os.lstat(prefix)
        except OSError:          # missing (made below) or under a file (refused below)
            break
        if stat.S_ISLNK(st.st_mode) and st.st_uid not in (0, os.geteuid()):
            _refuse(path, "%s is a symbolic link owned by uid %d" % (prefix, st.st_uid))
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    fd = os.open("/", flags)
    try:
        for comp in [c for c in os.path.realpath(path).split("/") if c]:
            try:
                nfd = os.open(comp, flags, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    os.close(fd)
                    return None
                parent = os.fstat(fd)
                os.mkdir(comp, 0o700, dir_fd=fd)
                if os.geteuid() == 0:
                    os.chown(comp, parent.st_uid, parent.st_gid, dir_fd=fd, follow_symlinks=False)
                nfd = os.open(comp, flags, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    _refuse(path, "%s is a link or not a directory" % comp)
                _refuse(path, exc.strerror)
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


# ------------------------------------------------------------------------------------------------ lock
class StateLock:
    """Perry's ``.state.lock`` (a directory, proper-lockfile style), held for one read-modify-write."""

    def __init__(self, directory: ConfigDir, timeout: float, stale: float = LOCK_STALE_SECONDS,
                 clock=time.time):
        self.dir = directory
        self.timeout = timeout
        self.stale = stale
        self.clock = clock
        self.mtime_ns = None
        self.took_over = False

    def _lstat(self):
        return os.stat(LOCK_DIR, dir_fd=self.dir.fd, follow_symlinks=False)

    def _try(self, _remaining):
        try:
            os.mkdir(LOCK_DIR, 0o700, dir_fd=self.dir.fd)
        except FileExistsError:
            pass
        except OSError as exc:
            raise StateFileError("cannot take Perry's state lock %s: %s; nothing was written."
                                 % (self.dir.where(LOCK_DIR), exc.strerror))
        else:
            self.mtime_ns = self._lstat().st_mtime_ns
            return True, None
        try:
            st = self._lstat()
        except FileNotFoundError:
            return False, None       # released meanwhile: try again at once
        if not stat.S_ISDIR(st.st_mode):
            raise StateFileError("%s is not a lock directory (a symbolic link or a file): refusing to touch it. "
                                 "Remove it if no Perry process runs; nothing was written."
                                 % self.dir.where(LOCK_DIR))
        age = self.clock() - st.st_mtime
        if age > self.stale:
            # As proper-lockfile does: a lock not refreshed within `stale` belongs to a dead holder.
            try:
                os.rmdir(LOCK_DIR, dir_fd=self.dir.fd)
                self.took_over = True
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise StateFileError("cannot remove the stale lock %s: %s" % (self.dir.where(LOCK_DIR), exc.strerror))
            return self._try(_remaining)
        return False, age

    def __enter__(self):
        if self.dir.fd is None:
            raise StateFileError("Perry's config directory %s does not exist" % self.dir.path)
        res = wait_until(self._try, self.timeout, interval=0.1, max_interval=1.0, backoff=2)
        if not res.ok:
            raise StateFileError(
                "Perry's state lock %s is held by another process (refreshed %.1f s ago) and was not released "
                "within %g s: a Perry command is writing state.json. Retry when it is done; a lock nobody "
                "refreshes becomes stale after %g s and is then taken over. Nothing was written."
                % (self.dir.where(LOCK_DIR), res.result if res.result is not None else 0.0, self.timeout,
                   self.stale))
        return self

    def check(self) -> None:
        """Before writing: the lock is still ours (nobody took it over as stale); refresh its mtime."""
        try:
            st = self._lstat()
        except FileNotFoundError:
            st = None
        if st is None or st.st_mtime_ns != self.mtime_ns:
            raise StateFileError("Perry's state lock %s was taken over while this run held it (it held it longer "
                                 "than %g s). Retry; nothing more was written." % (self.dir.where(LOCK_DIR), self.stale))
        now = time.time_ns()
        os.utime(LOCK_DIR, ns=(now, now), dir_fd=self.dir.fd, follow_symlinks=False)
        self.mtime_ns = self._lstat().st_mtime_ns

    def __exit__(self, *exc):
        try:
            st = self._lstat()
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode) and st.st_mtime_ns == self.mtime_ns:
            try:
                os.rmdir(LOCK_DIR, dir_fd=self.dir.fd)
            except OSError:
                pass
