# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files placed in a workspace's home (credentials, git config, SSH keys) with Perry's modes.

Perry copies credential files with `docker cp` and then runs `chmod -R` with a file mode on whole
directories, which strips the execute bit from nested directories. Here
every file gets its own mode and every directory we create gets a directory mode (0700 under .ssh,
0755 elsewhere), all owned by `workspace`. Contents travel through a 0600 staging copy, never argv,
and a manifest of (path, mode, content hash) makes an unchanged set cost one exec (none when it can be
read on this host: container_files.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import shlex
import shutil
import tempfile
from dataclasses import dataclass

from ansible_collections.perry.fleet.plugins.module_utils import layout
from ansible_collections.perry.fleet.plugins.module_utils.container_files import read_on_host
from ansible_collections.perry.fleet.plugins.module_utils.engine import Engine
from ansible_collections.perry.fleet.plugins.module_utils.errors import EngineError, SpecError, WorkspaceError

HOME = layout.HOME
MANIFEST = layout.home_path(".config/perry-fleet/files.manifest")
USER = layout.USER
# Perry's rule: under .ssh everything is secret except public keys, config and known_hosts; agent
# credential files are secret too.
_PUBLIC_SSH = (".pub", "config", "known_hosts")
_SECRET_NAMES = (".credentials.json", "auth.json", "mcp-auth.json", ".git-credentials")


@dataclass(frozen=True)
class WorkspaceFile:
    dest: str      # absolute, under /home/workspace
    mode: str      # octal string such as "0600"
    content: bytes

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def default_mode(dest: str) -> str:
    parts = dest.split("/")
    if ".ssh" in parts[:-1]:
        return "0644" if dest.endswith(_PUBLIC_SSH) else "0600"
    return "0600" if dest.endswith(_SECRET_NAMES) else "0644"


def normalize_dest(dest) -> str:
    if not isinstance(dest, str) or not dest.strip():
        raise SpecError("files: each entry needs dest, a path in the workspace home such as ~/.gitconfig")
    path = dest.strip()
    if path.startswith("~/"):
        path = HOME + path[1:]
    elif not path.startswith("/"):
        path = HOME + "/" + path
    if "\x00" in path or "\n" in path:
        raise SpecError("files: dest %r contains a NUL or newline" % dest)
    norm = posixpath.normpath(path)
    if not norm.startswith(HOME + "/"):
        raise SpecError("files: dest %r is outside the workspace home %s (no '..' or other absolute paths)" % (dest, HOME))
    return norm


def build_files(entries) -> list:
    """Validate file entries ({dest, content|src, mode}) into WorkspaceFile objects."""
    out = {}
    for entry in entries or []:
        if not isinstance(entry, dict):
            raise SpecError("files: each entry must be a mapping with dest and content or src")
        dest = normalize_dest(entry.get("dest"))
        content, src = entry.get("content"), entry.get("src")
        if (content is None) == (src is None):
            raise SpecError("files: %s needs exactly one of content or src" % dest)
        if src is not None:
            src = os.path.expanduser(src)
            if not os.path.isfile(src):
                raise SpecError("files: src %s for %s is not a file on this host" % (src, dest))
            with open(src, "rb") as fh:
                data = fh.read()
        else:
            data = content.encode() if isinstance(content, str) else json.dumps(content).encode()
        mode = str(entry.get("mode") or default_mode(dest))
        if not (len(mode) in (3, 4) and all(c in "01234567" for c in mode)):
            raise SpecError("files: mode %r for %s is not an octal mode such as 0600" % (mode, dest))
        out[dest] = WorkspaceFile(dest, mode.zfill(4), data)
    return [out[k] for k in sorted(out)]


def manifest_digest(files) -> str:
    doc = [[f.dest, f.mode, f.digest] for f in files]
    return hashlib.sha256(json.dumps(doc).encode()).hexdigest()


def _dir_mode(path: str) -> str:
    return "0700" if ".ssh" in path.split("/") else "0755"


def install_script(files, staging: str, digest: str) -> str:
    """Shell script (run as root) that creates missing parent dirs and installs each staged file."""
    lines = ["set -e"]
    dirs = []
    for f in files:
        parent = posixpath.dirname(f.dest)
        chain = []
        while parent != HOME and parent not in dirs:
            chain.append(parent)
            parent = posixpath.dirname(parent)
        for d in reversed(chain):
            dirs.append(d)
            lines.append("[ -d %s ] || install -d -o %s -g %s -m %s %s" % (shlex.quote(d), USER, USER, _dir_mode(d), shlex.quote(d)))
    for i, f in enumerate(files):
        lines.append("install -o %s -g %s -m %s %s/%d %s" % (USER, USER, f.mode, shlex.quote(staging), i, shlex.quote(f.dest)))
    lines.append("rm -rf %s" % shlex.quote(staging))
    lines.append("install -d -o %s -g %s -m 0755 %s" % (USER, USER, shlex.quote(posixpath.dirname(MANIFEST))))
    lines.append("printf '%%s\\n' %s > %s" % (digest, shlex.quote(MANIFEST)))
    return "\n".join(lines)


class FilesSync:
    def __init__(self, engine: Engine, timeout: float):
        self.engine = engine
        self.timeout = timeout

    def sync(self, container: str, files, check_mode: bool = False, inspected: dict | None = None) -> dict:
        """``inspected`` (the container's inspect) lets unchanged files be recognised without an exec."""
        digest = manifest_digest(files)
        installed = read_on_host(self.engine, inspected, MANIFEST)
        if installed is None or installed.strip() != digest:
            installed = self.engine.run(["exec", "-u", "root", container, "cat", MANIFEST], timeout=self.timeout,
                                        check=False).stdout
        result = {"count": len(files), "digest": digest, "changed": installed.strip() != digest}
        if not result["changed"] or check_mode:
            return result
        tmp = tempfile.mkdtemp(prefix="perry-fleet-files-")
        staging = "/tmp/perry-fleet-files-" + digest[:16]
        try:
            for i, f in enumerate(files):
                fd = os.open(os.path.join(tmp, str(i)), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(f.content)
            self.engine.run(["exec", "-u", "root", container, "rm", "-rf", staging], timeout=self.timeout)
            self.engine.copy_into(tmp, container, staging, timeout=self.timeout)
            self.engine.run(["exec", "-u", "root", container, "sh", "-c", install_script(files, staging, digest)],
                            timeout=self.timeout)
        except EngineError as exc:
            raise WorkspaceError("placing files in %s failed: %s" % (container, exc.stderr.strip() or exc.msg)) from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return result
