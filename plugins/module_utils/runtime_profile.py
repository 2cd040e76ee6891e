# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The docker-vs-podman differences of a Perry workspace, in one table.

Everything else in the collection asks this table instead of testing the runtime name, so a new
difference is one new column here, not a scattered ``if runtime == "podman"``.
"""

from __future__ import annotations

from dataclasses import dataclass, asdict


@dataclass(frozen=True)
class RuntimeProfile:
    name: str
    privileged: bool            # Docker-in-Docker needs it; rootless podman cannot grant it
    set_hostname: bool          # podman: the UTS namespace conflicts (Perry PR #171)
    dind_volume: bool           # workspace-<name>-docker at /var/lib/docker
    forward_docker_host: bool   # podman workspaces reach an external engine through DOCKER_HOST
    publish_worker_port: bool   # podman: container IPs are unreachable, so publish on 127.0.0.1
    worker_format: str          # "binary" (bun --compile) or "dist" (JS dist + bun wrapper)
    default_transport: str      # how the host reaches the worker by default
    # memory/cpus/pids_limit changed with `update` on the existing container. podman 4.3 cannot: rc 125 on a created
    # container, and on a running one its runc call fails or leaves HostConfig unchanged (README, "in place").
    update_resources: bool

    def as_dict(self) -> dict:
        return asdict(self)


PROFILES = {
    "docker": RuntimeProfile(
        name="docker",
        privileged=True,
        set_hostname=True,
        dind_volume=True,
        forward_docker_host=False,
        publish_worker_port=False,
        worker_format="binary",
        default_transport="http",
        update_resources=True,
    ),
    "podman": RuntimeProfile(
        name="podman",
        privileged=False,
        set_hostname=False,
        dind_volume=False,
        forward_docker_host=True,
        publish_worker_port=True,
        worker_format="dist",
        default_transport="exec",
        update_resources=False,
    ),
}

RUNTIMES = tuple(sorted(PROFILES))


def get_profile(runtime: str) -> RuntimeProfile:
    try:
        return PROFILES[runtime]
    except KeyError:
        raise ValueError(
            "unknown runtime %r: use one of %s" % (runtime, ", ".join(RUNTIMES))
        ) from None
