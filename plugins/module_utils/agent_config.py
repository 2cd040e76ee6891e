# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The coding agents' own config files in a workspace, generated and merged (Perry's syncAllAgents).

Perry writes each agent's config whole. Here each file is merged: the keys we manage are set (dicts recurse, any
other value is replaced), every key the user or the agent wrote stays. Credentials (auth files) are seeded: written
when our value changed since we last wrote it, or when the file is missing, so an agent that refreshed its tokens
in place keeps them. A per-workspace state file holds a salted HMAC of what we last wrote (never the value).

Everything runs as the workspace user (a link planted in the home leads only where the user could write anyway):
one exec reads every file (regular files only, opened without following a link, non-blocking, each capped at
MAX_BYTES), the merge runs here, one more exec writes what changed (contents base64 on stdin, never argv; each file
to a temporary name beside it, renamed over the old one, and only while the file is still the one we read).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import posixpath
import re
import secrets
import shlex

try:
    import tomllib
except ImportError:  # Python < 3.11: config.toml cannot be merged (a clear error when one is configured)
    tomllib = None

from ansible_collections.perry.fleet.plugins.module_utils import layout
from ansible_collections.perry.fleet.plugins.module_utils.engine import exec_argv
from ansible_collections.perry.fleet.plugins.module_utils.errors import EngineError, SpecError, WorkspaceError

MAX_BYTES = 4 * 1024 * 1024
STATE = layout.home_path(".config/perry-fleet/agents.state")

CLAUDE_JSON = layout.home_path(".claude.json")
CODEX_CONFIG = layout.home_path(".codex/config.toml")
CODEX_AUTH = layout.home_path(".codex/auth.json")
OPENCODE_CONFIG = layout.home_path(".config/opencode/opencode.json")
OPENCODE_AUTH = layout.home_path(".local/share/opencode/auth.json")
PI_SETTINGS = layout.home_path(".pi/agent/settings.json")
PI_AUTH = layout.home_path(".pi/agent/auth.json")


class Doc:
    """One managed file: ``ours`` is merged into it; ``seed`` = a credential, written only when ``ours`` changed."""

    def __init__(self, path: str, fmt: str, ours: dict, seed: bool = False):
        self.path, self.fmt, self.ours, self.seed = path, fmt, ours, seed

    @property
    def mode(self) -> str:
        return "0600"  # every agent file can carry a token (Claude Code keeps an API key in ~/.claude.json)


# ---------------------------------------------------------------- what we write

def _check_dict(value, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SpecError("%s must be a mapping (the keys to merge into the file), got %s" % (what, type(value).__name__))
    return value


def _mcp_server(entry) -> dict:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"].strip():
        raise SpecError("mcp_servers: each entry needs a name and type local (command, args, env) or remote (url, headers)")
    kind = entry.get("type", "remote" if entry.get("url") else "local")
    if kind == "local" and not isinstance(entry.get("command"), str):
        raise SpecError("mcp_servers: %s is type local and needs command (a program name or path)" % entry["name"])
    if kind == "remote" and not isinstance(entry.get("url"), str):
        raise SpecError("mcp_servers: %s is type remote and needs url" % entry["name"])
    if kind not in ("local", "remote"):
        raise SpecError("mcp_servers: %s has type %r; use local or remote" % (entry["name"], kind))
    unknown = set(entry) - {"name", "type", "command", "args", "env", "url", "headers", "enabled"}
    if unknown:
        raise SpecError("mcp_servers: %s has unknown keys %s" % (entry["name"], ", ".join(sorted(unknown))))
    return dict(entry, type=kind, args=[str(a) for a in entry.get("args") or []],
                env={str(k): str(v) for k, v in (entry.get("env") or {}).items()},
                headers={str(k): str(v) for k, v in (entry.get("headers") or {}).items()},
                enabled=bool(entry.get("enabled", True)))


def build_docs(params: dict) -> list:
    """The managed files from the module's options (Perry's McpServerDefinition shape for mcp_servers)."""
    servers = [_mcp_server(e) for e in params.get("mcp_servers") or []]
    names = [s["name"] for s in servers]
    if len(set(names)) != len(names):
        raise SpecError("mcp_servers: names must be unique, got %s" % ", ".join(names))
    on = [s for s in servers if s["enabled"]]

    claude = {"hasCompletedOnboarding": True} if params.get("claude_onboarding", True) else {}
    if on:
        claude["mcpServers"] = {
            s["name"]: ({"type": "stdio", "command": s["command"], "args": s["args"], "env": s["env"]}
                        if s["type"] == "local" else {"type": "http", "url": s["url"], "headers": s["headers"]})
            for s in on}
    claude = deep_merge(claude, _check_dict(params.get("claude_json"), "claude_json"))

    codex = {}
    if on:
        codex["mcp_servers"] = {
            s["name"]: ({"command": s["command"], "args": s["args"], "env": s["env"]}
                        if s["type"] == "local" else {"url": s["url"], "http_headers": s["headers"]})
            for s in on}
    codex = deep_merge(codex, _check_dict(params.get("codex_config"), "codex_config"))

    opencode = {}
    if servers:
        opencode["mcp"] = {
            s["name"]: ({"type": "local", "command": [s["command"]] + s["args"], "environment": s["env"],
                         "enabled": s["enabled"]}
                        if s["type"] == "local" else {"type": "remote", "url": s["url"], "headers": s["headers"],
                                                      "enabled": s["enabled"]})
            for s in servers}
    opencode = deep_merge(opencode, _check_dict(params.get("opencode_config"), "opencode_config"))

    docs = [Doc(CLAUDE_JSON, "json", claude), Doc(CODEX_CONFIG, "toml", codex),
            Doc(CODEX_AUTH, "json", _check_dict(params.get("codex_auth"), "codex_auth"), seed=True),
            Doc(OPENCODE_CONFIG, "json", opencode),
            Doc(OPENCODE_AUTH, "json", _check_dict(params.get("opencode_auth"), "opencode_auth"), seed=True),
            Doc(PI_SETTINGS, "json", _check_dict(params.get("pi_settings"), "pi_settings")),
            Doc(PI_AUTH, "json", _check_dict(params.get("pi_auth"), "pi_auth"), seed=True)]
    docs = [d for d in docs if d.ours]  # nothing to manage = the file is not touched at all
    if tomllib is None and any(d.fmt == "toml" for d in docs):
        raise SpecError("codex_config and mcp_servers write ~/.codex/config.toml, which needs Python 3.11 or later "
                        "(tomllib) on the host that runs the module")
    return docs


def deep_merge(base: dict, ours: dict) -> dict:
    """``base`` with ``ours`` set over it: dicts recurse, any other value (lists too) is replaced."""
    out = dict(base)
    for key, value in ours.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def changed_keys(before: dict, after: dict, prefix: str = "") -> list:
    """Dotted key paths whose value differs (names only: values can be secrets)."""
    out = []
    for key in sorted(set(before) | set(after), key=str):
        b, a = before.get(key), after.get(key)
        if isinstance(b, dict) and isinstance(a, dict):
            out += changed_keys(b, a, prefix + str(key) + ".")
        elif b != a or (key in before) != (key in after):
            out.append(prefix + str(key))
    return out


# ---------------------------------------------------------------- formats

def parse(doc: Doc, text: str) -> dict:
    where = "~" + doc.path[len(layout.HOME):]
    try:
        data = json.loads(text) if doc.fmt == "json" else tomllib.loads(text)
    except ValueError as exc:  # json.JSONDecodeError and tomllib.TOMLDecodeError are ValueErrors
        raise WorkspaceError("%s is not valid %s (%s): fix or remove it; perry.fleet merges into it and never "
                             "overwrites a file it cannot read" % (where, doc.fmt.upper(), exc)) from None
    if not isinstance(data, dict):
        raise WorkspaceError("%s holds a %s, not an object: fix or remove it" % (where, type(data).__name__))
    return data


def render(doc: Doc, data: dict) -> bytes:
    if doc.fmt == "json":
        return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode()
    return toml_dumps(data).encode()


_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(k) -> str:
    k = str(k)
    return k if _BARE.match(k) else json.dumps(k, ensure_ascii=False)


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(v, (datetime.datetime, datetime.date, datetime.time)):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join("%s = %s" % (_key(k), _value(x)) for k, x in v.items()) + " }"
    raise SpecError("codex_config: %r cannot be written as TOML" % (v,))


def toml_dumps(data: dict, table: str = "", header: bool = True) -> str:
    """TOML for the values JSON/YAML and tomllib give (comments of the old file are not kept)."""
    lines, tables = [], []
    for k, v in data.items():
        if isinstance(v, dict) or (isinstance(v, list) and v and all(isinstance(x, dict) for x in v)):
            tables.append((k, v))
        else:
            lines.append("%s = %s" % (_key(k), _value(v)))
    out = ("[%s]\n" % table if header and table and (lines or not tables) else "") + "".join(line + "\n" for line in lines)
    for k, v in tables:
        name = (table + "." if table else "") + _key(k)
        if isinstance(v, dict):
            out += ("\n" if out else "") + toml_dumps(v, name)
        else:
            for item in v:
                out += ("\n" if out else "") + "[[%s]]\n" % name + toml_dumps(item, name, header=False)
    return out


# ---------------------------------------------------------------- in the workspace

# Args: the state file, then the paths. Per path: "missing", "link", "other", "big <size>" or "file <size> <sha256>"
# followed by the content as base64 and a line "--". Only regular files are read, never through a link (the last
# component; the home is the user's own), non-blocking (a FIFO never blocks), at most MAX_BYTES each.
READ_SCRIPT = r"""
cap=%d
for p in "$@"; do
  if [ -L "$p" ]; then echo link
  elif [ -f "$p" ]; then
    n=$(stat -c %%s -- "$p" 2>/dev/null || echo 0)
    if [ "$n" -gt "$cap" ]; then echo "big $n"
    else
      h=$(dd if="$p" iflag=nonblock,nofollow bs=65536 status=none 2>/dev/null | head -c "$cap" | sha256sum | cut -c1-64)
      echo "file $n $h"
      dd if="$p" iflag=nonblock,nofollow bs=65536 status=none 2>/dev/null | head -c "$cap" | base64
      echo --
    fi
  elif [ -e "$p" ]; then echo other
  else echo missing; fi
done
""" % MAX_BYTES


def read_argv(paths) -> list:
    return ["/bin/sh", "-c", READ_SCRIPT, "sh"] + list(paths)


def parse_read(stdout: str, paths) -> dict:
    """{path: (state, bytes or None, sha256 or None)} from READ_SCRIPT's output."""
    lines = stdout.split("\n")
    out, i = {}, 0
    for p in paths:
        head = lines[i].strip() if i < len(lines) else "missing"
        i += 1
        if head.startswith("file "):
            digest = head.split(" ", 2)[2]
            body = []
            while i < len(lines) and lines[i].strip() != "--":
                body.append(lines[i])
                i += 1
            i += 1
            out[p] = ("file", base64.b64decode("".join(body)), digest)
        else:
            out[p] = (head.split(" ")[0], None, None)
    return out


def write_script(writes) -> str:
    """sh (as the workspace user, on stdin): for each (path, mode, content, expected sha256 or None), stop with exit 3
    when the file is no longer the one read (changed meanwhile), create missing parents 0700, write to a temporary
    name beside it and rename it over the path (a link there is replaced, never followed)."""
    lines = ["set -eu", "umask 077", "t=", "trap 'rm -f \"$t\"' EXIT"]
    for path, mode, content, expected in writes:
        q = shlex.quote(path)
        if expected is None:
            lines.append("if [ -e %s ] || [ -L %s ]; then echo %s >&2; exit 3; fi"
                         % (q, q, shlex.quote("%s appeared while perry.fleet merged it; run again" % path)))
        else:
            lines.append('h=$(dd if=%s iflag=nonblock,nofollow bs=65536 status=none 2>/dev/null | sha256sum | cut -c1-64)' % q)
            lines.append('if [ -L %s ] || [ "$h" != %s ]; then echo %s >&2; exit 3; fi'
                         % (q, expected, shlex.quote("%s changed while perry.fleet merged it; run again" % path)))
        parent = posixpath.dirname(path)
        lines += ["mkdir -p -m 0700 %s" % shlex.quote(parent),
                  "t=$(mktemp %s)" % shlex.quote(posixpath.join(parent, ".perry-fleet.XXXXXX")),
                  "base64 -d > \"$t\" <<'PERRY_FLEET_EOF'",
                  base64.encodebytes(content).decode().rstrip("\n"),
                  "PERRY_FLEET_EOF",
                  "chmod %s \"$t\"" % mode,
                  "mv -fT \"$t\" %s" % q,
                  "t="]
    return "\n".join(lines) + "\n"


def _seed_mark(salt: bytes, doc: Doc) -> str:
    canon = json.dumps(doc.ours, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(salt, doc.path.encode() + b"\0" + canon, hashlib.sha256).hexdigest()


def plan(docs, read: dict) -> tuple:
    """(per-file results, writes) from what READ_SCRIPT found. Raises WorkspaceError for a file we must not touch."""
    state_raw = read.get(STATE, ("missing", None, None))
    state = {}
    if state_raw[0] == "file":
        try:
            state = json.loads(state_raw[1].decode())
        except ValueError:
            state = {}
    if not isinstance(state, dict) or not re.match(r"^[0-9a-f]{32}$", str(state.get("salt", ""))):
        state = {"salt": secrets.token_hex(16), "seeded": {}}
    seeded = dict(state.get("seeded") or {})
    salt = bytes.fromhex(state["salt"])
    results, writes = [], []
    for doc in docs:
        kind, raw, digest = read[doc.path]
        where = "~" + doc.path[len(layout.HOME):]
        if kind in ("link", "other"):
            raise WorkspaceError("%s is a %s in the workspace; perry.fleet writes only regular files and never "
                                 "follows a link there: remove it" % (where, "symbolic link" if kind == "link" else "non-regular file"))
        if kind == "big":
            raise WorkspaceError("%s is larger than %d MiB; perry.fleet does not merge it: shrink or remove it"
                                 % (where, MAX_BYTES // (1024 * 1024)))
        mark = _seed_mark(salt, doc) if doc.seed else None
        if doc.seed and kind == "file" and seeded.get(doc.path) == mark:
            results.append({"path": doc.path, "changed": False, "keys": []})
            continue  # our value is unchanged since we wrote it: the agent's own refreshes stay
        before = parse(doc, raw.decode("utf-8", "replace")) if kind == "file" else {}
        after = deep_merge(before, doc.ours)
        keys = changed_keys(before, after)
        if doc.seed:
            seeded[doc.path] = mark
        if keys or kind != "file":
            writes.append((doc.path, doc.mode, render(doc, after), digest))
        results.append({"path": doc.path, "changed": bool(keys) or kind != "file", "keys": keys,
                        "created": kind != "file"})
    new_state = {"salt": state["salt"], "seeded": seeded}
    if any(d.seed for d in docs) and (new_state != state or state_raw[0] != "file"):
        writes.append((STATE, "0600", (json.dumps(new_state, sort_keys=True) + "\n").encode(), state_raw[2]))
    return results, writes


def sync(engine, container: str, docs, timeout: float, check_mode: bool = False) -> dict:
    """Merge ``docs`` into one workspace: one exec to read, one to write (none when nothing changed)."""
    paths = [STATE] + [d.path for d in docs]
    try:
        res = engine.run(exec_argv(container, read_argv(paths), layout.USER), timeout=timeout,
                         max_output=(MAX_BYTES * 4 // 3 + 4096) * len(paths))
    except EngineError as exc:
        raise WorkspaceError("reading the agents' config in %s failed: %s" % (container, exc.stderr.strip()[-1000:] or exc.msg)) from None
    if getattr(res, "truncated", False):
        raise WorkspaceError("reading the agents' config in %s returned more than the cap" % container)
    results, writes = plan(docs, parse_read(res.stdout, paths))
    changed = any(r["changed"] for r in results)
    if writes and not check_mode:
        try:
            engine.run(exec_argv(container, ["/bin/sh", "-s"], layout.USER, interactive=True),
                       stdin=write_script(writes), timeout=timeout)
        except EngineError as exc:
            raise WorkspaceError("writing the agents' config in %s failed: %s" % (container, exc.stderr.strip()[-1000:] or exc.msg)) from None
    return {"changed": changed, "files": results}
