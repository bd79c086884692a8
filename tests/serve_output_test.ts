/**
 * The bank service's API output when its reader is slow: written without
 * blocking (clients/ui.ts queuedSink), and relay frames held unread while
 * the backlog is over its bound (clients/serve.ts outputGate,
 * clients/engine.ts `admit`), then taken in order as the reader catches up
 * (`resume`): every message once, no retransmission needed; past the held
 * bound a frame is dropped and the customer's retransmission recovers it.
 * Fake clock and fake timer; the customer is a lib/ conversation joined to
 * the engine by a fake relay link.
 */

import assert from "node:assert/strict";
import type { Bytes } from "../lib/bytes.ts";
import { Conversation, type ConversationOutput } from "../lib/conversation.ts";
import { ACK_DELAY_MS, RETRANSMIT_BASE_MS } from "../lib/constants.ts";
import { generateIdentity } from "../lib/identity.ts";
import { KnownPeers } from "../lib/known_peers.ts";
import { formatSessionId } from "../lib/registration.ts";
import { type ClientEvent, Engine, type RelayLink } from "../clients/engine.ts";
import { queuedSink } from "../clients/ui.ts";
import { outputGate } from "../clients/serve.ts";

const settle = async (turns = 20) => {
  for (let i = 0; i < turns; i++) await new Promise((r) => setTimeout(r, 1));
};

Deno.test("queuedSink: chunks written in order through partial asynchronous writes; pending counts what waits; the caller's buffer may be reused at once", async () => {
  const written: number[] = [];
  const calls: (() => void)[] = [];
  // A reader that takes at most 3 bytes per write, when the test lets it.
  const sink = queuedSink((b) =>
    new Promise<number>((resolve) =>
      calls.push(() => {
        const n = Math.min(3, b.length);
        written.push(...b.subarray(0, n));
        resolve(n);
      })
    )
  );
  const buf = new Uint8Array([1, 2, 3, 4, 5]);
  sink.sink(buf);
  buf.fill(0); // reused by the caller (bufferedWriter does)
  sink.sink(new Uint8Array([6, 7]));
  sink.sink(new Uint8Array(0));
  assert.equal(sink.pending, 7);
  let drained = false;
  const done = sink.drained().then(() => drained = true);
  for (let i = 0; i < 10 && !drained; i++) {
    await settle(1);
    calls.shift()?.();
  }
  await done;
  assert.deepEqual(written, [1, 2, 3, 4, 5, 6, 7]);
  assert.equal(sink.pending, 0);
  assert.equal(calls.length, 0, "no write after the queue emptied");
});

Deno.test("queuedSink: a failed write (the reader went away) drops what is queued and stops writing", async () => {
  let writes = 0;
  const sink = queuedSink(() => {
    writes++;
    return Promise.reject(new Error("broken pipe"));
  });
  sink.sink(new Uint8Array(10));
  sink.sink(new Uint8Array(10));
  await sink.drained();
  assert.equal(sink.pending, 0);
  assert.equal(writes, 1);
});

Deno.test("queuedSink: onWritten after each chunk written (pending already down), and once after a failed write", async () => {
  const calls: (() => void)[] = [];
  const sink = queuedSink((b) =>
    new Promise<number>((resolve) => calls.push(() => resolve(b.length)))
  );
  const seen: number[] = [];
  sink.onWritten = () => seen.push(sink.pending);
  sink.sink(new Uint8Array(5));
  sink.sink(new Uint8Array(3));
  for (let i = 0; i < 10 && seen.length < 2; i++) {
    await settle(1);
    calls.shift()?.();
  }
  await sink.drained();
  assert.deepEqual(seen, [3, 0]);
  const failing = queuedSink(() => Promise.reject(new Error("broken pipe")));
  let failed = 0;
  failing.onWritten = () => failed++;
  failing.sink(new Uint8Array(4));
  await failing.drained();
  assert.equal(failed, 1);
  assert.equal(failing.pending, 0);
});

Deno.test("outputGate: closed from the bound on, open again only at the resume mark (hysteresis)", () => {
  let backlog = 0;
  const admit = outputGate(() => backlog, 100, 50);
  assert.equal(admit(), true);
  backlog = 99;
  assert.equal(admit(), true);
  backlog = 100;
  assert.equal(admit(), false);
  backlog = 70; // draining, still above the resume mark
  assert.equal(admit(), false);
  backlog = 50;
  assert.equal(admit(), true);
  backlog = 70; // filling again below the bound
  assert.equal(admit(), true);
});

/** A bank engine on a fake link, fake clock and timer, with one secure lib/ customer. */
async function bankWithCustomer(
  dir: string,
  opts: { admit: () => boolean; heldMaxBytes?: number },
) {
  const clock = { now: 1_700_000_000_000 };
  let timer: (() => void) | undefined;
  const bankId = new Uint8Array(16).fill(0xb0);
  const toCustomer: Bytes[] = [];
  const link: RelayLink = {
    id: bankId,
    onFrame: () => {},
    closed: new Promise(() => {}),
    send(_peer, payload) {
      toCustomer.push(payload.slice());
      return payload.length;
    },
    close: () => Promise.resolve({ code: 1000, reason: "" }),
    open: true,
  };
  const events: ClientEvent[] = [];
  const engine = new Engine({
    role: "bank",
    identity: await generateIdentity(),
    knownPeers: new KnownPeers(),
    knownPeersPath: `${dir}/known_peers.json`,
    connect: () => Promise.resolve(link),
    address: (id) => formatSessionId(id),
    peerName: (id) => formatSessionId(id),
    accept: () => true,
    sessionOptions: { coverRate: 0 },
    outbox: 100,
    deliverTimeoutMs: 600_000,
    closeTimeoutMs: 5_000,
    reconnectMs: 10_000,
    emit: (e) => events.push(e),
    onFatal: (_kind, message) => {
      throw new Error(message);
    },
    admit: opts.admit,
    ...(opts.heldMaxBytes === undefined
      ? {}
      : { heldMaxBytes: opts.heldMaxBytes }),
    now: () => clock.now,
    timers: {
      set: (fn) => timer = fn,
      clear: (h) => {
        if (timer === h) timer = undefined;
      },
    },
  });
  await engine.start();
  const id = new Uint8Array(16).fill(0xa0);
  const { conversation: customer, output } = await Conversation.dial({
    identity: await generateIdentity(),
    localId: id,
    peerId: bankId,
    trust: () => ({ status: "new" }),
    sessionOptions: { coverRate: 0 },
    random: () => 0.5,
  }, clock.now);
  const toBank = (out: ConversationOutput) => {
    for (const p of out.packets) {
      link.onFrame({ type: "data", peer: id, frameNo: 0, payload: p });
    }
  };
  /** Bank ↔ customer until quiet. */
  const exchange = async () => {
    for (let round = 0; round < 50; round++) {
      await settle();
      if (toCustomer.length === 0) return;
      for (const p of toCustomer.splice(0)) {
        toBank(await customer.receive(p, clock.now));
      }
    }
    throw new Error("no quiescence");
  };
  toBank(output);
  await exchange();
  assert.ok(customer.secure && engine.conversations.get(id)?.secure);
  const messages = () =>
    events.filter((e) => e.type === "message").map((e) =>
      (e as { text: string }).text
    );
  /** The customer sends one record of `text`; returns its size. */
  const send = async (text: string) => {
    const out = await customer.send(
      [new TextEncoder().encode(text)],
      clock.now,
    );
    assert.equal(out.packets.length, 1);
    toBank(out);
    return out.packets[0].length;
  };
  /** The bank's coalesced ACK is due: fire its timer. */
  const ackTimer = async () => {
    clock.now += ACK_DELAY_MS;
    timer?.();
    await exchange();
  };
  return {
    events,
    clock,
    engine,
    customer,
    toCustomer,
    toBank,
    exchange,
    messages,
    send,
    ackTimer,
  };
}

Deno.test("engine: while admit() says no, relay DATA frames wait unread and in order; resume() takes them once admitted — every message once, in order, acknowledged without a retransmission", async () => {
  const dir = await Deno.makeTempDir();
  try {
    let admit = true;
    const b = await bankWithCustomer(dir, { admit: () => admit });
    admit = false; // the API reader is far behind
    await b.send("pay 10");
    await b.send("pay 20");
    await b.exchange();
    assert.deepEqual(b.messages(), [], "held unread");
    assert.equal(b.toCustomer.length, 0, "nothing acknowledged");
    assert.equal(b.engine.framesHeld, 2);
    assert.equal(b.engine.framesDropped, 0);
    assert.ok(b.engine.heldBytes > 0);
    b.engine.resume(); // a chunk written, still behind
    await b.exchange();
    assert.deepEqual(b.messages(), [], "still held while admit() says no");

    admit = true;
    // A frame arriving before the resume waits behind the held ones: no overtaking.
    await b.send("pay 30");
    await b.exchange();
    assert.deepEqual(b.messages(), [], "behind the held frames");
    assert.equal(b.engine.framesHeld, 3);
    b.engine.resume(); // the reader caught up
    await b.exchange();
    assert.deepEqual(b.messages(), ["pay 10", "pay 20", "pay 30"]);
    assert.equal(b.engine.heldBytes, 0);
    await b.ackTimer();
    assert.equal(b.customer.status().inflight, 0, "acknowledged");
    // Delivered without a retransmission: the customer was not polled, and
    // its clock stayed where it sent (no retransmission timer fired).
    b.clock.now += 4 * RETRANSMIT_BASE_MS;
    b.toBank(await b.customer.poll(b.clock.now)); // nothing left to resend
    await b.exchange();
    assert.deepEqual(
      b.messages(),
      ["pay 10", "pay 20", "pay 30"],
      "exactly once",
    );
    assert.equal(b.engine.framesDropped, 0, "nothing dropped");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("engine: past heldMaxBytes of waiting frames a frame is dropped unread; the customer's retransmission recovers it, exactly once", async () => {
  const dir = await Deno.makeTempDir();
  try {
    let admit = true;
    // Room for one record of this size (the bucketed records are equal: same short text).
    const b = await bankWithCustomer(dir, {
      admit: () => admit,
      heldMaxBytes: 1,
    });
    admit = false;
    const size = await b.send("pay 10");
    assert.equal(b.engine.framesDropped, 1, "over the bound");
    assert.equal(b.engine.framesHeld, 0);
    assert.ok(size > 1);
    admit = true;
    b.engine.resume();
    await b.exchange();
    assert.deepEqual(b.messages(), [], "dropped, not held");
    assert.equal(b.customer.status().inflight, 1);
    b.clock.now += RETRANSMIT_BASE_MS + 1;
    b.toBank(await b.customer.poll(b.clock.now));
    await b.exchange();
    assert.deepEqual(b.messages(), ["pay 10"]);
    await b.ackTimer();
    assert.equal(b.customer.status().inflight, 0, "acknowledged");
    b.clock.now += 4 * RETRANSMIT_BASE_MS;
    b.toBank(await b.customer.poll(b.clock.now));
    await b.exchange();
    assert.deepEqual(b.messages(), ["pay 10"], "exactly once");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("engine: stop() takes the frames waiting for a slow reader — their messages are shown and acknowledged before the conversations close", async () => {
  const dir = await Deno.makeTempDir();
  try {
    let admit = true;
    const b = await bankWithCustomer(dir, { admit: () => admit });
    admit = false;
    await b.send("pay 10");
    await b.exchange();
    assert.deepEqual(b.messages(), []);
    let stopped = false;
    const stopping = b.engine.stop().then(() => stopped = true);
    // The CLOSE exchange; the clock moves so a stop that never gets an answer ends (aborts) instead of hanging.
    for (let i = 0; i < 100 && !stopped; i++) {
      await b.ackTimer(); // the bank's ACK
      b.toBank(await b.customer.poll(b.clock.now)); // the customer's
      await b.exchange();
    }
    await stopping;
    assert.deepEqual(b.messages(), ["pay 10"]);
    assert.ok(b.customer.ended, "closed cleanly, both ways");
    assert.ok(
      b.events.some((e) => e.type === "closed" && e.reason === "closed"),
      JSON.stringify(b.events.filter((e) => e.type === "closed")),
    );
    assert.equal(b.customer.status().inflight, 0, "acknowledged");
    assert.equal(b.engine.heldBytes, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
