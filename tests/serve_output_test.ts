/**
 * The bank service's API output when its reader is slow: written without
 * blocking (clients/ui.ts queuedSink), and relay frames refused unread while
 * the backlog is over its bound (clients/engine.ts `admit`), with the
 * refused record retransmitted by the customer and delivered exactly once.
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

Deno.test("engine: while admit() says no, relay DATA frames are dropped unread; the customer's retransmission is delivered once admitted, exactly once", async () => {
  const dir = await Deno.makeTempDir();
  try {
    let now = 1_700_000_000_000;
    let admit = true;
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
      admit: () => admit,
      now: () => now,
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
    }, now);
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
          toBank(await customer.receive(p, now));
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

    admit = false; // the API reader is far behind
    toBank(await customer.send([new TextEncoder().encode("pay 10")], now));
    await exchange();
    assert.deepEqual(messages(), [], "refused unread");
    assert.equal(engine.framesRefused, 1);
    assert.equal(toCustomer.length, 0, "nothing acknowledged");
    assert.equal(customer.status().inflight, 1);

    admit = true; // caught up: the customer's retransmission goes in
    now += RETRANSMIT_BASE_MS + 1;
    toBank(await customer.poll(now));
    await exchange();
    assert.deepEqual(messages(), ["pay 10"]);
    now += ACK_DELAY_MS; // the bank's coalesced ACK
    timer?.();
    await exchange();
    assert.equal(customer.status().inflight, 0, "acknowledged");
    now += 4 * RETRANSMIT_BASE_MS;
    toBank(await customer.poll(now)); // nothing left to resend
    await exchange();
    assert.deepEqual(messages(), ["pay 10"], "exactly once");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
