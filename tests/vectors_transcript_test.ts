/**
 * Checker of the conversation-transcript vectors (tests/vectors/
 * good_transcript_*.json, fail_transcript_*.json; PROTOCOL.md §2.2.10).
 * First a reference written from the spec with `crypto.subtle` only (labels
 * typed out, nothing from lib/): it recomputes every chain and verifies every
 * signature of the vectors whose records are intact. Then lib's
 * `verifyConversation` must give each vector's expected verdict.
 */
import assert from "node:assert/strict";
import { verifyConversation } from "../lib/conversation_transcript.ts";
import { ProtocolError } from "../lib/errors.ts";
import { runReference } from "./helpers/python_reference.ts";

interface Vector {
  description: string;
  expect: { verdict: string; error?: string; missing?: number };
  file: string;
}

const DIR = new URL("./vectors/", import.meta.url).pathname;
const names = [...Deno.readDirSync(DIR)]
  .map((e) => e.name)
  .filter((n) => /^(good|fail)_transcript_.*\.json$/.test(n))
  .sort();
const load = (n: string): Vector =>
  JSON.parse(Deno.readTextFileSync(`${DIR}${n}`));

// ── reference, from PROTOCOL.md §2.2.6 and §2.2.10 ──────────────────────────
const te = { encode: (s: string) => new TextEncoder().encode(s) };
const b64 = (s: string): Uint8Array<ArrayBuffer> =>
  Uint8Array.fromBase64(s, { alphabet: "base64url" }) as Uint8Array<
    ArrayBuffer
  >;
const cat = (...parts: Uint8Array[]): Uint8Array<ArrayBuffer> => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};
const u64 = (n: bigint) => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, n);
  return b;
};
const u32 = (n: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
};
const sha = async (b: Uint8Array<ArrayBuffer>) =>
  new Uint8Array(await crypto.subtle.digest("SHA-256", b));
const TYPES: Record<string, number> = {
  "data": 1,
  "rekey-init": 4,
  "rekey-resp": 5,
  "close": 6,
  "checkpoint": 7,
};

/** Verifies every chain and signature of `file` per the spec; returns the signatures checked. */
async function reference(file: string): Promise<number> {
  const records = file.split("\n").filter((l) => l !== "").map((l) =>
    JSON.parse(l)
  );
  assert.equal(records[0].record, "conversation");
  assert.equal(records[0].format, "e2e.v1 conversation transcript");
  let signatures = 0;
  for (const s of records.filter((r) => r.record === "session")) {
    const sessionHash = b64(s.sessionHash);
    const spki = {
      initiator: b64(s.initiatorSpki),
      responder: b64(s.responderSpki),
    };
    const fp = {
      initiator: await sha(spki.initiator),
      responder: await sha(spki.responder),
    };
    for (
      const [role, dir] of [["initiator", "i2r"], ["responder", "r2i"]] as const
    ) {
      const peer = role === "initiator" ? "responder" : "initiator";
      const key = await crypto.subtle.importKey(
        "spki",
        spki[role],
        { name: "ECDSA", namedCurve: "P-256" },
        false,
        ["verify"],
      );
      let head = await sha(
        cat(te.encode("e2e.v1 chain\0"), sessionHash, te.encode(role)),
      );
      let expected = 1n;
      for (
        const m of records.filter((r) =>
          r.record === "message" && r.session === s.session && r.dir === dir
        )
      ) {
        const seq = BigInt(m.seq);
        assert.equal(seq, expected++, "seqs 1, 2, … without gaps");
        const body = b64(m.body);
        head = await sha(
          cat(
            head,
            u64(seq),
            Uint8Array.of(TYPES[m.type]),
            u32(body.length),
            body,
          ),
        );
        if (m.sig === undefined) continue;
        if (m.head !== undefined) assert.deepEqual(b64(m.head), head);
        const input = cat(
          te.encode("e2e.v1 chain signature\0"),
          te.encode(role),
          fp[role],
          fp[peer],
          sessionHash,
          u64(seq),
          head,
        );
        assert.ok(
          await crypto.subtle.verify(
            { name: "ECDSA", hash: "SHA-256" },
            key,
            b64(m.sig),
            input,
          ),
          `${role} signature at seq ${seq}`,
        );
        signatures++;
      }
    }
  }
  return signatures;
}

Deno.test("transcript vectors: the set is there", () => {
  assert.ok(names.includes("good_transcript_complete.json"));
  assert.ok(names.includes("good_transcript_two_sessions.json"));
  assert.ok(names.includes("fail_transcript_session_deleted.json"));
  assert.ok(names.filter((n) => n.startsWith("fail_")).length >= 10);
});

Deno.test("transcript vectors: the reference (crypto.subtle only) verifies every intact file and rejects the altered ones", async () => {
  for (const n of names) {
    const v = load(n);
    const altered = v.expect.error === "bad-signature" ||
      v.expect.error === "chain-mismatch" || /seq_gap/.test(n);
    if (altered) {
      await assert.rejects(reference(v.file), assert.AssertionError, n);
    } else if (!/torn/.test(n)) {
      assert.ok((await reference(v.file)) > 0, n);
    }
  }
});

Deno.test("transcript vectors: verifyConversation gives each vector's verdict", async () => {
  for (const n of names) {
    const v = load(n);
    if (v.expect.verdict === "INVALID") {
      await assert.rejects(
        verifyConversation(v.file),
        (e: unknown) => e instanceof ProtocolError && e.code === v.expect.error,
        n,
      );
      continue;
    }
    const r = await verifyConversation(v.file);
    assert.equal(r.verdict, v.expect.verdict, `${n}: ${r.missing.join("; ")}`);
    assert.equal(
      r.missing.length,
      v.expect.missing,
      `${n}: ${r.missing.join("; ")}`,
    );
  }
});

Deno.test("transcript vectors: an independent Python (cryptography) verifier written from PROTOCOL.md §2.2.10 agrees on every verdict", async () => {
  const ref = await runReference("transcripts.py", DIR);
  assert.deepEqual(Object.keys(ref).sort(), names);
  for (const n of names) {
    const v = load(n);
    assert.equal(ref[n].verdict, v.expect.verdict, n);
    assert.equal(ref[n].error, v.expect.error, n);
    if (v.expect.missing !== undefined) {
      assert.equal(
        ref[n].missing.length,
        v.expect.missing,
        `${n}: ${ref[n].missing}`,
      );
    }
  }
});
