import assert from "node:assert/strict";
import { FULL_RETRY, startRetryingWhenFull } from "../clients/chat.ts";

const full = () =>
  Object.assign(new Error("the relay is at capacity (HTTP 503)"), {
    kind: "full",
  });

/** A fake clock advanced by the injected sleep. */
function fake() {
  let t = 0;
  const slept: number[] = [];
  return {
    now: () => t,
    slept,
    sleep: (ms: number) => {
      slept.push(ms);
      t += ms;
      return Promise.resolve();
    },
  };
}

Deno.test("start retry: a full relay is retried with growing, bounded delays until it takes us", async () => {
  const c = fake();
  const notices: string[] = [];
  let calls = 0;
  const r = await startRetryingWhenFull(() => {
    calls++;
    return calls < 5 ? Promise.reject(full()) : Promise.resolve();
  }, {
    reconnectMs: 300_000,
    now: c.now,
    sleep: c.sleep,
    notice: (t) => notices.push(t),
    stopped: new Promise(() => {}),
  });
  assert.equal(r, "started");
  assert.equal(calls, 5);
  assert.equal(notices.length, 4);
  for (const [i, ms] of c.slept.entries()) {
    const ceiling = Math.min(FULL_RETRY.maxMs, FULL_RETRY.baseMs * 2 ** i);
    assert.ok(ms >= ceiling / 2 && ms <= ceiling, `delay ${i}: ${ms}`);
  }
});

Deno.test("start retry: other errors end at once; a full relay past --reconnect-timeout gives up; a stop ends the wait", async () => {
  const c = fake();
  const down = Object.assign(new Error("connection refused"), {
    kind: "unreachable",
  });
  const r1 = await startRetryingWhenFull(() => Promise.reject(down), {
    reconnectMs: 300_000,
    now: c.now,
    sleep: c.sleep,
    notice: () => assert.fail("no retry for an unreachable relay"),
    stopped: new Promise(() => {}),
  });
  assert.equal(r1, down);

  const r2 = await startRetryingWhenFull(() => Promise.reject(full()), {
    reconnectMs: 10_000,
    now: c.now,
    sleep: c.sleep,
    notice: () => {},
    stopped: new Promise(() => {}),
  });
  assert.ok(r2 instanceof Error);
  assert.equal((r2 as Error & { kind: string }).kind, "full");
  assert.match((r2 as Error).message, /gave up after \d+ attempt\(s\) in 10 s/);

  const stop = Promise.withResolvers<void>();
  const r3 = await startRetryingWhenFull(() => Promise.reject(full()), {
    reconnectMs: 300_000,
    now: c.now,
    sleep: () => new Promise(() => {}), // never wakes: only the stop can end it
    notice: () => stop.resolve(),
    stopped: stop.promise,
  });
  assert.equal(r3, "stopped");
});
