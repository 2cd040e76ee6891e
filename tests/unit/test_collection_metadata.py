"""galaxy.yml's URLs and the modules' EXAMPLES, as a Galaxy user meets them (issue 17)."""

from __future__ import annotations

import glob
import os
import re

import yaml

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
URL_KEYS = ("repository", "documentation", "homepage", "issues")
# What EXAMPLES may use: ansible-core and this collection (galaxy.yml declares no other dependency we rely on).
ALLOWED = ("ansible.builtin.", "perry.fleet.")


def test_galaxy_urls_are_one_documented_value():
    with open(os.path.join(ROOT, "galaxy.yml")) as fh:
        galaxy = yaml.safe_load(fh)
    urls = {galaxy.get(k) for k in URL_KEYS}
    assert len(urls) == 1 and None not in urls, {k: galaxy.get(k) for k in URL_KEYS}
    with open(os.path.join(ROOT, "README.md")) as fh:
        assert urls.pop() in fh.read(), "README's Publishing section must name galaxy.yml's URL"


def test_examples_use_only_core_and_own_plugins():
    for path in glob.glob(os.path.join(ROOT, "plugins", "modules", "*.py")):
        with open(path) as fh:
            text = fh.read()
        examples = text[text.index("EXAMPLES = r'''"):text.index("RETURN = r'''")]
        names = set(re.findall(r"(?m)^(?:- |  )([a-z_]+\.[a-z_]+\.[a-z_]+):", examples))     # a task's module
        names |= set(re.findall(r"\(\s*'([a-z_]+\.[a-z_]+\.[a-z_]+)'", examples))         # map('ns.coll.f')
        names |= set(re.findall(r"\|\s*([a-z_]+\.[a-z_]+\.[a-z_]+)", examples))           # | ns.coll.f
        foreign = sorted(n for n in names if not n.startswith(ALLOWED))
        assert not foreign, "%s EXAMPLES use %s, which the collection does not depend on" % (os.path.basename(path), foreign)


def test_the_check_catches_the_old_example():
    old = "workspaces: \"{{ names | map('community.general.dict_kv', 'name') | list }}\""
    assert re.findall(r"\(\s*'([a-z_]+\.[a-z_]+\.[a-z_]+)'", old) == ["community.general.dict_kv"]


def test_every_module_lists_the_engine_requirements():
    from ansible_collections.perry.fleet.plugins.doc_fragments.engine import ModuleDocFragment
    reqs = " ".join(yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["requirements"])
    assert "Podman >= 4.3" in reqs and "20.10" in reqs
    for path in glob.glob(os.path.join(ROOT, "plugins", "modules", "*.py")):
        with open(path) as fh:
            assert "perry.fleet.engine" in fh.read(), path
