# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Day-two decisions of the lifecycle playbooks, the idle stop, the capacity preflight and the metrics file, as pure
functions of the modules' results (no I/O), so that each rule lives once and is unit-tested."""

from __future__ import annotations

import fnmatch
import math
import re

from ansible.errors import AnsibleFilterError

from ansible_collections.perry.fleet.plugins.filter.perry import parse_started_at

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)i?b?\s*$", re.I)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.I)
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


# ------------------------------------------------------------------------------------------------ selection
def selection_patterns(value) -> list:
    """``-e workspaces=a,b`` (a string), a YAML list, or nothing -> a list of names / glob patterns."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(x).strip() for x in items if str(x).strip()]


def select_workspaces(info, patterns=None, labelled=None) -> list:
    """Names of the workspaces in ``info`` (perry_workspace_info's list) matching any of ``patterns`` (names or
    fnmatch globs; ``*`` = all) and, when ``labelled`` is a list (containers the label filter found), in it."""
    pats = selection_patterns(patterns)
    keep = None if labelled is None else set(str(x).lstrip("/") for x in labelled)
    out = []
    for w in info or []:
        name, container = str(w.get("name")), str(w.get("container") or "workspace-" + str(w.get("name")))
        if pats and not any(fnmatch.fnmatchcase(name, p) for p in pats):
            continue
        if keep is not None and container not in keep:
            continue
        out.append(name)
    return sorted(out)


def unmatched_patterns(info, patterns=None) -> list:
    """The literal names (no glob characters) asked for that this host does not have: reported, never fatal (a
    fleet's hosts hold different workspaces)."""
    names = set(str(w.get("name")) for w in info or [])
    return [p for p in selection_patterns(patterns) if not any(c in p for c in "*?[") and p not in names]


# ------------------------------------------------------------------------------------------------ units
def parse_size(value) -> int | None:
    """``4g``, ``512m``, ``1.5GiB``, ``1073741824`` -> bytes (binary units, as the engines read ``--memory``)."""
    if value is None or str(value).strip() == "":
        return None
    m = _SIZE_RE.match(str(value))
    if not m:
        raise AnsibleFilterError("memory size %r is not understood: use a number with an optional unit b, k, m, g "
                                 "or t (for example 4g or 512m)" % (value,))
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])


def parse_duration(value) -> float:
    """``90``, ``30m``, ``4h``, ``2d``, ``1w`` -> seconds."""
    m = _DURATION_RE.match(str(value if value is not None else ""))
    if not m:
        raise AnsibleFilterError("duration %r is not understood: use a number with an optional unit s, m, h, d or w "
                                 "(for example 4h or 2d)" % (value,))
    return float(m.group(1)) * _DURATION_UNITS[m.group(2).lower()]


def format_size(n) -> str:
    """Bytes -> the largest whole binary unit the engines accept (``4g``, ``1536m``)."""
    n = int(n)
    for unit, size in (("g", 1024 ** 3), ("m", 1024 ** 2), ("k", 1024)):
        if n >= size and n % size == 0:
            return "%d%s" % (n // size, unit)
    return "%dm" % max(1, n // (1024 ** 2)) if n >= 1024 ** 2 else "%db" % n


# ------------------------------------------------------------------------------------------------ capacity
def capacity_plan(wanted, budget=None, existing=None, default_state="started") -> dict:
    """Check a converge against a host budget before anything is created, and give every workspace limits.

    ``wanted``: the role's workspace entries; ``budget``: {memory, cpus, workspaces} (any may be empty = no limit);
    ``existing``: names of managed workspaces already on the host. Workspaces on the host that the run does not
    name still count (at the default share: their actual limits are the engine's business). Returns ``ok``,
    ``msg`` (the numbers), ``totals``, ``defaults`` and ``workspaces`` (entries with memory/cpus filled in)."""
    b = dict(budget or {})
    mem_budget = parse_size(b.get("memory"))
    cpu_budget = float(b["cpus"]) if b.get("cpus") not in (None, "") else None
    count_budget = int(b["workspaces"]) if b.get("workspaces") not in (None, "") else None
    for key, v in (("memory", mem_budget), ("cpus", cpu_budget), ("workspaces", count_budget)):
        if v is not None and v <= 0:
            raise AnsibleFilterError("perry_workspace_budget.%s must be greater than 0 (got %r)" % (key, b.get(key)))
    entries = [dict(w) for w in wanted or []]
    active = [w for w in entries if str(w.get("state") or default_state) != "absent"]
    names = set(str(w.get("name")) for w in active)
    removed = set(str(w.get("name")) for w in entries if str(w.get("state") or default_state) == "absent")
    others = sorted(set(str(x) for x in existing or []) - names - removed)
    count = len(active) + len(others)
    # The default share: the budget split over the budgeted count (or over the workspaces there will be).
    share_n = count_budget or max(count, 1)
    defaults = {
        "memory": format_size(mem_budget // share_n) if mem_budget else None,
        # Rounded down to 0.01 cpu (never 0), so the shares never add up to more than the budget.
        "cpus": max(math.floor(cpu_budget / share_n * 100) / 100, 0.01) if cpu_budget else None,
    }
    mem_total, cpu_total = 0, 0.0
    for w in active:
        if not w.get("memory") and defaults["memory"]:
            w["memory"] = defaults["memory"]
        if w.get("cpus") in (None, "") and defaults["cpus"]:
            w["cpus"] = defaults["cpus"]
        mem_total += parse_size(w.get("memory")) or 0
        cpu_total += float(w.get("cpus") or 0)
    mem_total += len(others) * (parse_size(defaults["memory"]) or 0)
    cpu_total += len(others) * (defaults["cpus"] or 0)
    problems = []
    if count_budget is not None and count > count_budget:
        problems.append("%d workspaces (%d in this run, %d others already on the host) > budget of %d"
                        % (count, len(active), len(others), count_budget))
    if mem_budget is not None and mem_total > mem_budget:
        problems.append("memory %s > budget %s" % (format_size(mem_total), format_size(mem_budget)))
    if cpu_budget is not None and cpu_total > cpu_budget + 1e-9:
        problems.append("cpus %g > budget %g" % (round(cpu_total, 3), cpu_budget))
    msg = ("; ".join(problems) + ". Raise perry_workspace_budget, lower the workspaces' memory/cpus or remove "
           "workspaces. Nothing was created.") if problems else "within budget"
    return {"ok": not problems, "msg": msg, "defaults": defaults, "workspaces": entries,
            "totals": {"workspaces": count, "memory": mem_total, "cpus": round(cpu_total, 3), "others": others},
            "budget": {"workspaces": count_budget, "memory": mem_budget, "cpus": cpu_budget}}


# ------------------------------------------------------------------------------------------------ sessions / idle
def _ms(value) -> int | None:
    try:
        n = float(value)
    except (TypeError, ValueError):
        return None
    return int(n) if math.isfinite(n) and n > 0 else None


def prune_candidates(sessions, older_than_days, now) -> list:
    """perry_sessions' flat ``sessions`` list -> those whose lastActivity is older than the cut-off, oldest first
    (a session without a time is kept: it cannot be judged)."""
    cut = (float(now) - float(older_than_days) * 86400) * 1000
    out = []
    for s in sessions or []:
        ms = _ms(s.get("last_activity"))
        if ms is not None and ms < cut:
            out.append({"workspace": s.get("workspace"), "id": s.get("id"), "agent_type": s.get("agent_type"),
                        "last_activity": ms, "title": s.get("title"), "age_days": round((float(now) * 1000 - ms) / 864e5, 1)})
    return sorted(out, key=lambda x: (x["last_activity"], str(x["workspace"]), str(x["id"])))


def ssh_connections(text) -> int:
    """Established TCP connections to local port 22 in /proc/net/tcp and tcp6 text (state 01)."""
    n = 0
    for line in str(text or "").splitlines():
        parts = line.split()
        if len(parts) < 4 or ":" not in parts[1]:
            continue
        if parts[1].rsplit(":", 1)[1].upper() == "0016" and parts[3] == "01":
            n += 1
    return n


def idle_plan(info, sessions=None, ssh=None, idle_after="4h", now=None, names=None, since_filtered=False) -> list:
    """Decide per running workspace whether it is idle: no agent session active (max lastActivity over all agents
    the worker indexes), no established SSH connection, and neither within ``idle_after``; the container's start
    counts as activity (a workspace started a minute ago is not idle). A workspace whose sessions or SSH state
    could not be read is never stopped. ``since_filtered``: ``sessions`` lists only sessions active since
    ``now - idle_after``. Returns one entry per running workspace (``stop``, ``reason``)."""
    limit = parse_duration(idle_after)
    now = float(now)
    by_ws = {}
    for w in sessions or []:
        by_ws[str(w.get("name"))] = w
    ssh = dict(ssh or {})
    wanted = None if names is None else set(names)
    out = []
    for w in info or []:
        name = str(w.get("name"))
        if not w.get("running") or (wanted is not None and name not in wanted):
            continue
        s = by_ws.get(name)
        entry = {"name": name, "container": w.get("container"), "stop": False, "ssh_connections": ssh.get(name),
                 "last_session_activity": None, "started_at": w.get("started_at")}
        if not s or not s.get("ok"):
            entry["reason"] = "kept: sessions could not be read (%s)" % ((s or {}).get("error") or "no answer")
            out.append(entry)
            continue
        if ssh.get(name) is None:
            entry["reason"] = "kept: SSH connections could not be read"
            out.append(entry)
            continue
        # The listing may be filtered to sessions active since the cut-off (perry_sessions since=): then its
        # total says whether any is recent even when the page holds another workspace's sessions.
        last = max([_ms(x.get("last_activity")) or 0 for x in s.get("sessions") or []] + [0]) or None
        recent = int(s.get("total") or 0) if since_filtered else None
        entry["last_session_activity"] = last
        started = parse_started_at(w.get("started_at"))
        if int(ssh[name]) > 0:
            entry["reason"] = "kept: %d SSH connection(s)" % int(ssh[name])
        elif last is not None and now - last / 1000.0 < limit:
            entry["reason"] = "kept: agent session active %s ago" % _ago(now - last / 1000.0)
        elif recent:
            entry["reason"] = "kept: %s agent session(s) active within %s" % (recent, idle_after)
        elif started is not None and now - started < limit:
            entry["reason"] = "kept: started %s ago" % _ago(now - started)
        else:
            entry["stop"] = True
            if since_filtered:
                what = "no agent session activity within %s" % idle_after
            else:
                what = ("last agent session activity %s ago" % _ago(now - last / 1000.0)) if last else "no agent sessions"
            entry["reason"] = "idle: %s, no SSH connection, not started within %s" % (what, idle_after)
        out.append(entry)
    return out


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    d, rem = divmod(seconds, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    if d:
        return "%dd%dh" % (d, h)
    if h:
        return "%dh%dm" % (h, m)
    return "%dm%ds" % (m, s) if m else "%ds" % s


# ------------------------------------------------------------------------------------------------ metrics
def parse_oom(lines) -> dict:
    """``container|oom_kill count|OOMKilled`` lines -> {container: {"oom_kills": int|None, "oom_killed": bool}}."""
    out = {}
    for line in lines or []:
        parts = str(line).strip().split("|")
        if len(parts) != 3 or not parts[0]:
            continue
        count = parts[1].strip()
        out[parts[0].lstrip("/")] = {"oom_kills": int(count) if count.isdigit() else None,
                                     "oom_killed": parts[2].strip().lower() == "true"}
    return out


def _label(value) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _series(name: str, labels: dict, value) -> str:
    inner = ",".join('%s="%s"' % (k, _label(v)) for k, v in labels.items())
    if isinstance(value, bool):
        value = int(value)
    text = repr(float(value)) if isinstance(value, float) else str(int(value))
    return "%s{%s} %s" % (name, inner, text)


_STATES = ("running", "paused", "stopped", "missing")
_HEALTH = ("healthy", "unhealthy", "unknown")


def prometheus_metrics(report_host, info=None, oom=None, now=None) -> str:
    """One host's report (fleet_report_host) as Prometheus text exposition format (node_exporter's textfile
    collector reads it). ``info`` adds restart counts, ``oom`` (parse_oom lines) the OOM kills where readable."""
    host = str((report_host or {}).get("host") or "localhost")
    rows = list((report_host or {}).get("workspaces") or [])
    restarts = {str(w.get("name")): w.get("restart_count") for w in info or []}
    ooms = parse_oom(oom)
    fams = []

    def family(name, kind, help_text, samples):
        body = "".join(s + "\n" for s in samples)
        fams.append("# HELP %s %s\n# TYPE %s %s\n%s" % (name, help_text, name, kind, body))

    counts = dict((s, 0) for s in _STATES)
    for w in rows:
        counts[w.get("state") if w.get("state") in counts else "stopped"] += 1
    family("perry_workspaces", "gauge", "Perry workspaces on this host by state.",
           [_series("perry_workspaces", {"host": host, "state": s}, n) for s, n in counts.items()])
    family("perry_workspace_up", "gauge", "1 while the workspace's container runs.",
           [_series("perry_workspace_up", {"host": host, "workspace": w["name"]}, bool(w.get("running"))) for w in rows])
    health = []
    for w in rows:
        for h in _HEALTH:
            health.append(_series("perry_workspace_health", {"host": host, "workspace": w["name"], "health": h},
                                  w.get("health") == h))
    family("perry_workspace_health", "gauge", "Worker health of each running workspace (1 for its current state).",
           health)
    sessions = []
    for w in rows:
        for agent, n in sorted((w.get("sessions_by_agent") or {}).items()):
            sessions.append(_series("perry_workspace_sessions", {"host": host, "workspace": w["name"], "agent": agent}, n))
    family("perry_workspace_sessions", "gauge", "Coding-agent sessions per workspace and agent.", sessions)
    family("perry_workspace_last_activity_timestamp_seconds", "gauge",
           "Newest agent session activity of the workspace (Unix time).",
           [_series("perry_workspace_last_activity_timestamp_seconds", {"host": host, "workspace": w["name"]},
                    w["last_activity"] / 1000.0) for w in rows if w.get("last_activity")])
    family("perry_workspace_restarts_total", "counter", "Restarts of the container by the engine's restart policy.",
           [_series("perry_workspace_restarts_total", {"host": host, "workspace": w["name"]}, int(restarts[w["name"]]))
            for w in rows if isinstance(restarts.get(w["name"]), int)])
    family("perry_workspace_oom_kills_total", "counter",
           "Processes of the workspace killed by the kernel OOM killer (cgroup counter; absent where unreadable).",
           [_series("perry_workspace_oom_kills_total", {"host": host, "workspace": w["name"]},
                    ooms[w["container"]]["oom_kills"])
            for w in rows if ooms.get(str(w.get("container")), {}).get("oom_kills") is not None])
    family("perry_workspace_oom_killed", "gauge", "1 when the engine says the container's last exit was an OOM kill.",
           [_series("perry_workspace_oom_killed", {"host": host, "workspace": w["name"]},
                    ooms[w["container"]]["oom_killed"]) for w in rows if str(w.get("container")) in ooms])
    if now is not None:
        family("perry_report_timestamp_seconds", "gauge", "When the perry.fleet report role wrote this file.",
               [_series("perry_report_timestamp_seconds", {"host": host}, float(now))])
    return "".join(fams)


class FilterModule:
    def filters(self):
        return {
            "selection_patterns": selection_patterns,
            "select_workspaces": select_workspaces,
            "unmatched_patterns": unmatched_patterns,
            "parse_size": parse_size,
            "parse_duration": parse_duration,
            "capacity_plan": capacity_plan,
            "prune_candidates": prune_candidates,
            "ssh_connections": ssh_connections,
            "idle_plan": idle_plan,
            "prometheus_metrics": prometheus_metrics,
        }
