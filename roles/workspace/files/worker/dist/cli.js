// @bun
var __defProp = Object.defineProperty;
var __returnValue = (v) => v;
function __exportSetter(name, newValue) {
  this[name] = __returnValue.bind(null, newValue);
}
var __export = (target, all) => {
  for (var name in all)
    __defProp(target, name, {
      get: all[name],
      enumerable: true,
      configurable: true,
      set: __exportSetter.bind(all, name)
    });
};

// src/agents/claude.js
var exports_claude = {};
__export(exports_claude, {
  agentType: () => agentType,
  convertEntry: () => convertEntry,
  getMessages: () => getMessages,
  listFiles: () => listFiles,
  parseFile: () => parseFile,
  roots: () => roots
});

// src/agents/pi.js
var exports_pi = {};
__export(exports_pi, {
  agentType: () => agentType2,
  getMessages: () => getMessages2,
  listFiles: () => listFiles2,
  parseFile: () => parseFile2,
  roots: () => roots2
});

// src/agents/codex.js
var exports_codex = {};
__export(exports_codex, {
  agentType: () => agentType3,
  getMessages: () => getMessages3,
  listFiles: () => listFiles3,
  parseFile: () => parseFile3,
  roots: () => roots3
});

// src/agents/opencode.js
var exports_opencode = {};
__export(exports_opencode, {
  agentType: () => agentType4,
  baseDir: () => baseDir,
  dbPath: () => dbPath,
  dbSignature: () => dbSignature,
  deleteSession: () => deleteSession,
  getMessages: () => getMessages4,
  listJsonFiles: () => listJsonFiles,
  listSqliteSessions: () => listSqliteSessions,
  parseJsonSession: () => parseJsonSession,
  storageDir: () => storageDir
});

// src/cli.js
import * as os from "os";

// src/version.js
var VERSION = "0.1.0";

// src/session-index.js
import * as fs3 from "fs";
import * as path6 from "path";

// src/agents/claude.js
import * as path2 from "path";

// src/agents/util.js
import * as fs from "fs";
import * as path from "path";
var FIRST_PROMPT_MAX = 200;
function listDir(dir) {
  try {
    return fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
}
function statOrNull(p) {
  try {
    return fs.statSync(p);
  } catch {
    return null;
  }
}
function walkFiles(dir, accept, visit, depth = 0) {
  if (depth > 32)
    return;
  for (const ent of listDir(dir)) {
    const p = path.join(dir, ent.name);
    if (ent.isDirectory())
      walkFiles(p, accept, visit, depth + 1);
    else if ((ent.isFile() || ent.isSymbolicLink()) && accept(ent.name))
      visit(p, ent, dir);
  }
}
function parseJsonl(text) {
  const entries = [];
  let skipped = 0;
  let start = 0;
  const n = text.length;
  while (start < n) {
    let end = text.indexOf(`
`, start);
    if (end === -1)
      end = n;
    const line = text.slice(start, end).trim();
    start = end + 1;
    if (!line)
      continue;
    try {
      const v = JSON.parse(line);
      if (v !== null && typeof v === "object" && !Array.isArray(v))
        entries.push(v);
      else
        skipped++;
    } catch {
      skipped++;
    }
  }
  return { entries, skipped };
}
function readText(p) {
  return fs.readFileSync(p, "utf8");
}
function firstText(content, types = ["text"]) {
  if (typeof content === "string")
    return content.trim() ? content : null;
  if (Array.isArray(content)) {
    for (const b of content) {
      if (b && typeof b === "object" && types.includes(b.type) && typeof b.text === "string" && b.text) {
        return b.text;
      }
    }
  }
  return null;
}
function clip(s) {
  return typeof s === "string" ? s.slice(0, FIRST_PROMPT_MAX) : null;
}
function toIso(ts) {
  if (ts === undefined || ts === null)
    return;
  if (typeof ts === "string")
    return ts;
  if (typeof ts === "number" && Number.isFinite(ts)) {
    try {
      return new Date(ts).toISOString();
    } catch {
      return;
    }
  }
  return;
}
function pageFromEnd(items, limit, offset) {
  const total = items.length;
  const start = Math.max(0, total - offset - limit);
  const end = Math.max(0, total - offset);
  return { slice: items.slice(start, end), total };
}
function safeJson(s) {
  try {
    return JSON.parse(s);
  } catch {
    return null;
  }
}
function fileSession({ id, agentType, directory, filePath, messageCount, firstPrompt, stat }) {
  return {
    id,
    agentType,
    title: firstPrompt || directory,
    directory,
    filePath,
    messageCount,
    firstPrompt,
    lastActivity: Math.round(stat.mtimeMs)
  };
}

// src/agents/claude.js
var agentType = "claude";
function roots(home) {
  return [path2.join(home, ".claude", "projects")];
}
function listFiles(home) {
  const out = [];
  const base = roots(home)[0];
  for (const proj of listDir(base)) {
    if (!proj.isDirectory())
      continue;
    const dir = path2.join(base, proj.name);
    for (const f of listDir(dir)) {
      if (!f.isFile() || !f.name.endsWith(".jsonl") || f.name.startsWith("agent-"))
        continue;
      out.push({ filePath: path2.join(dir, f.name), meta: proj.name });
    }
  }
  return out;
}
function promptOf(entry) {
  if (entry.type !== "user" && entry.type !== "human")
    return null;
  const c = entry.message?.content;
  if (typeof c === "string")
    return c.trim() ? c : null;
  if (Array.isArray(c))
    return firstText(c);
  if (typeof entry.content === "string" && entry.content.trim())
    return entry.content;
  return null;
}
function parseFile(filePath, projectName, stat) {
  const { entries, skipped } = parseJsonl(readText(filePath));
  if (entries.length === 0)
    return { session: null, skipped };
  let firstPrompt = null;
  for (const e of entries) {
    const p = promptOf(e);
    if (p) {
      firstPrompt = clip(p);
      break;
    }
  }
  return {
    skipped,
    session: fileSession({
      id: path2.basename(filePath, ".jsonl"),
      agentType,
      directory: projectName,
      filePath,
      messageCount: entries.length,
      firstPrompt,
      stat
    })
  };
}
function convertEntry(entry) {
  const ts = entry.timestamp;
  if (entry.type === "user" || entry.type === "human") {
    const c = entry.message?.content;
    const out = [];
    if (typeof c === "string") {
      if (c.trim())
        out.push({ type: "user", content: c, timestamp: ts });
    } else if (Array.isArray(c)) {
      const t = firstText(c);
      if (t)
        out.push({ type: "user", content: t, timestamp: ts });
      for (const b of c) {
        if (b && b.type === "tool_result") {
          out.push({
            type: "tool_result",
            content: typeof b.content === "string" ? b.content : JSON.stringify(b.content ?? ""),
            toolId: b.tool_use_id,
            timestamp: ts
          });
        }
      }
    } else if (typeof entry.content === "string" && entry.content.trim()) {
      out.push({ type: "user", content: entry.content, timestamp: ts });
    }
    return out;
  }
  if (entry.type === "assistant") {
    const c = entry.message?.content;
    if (typeof c === "string")
      return c.trim() ? [{ type: "assistant", content: c, timestamp: ts }] : [];
    if (!Array.isArray(c))
      return [];
    const out = [];
    for (const b of c) {
      if (!b || typeof b !== "object")
        continue;
      if (b.type === "text" && b.text)
        out.push({ type: "assistant", content: b.text, timestamp: ts });
      else if (b.type === "tool_use")
        out.push({
          type: "tool_use",
          toolName: b.name,
          toolId: b.id,
          toolInput: JSON.stringify(b.input ?? {}),
          timestamp: ts
        });
    }
    return out;
  }
  if (entry.type === "tool_result") {
    return [
      {
        type: "tool_result",
        content: typeof entry.content === "string" ? entry.content : JSON.stringify(entry.content ?? ""),
        toolId: entry.tool_use_id,
        timestamp: ts
      }
    ];
  }
  return [];
}
function getMessages(session, limit, offset) {
  const { entries } = parseJsonl(readText(session.filePath));
  const { slice, total } = pageFromEnd(entries, limit, offset);
  const messages = [];
  for (const e of slice)
    messages.push(...convertEntry(e));
  return { messages, total };
}

// src/agents/pi.js
import * as path3 from "path";
var agentType2 = "pi";
function roots2(home) {
  return [path3.join(home, ".pi", "agent", "sessions")];
}
function listFiles2(home) {
  const out = [];
  walkFiles(roots2(home)[0], (n) => n.endsWith(".jsonl"), (p, _e, dir) => out.push({ filePath: p, meta: path3.basename(dir) }));
  return out;
}
function idFromName(filePath) {
  const base = path3.basename(filePath, ".jsonl");
  const parts = base.split("_");
  return parts.length > 1 ? parts[parts.length - 1] : base;
}
function roleOf(e) {
  return e.role ?? e.message?.role;
}
function contentOf(e) {
  return e.content !== undefined ? e.content : e.message?.content;
}
function isMessage(e) {
  const r = roleOf(e);
  return e.type === "message" && (r === "user" || r === "assistant");
}
function parseFile2(filePath, dirName, stat) {
  const { entries, skipped } = parseJsonl(readText(filePath));
  if (entries.length === 0)
    return { session: null, skipped };
  let id = idFromName(filePath);
  let firstPrompt = null;
  let messageCount = 0;
  for (const e of entries) {
    if ((e.type === "header" || e.type === "session") && typeof e.id === "string" && e.id)
      id = e.id;
    if (isMessage(e)) {
      messageCount++;
      if (!firstPrompt && roleOf(e) === "user") {
        const t = firstText(contentOf(e));
        if (t)
          firstPrompt = clip(t);
      }
    }
  }
  return {
    skipped,
    session: fileSession({ id, agentType: agentType2, directory: dirName, filePath, messageCount, firstPrompt, stat })
  };
}
function getMessages2(session, limit, offset) {
  const { entries } = parseJsonl(readText(session.filePath));
  const all = [];
  for (const e of entries) {
    if (!isMessage(e))
      continue;
    const t = firstText(contentOf(e));
    if (t)
      all.push({ type: roleOf(e), content: t, timestamp: toIso(e.timestamp ?? e.message?.timestamp) });
  }
  const { slice, total } = pageFromEnd(all, limit, offset);
  return { messages: slice, total };
}

// src/agents/codex.js
import * as path4 from "path";
var agentType3 = "codex";
var TEXT_TYPES = ["input_text", "output_text", "text"];
var UUID_TAIL = /([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i;
function roots3(home) {
  return [path4.join(home, ".codex", "sessions")];
}
function listFiles3(home) {
  const out = [];
  walkFiles(roots3(home)[0], (n) => n.startsWith("rollout-") && n.endsWith(".jsonl"), (p, _e, dir) => out.push({ filePath: p, meta: path4.basename(dir) }));
  return out;
}
function idFromName2(filePath) {
  const base = path4.basename(filePath, ".jsonl");
  const m = base.match(UUID_TAIL);
  return m ? m[1] : base;
}
function itemOf(e) {
  if (e.type === "response_item" && e.payload && typeof e.payload === "object")
    return e.payload;
  if (e.type === "message" || e.type === "function_call" || e.type === "function_call_output")
    return e;
  return null;
}
function isInjected(text) {
  const t = text.trimStart();
  return t.startsWith("<environment_context>") || t.startsWith("<user_instructions>") || t.startsWith("# AGENTS.md");
}
function parseFile3(filePath, dirName, stat) {
  const { entries, skipped } = parseJsonl(readText(filePath));
  if (entries.length === 0)
    return { session: null, skipped };
  let id = null;
  let directory = null;
  let firstPrompt = null;
  let messageCount = 0;
  const first = entries[0];
  if (first.type === "session_meta" && first.payload) {
    if (typeof first.payload.id === "string")
      id = first.payload.id;
    if (typeof first.payload.cwd === "string")
      directory = first.payload.cwd;
  } else if (typeof first.id === "string" && first.id && !first.type) {
    id = first.id;
  }
  for (const e of entries) {
    if (!directory && e.type === "turn_context" && typeof e.payload?.cwd === "string")
      directory = e.payload.cwd;
    const it = itemOf(e);
    if (!it || it.type !== "message" || it.role !== "user" && it.role !== "assistant")
      continue;
    messageCount++;
    if (!firstPrompt && it.role === "user") {
      const t = firstText(it.content, TEXT_TYPES);
      if (t && !isInjected(t))
        firstPrompt = clip(t);
    }
  }
  directory = directory || dirName;
  return {
    skipped,
    session: fileSession({ id: id || idFromName2(filePath), agentType: agentType3, directory, filePath, messageCount, firstPrompt, stat })
  };
}
function getMessages3(session, limit, offset) {
  const { entries } = parseJsonl(readText(session.filePath));
  const all = [];
  for (const e of entries) {
    const it = itemOf(e);
    if (!it)
      continue;
    const ts = e.timestamp;
    if (it.type === "message" && (it.role === "user" || it.role === "assistant")) {
      const t = firstText(it.content, TEXT_TYPES);
      if (t && !(it.role === "user" && isInjected(t)))
        all.push({ type: it.role, content: t, timestamp: ts });
    } else if (it.type === "function_call") {
      all.push({
        type: "tool_use",
        toolName: it.name,
        toolId: it.call_id ?? it.id,
        toolInput: typeof it.arguments === "string" ? it.arguments : JSON.stringify(it.arguments ?? {}),
        timestamp: ts
      });
    } else if (it.type === "function_call_output") {
      const o = it.output;
      all.push({
        type: "tool_result",
        content: typeof o === "string" ? o : typeof o?.content === "string" ? o.content : JSON.stringify(o ?? ""),
        toolId: it.call_id,
        timestamp: ts
      });
    }
  }
  const { slice, total } = pageFromEnd(all, limit, offset);
  return { messages: slice, total };
}

// src/agents/opencode.js
import * as fs2 from "fs";
import * as path5 from "path";
import { Database } from "bun:sqlite";
var agentType4 = "opencode";
function baseDir(home) {
  return path5.join(home, ".local", "share", "opencode");
}
function dbPath(home) {
  return path5.join(baseDir(home), "opencode.db");
}
function storageDir(home) {
  return path5.join(baseDir(home), "storage");
}
function dbSignature(home) {
  const p = dbPath(home);
  const s = statOrNull(p);
  if (!s)
    return null;
  const w = statOrNull(p + "-wal");
  return `${s.size}:${s.mtimeMs}:${w ? `${w.size}:${w.mtimeMs}` : "-"}`;
}
function withDb(home, readonly, fn) {
  const db = readonly ? new Database(dbPath(home), { readonly: true }) : new Database(dbPath(home));
  try {
    return fn(db);
  } finally {
    db.close();
  }
}
function listSqliteSessions(home) {
  return withDb(home, true, (db) => {
    let rows;
    try {
      rows = db.query(`SELECT s.id AS id, s.title AS title, s.directory AS directory, s.time_updated AS time_updated,
                  COUNT(m.id) AS message_count
             FROM session s LEFT JOIN message m ON m.session_id = s.id
            GROUP BY s.id`).all();
    } catch {
      rows = db.query(`SELECT id, title, directory, time_updated, 0 AS message_count FROM session`).all();
    }
    return rows.map((r) => ({
      id: String(r.id),
      agentType: agentType4,
      title: r.title || "",
      directory: r.directory || "",
      filePath: "",
      messageCount: Number(r.message_count) || 0,
      firstPrompt: r.title || null,
      lastActivity: Number(r.time_updated) || 0,
      source: "sqlite"
    }));
  });
}
function convertPart(part, role, timestamp) {
  if (!part || typeof part !== "object")
    return [];
  if (part.type === "text" && part.text)
    return [{ type: role, content: part.text, timestamp }];
  if (part.type !== "tool")
    return [];
  const toolName = part.state?.title || part.tool || "";
  const toolId = part.callID || part.id || "";
  const out = [
    {
      type: "tool_use",
      toolName,
      toolId,
      toolInput: part.state?.input ? JSON.stringify(part.state.input) : "",
      timestamp
    }
  ];
  if (part.state?.output)
    out.push({ type: "tool_result", content: String(part.state.output), toolId, timestamp });
  return out;
}
function convertMessage(data, parts, timeCreated) {
  if (!data || data.role !== "user" && data.role !== "assistant")
    return [];
  const ts = toIso(timeCreated ?? data.time?.created);
  const out = [];
  for (const p of parts)
    out.push(...convertPart(p, data.role, ts));
  if (parts.length === 0) {
    const inline = typeof data.content === "string" ? data.content : typeof data.text === "string" ? data.text : null;
    if (inline)
      out.push({ type: data.role, content: inline, timestamp: ts });
  }
  return out;
}
function sqliteMessages(home, sessionId) {
  return withDb(home, true, (db) => {
    const msgs = db.query(`SELECT id, data, time_created FROM message WHERE session_id = ? ORDER BY time_created, id`).all(sessionId);
    const byMsg = new Map;
    try {
      const parts = db.query(`SELECT message_id, data FROM part WHERE session_id = ? ORDER BY message_id, id`).all(sessionId);
      for (const p of parts) {
        const d = safeJson(p.data);
        if (!d)
          continue;
        if (!byMsg.has(p.message_id))
          byMsg.set(p.message_id, []);
        byMsg.get(p.message_id).push(d);
      }
    } catch {}
    const out = [];
    for (const m of msgs)
      out.push(...convertMessage(safeJson(m.data), byMsg.get(m.id) ?? [], m.time_created));
    return out;
  });
}
function listJsonFiles(home) {
  const root = path5.join(storageDir(home), "session");
  const out = [];
  for (const proj of listDir(root)) {
    if (!proj.isDirectory())
      continue;
    const dir = path5.join(root, proj.name);
    for (const f of listDir(dir)) {
      if (!f.isFile() || !f.name.startsWith("ses_") || !f.name.endsWith(".json"))
        continue;
      const id = f.name.slice(0, -".json".length);
      out.push({ filePath: path5.join(dir, f.name), meta: proj.name, extraStat: path5.join(storageDir(home), "message", id) });
    }
  }
  return out;
}
function countJson(dir) {
  let n = 0;
  for (const f of listDir(dir))
    if (f.isFile() && f.name.endsWith(".json"))
      n++;
  return n;
}
function parseJsonSession(filePath, project, stat, home) {
  const data = safeJson(readText(filePath));
  if (!data || typeof data !== "object")
    throw new Error("invalid session JSON");
  const id = typeof data.id === "string" && data.id ? data.id : path5.basename(filePath, ".json");
  const updated = Number(data.time?.updated) || Math.round(stat.mtimeMs);
  return {
    skipped: 0,
    session: {
      id,
      agentType: agentType4,
      title: data.title || "",
      directory: data.directory || project,
      filePath,
      messageCount: countJson(path5.join(storageDir(home), "message", id)),
      firstPrompt: data.title || null,
      lastActivity: updated,
      source: "json"
    }
  };
}
function jsonMessages(home, sessionId) {
  const mdir = path5.join(storageDir(home), "message", sessionId);
  const records = [];
  for (const f of listDir(mdir)) {
    if (!f.isFile() || !f.name.endsWith(".json"))
      continue;
    const d = safeJson(readText(path5.join(mdir, f.name)));
    if (d && typeof d === "object")
      records.push({ ...d, id: d.id || f.name.slice(0, -5) });
  }
  records.sort((a, b) => (Number(a.time?.created) || 0) - (Number(b.time?.created) || 0) || String(a.id).localeCompare(String(b.id)));
  const out = [];
  for (const r of records) {
    const pdir = path5.join(storageDir(home), "part", r.id);
    const parts = listDir(pdir).filter((f) => f.isFile() && f.name.endsWith(".json")).map((f) => f.name).sort().map((n) => safeJson(readText(path5.join(pdir, n)))).filter(Boolean);
    out.push(...convertMessage(r, parts, r.time?.created));
  }
  return out;
}
function getMessages4(session, limit, offset, home) {
  const all = session.source === "json" ? jsonMessages(home, session.id) : sqliteMessages(home, session.id);
  const { slice, total } = pageFromEnd(all, limit, offset);
  return { messages: slice, total };
}
function deleteSession(session, home) {
  if (session.source === "json") {
    fs2.rmSync(session.filePath, { force: true });
    const mdir = path5.join(storageDir(home), "message", session.id);
    for (const f of listDir(mdir)) {
      const msgId = f.name.replace(/\.json$/, "");
      fs2.rmSync(path5.join(storageDir(home), "part", msgId), { recursive: true, force: true });
    }
    fs2.rmSync(mdir, { recursive: true, force: true });
    return;
  }
  withDb(home, false, (db) => {
    db.run("PRAGMA foreign_keys = ON");
    db.query("DELETE FROM session WHERE id = ?").run(session.id);
  });
}

// src/session-index.js
var DEBOUNCE_MS = 100;
var RECHECK_MS = 250;
var DIRTY_MAX = 1e4;
var RECONCILE_MS = 60000;
var RECONCILE_SHARE = 0.005;
var RECONCILE_BATCH = 2000;
var BODY_CACHE_SESSIONS = 1e4;
var STREAM_CHUNK = 1000;
var MAX_FILE_BYTES = 256 * 1024 * 1024;
var under = (root, p) => p.startsWith(root + path6.sep) ? p.slice(root.length + 1).split(path6.sep) : null;
var FILE_SOURCES = [
  {
    name: "claude",
    agent: exports_claude,
    list: (h) => listFiles(h),
    parse: (p, m, s) => parseFile(p, m, s),
    classify: (h, p) => {
      const r = under(roots(h)[0], p);
      if (!r || r.length !== 2 || !r[1].endsWith(".jsonl") || r[1].startsWith("agent-"))
        return null;
      return { filePath: p, meta: r[0], noLinks: true };
    }
  },
  {
    name: "opencode-json",
    agent: exports_opencode,
    list: (h) => listJsonFiles(h),
    parse: (p, m, s, h) => parseJsonSession(p, m, s, h),
    classify: (h, p) => {
      const r = under(path6.join(storageDir(h), "session"), p);
      if (!r || r.length !== 2 || !r[1].startsWith("ses_") || !r[1].endsWith(".json"))
        return null;
      const id = r[1].slice(0, -".json".length);
      return { filePath: p, meta: r[0], extraStat: path6.join(storageDir(h), "message", id), noLinks: true };
    }
  },
  {
    name: "pi",
    agent: exports_pi,
    list: (h) => listFiles2(h),
    parse: (p, m, s) => parseFile2(p, m, s),
    classify: (h, p) => {
      const r = under(roots2(h)[0], p);
      if (!r || r.length > 33 || !r[r.length - 1].endsWith(".jsonl"))
        return null;
      return { filePath: p, meta: path6.basename(path6.dirname(p)) };
    }
  },
  {
    name: "codex",
    agent: exports_codex,
    list: (h) => listFiles3(h),
    parse: (p, m, s) => parseFile3(p, m, s),
    classify: (h, p) => {
      const r = under(roots3(h)[0], p);
      const n = r && r[r.length - 1];
      if (!r || r.length > 33 || !n.startsWith("rollout-") || !n.endsWith(".jsonl"))
        return null;
      return { filePath: p, meta: path6.basename(path6.dirname(p)) };
    }
  }
];
var jsonOf = new WeakMap;
function sessionJson(pub) {
  let j = jsonOf.get(pub);
  if (j === undefined) {
    j = JSON.stringify(pub);
    jsonOf.set(pub, j);
  }
  return j;
}
function split(session) {
  const { source, ...pub } = session;
  return { pub, source };
}
function lstatOrNull(p) {
  try {
    return fs3.lstatSync(p);
  } catch {
    return null;
  }
}

class SessionIndex {
  constructor({ home, fullRescan = false, watch = false, reconcileMs = RECONCILE_MS, maxFileBytes = MAX_FILE_BYTES, log = () => {} }) {
    this.home = home;
    this.fullRescan = fullRescan;
    this.watchEnabled = watch && !fullRescan;
    this.reconcileMs = reconcileMs;
    this.maxFileBytes = maxFileBytes;
    this.log = log;
    this.fileCache = new Map;
    this.dirFiles = new Map;
    this.msgDirs = new Map;
    this.sqlite = { sig: null, entries: [], failed: false };
    this.byId = new Map;
    this.generation = 0;
    this.listCache = null;
    this.sortedCache = null;
    this.skipped = { lines: 0, files: 0 };
    this.stats = { scans: 0, syncs: 0, walks: 0, reconciles: 0, parsedFiles: 0, lastScanMs: 0, lastReconcileMs: 0, overflows: 0 };
    this.watchers = new Map;
    this.unwatchable = new Set;
    this.dirty = new Set;
    this.recheck = new Set;
    this.recheckTimer = null;
    this.needWalk = true;
    this.stale = false;
    this.debounce = null;
    this.reconcileTimer = null;
    this.reconciling = false;
    this.closed = false;
  }
  get tracking() {
    return this.watchEnabled && this.unwatchable.size === 0;
  }
  get trackingMode() {
    if (this.fullRescan)
      return "full-rescan";
    return this.tracking ? "watch" : "stat-walk";
  }
  sync() {
    if (!this.tracking || this.needWalk)
      return this.scan();
    const t0 = performance.now();
    this.ensureWatchers();
    if (!this.tracking || this.needWalk)
      return this.scan();
    this.stats.syncs++;
    if (this.dirty.size) {
      const paths = this.dirty;
      this.dirty = new Set;
      for (const p of paths)
        this.checkPath(p);
      this.scheduleRecheck(paths);
    }
    this.syncDb();
    const changed = this.stale;
    if (changed)
      this.rebuild();
    this.stats.lastScanMs = Math.round((performance.now() - t0) * 100) / 100;
    return changed;
  }
  scan() {
    const t0 = performance.now();
    if (this.watchEnabled)
      this.ensureWatchers();
    if (this.fullRescan) {
      this.fileCache.clear();
      this.dirFiles.clear();
      this.msgDirs.clear();
      this.sqlite = { sig: null, entries: [], failed: false, forced: true };
      this.stale = true;
    }
    const seen = new Set;
    for (const src of FILE_SOURCES) {
      for (const f of this.listSource(src)) {
        seen.add(f.filePath);
        this.update(src, f);
      }
    }
    for (const p of [...this.fileCache.keys()])
      if (!seen.has(p))
        this.forget(p);
    this.dirty.clear();
    this.needWalk = false;
    this.syncDb();
    const changed = this.stale;
    if (changed)
      this.rebuild();
    this.stats.scans++;
    this.stats.walks++;
    this.stats.lastScanMs = Math.round((performance.now() - t0) * 100) / 100;
    return changed;
  }
  listSource(src) {
    try {
      return src.list(this.home);
    } catch {
      return [];
    }
  }
  update(src, { filePath, meta, extraStat, noLinks }) {
    const st = noLinks ? lstatOrNull(filePath) : statOrNull(filePath);
    if (!st || !st.isFile()) {
      this.forget(filePath);
      return;
    }
    let sig = `${st.size}:${st.mtimeMs}`;
    if (extraStat) {
      const es = statOrNull(extraStat);
      sig += es ? `:${es.mtimeMs}` : ":-";
    }
    const cached = this.fileCache.get(filePath);
    if (cached && cached.sig === sig)
      return;
    this.stale = true;
    if (!cached) {
      const dir = path6.dirname(filePath);
      this.dirFiles.set(dir, (this.dirFiles.get(dir) || 0) + 1);
      if (extraStat)
        this.msgDirs.set(extraStat, filePath);
    }
    if (st.size > this.maxFileBytes) {
      this.fileCache.set(filePath, { sig, entry: null, skippedLines: 0, failed: true, src });
      this.log(`[index] skipped ${filePath}: ${st.size} bytes is more than the ${this.maxFileBytes} a session file may have`);
      return;
    }
    this.stats.parsedFiles++;
    try {
      const r = src.parse(filePath, meta, st, this.home);
      const entry = r.session ? { ...split(r.session), agent: src.agent } : null;
      this.fileCache.set(filePath, { sig, entry, skippedLines: r.skipped || 0, failed: false, src });
    } catch (err) {
      this.fileCache.set(filePath, { sig, entry: null, skippedLines: 0, failed: true, src });
      this.log(`[index] skipped unreadable file ${filePath}: ${err?.message ?? err}`);
    }
  }
  forget(filePath) {
    const cached = this.fileCache.get(filePath);
    if (!cached)
      return;
    this.fileCache.delete(filePath);
    this.stale = true;
    const dir = path6.dirname(filePath);
    const n = (this.dirFiles.get(dir) || 1) - 1;
    if (n)
      this.dirFiles.set(dir, n);
    else
      this.dirFiles.delete(dir);
    if (cached.src?.name === "opencode-json") {
      for (const [m, f] of this.msgDirs)
        if (f === filePath)
          this.msgDirs.delete(m);
    }
  }
  classify(p) {
    for (const src of FILE_SOURCES) {
      const f = src.classify(this.home, p);
      if (f)
        return [src, f];
    }
    return null;
  }
  checkPath(p) {
    const st = lstatOrNull(p);
    if (st && st.isDirectory()) {
      walkFiles(p, () => true, (fp) => this.checkFile(fp));
      return;
    }
    if (!st)
      this.forgetUnder(p);
    this.checkFile(p);
  }
  checkFile(p) {
    const hit = this.classify(p);
    if (hit)
      return this.update(hit[0], hit[1]);
    const r = under(path6.join(storageDir(this.home), "message"), p);
    if (r && r.length >= 1) {
      const file = this.msgDirs.get(path6.join(storageDir(this.home), "message", r[0]));
      const again = file && this.classify(file);
      if (again)
        this.update(again[0], again[1]);
    }
  }
  forgetUnder(p) {
    const prefix = p + path6.sep;
    const gone = new Set([...this.dirFiles.keys()].filter((d) => d === p || d.startsWith(prefix)));
    if (!gone.size)
      return;
    for (const f of [...this.fileCache.keys()])
      if (gone.has(path6.dirname(f)))
        this.forget(f);
  }
  syncDb() {
    const dbSig = dbSignature(this.home);
    if (dbSig === this.sqlite.sig && !this.sqlite.forced)
      return;
    this.stale = true;
    if (dbSig === null)
      this.sqlite = { sig: null, entries: [], failed: false };
    else {
      try {
        const rows = listSqliteSessions(this.home);
        this.sqlite = { sig: dbSig, entries: rows.map((s) => ({ ...split(s), agent: exports_opencode })), failed: false };
      } catch (err) {
        this.sqlite = { sig: dbSig, entries: [], failed: true };
        this.log(`[index] skipped unreadable opencode db: ${err?.message ?? err}`);
      }
    }
  }
  rebuild() {
    const byId = new Map;
    let lines = 0;
    let files = 0;
    const add = (e) => {
      if (e)
        byId.set(e.pub.id, e);
    };
    const bySource = FILE_SOURCES.map(() => []);
    for (const c of this.fileCache.values()) {
      lines += c.skippedLines;
      if (c.failed)
        files++;
      if (c.entry)
        bySource[FILE_SOURCES.indexOf(c.src)].push(c.entry);
    }
    for (const list of bySource)
      for (const e of list)
        add(e);
    if (this.sqlite.failed)
      files++;
    for (const e of this.sqlite.entries)
      add(e);
    this.byId = byId;
    this.skipped = { lines, files };
    this.generation++;
    this.listCache = null;
    this.sortedCache = null;
    this.stale = false;
  }
  get size() {
    return this.byId.size;
  }
  list() {
    if (!this.sortedCache || this.sortedCache.generation !== this.generation) {
      const list = Array.from(this.byId.values(), (e) => e.pub).sort((a, b) => b.lastActivity - a.lastActivity || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      this.sortedCache = { generation: this.generation, list };
    }
    return this.sortedCache.list;
  }
  page({ limit = Infinity, offset = 0, agentTypes = [], since = null } = {}) {
    const wanted = new Set(agentTypes);
    const sorted = this.list();
    const all = !wanted.size && since === null ? sorted : sorted.filter((s) => (!wanted.size || wanted.has(s.agentType)) && (since === null || s.lastActivity >= since));
    return {
      sessions: all.slice(offset, limit === Infinity ? undefined : offset + limit),
      total: all.length,
      offset,
      limit: limit === Infinity ? null : limit
    };
  }
  listBody() {
    const list = this.list();
    if (list.length > BODY_CACHE_SESSIONS) {
      const enc = new TextEncoder;
      let i = 0;
      return new ReadableStream({
        pull(ctrl) {
          if (i >= list.length) {
            ctrl.enqueue(enc.encode(i === 0 ? '{"sessions":[]}' : "]}"));
            ctrl.close();
            return;
          }
          const head = i === 0 ? '{"sessions":[' : ",";
          const part = JSON.stringify(list.slice(i, i + STREAM_CHUNK));
          i += STREAM_CHUNK;
          ctrl.enqueue(enc.encode(head + part.slice(1, -1)));
        }
      });
    }
    if (!this.listCache || this.listCache.generation !== this.generation) {
      const body = '{"sessions":[' + list.map(sessionJson).join(",") + "]}";
      this.listCache = { generation: this.generation, body: new TextEncoder().encode(body) };
    }
    return this.listCache.body;
  }
  lookup(id) {
    let e = this.byId.get(id);
    if (!e && !this.fullRescan) {
      this.sync();
      e = this.byId.get(id);
    }
    return e;
  }
  get(id) {
    return this.lookup(id)?.pub;
  }
  getMessages(id, limit, offset) {
    const e = this.lookup(id);
    if (!e)
      return { id, messages: [], total: 0 };
    try {
      const { messages, total } = e.agent.getMessages({ ...e.pub, source: e.source }, limit, offset, this.home);
      return { id: e.pub.id, messages, total };
    } catch {
      return { id: e.pub.id, messages: [], total: 0 };
    }
  }
  delete(id) {
    const e = this.lookup(id);
    if (!e)
      return { success: false, error: "Session not found" };
    try {
      if (e.agent === exports_opencode)
        deleteSession({ ...e.pub, source: e.source }, this.home);
      else
        fs3.unlinkSync(e.pub.filePath);
    } catch (err) {
      return { success: false, error: `Failed to delete session: ${err?.message ?? err}` };
    }
    if (e.pub.filePath)
      this.forget(e.pub.filePath);
    if (e.source === "sqlite") {
      this.sqlite = { ...this.sqlite, entries: this.sqlite.entries.filter((x) => x.pub.id !== id), sig: dbSignature(this.home) };
    }
    this.rebuild();
    return { success: true };
  }
  watchRoots() {
    return [
      ...roots(this.home),
      ...roots2(this.home),
      ...roots3(this.home),
      storageDir(this.home),
      baseDir(this.home)
    ];
  }
  ensureWatchers() {
    if (this.closed)
      return;
    for (const root of this.watchRoots()) {
      if (this.watchers.has(root))
        continue;
      if (!statOrNull(root)) {
        this.unwatchable.delete(root);
        continue;
      }
      try {
        const recursive = root !== baseDir(this.home);
        const w = fs3.watch(root, { recursive }, (_type, name) => this.onEvent(root, name));
        w.on?.("error", (err) => this.dropWatcher(root, w, err));
        this.watchers.set(root, w);
        this.unwatchable.delete(root);
        if (recursive)
          this.mark(root);
      } catch (err) {
        if (!this.unwatchable.has(root))
          this.log(`[index] cannot watch ${root} (${err?.message ?? err}): stat-walking instead`);
        this.unwatchable.add(root);
      }
    }
  }
  dropWatcher(root, w, err) {
    try {
      w.close();
    } catch {}
    if (this.watchers.get(root) === w)
      this.watchers.delete(root);
    this.log(`[index] watcher of ${root} failed (${err?.message ?? err}): one full walk, then watching again`);
    this.needWalk = true;
    this.schedule();
  }
  onEvent(root, name) {
    if (name === null || name === undefined || name === "") {
      this.needWalk = true;
    } else {
      this.mark(path6.join(root, String(name)));
    }
    this.schedule();
  }
  mark(p) {
    if (this.needWalk)
      return;
    if (this.dirty.size >= DIRTY_MAX) {
      this.stats.overflows++;
      this.dirty.clear();
      this.needWalk = true;
      return;
    }
    this.dirty.add(p);
  }
  scheduleRecheck(paths) {
    if (this.closed)
      return;
    for (const p of paths) {
      if (this.recheck.size >= DIRTY_MAX)
        break;
      this.recheck.add(p);
    }
    if (this.recheckTimer || !this.recheck.size)
      return;
    this.recheckTimer = setTimeout(() => {
      this.recheckTimer = null;
      const paths = this.recheck;
      this.recheck = new Set;
      try {
        for (const p of paths)
          this.checkPath(p);
        if (this.stale)
          this.rebuild();
      } catch (err) {
        this.log(`[index] recheck failed: ${err?.message ?? err}`);
      }
    }, RECHECK_MS);
  }
  schedule() {
    if (this.closed || this.debounce)
      return;
    this.debounce = setTimeout(() => {
      this.debounce = null;
      try {
        this.sync();
      } catch (err) {
        this.log(`[index] watch-triggered sync failed: ${err?.message ?? err}`);
      }
    }, DEBOUNCE_MS);
  }
  startReconciling() {
    if (!this.watchEnabled || this.closed || this.reconcileTimer)
      return;
    const next = Math.max(this.reconcileMs, this.stats.lastReconcileMs / RECONCILE_SHARE);
    this.reconcileTimer = setTimeout(async () => {
      this.reconcileTimer = null;
      try {
        await this.reconcile();
      } catch (err) {
        this.log(`[index] reconciliation failed: ${err?.message ?? err}`);
      }
      this.startReconciling();
    }, next);
    this.reconcileTimer.unref?.();
  }
  async reconcile() {
    if (this.reconciling || this.closed)
      return false;
    this.reconciling = true;
    let busy = 0;
    try {
      let t = performance.now();
      this.ensureWatchers();
      const seen = new Set;
      for (const src of FILE_SOURCES) {
        const files = this.listSource(src);
        for (let i = 0;i < files.length; i++) {
          seen.add(files[i].filePath);
          this.update(src, files[i]);
          if ((i + 1) % RECONCILE_BATCH === 0) {
            busy += performance.now() - t;
            await new Promise((r) => setImmediate(r));
            if (this.closed)
              return false;
            t = performance.now();
          }
        }
        busy += performance.now() - t;
        await new Promise((r) => setImmediate(r));
        t = performance.now();
      }
      for (const p of [...this.fileCache.keys()])
        if (!seen.has(p) && !statOrNull(p))
          this.forget(p);
      this.syncDb();
      const changed = this.stale;
      if (changed)
        this.rebuild();
      busy += performance.now() - t;
      this.stats.reconciles++;
      this.stats.lastReconcileMs = Math.round(busy * 100) / 100;
      return changed;
    } finally {
      this.reconciling = false;
    }
  }
  close() {
    this.closed = true;
    if (this.debounce)
      clearTimeout(this.debounce);
    if (this.reconcileTimer)
      clearTimeout(this.reconcileTimer);
    if (this.recheckTimer)
      clearTimeout(this.recheckTimer);
    this.debounce = this.reconcileTimer = this.recheckTimer = null;
    for (const w of this.watchers.values()) {
      try {
        w.close();
      } catch {}
    }
    this.watchers.clear();
  }
}

// src/auth.js
import * as fs4 from "fs";
import { createHash, timingSafeEqual } from "crypto";
var DEFAULT_AUTH_FILE = "/etc/perry/worker.auth";
var MAX_AUTH_FILE = 4096;
function loadAuth(file = process.env.PERRY_WORKER_AUTH_FILE || DEFAULT_AUTH_FILE) {
  let text;
  try {
    const st = fs4.statSync(file);
    if (!st.isFile())
      return { mode: "token", digest: null, error: `${file} is not a regular file` };
    if (st.size > MAX_AUTH_FILE)
      return { mode: "token", digest: null, error: `${file} is too large` };
    text = fs4.readFileSync(file, "utf8");
  } catch (err) {
    if (err?.code === "ENOENT")
      return { mode: "none" };
    return { mode: "token", digest: null, error: `cannot read ${file}: ${err?.code ?? err}` };
  }
  const m = text.match(/^\s*authorization\s*:\s*bearer\s+(\S+)\s*$/im);
  if (!m)
    return { mode: "token", digest: null, error: `${file} holds no "Authorization: Bearer <token>" line` };
  return { mode: "token", digest: digest(m[1]) };
}
function digest(text) {
  return createHash("sha256").update(text, "utf8").digest();
}
function authorized(auth, req) {
  if (auth.mode === "none")
    return true;
  if (!auth.digest)
    return false;
  const h = req.headers.get("authorization") || "";
  const m = h.match(/^\s*bearer\s+(\S+)\s*$/i);
  if (!m)
    return false;
  return timingSafeEqual(digest(m[1]), auth.digest);
}

// src/engine-probe.js
import { existsSync } from "fs";
var TTL_MS = 5000;
var FAILED_TTL_MS = 1000;
var TIMEOUT_MS = 1000;
var DIND_SOCKET = "/var/run/docker.sock";
function engineEndpoint(env = process.env) {
  const host = env.DOCKER_HOST || "";
  if (host.startsWith("unix://"))
    return { url: host, unix: host.slice("unix://".length) };
  if (host.startsWith("tcp://"))
    return { url: host, http: "http://" + host.slice("tcp://".length) };
  if (host)
    return { url: host, unsupported: true };
  if (existsSync(DIND_SOCKET))
    return { url: "unix://" + DIND_SOCKET, unix: DIND_SOCKET };
  return null;
}
function createEngineProbe({ endpoint = engineEndpoint(), now = () => Date.now() } = {}) {
  let last = null;
  let pending = null;
  async function ping() {
    if (!endpoint)
      return { configured: false, reachable: null };
    if (endpoint.unsupported)
      return { configured: true, url: endpoint.url, reachable: null, error: "not probed (ssh URL)" };
    const started = now();
    try {
      const opts = { signal: AbortSignal.timeout(TIMEOUT_MS) };
      if (endpoint.unix)
        opts.unix = endpoint.unix;
      const res = await fetch((endpoint.http || "http://engine") + "/_ping", opts);
      const body = (await res.text()).slice(0, 64);
      const ok = res.ok && body.trim() === "OK";
      return {
        configured: true,
        url: endpoint.url,
        reachable: ok,
        ms: now() - started,
        ...ok ? {} : { error: `HTTP ${res.status} ${body.trim()}` }
      };
    } catch (err) {
      return { configured: true, url: endpoint.url, reachable: false, error: String(err?.message ?? err).slice(0, 200) };
    }
  }
  return async function probe() {
    if (last && now() - last.at < (last.result.reachable === false ? FAILED_TTL_MS : TTL_MS))
      return last.result;
    pending ??= ping().then((result) => {
      last = { at: now(), result };
      pending = null;
      return result;
    });
    return pending;
  };
}

// src/server.js
var JSON_HEADERS = { "content-type": "application/json" };
function json(obj, status = 200) {
  return new Response(JSON.stringify(obj), { status, headers: JSON_HEADERS });
}
function intParam(v, dflt) {
  if (v === null || v === undefined || v === "")
    return dflt;
  const n = Number.parseInt(v, 10);
  return Number.isFinite(n) && n >= 0 ? n : dflt;
}
var UNAUTHORIZED_HEADERS = { ...JSON_HEADERS, "www-authenticate": 'Bearer realm="perry-worker"' };
function listQuery(params) {
  const keys = ["limit", "offset", "agentType", "since"];
  if (!keys.some((k) => params.has(k)))
    return null;
  const since = Number(params.get("since"));
  return {
    limit: intParam(params.get("limit"), Infinity),
    offset: intParam(params.get("offset"), 0),
    agentTypes: params.getAll("agentType").flatMap((v) => v.split(",")).filter(Boolean),
    since: params.has("since") && Number.isFinite(since) ? since : null
  };
}
function createHandler(index, { auth = { mode: "none" }, engine = createEngineProbe() } = {}) {
  return function handle(req) {
    const url = new URL(req.url);
    const p = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, "") : url.pathname;
    const m = req.method;
    if (!authorized(auth, req)) {
      return new Response(JSON.stringify({ error: "unauthorized: this worker requires its workspace's token" }), {
        status: 401,
        headers: UNAUTHORIZED_HEADERS
      });
    }
    try {
      if (p === "/health" && m === "GET") {
        const body = {
          status: "ok",
          version: VERSION,
          sessionCount: index.size,
          skipped: index.skipped,
          mode: index.fullRescan ? "full-rescan" : "incremental",
          tracking: index.trackingMode,
          auth: auth.mode
        };
        return engine().then((e) => json({ ...body, engine: e }));
      }
      if (p === "/sessions" && m === "GET") {
        index.sync();
        const q = listQuery(url.searchParams);
        if (q)
          return json(index.page(q));
        return new Response(index.listBody(), { headers: JSON_HEADERS });
      }
      if (p === "/refresh" && m === "POST") {
        index.scan();
        return json({ success: true });
      }
      const mm = p.match(/^\/sessions\/([^/]+)(\/messages)?$/);
      if (mm) {
        let id;
        try {
          id = decodeURIComponent(mm[1]);
        } catch {
          id = mm[1];
        }
        if (mm[2]) {
          if (m !== "GET")
            return json({ error: "Not Found" }, 404);
          const limit = intParam(url.searchParams.get("limit"), 50);
          const offset = intParam(url.searchParams.get("offset"), 0);
          return json(index.getMessages(id, limit, offset));
        }
        if (m === "GET") {
          const s = index.get(id);
          return s ? json({ session: s }) : json({ error: "Session not found" }, 404);
        }
        if (m === "DELETE") {
          const r = index.delete(id);
          return r.success ? json({ success: true }) : json({ success: false, error: r.error }, 404);
        }
      }
      return json({ error: "Not Found" }, 404);
    } catch (err) {
      return json({ error: String(err?.message ?? err) }, 500);
    }
  };
}
function startServer(index, { port = 7392, host = "0.0.0.0", auth = loadAuth() } = {}) {
  return Bun.serve({ port, hostname: host, fetch: createHandler(index, { auth }) });
}

// src/cli.js
var USAGE = `perry ${VERSION}
Usage:
  perry worker serve [--port N] [--host H] [--full-rescan] [--no-watch]
  perry --version

Environment:
  PERRY_WORKER_HOME          home directory to scan (default: $HOME)
  PERRY_WORKER_FULL_RESCAN=1 re-parse every session file on each GET /sessions (Perry behaviour)
  PERRY_WORKER_WATCH=0       disable file watchers (every GET /sessions then stat-walks the agent directories)
  PERRY_WORKER_RECONCILE_MS  least time between two reconciliation walks with watchers (default 60000)
  PERRY_WORKER_AUTH_FILE     the token file ("Authorization: Bearer <token>"; default ${DEFAULT_AUTH_FILE});
                             every route requires the token when it exists, none when it does not`;
function truthy(v) {
  return v !== undefined && v !== "" && v !== "0" && v.toLowerCase() !== "false";
}
function parseArgs(argv) {
  const opts = { port: 7392, host: "0.0.0.0", fullRescan: truthy(process.env.PERRY_WORKER_FULL_RESCAN), watch: process.env.PERRY_WORKER_WATCH === undefined ? true : truthy(process.env.PERRY_WORKER_WATCH) };
  for (let i = 0;i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (a.includes("="))
        return a.slice(a.indexOf("=") + 1);
      if (i + 1 >= argv.length)
        throw new Error(`missing value for ${a}`);
      return argv[++i];
    };
    if (a === "--port" || a === "-p" || a.startsWith("--port=")) {
      const n = Number(val());
      if (!Number.isInteger(n) || n < 0 || n > 65535)
        throw new Error("invalid --port");
      opts.port = n;
    } else if (a === "--host" || a.startsWith("--host="))
      opts.host = val();
    else if (a === "--full-rescan")
      opts.fullRescan = true;
    else if (a === "--no-watch")
      opts.watch = false;
    else
      throw new Error(`unknown option: ${a}`);
  }
  return opts;
}
function serve(argv) {
  let opts;
  try {
    opts = parseArgs(argv);
  } catch (err) {
    console.error(`error: ${err.message}
${USAGE}`);
    process.exit(2);
  }
  const home = process.env.PERRY_WORKER_HOME || os.homedir();
  const reconcileMs = Number(process.env.PERRY_WORKER_RECONCILE_MS || 60000);
  if (!Number.isFinite(reconcileMs) || reconcileMs < 100) {
    console.error(`error: PERRY_WORKER_RECONCILE_MS must be a number of milliseconds >= 100
${USAGE}`);
    process.exit(2);
  }
  const index = new SessionIndex({ home, fullRescan: opts.fullRescan, watch: opts.watch, reconcileMs, log: (m) => console.error(m) });
  index.scan();
  index.startReconciling();
  const auth = loadAuth();
  if (auth.error)
    console.error(`perry worker: ${auth.error}; every request is refused (401) until it is fixed`);
  let server;
  try {
    server = startServer(index, { ...opts, auth });
  } catch (err) {
    console.error(`error: cannot listen on ${opts.host}:${opts.port}: ${err?.message ?? err}`);
    process.exit(1);
  }
  console.log(`perry worker ${VERSION} listening on ${server.hostname}:${server.port} (home=${home}, mode=${opts.fullRescan ? "full-rescan" : "incremental"}, tracking=${index.trackingMode}, sessions=${index.size}, auth=${auth.mode})`);
  let stopping = false;
  const shutdown = (sig) => {
    if (stopping)
      return;
    stopping = true;
    console.log(`perry worker: ${sig} received, shutting down`);
    index.close();
    try {
      server.stop(true);
    } catch {}
    process.exit(0);
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}
function main(argv) {
  const [cmd, sub, ...rest] = argv;
  if (cmd === "--version" || cmd === "-v" || cmd === "version") {
    console.log(VERSION);
    return;
  }
  if (cmd === "worker" && sub === "serve")
    return serve(rest);
  if (cmd === undefined || cmd === "--help" || cmd === "-h" || cmd === "help") {
    console.log(USAGE);
    return;
  }
  console.error(`error: unknown command: ${argv.join(" ")}
${USAGE}`);
  process.exit(2);
}
main(process.argv.slice(2));
