# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A Perry workspace as data: the options declared once -> validated items -> desired container spec -> argv, hash.

No I/O here. WORKSPACE_OPTIONS is the one table of the options a workspace can set: it feeds the argument spec
(top level and each ``workspaces`` entry), the generated doc fragment (plugins/doc_fragments/workspace.py, kept in
step by a unit test) and the list of per-entry keys. What differs between runtimes comes from the runtime profile
table; names, labels and paths from layout.py.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import posixpath
import re
import stat
from dataclasses import dataclass, field

from ansible_collections.perry.fleet.plugins.module_utils import layout
from ansible_collections.perry.fleet.plugins.module_utils import worker_auth
from ansible_collections.perry.fleet.plugins.module_utils.engine import validate_engine_url
from ansible_collections.perry.fleet.plugins.module_utils.errors import SpecError
from ansible_collections.perry.fleet.plugins.module_utils.runtime_profile import RuntimeProfile, get_profile
from ansible_collections.perry.fleet.plugins.module_utils.workspace_files import build_files

ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MEMORY_RE = re.compile(r"^[1-9][0-9]*[bkmgBKMG]?$")
STATES = ("present", "started", "stopped", "restarted", "absent")
# Version of the spec-hash scheme; bump it (and keep reading the old one in matches_hash) only when the meaning of
# a hashed value changes. Adding an option whose default is unset needs no bump: unset values are not hashed.
# Schema 2 (0.2.0): env left the spec (it is a file written in place), and so did resources for a runtime that
# updates them in place (RuntimeProfile.update_resources); matches_hash still reads 1 and 0.
SPEC_SCHEMA = 2
SECRET_KEYS_ENV = "PERRY_SECRET_ENV_KEYS"  # tells the entrypoint which keys go to the 0600 file
# Env keys the module owns; users setting them would silently change the workspace's wiring.
RESERVED_ENV = frozenset({"DOCKER_HOST", SECRET_KEYS_ENV})
# Both CLIs read env and label files with Go's bufio.Scanner: a line over 65535 bytes fails `create` (measured on
# docker 20.10 and podman 4.3), so longer lines are refused before anything is created.
MAX_KV_LINE = 65535
COLLECTION = "perry.fleet"   # named in deprecations
# Labels perry.fleet sets itself (layout.py): a user label may not set them, nor anything under perry.fleet.
OWN_LABELS = frozenset({layout.LABEL_NAME, layout.LABEL_MANAGED})
RESERVED_LABEL_PREFIX = "perry.fleet."
LABEL_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
PROTOCOLS = ("tcp", "udp")
PORT_DIGITS_MARGIN = 32   # the spec label is checked before ports are chosen; their digits fit in this
# env keys an image's entrypoint reads at container start (this image's, and Perry's clone variables): they stay in
# the container's engine config and the spec, so changing one recreates (reason env). Every other env key is only
# read by the workspace's shells, which load it from a file written in place (workspace_files.env_file).
STARTUP_ENV = frozenset({"SSH_PUBLIC_KEY", "PERRY_DOCKERD_ARGS", "PERRY_DOCKERD_WAIT", "WORKSPACE_REPO_URL",
                         "WORKSPACE_REPO_BRANCH"})


def startup_env(env: dict) -> dict:
    return {k: v for k, v in sorted((env or {}).items()) if k in STARTUP_ENV}


def shell_env(env: dict) -> dict:
    return {k: v for k, v in sorted((env or {}).items()) if k not in STARTUP_ENV}


# ------------------------------------------------------------------------------------------ the options
@dataclass(frozen=True)
class Option:
    """One option of a workspace: its argument spec, its documentation, and whether an entry may set it."""

    name: str
    type: str
    doc: tuple
    default: object = None
    choices: tuple | None = None
    elements: str | None = None
    no_log: bool = False
    suboptions: tuple | None = None   # of Option
    required: bool = False            # in a `workspaces` entry
    deprecated_aliases: tuple = ()    # of (old name, version it goes away in)

    def spec(self, with_default: bool = True) -> dict:
        out = {"type": self.type}
        if with_default and self.default is not None:
            out["default"] = self.default
        if self.deprecated_aliases:
            out["aliases"] = [alias[0] for alias in self.deprecated_aliases]
            out["deprecated_aliases"] = [dict(name=old, version=version, collection_name=COLLECTION)
                                         for old, version in self.deprecated_aliases]
        for key in ("choices", "elements"):
            if getattr(self, key) is not None:
                out[key] = list(getattr(self, key)) if key == "choices" else getattr(self, key)
        if self.no_log:
            out["no_log"] = True
        if self.suboptions:
            out["options"] = {o.name: dict(o.spec(), **({"required": True} if o.required else {}))
                              for o in self.suboptions}
        return out


FILE_OPTIONS = (
    Option("dest", "str", ("Path in the workspace home (C(~/...) or relative to C(/home/workspace)); must stay "
                           "inside it.",), required=True),
    Option("content", "str", ("File content (secret; never logged). Exactly one of O(files[].content) and "
                              "O(files[].src).",), no_log=True),
    Option("src", "path", ("Path of a file on the managed host to copy, or of a directory (a credential directory "
                           "such as C(~/.config/gh)): every file under it is placed under O(files[].dest), "
                           "directories created there are 0700; at most 1000 files and 16 MiB; a symbolic link in it "
                           "is refused, never followed.",)),
    Option("mode", "str", ("Octal mode. Default follows Perry, V(0600) under C(.ssh) (except C(*.pub), C(config), "
                           "C(known_hosts)) and for credential files (C(.credentials.json), C(auth.json), "
                           "C(.git-credentials)), V(0644) otherwise. For a directory O(files[].src) it applies to "
                           "every file in it (default V(0600), Perry's mode for secrets).",)),
)

PORT_OPTIONS = (
    Option("container_port", "int", ("Port inside the workspace, 1-65535; not 22 (SSH) nor 7392 (the worker, which "
                                     "is published on 127.0.0.1 only).",), required=True),
    Option("host_port", "int", ("Host port, 1-65535; never allocated, so give one no other workspace or process "
                                "holds (a taken one is refused before anything is created).",), required=True),
    Option("bind_address", "str", ("Host IPv4 address to publish on. Default is the workspace's O(bind_address).",)),
    Option("protocol", "str", ("V(tcp) or V(udp). Only a V(tcp) host port is probed for a process holding it.",),
           default="tcp", choices=PROTOCOLS),
)

MOUNT_OPTIONS = (
    Option("source", "str", ("Name of an engine volume (created by the engine when missing), for example the socket "
                             "volume of an engine container. Host paths are refused, as are the home volumes of "
                             "workspaces (C(workspace-*)): one workspace never mounts another's data.",),
           required=True),
    Option("target", "str", ("Absolute path in the container, for example C(/run/perry-engine). Not the home, the "
                             "DinD directory, nor a system directory (C(/), C(/etc), C(/usr), C(/proc), ...).",),
           required=True),
    Option("readonly", "bool", ("Mount read-only.",), default=False),
)

WORKSPACE_OPTIONS = (
    Option("name", "str", (
        "Workspace name, 1-63 characters of V(a-z), V(0-9) and V(-), starting and ending with a letter or digit "
        "(Perry's rule). V(@host) is reserved.",
        "Mutually exclusive with O(workspaces).",), required=True),
    Option("state", "str", (
        "V(present) the container exists with the wanted spec (a new one is created, not started; a recreated one "
        "keeps its running state; a paused one stays paused). If it runs, O(files) and the worker are synced as for "
        "V(started).",
        "V(started) exists and runs (a paused container is unpaused), and accepts C(exec) (bounded by "
        "O(start_timeout)).",
        "V(stopped) exists and is stopped. V(restarted) is stopped and started again.",
        "V(absent) the container is removed; volumes are kept unless O(purge=true).",),
        default="started", choices=STATES),
    Option("image", "str", (
        "Workspace image, for example the one the P(perry.fleet.image#role) role builds (C(localhost/perry:latest)).",
        "Required unless O(state=absent). Its id is part of the spec, so a rebuilt image recreates the container.",)),
    Option("env", "dict", (
        "Environment for the workspace user's shells (values are strings): written in place as "
        "C(~/.config/perry/env.sh) (mode 0644, owned by the workspace user), which the image's login and interactive "
        "shells load before C(secrets.env). Not in the container's engine config (which keeps only perry.fleet's own "
        "variables) nor in the spec hash. C(DOCKER_HOST) is set through O(workspace_docker_host).",
        "Exception: the keys an image's entrypoint reads at container start (C(SSH_PUBLIC_KEY), "
        "C(PERRY_DOCKERD_ARGS), C(PERRY_DOCKERD_WAIT), C(WORKSPACE_REPO_URL), C(WORKSPACE_REPO_BRANCH)) stay in the "
        "container's config and spec; changing one of them recreates the container.",
        "Changing a value or a key is applied in the running container: no recreate, running processes keep their "
        "environment and new shells see the new values (a workspace that is not running gets the file from the first "
        "run that finds it running, such as O(state=started)). Removing every key leaves the last file in place; set a key "
        "to an empty value instead. A container created by perry.fleet 0.1.0 keeps the env it was created with in its "
        "engine config until something else recreates it; the file overrides those values and unsets removed keys "
        "in its new shells.",
        "Each C(KEY=value) line may have at most 65535 bytes; longer is refused before anything is created.",),
        default={}),
    Option("secret_env", "dict", (
        "Secret environment (API keys, tokens): written in place as C(~/.config/perry/secrets.env) (mode 0600, owned "
        "by the workspace user), which the image's login and interactive shells load. Never in the container's "
        "engine config (C(inspect) shows no value), the spec hash, results, diffs or logs.",
        "Changing a value or a key is applied in the running container: no recreate, running processes (agents) "
        "keep their environment and new shells see the new values. Removing every key leaves the last file in "
        "place; set the key to an empty value instead to revoke it.",),
        default={}, no_log=True),
    Option("workspace_docker_host", "str", (
        "Engine URL forwarded into a O(runtime=podman) workspace as C(DOCKER_HOST), for example "
        "C(tcp://podman-in-podman:2375), so the agent's C(docker) commands reach that engine. Refused with "
        "O(runtime=docker), whose workspaces run their own engine.",
        "This is not the engine the module talks to: that is O(engine_url).",
        "The alias C(docker_host) (the name until 0.1.0, which community.docker users read as the daemon to talk to) "
        "is deprecated and will be removed in 2.0.0.",), deprecated_aliases=(("docker_host", "2.0.0"),)),
    Option("user_engine_socket", "str", (
        "Rootless O(runtime=podman) only: path on this host of the API socket of the user's own rootless podman "
        "(for example C(/run/user/1000/podman/podman.sock), served by C(systemctl --user enable --now podman.socket) "
        "or C(podman system service --time=0)), given to the workspace as its container engine. Its directory is "
        "mounted at C(/run/perry-user-engine), where only the container's root (that host user) may open it; the "
        "entrypoint relays it to the workspace user at C(/run/perry-engine/podman.sock), the workspace's "
        "C(DOCKER_HOST).",
        "Whoever holds that socket holds every container of the user: so a workspace with it must be the only "
        "workspace of that user's podman (refused, before anything is created, while another one exists or is "
        "listed). A socket owned by root is refused: root's engine is root on the host.",
        "Mutually exclusive with O(workspace_docker_host). Part of the spec: setting or changing it recreates the "
        "container (volumes are kept).",)),
    Option("privileged", "bool", (
        "Run privileged. Defaults to the runtime profile (V(true) for docker, V(false) for podman); V(true) is "
        "refused for podman.",)),
    Option("memory", "str", (
        "Memory limit, for example V(4g) (swap limit twice that, as the engines set it).",
        "O(memory), O(cpus) and O(pids_limit) are changed in place with O(runtime=docker) (C(docker update): same "
        "container, running processes keep going); unsetting O(memory) or O(cpus) there, and any change with "
        "O(runtime=podman) (podman 4.3 cannot update a container's limits), recreates the container.",)),
    Option("cpus", "float", ("CPU limit, for example V(1.5).",)),
    Option("pids_limit", "int", ("Maximum number of processes in the container.",)),
    Option("ssh_port", "int", (
        "Host port for SSH (container port 22). Default is the one the workspace has, else the first free one.",
        "Two workspaces of one task asking for the same port are refused before anything is created.",)),
    Option("worker_port", "int", (
        "Host port (on 127.0.0.1 only) for the worker's port 7392, O(runtime=podman) only. Default is the one the "
        "workspace has, else the first free one.",)),
    Option("bind_address", "str", (
        "Host address the SSH port is published on. The worker port is always published on 127.0.0.1.",),
        default="127.0.0.1"),
    Option("labels", "dict", (
        "Extra container labels (values are strings), merged with the ones perry.fleet sets. Keys under "
        "C(perry.fleet.) and C(workspace.name)/C(workspace.managed) are perry.fleet's own and refused.",
        "Labels are part of the spec: changing them recreates the container (volumes are kept).",), default={}),
    Option("ports", "list", (
        "Extra published ports, beyond SSH and the worker (for example a dev server). Each host port may be asked "
        "for once per task; one equal to this workspace's SSH or worker port is refused.",
        "Part of the spec: changing them recreates the container (volumes are kept).",),
        default=[], elements="dict", suboptions=PORT_OPTIONS),
    Option("mounts", "list", (
        "Extra named volumes to mount, beyond the home and DinD volumes, such as the socket volume of the "
        "workspace's own container engine (the workspace role's O(perry.fleet.workspace#role:main:perry_workspace_engine)).",
        "Part of the spec: changing them recreates the container (volumes are kept). They are not the workspace's "
        "volumes: O(purge) leaves them.",),
        default=[], elements="dict", suboptions=MOUNT_OPTIONS),
    Option("purge", "bool", (
        "With O(state=absent), also remove the home volume and the DinD volume: only volumes whose labels say they "
        "are this workspace's (an unlabelled one only with O(adopt=true) or when this workspace's container mounts "
        "it). A volume labelled for another workspace (C(workspace-x-docker) is the home of a workspace C(x-docker)) "
        "is kept and named in RV(workspaces[].notes).",
        "Refused, with the containers' names and before anything is removed, while any other container uses one of "
        "the volumes (volumes are never force-removed).",), default=False),
    Option("adopt", "bool", (
        "Recreate a C(workspace-<name>) container that perry.fleet did not create (for example one made by Perry "
        "itself), keeping its volumes. Without it such a container is an error and is left alone.",
        "Also needed to mount an existing volume without perry.fleet's labels (made by Perry, by hand, or holding "
        "someone's data) as the workspace's home or DinD volume; without it that is refused before anything is "
        "created. Once this workspace's container mounts it, later runs and O(purge) treat it as the workspace's.",
        "A volume whose labels name another workspace or role is never used, adopt or not.",),
        default=False),
    Option("files", "list", (
        "Files to place in every running workspace's home, such as Claude Code's C(~/.claude/.credentials.json), "
        "C(~/.gitconfig) or C(~/.ssh/authorized_keys). Owned by C(workspace); parent directories are created with "
        "0700 under C(.ssh) and 0755 elsewhere (never a recursive chmod).",
        "A manifest of paths, modes and content hashes in the workspace, checked together with each managed file's "
        "mode and hash, makes an unchanged set cost one exec, or none when both can be read in the home volume on "
        "this host (root with a local engine); a managed file deleted or edited in the workspace is placed again.",
        "Files are read and written as the C(workspace) user, never root, so a link planted in the home cannot lead "
        "a write outside what that user may write; contents travel on the exec's stdin, never on a command line.",
        "A dest that is a directory in the workspace is refused (in check mode too); nothing is placed.",),
        default=[], elements="dict", suboptions=FILE_OPTIONS),
)
ITEM_OPTIONS = tuple(o.name for o in WORKSPACE_OPTIONS)
ITEM_ALIASES = {alias[0]: o.name for o in WORKSPACE_OPTIONS for alias in o.deprecated_aliases}


def argument_spec() -> dict:
    """The workspace options at the top level (with defaults) and as ``workspaces`` entries (without: an entry's
    unset key takes the top-level value)."""
    spec = {o.name: o.spec() for o in WORKSPACE_OPTIONS}
    entry = {}
    for o in WORKSPACE_OPTIONS:
        entry[o.name] = o.spec(with_default=False)
        if o.required:
            entry[o.name]["required"] = True
    spec["workspaces"] = dict(type="list", elements="dict", options=entry)
    return spec


def _option_doc(o: Option, in_entry: bool = False, sub: bool = False) -> dict:
    if in_entry:
        description = ["Workspace name (same rule as O(name))."] if o.name == "name" else ["Overrides O(%s)." % o.name]
    else:
        description = list(o.doc)
    out = {"description": description}
    out.update({k: v for k, v in o.spec(with_default=not in_entry).items()
                if k not in ("options", "no_log", "deprecated_aliases")})
    if o.required and (in_entry or sub):
        out["required"] = True
    if o.suboptions:
        out["suboptions"] = {s.name: _option_doc(s, sub=True) for s in o.suboptions}
    return out


def doc_fragment() -> dict:
    """The options' documentation as doc_fragments/workspace.py holds it (a unit test compares the two)."""
    options = {o.name: _option_doc(o) for o in WORKSPACE_OPTIONS}
    options["workspaces"] = {
        "description": ["Several workspaces in one task (one inspect for all). Each entry needs C(name) and may "
                        "override any other workspace option; module-level values are the defaults.",
                        "Mutually exclusive with O(name)."],
        "type": "list", "elements": "dict",
        "suboptions": {o.name: _option_doc(o, in_entry=True) for o in WORKSPACE_OPTIONS},
    }
    return {"options": options}


# ------------------------------------------------------------------------------------------- validation
def validate_env(env, what: str) -> dict:
    env = env or {}
    if not isinstance(env, dict):
        raise SpecError("%s must be a mapping of NAME: value" % what)
    out = {}
    for key, value in env.items():
        if not isinstance(key, str) or not ENV_KEY_RE.match(key):
            raise SpecError("%s key %r is not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)" % (what, key))
        if key in RESERVED_ENV:
            raise SpecError("%s must not set %s: use the module option for it (workspace_docker_host) instead"
                            % (what, key))
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


def validate_range(value, what: str) -> tuple:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise SpecError("%s must be [start, end], got %r" % (what, value))
    lo, hi = value
    if not (isinstance(lo, int) and isinstance(hi, int) and 1 <= lo <= hi <= 65535):
        raise SpecError("%s %s-%s is not a valid port range: need 1 <= start <= end <= 65535" % (what, lo, hi))
    return (lo, hi)


def validate_address(address, what: str) -> str:
    """An IPv4 address of this host to publish on (the engine's -p HOST:PORT:PORT form has no room for more)."""
    try:
        return str(ipaddress.IPv4Address(str(address).strip()))
    except ValueError:
        raise SpecError("%s %r is not an IPv4 address: use 127.0.0.1 (the default), 0.0.0.0 or another address of "
                        "this host" % (what, address)) from None


def _canonical(params: dict) -> dict:
    """The options under their current names: a deprecated alias (kept next to the new name by AnsibleModule, or
    alone from a direct caller) fills the new name when that is unset."""
    out = {k: v for k, v in params.items() if k not in ITEM_ALIASES}
    for old, new in ITEM_ALIASES.items():
        if params.get(old) is not None and out.get(new) is None:
            out[new] = params[old]
    return out


def expand_items(params: dict) -> list:
    """The single form (name=...) and the list form (workspaces=[...]) as one list of items."""
    params = _canonical(params)
    defaults = {k: params.get(k) for k in ITEM_OPTIONS}
    raw = params.get("workspaces")
    if raw is None:
        return [defaults]
    items = []
    for entry in raw:
        if not isinstance(entry, dict):
            raise SpecError("each entry of workspaces must be a mapping with at least a name")
        entry = _canonical(entry)
        unknown = sorted(set(entry) - set(ITEM_OPTIONS))
        if unknown:
            raise SpecError("unknown key(s) %s in a workspaces entry: allowed are %s"
                            % (", ".join(unknown), ", ".join(ITEM_OPTIONS)))
        item = dict(defaults)
        item.update({k: v for k, v in entry.items() if v is not None})
        items.append(item)
    return items


def validate_labels(labels) -> dict:
    """User labels as strings; perry.fleet's own keys refused (they decide ownership and recreation)."""
    labels = labels or {}
    if not isinstance(labels, dict):
        raise SpecError("labels must be a mapping of key: value")
    out = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not LABEL_KEY_RE.match(key):
            raise SpecError("label key %r is invalid: use letters, digits and . _ / - (starting with a letter or "
                            "digit), e.g. com.example.team" % (key,))
        if key in OWN_LABELS or key.startswith(RESERVED_LABEL_PREFIX):
            raise SpecError("label %s is reserved: perry.fleet sets %s and every perry.fleet.* label itself (they "
                            "decide which containers are its and when to recreate them); use your own prefix, "
                            "e.g. com.example.%s" % (key, ", ".join(sorted(OWN_LABELS)), key.split(".")[-1]))
        if value is None:
            value = ""
        if isinstance(value, bool):
            value = "true" if value else "false"
        value = str(value)
        if "\n" in value or "\r" in value or "\x00" in value:
            raise SpecError("label %s contains a newline or NUL, which a label file cannot carry" % key)
        out[key] = value
    return dict(sorted(out.items()))


def validate_ports(ports, bind_address: str, own: dict) -> list:
    """Extra published ports, normalised and sorted; ``own`` is {host port: what} of the workspace's own ports."""
    if ports is None:
        return []
    if not isinstance(ports, list):
        raise SpecError("ports must be a list of {container_port, host_port[, bind_address, protocol]}")
    out, seen = [], {}
    for entry in ports:
        if not isinstance(entry, dict):
            raise SpecError("each entry of ports must be a mapping with container_port and host_port")
        unknown = sorted(set(entry) - {o.name for o in PORT_OPTIONS})
        if unknown:
            raise SpecError("unknown key(s) %s in a ports entry: allowed are %s"
                            % (", ".join(unknown), ", ".join(o.name for o in PORT_OPTIONS)))
        for key in ("container_port", "host_port"):
            if entry.get(key) is None:
                raise SpecError("a ports entry needs %s (both container_port and host_port)" % key)
            validate_port(entry[key], (1, 65535), "ports %s" % key)
        protocol = entry.get("protocol") or "tcp"
        if protocol not in PROTOCOLS:
            raise SpecError("ports protocol %r is invalid: use tcp or udp" % (protocol,))
        container_port, host_port = entry["container_port"], entry["host_port"]
        if container_port in (layout.SSH_PORT, layout.WORKER_PORT) and protocol == "tcp":
            raise SpecError("ports container_port %d is perry.fleet's own (22 is SSH: set ssh_port; 7392 is the worker, "
                            "published on 127.0.0.1 only: set worker_port)" % container_port)
        if protocol == "tcp" and host_port in own:
            raise SpecError("ports host_port %d is this workspace's %s port: pick another host port" % (host_port, own[host_port]))
        key = (host_port, protocol)
        if key in seen:
            raise SpecError("ports host_port %d/%s is listed twice (for container ports %d and %d): each host port "
                            "can be published once" % (host_port, protocol, seen[key], container_port))
        seen[key] = container_port
        out.append({"container_port": container_port, "host_port": host_port, "protocol": protocol,
                    "bind_address": validate_address(entry.get("bind_address") or bind_address, "ports bind_address")})
    return sorted(out, key=lambda p: (p["host_port"], p["protocol"]))


SOCKET_PATH_RE = re.compile(r"^/[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)+$")


def validate_user_engine_socket(path, item: dict, profile: RuntimeProfile) -> str:
    """The user's own podman socket for a rootless workspace: a socket of a user other than root, on this host."""
    if not profile.forward_docker_host:
        raise SpecError("user_engine_socket is for runtime=podman (rootless) workspaces; runtime=%s workspaces run "
                        "their own engine (Docker-in-Docker). Unset it or use runtime=podman." % profile.name)
    if item.get("workspace_docker_host"):
        raise SpecError("user_engine_socket and workspace_docker_host both name the workspace's engine: set one")
    if not isinstance(path, str) or not SOCKET_PATH_RE.match(path) or "/../" in path + "/" or "/./" in path + "/":
        raise SpecError("user_engine_socket %r must be an absolute path of letters, digits, '.', '_', '-' and '/', "
                        "e.g. /run/user/1000/podman/podman.sock" % (path,))
    try:
        st = os.stat(path)
    except OSError as exc:
        raise SpecError("user_engine_socket %s: %s. Start the user's podman API service (systemctl --user enable "
                        "--now podman.socket, or podman system service --time=0 unix://%s) as that user"
                        % (path, exc.strerror, path)) from None
    if not stat.S_ISSOCK(st.st_mode):
        raise SpecError("user_engine_socket %s is not a socket: give the path of the user's podman API socket "
                        "(podman info --format '{{.Host.RemoteSocket.Path}}', as that user)" % path)
    if st.st_uid == 0:
        raise SpecError("user_engine_socket %s belongs to root: root's engine socket is root on this host and is "
                        "never given to a workspace. Use the rootless user's own socket" % path)
    return path


VOLUME_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
# Where an extra mount would hide or replace what the image or perry.fleet put there.
_SYSTEM_DIRS = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/sbin", "/sys", "/usr",
                "/var/lib/docker", layout.HOME)


def validate_mounts(mounts, name: str = "") -> list:
    """Extra named-volume mounts of workspace ``name``, normalised and sorted by target."""
    if mounts is None:
        return []
    if not isinstance(mounts, list):
        raise SpecError("mounts must be a list of {source: VOLUME, target: /path[, readonly: true]}")
    out, targets = [], set()
    for entry in mounts:
        if not isinstance(entry, dict):
            raise SpecError("each entry of mounts must be a mapping with source (a volume name) and target (a path)")
        unknown = sorted(set(entry) - {o.name for o in MOUNT_OPTIONS})
        if unknown:
            raise SpecError("unknown key(s) %s in a mounts entry: allowed are %s"
                            % (", ".join(unknown), ", ".join(o.name for o in MOUNT_OPTIONS)))
        source, target = entry.get("source"), entry.get("target")
        if not isinstance(source, str) or not VOLUME_NAME_RE.match(source):
            raise SpecError("mounts source %r is not a volume name (letters, digits, '_', '.', '-'; host paths are "
                            "not mounted): create a named volume and give its name" % (source,))
        if source.startswith(layout.PREFIX):
            raise SpecError("mounts source %s is a workspace's volume (%s*): a workspace never mounts another "
                            "workspace's home or DinD volume" % (source, layout.PREFIX))
        if source.startswith(layout.ENGINE_PREFIX) and source != layout.engine_names(name)["socket"]:
            raise SpecError("mounts source %s belongs to a workspace engine (%s*); workspace %s may mount only its own "
                            "engine's socket volume %s" % (source, layout.ENGINE_PREFIX, name or "?",
                                                           layout.engine_names(name)["socket"]))
        if not isinstance(target, str) or not target.startswith("/") or any(c in target for c in ":,\n\x00"):
            raise SpecError("mounts target %r must be an absolute path without ':', ',' or newlines, e.g. "
                            "/run/perry-engine" % (target,))
        norm = posixpath.normpath(target)
        if norm == "/" or any(norm == d or norm.startswith(d + "/") for d in _SYSTEM_DIRS):
            raise SpecError("mounts target %s would cover the home, the DinD directory or a system directory: "
                            "mount under /run, /mnt, /opt or /srv instead" % target)
        if norm in targets:
            raise SpecError("mounts target %s is listed twice" % norm)
        targets.add(norm)
        out.append({"source": source, "target": norm, "readonly": bool(entry.get("readonly"))})
    return sorted(out, key=lambda m: m["target"])


def validate_item(item: dict, profile: RuntimeProfile, ssh_port_range: tuple, worker_port_range: tuple) -> dict:
    """One workspace's options, checked and normalised; raises SpecError saying what to do."""
    item = dict(item)
    item["name"] = layout.validate_name(item.get("name"))
    name = item["name"]
    item["state"] = item.get("state") or "started"
    if item["state"] not in STATES:
        raise SpecError("state %r for %s is invalid: use one of %s" % (item["state"], name, ", ".join(STATES)))
    item["env"] = validate_env(item.get("env"), "env")
    item["secret_env"] = validate_env(item.get("secret_env"), "secret_env")
    both = sorted(set(item["env"]) & set(item["secret_env"]))
    if both:
        raise SpecError("%s set in both env and secret_env: keep each key in one of them" % ", ".join(both))
    if item.get("privileged") is None:
        item["privileged"] = profile.privileged
    if item["privileged"] and not profile.privileged:
        raise SpecError(
            "privileged=true is refused for runtime=%s: rootless workspaces cannot be privileged "
            "(use runtime=docker for Docker-in-Docker)" % profile.name)
    if item.get("workspace_docker_host"):
        if not profile.forward_docker_host:
            raise SpecError(
                "workspace_docker_host (docker_host) is forwarded only with runtime=podman; runtime=%s workspaces run "
                "their own engine (Docker-in-Docker). Unset it or use runtime=podman." % profile.name)
        validate_engine_url(item["workspace_docker_host"], "workspace_docker_host")
    if item.get("user_engine_socket") is not None:
        item["user_engine_socket"] = validate_user_engine_socket(item["user_engine_socket"], item, profile)
    memory = item.get("memory")
    if memory is not None and not MEMORY_RE.match(str(memory)):
        raise SpecError("memory %r is invalid: use a number with an optional unit b, k, m or g (e.g. 4g)" % memory)
    if item.get("cpus") is not None and float(item["cpus"]) <= 0:
        raise SpecError("cpus must be greater than 0")
    if item.get("pids_limit") is not None and int(item["pids_limit"]) <= 0:
        raise SpecError("pids_limit must be greater than 0")
    validate_port(item.get("ssh_port"), ssh_port_range, "ssh_port")
    if item.get("worker_port") is not None and not profile.publish_worker_port:
        raise SpecError("worker_port is published only with runtime=podman; runtime=%s reaches the worker "
                        "without a published port. Unset worker_port." % profile.name)
    validate_port(item.get("worker_port"), worker_port_range, "worker_port")
    item["bind_address"] = validate_address(item.get("bind_address") or "127.0.0.1", "bind_address")
    item["labels"] = validate_labels(item.get("labels"))
    own = {item[k]: k.split("_", maxsplit=1)[0] for k in ("ssh_port", "worker_port") if item.get(k) is not None}
    item["ports"] = validate_ports(item.get("ports"), item["bind_address"], own)
    item["mounts"] = validate_mounts(item.get("mounts"), name)
    item["files"] = build_files(item.get("files"))
    if item["state"] != "absent" and not item.get("image"):
        raise SpecError("image is required for state=%s (build one with the perry.fleet.image role)" % item["state"])
    return item


def validate_items(items: list, runtime: str, ssh_port_range: tuple, worker_port_range: tuple) -> list:
    """Every item checked before anything is created; a name listed twice, one explicit port asked for by two
    workspaces, and two workspaces whose volumes share a name (``x``'s DinD volume is ``x-docker``'s home) are
    refused."""
    profile = get_profile(runtime)
    out, seen, ports, volumes = [], set(), {}, {}
    for item in items:
        item = validate_item(item, profile, ssh_port_range, worker_port_range)
        name = item["name"]
        if name in seen:
            raise SpecError("workspace %r is listed twice" % name)
        seen.add(name)
        asked = [(item.get(key), key) for key in ("ssh_port", "worker_port")]
        asked += [(p["host_port"], "ports") for p in item["ports"] if p["protocol"] == "tcp"]
        for port, key in asked:
            if port is not None and ports.setdefault(port, (name, key)) != (name, key):
                raise SpecError("port %d is asked for by both %s (%s) and %s (%s): give each workspace its own port "
                                "or leave it unset" % ((port,) + ports[port] + (name, key)))
        if item["state"] != "absent":
            for role, vol in volume_names(name, profile).items():
                other = volumes.setdefault(vol, (name, role))
                if other != (name, role):
                    raise SpecError("workspaces %s and %s would share volume %s (the %s volume of %s, the %s volume of "
                                    "%s): Perry names a Docker-in-Docker volume <name>-docker, so rename one of them"
                                    % (other[0], name, vol, other[1], other[0], role, name))
        out.append(item)
    return out


# ---------------------------------------------------------------------------------------- the spec
def volume_names(name: str, profile: RuntimeProfile) -> dict:
    vols = {"home": layout.home_volume(name)}
    if profile.dind_volume:
        vols["docker"] = layout.dind_volume(name)
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
    user_labels: dict = field(default_factory=dict)
    extra_ports: list = field(default_factory=list)   # validate_ports' dicts
    mounts: list = field(default_factory=list)        # validate_mounts' dicts
    user_engine_socket: str | None = None            # the user's own podman socket, relayed inside

    @property
    def container(self) -> str:
        return layout.container_name(self.name)

    @property
    def volumes(self) -> dict:
        return volume_names(self.name, self.profile)

    def container_env(self) -> dict:
        """The environment the container gets (through a 0600 env file, never argv): perry.fleet's own variables
        only. env and secret_env are files written in place (workspace_files.env_file, secrets_file)."""
        env = startup_env(self.env)
        if self.profile.forward_docker_host and self.docker_host:
            env["DOCKER_HOST"] = self.docker_host
        if self.user_engine_socket:
            env["DOCKER_HOST"] = layout.ENGINE_DOCKER_HOST
            env[layout.USER_ENGINE_RELAY_ENV] = layout.USER_ENGINE_DIR + "/" + posixpath.basename(self.user_engine_socket)
        # The worker's token (worker_auth.py); not in the spec hash: it is a function of the name and the host key.
        env[worker_auth.TOKEN_ENV] = worker_auth.token(self.name, worker_auth.host_key())
        return env

    def public(self) -> dict:
        """The spec as shown in results, diffs and the spec label: secret values never included. Options added
        after 0.1.0 appear only when set, so the spec (and the schema-0 hash) of a workspace not using them is
        unchanged."""
        out = {
            "image": self.image,
            "image_id": self.image_id,
            "runtime": self.profile.name,
            "privileged": self.privileged,
            "env": startup_env(self.env),   # the rest is a file in place; {} is left out of the hash
            "hostname": self.name if self.profile.set_hostname else None,
            "docker_host": self.docker_host if self.profile.forward_docker_host else None,
            "volumes": self.volumes,
            "ports": {"ssh": self.ssh_port, "worker": self.worker_port, "bind_address": self.bind_address},
            "resources": {"memory": self.memory, "cpus": self.cpus, "pids_limit": self.pids_limit},
        }
        if self.user_labels:
            out["labels"] = dict(sorted(self.user_labels.items()))
        if self.extra_ports:
            out["ports"]["extra"] = [dict(p) for p in self.extra_ports]
        if self.mounts:
            out["mounts"] = [dict(m) for m in self.mounts]
        if self.user_engine_socket:
            out["user_engine_socket"] = self.user_engine_socket
        return out

    @property
    def in_place_keys(self) -> tuple:
        """Keys of public() that are applied to the existing container, so they are not in the spec hash."""
        return ("resources",) if self.profile.update_resources else ()

    @staticmethod
    def comparable(public: dict) -> dict:
        """A public spec or a container's spec label with env reduced to what the container's config holds (a
        schema-1 label holds all of it)."""
        return dict(public, env=startup_env(public.get("env")))

    def hashed(self, public: dict) -> dict:
        """A public spec (this one's, or a container's spec label) without what is applied in place."""
        return {k: v for k, v in self.comparable(public).items() if k not in self.in_place_keys}

    def spec_hash(self) -> str:
        """``v<SPEC_SCHEMA>:<sha256>`` over the public spec with unset values and what is applied in place (env,
        secrets, resources where the runtime updates them) left out, so a new option whose default is unset changes
        no existing workspace's hash; a change of meaning bumps SPEC_SCHEMA. Secrets are not in it: they are applied
        in place, and an unsalted hash over them could be tested against guesses offline."""
        return "v%d:%s" % (SPEC_SCHEMA, _digest(_without_unset({"public": self.hashed(self.public())})))

    def matches_hash(self, label: str | None, before: dict | None = None) -> bool:
        """Whether a container's spec-hash label describes this spec, in this schema or an older one.

        ``before`` is that container's spec label. An older schema hashed what is now applied in place (env; the
        resources where the runtime updates them): those values are taken from ``before``, so upgrading the
        collection recreates nothing, and the in-place steps then bring them to what is wanted."""
        if not label:
            return False
        if label.startswith("v%d:" % SPEC_SCHEMA):
            return label == self.spec_hash()
        old = dict(self.public(), env=dict(sorted(self.env.items())))
        if isinstance(before, dict):
            # the shell keys as the container was created (a file in place now), the startup keys as wanted
            old["env"] = dict(sorted(dict(shell_env(before.get("env")), **startup_env(self.env)).items()))
            old.update({k: before.get(k) for k in self.in_place_keys})
        if label.startswith("v1:"):
            return label == "v1:" + _digest(_without_unset({"public": old}))
        # Schema 0 (perry.fleet 0.1.0): a bare sha256 over the whole spec, unset values and secret values included
        # (its containers carry the secrets in their env, so a rotated secret still recreates them, once).
        legacy = {"public": dict(old, secret_env_keys=sorted(self.secret_env)),
                  "secret_env": dict(sorted(self.secret_env.items()))}
        return ":" not in label and label == _digest(legacy)

    def resources_update(self, host_config: dict | None) -> list | None:
        """``update`` arguments that bring the inspected container's limits (HostConfig) to the wanted ones: [] when
        they match, None when the engine cannot do it in place (this runtime, or unsetting memory or cpus: docker's
        update treats 0 as "leave as is")."""
        hc = host_config or {}
        memory = memory_bytes(self.memory) if self.memory else 0
        nano = int(round(self.cpus * 1e9)) if self.cpus else 0
        pids = int(self.pids_limit or 0)
        current = {"memory": int(hc.get("Memory") or 0), "nano": int(hc.get("NanoCpus") or 0),
                   "pids": max(int(hc.get("PidsLimit") or 0), 0)}   # -1 and 0 both mean unlimited
        if (memory, nano, pids) == (current["memory"], current["nano"], current["pids"]):
            return []
        if not self.profile.update_resources or (current["memory"] and not memory) or (current["nano"] and not nano):
            return None
        args = []
        if memory != current["memory"]:
            args += ["--memory", str(memory), "--memory-swap", str(2 * memory)]   # what create gives
        if nano != current["nano"]:
            args += ["--cpus", "%g" % self.cpus]
        if pids != current["pids"]:
            args += ["--pids-limit", str(pids or -1)]
        return args

    def check_engine_files(self) -> None:
        """Refuse (before anything is created) an env or label line longer than the engines' files carry."""
        for key, value in dict(self.env, **self.container_env()).items():
            size = len(("%s=%s" % (key, value)).encode())
            if size > MAX_KV_LINE:   # env: one line of its shell file, bounded like the engines' env files
                raise SpecError("env %s of workspace %s is %d bytes as a KEY=value line; the engines' env files and "
                                "perry.fleet's env.sh read at most %d: put large values in a file (the files option) "
                                "instead" % (key, self.name, size, MAX_KV_LINE))
        for key, value in self.secret_env.items():
            size = len(("%s=%s" % (key, value)).encode())
            if size > MAX_KV_LINE:   # one shell line of the secrets file; a bound like env's, for the same reason
                raise SpecError("secret_env %s of workspace %s is %d bytes as a line of its secrets file; perry.fleet "
                                "takes at most %d: put large values in a file (the files option) instead"
                                % (key, self.name, size, MAX_KV_LINE))
        for key, value in self.user_labels.items():
            size = len(("%s=%s" % (key, value)).encode())
            if size > MAX_KV_LINE:
                raise SpecError("label %s of workspace %s is %d bytes as a label-file line; docker and podman read at "
                                "most %d" % (key, self.name, size, MAX_KV_LINE))
        size = len(("%s=%s" % (layout.LABEL_SPEC, self.labels()[layout.LABEL_SPEC])).encode()) + PORT_DIGITS_MARGIN
        if size > MAX_KV_LINE:
            raise SpecError("the spec of workspace %s makes its %s label about %d bytes; docker and podman read at "
                            "most %d per label line: use fewer or shorter labels and ports"
                            % (self.name, layout.LABEL_SPEC, size, MAX_KV_LINE))

    def labels(self) -> dict:
        """The user's labels (validate_labels refused perry.fleet's keys) under perry.fleet's own."""
        return dict(self.user_labels, **{
            layout.LABEL_NAME: self.name,
            layout.LABEL_MANAGED: "true",
            layout.LABEL_SPEC: json.dumps(self.public(), sort_keys=True, separators=(",", ":")),
            layout.LABEL_SPEC_HASH: self.spec_hash(),
        })

    def create_args(self, env_file: str, label_file: str) -> list:
        """Arguments after the CLI for ``create``. Env and labels (the spec label holds env values)
        go through 0600 files, so no value of the user's reaches a command line."""
        args = ["create", "--name", self.container, "--restart", "unless-stopped",
                "--env-file", env_file, "--label-file", label_file]
        if self.privileged:
            args.append("--privileged")
        if self.profile.set_hostname:
            args += ["--hostname", self.name]
        args += ["-v", "%s:%s:rw" % (self.volumes["home"], layout.HOME)]
        if "docker" in self.volumes:
            args += ["-v", "%s:%s:rw" % (self.volumes["docker"], layout.DIND_MOUNT)]
        for m in self.mounts:
            args += ["-v", "%s:%s:%s" % (m["source"], m["target"], "ro" if m["readonly"] else "rw")]
        if self.user_engine_socket:
            # the socket's directory, not the socket: a restarted service makes a new socket there
            args += ["-v", "%s:%s:rw" % (posixpath.dirname(self.user_engine_socket), layout.USER_ENGINE_DIR)]
        args += ["-p", "%s:%d:%d/tcp" % (self.bind_address, self.ssh_port, layout.SSH_PORT)]
        if self.profile.publish_worker_port and self.worker_port:
            # The worker has no auth: loopback only, whatever bind_address says.
            args += ["-p", "127.0.0.1:%d:%d/tcp" % (self.worker_port, layout.WORKER_PORT)]
        for p in self.extra_ports:
            args += ["-p", "%s:%d:%d/%s" % (p["bind_address"], p["host_port"], p["container_port"], p["protocol"])]
        if self.memory:
            args += ["--memory", self.memory]
        if self.cpus:
            args += ["--cpus", "%g" % self.cpus]
        if self.pids_limit:
            args += ["--pids-limit", str(self.pids_limit)]
        args.append(self.image)
        return args


def _digest(doc: dict) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _without_unset(value):
    """The value with None, empty strings/lists/dicts and the keys holding them left out, recursively."""
    if isinstance(value, dict):
        pruned = {k: _without_unset(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in (None, "", [], {})}
    return value


def kv_file_text(pairs: dict) -> str:
    # docker/podman env and label files are literal KEY=VALUE lines; validate_env refused newlines.
    return "".join("%s=%s\n" % (k, v) for k, v in sorted(pairs.items()))


def spec_from_labels(labels) -> dict | None:
    try:
        return json.loads((labels or {}).get(layout.LABEL_SPEC, ""))
    except ValueError:
        return None


def recreate_reasons(before: dict | None, spec: "WorkspaceSpec", forced: tuple = ()) -> list:
    """Why an existing container must be recreated, in the spec's own key names: what differs outside what is
    applied in place, and ``forced`` (resources the engine cannot change in place)."""
    if before is None:
        return ["not created by perry.fleet (adopted)"]
    after = changed_keys(spec.hashed(before), spec.hashed(spec.public()))[1]
    # A 0.1.0 container's label lists secret_env_keys: its secrets live in its engine config, so a rotation recreates.
    reasons = sorted({"secret_env" if k == "secret_env_keys" else k for k in after} | set(forced))
    return reasons or ["spec hash (a changed secret_env of a perry.fleet 0.1.0 container, or a label edited by hand)"]


def memory_bytes(text: str) -> int:
    """A memory option (MEMORY_RE) in bytes, with the engines' 1024-based units."""
    text = str(text).lower()
    unit = text[-1] if text[-1] in "bkmg" else "b"
    return int(text.rstrip("bkmg")) * 1024 ** "bkmg".index(unit)


def memory_text(count: int) -> str | None:
    """Bytes as the memory option writes them (the largest unit that divides them), for diffs."""
    if not count:
        return None
    for power, unit in ((3, "g"), (2, "m"), (1, "k")):
        if count % 1024 ** power == 0:
            return "%d%s" % (count // 1024 ** power, unit)
    return "%db" % count


def inspected_resources(host_config: dict | None) -> dict:
    """The container's limits (inspect's HostConfig) in the spec's form, for diffs."""
    hc = host_config or {}
    return {"memory": memory_text(int(hc.get("Memory") or 0)),
            "cpus": (int(hc.get("NanoCpus") or 0) / 1e9) or None,
            "pids_limit": max(int(hc.get("PidsLimit") or 0), 0) or None}


def changed_keys(before: dict | None, after: dict) -> tuple:
    """Only the top-level keys whose values differ, for diff mode."""
    before = before or {}
    keys = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    return {k: before.get(k) for k in keys}, {k: after.get(k) for k in keys}
