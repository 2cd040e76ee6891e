"""agent_config: what is merged, seeded and refused, and its read/write scripts run for real with sh on temp files."""
import base64
import hashlib
import json
import os
import subprocess

import pytest

from ansible_collections.perry.fleet.plugins.module_utils import agent_config as ac
from ansible_collections.perry.fleet.plugins.module_utils.errors import SpecError, WorkspaceError

tomllib = pytest.importorskip("tomllib")


def _file(data: bytes):
    return ("file", data, hashlib.sha256(data).hexdigest())


def _read(docs, files=None, state=None):
    files = files or {}
    out = {ac.STATE: _file(json.dumps(state).encode()) if state else ("missing", None, None)}
    for d in docs:
        out[d.path] = files.get(d.path, ("missing", None, None))
    return out


def _doc(docs, path):
    return next(d for d in docs if d.path == path)


def test_defaults_manage_only_claude_onboarding():
    docs = ac.build_docs({})
    assert [d.path for d in docs] == [ac.CLAUDE_JSON]
    assert docs[0].ours == {"hasCompletedOnboarding": True}
    assert ac.build_docs({"claude_onboarding": False}) == []


def test_mcp_servers_are_written_for_each_agent_in_its_shape():
    docs = ac.build_docs({"mcp_servers": [
        {"name": "fs", "command": "npx", "args": ["-y", "srv"], "env": {"A": "1"}},
        {"name": "gh", "url": "https://mcp.example.com", "headers": {"Authorization": "x"}},
        {"name": "off", "command": "x", "enabled": False}]})
    claude = _doc(docs, ac.CLAUDE_JSON).ours["mcpServers"]
    assert claude == {"fs": {"type": "stdio", "command": "npx", "args": ["-y", "srv"], "env": {"A": "1"}},
                      "gh": {"type": "http", "url": "https://mcp.example.com", "headers": {"Authorization": "x"}}}
    codex = _doc(docs, ac.CODEX_CONFIG).ours["mcp_servers"]
    assert codex["fs"] == {"command": "npx", "args": ["-y", "srv"], "env": {"A": "1"}} and "off" not in codex
    opencode = _doc(docs, ac.OPENCODE_CONFIG).ours["mcp"]
    assert opencode["fs"]["command"] == ["npx", "-y", "srv"] and opencode["off"]["enabled"] is False


@pytest.mark.parametrize("servers, words", [
    ([{"name": "a"}], "needs command"),
    ([{"name": "a", "type": "remote"}], "needs url"),
    ([{"name": "a", "command": "x"}, {"name": "a", "command": "y"}], "unique"),
    ([{"name": "a", "command": "x", "bogus": 1}], "unknown keys bogus"),
])
def test_bad_mcp_servers_are_refused_with_advice(servers, words):
    with pytest.raises(SpecError, match=words):
        ac.build_docs({"mcp_servers": servers})


def test_user_keys_survive_and_ours_are_set_again():
    docs = ac.build_docs({"claude_json": {"theme": "dark"}})
    user = json.dumps({"hasCompletedOnboarding": False, "userKey": {"x": 1}, "theme": "light"}).encode()
    results, writes = ac.plan(docs, _read(docs, {ac.CLAUDE_JSON: _file(user)}))
    assert results[0]["keys"] == ["hasCompletedOnboarding", "theme"]
    written = json.loads(writes[0][2])
    assert written == {"hasCompletedOnboarding": True, "userKey": {"x": 1}, "theme": "dark"}
    assert writes[0][1] == "0600" and writes[0][3] == hashlib.sha256(user).hexdigest()  # only over what was read
    # second run: nothing to write
    results, writes = ac.plan(docs, _read(docs, {ac.CLAUDE_JSON: _file(writes[0][2])}))
    assert writes == [] and not results[0]["changed"]


def test_auth_is_seeded_once_and_an_agent_refresh_is_kept():
    docs = ac.build_docs({"claude_onboarding": False, "codex_auth": {"OPENAI_API_KEY": "sk-1"}})
    results, writes = ac.plan(docs, _read(docs))
    paths = [w[0] for w in writes]
    assert paths == [ac.CODEX_AUTH, ac.STATE] and results[0]["created"]
    state = json.loads(writes[1][2])
    assert "sk-1" not in writes[1][2].decode() and len(state["salt"]) == 32
    refreshed = json.dumps({"OPENAI_API_KEY": "sk-1", "tokens": {"refresh": "new"}}).encode()
    results, writes = ac.plan(docs, _read(docs, {ac.CODEX_AUTH: _file(refreshed)}, state))
    assert writes == [] and not results[0]["changed"]  # the agent's refresh stays
    rotated = ac.build_docs({"claude_onboarding": False, "codex_auth": {"OPENAI_API_KEY": "sk-2"}})
    results, writes = ac.plan(rotated, _read(rotated, {ac.CODEX_AUTH: _file(refreshed)}, state))
    assert json.loads(writes[0][2]) == {"OPENAI_API_KEY": "sk-2", "tokens": {"refresh": "new"}}
    assert results[0]["keys"] == ["OPENAI_API_KEY"]


@pytest.mark.parametrize("state, words", [
    (("link", None, None), "symbolic link"), (("other", None, None), "non-regular"),
    (("big", None, None), "larger than"), (_file(b"{not json"), "not valid JSON"), (_file(b"[1]"), "not an object"),
])
def test_files_we_must_not_touch_are_refused(state, words):
    docs = ac.build_docs({})
    with pytest.raises(WorkspaceError, match=words):
        ac.plan(docs, _read(docs, {ac.CLAUDE_JSON: state}))


def test_codex_toml_merge_keeps_user_tables():
    docs = ac.build_docs({"claude_onboarding": False, "codex_config": {"model": "o3"}})
    user = b'approval_policy = "never"\n[profiles.fast]\nmodel = "mini"\n'
    writes = ac.plan(docs, _read(docs, {ac.CODEX_CONFIG: _file(user)}))[1]
    want = {"approval_policy": "never", "model": "o3", "profiles": {"fast": {"model": "mini"}}}
    assert tomllib.loads(writes[0][2].decode()) == want


def test_toml_dumps_round_trips():
    data = {"a": 1, "b": "x\"y", "c": [1, 2], "d e": True, "t": {"u": {"v": 1.5}}, "arr": [{"k": 1, "s": {"z": 2}}]}
    assert tomllib.loads(ac.toml_dumps(data)) == data


def test_scripts_read_and_write_for_real(tmp_path):
    good, link, missing = tmp_path / "good.json", tmp_path / "link.json", tmp_path / "sub" / "new.json"
    good.write_bytes(b'{"a": 1}')
    os.symlink("/etc/passwd", link)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    paths = [str(good), str(link), str(missing), str(fifo)]
    out = subprocess.run(ac.read_argv(paths), capture_output=True, text=True, timeout=10, check=True).stdout
    got = ac.parse_read(out, paths)
    assert got[str(good)] == ("file", b'{"a": 1}', hashlib.sha256(b'{"a": 1}').hexdigest())
    assert got[str(link)][0] == "link" and got[str(missing)][0] == "missing" and got[str(fifo)][0] == "other"

    writes = [(str(good), "0600", b'{"a": 2}\n', got[str(good)][2]), (str(missing), "0600", b"{}\n", None)]
    subprocess.run(["/bin/sh", "-s"], input=ac.write_script(writes), text=True, timeout=10, check=True)
    assert good.read_bytes() == b'{"a": 2}\n' and oct(good.stat().st_mode & 0o777) == "0o600"
    assert missing.read_bytes() == b"{}\n" and oct(missing.parent.stat().st_mode & 0o777) == "0o700"

    # the file changed after the read: not overwritten
    stale = ac.write_script([(str(good), "0600", b"{}\n", got[str(good)][2])])
    proc = subprocess.run(["/bin/sh", "-s"], input=stale, text=True, capture_output=True, timeout=10, check=False)
    assert proc.returncode == 3 and "changed while" in proc.stderr and good.read_bytes() == b'{"a": 2}\n'
    # a link planted at the path after the read is refused, its target untouched
    os.unlink(good)
    os.symlink(str(tmp_path / "target"), good)
    proc = subprocess.run(["/bin/sh", "-s"], input=ac.write_script([(str(good), "0600", b"x", None)]),
                          text=True, capture_output=True, timeout=10, check=False)
    assert proc.returncode == 3 and not (tmp_path / "target").exists()


def test_contents_travel_base64_in_the_script_never_plain():
    script = ac.write_script([("/home/workspace/.codex/auth.json", "0600", b'{"OPENAI_API_KEY": "sk-secret"}', None)])
    assert "sk-secret" not in script and base64.b64encode(b'{"OPENAI_API_KEY": "sk-secret"}').decode()[:20] in script
