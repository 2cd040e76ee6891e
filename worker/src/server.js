// HTTP API compatible with Perry's worker (reference section 4).
import { VERSION } from "./version.js";
import { authorized, loadAuth } from "./auth.js";
import { createEngineProbe } from "./engine-probe.js";

const JSON_HEADERS = { "content-type": "application/json" };

function json(obj, status = 200) {
  return new Response(JSON.stringify(obj), { status, headers: JSON_HEADERS });
}

function intParam(v, dflt) {
  if (v === null || v === undefined || v === "") return dflt;
  const n = Number.parseInt(v, 10);
  return Number.isFinite(n) && n >= 0 ? n : dflt;
}

const UNAUTHORIZED_HEADERS = { ...JSON_HEADERS, "www-authenticate": 'Bearer realm="perry-worker"' };

/** The session-list query: none given means the whole list (Perry's agent asks for it so). */
function listQuery(params) {
  const keys = ["limit", "offset", "agentType", "since"];
  if (!keys.some((k) => params.has(k))) return null;
  const since = Number(params.get("since"));
  return {
    limit: intParam(params.get("limit"), Infinity),
    offset: intParam(params.get("offset"), 0),
    agentTypes: params.getAll("agentType").flatMap((v) => v.split(",")).filter(Boolean),
    since: params.has("since") && Number.isFinite(since) ? since : null,
  };
}

export function createHandler(index, { auth = { mode: "none" }, engine = createEngineProbe() } = {}) {
  return function handle(req) {
    const url = new URL(req.url);
    const p = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, "") : url.pathname;
    const m = req.method;
    if (!authorized(auth, req)) {
      // No data at all, not even the version: another workspace on the bridge must learn nothing.
      return new Response(JSON.stringify({ error: "unauthorized: this worker requires its workspace's token" }), {
        status: 401,
        headers: UNAUTHORIZED_HEADERS,
      });
    }
    try {
      if (p === "/health" && m === "GET") {
        const body = {
          status: "ok",
          version: VERSION,
          sessionCount: index.size,
          skipped: index.skipped,
          mode: index.fullRescan ? "full-rescan" : "incremental",
          tracking: index.trackingMode,
          auth: auth.mode,
        };
        return engine().then((e) => json({ ...body, engine: e }));
      }
      if (p === "/sessions" && m === "GET") {
        index.sync(); // watchers: only the paths that changed; otherwise a stat-walk
        const q = listQuery(url.searchParams);
        if (q) return json(index.page(q));
        return new Response(index.listBody(), { headers: JSON_HEADERS });
      }
      if (p === "/refresh" && m === "POST") {
        index.scan(); // an explicit refresh always walks everything
        return json({ success: true });
      }
      const mm = p.match(/^\/sessions\/([^/]+)(\/messages)?$/);
      if (mm) {
        let id;
        try {
          id = decodeURIComponent(mm[1]);
        } catch {
          id = mm[1];
        }
        if (mm[2]) {
          if (m !== "GET") return json({ error: "Not Found" }, 404);
          const limit = intParam(url.searchParams.get("limit"), 50);
          const offset = intParam(url.searchParams.get("offset"), 0);
          return json(index.getMessages(id, limit, offset));
        }
        if (m === "GET") {
          const s = index.get(id);
          return s ? json({ session: s }) : json({ error: "Session not found" }, 404);
        }
        if (m === "DELETE") {
          const r = index.delete(id);
          return r.success ? json({ success: true }) : json({ success: false, error: r.error }, 404);
        }
      }
      return json({ error: "Not Found" }, 404);
    } catch (err) {
      return json({ error: String(err?.message ?? err) }, 500);
    }
  };
}

export function startServer(index, { port = 7392, host = "0.0.0.0", auth = loadAuth() } = {}) {
  return Bun.serve({ port, hostname: host, fetch: createHandler(index, { auth }) });
}
