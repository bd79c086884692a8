/**
 * Two in-process relays over real TLS joined by a real redis-server
 * (lib/deno/cluster_bus.ts): cross-node forwarding both ways, peer-offline
 * from the receiver count, displacement across nodes (4000), Redis down →
 * local forwarding goes on and /healthz says degraded, Redis back →
 * cross-node resumes; malformed bus messages are counted and dropped; a
 * recipient on another node that does not read → the sender's ERROR
 * `peer-busy` travels back over Redis; a node started while Redis is
 * unreachable serves locally, degraded, and joins once Redis is up.
 */

import assert from "node:assert/strict";
import { attachRelay, ClusterBus } from "../lib/deno/cluster_bus.ts";
import { RedisClient } from "../lib/deno/redis_client.ts";
import { channelFor, encodeBusData } from "../lib/cluster_frame.ts";
import type { Frame } from "../lib/relay_frame.ts";
import { generateMailboxKey } from "../lib/registration.ts";
import { RedisProc } from "./helpers/redis_proc.ts";
import {
  startTestRelay,
  type TestRelay,
  waitFor,
} from "./helpers/relay_fixture.ts";
import type { RelayConnection } from "../lib/deno/relay_client.ts";
import type { RelayOptions } from "../lib/deno/relay_server.ts";
import { RawWs } from "./helpers/raw_ws.ts";

const FAST = { baseMs: 20, maxMs: 200 };

async function node(
  name: string,
  url: string,
  opts: Partial<RelayOptions> = {},
  waitUp = true,
): Promise<{ relay: TestRelay; bus: ClusterBus }> {
  const bus = new ClusterBus({
    url,
    node: name,
    maxFrame: 65536,
    backoff: FAST,
    pingIntervalMs: 500,
  });
  const relay = await startTestRelay({ remote: bus, quiet: true, ...opts });
  attachRelay(bus, relay.relay);
  bus.start();
  if (waitUp) {
    await waitFor(() => bus.status() === "ok", `${name} bus up`, 5000);
  }
  return { relay, bus };
}

/** `p`, or a rejection naming `what` after `ms`. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: ReturnType<typeof setTimeout>;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<never>((_, reject) => {
      t = setTimeout(
        () => reject(new Error(`timed out waiting for ${what}`)),
        ms,
      );
    }),
  ]);
}

function inbox(c: RelayConnection): Frame[] {
  const got: Frame[] = [];
  c.onFrame = (f) => got.push(f);
  return got;
}

/** GET `path` on the relay over TLS; the body as text. */
async function get(r: TestRelay, path: string): Promise<string> {
  const client = Deno.createHttpClient({ caCerts: [r.caPem] });
  try {
    const url = r.url.replace("wss:", "https:").replace("/ws", path);
    return await (await fetch(url, { client })).text();
  } finally {
    client.close();
  }
}

const health = async (r: TestRelay): Promise<Record<string, unknown>> =>
  JSON.parse(await get(r, "/healthz"));
/** /metrics from the relay's loopback metrics listener. */
const metrics = async (r: TestRelay): Promise<string> =>
  await (await fetch(r.metricsUrl)).text();

/** Waits until `id`'s channel has a subscriber on Redis (the registration is visible cluster-wide). */
async function subscribed(
  redis: RedisProc,
  id: Uint8Array,
  n = 1,
): Promise<void> {
  const c = new RedisClient({ url: redis.url, backoff: FAST });
  c.start();
  try {
    await waitFor(() => c.state === "up", "probe up");
    const deadline = Date.now() + 5000;
    for (;;) {
      const r = await c.command(["PUBSUB", "SHARDNUMSUB", channelFor(id)]);
      const count = r.type === "array" && r.items[1].type === "integer"
        ? r.items[1].value
        : -1n;
      if (count === BigInt(n)) return;
      if (Date.now() > deadline) {
        throw new Error(`channel has ${count} subscribers, want ${n}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    await c.close();
  }
}

Deno.test("cluster bus: cross-node DATA both ways, peer-offline, displacement, Redis outage and recovery", async () => {
  const redis = await RedisProc.start();
  const a = await node("a", redis.url);
  const b = await node("b", redis.url);
  try {
    const onA = await a.relay.connect();
    const onB = await b.relay.connect();
    const alsoA = await a.relay.connect();
    const gotA = inbox(onA), gotB = inbox(onB), gotA2 = inbox(alsoA);
    await subscribed(redis, onA.id);
    await subscribed(redis, onB.id);

    // Cross-node both ways, in order, sender stamped.
    for (let i = 0; i < 50; i++) onA.send(onB.id, new Uint8Array([i]));
    for (let i = 0; i < 50; i++) onB.send(onA.id, new Uint8Array([100 + i]));
    await waitFor(
      () => gotB.length === 50 && gotA.length === 50,
      "100 frames across nodes",
    );
    assert.deepEqual(gotB.map((f) => f.type === "data" ? f.payload[0] : -1), [
      ...Array(50).keys(),
    ]);
    assert.ok(
      gotB.every((f) => f.type === "data" && f.peer.toHex() === onA.id.toHex()),
    );
    assert.ok(
      gotA.every((f) => f.type === "data" && f.peer.toHex() === onB.id.toHex()),
    );

    // Nobody holds this ID anywhere: peer-offline from the receiver count.
    const nobody = crypto.getRandomValues(new Uint8Array(16));
    onA.send(nobody, new Uint8Array([1]));
    await waitFor(() => gotA.some((f) => f.type === "error"), "peer-offline");
    const err = gotA.find((f) => f.type === "error")!;
    assert.equal(err.type === "error" && err.name, "peer-offline");
    assert.equal(err.type === "error" && err.peer.toHex(), nobody.toHex());
    gotA.length = 0;

    // The same mailbox key registers on node b: node a's connection closes with 4000.
    const key = (await generateMailboxKey()).key;
    const first = await a.relay.connect(key);
    await subscribed(redis, first.id);
    const second = await b.relay.connect(key);
    assert.equal((await within(first.closed, 5000, "close 4000")).code, 4000);
    await subscribed(redis, second.id); // node a unsubscribed: one subscriber left
    const gotSecond = inbox(second);
    onA.send(second.id, new Uint8Array([7]));
    await waitFor(() => gotSecond.length === 1, "frame to the new holder");

    // Redis down: local forwarding goes on, cross-node is refused, /healthz says degraded.
    await redis.stop();
    await waitFor(() => a.bus.status() === "degraded", "degraded");
    const h = await health(a.relay);
    assert.equal(h.status, "degraded");
    assert.equal(h.cluster, "degraded");
    assert.match(await metrics(a.relay), /relay_cluster_up 0/);
    gotA2.length = 0;
    onA.send(alsoA.id, new Uint8Array([42]));
    await waitFor(() => gotA2.length === 1, "local frame while Redis is down");
    onA.send(onB.id, new Uint8Array([43]));
    await waitFor(
      () => gotA.some((f) => f.type === "error"),
      "peer-offline while down",
    );

    // Redis back: both nodes reconnect, re-subscribe, cross-node resumes.
    await redis.restart();
    await waitFor(
      () => a.bus.status() === "ok" && b.bus.status() === "ok",
      "ok again",
      5000,
    );
    await subscribed(redis, onB.id);
    gotB.length = 0;
    onA.send(onB.id, new Uint8Array([44]));
    await waitFor(() => gotB.length === 1, "cross-node after restart");
    assert.equal((await health(b.relay)).status, "ok");
    const m = await metrics(b.relay);
    assert.match(m, /relay_cluster_up 1/);
    assert.match(m, /relay_cluster_reconnects_total [1-9]/);

    // A malformed message on a live channel is counted and dropped; nothing breaks.
    const probe = new RedisClient({ url: redis.url, backoff: FAST });
    probe.start();
    await waitFor(() => probe.state === "up", "probe");
    await probe.command([
      "SPUBLISH",
      channelFor(onB.id),
      new Uint8Array([1, 9, 9]),
    ]);
    await probe.command([
      "SPUBLISH",
      channelFor(onB.id),
      encodeBusData(onA.id, new Uint8Array(22)), // wrong channel for this ID, bad frame
    ]);
    await probe.close();
    let text = "";
    for (let i = 0; i < 100 && !/event="malformed"\} 2/.test(text); i++) {
      await new Promise((r) => setTimeout(r, 20));
      text = await metrics(b.relay);
    }
    assert.match(text, /event="malformed"\} 2/);
    onA.send(onB.id, new Uint8Array([45]));
    await waitFor(() => gotB.length === 2, "still forwarding");
  } finally {
    await a.relay.close();
    await b.relay.close();
    await redis.stop();
  }
});

Deno.test("cluster bus: a recipient on another node that never reads → peer-busy travels back over Redis to the sender, naming the recipient and the frame", async () => {
  const redis = await RedisProc.start();
  const a = await node("a", redis.url, { rate: 1e6, burst: 1e6 });
  const b = await node("b", redis.url, { highWater: 256 * 1024 });
  const reader = await RawWs.open({
    port: b.relay.relay.port,
    caPem: b.relay.caPem,
  });
  try {
    // Registered on node b, then never reads again.
    const { key } = await generateMailboxKey();
    assert.equal(
      (await reader.register(key, `wss://localhost:${b.relay.relay.port}`))
        .type,
      "registered",
    );
    await subscribed(redis, key.id);
    const sender = await a.relay.connect();
    const inS = inbox(sender);
    const payload = new Uint8Array(16 * 1024);
    let busy: Frame | undefined;
    for (let round = 0; round < 400 && busy === undefined; round++) {
      for (let i = 0; i < 16; i++) sender.send(key.id, payload);
      await new Promise((r) => setTimeout(r, 5));
      busy = inS.find((f) => f.type === "error" && f.name === "peer-busy");
    }
    assert.ok(busy?.type === "error", "the sender on node a got peer-busy");
    assert.equal(busy.peer.toHex(), key.id.toHex(), "names the recipient");
    assert.ok(busy.frameNo > 0, "and the refused frame");
    assert.match(await metrics(b.relay), /event="busy_returned"\} [1-9]/);
    assert.match(await metrics(a.relay), /event="error_received"\} [1-9]/);
    // The recipient is on node b only: node a never held it.
    assert.doesNotMatch(
      await metrics(a.relay),
      /^relay_frames_dropped_total\{reason="peer-busy"\} [1-9]/m,
    );
  } finally {
    reader.close();
    await a.relay.close();
    await b.relay.close();
    await redis.stop();
  }
});

Deno.test("cluster bus: a node started while Redis is unreachable serves its own clients, says degraded, and joins the cluster once Redis comes up", async () => {
  const redis = await RedisProc.start();
  await redis.stop(); // nothing listens on its port now
  const a = await node("a", redis.url, {}, false);
  let b: Awaited<ReturnType<typeof node>> | undefined;
  try {
    const x = await a.relay.connect();
    const y = await a.relay.connect();
    const gotY = inbox(y);
    x.send(y.id, new Uint8Array([1]));
    await waitFor(() => gotY.length === 1, "local forwarding without Redis");
    assert.equal(a.bus.status(), "degraded");
    assert.equal((await health(a.relay)).status, "degraded");
    assert.match(await metrics(a.relay), /^relay_cluster_up 0$/m);
    // Redis comes up: node a connects (backoff), subscribes its IDs, serves cross-node.
    await redis.restart();
    await waitFor(() => a.bus.status() === "ok", "node a up", 8000);
    b = await node("b", redis.url);
    await subscribed(redis, y.id);
    const onB = await b.relay.connect();
    const gotB = inbox(onB);
    await subscribed(redis, onB.id);
    x.send(onB.id, new Uint8Array([2]));
    onB.send(y.id, new Uint8Array([3]));
    await waitFor(
      () => gotB.length === 1 && gotY.length === 2,
      "cross-node both ways",
    );
    assert.equal((await health(a.relay)).status, "ok");
  } finally {
    await a.relay.close();
    await b?.relay.close();
    await redis.stop();
  }
});
