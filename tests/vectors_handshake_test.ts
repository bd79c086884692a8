/**
 * Checks tests/vectors/good_handshake.json (suite 0x0001),
 * good_handshake_x25519.json (suite 0x0002) and fail_handshake_*.json: the
 * reference schedule (tests/vectors/generate.ts, written from the spec with
 * lib/suite.ts only) reproduces every deterministic value and verifies the
 * recorded run; lib/handshake.ts reproduces HS1 and the HS2 prefix exactly
 * (and, Ed25519 being deterministic, the whole X25519 run), accepts the
 * recorded HS2, and fails every fail_* vector with its error code. An
 * independent Python computation (tests/reference/handshake.py, `cryptography`)
 * recomputes the good vectors from PROTOCOL.md. Regenerate the vectors with
 * the command in generate.ts.
 */

import assert from "node:assert/strict";
import { type Bytes, concat, utf8 } from "../lib/bytes.ts";
import { ProtocolError } from "../lib/errors.ts";
import { Initiator, Responder } from "../lib/handshake.ts";
import type { SecretKey, SessionPrimitives } from "../lib/primitives.ts";
import { nodePrimitives } from "../lib/deno/node_primitives.ts";
import type { HandshakeResult } from "../lib/handshake_result.ts";
import {
  deriveLabel,
  importIdentityPublic,
  importMacKey,
  importSecret,
  macVerify,
  SUITE_X25519,
  SUITES,
  verify,
} from "../lib/suite.ts";
import {
  type FailVector,
  type GoodVector,
  importParty,
  INITIATOR_SIGNATURE_CONTEXT,
  openProof,
  type Party,
  pinnedTrust,
  referenceHs1,
  referenceKeys,
  referenceMaster,
  RESPONDER_SIGNATURE_CONTEXT,
} from "./vectors/generate.ts";
import { runReference } from "./helpers/python_reference.ts";

const dir = new URL("./vectors/", import.meta.url);
const GOOD_NAMES = ["good_handshake.json", "good_handshake_x25519.json"];
const failNames = [...Deno.readDirSync(dir)]
  .map((e) => e.name)
  .filter((n) => n.startsWith("fail_handshake_") && n.endsWith(".json"))
  .sort();

const h = (s: string) => Uint8Array.fromHex(s);
const asResult = (r: HandshakeResult) => r;
const EMPTY = new Uint8Array(0);

interface Loaded {
  name: string;
  v: GoodVector;
  I: Party;
  R: Party;
  O?: Party;
  initiatorId: Bytes;
  responderId: Bytes;
  prefixLength: number;
}

const loaded = new Map<string, Loaded>();
for (const name of GOOD_NAMES) {
  const v: GoodVector = JSON.parse(
    await Deno.readTextFile(new URL(name, dir)),
  );
  loaded.set(name, {
    name,
    v,
    I: await importParty(v.initiator),
    R: await importParty(v.responder),
    O: v.initiatorOther ? await importParty(v.initiatorOther) : undefined,
    initiatorId: h(v.initiatorId),
    responderId: h(v.responderId),
    prefixLength: 4 + SUITES.get(v.suite)!.pointLength + 32,
  });
}

/** Each test below runs with the lib default (WebCrypto) and the Deno drivers' node:crypto handshake provider. */
const PROVIDERS: [string, SessionPrimitives | undefined][] = [
  ["webcrypto", undefined],
  ["node", nodePrimitives],
];

function startInitiator(
  g: Loaded,
  trust = pinnedTrust(g.R.identity.spki),
  now = 0,
  primitives?: SessionPrimitives,
) {
  return Initiator.start({
    sessionOptions: primitives && { primitives },
    identity: g.I.identity,
    identities: g.O ? [g.O.identity] : [],
    suites: g.v.initiatorSuites ?? [g.v.suite],
    localId: g.initiatorId,
    peerId: g.responderId,
    now,
    trust,
    complete: asResult,
    ephemeral: g.I.ephemeral,
    ephemerals: g.O ? [g.O.ephemeral] : [],
    random: g.I.random,
  });
}

function createResponder(
  g: Loaded,
  trust = pinnedTrust(g.I.identity.spki),
  primitives?: SessionPrimitives,
) {
  return Responder.create({
    sessionOptions: primitives && { primitives },
    identity: g.R.identity,
    suites: g.v.responderSuites ?? [g.v.suite],
    localId: g.responderId,
    trust,
    complete: asResult,
    ephemeral: g.R.ephemeral,
    random: g.R.random,
  });
}

async function check(master: SecretKey, sessionHash: Bytes): Promise<string> {
  return (await deriveLabel(master, sessionHash, "vector check", EMPTY, 32))
    .toHex();
}

for (const g of loaded.values()) {
  const D = g.v.deterministic;
  Deno.test(`vector ${g.name}: reference schedule reproduces every deterministic value`, async () => {
    assert.equal(g.v.version, 1);
    assert.equal(
      g.I.ephemeral.publicRaw.toHex(),
      g.v.initiator.ephemeralPublic,
    );
    assert.equal(
      g.R.ephemeral.publicRaw.toHex(),
      g.v.responder.ephemeralPublic,
    );
    const hs1 = referenceHs1(g.I.random, [
      { suite: g.v.suite, ephemeral: g.I.ephemeral.publicRaw },
      ...(g.O ? [{ suite: 1, ephemeral: g.O.ephemeral.publicRaw }] : []),
    ]);
    const prefix = concat(
      new Uint8Array([1, 2, 0, g.v.suite]),
      g.R.ephemeral.publicRaw,
      g.R.random,
    );
    assert.equal(hs1.toHex(), D.hs1);
    assert.equal(hs1.length + 22, 256, "HS1 fills the 256-byte bucket");
    assert.equal(prefix.toHex(), D.hs2Prefix);
    for (
      const [own, peer] of [
        [g.I.ephemeral.privateKey, g.R.ephemeral.publicRaw],
        [g.R.ephemeral.privateKey, g.I.ephemeral.publicRaw],
      ] as const
    ) {
      const k = await referenceKeys(
        g.initiatorId,
        g.responderId,
        hs1,
        prefix,
        own,
        peer,
        g.v.suite,
      );
      assert.equal(k.prologue.toHex(), D.prologue);
      assert.equal(k.sharedSecret.toHex(), D.sharedSecret);
      assert.equal(k.thHello.toHex(), D.thHello);
      assert.equal(k.kHsR.toHex(), D.kHsR);
      assert.equal(k.kHsI.toHex(), D.kHsI);
      assert.equal(k.finR.toHex(), D.finR);
      assert.equal(k.finI.toHex(), D.finI);
      assert.equal((await k.t(hs1, prefix, g.R.identity.spki)).toHex(), D.thR);
    }
    assert.equal(
      h(D.prologue).toHex(),
      concat(
        utf8(`e2e.v1 handshake\0${g.v.suiteName}\0`),
        g.initiatorId,
        g.responderId,
      ).toHex(),
    );
  });

  Deno.test(`vector ${g.name}: recorded HS2/HS3 verify under the expected keys`, async () => {
    const hs1 = h(D.hs1), hs2 = h(g.v.recorded.hs2), hs3 = h(g.v.recorded.hs3);
    const prefix = h(D.hs2Prefix);
    assert.equal(hs2.slice(0, g.prefixLength).toHex(), D.hs2Prefix);
    const k = await referenceKeys(
      g.initiatorId,
      g.responderId,
      hs1,
      prefix,
      g.I.ephemeral.privateKey,
      g.R.ephemeral.publicRaw,
      g.v.suite,
    );
    const p2 = await openProof(h(D.kHsR), hs2.slice(g.prefixLength), prefix);
    assert.deepEqual(p2.spki, g.R.identity.spki);
    assert.equal(p2.sig.toHex(), g.v.recorded.sigR);
    assert.equal(p2.mac.toHex(), g.v.recorded.macR);
    assert.ok(
      await verify(
        await importIdentityPublic(p2.spki),
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
    assert.deepEqual(hs3.slice(0, 2), new Uint8Array([1, 3]));
    const p3 = await openProof(h(D.kHsI), hs3.slice(2), hs3.slice(0, 2));
    assert.deepEqual(p3.spki, g.I.identity.spki);
    assert.equal(p3.sig.toHex(), g.v.recorded.sigI);
    assert.equal(p3.mac.toHex(), g.v.recorded.macI);
    const thI = await k.t(hs1, hs2, p3.spki);
    assert.equal(thI.toHex(), g.v.recorded.thI);
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
    assert.equal(sessionHash.toHex(), g.v.recorded.sessionHash);
    assert.equal(
      (await referenceMaster(k.hs, sessionHash)).toHex(),
      g.v.recorded.master,
    );
  });

  for (const [pname, primitives] of PROVIDERS) {
    Deno.test(`vector ${g.name} (${pname}): lib reproduces HS1 and the HS2 prefix, accepts the recorded HS2`, async () => {
      const { handshake: hi, message: hs1 } = await startInitiator(
        g,
        undefined,
        0,
        primitives,
      );
      assert.equal(hs1.toHex(), D.hs1);
      const { send: hs3, session } = await hi.receive(h(g.v.recorded.hs2), 0);
      const p3 = await openProof(h(D.kHsI), hs3.slice(2), hs3.slice(0, 2));
      assert.deepEqual(p3.spki, g.I.identity.spki);
      const k = await referenceKeys(
        g.initiatorId,
        g.responderId,
        hs1,
        h(D.hs2Prefix),
        g.I.ephemeral.privateKey,
        g.R.ephemeral.publicRaw,
        g.v.suite,
      );
      const sessionHash = await k.t(hs1, h(g.v.recorded.hs2), hs3);
      assert.deepEqual(session.sessionHash, sessionHash);
      const masterRef = await importSecret(
        await referenceMaster(k.hs, sessionHash),
      );
      assert.equal(
        await check(session.master, session.sessionHash),
        await check(masterRef, sessionHash),
      );
      assert.deepEqual(session.peerIdentity.spki, g.R.identity.spki);
      assert.equal(session.suite, g.v.suite);

      const { send: hs2 } = await createResponder(g, undefined, primitives)
        .receive(h(D.hs1), {
          now: 0,
          from: g.initiatorId,
        });
      assert.ok(hs2);
      assert.equal(hs2.slice(0, g.prefixLength).toHex(), D.hs2Prefix);
      if (g.v.suite === SUITE_X25519) {
        // Ed25519 is deterministic: the whole run is reproduced.
        assert.equal(hs2.toHex(), g.v.recorded.hs2);
        assert.equal(hs3.toHex(), g.v.recorded.hs3);
      }
    });
  }
}

for (const [pname, primitives] of PROVIDERS) {
  Deno.test(`vector fail_handshake_* (${pname}): each fails with its error code`, async (t) => {
    assert.ok(failNames.length >= 20, `only ${failNames.length} fail vectors`);
    for (const name of failNames) {
      await t.step(name, async () => {
        const v: FailVector = JSON.parse(
          await Deno.readTextFile(new URL(name, dir)),
        );
        const g = loaded.get(v.base);
        assert.ok(g, `unknown base ${v.base}`);
        assert.equal(v.steps.at(-1)!.expect, v.expectedError);
        const peerSpki = v.pinnedPeerSpki
          ? h(v.pinnedPeerSpki)
          : v.role === "initiator"
          ? g.R.identity.spki
          : g.I.identity.spki;
        const trust = pinnedTrust(peerSpki);
        let deliver: (step: FailVector["steps"][number]) => Promise<unknown>;
        if (v.role === "initiator") {
          const { handshake, message } = await startInitiator(
            g,
            trust,
            v.startNow ?? 0,
            primitives,
          );
          assert.equal(message.toHex(), g.v.deterministic.hs1);
          deliver = (s) => handshake.receive(h(s.message), s.now);
        } else {
          const responder = createResponder(g, trust, primitives);
          deliver = (s) =>
            responder.receive(h(s.message), {
              now: s.now,
              from: h(s.from ?? g.v.initiatorId),
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
}

Deno.test("vectors: an independent Python (cryptography) computation from PROTOCOL.md §2.1 agrees", async () => {
  const ref = await runReference("handshake.py", dir.pathname);
  for (const g of loaded.values()) {
    const r = ref.good[g.name];
    const D = g.v.deterministic as Record<string, string>;
    for (const k of Object.keys(D)) assert.equal(r[k], D[k], `${g.name} ${k}`);
    for (const k of ["thI", "sessionHash", "master"] as const) {
      assert.equal(r[k], g.v.recorded[k], `${g.name} ${k}`);
    }
    assert.equal(r.signaturesVerified, true);
    if (g.v.suite === SUITE_X25519) assert.equal(r.reproduced, true);
  }
  const checked = Object.entries(ref.fail as Record<string, string>);
  assert.ok(checked.length >= 10, `${checked.length} HS1 fail vectors`);
  for (const [name, code] of checked) {
    const v: FailVector = JSON.parse(
      await Deno.readTextFile(new URL(name, dir)),
    );
    assert.equal(code, v.steps[0].expect, name);
  }
});
