"""The coding agents in a workspace: installed by roles/image, configured by perry_agent_config, on real engines.

The image is the image role's own build with its default agents (Claude Code, OpenCode, Codex, pi, gh and the
node they need); the workspace is made by perry_workspace; every check runs as the user `workspace`.
Rootless podman builds its own copy of the image (minutes on vfs): set PERRY_TEST_AGENTS_ROOTLESS=1 to include it.
"""
from __future__ import annotations

import json
import os

import pytest
import yaml

from topology import REPO, TOPOLOGIES, build_workspace_image, run_module

with open(os.path.join(REPO, "roles", "image", "defaults", "main.yml")) as _fh:
    DEFAULTS = yaml.safe_load(_fh)

# command, the version the image role pins
AGENTS = {
    "claude": DEFAULTS["perry_image_claude_code_version"],
    "opencode": DEFAULTS["perry_image_opencode_version"],
    "codex": DEFAULTS["perry_image_codex_version"],
    "pi": DEFAULTS["perry_image_pi_version"],
    "gh": DEFAULTS["perry_image_gh_version"].split("+")[0].split("-")[0],
}
NAMES = ["podman-rootful", "docker"] + (["podman-rootless"] if os.environ.get("PERRY_TEST_AGENTS_ROOTLESS") == "1" else [])


@pytest.fixture(params=NAMES)
def topo(request):
    return TOPOLOGIES[request.param]


@pytest.fixture
def agents_workspace(topo, prefix_any):
    try:
        image = build_workspace_image(topo, agents=True)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    name = prefix_any(topo) + "agents"
    r = run_module("perry.fleet.perry_workspace", {"name": name, "image": image}, topo)
    assert not r.get("failed"), r.get("msg")
    return name


def as_workspace(topo, name, script, check=True):
    """bash -lc as `workspace` in the workspace (a login shell: the PATH users get)."""
    return topo.cli("exec", "-u", "workspace", "-w", "/home/workspace", "workspace-" + name, "bash", "-lc", script,
                    timeout=120, check=check)


def test_every_agent_runs_as_workspace(topo, agents_workspace):
    node = as_workspace(topo, agents_workspace, "node --version").stdout.strip()
    assert node == "v" + DEFAULTS["perry_image_node_version"]
    for cmd, version in AGENTS.items():
        res = as_workspace(topo, agents_workspace, "%s --version" % cmd, check=False)
        assert res.returncode == 0, "%s --version failed: %s %s" % (cmd, res.stdout, res.stderr)
        said = res.stdout + res.stderr  # pi prints its version on stderr
        assert version in said, "%s --version said %r, the image pins %s" % (cmd, said, version)
    # Codex's binary comes from its platform package: the one for this machine is there.
    arch = as_workspace(topo, agents_workspace, "uname -m").stdout.strip()
    platform = {"x86_64": "linux-x64", "aarch64": "linux-arm64"}[arch]
    ls = as_workspace(topo, agents_workspace, "ls /usr/local/lib/node_modules/@openai/codex/node_modules/@openai/").stdout
    assert "codex-" + platform in ls.split()


def _config(name, **extra):
    args = {"names": [name], "mcp_servers": [{"name": "files", "type": "local", "command": "npx",
                                              "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]}],
            "codex_config": {"model": "gpt-5"}, "codex_auth": {"OPENAI_API_KEY": "sk-test-" + name}}
    args.update(extra)
    return args


def test_agent_config_is_merged_and_survives_user_edits(topo, agents_workspace):
    name = agents_workspace
    r = run_module("perry.fleet.perry_agent_config", _config(name), topo)
    assert not r.get("failed"), r.get("msg")
    assert r["changed"] and "sk-test-" not in json.dumps(r)
    claude = json.loads(as_workspace(topo, name, "cat ~/.claude.json").stdout)
    assert claude["hasCompletedOnboarding"] is True
    assert claude["mcpServers"]["files"]["command"] == "npx"
    modes = as_workspace(topo, name, "stat -c '%a %U %n' ~/.claude.json ~/.codex/auth.json ~/.codex/config.toml "
                                     "~/.config/opencode/opencode.json").stdout.split("\n")
    assert all(line.startswith("600 workspace ") for line in modes if line), modes
    # Codex parses the TOML written for it and sees its MCP server (it lists config only, connects nowhere).
    assert "files" in as_workspace(topo, name, "timeout 60 codex mcp list").stdout

    # The user (or the agent) edits the files; a re-run keeps every key it did not set itself.
    as_workspace(topo, name, "node -e '"
                 "const fs=require(\"fs\"),p=process.env.HOME+\"/.claude.json\";"
                 "const d=JSON.parse(fs.readFileSync(p));d.userTheme=\"solarized\";"
                 "d.mcpServers.mine={type:\"stdio\",command:\"true\",args:[],env:{}};fs.writeFileSync(p,JSON.stringify(d))'")
    as_workspace(topo, name, "printf '\\n[profiles.fast]\\nmodel = \"mini\"\\n' >> ~/.codex/config.toml")
    as_workspace(topo, name, "node -e '"
                 "const fs=require(\"fs\"),p=process.env.HOME+\"/.codex/auth.json\";"
                 "const d=JSON.parse(fs.readFileSync(p));d.tokens={refresh_token:\"refreshed-by-codex\"};"
                 "fs.writeFileSync(p,JSON.stringify(d))'")
    r2 = run_module("perry.fleet.perry_agent_config", _config(name), topo)
    assert not r2.get("failed"), r2.get("msg")
    assert not r2["changed"], r2["workspaces"]
    claude = json.loads(as_workspace(topo, name, "cat ~/.claude.json").stdout)
    assert claude["userTheme"] == "solarized" and set(claude["mcpServers"]) == {"files", "mine"}
    assert 'model = "mini"' in as_workspace(topo, name, "cat ~/.codex/config.toml").stdout
    auth = json.loads(as_workspace(topo, name, "cat ~/.codex/auth.json").stdout)
    assert auth["tokens"]["refresh_token"] == "refreshed-by-codex"  # the agent's refresh was not clobbered

    # The user turns onboarding off again: the next run sets it back, and only that key.
    as_workspace(topo, name, "node -e '"
                 "const fs=require(\"fs\"),p=process.env.HOME+\"/.claude.json\";"
                 "const d=JSON.parse(fs.readFileSync(p));d.hasCompletedOnboarding=false;fs.writeFileSync(p,JSON.stringify(d))'")
    r3 = run_module("perry.fleet.perry_agent_config", _config(name), topo, check=True)
    assert r3["changed"] and r3["workspaces"][0]["files"][0]["keys"] == ["hasCompletedOnboarding"]
    assert '"hasCompletedOnboarding":false' in as_workspace(topo, name, "cat ~/.claude.json").stdout  # check mode wrote nothing
    r4 = run_module("perry.fleet.perry_agent_config", _config(name, codex_auth={"OPENAI_API_KEY": "sk-rotated"}), topo)
    assert r4["changed"]
    claude = json.loads(as_workspace(topo, name, "cat ~/.claude.json").stdout)
    assert claude["hasCompletedOnboarding"] is True and claude["userTheme"] == "solarized"
    auth = json.loads(as_workspace(topo, name, "cat ~/.codex/auth.json").stdout)
    assert auth["OPENAI_API_KEY"] == "sk-rotated"
    assert as_workspace(topo, name, "stat -c %a ~/.codex/auth.json").stdout.strip() == "600"


def test_a_planted_link_is_refused_and_its_target_untouched(topo, agents_workspace):
    name = agents_workspace
    as_workspace(topo, name, "echo keep > /tmp/target; ln -sfn /tmp/target ~/.claude.json")
    r = run_module("perry.fleet.perry_agent_config", {"names": [name]}, topo)
    assert r.get("failed") and "symbolic link" in r["msg"] and r["failed_names"] == [name]
    assert as_workspace(topo, name, "cat /tmp/target").stdout.strip() == "keep"
