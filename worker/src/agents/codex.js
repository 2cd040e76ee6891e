// Codex CLI: ~/.codex/sessions/**/rollout-*.jsonl (Perry's worker never indexed these).
// Two on-disk shapes are accepted:
//  - current: {"type":"session_meta","payload":{"id","cwd",...}} then
//             {"type":"response_item","payload":{"type":"message","role","content":[...]}}
//  - older:   first line {"id","timestamp","instructions"} then bare items
//             {"type":"message","role","content":[...]}
import * as path from "node:path";
import { walkFiles, parseJsonl, readText, firstText, clip, pageFromEnd, fileSession } from "./util.js";

export const agentType = "codex";
const TEXT_TYPES = ["input_text", "output_text", "text"];
const UUID_TAIL = /([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i;

export function roots(home) {
  return [path.join(home, ".codex", "sessions")];
}

export function listFiles(home) {
  const out = [];
  walkFiles(
    roots(home)[0],
    (n) => n.startsWith("rollout-") && n.endsWith(".jsonl"),
    (p, _e, dir) => out.push({ filePath: p, meta: path.basename(dir) }),
  );
  return out;
}

function idFromName(filePath) {
  const base = path.basename(filePath, ".jsonl");
  const m = base.match(UUID_TAIL);
  return m ? m[1] : base;
}

/** Unwrap response_item envelopes; returns the item or null. */
function itemOf(e) {
  if (e.type === "response_item" && e.payload && typeof e.payload === "object") return e.payload;
  if (e.type === "message" || e.type === "function_call" || e.type === "function_call_output") return e;
  return null;
}

/** Codex injects environment/instructions blocks as user messages; they are not prompts. */
function isInjected(text) {
  const t = text.trimStart();
  return t.startsWith("<environment_context>") || t.startsWith("<user_instructions>") || t.startsWith("# AGENTS.md");
}

export function parseFile(filePath, dirName, stat) {
  const { entries, skipped } = parseJsonl(readText(filePath));
  if (entries.length === 0) return { session: null, skipped };
  let id = null;
  let directory = null;
  let firstPrompt = null;
  let messageCount = 0;
  const first = entries[0];
  if (first.type === "session_meta" && first.payload) {
    if (typeof first.payload.id === "string") id = first.payload.id;
    if (typeof first.payload.cwd === "string") directory = first.payload.cwd;
  } else if (typeof first.id === "string" && first.id && !first.type) {
    id = first.id;
  }
  for (const e of entries) {
    if (!directory && e.type === "turn_context" && typeof e.payload?.cwd === "string") directory = e.payload.cwd;
    const it = itemOf(e);
    if (!it || it.type !== "message" || (it.role !== "user" && it.role !== "assistant")) continue;
    messageCount++;
    if (!firstPrompt && it.role === "user") {
      const t = firstText(it.content, TEXT_TYPES);
      if (t && !isInjected(t)) firstPrompt = clip(t);
    }
  }
  directory = directory || dirName;
  return {
    skipped,
    session: fileSession({ id: id || idFromName(filePath), agentType, directory, filePath, messageCount, firstPrompt, stat }),
  };
}

export function getMessages(session, limit, offset) {
  const { entries } = parseJsonl(readText(session.filePath));
  const all = [];
  for (const e of entries) {
    const it = itemOf(e);
    if (!it) continue;
    const ts = e.timestamp;
    if (it.type === "message" && (it.role === "user" || it.role === "assistant")) {
      const t = firstText(it.content, TEXT_TYPES);
      if (t && !(it.role === "user" && isInjected(t))) all.push({ type: it.role, content: t, timestamp: ts });
    } else if (it.type === "function_call") {
      all.push({
        type: "tool_use",
        toolName: it.name,
        toolId: it.call_id ?? it.id,
        toolInput: typeof it.arguments === "string" ? it.arguments : JSON.stringify(it.arguments ?? {}),
        timestamp: ts,
      });
    } else if (it.type === "function_call_output") {
      const o = it.output;
      all.push({
        type: "tool_result",
        content: typeof o === "string" ? o : typeof o?.content === "string" ? o.content : JSON.stringify(o ?? ""),
        toolId: it.call_id,
        timestamp: ts,
      });
    }
  }
  const { slice, total } = pageFromEnd(all, limit, offset);
  return { messages: slice, total };
}
