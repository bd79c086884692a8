import assert from "node:assert/strict";
import type { Bytes } from "../lib/bytes.ts";
import {
  ACK_DELAY_MS,
  BUCKET_OVERHEAD,
  FLOW_WINDOW,
  MAX_BODY,
  MAX_UNSIGNED,
  RELAY_DATA_HEADER_LENGTH,
} from "../lib/constants.ts";
import { bucketFor } from "../lib/padding.ts";
import { ProtocolError } from "../lib/errors.ts";
import {
  decodeInner,
  decodeRecordHeader,
  deriveTrafficKeys,
  encodeInner,
  InnerType,
  openRecord,
  sealRecord,
} from "../lib/record.ts";
import type { SessionEvent } from "../lib/session.ts";
import { generateEphemeral, importSecret, sign } from "../lib/suite.ts";
import { rekeySignatureInput } from "../lib/session.ts";
import { concat } from "../lib/bytes.ts";
import {
  exchange,
  FakeInitiator,
  INITIATOR_ID,
  MASTER_RAW,
  messages,
  pair,
  prng,
  RESPONDER_ID,
  SESSION_HASH,
} from "./session_helpers.ts";
import { Session } from "../lib/session.ts";
import {
  nodeHashPrimitives,
  nodePrimitives,
} from "../lib/deno/node_primitives.ts";
import { fixture } from "./session_helpers.ts";
import { generateKeyPairSync } from "node:crypto";
import { importPeerKey, PEER_KEY_CACHE_SIZE } from "../lib/handshake_keys.ts";

const enc = new TextEncoder();
const EMPTY = new Uint8Array(0);
const dec = new TextDecoder();
const rejectsWith = (p: Promise<unknown>, code: string) =>
  assert.rejects(
    p,
    (e: unknown) => e instanceof ProtocolError && e.code === code,
  );

Deno.test("round trip of random messages both ways, in order, bucket-sized packets", async () => {
  const { a, b } = await pair();
  const rand = prng(1);
  const sizes = [0, 1, 189, 190, 191, 500, 4096, 20000, MAX_BODY];
  for (let round = 0; round < 3; round++) {
    for (const [from, to] of [[a, b], [b, a]] as const) {
      const bodies = sizes.map((n) => rand(n));
      const packets = await from.sendMany(bodies, 0);
      for (const p of packets) {
        const frame = p.length + RELAY_DATA_HEADER_LENGTH;
        assert.equal(frame, bucketFor(frame - BUCKET_OVERHEAD), "a bucket");
        assert.ok(frame >= 256 && frame <= 65536);
      }
      const ev = await exchange(from, to, packets, 0);
      assert.deepEqual(messages(ev.get(to)!), bodies);
    }
  }
  assert.equal(a.stats.delivered, 27);
  assert.equal(b.stats.delivered, 27);
});

Deno.test("sendMany: the caller may overwrite its bodies as soon as the call returns (signed or not, transcript or not, sync or async hashing)", async () => {
  for (
    const primitives of [undefined, nodeHashPrimitives, nodePrimitives]
  ) {
    for (const signEvery of [1, 3, 64]) {
      for (const keepTranscript of [false, true]) {
        for (const coalesce of [false, true]) {
          const o = { signEvery, keepTranscript, coalesce, primitives };
          const { a, b } = await pair(o);
          const rand = prng(signEvery);
          const sent: Bytes[] = [];
          const got: Bytes[] = [];
          for (let round = 0; round < 4; round++) {
            const bodies = [5, 300, 70, 0, 1000].map((n) => rand(n));
            sent.push(...bodies.map((x) => x.slice()));
            const sealing = a.sendMany(bodies, round);
            for (const x of bodies) x.fill(0xee); // reused by the caller at once
            const ev = await exchange(a, b, await sealing, round);
            got.push(...messages(ev.get(b)!));
          }
          const what = JSON.stringify({ ...o, primitives: primitives?.name });
          assert.deepEqual(got, sent, what);
          const t = a.transcript;
          if (keepTranscript) {
            assert.deepEqual(t!.messages.map((m) => m.body), sent, what);
          } else assert.equal(t, undefined);
        }
      }
    }
  }
});

Deno.test("too-large body is refused before anything is assigned", async () => {
  const { a } = await pair();
  await rejectsWith(a.send(new Uint8Array(MAX_BODY + 1), 0), "too-large");
  const [p] = await a.send(new Uint8Array(1), 0);
  assert.equal(decodeRecordHeader(p).counter, 0n);
});

Deno.test("reordered packets are delivered once, in seq order", async () => {
  const { a, b } = await pair();
  const bodies = Array.from({ length: 200 }, (_, i) => enc.encode(`m${i}`));
  const packets = await a.sendMany(bodies, 0);
  const rand = prng(7);
  const order = packets.map((p, i) => ({ p, k: rand(4)[0] * 1000 + i }));
  order.sort((x, y) => x.k - y.k);
  const got: Bytes[] = [];
  for (const { p } of order) {
    const r = await b.receive(p, 0);
    got.push(...messages(r.events));
  }
  assert.deepEqual(got, bodies);
});

Deno.test("drop + retransmission after reconnect: delivered exactly once, duplicates re-acked", async () => {
  const { a, b } = await pair();
  const bodies = Array.from({ length: 10 }, (_, i) => enc.encode(`x${i}`));
  const packets = await a.sendMany(bodies, 0);
  // The connection dies after 6 packets: 6..9 are lost.
  const r1 = await b.receiveMany(packets.slice(0, 6), 0);
  assert.deepEqual(messages(r1.events), bodies.slice(0, 6));
  assert.deepEqual(r1.packets, [], "ACK is coalesced, not immediate");
  // Reconnect: a resends everything unacked, byte-identical.
  const again = a.unacked();
  assert.equal(again.length, 10);
  assert.deepEqual(again, packets);
  const r2 = await b.receiveMany(again, 1);
  assert.deepEqual(messages(r2.events), bodies.slice(6));
  assert.equal(b.stats.replays, 6);
  assert.equal(b.nextDeadline(), 0 + ACK_DELAY_MS);
  const acks = await b.poll(ACK_DELAY_MS);
  assert.equal(acks.length, 1);
  const r3 = await a.receiveMany(acks, ACK_DELAY_MS);
  assert.deepEqual(r3.events, [{
    type: "acked",
    seqs: Array.from({ length: 10 }, (_, i) => BigInt(i + 1)),
  }]);
  assert.deepEqual(a.unacked(), []);
  // A late duplicate is re-acked but not re-delivered.
  const r4 = await b.receive(packets[3], 50);
  assert.deepEqual(r4.events, []);
  assert.equal(b.stats.replays, 7);
  assert.equal((await b.poll(50 + ACK_DELAY_MS)).length, 1);
  assert.equal(b.stats.delivered, 10);
});

Deno.test("every byte of a record flipped, and every truncation, is rejected and counted", async () => {
  const { a, b } = await pair();
  for (const size of [10, 3000]) {
    const [p] = await a.send(prng(size)(size), 0);
    const before = { ...b.stats };
    for (let i = 0; i < p.length; i++) {
      const bad = p.slice();
      bad[i] ^= 0x5a;
      const r = await b.receive(bad, 0);
      assert.deepEqual(r.events, [], `flip at byte ${i}`);
    }
    for (let n = 0; n < p.length; n++) {
      const r = await b.receive(p.subarray(0, n), 0);
      assert.deepEqual(r.events, [], `truncated to ${n}`);
    }
    const s = b.stats;
    const rejected = s.malformed + s.unknownEpoch + s.forgeries + s.tooOld -
      (before.malformed + before.unknownEpoch + before.forgeries +
        before.tooOld);
    assert.equal(rejected, 2 * p.length);
    assert.ok(
      s.forgeries - before.forgeries >= p.length - 6,
      "body/tag/counter flips fail the AEAD",
    );
    assert.equal(s.packetsReceived, before.packetsReceived);
    const ok = await b.receive(p, 0);
    assert.equal(
      messages(ok.events).length,
      1,
      "the genuine packet still opens",
    );
  }
  assert.equal(b.failed, undefined);
});

Deno.test("counter exhaustion: refused before any counter is reused", async () => {
  const { a, b } = await pair({ maxCounter: 5n });
  const packets = await a.sendMany(
    Array.from({ length: 6 }, () => new Uint8Array(1)),
    0,
  );
  assert.deepEqual(packets.map((p) => decodeRecordHeader(p).counter), [
    0n,
    1n,
    2n,
    3n,
    4n,
    5n,
  ]);
  await rejectsWith(a.send(new Uint8Array(1), 0), "counter-exhausted");
  await rejectsWith(
    a.sendMany([new Uint8Array(1), new Uint8Array(1)], 0),
    "counter-exhausted",
  );
  assert.equal(a.failed, undefined);
  const ev = await exchange(a, b, packets, 0);
  assert.equal(messages(ev.get(b)!).length, 6);
  // Nothing left: even ACKs and cover are suppressed rather than reusing a counter.
  assert.deepEqual(await a.poll(10_000), []);
});

/**
 * A fresh `a` has the whole window: one message over it is refused
 * (window-full), then exactly FLOW_WINDOW empty ones go out. Their packets.
 */
async function fillWindow(a: Session): Promise<Bytes[]> {
  const empty = (n: number) =>
    Array.from({ length: n }, () => new Uint8Array(0));
  assert.equal(a.sendCapacity(), FLOW_WINDOW);
  await rejectsWith(a.sendMany(empty(FLOW_WINDOW + 1), 0), "window-full");
  return await a.sendMany(empty(FLOW_WINDOW), 0);
}

Deno.test("flow control: window-full until the peer acknowledges", async () => {
  const { a, b } = await pair();
  const packets = await fillWindow(a);
  assert.equal(a.sendCapacity(), 0);
  await rejectsWith(a.send(new Uint8Array(0), 0), "window-full");
  const ev = await exchange(a, b, packets, 0); // b acks every 32 at once
  assert.ok(ev.get(a)!.some((e) => e.type === "acked"));
  assert.equal(a.sendCapacity(), FLOW_WINDOW);
  assert.equal((await a.send(new Uint8Array(0), 0)).length, 1);
});

Deno.test("cover traffic: DUMMY packets look like small DATA and ACK packets, dropped after authentication", async () => {
  let u = 0.5;
  const { a, b } = await pair({ coverRate: 10, random: () => u });
  assert.deepEqual(await a.poll(0), [], "first poll schedules");
  const due = a.nextDeadline()!;
  assert.ok(
    Math.abs(due - (-Math.log(0.5) / 10) * 1000) < 1e-6,
    "exponential interval",
  );
  u = 0.9;
  const [dummy] = await a.poll(due);
  const [data] = await a.send(enc.encode("hello"), due);
  const evB = await b.receive(dummy, due);
  assert.deepEqual(evB.events, []);
  assert.equal(b.stats.dummiesReceived, 1);
  await b.receive(data, due);
  const [ack] = await b.poll(due + ACK_DELAY_MS);
  assert.equal(dummy.length, data.length);
  assert.equal(ack.length, data.length);
  assert.deepEqual(
    dummy.subarray(0, 6),
    data.subarray(0, 6),
    "version, type, epoch identical",
  );
  assert.deepEqual(ack.subarray(0, 6), data.subarray(0, 6));
  assert.equal(
    decodeRecordHeader(dummy).counter + 1n,
    decodeRecordHeader(data).counter,
  );
});

Deno.test("signatures: every N messages, after the interval (CHECKPOINT), and on close; then closed", async () => {
  const { a, b } = await pair({ signEvery: 4, signIntervalMs: 100 });
  const packets = await a.sendMany(
    Array.from({ length: 10 }, (_, i) => enc.encode(`s${i}`)),
    0,
  );
  let ev = await exchange(a, b, packets, 0);
  const verified = (e: SessionEvent[]) =>
    e.flatMap((x) => x.type === "signature-verified" ? [x.seq] : []);
  assert.deepEqual(verified(ev.get(b)!), [4n, 8n]);
  assert.equal(a.nextDeadline(), 100);
  const cp = await a.poll(100);
  assert.equal(cp.length, 1);
  ev = await exchange(a, b, cp, 100);
  assert.deepEqual(verified(ev.get(b)!), [11n]);
  assert.equal(b.stats.signaturesVerified, 3);
  const close = await a.close(200);
  await rejectsWith(a.send(new Uint8Array(0), 200), "closed");
  ev = await exchange(a, b, close, 200);
  const evB = ev.get(b)!;
  assert.deepEqual(verified(evB), [12n]);
  assert.ok(evB.some((e) => e.type === "peer-closed"));
  assert.ok(ev.get(a)!.some((e) => e.type === "peer-closed"));
  assert.ok(ev.get(a)!.some((e) => e.type === "closed"));
  // b's closing needs the ACK of its CLOSE: a acks on delivery of CLOSE.
  assert.ok(a.closed && b.closed, "both sides closed");
});

Deno.test("signatures after a quiet interval: the last message of a send is signed itself (no CHECKPOINT a second later); within the interval the CHECKPOINT stays; a new session signs by count, interval or close as before", async () => {
  // Coalesced as the clients send: 20 messages in one record.
  const { a, b } = await pair({ signEvery: 64, coalesce: true });
  const verified = (e: SessionEvent[]) =>
    e.flatMap((x) => x.type === "signature-verified" ? [x.seq] : []);
  const burst = (n: number) =>
    Array.from({ length: n }, (_, i) => enc.encode(`q${i}`));
  // No signature yet: unsigned, and the interval's CHECKPOINT signs it.
  let ev = await exchange(a, b, await a.sendMany(burst(3), 0), 0);
  assert.deepEqual(verified(ev.get(b)!), []);
  assert.equal(a.nextDeadline(), 1000);
  ev = await exchange(a, b, await a.poll(1000), 1000);
  assert.deepEqual(verified(ev.get(b)!), [4n]);
  // Quiet for the interval since that signature: the burst's last message carries one.
  const quiet = await a.sendMany(burst(20), 2000);
  assert.equal(quiet.length, 1, "one record");
  ev = await exchange(a, b, quiet, 2000);
  assert.equal(messages(ev.get(b)!).length, 20);
  assert.deepEqual(verified(ev.get(b)!), [24n]);
  // Nothing unsigned: no CHECKPOINT due (next: the rekey after 10 minutes).
  assert.equal(a.nextDeadline(), 600_000);
  assert.deepEqual(await a.poll(3500), []);
  // Within the interval: unsigned, the CHECKPOINT follows as before.
  ev = await exchange(a, b, await a.sendMany(burst(5), 2500), 2500);
  assert.deepEqual(verified(ev.get(b)!), []);
  assert.equal(a.nextDeadline(), 3500);
  ev = await exchange(a, b, await a.poll(3500), 3500);
  assert.deepEqual(verified(ev.get(b)!), [30n]);
  assert.equal(b.stats.signaturesVerified, a.stats.signaturesMade);
  assert.equal(b.failed, undefined);
  // One message at a time after a quiet interval: each signed, no CHECKPOINT.
  ev = await exchange(a, b, await a.send(enc.encode("x"), 5000), 5000);
  assert.deepEqual(verified(ev.get(b)!), [31n]);
  assert.equal(a.nextDeadline(), 600_000);
});

Deno.test("signatures under load: a due signature waits for the minimum gap, never past MAX_UNSIGNED − 1 unsigned, then a CHECKPOINT", async () => {
  const { a, b } = await pair({ signEvery: 64, minSignGapMs: 10 });
  const verified = (e: SessionEvent[]) =>
    e.flatMap((x) => x.type === "signature-verified" ? [x.seq] : []);
  // 600 messages at one instant: seq 64 signs (the first signature), then
  // only the 256th unsigned message after it may not wait: 64 + 256 = 320, 576.
  const burst = await a.sendMany(
    Array.from({ length: 600 }, (_, i) => enc.encode(`m${i}`)),
    0,
  );
  let ev = await exchange(a, b, burst, 0);
  assert.equal(messages(ev.get(b)!).length, 600);
  assert.deepEqual(verified(ev.get(b)!), [64n, 320n, 576n]);
  assert.equal(b.failed, undefined);
  // 24 unsigned: below signEvery, so only the interval bounds them.
  assert.equal(a.nextDeadline(), 1000);
  // 50 more at 5 ms: 74 due, waiting for the gap after the signature at 0.
  ev = await exchange(
    a,
    b,
    await a.sendMany(Array.from({ length: 50 }, () => enc.encode("y")), 5),
    5,
  );
  assert.deepEqual(verified(ev.get(b)!), []);
  assert.equal(a.nextDeadline(), 10);
  const cp = await a.poll(10);
  assert.equal(cp.length, 1);
  ev = await exchange(a, b, cp, 10);
  assert.deepEqual(verified(ev.get(b)!), [651n]);
  // At a low rate (gap passed) the signature comes every 64 messages again.
  let at = 100;
  const seqs: bigint[] = [];
  for (let i = 0; i < 128; i++, at += 1) {
    ev = await exchange(a, b, await a.send(enc.encode("x"), at), at);
    seqs.push(...verified(ev.get(b)!));
  }
  assert.deepEqual(seqs, [715n, 779n]);
  // signEvery 1 ignores the gap: every message is signed.
  const p2 = await pair({ signEvery: 1, minSignGapMs: 10 });
  const ev2 = await exchange(
    p2.a,
    p2.b,
    await p2.a.sendMany([enc.encode("1"), enc.encode("2")], 0),
    0,
  );
  assert.deepEqual(verified(ev2.get(p2.b)!), [1n, 2n]);
});

Deno.test("per-message signing mode: every message carries a verified signature", async () => {
  const { a, b } = await pair({ signEvery: 1 });
  const packets = await a.sendMany(
    Array.from({ length: 5 }, () => new Uint8Array(300)),
    0,
  );
  const ev = await exchange(a, b, packets, 0);
  assert.equal(
    ev.get(b)!.filter((e) => e.type === "signature-verified").length,
    5,
  );
});

Deno.test("forged chain: a peer whose signed chain skips a message ends the session", async () => {
  const fx = await fixture();
  const b = await Session.fromHandshake(fx.resultR);
  const peer = await FakeInitiator.create(fx);
  const m1 = { seq: 1n, type: InnerType.DATA, body: enc.encode("pay 10") };
  const m2 = { seq: 2n, type: InnerType.DATA, body: enc.encode("to alice") };
  // Signature over a chain that omits message 1.
  const sig = await peer.signHead(2n, await peer.head([m2]));
  const r = await b.receive(await peer.seal(m1), 0);
  assert.equal(messages(r.events).length, 1);
  await rejectsWith(
    b.receive(await peer.seal({ ...m2, signature: sig }), 0),
    "chain-mismatch",
  );
  assert.equal(b.failed?.code, "chain-mismatch");
  await rejectsWith(b.poll(0), "chain-mismatch");
  // The honest signature over both would have verified.
  const b2 = await Session.fromHandshake(fx.resultR);
  const peer2 = await FakeInitiator.create(fx);
  const good = await peer2.signHead(2n, await peer2.head([m1, m2]));
  await b2.receive(await peer2.seal(m1), 0);
  const ok = await b2.receive(await peer2.seal({ ...m2, signature: good }), 0);
  assert.ok(
    ok.events.some((e) => e.type === "signature-verified" && e.seq === 2n),
  );
});

Deno.test("unsigned-chain: MAX_UNSIGNED unsigned messages in a row end the session (the sender signs one of every MAX_UNSIGNED)", async () => {
  const fx = await fixture();
  const b = await Session.fromHandshake(fx.resultR);
  const peer = await FakeInitiator.create(fx);
  const packets: Bytes[] = [];
  for (let s = 1n; s < BigInt(MAX_UNSIGNED); s++) {
    packets.push(
      await peer.seal({
        seq: s,
        type: InnerType.DATA,
        body: new Uint8Array(0),
      }),
    );
  }
  const r = await b.receiveMany(packets, 0);
  assert.equal(messages(r.events).length, MAX_UNSIGNED - 1);
  const extra = await peer.seal({
    seq: BigInt(MAX_UNSIGNED),
    type: InnerType.DATA,
    body: new Uint8Array(0),
  });
  await rejectsWith(b.receive(extra, 0), "unsigned-chain");
});

Deno.test("unsigned-chain: REKEY_INIT and CHECKPOINT count as unsigned reliable messages like DATA (PROTOCOL.md §2.2.6)", async () => {
  const fx = await fixture();
  const b = await Session.fromHandshake(fx.resultR, { rekeyAfterMs: 1e12 });
  const peer = await FakeInitiator.create(fx);
  // seq 1: a REKEY_INIT with a valid rekey signature but no chain signature.
  const eph = await generateEphemeral();
  const rekeySig = await sign(
    fx.idI.privateKey,
    rekeySignatureInput(SESSION_HASH, 1, "initiator", eph.publicRaw),
  );
  const packets: Bytes[] = [
    await peer.seal({
      seq: 1n,
      type: InnerType.REKEY_INIT,
      body: concat(eph.publicRaw, rekeySig),
    }),
    // seq 2: an unsigned CHECKPOINT.
    await peer.seal({ seq: 2n, type: InnerType.CHECKPOINT, body: EMPTY }),
  ];
  for (let s = 3n; s < BigInt(MAX_UNSIGNED); s++) {
    packets.push(
      await peer.seal({ seq: s, type: InnerType.DATA, body: EMPTY }),
    );
  }
  const r = await b.receiveMany(packets, 0);
  // 2 control messages + MAX_UNSIGNED − 3 DATA = MAX_UNSIGNED − 1 unsigned: accepted.
  assert.equal(messages(r.events).length, MAX_UNSIGNED - 3);
  assert.ok(!b.failed);
  const extra = await peer.seal({
    seq: BigInt(MAX_UNSIGNED),
    type: InnerType.DATA,
    body: EMPTY,
  });
  await rejectsWith(b.receive(extra, 0), "unsigned-chain");
});

Deno.test("the ACK bitmap names every accepted counter, ACK and DUMMY packets included (PROTOCOL.md §2.2.5)", async () => {
  const fx = await fixture();
  const b = await Session.fromHandshake(fx.resultR);
  const peer = await FakeInitiator.create(fx);
  const empty = new Uint8Array(0);
  await b.receive(
    await peer.seal({
      type: InnerType.ACK,
      seq: 0n,
      body: new Uint8Array(144),
    }),
    0,
  ); // counter 0: "nothing accepted yet", valid for a side that sent nothing
  await b.receive(
    await peer.seal({ type: InnerType.DUMMY, seq: 0n, body: empty }),
    0,
  ); // counter 1
  await b.receive(
    await peer.seal({ type: InnerType.DATA, seq: 1n, body: enc.encode("x") }),
    0,
  ); // counter 2
  const [ack] = await b.poll(ACK_DELAY_MS);
  const master = await importSecret(MASTER_RAW.slice());
  const r2i = await deriveTrafficKeys(master, SESSION_HASH, "r2i", 0);
  const msg = decodeInner(
    await openRecord(r2i, ack, 0n, RESPONDER_ID, INITIATOR_ID),
  );
  assert.equal(msg.type, InnerType.ACK);
  const v = new DataView(msg.body.buffer, msg.body.byteOffset);
  assert.equal(v.getBigUint64(0), 2n, "highest");
  assert.equal(
    msg.body[8],
    0b111,
    "bits 0, 1, 2 = counters 2 (DATA), 1 (DUMMY), 0 (ACK)",
  );
  assert.ok(msg.body.subarray(9, 136).every((x) => x === 0));
  assert.equal(v.getBigUint64(136), 1n, "cumulativeSeq");
});

Deno.test("a reliable message after the peer's CLOSE ends the session (unexpected-message), in either arrival order", async () => {
  const fx = await fixture();
  const close = { seq: 1n, type: InnerType.CLOSE, body: new Uint8Array(0) };
  const data = { seq: 2n, type: InnerType.DATA, body: enc.encode("late") };
  for (const order of ["close first", "data first"]) {
    const b = await Session.fromHandshake(fx.resultR);
    const peer = await FakeInitiator.create(fx);
    const sig = await peer.signHead(1n, await peer.head([close]));
    const pClose = await peer.seal({ ...close, signature: sig });
    const pData = await peer.seal(data);
    if (order === "close first") {
      const r = await b.receive(pClose, 0);
      assert.ok(r.events.some((e) => e.type === "peer-closed"), order);
      await rejectsWith(b.receive(pData, 0), "unexpected-message");
    } else {
      await b.receive(pData, 0); // buffered: seq 1 missing
      await rejectsWith(b.receive(pClose, 0), "unexpected-message");
    }
    assert.equal(b.failed?.code, "unexpected-message", order);
    assert.equal(b.stats.delivered, 0, order);
  }
});

Deno.test("authenticated garbage ends the session: non-zero padding, unsigned CLOSE, ACK of unsent counters", async () => {
  const fx = await fixture();
  {
    const b = await Session.fromHandshake(fx.resultR);
    const peer = await FakeInitiator.create(fx);
    const pt = encodeInner({
      seq: 1n,
      type: InnerType.DATA,
      body: new Uint8Array(3),
    });
    pt[pt.length - 1] = 1;
    await rejectsWith(b.receive(await peer.sealPlaintext(pt), 0), "malformed");
  }
  {
    const b = await Session.fromHandshake(fx.resultR);
    const peer = await FakeInitiator.create(fx);
    await rejectsWith(
      b.receive(
        await peer.seal({
          seq: 1n,
          type: InnerType.CLOSE,
          body: new Uint8Array(0),
        }),
        0,
      ),
      "unsigned-chain",
    );
  }
  {
    const b = await Session.fromHandshake(fx.resultR);
    const peer = await FakeInitiator.create(fx);
    const body = new Uint8Array(144);
    body[7] = 5; // highest = 5 but b sent nothing
    await rejectsWith(
      b.receive(await peer.seal({ seq: 0n, type: InnerType.ACK, body }), 0),
      "malformed",
    );
  }
  {
    const b = await Session.fromHandshake(fx.resultR);
    const peer = await FakeInitiator.create(fx);
    await b.receive(
      await peer.seal({
        seq: 1n,
        type: InnerType.DATA,
        body: new Uint8Array(0),
      }),
      0,
    );
    // Same seq under a new counter is not a retransmission.
    await rejectsWith(
      b.receive(
        await peer.seal({
          seq: 1n,
          type: InnerType.DATA,
          body: new Uint8Array(0),
        }),
        0,
      ),
      "unexpected-message",
    );
  }
});

Deno.test("rekey under load: many messages in flight across epoch switches; old keys dropped", async () => {
  const opts = { rekeyAfterMessages: 40, signEvery: 16 };
  const { a, b } = await pair(opts);
  const got: Bytes[] = [];
  const sent: Bytes[] = [];
  let inflightAB: Bytes[] = [];
  let inflightBA: Bytes[] = [];
  const rekeyed = { a: 0, b: 0 };
  const rand = prng(3);
  for (let step = 0; step < 30; step++) {
    const now = step * 5;
    const bodies = Array.from(
      { length: 20 },
      () => rand(1 + (rand(1)[0] % 100)),
    );
    sent.push(...bodies);
    inflightAB.push(...await a.sendMany(bodies, now));
    inflightAB.push(...await a.poll(now));
    inflightBA.push(...await b.poll(now));
    // Deliver only half of what is in flight each step (the rest stays queued, in order).
    const half = inflightAB.splice(0, Math.ceil(inflightAB.length / 2));
    const rb = await b.receiveMany(half, now);
    got.push(...messages(rb.events));
    rekeyed.b += rb.events.filter((e) => e.type === "rekeyed").length;
    inflightBA.push(...rb.packets);
    const ra = await a.receiveMany(inflightBA, now);
    rekeyed.a += ra.events.filter((e) => e.type === "rekeyed").length;
    inflightBA = [];
    inflightAB.push(...ra.packets);
  }
  // Drain.
  for (let i = 0; i < 10 && (inflightAB.length || inflightBA.length); i++) {
    const rb = await b.receiveMany(inflightAB, 1000 + i);
    got.push(...messages(rb.events));
    rekeyed.b += rb.events.filter((e) => e.type === "rekeyed").length;
    inflightAB = [];
    const ra = await a.receiveMany([...inflightBA, ...rb.packets], 1000 + i);
    rekeyed.a += ra.events.filter((e) => e.type === "rekeyed").length;
    inflightBA = [];
    inflightAB.push(...ra.packets);
  }
  // Events of rekeys answered from poll() come with the next receive.
  for (const [s, k] of [[a, "a"], [b, "b"]] as const) {
    const r = await s.receiveMany([], 1100);
    rekeyed[k] += r.events.filter((e) => e.type === "rekeyed").length;
  }
  assert.deepEqual(got, sent);
  assert.ok(a.epoch >= 5, `several rekeys (epoch ${a.epoch})`);
  assert.equal(a.epoch, b.epoch);
  assert.equal(rekeyed.a, a.epoch);
  assert.equal(rekeyed.b, b.epoch);
  // Epoch-0 keys are gone: a fresh, validly sealed epoch-0 record is not accepted.
  const master = await importSecret(MASTER_RAW.slice());
  const k0 = await deriveTrafficKeys(master, SESSION_HASH, "i2r", 0);
  const old = await sealRecord(
    k0,
    1_000_000n,
    encodeInner({ seq: 0n, type: InnerType.DUMMY, body: new Uint8Array(0) }),
    INITIATOR_ID,
    RESPONDER_ID,
  );
  const before = b.stats.unknownEpoch;
  await b.receive(old, 2000);
  assert.equal(b.stats.unknownEpoch, before + 1);
  // Still talking afterwards.
  const ev = await exchange(
    b,
    a,
    await b.send(enc.encode("after"), 2000),
    2000,
  );
  assert.deepEqual(messages(ev.get(a)!), [enc.encode("after")]);
});

Deno.test("rekey wire order (PROTOCOL.md §2.2.7): REKEY_RESP under epoch e, then the ACK of REKEY_INIT under e+1, consecutive counters", async () => {
  const { a, b } = await pair({ rekeyAfterMs: 100 });
  await exchange(a, b, await a.send(enc.encode("x"), 0), 0);
  await exchange(b, a, await b.send(enc.encode("y"), 0), 0);
  const init = (await a.poll(100)).filter((p) =>
    decodeRecordHeader(p).epoch === 0
  );
  assert.ok(init.length >= 1);
  const rb = await b.receiveMany(init, 101);
  assert.ok(rb.events.some((e) => e.type === "rekeyed"));
  const headers = rb.packets.map((p) => decodeRecordHeader(p));
  assert.equal(headers.length, 2, "REKEY_RESP and one ACK");
  assert.deepEqual(headers.map((x) => x.epoch), [0, 1]);
  assert.equal(headers[1].counter, headers[0].counter + 1n);
  // The epoch-1 ACK first (reordered): held until REKEY_RESP, then both apply.
  const early = await a.receiveMany([rb.packets[1]], 102);
  assert.equal(a.epoch, 0);
  assert.deepEqual(early.events, []);
  const late = await a.receiveMany([rb.packets[0]], 102);
  assert.equal(a.epoch, 1);
  const acked = late.events.filter((e) => e.type === "acked");
  assert.equal(acked.length, 1, "the INIT is acknowledged by the held ACK");
});

Deno.test("rekey collision: both sides start at once, both converge on the same epoch", async () => {
  const { a, b } = await pair({ rekeyAfterMs: 100 });
  await exchange(a, b, await a.send(enc.encode("x"), 0), 0);
  await exchange(b, a, await b.send(enc.encode("y"), 0), 0);
  const pa = await a.poll(100); // INIT (and a pending ACK)
  const pb = await b.poll(100);
  assert.equal(a.stats.packetsSent, 3);
  assert.equal(b.stats.packetsSent, 3);
  const ra = await a.receiveMany(pb, 101); // a (initiator) ignores b's INIT
  const rb = await b.receiveMany(pa, 101); // b abandons its INIT and answers
  assert.ok(rb.events.some((e) => e.type === "rekeyed"));
  await exchange(b, a, rb.packets, 102);
  await exchange(a, b, ra.packets, 102);
  assert.equal(a.epoch, 1);
  assert.equal(b.epoch, 1);
  const ev = await exchange(a, b, await a.send(enc.encode("z"), 103), 103);
  assert.deepEqual(messages(ev.get(b)!), [enc.encode("z")]);
  const ev2 = await exchange(b, a, await b.send(enc.encode("w"), 103), 103);
  assert.deepEqual(messages(ev2.get(a)!), [enc.encode("w")]);
});

Deno.test("reordering across the epoch switch: next-epoch packets wait for REKEY_RESP", async () => {
  const { a, b } = await pair({ rekeyAfterMs: 100 });
  await exchange(a, b, await a.send(enc.encode("e0"), 0), 0);
  const init = await a.poll(100);
  const r = await b.receiveMany(init, 100);
  assert.equal(b.epoch, 1, "responder switched after sending RESP");
  const after = await b.sendMany([
    enc.encode("e1 first"),
    enc.encode("e1 second"),
  ], 101);
  assert.ok(after.every((p) => decodeRecordHeader(p).epoch === 1));
  // Deliver the epoch-1 data before the RESP that carries the new key share.
  const early = await a.receiveMany(after, 102);
  assert.deepEqual(early.events, []);
  assert.equal(a.stats.unknownEpoch, 0, "stashed, not dropped");
  const late = await a.receiveMany(r.packets, 103);
  assert.equal(a.epoch, 1);
  assert.deepEqual(messages(late.events), [
    enc.encode("e1 first"),
    enc.encode("e1 second"),
  ]);
  assert.ok(late.events.some((e) => e.type === "rekeyed"));
});

Deno.test("a rekey answer waits until the responder's older-epoch packets are acknowledged", async () => {
  const { a, b } = await pair({ rekeyAfterMs: 100 });
  // b sends an epoch-0 packet that is lost; a first rekey (0 → 1) completes.
  assert.deepEqual(await a.poll(0), []); // a's epoch clock starts
  const lost = await b.send(enc.encode("lost in epoch 0"), 50);
  const init1 = await a.poll(100);
  const r1 = await b.receiveMany(init1, 100);
  await a.receiveMany(r1.packets, 100);
  assert.equal(a.epoch, 1);
  const acks = await a.poll(200); // ACK of RESP, and a second INIT
  const r2 = await b.receiveMany(acks, 200);
  assert.equal(b.epoch, 1, "RESP deferred: b's epoch-0 packet is unacked");
  assert.deepEqual(r2.packets.length, 1, "only the ACK of the INIT goes out");
  // Retransmit after "reconnect"; a acks; b may now answer.
  const rr = await a.receiveMany(b.unacked(), 201);
  assert.deepEqual(messages(rr.events), [enc.encode("lost in epoch 0")]);
  const ack = rr.packets.length ? rr.packets : await a.poll(300);
  const r3 = await b.receiveMany(ack, 300);
  assert.equal(b.epoch, 2);
  await exchange(b, a, r3.packets, 300);
  assert.equal(a.epoch, 2);
  assert.equal(lost.length, 1);
});

Deno.test("close: the answering side is closed only when everything it sent is acknowledged, not just its CLOSE", async () => {
  const { a, b } = await pair();
  // b sends a message that is lost on the way; then a closes.
  const lost = await b.send(enc.encode("lost on the way"), 0);
  const close = await a.close(10);
  // b delivers a's CLOSE and answers with its own (sealed after the lost one).
  const rb = await b.receiveMany(close, 10);
  assert.ok(rb.events.some((e) => e.type === "peer-closed"));
  // a acknowledges b's CLOSE by counter, but cannot deliver it before seq 1.
  const ra = await a.receiveMany(rb.packets, 10);
  assert.ok(!ra.events.some((e) => e.type === "peer-closed"), "held in order");
  const rb2 = await b.receiveMany(ra.packets, 10);
  assert.ok(
    !rb2.events.some((e) => e.type === "closed"),
    "b must not be closed while its first message is unacknowledged",
  );
  assert.equal(b.closed, false);
  assert.ok(
    b.unacked().length > 0,
    "the lost message is kept for retransmission",
  );
  // Retransmission: now a delivers both, and b becomes closed.
  const ev = await exchange(b, a, b.unacked(), 20);
  assert.deepEqual(messages(ev.get(a)!).map((m) => dec.decode(m)), [
    "lost on the way",
  ]);
  assert.ok(ev.get(a)!.some((e) => e.type === "peer-closed"));
  assert.ok(a.closed, "a closed");
  assert.ok(b.closed, `b closed (unacked: ${b.unacked().length})`);
  assert.equal(lost.length, 1);
});

Deno.test("coalescing: one sendMany of 100 bodies of 256 B → 2 records (64 + 36) in fine buckets, each message delivered once, in order, signed at 64", async () => {
  const { a, b } = await pair({ coalesce: true });
  const rand = prng(7);
  const bodies = Array.from({ length: 100 }, () => rand(256));
  const packets = await a.sendMany(bodies, 0);
  // 64 per record (the message cap; 64 × 270 + 64 ≤ 65484): 64 + 36.
  assert.equal(packets.length, 2);
  // 64 × 270 + 64 + 52 = 17396 → 17408; 36 × 270 + 52 = 9772 → 10240.
  assert.deepEqual(
    packets.map((p) => p.length + RELAY_DATA_HEADER_LENGTH),
    [17408, 10240],
  );
  assert.deepEqual(
    packets.map((p) => decodeRecordHeader(p).counter),
    [0n, 1n],
  );
  const ev = await exchange(a, b, packets, 0);
  const evB = ev.get(b)!;
  assert.deepEqual(messages(evB), bodies);
  assert.deepEqual(
    evB.flatMap((e) => e.type === "message" ? [e.seq] : []),
    bodies.map((_, i) => BigInt(i + 1)),
  );
  assert.deepEqual(
    evB.flatMap((e) => e.type === "signature-verified" ? [e.seq] : []),
    [64n],
  );
  const acked = ev.get(a)!.flatMap((e) => e.type === "acked" ? e.seqs : []);
  assert.equal(acked.length, 100, "every seq acknowledged");
  assert.deepEqual(a.unacked(), []);
  // A single send is never held back to be coalesced.
  assert.equal((await a.send(enc.encode("alone"), 1)).length, 1);
});

Deno.test("coalescing: a lost record holds back its messages only; retransmission sends it once and delivers exactly once", async () => {
  const { a, b } = await pair({ coalesce: true });
  const bodies = Array.from({ length: 42 }, (_, i) => enc.encode(`m${i}`));
  const packets = await a.sendMany(bodies, 0);
  assert.ok(packets.length >= 1);
  // Short bodies: 42 × (14 + 3) ≤ 65484: a single record.
  assert.equal(packets.length, 1);
  const many = await a.sendMany(
    Array.from({ length: 40 }, () => new Uint8Array(4096)),
    0,
  );
  assert.equal(many.length, 3); // 15 + 15 + 10
  assert.deepEqual(a.unacked(), [...packets, ...many], "each packet once");
  // The first of the three is lost.
  const r = await b.receiveMany([packets[0], many[1], many[2]], 0);
  assert.equal(messages(r.events).length, 42, "later records wait in order");
  const acks = await b.poll(ACK_DELAY_MS);
  await a.receiveMany([...r.packets, ...acks], ACK_DELAY_MS);
  assert.deepEqual(a.unacked(), [many[0]], "only the lost record is resent");
  const r2 = await b.receive(many[0], 30);
  assert.equal(messages(r2.events).length, 40);
  assert.equal(b.stats.delivered, 82);
  const r3 = await b.receive(many[0], 31);
  assert.deepEqual(messages(r3.events), [], "a duplicate is not redelivered");
  assert.equal(b.stats.replays, 1);
  assert.equal(b.failed, undefined);
});

Deno.test("coalescing: flow control counts messages as well as records", async () => {
  const { a, b } = await pair({ coalesce: true });
  const packets = await fillWindow(a);
  assert.equal(packets.length, FLOW_WINDOW / 64, "64 per record at most");
  assert.equal(a.sendCapacity(), 0);
  await rejectsWith(a.send(new Uint8Array(0), 0), "window-full");
  const ev = await exchange(a, b, packets, 0);
  assert.equal(messages(ev.get(b)!).length, FLOW_WINDOW);
  assert.equal(a.sendCapacity(), FLOW_WINDOW);
});

Deno.test("idle → active: after every packet was acknowledged (tables freed), reordered bursts still arrive once and in order; the peer's chain signature verifies with its key no longer cached", async () => {
  const { a, b } = await pair();
  let now = 0;
  let verifiedBefore = 0;
  for (let round = 0; round < 3; round++) {
    const bodies = Array.from(
      { length: 64 },
      (_, i) => enc.encode(`r${round}:${i}`),
    );
    const packets = await a.sendMany(bodies, now);
    const rand = prng(round + 1);
    const order = packets.map((p, i) => ({ p, k: rand(4)[0] * 1000 + i }));
    order.sort((x, y) => x.k - y.k);
    const got: Bytes[] = [];
    const acks: Bytes[] = [];
    for (const { p } of order) {
      const r = await b.receive(p, now);
      got.push(...messages(r.events));
      acks.push(...r.packets);
    }
    assert.deepEqual(got, bodies);
    // b's ACKs (some at once, the rest after the delay) empty a's in-flight table.
    now += ACK_DELAY_MS;
    acks.push(...await b.poll(now));
    await exchange(b, a, acks, now);
    assert.deepEqual(a.unacked(), [], `round ${round}: all acknowledged`);
    if (round === 0) {
      assert.ok(b.stats.signaturesVerified >= 1, "seq 64 signed and verified");
      verifiedBefore = b.stats.signaturesVerified;
      // Push the peer's key out of the handshake's per-SPKI cache.
      for (let i = 0; i < PEER_KEY_CACHE_SIZE; i++) {
        const spki = generateKeyPairSync("ec", { namedCurve: "P-256" })
          .publicKey.export({ type: "spki", format: "der" });
        await importPeerKey(new Uint8Array(spki), "ECDSA-P256-SHA256");
      }
    }
  }
  assert.ok(b.stats.signaturesVerified > verifiedBefore, "verified after");
  assert.equal(b.failed, undefined);
});
