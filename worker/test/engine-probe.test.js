import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createEngineProbe, engineEndpoint } from "../src/engine-probe.js";

const dir = mkdtempSync(join(tmpdir(), "perry-engine-probe-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("engine probe", () => {
  test("DOCKER_HOST picks the endpoint", () => {
    expect(engineEndpoint({ DOCKER_HOST: "unix:///run/perry-engine/podman.sock" })).toEqual({
      url: "unix:///run/perry-engine/podman.sock", unix: "/run/perry-engine/podman.sock" });
    expect(engineEndpoint({ DOCKER_HOST: "tcp://podman-in-podman:2375" }).http).toBe("http://podman-in-podman:2375");
  });

  test("an engine that answers /_ping is reachable; one that stops is reported down after the cache", async () => {
    const sock = join(dir, "engine.sock");
    let pings = 0;
    const server = Bun.serve({ unix: sock, fetch: () => { pings++; return new Response("OK"); } });
    let clock = 0;
    const probe = createEngineProbe({ endpoint: { url: "unix://" + sock, unix: sock }, now: () => clock });
    const up = await probe();
    expect(up.reachable).toBe(true);
    expect(await probe()).toBe(up);   // cached: one ping
    expect(pings).toBe(1);
    server.stop(true);
    rmSync(sock, { force: true });
    clock += 6000;
    const down = await probe();
    expect(down.reachable).toBe(false);
    expect(down.error).toBeTruthy();
  });

  test("no engine configured", async () => {
    expect(await createEngineProbe({ endpoint: null })()).toEqual({ configured: false, reachable: null });
  });

  test("a stalled engine costs at most about a second", async () => {
    const sock = join(dir, "stalled.sock");
    const server = Bun.serve({ unix: sock, fetch: () => new Promise(() => {}) });
    const t0 = Date.now();
    const r = await createEngineProbe({ endpoint: { url: "unix://" + sock, unix: sock } })();
    expect(r.reachable).toBe(false);
    expect(Date.now() - t0).toBeLessThan(3000);
    server.stop(true);
  });
});
