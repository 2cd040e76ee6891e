#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: perry_worker_health
short_description: Wait, with a hard deadline, until the Perry worker of one or many workspaces is healthy
version_added: 0.1.0
description:
  - Polls C(GET /health) of the Perry worker (port 7392) in each named workspace until it answers 2xx with the
    worker's whole JSON (C(status=ok), a C(version) string, a C(sessionCount) integer; anything else answering on 7392
    is not a worker) and, with O(expected_version), that version, or the deadline O(timeout) passes. The body must
    arrive whole within O(request_timeout); a worker that sends headers and then stalls is not healthy.
  - Every request carries the workspace's worker token (see the O(transport) notes); a worker that enforces no
    token is healthy but gives a warning saying what to do. Workspaces are checked in
    parallel, all under the same monotonic deadline; polling starts every O(interval) seconds and backs off.
  - Every request is bounded by O(request_timeout). With the exec transport curl runs with C(--connect-timeout)
    and C(--max-time) inside the container and the host also kills the C(exec) shortly after, so a frozen worker
    (port open, never answering) or a stalled engine CLI makes the task fail within about O(timeout) + 1 second
    instead of hanging (the bug of Perry's seed).
  - One batched C(inspect) of all named containers decides the transports (see O(transport)).
  - On failure the message says what was tried, the last error, and the last lines of C(/tmp/perry-worker.log)
    from inside the container.
author:
  - perry.fleet contributors (@perry-fleet)
extends_documentation_fragment:
  - perry.fleet.engine
  - perry.fleet.worker_target
attributes:
  check_mode:
    support: full
    description:
      - Health checks are read-only and run in check mode too. A version mismatch with O(restart_on_mismatch=true)
        is reported as RV(workspaces[].would_restart) and C(changed) instead of restarting the worker.
  diff_mode:
    support: none
    description: Nothing is configured, so there is nothing to diff.
  idempotent:
    support: full
    description: Changes something only when O(restart_on_mismatch=true) restarts a worker of the wrong version.
options:
  timeout:
    description:
      - Seconds from the start of the task until a workspace whose worker is not healthy counts as failed.
    type: float
    default: 15
  interval:
    description:
      - Seconds between health requests at first; the pause grows by half each time up to 1 second.
    type: float
    default: 0.2
  request_timeout:
    description:
      - Seconds one health request may take (curl C(--max-time) for V(exec), the socket deadline for V(http) and
        V(published)); never more than the time left before O(timeout).
    type: float
    default: 2
  expected_version:
    description:
      - Version the worker must report in C(/health). A different one keeps the workspace unhealthy until the
        deadline (the running worker may be being replaced), unless O(restart_on_mismatch) is set.
    type: str
  restart_on_mismatch:
    description:
      - When the worker answers with a version other than O(expected_version), kill it
        (C(pkill -f '(^|/)[p]erry( |/current/cli[.]js )worker serve') as C(workspace)) and wait again. The
        image's supervisor restarts it; if none does within 3 seconds the module starts it with
        C(nohup /usr/local/bin/perry worker serve >/tmp/perry-worker.log 2>&1 &).
      - A restarted worker that still reports the wrong version fails at once, as the installed worker is that
        version and needs a sync.
      - Does nothing in check mode but reports RV(workspaces[].would_restart).
    type: bool
    default: false
  fail_on_unhealthy:
    description:
      - Fail the task when any workspace is not healthy (or has the wrong version). With V(false) the results are
        returned and RV(all_healthy) says whether everything is fine.
    type: bool
    default: true
notes:
  - Traffic goes only to 127.0.0.1 (V(published)), to container IPs on local bridges (V(http)), or nowhere outside
    the container (V(exec)). Container IPs of a remote, nested (tcp:// engine URL) or rootless engine are never
    contacted. Proxies are never used, on the host or by curl in the container.
  - The exec transport needs C(curl) in the workspace image.
seealso:
  - module: perry.fleet.perry_workspace
  - module: perry.fleet.perry_sessions
'''

EXAMPLES = r'''
- name: Wait up to 15 s for the worker of one docker workspace (direct HTTP to its bridge IP)
  perry.fleet.perry_worker_health:
    name: alice

- name: Many rootless podman workspaces in parallel, exec transport, restart a worker of the wrong version
  perry.fleet.perry_worker_health:
    runtime: podman
    names: [alice, bob, carol]
    expected_version: 0.1.0
    restart_on_mismatch: true
    timeout: 30

- name: Through the published loopback port, report instead of failing
  perry.fleet.perry_worker_health:
    runtime: podman
    name: alice
    transport: published
    fail_on_unhealthy: false
  register: health

- name: Show the unhealthy ones
  ansible.builtin.debug:
    msg: "{{ health.workspaces | rejectattr('healthy') | map(attribute='name') | list }}"
'''

RETURN = r'''
all_healthy:
  description: Whether every workspace is healthy (with the expected version, when one is given).
  returned: always
  type: bool
  sample: true
unhealthy:
  description: Names of the workspaces that are not healthy or have the wrong version.
  returned: always
  type: list
  elements: str
  sample: []
workspaces:
  description: One entry per workspace, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name: {description: Workspace name., type: str, returned: always, sample: alice}
    container: {description: Container name., type: str, returned: always, sample: workspace-alice}
    healthy: {description: "Whether the last C(/health) answer was 2xx with the worker's JSON.", type: bool, returned: always}
    auth:
      description:
        - The worker's C(auth) from C(/health) when healthy, V(token) when it requires the workspace's token, V(none)
          when it does not (C(PERRY_WORKER_AUTH=none)); null for a worker too old to say (it enforces no token).
      type: str
      returned: always
      sample: token
    engine:
      description:
        - The workspace's container engine as its worker sees it (C(DOCKER_HOST), else the DinD socket; C(GET /_ping),
          at most 1 s, cached 5 s), its own field so an engine that is down is reported while the worker stays healthy.
          C(configured) (an engine is set up), C(reachable) (true, false, null when not probed), C(url), C(error).
        - Null when unhealthy or from a worker too old to say.
      type: dict
      returned: when healthy
      sample: {configured: true, reachable: true, url: "unix:///run/perry-engine/podman.sock", error: null}
    status: {description: "HTTP status of the last answer, 0 when none arrived.", type: int, returned: always, sample: 200}
    version: {description: Worker version from C(/health)., type: str, returned: always, sample: 0.1.0}
    session_count:
      description: Number of sessions the worker has indexed (the worker's C(sessionCount)).
      type: int
      returned: always
      sample: 3
    version_ok:
      description: Whether RV(workspaces[].version) equals O(expected_version); null without one or when unhealthy.
      type: bool
      returned: always
    transport: {description: "Transport used (V(exec), V(http) or V(published)).", type: str, returned: always}
    fallback:
      description: Why the requested transport was not used, or null.
      type: str
      returned: always
      sample: "http unavailable (rootless podman: container IPs live in the user's network namespace); using exec"
    attempts: {description: Health requests sent., type: int, returned: always, sample: 1}
    elapsed: {description: Seconds spent waiting for this workspace., type: float, returned: always, sample: 0.062}
    error: {description: Why the workspace is not fine (null when it is)., type: str, returned: always}
    restarted: {description: Whether the worker was killed for a version mismatch., type: bool, returned: always}
    would_restart: {description: "Check mode only, whether a restart would have happened.", type: bool, returned: always}
    actions: {description: Restart steps taken or that would be taken., type: list, elements: str, returned: always}
    log_tail:
      description: Last lines of C(/tmp/perry-worker.log) in the container when the worker is not healthy.
      type: str
      returned: always
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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.perry.fleet.plugins.module_utils.errors import EngineError, PerryError
from ansible_collections.perry.fleet.plugins.module_utils.module_args import (
    WORKER_TARGET_RULES, engine_argument_spec, make_engine, make_targets, worker_target_argument_spec)
from ansible_collections.perry.fleet.plugins.module_utils.snake import snake_keys
from ansible_collections.perry.fleet.plugins.module_utils.worker_health import (
    HealthOptions, auth_warning, check_many, failure_message, process_start)


def main():
    start = process_start()  # the deadline counts from the module's process start, imports included
    argument_spec = engine_argument_spec()
    argument_spec.update(worker_target_argument_spec())
    argument_spec.update(
        timeout=dict(type="float", default=15),
        interval=dict(type="float", default=0.2),
        request_timeout=dict(type="float", default=2),
        expected_version=dict(type="str"),
        restart_on_mismatch=dict(type="bool", default=False),
        fail_on_unhealthy=dict(type="bool", default=True),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        **WORKER_TARGET_RULES
    )
    p = module.params
    for key in ("timeout", "interval", "request_timeout"):
        if p[key] <= 0:
            module.fail_json(msg="%s must be greater than 0 seconds" % key)
    if p["expected_version"] is not None and not p["expected_version"].strip():
        module.fail_json(msg="expected_version is empty: give the version the worker must report (perry --version) "
                             "or leave it unset")
    opts = HealthOptions(timeout=p["timeout"], interval=p["interval"], request_timeout=p["request_timeout"],
                         expected_version=p["expected_version"], restart_on_mismatch=p["restart_on_mismatch"],
                         check_mode=module.check_mode)
    engine = None
    try:
        engine = make_engine(p)
        # The inspect is part of the deadline too: a stalled engine fails the task at the deadline.
        targets = make_targets(engine, p, timeout=min(p["engine_timeout"], p["timeout"]))
    except PerryError as exc:
        fail = exc.as_fail_kwargs()
        if isinstance(exc, EngineError):
            fail["msg"] = "cannot inspect the workspaces' containers: %s" % fail["msg"]
            fail["elapsed"] = round(time.monotonic() - start, 3)
        module.fail_json(commands=engine.commands if engine else [], **fail)

    results = [snake_keys(r) for r in check_many(engine, targets, opts, start)]   # the worker's sessionCount
    for r in results:
        warning = auth_warning(r["name"], r["auth"]) if r["healthy"] else None
        if warning:
            module.warn(warning)
    unhealthy = [r["name"] for r in results if r["error"]]
    changed = any(r["restarted"] or r["would_restart"] for r in results)
    out = dict(changed=changed, all_healthy=not unhealthy, unhealthy=unhealthy, workspaces=results,
               commands=engine.commands, elapsed=round(time.monotonic() - start, 3))
    if unhealthy and p["fail_on_unhealthy"]:
        module.fail_json(msg=failure_message(results, opts), **out)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
