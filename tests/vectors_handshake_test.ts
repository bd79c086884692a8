/**
 * Checks tests/vectors/good_handshake.json and fail_handshake_*.json:
 * the reference schedule (tests/vectors/generate.ts, written from the spec
 * with lib/suite.ts only) reproduces every deterministic value and verifies
 * the recorded run; lib/handshake.ts reproduces HS1 and the HS2 prefix
 * exactly, accepts the recorded HS2, and fails every fail_* vector with its
 * error code. Regenerate the vectors with the command in generate.ts.
 */

import assert from "node:assert/strict";
import { type Bytes, concat, utf8 } from "../lib/bytes.ts";
import { ProtocolError } from "../lib/errors.ts";
import { Initiator, Responder } from "../lib/handshake.ts";
import type { HandshakeResult } from "../lib/handshake_result.ts";
import {
  deriveLabel,
  importIdentityPublic,
  importMacKey,
  importSecret,
  macVerify,
  verify,
} from "../lib/suite.ts";
import {
  type FailVector,
  type GoodVector,
  importParty,
  INITIATOR_SIGNATURE_CONTEXT,
  openProof,
  pinnedTrust,
  referenceKeys,
  referenceMaster,
  RESPONDER_SIGNATURE_CONTEXT,
} from "./vectors/generate.ts";

const dir = new URL("./vectors/", import.meta.url);
const good: GoodVector = JSON.parse(
  await Deno.readTextFile(new URL("good_handshake.json", dir)),
);
const failNames = [...Deno.readDirSync(dir)]
  .map((e) => e.name)
  .filter((n) => n.startsWith("fail_handshake_") && n.endsWith(".json"))
  .sort();

const h = (s: string) => Uint8Array.fromHex(s);
const I = await importParty(good.initiator);
const R = await importParty(good.responder);
const initiatorId = h(good.initiatorId);
const responderId = h(good.responderId);
const D = good.deterministic;
const asResult = (r: HandshakeResult) => r;
const EMPTY = new Uint8Array(0);

async function check(master: CryptoKey, sessionHash: Bytes): Promise<string> {
  return (await deriveLabel(master, sessionHash, "vector check", EMPTY, 32))
    .toHex();
}

Deno.test("vector good_handshake: reference schedule reproduces every deterministic value", async () => {
  assert.equal(good.version, 1);
  assert.equal(good.suite, 1);
  assert.equal(I.ephemeral.publicRaw.toHex(), good.initiator.ephemeralPublic);
  assert.equal(R.ephemeral.publicRaw.toHex(), good.responder.ephemeralPublic);
  const hs1 = concat(
    new Uint8Array([1, 1, 0, 1]),
    I.ephemeral.publicRaw,
    I.random,
  );
  const prefix = concat(
    new Uint8Array([1, 2, 0, 1]),
    R.ephemeral.publicRaw,
    R.random,
  );
  assert.equal(hs1.toHex(), D.hs1);
  assert.equal(prefix.toHex(), D.hs2Prefix);
  // Both sides' ECDH give the same schedule.
  for (
    const [own, peer] of [
      [I.ephemeral.privateKey, R.ephemeral.publicRaw],
      [R.ephemeral.privateKey, I.ephemeral.publicRaw],
    ] as const
  ) {
    const k = await referenceKeys(
      initiatorId,
      responderId,
      hs1,
      prefix,
      own,
      peer,
    );
    assert.equal(k.prologue.toHex(), D.prologue);
    assert.equal(k.sharedSecret.toHex(), D.sharedSecret);
    assert.equal(k.thHello.toHex(), D.thHello);
    assert.equal(k.kHsR.toHex(), D.kHsR);
    assert.equal(k.kHsI.toHex(), D.kHsI);
    assert.equal(k.finR.toHex(), D.finR);
    assert.equal(k.finI.toHex(), D.finI);
    assert.equal(
      (await k.t(hs1, prefix, R.identity.spki)).toHex(),
      D.thR,
    );
  }
  // The prologue spelled out.
  assert.equal(
    h(D.prologue).toHex(),
    concat(
      utf8("e2e.v1 handshake\0P256-ECDSA-AES256GCM-SHA256\0"),
      initiatorId,
      responderId,
    ).toHex(),
  );
});

Deno.test("vector good_handshake: recorded HS2/HS3 verify under the expected keys", async () => {
  const hs1 = h(D.hs1), hs2 = h(good.recorded.hs2), hs3 = h(good.recorded.hs3);
  const prefix = h(D.hs2Prefix);
  assert.equal(hs2.slice(0, 101).toHex(), D.hs2Prefix);
  const k = await referenceKeys(
    initiatorId,
    responderId,
    hs1,
    prefix,
    I.ephemeral.privateKey,
    R.ephemeral.publicRaw,
  );
  // HS2: spki_R, sig_R over th_r, mac_R.
  const p2 = await openProof(h(D.kHsR), hs2.slice(101), prefix);
  assert.deepEqual(p2.spki, R.identity.spki);
  assert.equal(p2.sig.toHex(), good.recorded.sigR);
  assert.equal(p2.mac.toHex(), good.recorded.macR);
  const pubR = await importIdentityPublic(p2.spki);
  assert.ok(
    await verify(
      pubR,
      p2.sig,
      concat(utf8(RESPONDER_SIGNATURE_CONTEXT), h(D.thR)),
    ),
  );
  assert.ok(
    await macVerify(
      await importMacKey(h(D.finR)),
      p2.mac,
      await k.t(hs1, prefix, p2.spki, p2.sig),
    ),
  );
  // HS3: spki_I, sig_I over th_i, mac_I.
  assert.deepEqual(hs3.slice(0, 2), new Uint8Array([1, 3]));
  const p3 = await openProof(h(D.kHsI), hs3.slice(2), hs3.slice(0, 2));
  assert.deepEqual(p3.spki, I.identity.spki);
  assert.equal(p3.sig.toHex(), good.recorded.sigI);
  assert.equal(p3.mac.toHex(), good.recorded.macI);
  const thI = await k.t(hs1, hs2, p3.spki);
  assert.equal(thI.toHex(), good.recorded.thI);
  assert.ok(
    await verify(
      await importIdentityPublic(p3.spki),
      p3.sig,
      concat(utf8(INITIATOR_SIGNATURE_CONTEXT), thI),
    ),
  );
  assert.ok(
    await macVerify(
      await importMacKey(h(D.finI)),
      p3.mac,
      await k.t(hs1, hs2, p3.spki, p3.sig),
    ),
  );
  const sessionHash = await k.t(hs1, hs2, hs3);
  assert.equal(sessionHash.toHex(), good.recorded.sessionHash);
  assert.equal(
    (await referenceMaster(k.hs, sessionHash)).toHex(),
    good.recorded.master,
  );
});

Deno.test("vector good_handshake: lib reproduces HS1 and the HS2 prefix, accepts the recorded HS2", async () => {
  const { handshake: hi, message: hs1 } = await Initiator.start({
    identity: I.identity,
    localId: initiatorId,
    peerId: responderId,
    now: 0,
    trust: pinnedTrust(R.identity.spki),
    complete: asResult,
    ephemeral: I.ephemeral,
    random: I.random,
  });
  assert.equal(hs1.toHex(), D.hs1);
  const { send: hs3, session } = await hi.receive(h(good.recorded.hs2), 0);
  // Our HS3 is sealed under the vector's k_hs_i; the session hash and master
  // follow the reference schedule over (HS1, recorded HS2, our HS3).
  const p3 = await openProof(h(D.kHsI), hs3.slice(2), hs3.slice(0, 2));
  assert.deepEqual(p3.spki, I.identity.spki);
  const k = await referenceKeys(
    initiatorId,
    responderId,
    hs1,
    h(D.hs2Prefix),
    I.ephemeral.privateKey,
    R.ephemeral.publicRaw,
  );
  const sessionHash = await k.t(hs1, h(good.recorded.hs2), hs3);
  assert.deepEqual(session.sessionHash, sessionHash);
  const masterRef = await importSecret(
    await referenceMaster(k.hs, sessionHash),
  );
  assert.equal(
    await check(session.master, session.sessionHash),
    await check(masterRef, sessionHash),
  );
  assert.deepEqual(session.peerIdentity.spki, R.identity.spki);

  const hr = Responder.create({
    identity: R.identity,
    localId: responderId,
    trust: pinnedTrust(I.identity.spki),
    complete: asResult,
    ephemeral: R.ephemeral,
    random: R.random,
  });
  const { send: hs2 } = await hr.receive(h(D.hs1), {
    now: 0,
    from: initiatorId,
  });
  assert.ok(hs2);
  assert.equal(hs2.slice(0, 101).toHex(), D.hs2Prefix);
  const p2 = await openProof(h(D.kHsR), hs2.slice(101), hs2.slice(0, 101));
  assert.deepEqual(p2.spki, R.identity.spki);
  assert.ok(
    await verify(
      R.identity.publicKey,
      p2.sig,
      concat(utf8(RESPONDER_SIGNATURE_CONTEXT), h(D.thR)),
    ),
  );
});

Deno.test("vector fail_handshake_*: each fails with its error code", async (t) => {
  assert.ok(failNames.length >= 10, `only ${failNames.length} fail vectors`);
  for (const name of failNames) {
    await t.step(name, async () => {
      const v: FailVector = JSON.parse(
        await Deno.readTextFile(new URL(name, dir)),
      );
      assert.equal(v.base, "good_handshake.json");
      assert.equal(v.steps.at(-1)!.expect, v.expectedError);
      const peerSpki = v.pinnedPeerSpki
        ? h(v.pinnedPeerSpki)
        : v.role === "initiator"
        ? R.identity.spki
        : I.identity.spki;
      const trust = pinnedTrust(peerSpki);
      let deliver: (step: FailVector["steps"][number]) => Promise<unknown>;
      if (v.role === "initiator") {
        const { handshake, message } = await Initiator.start({
          identity: I.identity,
          localId: initiatorId,
          peerId: responderId,
          now: v.startNow ?? 0,
          trust,
          complete: asResult,
          ephemeral: I.ephemeral,
          random: I.random,
        });
        assert.equal(message.toHex(), D.hs1);
        deliver = (s) => handshake.receive(h(s.message), s.now);
      } else {
        const responder = Responder.create({
          identity: R.identity,
          localId: responderId,
          trust,
          complete: asResult,
          ephemeral: R.ephemeral,
          random: R.random,
        });
        deliver = (s) =>
          responder.receive(h(s.message), {
            now: s.now,
            from: h(s.from ?? good.initiatorId),
          });
      }
      for (const [i, s] of v.steps.entries()) {
        if (s.expect === "ok") {
          await deliver(s);
          continue;
        }
        assert.equal(i, v.steps.length - 1, "only the last step may fail");
        await assert.rejects(deliver(s), (e: unknown) => {
          assert.ok(e instanceof ProtocolError, String(e));
          assert.equal(e.code, s.expect, e.message);
          return true;
        });
      }
    });
  }
});
