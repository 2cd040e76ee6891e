#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: perry_workspace
short_description: Make Perry workspace containers, their ports and volumes exist in the wanted state
version_added: 0.1.0
description:
  - Creates, recreates, starts, stops and removes Perry coding-agent workspaces on Docker or Podman.
  - A workspace is a container C(workspace-<name>) with a home volume C(workspace-<name>) at C(/home/workspace),
    labels C(workspace.name=<name>) and C(workspace.managed=true), restart policy C(unless-stopped) and an SSH port
    from 2200-2400. What differs between runtimes (privileged, hostname, DinD volume, C(DOCKER_HOST), worker port)
    comes from one runtime profile table; the profile applied is returned.
  - Idempotent from one batched C(inspect) of all containers and images named in the task. The desired spec,
    image id included, is hashed into a label; a different hash recreates the container and keeps its volumes,
    so home data survives image upgrades.
  - Ports are allocated under a host-wide lock, consulting every container's published ports (running or stopped)
    and a bind probe, and stay stable across recreate.
  - Environment and labels reach the engine through 0600 files that are removed right after C(create); no value
    appears on a command line. Secret values never appear in results or diffs.
author:
  - perry.fleet contributors (@perry-fleet)
extends_documentation_fragment:
  - perry.fleet.engine
attributes:
  check_mode:
    support: full
    description: Nothing is pulled, created, allocated or removed; RV(workspaces[].actions) says what would happen.
  diff_mode:
    support: full
    description: Shows only the spec keys that change, secret values masked.
  idempotent:
    support: full
    description: A second run with the same options reports C(changed=false) after one engine inspect.
options:
  name:
    description:
      - Workspace name, 1-63 characters of V(a-z), V(0-9) and V(-), starting and ending with a letter or digit
        (Perry's rule). V(@host) is reserved.
      - Mutually exclusive with O(workspaces).
    type: str
  workspaces:
    description:
      - Several workspaces in one task (one inspect for all). Each entry needs C(name) and may override any of
        O(state), O(image), O(env), O(secret_env), O(docker_host), O(privileged), O(memory), O(cpus), O(pids_limit),
        O(ssh_port), O(worker_port), O(bind_address), O(purge), O(adopt); module-level values are the defaults.
      - Mutually exclusive with O(name).
    type: list
    elements: dict
    suboptions:
      name: {description: Workspace name (same rule as O(name))., type: str, required: true}
      state: {description: Overrides O(state)., type: str, choices: [present, started, stopped, restarted, absent]}
      image: {description: Overrides O(image)., type: str}
      env: {description: Overrides O(env)., type: dict}
      secret_env: {description: Overrides O(secret_env)., type: dict}
      docker_host: {description: Overrides O(docker_host)., type: str}
      privileged: {description: Overrides O(privileged)., type: bool}
      memory: {description: Overrides O(memory)., type: str}
      cpus: {description: Overrides O(cpus)., type: float}
      pids_limit: {description: Overrides O(pids_limit)., type: int}
      ssh_port: {description: Overrides O(ssh_port)., type: int}
      worker_port: {description: Overrides O(worker_port)., type: int}
      bind_address: {description: Overrides O(bind_address)., type: str}
      purge: {description: Overrides O(purge)., type: bool}
      adopt: {description: Overrides O(adopt)., type: bool}
      files:
        description: Overrides O(files).
        type: list
        elements: dict
        suboptions:
          dest:
            description: Path in the workspace home, as in O(files[].dest).
            type: str
            required: true
          content:
            description: File content (secret), as in O(files[].content).
            type: str
          src:
            description: File on the managed host, as in O(files[].src).
            type: path
          mode:
            description: Octal mode, as in O(files[].mode).
            type: str
  state:
    description:
      - V(present) the container exists with the wanted spec (a new one is created, not started; a recreated one
        keeps its running state).
      - V(started) exists and runs, and accepts C(exec) (bounded by O(start_timeout)).
      - V(stopped) exists and is stopped. V(restarted) is stopped and started again.
      - V(absent) the container is removed; volumes are kept unless O(purge=true).
    type: str
    choices: [present, started, stopped, restarted, absent]
    default: started
  image:
    description:
      - Workspace image, for example the one the P(perry.fleet.image#role) role builds (C(localhost/perry:latest)).
      - Required unless O(state=absent). Its id is part of the spec, so a rebuilt image recreates the container.
    type: str
  pull:
    description:
      - V(missing) pulls an image that is not in the engine; V(never) fails with advice instead. Check mode never pulls.
    type: str
    choices: [missing, never]
    default: missing
  env:
    description: Environment for the container (values are strings). C(DOCKER_HOST) is set through O(docker_host).
    type: dict
    default: {}
  secret_env:
    description:
      - Secret environment (API keys, tokens). Same path into the container as O(env) but never shown in results,
        diffs or logs; the image's entrypoint writes these keys to a 0600 file instead of C(/etc/environment).
    type: dict
    default: {}
  docker_host:
    description:
      - Engine URL forwarded into a O(runtime=podman) workspace as C(DOCKER_HOST), for example
        C(tcp://podman-in-podman:2375). Refused with O(runtime=docker), whose workspaces run their own engine.
    type: str
  privileged:
    description:
      - Run privileged. Defaults to the runtime profile (V(true) for docker, V(false) for podman); V(true) is refused
        for podman.
    type: bool
  memory:
    description: Memory limit, for example V(4g).
    type: str
  cpus:
    description: CPU limit, for example V(1.5).
    type: float
  pids_limit:
    description: Maximum number of processes in the container.
    type: int
  ssh_port:
    description: Host port for SSH (container port 22). Default is the one the workspace has, else the first free one.
    type: int
  ssh_port_range:
    description: Range SSH host ports are allocated from, C([start, end]).
    type: list
    elements: int
    default: [2200, 2400]
  worker_port:
    description:
      - Host port (on 127.0.0.1 only) for the worker's port 7392, O(runtime=podman) only. Default is the one the
        workspace has, else the first free one.
    type: int
  worker_port_range:
    description: Range worker host ports are allocated from, C([start, end]).
    type: list
    elements: int
    default: [7392, 7500]
  bind_address:
    description: Host address the SSH port is published on. The worker port is always published on 127.0.0.1.
    type: str
    default: 127.0.0.1
  port_lock_path:
    description: Host-wide lock file serialising port allocation across concurrent runs and users.
    type: path
    default: /tmp/perry-fleet-ports.lock
  purge:
    description: With O(state=absent), also remove the home volume and the DinD volume.
    type: bool
    default: false
  adopt:
    description:
      - Recreate a C(workspace-<name>) container that perry.fleet did not create (for example one made by Perry
        itself), keeping its volumes. Without it such a container is an error and is left alone.
    type: bool
    default: false
  worker_source:
    description:
      - Path on the managed host to the Perry worker to install in every running workspace, either a compiled binary
        (installed as C(/usr/local/bin/perry), root:root 0755; its architecture must match the container's) or a
        JS dist directory with C(cli.js) (installed under C(/usr/local/lib/perry) with a sh wrapper at
        C(/usr/local/bin/perry) that runs the image's C(bun)). Your own Perry build works the same way.
      - A content-hash manifest in the container skips unchanged workers. With an engine on this host the module
        reads it in the container's writable layer (path from the inspect it already made, no symlink followed), so
        an unchanged worker costs no engine call; otherwise one exec. New content is renamed into place atomically
        and the running worker is restarted (the image's supervisor starts the new one).
      - Unset means no worker sync.
    type: path
  files:
    description:
      - Files to place in every running workspace's home, such as Claude Code's C(~/.claude/.credentials.json),
        C(~/.gitconfig) or C(~/.ssh/authorized_keys). Owned by C(workspace); parent directories are created with
        0700 under C(.ssh) and 0755 elsewhere (never a recursive chmod).
      - A manifest of paths, modes and content hashes in the workspace makes an unchanged set cost one exec, or none
        when the manifest can be read in the home volume on this host (root with a local engine).
      - Contents are staged in 0600 files and copied with the engine's C(cp), never put on a command line.
    type: list
    elements: dict
    default: []
    suboptions:
      dest:
        description: Path in the workspace home (C(~/...) or relative to C(/home/workspace)); must stay inside it.
        type: str
        required: true
      content:
        description: File content (secret; never logged). Exactly one of O(files[].content) and O(files[].src).
        type: str
      src:
        description: Path of a file on the managed host to copy.
        type: path
      mode:
        description:
          - Octal mode. Default follows Perry, V(0600) under C(.ssh) (except C(*.pub), C(config), C(known_hosts)) and
            for credential files (C(.credentials.json), C(auth.json), C(.git-credentials)), V(0644) otherwise.
        type: str
  start_timeout:
    description: Seconds to wait after C(start) until the container accepts C(exec).
    type: float
    default: 30
  stop_timeout:
    description: Seconds the container gets to stop before it is killed.
    type: int
    default: 10
notes:
  - Ports held by containers of another engine on the same host (for example another user's rootless podman) are
    seen only through the bind probe, so only while those containers run.
seealso:
  - module: perry.fleet.perry_worker_health
  - module: perry.fleet.perry_sessions
'''

EXAMPLES = r'''
- name: One rootless podman workspace
  perry.fleet.perry_workspace:
    name: alice
    runtime: podman
    image: localhost/perry:latest
    docker_host: tcp://podman-in-podman:2375
    secret_env:
      ANTHROPIC_API_KEY: "{{ vault_anthropic_key }}"

- name: Twenty workspaces in one task (one inspect)
  perry.fleet.perry_workspace:
    runtime: docker
    image: localhost/perry:latest
    workspaces: "{{ range(20) | map('string') | map('regex_replace', '^', 'ws-') | map('community.general.dict_kv', 'name') | list }}"

- name: Docker CLI against a podman API socket
  perry.fleet.perry_workspace:
    name: bob
    runtime: podman
    engine_cli: docker
    engine_url: unix:///run/user/1000/podman/podman.sock
    image: localhost/perry:latest

- name: Remove a workspace and its volumes
  perry.fleet.perry_workspace:
    name: alice
    runtime: podman
    state: absent
    purge: true
'''

RETURN = r'''
workspaces:
  description: One entry per workspace, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Workspace name.
      type: str
      returned: always
    container:
      description: Container name, null when there is none.
      type: str
      returned: always
    container_id:
      description: Container id, null in check mode for a container not created yet.
      type: str
      returned: always
    running:
      description: Whether the container runs after this task.
      type: bool
      returned: always
    actions:
      description: What was done, or would be done in check mode.
      type: list
      elements: str
      returned: always
      sample: [create volume workspace-alice, create, start]
    runtime:
      description: Runtime profile name.
      type: str
      returned: always
    profile:
      description: The runtime profile applied (privileged, set_hostname, dind_volume, forward_docker_host, ...).
      type: dict
      returned: always
    image:
      description: Image reference the container runs.
      type: str
      returned: unless state is absent
    image_id:
      description: Image id the container runs.
      type: str
      returned: unless state is absent
    ports:
      description: Host ports, C(ssh), C(worker) (podman) and C(bind_address).
      type: dict
      returned: unless state is absent
      sample: {ssh: 2200, worker: 7392, bind_address: 127.0.0.1}
    volumes:
      description: Volume names by role, C(home) and C(docker).
      type: dict
      returned: unless state is absent
    spec_hash:
      description: Hash of the desired spec, kept as a label.
      type: str
      returned: unless state is absent
    worker:
      description: Worker sync result (C(kind), C(digest), C(changed), C(action)), null when not synced.
      type: dict
      returned: always
    files:
      description: Files result (C(count), C(digest), C(changed)), null when no files were given.
      type: dict
      returned: always
commands:
  description: Engine commands run, with rc and seconds (values redacted; env reached the engine through a file).
  returned: always
  type: list
  elements: dict
elapsed:
  description: Seconds the module took (its engine commands are in RV(commands)).
  returned: success
  type: float
  sample: 0.41
'''

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.perry.fleet.plugins.module_utils.engine import EngineError
from ansible_collections.perry.fleet.plugins.module_utils.ports import PortError
from ansible_collections.perry.fleet.plugins.module_utils.workspace import (
    Settings, WorkspaceError, WorkspaceManager, expand_items, validate_items)
from ansible_collections.perry.fleet.plugins.module_utils.workspace_spec import SpecError
from ansible_collections.perry.fleet.plugins.module_utils.worker_sync import WorkerArtifact, WorkerSyncError
from ansible_collections.perry.fleet.plugins.module_utils.module_args import engine_argument_spec, make_engine


FILE_OPTIONS = dict(
    dest=dict(type="str", required=True),
    content=dict(type="str", no_log=True),
    src=dict(type="path"),
    mode=dict(type="str"),
)


def main():
    start = time.monotonic()
    argument_spec = engine_argument_spec()
    argument_spec.update(
        name=dict(type="str"),
        workspaces=dict(type="list", elements="dict", options=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "started", "stopped", "restarted", "absent"]),
            image=dict(type="str"),
            env=dict(type="dict"),
            secret_env=dict(type="dict", no_log=True),
            docker_host=dict(type="str"),
            privileged=dict(type="bool"),
            memory=dict(type="str"),
            cpus=dict(type="float"),
            pids_limit=dict(type="int"),
            ssh_port=dict(type="int"),
            worker_port=dict(type="int"),
            bind_address=dict(type="str"),
            purge=dict(type="bool"),
            adopt=dict(type="bool"),
            files=dict(type="list", elements="dict", options=FILE_OPTIONS),
        )),
        state=dict(type="str", default="started", choices=["present", "started", "stopped", "restarted", "absent"]),
        image=dict(type="str"),
        pull=dict(type="str", default="missing", choices=["missing", "never"]),
        env=dict(type="dict", default={}),
        secret_env=dict(type="dict", default={}, no_log=True),
        docker_host=dict(type="str"),
        privileged=dict(type="bool"),
        memory=dict(type="str"),
        cpus=dict(type="float"),
        pids_limit=dict(type="int"),
        ssh_port=dict(type="int"),
        ssh_port_range=dict(type="list", elements="int", default=[2200, 2400]),
        worker_port=dict(type="int"),
        worker_port_range=dict(type="list", elements="int", default=[7392, 7500]),
        bind_address=dict(type="str", default="127.0.0.1"),
        port_lock_path=dict(type="path", default="/tmp/perry-fleet-ports.lock"),
        purge=dict(type="bool", default=False),
        adopt=dict(type="bool", default=False),
        worker_source=dict(type="path"),
        files=dict(type="list", elements="dict", default=[], options=FILE_OPTIONS),
        start_timeout=dict(type="float", default=30),
        stop_timeout=dict(type="int", default=10),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=[("name", "workspaces")],
        required_one_of=[("name", "workspaces")],
        supports_check_mode=True,
    )
    p = module.params
    # Redact secret values from anything the engine prints back (no_log covers params and results).
    secrets = [v for item in (p["workspaces"] or []) for v in ((item or {}).get("secret_env") or {}).values()]
    secrets += list((p["secret_env"] or {}).values())
    try:
        engine = make_engine(p, secrets=[str(s) for s in secrets])
        settings = Settings(
            runtime=p["runtime"], check_mode=module.check_mode, pull=p["pull"],
            engine_timeout=p["engine_timeout"], start_timeout=p["start_timeout"], stop_timeout=p["stop_timeout"],
            ssh_port_range=_range(p["ssh_port_range"], "ssh_port_range"),
            worker_port_range=_range(p["worker_port_range"], "worker_port_range"),
            port_lock_path=p["port_lock_path"],
            worker=WorkerArtifact.from_path(p["worker_source"]) if p["worker_source"] else None)
        items = validate_items(expand_items(p), settings)
    except (SpecError, ValueError, WorkerSyncError) as exc:  # FilesError is a ValueError
        module.fail_json(msg=str(exc))

    manager = WorkspaceManager(engine, settings)
    try:
        results = manager.apply(manager.plan(items))
    except EngineError as exc:
        module.fail_json(commands=engine.commands, **exc.as_fail_kwargs())
    except (WorkspaceError, PortError) as exc:
        module.fail_json(msg=str(exc), commands=engine.commands)

    changed = manager.changed or any(r["changed"] for r in results)
    diff = {"before": {r["name"]: r["diff"]["before"] for r in results if r["changed"]},
            "after": {r["name"]: r["diff"]["after"] for r in results if r["changed"]}}
    for r in results:
        r.pop("diff")
    module.exit_json(changed=changed, workspaces=results, commands=engine.commands, diff=diff,
                     elapsed=round(time.monotonic() - start, 3))


def _range(value, what):
    if not isinstance(value, list) or len(value) != 2:
        raise ValueError("%s must be [start, end], got %r" % (what, value))
    return (value[0], value[1])


if __name__ == "__main__":
    main()
