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
        # The secret really is on this host (in the workspace's secrets file, not the container's config) ...
        assert secret in TOPO.cli("exec", container, "cat", "/home/workspace/.config/perry/secrets.env").stdout
        seed_sessions(container)
        dup = hand_made_duplicate(prefix, container)
        yield {"name": name, "container": container, "secret": secret, "role_vars": role_vars, "prefix": prefix,
               "stopped": stopped["name"], **dup}
    finally:
        for ws in (name, stopped["name"]):
            run_module("perry.fleet.perry_workspace", {"name": ws, "state": "absent", "purge": True}, TOPO, timeout=300)
        TOPO.cleanup(prefix)
        TOPO.cli("rmi", "localhost/%sdrift:latest" % prefix, "localhost/%sempty:latest" % prefix, check=False)


def hand_made_duplicate(prefix: str, container: str) -> dict:
    """A stopped managed-labelled container created by hand on the SSH host port of ``container`` (as a second
    run or an operator might), from an image name that is then re-tagged to another image (drift)."""
    binding = TOPO.inspect(container)["HostConfig"]["PortBindings"]["22/tcp"][0]
    address, port = binding.get("HostIp") or "0.0.0.0", int(binding["HostPort"])
    name = prefix + "dup"
    drift_name = "localhost/%sdrift:latest" % prefix
    must(TOPO.cli("tag", WORKSPACE_IMAGE, drift_name, check=False), "tag")
    must(TOPO.cli("create", "--name", "workspace-" + name, "-p", "%s:%d:22" % (address, port),
                  "--label", "workspace.managed=true", "--label", "workspace.name=" + name,
                  "--memory", "256m", "--pids-limit", "64", drift_name, check=False), "create the duplicate")
    # Another image under the same name: an empty one (no labels, so nobody's image role can adopt it).
    must(subprocess.run("tar cf - -T /dev/null | podman import - localhost/%sempty:latest" % prefix, shell=True,
                        capture_output=True, text=True, timeout=120, check=False), "import an empty image")
    must(TOPO.cli("tag", "localhost/%sempty:latest" % prefix, drift_name, check=False), "re-tag")
    return {"dup": name, "dup_port": port, "dup_address": address}


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
    assert ws["running"] and ws["healthy"] and ws["ok"] and ws["error"] is None and ws["reason"] is None, ws
    assert ws["state"] == "running" and ws["health"] == "healthy" and ws["details"] == [], ws
    assert ws["container"] == fleet["container"] and ws["image"] == WORKSPACE_IMAGE and ws["image_id"]
    assert isinstance(ws["ssh_port"], int) and 2200 <= ws["ssh_port"] <= 2400, ws
    assert isinstance(ws["worker_port"], int) and 7392 <= ws["worker_port"] <= 7500, ws
    assert ws["version"] and ws["transport"] == "published", ws
    assert ws["session_count"] == 2 and ws["sessions_by_agent"] == {"claude-code": 1, "codex": 1}, ws
    assert sorted(t["title"] for t in ws["newest_titles"]) == sorted([CLAUDE_TITLE, CODEX_TITLE]), ws
    assert ws["last_activity"] > 1.7e12 and re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", ws["last_activity_utc"]), ws
    assert ws["ssh_command"] == "ssh -p %d workspace@%s" % (ws["ssh_port"], fleet["dup_address"]), ws
    assert ws["image_drift"] is False and ws["uptime_seconds"] is not None and 0 <= ws["uptime_seconds"] < 3600, ws
    assert ws["limits_text"], ws
    down = our_workspace(data, fleet["stopped"])
    assert not down["running"] and not down["ok"] and down["error"] == "not running", down
    assert down["state"] == "stopped" and down["health"] is None and down["last_activity_utc"] == "-", down
    assert down["session_count"] is None and down["sessions_by_agent"] == {}, down
    # The hand-made container: stopped, on the running workspace's SSH port (both flagged), on a drifted image.
    dup = our_workspace(data, fleet["dup"])
    assert dup["state"] == "stopped" and dup["ssh_port"] == fleet["dup_port"] == ws["ssh_port"], dup
    assert {"port": ws["ssh_port"], "kind": "ssh", "workspace": fleet["name"], "other_kind": "ssh"} in dup["port_conflicts"]
    assert [p["workspace"] for p in ws["port_conflicts"]] == [fleet["dup"]], ws
    assert dup["image_drift"] is True and dup["image_current_id"] != dup["image_id"], dup
    assert dup["limits"] == {"memory": 256 * 1024 * 1024, "cpus": None, "pids": 64}, dup
    assert data["summary"]["stopped"] == len([w for w in (everything_in(data)) if w["state"] in ("stopped", "paused")]) >= 2
    assert data["summary"]["port_conflicts"] >= 2 and data["summary"]["image_drift"] >= 1
    order = [w["name"] for w in data["hosts"][0]["workspaces"]]
    assert order.index(fleet["stopped"]) < order.index(fleet["name"]), order
    everything = [w for h in data["hosts"] for w in h["workspaces"]]
    summary = data["summary"]
    assert summary["unhealthy"] == len([w for w in everything if w["health"] == "unhealthy"])
    assert summary["unknown"] == len([w for w in everything if w["health"] == "unknown"])
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
    assert "1970-01-01" not in page and "1970-01-01" not in json.dumps(data)
    return ws


def everything_in(data: dict) -> list:
    return [w for h in data["hosts"] for w in h["workspaces"]]


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


def cell(row: dict, col: str) -> dict:
    found = [c for c in row["children"] if c["tag"] == "td" and c["attrs"].get("data-col") == col]
    assert len(found) == 1, (col, row["attrs"])
    return found[0]


def below(node: dict, tag: str | None = None, cls: str | None = None) -> list:
    out, stack = [], list(node["children"])
    while stack:
        n = stack.pop(0)
        if (tag is None or n["tag"] == tag) and (cls is None or cls in n["attrs"].get("class", "").split()):
            out.append(n)
        stack.extend(n["children"])
    return out


def check_dom(dom: Dom, data: dict, fleet: dict) -> None:
    name, stopped = fleet["name"], fleet["stopped"]
    assert dom.find("body")[0]["attrs"].get("data-js") == "ready", "the page's script did not run"
    summary = data["summary"]
    for key in ("hosts", "workspaces", "healthy", "unhealthy", "stopped", "sessions", "port_conflicts", "image_drift"):
        node = dom.find(id="sum-" + key.replace("_", "-"))
        assert len(node) == 1, key
        assert text_of(node[0]) == str(summary[key]) == node[0]["attrs"]["data-value"], (key, node[0], summary)
    shown = text_of(dom.find(id="summary")[0])
    assert re.search(r"\b%d workspaces? · %d healthy · %d unhealthy · (%d unknown · )?%d stopped · %d sessions?\b" % (
        summary["workspaces"], summary["healthy"], summary["unhealthy"], summary["unknown"], summary["stopped"],
        summary["sessions"]), shown), shown
    budgets = text_of(dom.find(id="budgets")[0])
    assert "health 10.0 s" in budgets and "session listing 15.0 s" in budgets and "engine command 60.0 s" in budgets
    bars = {g["attrs"]["data-agent"]: g for g in dom.find("g", **{"class": "bar"})}
    assert set(bars) == set(summary["sessions_by_agent"]), (list(bars), summary)
    for agent, count in summary["sessions_by_agent"].items():
        assert bars[agent]["attrs"]["data-count"] == str(count)
        texts = [text_of(t) for t in bars[agent]["children"] if t["tag"] == "text"]
        assert texts == [agent, str(count)], texts
        # The value label is not clipped: it ends inside the chart (8 px per digit is generous at 12 px).
        value = [t for t in bars[agent]["children"] if t["tag"] == "text"][1]
        width = float(dom.find("svg", id="agent-chart")[0]["attrs"]["width"])
        assert float(value["attrs"]["x"]) + 8 * len(str(count)) <= width, (value["attrs"], width)
    row = dom.find("tr", data_workspace=name)
    assert len(row) == 1
    assert text_of(cell(row[0], "status")).startswith("OK") and "good" in row[0]["attrs"]["class"]
    assert not below(cell(row[0], "status"), "details")
    assert text_of(cell(row[0], "sessions")) == "2"
    agents = {s["attrs"]["data-agent"]: text_of(s) for s in below(cell(row[0], "agents"), "span", "agent")}
    assert agents == {"claude-code": "claude-code 1", "codex": "codex 1"}, agents
    titles = text_of(cell(row[0], "titles"))
    assert CLAUDE_TITLE in titles and CODEX_TITLE in titles
    ws = our_workspace(data, name)
    ssh = below(cell(row[0], "ssh"), "code", "ssh")
    assert [text_of(c) for c in ssh] == ["ssh -p %d workspace@%s" % (ws["ssh_port"], fleet["dup_address"])]
    assert re.match(r"^\d+[smhd]", text_of(cell(row[0], "uptime"))), text_of(cell(row[0], "uptime"))
    # The duplicate port is flagged in red on both rows, each naming the other workspace.
    dup = dom.find("tr", data_workspace=fleet["dup"])
    assert len(dup) == 1 and dup[0]["attrs"]["data-status"] == "stopped"
    for r, other in ((row[0], fleet["dup"]), (dup[0], name)):
        c = cell(r, "ssh")
        assert "conflict" in c["attrs"]["class"]
        flags = below(c, "div", "portdup")
        assert [(f["attrs"]["data-port"], f["attrs"]["data-other"]) for f in flags] == [(str(fleet["dup_port"]), other)]
        assert text_of(flags[0]) == "port %d also used by %s" % (fleet["dup_port"], other)
    assert below(cell(dup[0], "image"), "div", "drift") and not below(cell(row[0], "image"), "div", "drift")
    assert [text_of(d) for d in below(cell(dup[0], "limits"), "div", "lim")] == ["mem 256 MiB", "64 pids"]
    assert text_of(cell(dup[0], "last")) == "-" and text_of(cell(dup[0], "uptime")) == "-"
    down = dom.find("tr", data_workspace=stopped)
    assert len(down) == 1 and "bad" in down[0]["attrs"]["class"]
    status = cell(down[0], "status")["children"]
    assert [(n["attrs"]["class"], text_of(n)) for n in status] == [("badge bad", "STOPPED"), ("reason", "not running")]
    # Rows that are not OK are marked and listed first.
    for table in dom.find("table"):
        rows = [n for n in dom.all if n["tag"] == "tr" and "data-workspace" in n["attrs"] and _inside(n, table)]
        marks = ["good" not in r["attrs"]["class"] for r in rows]
        assert marks == sorted(marks, reverse=True), marks
        for r in rows:
            if "good" not in r["attrs"]["class"]:
                assert re.match(r"^(UNHEALTHY|UNKNOWN|STOPPED|PAUSED|MISSING)", text_of(r["children"][0]))
    assert "1970-01-01" not in text_of(dom.root)


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

    check_dom(rendered(page_path), data, fleet)

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
            counts = [float(cell(r, "sessions")["attrs"]["data-v"]) for r in rows]
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


def test_report_unknown_when_its_health_budget_is_short_unhealthy_when_the_worker_is_down(fleet, tmp_path):
    """With a health budget too short for any answer, the live worker (it lists its sessions) is UNKNOWN, with the
    budgets printed; a running workspace without a worker is UNHEALTHY with a one-line reason whose full text and
    engine commands sit in a collapsed <details>."""
    sick = fleet["prefix"] + "sick"
    must(TOPO.cli("run", "-d", "--name", "workspace-" + sick, "--label", "workspace.managed=true",
                  "--label", "workspace.name=" + sick, "--entrypoint", "sleep", WORKSPACE_IMAGE, "600", check=False),
         "a running workspace without a worker")
    try:
        out_dir = str(tmp_path / "report")
        res = ansible_playbook("playbooks/report.yml", "-e", "runtime=podman", "-e", "perry_report_dir=" + out_dir,
                               "-e", "perry_report_health_timeout=0.05",
                               "-e", "perry_report_transport=exec")  # a loopback HTTP answer can beat 50 ms
        assert res.returncode == 0, res.stdout[-4000:]
        data, page = load(out_dir)
    finally:
        TOPO.cli("rm", "-f", "-t", "0", "workspace-" + sick, check=False)
    assert data["budgets"] == {"health_timeout": 0.05, "request_timeout": 15.0, "engine_timeout": 60.0}
    live = our_workspace(data, fleet["name"])
    assert live["health"] == "unknown" and live["status"] == "unknown" and not live["ok"], live
    assert live["session_count"] == 2 and "perry_report_health_timeout" in live["reason"], live
    down = our_workspace(data, sick)
    assert down["health"] == "unhealthy" and down["running"] and down["session_count"] is None, down
    assert down["reason"] and "\n" not in down["reason"] and len(down["reason"]) <= 162, down
    assert {d["what"] for d in down["details"]} >= {"health", "sessions", "engine commands"}, down["details"]
    assert "workspace-" + sick in [d for d in down["details"] if d["what"] == "engine commands"][0]["text"]
    assert data["summary"]["unknown"] >= 1 and data["summary"]["unhealthy"] >= 1
    assert fleet["secret"] not in page and fleet["secret"] not in json.dumps(data)

    dom = rendered(os.path.join(out_dir, "report.html"))
    assert "health 0.05 s" in text_of(dom.find(id="budgets")[0])
    assert text_of(dom.find(id="sum-unknown")[0]) == str(data["summary"]["unknown"])
    for ws, badge in ((fleet["name"], "UNKNOWN"), (sick, "UNHEALTHY")):
        (row,) = dom.find("tr", data_workspace=ws)
        status = cell(row, "status")
        assert text_of(below(status, "span", "badge")[0]) == badge
        (reason,) = below(status, "div", "reason")
        assert text_of(reason) == " ".join(our_workspace(data, ws)["reason"].split())
    (row,) = dom.find("tr", data_workspace=sick)
    (details,) = below(cell(row, "status"), "details")
    assert "open" not in details["attrs"], "details must be collapsed by default"
    assert [text_of(s) for s in below(details, "summary")] == ["details"]
    assert "workspace-" + sick in text_of(details)
    # The live workspace's failed /health is in its details too, collapsed; its sessions are still shown.
    (row,) = dom.find("tr", data_workspace=fleet["name"])
    assert text_of(cell(row, "sessions")) == "2"
    assert "1970-01-01" not in text_of(dom.root)
