"""playbooks/report.yml end to end on rootful podman, checked in a real headless browser.

A workspace with a secret is provisioned with the workspace role, a Claude Code and a Codex session are seeded in
its home, and the report is written twice: once in the same run as the workspace role (from its
perry_workspace_report fact) and once alone (discovery by label). The page is then opened by Debian's chromium
(--dump-dom to read the rendered DOM, --screenshot for artifacts/report/screenshot.png); the numbers it shows must
be report.json's, and the secret must be in neither file.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import struct
import subprocess
import tempfile
from html.parser import HTMLParser

import pytest

from topology import REPO, TOPOLOGIES, WORKSPACE_IMAGE, build_workspace_image, random_prefix, run_module, run_playbook, venv_bin

TOPO = TOPOLOGIES["podman-rootful"]
ARTIFACT_DIR = os.path.join(REPO, "artifacts", "report")
CLAUDE_TITLE = "Report test: hello from Claude"
CODEX_TITLE = "Report test: fix the codex bug"
CODEX_ID = "0199a1b2-c3d4-7e5f-8a9b-00000000beef"


def must(res: subprocess.CompletedProcess, what: str) -> str:
    if res.returncode != 0:
        pytest.fail("%s failed (rc=%d): %s" % (what, res.returncode, (res.stderr or res.stdout)[-3000:]))
    return res.stdout


def seed_sessions(container: str) -> None:
    """One Claude Code JSONL and one Codex rollout, in the shapes worker/test/ feeds the worker."""
    claude = "\n".join(json.dumps(x) for x in (
        {"type": "user", "message": {"role": "user", "content": [{"type": "text", "text": CLAUDE_TITLE}]},
         "timestamp": "2026-01-01T00:00:00.000Z"},
        {"type": "assistant", "message": {"role": "assistant", "content": [{"type": "text", "text": "Hi!"}]},
         "timestamp": "2026-01-01T00:00:01.000Z"},
    )) + "\n"
    codex = "\n".join(json.dumps(x) for x in (
        {"timestamp": "2026-01-01T10:00:00Z", "type": "session_meta",
         "payload": {"id": CODEX_ID, "cwd": "/home/workspace/codexproj"}},
        {"timestamp": "2026-01-01T10:00:02Z", "type": "response_item",
         "payload": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": CODEX_TITLE}]}},
        {"timestamp": "2026-01-01T10:00:06Z", "type": "response_item",
         "payload": {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Done."}]}},
    )) + "\n"
    files = {
        ".claude/projects/-home-workspace-proj/report-claude.jsonl": claude,
        ".codex/sessions/2026/01/01/rollout-x.jsonl": codex,
    }
    for rel, text in files.items():
        must(TOPO.cli("exec", "-i", "-u", "workspace", container, "sh", "-c",
                      'mkdir -p "$(dirname "$1")" && base64 -d > "$1"', "sh", "/home/workspace/" + rel,
                      input=base64.b64encode(text.encode()).decode(), check=False, timeout=60), "seed " + rel)


def ansible_playbook(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default")
    return subprocess.run([venv_bin("ansible-playbook")] + list(args), cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def fleet():
    """A provisioned workspace with a secret and two seeded sessions; removed (purged) afterwards."""
    image = build_workspace_image(TOPO)
    prefix = random_prefix()
    name = prefix + "report"
    secret = "perry-report-secret-" + secrets.token_hex(12)
    entry = {"name": name, "secret_env": {"PERRY_REPORT_SECRET": secret}}
    stopped = {"name": prefix + "stopped", "state": "stopped"}  # must be listed first and marked
    role_vars = {"perry_workspace_runtime": "podman", "perry_workspace_image": image,
                 "perry_workspace_list": [entry, stopped]}
    try:
        out = run_playbook([{"name": "workspace", "ansible.builtin.include_role": {"name": "perry.fleet.workspace"}}],
                           extra_vars=role_vars, timeout=1200)
        assert out["rc"] == 0, out["stdout"][-4000:]
        container = "workspace-" + name
        # The secret really is on this host (the engine keeps it in the container's config) ...
        assert secret in TOPO.cli("container", "inspect", container).stdout
        seed_sessions(container)
        yield {"name": name, "container": container, "secret": secret, "role_vars": role_vars, "prefix": prefix,
               "stopped": stopped["name"]}
    finally:
        for ws in (name, stopped["name"]):
            run_module("perry.fleet.perry_workspace", {"name": ws, "state": "absent", "purge": True}, TOPO, timeout=300)
        TOPO.cleanup(prefix)


def load(directory: str) -> tuple:
    with open(os.path.join(directory, "report.json")) as fh:
        data = json.load(fh)
    with open(os.path.join(directory, "report.html")) as fh:
        page = fh.read()
    return data, page


def our_workspace(data: dict, name: str) -> dict:
    found = [w for h in data["hosts"] for w in h["workspaces"] if w["name"] == name]
    assert len(found) == 1, json.dumps(data, indent=1)[-3000:]
    return found[0]


def check_report(data: dict, page: str, fleet: dict) -> dict:
    ws = our_workspace(data, fleet["name"])
    assert ws["running"] and ws["healthy"] and ws["ok"] and ws["error"] is None, ws
    assert ws["container"] == fleet["container"] and ws["image"] == WORKSPACE_IMAGE and ws["image_id"]
    assert isinstance(ws["ssh_port"], int) and 2200 <= ws["ssh_port"] <= 2400, ws
    assert isinstance(ws["worker_port"], int) and 7392 <= ws["worker_port"] <= 7500, ws
    assert ws["version"] and ws["transport"] == "exec", ws
    assert ws["session_count"] == 2 and ws["sessions_by_agent"] == {"claude-code": 1, "codex": 1}, ws
    assert sorted(t["title"] for t in ws["newest_titles"]) == sorted([CLAUDE_TITLE, CODEX_TITLE]), ws
    assert ws["last_activity"] > 1.7e12 and re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", ws["last_activity_utc"]), ws
    down = our_workspace(data, fleet["stopped"])
    assert not down["running"] and not down["ok"] and down["error"] == "not running", down
    assert down["session_count"] is None and down["sessions_by_agent"] == {}, down
    order = [w["name"] for w in data["hosts"][0]["workspaces"]]
    assert order.index(fleet["stopped"]) < order.index(fleet["name"]), order
    everything = [w for h in data["hosts"] for w in h["workspaces"]]
    summary = data["summary"]
    assert summary["unhealthy"] == len([w for w in everything if not w["ok"]]) >= 1
    assert summary["hosts"] == len(data["hosts"]) == 1 and data["hosts"][0]["host"] == "localhost"
    assert summary["workspaces"] == len(everything)
    assert summary["healthy"] == len([w for w in everything if w["ok"]])
    assert summary["sessions"] == sum(w["session_count"] or 0 for w in everything)
    # Unhealthy workspaces come first on every host.
    for host in data["hosts"]:
        oks = [w["ok"] for w in host["workspaces"]]
        assert oks == sorted(oks), host
    # Secrets never appear; neither do environment values or labels (the report carries only its fields).
    for text in (json.dumps(data), page):
        assert fleet["secret"] not in text
        assert "PERRY_REPORT_SECRET" not in text
    # Self-contained: no external stylesheet, script, image, font or link; a CSP forbids any load.
    assert not re.search(r"""(?:\bsrc|\bhref)\s*=|<link\b|@import|url\(""", page, re.I), "external reference in the page"
    assert "default-src 'none'" in page
    return ws


# ------------------------------------------------------------------------------------- browser
class Dom(HTMLParser):
    """Just enough of a DOM: every element with its attributes, text and children."""

    VOID = {"meta", "br", "img", "input", "link", "hr", "rect", "path", "circle", "line"}

    def __init__(self, text: str):
        super().__init__()
        self.root = {"tag": "#root", "attrs": {}, "children": [], "text": ""}
        self.stack = [self.root]
        self.all = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        node = {"tag": tag, "attrs": dict(attrs), "children": [], "text": ""}
        self.stack[-1]["children"].append(node)
        self.all.append(node)
        if tag not in self.VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag, attrs):
        node = {"tag": tag, "attrs": dict(attrs), "children": [], "text": ""}
        self.stack[-1]["children"].append(node)
        self.all.append(node)

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i]["tag"] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data):
        for node in self.stack:
            node["text"] += data

    def find(self, tag=None, **attrs):
        return [n for n in self.all if (tag is None or n["tag"] == tag)
                and all(n["attrs"].get(k.replace("_", "-")) == v for k, v in attrs.items())]


def chromium(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    binary = shutil.which("chromium")
    if not binary:
        pytest.fail("Debian's chromium is not installed: scripts/setup-testbed must `apt-get install -y chromium`")
    profile = tempfile.mkdtemp(prefix="perry-chromium-")
    try:
        argv = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-extensions", "--host-resolver-rules=MAP * ~NOTFOUND", "--user-data-dir=" + profile]
        return subprocess.run(argv + list(args), capture_output=True, text=True, timeout=timeout, check=False,
                              env=dict(os.environ, HOME=profile), start_new_session=True)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def rendered(page_path: str, fragment: str = "") -> Dom:
    res = chromium("--dump-dom", "file://" + page_path + fragment)
    assert res.returncode == 0 and "</html>" in res.stdout, (res.returncode, res.stderr[-2000:])
    return Dom(res.stdout)


def text_of(node) -> str:
    return " ".join(node["text"].split())


def check_dom(dom: Dom, data: dict, name: str, stopped: str) -> None:
    assert dom.find("body")[0]["attrs"].get("data-js") == "ready", "the page's script did not run"
    summary = data["summary"]
    for key in ("hosts", "workspaces", "healthy", "unhealthy", "sessions"):
        node = dom.find(id="sum-" + key)
        assert len(node) == 1, key
        assert text_of(node[0]) == str(summary[key]) == node[0]["attrs"]["data-value"], (key, node[0], summary)
    shown = text_of(dom.find(id="summary")[0])
    assert re.search(r"\b%d workspaces? · %d healthy · %d unhealthy · %d sessions?\b" % (
        summary["workspaces"], summary["healthy"], summary["unhealthy"], summary["sessions"]), shown), shown
    bars = {g["attrs"]["data-agent"]: g for g in dom.find("g", **{"class": "bar"})}
    assert set(bars) == set(summary["sessions_by_agent"]), (list(bars), summary)
    for agent, count in summary["sessions_by_agent"].items():
        assert bars[agent]["attrs"]["data-count"] == str(count)
        texts = [text_of(t) for t in bars[agent]["children"] if t["tag"] == "text"]
        assert texts == [agent, str(count)], texts
    row = dom.find("tr", data_workspace=name)
    assert len(row) == 1
    cells = [c for c in row[0]["children"] if c["tag"] == "td"]
    assert text_of(cells[0]).startswith("OK") and "good" in row[0]["attrs"]["class"]
    assert text_of(cells[7]) == "2"
    agents = {s["attrs"]["data-agent"]: text_of(s) for s in dom.find("span", **{"class": "agent"})
              if s in cells[8]["children"]}
    assert agents == {"claude-code": "claude-code 1", "codex": "codex 1"}, agents
    assert CLAUDE_TITLE in text_of(cells[10]) and CODEX_TITLE in text_of(cells[10])
    down = dom.find("tr", data_workspace=stopped)
    assert len(down) == 1 and "bad" in down[0]["attrs"]["class"]
    status = down[0]["children"][0]["children"]
    assert [(n["attrs"]["class"], text_of(n)) for n in status] == [("badge bad", "STOPPED"), ("err", "not running")]
    # Rows that are not OK are marked and listed first.
    for table in dom.find("table"):
        rows = [n for n in dom.all if n["tag"] == "tr" and "data-workspace" in n["attrs"] and _inside(n, table)]
        marks = ["bad" in r["attrs"]["class"] for r in rows]
        assert marks == sorted(marks, reverse=True), marks
        for r in rows:
            if "bad" in r["attrs"]["class"]:
                assert re.match(r"^(UNHEALTHY|STOPPED)", text_of(r["children"][0])), text_of(r["children"][0])


def _inside(node, ancestor) -> bool:
    stack = list(ancestor["children"])
    while stack:
        n = stack.pop()
        if n is node:
            return True
        stack.extend(n["children"])
    return False


def png_size(path: str) -> tuple:
    with open(path, "rb") as fh:
        head = fh.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", head[16:24])


# ------------------------------------------------------------------------------------- tests
def test_report_from_the_workspace_roles_fact(fleet, tmp_path):
    """site.yml-style run: workspace role then playbooks/report.yml in one ansible-playbook run."""
    workspaces = {"name": "Workspaces", "hosts": "perry_hosts", "gather_facts": False,
                  "roles": [{"role": "perry.fleet.workspace", "vars": fleet["role_vars"]}]}
    play = [workspaces, {"ansible.builtin.import_playbook": os.path.join(REPO, "playbooks", "report.yml")}]
    path = tmp_path / "site-and-report.yml"
    path.write_text(json.dumps(play))
    out_dir = str(tmp_path / "report")
    res = ansible_playbook(str(path), "-e", "runtime=podman", "-e", "perry_report_dir=" + out_dir)
    assert res.returncode == 0, res.stdout[-4000:]
    data, page = load(out_dir)
    assert data["hosts"][0]["source"] == "workspace role"
    ws = check_report(data, page, fleet)
    assert ws["name"] == fleet["name"]
    assert fleet["secret"] not in res.stdout + res.stderr


def test_report_discovered_in_browser(fleet):
    """playbooks/report.yml alone (discovery by label) into ./artifacts/report/, opened by headless chromium."""
    for stale in ("report.json", "report.html", "screenshot.png"):
        if os.path.exists(os.path.join(ARTIFACT_DIR, stale)):
            os.unlink(os.path.join(ARTIFACT_DIR, stale))
    res = ansible_playbook("playbooks/report.yml", "-e", "runtime=podman")
    assert res.returncode == 0, res.stdout[-4000:]
    assert fleet["secret"] not in res.stdout + res.stderr
    data, page = load(ARTIFACT_DIR)
    assert data["hosts"][0]["source"] == "discovered"
    check_report(data, page, fleet)
    page_path = os.path.join(ARTIFACT_DIR, "report.html")

    check_dom(rendered(page_path), data, fleet["name"], fleet["stopped"])

    # Sorting is the page's own JavaScript (#sort=<key>:<dir> runs the same code as a header click).
    for key, direction in (("name", "desc"), ("name", "asc"), ("sessions", "desc")):
        dom = rendered(page_path, "#sort=%s:%s" % (key, direction))
        th = dom.find("th", data_key=key)
        assert th and all(t["attrs"].get("aria-sort") == direction + "ending" for t in th)
        rows = [r for r in dom.find("tr") if "data-workspace" in r["attrs"]]
        if key == "name":
            names = [r["attrs"]["data-workspace"] for r in rows]
            assert names == sorted(names, reverse=direction == "desc"), names
        else:
            counts = [float(r["children"][7]["attrs"]["data-v"]) for r in rows]
            assert counts == sorted(counts, reverse=True), counts

    shot = os.path.join(ARTIFACT_DIR, "screenshot.png")
    res = chromium("--screenshot=" + shot, "--window-size=1366,900", "--hide-scrollbars", "file://" + page_path)
    assert res.returncode == 0 and os.path.exists(shot), res.stderr[-2000:]
    assert png_size(shot) == (1366, 900)
    assert os.path.getsize(shot) > 10000, "screenshot looks blank"


def test_report_lists_an_unreachable_host_under_strategy_free(fleet, tmp_path):
    """A host that cannot be reached is listed with an error; the others are all reported (strategy free)."""
    inventory = tmp_path / "fleet.yml"
    inventory.write_text(json.dumps({"perry_hosts": {"hosts": {
        "localhost": {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"},
        # Nothing listens on port 1 of the loopback: unreachable at once.
        "dead-host": {"ansible_host": "127.0.0.1", "ansible_port": 1, "ansible_connection": "ssh",
                      "ansible_ssh_common_args": "-o ConnectTimeout=5 -o BatchMode=yes"}}}}))
    out_dir = str(tmp_path / "report")
    env = dict(os.environ, ANSIBLE_STRATEGY="free")
    res = subprocess.run([venv_bin("ansible-playbook"), "-i", str(inventory), "playbooks/report.yml", "-e", "runtime=podman",
                          "-e", "perry_report_dir=" + out_dir], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=600, check=False)
    assert res.returncode == 4, (res.returncode, res.stdout[-4000:])  # 4: a host was unreachable
    data, page = load(out_dir)
    assert [h["host"] for h in data["hosts"]] == ["dead-host", "localhost"]
    dead, alive = data["hosts"]
    assert dead["error"] and dead["workspaces"] == [] and alive["error"] is None
    assert data["summary"]["hosts"] == 2 and data["summary"]["hosts_failed"] == 1
    assert our_workspace(data, fleet["name"])["session_count"] == 2
    assert 'id="sum-hosts-failed"' in page and dead["error"] in page
