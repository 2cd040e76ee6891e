#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: perry_state
short_description: List perry.fleet workspaces in Perry's state.json, so a Perry agent on the host shows them
version_added: 0.2.0
description:
  - Writes (V(present)) or removes (V(absent)) the entries of Perry's C(state.json) for the named workspaces, in
    Perry's WorkspaceInfo shape (C(name), C(status), C(containerId), C(created), C(ports.ssh), C(repo)), taken from
    one batched inspect of the containers C(workspace-<name>). A Perry agent started afterwards lists them.
  - Every entry perry.fleet did not write, and every other key of the file, is kept as it is. Which entries are
    perry.fleet's is recorded in a sidecar file C(.perry-fleet-state.json) (0600) in the same directory, name and
    container id, because Perry rewrites C(state.json) from its own object and would drop a marker inside it. An
    entry is ours only while its C(containerId) is the one we recorded; an entry of the same name that Perry wrote
    (its own workspace) is left alone and reported in RV(left_alone).
  - The Perry agent reads C(state.json) once and rewrites all of it on every change, so an edit made while it runs
    would be lost. When something must change and a Perry agent process runs on the host, the module refuses,
    naming the process, and writes nothing. A process counts as a Perry agent when its command line holds the
    perry program (a file named C(perry), or a script inside a directory named C(perry)) followed by C(agent run),
    as the compiled binary, the npm script and a JS dist run it. Processes in containers are seen too.
  - Writes happen under Perry's own lock C(<config_dir>/.state.lock), taken as Perry's proper-lockfile takes it
    (C(mkdir); a lock whose mtime is older than 10 s is stale and taken over); the file is re-read under the lock.
    The new file is written to a temp file in the same directory and renamed into place, with the old file's mode
    and owner. Symbolic links at C(state.json), the lock or the sidecar are refused, never followed; a file over
    4 MiB or one that is not a JSON object is refused with nothing written.
author:
  - perry.fleet contributors (@perry-fleet)
extends_documentation_fragment:
  - perry.fleet.engine
attributes:
  check_mode:
    support: full
    description: Reads and plans as a real run would (a running Perry agent fails it too); nothing is written.
  diff_mode:
    support: full
    description: Before and after of each entry written or removed (null for none).
  idempotent:
    support: full
    description: When every entry is already as wanted the files are not rewritten and C(changed=false).
options:
  workspaces:
    description: The workspaces whose entries are written or removed.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Workspace name (its container is C(workspace-<name>)).
        type: str
        required: true
      repo:
        description: Repository URL recorded as the entry's C(repo) (the workspace's C(repo_url)).
        type: str
  state:
    description:
      - V(present) writes the entries. The containers must exist, carry Perry's label C(workspace.managed=true) and
        publish an SSH port; in check mode a missing one is only noted in RV(left_alone).
      - V(absent) removes the entries perry.fleet wrote (no engine call); Perry's own are kept.
    type: str
    choices: [present, absent]
    default: present
  config_dir:
    description:
      - Perry's config directory on the managed host. Unset means Perry's own order, in the environment of the
        module on the managed host (the user it runs as, after C(become)); E(WS_CONFIG_DIR), then
        E(PERRY_CONFIG_DIR), then C($HOME/.config/perry).
      - Created (0700, owned like its parent) when missing and an entry is to be written.
    type: path
  lock_timeout:
    description:
      - Seconds to wait for Perry's state lock. The default exceeds the 10 s after which a lock nobody refreshes is
        stale, so a lock left by a killed process is taken over within one run.
    type: float
    default: 15
notes:
  - The entry's C(status) is the container's state at this run (V(running), else V(stopped)); C(created) is the
    container's creation time the first time the entry is written and then kept, so a recreate does not reset it.
seealso:
  - module: perry.fleet.perry_workspace
  - module: perry.fleet.perry_workspace_info
'''

EXAMPLES = r'''
- name: Perry's agent (started afterwards) lists the workspaces
  perry.fleet.perry_state:
    runtime: podman
    workspaces:
      - name: alice
        repo: https://github.com/example/app.git
      - name: bob

- name: A user's Perry, from a root run
  perry.fleet.perry_state:
    runtime: podman
    config_dir: /home/alice/.config/perry
    workspaces: [{name: alice}]

- name: Take them out again (Perry's own entries stay)
  perry.fleet.perry_state:
    runtime: podman
    state: absent
    workspaces: [{name: alice}, {name: bob}]
'''

RETURN = r'''
config_dir:
  description: Perry's config directory used.
  returned: always
  type: str
  sample: /root/.config/perry
written:
  description: Names whose entries were (or in check mode would be) added or updated.
  returned: always
  type: list
  elements: str
removed:
  description: Names whose entries were (or would be) removed.
  returned: always
  type: list
  elements: str
left_alone:
  description: Entries left alone because Perry wrote them, or containers missing in check mode, with the reason.
  returned: always
  type: list
  elements: dict
  sample: [{name: alice, reason: "state.json already has an entry alice that perry.fleet did not write (Perry's own); left as it is"}]
entries:
  description: The entries of this task's workspaces as state.json holds them after the run, by name.
  returned: always
  type: dict
  sample: {alice: {name: alice, status: running, containerId: 3f9c..., created: "2026-12-02T14:37:12.123Z", ports: {ssh: 2201}}}
lock_taken_over:
  description: Whether a stale Perry state lock was removed and taken.
  returned: always
  type: bool
commands:
  description: Engine commands run, with rc and seconds.
  returned: always
  type: list
  elements: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.perry.fleet.plugins.module_utils import layout
from ansible_collections.perry.fleet.plugins.module_utils import perry_state as ps
from ansible_collections.perry.fleet.plugins.module_utils import perry_state_store as store
from ansible_collections.perry.fleet.plugins.module_utils import workspace_info
from ansible_collections.perry.fleet.plugins.module_utils.errors import PerryError, SpecError
from ansible_collections.perry.fleet.plugins.module_utils.module_args import engine_argument_spec, make_engine


def wanted_entries(module, engine, items: list) -> tuple:
    """({name: entry} from one inspect, [left_alone]); a missing container fails unless in check mode."""
    containers = workspace_info.find(engine, [i["name"] for i in items], timeout=module.params["engine_timeout"])
    found = {c["Name"].lstrip("/"): c for c in containers}
    wanted, left_alone = {}, []
    for item in items:
        container = found.get(layout.container_name(item["name"]))
        if container is None:
            if not module.check_mode:
                raise SpecError("no container %s: create the workspace first (perry_workspace); nothing was written"
                                % layout.container_name(item["name"]))
            left_alone.append({"name": item["name"], "reason": "no container yet (check mode); written once it exists"})
            continue
        wanted[item["name"]] = ps.entry_from_container(container, item.get("repo"))
    return wanted, left_alone


def main():
    argument_spec = engine_argument_spec()
    argument_spec.update(
        workspaces=dict(type="list", elements="dict", required=True,
                        options=dict(name=dict(type="str", required=True), repo=dict(type="str"))),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        config_dir=dict(type="path"),
        lock_timeout=dict(type="float", default=15),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    engine = None
    try:
        items = [dict(i, name=layout.validate_name(i["name"])) for i in p["workspaces"]]
        if p["lock_timeout"] <= 0:
            raise SpecError("lock_timeout must be greater than 0 seconds")
        path = store.config_dir(p["config_dir"])
        wanted, left_alone = {}, []
        if p["state"] == "present" and items:
            engine = make_engine(p)
            wanted, left_alone = wanted_entries(module, engine, items)
        remove = [] if p["state"] == "present" else [i["name"] for i in items]
        out = ps.converge(path, wanted, remove, p["lock_timeout"], module.check_mode)
    except PerryError as exc:
        module.fail_json(commands=engine.commands if engine else [], **exc.as_fail_kwargs())

    held = out["state"]["workspaces"]
    module.exit_json(changed=out["changed"], config_dir=path, written=out["written"], removed=out["removed"],
                     left_alone=left_alone + out["left_alone"], lock_taken_over=out["lock_taken_over"],
                     entries={i["name"]: held[i["name"]] for i in items if i["name"] in held},
                     diff={"before": out["before"], "after": out["after"]},
                     commands=engine.commands if engine else [])


if __name__ == "__main__":
    main()
