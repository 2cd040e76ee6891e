#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: perry_workspace_info
short_description: List Perry workspaces on a host with their state, ports and image
version_added: 0.2.0
description:
  - Reads what the engine knows about Perry workspaces, in at most two engine calls and without changing anything.
  - Without O(names) it lists every container labelled C(workspace.managed=true), which includes workspaces made
    by Perry itself; with O(names) it describes those workspaces (missing ones are left out).
  - The container environment is never read or returned.
author:
  - perry.fleet contributors (@perry-fleet)
extends_documentation_fragment:
  - perry.fleet.engine
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing is changed.
  idempotent:
    support: full
    description: Never changes anything.
options:
  names:
    description: Workspaces to describe. Unset means every managed workspace on the host.
    type: list
    elements: str
seealso:
  - module: perry.fleet.perry_workspace
'''

EXAMPLES = r'''
- name: Every Perry workspace on this host
  perry.fleet.perry_workspace_info:
    runtime: podman
  register: found

- name: Names of the running ones
  ansible.builtin.debug:
    msg: "{{ found.workspaces | selectattr('running') | map(attribute='name') | list }}"
'''

RETURN = r'''
workspaces:
  description: One entry per workspace found, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name: {description: "Workspace name (label C(workspace.name), else the container name without C(workspace-)).", type: str, returned: always}
    container: {description: Container name., type: str, returned: always}
    container_id: {description: Container id., type: str, returned: always}
    state: {description: "V(running), V(paused) or V(stopped).", type: str, returned: always}
    status: {description: "The engine's own word for the state (V(exited), V(created), ...).", type: str, returned: always}
    running: {description: Whether the container runs (and is not paused)., type: bool, returned: always}
    managed_by_collection: {description: Whether perry.fleet created it (it has the spec-hash label)., type: bool, returned: always}
    image: {description: Image reference the container was created from., type: str, returned: always}
    image_id: {description: Image id (without C(sha256:))., type: str, returned: always}
    ports: {description: "Host ports C(ssh) and C(worker) and the SSH C(bind_address); null where not published.", type: dict, returned: always}
    started_at: {description: When the container last started (engine time format)., type: str, returned: always}
    restart_count: {description: Restarts by the engine's restart policy., type: int, returned: always}
    limits:
      description:
        - Limits the engine enforces (C(HostConfig)), C(memory) in bytes, C(cpus) and C(pids); null where unlimited
          (podman sets 2048 pids by default).
      type: dict
      returned: always
      sample: {memory: 4294967296, cpus: 1.5, pids: 2048}
commands:
  description: Engine commands run, with rc and seconds.
  returned: always
  type: list
  elements: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.perry.fleet.plugins.module_utils import layout
from ansible_collections.perry.fleet.plugins.module_utils import workspace_info
from ansible_collections.perry.fleet.plugins.module_utils.errors import PerryError
from ansible_collections.perry.fleet.plugins.module_utils.module_args import engine_argument_spec, make_engine


def main():
    argument_spec = engine_argument_spec()
    argument_spec.update(names=dict(type="list", elements="str"))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    engine = None
    try:
        names = [layout.validate_name(n) for n in module.params["names"] or []]
        engine = make_engine(module.params)
        found = workspace_info.find(engine, names, timeout=module.params["engine_timeout"])
    except PerryError as exc:
        module.fail_json(commands=engine.commands if engine else [], **exc.as_fail_kwargs())
    workspaces = sorted((workspace_info.describe(c) for c in found), key=lambda w: w["name"])
    module.exit_json(changed=False, workspaces=workspaces, commands=engine.commands)


if __name__ == "__main__":
    main()
