// Whether the workspace's container engine answers (DOCKER_HOST, else the DinD socket): GET /_ping, bounded by
// 1 s, cached for 5 s (1 s after a failure), so /health reports the engine as its own field without ever waiting long on it. An engine
// that is down is reported; the worker itself stays healthy.
import { existsSync } from "node:fs";

const TTL_MS = 5000;
const FAILED_TTL_MS = 1000;   // an engine that was just down is asked again soon (it may be starting)
const TIMEOUT_MS = 1000;
const DIND_SOCKET = "/var/run/docker.sock";

export function engineEndpoint(env = process.env) {
  const host = env.DOCKER_HOST || "";
  if (host.startsWith("unix://")) return { url: host, unix: host.slice("unix://".length) };
  if (host.startsWith("tcp://")) return { url: host, http: "http://" + host.slice("tcp://".length) };
  if (host) return { url: host, unsupported: true };
  if (existsSync(DIND_SOCKET)) return { url: "unix://" + DIND_SOCKET, unix: DIND_SOCKET };
  return null;
}

export function createEngineProbe({ endpoint = engineEndpoint(), now = () => Date.now() } = {}) {
  let last = null;
  let pending = null;

  async function ping() {
    if (!endpoint) return { configured: false, reachable: null };
    if (endpoint.unsupported) return { configured: true, url: endpoint.url, reachable: null, error: "not probed (ssh URL)" };
    const started = now();
    try {
      const opts = { signal: AbortSignal.timeout(TIMEOUT_MS) };
      if (endpoint.unix) opts.unix = endpoint.unix;
      const res = await fetch((endpoint.http || "http://engine") + "/_ping", opts);
      const body = (await res.text()).slice(0, 64);
      const ok = res.ok && body.trim() === "OK";
      return { configured: true, url: endpoint.url, reachable: ok, ms: now() - started,
               ...(ok ? {} : { error: `HTTP ${res.status} ${body.trim()}` }) };
    } catch (err) {
      return { configured: true, url: endpoint.url, reachable: false, error: String(err?.message ?? err).slice(0, 200) };
    }
  }

  return async function probe() {
    if (last && now() - last.at < (last.result.reachable === false ? FAILED_TTL_MS : TTL_MS)) return last.result;
    pending ??= ping().then((result) => {
      last = { at: now(), result };
      pending = null;
      return result;
    });
    return pending;
  };
}
