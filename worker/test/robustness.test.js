// Malformed input, empty homes, and the incremental index (in-process).
import { test, expect, describe } from "bun:test";
import * as fs from "node:fs";
import * as path from "node:path";
import { homeFactory, startWorker, writeFile, jsonl, claudeUser, claudeAssistant } from "./helpers.js";
import { SessionIndex } from "../src/session-index.js";

const mkHome = homeFactory();

describe("robustness", () => {
  test("empty home (no agent dirs at all)", async () => {
    const w = await startWorker(mkHome());
    try {
      expect((await w.getJson("/health")).body).toMatchObject({ status: "ok", sessionCount: 0, skipped: { lines: 0, files: 0 } });
      expect((await w.getJson("/sessions")).body).toEqual({ sessions: [] });
      expect((await w.getJson("/sessions/x")).status).toBe(404);
    } finally {
      expect(await w.stop()).toBe(0);
    }
  });

  test("non-existent home directory", async () => {
    const w = await startWorker("/nonexistent/perry-home-" + process.pid);
    try {
      expect((await w.getJson("/sessions")).body).toEqual({ sessions: [] });
    } finally {
      await w.stop();
    }
  });

  test("malformed and half-written JSONL lines are skipped and counted", async () => {
    const home = mkHome();
    const f = path.join(home, ".claude", "projects", "bad", "mixed.jsonl");
    writeFile(f, jsonl(claudeUser("good first"), "{not json", "[1,2]", "", claudeAssistant("good second")) + '{"type":"user","mess');
    writeFile(path.join(home, ".claude", "projects", "bad", "allbad.jsonl"), "garbage\n\u0000\u0001\n");
    writeFile(path.join(home, ".claude", "projects", "bad", "empty.jsonl"), "");
    writeFile(path.join(home, ".pi", "agent", "sessions", "d", "p_bad.jsonl"), "{{{\n");
    writeFile(path.join(home, ".codex", "sessions", "rollout-broken.jsonl"), '{"type":"session_meta","payload":');
    writeFile(path.join(home, ".local", "share", "opencode", "storage", "session", "p", "ses_broken.json"), "{oops");
    writeFile(path.join(home, ".local", "share", "opencode", "opencode.db"), "this is not a sqlite database, just text padding ".repeat(20));
    const w = await startWorker(home);
    try {
      const { body } = await w.getJson("/sessions");
      expect(body.sessions.map((s) => s.id)).toEqual(["mixed"]);
      expect(body.sessions[0].messageCount).toBe(2);
      expect(body.sessions[0].firstPrompt).toBe("good first");
      const h = (await w.getJson("/health")).body;
      // mixed: 3 bad lines; allbad: 2; pi: 1; codex: 1
      expect(h.skipped.lines).toBe(7);
      // ses_broken.json and the corrupt opencode.db
      expect(h.skipped.files).toBe(2);
      const m = (await w.getJson("/sessions/mixed/messages?limit=50&offset=0")).body;
      expect(m.total).toBe(2);
      expect(m.messages.map((x) => x.content)).toEqual(["good first", "good second"]);
      // completing the half-written line makes it count
      fs.appendFileSync(f, 'age":{"content":"late"}}\n');
      const again = (await w.getJson("/sessions/mixed")).body.session;
      expect(again.messageCount).toBe(2); // GET by id does not rescan a known session
      await fetch(w.url + "/refresh", { method: "POST" });
      expect((await w.getJson("/sessions/mixed")).body.session.messageCount).toBe(3);
      expect((await w.getJson("/health")).body.skipped.lines).toBe(6);
    } finally {
      expect(await w.stop()).toBe(0);
    }
  });

  test("binary/unreadable files do not crash the worker", async () => {
    const home = mkHome();
    const f = path.join(home, ".claude", "projects", "p", "locked.jsonl");
    writeFile(f, jsonl(claudeUser("x")));
    fs.chmodSync(f, 0o000);
    writeFile(path.join(home, ".claude", "projects", "p", "bin.jsonl"), Buffer.from([0xff, 0xfe, 0x00, 0x0a, 0xc3, 0x28]));
    const w = await startWorker(home);
    try {
      const { status } = await w.getJson("/sessions");
      expect(status).toBe(200);
      expect((await w.getJson("/health")).body.status).toBe("ok");
    } finally {
      fs.chmodSync(f, 0o644);
      await w.stop();
    }
  });
});

describe("incremental index", () => {
  test("only changed files are re-parsed; deletions and additions are picked up", () => {
    const home = mkHome();
    for (let i = 0; i < 20; i++) writeFile(path.join(home, ".claude", "projects", "p", `s${i}.jsonl`), jsonl(claudeUser(`p${i}`)));
    const idx = new SessionIndex({ home });
    idx.scan();
    expect(idx.size).toBe(20);
    expect(idx.stats.parsedFiles).toBe(20);
    const gen = idx.generation;
    expect(idx.scan()).toBe(false);
    expect(idx.stats.parsedFiles).toBe(20);
    expect(idx.generation).toBe(gen);
    const body1 = idx.listBody();
    expect(idx.listBody()).toBe(body1); // cached serialization

    fs.appendFileSync(path.join(home, ".claude", "projects", "p", "s3.jsonl"), jsonl(claudeAssistant("a")));
    fs.rmSync(path.join(home, ".claude", "projects", "p", "s4.jsonl"));
    writeFile(path.join(home, ".claude", "projects", "q", "new.jsonl"), jsonl(claudeUser("new")));
    expect(idx.scan()).toBe(true);
    expect(idx.stats.parsedFiles).toBe(22);
    expect(idx.size).toBe(20);
    expect(idx.get("s3").messageCount).toBe(2);
    expect(idx.get("s4")).toBeUndefined();
    expect(idx.get("new").directory).toBe("q");
    expect(idx.listBody()).not.toBe(body1);
  });

  test("full-rescan mode re-parses everything on every scan", () => {
    const home = mkHome();
    for (let i = 0; i < 10; i++) writeFile(path.join(home, ".claude", "projects", "p", `s${i}.jsonl`), jsonl(claudeUser(`p${i}`)));
    const idx = new SessionIndex({ home, fullRescan: true });
    idx.scan();
    idx.scan();
    idx.scan();
    expect(idx.stats.parsedFiles).toBe(30);
    expect(idx.size).toBe(10);
  });

  test("watchers pick up new files without an explicit refresh", async () => {
    const home = mkHome();
    fs.mkdirSync(path.join(home, ".claude", "projects"), { recursive: true });
    const w = await startWorker(home, { env: { PERRY_WORKER_WATCH: "1" } });
    try {
      writeFile(path.join(home, ".claude", "projects", "p", "watched.jsonl"), jsonl(claudeUser("w")));
      let count = 0;
      for (let i = 0; i < 40 && count === 0; i++) {
        await Bun.sleep(50);
        count = (await w.getJson("/health")).body.sessionCount;
      }
      expect(count).toBe(1);
    } finally {
      expect(await w.stop()).toBe(0);
    }
  });
});
