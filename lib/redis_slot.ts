/**
 * Redis Cluster key slots, sans-I/O (https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/):
 * `HASH_SLOT = CRC16(key) mod 16384` (CRC16-CCITT/XMODEM), where a key with a
 * non-empty `{…}` hash tag is hashed on the tag alone; and the `CLUSTER SLOTS`
 * reply turned into a slot → master table. Sharded pub/sub channels are
 * routed exactly like keys.
 * @module
 */

import { replyText, type RespValue } from "./resp.ts";

/** Number of hash slots in a Redis Cluster. */
export const SLOT_COUNT = 16384;

const TABLE = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 8;
    for (let j = 0; j < 8; j++) c = c & 0x8000 ? (c << 1) ^ 0x1021 : c << 1;
    t[i] = c & 0xffff;
  }
  return t;
})();

/** CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), as Redis Cluster uses. */
export function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (let i = 0; i < bytes.length; i++) {
    crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ bytes[i]) & 0xff];
  }
  return crc;
}

const encoder = new TextEncoder();

/**
 * The hash slot of a key or sharded channel.
 *
 * @example
 * ```ts
 * import { keySlot } from "./redis_slot.ts";
 * console.assert(keySlot("123456789") === 12739); // CRC16 check value 0x31C3
 * console.assert(keySlot("user:{42}:a") === keySlot("{42}"));
 * ```
 */
export function keySlot(key: string): number {
  const open = key.indexOf("{");
  if (open >= 0) {
    const close = key.indexOf("}", open + 1);
    if (close > open + 1) key = key.slice(open + 1, close);
  }
  return crc16(encoder.encode(key)) % SLOT_COUNT;
}

/** One master's slot range from `CLUSTER SLOTS`. */
export interface SlotRange {
  /** First slot (inclusive). */
  start: number;
  /** Last slot (inclusive). */
  end: number;
  /** Master's host as the cluster announces it. */
  host: string;
  /** Master's port. */
  port: number;
}

/**
 * Parses a `CLUSTER SLOTS` reply (`[[start, end, [host, port, id…], replicas…]…]`);
 * throws TypeError on anything else. An empty host means "the node you asked".
 */
export function parseClusterSlots(
  v: RespValue,
  askedHost: string,
): SlotRange[] {
  if (v.type !== "array") throw new TypeError("CLUSTER SLOTS: not an array");
  const out: SlotRange[] = [];
  for (const r of v.items) {
    if (r.type !== "array" || r.items.length < 3) {
      throw new TypeError("CLUSTER SLOTS: bad range entry");
    }
    const [s, e, master] = r.items;
    if (
      s.type !== "integer" || e.type !== "integer" ||
      master.type !== "array" || master.items.length < 2 ||
      master.items[1].type !== "integer"
    ) {
      throw new TypeError("CLUSTER SLOTS: bad range fields");
    }
    const start = Number(s.value), end = Number(e.value);
    if (!(start >= 0 && start <= end && end < SLOT_COUNT)) {
      throw new TypeError(`CLUSTER SLOTS: bad range ${start}-${end}`);
    }
    const host = replyText(master.items[0]) ?? "";
    out.push({
      start,
      end,
      host: host === "" ? askedHost : host,
      port: Number(master.items[1].value),
    });
  }
  return out;
}
