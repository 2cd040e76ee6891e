# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Talking to a container engine through its CLI (docker or podman), never without a timeout.

One place owns: which binary runs, how the engine URL reaches it (DOCKER_HOST for the docker CLI,
``--url`` for podman), the hard kill on timeout, what ran (for results, with secrets redacted), and
one batched ``inspect`` for many objects.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field

DEFAULT_TIMEOUT = 60.0
# Engine URLs we understand: a unix socket path or a tcp endpoint (ssh:// works with both CLIs too).
_ENGINE_URL_RE = re.compile(r"^(unix:///\S+|tcp://[A-Za-z0-9.\-\[\]:]+:\d{1,5}/?|ssh://\S+)$")
_MISSING_OBJECT_RE = re.compile(r"no such (object|container|image|volume)", re.IGNORECASE)


class EngineError(Exception):
    """An engine command failed; carries what ran (redacted) for fail_json."""

    def __init__(self, msg: str, cmd: str = "", rc: int | None = None, stderr: str = "",
                 elapsed: float | None = None):
        super().__init__(msg)
        self.msg = msg
        self.cmd = cmd
        self.rc = rc
        self.stderr = stderr
        self.elapsed = elapsed

    def as_fail_kwargs(self) -> dict:
        out = {"msg": self.msg, "cmd": self.cmd, "rc": self.rc, "stderr": self.stderr}
        if self.elapsed is not None:
            out["elapsed"] = round(self.elapsed, 3)
        return out


class EngineTimeout(EngineError):
    pass


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str
    elapsed: float


@dataclass
class Engine:
    """A container engine CLI. ``cli`` is a binary name or path; ``url`` an optional engine URL."""

    cli: str = "docker"
    url: str | None = None
    default_timeout: float = DEFAULT_TIMEOUT
    secrets: list = field(default_factory=list)
    commands: list = field(default_factory=list)

    def __post_init__(self):
        if self.url is not None and not _ENGINE_URL_RE.match(self.url):
            raise ValueError(
                "engine_url %r is not an engine URL: use unix:///path/to/engine.sock or tcp://HOST:PORT"
                % self.url)
        resolved = shutil.which(self.cli)
        if resolved is None:
            raise ValueError(
                "engine CLI %r not found on PATH: install it or set engine_cli to its full path" % self.cli)
        self.cli_path = resolved

    @property
    def kind(self) -> str:
        """'podman' or 'docker': which CLI dialect this binary speaks."""
        return "podman" if "podman" in os.path.basename(os.path.realpath(self.cli_path)) else "docker"

    def _base_argv(self) -> list:
        argv = [self.cli_path]
        if self.url and self.kind == "podman":
            argv += ["--url", self.url]
        return argv

    def _env(self) -> dict:
        env = dict(os.environ, LC_ALL="C", LANG="C")
        if self.url and self.kind == "docker":
            env["DOCKER_HOST"] = self.url
        return env

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "********")
        return text

    def describe(self, args) -> str:
        return self.redact(shlex.join(self._base_argv() + list(args)))

    def run(self, args, timeout: float | None = None, check: bool = True, stdin: str | None = None,
            record: bool = True) -> Result:
        """Run ``<cli> args``; kill the whole process group when ``timeout`` expires."""
        timeout = self.default_timeout if timeout is None else timeout
        argv = self._base_argv() + list(args)
        cmd = self.describe(args)
        start = time.monotonic()
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self._env(),
            start_new_session=True, text=True)
        try:
            out, err = proc.communicate(input=stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            elapsed = time.monotonic() - start
            if record:
                self.commands.append({"cmd": cmd, "rc": None, "elapsed": round(elapsed, 3)})
            raise EngineTimeout(
                "engine command timed out after %.1f s: %s (is the engine responsive? raise the "
                "timeout option if this step is legitimately slow)" % (elapsed, cmd),
                cmd=cmd, elapsed=elapsed) from None
        elapsed = time.monotonic() - start
        if record:
            self.commands.append({"cmd": cmd, "rc": proc.returncode, "elapsed": round(elapsed, 3)})
        result = Result(proc.returncode, out, self.redact(err), elapsed)
        if check and proc.returncode != 0:
            raise EngineError(
                "engine command failed (rc=%d): %s: %s" % (proc.returncode, cmd, result.stderr.strip()[-2000:]),
                cmd=cmd, rc=proc.returncode, stderr=result.stderr, elapsed=elapsed)
        return result

    def inspect(self, names, timeout: float | None = None) -> dict:
        """Inspect containers and images by name in ONE call; missing names are absent.

        Volumes are never matched: Perry names a workspace's home volume like its container
        (workspace-<name>), and with the container gone the engine would answer with the volume.
        """
        names = [n for n in dict.fromkeys(names) if n]
        if not names:
            return {}
        res = self.run(["inspect"] + names, timeout=timeout, check=False)
        try:
            objects = json.loads(res.stdout or "[]") or []
        except ValueError:
            objects = []
        if res.rc != 0:
            # dict.fromkeys: the docker CLI repeats a daemon error once per name inspected
            other = list(dict.fromkeys(ln.strip() for ln in res.stderr.splitlines()
                                       if ln.strip() and not _MISSING_OBJECT_RE.search(ln)))
            if other:
                raise EngineError(
                    "cannot inspect %s: %s" % (", ".join(names), " ".join(other)[-1000:]),
                    cmd=self.describe(["inspect"] + names), rc=res.rc, stderr=res.stderr)
        return _match_names(names, objects)

    def list_containers(self, timeout: float | None = None, label: str | None = None) -> list:
        """Inspect every container (running or stopped), optionally filtered by label: 2 calls."""
        args = ["ps", "-a", "-q", "--no-trunc"]
        if label:
            args += ["--filter", "label=%s" % label]
        ids = self.run(args, timeout=timeout).stdout.split()
        if not ids:
            return []
        res = self.run(["container", "inspect"] + ids, timeout=timeout, check=False)
        try:
            return json.loads(res.stdout or "[]") or []
        except ValueError:
            raise EngineError("cannot parse container inspect output", cmd=self.describe(["container", "inspect"]),
                              rc=res.rc, stderr=res.stderr) from None


def effective_url(engine, environ=None) -> str | None:
    """The endpoint the engine CLI really talks to: engine_url, else DOCKER_HOST (docker CLI) or CONTAINER_HOST
    (podman CLI) inherited from the environment; None means the CLI's default socket on this host."""
    url = getattr(engine, "url", None)
    if url:
        return url
    environ = os.environ if environ is None else environ
    return environ.get("DOCKER_HOST") if getattr(engine, "kind", "docker") == "docker" else environ.get("CONTAINER_HOST")


def _kill_group(proc) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def object_kind(obj: dict) -> str:
    if "State" in obj and "Config" in obj:
        return "container"
    if "Mountpoint" in obj:
        return "volume"
    return "image"


def container_name(obj: dict) -> str:
    return (obj.get("Name") or "").lstrip("/")


def short_id(value: str | None) -> str:
    """Docker prefixes ids with 'sha256:', podman does not; compare without it."""
    value = value or ""
    return value.split(":", 1)[1] if value.startswith("sha256:") else value


def _match_names(names, objects) -> dict:
    """Map each requested name to the container (by name or id) or image (by any tag or id) it resolved to."""
    found = {}
    for obj in objects:
        kind = object_kind(obj)
        if kind == "volume":
            continue
        if kind == "container":
            keys = {container_name(obj), obj.get("Id", "")}
        else:
            keys = set(obj.get("RepoTags") or [])
            keys |= {t.split("/", 1)[1] for t in keys if t.startswith(("localhost/", "docker.io/library/"))}
            keys.add(short_id(obj.get("Id")))
        for name in names:
            if name in found:
                continue
            if name in keys or (kind == "image" and _image_ref_matches(name, keys)):
                found[name] = obj
    return found


def _image_ref_matches(name: str, tags) -> bool:
    candidates = {name, "localhost/" + name, "docker.io/library/" + name}
    if ":" not in name.rsplit("/", 1)[-1]:
        candidates |= {c + ":latest" for c in candidates}
    return bool(candidates & set(tags))
