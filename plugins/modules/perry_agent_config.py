#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: perry_agent_config
short_description: Generate and merge the coding agents' config files in Perry workspaces
version_added: 0.2.0
description:
  - Writes what Perry's C(syncAllAgents) generates, merged into what is there instead of overwriting it. Claude Code
    C(~/.claude.json) (onboarding completed, MCP servers), Codex C(~/.codex/config.toml) and C(~/.codex/auth.json),
    OpenCode C(~/.config/opencode/opencode.json) and C(~/.local/share/opencode/auth.json), pi
    C(~/.pi/agent/settings.json) and C(~/.pi/agent/auth.json).
  - B(Merged, not clobbered.) The keys given here are set (mappings recurse, any other value, lists too, is replaced);
    every other key, written by the user or by the agent, stays. A config file is brought back to the given keys on
    every run. An auth file (O(codex_auth), O(opencode_auth), O(pi_auth)) is only written when its value here changed
    since it was last written, or when the file is missing, so tokens an agent refreshed in place are kept; the
    workspace keeps a salted HMAC of the last value in C(~/.config/perry-fleet/agents.state), never the value.
  - A file with nothing to manage is not touched. Every file written is mode 0600, owned by C(workspace); missing
    directories are created 0700. Comments of a C(config.toml) are not kept when it is rewritten.
  - Everything in the workspace runs as C(workspace) (never root), in two C(exec) calls at most per workspace, each
    under O(timeout). Reads are capped at 4 MiB per file, only regular files are read, and a file that is a link, not
    a regular file, not valid JSON/TOML or larger than the cap fails that workspace with what to do, unchanged.
    A file that changes between the read and the write is not overwritten (run again). Contents travel on stdin.
author:
  - perry.fleet contributors (@perry-fleet)
extends_documentation_fragment:
  - perry.fleet.engine
attributes:
  check_mode:
    support: full
    description: Reads and reports what would change; writes nothing.
  diff_mode:
    support: partial
    description: C(keys) in RV(workspaces[].files) names the key paths that change (never their values, which can be secrets).
  idempotent:
    support: full
    description: A second run with the same options changes nothing.
options:
  names:
    description: Workspaces (container C(workspace-<name>)), which must be running.
    type: list
    elements: str
    required: true
  timeout:
    description: Seconds each C(exec) in a workspace may take.
    type: float
    default: 30
  claude_onboarding:
    description: Set C(hasCompletedOnboarding) in C(~/.claude.json), so Claude Code skips its first-run onboarding.
    type: bool
    default: true
  claude_json:
    description: More keys merged into C(~/.claude.json).
    type: dict
    default: {}
  mcp_servers:
    description:
      - MCP servers in Perry's shape, written for Claude Code (C(mcpServers)), Codex (C(mcp_servers)) and OpenCode
        (C(mcp)). A disabled server is left out for Claude Code and Codex and written with C(enabled=false) for
        OpenCode. Servers not listed here stay as they are.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Server name (the key in each agent's config).
        type: str
        required: true
      type:
        description: V(local) (a command on stdio) or V(remote) (a URL); default V(remote) when O(mcp_servers[].url) is set.
        type: str
        choices: [local, remote]
      command:
        description: Program of a local server.
        type: str
      args:
        description: Its arguments.
        type: list
        elements: str
      env:
        description: Its environment.
        type: dict
      url:
        description: URL of a remote server.
        type: str
      headers:
        description: HTTP headers for a remote server.
        type: dict
      enabled:
        description: Whether the agents use it.
        type: bool
        default: true
  codex_config:
    description: Keys merged into C(~/.codex/config.toml) (needs Python 3.11+ on the engine host for C(tomllib)).
    type: dict
    default: {}
  codex_auth:
    description: Codex credentials, the C(auth.json) document such as a mapping with C(OPENAI_API_KEY), seeded as described above.
    type: dict
    default: {}
  opencode_config:
    description: Keys merged into C(~/.config/opencode/opencode.json).
    type: dict
    default: {}
  opencode_auth:
    description: OpenCode credentials (C(~/.local/share/opencode/auth.json)), seeded.
    type: dict
    default: {}
  pi_settings:
    description: Keys merged into pi's C(~/.pi/agent/settings.json).
    type: dict
    default: {}
  pi_auth:
    description: pi credentials (C(~/.pi/agent/auth.json)), seeded.
    type: dict
    default: {}
notes:
  - No network access, everything goes through the engine's C(exec).
seealso:
  - module: perry.fleet.perry_workspace
'''

EXAMPLES = r'''
- name: Claude Code without onboarding, one MCP server for every agent, Codex with an API key
  perry.fleet.perry_agent_config:
    runtime: podman
    names: [alice, bob]
    mcp_servers:
      - name: github
        type: remote
        url: https://mcp.example.com/github
    codex_config:
      model: gpt-5
    codex_auth:
      OPENAI_API_KEY: "{{ vault_openai_key }}"
'''

RETURN = r'''
workspaces:
  description: Per workspace, what was (or in check mode would be) written.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Workspace name.
      type: str
    changed:
      description: Whether a file changed.
      type: bool
    files:
      description: Per managed file its C(path), C(changed), C(created) and the changed key paths C(keys) (names only).
      type: list
      elements: dict
    error:
      description: Why this workspace failed (the others are still configured).
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

from ansible_collections.perry.fleet.plugins.module_utils import agent_config, layout
from ansible_collections.perry.fleet.plugins.module_utils.errors import PerryError
from ansible_collections.perry.fleet.plugins.module_utils.module_args import engine_argument_spec, exit_per_workspace, make_engine

_MCP = dict(
    name=dict(type="str", required=True),
    type=dict(type="str", choices=["local", "remote"]),
    command=dict(type="str"),
    args=dict(type="list", elements="str"),
    env=dict(type="dict", no_log=False),
    url=dict(type="str"),
    headers=dict(type="dict", no_log=True),
    enabled=dict(type="bool", default=True),
)


def main():
    argument_spec = engine_argument_spec()
    argument_spec.update(
        names=dict(type="list", elements="str", required=True),
        timeout=dict(type="float", default=30),
        claude_onboarding=dict(type="bool", default=True),
        claude_json=dict(type="dict", default={}),
        mcp_servers=dict(type="list", elements="dict", default=[], options=_MCP),
        codex_config=dict(type="dict", default={}),
        codex_auth=dict(type="dict", default={}, no_log=True),
        opencode_config=dict(type="dict", default={}),
        opencode_auth=dict(type="dict", default={}, no_log=True),
        pi_settings=dict(type="dict", default={}),
        pi_auth=dict(type="dict", default={}, no_log=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    if p["timeout"] <= 0:
        module.fail_json(msg="timeout must be greater than 0 seconds")
    try:
        names = list(dict.fromkeys(layout.validate_name(n) for n in p["names"]))
        # MCP env values and headers can hold tokens: keep them out of any message.
        mcp = [{k: v for k, v in s.items() if v is not None} for s in p["mcp_servers"]]
        docs = agent_config.build_docs(dict(p, mcp_servers=mcp))
        engine = make_engine(p)
    except PerryError as exc:
        module.fail_json(**exc.as_fail_kwargs())
    for s in p["mcp_servers"]:
        for value in list((s.get("env") or {}).values()) + list((s.get("headers") or {}).values()):
            if isinstance(value, str) and len(value) >= 8:
                module.no_log_values.add(value)

    def one(name):
        return agent_config.sync(engine, layout.container_name(name), docs, p["timeout"], module.check_mode)

    exit_per_workspace(module, engine, names, one if docs else None, {"changed": False, "files": []})


if __name__ == "__main__":
    main()
