// In-memory session index with incremental (stat-driven) refresh.
//
// Incremental mode (default): every scan walks the agent directories and stats
// each candidate file; only files whose size/mtime signature changed are
// re-parsed. The OpenCode SQLite DB is re-queried only when opencode.db or its
// WAL changed. Full-rescan mode (Perry's behaviour) drops all caches first and
// re-parses everything on every scan.
import * as fs from "node:fs";
import * as claude from "./agents/claude.js";
import * as pi from "./agents/pi.js";
import * as codex from "./agents/codex.js";
import * as opencode from "./agents/opencode.js";
import { statOrNull } from "./agents/util.js";

const FILE_SOURCES = [
  { name: "claude", agent: claude, list: (h) => claude.listFiles(h), parse: (p, m, s) => claude.parseFile(p, m, s) },
  { name: "opencode-json", agent: opencode, list: (h) => opencode.listJsonFiles(h), parse: (p, m, s, h) => opencode.parseJsonSession(p, m, s, h) },
  { name: "pi", agent: pi, list: (h) => pi.listFiles(h), parse: (p, m, s) => pi.parseFile(p, m, s) },
  { name: "codex", agent: codex, list: (h) => codex.listFiles(h), parse: (p, m, s) => codex.parseFile(p, m, s) },
];

function split(session) {
  const { source, ...pub } = session;
  return { pub, source };
}

export class SessionIndex {
  constructor({ home, fullRescan = false, watch = false, log = () => {} }) {
    this.home = home;
    this.fullRescan = fullRescan;
    this.watchEnabled = watch;
    this.log = log;
    this.fileCache = new Map(); // filePath -> {sig, entry|null, skippedLines, failed}
    this.sqlite = { sig: null, entries: [], failed: false };
    this.byId = new Map(); // id -> {session, agent, source}
    this.generation = 0; // bumps whenever the visible session set changes
    this.listCache = null; // {generation, body}
    this.skipped = { lines: 0, files: 0 };
    this.stats = { scans: 0, parsedFiles: 0, lastScanMs: 0 };
    this.watchers = new Map(); // root -> FSWatcher
    this.debounce = null;
  }

  /** Stat-walk (incremental) or full re-parse, then rebuild the id map if anything changed. */
  scan() {
    const t0 = performance.now();
    let changed = false;
    if (this.fullRescan) {
      this.fileCache.clear();
      this.sqlite = { sig: null, entries: [], failed: false, forced: true };
      changed = true;
    }
    const seen = new Set();
    for (const src of FILE_SOURCES) {
      let files;
      try {
        files = src.list(this.home);
      } catch {
        files = [];
      }
      for (const { filePath, meta, extraStat } of files) {
        const st = statOrNull(filePath);
        if (!st || !st.isFile()) continue;
        let sig = `${st.size}:${st.mtimeMs}`;
        if (extraStat) {
          const es = statOrNull(extraStat);
          sig += es ? `:${es.mtimeMs}` : ":-";
        }
        seen.add(filePath);
        const cached = this.fileCache.get(filePath);
        if (cached && cached.sig === sig) continue;
        changed = true;
        this.stats.parsedFiles++;
        try {
          const r = src.parse(filePath, meta, st, this.home);
          const entry = r.session ? { ...split(r.session), agent: src.agent } : null;
          this.fileCache.set(filePath, { sig, entry, skippedLines: r.skipped || 0, failed: false });
        } catch (err) {
          this.fileCache.set(filePath, { sig, entry: null, skippedLines: 0, failed: true });
          this.log(`[index] skipped unreadable file ${filePath}: ${err?.message ?? err}`);
        }
      }
    }
    for (const p of this.fileCache.keys()) {
      if (!seen.has(p)) {
        this.fileCache.delete(p);
        changed = true;
      }
    }

    const dbSig = opencode.dbSignature(this.home);
    if (dbSig !== this.sqlite.sig || this.sqlite.forced) {
      changed = true;
      if (dbSig === null) this.sqlite = { sig: null, entries: [], failed: false };
      else {
        try {
          const rows = opencode.listSqliteSessions(this.home);
          this.sqlite = { sig: dbSig, entries: rows.map((s) => ({ ...split(s), agent: opencode })), failed: false };
        } catch (err) {
          this.sqlite = { sig: dbSig, entries: [], failed: true };
          this.log(`[index] skipped unreadable opencode db: ${err?.message ?? err}`);
        }
      }
    }

    if (changed) this.rebuild();
    this.stats.scans++;
    this.stats.lastScanMs = Math.round((performance.now() - t0) * 100) / 100;
    if (this.watchEnabled) this.ensureWatchers();
    return changed;
  }

  rebuild() {
    const byId = new Map();
    let lines = 0;
    let files = 0;
    const add = (e) => {
      if (e) byId.set(e.pub.id, e);
    };
    // Later sources win on id collisions: files first, then SQLite OpenCode
    // (which supersedes the same session in the older JSON storage).
    for (const c of this.fileCache.values()) {
      lines += c.skippedLines;
      if (c.failed) files++;
      add(c.entry);
    }
    if (this.sqlite.failed) files++;
    for (const e of this.sqlite.entries) add(e);
    this.byId = byId;
    this.skipped = { lines, files };
    this.generation++;
    this.listCache = null;
  }

  get size() {
    return this.byId.size;
  }

  list() {
    // Newest first, then by id: a stable order, so that pages (page()) never overlap or skip.
    return Array.from(this.byId.values(), (e) => e.pub).sort(
      (a, b) => b.lastActivity - a.lastActivity || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
    );
  }

  /** One page of the list, filtered: {sessions, total, offset, limit}; total counts every match. */
  page({ limit = Infinity, offset = 0, agentTypes = [], since = null } = {}) {
    const wanted = new Set(agentTypes);
    const all = this.list().filter(
      (s) => (!wanted.size || wanted.has(s.agentType)) && (since === null || s.lastActivity >= since),
    );
    return {
      sessions: all.slice(offset, limit === Infinity ? undefined : offset + limit),
      total: all.length,
      offset,
      limit: limit === Infinity ? null : limit,
    };
  }

  /** Serialized `{"sessions": [...]}` body, cached per generation. */
  listBody() {
    if (!this.listCache || this.listCache.generation !== this.generation) {
      this.listCache = { generation: this.generation, body: JSON.stringify({ sessions: this.list() }) };
    }
    return this.listCache.body;
  }

  lookup(id) {
    let e = this.byId.get(id);
    if (!e && !this.fullRescan) {
      this.scan();
      e = this.byId.get(id);
    }
    return e;
  }

  get(id) {
    return this.lookup(id)?.pub;
  }

  getMessages(id, limit, offset) {
    const e = this.lookup(id);
    if (!e) return { id, messages: [], total: 0 };
    try {
      const { messages, total } = e.agent.getMessages({ ...e.pub, source: e.source }, limit, offset, this.home);
      return { id: e.pub.id, messages, total };
    } catch {
      return { id: e.pub.id, messages: [], total: 0 };
    }
  }

  delete(id) {
    const e = this.lookup(id);
    if (!e) return { success: false, error: "Session not found" };
    try {
      if (e.agent === opencode) opencode.deleteSession({ ...e.pub, source: e.source }, this.home);
      else fs.unlinkSync(e.pub.filePath);
    } catch (err) {
      return { success: false, error: `Failed to delete session: ${err?.message ?? err}` };
    }
    if (e.pub.filePath) this.fileCache.delete(e.pub.filePath);
    if (e.source === "sqlite") {
      this.sqlite = { ...this.sqlite, entries: this.sqlite.entries.filter((x) => x.pub.id !== id), sig: opencode.dbSignature(this.home) };
    }
    this.rebuild();
    return { success: true };
  }

  // ---- optional file watchers (debounced incremental scan) ----
  watchRoots() {
    return [
      ...claude.roots(this.home),
      ...pi.roots(this.home),
      ...codex.roots(this.home),
      opencode.storageDir(this.home),
      opencode.baseDir(this.home),
    ];
  }

  ensureWatchers() {
    for (const root of this.watchRoots()) {
      if (this.watchers.has(root) || !statOrNull(root)) continue;
      try {
        const recursive = root !== opencode.baseDir(this.home);
        const w = fs.watch(root, { recursive }, () => this.schedule());
        w.on?.("error", () => {
          try {
            w.close();
          } catch {}
          this.watchers.delete(root);
        });
        this.watchers.set(root, w);
      } catch {
        // unsupported / vanished: rescans still cover it
      }
    }
  }

  schedule() {
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.debounce = null;
      try {
        this.scan();
      } catch (err) {
        this.log(`[index] watch-triggered scan failed: ${err?.message ?? err}`);
      }
    }, 100);
  }

  close() {
    if (this.debounce) clearTimeout(this.debounce);
    for (const w of this.watchers.values()) {
      try {
        w.close();
      } catch {}
    }
    this.watchers.clear();
  }
}
