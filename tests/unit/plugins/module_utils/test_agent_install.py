"""agent_install: what is validated, planned and run (a scripted engine; the scripts themselves run in
tests/integration/test_agent_install.py on real engines)."""
import pytest

from ansible_collections.perry.fleet.plugins.module_utils import agent_install as ai
from ansible_collections.perry.fleet.plugins.module_utils.engine import Result
from ansible_collections.perry.fleet.plugins.module_utils.errors import EngineError, EngineTimeout, SpecError, WorkspaceError

GOOD = "sha512-" + "A" * 86 + "=="


class ScriptedEngine:
    """Answers the read exec with ``read_out``; the install exec with ``install`` (a Result or an exception)."""

    def __init__(self, read_out, install=None):
        self.read_out, self.install = read_out, install
        self.commands, self.calls = [], []

    def run(self, args, timeout=None, max_output=None, **_):
        self.calls.append((args, timeout, max_output))
        if "timeout" in args and "setsid" in args:
            if isinstance(self.install, Exception):
                raise self.install
            return self.install or Result(0, "switched\n", "", 1.0)
        return Result(0, self.read_out, "", 0.1)


def test_validate_keeps_agents_with_a_version_and_refuses_what_is_not_a_pin():
    assert ai.validate({"pi": {"version": "0.73.1", "integrity": GOOD}, "codex": {"version": ""}}) == {
        "pi": {"version": "0.73.1", "integrity": GOOD}}
    for bad, words in (({"vim": {"version": "1.0.0", "integrity": GOOD}}, "unknown agent"),
                       ({"pi": {"version": "1.0;rm -rf /", "integrity": GOOD}}, "not a version"),
                       ({"pi": {"version": "1.0.0", "integrity": "sha1-x"}}, "npm view @mariozechner/pi-coding-agent@1.0.0"),
                       ({"pi": "1.0.0"}, "version and integrity"),
                       ({"pi": {"version": "1.0.0", "integrity": GOOD, "extra": 1}}, "version and integrity"),
                       (["pi"], "must be a dict")):
        with pytest.raises(SpecError, match=words.replace("(", r"\(").replace(";", ";")):
            ai.validate(bad)


def test_registry_must_be_a_plain_http_url():
    assert ai.validate_registry("") == ""
    assert ai.validate_registry("https://npm.example.com/repo/") == "https://npm.example.com/repo/"
    for bad in ("ftp://x", "https://x/;touch /tmp/p", "http://x/$(id)", "registry.npmjs.org"):
        with pytest.raises(SpecError, match="not an http"):
            ai.validate_registry(bad)


def test_plan_installs_what_differs_and_switches_back_to_the_image_version_without_a_download():
    wanted = {"pi": {"version": "0.73.1", "integrity": GOOD}, "codex": {"version": "0.171.0", "integrity": GOOD},
              "claude_code": {"version": "2.1.332", "integrity": GOOD}}
    read = ai.parse_read("pi 0.73.0 0.73.1\ncodex none none\nclaude_code 2.1.332 2.1.332\nnoise line here\n")
    assert read == {"pi": ("0.73.0", "0.73.1"), "codex": (None, None), "claude_code": ("2.1.332", "2.1.332")}
    assert ai.plan(wanted, read) == [("pi", "0.73.1", "image"), ("codex", "0.171.0", GOOD)]


def test_install_argv_bounds_the_script_inside_the_container_and_passes_values_as_arguments():
    argv = ai.install_argv(30.7, "", [("pi", "0.73.1", GOOD)])
    assert argv[:6] == ["timeout", "-k", "5", "30", "setsid", "/bin/sh"]
    assert argv[-6:] == ["", "pi", "@mariozechner/pi-coding-agent", "pi", "0.73.1", GOOD]


def test_converge_reads_once_and_installs_only_what_differs():
    eng = ScriptedEngine("pi 0.73.0 none\n")
    res = ai.converge(eng, "workspace-a", {"pi": {"version": "0.73.1", "integrity": GOOD}}, 60)
    assert res == {"changed": True, "agents": {"pi": {"before": "0.73.0", "after": "0.73.1", "image": None}}}
    assert len(eng.calls) == 2 and eng.calls[0][0][:3] == ["exec", "-u", "root"]
    assert eng.calls[1][1] == 75   # the host waits a little longer than the in-container bound
    same = ScriptedEngine("pi 0.73.1 none\n")
    assert ai.converge(same, "workspace-a", {"pi": {"version": "0.73.1", "integrity": GOOD}}, 60)["changed"] is False
    assert len(same.calls) == 1


def test_check_mode_reads_and_installs_nothing():
    eng = ScriptedEngine("pi none none\n")
    res = ai.converge(eng, "workspace-a", {"pi": {"version": "0.73.1", "integrity": GOOD}}, 60, check_mode=True)
    assert res["changed"] and len(eng.calls) == 1


def test_a_failed_install_says_the_old_version_stays_with_the_installers_words():
    err = EngineError("failed", cmd="x", rc=1, stderr="npm error code ETARGET\nnpm error notarget No matching version", elapsed=3)
    with pytest.raises(WorkspaceError, match="pi 0.73.99 in workspace-a failed, the old version stays in use: npm error code ETARGET"):
        ai.converge(ScriptedEngine("pi 0.73.0 none\n", err), "workspace-a", {"pi": {"version": "0.73.99", "integrity": GOOD}}, 60)


@pytest.mark.parametrize("err", [EngineTimeout("timed out", cmd="x", elapsed=75),
                                 EngineError("killed", cmd="x", rc=137, stderr="installing", elapsed=60.2)])
def test_a_stalled_install_says_it_hit_its_timeout(err):
    with pytest.raises(WorkspaceError, match="no end within timeout=60 s"):
        ai.converge(ScriptedEngine("pi none none\n", err), "workspace-a", {"pi": {"version": "0.73.1", "integrity": GOOD}}, 60)


def test_an_early_kill_is_not_called_a_timeout():
    err = EngineError("killed", cmd="x", rc=137, stderr="Killed", elapsed=2)
    with pytest.raises(WorkspaceError) as info:
        ai.converge(ScriptedEngine("pi none none\n", err), "workspace-a", {"pi": {"version": "0.73.1", "integrity": GOOD}}, 60)
    assert "timeout=" not in str(info.value) and "Killed" in str(info.value)
