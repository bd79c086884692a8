import assert from "node:assert/strict";
import { constantTimeEqual } from "../lib/bytes.ts";
import { ProtocolError } from "../lib/errors.ts";
import { Initiator, Responder } from "../lib/handshake.ts";
import type { HandshakeResult } from "../lib/handshake_result.ts";
import { generateIdentity } from "../lib/identity.ts";
import {
  deriveLabel,
  generateEphemeral,
  generateX25519,
  hkdf,
  importSecret,
  sign,
  SUITE_P256,
  SUITE_X25519,
  verify,
} from "../lib/suite.ts";
import { sharedSecret, transcript } from "../lib/handshake_keys.ts";
import { createHmac, hkdfSync } from "node:crypto";
import type { Bytes } from "../lib/bytes.ts";
import { MAX_BODY } from "../lib/constants.ts";
import {
  NODE_AEAD_MAX_PLAINTEXT,
  nodeHandshakePrimitives,
  nodeHashPrimitives,
  nodePrimitives,
} from "../lib/deno/node_primitives.ts";
import {
  isPromise,
  type SecretKey,
  webCryptoPrimitives,
} from "../lib/primitives.ts";
import { Session, type SessionOptions } from "../lib/session.ts";
import { verifyTranscript } from "../lib/transcript.ts";
import {
  exchange,
  fixture,
  MASTER_RAW,
  messages,
  prng,
} from "./session_helpers.ts";

const rand = prng(7);

Deno.test("the primitives modules can be imported dynamically (no `then` export)", async () => {
  const m = await import("../lib/primitives.ts");
  assert.equal(m.webCryptoPrimitives.name, "webcrypto");
  const n = await import("../lib/deno/node_primitives.ts");
  assert.equal(n.nodePrimitives.name, "node");
});

Deno.test("node SHA-256 equals WebCrypto's, synchronously", async () => {
  for (const n of [0, 1, 55, 56, 64, 245, 4096, 70000]) {
    const data = rand(n);
    const fast = nodePrimitives.sha256(data);
    assert.ok(!isPromise(fast), "node hash is synchronous");
    assert.deepEqual(fast, await webCryptoPrimitives.sha256(data), `n=${n}`);
  }
});

Deno.test("node AES-256-GCM: byte-identical to WebCrypto both ways, tamper detected", async () => {
  const raw = rand(32);
  const node = await nodePrimitives.importAeadKey(raw.slice());
  const web = await webCryptoPrimitives.importAeadKey(raw.slice());
  const wrong = await nodePrimitives.importAeadKey(rand(32));
  const sizes = [
    0,
    1,
    204,
    1996,
    NODE_AEAD_MAX_PLAINTEXT,
    NODE_AEAD_MAX_PLAINTEXT + 1,
    4044,
    65484,
  ];
  for (const n of sizes) {
    const nonce = rand(12), aad = rand(46), pt = rand(n);
    const small = n <= NODE_AEAD_MAX_PLAINTEXT;
    const sealedNode = node.seal(nonce, pt, aad);
    assert.equal(isPromise(sealedNode), !small, `n=${n}: sync iff small`);
    const a = await sealedNode;
    const b = await web.seal(nonce, pt, aad);
    assert.deepEqual(a, b, `n=${n}: same ciphertext and tag`);
    assert.equal(a.length, n + 16);
    assert.deepEqual(await node.open(nonce, b, aad), pt);
    assert.deepEqual(await web.open(nonce, a, aad), pt);
    // Any flipped bit (first, middle, last = tag) or other AAD/nonce/key fails.
    for (const i of new Set([0, a.length >> 1, a.length - 1])) {
      const bad = a.slice();
      bad[i] ^= 0x01;
      assert.equal(await node.open(nonce, bad, aad), null, `n=${n} flip ${i}`);
    }
    const otherAad = aad.slice();
    otherAad[45] ^= 0x80;
    assert.equal(await node.open(nonce, a, otherAad), null);
    const otherNonce = nonce.slice();
    otherNonce[11] ^= 0x01;
    assert.equal(await node.open(otherNonce, a, aad), null);
    assert.equal(await wrong.open(nonce, a, aad), null);
    // Truncated: a shortened tag must never be accepted.
    assert.equal(
      await node.open(nonce, a.subarray(0, a.length - 1), aad),
      null,
    );
  }
  assert.equal(await node.open(rand(12), rand(15), rand(46)), null);
  await assert.rejects(nodePrimitives.importAeadKey(rand(16)), RangeError);
});

/** A node initiator and a WebCrypto responder (or the reverse), from one fixture. */
async function mixedPair(options: SessionOptions, nodeSide: "I" | "R") {
  const fx = await fixture();
  const node = { ...options, primitives: nodePrimitives };
  // The node side's master as a handshake on the node provider hands it
  // over: in a node:crypto key object, not a WebCrypto key.
  const providerMaster = {
    hkdf: nodePrimitives.handshake!.hkdfFrom(MASTER_RAW.slice()),
  };
  const nodeResult = (r: HandshakeResult) => ({ ...r, master: providerMaster });
  return {
    a: await Session.fromHandshake(
      nodeSide === "I" ? nodeResult(fx.resultI) : fx.resultI,
      nodeSide === "I" ? node : options,
    ),
    b: await Session.fromHandshake(
      nodeSide === "R" ? nodeResult(fx.resultR) : fx.resultR,
      nodeSide === "R" ? node : options,
    ),
  };
}

Deno.test("a node session and a WebCrypto session send byte-identical unsigned packets", async () => {
  const fx = await fixture();
  const opts = { signEvery: 256, keepTranscript: false };
  const web = await Session.fromHandshake(fx.resultI, opts);
  const node = await Session.fromHandshake(fx.resultI, {
    ...opts,
    primitives: nodePrimitives,
  });
  const bodies = [0, 1, 189, 1900, 1983, 1984, 4096, MAX_BODY].map(rand);
  assert.deepEqual(
    await node.sendMany(bodies, 0),
    await web.sendMany(bodies, 0),
  );
});

for (const nodeSide of ["I", "R"] as const) {
  Deno.test(`node ↔ WebCrypto sessions interoperate (node = ${nodeSide}): sizes across the threshold, rekeys, signatures, close, transcripts`, async () => {
    const { a, b } = await mixedPair(
      {
        signEvery: 8,
        minSignGapMs: 0,
        coalesce: false,
        rekeyAfterMessages: 50,
      },
      nodeSide,
    );
    const sent: Bytes[] = [];
    const got: Bytes[] = [];
    const gotBack: Bytes[] = [];
    let now = 0;
    for (let round = 0; round < 12; round++) {
      now += 5;
      const bodies = Array.from(
        { length: 16 },
        (_, i) =>
          rand(i % 5 === 0 ? 3000 + round : (round * 37 + i * 11) % 600),
      );
      sent.push(...bodies);
      const packets = [...await a.sendMany(bodies, now), ...await a.poll(now)];
      const ev = await exchange(a, b, packets, now);
      got.push(...messages(ev.get(b)!));
      const reply = await b.send(rand(100 + round), now);
      const back = await exchange(b, a, [...reply, ...await b.poll(now)], now);
      gotBack.push(...messages(back.get(a)!));
    }
    assert.deepEqual(got, sent);
    assert.equal(gotBack.length, 12);
    assert.ok(a.epoch >= 2, `rekeyed (epoch ${a.epoch})`);
    assert.equal(a.epoch, b.epoch);
    assert.ok(b.stats.signaturesVerified >= 20);
    assert.equal(b.stats.forgeries + a.stats.forgeries, 0);
    await exchange(a, b, await a.close(now + 1), now + 1);
    assert.ok(a.closed && b.closed, "both closed");
    for (const s of [a, b]) {
      const v = await verifyTranscript(JSON.stringify(s.transcript!.toJSON()));
      assert.equal(v.uncovered.initiator + v.uncovered.responder, 0);
      assert.equal(
        v.messages.filter((m) => m.role === "initiator" && m.type === "data")
          .length,
        sent.length,
      );
    }
  });
}

Deno.test("nodeHashPrimitives (sync hash, WebCrypto AEAD) talks to nodePrimitives", async () => {
  const fx = await fixture();
  const a = await Session.fromHandshake(fx.resultI, {
    signEvery: 4,
    minSignGapMs: 0,
    primitives: nodeHashPrimitives,
  });
  const b = await Session.fromHandshake(fx.resultR, {
    signEvery: 4,
    minSignGapMs: 0,
    primitives: nodePrimitives,
  });
  const bodies = Array.from({ length: 10 }, (_, i) => rand(i * 500));
  const ev = await exchange(a, b, await a.sendMany(bodies, 0), 0);
  assert.deepEqual(messages(ev.get(b)!), bodies);
  assert.equal(b.stats.signaturesVerified, 2);
});

Deno.test("node session: forged and replayed records are dropped and counted, not delivered", async () => {
  const { a, b } = await mixedPair({}, "R");
  const [p] = await a.send(rand(300), 0);
  for (const i of [0, 13, 14, 100, p.length - 1]) {
    const bad = p.slice();
    bad[i] ^= 0x04;
    const r = await b.receive(bad, 0);
    assert.equal(messages(r.events).length, 0, `flip at ${i}`);
  }
  assert.equal(b.stats.forgeries + b.stats.malformed + b.stats.unknownEpoch, 5);
  const ok = await b.receive(p, 0);
  assert.equal(messages(ok.events).length, 1);
  const again = await b.receive(p, 0);
  assert.equal(messages(again.events).length, 0);
  assert.equal(b.stats.replays, 1);
  assert.equal(b.failed, undefined);
});

Deno.test("node handshake: --crypto fast keeps the master in the provider (keepMaster), --crypto keys in a non-extractable WebCrypto key; both sessions talk", async () => {
  const trust = () => "ok" as const;
  const complete = (r: HandshakeResult) => r;
  const ids = [new Uint8Array(16).fill(1), new Uint8Array(16).fill(2)];
  const [a, b] = [await generateIdentity(), await generateIdentity()];
  const { handshake: hi, message: hs1 } = await Initiator.start({
    identity: a,
    localId: ids[0],
    peerId: ids[1],
    now: 0,
    trust,
    complete,
    sessionOptions: { primitives: nodePrimitives },
  });
  const hr = Responder.create({
    identity: b,
    localId: ids[1],
    trust,
    complete,
    sessionOptions: { primitives: nodeHashPrimitives },
  });
  const { send: hs2 } = await hr.receive(hs1, { now: 0, from: ids[0] });
  const { send: hs3, session: ri } = await hi.receive(hs2!, 0);
  const { session: rr } = await hr.receive(hs3, { now: 0 });
  assert.ok("hkdf" in ri.master, "fast: the provider's secret");
  assert.ok(rr!.master instanceof CryptoKey, "keys: a WebCrypto key");
  assert.equal(rr!.master.extractable, false);
  const opts = { minSignGapMs: 0, coalesce: false, rekeyAfterMessages: 20 };
  const si = await Session.fromHandshake(ri, {
    ...opts,
    primitives: nodePrimitives,
  });
  const sr = await Session.fromHandshake(rr!, {
    ...opts,
    primitives: nodeHashPrimitives,
  });
  const bodies = Array.from({ length: 60 }, (_, i) => rand(50 + i));
  const got: Bytes[] = [];
  let now = 0;
  for (let i = 0; i < 6; i++) {
    now += 5;
    const part = bodies.slice(i * 10, i * 10 + 10);
    const out = [...await si.sendMany(part, now), ...await si.poll(now)];
    got.push(...messages((await exchange(si, sr, out, now)).get(sr)!));
    const back = [...await sr.send(rand(10), now), ...await sr.poll(now)];
    await exchange(sr, si, back, now);
  }
  assert.deepEqual(got, bodies);
  assert.ok(
    si.epoch >= 1,
    `rekeyed from the provider-held master (epoch ${si.epoch})`,
  );
  assert.equal(si.epoch, sr.epoch);
});

Deno.test("node handshake provider ↔ WebCrypto: both suites, both directions, same session secrets; tampered HS2 still refused", async () => {
  const trust = () => "ok" as const;
  const complete = (r: HandshakeResult) => r;
  const ids = [new Uint8Array(16).fill(1), new Uint8Array(16).fill(2)];
  for (const alg of ["ECDSA-P256-SHA256", "Ed25519"] as const) {
    const [a, b] = [await generateIdentity(alg), await generateIdentity(alg)];
    for (
      const [pi, pr] of [[nodePrimitives, undefined], [
        undefined,
        nodePrimitives,
      ]]
    ) {
      const { handshake: hi, message: hs1 } = await Initiator.start({
        identity: a,
        localId: ids[0],
        peerId: ids[1],
        now: 0,
        trust,
        complete,
        sessionOptions: pi && { primitives: pi },
      });
      const hr = Responder.create({
        identity: b,
        localId: ids[1],
        trust,
        complete,
        sessionOptions: pr && { primitives: pr },
      });
      const { send: hs2 } = await hr.receive(hs1, { now: 0, from: ids[0] });
      const bad = hs2!.slice();
      bad[bad.length - 1] ^= 1;
      await assert.rejects(
        (await Initiator.start({
          identity: a,
          localId: ids[0],
          peerId: ids[1],
          now: 0,
          trust,
          complete,
          sessionOptions: pi && { primitives: pi },
        })).handshake.receive(bad, 0),
        (e: unknown) => e instanceof ProtocolError,
      );
      const { send: hs3, session: si } = await hi.receive(hs2!, 0);
      const { session: sr } = await hr.receive(hs3, { now: 0 });
      assert.deepEqual(si.sessionHash, sr!.sessionHash);
      const probe = (m: SecretKey) =>
        deriveLabel(m, si.sessionHash, "probe", new Uint8Array(0), 32);
      assert.deepEqual(await probe(si.master), await probe(sr!.master));
      assert.deepEqual(sr!.peerIdentity.spki, a.spki);
    }
  }
});

Deno.test("constantTimeEqual: equal, one bit off, other length", () => {
  const x = Uint8Array.from({ length: 32 }, (_, i) => i);
  assert.ok(constantTimeEqual(x, x.slice()));
  const y = x.slice();
  y[31] ^= 0x80;
  assert.ok(!constantTimeEqual(x, y));
  assert.ok(!constantTimeEqual(x, x.subarray(1)));
});

Deno.test("node X25519 ephemeral: small-order and wrong-length peer keys are invalid-public-key; DH agrees with WebCrypto", async () => {
  const own = (await nodeHandshakePrimitives.generateEphemeral(SUITE_X25519))!;
  assert.equal(own.publicRaw.length, 32);
  for (
    const bad of [
      new Uint8Array(32),
      new Uint8Array(32).with(0, 1), // u = 1
      Uint8Array.fromHex(
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800", // order 8
      ),
      new Uint8Array(31),
    ]
  ) {
    await assert.rejects(
      sharedSecret(own, SUITE_X25519, bad),
      (e: unknown) =>
        e instanceof ProtocolError && e.code === "invalid-public-key",
    );
  }
  const wc = await generateX25519();
  assert.deepEqual(
    await sharedSecret(own, SUITE_X25519, wc.publicRaw),
    await sharedSecret(wc, SUITE_X25519, own.publicRaw),
  );
});

Deno.test("node P-256 ephemeral: off-curve, compressed, wrong-length and out-of-range peer points are invalid-public-key; DH agrees with WebCrypto", async () => {
  const own = (await nodeHandshakePrimitives.generateEphemeral(SUITE_P256))!;
  assert.equal(own.publicRaw.length, 65);
  assert.equal(own.publicRaw[0], 0x04);
  const wc = await generateEphemeral();
  const offCurve = wc.publicRaw.slice();
  offCurve[64] ^= 1;
  const compressed = new Uint8Array(65);
  compressed.set(wc.publicRaw.subarray(0, 33));
  compressed[0] = 0x02;
  const xTooBig = wc.publicRaw.slice();
  xTooBig.fill(0xff, 1, 33); // x ≥ p
  for (
    const bad of [
      offCurve,
      compressed,
      xTooBig,
      new Uint8Array(65).with(0, 4), // (0, 0): not on the curve
      wc.publicRaw.subarray(0, 64),
      new Uint8Array(32),
    ]
  ) {
    await assert.rejects(
      sharedSecret(own, SUITE_P256, bad),
      (e: unknown) =>
        e instanceof ProtocolError && e.code === "invalid-public-key",
    );
  }
  assert.deepEqual(
    await sharedSecret(own, SUITE_P256, wc.publicRaw),
    await sharedSecret(wc, SUITE_P256, own.publicRaw),
  );
});

Deno.test("node handshake HMAC: RFC 4231 case 2 and createHmac for 32-byte and other keys", () => {
  // RFC 4231 §4.3 (key "Jefe"): not 32 bytes, so the createHmac branch.
  const jefe = new TextEncoder().encode("Jefe");
  const msg = new TextEncoder().encode("what do ya want for nothing?");
  assert.equal(
    nodeHandshakePrimitives.hmac(jefe, msg).toHex(),
    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
  );
  for (const n of [0, 1, 32, 63, 64, 65, 200]) {
    const key = rand(32), data = rand(n), before = key.slice();
    const expected = createHmac("sha256", key).update(data).digest();
    assert.deepEqual(
      nodeHandshakePrimitives.hmac(key, data),
      new Uint8Array(expected),
      `n=${n}`,
    );
    assert.deepEqual(key, before, "key left as it was");
  }
});

Deno.test("node hkdfFrom equals WebCrypto HKDF and hkdfSync; the caller may zero the IKM at once", async () => {
  const ikm = rand(32), salt = rand(32), info = rand(40);
  const web = await hkdf(await importSecret(ikm.slice()), salt, info, 32);
  const derive = nodeHandshakePrimitives.hkdfFrom(ikm);
  const expected = new Uint8Array(hkdfSync("sha256", ikm, salt, info, 32));
  ikm.fill(0);
  assert.deepEqual(derive(salt, info, 32), web);
  assert.deepEqual(web, expected);
  assert.deepEqual(derive(salt, info, 32), web, "reusable");
});

Deno.test("transcript: incremental (node) and concatenated (WebCrypto) hash the same bytes; `with` leaves its base unchanged", async () => {
  const prologue = rand(77), a = rand(234), b = rand(100), c = rand(5);
  const tn = transcript(prologue, undefined, nodeHandshakePrimitives);
  const tw = transcript(prologue);
  const th = transcript(prologue, nodePrimitives.sha256);
  const expected = await webCryptoPrimitives.sha256(
    new Uint8Array([...prologue, ...a, ...b, ...c]),
  );
  for (const t of [tn, tw, th]) {
    const ta = t.with(a);
    assert.deepEqual(await ta.with(b).hash(c), expected);
    assert.deepEqual(await ta.hash(b, c), expected);
    assert.deepEqual(await t.hash(a, b, c), expected);
    assert.deepEqual(await ta.with(b, c).hash(), expected);
    assert.deepEqual(
      await ta.hash(),
      await webCryptoPrimitives.sha256(new Uint8Array([...prologue, ...a])),
      "base unchanged by with()",
    );
  }
});

Deno.test("node identity signatures: Ed25519 from a non-extractable key verifies in WebCrypto; WebCrypto Ed25519 ones verify in node; a wrong or malformed one is false; P-256 is left to WebCrypto (null) both ways", async () => {
  for (const alg of ["ECDSA-P256-SHA256", "Ed25519"] as const) {
    const id = await generateIdentity(alg);
    const data = rand(59);
    const s = nodeHandshakePrimitives.sign(id.privateKey, data) ??
      await sign(id.privateKey, data);
    assert.equal(s.length, 64);
    assert.ok(await verify(id.publicKey, s, data), `${alg}: WebCrypto accepts`);
    const w = await sign(id.privateKey, data);
    const bad = w.slice();
    bad[10] ^= 1;
    // P-256: the provider declines (WebCrypto signs and checks for less CPU).
    const [yes, no] = alg === "Ed25519" ? [true, false] : [null, null];
    assert.equal(
      nodeHandshakePrimitives.sign(id.privateKey, data) !== null,
      alg === "Ed25519",
    );
    assert.equal(nodeHandshakePrimitives.verify(id.spki, w, data), yes);
    assert.equal(nodeHandshakePrimitives.verify(id.spki, bad, data), no);
    assert.equal(
      nodeHandshakePrimitives.verify(id.spki, w.subarray(0, 63), data),
      no,
    );
    assert.equal(
      nodeHandshakePrimitives.verify(id.spki, new Uint8Array(64), data),
      no,
      `${alg}: all-zero signature`,
    );
  }
});

Deno.test("chain signatures on the node provider (Ed25519): packets byte-identical to WebCrypto's, checked both ways; a signature by another key ends the session chain-mismatch", async () => {
  const ed = () => generateIdentity("Ed25519");
  const [idI, idR, stranger] = [await ed(), await ed(), await ed()];
  const result = async (
    role: "initiator" | "responder",
    local: typeof idI,
    peer: typeof idI,
  ): Promise<HandshakeResult> => ({
    suite: SUITE_X25519,
    sessionHash: new Uint8Array(32).fill(0x22),
    role,
    localId: new Uint8Array(16).fill(role === "initiator" ? 1 : 2),
    peerId: new Uint8Array(16).fill(role === "initiator" ? 2 : 1),
    localIdentity: local,
    peerIdentity: { publicKey: peer.publicKey, spki: peer.spki },
    master: await importSecret(MASTER_RAW.slice()),
  });
  const opts = { signEvery: 1, keepTranscript: false };
  const node = { ...opts, primitives: nodeHashPrimitives };
  const bodies = [rand(10), rand(300), rand(3000)];
  // Same keys, counters and (deterministic) Ed25519 signatures: same bytes.
  const viaNode = await Session.fromHandshake(
    await result("initiator", idI, idR),
    node,
  );
  const viaWeb = await Session.fromHandshake(
    await result("initiator", idI, idR),
    opts,
  );
  const packets = await viaNode.sendMany(bodies, 0);
  assert.deepEqual(packets, await viaWeb.sendMany(bodies, 0));
  assert.equal(viaNode.stats.signaturesMade, 3);
  // A WebCrypto receiver accepts the node signer's; a node receiver the WebCrypto signer's.
  for (const receiver of [opts, node]) {
    const r = await Session.fromHandshake(
      await result("responder", idR, idI),
      receiver,
    );
    const got = await r.receiveMany(packets, 0);
    assert.equal(r.stats.signaturesVerified, 3);
    assert.deepEqual(messages(got.events), bodies);
  }
  // Signed by a key that is not the peer's identity: the node check refuses.
  const forger = await Session.fromHandshake(
    await result("initiator", stranger, idR),
    node,
  );
  const r = await Session.fromHandshake(
    await result("responder", idR, idI),
    node,
  );
  await assert.rejects(
    r.receiveMany(await forger.sendMany([rand(20)], 0), 0),
    (e: unknown) => e instanceof ProtocolError && e.code === "chain-mismatch",
  );
});
