import assert from "node:assert/strict";
import { ProtocolError } from "../lib/errors.ts";
import { fingerprint, formatFingerprint } from "../lib/fingerprint.ts";
import { type TranscriptJson, verifyTranscript } from "../lib/transcript.ts";
import { exchange, pair } from "./session_helpers.ts";

const enc = new TextEncoder();
const isCode = (code: string) => (e: unknown) =>
  e instanceof ProtocolError && e.code === code;

async function conversation() {
  const { a, b, fx } = await pair({ signEvery: 3 });
  let t = 0;
  for (let i = 0; i < 4; i++) {
    await exchange(a, b, await a.send(enc.encode(`alice ${i}`), t), t);
    await exchange(b, a, await b.send(enc.encode(`bob ${i}`), t), t);
    t += 10;
  }
  const midA = JSON.stringify(a.transcript!.toJSON());
  await exchange(a, b, await a.close(t), t);
  assert.ok(a.closed && b.closed);
  return { a, b, fx, midA };
}

Deno.test("both sides' transcripts verify offline and say who said what", async () => {
  const { a, b, fx } = await conversation();
  for (const s of [a, b]) {
    const json = JSON.stringify(s.transcript!.toJSON());
    const v = await verifyTranscript(json);
    assert.equal(
      v.fingerprints.initiator,
      formatFingerprint(await fingerprint(fx.idI.spki)),
    );
    assert.equal(
      v.fingerprints.responder,
      formatFingerprint(await fingerprint(fx.idR.spki)),
    );
    const texts = v.messages.filter((m) => m.type === "data").map((m) =>
      `${m.role}: ${m.text}`
    );
    assert.deepEqual(texts, [
      ...[0, 1, 2, 3].map((i) => `initiator: alice ${i}`),
      ...[0, 1, 2, 3].map((i) => `responder: bob ${i}`),
    ]);
    assert.deepEqual(
      v.uncovered,
      { initiator: 0, responder: 0 },
      "CLOSE is signed, so all is covered",
    );
    assert.ok(
      v.messages.every((m) =>
        m.coveredBy !== undefined && m.coveredBy >= m.seq
      ),
    );
    // signEvery 3: seq 3 and the CLOSE (seq 5) on each side.
    assert.equal(v.signatures, 4);
    assert.equal(
      v.messages.find((m) => m.role === "initiator" && m.seq === 1n)!.coveredBy,
      3n,
    );
  }
});

Deno.test("an uncovered tail is reported, not hidden", async () => {
  const { midA } = await conversation();
  const v = await verifyTranscript(midA);
  assert.deepEqual(
    v.uncovered,
    { initiator: 1, responder: 1 },
    "message 4 each way awaits its signature",
  );
  assert.equal(
    v.messages.find((m) => m.role === "responder" && m.seq === 4n)!.coveredBy,
    undefined,
  );
});

Deno.test("tampering is detected with a clear error", async () => {
  const { b } = await conversation();
  const original: TranscriptJson = b.transcript!.toJSON();
  const copy = () => structuredClone(original);
  const target = (t: TranscriptJson) =>
    t.messages.find((m) => m.dir === "i2r" && m.seq === "2")!;

  const body = copy();
  target(body).body = enc.encode("alice 9").toBase64({
    alphabet: "base64url",
    omitPadding: true,
  });
  await assert.rejects(
    verifyTranscript(body),
    (e) =>
      isCode("chain-mismatch")(e) &&
      /initiator's chain head at seq 3/.test(String(e)),
  );

  const noHead = copy();
  for (const m of noHead.messages) delete m.head;
  target(noHead).body = enc.encode("alice 9").toBase64({
    alphabet: "base64url",
    omitPadding: true,
  });
  await assert.rejects(verifyTranscript(noHead), isCode("bad-signature"));

  const sig = copy();
  const signed = sig.messages.find((m) => m.dir === "r2i" && m.sig)!;
  const raw = Uint8Array.fromBase64(signed.sig!, { alphabet: "base64url" });
  raw[10] ^= 1;
  signed.sig = raw.toBase64({ alphabet: "base64url", omitPadding: true });
  await assert.rejects(verifyTranscript(sig), isCode("bad-signature"));

  const dropped = copy();
  dropped.messages.splice(dropped.messages.indexOf(target(dropped)), 1);
  await assert.rejects(
    verifyTranscript(dropped),
    (e) => isCode("malformed")(e) && /gap/.test(String(e)),
  );

  const swapped = copy();
  swapped.initiatorSpki = original.responderSpki;
  swapped.responderSpki = original.initiatorSpki;
  await assert.rejects(verifyTranscript(swapped), isCode("bad-signature"));

  await assert.rejects(verifyTranscript("{"), isCode("malformed"));
  await assert.rejects(
    verifyTranscript({ ...copy(), format: "other" }),
    isCode("malformed"),
  );
});
