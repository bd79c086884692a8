import assert from "node:assert/strict";
import { concat, sha256, u32, u64, utf8 } from "../lib/bytes.ts";
import {
  chainSignatureInput,
  chainStart,
  chainStep,
} from "../lib/hash_chain.ts";

const SH = new Uint8Array(32).fill(7);

Deno.test("H_0 and H_s follow the specified byte layout", async () => {
  const h0 = await chainStart(SH, "initiator");
  assert.deepEqual(
    h0,
    await sha256(utf8("e2e.v1 chain\0"), SH, utf8("initiator")),
  );
  assert.notDeepEqual(
    h0,
    await chainStart(SH, "responder"),
    "directions differ",
  );
  const body = utf8("hello");
  const h1 = await chainStep(h0, 1n, 1, body);
  assert.deepEqual(
    h1,
    await sha256(h0, u64(1n), new Uint8Array([1]), u32(5), body),
  );
  // Every field matters.
  assert.notDeepEqual(h1, await chainStep(h0, 2n, 1, body));
  assert.notDeepEqual(h1, await chainStep(h0, 1n, 6, body));
  assert.notDeepEqual(h1, await chainStep(h0, 1n, 1, utf8("hellp")));
  // Order matters: skipping or swapping messages changes the head.
  const a = await chainStep(
    await chainStep(h0, 1n, 1, utf8("a")),
    2n,
    1,
    utf8("b"),
  );
  const b = await chainStep(
    await chainStep(h0, 1n, 1, utf8("b")),
    2n,
    1,
    utf8("a"),
  );
  assert.notDeepEqual(a, b);
});

Deno.test("signature input binds role, both fingerprints, session, seq and head", () => {
  const fpA = new Uint8Array(32).fill(1);
  const fpB = new Uint8Array(32).fill(2);
  const head = new Uint8Array(32).fill(3);
  const input = chainSignatureInput("responder", fpA, fpB, SH, 9n, head);
  assert.deepEqual(
    input,
    concat(
      utf8("e2e.v1 chain signature\0"),
      utf8("responder"),
      fpA,
      fpB,
      SH,
      u64(9n),
      head,
    ),
  );
  assert.notDeepEqual(
    input,
    chainSignatureInput("responder", fpB, fpA, SH, 9n, head),
  );
});
