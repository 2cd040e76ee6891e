// Discovery for pi, codex, OpenCode JSON storage and OpenCode SQLite with parts.
import { test, expect, beforeAll, afterAll, describe } from "bun:test";
import * as fs from "node:fs";
import * as path from "node:path";
import { tempHome, startWorker, writeFile, jsonl, seedOpencodeDb } from "./helpers.js";

let home, w;
beforeAll(async () => {
  home = tempHome();
  // pi: nested shape with a session header, and Perry's flat shape without header
  writeFile(
    path.join(home, ".pi", "agent", "sessions", "--home-workspace-app--", "2026-01-01T00-00-00_pi-uuid-file.jsonl"),
    jsonl(
      { type: "session", id: "pi-session-1", timestamp: "2026-01-01T00:00:00Z", cwd: "/home/workspace/app" },
      { type: "message", timestamp: "2026-01-01T00:00:01Z", message: { role: "user", content: [{ type: "text", text: "pi hello" }] } },
      { type: "message", timestamp: "2026-01-01T00:00:02Z", message: { role: "assistant", content: [{ type: "text", text: "pi answer" }] } },
      { type: "model_change", provider: "x" },
    ),
  );
  writeFile(
    path.join(home, ".pi", "agent", "sessions", "deep", "nested", "x_flatid.jsonl"),
    jsonl({ type: "message", role: "user", content: "flat prompt" }, { type: "message", role: "assistant", content: "ok" }),
  );
  // codex: current rollout format
  writeFile(
    path.join(home, ".codex", "sessions", "2026", "01", "02", "rollout-2026-01-02T10-00-00-0199a1b2-c3d4-7e5f-8a9b-0123456789ab.jsonl"),
    jsonl(
      { timestamp: "2026-01-02T10:00:00Z", type: "session_meta", payload: { id: "0199a1b2-c3d4-7e5f-8a9b-0123456789ab", cwd: "/home/workspace/codexproj" } },
      { timestamp: "2026-01-02T10:00:01Z", type: "response_item", payload: { type: "message", role: "user", content: [{ type: "input_text", text: "<environment_context>cwd</environment_context>" }] } },
      { timestamp: "2026-01-02T10:00:02Z", type: "response_item", payload: { type: "message", role: "user", content: [{ type: "input_text", text: "Fix the codex bug" }] } },
      { timestamp: "2026-01-02T10:00:03Z", type: "response_item", payload: { type: "reasoning", summary: [] } },
      { timestamp: "2026-01-02T10:00:04Z", type: "response_item", payload: { type: "function_call", name: "shell", arguments: '{"command":["ls"]}', call_id: "call_9" } },
      { timestamp: "2026-01-02T10:00:05Z", type: "response_item", payload: { type: "function_call_output", call_id: "call_9", output: "README.md" } },
      { timestamp: "2026-01-02T10:00:06Z", type: "response_item", payload: { type: "message", role: "assistant", content: [{ type: "output_text", text: "Done." }] } },
      { timestamp: "2026-01-02T10:00:07Z", type: "event_msg", payload: { type: "user_message", message: "Fix the codex bug" } },
    ),
  );
  // codex: older format, id on first line
  writeFile(
    path.join(home, ".codex", "sessions", "rollout-2025-05-01-old.jsonl"),
    jsonl(
      { id: "old-codex-id", timestamp: "2025-05-01T00:00:00Z", instructions: "" },
      { type: "message", role: "user", content: [{ type: "input_text", text: "old codex prompt" }] },
    ),
  );
  // codex: no meta at all -> id from file name
  writeFile(
    path.join(home, ".codex", "sessions", "2026", "rollout-2026-02-02T00-00-00-11111111-2222-3333-4444-555555555555.jsonl"),
    jsonl({ type: "response_item", payload: { type: "message", role: "user", content: [{ type: "input_text", text: "nameless" }] } }),
  );
  // not a rollout file: ignored
  writeFile(path.join(home, ".codex", "sessions", "history.jsonl"), jsonl({ type: "x" }));
  // OpenCode older JSON storage
  const st = path.join(home, ".local", "share", "opencode", "storage");
  writeFile(
    path.join(st, "session", "proj-hash", "ses_json1.json"),
    JSON.stringify({ id: "ses_json1", title: "JSON storage session", directory: "/home/workspace/oc", time: { created: 1700000000000, updated: 1700000005000 } }),
  );
  writeFile(path.join(st, "message", "ses_json1", "msg_a.json"), JSON.stringify({ id: "msg_a", sessionID: "ses_json1", role: "user", time: { created: 1700000001000 } }));
  writeFile(path.join(st, "message", "ses_json1", "msg_b.json"), JSON.stringify({ id: "msg_b", sessionID: "ses_json1", role: "assistant", time: { created: 1700000002000 } }));
  writeFile(path.join(st, "part", "msg_a", "prt_1.json"), JSON.stringify({ id: "prt_1", type: "text", text: "json q" }));
  writeFile(path.join(st, "part", "msg_b", "prt_1.json"), JSON.stringify({ id: "prt_1", type: "text", text: "json a" }));
  // OpenCode SQLite with parts
  seedOpencodeDb(home, { id: "ses_parts", title: "With parts", parts: true });
  // Claude sub-agent log: skipped
  writeFile(path.join(home, ".claude", "projects", "p", "agent-123.jsonl"), jsonl({ type: "user", message: { content: "sub agent" } }));
  w = await startWorker(home);
});
afterAll(async () => {
  await w?.stop();
  fs.rmSync(home, { recursive: true, force: true });
});

const byId = async () => Object.fromEntries((await w.getJson("/sessions")).body.sessions.map((s) => [s.id, s]));

describe("discovery", () => {
  test("claude agent-* files are skipped", async () => {
    expect((await byId())["agent-123"]).toBeUndefined();
  });

  test("pi: header id, nested and flat message shapes", async () => {
    const s = await byId();
    const a = s["pi-session-1"];
    expect(a).toMatchObject({ agentType: "pi", title: "pi hello", firstPrompt: "pi hello", directory: "--home-workspace-app--", messageCount: 2 });
    const b = s["flatid"];
    expect(b).toMatchObject({ agentType: "pi", title: "flat prompt", directory: "nested", messageCount: 2 });
    const { body } = await w.getJson("/sessions/pi-session-1/messages?limit=10&offset=0");
    expect(body.total).toBe(2);
    expect(body.messages.map((m) => [m.type, m.content])).toEqual([
      ["user", "pi hello"],
      ["assistant", "pi answer"],
    ]);
  });

  test("codex: session_meta id, cwd, first real user prompt, messages", async () => {
    const s = (await byId())["0199a1b2-c3d4-7e5f-8a9b-0123456789ab"];
    expect(s).toMatchObject({
      agentType: "codex",
      title: "Fix the codex bug",
      firstPrompt: "Fix the codex bug",
      directory: "/home/workspace/codexproj",
      messageCount: 3,
    });
    const { body } = await w.getJson(`/sessions/${s.id}/messages?limit=50&offset=0`);
    expect(body.messages.map((m) => m.type)).toEqual(["user", "tool_use", "tool_result", "assistant"]);
    expect(body.messages[1]).toMatchObject({ toolName: "shell", toolId: "call_9", toolInput: '{"command":["ls"]}' });
    expect(body.messages[2]).toMatchObject({ content: "README.md", toolId: "call_9" });
    expect(body.total).toBe(4);
  });

  test("codex: older first-line id and file-name fallback; non-rollout ignored", async () => {
    const s = await byId();
    expect(s["old-codex-id"]).toMatchObject({ agentType: "codex", title: "old codex prompt" });
    expect(s["11111111-2222-3333-4444-555555555555"]).toMatchObject({ agentType: "codex", title: "nameless" });
    expect(Object.values(s).filter((x) => x.agentType === "codex").length).toBe(3);
  });

  test("opencode JSON storage", async () => {
    const s = (await byId())["ses_json1"];
    expect(s).toMatchObject({ agentType: "opencode", title: "JSON storage session", directory: "/home/workspace/oc", messageCount: 2, lastActivity: 1700000005000 });
    const { body } = await w.getJson("/sessions/ses_json1/messages?limit=10&offset=0");
    expect(body.messages.map((m) => [m.type, m.content])).toEqual([
      ["user", "json q"],
      ["assistant", "json a"],
    ]);
  });

  test("opencode SQLite parts -> text, tool_use, tool_result", async () => {
    const { body } = await w.getJson("/sessions/ses_parts/messages?limit=10&offset=0");
    expect(body.total).toBe(4);
    expect(body.messages.map((m) => m.type)).toEqual(["user", "assistant", "tool_use", "tool_result"]);
    expect(body.messages[2]).toMatchObject({ toolName: "ls", toolId: "call_1", toolInput: '{"command":"ls"}' });
    expect(body.messages[3]).toMatchObject({ content: "a b", toolId: "call_1" });
    const page = await w.getJson("/sessions/ses_parts/messages?limit=2&offset=1");
    expect(page.body.messages.map((m) => m.type)).toEqual(["assistant", "tool_use"]);
  });

  test("agentType values are within the documented set", async () => {
    for (const s of Object.values(await byId())) expect(["claude", "opencode", "pi", "codex"]).toContain(s.agentType);
  });
});
