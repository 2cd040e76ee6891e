// GET /sessions benchmark: event-driven index (watchers) vs stat-walk per call vs Perry-style full rescan.
//
//   bun bench/sessions_bench.js
//
// Env knobs: BENCH_SESSIONS (5000), BENCH_LINES (30 JSONL lines per session),
// BENCH_CALLS (30), BENCH_MODES (watch,stat-walk,full-rescan), BENCH_IDLE_S (60: idle CPU of the watch
// mode over that many seconds, 0 skips it), BENCH_KEEP=1 keeps the temp home.
// Seeds a temp home (80% Claude, 10% pi, 10% Codex), starts the worker once per mode on 127.0.0.1
// (random port) and measures GET /sessions latency (median / p95: request sent to the whole body
// received; the body is parsed and its count checked outside the timed part), latency while one file
// changes before every call, startup time, peak RSS (VmHWM from /proc/<pid>/status) and, for watch
// mode, the CPU the idle worker uses (utime+stime from /proc/<pid>/stat) with no change for BENCH_IDLE_S.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

const N = Number(process.env.BENCH_SESSIONS || 5000);
const LINES = Number(process.env.BENCH_LINES || 30);
const CALLS = Number(process.env.BENCH_CALLS || 30);
const MODES = (process.env.BENCH_MODES || "watch,stat-walk,full-rescan").split(",").filter(Boolean);
const IDLE_S = Number(process.env.BENCH_IDLE_S ?? 60);
const CLK_TCK = 100; // USER_HZ on Linux
const CLI = path.join(import.meta.dir, "..", "src", "cli.js");

function seed(home) {
  const filler = "lorem ipsum dolor sit amet ".repeat(12);
  const claudeLines = [];
  for (let i = 0; i < LINES; i++) {
    claudeLines.push(
      JSON.stringify(
        i % 2 === 0
          ? { type: "user", timestamp: new Date(1767225600000 + i * 1000).toISOString(), message: { role: "user", content: [{ type: "text", text: `question ${i} ${filler}` }] } }
          : {
              type: "assistant",
              timestamp: new Date(1767225600000 + i * 1000).toISOString(),
              message: { role: "assistant", content: [{ type: "text", text: `answer ${i} ${filler}` }, { type: "tool_use", id: `tu_${i}`, name: "Bash", input: { command: "ls -la" } }] },
            },
      ),
    );
  }
  const claudeText = claudeLines.join("\n") + "\n";
  const piLines = [JSON.stringify({ type: "session", id: "PLACEHOLDER", cwd: "/home/workspace/app" })];
  for (let i = 0; i < LINES - 1; i++)
    piLines.push(JSON.stringify({ type: "message", message: { role: i % 2 ? "assistant" : "user", content: [{ type: "text", text: `pi ${i} ${filler}` }] } }));
  const codexLines = [JSON.stringify({ type: "session_meta", payload: { id: "PLACEHOLDER", cwd: "/home/workspace/codex" } })];
  for (let i = 0; i < LINES - 1; i++)
    codexLines.push(
      JSON.stringify({ type: "response_item", payload: { type: "message", role: i % 2 ? "assistant" : "user", content: [{ type: i % 2 ? "output_text" : "input_text", text: `codex ${i} ${filler}` }] } }),
    );
  const nPi = Math.floor(N * 0.1);
  const nCodex = Math.floor(N * 0.1);
  const nClaude = N - nPi - nCodex;
  let bytes = 0;
  for (let i = 0; i < nClaude; i++) {
    const dir = path.join(home, ".claude", "projects", `-home-workspace-proj${Math.floor(i / 100)}`);
    if (i % 100 === 0) fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, `claude-${i}.jsonl`), claudeText);
    bytes += claudeText.length;
  }
  for (let i = 0; i < nPi; i++) {
    const dir = path.join(home, ".pi", "agent", "sessions", `--home-workspace-app${Math.floor(i / 100)}--`);
    if (i % 100 === 0) fs.mkdirSync(dir, { recursive: true });
    const t = piLines.join("\n").replace("PLACEHOLDER", `pi-${i}`) + "\n";
    fs.writeFileSync(path.join(dir, `2026-01-01T00-00-00_pi-${i}.jsonl`), t);
    bytes += t.length;
  }
  for (let i = 0; i < nCodex; i++) {
    const dir = path.join(home, ".codex", "sessions", "2026", "01", String(1 + (i % 28)).padStart(2, "0"));
    fs.mkdirSync(dir, { recursive: true });
    const id = `0199a1b2-c3d4-7e5f-8a9b-${String(i).padStart(12, "0")}`;
    const t = codexLines.join("\n").replace("PLACEHOLDER", id) + "\n";
    fs.writeFileSync(path.join(dir, `rollout-2026-01-01T00-00-00-${id}.jsonl`), t);
    bytes += t.length;
  }
  return { nClaude, nPi, nCodex, bytes };
}

function peakRss(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, "utf8");
    const m = s.match(/VmHWM:\s+(\d+) kB/);
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

function cpuSeconds(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const rest = f.slice(f.lastIndexOf(")") + 2).split(" "); // fields from 3 on
  return (Number(rest[11]) + Number(rest[12])) / CLK_TCK; // utime (14) + stime (15)
}

const pct = (arr, p) => {
  const a = [...arr].sort((x, y) => x - y);
  return a[Math.min(a.length - 1, Math.max(0, Math.ceil((p / 100) * a.length) - 1))];
};

async function runMode(home, mode) {
  const t0 = performance.now();
  const args = [process.execPath, CLI, "worker", "serve", "--port", "0", "--host", "127.0.0.1"];
  if (mode !== "watch") args.push("--no-watch");
  if (mode === "full-rescan") args.push("--full-rescan");
  const proc = Bun.spawn(args, { env: { ...process.env, PERRY_WORKER_HOME: home }, stdout: "pipe", stderr: "inherit" });
  const reader = proc.stdout.getReader();
  let out = "";
  let port;
  while (!port) {
    const { value, done } = await reader.read();
    if (done) throw new Error("worker exited: " + out);
    out += new TextDecoder().decode(value);
    const m = out.match(/listening on 127\.0\.0\.1:(\d+)/);
    if (m) port = Number(m[1]);
  }
  const startupMs = performance.now() - t0;
  const url = `http://127.0.0.1:${port}/sessions`;
  const call = async () => {
    const t = performance.now();
    const r = await fetch(url);
    const raw = await r.arrayBuffer();
    const dt = performance.now() - t;
    const body = JSON.parse(new TextDecoder().decode(raw));
    if (body.sessions.length !== N) throw new Error(`expected ${N} sessions, got ${body.sessions.length}`);
    return { dt, body };
  };
  await call(); // warm-up
  const steady = [];
  for (let i = 0; i < CALLS; i++) steady.push((await call()).dt);
  // one session file changes before every call (an agent appending to a live session)
  const live = path.join(home, ".claude", "projects", "-home-workspace-proj0", "claude-0.jsonl");
  const changing = [];
  let seenChange = 0;
  const liveCount = (body) => body.sessions.find((x) => x.id === "claude-0").messageCount;
  let expected = liveCount((await call()).body);
  for (let i = 0; i < Math.min(CALLS, 10); i++) {
    expected++;
    fs.appendFileSync(live, JSON.stringify({ type: "user", message: { content: `live ${mode} ${i}` } }) + "\n");
    const before = performance.now();
    let r = await call();
    // watch mode: the append is seen once its event reached the worker; count the calls until then too
    while (liveCount(r.body) !== expected && performance.now() - before < 2000) {
      await Bun.sleep(5);
      r = await call();
    }
    if (liveCount(r.body) === expected) seenChange++;
    changing.push(performance.now() - before);
  }
  const rss = peakRss(proc.pid);
  let idleCpu = null;
  if (mode === "watch" && IDLE_S > 0) {
    await Bun.sleep(1000); // the recheck of the last append is over
    const c0 = cpuSeconds(proc.pid);
    const t0 = performance.now();
    await Bun.sleep(IDLE_S * 1000);
    idleCpu = (100 * (cpuSeconds(proc.pid) - c0)) / ((performance.now() - t0) / 1000);
  }
  proc.kill("SIGTERM");
  const code = await proc.exited;
  return { mode, startupMs, median: pct(steady, 50), p95: pct(steady, 95), changingMedian: pct(changing, 50), seenChange, rss, idleCpu, code };
}

const home = fs.mkdtempSync(path.join(os.tmpdir(), "perry-bench-"));
try {
  const ts = performance.now();
  const s = seed(home);
  console.log(
    `seeded ${N} sessions (${s.nClaude} claude, ${s.nPi} pi, ${s.nCodex} codex; ${LINES} lines each; ${(s.bytes / 1048576).toFixed(1)} MiB) in ${((performance.now() - ts) / 1000).toFixed(1)} s`,
  );
  console.log(`bun ${Bun.version}, ${os.cpus().length} CPUs, ${CALLS} calls per mode (+1 warm-up, +${Math.min(CALLS, 10)} calls with one file changing)\n`);
  const results = [];
  for (const mode of MODES) results.push(await runMode(home, mode));
  const f = (x) => (x === null || x === undefined || Number.isNaN(x) ? "-" : x.toFixed(1));
  const rows = [
    ["mode", "startup ms", "GET /sessions median ms", "p95 ms", "median ms (1 file changed/call, until seen)", "changes seen", "peak RSS MiB", `idle CPU % (${IDLE_S} s)`, "exit"],
    ...results.map((r) => [r.mode, f(r.startupMs), f(r.median), f(r.p95), f(r.changingMedian), `${r.seenChange}/${Math.min(CALLS, 10)}`, f(r.rss), r.idleCpu === null ? "-" : r.idleCpu.toFixed(3), String(r.code)]),
  ];
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const line = (r) => "| " + r.map((c, i) => c.padEnd(w[i])).join(" | ") + " |";
  console.log(line(rows[0]));
  console.log("|" + w.map((n) => "-".repeat(n + 2)).join("|") + "|");
  for (const r of rows.slice(1)) console.log(line(r));
  const by = Object.fromEntries(results.map((r) => [r.mode, r]));
  const full = by["full-rescan"];
  for (const m of ["watch", "stat-walk"]) {
    const r = by[m];
    if (!full || !r) continue;
    console.log(
      `ratio full-rescan / ${m}: median ${(full.median / r.median).toFixed(1)}x, p95 ${(full.p95 / r.p95).toFixed(1)}x, ` +
        `changing ${(full.changingMedian / r.changingMedian).toFixed(1)}x, peak RSS ${(full.rss / r.rss).toFixed(2)}x`,
    );
  }
} finally {
  if (!process.env.BENCH_KEEP) fs.rmSync(home, { recursive: true, force: true });
  else console.log(`kept ${home}`);
}
