# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that give the roles the collection's own answers instead of copies of them in Jinja, and the fleet
report's rows and totals (pure functions of the modules' results: no I/O)."""

from __future__ import annotations

import datetime
import math
import re

from ansible_collections.perry.fleet.plugins.module_utils.engine import cli_kind, command_env, command_prefix
from ansible_collections.perry.fleet.plugins.module_utils.runtime_profile import get_profile


def runtime_profile(runtime: str) -> dict:
    """The runtime profile table's row for ``runtime`` (docker or podman)."""
    return get_profile(runtime).as_dict()


def engine_command(cli: str, url: str = "") -> list:
    """argv prefix that runs the engine CLI against ``url`` (podman: --url; docker: see engine_environment)."""
    return command_prefix(cli, url or None)


def engine_environment(cli: str, url: str = "") -> dict:
    """Environment the engine CLI needs for ``url`` (DOCKER_HOST for the docker CLI)."""
    return command_env(url or None, cli_kind(cli))


# ----------------------------------------------------------------------------------------------- fleet report
# The report role's data munging (merging discovery, health and sessions; counting; flags) in one tested place.
REASON_LENGTH = 160      # the one-line reason shown in the table
DETAIL_LENGTH = 4000     # the full text in the collapsed <details>
WILDCARDS = ("", "0.0.0.0", "::", "[::]")
_STARTED_RE = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?\s*(Z|[+-]\d\d:?\d\d)?")


def _one_line(text, length: int = REASON_LENGTH) -> str | None:
    """First non-empty line of ``text``, cut to ``length`` characters (an ellipsis says it was cut)."""
    if text is None:
        return None
    lines = [x.strip() for x in str(text).splitlines() if x.strip()]
    if not lines:
        return None
    line = lines[0]
    cut = len(lines) > 1 or len(line) > length
    return (line[:length - 1].rstrip() + "…") if len(line) > length else (line + (" …" if cut else ""))


def _capped(text, length: int = DETAIL_LENGTH) -> str | None:
    if text is None or str(text) == "":
        return None
    text = str(text)
    return text if len(text) <= length else text[:length] + "\n… (cut at %d characters)" % length


def _epoch_ms(value) -> int | None:
    """A session's last_activity as epoch milliseconds; missing, zero, negative or not a number is None."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number) or number <= 0:
        return None
    return int(number)


def _utc(ms: int | None) -> str | None:
    if ms is None:
        return None
    try:
        return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return None


def parse_started_at(value) -> float | None:
    """An engine's State.StartedAt (RFC 3339, nanoseconds, Z or offset) as epoch seconds; the zero time is None."""
    m = _STARTED_RE.match(str(value or "").strip())
    if not m:
        return None
    year, month, day, hour, minute, second = (int(x) for x in m.groups()[:6])
    if year < 2000:  # Go's zero time 0001-01-01: never started
        return None
    zone = m.group(8) or "Z"
    offset = 0
    if zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    try:
        stamp = datetime.datetime(year, month, day, hour, minute, second, tzinfo=datetime.timezone.utc)
    except ValueError:
        return None
    fraction = float("0." + m.group(7)) if m.group(7) else 0.0
    return stamp.timestamp() + fraction - offset


def human_duration(seconds) -> str | None:
    """``3d 4h``, ``2h 5m``, ``7m``, ``40s``: the two largest units."""
    if seconds is None or seconds < 0:
        return None
    s = int(seconds)
    d, h, m = s // 86400, s % 86400 // 3600, s % 3600 // 60
    if d:
        return "%dd %dh" % (d, h)
    if h:
        return "%dh %dm" % (h, m)
    return "%dm" % m if m else "%ds" % s


def parse_image_ids(lines) -> dict:
    """``tag tag …|id`` lines of one batched image inspect -> {tag: id without sha256:}."""
    out = {}
    for line in lines or []:
        tags, _sep, image_id = str(line).strip().rpartition("|")
        image_id = image_id.strip()
        if not image_id:
            continue
        for tag in tags.split():
            out[tag] = _bare_id(image_id)
    return out


def _bare_id(image_id) -> str | None:
    if not image_id:
        return None
    text = str(image_id)
    return text[len("sha256:"):] if text.startswith("sha256:") else text


def _image_now(images: dict, name) -> str | None:
    if not name:
        return None
    name = str(name)
    candidates = [name]
    if ":" not in name.rsplit("/", 1)[-1] and "@" not in name:
        candidates.append(name + ":latest")
    if "/" not in name:
        candidates += ["docker.io/library/" + c for c in list(candidates)]
    for c in candidates:
        if c in images:
            return images[c]
    return None


def _same_id(a: str | None, b: str | None) -> bool:
    n = min(len(a), len(b))
    return n >= 12 and a[:n] == b[:n]


def human_bytes(n) -> str | None:
    if n is None:
        return None
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return ("%.1f" % (n / size)).rstrip("0").rstrip(".") + " " + unit
    return "%d B" % n


def _limits_text(limits: dict) -> str:
    parts = []
    if limits.get("memory"):
        parts.append("mem " + human_bytes(limits["memory"]))
    if limits.get("cpus"):
        parts.append("%g cpu" % limits["cpus"])
    if limits.get("pids"):
        parts.append("%d pids" % limits["pids"])
    return " · ".join(parts) if parts else "none"


def ssh_command(port, bind_address, host: str) -> str | None:
    """``ssh -p PORT workspace@HOST``: HOST is the bind address, or ``host`` (the inventory host) for a wildcard."""
    if port is None:
        return None
    address = host if (bind_address or "") in WILDCARDS else str(bind_address)
    return "ssh -p %d workspace@%s" % (int(port), address)


def _by_name(entries) -> dict:
    return {e["name"]: e for e in (entries or []) if isinstance(e, dict) and e.get("name") is not None}


def _health(running: bool, h: dict, s: dict, budget: float | None, health_error: str | None = None) -> tuple:
    """(healthy|unhealthy|unknown|None, reason). unknown: no /health answer within the report's own budget (or the
    health check itself failed), but the worker listed its sessions, so it is alive: the budget, not the worker,
    was short. Without a health answer and without sessions the worker is unhealthy."""
    if not running:
        return None, None
    if h.get("healthy"):
        return "healthy", None
    if h and h.get("status"):
        return "unhealthy", h.get("error") or "worker not healthy (HTTP %s)" % h.get("status")
    spent = " of %g s" % budget if budget is not None else ""
    if not h:
        why = "health check failed: %s" % _one_line(health_error) if health_error else "no health answer"
    else:
        why = h.get("error") or "worker not healthy"
    if s.get("ok"):
        return "unknown", "no /health answer within the report's health budget%s, but the worker listed its " \
                          "sessions: raise perry_report_health_timeout (%s)" % (spent, _one_line(why, 80))
    return "unhealthy", why


def _conflicts(rows: list) -> None:
    """Flag every published host port two workspaces of one host share (a wildcard bind collides with any)."""
    claims = []
    for r in rows:
        for kind in ("ssh", "worker"):
            port = r[kind + "_port"]
            if port is not None:
                claims.append((int(port), r["bind_address"] or "0.0.0.0", kind, r))
    for port, addr, kind, r in claims:
        for port2, addr2, kind2, other in claims:
            if other is r or port2 != port:
                continue
            if addr == addr2 or addr in WILDCARDS or addr2 in WILDCARDS:
                r["port_conflicts"].append({"port": port, "kind": kind, "workspace": other["name"],
                                            "other_kind": kind2})


_RANK = {"unhealthy": 0, "missing": 1, "unknown": 2, "stopped": 3}


def fleet_report_host(info, health=None, sessions=None, images=None, options=None) -> dict:
    """One host's report: a row per workspace (see roles/report/README.md for each field), sorted worst first.

    ``info``: perry_workspace_info's workspaces; ``health``: perry_worker_health's (or the workspace role's fact)
    entries (limits included); ``sessions``: perry_sessions' entries; ``images``: the lines of the role's batched image
    inspect; ``options``: host, runtime, source, now (epoch seconds), budgets, expected_version, titles,
    title_length, expected (names that should exist: the others are ``missing``), commands (of the modules),
    health_error (the health module's message when it failed as a whole: each running workspace is then unknown
    or unhealthy by whether it listed its sessions)."""
    o = dict(options or {})
    host = str(o.get("host") or "localhost")
    now = float(o["now"]) if o.get("now") is not None else None
    budgets = dict(o.get("budgets") or {})
    expected_version = str(o.get("expected_version") or "") or None
    titles_n = int(o.get("titles", 3))
    title_length = int(o.get("title_length", 80))
    commands = [c for c in (o.get("commands") or []) if isinstance(c, dict)]
    health_by, sessions_by = _by_name(health), _by_name(sessions)
    images_by = parse_image_ids(images)
    found = {w["name"]: w for w in (info or [])}
    names = list(found) + [n for n in (o.get("expected") or []) if n not in found]
    rows = []
    for name in names:
        w = found.get(name)
        h, s = health_by.get(name, {}), sessions_by.get(name, {})
        if w is None:
            state, running = "missing", False
            w = {"name": name, "container": "workspace-" + name, "ports": {}}
        else:
            running = bool(w.get("running"))
            state = str(w.get("state") or ("running" if running else "stopped"))
            if state in ("exited", "created", "configured", "dead", "removing", "stopping"):
                state = "stopped"
        ports = w.get("ports") or {}
        health_state, reason = _health(running, h, s, budgets.get("health_timeout"), o.get("health_error"))
        if state == "missing":
            reason = "no container %s on this host" % w["container"]
        elif not running:
            reason = "not running" if state != "paused" else "paused"
        details = []
        if health_state in ("unhealthy", "unknown"):
            details.append(("health", _capped(h.get("error") or o.get("health_error"))))
            details.append(("worker log (tail)", _capped(h.get("log_tail"))))
        if running and s and not s.get("ok"):
            details.append(("sessions", _capped(s.get("error"))))
        if running and (h.get("fallback") or s.get("fallback")):
            details.append(("transport", _capped(h.get("fallback") or s.get("fallback"))))
        details = [{"what": k, "text": v} for k, v in details if v]
        if details:
            container = str(w.get("container") or "")
            mine = [c for c in commands if container and container in str(c.get("cmd", ""))]
            if mine:
                details.append({"what": "engine commands", "text": "\n".join(
                    "%s  (rc=%s, %ss)" % (c.get("cmd"), c.get("rc"), c.get("elapsed")) for c in mine[-20:])})
        if reason is None and s and running and not s.get("ok"):
            reason = "sessions: " + (_one_line(s.get("error")) or "not listed")
        version = h.get("version") if running else None
        version_ok = (version == expected_version) if (expected_version and version) else None
        if version_ok is False and reason is None:
            reason = "worker %s, expected %s" % (version, expected_version)
        started = parse_started_at(w.get("started_at")) if running else None
        uptime = max(0.0, now - started) if (started is not None and now is not None) else None
        image_id = _bare_id(w.get("image_id"))
        image_now = _image_now(images_by, w.get("image")) if w.get("image") else None
        if image_id and image_now:
            drift = not _same_id(image_id, image_now)
        else:
            drift = None
        lim = w.get("limits") or {"memory": None, "cpus": None, "pids": None}
        found_sessions = [x for x in (s.get("sessions") or []) if isinstance(x, dict)] if s.get("ok") else []
        for x in found_sessions:
            x["_ms"] = _epoch_ms(x.get("last_activity"))
        found_sessions.sort(key=lambda x: (x["_ms"] is None, -(x["_ms"] or 0)))
        agents = {}
        for x in found_sessions:
            agent = str(x.get("agent_type") or "unknown")
            agents[agent] = agents.get(agent, 0) + 1
        last = found_sessions[0]["_ms"] if found_sessions else None
        if s.get("ok"):
            last_text = _utc(last) or "never"
        else:
            last_text = "-"
        ok = running and health_state == "healthy"
        rows.append({
            "name": name, "container": w.get("container"), "state": state, "running": running,
            "health": health_state, "healthy": health_state == "healthy", "ok": ok,
            "status": "ok" if ok else (health_state if running else state),
            "reason": _one_line(reason), "error": _one_line(reason), "details": details,
            "version": version, "expected_version": expected_version, "version_ok": version_ok,
            "transport": h.get("transport") if running else None,
            "ssh_port": ports.get("ssh"), "worker_port": ports.get("worker"),
            "bind_address": ports.get("bind_address"),
            "ssh_command": ssh_command(ports.get("ssh"), ports.get("bind_address"), host),
            "port_conflicts": [],
            "image": w.get("image"), "image_id": image_id, "image_current_id": image_now, "image_drift": drift,
            "started_at": w.get("started_at") if started is not None else None,
            "uptime_seconds": int(uptime) if uptime is not None else None, "uptime": human_duration(uptime),
            "limits": lim, "limits_text": _limits_text(lim),
            "session_count": len(found_sessions) if s.get("ok") else None,
            "sessions_by_agent": dict(sorted(agents.items())),
            "last_activity": last, "last_activity_utc": last_text,
            "newest_titles": [{"title": _cut(x.get("title"), title_length), "agent": x.get("agent_type"),
                               "last_activity": x["_ms"]} for x in found_sessions[:titles_n]],
            "sessions_error": _one_line(s.get("error")) if running and not s.get("ok") and s else None,
        })
        for x in found_sessions:
            x.pop("_ms", None)
    _conflicts(rows)
    rows.sort(key=lambda r: (r["ok"], _RANK.get(r["status"], 3), r["name"]))
    return {"host": host, "runtime": o.get("runtime"), "source": o.get("source"), "error": None,
            "budgets": budgets, "workspaces": rows}


def _cut(text, length: int) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= length else text[:max(0, length - 1)] + "…"


def fleet_report(hosts, names=None, generated_at: str = "", runtime: str = "") -> dict:
    """The whole report from the hosts' fleet_report_host results, in the order of ``names`` (a host whose result
    is None failed before it was reported), with the totals and the chart's geometry (sized to its labels)."""
    hosts = list(hosts or [])
    names = list(names or [None] * len(hosts))
    out = []
    for h, name in zip(hosts, names):
        if isinstance(h, dict) and "workspaces" in h:
            out.append(h)
        else:
            out.append({"host": name, "runtime": runtime or None, "source": None, "budgets": {},
                        "error": "host failed or unreachable before it was reported", "workspaces": []})
    rows = [w for h in out for w in h["workspaces"]]
    agents = {}
    for w in rows:
        for a, n in (w.get("sessions_by_agent") or {}).items():
            agents[a] = agents.get(a, 0) + n

    def count(pred) -> int:
        return len([w for w in rows if pred(w)])

    summary = {
        "hosts": len(out), "hosts_failed": len([h for h in out if h.get("error")]),
        "workspaces": len(rows),
        "running": count(lambda w: w.get("running")),
        "stopped": count(lambda w: w.get("state") in ("stopped", "paused")),
        "missing": count(lambda w: w.get("state") == "missing"),
        "healthy": count(lambda w: w.get("ok")),
        "unhealthy": count(lambda w: w.get("health") == "unhealthy"),
        "unknown": count(lambda w: w.get("health") == "unknown"),
        "port_conflicts": count(lambda w: w.get("port_conflicts")),
        "image_drift": count(lambda w: w.get("image_drift")),
        "version_mismatch": count(lambda w: w.get("version_ok") is False),
        "sessions": sum(w.get("session_count") or 0 for w in rows),
        "sessions_by_agent": dict(sorted(agents.items())),
    }
    budgets = next((h["budgets"] for h in out if h.get("budgets")), {})
    return {"generated_at": generated_at, "summary": summary, "budgets": budgets, "hosts": out,
            "chart": chart(summary["sessions_by_agent"])}


def chart(counts: dict, bar_length: int = 260, row: int = 26) -> dict:
    """Bars of the sessions-per-agent chart, with a width that holds the longest name and the largest value."""
    char = 7.5  # px per character at 12px, generous
    label_w = int(max([len(a) for a in counts] + [4]) * char) + 8
    value_w = int(max([len(str(n)) for n in counts.values()] + [1]) * char * 1.1) + 12
    top = max(list(counts.values()) + [1])
    bars = []
    for i, (agent, n) in enumerate(sorted(counts.items())):
        w = round(n / top * bar_length, 1)
        bars.append({"agent": agent, "count": n, "y": i * row + 3, "label_x": label_w - 8, "bar_x": label_w,
                     "width": max(w, 2), "value_x": label_w + max(w, 2) + 6})
    return {"width": label_w + bar_length + 6 + value_w, "height": len(bars) * row + 6, "bars": bars}


class FilterModule:
    def filters(self):
        return {
            "runtime_profile": runtime_profile,
            "engine_command": engine_command,
            "engine_environment": engine_environment,
            "fleet_report_host": fleet_report_host,
            "fleet_report": fleet_report,
        }
