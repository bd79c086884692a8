/**
 * Bench section `cluster` (`deno task bench --only cluster`): two relay nodes
 * (`server.ts --cluster … --node …`, subprocesses) on one redis-server
 * (Debian's, started here on a free port, no persistence). Closed-loop pairs
 * run twice per round: both ends on node a (same-node), and sender on a,
 * receiver on b (cross-node, every frame through Redis). For each: msgs/s,
 * latency, and CPU µs per forwarded frame of both relay nodes together and
 * of redis-server. Then what one Redis carries: SPUBLISH of the same frames
 * to one subscribed channel, pipelined, from `redis-benchmark` and from our
 * own client (lib/deno/redis_client.ts). README → Capacity plan.
 * @module
 */

import { RedisClient } from "../lib/deno/redis_client.ts";
import { closeAll, connectMany, runPairs } from "./load.ts";
import { cpuUsOf, startServer } from "./server_process.ts";

/** What the cluster section needs from the bench plan. */
export interface ClusterPlan {
  warmupMs: number;
  measureMs: number;
  /** Alternating same-node / cross-node rounds (best of each kept). */
  rounds: number;
  /** Pairs per run. */
  pairs: number;
  /** Whole frame size (header included). */
  size: number;
  /** Frames in flight per pair. */
  inFlight: number;
}

/** One mode's figures. */
export interface ClusterRow {
  mode: "same-node" | "cross-node";
  msgsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** CPU of both relay nodes together per delivered frame (µs). */
  relayCpuUsPerMsg: number;
  /** redis-server CPU per delivered frame (µs). */
  redisCpuUsPerMsg: number;
  errors: number;
}

/** The section's JSON. */
export interface ClusterFigures {
  pairs: number;
  size: number;
  inFlight: number;
  rows: ClusterRow[];
  /** Cross-node msgs/s ÷ same-node msgs/s. */
  crossOverSame: number;
  /** redis-benchmark SPUBLISH (pipeline 64, 4 connections, 1 subscriber) per second. */
  redisBenchmarkPerSec: number | null;
  /** Fraction of those messages the subscriber received. */
  redisBenchmarkDelivered: number | null;
  /** SPUBLISH per second from our client (pipelined, one connection, 1 subscriber). */
  ownClientPublishPerSec: number;
  /** redis-server CPU per SPUBLISH in the own-client run (µs). */
  redisCpuUsPerPublish: number;
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** redis-server on a free loopback port; resolves when it answers. */
async function startRedis(): Promise<
  { port: number; pid: number; stop(): Promise<void> }
> {
  const port = freePort();
  const child = new Deno.Command("redis-server", {
    args: [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const probe = new RedisClient({
    url: `redis://127.0.0.1:${port}`,
    backoff: { baseMs: 20, maxMs: 100 },
  });
  probe.start();
  const deadline = Date.now() + 10000;
  while (probe.state !== "up") {
    if (Date.now() > deadline) {
      await probe.close();
      child.kill("SIGKILL");
      await child.status;
      throw new Error("redis-server did not start");
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  await probe.close();
  return {
    port,
    pid: child.pid,
    async stop() {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
      await child.status;
    },
  };
}

/** SPUBLISH throughput of our client: `batch` pipelined commands at a time for `ms`. */
async function ownPublish(
  port: number,
  redisPid: number,
  size: number,
  ms: number,
): Promise<{ perSec: number; redisCpuUs: number }> {
  const url = `redis://127.0.0.1:${port}`;
  let received = 0;
  const sub = new RedisClient({ url, onMessage: () => received++ });
  const pub = new RedisClient({ url });
  sub.start();
  pub.start();
  try {
    while (sub.state !== "up" || pub.state !== "up") {
      await new Promise((r) => setTimeout(r, 10));
    }
    await sub.ssubscribe("bench:{x}");
    const payload = new Uint8Array(size);
    const channel = new TextEncoder().encode("bench:{x}");
    const batch = 1024;
    const cpu0 = await cpuUsOf(redisPid);
    const t0 = performance.now();
    let sent = 0;
    while (performance.now() - t0 < ms) {
      // The relay's way: callbacks, not a promise per command.
      const { promise, resolve } = Promise.withResolvers<void>();
      let left = batch;
      for (let i = 0; i < batch; i++) {
        pub.send(["SPUBLISH", channel, payload], () => {
          if (--left === 0) resolve();
        });
      }
      await promise;
      sent += batch;
    }
    const deadline = performance.now() + 3000;
    while (received < sent && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 5));
    }
    const elapsed = performance.now() - t0;
    const cpu = (await cpuUsOf(redisPid)) - cpu0;
    return {
      perSec: received / (elapsed / 1000),
      redisCpuUs: cpu / Math.max(1, received),
    };
  } finally {
    await sub.close();
    await pub.close();
  }
}

/** redis-benchmark running SPUBLISH with one subscriber attached; null when the tool is missing. */
async function redisBenchmark(
  port: number,
  size: number,
  n: number,
): Promise<{ perSec: number; delivered: number } | null> {
  const url = `redis://127.0.0.1:${port}`;
  let received = 0;
  const sub = new RedisClient({ url, onMessage: () => received++ });
  sub.start();
  try {
    while (sub.state !== "up") await new Promise((r) => setTimeout(r, 10));
    await sub.ssubscribe("bench:{y}");
    const out = await new Deno.Command("redis-benchmark", {
      args: [
        "-p",
        String(port),
        "-n",
        String(n),
        "-c",
        "4",
        "-P",
        "64",
        "-q",
        "SPUBLISH",
        "bench:{y}",
        "x".repeat(size),
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    const m = text.match(/([\d.]+) requests per second/);
    // Let the subscriber catch up (bounded), then count: Redis drops a
    // subscriber that falls too far behind, and publishing to nobody is cheaper.
    let last = -1;
    for (let i = 0; i < 100 && received !== last && received < n; i++) {
      last = received;
      await new Promise((r) => setTimeout(r, 50));
    }
    return m
      ? { perSec: Number(m[1]), delivered: Math.min(1, received / n) }
      : null;
  } catch {
    return null;
  } finally {
    await sub.close();
  }
}

/** Runs the section (log lines via `log`). */
export async function clusterSection(
  plan: ClusterPlan,
  certs: { certDir: string; certPath: string; keyPath: string; caPath: string },
  log: (line: string) => void,
): Promise<ClusterFigures> {
  const redis = await startRedis();
  const caPem = await Deno.readTextFile(certs.caPath);
  const url = `redis://127.0.0.1:${redis.port}`;
  const nodes = await Promise.all(["a", "b"].map((name) =>
    startServer({
      kind: "relay",
      ...certs,
      args: ["--cluster", url, "--node", name, "--quiet"],
    })
  ));
  const best = new Map<string, ClusterRow>();
  try {
    // Let both nodes connect to Redis before clients register.
    await new Promise((r) => setTimeout(r, 500));
    for (let round = 0; round < plan.rounds; round++) {
      for (const mode of ["same-node", "cross-node"] as const) {
        const senders = await connectMany(nodes[0].url, { caPem }, plan.pairs);
        const receivers = await connectMany(
          (mode === "same-node" ? nodes[0] : nodes[1]).url,
          { caPem },
          plan.pairs,
        );
        const clients = senders.flatMap((s, i) => [s, receivers[i]]);
        // Registrations reach Redis asynchronously; the warm-up covers it
        // (frames refused meanwhile are counted and resent).
        await new Promise((r) => setTimeout(r, 200));
        let cpu0 = 0, redis0 = 0, cpu1 = 0, redis1 = 0;
        const cpuNow = async () =>
          (await Promise.all(nodes.map((n) => n.cpuUs()))).reduce(
            (a, b) => a + b,
            0,
          );
        const r = await runPairs({
          clients,
          size: plan.size,
          inFlight: plan.inFlight,
          warmupMs: plan.warmupMs,
          measureMs: plan.measureMs,
          onWindow: async (edge) => {
            if (edge === "start") {
              cpu0 = await cpuNow();
              redis0 = await cpuUsOf(redis.pid);
            } else {
              cpu1 = await cpuNow();
              redis1 = await cpuUsOf(redis.pid);
            }
          },
        });
        await closeAll(clients);
        const row: ClusterRow = {
          mode,
          msgsPerSec: r.msgsPerSec,
          p50Ms: r.p50Ms,
          p99Ms: r.p99Ms,
          maxMs: r.maxMs,
          relayCpuUsPerMsg: (cpu1 - cpu0) / Math.max(1, r.delivered),
          redisCpuUsPerMsg: (redis1 - redis0) / Math.max(1, r.delivered),
          errors: r.errors,
        };
        log(
          `cluster ${mode}: ${Math.round(row.msgsPerSec)} msgs/s, p99 ${
            row.p99Ms.toFixed(2)
          } ms, relay CPU ${
            row.relayCpuUsPerMsg.toFixed(1)
          } µs/frame, redis CPU ${row.redisCpuUsPerMsg.toFixed(1)} µs/frame`,
        );
        const prev = best.get(mode);
        if (!prev || row.msgsPerSec > prev.msgsPerSec) best.set(mode, row);
      }
    }
    const own = await ownPublish(
      redis.port,
      redis.pid,
      plan.size,
      plan.measureMs,
    );
    log(`cluster redis: ${Math.round(own.perSec)} SPUBLISH/s from our client`);
    const rb = await redisBenchmark(
      redis.port,
      plan.size,
      plan.measureMs >= 1000 ? 400_000 : 50_000,
    );
    log(
      `cluster redis: ${
        rb === null
          ? "redis-benchmark unavailable"
          : `${Math.round(rb.perSec)} SPUBLISH/s from redis-benchmark, ${
            (rb.delivered * 100).toFixed(1)
          } % received`
      }`,
    );
    const same = best.get("same-node")!, cross = best.get("cross-node")!;
    return {
      pairs: plan.pairs,
      size: plan.size,
      inFlight: plan.inFlight,
      rows: [same, cross],
      crossOverSame: cross.msgsPerSec / same.msgsPerSec,
      redisBenchmarkPerSec: rb?.perSec ?? null,
      redisBenchmarkDelivered: rb?.delivered ?? null,
      ownClientPublishPerSec: own.perSec,
      redisCpuUsPerPublish: own.redisCpuUs,
    };
  } finally {
    await Promise.all(nodes.map((n) => n.stop()));
    await redis.stop();
  }
}

/** Text lines for the bench report. */
export function renderCluster(c: ClusterFigures): string[] {
  const f = (n: number) => Math.round(n).toLocaleString("en-US");
  const lines = [
    `Cluster (2 nodes + 1 redis-server, ${c.pairs} pairs, ${c.size} B frames, ${c.inFlight} in flight; CPU per delivered frame):`,
    "| mode | msgs/s | p50 ms | p99 ms | relay CPU µs/frame (both nodes) | redis CPU µs/frame | errors |",
    "|---|---:|---:|---:|---:|---:|---:|",
  ];
  for (const r of c.rows) {
    lines.push(
      `| ${r.mode} | ${f(r.msgsPerSec)} | ${r.p50Ms.toFixed(2)} | ${
        r.p99Ms.toFixed(2)
      } | ${r.relayCpuUsPerMsg.toFixed(1)} | ${
        r.redisCpuUsPerMsg.toFixed(1)
      } | ${r.errors} |`,
    );
  }
  lines.push(
    `cross-node / same-node throughput: ${c.crossOverSame.toFixed(2)}`,
    `one Redis, SPUBLISH of ${c.size} B to 1 subscriber: redis-benchmark ${
      c.redisBenchmarkPerSec === null
        ? "n/a"
        : `${f(c.redisBenchmarkPerSec)}/s (${
          ((c.redisBenchmarkDelivered ?? 0) * 100).toFixed(1)
        } % received by the subscriber)`
    } with 4 conns, pipeline 64; our client ${
      f(c.ownClientPublishPerSec)
    }/s (1 conn, pipelined), redis CPU ${
      c.redisCpuUsPerPublish.toFixed(1)
    } µs/publish`,
  );
  return lines;
}
