// pi coding agent: ~/.pi/agent/sessions/**/*.jsonl
// Accepts both the flat shape Perry parsed ({type:"message", role, content}) and
// the nested shape pi writes ({type:"message", message:{role, content}}).
import * as path from "node:path";
import { walkFiles, parseJsonl, readText, firstText, clip, pageFromEnd, toIso, fileSession } from "./util.js";

export const agentType = "pi";

export function roots(home) {
  return [path.join(home, ".pi", "agent", "sessions")];
}

export function listFiles(home) {
  const out = [];
  walkFiles(roots(home)[0], (n) => n.endsWith(".jsonl"), (p, _e, dir) => out.push({ filePath: p, meta: path.basename(dir) }));
  return out;
}

function idFromName(filePath) {
  const base = path.basename(filePath, ".jsonl");
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

export function parseFile(filePath, dirName, stat) {
  const { entries, skipped } = parseJsonl(readText(filePath));
  if (entries.length === 0) return { session: null, skipped };
  let id = idFromName(filePath);
  let firstPrompt = null;
  let messageCount = 0;
  for (const e of entries) {
    if ((e.type === "header" || e.type === "session") && typeof e.id === "string" && e.id) id = e.id;
    if (isMessage(e)) {
      messageCount++;
      if (!firstPrompt && roleOf(e) === "user") {
        const t = firstText(contentOf(e));
        if (t) firstPrompt = clip(t);
      }
    }
  }
  return {
    skipped,
    session: fileSession({ id, agentType, directory: dirName, filePath, messageCount, firstPrompt, stat }),
  };
}

/** Pagination over converted user/assistant text messages. */
export function getMessages(session, limit, offset) {
  const { entries } = parseJsonl(readText(session.filePath));
  const all = [];
  for (const e of entries) {
    if (!isMessage(e)) continue;
    const t = firstText(contentOf(e));
    if (t) all.push({ type: roleOf(e), content: t, timestamp: toIso(e.timestamp ?? e.message?.timestamp) });
  }
  const { slice, total } = pageFromEnd(all, limit, offset);
  return { messages: slice, total };
}
