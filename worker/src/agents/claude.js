// Claude Code: ~/.claude/projects/<encoded-project-dir>/<sessionId>.jsonl
import * as path from "node:path";
import { listDir, parseJsonl, readText, firstText, clip, pageFromEnd, fileSession } from "./util.js";

export const agentType = "claude";

export function roots(home) {
  return [path.join(home, ".claude", "projects")];
}

/** Enumerate candidate files: [{filePath, meta}] (agent-* sub-agent logs are skipped). */
export function listFiles(home) {
  const out = [];
  const base = roots(home)[0];
  for (const proj of listDir(base)) {
    if (!proj.isDirectory()) continue;
    const dir = path.join(base, proj.name);
    for (const f of listDir(dir)) {
      if (!f.isFile() || !f.name.endsWith(".jsonl") || f.name.startsWith("agent-")) continue;
      out.push({ filePath: path.join(dir, f.name), meta: proj.name });
    }
  }
  return out;
}

function promptOf(entry) {
  if (entry.type !== "user" && entry.type !== "human") return null;
  const c = entry.message?.content;
  if (typeof c === "string") return c.trim() ? c : null;
  if (Array.isArray(c)) return firstText(c);
  if (typeof entry.content === "string" && entry.content.trim()) return entry.content;
  return null;
}

/** Parse one session file. Returns {session, skipped}; session null when the file has no entries. */
export function parseFile(filePath, projectName, stat) {
  const { entries, skipped } = parseJsonl(readText(filePath));
  if (entries.length === 0) return { session: null, skipped };
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
      id: path.basename(filePath, ".jsonl"),
      agentType,
      directory: projectName,
      filePath,
      messageCount: entries.length,
      firstPrompt,
      stat,
    }),
  };
}

export function convertEntry(entry) {
  const ts = entry.timestamp;
  if (entry.type === "user" || entry.type === "human") {
    const c = entry.message?.content;
    const out = [];
    if (typeof c === "string") {
      if (c.trim()) out.push({ type: "user", content: c, timestamp: ts });
    } else if (Array.isArray(c)) {
      const t = firstText(c);
      if (t) out.push({ type: "user", content: t, timestamp: ts });
      // Claude Code stores tool results as user entries with tool_result blocks.
      for (const b of c) {
        if (b && b.type === "tool_result") {
          out.push({
            type: "tool_result",
            content: typeof b.content === "string" ? b.content : JSON.stringify(b.content ?? ""),
            toolId: b.tool_use_id,
            timestamp: ts,
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
    if (typeof c === "string") return c.trim() ? [{ type: "assistant", content: c, timestamp: ts }] : [];
    if (!Array.isArray(c)) return [];
    const out = [];
    for (const b of c) {
      if (!b || typeof b !== "object") continue;
      if (b.type === "text" && b.text) out.push({ type: "assistant", content: b.text, timestamp: ts });
      else if (b.type === "tool_use")
        out.push({
          type: "tool_use",
          toolName: b.name,
          toolId: b.id,
          toolInput: JSON.stringify(b.input ?? {}),
          timestamp: ts,
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
        timestamp: ts,
      },
    ];
  }
  return [];
}

/** Pagination is over (parseable) JSONL lines, newest end; total = line count. */
export function getMessages(session, limit, offset) {
  const { entries } = parseJsonl(readText(session.filePath));
  const { slice, total } = pageFromEnd(entries, limit, offset);
  const messages = [];
  for (const e of slice) messages.push(...convertEntry(e));
  return { messages, total };
}
