"""Credential directories (issue 14 §5): a directory src is copied as a tree with Perry's modes (dirs 0700, files
0600), manifest-idempotent, and a link the workspace user planted where a file goes is replaced, never written
through."""

from __future__ import annotations

from topology import TOPOLOGIES, build_workspace_image, run_module

MODULE = "perry.fleet.perry_workspace"
TOPO = TOPOLOGIES["podman-rootful"]


def converge(name, image, src, **extra):
    res = run_module(MODULE, dict(name=name, image=image, files=[{"dest": "~/.config/gh", "src": str(src)}], **extra),
                     TOPO)
    assert not res.get("failed"), res.get("msg")
    return res


def test_a_credential_directory_is_copied_as_a_tree_and_links_are_never_followed(tmp_path, prefix_rootful):
    image = build_workspace_image(TOPO)
    name, cname = prefix_rootful + "tree", "workspace-%stree" % prefix_rootful
    gh = tmp_path / "gh"
    (gh / "nested").mkdir(parents=True)
    (gh / "hosts.yml").write_text("github.com:\n  oauth_token: tok-%s\n" % prefix_rootful)
    (gh / "nested" / "state.yml").write_text("checked: yes\n")

    first = converge(name, image, gh)
    assert "place 2 file(s)" in first["workspaces"][0]["actions"], first["workspaces"][0]["actions"]
    home = "/home/workspace/.config"
    modes = TOPO.cli("exec", cname, "stat", "-c", "%a %U %n", home + "/gh", home + "/gh/hosts.yml",
                     home + "/gh/nested", home + "/gh/nested/state.yml").stdout.split("\n")
    assert modes[:4] == ["700 workspace %s/gh" % home, "600 workspace %s/gh/hosts.yml" % home,
                         "700 workspace %s/gh/nested" % home, "600 workspace %s/gh/nested/state.yml" % home], modes

    assert not converge(name, image, gh)["changed"]            # unchanged tree: nothing placed

    # The workspace user plants a link where a managed file goes; one file of the tree changes on the host.
    TOPO.cli("exec", "-u", "workspace", cname, "sh", "-c",
             "rm %s/gh/nested/state.yml && ln -s /etc/hostname %s/gh/nested/state.yml" % (home, home))
    hostname_before = TOPO.cli("exec", cname, "cat", "/etc/hostname").stdout
    (gh / "hosts.yml").write_text("github.com:\n  oauth_token: rotated\n")
    again = converge(name, image, gh)
    assert again["changed"]
    kinds = TOPO.cli("exec", cname, "stat", "-c", "%F", home + "/gh/nested/state.yml").stdout.strip()
    assert kinds == "regular file", kinds                       # the link was replaced, not written through
    assert TOPO.cli("exec", cname, "cat", "/etc/hostname").stdout == hostname_before
    assert "rotated" in TOPO.cli("exec", cname, "cat", home + "/gh/hosts.yml").stdout

    (gh / "link").symlink_to("/etc/passwd")                     # a link in the source: refused, nothing placed
    bad = run_module(MODULE, dict(name=name, image=image, files=[{"dest": "~/.config/gh", "src": str(gh)}]), TOPO)
    assert bad.get("failed") and "never follows links" in bad["msg"], bad.get("msg")
    assert TOPO.cli("exec", cname, "test", "!", "-e", home + "/gh/link", check=False).returncode == 0
