/**
 * The conversation core (lib/conversation.ts, lib/conversations.ts,
 * lib/delivery.ts) on a fake clock over an in-memory relay
 * (tests/helpers/conversation_net.ts): loss, duplication, reordering, relay
 * and peer restarts, strangers, forged and simultaneous handshakes, and the
 * resume exchange — every message delivered once, in order, acknowledged.
 */

import assert from "node:assert/strict";
import type { Bytes } from "../lib/bytes.ts";
import { type Client, Net, secure } from "./helpers/conversation_net.ts";
import { PACKET_HS1, PACKET_HS2, PACKET_RECORD } from "../lib/handshake.ts";
import { Conversations } from "../lib/conversations.ts";
import { generateIdentity } from "../lib/identity.ts";
import { nodePrimitives } from "../lib/deno/node_primitives.ts";
import type { SessionPrimitives } from "../lib/primitives.ts";
import {
  MAX_RECORDS_PER_TURN,
  NEW_CONVERSATION_BURST,
  NEW_CONVERSATION_RATE,
  REHANDSHAKE_AFTER_UNANSWERED,
  RESUME_WAIT_MS,
  RETRANSMIT_BASE_MS,
  SILENT_HANDSHAKES_HINT,
} from "../lib/constants.ts";

const texts = (prefix: string, n: number) =>
  Array.from({ length: n }, (_, i) => `${prefix}${i + 1}`);

/** A deterministic PRNG (mulberry32) so lossy runs are reproducible. */
function prng(seed: number): () => number {
  return () => {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function pair(
  opts: { bankOpts?: object } = {},
): Promise<{ net: Net; a: Client; b: Client }> {
  const net = new Net();
  const a = await net.client("bank", opts.bankOpts ?? {});
  const b = await net.client("customer");
  return { net, a, b };
}

async function connected(): Promise<{ net: Net; a: Client; b: Client }> {
  const p = await pair();
  await p.a.dial(p.b);
  await p.net.run(() => secure(p.a, p.b) && secure(p.b, p.a), 10_000, "secure");
  return p;
}

/** Both directions: every message once, in order; every id delivered. */
async function exchange(
  net: Net,
  a: Client,
  b: Client,
  n: number,
  maxMs = 300_000,
): Promise<void> {
  const ta = texts("a", n), tb = texts("b", n);
  const seenB = b.texts(a).length, seenA = a.texts(b).length;
  const dA = a.delivered(b).length, dB = b.delivered(a).length;
  const idsA = await a.send(b, ...ta);
  const idsB = await b.send(a, ...tb);
  await net.run(
    () =>
      b.texts(a).length >= seenB + n && a.texts(b).length >= seenA + n &&
      a.delivered(b).length >= dA + n && b.delivered(a).length >= dB + n,
    maxMs,
    "exchange",
  );
  await net.advance(1000);
  assert.deepEqual(b.texts(a).slice(seenB), ta);
  assert.deepEqual(a.texts(b).slice(seenA), tb);
  assert.deepEqual(a.delivered(b).slice(dA), idsA);
  assert.deepEqual(b.delivered(a).slice(dB), idsB);
}

async function closeBoth(net: Net, a: Client, b: Client): Promise<void> {
  await a.close(b);
  await net.run(
    () => a.of("closed", b).length > 0 && b.of("closed", a).length > 0,
    60_000,
    "closed",
  );
  assert.equal(a.of("closed", b)[0].reason, "closed");
  assert.equal(b.of("closed", a)[0].reason, "closed");
}

Deno.test("conversation: handshake, messages both ways in order, delivered, clean close", async () => {
  const { net, a, b } = await connected();
  const sa = a.of("secure", b)[0], sb = b.of("secure", a)[0];
  assert.equal(sa.sessionHash, sb.sessionHash);
  assert.equal(sa.fingerprint, b.fp);
  assert.equal(sb.fingerprint, a.fp);
  assert.equal(sa.role, "initiator");
  assert.equal(sb.trust, "new");
  await exchange(net, a, b, 200);
  await closeBoth(net, a, b);
  assert.equal(a.set.size, 0, "an ended conversation is forgotten");
});

Deno.test("conversation: the handshake runs on the session's primitive provider (key schedule, ephemerals)", async () => {
  // A provider that counts its handshake calls: the conversation must hand
  // its sessionOptions to the handshake, not only to the session after it.
  const counted = () => {
    const calls = { hkdfFrom: 0, generateEphemeral: 0 };
    const hs = nodePrimitives.handshake!;
    const primitives: SessionPrimitives = {
      ...nodePrimitives,
      handshake: {
        ...hs,
        hkdfFrom(ikm) {
          calls.hkdfFrom++;
          return hs.hkdfFrom(ikm);
        },
        generateEphemeral(suite) {
          calls.generateEphemeral++;
          return hs.generateEphemeral(suite);
        },
      },
    };
    return { calls, primitives };
  };
  const [pa, pb] = [counted(), counted()];
  const net = new Net();
  const a = await net.client("bank", {
    sessionOptions: { coverRate: 0, primitives: pa.primitives },
  });
  const b = await net.client("customer", {
    sessionOptions: { coverRate: 0, primitives: pb.primitives },
  });
  await a.dial(b);
  await net.run(() => secure(a, b) && secure(b, a), 10_000, "secure");
  for (const { calls } of [pa, pb]) {
    assert.equal(calls.generateEphemeral, 1);
    assert.ok(calls.hkdfFrom >= 1, "the key schedule ran on the provider");
  }
  await exchange(net, a, b, 5);
});

Deno.test("conversation: 30 % loss, duplicates and reordering — every message once, in order, acknowledged", async () => {
  const { net, a, b } = await connected();
  const r = prng(7);
  net.verdict = () => {
    const x = r();
    return x < 0.3
      ? "drop"
      : x < 0.45
      ? "dup"
      : x < 0.7
      ? { delay: Math.floor(r() * 400) }
      : "deliver";
  };
  await exchange(net, a, b, 300);
  net.verdict = () => "deliver";
  await closeBoth(net, a, b);
});

Deno.test("conversation: refused input gets an id and a reason, nothing else changes", async () => {
  const { net, a, b } = await connected();
  const c = a.set.get(b.id)!;
  const out = await c.send([
    new TextEncoder().encode("ok1"),
    new Uint8Array([0, 1]),
    new Uint8Array(70_000).fill(97),
    new TextEncoder().encode("ok2"),
  ], net.now);
  net.apply(a, a.set.tag(c, out));
  assert.deepEqual(out.verdicts.map((v) => v.ok ? "ok" : v.code), [
    "ok",
    "invalid-text",
    "too-large",
    "ok",
  ]);
  await net.run(
    () => b.texts(a).length === 2 && a.delivered(b).length === 2,
    10_000,
  );
  assert.deepEqual(b.texts(a), ["ok1", "ok2"]);
  assert.deepEqual(a.delivered(b), [1, 4]);
});

Deno.test("conversation: the relay goes down and comes back — retransmitted byte-identical, delivered once", async () => {
  const { net, a, b } = await connected();
  net.down = true;
  a.set.linkDown();
  b.set.linkDown();
  const ids = await a.send(b, ...texts("x", 50));
  await net.advance(20_000);
  net.down = false;
  net.apply(a, await a.set.linkUp(net.now));
  net.apply(b, await b.set.linkUp(net.now));
  await net.run(
    () => b.texts(a).length === 50 && a.delivered(b).length === 50,
    60_000,
  );
  assert.deepEqual(b.texts(a), texts("x", 50));
  assert.deepEqual(a.delivered(b), ids);
  assert.equal(
    a.of("secure").length,
    1,
    "the session survived the relay restart",
  );
});

Deno.test("conversation: peer offline — messages wait, then go out when it is back", async () => {
  const { net, a, b } = await connected();
  net.offline.add(b);
  await a.send(b, ...texts("w", 10));
  await net.advance(30_000);
  assert.equal(b.texts(a).length, 0);
  assert.equal(
    a.of("secure").length,
    1,
    "an away peer is not a lost session: no re-handshake",
  );
  net.offline.delete(b);
  await net.run(() => b.texts(a).length === 10, 60_000);
  assert.deepEqual(b.texts(a), texts("w", 10));
});

Deno.test("conversation: the peer restarts (loses its session) — re-handshake after the unanswered rounds, nothing lost", async () => {
  const { net, a, b } = await connected();
  await exchange(net, a, b, 5);
  b.reset(); // same identity and ID, no state
  const start = net.now;
  const ids = await a.send(b, "after-1", "after-2");
  await net.run(
    () => b.texts(a).includes("after-2") && a.delivered(b).includes(ids[1]),
    120_000,
  );
  assert.equal(a.of("secure", b).length, 2, "a second session");
  assert.ok(
    net.now - start > 10_000,
    `re-handshake only after ${REHANDSHAKE_AFTER_UNANSWERED} unanswered rounds`,
  );
  assert.deepEqual(b.texts(a).slice(5), ["after-1", "after-2"]);
  assert.ok(a.of("notice").some((n) => /stopped acknowledging/.test(n.text)));
});

Deno.test("conversation: a known peer that answers no handshake (it may refuse our changed key) gets a hint after SILENT_HANDSHAKES_HINT unanswered attempts", async () => {
  const { net, a, b } = await connected();
  net.verdict = () => "drop"; // like a peer in the refused state: nothing comes back
  await a.send(b, "unanswered");
  const isHint = (t: string) => /may be refusing your identity key/.test(t);
  const hint = (n: { text: string }) => isHint(n.text);
  await net.run(() => a.of("notice").some(hint), 300_000, "hint");
  const notices = a.of("notice").map((n) => n.text);
  const at = notices.findIndex(isHint);
  assert.equal(
    notices.slice(0, at).filter((t) =>
      /handshake timed out|stopped acknowledging/.test(t)
    ).length,
    SILENT_HANDSHAKES_HINT,
    "the hint comes after exactly that many unanswered attempts",
  );
  assert.match(notices[at], /your fingerprint and the safety number/);
  assert.match(notices[at], /"presented fingerprint"/);
  await net.advance(60_000);
  assert.equal(
    a.of("notice").filter(hint).length,
    1,
    "said once, not in a loop",
  );
});

Deno.test("conversation: a peer that sends cover traffic but never acknowledges is re-handshaken", async () => {
  const net = new Net();
  const a = await net.client("bank");
  const b = await net.client("customer", { sessionOptions: { coverRate: 2 } });
  await a.dial(b);
  await net.run(() => secure(a, b) && secure(b, a), 10_000);
  // B's session stops processing what it receives (so it never ACKs), while its timers keep sending DUMMYs.
  const sb = b.of("secure", a)[0].session;
  sb.receiveMany = () => Promise.resolve({ events: [], packets: [] });
  await a.send(a === a ? b : b, "ping");
  await net.run(() => a.of("secure", b).length === 2, 120_000, "re-handshake");
  await net.run(() => b.texts(a).includes("ping"), 30_000);
  assert.deepEqual(b.texts(a), ["ping"]);
});

Deno.test("conversation: simultaneous open — one session, the smaller ID answers", async () => {
  const { net, a, b } = await pair();
  await a.dial(b);
  await b.dial(a);
  await net.run(() => secure(a, b) && secure(b, a), 20_000);
  await net.advance(5000);
  assert.equal(a.of("secure").length, 1);
  assert.equal(b.of("secure").length, 1);
  assert.equal(a.of("secure")[0].sessionHash, b.of("secure")[0].sessionHash);
  await exchange(net, a, b, 10);
});

Deno.test("conversations: a stranger's HS1 that never finishes and one that completes with a fresh key do not touch the real peer", async () => {
  const { net, a, b } = await connected();
  const lurker = await net.client("lurker");
  const fresh = await net.client("fresh");
  net.verdict = (p) =>
    p.from.toHex() === lurker.id.toHex() && p.packet[1] !== PACKET_HS1
      ? "drop"
      : "deliver";
  await lurker.dial(b);
  await fresh.dial(b);
  const sending = exchange(net, a, b, 50);
  await sending;
  assert.ok(
    secure(b, fresh),
    "the stranger with a fresh key got its own conversation",
  );
  await net.advance(15_000);
  assert.equal(
    b.set.get(lurker.id),
    undefined,
    "the unfinished handshake was dropped after its timeout",
  );
  assert.equal(
    b.of("secure", a).length,
    1,
    "the real conversation never re-handshook",
  );
  await closeBoth(net, a, b);
});

Deno.test("conversations: a stranger flooding HS1s costs bounded responder work", async () => {
  const { net, a, b } = await connected();
  const lurker = await net.client("lurker");
  await lurker.dial(b);
  const hs1 = net.log.find((p) => p.from.toHex() === lurker.id.toHex())!;
  const hs2From = (id: Uint8Array) =>
    net.log.filter((p) =>
      p.from.toHex() === b.id.toHex() && p.to.toHex() === id.toHex() &&
      p.packet[1] === PACKET_HS2
    ).length;
  const before = hs2From(lurker.id);
  // 50 valid, distinct HS1s in one second from the same ID: each one a
  // different randomI (bytes 2..33, §2.1), so none is a retransmission and
  // each would cost a key generation, an ECDH and a signature. (Changing a
  // padding byte instead makes the HS1 malformed: refused before any work,
  // which would not test the bound.)
  for (let i = 0; i < 50; i++) {
    const fake = hs1.packet.slice();
    fake[2] ^= i + 1;
    net.inject({ ...hs1, packet: fake });
  }
  await net.deliver();
  const answered = hs2From(lurker.id) - before;
  assert.ok(answered >= 1, "the valid HS1s were answered at all");
  assert.ok(answered <= 5, `${answered} HS2s for 50 HS1s in one second`);
  // The bound is per peer ID: another stranger still gets its answer.
  const other = await net.client("other");
  await other.dial(b);
  await net.deliver();
  assert.equal(hs2From(other.id), 1, "a second stranger is answered");
  await exchange(net, a, b, 5);
});

Deno.test("conversation: a relay-forged handshake with another key under the peer's ID does not touch the live session", async () => {
  const { net, a, b } = await connected();
  // The relay runs its own handshake with A, stamping B's ID on it.
  const forger = new Conversations({
    identity: await generateIdentity(),
    localId: b.id,
    now: net.now,
    options: () => ({
      trust: () => ({ status: "new" }),
      sessionOptions: { coverRate: 0 },
    }),
  });
  const mark = net.log.length;
  const { output } = await forger.dial(a.id, net.now);
  for (const p of output.packets) {
    net.inject({ from: b.id, to: a.id, packet: p.packet, at: net.now });
  }
  net.verdict = (p) =>
    p.packet[1] === PACKET_HS2 && p.from.toHex() === a.id.toHex()
      ? "drop"
      : "deliver";
  await net.deliver();
  const hs2 = net.log.slice(mark).find((p) => p.packet[1] === PACKET_HS2)!;
  const out = await forger.receive(a.id, hs2.packet, net.now);
  for (const p of out.packets) {
    net.inject({ from: b.id, to: a.id, packet: p.packet, at: net.now });
  }
  net.verdict = () => "deliver";
  await net.deliver();
  assert.ok(
    a.of("notice").some((n) =>
      /new handshake attempt failed \(identity-changed\)/.test(n.text)
    ),
  );
  assert.equal(a.of("secure").length, 1);
  await exchange(net, a, b, 10);
});

Deno.test("conversation: a changed key without a live session is refused; accepted after retry", async () => {
  const { net, a, b } = await connected();
  await closeBoth(net, a, b);
  b.reset(await generateIdentity()); // the customer re-installed: new identity, same ID
  await a.dial(b);
  await net.run(() => a.of("refused").length > 0, 10_000);
  const r = a.of("refused")[0];
  assert.equal(r.code, "identity-changed");
  assert.equal(r.previous, a.known.get(b.id.toHex()));
  assert.equal(r.role, "initiator", "refused at HS2: the peer has no session");
  a.known.set(b.id.toHex(), r.fingerprint); // the user accepted the new key
  const c = a.set.get(b.id)!;
  net.apply(a, a.set.tag(c, await c.retry(net.now)));
  await net.run(() => secure(a, b), 10_000);
  assert.equal(a.of("secure").at(-1)!.trust, "known");
});

Deno.test("conversation: a changed key that dials us is refused as responder (at HS3: the changed side holds a session and the same safety number) and, never acknowledged, is told the peer may be refusing its key", async () => {
  const { net, a, b } = await connected();
  await closeBoth(net, a, b);
  b.reset(await generateIdentity());
  await b.dial(a);
  await net.run(() => a.of("refused").length > 0, 10_000);
  const r = a.of("refused")[0];
  assert.equal(r.code, "identity-changed");
  assert.equal(r.role, "responder");
  assert.notEqual(r.fingerprint, r.previous);
  assert.ok(b.of("secure").length > 1, "the changed side got a session");
  // The changed side is not told on the wire (PROTOCOL.md §2.3), but what it
  // sends is never acknowledged: after SILENT_HANDSHAKES_HINT attempts the
  // peer answered with nothing, it says the peer may be refusing its key.
  await b.send(a, "with the new key");
  const hint = (n: { text: string }) =>
    /may be refusing your identity key/.test(n.text);
  await net.run(() => b.of("notice").some(hint), 300_000, "hint");
  assert.equal(a.texts(b).includes("with the new key"), false);
  assert.ok(a.of("refused").length > 1, "each new attempt refused again");
});

Deno.test("conversation: an address's fingerprint — only that identity is accepted", async () => {
  const { net, a, b } = await pair();
  await a.dial(b, { expectFingerprint: "00".repeat(32) });
  await net.run(() => a.of("refused").length > 0, 10_000);
  assert.equal(a.of("refused")[0].code, "identity-rejected");
  assert.ok(!secure(b, a) || true);
  const { net: n2, a: a2, b: b2 } = await pair();
  await a2.dial(b2, { expectFingerprint: b2.fp });
  await n2.run(() => secure(a2, b2), 10_000);
  assert.equal(a2.of("secure")[0].trust, "expected");
});

/** Drops every record B sends A from `from` on (its ACKs): A re-handshakes; returns how to stop. */
function withholdAcks(net: Net, a: Client, b: Client): void {
  net.verdict = (p) =>
    p.from.toHex() === b.id.toHex() && p.to.toHex() === a.id.toHex() &&
      p.packet[1] === PACKET_RECORD
      ? "drop"
      : "deliver";
}

Deno.test("resume: ACKs withheld until a re-handshake — the peer's resume confirms, nothing re-sent, nothing twice", async () => {
  const { net, a, b } = await connected();
  withholdAcks(net, a, b);
  const ids = await a.send(b, ...texts("p", 5));
  const hs1s = () =>
    net.log.filter((p) =>
      p.from.toHex() === a.id.toHex() && p.packet[1] === PACKET_HS1
    ).length;
  await net.run(() => hs1s() >= 2, 60_000, "re-handshake");
  net.verdict = () => "deliver";
  await net.run(() => a.delivered(b).length === 5, 30_000);
  assert.deepEqual(a.delivered(b), ids);
  assert.ok(
    a.of("delivered").some((d) => d.byResume),
    "confirmed by the peer's resume",
  );
  assert.deepEqual(b.texts(a), texts("p", 5), "each once");
  await exchange(net, a, b, 3);
});

Deno.test("resume: the peer's resume held back past RESUME_WAIT_MS — re-sent, and the receiver drops the duplicates", async () => {
  const { net, a, b } = await connected();
  withholdAcks(net, a, b);
  const ids = await a.send(b, ...texts("q", 5));
  const hs1s = () =>
    net.log.filter((p) =>
      p.from.toHex() === a.id.toHex() && p.packet[1] === PACKET_HS1
    ).length;
  await net.run(() => hs1s() >= 2, 60_000, "re-handshake");
  // The new session's records from B (its resume, its ACKs) are held for longer than the wait.
  net.verdict = (p) =>
    p.from.toHex() === b.id.toHex() && p.packet[1] === PACKET_RECORD
      ? { delay: RESUME_WAIT_MS + 3000 }
      : "deliver";
  await net.advance(RESUME_WAIT_MS + 1000);
  assert.ok(a.of("notice").some((n) => /no resume from the peer/.test(n.text)));
  net.verdict = () => "deliver";
  await net.run(() => a.delivered(b).length === 5, 60_000);
  await net.advance(2000);
  assert.deepEqual(a.delivered(b), ids);
  assert.deepEqual(b.texts(a), texts("q", 5), "each once although sent twice");
  await exchange(net, a, b, 3);
});

Deno.test("conversation: silent loss is reported `undelivered` once; a late ACK still gives `delivered`", async () => {
  const { net, a, b } = await connected();
  net.verdict = (p) =>
    p.from.toHex() === a.id.toHex() && p.packet[1] === PACKET_RECORD
      ? "drop"
      : "deliver";
  const ids = await a.send(b, "lost-1", "lost-2");
  await net.advance(21_000);
  net.verdict = () => "deliver";
  await net.run(() => a.delivered(b).length === 2, 60_000);
  assert.deepEqual(a.delivered(b), ids);
  void ids;
});

Deno.test("conversation: closing waits for the peer when asked (scripted input at EOF)", async () => {
  const { net, a, b } = await pair();
  await a.dial(b);
  await net.run(() => b.set.get(a.id) !== undefined, 5000);
  await a.send(b, "only");
  await a.close(b, true);
  await net.run(
    () => a.of("closed").length > 0 && b.of("closed").length > 0,
    30_000,
  );
  assert.deepEqual(b.texts(a), ["only"]);
  assert.equal(a.of("closed")[0].reason, "closed");
});

Deno.test("conversations: HS1s from new IDs beyond the set's bound are ignored; held ones go on", async () => {
  const net = new Net();
  const bank = await net.client("bank");
  const a = await net.client("a");
  const b = await net.client("b");
  bank.set = new Conversations({
    identity: bank.identity,
    localId: bank.id,
    now: net.now,
    max: 1,
    options: () => ({
      trust: () => ({ status: "new" }),
      sessionOptions: { coverRate: 0 },
    }),
  });
  await a.dial(bank);
  await net.run(() => secure(a, bank), 10_000);
  await b.dial(bank);
  await net.advance(3000);
  assert.equal(bank.set.size, 1);
  assert.ok(!secure(b, bank), "the second ID was not answered");
  await exchange(net, a, bank, 5);
});

Deno.test("conversation: records queued behind a running call are opened at most MAX_RECORDS_PER_TURN per call — every message once, in order", async () => {
  const { net, a, b } = await connected();
  const n = MAX_RECORDS_PER_TURN * 2 + 10;
  const held = net.log.length;
  net.verdict = () => "drop"; // kept for the test to deliver
  for (let i = 1; i <= n; i++) await a.send(b, `q${i}`); // one record each
  net.verdict = () => "deliver";
  const records = net.log.slice(held).filter((p) =>
    p.packet[1] === PACKET_RECORD
  );
  assert.equal(records.length, n, "one record per message");
  // All arrive while the first is being opened: one call each, as a driver makes them.
  const outs = await Promise.all(
    records.map((p) => b.set.receive(a.id, p.packet, net.now)),
  );
  const perCall = outs.map((o) =>
    o.events.filter((e) => e.event.type === "message").length
  );
  assert.ok(
    perCall.every((k) => k <= MAX_RECORDS_PER_TURN),
    `messages per call: ${perCall.filter((k) => k > 0).join(", ")}`,
  );
  assert.equal(
    perCall[0],
    MAX_RECORDS_PER_TURN,
    "the first call takes a full turn",
  );
  for (const o of outs) net.apply(b, o);
  assert.deepEqual(b.texts(a), texts("q", n));
  await net.run(() => a.delivered(b).length === n, 60_000, "all acknowledged");
});

Deno.test("conversations: HS1s from unknown IDs start at most NEW_CONVERSATION_BURST conversations at once, then NEW_CONVERSATION_RATE per second; never more than max", async () => {
  const t0 = 1_000_000;
  const me = new Uint8Array(16).fill(0xee);
  const idOf = (i: number): Bytes => {
    const id = new Uint8Array(16);
    new DataView(id.buffer).setUint32(0, i + 1);
    return id;
  };
  const options = () => ({
    trust: () => ({ status: "new" as const }),
    sessionOptions: { coverRate: 0 },
  });
  const identity = await generateIdentity();
  /** A valid HS1 to `me` from `from` (a stranger's own dial). */
  const hs1From = async (from: Bytes) => {
    const stranger = new Conversations({
      identity,
      localId: from,
      now: t0,
      options,
    });
    const { output } = await stranger.dial(me, t0);
    return output.packets[0].packet;
  };
  const answered = (out: { packets: { packet: Uint8Array }[] }) =>
    out.packets.some((p) => p.packet[1] === PACKET_HS2);

  const target = new Conversations({
    identity: await generateIdentity(),
    localId: me,
    now: t0,
    options,
  });
  // The burst drained by HS1-typed packets from distinct IDs (the bound is
  // taken before any parsing or crypto).
  for (let i = 0; i < NEW_CONVERSATION_BURST; i++) {
    await target.receive(idOf(i), Uint8Array.of(1, PACKET_HS1), t0);
  }
  const late = idOf(NEW_CONVERSATION_BURST);
  const hs1 = await hs1From(late);
  assert.ok(!answered(await target.receive(late, hs1, t0)), "over the burst");
  assert.equal(target.get(late), undefined);
  // Two tokens back after 2 / NEW_CONVERSATION_RATE seconds.
  const t1 = t0 + 2000 / NEW_CONVERSATION_RATE;
  assert.ok(answered(await target.receive(late, hs1, t1)), "refilled");

  // `max`: a full set answers no new ID (valid HS1s, far apart in time).
  const small = new Conversations({
    identity: await generateIdentity(),
    localId: me,
    now: t0,
    options,
    max: 2,
  });
  for (let i = 0; i < 3; i++) {
    const from = idOf(100_000 + i);
    const out = await small.receive(from, await hs1From(from), t0 + i * 1000);
    assert.equal(answered(out), i < 2, `conversation ${i + 1} of max 2`);
  }
  assert.equal(small.size, 2);
});

Deno.test("conversation: a send from an idle conversation arms the retransmission timer — its record, lost once, is resent after RETRANSMIT_BASE_MS, not at the next unrelated timer (the 30 s undelivered report)", async () => {
  const { net, a: bank, b: customer } = await pair();
  await customer.dial(bank);
  await net.run(
    () => secure(bank, customer) && secure(customer, bank),
    10_000,
    "secure",
  );
  // Idle: no timer of the customer's is armed (nothing awaits an ACK).
  await net.advance(120_000);
  // Its next record is lost once; the retransmission brings it.
  let lost = 0;
  net.verdict = (p) =>
    p.from.toHex() === customer.id.toHex() && p.packet[1] === PACKET_RECORD &&
      lost++ === 0
      ? "drop"
      : "deliver";
  const sentAt = net.now;
  const [id] = await customer.send(bank, "after a quiet while");
  await net.run(
    () => bank.texts(customer).includes("after a quiet while"),
    60_000,
    "retransmitted",
  );
  assert.equal(lost >= 1, true);
  assert.ok(
    net.now - sentAt <= RETRANSMIT_BASE_MS,
    `first retransmission after ${
      net.now - sentAt
    } ms (≤ ${RETRANSMIT_BASE_MS})`,
  );
  await net.run(() => customer.delivered(bank).includes(id), 10_000, "acked");
});
