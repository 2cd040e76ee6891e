# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A workspace's start tasks (Perry's WORKSPACE_REPO_URL clone and ``scripts.post_start``), run by the image's
``perry-start-tasks`` as the workspace user: at every container start from the entrypoint, and from here after a
converge, so that a plan written in place after the start (or changed since) runs too. One exec per workspace, its
status JSON read with a size cap; the plan itself lives in the workspace's env.sh (``PERRY_POST_START``), written
in place by perry_workspace, so the entrypoint finds it at the next start without Ansible."""

from __future__ import annotations

import json
import re

from ansible_collections.perry.fleet.plugins.module_utils.engine import exec_argv
from ansible_collections.perry.fleet.plugins.module_utils.errors import EngineError, EngineTimeout, SpecError

RUNNER = "/usr/local/bin/perry-start-tasks"
SCRIPTS_DIR = "~/.config/perry/post-start"
PLAN_ENV = "PERRY_POST_START"
MAX_STATUS = 256 * 1024      # the status holds at most 2000 bytes of output per script
MAX_SCRIPT_TIMEOUT = 24 * 3600
_FILE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def plan_item(index: int, name: str, timeout, fail_on_error: bool) -> tuple:
    """(file name in SCRIPTS_DIR, the PERRY_POST_START word) for the index-th script; raises SpecError."""
    if not isinstance(name, str) or not _FILE_RE.match(name):
        raise SpecError("post_start: script name %r must be 1-64 letters, digits, '.', '_' or '-' (it names the file in "
                        "%s)" % (name, SCRIPTS_DIR))
    try:
        seconds = int(timeout)
    except (TypeError, ValueError):
        raise SpecError("post_start: timeout of %s must be a whole number of seconds, got %r" % (name, timeout))
    if not 0 < seconds <= MAX_SCRIPT_TIMEOUT:
        raise SpecError("post_start: timeout of %s must be between 1 and %d seconds, got %d" % (name, MAX_SCRIPT_TIMEOUT, seconds))
    file_name = "%02d-%s" % (index, name)
    return file_name, "%d:%d:%s" % (seconds, 1 if fail_on_error else 0, file_name)


def plan_seconds(plan: str) -> int:
    """The longest a run of ``plan`` (a PERRY_POST_START value) can take in its scripts."""
    return sum(int(word.split(":", 1)[0]) + 5 for word in (plan or "").split() if word.split(":", 1)[0].isdigit())


def parse_status(stdout: str) -> dict:
    try:
        status = json.loads(stdout)
    except ValueError:
        raise EngineError("perry-start-tasks printed no status: %r" % stdout[-500:])
    if not isinstance(status, dict):
        raise EngineError("perry-start-tasks printed %r, not a status object" % stdout[-500:])
    return status


def summary(status: dict) -> dict:
    """The report's view: init (none; ok; warn: only scripts with fail_on_error false failed; failed: the clone or a
    script with fail_on_error failed), the repo's status, the scripts' results, and what failed."""
    repo = status.get("repo") or {"status": "none"}
    scripts = status.get("scripts") or []
    problems = []
    if repo.get("status") == "failed":
        problems.append(repo.get("error") or "the clone failed")
    for s in scripts:
        if s.get("rc"):
            problems.append("post-start script %s exited %s%s: %s" % (
                s.get("name"), s.get("rc"), "" if s.get("fail_on_error") else " (fail_on_error false)",
                (s.get("output") or "").strip()[-400:]))
    fatal = repo.get("status") == "failed" or any(s.get("rc") and s.get("fail_on_error") for s in scripts)
    if repo.get("status") == "none" and not scripts:
        init = "none"
    else:
        init = "failed" if fatal else ("warn" if problems else "ok")
    return {"init": init, "repo": repo, "post_start": scripts, "problems": problems}


def converge(engine, container: str, timeout: float, check_mode: bool = False) -> dict:
    """Run (or in check mode only ask) the workspace's start tasks; ``error`` when a script whose fail_on_error is
    true failed. A failed clone is reported (init failed) but is not an error: the workspace is up, and the next
    start or converge retries."""
    mode = "status" if check_mode else "converge"
    argv = ["timeout", "-k", "5", "%d" % max(1, int(timeout)), RUNNER, mode]
    try:
        res = engine.run(exec_argv(container, argv, "workspace"), timeout=timeout + 15, max_output=MAX_STATUS)
    except EngineTimeout:
        raise EngineError("the start tasks did not end within %g s (raise timeout or the scripts' timeouts)" % timeout)
    except EngineError as exc:
        if getattr(exc, "rc", None) in (126, 127):
            raise EngineError("this workspace's image has no %s: rebuild it with this collection's perry.fleet.image role" % RUNNER)
        raise
    status = parse_status(res.stdout)
    if check_mode:
        due = status.get("due") or {}
        out = summary(status.get("previous") or {})
        return dict(out, changed=bool(due.get("repo") or due.get("scripts")), due=due)
    ran = status.get("ran") or {}
    out = summary(status)
    changed = bool((ran.get("repo") and out["repo"].get("status") == "cloned") or ran.get("scripts"))
    result = dict(out, changed=changed)
    fatal = [s for s in out["post_start"] if s.get("rc") and s.get("fail_on_error")]
    if fatal:
        result["error"] = "; ".join(p for p in out["problems"] if "fail_on_error false" not in p)
    return result
