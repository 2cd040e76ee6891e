# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files placed in a workspace's home (credentials, git config, SSH keys) with Perry's modes.

Perry copies credential files with `docker cp` and then runs `chmod -R` with a file mode on whole
directories, which strips the execute bit from nested directories. Here
every file gets its own mode and every directory we create gets a directory mode (0700 under .ssh,
0755 elsewhere), all owned by `workspace`. Everything runs as the workspace user, never root: the home is
the user's, so a link planted in it cannot carry a write or a chown anywhere the user could not reach anyway.
Contents travel on the exec's stdin, never argv. A manifest of (path, mode, content hash) plus each managed
file's mode and hash, checked in the same exec, makes an unchanged set cost one exec (none when it can be read
on this host: container_files.py), and a managed file deleted or edited in the workspace is placed again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import posixpath
import shlex
from dataclasses import dataclass

from ansible_collections.perry.fleet.plugins.module_utils import layout
from ansible_collections.perry.fleet.plugins.module_utils.container_files import file_state_on_host, read_on_host
from ansible_collections.perry.fleet.plugins.module_utils.engine import Engine, exec_argv
from ansible_collections.perry.fleet.plugins.module_utils.errors import EngineError, SpecError, WorkspaceError

HOME = layout.HOME
MANIFEST = layout.home_path(".config/perry-fleet/files.manifest")
USER = layout.USER
# Perry's rule: under .ssh everything is secret except public keys, config and known_hosts; agent
# credential files are secret too.
_PUBLIC_SSH = (".pub", "config", "known_hosts")
_SECRET_NAMES = (".credentials.json", "auth.json", "mcp-auth.json", ".git-credentials")


# A directory entry (credential directories such as ~/.config/gh) is a tree of files: bounded so that a mistaken src
# (a whole home) fails with a clear message instead of shipping gigabytes through one exec's stdin.
MAX_TREE_FILES = 1000
MAX_TREE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class WorkspaceFile:
    dest: str      # absolute, under /home/workspace
    mode: str      # octal string such as "0600"
    content: bytes
    tree: str = ""  # the dest of the directory entry this file came from: directories created under it are 0700

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
    if norm == layout.SECRETS_FILE:
        raise SpecError("files: %s is written from secret_env; put those values in secret_env instead" % norm)
    if norm == layout.ENV_FILE:
        raise SpecError("files: %s is written from env; put those values in env instead" % norm)
    return norm


def _checked_mode(mode, dest: str) -> str:
    mode = str(mode)
    if not (len(mode) in (3, 4) and all(c in "01234567" for c in mode)):
        raise SpecError("files: mode %r for %s is not an octal mode such as 0600" % (mode, dest))
    return mode.zfill(4)


def tree_default_mode(dest: str) -> str:
    """A credential directory's files are secrets (0600), except the public names Perry leaves readable under .ssh."""
    return "0644" if ".ssh" in dest.split("/")[:-1] and dest.endswith(_PUBLIC_SSH) else "0600"


def _tree_files(src: str, dest: str, mode) -> list:
    """The regular files under directory ``src`` as WorkspaceFiles under ``dest``. A link anywhere in the tree is
    refused, never followed (it could point at anything on this host); so is anything but files and directories."""
    out, total = [], 0
    for root, dirs, names in os.walk(src, followlinks=False):
        dirs.sort()
        for name in sorted(dirs) + sorted(names):
            path = os.path.join(root, name)
            rel = os.path.relpath(path, src).replace(os.sep, "/")
            if os.path.islink(path):
                raise SpecError("files: %s in directory src %s is a symbolic link; perry.fleet never follows links "
                                "in a directory it copies. Replace it with the file itself or remove it." % (rel, src))
            if name in dirs:
                continue
            if not os.path.isfile(path):
                raise SpecError("files: %s in directory src %s is not a regular file (a socket, FIFO or device); "
                                "remove it from the directory." % (rel, src))
            if len(out) >= MAX_TREE_FILES:
                raise SpecError("files: directory src %s holds more than %d files; copy a smaller directory (credential "
                                "directories are a few files)." % (src, MAX_TREE_FILES))
            with open(path, "rb") as fh:
                data = fh.read(MAX_TREE_BYTES + 1 - total)
            total += len(data)
            if total > MAX_TREE_BYTES:
                raise SpecError("files: directory src %s is larger than %d MiB; copy a smaller directory."
                                % (src, MAX_TREE_BYTES // (1024 * 1024)))
            file_dest = normalize_dest(dest + "/" + rel)
            out.append(WorkspaceFile(file_dest, _checked_mode(mode or tree_default_mode(file_dest), file_dest), data,
                                     tree=dest))
    return out


def build_files(entries) -> list:
    """Validate file entries ({dest, content|src, mode}) into WorkspaceFile objects; a src that is a directory gives
    one per file in it."""
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
            if os.path.islink(src):
                raise SpecError("files: src %s for %s is a symbolic link; give the path it points to" % (src, dest))
            if os.path.isdir(src):
                for f in _tree_files(src, dest, entry.get("mode")):
                    out[f.dest] = f
                continue
            if not os.path.isfile(src):
                raise SpecError("files: src %s for %s is not a file or directory on this host" % (src, dest))
            with open(src, "rb") as fh:
                data = fh.read()
        else:
            data = content.encode() if isinstance(content, str) else json.dumps(content).encode()
        out[dest] = WorkspaceFile(dest, _checked_mode(entry.get("mode") or default_mode(dest), dest), data)
    return [out[k] for k in sorted(out)]


def secrets_file(name: str, secret_env: dict, key: bytes) -> WorkspaceFile:
    """secret_env as the 0600 file the image's shells source (written in place, never through the engine's config).

    The key-id line is a host-keyed HMAC, so the file's digest (in the manifest and in results) cannot be tested
    against guessed secret values offline."""
    key_id = hmac.new(key, b"perry.fleet secret_env file\0" + name.encode(), hashlib.sha256).hexdigest()[:32]
    lines = ["# Written by perry.fleet from secret_env; loaded by login and interactive shells. Do not share.",
             "# key-id %s" % key_id]
    lines += ["%s=%s" % (k, shlex.quote(v)) for k, v in sorted(secret_env.items())]
    return WorkspaceFile(layout.SECRETS_FILE, "0600", ("\n".join(lines) + "\n").encode())


def env_file(env: dict, unset=()) -> WorkspaceFile:
    """env as the 0644 file the image's shells source before the secrets file (written in place, so a changed value
    recreates nothing). ``unset``: keys a container created before 0.2.0 still carries in its engine config but the
    user no longer sets, so its new shells do not see the stale value."""
    lines = ["# Written by perry.fleet from env; loaded by login and interactive shells before secrets.env."]
    lines += ["unset %s" % k for k in sorted(set(unset) - set(env))]
    lines += ["%s=%s" % (k, shlex.quote(v)) for k, v in sorted(env.items())]
    return WorkspaceFile(layout.ENV_FILE, "0644", ("\n".join(lines) + "\n").encode())


def manifest_digest(files) -> str:
    doc = [[f.dest, f.mode, f.digest] for f in files]
    return hashlib.sha256(json.dumps(doc).encode()).hexdigest()


def _dir_mode(path: str, trees=()) -> str:
    private = ".ssh" in path.split("/") or any(path == t or path.startswith(t + "/") for t in trees)
    return "0700" if private else "0755"


# Both scripts run as the workspace user (never root): a link the user planted anywhere in the home then leads
# only where the user could write anyway.
#
# PROBE_SCRIPT (args: the manifest, then dest/size pairs) prints the manifest's digest (hex only, one line), then one
# line per file: "file <mode> <size> <sha256, or - when the size differs>", "dir", "link", "other" or "missing".
# Only regular files are read, opened non-blocking without following a link (a FIFO never blocks), and bounded:
# the manifest to 256 bytes, a file to its expected size (a file of another size is not hashed at all).
PROBE_SCRIPT = r"""
m=$1; shift
if [ -f "$m" ] && [ ! -L "$m" ]; then
  dd if="$m" iflag=nonblock,nofollow bs=256 count=1 status=none 2>/dev/null | head -n 1 | tr -cd 0-9a-f
fi
echo
while [ $# -ge 2 ]; do
  p=$1; n=$2; shift 2
  if [ -L "$p" ]; then echo link
  elif [ -d "$p" ]; then echo dir
  elif [ -f "$p" ]; then
    st=$(stat -c '%a %s' -- "$p" 2>/dev/null || echo '- -'); mode=${st% *}; size=${st#* }; h=-
    if [ "$size" = "$n" ]; then
      h=$(dd if="$p" iflag=nonblock,nofollow bs=65536 status=none 2>/dev/null | head -c "$n" | sha256sum | cut -c1-64)
    fi
    echo "file $mode $size $h"
  elif [ -e "$p" ]; then echo other
  else echo missing; fi
done
"""


def probe_argv(files) -> list:
    args = [MANIFEST]
    for f in files:
        args += [f.dest, str(len(f.content))]
    return ["/bin/sh", "-c", PROBE_SCRIPT, "sh"] + args


def parse_probe(stdout: str, files) -> tuple:
    """(installed manifest digest, {dest: state line}) from PROBE_SCRIPT's output."""
    lines = stdout.split("\n")
    states = {f.dest: (lines[i + 1].strip() if i + 1 < len(lines) else "missing") for i, f in enumerate(files)}
    return lines[0].strip(), states


def expected_state(f: WorkspaceFile) -> str:
    return "file %o %d %s" % (int(f.mode, 8), len(f.content), f.digest)


def install_script(files, digest: str) -> str:
    """sh script (run as the workspace user, read from stdin) that creates missing parent dirs with their modes,
    writes each file to a temporary name beside it and renames it over the dest (a link there is replaced, never
    followed), then records the manifest. Contents travel base64-encoded in here-documents on stdin: never argv."""
    lines = ["set -eu", "umask 077", "t=", "trap 'rm -f \"$t\"' EXIT"]
    dirs, trees = [], {f.tree for f in files if f.tree}
    for f in files:
        parent = posixpath.dirname(f.dest)
        chain = []
        while parent != HOME and parent not in dirs:
            chain.append(parent)
            parent = posixpath.dirname(parent)
        for d in reversed(chain):
            dirs.append(d)
            lines.append("[ -d %s ] || mkdir -m %s %s" % (shlex.quote(d), _dir_mode(d, trees), shlex.quote(d)))
    for f in files:
        dest = shlex.quote(f.dest)
        lines += [
            "if [ -d %s ] && [ ! -L %s ]; then echo %s >&2; exit 4; fi" % (dest, dest, shlex.quote(_is_dir_msg(f.dest))),
            "t=$(mktemp %s)" % shlex.quote(posixpath.join(posixpath.dirname(f.dest), ".perry-fleet.XXXXXX")),
            "base64 -d > \"$t\" <<'PERRY_FLEET_EOF'",
            base64.encodebytes(f.content).decode().rstrip("\n"),
            "PERRY_FLEET_EOF",
            "chmod %s \"$t\"" % f.mode,
            "mv -fT \"$t\" %s" % dest,
        ]
    manifest_dir = shlex.quote(posixpath.dirname(MANIFEST))
    lines += [
        "[ -d %s ] || mkdir -p -m 0755 %s" % (manifest_dir, manifest_dir),
        "t=$(mktemp %s/.manifest.XXXXXX)" % manifest_dir,
        "printf '%%s\\n' %s > \"$t\"" % digest,
        "chmod 0644 \"$t\"",
        "mv -fT \"$t\" %s" % shlex.quote(MANIFEST),
    ]
    return "\n".join(lines) + "\n"


def _is_dir_msg(dest: str) -> str:
    return ("files: %s is a directory in the workspace; perry.fleet does not replace a directory with a file (its "
            "contents would be lost): remove or rename it, or choose another dest. Nothing was placed." % dest)


class FilesSync:
    def __init__(self, engine: Engine, timeout: float):
        self.engine = engine
        self.timeout = timeout

    def sync(self, container: str, files, check_mode: bool = False, inspected: dict | None = None) -> dict:
        """Place ``files`` unless the manifest and every managed file (mode, content) already match.

        ``inspected`` (the container's inspect) lets an unchanged set be recognised on this host without an exec.
        A managed file deleted or edited in the workspace is placed again: the manifest alone is not trusted."""
        digest = manifest_digest(files)
        result = {"count": len(files), "digest": digest, "changed": False}
        if self._unchanged_on_host(inspected, files, digest):
            return result
        try:
            probe = self.engine.run(exec_argv(container, probe_argv(files), USER), timeout=self.timeout)
        except EngineError as exc:
            raise WorkspaceError("reading the files in %s failed: %s" % (container, exc.stderr.strip() or exc.msg)) from None
        installed, states = parse_probe(probe.stdout, files)
        dirs = [dest for dest, state in states.items() if state == "dir"]
        if dirs:
            raise WorkspaceError(" ".join(_is_dir_msg(d) for d in dirs))
        drifted = [f.dest for f in files if states[f.dest] != expected_state(f)]
        result["changed"] = installed != digest or bool(drifted)
        if installed == digest and drifted:
            result["restored"] = drifted  # the manifest said placed, the workspace disagreed
        if not result["changed"] or check_mode:
            return result
        try:
            self.engine.run(exec_argv(container, ["/bin/sh", "-s"], USER, interactive=True),
                            stdin=install_script(files, digest), timeout=self.timeout)
        except EngineError as exc:
            raise WorkspaceError("placing files in %s failed: %s" % (container, exc.stderr.strip()[-2000:] or exc.msg)) from None
        return result

    def _unchanged_on_host(self, inspected: dict | None, files, digest: str) -> bool:
        installed = read_on_host(self.engine, inspected, MANIFEST)
        if installed is None or installed.strip() != digest:
            return False
        return all(file_state_on_host(self.engine, inspected, f.dest, len(f.content)) == (int(f.mode, 8), f.digest)
                   for f in files)
