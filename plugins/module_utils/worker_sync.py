# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Installing the Perry worker into a running workspace, atomically and only when it changed.

Two artifact formats (as Perry ships them): a compiled binary installed as /usr/local/bin/perry (the docker
profile's default), or a JavaScript dist directory plus a POSIX sh wrapper at /usr/local/bin/perry
that execs the container's bun on it (the podman profile's default: no host-specific linker paths).
A content-hash manifest in the container makes an unchanged worker cost one exec, or none when the
manifest can be read on this host (container_files.py). New content is
copied to a temporary path and renamed into place, so an interrupted sync never leaves a broken worker.

Root does the work only where root owns every path (/usr/local/bin, /usr/local/lib/perry), through exec_argv's
fixed PATH and absolute paths; the workspace user's link (~/.local/bin/perry) is made as that user (setpriv), so a
link planted in the home never carries root's mkdir/ln/chown outside it. The manifest is not trusted alone: the
same read checks that the installed entry is still there (a deleted worker is installed again).
"""

from __future__ import annotations

import hashlib
import os
import shlex
from dataclasses import dataclass

from ansible_collections.perry.fleet.plugins.module_utils import layout
from ansible_collections.perry.fleet.plugins.module_utils import worker_process
from ansible_collections.perry.fleet.plugins.module_utils.container_files import read_on_host, stat_on_host
from ansible_collections.perry.fleet.plugins.module_utils.engine import Engine, exec_argv
from ansible_collections.perry.fleet.plugins.module_utils.errors import EngineError, SpecError, WorkspaceError

LIB_DIR = "/usr/local/lib/perry"
MANIFEST = LIB_DIR + "/MANIFEST"
BIN_PATH = layout.WORKER_BIN
DIST_ENTRY = "cli.js"
BUILD_DIST, BUILD_BINARY = "dist", "perry"   # what worker/build-cached.sh puts in its output directory
BUN_PATH = "/usr/local/bin/bun"
USER_LINK = layout.home_path(".local/bin/perry")
SETPRIV_USER = "/usr/bin/setpriv --reuid=%s --regid=%s --init-groups --" % (layout.USER, layout.USER)
ELF_MACHINES = {62: "x86_64", 183: "aarch64"}


@dataclass(frozen=True)
class WorkerArtifact:
    path: str
    kind: str          # "binary" or "dist"
    digest: str
    arch: str | None   # binaries only
    entry_size: int | None = None   # bytes of the binary, or of the dist's cli.js: the cheap "still installed" check

    @classmethod
    def from_path(cls, path: str, preferred: str = "dist") -> "WorkerArtifact":
        """A binary, a JS dist directory, or a build directory holding both (``perry`` and ``dist/``), from which
        the runtime profile's ``preferred`` format is taken (the other when only that one was built)."""
        path = os.path.abspath(os.path.expanduser(path))
        if os.path.isdir(path) and not os.path.isfile(os.path.join(path, DIST_ENTRY)):
            built = {"binary": os.path.join(path, BUILD_BINARY), "dist": os.path.join(path, BUILD_DIST)}
            usable = [k for k in (preferred, "dist" if preferred == "binary" else "binary") if os.path.exists(built[k])]
            if not usable:
                raise SpecError("worker_source %s is a directory without %s, %s or %s: point it at the worker's JS "
                                "dist directory, a compiled worker, or a worker/build-cached.sh output directory"
                                % (path, DIST_ENTRY, BUILD_DIST, BUILD_BINARY))
            path = built[usable[0]]
        if os.path.isdir(path):
            if not os.path.isfile(os.path.join(path, DIST_ENTRY)):
                raise SpecError("worker_source %s is a directory without %s: point it at the worker's JS dist "
                                "directory (worker/dist after worker/build.sh)" % (path, DIST_ENTRY))
            return cls(path, "dist", _tree_digest(path), None, os.path.getsize(os.path.join(path, DIST_ENTRY)))
        if os.path.isfile(path):
            return cls(path, "binary", _file_digest(path), _elf_arch(path), os.path.getsize(path))
        raise SpecError("worker_source %s does not exist on this host: build it with worker/build.sh or copy "
                        "it here first" % path)


def _file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _tree_digest(root: str) -> str:
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            h.update(os.path.relpath(full, root).encode() + b"\0" + _file_digest(full).encode() + b"\n")
    return h.hexdigest()


def _elf_arch(path: str) -> str:
    with open(path, "rb") as fh:
        head = fh.read(20)
    if head[:4] != b"\x7fELF":
        raise SpecError("worker_source %s is not a Linux (ELF) binary: build it for Linux with "
                        "`bun build --compile --target=bun-linux-x64` or use the JS dist directory" % path)
    machine = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
    return ELF_MACHINES.get(machine, "elf-machine-%d" % machine)


def _sh(script: str) -> list:
    return ["/bin/sh", "-c", script]


class WorkerSync:
    def __init__(self, engine: Engine, artifact: WorkerArtifact, timeout: float):
        self.engine = engine
        self.artifact = artifact
        self.timeout = timeout

    def manifest_line(self) -> str:
        return "%s %s" % (self.artifact.kind, self.artifact.digest)

    def release_dir(self) -> str:
        return "%s/releases/%s" % (LIB_DIR, self.artifact.digest[:16])

    def entry_path(self) -> str:
        """The file whose size says this artifact is still installed: the binary, or the release's cli.js."""
        return BIN_PATH if self.artifact.kind == "binary" else "%s/%s" % (self.release_dir(), DIST_ENTRY)

    def _intact_test(self) -> str:
        """sh test: the installed entry is a regular file of the artifact's size and the wrapper is executable."""
        return ("[ -f {bin} ] && [ ! -L {bin} ] && [ -x {bin} ] && [ -f {entry} ] && [ ! -L {entry} ] "
                "&& [ \"$(stat -c %s {entry})\" = {size} ]").format(
                    bin=BIN_PATH, entry=self.entry_path(), size=int(self.artifact.entry_size or 0))

    def _intact_on_host(self, inspected: dict | None) -> bool:
        wrapper, entry = stat_on_host(self.engine, inspected, BIN_PATH), stat_on_host(self.engine, inspected, self.entry_path())
        return (wrapper is not None and bool(wrapper.st_mode & 0o111) and entry is not None
                and entry.st_size == self.artifact.entry_size)

    def probe(self, container: str) -> tuple:
        """(container arch, installed manifest line, whether the installed entry is intact) in one exec. Root
        reads only root-owned paths here; the manifest is read non-blocking and bounded all the same."""
        # One line each, whether or not the manifest ends with a newline ($(...) strips it, printf adds one).
        script = ("uname -m; printf '%%s\\n' \"$(dd if=%s iflag=nonblock,nofollow bs=256 count=1 status=none "
                  "2>/dev/null | head -n 1)\"; if %s; then echo intact; else echo broken; fi"
                  % (MANIFEST, self._intact_test()))
        res = self.engine.run(exec_argv(container, _sh(script), "root"), timeout=self.timeout)
        lines = res.stdout.splitlines() + ["", "", ""]
        return lines[0].strip(), lines[1].strip(), lines[2].strip() == "intact"

    def sync(self, container: str, check_mode: bool = False, inspected: dict | None = None) -> dict:
        """Returns {'changed', 'digest', 'kind', 'action'}; raises WorkspaceError with advice.

        ``inspected`` (the container's inspect) lets an unchanged worker be recognised without an exec."""
        result = {"kind": self.artifact.kind, "digest": self.artifact.digest, "changed": False, "action": "unchanged"}
        on_host = read_on_host(self.engine, inspected, MANIFEST)
        if on_host is not None and on_host.strip() == self.manifest_line() and self._intact_on_host(inspected):
            return result  # the arch was checked when this very artifact was installed
        arch, installed, intact = self.probe(container)
        if self.artifact.kind == "binary" and self.artifact.arch != arch:
            raise WorkspaceError(
                "worker binary %s is built for %s but container %s runs %s: build the worker for %s (or use the JS "
                "dist directory, which runs on any architecture with bun)"
                % (self.artifact.path, self.artifact.arch, container, arch, arch))
        if installed == self.manifest_line() and intact:
            return result
        action = "restore" if installed == self.manifest_line() else ("install" if not installed else "update")
        result.update(changed=True, action=action)
        if check_mode:
            return result
        if self.artifact.kind == "binary":
            self._install_binary(container)
        else:
            self._install_dist(container)
        self._restart_worker(container)
        return result

    def _copy(self, src: str, container: str, dest: str) -> None:
        self.engine.copy_into(src, container, dest, timeout=self.timeout)

    def _install_binary(self, container: str) -> None:
        tmp = "%s.new-%s" % (BIN_PATH, self.artifact.digest[:12])
        self._copy(self.artifact.path, container, tmp)
        self._finalize(container, "chown root:root %s && chmod 0755 %s && mv -f %s %s" % (tmp, tmp, tmp, BIN_PATH))

    def _install_dist(self, container: str) -> None:
        release = self.release_dir()
        staging = release + ".tmp"
        self.engine.run(exec_argv(container, _sh(
            "rm -rf %s && mkdir -p %s/releases" % (shlex.quote(staging), LIB_DIR)), "root"), timeout=self.timeout)
        self._copy(self.artifact.path, container, staging)
        wrapper = '#!/bin/sh\\n# perry worker: JS dist run by the bun of this container (installed by perry.fleet)\\n' \
                  'exec %s %s/current/%s "$@"\\n' % (BUN_PATH, LIB_DIR, DIST_ENTRY)
        self._finalize(container, " && ".join([
            "test -x %s || { echo 'the image has no %s: the JS dist worker needs bun (use the perry.fleet.image role)' >&2; exit 3; }" % (BUN_PATH, BUN_PATH),
            "chown -R root:root %s" % staging,
            "find %s -type d -exec chmod 0755 {} +" % staging,
            "find %s -type f -exec chmod 0644 {} +" % staging,
            "rm -rf %s && mv %s %s" % (release, staging, release),
            # Swap the 'current' link atomically (rename over it), then the wrapper likewise.
            "ln -sfn %s %s/current.new && mv -T %s/current.new %s/current" % (release, LIB_DIR, LIB_DIR, LIB_DIR),
            "printf '%s' > %s.new && chmod 0755 %s.new && chown root:root %s.new && mv -f %s.new %s" % (
                wrapper, BIN_PATH, BIN_PATH, BIN_PATH, BIN_PATH, BIN_PATH),
            # Keep only the release in use.
            "find %s/releases -mindepth 1 -maxdepth 1 ! -name %s -exec rm -rf {} +" % (LIB_DIR, os.path.basename(release)),
        ]))

    def _finalize(self, container: str, install_cmd: str) -> None:
        """Install, link for the workspace user, and record the manifest last (so a crash means 'resync')."""
        script = " && ".join([
            "set -e",
            install_cmd,
            # as the workspace user: the home is theirs, a link planted there must not carry root's mkdir/ln
            "{ %s /bin/sh -c %s 2>/dev/null || true; }" % (SETPRIV_USER, shlex.quote(
                "mkdir -p %s && ln -sfn %s %s" % (os.path.dirname(USER_LINK), BIN_PATH, USER_LINK))),
            "mkdir -p %s && printf '%%s\\n' %s > %s.new && mv -f %s.new %s" % (
                LIB_DIR, shlex.quote(self.manifest_line()), MANIFEST, MANIFEST, MANIFEST),
        ])
        try:
            self.engine.run(exec_argv(container, _sh(script), "root"), timeout=self.timeout)
        except EngineError as exc:
            raise WorkspaceError("installing the worker in %s failed: %s" % (container, exc.stderr.strip() or exc.msg)) from None

    def _restart_worker(self, container: str) -> None:
        """New content: stop the old worker; the image's supervisor (or worker_process) starts the new one."""
        res = worker_process.restart(self.engine, container, self.timeout)
        if res.rc != 0:
            raise WorkspaceError("restarting the worker in %s failed (rc=%d): %s" % (container, res.rc, res.stderr.strip()))
