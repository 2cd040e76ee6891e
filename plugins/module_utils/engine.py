# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Talking to a container engine through its CLI (docker or podman), never without a timeout, and reading what
its ``inspect`` says.

One place owns: which binary runs and how the engine URL reaches it (DOCKER_HOST for the docker CLI, ``--url``
for podman), the hard kill on timeout, what ran (for results, with secrets redacted), one batched ``inspect`` for
many objects, how an ``exec`` into a workspace is built (user, working directory, a fixed PATH: exec_argv), and the
readers of inspect data everyone uses (state, labels, published ports, locality).

Every call is bounded by the caller's timeout, ``engine_timeout`` by default. Two kinds of call get a floor
instead, because their size is not ours to choose: an image pull (PULL_TIMEOUT_FLOOR) and a copy into a
container (COPY_TIMEOUT_FLOOR); ``engine_timeout`` above the floor still wins.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from ansible_collections.perry.fleet.plugins.module_utils.errors import EngineError, EngineTimeout, SpecError

DEFAULT_TIMEOUT = 60.0
PULL_TIMEOUT_FLOOR = 600.0   # seconds: an image is hundreds of MB
COPY_TIMEOUT_FLOOR = 120.0   # seconds: the worker binary or dist
# Engine URLs we understand: a unix socket path or a tcp endpoint (ssh:// works with both CLIs too).
_ENGINE_URL_RE = re.compile(r"^(unix:///\S+|tcp://[A-Za-z0-9.\-\[\]:]+:\d{1,5}/?|ssh://\S+)$")
_MISSING_OBJECT_RE = re.compile(r"no such (object|container|image|volume)", re.IGNORECASE)
# Every exec gets this PATH instead of the image's, which puts the workspace user's ~/.local/bin first: a root
# exec must never run a binary the user planted. Callers use absolute paths as well.
EXEC_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str
    elapsed: float
    truncated: bool = False   # stdout went past run()'s max_output: the command was killed, stdout is cut there


@dataclass
class Engine:
    """A container engine CLI. ``cli`` is a binary name or path; ``url`` an optional engine URL."""

    cli: str = "docker"
    url: str | None = None
    default_timeout: float = DEFAULT_TIMEOUT
    secrets: list = field(default_factory=list)
    commands: list = field(default_factory=list)

    def __post_init__(self):
        if self.url is not None:
            validate_engine_url(self.url, "engine_url")
        resolved = shutil.which(self.cli)
        if resolved is None:
            raise SpecError(
                "engine CLI %r not found on PATH: install it or set engine_cli to its full path" % self.cli)
        self.cli_path = resolved

    @property
    def kind(self) -> str:
        """'podman' or 'docker': which CLI dialect this binary speaks."""
        return cli_kind(os.path.realpath(self.cli_path))

    def _base_argv(self) -> list:
        return command_prefix(self.cli_path, self.url, self.kind)

    def _env(self) -> dict:
        env = dict(os.environ, LC_ALL="C", LANG="C")
        env.update(command_env(self.url, self.kind))
        return env

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "********")
        return text

    def describe(self, args) -> str:
        return self.redact(shlex.join(self._base_argv() + list(args)))

    def run(self, args, timeout: float | None = None, check: bool = True, stdin: str | None = None,
            record: bool = True, max_output: int | None = None, pass_fds: tuple = ()) -> Result:
        """Run ``<cli> args``; kill the whole process group when ``timeout`` expires, or when stdout passes
        ``max_output`` bytes (then ``truncated``: stdout is cut there, stderr is capped the same). ``pass_fds``:
        file descriptors the CLI inherits (files given to it as /dev/fd/N)."""
        timeout = self.default_timeout if timeout is None else timeout
        argv = self._base_argv() + list(args)
        cmd = self.describe(args)
        start = time.monotonic()
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self._env(),
            start_new_session=True, text=True, pass_fds=pass_fds)
        truncated = False
        try:
            if max_output is None:
                out, err = proc.communicate(input=stdin, timeout=timeout)
            else:
                out, err, truncated = _communicate_capped(proc, stdin, timeout, max_output)
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
        result = Result(proc.returncode, out, self.redact(err), elapsed, truncated)
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

    def pull(self, ref: str, timeout: float | None = None) -> Result:
        return self.run(["pull", ref], timeout=max(timeout or self.default_timeout, PULL_TIMEOUT_FLOOR))

    def copy_into(self, src: str, container: str, dest: str, timeout: float | None = None) -> Result:
        return self.run(["cp", src, "%s:%s" % (container, dest)],
                        timeout=max(timeout or self.default_timeout, COPY_TIMEOUT_FLOOR))

    def store_root(self, timeout: float | None = None) -> str:
        """Where this engine keeps its containers (podman's graph root, docker's root dir): one value per set of
        containers, whichever CLI or socket reaches them (the docker CLI on a podman socket says podman's)."""
        fmt = "{{.Store.GraphRoot}}" if self.kind == "podman" else "{{.DockerRootDir}}"
        return self.run(["info", "--format", fmt], timeout=timeout).stdout.strip()

    def list_containers(self, timeout: float | None = None, label: str | None = None) -> list:
        """Inspect every container (running or stopped), or those carrying ``label`` (KEY=VALUE): 2 calls."""
        args = ["ps", "-a", "-q", "--no-trunc"] + (["--filter", "label=%s" % label] if label else [])
        ids = self.run(args, timeout=timeout).stdout.split()
        if not ids:
            return []
        res = self.run(["container", "inspect"] + ids, timeout=timeout, check=False)
        try:
            return json.loads(res.stdout or "[]") or []
        except ValueError:
            raise EngineError("cannot parse container inspect output", cmd=self.describe(["container", "inspect"]),
                              rc=res.rc, stderr=res.stderr) from None


def exec_argv(container: str, argv, user: str, interactive: bool = False) -> list:
    """``exec`` arguments for both CLIs: an explicit user (never the image's default), ``/`` as the working
    directory (not a directory the user controls) and EXEC_PATH; ``interactive`` keeps stdin open (-i)."""
    if not user:
        raise ValueError("exec_argv needs an explicit user")
    return (["exec"] + (["-i"] if interactive else [])
            + ["-u", user, "-w", "/", "--env", "PATH=" + EXEC_PATH, container] + list(argv))


def validate_engine_url(url, what: str) -> str:
    """An engine URL both CLIs understand; the one check for engine_url and the URL forwarded into workspaces."""
    if not isinstance(url, str) or not _ENGINE_URL_RE.match(url):
        raise SpecError("%s %r is not an engine URL: use unix:///path/to/engine.sock, tcp://HOST:PORT or ssh://..."
                        % (what, url))
    return url


def cli_kind(cli: str) -> str:
    """'podman' (podman, podman-remote) or 'docker' (anything else), from the binary's name."""
    return "podman" if "podman" in os.path.basename(cli) else "docker"


def command_prefix(cli: str, url: str | None, kind: str | None = None) -> list:
    """argv before the engine subcommand: podman takes the URL as --url, docker as DOCKER_HOST (command_env)."""
    kind = kind or cli_kind(cli)
    return [cli] + (["--url", url] if url and kind == "podman" else [])


def command_env(url: str | None, kind: str) -> dict:
    return {"DOCKER_HOST": url} if url and kind == "docker" else {}


def effective_url(engine, environ=None) -> str | None:
    """The endpoint the engine CLI really talks to: engine_url, else DOCKER_HOST (docker CLI) or CONTAINER_HOST
    (podman CLI) inherited from the environment; None means the CLI's default socket on this host."""
    url = getattr(engine, "url", None)
    if url:
        return url
    environ = os.environ if environ is None else environ
    return environ.get("DOCKER_HOST") if getattr(engine, "kind", "docker") == "docker" else environ.get("CONTAINER_HOST")


def is_local(engine, environ=None) -> bool:
    """Paths and IPs in inspect output are this host's only for an engine on this host (a unix socket or the
    CLI's default); tcp:// and ssh:// engines are other machines or nested engines."""
    url = effective_url(engine, environ)
    return not url or url.startswith("unix://")


def _communicate_capped(proc, stdin: str | None, timeout: float, max_output: int) -> tuple:
    """(stdout, stderr, truncated) like communicate(), keeping at most ``max_output`` bytes of each stream;
    stdout beyond that kills the process group at once, so a huge answer is neither held nor waited for."""
    kept = {1: bytearray(), 2: bytearray()}
    cut = threading.Event()

    def pump(stream, key):
        while True:
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                return
            room = max_output - len(kept[key])
            kept[key] += chunk[:max(room, 0)]
            if len(chunk) > room and key == 1 and not cut.is_set():
                cut.set()
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    proc.kill()

    threads = [threading.Thread(target=pump, args=(proc.stdout, 1), daemon=True),
               threading.Thread(target=pump, args=(proc.stderr, 2), daemon=True)]
    for t in threads:
        t.start()
    if stdin is not None and proc.stdin:
        try:
            proc.stdin.write(stdin)
            proc.stdin.close()
        except OSError:
            pass
    deadline = time.monotonic() + timeout
    proc.wait(timeout=timeout)  # raises TimeoutExpired: the caller kills the group
    for t in threads:
        t.join(max(deadline - time.monotonic(), 0.1))
    return (kept[1].decode("utf-8", "replace"), kept[2].decode("utf-8", "replace"), cut.is_set())


def _kill_group(proc) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        pass


# ------------------------------------------------------------------------------ reading inspect data
def labels(obj: dict | None) -> dict:
    return ((obj or {}).get("Config") or {}).get("Labels") or {}


def container_state(obj: dict | None) -> str:
    """'missing', 'running', 'paused' or 'stopped' (created, exited, dead...): the one reading of a container's
    state. A paused container is not running: nothing answers inside it until it is unpaused."""
    if obj is None:
        return "missing"
    state = obj.get("State") or {}
    if isinstance(state, str):  # some docker-compatible outputs give the status as a string
        status = state
        running, paused = state == "running", state == "paused"
    else:
        status = state.get("Status") or ""
        running, paused = bool(state.get("Running")), bool(state.get("Paused")) or status == "paused"
    if paused:
        return "paused"
    return "running" if running else "stopped"


def state_detail(obj: dict | None) -> str:
    """The engine's own word for the state (exited, created, paused...) for messages."""
    state = (obj or {}).get("State")
    if isinstance(state, str):
        return state
    return (state or {}).get("Status") or container_state(obj)


def is_running(obj: dict | None) -> bool:
    return container_state(obj) == "running"


@dataclass(frozen=True)
class PortBinding:
    container_port: str   # "22/tcp"
    host_ip: str          # "" means all addresses
    host_port: int


def port_bindings(obj: dict | None) -> list:
    """Every host port a container publishes or has asked for (running or not), from both places inspect
    keeps them (NetworkSettings.Ports of a running container, HostConfig.PortBindings of any)."""
    seen = []
    sources = (((obj or {}).get("NetworkSettings") or {}).get("Ports") or {},
               ((obj or {}).get("HostConfig") or {}).get("PortBindings") or {})
    for source in sources:
        for container_port, bindings in source.items():
            for b in bindings or []:
                try:
                    port = int((b or {}).get("HostPort") or 0)
                except (TypeError, ValueError):
                    continue
                binding = PortBinding(container_port, (b or {}).get("HostIp") or "", port)
                if port and binding not in seen:
                    seen.append(binding)
    return seen


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
