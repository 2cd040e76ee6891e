// Test helpers: temp homes, seeding, and a real worker subprocess on 127.0.0.1.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Database } from "bun:sqlite";
import { afterAll } from "bun:test";

export const CLI = path.join(import.meta.dir, "..", "src", "cli.js");

export function tempHome(prefix = "perry-worker-test-") {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A temp-home maker for one test file; its homes are removed after the file's tests (call at top level). */
export function homeFactory() {
  const homes = [];
  afterAll(() => {
    for (const h of homes) fs.rmSync(h, { recursive: true, force: true });
  });
  return () => {
    const h = tempHome();
    homes.push(h);
    return h;
  };
}

export function writeFile(p, text) {
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, text);
}

export function jsonl(...entries) {
  return entries.map((e) => (typeof e === "string" ? e : JSON.stringify(e))).join("\n") + "\n";
}

export function claudeUser(text) {
  return { type: "user", message: { role: "user", content: [{ type: "text", text }] }, timestamp: "2026-01-01T00:00:00.000Z" };
}
export function claudeAssistant(text) {
  return { type: "assistant", message: { role: "assistant", content: [{ type: "text", text }] }, timestamp: "2026-01-01T00:00:01.000Z" };
}

/** Seed an OpenCode SQLite DB the way Perry's integration test does. */
export function seedOpencodeDb(home, { id = "ses_test123", title = "Test OpenCode Session", directory = "/home/workspace/proj", parts = false } = {}) {
  const p = path.join(home, ".local", "share", "opencode", "opencode.db");
  fs.mkdirSync(path.dirname(p), { recursive: true });
  const db = new Database(p);
  db.run("CREATE TABLE IF NOT EXISTS session (id TEXT PRIMARY KEY, title TEXT, directory TEXT, time_created INTEGER, time_updated INTEGER)");
  db.run(
    "CREATE TABLE IF NOT EXISTS message (id TEXT PRIMARY KEY, session_id TEXT REFERENCES session(id) ON DELETE CASCADE, time_created INTEGER, time_updated INTEGER, data TEXT)",
  );
  if (parts)
    db.run(
      "CREATE TABLE IF NOT EXISTS part (id TEXT PRIMARY KEY, message_id TEXT, session_id TEXT REFERENCES session(id) ON DELETE CASCADE, time_created INTEGER, data TEXT)",
    );
  const now = Date.now();
  db.query("INSERT INTO session VALUES (?, ?, ?, ?, ?)").run(id, title, directory, now - 1000, now);
  db.query("INSERT INTO message VALUES (?, ?, ?, ?, ?)").run(`msg_${id}_1`, id, now - 900, now - 900, JSON.stringify({ role: "user" }));
  db.query("INSERT INTO message VALUES (?, ?, ?, ?, ?)").run(`msg_${id}_2`, id, now - 800, now - 800, JSON.stringify({ role: "assistant" }));
  if (parts) {
    const ins = db.query("INSERT INTO part VALUES (?, ?, ?, ?, ?)");
    ins.run(`prt_1`, `msg_${id}_1`, id, now - 900, JSON.stringify({ type: "text", text: "hi opencode" }));
    ins.run(`prt_2`, `msg_${id}_2`, id, now - 800, JSON.stringify({ type: "text", text: "hello human" }));
    ins.run(
      `prt_3`,
      `msg_${id}_2`,
      id,
      now - 790,
      JSON.stringify({ type: "tool", tool: "bash", callID: "call_1", state: { title: "ls", input: { command: "ls" }, output: "a b" } }),
    );
  }
  db.close();
  return p;
}

/** Seed `n` Claude sessions spread over project dirs, `lines` entries each. */
export function seedClaude(home, n, { lines = 4, perProject = 100 } = {}) {
  const body = [];
  for (let i = 0; i < lines; i++) body.push(i % 2 === 0 ? claudeUser(`prompt ${i}`) : claudeAssistant(`answer ${i}`));
  const text = jsonl(...body);
  for (let i = 0; i < n; i++) {
    const dir = path.join(home, ".claude", "projects", `-home-workspace-proj${Math.floor(i / perProject)}`);
    if (i % perProject === 0) fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, `sess-${i}.jsonl`), text);
  }
}

/**
 * Start `bun src/cli.js worker serve --port 0 --host 127.0.0.1` and wait for its
 * "listening on" line. Returns {url, proc, port, stop(), output()}.
 */
export async function startWorker(home, { args = [], env = {}, cmd } = {}) {
  const proc = Bun.spawn(cmd ?? [process.execPath, CLI, "worker", "serve", "--port", "0", "--host", "127.0.0.1", ...args], {
    env: { ...process.env, PERRY_WORKER_HOME: home, PERRY_WORKER_WATCH: "0", ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const reader = proc.stdout.getReader();
  const dec = new TextDecoder();
  let out = "";
  const deadline = Date.now() + 20000;
  let port;
  while (Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    out += dec.decode(value);
    const m = out.match(/listening on 127\.0\.0\.1:(\d+)/);
    if (m) {
      port = Number(m[1]);
      break;
    }
  }
  if (!port) {
    proc.kill();
    throw new Error(`worker did not start: ${out} ${await new Response(proc.stderr).text()}`);
  }
  // keep draining stdout so the pipe never fills
  (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        out += dec.decode(value);
      }
    } catch {}
  })();
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    port,
    proc,
    output: () => out,
    get: (p) => fetch(url + p),
    getJson: async (p) => {
      const r = await fetch(url + p);
      return { status: r.status, body: await r.json() };
    },
    async stop() {
      if (proc.exitCode === null) proc.kill("SIGTERM");
      return await proc.exited;
    },
  };
}
