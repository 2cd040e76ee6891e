# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The per-workspace worker token: derived on the host from one secret host key, never stored per workspace.

``token = HMAC-SHA256(host key, "perry.fleet worker token v1\\0" + name)`` (hex). The host key is 32 random bytes in
a 0600 file of the user running the modules, created on first use: ``/var/lib/perry-fleet/worker.key`` for root,
``$XDG_STATE_HOME/perry-fleet/worker.key`` (default ``~/.local/state``) for others; ``PERRY_FLEET_WORKER_KEY``
overrides the path. perry_workspace puts the token in the container's 0600 env file at create
(``PERRY_WORKER_TOKEN``); the image's entrypoint moves it into ``/etc/perry/worker.auth`` (root:workspace 0640), which
the worker requires on every route and the exec transport sends with ``curl -H @file``. A tenant knows its own token;
without the host key it cannot derive another workspace's.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat

from ansible_collections.perry.fleet.plugins.module_utils.errors import WorkerError

KEY_BYTES = 32
KEY_ENV = "PERRY_FLEET_WORKER_KEY"
ROOT_KEY_PATH = "/var/lib/perry-fleet/worker.key"
TOKEN_ENV = "PERRY_WORKER_TOKEN"            # the container env variable the entrypoint turns into the file
AUTH_FILE = "/etc/perry/worker.auth"        # in the container: one "Authorization: Bearer <token>" line
_CONTEXT = b"perry.fleet worker token v1\x00"


def default_key_path() -> str:
    if os.environ.get(KEY_ENV):
        return os.environ[KEY_ENV]
    if os.geteuid() == 0:
        return ROOT_KEY_PATH
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, "perry-fleet", "worker.key")


def _read_key(path: str) -> bytes:
    """The key, read without following a link; the file must be ours, regular, private and 32 bytes."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise WorkerError("the worker key %s is not a regular file: remove it (a new one is created; workspaces "
                              "created with the old key must then be recreated)" % path)
        if st.st_uid != os.geteuid() or st.st_mode & 0o077:
            raise WorkerError("the worker key %s must be owned by uid %d and not readable by others (mode 0600): fix "
                              "it with chown/chmod, or remove it and recreate the workspaces" % (path, os.geteuid()))
        data = os.read(fd, KEY_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) != KEY_BYTES:
        raise WorkerError("the worker key %s is not %d bytes: remove it (a new one is created; workspaces created "
                          "with the old key must then be recreated)" % (path, KEY_BYTES))
    return data


def _create_key(path: str) -> None:
    """Create the key atomically: a private temp file linked into place, so racing runs agree on one key."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    tmp = "%s.%d.%s.tmp" % (path, os.getpid(), os.urandom(4).hex())  # unique per thread too (parallel creates)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, os.urandom(KEY_BYTES))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # another run created it first: theirs is the key
    finally:
        os.unlink(tmp)


def host_key(path: str | None = None) -> bytes:
    path = path or default_key_path()
    try:
        try:
            return _read_key(path)
        except FileNotFoundError:
            _create_key(path)
            return _read_key(path)
    except OSError as exc:
        raise WorkerError("cannot read or create the worker key %s: %s (it must be a 0600 file of the user running "
                          "perry.fleet; set %s to another path if this one cannot be used)"
                          % (path, exc.strerror or exc, KEY_ENV)) from None


def token(name: str, key: bytes) -> str:
    return hmac.new(key, _CONTEXT + name.encode("utf-8"), hashlib.sha256).hexdigest()


class WorkerAuth:
    """Tokens for the workspaces of one task; the host key is read once, on the first direct request."""

    def __init__(self, path: str | None = None, key: bytes | None = None):
        self.path = path
        self._key = key   # given: another user's key read for them (benchmarks measuring a rootless user's workers)

    def header(self, name: str) -> dict:
        if self._key is None:
            self._key = host_key(self.path)
        return {"Authorization": "Bearer " + token(name, self._key)}
