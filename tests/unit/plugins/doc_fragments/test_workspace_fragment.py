"""doc_fragments/workspace.py is generated from workspace_spec.WORKSPACE_OPTIONS: the docs and the argument spec
come from one table. Regenerate with:  python tests/unit/plugins/doc_fragments/test_workspace_fragment.py --write
"""

from __future__ import annotations

import os
import sys

import yaml

from ansible_collections.perry.fleet.plugins.doc_fragments.workspace import ModuleDocFragment
from ansible_collections.perry.fleet.plugins.module_utils import workspace_spec

FRAGMENT = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "plugins", "doc_fragments", "workspace.py")
HEADER = '''# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# GENERATED from plugins/module_utils/workspace_spec.py WORKSPACE_OPTIONS: do not edit by hand. Regenerate with
#   python tests/unit/plugins/doc_fragments/test_workspace_fragment.py --write

from __future__ import annotations


class ModuleDocFragment:
    # The options of one workspace, at the top level of perry_workspace and in each of its `workspaces` entries.
    DOCUMENTATION = r\'\'\'
'''


def render() -> str:
    body = yaml.safe_dump(workspace_spec.doc_fragment(), sort_keys=False, width=118, default_flow_style=False)
    return HEADER + body + "'''\n"


def test_fragment_matches_the_options_table():
    assert yaml.safe_load(ModuleDocFragment.DOCUMENTATION) == workspace_spec.doc_fragment(), (
        "plugins/doc_fragments/workspace.py is stale: run python %s --write" % __file__)


def test_every_argument_is_documented_with_its_type_and_default():
    spec = workspace_spec.argument_spec()
    docs = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    assert set(spec) == set(docs)
    for name, arg in spec.items():
        assert docs[name]["type"] == arg["type"], name
        assert docs[name].get("default") == arg.get("default"), name
    entry_docs = docs["workspaces"]["suboptions"]
    for name, arg in spec["workspaces"]["options"].items():
        assert entry_docs[name]["type"] == arg["type"] and "default" not in entry_docs[name], name


if __name__ == "__main__" and "--write" in sys.argv:
    with open(FRAGMENT, "w") as fh:
        fh.write(render())
    print("wrote", os.path.normpath(FRAGMENT))
