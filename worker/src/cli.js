// perry (worker subset): `perry worker serve [--port N] [--host H] [--full-rescan]`, `perry --version`.
import * as os from "node:os";
import { VERSION } from "./version.js";
import { SessionIndex } from "./session-index.js";
import { startServer } from "./server.js";
import { loadAuth, DEFAULT_AUTH_FILE } from "./auth.js";

const USAGE = `perry ${VERSION}
Usage:
  perry worker serve [--port N] [--host H] [--full-rescan] [--no-watch]
  perry --version

Environment:
  PERRY_WORKER_HOME          home directory to scan (default: $HOME)
  PERRY_WORKER_FULL_RESCAN=1 re-parse every session file on each GET /sessions (Perry behaviour)
  PERRY_WORKER_WATCH=0       disable file watchers (every GET /sessions then stat-walks the agent directories)
  PERRY_WORKER_RECONCILE_MS  least time between two reconciliation walks with watchers (default 60000)
  PERRY_WORKER_AUTH_FILE     the token file ("Authorization: Bearer <token>"; default ${DEFAULT_AUTH_FILE});
                             every route requires the token when it exists, none when it does not`;

function truthy(v) {
  return v !== undefined && v !== "" && v !== "0" && v.toLowerCase() !== "false";
}

function parseArgs(argv) {
  const opts = { port: 7392, host: "0.0.0.0", fullRescan: truthy(process.env.PERRY_WORKER_FULL_RESCAN), watch: process.env.PERRY_WORKER_WATCH === undefined ? true : truthy(process.env.PERRY_WORKER_WATCH) };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (a.includes("=")) return a.slice(a.indexOf("=") + 1);
      if (i + 1 >= argv.length) throw new Error(`missing value for ${a}`);
      return argv[++i];
    };
    if (a === "--port" || a === "-p" || a.startsWith("--port=")) {
      const n = Number(val());
      if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error("invalid --port");
      opts.port = n;
    } else if (a === "--host" || a.startsWith("--host=")) opts.host = val();
    else if (a === "--full-rescan") opts.fullRescan = true;
    else if (a === "--no-watch") opts.watch = false;
    else throw new Error(`unknown option: ${a}`);
  }
  return opts;
}

function serve(argv) {
  let opts;
  try {
    opts = parseArgs(argv);
  } catch (err) {
    console.error(`error: ${err.message}\n${USAGE}`);
    process.exit(2);
  }
  const home = process.env.PERRY_WORKER_HOME || os.homedir();
  const reconcileMs = Number(process.env.PERRY_WORKER_RECONCILE_MS || 60000);
  if (!Number.isFinite(reconcileMs) || reconcileMs < 100) {
    console.error(`error: PERRY_WORKER_RECONCILE_MS must be a number of milliseconds >= 100\n${USAGE}`);
    process.exit(2);
  }
  const index = new SessionIndex({ home, fullRescan: opts.fullRescan, watch: opts.watch, reconcileMs, log: (m) => console.error(m) });
  index.scan();
  index.startReconciling();
  const auth = loadAuth();
  if (auth.error) console.error(`perry worker: ${auth.error}; every request is refused (401) until it is fixed`);
  let server;
  try {
    server = startServer(index, { ...opts, auth });
  } catch (err) {
    console.error(`error: cannot listen on ${opts.host}:${opts.port}: ${err?.message ?? err}`);
    process.exit(1);
  }
  console.log(
    `perry worker ${VERSION} listening on ${server.hostname}:${server.port} (home=${home}, mode=${opts.fullRescan ? "full-rescan" : "incremental"}, tracking=${index.trackingMode}, sessions=${index.size}, auth=${auth.mode})`,
  );
  let stopping = false;
  const shutdown = (sig) => {
    if (stopping) return;
    stopping = true;
    console.log(`perry worker: ${sig} received, shutting down`);
    index.close();
    try {
      server.stop(true);
    } catch {}
    process.exit(0);
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}

function main(argv) {
  const [cmd, sub, ...rest] = argv;
  if (cmd === "--version" || cmd === "-v" || cmd === "version") {
    console.log(VERSION);
    return;
  }
  if (cmd === "worker" && sub === "serve") return serve(rest);
  if (cmd === undefined || cmd === "--help" || cmd === "-h" || cmd === "help") {
    console.log(USAGE);
    return;
  }
  console.error(`error: unknown command: ${argv.join(" ")}\n${USAGE}`);
  process.exit(2);
}

main(process.argv.slice(2));
