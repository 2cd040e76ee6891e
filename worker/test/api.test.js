// Acceptance cases from Perry's worker integration test (reference §4 "What the integration test asserts")
import { test, expect, beforeAll, afterAll, describe } from "bun:test";
import * as fs from "node:fs";
import * as path from "node:path";
import { tempHome, startWorker, writeFile, jsonl, claudeUser, claudeAssistant, seedOpencodeDb } from "./helpers.js";
import { VERSION } from "../src/version.js";

let home, w;
const claudeFile = () => path.join(home, ".claude", "projects", "test-project", "test-session.jsonl");

beforeAll(async () => {
  home = tempHome();
  w = await startWorker(home);
});
afterAll(async () => {
  await w?.stop();
  fs.rmSync(home, { recursive: true, force: true });
});

describe("perry worker API", () => {
  test("GET /health", async () => {
    const r = await w.get("/health");
    expect(r.ok).toBe(true);
    expect(r.headers.get("content-type")).toContain("application/json");
    const b = await r.json();
    expect(b.status).toBe("ok");
    expect(b.version).toBe(VERSION);
    expect(typeof b.sessionCount).toBe("number");
    expect(b.skipped).toEqual({ lines: 0, files: 0 });
  });

  test("GET /sessions returns an array", async () => {
    const { status, body } = await w.getJson("/sessions");
    expect(status).toBe(200);
    expect(Array.isArray(body.sessions)).toBe(true);
  });

  test("claude session discovered after POST /refresh, messageCount follows appends", async () => {
    writeFile(claudeFile(), jsonl(claudeUser("Hello from test")));
    const rr = await fetch(w.url + "/refresh", { method: "POST" });
    expect(rr.status).toBe(200);
    expect(await rr.json()).toEqual({ success: true });
    let { body } = await w.getJson("/sessions");
    const s = body.sessions.find((x) => x.id === "test-session");
    expect(s).toBeDefined();
    expect(s.agentType).toBe("claude");
    expect(s.title).toBe("Hello from test");
    expect(s.firstPrompt).toBe("Hello from test");
    expect(s.directory).toBe("test-project");
    expect(s.filePath).toBe(claudeFile());
    expect(s.messageCount).toBe(1);
    expect(typeof s.lastActivity).toBe("number");
    expect(s.lastActivity).toBeGreaterThan(1e12); // milliseconds

    fs.appendFileSync(claudeFile(), jsonl(claudeAssistant("Hi there"), claudeUser("Another question")));
    await fetch(w.url + "/refresh", { method: "POST" });
    ({ body } = await w.getJson("/sessions"));
    expect(body.sessions.find((x) => x.id === "test-session").messageCount).toBe(3);
    const h = await w.getJson("/health");
    expect(h.body.sessionCount).toBeGreaterThanOrEqual(1);
  });

  test("opencode sqlite session ses_test123 with 2 messages", async () => {
    seedOpencodeDb(home);
    const { body } = await w.getJson("/sessions");
    const s = body.sessions.find((x) => x.id === "ses_test123");
    expect(s).toBeDefined();
    expect(s.agentType).toBe("opencode");
    expect(s.title).toBe("Test OpenCode Session");
    expect(s.messageCount).toBe(2);
    expect(s.filePath).toBe("");
  });

  test("GET /sessions/{id} and 404 for unknown id", async () => {
    let { status, body } = await w.getJson("/sessions/test-session");
    expect(status).toBe(200);
    expect(body.session.id).toBe("test-session");
    ({ status, body } = await w.getJson("/sessions/ses_test123"));
    expect(status).toBe(200);
    expect(body.session.agentType).toBe("opencode");
    ({ status, body } = await w.getJson("/sessions/does-not-exist"));
    expect(status).toBe(404);
    expect(body).toEqual({ error: "Session not found" });
  });

  test("GET /sessions/{id}/messages with paging from the newest end", async () => {
    let { status, body } = await w.getJson("/sessions/test-session/messages?limit=10&offset=0");
    expect(status).toBe(200);
    expect(body.id).toBe("test-session");
    expect(Array.isArray(body.messages)).toBe(true);
    expect(body.total).toBe(3);
    expect(body.messages.map((m) => m.type)).toEqual(["user", "assistant", "user"]);
    expect(body.messages[0].content).toBe("Hello from test");
    expect(body.messages[0].timestamp).toBe("2026-01-01T00:00:00.000Z");

    ({ body } = await w.getJson("/sessions/test-session/messages?limit=1&offset=0"));
    expect(body.total).toBe(3);
    expect(body.messages.map((m) => m.content)).toEqual(["Another question"]);
    ({ body } = await w.getJson("/sessions/test-session/messages?limit=1&offset=1"));
    expect(body.messages.map((m) => m.content)).toEqual(["Hi there"]);
    ({ body } = await w.getJson("/sessions/test-session/messages?limit=5&offset=2"));
    expect(body.messages.map((m) => m.content)).toEqual(["Hello from test"]);
    ({ body } = await w.getJson("/sessions/test-session/messages?limit=5&offset=3"));
    expect(body.messages).toEqual([]);
    ({ body } = await w.getJson("/sessions/test-session/messages?limit=5&offset=99"));
    expect(body.messages).toEqual([]);
    expect(body.total).toBe(3);
  });

  test("messages default limit and unknown id -> 200 empty", async () => {
    let { status, body } = await w.getJson("/sessions/test-session/messages");
    expect(status).toBe(200);
    expect(body.total).toBe(3);
    expect(body.messages.length).toBe(3);
    ({ status, body } = await w.getJson("/sessions/nope/messages?limit=10&offset=0"));
    expect(status).toBe(200);
    expect(body).toEqual({ id: "nope", messages: [], total: 0 });
  });

  test("opencode messages (sqlite without part table) are an empty list with numeric total", async () => {
    const { body } = await w.getJson("/sessions/ses_test123/messages?limit=10&offset=0");
    expect(body.id).toBe("ses_test123");
    expect(Array.isArray(body.messages)).toBe(true);
    expect(typeof body.total).toBe("number");
  });

  test("unknown routes -> JSON 404", async () => {
    for (const [m, p] of [
      ["GET", "/nope"],
      ["GET", "/"],
      ["POST", "/sessions"],
      ["GET", "/refresh"],
      ["PUT", "/sessions/test-session"],
      ["GET", "/sessions/a/b/c"],
    ]) {
      const r = await fetch(w.url + p, { method: m });
      expect(r.status).toBe(404);
      expect(await r.json()).toEqual({ error: "Not Found" });
    }
  });

  test("URL-encoded ids", async () => {
    writeFile(path.join(home, ".claude", "projects", "enc", "with space.jsonl"), jsonl(claudeUser("spaced")));
    const { status, body } = await w.getJson("/sessions/" + encodeURIComponent("with space"));
    expect(status).toBe(200);
    expect(body.session.firstPrompt).toBe("spaced");
  });

  test("DELETE /sessions/{id} for claude and opencode, 404 shape for unknown", async () => {
    writeFile(path.join(home, ".claude", "projects", "del", "to-delete.jsonl"), jsonl(claudeUser("bye")));
    await fetch(w.url + "/refresh", { method: "POST" });
    let r = await fetch(w.url + "/sessions/to-delete", { method: "DELETE" });
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ success: true });
    expect(fs.existsSync(path.join(home, ".claude", "projects", "del", "to-delete.jsonl"))).toBe(false);
    expect((await w.get("/sessions/to-delete")).status).toBe(404);

    r = await fetch(w.url + "/sessions/ses_test123", { method: "DELETE" });
    expect(r.status).toBe(200);
    const { body } = await w.getJson("/sessions");
    expect(body.sessions.find((x) => x.id === "ses_test123")).toBeUndefined();

    r = await fetch(w.url + "/sessions/never-existed", { method: "DELETE" });
    expect(r.status).toBe(404);
    const b = await r.json();
    expect(b.success).toBe(false);
    expect(typeof b.error).toBe("string");
  });

  test("sessions sorted by lastActivity desc", async () => {
    const old = path.join(home, ".claude", "projects", "old", "old-session.jsonl");
    writeFile(old, jsonl(claudeUser("old")));
    const t = new Date("2020-01-01T00:00:00Z");
    fs.utimesSync(old, t, t);
    const { body } = await w.getJson("/sessions");
    const acts = body.sessions.map((s) => s.lastActivity);
    expect([...acts].sort((a, b) => b - a)).toEqual(acts);
    expect(body.sessions.at(-1).id).toBe("old-session");
    expect(body.sessions.at(-1).lastActivity).toBe(t.getTime());
  });
});

describe("token (issue 19, defect 2)", () => {
  let tokHome, tw, authFile;
  beforeAll(async () => {
    tokHome = tempHome();
    authFile = path.join(tokHome, "worker.auth");
    fs.writeFileSync(authFile, "Authorization: Bearer s3cret-token\n");
    writeFile(path.join(tokHome, ".claude", "projects", "p", "private.jsonl"), jsonl(claudeUser("private words")));
    tw = await startWorker(tokHome, { env: { PERRY_WORKER_AUTH_FILE: authFile } });
  });
  afterAll(async () => {
    await tw?.stop();
    fs.rmSync(tokHome, { recursive: true, force: true });
  });
  const send = (p, headers = {}, method = "GET") => fetch(tw.url + p, { method, headers });

  test("every route answers 401 and no data without the token", async () => {
    for (const [p, method] of [["/health", "GET"], ["/sessions", "GET"], ["/sessions/private", "GET"],
      ["/sessions/private/messages", "GET"], ["/sessions/private", "DELETE"], ["/refresh", "POST"], ["/nope", "GET"]]) {
      for (const headers of [{}, { authorization: "Bearer wrong" }, { authorization: "Basic s3cret-token" },
        { authorization: "Bearer s3cret-token-and-more" }]) {
        const r = await send(p, headers, method);
        expect(r.status).toBe(401);
        const text = await r.text();
        expect(text).not.toContain("private");
        expect(text).not.toContain("version");
      }
    }
    expect(fs.existsSync(path.join(tokHome, ".claude", "projects", "p", "private.jsonl"))).toBe(true);
  });

  test("the token opens every route; /health says auth=token", async () => {
    const h = await (await send("/health", { authorization: "Bearer s3cret-token" })).json();
    expect(h.status).toBe("ok");
    expect(h.auth).toBe("token");
    const s = await (await send("/sessions", { authorization: "bearer s3cret-token" })).json();
    expect(s.sessions.map((x) => x.id)).toContain("private");
  });

  test("a present but unusable token file fails closed", async () => {
    const bad = path.join(tokHome, "bad.auth");
    fs.writeFileSync(bad, "no token here\n");
    const bw = await startWorker(tokHome, { env: { PERRY_WORKER_AUTH_FILE: bad } });
    try {
      expect((await bw.get("/health")).status).toBe(401);
    } finally {
      await bw.stop();
    }
  });

  test("without a token file the worker is open and says auth=none", async () => {
    const h = await w.getJson("/health");
    expect(h.body.auth).toBe("none");
  });
});

describe("paged session list (issue 19, defect 4)", () => {
  test("limit/offset/agentType/since page the newest-first list and give the total", async () => {
    const ph = tempHome();
    const t0 = Date.now() - 100000;
    for (let i = 0; i < 7; i++) {
      const f = path.join(ph, ".claude", "projects", "p", `s${i}.jsonl`);
      writeFile(f, jsonl(claudeUser(`q${i}`)));
      fs.utimesSync(f, (t0 + i * 1000) / 1000, (t0 + i * 1000) / 1000);
    }
    const pw = await startWorker(ph);
    try {
      const all = (await pw.getJson("/sessions")).body;
      expect(all.total).toBeUndefined(); // Perry's shape when no paging is asked for
      expect(all.sessions.length).toBe(7);
      const p1 = (await pw.getJson("/sessions?limit=3&offset=0")).body;
      const p2 = (await pw.getJson("/sessions?limit=3&offset=3")).body;
      const p3 = (await pw.getJson("/sessions?limit=3&offset=6")).body;
      expect(p1.total).toBe(7);
      const ids = [...p1.sessions, ...p2.sessions, ...p3.sessions].map((s) => s.id);
      expect(ids).toEqual(all.sessions.map((s) => s.id));
      expect(new Set(ids).size).toBe(7);
      const none = (await pw.getJson("/sessions?agentType=codex&limit=5")).body;
      expect(none).toEqual({ sessions: [], total: 0, offset: 0, limit: 5 });
      const recent = (await pw.getJson(`/sessions?since=${all.sessions[1].lastActivity}`)).body;
      expect(recent.total).toBe(2);
    } finally {
      await pw.stop();
      fs.rmSync(ph, { recursive: true, force: true });
    }
  });
});
