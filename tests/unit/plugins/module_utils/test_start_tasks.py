"""start_tasks: the one exec per workspace, its status read, what fails the task and what is only reported (the
runner itself runs in tests/integration/test_start_tasks.py on real engines)."""
import json

import pytest

from ansible_collections.perry.fleet.plugins.module_utils import start_tasks as st
from ansible_collections.perry.fleet.plugins.module_utils.engine import Result
from ansible_collections.perry.fleet.plugins.module_utils.errors import EngineError, EngineTimeout


class OneExec:
    def __init__(self, answer):
        self.answer, self.calls = answer, []

    def run(self, args, timeout=None, max_output=None, **_):
        self.calls.append((args, timeout, max_output))
        if isinstance(self.answer, Exception):
            raise self.answer
        return Result(0, self.answer if isinstance(self.answer, str) else json.dumps(self.answer), "", 0.1)


def status(**kw):
    base = {"boot": "b", "plan_digest": "d", "scripts_ok": True, "repo": {"status": "none"}, "scripts": [],
            "ran": {"repo": False, "scripts": False}}
    base.update(kw)
    return base


def test_one_bounded_exec_as_the_workspace_user_with_a_size_cap():
    engine = OneExec(status())
    res = st.converge(engine, "workspace-dev", 120)
    [(args, timeout, cap)] = engine.calls
    assert ["timeout", "-k", "5", "120", st.RUNNER, "converge"] == args[-6:]
    assert timeout == 135 and cap == st.MAX_STATUS
    assert res == {"init": "none", "repo": {"status": "none"}, "post_start": [], "problems": [], "changed": False}


def test_a_clone_is_a_change_and_a_failed_clone_only_a_report():
    assert st.converge(OneExec(status(repo={"status": "cloned", "dir": "/home/workspace/app"},
                                      ran={"repo": True, "scripts": False})), "w", 60)["changed"] is True
    res = st.converge(OneExec(status(repo={"status": "failed", "error": "git clone x failed (rc 128): auth"},
                                     ran={"repo": True})), "w", 60)
    assert res["init"] == "failed" and res["changed"] is False and "error" not in res
    assert res["problems"] == ["git clone x failed (rc 128): auth"]


def test_a_failing_script_fails_its_workspace_only_with_fail_on_error():
    fatal = {"name": "01-setup", "rc": 3, "elapsed": 0, "fail_on_error": True, "output": "boom\n"}
    mild = {"name": "02-warm", "rc": 1, "elapsed": 0, "fail_on_error": False, "output": "meh"}
    res = st.converge(OneExec(status(scripts=[fatal, mild], scripts_ok=False, ran={"scripts": True})), "w", 60)
    assert res["init"] == "failed" and res["changed"] is True
    assert res["error"] == "post-start script 01-setup exited 3: boom"
    res = st.converge(OneExec(status(scripts=[mild], ran={"scripts": True})), "w", 60)
    assert res["init"] == "warn"
    assert "error" not in res and res["problems"] == ["post-start script 02-warm exited 1 (fail_on_error false): meh"]


def test_check_mode_only_asks_what_is_due():
    engine = OneExec({"due": {"repo": True, "scripts": False}, "boot": "b", "previous": None})
    res = st.converge(engine, "w", 60, check_mode=True)
    assert engine.calls[0][0][-1] == "status"
    assert res["changed"] is True and res["due"] == {"repo": True, "scripts": False} and res["init"] == "none"


@pytest.mark.parametrize("answer, words", [
    (EngineError("exec failed", rc=127), "has no /usr/local/bin/perry-start-tasks"),
    (EngineTimeout("killed"), "did not end within 60 s"),
    ("no json here", "printed no status"),
    ("[1, 2]", "not a status object"),
])
def test_failures_say_what_to_do(answer, words):
    with pytest.raises(EngineError, match=words):
        st.converge(OneExec(answer), "w", 60)


def test_plan_items_are_checked():
    assert st.plan_item(3, "setup", "30", False) == ("03-setup", "30:0:03-setup")
    assert st.plan_seconds("30:0:03-setup 10:1:04-x") == 50
