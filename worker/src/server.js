// HTTP API compatible with Perry's worker (reference section 4).
import { VERSION } from "./version.js";

const JSON_HEADERS = { "content-type": "application/json" };

function json(obj, status = 200) {
  return new Response(JSON.stringify(obj), { status, headers: JSON_HEADERS });
}

function intParam(v, dflt) {
  if (v === null || v === undefined || v === "") return dflt;
  const n = Number.parseInt(v, 10);
  return Number.isFinite(n) && n >= 0 ? n : dflt;
}

export function createHandler(index) {
  return function handle(req) {
    const url = new URL(req.url);
    const p = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, "") : url.pathname;
    const m = req.method;
    try {
      if (p === "/health" && m === "GET") {
        return json({
          status: "ok",
          version: VERSION,
          sessionCount: index.size,
          skipped: index.skipped,
          mode: index.fullRescan ? "full-rescan" : "incremental",
        });
      }
      if (p === "/sessions" && m === "GET") {
        index.scan();
        return new Response(index.listBody(), { headers: JSON_HEADERS });
      }
      if (p === "/refresh" && m === "POST") {
        index.scan();
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

export function startServer(index, { port = 7392, host = "0.0.0.0" } = {}) {
  return Bun.serve({ port, hostname: host, fetch: createHandler(index) });
}
