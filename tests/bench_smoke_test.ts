/**
 * Smoke test of `deno task bench --quick`: runs it as a subprocess (relay and
 * baseline subprocesses, real TLS on loopback) and checks the JSON figures
 * have the documented shape and are positive.
 * @module
 */

import assert from "node:assert/strict";

/** The quick run takes ~11 s on 2 cores; this bounds a hang. */
const TIMEOUT_MS = 90_000;

function positive(value: unknown, what: string): void {
  assert.equal(typeof value, "number", `${what} is not a number`);
  assert.ok(
    Number.isFinite(value as number) && (value as number) > 0,
    `${what} = ${value} is not positive`,
  );
}

Deno.test("bench --quick writes positive figures in the documented shape", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bench-smoke-" });
  const jsonPath = `${dir}/bench.json`;
  try {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["task", "bench", "--quick", "--json", jsonPath],
      cwd: new URL("..", import.meta.url).pathname,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const timer = setTimeout(() => child.kill("SIGTERM"), TIMEOUT_MS);
    const out = await child.output();
    clearTimeout(timer);
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, `bench failed:\n${stderr.slice(-2000)}`);
    const stdout = new TextDecoder().decode(out.stdout);
    assert.match(stdout, /Relay forwarding over TLS/);

    const r = JSON.parse(await Deno.readTextFile(jsonPath));
    positive(r.machine.cores, "machine.cores");
    assert.equal(typeof r.machine.deno, "string");
    assert.equal(typeof r.machine.cpuModel, "string");

    assert.ok(Array.isArray(r.relay) && r.relay.length >= 2, "relay cells");
    for (const c of r.relay) {
      const at = `relay[P=${c.pairs}, ${c.size} B]`;
      for (
        const k of [
          "pairs",
          "size",
          "msgsPerSec",
          "baselineMsgsPerSec",
          "ratio",
          "p50Ms",
          "p99Ms",
          "maxMs",
          "cpuUsPerMsg",
        ]
      ) positive(c[k], `${at}.${k}`);
      assert.ok(c.p50Ms <= c.p99Ms && c.p99Ms <= c.maxMs, `${at} percentiles`);
    }
    for (const k of ["p50Ms", "p99Ms", "maxMs"]) {
      positive(r.unloaded[k], `unloaded.${k}`);
    }
    positive(r.memory.kbPerConnection, "memory.kbPerConnection");
    positive(r.memory.connections, "memory.connections");

    assert.equal(typeof r.channel.available, "boolean");
    if (r.channel.available) {
      positive(r.handshakesPerSec, "handshakesPerSec");
      for (const rec of r.channel.records) {
        positive(rec.msgsPerSec, `channel ${rec.bodySize} B msgsPerSec`);
      }
    } else {
      assert.equal(typeof r.channel.reason, "string");
    }
    if (r.e2e.available) {
      for (const k of ["msgsPerSec", "p50Ms", "p99Ms"]) {
        positive(r.e2e[k], `e2e.${k}`);
      }
    } else {
      assert.match(r.e2e.reason, /TODO|not available/);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
