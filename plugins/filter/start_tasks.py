# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Post-start scripts (Perry's ``scripts.post_start``) for the workspace role: each script becomes a ``files`` entry
in ~/.config/perry/post-start/ (so an unchanged script is not copied again) and one word of the plan
PERRY_POST_START that the image's perry-start-tasks runs. Filters run on the controller, where a script's ``src``
is."""

from __future__ import annotations

import os

from ansible.errors import AnsibleFilterError

from ansible_collections.perry.fleet.plugins.module_utils import start_tasks
from ansible_collections.perry.fleet.plugins.module_utils.errors import SpecError

MAX_SCRIPT = 1024 * 1024
DEFAULT_TIMEOUT = 300
_KEYS = {"name", "src", "content", "timeout", "fail_on_error"}


def _script_text(script: dict, where: str) -> str:
    if ("src" in script) == ("content" in script):
        raise AnsibleFilterError("%s: give either src (a file on the controller) or content (the script itself). "
                                 "Nothing was created." % where)
    if "content" in script:
        text = str(script["content"])
    else:
        path = os.path.expanduser(str(script["src"]))
        if not os.path.isfile(path):
            raise AnsibleFilterError("%s: src %s is not a file on the controller. Nothing was created." % (where, script["src"]))
        if os.path.getsize(path) > MAX_SCRIPT:
            raise AnsibleFilterError("%s: src %s is larger than %d bytes. Nothing was created." % (where, script["src"], MAX_SCRIPT))
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    if len(text.encode()) > MAX_SCRIPT:
        raise AnsibleFilterError("%s: the script is larger than %d bytes. Nothing was created." % (where, MAX_SCRIPT))
    return text


def post_start_plan(scripts, workspace: str = "") -> dict:
    """{files: [files entries], plan: the PERRY_POST_START value, env: {PERRY_POST_START: plan} or {} when there are no
    scripts, seconds: its longest run} for a post_start list."""
    files, words = [], []
    for index, script in enumerate(scripts or [], 1):
        where = "workspace %s post_start[%d]" % (workspace or "?", index)
        if not isinstance(script, dict):
            raise AnsibleFilterError("%s: each script is a mapping such as {name: setup, src: files/setup.sh}. "
                                     "Nothing was created." % where)
        unknown = sorted(set(script) - _KEYS)
        if unknown:
            raise AnsibleFilterError("%s: unknown key(s) %s; use %s. Nothing was created." % (where, ", ".join(unknown), ", ".join(sorted(_KEYS))))
        name = script.get("name") or (os.path.basename(str(script["src"])) if script.get("src") else "")
        try:
            file_name, word = start_tasks.plan_item(index, name, script.get("timeout", DEFAULT_TIMEOUT),
                                                    bool(script.get("fail_on_error", True)))
        except SpecError as exc:
            raise AnsibleFilterError("%s: %s. Nothing was created." % (where, exc))
        files.append({"dest": "%s/%s" % (start_tasks.SCRIPTS_DIR, file_name), "content": _script_text(script, where),
                      "mode": "0700"})
        words.append(word)
    plan = " ".join(words)
    return {"files": files, "plan": plan, "env": {start_tasks.PLAN_ENV: plan} if plan else {},
            "seconds": start_tasks.plan_seconds(plan)}


def post_start_by_workspace(workspaces, scripts=None) -> dict:
    """{workspace name: post_start_plan(...)} for a workspace role list: a workspace's own ``post_start`` replaces
    ``scripts`` (the role's list for every workspace)."""
    return {w["name"]: post_start_plan(w["post_start"] if "post_start" in w else scripts, w["name"])
            for w in workspaces or []}


class FilterModule:
    def filters(self):
        return {"post_start_plan": post_start_plan, "post_start_by_workspace": post_start_by_workspace}
