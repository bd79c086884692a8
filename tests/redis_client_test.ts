/**
 * lib/deno/redis_client.ts against a real redis-server (Debian's): pipelined
 * SPUBLISH, SSUBSCRIBE/SUNSUBSCRIBE churn, a server restart (reconnect with
 * backoff, subscriptions restored), an error reply, replies and pushes
 * split across reads, a reply above the decoder's limit, RESP3, a bad URL.
 */

import assert from "node:assert/strict";
import {
  parseRedisUrl,
  RedisClient,
  RedisReplyError,
  RedisUnavailableError,
} from "../lib/deno/redis_client.ts";
import { replyText } from "../lib/resp.ts";
import { RedisProc } from "./helpers/redis_proc.ts";
import { waitFor } from "./helpers/relay_fixture.ts";

const FAST = { baseMs: 20, maxMs: 200 };
const td = new TextDecoder();

async function up(c: RedisClient): Promise<void> {
  c.start();
  await waitFor(() => c.state === "up", "redis client up", 5000);
}

Deno.test("RedisClient: pipelined SPUBLISH, churn, error reply, restart with resubscription", async () => {
  const redis = await RedisProc.start();
  const got: string[] = [];
  const states: string[] = [];
  const sub = new RedisClient({
    url: redis.url,
    backoff: FAST,
    clientName: "test-sub",
    onMessage: (ch, p) => got.push(`${ch}=${td.decode(p)}`),
    onState: (s) => states.push(s),
  });
  const pub = new RedisClient({ url: redis.url, backoff: FAST });
  try {
    await up(sub);
    await up(pub);
    await sub.ssubscribe("a");

    // 1,000 publishes issued in one tick (pipelined): replies in order.
    const counts = await Promise.all(
      Array.from(
        { length: 1000 },
        (_, i) => pub.command(["SPUBLISH", "a", `m${i}`]),
      ),
    );
    assert.ok(counts.every((v) => v.type === "integer" && v.value === 1n));
    await waitFor(() => got.length === 1000, "1000 messages");
    assert.deepEqual(got, Array.from({ length: 1000 }, (_, i) => `a=m${i}`));

    // Churn: subscribe and unsubscribe 200 channels, interleaved with pings.
    got.length = 0;
    const ops: Promise<void>[] = [];
    for (let i = 0; i < 200; i++) {
      ops.push(sub.ssubscribe(`c${i}`));
      if (i % 2 === 1) ops.push(sub.sunsubscribe(`c${i}`));
    }
    await Promise.all(ops);
    const receivers = await Promise.all(
      Array.from(
        { length: 200 },
        (_, i) => pub.command(["SPUBLISH", `c${i}`, "x"]),
      ),
    );
    assert.deepEqual(
      receivers.map((r) => r.type === "integer" ? Number(r.value) : -1),
      Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? 1 : 0)),
    );
    await waitFor(() => got.length === 100, "100 messages after churn");
    assert.equal(sub.channels.size, 101);

    // An error reply rejects that command only; the connection stays usable.
    await assert.rejects(
      pub.command(["SPUBLISH", "only-one-arg"]),
      RedisReplyError,
    );
    await assert.rejects(pub.command(["NOSUCHCOMMAND"]), /unknown command/);
    assert.equal(replyText(await pub.command(["PING"])), "PONG");

    // Server restart: both reconnect with backoff; subscriptions come back.
    await redis.stop();
    await waitFor(() => pub.state !== "up" && sub.state !== "up", "down");
    await assert.rejects(pub.command(["PING"]), RedisUnavailableError);
    await redis.restart();
    await waitFor(
      () => pub.state === "up" && sub.state === "up",
      "up again",
      5000,
    );
    assert.ok(sub.connects >= 2 && pub.connects >= 2);
    assert.deepEqual(states.slice(0, 3), ["up", "down", "up"]);
    got.length = 0;
    const r = await pub.command(["SPUBLISH", "c0", "again"]);
    assert.deepEqual(r, { type: "integer", value: 1n });
    await waitFor(() => got.includes("c0=again"), "message after restart");
    const names = td.decode(
      ((await pub.command(["CLIENT", "LIST"])) as { value: Uint8Array }).value,
    );
    assert.match(names, /name=test-sub/);
  } finally {
    await sub.close();
    await pub.close();
    await redis.stop();
  }
});

Deno.test("RedisClient: replies and pushes larger than one 64 KiB read arrive whole (split across reads), pipelined among small ones; a reply above the limit drops the connection, which comes back", async () => {
  const redis = await RedisProc.start();
  const big = new Uint8Array(300_000).map((_, i) => (i * 7 + 3) & 0xff);
  const got: Uint8Array[] = [];
  const sub = new RedisClient({
    url: redis.url,
    backoff: FAST,
    onMessage: (_ch, p) => got.push(p.slice()),
  });
  const pub = new RedisClient({ url: redis.url, backoff: FAST });
  const small = new RedisClient({
    url: redis.url,
    backoff: FAST,
    limits: { maxBulk: 1000 },
  });
  try {
    await up(sub);
    await up(pub);
    await up(small);
    await sub.ssubscribe("big");
    assert.equal(replyText(await pub.command(["SET", "big", big])), "OK");
    // Five 300 KB replies, each split over several reads, between PINGs.
    const replies = await Promise.all(
      Array.from(
        { length: 10 },
        (_, i) => pub.command(i % 2 ? ["GET", "big"] : ["PING"]),
      ),
    );
    for (const [i, r] of replies.entries()) {
      if (i % 2 === 0) assert.equal(replyText(r), "PONG");
      else {
        assert.equal(r.type, "bulk", `reply ${i}`);
        assert.deepEqual((r as { value: Uint8Array }).value, big);
      }
    }
    // A 300 KB push (smessage), then a small one: both whole, in order.
    await pub.command(["SPUBLISH", "big", big]);
    await pub.command(["SPUBLISH", "big", "tail"]);
    await waitFor(() => got.length === 2, "two pushes");
    assert.deepEqual(got[0], big);
    assert.equal(td.decode(got[1]), "tail");
    // maxBulk 1000: the 300 KB reply breaks the limit → that command fails,
    // the connection is dropped and comes back.
    const before = small.connects;
    await assert.rejects(small.command(["GET", "big"]), /above limit 1000/);
    await waitFor(
      () => small.state === "up" && small.connects > before,
      "reconnected after the over-limit reply",
      5000,
    );
    assert.equal(replyText(await small.command(["PING"])), "PONG");
  } finally {
    await sub.close();
    await pub.close();
    await small.close();
    await redis.stop();
  }
});

Deno.test("RedisClient: RESP3 (HELLO 3) delivers smessage pushes and replies on one connection", async () => {
  const redis = await RedisProc.start();
  const got: string[] = [];
  const c = new RedisClient({
    url: redis.url,
    protocol: 3,
    backoff: FAST,
    onMessage: (ch, p) => got.push(`${ch}=${td.decode(p)}`),
  });
  try {
    await up(c);
    await c.ssubscribe("x");
    // In RESP3 a subscribed connection still takes ordinary commands.
    const n = await c.command(["SPUBLISH", "x", "hi"]);
    assert.deepEqual(n, { type: "integer", value: 1n });
    await waitFor(() => got.length === 1, "push");
    assert.deepEqual(got, ["x=hi"]);
    const map = await c.command(["HELLO", "3"]);
    assert.equal(map.type, "map");
  } finally {
    await c.close();
    await redis.stop();
  }
});

Deno.test("RedisClient: unreachable server → down with the reason, commands fail fast, close() stops retrying", async () => {
  const redis = await RedisProc.start();
  const port = redis.port;
  await redis.stop(); // nothing listens there now
  const c = new RedisClient({
    url: `redis://127.0.0.1:${port}`,
    backoff: FAST,
  });
  c.start();
  await waitFor(() => /connect failed/.test(c.lastError), "connect failure");
  await assert.rejects(c.command(["PING"]), RedisUnavailableError);
  await c.ssubscribe("later"); // remembered for the next connection
  assert.equal(c.state === "down" || c.state === "connecting", true);
  await c.close();
  assert.equal(c.state, "closed");
});

Deno.test("parseRedisUrl() accepts redis://[user:pass@]host[:port] and refuses the rest", () => {
  assert.deepEqual(parseRedisUrl("redis://127.0.0.1:7000"), {
    hostname: "127.0.0.1",
    port: 7000,
    username: undefined,
    password: undefined,
  });
  assert.equal(parseRedisUrl("redis://:s%40cret@h").password, "s@cret");
  assert.equal(parseRedisUrl("redis://[::1]:1").hostname, "::1");
  assert.throws(() => parseRedisUrl("rediss://h:1"), /redis:\/\/ only/);
  assert.throws(() => parseRedisUrl("h:1"), /scheme|URL/);
});
