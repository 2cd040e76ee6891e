# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Options every perry.fleet module uses to reach the container engine.
    DOCUMENTATION = r'''
requirements:
  - On the managed host, Podman >= 4.3 (tested with 4.3.1) for O(runtime=podman), or Docker Engine and the docker
    CLI >= 20.10 (tested with 20.10.24) for O(runtime=docker); the docker CLI >= 20.10 against a Podman >= 4.3 API
    socket (O(engine_cli=docker) with O(engine_url)) is tested too.
  - Python >= 3.8 on the managed host.
options:
  runtime:
    description:
      - Which Perry runtime profile the workspaces follow.
      - V(docker) runs privileged Docker-in-Docker workspaces (hostname set, C(workspace-<name>-docker) volume).
      - V(podman) runs unprivileged (rootless-friendly) workspaces with no hostname and no DinD volume, forwards
        an engine URL as C(DOCKER_HOST), publishes the worker port on 127.0.0.1 and reaches the worker by exec.
    type: str
    choices: [docker, podman]
    default: docker
  engine_cli:
    description:
      - The engine CLI to run, a name on E(PATH) or a full path.
      - Defaults to the runtime's own CLI (C(docker) or C(podman)). Set C(docker) with O(runtime=podman) and an
        O(engine_url) pointing at a Podman API socket to drive Podman through the docker CLI, as Perry did.
    type: str
  engine_url:
    description:
      - Engine endpoint, for example C(unix:///run/user/1000/podman/podman.sock) or C(tcp://127.0.0.1:2375).
      - Passed as E(DOCKER_HOST) to the docker CLI and as C(--url) to the podman CLI. Unset means the CLI default.
    type: str
  engine_timeout:
    description:
      - Seconds any single engine command may take before it is killed and the task fails with the command
        (secrets redacted) and the elapsed time.
      - Two kinds of command get a floor instead, because their size is not the collection's to choose. An image
        pull runs for at least 600 seconds and a copy of the worker into a container for at least 120; a
        larger O(engine_timeout) still wins.
    type: float
    default: 60
'''
