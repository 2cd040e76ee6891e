#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: perry_agent_install
short_description: Change the coding agents' versions in running Perry workspaces, in place
version_added: 0.2.0
description:
  - Brings Claude Code, OpenCode, Codex and pi in each named workspace to the wanted version without rebuilding the
    image or recreating the container. An agent whose version is not given is left as it is.
  - A version the workspace does not have yet is installed by root inside the container into its own directory,
    C(/opt/perry/agents/<agent>/<version>) (the container's layer, owned by root), from the npm registry. The
    tarball is checked against the given C(integrity) (the registry's sha512, as the image role pins it),
    npm checks its dependencies, and the new command runs once with C(--version). Only then C(/usr/local/bin/<command>)
    is switched to it, by renaming a new link over the old one, so a shell always finds the old or the new agent.
  - B(A running agent keeps its files.) The version directory just left stays; older ones are removed only while
    no process runs from them or through the agent's command. The image's own install is never removed, and asking
    for the image's version switches back to it without a download.
  - B(A failed install changes nothing.) The old version stays in use and the task fails with the installer's last
    words (an unknown version, an integrity mismatch, a registry that does not answer within O(timeout)).
  - Two C(exec) calls per workspace at most (one reads the versions, also in check mode; one installs and
    switches), the second bounded by O(timeout) inside the container as well. Workspaces are handled in parallel;
    one install per workspace at a time (a lock in the container).
  - A recreated container starts from its image's versions again; run this module (the workspace role does, after
    every converge) to bring them back to the wanted ones.
author:
  - perry.fleet contributors (@perry-fleet)
extends_documentation_fragment:
  - perry.fleet.engine
attributes:
  check_mode:
    support: full
    description: Reads the versions and reports what would change; installs nothing.
  diff_mode:
    support: full
    description: The versions before and after, per workspace.
  idempotent:
    support: full
    description: An agent already at the wanted version is not touched.
options:
  names:
    description: Workspaces (container C(workspace-<name>)), which must be running.
    type: list
    elements: str
    required: true
  agents:
    description:
      - Wanted versions, keyed by agent (V(claude_code), V(opencode), V(codex), V(pi); the image role's names).
        Each value is a mapping with C(version) and C(integrity) (from C(npm view <package>@<version> dist.integrity)).
        An agent with an empty version is left alone.
    type: dict
    default: {}
  registry:
    description: npm registry URL for the installs; empty = the npm default (or the image's npm configuration).
    type: str
    default: ""
  timeout:
    description: Seconds one workspace's install may take, inside the container and on the host.
    type: float
    default: 600
notes:
  - The workspace needs C(npm), C(node), C(jq) and the image role's C(perry-npm-fetch), as images made by
    perry.fleet.image have; the container reaches the npm registry itself.
seealso:
  - module: perry.fleet.perry_agent_config
  - module: perry.fleet.perry_workspace
'''

EXAMPLES = r'''
- name: Roll pi to 0.73.1 on a host's workspaces, in place
  perry.fleet.perry_agent_install:
    runtime: podman
    names: [alice, bob]
    agents:
      pi:
        version: 0.73.1
        integrity: sha512-gXQh3SaZmWTfVMc4Ao5+LGbVeKvzyO7tolok0nLsZgq9nGjZx/EEU3NM8C+qUnB4Nvs2rswG5qOVgLzQkq0fHQ==
'''

RETURN = r'''
workspaces:
  description: Per workspace, the agents' versions.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Workspace name.
      type: str
    changed:
      description: Whether an agent was (or in check mode would be) switched.
      type: bool
    agents:
      description: Per agent C(before) (the version in use, null when missing), C(after) (the wanted one) and C(image)
        (the image's own version, null when the image has none).
      type: dict
      sample: {"pi": {"before": "0.73.1", "after": "0.73.0", "image": "0.73.1"}}
    error:
      description: Why this workspace failed (the others are still handled).
      type: str
failed_names:
  description: Workspaces that failed.
  returned: always
  type: list
  elements: str
commands:
  description: Engine commands that ran, each with C(cmd), C(rc) and C(elapsed) seconds.
  returned: always
  type: list
  elements: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.perry.fleet.plugins.module_utils import agent_install, layout
from ansible_collections.perry.fleet.plugins.module_utils.errors import PerryError
from ansible_collections.perry.fleet.plugins.module_utils.module_args import engine_argument_spec, exit_per_workspace, make_engine


def main():
    argument_spec = engine_argument_spec()
    argument_spec.update(
        names=dict(type="list", elements="str", required=True),
        agents=dict(type="dict", default={}),
        registry=dict(type="str", default=""),
        timeout=dict(type="float", default=600),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    if p["timeout"] <= 0:
        module.fail_json(msg="timeout must be greater than 0 seconds")
    try:
        names = list(dict.fromkeys(layout.validate_name(n) for n in p["names"]))
        wanted = agent_install.validate(p["agents"])
        registry = agent_install.validate_registry(p["registry"])
        engine = make_engine(p)
    except PerryError as exc:
        module.fail_json(**exc.as_fail_kwargs())

    def one(name):
        res = agent_install.converge(engine, layout.container_name(name), wanted, p["timeout"], registry, module.check_mode)
        if module._diff:
            res["diff"] = {"before": {k: a["before"] for k, a in res["agents"].items()},
                           "after": {k: a["after"] for k, a in res["agents"].items()}}
        return res

    exit_per_workspace(module, engine, names, one if wanted else None, {"changed": False, "agents": {}})


if __name__ == "__main__":
    main()
