/** lib/resp.ts: RESP2/RESP3 decoding byte by byte, limits, and encoding. */

import assert from "node:assert/strict";
import {
  encodeCommand,
  RespDecoder,
  RespProtocolError,
  type RespValue,
} from "../lib/resp.ts";

const te = new TextEncoder();
const b = (s: string) => te.encode(s);

/** Decodes `wire` fed one byte at a time, and as one chunk: both must agree. */
function decodeBoth(wire: Uint8Array): RespValue[] {
  const whole = new RespDecoder().push(wire);
  const d = new RespDecoder();
  const split: RespValue[] = [];
  for (let i = 0; i < wire.length; i++) {
    split.push(...d.push(wire.subarray(i, i + 1)));
  }
  assert.equal(d.buffered, 0);
  assert.deepEqual(split, whole);
  return whole;
}

Deno.test("encodeCommand() writes an array of bulk strings, binary safe", () => {
  assert.equal(
    new TextDecoder().decode(encodeCommand(["SPUBLISH", "c", "é"])),
    "*3\r\n$8\r\nSPUBLISH\r\n$1\r\nc\r\n$2\r\né\r\n",
  );
  const bin = encodeCommand([new Uint8Array([0, 13, 10, 255])]);
  assert.deepEqual([...bin.subarray(-6)], [0, 13, 10, 255, 13, 10]);
});

Deno.test("RespDecoder: every RESP2 type, split at every byte", () => {
  const wire = b(
    "+OK\r\n-ERR wrong\r\n:-42\r\n$5\r\nhe\r\no\r\n$0\r\n\r\n$-1\r\n*-1\r\n" +
      "*3\r\n$8\r\nsmessage\r\n$2\r\nch\r\n$3\r\nabc\r\n*0\r\n*2\r\n*1\r\n:1\r\n*0\r\n",
  );
  const got = decodeBoth(wire);
  assert.deepEqual(got.map((v) => v.type), [
    "simple",
    "error",
    "integer",
    "bulk",
    "bulk",
    "null",
    "null",
    "array",
    "array",
    "array",
  ]);
  assert.deepEqual(got[2], { type: "integer", value: -42n });
  assert.equal(
    new TextDecoder().decode((got[3] as { value: Uint8Array }).value),
    "he\r\no",
  );
  assert.deepEqual(got[8], { type: "array", items: [] });
  assert.deepEqual(got[9], {
    type: "array",
    items: [{ type: "array", items: [{ type: "integer", value: 1n }] }, {
      type: "array",
      items: [],
    }],
  });
});

Deno.test("RespDecoder: RESP3 types (push, map, set, double, boolean, null, bignum, verbatim, blob error, attribute)", () => {
  const wire = b(
    ">3\r\n$8\r\nsmessage\r\n$1\r\nc\r\n$1\r\nx\r\n" +
      "%1\r\n+server\r\n+redis\r\n~2\r\n:1\r\n:2\r\n,3.5\r\n,-inf\r\n#t\r\n_\r\n" +
      "(12345678901234567890\r\n=7\r\ntxt:abc\r\n!5\r\nERR x\r\n" +
      "|1\r\n+ttl\r\n:3\r\n+after-attr\r\n*2\r\n|1\r\n+k\r\n+v\r\n:1\r\n:2\r\n",
  );
  const got = decodeBoth(wire);
  assert.deepEqual(got.map((v) => v.type), [
    "push",
    "map",
    "set",
    "double",
    "double",
    "boolean",
    "null",
    "bignum",
    "verbatim",
    "error",
    "simple",
    "array",
  ]);
  assert.equal((got[7] as { value: bigint }).value, 12345678901234567890n);
  assert.equal((got[8] as { format: string }).format, "txt");
  assert.deepEqual(got[9], { type: "error", value: "ERR x" });
  assert.deepEqual(got[10], { type: "simple", value: "after-attr" });
  assert.equal((got[11] as { items: RespValue[] }).items.length, 2);
});

Deno.test("RespDecoder: a split bulk body is not returned until its CRLF arrives", () => {
  const d = new RespDecoder();
  assert.deepEqual(d.push(b("$3\r\nab")), []);
  assert.deepEqual(d.push(b("c\r")), []);
  const [v] = d.push(b("\n+OK\r\n").subarray(0, 1));
  assert.equal(v.type, "bulk");
});

Deno.test("RespDecoder: grammar errors and limits throw RespProtocolError, and it stays failed", () => {
  const bad = [
    "?\r\n",
    "+no cr\n",
    ":12a\r\n",
    "$4\r\nabc\r\n\r\n",
    "$-2\r\n",
    "!-1\r\n",
    "#x\r\n",
    "=2\r\nab\r\n",
    "*99999999999\r\n",
    "\r\n",
  ];
  for (const w of bad) {
    const d = new RespDecoder();
    assert.throws(() => d.push(b(w)), RespProtocolError, JSON.stringify(w));
    assert.throws(() => d.push(b("+OK\r\n")), RespProtocolError);
  }
  const small = { maxBulk: 4, maxItems: 2, maxDepth: 2, maxLine: 8 };
  for (const w of ["$5\r\n", "*3\r\n", "*1\r\n*1\r\n*1\r\n", "+123456789"]) {
    assert.throws(
      () => new RespDecoder(small).push(b(w)),
      RespProtocolError,
      w,
    );
  }
  assert.equal(new RespDecoder(small).push(b("$4\r\nabcd\r\n")).length, 1);
});
