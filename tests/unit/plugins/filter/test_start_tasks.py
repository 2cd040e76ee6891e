"""post_start_plan: post-start scripts become files entries in ~/.config/perry/post-start/ and the PERRY_POST_START
plan; bad scripts are refused before anything is created (the scripts themselves run in
tests/integration/test_start_tasks.py)."""
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.perry.fleet.plugins.filter.start_tasks import post_start_by_workspace, post_start_plan


def test_scripts_become_ordered_files_and_plan_words(tmp_path):
    src = tmp_path / "warm-cache.sh"
    src.write_text("#!/bin/sh\necho warm\n")
    out = post_start_plan([{"name": "setup", "content": "echo hi\n"},
                           {"src": str(src), "timeout": 20, "fail_on_error": False}], "dev")
    assert [f["dest"] for f in out["files"]] == ["~/.config/perry/post-start/01-setup",
                                                 "~/.config/perry/post-start/02-warm-cache.sh"]
    assert {f["mode"] for f in out["files"]} == {"0700"}
    assert out["files"][1]["content"] == "#!/bin/sh\necho warm\n"
    assert out["plan"] == "300:1:01-setup 20:0:02-warm-cache.sh"
    assert out["env"] == {"PERRY_POST_START": out["plan"]}
    assert out["seconds"] == 305 + 25


def test_no_scripts_no_plan():
    assert post_start_plan([], "dev") == {"files": [], "plan": "", "env": {}, "seconds": 0}


def test_a_workspace_list_replaces_the_shared_one():
    shared = [{"name": "a", "content": "true"}]
    out = post_start_by_workspace([{"name": "x"}, {"name": "y", "post_start": []}], shared)
    assert out["x"]["plan"] == "300:1:01-a" and out["y"]["plan"] == ""


@pytest.mark.parametrize("script, words", [
    ({"name": "a"}, "either src"),
    ({"name": "a", "src": "/x", "content": "y"}, "either src"),
    ({"src": "/nonexistent/setup.sh"}, "not a file on the controller"),
    ({"name": "a b", "content": "true"}, "script name"),
    ({"name": "a", "content": "true", "timeout": 0}, "between 1 and"),
    ({"name": "a", "content": "true", "timeout": "soon"}, "whole number"),
    ({"name": "a", "content": "true", "when": "always"}, "unknown key"),
    ("echo hi", "mapping"),
])
def test_bad_scripts_are_refused_with_what_to_do(script, words):
    with pytest.raises(AnsibleFilterError, match=words) as err:
        post_start_plan([script], "dev")
    assert "Nothing was created" in str(err.value) and "workspace dev post_start[1]" in str(err.value)
