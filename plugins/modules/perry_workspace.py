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
    so home data survives image upgrades. What is applied in place is not in the hash (O(env) and O(secret_env)
    as files the image's shells load, O(files), the worker, and with O(runtime=docker) the limits, compared with
    the inspected C(HostConfig) and changed with C(docker update)). A recreate renames the old container aside
    and removes it only once the new one exists, so a failed create puts it back, with its ports.
  - Volumes are labelled with their workspace and role (C(workspace.name), C(perry.fleet.volume-role) V(home) or
    V(docker)). A volume whose labels name another workspace or role is never mounted or removed (Perry's names
    collide, the DinD volume of C(x) is C(workspace-x-docker), the home of a workspace C(x-docker)); an unlabelled
    existing one needs O(adopt=true). Every such refusal, like a taken port, comes before anything is created.
  - Ports are allocated under a host-wide lock, consulting every container's published ports (running or stopped),
    the ports the other engines of this host claimed for theirs (see O(port_lock_path)), the ports already claimed
    in this run and a bind probe, and stay stable across recreate.
  - Environment and labels reach the engine as anonymous memory files (memfd, passed as C(/dev/fd/N)), so no value
    appears on a command line or in any file on disk, even if the run is killed. Secret values never appear in
    results or diffs.
author:
  - perry.fleet contributors (@perry-fleet)
extends_documentation_fragment:
  - perry.fleet.engine
  - perry.fleet.workspace
attributes:
  check_mode:
    support: full
    description:
      - Nothing is pulled, created, allocated or removed; RV(workspaces[].actions) says what the run would do, action
        for action (volumes, create, start, unpause, worker and files), and the run's refusals (volumes, purges,
        ports claimed) fail check mode too.
      - A stopped or paused workspace cannot be exec'd into; its worker and files manifests are read on this host
        (local engine). Where they cannot be, check mode predicts that the worker and files change.
  diff_mode:
    support: full
    description: Shows only the spec keys that change, secret values masked.
  idempotent:
    support: full
    description: A second run with the same options reports C(changed=false) after one engine inspect.
options:
  pull:
    description:
      - V(missing) pulls an image that is not in the engine; V(never) fails with advice instead.
      - V(always) pulls every image of the task, present or not (a registry image that moved on recreates its
        workspaces); the task changes only when a pull brought a different image. An image that exists only locally
        (such as one the P(perry.fleet.image#role) role built) cannot be pulled, so use V(missing) for those.
      - Check mode never pulls.
    type: str
    choices: [always, missing, never]
    default: missing
  ssh_port_range:
    description: Range SSH host ports are allocated from, C([start, end]).
    type: list
    elements: int
    default: [2200, 2400]
  worker_port_range:
    description: Range worker host ports are allocated from, C([start, end]).
    type: list
    elements: int
    default: [7392, 7500]
  port_lock_path:
    description:
      - Host-wide lock file serialising port allocation across concurrent runs and users (ports are host-wide, so
        every user's runs must share one file). An existing file is opened read-only without O_CREAT (which
        fs.protected_regular refuses for another user's file in C(/tmp)); a missing one is created 0644. A symlink or
        a non-regular file (FIFO) is refused.
      - Any local user can hold the lock and so delay creates; the timeout error names the holding process. Give
        a user's runs a private path to opt out of sharing (port conflicts are then found by the bind probe only).
      - Beside it, in the directory named like it with C(.claims) for C(.lock) (C(/tmp/perry-fleet-ports.claims),
        sticky and world-writable like C(/tmp)), every engine a run creates on writes the ports of its containers,
        running or stopped, to a file of its own; runs on the other engines of the host (dockerd, root's podman,
        each user's rootless podman, none of which sees another's containers) skip them, so a stopped workspace's
        ports are not handed to another engine's. Advisory, so a file that cannot be written is a warning and one
        that is not a small regular JSON file is skipped. A file keeps its engine's ports until that engine's next
        create.
    type: path
    default: /tmp/perry-fleet-ports.lock
  worker_source:
    description:
      - Path on the managed host to the Perry worker to install in every running workspace, either a compiled binary
        (installed as C(/usr/local/bin/perry), root:root 0755; its architecture must match the container's), a
        JS dist directory with C(cli.js) (installed under C(/usr/local/lib/perry) with a sh wrapper at
        C(/usr/local/bin/perry) that runs the image's C(bun)), or a build directory holding both (C(perry) and
        C(dist/), as C(worker/build-cached.sh) writes it), from which the runtime profile's format is taken
        (compiled binary for docker, JS dist for podman). Your own Perry build works the same way.
      - A content-hash manifest in the container skips unchanged workers. With an engine on this host the module
        reads it in the container's writable layer (path from the inspect it already made, no symlink followed), so
        an unchanged worker costs no engine call; otherwise one exec. New content is renamed into place atomically
        and the running worker is restarted (the image's supervisor starts the new one).
      - Unset means no worker sync.
    type: path
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
    workspace_docker_host: tcp://podman-in-podman:2375
    labels:
      com.example.team: platform
    ports:
      - container_port: 3000
        host_port: 13000
    secret_env:
      ANTHROPIC_API_KEY: "{{ vault_anthropic_key }}"

- name: Twenty workspaces in one task (one inspect)
  perry.fleet.perry_workspace:
    runtime: docker
    image: localhost/perry:latest
    # [{name: ws-0}, ..., {name: ws-19}] with ansible-core's own filters
    workspaces: "{{ range(20) | map('string') | map('ansible.builtin.regex_replace', '^', 'name: ws-') | map('ansible.builtin.from_yaml') | list }}"

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
    recreate_reasons:
      description:
        - Why the container is (or in check mode would be) recreated, in the spec's key names (C(image_id),
          C(ports), C(labels), C(resources), ...). Only what the engine cannot change in place recreates; files,
          O(env), O(secret_env) and the worker are applied in the running container, and with O(runtime=docker)
          the limits (O(memory), O(cpus), O(pids_limit)) too (action C(update_resources)).
      type: list
      elements: str
      returned: when the container is recreated
      sample: [image_id]
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
      description:
        - Host ports, C(ssh), C(worker) (podman) and C(bind_address); C(extra) lists the O(ports) published
          (C(container_port), C(host_port), C(protocol), C(bind_address)), sorted by host port, when any are.
      type: dict
      returned: unless state is absent
      sample: {ssh: 2200, worker: 7392, bind_address: 127.0.0.1}
    volumes:
      description: Volume names by role, C(home) and C(docker).
      type: dict
      returned: unless state is absent
    spec_hash:
      description:
        - Hash of the desired spec, kept as the C(perry.fleet.spec-hash) label; C(v<schema>:<sha256>). Unset
          options are not hashed, so a collection upgrade that adds an option recreates nothing.
      type: str
      sample: v1:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
      returned: unless state is absent
    worker:
      description:
        - Worker sync result (C(kind), C(digest), C(changed), C(action)), null when not synced.
        - C(action) is C(install), C(update), C(restore) (the manifest was current but the installed worker was
          gone or damaged) or C(unchanged).
      type: dict
      returned: always
    files:
      description:
        - Files result (C(count), C(digest), C(changed)), null when no files and no secret_env were given. The
          secret_env file counts as one file.
        - C(restored) lists managed files found deleted or changed in the workspace although its manifest was
          current (they are placed again).
      type: dict
      returned: always
    notes:
      description: What was deliberately left alone and why, for example a volume kept by O(purge) because its
        labels say it is another workspace's.
      type: list
      elements: str
      returned: always
      sample: ["kept volume workspace-x-docker: its labels say it is the home volume of workspace x-docker"]
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

from ansible_collections.perry.fleet.plugins.module_utils.errors import PerryError
from ansible_collections.perry.fleet.plugins.module_utils.module_args import engine_argument_spec, make_engine
from ansible_collections.perry.fleet.plugins.module_utils.ports import DEFAULT_LOCK_PATH
from ansible_collections.perry.fleet.plugins.module_utils.runtime_profile import get_profile
from ansible_collections.perry.fleet.plugins.module_utils.worker_sync import WorkerArtifact
from ansible_collections.perry.fleet.plugins.module_utils.workspace import Settings, WorkspaceManager, validate
from ansible_collections.perry.fleet.plugins.module_utils.workspace_spec import argument_spec as workspace_argument_spec


def main():
    start = time.monotonic()
    argument_spec = engine_argument_spec()
    argument_spec.update(workspace_argument_spec())
    argument_spec.update(
        pull=dict(type="str", default="missing", choices=["always", "missing", "never"]),
        ssh_port_range=dict(type="list", elements="int", default=[2200, 2400]),
        worker_port_range=dict(type="list", elements="int", default=[7392, 7500]),
        port_lock_path=dict(type="path", default=DEFAULT_LOCK_PATH),
        worker_source=dict(type="path"),
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
    engine = None
    try:
        engine = make_engine(p, secrets=[str(s) for s in secrets])
        settings = Settings(
            runtime=p["runtime"], check_mode=module.check_mode, pull=p["pull"],
            engine_timeout=p["engine_timeout"], start_timeout=p["start_timeout"], stop_timeout=p["stop_timeout"],
            ssh_port_range=p["ssh_port_range"], worker_port_range=p["worker_port_range"],
            port_lock_path=p["port_lock_path"],
            worker=WorkerArtifact.from_path(p["worker_source"], get_profile(p["runtime"]).worker_format)
            if p["worker_source"] else None)
        items = validate(p, settings)
        manager = WorkspaceManager(engine, settings)
        results = manager.apply(manager.plan(items))
    except PerryError as exc:
        module.fail_json(commands=engine.commands if engine else [], **exc.as_fail_kwargs())

    changed = manager.changed or any(r["changed"] for r in results)
    diff = {"before": {r["name"]: r["diff"]["before"] for r in results if r["changed"]},
            "after": {r["name"]: r["diff"]["after"] for r in results if r["changed"]}}
    for r in results:
        r.pop("diff")
        for note in r["notes"]:
            module.warn("%s: %s" % (r["name"], note))
    module.exit_json(changed=changed, workspaces=results, commands=engine.commands, diff=diff,
                     elapsed=round(time.monotonic() - start, 3))


if __name__ == "__main__":
    main()
