#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: perry_sessions
short_description: List, read and delete coding-agent sessions through the Perry worker of many workspaces
version_added: 0.1.0
description:
  - Talks to the Perry worker (port 7392) of each named workspace, in parallel, over the same bounded transports
    as M(perry.fleet.perry_worker_health) (V(exec) curl with C(--max-time) plus a host-side kill, V(http) to a
    container IP on a local bridge only, or V(published) on 127.0.0.1), decided from one batched C(inspect).
  - Without O(session_id) it lists the sessions of every workspace (Claude Code, OpenCode, pi and Codex, as the
    worker indexes them), optionally filtered by O(agent_type), O(since) and a JMESPath O(query), one page at a time;
    O(limit) sessions (100 by default) after skipping O(offset), newest first over all named workspaces, with
    RV(total) matches and RV(truncated) when more follow. Each worker is asked only for the window the page needs,
    and no answer is read beyond 4 MiB (a bigger one fails that workspace with a message, never swells the result).
  - With O(session_id) it gets that session from every workspace that has it, and with O(messages=true) also one
    page of its messages (O(limit), O(offset), counted from the newest end as the worker pages them).
  - With O(state=absent) and O(session_id) it deletes the session wherever it exists. The session is read first,
    so check mode reports what would be deleted and diff mode shows it.
  - "Sessions are normalised the way the Perry agent consumes them, in one function, with every key in snake_case
    (the worker's camelCase C(agentType) is returned as C(agent_type), C(lastActivity) as C(last_activity), and so
    on): C(agent_type) V(claude) becomes V(claude-code) (the worker's value is kept as C(worker_agent_type));
    C(last_activity) stays in milliseconds and C(mtime) is added in seconds (C(last_activity / 1000));
    C(project_path) is C(directory) (for Claude the worker's encoded project directory name, unchanged); C(name) is
    C(title); C(workspace) is the workspace the session came from. All fields of the worker are kept, under their
    snake_case names; so are the keys of each message (C(tool_name), C(tool_id))."
  - A workspace whose worker cannot be reached is reported in its own entry (RV(workspaces[].error)); the other
    workspaces' results are still returned. O(fail_on_error) turns such errors into a task failure.
author:
  - perry.fleet contributors (@perry-fleet)
extends_documentation_fragment:
  - perry.fleet.engine
  - perry.fleet.worker_target
attributes:
  check_mode:
    support: full
    description: Reads run as usual; with O(state=absent) the session is read and reported as would-be deleted.
  diff_mode:
    support: full
    description: With O(state=absent) the deleted sessions are the C(before) and nothing the C(after).
  idempotent:
    support: full
    description: Deleting a session that no workspace has any more reports C(changed=false).
options:
  state:
    description:
      - V(present) reads (list, get, messages) and changes nothing.
      - V(absent) deletes O(session_id) from every workspace that has it.
    type: str
    choices: [present, absent]
    default: present
  session_id:
    description: The session to get, page or delete. Required with O(state=absent) and O(messages=true).
    type: str
  messages:
    description: With O(session_id), also return one page of the session's messages.
    type: bool
    default: false
  limit:
    description:
      - Sessions per page when listing (default 100), or messages per page with O(messages=true) (default 50,
        the worker's C(limit)).
    type: int
  offset:
    description:
      - How many of the newest items to skip (sessions when listing, messages with O(messages=true)), for paging.
      - Listing, the next page starts at RV(offset) + the number of RV(sessions) while RV(truncated) is true.
    type: int
    default: 0
  agent_type:
    description:
      - Only list sessions of these agents. V(claude) and V(claude-code) mean the same.
    type: list
    elements: str
    choices: [claude-code, claude, opencode, pi, codex]
  since:
    description:
      - Only list sessions active at or after this moment, given as milliseconds since the epoch
        (for example V(1767225600000)) or an ISO 8601 date or date-time (V(2026-01-01), V(2026-01-01T12:00:00Z)).
      - A date or date-time without a time zone means UTC.
    type: raw
  query:
    description:
      - "A JMESPath expression applied to the flat, normalised and filtered RV(sessions) list; its value is returned
        as RV(query_result), for example C([?message_count > `10`].{id: id, workspace: workspace})."
      - Needs the C(jmespath) Python library on the managed host.
    type: str
  request_timeout:
    description: Seconds one worker request may take (the worker rescans before listing).
    type: float
    default: 30
  fail_on_error:
    description: Fail the task when any workspace could not be read or changed (by default errors are per workspace).
    type: bool
    default: false
requirements:
  - jmespath (only for O(query))
notes:
  - The worker indexes sessions of the workspace user (C(/home/workspace)); Codex sessions are indexed by this
    collection's worker, not by Perry's.
seealso:
  - module: perry.fleet.perry_worker_health
  - module: perry.fleet.perry_workspace
'''

EXAMPLES = r'''
- name: All Claude Code sessions of three workspaces since the start of the year
  perry.fleet.perry_sessions:
    runtime: podman
    names: [alice, bob, carol]
    agent_type: claude-code
    since: "2026-01-01"
  register: found

- name: Ids and workspaces of long sessions
  perry.fleet.perry_sessions:
    names: [alice, bob]
    query: "[?message_count > `10`].{id: id, workspace: workspace}"
  register: long_sessions

- name: The newest 20 messages of one session
  perry.fleet.perry_sessions:
    name: alice
    session_id: 0f4c3c4e-6a55-4bd4-9d55-2a7f4f0e8d11
    messages: true
    limit: 20

- name: Delete a session wherever it is
  perry.fleet.perry_sessions:
    names: [alice, bob]
    session_id: ses_test123
    state: absent
'''

RETURN = r'''
sessions:
  description:
    - Flat list of the sessions found (listed, or the one got), newest first, each normalised and with C(workspace).
    - With O(state=absent), the sessions deleted (or that would be, in check mode).
    - Listing, one page (O(limit), O(offset)); RV(total) counts all matches.
  returned: always
  type: list
  elements: dict
  contains:
    id: {description: Session id., type: str, returned: always}
    workspace: {description: Workspace the session is in., type: str, returned: always}
    agent_type: {description: "V(claude-code), V(opencode), V(pi) or V(codex).", type: str, returned: always}
    worker_agent_type: {description: The agent type as the worker reports it (V(claude) for Claude Code)., type: str, returned: always}
    title: {description: Session title (first prompt or directory)., type: str, returned: always}
    name: {description: Same as C(title)., type: str, returned: always}
    directory: {description: Project directory as the worker reports it., type: str, returned: always}
    project_path: {description: Same as C(directory)., type: str, returned: always}
    file_path: {description: Session file in the container (empty for SQLite OpenCode)., type: str, returned: always}
    message_count: {description: Number of messages., type: int, returned: always}
    first_prompt: {description: First user prompt (at most 200 characters) or null., type: str, returned: always}
    last_activity: {description: Last activity in milliseconds since the epoch., type: int, returned: always}
    mtime: {description: Last activity in seconds since the epoch (C(last_activity / 1000))., type: float, returned: always}
  sample:
    - id: test-session
      workspace: alice
      agent_type: claude-code
      worker_agent_type: claude
      title: Hello from test
      name: Hello from test
      directory: -home-workspace-proj
      project_path: -home-workspace-proj
      file_path: /home/workspace/.claude/projects/-home-workspace-proj/test-session.jsonl
      message_count: 3
      first_prompt: Hello from test
      last_activity: 1767225600000
      mtime: 1767225600.0
workspaces:
  description: One entry per workspace, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name: {description: Workspace name., type: str, returned: always}
    container: {description: Container name., type: str, returned: always}
    transport: {description: Transport used., type: str, returned: always}
    fallback: {description: "Why the requested transport was not used, or null.", type: str, returned: always}
    ok: {description: Whether the worker answered., type: bool, returned: always}
    error: {description: "Why this workspace could not be read or changed, or null.", type: str, returned: always}
    sessions: {description: This workspace's sessions (same shape as RV(sessions))., type: list, elements: dict, returned: always}
    count: {description: "Number of this workspace's sessions on this page (RV(workspaces[].sessions)).", type: int, returned: always}
    total: {description: Number of this workspace's sessions that match., type: int, returned: always}
    session: {description: "The session got by O(session_id), or null when this workspace does not have it.", type: dict, returned: when session_id is given}
    messages:
      description: The page of messages (C(id), C(messages), C(total), C(limit), C(offset)).
      type: dict
      returned: when messages is true
    deleted: {description: Whether the session was (or in check mode would be) deleted here., type: bool, returned: when state is absent}
total:
  description: Number of sessions matching over all workspaces that answered (listing), or found (O(session_id)).
  returned: always
  type: int
  sample: 20000
truncated:
  description: Whether more matching sessions follow this page (ask again with a bigger O(offset)).
  returned: always
  type: bool
offset:
  description: Sessions skipped before this page (0 with O(session_id)).
  returned: always
  type: int
limit:
  description: The page size used for the list (null with O(session_id)).
  returned: always
  type: int
query_result:
  description: Value of O(query) applied to RV(sessions) (this page only).
  returned: when query is given
  type: raw
failed_workspaces:
  description: Names of the workspaces with an error.
  returned: always
  type: list
  elements: str
commands:
  description: Engine commands run, with rc and seconds.
  returned: always
  type: list
  elements: dict
elapsed:
  description: Seconds the whole task took.
  returned: always
  type: float
'''

import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.perry.fleet.plugins.module_utils.errors import PerryError
from ansible_collections.perry.fleet.plugins.module_utils.module_args import (
    WORKER_TARGET_RULES, engine_argument_spec, make_engine, make_targets, worker_target_argument_spec)
from ansible_collections.perry.fleet.plugins.module_utils.sessions import (
    AGENT_TYPES, HAS_JMESPATH, JMESPATH_IMPORT_ERROR, SessionRequest, compile_query, merge_page, parse_since,
    query_workspaces, validate_session_id)


def main():
    start = time.monotonic()
    argument_spec = engine_argument_spec()
    argument_spec.update(worker_target_argument_spec())
    argument_spec.update(
        state=dict(type="str", default="present", choices=["present", "absent"]),
        session_id=dict(type="str"),
        messages=dict(type="bool", default=False),
        limit=dict(type="int"),
        offset=dict(type="int", default=0),
        agent_type=dict(type="list", elements="str", choices=list(AGENT_TYPES)),
        since=dict(type="raw"),
        query=dict(type="str"),
        request_timeout=dict(type="float", default=30),
        fail_on_error=dict(type="bool", default=False),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_if=[("state", "absent", ("session_id",)), ("messages", True, ("session_id",))],
        supports_check_mode=True,
        **WORKER_TARGET_RULES
    )
    p = module.params
    if p["query"] and not HAS_JMESPATH:
        module.fail_json(msg=missing_required_lib("jmespath"), exception=JMESPATH_IMPORT_ERROR)
    if p["request_timeout"] <= 0:
        module.fail_json(msg="request_timeout must be greater than 0 seconds")
    if (p["limit"] is not None and p["limit"] < 1) or p["offset"] < 0:
        module.fail_json(msg="limit must be at least 1 and offset at least 0")
    engine = None
    try:
        request = SessionRequest(
            session_id=validate_session_id(p["session_id"]), messages=p["messages"], limit=p["limit"],
            offset=p["offset"], agent_types=p["agent_type"], since_ms=parse_since(p["since"]),
            delete=p["state"] == "absent", check_mode=module.check_mode, request_timeout=p["request_timeout"])
        query = compile_query(p["query"]) if p["query"] else None
        engine = make_engine(p)
        results = query_workspaces(engine, make_targets(engine, p), request)
    except PerryError as exc:
        module.fail_json(commands=engine.commands if engine else [], **exc.as_fail_kwargs())

    page = merge_page(results, request)
    sessions = page["sessions"]
    failed = [r["name"] for r in results if r["error"]]
    out = dict(changed=request.delete and any(r.get("deleted") for r in results), workspaces=results,
               failed_workspaces=failed, commands=engine.commands, elapsed=round(time.monotonic() - start, 3), **page)
    if query is not None:
        out["query_result"] = query.search(sessions)
    if request.delete:
        out["diff"] = {"before": {"sessions": ["%s/%s" % (s["workspace"], s["id"]) for s in sessions]},
                       "after": {"sessions": []}}
    if failed and p["fail_on_error"]:
        module.fail_json(msg="worker errors in %d workspace(s): %s" % (
            len(failed), "; ".join("%s: %s" % (r["name"], r["error"]) for r in results if r["error"])), **out)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
