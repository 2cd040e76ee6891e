# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Perry's conventions, and nothing else: names, volumes, labels, ports, paths and the workspace user.

These are the compatibility contract with Perry (docs/perry-compat.md): a workspace ``NAME`` is the container
``workspace-NAME`` with the home volume of the same name, labelled ``workspace.name=NAME`` and
``workspace.managed=true``; the worker listens on 7392 inside and runs as the ``workspace`` user.

Perry's volume names can collide: the DinD volume of ``x`` (``workspace-x-docker``) is the home volume of a
workspace ``x-docker``. So perry.fleet labels every volume it creates with the workspace and the role
(``home``/``docker``) and decides ownership from those labels (volume_owner), never from the name alone.
"""

from __future__ import annotations

import re

from ansible_collections.perry.fleet.plugins.module_utils.errors import SpecError

PREFIX = "workspace-"
NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
RESERVED_NAMES = ("@host",)   # Perry: the host machine itself

USER = "workspace"
HOME = "/home/workspace"
DIND_MOUNT = "/var/lib/docker"

SSH_PORT = 22
SSH_PORT_RANGE = (2200, 2400)
WORKER_PORT = 7392             # inside the container
WORKER_PORT_RANGE = (7392, 7500)
WORKER_BIN = "/usr/local/bin/perry"
WORKER_LOG = "/tmp/perry-worker.log"
SECRETS_FILE = HOME + "/.config/perry/secrets.env"   # secret_env, 0600; the image's shells load it
ENV_FILE = HOME + "/.config/perry/env.sh"   # env, 0644; the image's shells load it before SECRETS_FILE

LABEL_NAME = "workspace.name"
LABEL_MANAGED = "workspace.managed"
LABEL_SPEC = "perry.fleet.spec"            # JSON of the non-secret desired spec (for diffs)
LABEL_SPEC_HASH = "perry.fleet.spec-hash"  # hash of the desired spec (decides recreation)
LABEL_VOLUME_ROLE = "perry.fleet.volume-role"  # "home" or "docker": which slot of its workspace a volume fills

VOLUME_MOUNTS = {"home": HOME, "docker": DIND_MOUNT}   # role -> where the volume is mounted


def validate_name(name) -> str:
    if not isinstance(name, str) or not name.strip():
        raise SpecError("workspace name is empty: give 1-63 characters of a-z, 0-9 and '-'")
    name = name.strip()
    if name in RESERVED_NAMES:
        raise SpecError("%r is reserved by Perry for the host machine: choose another workspace name" % name)
    if len(name) > 63:
        raise SpecError("workspace name %r is %d characters long: Perry allows at most 63" % (name, len(name)))
    if not NAME_RE.match(name):
        raise SpecError(
            "workspace name %r is invalid: use lowercase a-z, 0-9 and '-', starting and ending with a "
            "letter or digit (Perry's rule ^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$)" % name)
    return name


def container_name(name: str) -> str:
    return PREFIX + name


def home_volume(name: str) -> str:
    return PREFIX + name


def dind_volume(name: str) -> str:
    return PREFIX + name + "-docker"


def volume_name(name: str, role: str) -> str:
    return home_volume(name) if role == "home" else dind_volume(name)


def volume_labels(name: str, role: str) -> dict:
    """The labels a volume of workspace ``name`` gets when perry.fleet creates it."""
    return {LABEL_NAME: name, LABEL_MANAGED: "true", LABEL_VOLUME_ROLE: role}


def volume_owner(volume: str, labels: dict | None) -> tuple | None:
    """(workspace, role) a volume's labels say it belongs to; None for an unlabelled volume (Perry's, or anyone's).

    Volumes of perry.fleet 0.1 carry only ``workspace.name``: the role is then the one whose name the volume has
    for that workspace, so ``workspace-x-docker`` labelled ``x-docker`` is x-docker's home, never x's DinD."""
    labels = labels or {}
    owner = labels.get(LABEL_NAME)
    if not owner:
        return None
    role = labels.get(LABEL_VOLUME_ROLE)
    if role not in VOLUME_MOUNTS:
        role = next((r for r in VOLUME_MOUNTS if volume_name(owner, r) == volume), "unknown")
    return owner, role


# A podman workspace's own engine (the workspace role's perry_workspace_engine=workspace): a container serving the
# Docker API on a unix socket in a volume that only that workspace mounts, on a network of its own.
ENGINE_PREFIX = "perry-engine-"
ENGINE_SOCKET_DIR = "/run/perry-engine"
ENGINE_DOCKER_HOST = "unix://" + ENGINE_SOCKET_DIR + "/podman.sock"
LABEL_ENGINE_OF = "perry.fleet.engine-of"


# A rootless workspace given its user's own podman (perry_workspace's user_engine_socket): the directory of that
# user's API socket, bind-mounted where only the container's root (= that user) may open it; the workspace's
# entrypoint relays the socket named in USER_ENGINE_RELAY_ENV to ENGINE_DOCKER_HOST for the workspace user.
USER_ENGINE_DIR = "/run/perry-user-engine"
USER_ENGINE_RELAY_ENV = "PERRY_ENGINE_RELAY"


def engine_names(name: str) -> dict:
    """The engine's container, network and volumes for workspace ``name``."""
    base = ENGINE_PREFIX + name
    return {"container": base, "network": base, "storage": base + "-storage", "socket": base + "-sock"}


def home_path(relative: str = "") -> str:
    """An absolute path in the workspace home (``relative`` without a leading ``~/`` or ``/``)."""
    return HOME + ("/" + relative.lstrip("/") if relative else "")
