import assert from "node:assert/strict";
import { indexOfByte, lastIndexOfByte } from "../lib/bytes.ts";

Deno.test("indexOfByte / lastIndexOfByte: the same index as TypedArray indexOf / lastIndexOf at every length, alignment, start and byte position", () => {
  let seed = 7;
  const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  for (let offset = 0; offset < 4; offset++) {
    for (let len = 0; len <= 40; len++) {
      for (let t = 0; t < 40; t++) {
        const buf = new Uint8Array(offset + len).subarray(offset);
        // Bytes around the one searched (0x0a) and none of it, sometimes.
        for (let i = 0; i < len; i++) {
          buf[i] = rand() < 0.08 ? 0x0a : [0x0b, 0x09, 0x8a, 0x78][i & 3];
        }
        for (const byte of [0x0a, 0x8a, 0xff]) {
          assert.equal(lastIndexOfByte(buf, byte), buf.lastIndexOf(byte));
          for (let from = 0; from <= len + 1; from++) {
            assert.equal(
              indexOfByte(buf, byte, from),
              buf.indexOf(byte, from),
              `len ${len} offset ${offset} from ${from}`,
            );
          }
        }
      }
    }
  }
  const big = new Uint8Array(61441).fill(0x78);
  assert.equal(indexOfByte(big, 0x0a), -1);
  big[61440] = 0x0a;
  big[3] = 0x0a;
  assert.equal(indexOfByte(big, 0x0a, 4), 61440);
  assert.equal(lastIndexOfByte(big, 0x0a), 61440);
  assert.equal(lastIndexOfByte(big.subarray(0, 61440), 0x0a), 3);
});
