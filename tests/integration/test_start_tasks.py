"""Start tasks on real podman (issue 14 §2, §3): the repo cloned once from a real git server (git http-backend on the
rootful podman bridge's gateway), public and token-protected, the token nowhere but the 0600 secrets file; a failed
clone leaves the workspace up, is reported and retried; post-start scripts run after every start, bounded, in
order, and fail the role only with fail_on_error."""

from __future__ import annotations

import json
import secrets
import time

import pytest

from gitserver import GitServer
from test_ssh import bridge_gateway
from topology import TOPOLOGIES, build_workspace_image, random_prefix, run_playbook

TOPO = TOPOLOGIES["podman-rootful"]
ROLE = [{"name": "workspace", "ansible.builtin.include_role": {"name": "perry.fleet.workspace"}}]


def converge(image, workspaces, **role_vars) -> dict:
    return run_playbook(ROLE, timeout=900, extra_vars=dict(
        perry_workspace_runtime="podman", perry_workspace_image=image, perry_workspace_list=workspaces, **role_vars))


def report(out) -> dict:
    facts = [t["ansible_facts"]["perry_workspace_report"] for t in out["tasks"]
             if "perry_workspace_report" in t.get("ansible_facts", {})]
    assert facts, out["stdout"][-3000:]
    return {row["name"]: row for row in facts[-1]}


def start_tasks_result(out) -> dict:
    [res] = [t for t in out["tasks"] if isinstance(t.get("workspaces"), list) and t["workspaces"]
             and "init" in t["workspaces"][0]]
    return res


def sh(name, script, user="workspace", check=True) -> str:
    return TOPO.cli("exec", "-u", user, "workspace-" + name, "sh", "-c", script, timeout=60, check=check).stdout


def wait_for_new_status(name, before: str, timeout=60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = sh(name, "cat ~/.cache/perry/start-tasks.json 2>/dev/null || true")
        if now.strip() and now != before:
            return json.loads(now)
        time.sleep(1)
    raise AssertionError("no new start-tasks status in %s within %d s" % (name, timeout))


@pytest.fixture
def prefix():
    value = random_prefix()
    yield value
    TOPO.cleanup(value)


def test_repo_cloned_once_token_kept_secret_failed_clone_retried(tmp_path, prefix):
    image = build_workspace_image(TOPO)
    token = "tok-" + secrets.token_hex(12)
    pub, priv, late = prefix + "pub", prefix + "priv", prefix + "late"
    with GitServer(str(tmp_path), bridge_gateway(), token) as git:
        pub_url = git.add_repo("public/app.git", {"README": "hello\n"})
        priv_url = git.add_repo("private/secret.git", {"README": "classified\n"}, branch="trunk")
        late_url = git.url + "/public/late.git"   # not there yet: the first clone fails
        workspaces = [{"name": pub, "repo_url": pub_url},
                      {"name": priv, "repo_url": priv_url, "secret_env": {"GITHUB_TOKEN": token}},
                      {"name": late, "repo_url": late_url}]
        out = converge(image, workspaces)
        assert out["rc"] == 0, out["stdout"][-4000:]
        rows = report(out)
        assert (rows[pub]["init"], rows[pub]["repo"]) == ("ok", "cloned"), rows[pub]
        assert (rows[priv]["init"], rows[priv]["repo"]) == ("ok", "cloned"), rows[priv]
        assert rows[late]["init"] == "failed" and rows[late]["healthy"] is True, rows[late]
        assert "git clone %s failed" % late_url in rows[late]["init_problems"][0], rows[late]
        assert sh(pub, "cat ~/app/README") == "hello\n"
        assert sh(priv, "cat ~/secret/README; git -C ~/secret branch --show-current") == "classified\ntrunk\n"
        assert any(r["path"].startswith("/private/") and r["auth"] for r in git.requests)
        assert "clone FAILED" in sh(late, "cat ~/.cache/perry/post-start.log")

        # the token: in the 0600 secrets file only (not in the container's config, the repo's config, any log)
        config = sh(priv, "cat ~/secret/.git/config")
        assert "url = " + priv_url + "\n" in config and "perry-git-credential" in config
        assert token not in json.dumps(TOPO.inspect("workspace-" + priv))
        leaks = sh(priv, "grep -rlF -- %s /home/workspace /var/log /tmp /etc 2>/dev/null || true" % token, user="root")
        assert leaks.split() == ["/home/workspace/.config/perry/secrets.env"], leaks
        assert token not in out["stdout"]

        # local work is never touched again; the failed clone is retried once the repo is there
        sh(pub, "echo local work > ~/app/README")
        git.add_repo("public/late.git", {"README": "late\n"})
        out = converge(image, workspaces)
        assert out["rc"] == 0, out["stdout"][-4000:]
        rows = report(out)
        assert rows[late]["init"] == "ok" and sh(late, "cat ~/late/README") == "late\n"
        changed = {w["name"]: w["changed"] for w in start_tasks_result(out)["workspaces"]}
        assert changed == {pub: False, priv: False, late: True}, changed
        before = sh(pub, "cat ~/.cache/perry/start-tasks.json")
        TOPO.cli("restart", "-t", "5", "workspace-" + pub, timeout=120)
        status = wait_for_new_status(pub, before)
        assert status["repo"]["status"] == "cloned" and status["ran"]["repo"] is False, status
        assert sh(pub, "cat ~/app/README") == "local work\n"


def test_post_start_scripts_after_every_start_bounded_and_failing_only_with_fail_on_error(prefix):
    image = build_workspace_image(TOPO)
    name = prefix + "post"
    counter = {"name": "count", "content": "echo run >> ~/post-start-runs\necho \"greeting=$GREETING key=$(printf %s \"$API_KEY\" | wc -c)\"\n"}
    mild = {"name": "mild", "content": "echo not fatal; exit 3\n", "fail_on_error": False}
    slow = {"name": "slow", "content": "sleep 60\n", "timeout": 2, "fail_on_error": False}
    ws = {"name": name, "env": {"GREETING": "hi"}, "secret_env": {"API_KEY": "k" * 12}}
    out = converge(image, [ws], perry_workspace_post_start=[counter, mild, slow])
    assert out["rc"] == 0, out["stdout"][-4000:]
    row = report(out)[name]
    assert row["init"] == "warn", row
    [res] = start_tasks_result(out)["workspaces"]
    assert [(s["name"], s["rc"]) for s in res["post_start"]] == [("01-count", 0), ("02-mild", 3), ("03-slow", 124)]
    assert res["post_start"][2]["elapsed"] < 15
    assert sh(name, "cat ~/post-start-runs") == "run\n"
    assert "greeting=hi key=12" in sh(name, "cat ~/.cache/perry/post-start.log")
    assert sh(name, "stat -c '%a %U' ~/.config/perry/post-start/01-count") == "700 workspace\n"

    # again: nothing copied, nothing run
    out = converge(image, [ws], perry_workspace_post_start=[counter, mild, slow])
    assert out["rc"] == 0, out["stdout"][-4000:]
    assert start_tasks_result(out)["workspaces"][0]["changed"] is False
    [converged] = [t for t in out["tasks"] if isinstance(t.get("workspaces"), list) and t["workspaces"]
                   and "actions" in t["workspaces"][0] and "ports" in t["workspaces"][0]]
    assert converged["changed"] is False, converged["workspaces"][0]["actions"]
    assert sh(name, "cat ~/post-start-runs") == "run\n"

    # a start without Ansible runs them (the entrypoint), then a fatal failure fails the role after the report
    before = sh(name, "cat ~/.cache/perry/start-tasks.json")
    TOPO.cli("restart", "-t", "5", "workspace-" + name, timeout=120)
    wait_for_new_status(name, before)
    assert sh(name, "cat ~/post-start-runs") == "run\nrun\n"
    boom = {"name": "boom", "content": "echo broke >&2; exit 7\n"}
    out = converge(image, [dict(ws, post_start=[counter, boom])])
    assert out["rc"] != 0
    assert "post-start script 02-boom exited 7: broke" in out["stdout"], out["stdout"][-3000:]
    assert report(out)[name]["init"] == "failed"
    assert sh(name, "cat ~/post-start-runs") == "run\nrun\nrun\n"
