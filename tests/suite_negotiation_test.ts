/**
 * Suite negotiation (PROTOCOL.md §2.1 Suite): the X25519 + Ed25519 suite end
 * to end, the choice rule (the initiator's order, filtered by what the
 * responder accepts), no overlap, identity/suite mismatches, small-order
 * X25519 keys, a stripped offer (downgrade), padded sizes, and a Session pair
 * whose chain signatures and rekey run with Ed25519 identities.
 */

import assert from "node:assert/strict";
import { utf8 } from "../lib/bytes.ts";
import { ProtocolError } from "../lib/errors.ts";
import { Initiator, Responder, type TrustCallback } from "../lib/handshake.ts";
import type { HandshakeResult } from "../lib/handshake_result.ts";
import { generateIdentity, type Identity } from "../lib/identity.ts";
import { Session } from "../lib/session.ts";
import { verifyTranscript } from "../lib/transcript.ts";
import {
  parseSuiteList,
  SUITE_P256,
  SUITE_X25519,
  verify,
} from "../lib/suite.ts";

const ID_A = new Uint8Array(16).fill(0xaa);
const ID_B = new Uint8Array(16).fill(0xbb);
const T0 = 5_000;
const anyone: TrustCallback = () => "ok";
const asResult = (r: HandshakeResult) => r;

const p256A = await generateIdentity();
const p256B = await generateIdentity();
const edA = await generateIdentity("Ed25519");
const edB = await generateIdentity("Ed25519");

interface Side {
  identity: Identity;
  identities?: Identity[];
  suites?: number[];
}

async function run(a: Side, b: Side, trust: TrustCallback = anyone) {
  const { handshake: hi, message: hs1 } = await Initiator.start({
    ...a,
    localId: ID_A,
    peerId: ID_B,
    now: T0,
    trust,
    complete: asResult,
  });
  const hr = Responder.create({
    ...b,
    localId: ID_B,
    trust,
    complete: asResult,
  });
  const { send: hs2 } = await hr.receive(hs1, { now: T0, from: ID_A });
  const { send: hs3, session: si } = await hi.receive(hs2!, T0);
  const { session: sr } = await hr.receive(hs3, { now: T0 });
  return { hs1, hs2: hs2!, hs3, si, sr: sr! };
}

async function rejects(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof ProtocolError, String(e));
    assert.equal(e.code, code, e.message);
    return true;
  });
}

Deno.test("suite x25519: Ed25519 identities, X25519 ephemerals, same session on both sides", async () => {
  const { hs1, hs2, hs3, si, sr } = await run(
    { identity: edA },
    { identity: edB },
  );
  assert.equal(si.suite, SUITE_X25519);
  assert.equal(sr.suite, SUITE_X25519);
  assert.deepEqual(si.sessionHash, sr.sessionHash);
  assert.deepEqual(si.peerIdentity.spki, edB.spki);
  assert.deepEqual(sr.peerIdentity.spki, edA.spki);
  assert.equal(edA.spki.length, 44);
  // Every handshake message fills a record bucket: relay frame = 22 + packet.
  assert.deepEqual([hs1, hs2, hs3].map((m) => m.length + 22), [256, 256, 256]);
});

Deno.test("suite p256: padded frames are 256, 512 and 256 bytes", async () => {
  const { hs1, hs2, hs3 } = await run({ identity: p256A }, {
    identity: p256B,
  });
  assert.deepEqual([hs1, hs2, hs3].map((m) => m.length + 22), [256, 512, 256]);
});

Deno.test("negotiation: the initiator's order decides among the suites the responder accepts", async () => {
  const both = (id: Identity, other: Identity, suites?: number[]) => ({
    identity: id,
    identities: [other],
    ...(suites ? { suites } : {}),
  });
  // Initiator prefers X25519, responder accepts both → X25519.
  let r = await run(
    both(edA, p256A, [SUITE_X25519, SUITE_P256]),
    both(p256B, edB, [SUITE_P256, SUITE_X25519]),
  );
  assert.equal(r.si.suite, SUITE_X25519);
  // Initiator prefers P-256 → P-256, whatever the responder's order.
  r = await run(
    both(p256A, edA, [SUITE_P256, SUITE_X25519]),
    both(edB, p256B, [SUITE_X25519, SUITE_P256]),
  );
  assert.equal(r.si.suite, SUITE_P256);
  assert.deepEqual(r.si.peerIdentity.spki, p256B.spki);
  // The responder (e.g. a bank with --suites x25519) accepts only X25519.
  r = await run(
    both(p256A, edA, [SUITE_P256, SUITE_X25519]),
    both(edB, p256B, [SUITE_X25519]),
  );
  assert.equal(r.si.suite, SUITE_X25519);
  // Default suites = the identities' suites, in their order.
  r = await run(both(edA, p256A), { identity: p256B });
  assert.equal(r.si.suite, SUITE_P256);
});

Deno.test("negotiation: no common suite → unsupported-suite at the responder (nothing sent)", async () => {
  await rejects(
    run({ identity: p256A }, { identity: edB }),
    "unsupported-suite",
  );
  await rejects(
    run({ identity: edA }, { identity: p256B, identities: [edB], suites: [1] }),
    "unsupported-suite",
  );
});

Deno.test("negotiation: a relay that strips the preferred offer from HS1 is caught (decrypt-failed)", async () => {
  const { handshake: hi, message: hs1 } = await Initiator.start({
    identity: edA,
    identities: [p256A],
    localId: ID_A,
    peerId: ID_B,
    now: T0,
    trust: anyone,
    complete: asResult,
  });
  // HS1 = ver type randomI n=2 [0002 32 eI(32)] [0001 65 eI(65)] zeros:
  // rewrite it to offer only P-256, padded like an honest HS1.
  const p256Offer = hs1.slice(35 + 35, 35 + 35 + 68);
  const stripped = new Uint8Array(hs1.length);
  stripped.set(hs1.slice(0, 34));
  stripped[34] = 1;
  stripped.set(p256Offer, 35);
  const hr = Responder.create({
    identity: p256B,
    identities: [edB],
    localId: ID_B,
    trust: anyone,
    complete: asResult,
  });
  const { send: hs2 } = await hr.receive(stripped, { now: T0, from: ID_A });
  assert.equal(hr.suite, SUITE_P256);
  await rejects(hi.receive(hs2!, T0), "decrypt-failed");
});

Deno.test("configuration: a suite without an identity of its algorithm, or two identities of one algorithm → RangeError", () => {
  // A responder whose X25519-suite "identity" is P-256 cannot be configured…
  assert.throws(
    () =>
      Responder.create({
        identity: p256B,
        suites: [SUITE_X25519],
        localId: ID_B,
        trust: anyone,
      }),
    RangeError,
  );
  // …and two identities of one algorithm are refused.
  assert.throws(
    () =>
      Responder.create({
        identity: p256B,
        identities: [p256A],
        localId: ID_B,
        trust: anyone,
      }),
    RangeError,
  );
});

Deno.test("x25519: a small-order or all-zero ephemeral in HS1 → invalid-public-key", async () => {
  const { message: hs1 } = await Initiator.start({
    identity: edA,
    localId: ID_A,
    peerId: ID_B,
    now: T0,
    trust: anyone,
    complete: asResult,
  });
  // eI sits at 38..70 (one offer: suite u16, len u8 at 35..37).
  assert.deepEqual(hs1.slice(34, 38), new Uint8Array([1, 0, 2, 32]));
  const zero = hs1.slice();
  zero.fill(0, 38, 70);
  await rejects(
    Responder.create({ identity: edB, localId: ID_B, trust: anyone })
      .receive(zero, { now: T0, from: ID_A }),
    "invalid-public-key",
  );
  const one = new Uint8Array(32);
  one[0] = 1; // u = 1: order 1 point
  const bad = hs1.slice();
  bad.set(one, 38);
  await rejects(
    Responder.create({ identity: edB, localId: ID_B, trust: anyone })
      .receive(bad, { now: T0, from: ID_A }),
    "invalid-public-key",
  );
});

Deno.test("parseSuiteList: names, order, errors", () => {
  assert.deepEqual(parseSuiteList("x25519,p256"), [SUITE_X25519, SUITE_P256]);
  assert.deepEqual(parseSuiteList(" P256 "), [SUITE_P256]);
  assert.throws(() => parseSuiteList("rsa"), RangeError);
  assert.throws(() => parseSuiteList("p256,p256"), RangeError);
  assert.throws(() => parseSuiteList(""), RangeError);
});

Deno.test("session over the x25519 suite: messages, Ed25519 chain signatures, a rekey", async () => {
  const { handshake: hi, message: hs1 } = await Initiator.start({
    identity: edA,
    localId: ID_A,
    peerId: ID_B,
    now: T0,
    trust: anyone,
    sessionOptions: { signEvery: 1, rekeyAfterMessages: 3 },
  });
  const hr = Responder.create({
    identity: edB,
    localId: ID_B,
    trust: anyone,
    sessionOptions: { signEvery: 1, rekeyAfterMessages: 3 },
  });
  const { send: hs2 } = await hr.receive(hs1, { now: T0, from: ID_A });
  const { send: hs3, session: si } = await hi.receive(hs2!, T0);
  const { session: sr } = await hr.receive(hs3, { now: T0 });
  assert.ok(si instanceof Session && sr instanceof Session);
  const got: string[] = [];
  let now = T0;
  let rekeyed = 0;
  // Deliver everything in flight both ways until quiet.
  const flush = async (toR: Uint8Array[], toI: Uint8Array[] = []) => {
    for (let round = 0; round < 20 && (toR.length || toI.length); round++) {
      const rr = await sr.receiveMany(toR.splice(0), now);
      const ri = await si.receiveMany(toI.splice(0), now);
      for (const e of [...rr.events, ...ri.events]) {
        if (e.type === "message") got.push(new TextDecoder().decode(e.body));
        if (e.type === "rekeyed") rekeyed++;
      }
      toI.push(...rr.packets);
      toR.push(...ri.packets);
    }
  };
  for (let i = 0; i < 6; i++) {
    now += 30;
    await flush(await si.send(utf8(`m${i}`), now));
    now += 30;
    await flush(await si.poll(now), await sr.poll(now));
  }
  assert.deepEqual(got, ["m0", "m1", "m2", "m3", "m4", "m5"]);
  assert.ok(rekeyed >= 2 && si.epoch >= 1, `rekeyed (epoch ${si.epoch})`);
  assert.ok(sr.stats.signaturesVerified >= 6, "Ed25519 chain signatures");
  // Both transcripts verify offline with the Ed25519 SPKIs (PROTOCOL.md
  // §2.2.6/§2.2.10: the verifier takes the algorithm from the signer's key),
  // the rekey messages included; one flipped signature bit is caught.
  for (const s of [si, sr]) {
    const json = s.transcript!.toJSON();
    const v = await verifyTranscript(json);
    assert.ok(v.signatures >= 6, `${v.signatures} signatures`);
    assert.ok(v.messages.some((m) => m.type === "rekey-init"));
    const signed = json.messages.find((m) => m.sig !== undefined)!;
    const sig = Uint8Array.fromBase64(signed.sig!, { alphabet: "base64url" });
    sig[7] ^= 1;
    signed.sig = sig.toBase64({ alphabet: "base64url", omitPadding: true });
    await assert.rejects(
      verifyTranscript(json),
      (e: unknown) => e instanceof ProtocolError && e.code === "bad-signature",
    );
  }
  // verify() follows the key: an Ed25519 signature checks out, a zero one not.
  const data = utf8("x");
  const { sign } = await import("../lib/suite.ts");
  assert.equal(
    await verify(edA.publicKey, await sign(edA.privateKey, data), data),
    true,
  );
  assert.equal(await verify(edA.publicKey, new Uint8Array(64), data), false);
});

Deno.test("Ed25519 identity files: created, reloaded (plain and passphrase-protected), algorithm checked", async () => {
  const { createIdentity, parseIdentityFile } = await import(
    "../lib/identity.ts"
  );
  const { keyAlgorithm } = await import("../lib/suite.ts");
  for (const passphrase of [undefined, "correct horse"]) {
    const { identity, json } = await createIdentity({
      algorithm: "Ed25519",
      passphrase,
      iterations: 1000,
    });
    assert.equal(JSON.parse(json).algorithm, "Ed25519");
    assert.equal(identity.spki.length, 44);
    const back = await parseIdentityFile(json, "ed.json", passphrase, {
      minIterations: 1,
    });
    assert.deepEqual(back.spki, identity.spki);
    assert.equal(keyAlgorithm(back.privateKey), "Ed25519");
    assert.equal(back.privateKey.extractable, false);
  }
  // The algorithm field must name the key's algorithm.
  const { json } = await createIdentity({ algorithm: "Ed25519" });
  const lying = JSON.stringify({
    ...JSON.parse(json),
    algorithm: "ECDSA-P256-SHA256",
  });
  await assert.rejects(
    parseIdentityFile(lying, "lying.json"),
    (e: unknown) =>
      e instanceof ProtocolError && e.code === "bad-key-file" &&
      /lying\.json/.test(e.message),
  );
});

Deno.test("key files: an Ed25519 file where a P-256 identity is expected is refused", async () => {
  const { loadOrCreateIdentity } = await import("../lib/deno/key_file.ts");
  const dir = await Deno.makeTempDir({ prefix: "suite-keys-" });
  try {
    const path = `${dir}/bank_identity_ed25519_keys.json`;
    const a = await loadOrCreateIdentity(path, { algorithm: "Ed25519" });
    assert.equal(a.created, true);
    const b = await loadOrCreateIdentity(path, { algorithm: "Ed25519" });
    assert.deepEqual(b.identity.spki, a.identity.spki);
    await assert.rejects(
      loadOrCreateIdentity(path),
      (e: unknown) => e instanceof ProtocolError && e.code === "bad-key-file",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
