// Shared helpers for session discovery. No dependencies beyond node:fs/path.
import * as fs from "node:fs";
import * as path from "node:path";

export const FIRST_PROMPT_MAX = 200;

/** readdir that never throws; returns Dirent[] ([] when missing/unreadable). */
export function listDir(dir) {
  try {
    return fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
}

/** stat that never throws; returns null when missing. */
export function statOrNull(p) {
  try {
    return fs.statSync(p);
  } catch {
    return null;
  }
}

/**
 * Walk `dir` recursively and call `visit(filePath, dirent, parentDir)` for every
 * regular file whose name passes `accept(name)`. Symlinked directories are not
 * followed (avoids loops).
 */
export function walkFiles(dir, accept, visit, depth = 0) {
  if (depth > 32) return;
  for (const ent of listDir(dir)) {
    const p = path.join(dir, ent.name);
    if (ent.isDirectory()) walkFiles(p, accept, visit, depth + 1);
    else if ((ent.isFile() || ent.isSymbolicLink()) && accept(ent.name)) visit(p, ent, dir);
  }
}

/**
 * Split JSONL text into parsed objects. Blank lines are ignored; lines that do
 * not parse to a JSON object (malformed or half-written) are skipped and
 * counted in `skipped`.
 */
export function parseJsonl(text) {
  const entries = [];
  let skipped = 0;
  let start = 0;
  const n = text.length;
  while (start < n) {
    let end = text.indexOf("\n", start);
    if (end === -1) end = n;
    const line = text.slice(start, end).trim();
    start = end + 1;
    if (!line) continue;
    try {
      const v = JSON.parse(line);
      if (v !== null && typeof v === "object" && !Array.isArray(v)) entries.push(v);
      else skipped++;
    } catch {
      skipped++;
    }
  }
  return { entries, skipped };
}

export function readText(p) {
  return fs.readFileSync(p, "utf8");
}

/** First text of a content value: string, or first {type:text|input_text|output_text} block. */
export function firstText(content, types = ["text"]) {
  if (typeof content === "string") return content.trim() ? content : null;
  if (Array.isArray(content)) {
    for (const b of content) {
      if (b && typeof b === "object" && types.includes(b.type) && typeof b.text === "string" && b.text) {
        return b.text;
      }
    }
  }
  return null;
}

export function clip(s) {
  return typeof s === "string" ? s.slice(0, FIRST_PROMPT_MAX) : null;
}

export function toIso(ts) {
  if (ts === undefined || ts === null) return undefined;
  if (typeof ts === "string") return ts;
  if (typeof ts === "number" && Number.isFinite(ts)) {
    try {
      return new Date(ts).toISOString();
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** Newest-end pagination used by every Perry worker endpoint. */
export function pageFromEnd(items, limit, offset) {
  const total = items.length;
  const start = Math.max(0, total - offset - limit);
  const end = Math.max(0, total - offset);
  return { slice: items.slice(start, end), total };
}

export function safeJson(s) {
  try {
    return JSON.parse(s);
  } catch {
    return null;
  }
}

/** The session record of a file-backed agent, in Perry's shape: the title falls back to the directory. */
export function fileSession({ id, agentType, directory, filePath, messageCount, firstPrompt, stat }) {
  return {
    id,
    agentType,
    title: firstPrompt || directory,
    directory,
    filePath,
    messageCount,
    firstPrompt,
    lastActivity: Math.round(stat.mtimeMs),
  };
}
