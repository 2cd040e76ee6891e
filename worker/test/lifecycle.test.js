// Process lifecycle: signals, CLI, scale, built artifacts.
import { test, expect, describe } from "bun:test";
import * as fs from "node:fs";
import * as path from "node:path";
import { homeFactory, startWorker, seedClaude, CLI, writeFile, jsonl, claudeUser } from "./helpers.js";
import { VERSION } from "../src/version.js";

const mkHome = homeFactory();

function run(args, env = {}) {
  const p = Bun.spawnSync([process.execPath, CLI, ...args], { env: { ...process.env, ...env } });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
}

describe("cli", () => {
  test("perry --version prints the single-sourced version", () => {
    const r = run(["--version"]);
    expect(r.code).toBe(0);
    expect(r.out.trim()).toBe(VERSION);
    expect(VERSION).toMatch(/^\d+\.\d+\.\d+/);
  });

  test("unknown command / option exits non-zero", () => {
    expect(run(["frobnicate"]).code).toBe(2);
    expect(run(["worker", "serve", "--bogus"]).code).toBe(2);
    expect(run(["worker", "serve", "--port", "notaport"]).code).toBe(2);
  });

  test("--port=N / --host=H forms and port already in use", async () => {
    const home = mkHome();
    const w = await startWorker(home);
    try {
      const second = Bun.spawnSync([process.execPath, CLI, "worker", "serve", `--port=${w.port}`, "--host=127.0.0.1"], {
        env: { ...process.env, PERRY_WORKER_HOME: home, PERRY_WORKER_WATCH: "0" },
        timeout: 10000,
      });
      expect(second.exitCode).toBe(1);
      expect(second.stderr.toString()).toContain("cannot listen");
    } finally {
      await w.stop();
    }
  });
});

describe("signals", () => {
  for (const sig of ["SIGTERM", "SIGINT"]) {
    test(`${sig} -> clean exit 0`, async () => {
      const home = mkHome();
      writeFile(path.join(home, ".claude", "projects", "p", "s.jsonl"), jsonl(claudeUser("x")));
      const w = await startWorker(home, { env: { PERRY_WORKER_WATCH: "1" } });
      expect((await w.getJson("/health")).body.sessionCount).toBe(1);
      w.proc.kill(sig);
      expect(await w.proc.exited).toBe(0);
      expect(w.output()).toContain(`${sig} received`);
    });
  }
});

describe("scale", () => {
  test("5,000 seeded sessions: listed, counted, fast incremental re-list", async () => {
    const home = mkHome();
    seedClaude(home, 5000, { lines: 4 });
    const w = await startWorker(home);
    try {
      expect((await w.getJson("/health")).body.sessionCount).toBe(5000);
      const t0 = performance.now();
      const { body } = await w.getJson("/sessions");
      const first = performance.now() - t0;
      expect(body.sessions.length).toBe(5000);
      expect(body.sessions[0].messageCount).toBe(4);
      const t1 = performance.now();
      await w.getJson("/sessions");
      const second = performance.now() - t1;
      // generous bounds: only guards against pathological regressions
      expect(first).toBeLessThan(5000);
      expect(second).toBeLessThan(5000);
      const one = await w.getJson("/sessions/sess-4999/messages?limit=2&offset=0");
      expect(one.body.total).toBe(4);
      expect(one.body.messages.length).toBe(2);
    } finally {
      expect(await w.stop()).toBe(0);
    }
  }, 60000);
});

describe("built artifacts (skipped unless ./build.sh was run)", () => {
  const root = path.join(import.meta.dir, "..");
  const dist = path.join(root, "dist", "cli.js");
  const bin = path.join(root, "dist-bin", "perry");
  test.skipIf(!fs.existsSync(dist))("dist/cli.js serves /health", async () => {
    const home = mkHome();
    const w = await startWorker(home, { cmd: [process.execPath, dist, "worker", "serve", "--port", "0", "--host", "127.0.0.1"] });
    expect((await w.getJson("/health")).body).toMatchObject({ status: "ok", version: VERSION });
    expect(await w.stop()).toBe(0);
  });
  test.skipIf(!fs.existsSync(bin))("dist-bin/perry serves /health", async () => {
    const home = mkHome();
    const w = await startWorker(home, { cmd: [bin, "worker", "serve", "--port", "0", "--host", "127.0.0.1"] });
    expect((await w.getJson("/health")).body).toMatchObject({ status: "ok", version: VERSION });
    expect(await w.stop()).toBe(0);
  });
});
