"""docs/architecture.md's floors hold: a module_utils file imports only from lower floors (so no cycles), every
file is on the map, and every file opens with a docstring saying what it owns."""

from __future__ import annotations

import ast
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UTILS = os.path.join(ROOT, "plugins", "module_utils")


def floors() -> dict:
    out = {}
    with open(os.path.join(ROOT, "docs", "architecture.md")) as fh:
        for line in fh:
            m = re.match(r"\| (\d) \| (.*?) \|", line)
            if m:
                out.update({f: int(m.group(1)) for f in re.findall(r"`(\w+)\.py`", m.group(2))})
    return out


def test_module_utils_import_only_from_lower_floors():
    floor = floors()
    for fname in sorted(os.listdir(UTILS)):
        if not fname.endswith(".py"):
            continue
        name = fname[:-3]
        assert name in floor, "%s is not on the map in docs/architecture.md" % fname
        with open(os.path.join(UTILS, fname)) as fh:
            tree = ast.parse(fh.read())
        assert ast.get_docstring(tree), "%s has no docstring saying what it owns" % fname
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and "perry.fleet.plugins.module_utils" in node.module:
                deps = [node.module.rsplit(".", 1)[1]] if not node.module.endswith("module_utils") else [
                    a.name for a in node.names]
                for dep in deps:
                    assert floor[dep] < floor[name], "%s (floor %d) imports %s (floor %d)" % (
                        name, floor[name], dep, floor[dep])
