// Event-driven change tracking (issue 16): watchers feed a dirty set, a GET /sessions with no change does no
// file system walk, and the periodic reconciliation catches what watchers miss.
import { describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { SessionIndex } from "../src/session-index.js";
import { homeFactory, startWorker, writeFile, jsonl, claudeUser, claudeAssistant } from "./helpers.js";

const mkHome = homeFactory();
const proj = (home, p = "p") => path.join(home, ".claude", "projects", p);

/** Poll `fn` until it returns a truthy value (or 4 s pass); returns the last value. */
async function until(fn, ms = 4000) {
  const end = Date.now() + ms;
  let v;
  while (!(v = await fn()) && Date.now() < end) await Bun.sleep(25);
  return v;
}

async function ids(w) {
  return (await w.getJson("/sessions")).body.sessions.map((s) => s.id).sort();
}

describe("watch mode, in-process index", () => {
  test("a sync with no change walks nothing; an event re-checks only its path", async () => {
    const home = mkHome();
    for (let i = 0; i < 5; i++) writeFile(path.join(proj(home), `s${i}.jsonl`), jsonl(claudeUser(`p${i}`)));
    const idx = new SessionIndex({ home, watch: true });
    try {
      idx.scan();
      expect(idx.trackingMode).toBe("watch");
      expect(idx.stats.walks).toBe(1);
      for (let i = 0; i < 3; i++) expect(idx.sync()).toBe(false);
      expect(idx.stats.walks).toBe(1);
      expect(idx.stats.syncs).toBe(3);
      fs.appendFileSync(path.join(proj(home), "s2.jsonl"), jsonl(claudeAssistant("more")));
      expect(await until(() => idx.dirty.size || idx.get("s2").messageCount === 2)).toBeTruthy();
      idx.sync();
      expect(idx.get("s2").messageCount).toBe(2);
      expect(idx.stats.walks).toBe(1);
      expect(idx.stats.parsedFiles).toBe(6);
    } finally {
      idx.close();
    }
  });

  test("more dirty paths than the cap: the set is dropped and one full walk is correct", () => {
    const home = mkHome();
    writeFile(path.join(proj(home), "a.jsonl"), jsonl(claudeUser("a")));
    const idx = new SessionIndex({ home, watch: true });
    try {
      idx.scan();
      writeFile(path.join(proj(home), "b.jsonl"), jsonl(claudeUser("b")));
      for (let i = 0; i <= 10000; i++) idx.mark(path.join(home, "noise", String(i)));
      expect(idx.dirty.size).toBe(0);
      expect(idx.needWalk).toBe(true);
      expect(idx.stats.overflows).toBe(1);
      idx.sync();
      expect(idx.stats.walks).toBe(2);
      expect(idx.get("b")).toBeDefined();
      expect(idx.needWalk).toBe(false);
    } finally {
      idx.close();
    }
  });

  test("a root that appears later is watched and walked at the next sync", () => {
    const home = mkHome();
    const idx = new SessionIndex({ home, watch: true });
    try {
      idx.scan();
      expect(idx.size).toBe(0);
      writeFile(path.join(home, ".codex", "sessions", "2026", "01", "rollout-x-0199a1b2-c3d4-7e5f-8a9b-000000000001.jsonl"),
        jsonl({ type: "session_meta", payload: { id: "cx-1", cwd: "/w" } }, { type: "response_item", payload: { type: "message", role: "user", content: [{ type: "input_text", text: "hi" }] } }));
      idx.sync();
      expect(idx.get("cx-1")?.agentType).toBe("codex");
      expect(idx.watchers.has(path.join(home, ".codex", "sessions"))).toBe(true);
    } finally {
      idx.close();
    }
  });
});

describe("watch mode, real worker", () => {
  const env = { PERRY_WORKER_WATCH: "1" };

  test("new file, rename, delete and a directory moved in and out are seen without /refresh", async () => {
    const home = mkHome();
    writeFile(path.join(proj(home), "keep.jsonl"), jsonl(claudeUser("keep")));
    const w = await startWorker(home, { env });
    try {
      expect((await w.getJson("/health")).body.tracking).toBe("watch");
      writeFile(path.join(proj(home), "new.jsonl"), jsonl(claudeUser("new")));
      expect(await until(async () => (await ids(w)).includes("new"))).toBe(true);
      fs.renameSync(path.join(proj(home), "new.jsonl"), path.join(proj(home), "renamed.jsonl"));
      expect(await until(async () => String(await ids(w)) === "keep,renamed")).toBe(true);
      fs.rmSync(path.join(proj(home), "renamed.jsonl"));
      expect(await until(async () => String(await ids(w)) === "keep")).toBe(true);
      // a whole project directory moved in from outside the watched tree (no event for its files), then out
      const outside = fs.mkdtempSync(path.join(os.tmpdir(), "perry-outside-"));
      writeFile(path.join(outside, "q", "m1.jsonl"), jsonl(claudeUser("m1")));
      writeFile(path.join(outside, "q", "m2.jsonl"), jsonl(claudeUser("m2")));
      fs.renameSync(path.join(outside, "q"), proj(home, "q"));
      expect(await until(async () => String(await ids(w)) === "keep,m1,m2")).toBe(true);
      fs.renameSync(proj(home, "q"), path.join(outside, "q"));
      expect(await until(async () => String(await ids(w)) === "keep")).toBe(true);
      fs.rmSync(outside, { recursive: true, force: true });
      expect((await w.getJson("/health")).body.sessionCount).toBe(1);
    } finally {
      expect(await w.stop()).toBe(0);
    }
  });

  test("a change the watchers miss (written through a hard link elsewhere) is caught by the reconciliation", async () => {
    const home = mkHome();
    const f = path.join(proj(home), "linked.jsonl");
    writeFile(f, jsonl(claudeUser("one")));
    const other = fs.mkdtempSync(path.join(os.tmpdir(), "perry-link-"));
    const link = path.join(other, "linked.jsonl");
    fs.linkSync(f, link);
    const w = await startWorker(home, { env: { ...env, PERRY_WORKER_RECONCILE_MS: "1500" } });
    try {
      const count = async () => (await w.getJson("/sessions/linked")).body.session.messageCount;
      expect(await count()).toBe(1);
      fs.appendFileSync(link, jsonl(claudeAssistant("two")));
      // inotify reports a change only through the watched directory's entry: no event, so a GET cannot know
      await Bun.sleep(300);
      expect(await count()).toBe(1);
      expect(await until(async () => (await count()) === 2, 6000)).toBe(true);
      fs.appendFileSync(link, jsonl(claudeUser("three")));
      const r = await fetch(w.url + "/refresh", { method: "POST" }); // an explicit refresh walks at once
      expect(r.status).toBe(200);
      expect(await count()).toBe(3);
    } finally {
      expect(await w.stop()).toBe(0);
      fs.rmSync(other, { recursive: true, force: true });
    }
  });

  test("PERRY_WORKER_RECONCILE_MS below 100 is refused with a clear error", async () => {
    const home = mkHome();
    const proc = Bun.spawn([process.execPath, path.join(import.meta.dir, "..", "src", "cli.js"), "worker", "serve", "--port", "0", "--host", "127.0.0.1"], {
      env: { ...process.env, PERRY_WORKER_HOME: home, PERRY_WORKER_RECONCILE_MS: "5" },
      stdout: "pipe",
      stderr: "pipe",
    });
    expect(await proc.exited).toBe(2);
    expect(await new Response(proc.stderr).text()).toContain("PERRY_WORKER_RECONCILE_MS");
  });
});

describe("the /sessions body", () => {
  test("cached bytes equal JSON.stringify of the list; above 10,000 sessions it is streamed, same JSON", async () => {
    const home = mkHome();
    for (let i = 0; i < 3; i++) writeFile(path.join(proj(home), `s${i}.jsonl`), jsonl(claudeUser(`p${i}`)));
    const idx = new SessionIndex({ home });
    idx.scan();
    expect(new TextDecoder().decode(idx.listBody())).toBe(JSON.stringify({ sessions: idx.list() }));
    // a large index, built in memory (the stream path only depends on the size of the list)
    const many = Array.from({ length: 10001 }, (_, i) => ({ id: `m${String(i).padStart(5, "0")}`, agentType: "claude", title: "t", directory: "d", filePath: "", messageCount: 1, firstPrompt: null, lastActivity: 1 }));
    idx.byId = new Map(many.map((pub) => [pub.id, { pub }]));
    idx.generation++;
    const body = idx.listBody();
    expect(body).toBeInstanceOf(ReadableStream);
    const text = await new Response(body).text();
    expect(text).toBe(JSON.stringify({ sessions: idx.list() }));
    expect(JSON.parse(text).sessions.length).toBe(10001);
  });
});
