// OpenCode: current SQLite store (~/.local/share/opencode/opencode.db, opened
// read-only per scan) and the older JSON storage tree
// (~/.local/share/opencode/storage/{session,message,part}/...).
import * as fs from "node:fs";
import * as path from "node:path";
import { Database } from "bun:sqlite";
import { listDir, readText, safeJson, pageFromEnd, toIso, statOrNull } from "./util.js";

export const agentType = "opencode";

export function baseDir(home) {
  return path.join(home, ".local", "share", "opencode");
}
export function dbPath(home) {
  return path.join(baseDir(home), "opencode.db");
}
export function storageDir(home) {
  return path.join(baseDir(home), "storage");
}

/** Cheap change signature for the database (main file + WAL); null when absent. */
export function dbSignature(home) {
  const p = dbPath(home);
  const s = statOrNull(p);
  if (!s) return null;
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

/** List SQLite sessions. Throws on unreadable/corrupt DB (caller counts it as skipped). */
export function listSqliteSessions(home) {
  return withDb(home, true, (db) => {
    let rows;
    try {
      rows = db
        .query(
          `SELECT s.id AS id, s.title AS title, s.directory AS directory, s.time_updated AS time_updated,
                  COUNT(m.id) AS message_count
             FROM session s LEFT JOIN message m ON m.session_id = s.id
            GROUP BY s.id`,
        )
        .all();
    } catch {
      // A DB without a message table still lists its sessions.
      rows = db.query(`SELECT id, title, directory, time_updated, 0 AS message_count FROM session`).all();
    }
    return rows.map((r) => ({
      id: String(r.id),
      agentType,
      title: r.title || "",
      directory: r.directory || "",
      filePath: "",
      messageCount: Number(r.message_count) || 0,
      firstPrompt: r.title || null,
      lastActivity: Number(r.time_updated) || 0,
      source: "sqlite",
    }));
  });
}

function convertPart(part, role, timestamp) {
  if (!part || typeof part !== "object") return [];
  if (part.type === "text" && part.text) return [{ type: role, content: part.text, timestamp }];
  if (part.type !== "tool") return [];
  const toolName = part.state?.title || part.tool || "";
  const toolId = part.callID || part.id || "";
  const out = [
    {
      type: "tool_use",
      toolName,
      toolId,
      toolInput: part.state?.input ? JSON.stringify(part.state.input) : "",
      timestamp,
    },
  ];
  if (part.state?.output) out.push({ type: "tool_result", content: String(part.state.output), toolId, timestamp });
  return out;
}

/** Messages for one role-bearing message record and its parts. */
function convertMessage(data, parts, timeCreated) {
  if (!data || (data.role !== "user" && data.role !== "assistant")) return [];
  const ts = toIso(timeCreated ?? data.time?.created);
  const out = [];
  for (const p of parts) out.push(...convertPart(p, data.role, ts));
  // Fallback for records that carry their text inline (no part rows).
  if (parts.length === 0) {
    const inline = typeof data.content === "string" ? data.content : typeof data.text === "string" ? data.text : null;
    if (inline) out.push({ type: data.role, content: inline, timestamp: ts });
  }
  return out;
}

function sqliteMessages(home, sessionId) {
  return withDb(home, true, (db) => {
    const msgs = db.query(`SELECT id, data, time_created FROM message WHERE session_id = ? ORDER BY time_created, id`).all(sessionId);
    const byMsg = new Map();
    try {
      const parts = db.query(`SELECT message_id, data FROM part WHERE session_id = ? ORDER BY message_id, id`).all(sessionId);
      for (const p of parts) {
        const d = safeJson(p.data);
        if (!d) continue;
        if (!byMsg.has(p.message_id)) byMsg.set(p.message_id, []);
        byMsg.get(p.message_id).push(d);
      }
    } catch {
      // no part table
    }
    const out = [];
    for (const m of msgs) out.push(...convertMessage(safeJson(m.data), byMsg.get(m.id) ?? [], m.time_created));
    return out;
  });
}

// ---------- older JSON storage ----------

/** Session files of the JSON storage: [{filePath, meta: project, extraStat: messageDir}]. */
export function listJsonFiles(home) {
  const root = path.join(storageDir(home), "session");
  const out = [];
  for (const proj of listDir(root)) {
    if (!proj.isDirectory()) continue;
    const dir = path.join(root, proj.name);
    for (const f of listDir(dir)) {
      if (!f.isFile() || !f.name.startsWith("ses_") || !f.name.endsWith(".json")) continue;
      const id = f.name.slice(0, -".json".length);
      out.push({ filePath: path.join(dir, f.name), meta: proj.name, extraStat: path.join(storageDir(home), "message", id) });
    }
  }
  return out;
}

function countJson(dir) {
  let n = 0;
  for (const f of listDir(dir)) if (f.isFile() && f.name.endsWith(".json")) n++;
  return n;
}

export function parseJsonSession(filePath, project, stat, home) {
  const data = safeJson(readText(filePath));
  if (!data || typeof data !== "object") throw new Error("invalid session JSON");
  const id = typeof data.id === "string" && data.id ? data.id : path.basename(filePath, ".json");
  const updated = Number(data.time?.updated) || Math.round(stat.mtimeMs);
  return {
    skipped: 0,
    session: {
      id,
      agentType,
      title: data.title || "",
      directory: data.directory || project,
      filePath,
      messageCount: countJson(path.join(storageDir(home), "message", id)),
      firstPrompt: data.title || null,
      lastActivity: updated,
      source: "json",
    },
  };
}

function jsonMessages(home, sessionId) {
  const mdir = path.join(storageDir(home), "message", sessionId);
  const records = [];
  for (const f of listDir(mdir)) {
    if (!f.isFile() || !f.name.endsWith(".json")) continue;
    const d = safeJson(readText(path.join(mdir, f.name)));
    if (d && typeof d === "object") records.push({ ...d, id: d.id || f.name.slice(0, -5) });
  }
  records.sort((a, b) => (Number(a.time?.created) || 0) - (Number(b.time?.created) || 0) || String(a.id).localeCompare(String(b.id)));
  const out = [];
  for (const r of records) {
    const pdir = path.join(storageDir(home), "part", r.id);
    const parts = listDir(pdir)
      .filter((f) => f.isFile() && f.name.endsWith(".json"))
      .map((f) => f.name)
      .sort()
      .map((n) => safeJson(readText(path.join(pdir, n))))
      .filter(Boolean);
    out.push(...convertMessage(r, parts, r.time?.created));
  }
  return out;
}

export function getMessages(session, limit, offset, home) {
  const all = session.source === "json" ? jsonMessages(home, session.id) : sqliteMessages(home, session.id);
  const { slice, total } = pageFromEnd(all, limit, offset);
  return { messages: slice, total };
}

export function deleteSession(session, home) {
  if (session.source === "json") {
    fs.rmSync(session.filePath, { force: true });
    const mdir = path.join(storageDir(home), "message", session.id);
    for (const f of listDir(mdir)) {
      const msgId = f.name.replace(/\.json$/, "");
      fs.rmSync(path.join(storageDir(home), "part", msgId), { recursive: true, force: true });
    }
    fs.rmSync(mdir, { recursive: true, force: true });
    return;
  }
  withDb(home, false, (db) => {
    db.run("PRAGMA foreign_keys = ON");
    db.query("DELETE FROM session WHERE id = ?").run(session.id);
  });
}
