# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A Perry workspace as data: validated input -> desired container spec -> engine argv and hash.

No I/O here. Names, labels, mounts and ports follow Perry (reference §1): container and home volume
``workspace-<name>``, DinD volume ``workspace-<name>-docker``, labels ``workspace.name`` and
``workspace.managed=true``. What differs between runtimes comes from the runtime profile table.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from dataclasses import dataclass, field

from ansible_collections.perry.fleet.plugins.module_utils.runtime_profile import RuntimeProfile

PREFIX = "workspace-"
NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MEMORY_RE = re.compile(r"^[1-9][0-9]*[bkmgBKMG]?$")
SSH_PORT_RANGE = (2200, 2400)
WORKER_PORT_RANGE = (7392, 7500)
WORKER_PORT = 7392           # inside the container
HOME_MOUNT = "/home/workspace"
DIND_MOUNT = "/var/lib/docker"

LABEL_NAME = "workspace.name"
LABEL_MANAGED = "workspace.managed"
LABEL_SPEC = "perry.fleet.spec"            # JSON of the non-secret desired spec (for diffs)
LABEL_SPEC_HASH = "perry.fleet.spec-hash"  # hash of the full desired spec, secrets included
SECRET_KEYS_ENV = "PERRY_SECRET_ENV_KEYS"  # tells the entrypoint which keys go to the 0600 file
# Env keys the module owns; users setting them would silently change the workspace's wiring.
RESERVED_ENV = frozenset({"DOCKER_HOST", SECRET_KEYS_ENV})


class SpecError(ValueError):
    """Bad input; the message says what to do."""


def validate_name(name) -> str:
    if not isinstance(name, str) or not name.strip():
        raise SpecError("workspace name is empty: give 1-63 characters of a-z, 0-9 and '-'")
    name = name.strip()
    if name == "@host":
        raise SpecError("'@host' is reserved by Perry for the host machine: choose another workspace name")
    if len(name) > 63:
        raise SpecError("workspace name %r is %d characters long: Perry allows at most 63" % (name, len(name)))
    if not NAME_RE.match(name):
        raise SpecError(
            "workspace name %r is invalid: use lowercase a-z, 0-9 and '-', starting and ending with a "
            "letter or digit (Perry's rule ^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$)" % name)
    return name


def validate_env(env, what: str) -> dict:
    env = env or {}
    if not isinstance(env, dict):
        raise SpecError("%s must be a mapping of NAME: value" % what)
    out = {}
    for key, value in env.items():
        if not isinstance(key, str) or not ENV_KEY_RE.match(key):
            raise SpecError("%s key %r is not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)" % (what, key))
        if key in RESERVED_ENV:
            raise SpecError("%s must not set %s: use the module option for it (docker_host) instead" % (what, key))
        if value is None:
            value = ""
        if isinstance(value, bool):
            value = "true" if value else "false"
        value = str(value)
        if "\n" in value or "\r" in value or "\x00" in value:
            raise SpecError("%s value of %s contains a newline or NUL, which an env file cannot carry" % (what, key))
        out[key] = value
    return out


def validate_port(port, port_range, what: str):
    if port is None:
        return None
    lo, hi = port_range
    if not isinstance(port, int) or isinstance(port, bool) or not lo <= port <= hi:
        raise SpecError("%s %r is outside its range %d-%d: pick a port in the range or leave it unset" % (what, port, lo, hi))
    return port


def validate_range(port_range, what: str):
    lo, hi = port_range
    if not (1 <= lo <= hi <= 65535):
        raise SpecError("%s %d-%d is not a valid port range: need 1 <= start <= end <= 65535" % (what, lo, hi))
    return (lo, hi)


def validate_address(address, what: str) -> str:
    """An IPv4 address of this host to publish on (the engine's -p HOST:PORT:PORT form has no room for more)."""
    try:
        return str(ipaddress.IPv4Address(str(address).strip()))
    except ValueError:
        raise SpecError("%s %r is not an IPv4 address: use 127.0.0.1 (the default), 0.0.0.0 or another address of "
                        "this host" % (what, address)) from None


def container_name(name: str) -> str:
    return PREFIX + name


def volume_names(name: str, profile: RuntimeProfile) -> dict:
    vols = {"home": PREFIX + name}
    if profile.dind_volume:
        vols["docker"] = PREFIX + name + "-docker"
    return vols


@dataclass
class WorkspaceSpec:
    """Everything that decides what the container looks like. Ports are resolved before hashing."""

    name: str
    profile: RuntimeProfile
    image: str
    image_id: str
    env: dict = field(default_factory=dict)
    secret_env: dict = field(default_factory=dict)
    docker_host: str | None = None
    privileged: bool = False
    memory: str | None = None
    cpus: float | None = None
    pids_limit: int | None = None
    bind_address: str = "127.0.0.1"
    ssh_port: int | None = None
    worker_port: int | None = None

    @property
    def container(self) -> str:
        return container_name(self.name)

    @property
    def volumes(self) -> dict:
        return volume_names(self.name, self.profile)

    def container_env(self) -> dict:
        """The environment the container gets (through a 0600 env file, never argv)."""
        env = dict(self.env)
        env.update(self.secret_env)
        if self.profile.forward_docker_host and self.docker_host:
            env["DOCKER_HOST"] = self.docker_host
        if self.secret_env:
            env[SECRET_KEYS_ENV] = ",".join(sorted(self.secret_env))
        return env

    def public(self) -> dict:
        """The spec as shown in results, diffs and the spec label: secret values never included."""
        return {
            "image": self.image,
            "image_id": self.image_id,
            "runtime": self.profile.name,
            "privileged": self.privileged,
            "hostname": self.name if self.profile.set_hostname else None,
            "env": dict(sorted(self.env.items())),
            "secret_env_keys": sorted(self.secret_env),
            "docker_host": self.docker_host if self.profile.forward_docker_host else None,
            "volumes": self.volumes,
            "ports": {"ssh": self.ssh_port, "worker": self.worker_port, "bind_address": self.bind_address},
            "resources": {"memory": self.memory, "cpus": self.cpus, "pids_limit": self.pids_limit},
        }

    def spec_hash(self) -> str:
        # Secrets count (a rotated token must recreate the container) but only as part of a digest.
        doc = {"public": self.public(), "secret_env": dict(sorted(self.secret_env.items()))}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    def labels(self) -> dict:
        return {
            LABEL_NAME: self.name,
            LABEL_MANAGED: "true",
            LABEL_SPEC: json.dumps(self.public(), sort_keys=True, separators=(",", ":")),
            LABEL_SPEC_HASH: self.spec_hash(),
        }

    def create_args(self, env_file: str, label_file: str) -> list:
        """Arguments after the CLI for ``create``. Env and labels (the spec label holds env values)
        go through 0600 files, so no value of the user's reaches a command line."""
        args = ["create", "--name", self.container, "--restart", "unless-stopped",
                "--env-file", env_file, "--label-file", label_file]
        if self.privileged:
            args.append("--privileged")
        if self.profile.set_hostname:
            args += ["--hostname", self.name]
        args += ["-v", "%s:%s:rw" % (self.volumes["home"], HOME_MOUNT)]
        if "docker" in self.volumes:
            args += ["-v", "%s:%s:rw" % (self.volumes["docker"], DIND_MOUNT)]
        args += ["-p", "%s:%d:22/tcp" % (self.bind_address, self.ssh_port)]
        if self.profile.publish_worker_port and self.worker_port:
            # The worker has no auth: loopback only, whatever bind_address says.
            args += ["-p", "127.0.0.1:%d:%d/tcp" % (self.worker_port, WORKER_PORT)]
        if self.memory:
            args += ["--memory", self.memory]
        if self.cpus:
            args += ["--cpus", "%g" % self.cpus]
        if self.pids_limit:
            args += ["--pids-limit", str(self.pids_limit)]
        args.append(self.image)
        return args


def kv_file_text(pairs: dict) -> str:
    # docker/podman env and label files are literal KEY=VALUE lines; validate_env refused newlines.
    return "".join("%s=%s\n" % (k, v) for k, v in sorted(pairs.items()))


def spec_from_labels(labels) -> dict | None:
    try:
        return json.loads((labels or {}).get(LABEL_SPEC, ""))
    except ValueError:
        return None


def changed_keys(before: dict | None, after: dict) -> tuple:
    """Only the top-level keys whose values differ, for diff mode."""
    before = before or {}
    keys = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    return {k: before.get(k) for k in keys}, {k: after.get(k) for k in keys}
