// In-memory session index, kept current by file watchers (event-driven) with a stat-walk fallback.
//
// Watch mode (default, `watch: true`): recursive fs.watch on every agent root feeds a bounded set of dirty
// paths; GET /sessions only re-checks those paths (one lstat each, a parse when the size:mtime signature
// changed), so a call with no changes costs no file system work at all. Watchers can miss events (inotify
// limits, hard links written through another directory, overflow of the dirty set): a periodic, chunked
// reconciliation stat-walks everything, at most RECONCILE_SHARE of the wall time, and an overflow or a
// watcher error forces one full walk at the next call.
// Stat-walk mode (`watch: false`, or a root that cannot be watched): every scan walks the agent directories
// and stats each candidate file; only changed files are re-parsed. The OpenCode SQLite DB is re-queried
// only when opencode.db or its WAL changed (two stats per call in every mode).
// Full-rescan mode (Perry's behaviour) drops all caches first and re-parses everything on every scan.
import * as fs from "node:fs";
import * as path from "node:path";
import * as claude from "./agents/claude.js";
import * as pi from "./agents/pi.js";
import * as codex from "./agents/codex.js";
import * as opencode from "./agents/opencode.js";
import { statOrNull, walkFiles } from "./agents/util.js";

const DEBOUNCE_MS = 100; // watcher events -> one sync, so /health.sessionCount stays current
const RECHECK_MS = 250; // every event's path is checked once more this much later (see recheck below)
const DIRTY_MAX = 10000; // queued paths; beyond this one full walk is cheaper and bounds the memory
const RECONCILE_MS = 60000; // least time between two reconciliation walks (PERRY_WORKER_RECONCILE_MS)
const RECONCILE_SHARE = 0.005; // a reconciliation may use at most this share of the time between two of them
const RECONCILE_BATCH = 2000; // files stat'ed per event-loop turn, so a walk never blocks requests for long
const BODY_CACHE_SESSIONS = 10000; // up to this many sessions the whole /sessions body is kept, ready to send
const STREAM_CHUNK = 1000; // above it the body is streamed, this many sessions serialized at a time
export const MAX_FILE_BYTES = 256 * 1024 * 1024; // a larger session file is skipped (counted), never read whole

const under = (root, p) => (p.startsWith(root + path.sep) ? p.slice(root.length + 1).split(path.sep) : null);

// Each file source: how to list it (stat-walk) and how to recognise one of its files from a path (events).
const FILE_SOURCES = [
  {
    name: "claude",
    agent: claude,
    list: (h) => claude.listFiles(h),
    parse: (p, m, s) => claude.parseFile(p, m, s),
    classify: (h, p) => {
      const r = under(claude.roots(h)[0], p);
      if (!r || r.length !== 2 || !r[1].endsWith(".jsonl") || r[1].startsWith("agent-")) return null;
      return { filePath: p, meta: r[0], noLinks: true };
    },
  },
  {
    name: "opencode-json",
    agent: opencode,
    list: (h) => opencode.listJsonFiles(h),
    parse: (p, m, s, h) => opencode.parseJsonSession(p, m, s, h),
    classify: (h, p) => {
      const r = under(path.join(opencode.storageDir(h), "session"), p);
      if (!r || r.length !== 2 || !r[1].startsWith("ses_") || !r[1].endsWith(".json")) return null;
      const id = r[1].slice(0, -".json".length);
      return { filePath: p, meta: r[0], extraStat: path.join(opencode.storageDir(h), "message", id), noLinks: true };
    },
  },
  {
    name: "pi",
    agent: pi,
    list: (h) => pi.listFiles(h),
    parse: (p, m, s) => pi.parseFile(p, m, s),
    classify: (h, p) => {
      const r = under(pi.roots(h)[0], p);
      if (!r || r.length > 33 || !r[r.length - 1].endsWith(".jsonl")) return null;
      return { filePath: p, meta: path.basename(path.dirname(p)) };
    },
  },
  {
    name: "codex",
    agent: codex,
    list: (h) => codex.listFiles(h),
    parse: (p, m, s) => codex.parseFile(p, m, s),
    classify: (h, p) => {
      const r = under(codex.roots(h)[0], p);
      const n = r && r[r.length - 1];
      if (!r || r.length > 33 || !n.startsWith("rollout-") || !n.endsWith(".jsonl")) return null;
      return { filePath: p, meta: path.basename(path.dirname(p)) };
    },
  },
];

// Each session's JSON, made once per parsed version of it: a change re-serializes one session, not the list.
const jsonOf = new WeakMap();
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
    return fs.lstatSync(p);
  } catch {
    return null;
  }
}

export class SessionIndex {
  constructor({ home, fullRescan = false, watch = false, reconcileMs = RECONCILE_MS, maxFileBytes = MAX_FILE_BYTES, log = () => {} }) {
    this.home = home;
    this.fullRescan = fullRescan;
    this.watchEnabled = watch && !fullRescan;
    this.reconcileMs = reconcileMs;
    this.maxFileBytes = maxFileBytes;
    this.log = log;
    this.fileCache = new Map(); // filePath -> {sig, entry|null, skippedLines, failed}
    this.dirFiles = new Map(); // dir -> number of cached files directly in it (finds what a removed dir held)
    this.msgDirs = new Map(); // OpenCode JSON: message dir -> its session file (a new message changes the count)
    this.sqlite = { sig: null, entries: [], failed: false };
    this.byId = new Map(); // id -> {session, agent, source}
    this.generation = 0; // bumps whenever the visible session set changes
    this.listCache = null; // {generation, body: Uint8Array}
    this.sortedCache = null; // {generation, list}
    this.skipped = { lines: 0, files: 0 };
    this.stats = { scans: 0, syncs: 0, walks: 0, reconciles: 0, parsedFiles: 0, lastScanMs: 0, lastReconcileMs: 0, overflows: 0 };
    this.watchers = new Map(); // root -> FSWatcher
    this.unwatchable = new Set(); // existing roots fs.watch refused: those are stat-walked on every call
    this.dirty = new Set(); // paths (absolute) that changed since the last sync
    this.recheck = new Set(); // paths checked since the last recheck (bun drops an event equal to one just queued)
    this.recheckTimer = null;
    this.needWalk = true; // an event may have been lost: the next sync walks everything
    this.stale = false; // fileCache changed since the last rebuild
    this.debounce = null;
    this.reconcileTimer = null;
    this.reconciling = false;
    this.closed = false;
  }

  /** Are watchers trusted to report every change (so a sync can skip the walk)? */
  get tracking() {
    return this.watchEnabled && this.unwatchable.size === 0;
  }

  get trackingMode() {
    if (this.fullRescan) return "full-rescan";
    return this.tracking ? "watch" : "stat-walk";
  }

  /**
   * Bring the index up to date as cheaply as the mode allows: with working watchers only the dirty paths
   * (and the two stats of the OpenCode DB), otherwise a stat-walk (or Perry's full re-parse).
   */
  sync() {
    if (!this.tracking || this.needWalk) return this.scan();
    const t0 = performance.now();
    this.ensureWatchers();
    if (!this.tracking || this.needWalk) return this.scan();
    this.stats.syncs++;
    if (this.dirty.size) {
      const paths = this.dirty;
      this.dirty = new Set();
      for (const p of paths) this.checkPath(p);
      this.scheduleRecheck(paths);
    }
    this.syncDb();
    const changed = this.stale;
    if (changed) this.rebuild();
    this.stats.lastScanMs = Math.round((performance.now() - t0) * 100) / 100;
    return changed;
  }

  /** Stat-walk (incremental) or full re-parse of everything, then rebuild the id map if anything changed. */
  scan() {
    const t0 = performance.now();
    if (this.watchEnabled) this.ensureWatchers(); // first, so nothing written during the walk is missed
    if (this.fullRescan) {
      this.fileCache.clear();
      this.dirFiles.clear();
      this.msgDirs.clear();
      this.sqlite = { sig: null, entries: [], failed: false, forced: true };
      this.stale = true;
    }
    const seen = new Set();
    for (const src of FILE_SOURCES) {
      for (const f of this.listSource(src)) {
        seen.add(f.filePath);
        this.update(src, f);
      }
    }
    for (const p of [...this.fileCache.keys()]) if (!seen.has(p)) this.forget(p);
    // Everything was just looked at; events still queued for it arrive later and cost one lstat each.
    this.dirty.clear();
    this.needWalk = false;
    this.syncDb();
    const changed = this.stale;
    if (changed) this.rebuild();
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

  /** Re-check one file of a source: parse it when its signature changed, forget it when it is gone. */
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
    if (cached && cached.sig === sig) return;
    this.stale = true;
    if (!cached) {
      const dir = path.dirname(filePath);
      this.dirFiles.set(dir, (this.dirFiles.get(dir) || 0) + 1);
      if (extraStat) this.msgDirs.set(extraStat, filePath);
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
    if (!cached) return;
    this.fileCache.delete(filePath);
    this.stale = true;
    const dir = path.dirname(filePath);
    const n = (this.dirFiles.get(dir) || 1) - 1;
    if (n) this.dirFiles.set(dir, n);
    else this.dirFiles.delete(dir);
    if (cached.src?.name === "opencode-json") for (const [m, f] of this.msgDirs) if (f === filePath) this.msgDirs.delete(m);
  }

  classify(p) {
    for (const src of FILE_SOURCES) {
      const f = src.classify(this.home, p);
      if (f) return [src, f];
    }
    return null;
  }

  /** One path an event named: a session file, a directory (walked: it may have been moved in whole), or gone. */
  checkPath(p) {
    const st = lstatOrNull(p);
    if (st && st.isDirectory()) {
      walkFiles(p, () => true, (fp) => this.checkFile(fp));
      return;
    }
    if (!st) this.forgetUnder(p);
    this.checkFile(p);
  }

  checkFile(p) {
    const hit = this.classify(p);
    if (hit) return this.update(hit[0], hit[1]);
    // a message file of an OpenCode JSON session changes that session's messageCount
    const r = under(path.join(opencode.storageDir(this.home), "message"), p);
    if (r && r.length >= 1) {
      const file = this.msgDirs.get(path.join(opencode.storageDir(this.home), "message", r[0]));
      const again = file && this.classify(file);
      if (again) this.update(again[0], again[1]);
    }
  }

  /** A directory that vanished (removed or moved away): forget the files it held. */
  forgetUnder(p) {
    const prefix = p + path.sep;
    const gone = new Set([...this.dirFiles.keys()].filter((d) => d === p || d.startsWith(prefix)));
    if (!gone.size) return;
    for (const f of [...this.fileCache.keys()]) if (gone.has(path.dirname(f))) this.forget(f);
  }

  syncDb() {
    const dbSig = opencode.dbSignature(this.home);
    if (dbSig === this.sqlite.sig && !this.sqlite.forced) return;
    this.stale = true;
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

  rebuild() {
    const byId = new Map();
    let lines = 0;
    let files = 0;
    const add = (e) => {
      if (e) byId.set(e.pub.id, e);
    };
    // Later sources win on id collisions: claude < opencode-json < pi < codex, then SQLite OpenCode
    // (which supersedes the same session in the older JSON storage).
    const bySource = FILE_SOURCES.map(() => []);
    for (const c of this.fileCache.values()) {
      lines += c.skippedLines;
      if (c.failed) files++;
      if (c.entry) bySource[FILE_SOURCES.indexOf(c.src)].push(c.entry);
    }
    for (const list of bySource) for (const e of list) add(e);
    if (this.sqlite.failed) files++;
    for (const e of this.sqlite.entries) add(e);
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
    // Newest first, then by id: a stable order, so that pages (page()) never overlap or skip. Cached per generation.
    if (!this.sortedCache || this.sortedCache.generation !== this.generation) {
      const list = Array.from(this.byId.values(), (e) => e.pub).sort(
        (a, b) => b.lastActivity - a.lastActivity || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
      );
      this.sortedCache = { generation: this.generation, list };
    }
    return this.sortedCache.list;
  }

  /** One page of the list, filtered: {sessions, total, offset, limit}; total counts every match. */
  page({ limit = Infinity, offset = 0, agentTypes = [], since = null } = {}) {
    const wanted = new Set(agentTypes);
    const sorted = this.list();
    const all =
      !wanted.size && since === null
        ? sorted
        : sorted.filter((s) => (!wanted.size || wanted.has(s.agentType)) && (since === null || s.lastActivity >= since));
    return {
      sessions: all.slice(offset, limit === Infinity ? undefined : offset + limit),
      total: all.length,
      offset,
      limit: limit === Infinity ? null : limit,
    };
  }

  /**
   * The `{"sessions": [...]}` body. Up to BODY_CACHE_SESSIONS sessions: UTF-8 bytes cached per generation,
   * assembled from per-session JSON (a change re-serializes one session). Above: a stream serialized
   * STREAM_CHUNK sessions at a time, so memory stays bounded by the index instead of the index plus a copy
   * of the whole body (some 30 MiB at 50,000 sessions); the host pages anyway.
   */
  listBody() {
    const list = this.list();
    if (list.length > BODY_CACHE_SESSIONS) {
      const enc = new TextEncoder();
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
        },
      });
    }
    if (!this.listCache || this.listCache.generation !== this.generation) {
      // the same bytes as JSON.stringify({sessions: list})
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
    if (e.pub.filePath) this.forget(e.pub.filePath);
    if (e.source === "sqlite") {
      this.sqlite = { ...this.sqlite, entries: this.sqlite.entries.filter((x) => x.pub.id !== id), sig: opencode.dbSignature(this.home) };
    }
    this.rebuild();
    return { success: true };
  }

  // ---- watchers: events -> dirty set (bounded) -> debounced sync ----
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
    if (this.closed) return;
    for (const root of this.watchRoots()) {
      if (this.watchers.has(root)) continue;
      if (!statOrNull(root)) {
        this.unwatchable.delete(root);
        continue;
      }
      try {
        const recursive = root !== opencode.baseDir(this.home);
        const w = fs.watch(root, { recursive }, (_type, name) => this.onEvent(root, name));
        w.on?.("error", (err) => this.dropWatcher(root, w, err));
        this.watchers.set(root, w);
        this.unwatchable.delete(root);
        // files written before this watcher existed: walk the root once
        if (recursive) this.mark(root);
      } catch (err) {
        if (!this.unwatchable.has(root)) this.log(`[index] cannot watch ${root} (${err?.message ?? err}): stat-walking instead`);
        this.unwatchable.add(root);
      }
    }
  }

  dropWatcher(root, w, err) {
    try {
      w.close();
    } catch {}
    if (this.watchers.get(root) === w) this.watchers.delete(root);
    this.log(`[index] watcher of ${root} failed (${err?.message ?? err}): one full walk, then watching again`);
    this.needWalk = true; // whatever happened meanwhile was not seen
    this.schedule();
  }

  onEvent(root, name) {
    if (name === null || name === undefined || name === "") {
      this.needWalk = true; // the watcher could not say what changed (or the root itself went)
    } else {
      this.mark(path.join(root, String(name)));
    }
    this.schedule();
  }

  mark(p) {
    if (this.needWalk) return;
    if (this.dirty.size >= DIRTY_MAX) {
      this.stats.overflows++;
      this.dirty.clear();
      this.needWalk = true;
      return;
    }
    this.dirty.add(p);
  }

  /**
   * Bun's watcher drops an event equal (same type and path) to one read in the same batch, so a file
   * renamed in and removed right after gives one "rename": seen before the removal, nothing after it. The
   * paths of a sync are therefore checked once more RECHECK_MS later (one lstat each; rechecks do not recur).
   */
  scheduleRecheck(paths) {
    if (this.closed) return;
    for (const p of paths) {
      if (this.recheck.size >= DIRTY_MAX) break; // the reconciliation still covers the rest
      this.recheck.add(p);
    }
    if (this.recheckTimer || !this.recheck.size) return;
    this.recheckTimer = setTimeout(() => {
      this.recheckTimer = null;
      const paths = this.recheck;
      this.recheck = new Set();
      try {
        for (const p of paths) this.checkPath(p);
        if (this.stale) this.rebuild();
      } catch (err) {
        this.log(`[index] recheck failed: ${err?.message ?? err}`);
      }
    }, RECHECK_MS);
  }

  schedule() {
    if (this.closed || this.debounce) return; // trailing-edge batching: at most one sync per DEBOUNCE_MS
    this.debounce = setTimeout(() => {
      this.debounce = null;
      try {
        this.sync();
      } catch (err) {
        this.log(`[index] watch-triggered sync failed: ${err?.message ?? err}`);
      }
    }, DEBOUNCE_MS);
  }

  /** Periodic reconciliation for the events watchers miss; no-op in stat-walk and full-rescan modes. */
  startReconciling() {
    if (!this.watchEnabled || this.closed || this.reconcileTimer) return;
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

  /**
   * Stat-walk everything in batches of RECONCILE_BATCH files per event-loop turn (requests are served in
   * between); parse what changed, forget what is gone. Its busy time sets the interval to the next one.
   */
  async reconcile() {
    if (this.reconciling || this.closed) return false;
    this.reconciling = true;
    let busy = 0;
    try {
      let t = performance.now();
      this.ensureWatchers();
      const seen = new Set();
      for (const src of FILE_SOURCES) {
        const files = this.listSource(src);
        for (let i = 0; i < files.length; i++) {
          seen.add(files[i].filePath);
          this.update(src, files[i]);
          if ((i + 1) % RECONCILE_BATCH === 0) {
            busy += performance.now() - t;
            await new Promise((r) => setImmediate(r));
            if (this.closed) return false;
            t = performance.now();
          }
        }
        busy += performance.now() - t;
        await new Promise((r) => setImmediate(r));
        t = performance.now();
      }
      // unseen: gone, or created after its directory was listed (then still on disk)
      for (const p of [...this.fileCache.keys()]) if (!seen.has(p) && !statOrNull(p)) this.forget(p);
      this.syncDb();
      const changed = this.stale;
      if (changed) this.rebuild();
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
    if (this.debounce) clearTimeout(this.debounce);
    if (this.reconcileTimer) clearTimeout(this.reconcileTimer);
    if (this.recheckTimer) clearTimeout(this.recheckTimer);
    this.debounce = this.reconcileTimer = this.recheckTimer = null;
    for (const w of this.watchers.values()) {
      try {
        w.close();
      } catch {}
    }
    this.watchers.clear();
  }
}
