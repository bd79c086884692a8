/** lib/redis_slot.ts: CRC16/XMODEM, hash tags, and CLUSTER SLOTS parsing. */

import assert from "node:assert/strict";
import { crc16, keySlot, parseClusterSlots } from "../lib/redis_slot.ts";

const te = new TextEncoder();

Deno.test("crc16(): the XMODEM check value, and the slots Redis documents", () => {
  assert.equal(crc16(te.encode("123456789")), 0x31c3);
  assert.equal(keySlot("foo"), 12182); // redis-cli CLUSTER KEYSLOT foo
  assert.equal(keySlot("{user1000}.following"), keySlot("user1000"));
  assert.equal(keySlot("foo{}{bar}"), crc16(te.encode("foo{}{bar}")) % 16384); // empty tag: whole key
  assert.notEqual(keySlot("foo{}{bar}"), keySlot("bar"));
  assert.equal(keySlot("foo{{bar}}zap"), keySlot("{bar"));
});

Deno.test("parseClusterSlots() reads ranges and refuses malformed replies", () => {
  const int = (n: number) => ({ type: "integer" as const, value: BigInt(n) });
  const bulk = (s: string) => ({ type: "bulk" as const, value: te.encode(s) });
  const reply = {
    type: "array" as const,
    items: [
      {
        type: "array" as const,
        items: [int(0), int(8191), {
          type: "array" as const,
          items: [bulk("10.0.0.1"), int(7000), bulk("id1")],
        }],
      },
      {
        type: "array" as const,
        items: [int(8192), int(16383), {
          type: "array" as const,
          items: [bulk(""), int(7001)],
        }],
      },
    ],
  };
  assert.deepEqual(parseClusterSlots(reply, "seed"), [
    { start: 0, end: 8191, host: "10.0.0.1", port: 7000 },
    { start: 8192, end: 16383, host: "seed", port: 7001 },
  ]);
  assert.throws(() => parseClusterSlots(int(1), "x"), TypeError);
  assert.throws(
    () =>
      parseClusterSlots({
        type: "array",
        items: [{
          type: "array",
          items: [int(5), int(2), {
            type: "array",
            items: [bulk("h"), int(1)],
          }],
        }],
      }, "x"),
    /bad range/,
  );
});
