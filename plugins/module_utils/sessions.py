# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The worker's session routes as the collection uses them, and the one normalisation of a session.

Sessions are returned the way the Perry agent consumes them (docs/perry-compat.md), with snake_case keys:
``agent_type`` claude becomes claude-code, ``mtime`` in seconds beside ``last_activity`` in ms, ``project_path``
and ``name`` added.

The list is paged (``limit``/``offset``, DEFAULT_PAGE by default) over all workspaces' sessions, newest first, with
the ``total`` of matches: each worker is asked for just the window the page needs (``GET /sessions?limit&offset&
agentType&since``; a worker too old to page answers with everything, read up to transport.MAX_BODY and paged here).
"""

from __future__ import annotations

import datetime
import math
import traceback
from dataclasses import dataclass

from ansible_collections.perry.fleet.plugins.module_utils.errors import SpecError, WorkerError
from ansible_collections.perry.fleet.plugins.module_utils.parallel import run_parallel
from ansible_collections.perry.fleet.plugins.module_utils.snake import snake_keys
from urllib.parse import urlencode

from ansible_collections.perry.fleet.plugins.module_utils.transport import Target, Transport, session_path

try:
    import jmespath
    HAS_JMESPATH = True
    JMESPATH_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - depends on the controller's Python
    jmespath = None
    HAS_JMESPATH = False
    JMESPATH_IMPORT_ERROR = traceback.format_exc()

# Agent-side consumption: the agent calls Claude sessions "claude-code".
AGENT_TYPE_ALIASES = {"claude": "claude-code"}
AGENT_TYPES = ("claude-code", "claude", "opencode", "pi", "codex")
WORKER_AGENT_TYPES = {"claude-code": "claude"}   # the worker's own names, for its agentType filter
DEFAULT_PAGE = 100        # sessions per page when no limit is given (20,000 sessions were a 39 MB result)
DEFAULT_MESSAGES = 50     # messages per page


def normalize_agent_type(value):
    return AGENT_TYPE_ALIASES.get(value, value)


def normalize_session(raw: dict, workspace: str) -> dict:
    """The ONE place a worker session becomes what this collection returns (agent-side consumption,
    docs/perry-compat.md), every key in snake_case: ``agent_type`` claude -> claude-code (the worker's value kept
    as ``worker_agent_type``), ``mtime`` = last_activity / 1000 (seconds; last_activity stays in ms),
    ``project_path`` = directory, ``name`` = title, and ``workspace`` = the workspace it came from."""
    session = snake_keys(raw)
    worker_type = raw.get("agentType")
    session["worker_agent_type"] = worker_type
    session["agent_type"] = normalize_agent_type(worker_type)
    last = raw.get("lastActivity")
    if isinstance(last, (int, float)) and not isinstance(last, bool):
        session["last_activity"] = int(last)
        session["mtime"] = last / 1000.0
    else:
        session["last_activity"] = None
        session["mtime"] = None
    session["project_path"] = raw.get("directory")
    session["name"] = raw.get("title")
    session["workspace"] = workspace
    return session


# The moments since may name: years 1 to 9999, as Python's datetime (a bigger int overflowed the float compare).
SINCE_MIN_MS = -62135596800000
SINCE_MAX_MS = 253402300799999


def _since_in_range(ms, value) -> int:
    if not SINCE_MIN_MS <= ms <= SINCE_MAX_MS:
        raise SpecError("since %s is out of range: give milliseconds since the epoch between %d and %d (years 1 to "
                        "9999) or an ISO 8601 date" % (str(value)[:40], SINCE_MIN_MS, SINCE_MAX_MS))
    return int(ms)


def parse_since(value) -> int | None:
    """Milliseconds since the epoch from an int/float (ms), a digit string (ms) or an ISO 8601 date or
    date-time (naive means UTC); infinite, NaN and moments outside years 1..9999 are refused."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise SpecError("since must be milliseconds since the epoch or an ISO 8601 date, not a boolean")
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):  # isfinite() of a huge int overflows
            raise SpecError("since %r is not a moment: give milliseconds since the epoch or an ISO 8601 date" % value)
        return _since_in_range(value, value)
    text = str(value).strip()
    if text.lstrip("-").isdigit() and len(text) < 40:
        return _since_in_range(int(text), value)
    if text.lstrip("-").isdigit():
        raise SpecError("since %s... is out of range: give milliseconds since the epoch (years 1 to 9999) or an "
                        "ISO 8601 date" % text[:40])
    try:
        if len(text) == 10:
            dt = datetime.datetime.combine(datetime.date.fromisoformat(text), datetime.time())
        else:
            dt = datetime.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise SpecError("since %r is neither milliseconds since the epoch nor an ISO 8601 date "
                        "(e.g. 2026-01-31 or 2026-01-31T12:00:00Z)" % value) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return int(dt.timestamp() * 1000)


def validate_session_id(value):
    """One id as the worker lists it (ses_..., a UUID, a file stem); '..' would climb the worker's URL path."""
    if value is None:
        return None
    text = str(value)
    if not text.strip() or text.strip(".") == "" or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise SpecError("session_id %r is not a session id: give one id as perry_sessions lists it (not empty, "
                        "not '.' or '..', no control characters)" % value)
    return text


def filter_sessions(sessions: list, agent_types=None, since_ms: int | None = None) -> list:
    wanted = {normalize_agent_type(a) for a in agent_types or []}
    out = []
    for s in sessions:
        if wanted and s.get("agent_type") not in wanted:
            continue
        if since_ms is not None and (s.get("last_activity") is None or s["last_activity"] < since_ms):
            continue
        out.append(s)
    return out


def sort_sessions(sessions: list) -> list:
    return sorted(sessions, key=lambda s: (-(s.get("last_activity") or 0), s.get("workspace") or "", s.get("id") or ""))


def list_path(offset: int, limit: int, agent_types=None, since_ms: int | None = None) -> str:
    """GET /sessions asking the worker for one window, filtered as the host filters."""
    query = [("limit", limit), ("offset", offset)]
    for a in sorted({WORKER_AGENT_TYPES.get(t, t) for t in agent_types or []}):
        query.append(("agentType", a))
    if since_ms is not None:
        query.append(("since", since_ms))
    return "/sessions?" + urlencode(query)


def compile_query(expr: str):
    if not HAS_JMESPATH:
        raise SpecError("the query option needs the Python library jmespath on the managed host "
                        "(pip install jmespath)")
    try:
        return jmespath.compile(expr)
    except jmespath.exceptions.JMESPathError as exc:
        raise SpecError("query %r is not a valid JMESPath expression: %s" % (expr, exc)) from None


def apply_query(compiled, sessions: list):
    return compiled.search(sessions)


class SessionClient:
    """The session routes of one workspace's worker, each one bounded request."""

    def __init__(self, transport: Transport, target: Target, timeout: float):
        self.transport = transport
        self.target = target
        self.timeout = timeout

    def _call(self, path: str, method: str = "GET", allow=()):
        resp = self.transport.request(self.target, path, method=method, timeout=self.timeout)
        if resp.truncated:
            raise WorkerError("%s %s via %s: %s: ask for less (a smaller limit or offset)"
                              % (method, path, resp.transport, resp.error))
        if resp.status == 0:
            raise WorkerError("worker unreachable via %s: %s" % (resp.transport, resp.error))
        if resp.status == 401:
            raise WorkerError("%s %s: %s" % (method, path, resp.error))
        doc = resp.json()
        if resp.ok or resp.status in allow:
            if not isinstance(doc, dict):
                raise WorkerError("%s %s: HTTP %d with a body that is not a JSON object: %s"
                                  % (method, path, resp.status, resp.body[:200]))
            return resp.status, doc
        detail = doc.get("error") if isinstance(doc, dict) else resp.body[:200]
        raise WorkerError("%s %s: HTTP %d: %s" % (method, path, resp.status, detail))

    def list(self, offset: int = 0, limit: int = DEFAULT_PAGE, agent_types=None, since_ms: int | None = None) -> tuple:
        """(sessions, total): the window [offset, offset + limit) of the filtered, newest-first list, and the
        number of matches. A worker that does not page (no ``total``) is paged here."""
        doc = self._call(list_path(offset, limit, agent_types, since_ms))[1]
        sessions = doc.get("sessions")
        if not isinstance(sessions, list):
            raise WorkerError("GET /sessions: no sessions array in the answer")
        found = filter_sessions([normalize_session(s, self.target.workspace) for s in sessions if isinstance(s, dict)],
                                agent_types, since_ms)
        total = doc.get("total")
        if isinstance(total, int) and not isinstance(total, bool):
            return sort_sessions(found)[:limit], total
        return sort_sessions(found)[offset:offset + limit], len(found)

    def get(self, session_id: str):
        status, doc = self._call(session_path(session_id), allow=(404,))
        if status == 404 or not isinstance(doc.get("session"), dict):
            return None
        return normalize_session(doc["session"], self.target.workspace)

    def messages(self, session_id: str, limit: int, offset: int) -> dict:
        doc = self._call(session_path(session_id, "/messages?limit=%d&offset=%d" % (limit, offset)))[1]
        messages = [snake_keys(m) if isinstance(m, dict) else m for m in doc.get("messages") or []]
        return {"id": doc.get("id", session_id), "messages": messages,
                "total": doc.get("total", 0), "limit": limit, "offset": offset}

    def delete(self, session_id: str) -> bool:
        """True when deleted, False when the worker no longer knew the session (404)."""
        status = self._call(session_path(session_id), method="DELETE", allow=(404,))[0]
        return status != 404


@dataclass
class SessionRequest:
    """What perry_sessions asks of every workspace."""

    session_id: str | None = None
    messages: bool = False
    limit: int | None = None      # sessions per page (DEFAULT_PAGE) or messages per page (DEFAULT_MESSAGES)
    offset: int = 0
    agent_types: list | None = None
    since_ms: int | None = None
    delete: bool = False
    check_mode: bool = False
    request_timeout: float = 30.0

    @property
    def page_limit(self) -> int:
        return self.limit if self.limit is not None else DEFAULT_PAGE

    @property
    def messages_limit(self) -> int:
        return self.limit if self.limit is not None else DEFAULT_MESSAGES

    @property
    def bound(self) -> float:
        """Backstop for one workspace: every request is bounded already; a delete or messages read makes more."""
        return self.request_timeout * (3 if self.delete or self.messages else 1) + 2


def _entry(target: Target, request: SessionRequest) -> dict:
    entry = {"name": target.workspace, "container": target.container, "transport": target.transport,
             "fallback": target.fallback, "ok": False, "error": None, "sessions": [], "count": 0, "total": 0}
    if request.session_id is not None:
        entry["session"] = None
    if request.messages:
        entry["messages"] = None
    if request.delete:
        entry["deleted"] = False
    return entry


def query_workspace(transport: Transport, target: Target, request: SessionRequest, alone: bool = True) -> dict:
    """One workspace's answer (errors reported in the entry, never raised). ``alone``: the only workspace asked,
    so its worker skips ``offset`` itself; otherwise it gives its first offset + limit for the merge."""
    entry = _entry(target, request)
    if not target.running:
        entry["error"] = target.not_running_error()
        return entry
    client = SessionClient(transport, target, request.request_timeout)
    sid = request.session_id
    try:
        if sid is None:
            offset, limit = ((request.offset, request.page_limit) if alone
                             else (0, request.offset + request.page_limit))
            entry["sessions"], entry["total"] = client.list(offset, limit, request.agent_types, request.since_ms)
        else:
            entry["session"] = client.get(sid)
            if entry["session"] is not None:
                entry["sessions"] = [entry["session"]]
                entry["total"] = 1
            if request.messages:
                entry["messages"] = client.messages(sid, request.messages_limit, request.offset)
            if request.delete and entry["session"] is not None:
                entry["deleted"] = True if request.check_mode else client.delete(sid)
                if not entry["deleted"]:
                    entry["sessions"] = []
                    entry["total"] = 0
        entry["ok"] = True
    except WorkerError as exc:
        entry["error"] = exc.msg
    # an automatic published choice may have fallen back to exec on the way (transport.Transport._fall_back)
    entry["transport"], entry["fallback"] = target.transport, target.fallback
    entry["count"] = len(entry["sessions"])
    return entry


def query_workspaces(engine, targets: list, request: SessionRequest) -> list:
    """Every workspace in parallel; a workspace that did not answer within the backstop is reported as such."""
    transport = Transport(engine)
    alone = len(targets) == 1
    results = run_parallel(lambda t: query_workspace(transport, t, request, alone), targets, bound=request.bound)
    out = []
    for target, res in zip(targets, results):
        if isinstance(res, BaseException):
            entry = _entry(target, request)
            entry["error"] = "worker request failed: %s" % res
            res = entry
        out.append(res)
    return out


def merge_page(results: list, request: SessionRequest) -> dict:
    """The page over all workspaces: {sessions, total, truncated, offset, limit}; each workspace entry keeps only
    its sessions on the page (``count``) beside its ``total``."""
    merged = sort_sessions([s for r in results for s in r["sessions"]])
    if request.session_id is None and len(results) > 1:
        merged = merged[request.offset:request.offset + request.page_limit]
    on_page = {}
    for s in merged:
        on_page.setdefault(s["workspace"], []).append(s)
    for r in results:
        r["sessions"] = on_page.get(r["name"], [])
        r["count"] = len(r["sessions"])
    total = sum(r["total"] for r in results)
    offset = request.offset if request.session_id is None else 0
    return {"sessions": merged, "total": total, "truncated": offset + len(merged) < total,
            "offset": offset, "limit": request.page_limit if request.session_id is None else None}
