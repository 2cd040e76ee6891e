#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: perry_start_tasks
short_description: Run a Perry workspace's start tasks (the repo clone, post-start scripts) and report them
version_added: 0.2.0
description:
  - Each workspace's image runs C(perry-start-tasks) as the user C(workspace) at every container start. This module
    runs it once more after a converge (one C(exec) per workspace, in parallel), so that what perry_workspace wrote in
    place after the start, or changed since, takes effect now, and returns each workspace's status.
  - B(The repo.) C(WORKSPACE_REPO_URL) (and C(WORKSPACE_REPO_BRANCH), default the remote's default branch), from the
    workspace's container env, is cloned into C(~/<repo name>) once; a marker (C(~/.cache/perry/repo-init.done))
    keeps later runs and restarts from touching it, and a directory of that name already there is left alone. A
    private repository gets its token from C(secret_env) through the image's git credential helper
    C(perry-git-credential), which reads the key named by C(WORKSPACE_REPO_TOKEN_KEY) (default C(GITHUB_TOKEN)) from
    the 0600 secrets file and answers for the repo's host only; the token never appears in argv, the remote URL,
    C(.git/config) or a log. A failed clone leaves the workspace running, is reported as C(init=failed) with git's
    last words and is retried by the next start or converge; it does not fail the task.
  - B(Post-start scripts.) C(PERRY_POST_START) in the workspace's C(env) (C(TIMEOUT:FAIL:FILE) words, in order; the
    workspace role writes it and the files in C(~/.config/perry/post-start/) from its C(post_start) list) run as
    C(workspace) in the login environment (env, then secrets), each under its own timeout, output appended to
    C(~/.cache/perry/post-start.log) (rotated at 1 MiB). They run once per container start, and again when the
    scripts or their order change, or when one whose FAIL is 1 failed last time. A failing script with FAIL 1
    fails this task for its workspace; with FAIL 0 it is only reported.
author:
  - perry.fleet contributors (@perry-fleet)
extends_documentation_fragment:
  - perry.fleet.engine
attributes:
  check_mode:
    support: full
    description: Reads the status and reports what is due; clones and runs nothing.
  diff_mode:
    support: none
    description: Scripts and clones have no before and after to show; the result lists what ran.
  idempotent:
    support: full
    description: Nothing runs again in the same container start with the same scripts once they succeeded.
options:
  names:
    description: Workspaces (container C(workspace-<name>)), which must be running.
    type: list
    elements: str
    required: true
  timeout:
    description:
      - Seconds one workspace's run may take in all (clone and scripts), inside the container and on the host. The
        workspace role gives the clone timeout plus the sum of the scripts' timeouts.
    type: float
    default: 600
notes:
  - The image needs C(perry-start-tasks), C(perry-git-credential), C(git) and C(jq), as images made by
    perry.fleet.image have.
seealso:
  - module: perry.fleet.perry_workspace
  - ref: perry.fleet.workspace
    description: The workspace role runs this module after every converge (its post_start and repo_url options).
'''

EXAMPLES = r'''
- name: Clone the repos and run the post-start scripts now, not only at the next start
  perry.fleet.perry_start_tasks:
    runtime: podman
    names: [alice, bob]
  register: init

- name: Show what failed
  ansible.builtin.debug:
    msg: "{{ init.workspaces | selectattr('init', 'eq', 'failed') | map(attribute='problems') | list }}"
'''

RETURN = r'''
workspaces:
  description: Per workspace, the start tasks' status.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Workspace name.
      type: str
    changed:
      description: Whether the repo was cloned or scripts ran (in check mode, whether that is due).
      type: bool
    init:
      description: V(none) (no repo, no scripts), V(ok), V(warn) (only scripts with fail_on_error false failed), or
        V(failed) (the clone, or a script with fail_on_error, failed).
      type: str
    repo:
      description: C(status) (V(none), V(cloned), V(present), V(failed)), C(dir), and C(error) when it failed.
      type: dict
    post_start:
      description: The scripts of the last run, each with C(name), C(rc), C(elapsed) seconds, C(fail_on_error), and
        C(output) (its last 2000 bytes) when it failed.
      type: list
      elements: dict
    problems:
      description: What failed, one sentence each.
      type: list
      elements: str
    due:
      description: In check mode, what a run would do (C(repo), C(scripts)).
      type: dict
    error:
      description: Why this workspace failed (a script with fail_on_error failed, or the run itself failed).
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

from ansible_collections.perry.fleet.plugins.module_utils import layout, start_tasks
from ansible_collections.perry.fleet.plugins.module_utils.errors import PerryError
from ansible_collections.perry.fleet.plugins.module_utils.module_args import engine_argument_spec, exit_per_workspace, make_engine


def main():
    argument_spec = engine_argument_spec()
    argument_spec.update(
        names=dict(type="list", elements="str", required=True),
        timeout=dict(type="float", default=600),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    if p["timeout"] <= 0:
        module.fail_json(msg="timeout must be greater than 0 seconds")
    try:
        names = list(dict.fromkeys(layout.validate_name(n) for n in p["names"]))
        engine = make_engine(p)
    except PerryError as exc:
        module.fail_json(**exc.as_fail_kwargs())

    def one(name):
        return start_tasks.converge(engine, layout.container_name(name), p["timeout"], module.check_mode)

    exit_per_workspace(module, engine, names, one, {"changed": False})


if __name__ == "__main__":
    main()
