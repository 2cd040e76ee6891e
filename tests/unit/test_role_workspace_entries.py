"""The workspace role's perry_workspace_list entries take the module's per-workspace options under the same names
and types (the role passes every entry key but env, secret_env and ROLE_ONLY through to perry_workspace)."""

from __future__ import annotations

import os

import yaml

from ansible_collections.perry.fleet.plugins.module_utils import workspace_spec as ws

ROLE = os.path.join(os.path.dirname(__file__), "..", "..", "roles", "workspace")
# env WORKSPACE_REPO_URL, WORKSPACE_REPO_BRANCH, WORKSPACE_REPO_TOKEN_KEY; files entries (~/.ssh/authorized_keys, the
# post-start scripts) and the env PERRY_POST_START
ROLE_ONLY = {"repo_url", "repo_branch", "repo_token_key", "ssh_authorize", "post_start"}


def entry_options() -> dict:
    with open(os.path.join(ROLE, "meta", "argument_specs.yml")) as fh:
        spec = yaml.safe_load(fh)
    return spec["argument_specs"]["main"]["options"]["perry_workspace_list"]["options"]


def test_entries_accept_the_options_issue_17_named():
    assert {"ssh_port", "bind_address", "image", "adopt", "labels", "ports", "worker_port"} <= set(entry_options())


def test_every_entry_option_is_a_module_option_of_the_same_type():
    module = {o.name: o for o in ws.WORKSPACE_OPTIONS}
    for name, opt in entry_options().items():
        if name in ROLE_ONLY:
            continue
        assert name in module, "%s is not a perry_workspace option: the module would refuse it" % name
        assert opt["type"] == module[name].type, name
        assert opt.get("elements") == module[name].elements, name
        assert opt.get("choices") in (None, list(module[name].choices or ())), name


def test_defaults_comment_names_every_entry_option():
    with open(os.path.join(ROLE, "defaults", "main.yml")) as fh:
        text = fh.read()
    comment = text[text.index("# Workspaces on this host"):text.index("perry_workspace_list:")]
    missing = [n for n in entry_options() if n not in comment]
    assert not missing, "roles/workspace/defaults/main.yml does not mention %s" % missing
