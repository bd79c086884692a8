/**
 * clients/engine.ts applies each conversation's outputs in call order,
 * whatever order the calls finish in. Reproduces the `bank --serve` bug
 * where a customer's message 1 was shown after 2: a timer poll (which
 * drains the records queued behind a running call) used to wait for every
 * due conversation before its output was applied, so the next frame's
 * output overtook it. Driven on a fake clock and a fake timer, with AES-GCM
 * opens held and released by the test (controlled crypto latency); the
 * customers are lib/ conversations joined to the engine by a fake relay link.
 */

import assert from "node:assert/strict";
import type { Bytes } from "../lib/bytes.ts";
import { Conversation, type ConversationOutput } from "../lib/conversation.ts";
import { generateIdentity } from "../lib/identity.ts";
import { KnownPeers } from "../lib/known_peers.ts";
import {
  type AeadKey,
  type SessionPrimitives,
  webCryptoAeadKey,
  webCryptoPrimitives,
} from "../lib/primitives.ts";
import { formatSessionId } from "../lib/registration.ts";
import { type ClientEvent, Engine, type RelayLink } from "../clients/engine.ts";

/** AES-GCM opens held while `on`, each released by the test. */
class OpenGate {
  on = false;
  readonly held: (() => void)[] = [];
  readonly primitives: SessionPrimitives = {
    ...webCryptoPrimitives,
    name: "gated",
    importAeadKey: async (raw: Bytes): Promise<AeadKey> => {
      const key = await webCryptoAeadKey(raw);
      return {
        seal: (n, p, a) => key.seal(n, p, a),
        open: (n, s, a) => {
          const r = key.open(n, s, a);
          if (!this.on) return r;
          return new Promise((resolve) => this.held.push(() => resolve(r)));
        },
      };
    },
  };

  /** Waits (a bounded number of turns) until `n` opens are held. */
  async waitHeld(n: number, what: string): Promise<void> {
    for (let i = 0; i < 1000 && this.held.length < n; i++) {
      await new Promise((r) => setTimeout(r, 1));
    }
    assert.equal(this.held.length, n, `${what}: ${n} open(s) held`);
  }

  /** Releases held open number `i` (0 = oldest still held). */
  release(i = 0): void {
    this.held.splice(i, 1)[0]();
  }
}

/** Lets pending promise work run (crypto on the thread pool included). */
const settle = async (ms = 20) => {
  for (let i = 0; i < ms; i++) await new Promise((r) => setTimeout(r, 1));
};

Deno.test("engine: a conversation's outputs are applied in call order — a timer poll held behind another conversation does not let the next frame overtake it", async () => {
  const dir = await Deno.makeTempDir();
  const gate = new OpenGate();
  let now = 1_700_000_000_000;
  let timer: (() => void) | undefined;
  const bankId = new Uint8Array(16).fill(0xb0);
  const bankIdentity = await generateIdentity();
  /** Packets the bank sent, per peer hex. */
  const toPeer = new Map<string, Bytes[]>();
  const link: RelayLink = {
    id: bankId,
    onFrame: () => {},
    closed: new Promise(() => {}),
    send(peer, payload) {
      const k = peer.toHex();
      toPeer.set(k, [...(toPeer.get(k) ?? []), payload.slice()]);
      return payload.length;
    },
    close: () => Promise.resolve({ code: 1000, reason: "" }),
    open: true,
  };
  const events: ClientEvent[] = [];
  const engine = new Engine({
    role: "bank",
    identity: bankIdentity,
    knownPeers: new KnownPeers(),
    knownPeersPath: `${dir}/known_peers.json`,
    connect: () => Promise.resolve(link),
    address: (id) => formatSessionId(id),
    peerName: (id) => formatSessionId(id),
    accept: () => true,
    sessionOptions: { coverRate: 0, primitives: gate.primitives },
    outbox: 100,
    deliverTimeoutMs: 600_000,
    closeTimeoutMs: 5_000,
    reconnectMs: 10_000,
    emit: (e) => events.push(e),
    onFatal: (_kind, message) => {
      throw new Error(message);
    },
    now: () => now,
    timers: {
      set: (fn) => {
        timer = fn;
        return fn;
      },
      clear: (h) => {
        if (timer === h) timer = undefined;
      },
    },
  });
  await engine.start();

  // Two customers: lib conversations that dial the bank over the fake link.
  const customers: {
    id: Bytes;
    c: Conversation;
    /** Records the customer sent, not yet given to the bank. */
    held: Bytes[];
  }[] = [];
  for (const tag of [0xa0, 0xc0]) {
    const id = new Uint8Array(16).fill(tag);
    const { conversation, output } = await Conversation.dial({
      identity: await generateIdentity(),
      localId: id,
      peerId: bankId,
      trust: () => ({ status: "new" }),
      sessionOptions: { coverRate: 0 },
      random: () => 0.5,
    }, now);
    customers.push({ id, c: conversation, held: [] });
    toBank(id, output);
  }
  function toBank(id: Bytes, out: ConversationOutput) {
    for (const p of out.packets) {
      link.onFrame({ type: "data", peer: id, frameNo: 0, payload: p });
    }
  }
  /** Everything between bank and customers until quiet (gate open). */
  async function exchange() {
    for (let round = 0; round < 50; round++) {
      await settle();
      let moved = false;
      for (const cu of customers) {
        const k = cu.id.toHex();
        const ps = toPeer.get(k) ?? [];
        toPeer.delete(k);
        for (const p of ps) {
          moved = true;
          toBank(cu.id, await cu.c.receive(p, now));
        }
      }
      if (!moved) return;
    }
    throw new Error("no quiescence");
  }
  await exchange();
  for (const cu of customers) {
    assert.ok(cu.c.secure, "customer secure");
    assert.ok(engine.conversations.get(cu.id)?.secure, "bank secure");
  }
  const [a, b] = customers;
  // The bank sends each a message the customer never acknowledges: both
  // conversations get a retransmission deadline.
  for (const cu of customers) {
    await engine.send(cu.id, [`to ${cu.id[0]}`]);
    toPeer.delete(cu.id.toHex());
  }
  const deadline = Math.max(
    ...customers.map((cu) =>
      engine.conversations.get(cu.id)!.nextDeadline() ?? Infinity
    ),
  );
  assert.ok(Number.isFinite(deadline), "both conversations have a deadline");
  assert.ok(timer, "the engine armed its timer");

  const record = async (cu: (typeof customers)[number], text: string) => {
    const out = await cu.c.send([new TextEncoder().encode(text)], now);
    assert.equal(out.verdicts[0].ok, true);
    assert.equal(out.packets.length, 1, "one record per message");
    return out.packets[0];
  };
  const frame = (cu: (typeof customers)[number], p: Bytes) =>
    link.onFrame({ type: "data", peer: cu.id, frameNo: 0, payload: p });
  const b1 = await record(b, "b1");
  const a0 = await record(a, "a0");
  const a1 = await record(a, "a1");
  const a2 = await record(a, "a2");

  gate.on = true;
  frame(b, b1); // B busy: its open is held
  await gate.waitHeld(1, "b1");
  frame(a, a0); // A busy
  await gate.waitHeld(2, "a0");
  // Both deadlines come: the timer polls A and B, each behind its running call.
  now = deadline + 1;
  timer!();
  frame(a, a1); // queued behind A's poll: the poll drains it
  gate.release(1); // a0
  await gate.waitHeld(2, "a1 (opened by A's poll)");
  frame(a, a2); // the next call on A
  gate.release(1); // a1: A's poll is done; B's is not
  await gate.waitHeld(2, "a2");
  gate.release(1); // a2: its output is ready before A's poll's is applied (B still held)
  await settle();
  gate.release(0); // b1
  gate.on = false;
  await settle(50);

  const texts = (cu: (typeof customers)[number]) =>
    events.filter((e) =>
      e.type === "message" && e.peer === formatSessionId(cu.id)
    ).map((e) => (e as { text: string }).text);
  assert.deepEqual(texts(a), ["a0", "a1", "a2"], "A's messages in order");
  assert.deepEqual(texts(b), ["b1"]);
  assert.equal(
    events.filter((e) => e.type === "error").length,
    0,
    JSON.stringify(events.filter((e) => e.type === "error")),
  );
  await Deno.remove(dir, { recursive: true });
});
