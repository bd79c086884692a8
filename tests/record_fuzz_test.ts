/**
 * Seeded fuzzing of the inner plaintext decoder (coalesced records
 * included): whatever an authenticated peer puts inside a record, decoding
 * either yields messages that re-encode to exactly the same bytes (the
 * format is canonical) or throws ProtocolError `malformed` — never another
 * exception. A Session fed such records delivers or fails with `malformed`,
 * and never delivers from a record it refused.
 */

import assert from "node:assert/strict";
import type { Bytes } from "../lib/bytes.ts";
import { BUCKET_OVERHEAD, MAX_MESSAGES_PER_RECORD } from "../lib/constants.ts";
import { ProtocolError } from "../lib/errors.ts";
import {
  decodeInnerAll,
  encodeInnerMany,
  type InnerMessage,
  InnerType,
} from "../lib/record.ts";
import { Session } from "../lib/session.ts";
import { FakeInitiator, fixture, prng } from "./session_helpers.ts";

/** Deterministic small integers from a byte source. */
function ints(seed: number) {
  const bytes = prng(seed);
  return (below: number) => {
    const b = bytes(4);
    return ((b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3]) >>> 0) % below;
  };
}

/** A plausible plaintext: valid messages, then one random mutation (or none). */
function candidate(seed: number, firstSeq?: bigint): Bytes {
  const int = ints(seed);
  const bytes = prng(seed ^ 0x5bd1e995);
  const n = 1 + int(int(4) === 0 ? MAX_MESSAGES_PER_RECORD + 2 : 4);
  const type = int(5) === 0 ? 1 + int(7) : InnerType.DATA;
  const msgs: InnerMessage[] = [];
  let seq = firstSeq ?? BigInt(1 + int(1000));
  for (let i = 0; i < Math.min(n, MAX_MESSAGES_PER_RECORD); i++) {
    const m: InnerMessage = {
      type: n === 1 ? type : InnerType.DATA,
      seq: type === InnerType.DUMMY || type === InnerType.ACK ? 0n : seq++,
      body: bytes(int(3) === 0 ? int(600) : int(40)),
    };
    if (int(4) === 0 && m.seq !== 0n) m.signature = bytes(64);
    msgs.push(m);
  }
  let pt: Bytes;
  try {
    pt = encodeInnerMany(msgs);
  } catch {
    pt = bytes(256 - BUCKET_OVERHEAD);
  }
  switch (int(6)) {
    case 0: // a random byte changed
      pt[int(pt.length)] ^= 1 + int(255);
      break;
    case 1: // a length field set to something else
      pt[10 + int(4)] = int(256);
      break;
    case 2: // a byte of the padding or of a later message
      pt[pt.length - 1 - int(Math.min(pt.length, 300))] = 1 + int(8);
      break;
    case 3: // random bytes of a bucket length
      pt = bytes(pt.length);
      break;
    default: // unchanged
  }
  return pt;
}

Deno.test("fuzz: decodeInnerAll is canonical or throws malformed (20,000 seeded plaintexts)", () => {
  let decoded = 0;
  let refused = 0;
  for (let seed = 1; seed <= 20_000; seed++) {
    const pt = candidate(seed);
    let msgs: InnerMessage[];
    try {
      msgs = decodeInnerAll(pt);
    } catch (e) {
      assert.ok(
        e instanceof ProtocolError && e.code === "malformed",
        `seed ${seed}: ${e}`,
      );
      refused++;
      continue;
    }
    decoded++;
    assert.ok(msgs.length >= 1 && msgs.length <= MAX_MESSAGES_PER_RECORD);
    assert.deepEqual(encodeInnerMany(msgs), pt, `seed ${seed}: not canonical`);
  }
  // Both outcomes are exercised, not just one.
  assert.ok(decoded > 2000, `${decoded} decoded`);
  assert.ok(refused > 2000, `${refused} refused`);
});

Deno.test("fuzz: a Session fed authenticated records with fuzzed plaintexts delivers or fails with malformed", async () => {
  const fx = await fixture();
  let failed = 0;
  let delivered = 0;
  for (let seed = 1; seed <= 300; seed++) {
    const b = await Session.fromHandshake(fx.resultR, {
      keepTranscript: false,
    });
    const peer = await FakeInitiator.create(fx);
    const pt = candidate(seed * 7919, 1n);
    let ok = true;
    try {
      decodeInnerAll(pt);
    } catch {
      ok = false;
    }
    try {
      const r = await b.receive(await peer.sealPlaintext(pt), 0);
      assert.ok(ok, `seed ${seed}: a refused plaintext was accepted`);
      delivered += r.events.filter((e) => e.type === "message").length;
    } catch (e) {
      assert.ok(e instanceof ProtocolError, `seed ${seed}: ${e}`);
      if (!ok) {
        assert.equal(e.code, "malformed", `seed ${seed}`);
      }
      assert.equal(b.failed?.code, e.code);
      failed++;
    }
  }
  assert.ok(failed > 30, `${failed} failed`);
  assert.ok(delivered > 0, `${delivered} delivered`);
});
