"""roles/image: the Containerfile rendered with the role defaults, and its agents step run with stand-ins.

The agents step is real shell from the rendered template; only the tools it calls (perry-npm-fetch, npm and the
agents' --version) are stand-ins on PATH that record their arguments. A second full image build per left-out agent
would cost minutes; what decides "left out" is this shell, run here exactly as the build runs it."""
import os
import re
import subprocess

import jinja2
import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLE = os.path.join(REPO, "roles", "image")
AGENTS = {"claude": "CLAUDE_CODE", "opencode": "OPENCODE", "codex": "CODEX", "pi": "PI"}
PACKAGES = {"claude": "@anthropic-ai/claude-code", "opencode": "opencode-ai", "codex": "@openai/codex",
            "pi": "@mariozechner/pi-coding-agent"}


def _defaults():
    with open(os.path.join(ROLE, "defaults", "main.yml")) as fh:
        return yaml.safe_load(fh)


def render(**overrides) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(ROLE, "templates")), undefined=jinja2.StrictUndefined)
    return env.get_template("Containerfile.j2").render(**dict(_defaults(), **overrides))


def _step(text: str, marker: str) -> tuple:
    """(ARG defaults, the RUN's shell) of the RUN step that follows ``marker``."""
    tail = text[text.index(marker):]
    args = dict(re.findall(r"^ARG (\w+)=(.*)$", tail.split("\nRUN ", 1)[0], re.M))
    run = tail.split("\nRUN ", 1)[1].split("\n\n", 1)[0]
    return args, run.replace("\\\n", "\n")


def test_every_pin_reaches_the_containerfile():
    text = render()
    d = _defaults()
    for key in ("node_version", "npm_version", "npm_integrity", "bun_integrity", "claude_code_integrity",
                "codex_version", "codex_integrity", "pi_version", "pi_integrity", "gh_version"):
        assert d["perry_image_" + key] in text, key
    assert d["perry_image_node_integrity"]["x64"] in text and d["perry_image_node_integrity"]["arm64"] in text


def test_arg_specs_match_defaults():
    with open(os.path.join(ROLE, "meta", "argument_specs.yml")) as fh:
        options = yaml.safe_load(fh)["argument_specs"]["main"]["options"]
    for key, value in _defaults().items():
        assert key in options, key
        if not (isinstance(value, str) and "{{" in value):  # templated defaults are described, not repeated
            assert options[key].get("default") == value, key


@pytest.mark.parametrize("left_out", [None, "claude", "opencode", "codex", "pi", "all"])
def test_agents_step_installs_exactly_the_agents_with_a_version(tmp_path, left_out):
    off = set(AGENTS) if left_out == "all" else {left_out} - {None}
    overrides = {"perry_image_%s_version" % AGENTS[a].lower(): "" for a in off}
    args, run = _step(render(**overrides), "# Coding agents from the npm registry")
    assert all(args[AGENTS[a] + "_VERSION"] == "" for a in off)
    bin_dir, log = tmp_path / "bin", tmp_path / "log"
    bin_dir.mkdir()
    shims = {"perry-npm-fetch": 'echo "fetch $1 $2" >> "$LOG"; echo "/tmp/$(echo "$1" | tr /@ __).tgz"',
             "npm": 'echo "npm $*" >> "$LOG"', "perry-npm-trim": 'echo trim >> "$LOG"'}
    for agent in AGENTS:
        version = args[AGENTS[agent] + "_VERSION"]
        shims[agent] = 'echo "%s --version" >> "$LOG"; echo "%s"' % (agent, version)
    for name, body in shims.items():
        path = bin_dir / name
        path.write_text("#!/bin/sh\n" + body + "\n")
        path.chmod(0o755)
    env = dict(args, PATH="%s:/usr/bin:/bin" % bin_dir, LOG=str(log))
    subprocess.run(["/bin/sh", "-c", run], env=env, check=True, timeout=30, capture_output=True)
    lines = log.read_text().splitlines() if log.exists() else []
    fetched = [l.split()[1] for l in lines if l.startswith("fetch ")]
    wanted = [PACKAGES[a] + "@" + args[AGENTS[a] + "_VERSION"] for a in AGENTS if a not in off]
    assert fetched == wanted
    for agent in AGENTS:  # a left-out agent is never fetched, installed or asked for its version
        if agent in off:
            assert not any(PACKAGES[agent] in l or l.startswith(agent + " ") for l in lines), agent
        else:
            assert "%s --version" % agent in lines
    installs = [l for l in lines if l.startswith("npm install")]
    assert (installs == []) == (off == set(AGENTS))
    if installs:
        assert "--engine-strict" in installs[0]
    # each fetch carries its pinned integrity
    for line in (l for l in lines if l.startswith("fetch ")):
        assert re.match(r"^fetch \S+ sha512-[A-Za-z0-9+/]{86}==$", line)


def test_agents_step_fails_when_an_agent_reports_another_version(tmp_path):
    args, run = _step(render(), "# Coding agents from the npm registry")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ["perry-npm-fetch", "npm", "perry-npm-trim", "claude", "opencode", "codex", "pi"]:
        body = "echo 0.0.1" if name == "codex" else ('echo "%s"' % args.get(AGENTS.get(name, "X") + "_VERSION", "x"))
        (bin_dir / name).write_text("#!/bin/sh\n" + body + "\n")
        (bin_dir / name).chmod(0o755)
    proc = subprocess.run(["/bin/sh", "-c", run], env=dict(args, PATH="%s:/usr/bin:/bin" % bin_dir),
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode != 0 and "codex --version did not report" in proc.stderr


def test_npm_fetch_refuses_a_tarball_with_another_hash(tmp_path):
    """files/perry-npm-fetch with npm standing in (writes a tarball): a wrong pin fails and removes the file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "npm").write_text('#!/bin/sh\nwhile [ "$1" != "--pack-destination" ]; do shift; done\n'
                                 'printf tarball > "$2/x-1.0.0.tgz"; echo \'[{"filename": "x-1.0.0.tgz"}]\'\n')
    (bin_dir / "npm").chmod(0o755)
    env = dict(os.environ, PATH="%s:%s" % (bin_dir, os.environ["PATH"]))
    fetch = os.path.join(ROLE, "files", "perry-npm-fetch")
    good = "sha512-" + subprocess.run("printf tarball | openssl dgst -sha512 -binary | base64 -w0", shell=True,
                                      capture_output=True, text=True, check=True).stdout
    ok = subprocess.run([fetch, "x@1.0.0", good, str(tmp_path / "d")], env=env, capture_output=True, text=True, timeout=30, check=False)
    assert ok.returncode == 0 and ok.stdout.strip() == str(tmp_path / "d" / "x-1.0.0.tgz")
    bad = subprocess.run([fetch, "x@1.0.0", "sha512-" + "A" * 86 + "==", str(tmp_path / "e")], env=env,
                         capture_output=True, text=True, timeout=30, check=False)
    assert bad.returncode == 1 and "the role pins" in bad.stderr and not (tmp_path / "e" / "x-1.0.0.tgz").exists()
    noint = subprocess.run([fetch, "x@1.0.0", "", str(tmp_path / "f")], env=env, capture_output=True, text=True, timeout=30, check=False)
    assert noint.returncode == 1 and "must be sha512-" in noint.stderr
