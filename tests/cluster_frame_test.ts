/**
 * lib/cluster_frame.ts: inter-node messages against tests/vectors
 * good_cluster_* / fail_cluster_* (PROTOCOL.md §1.8), claim ordering, and
 * channel names that keep one ID in one Redis Cluster slot.
 */

import assert from "node:assert/strict";
import {
  BusMessageError,
  channelFor,
  compareClaims,
  decodeBusMessage,
  encodeBusClaim,
  encodeBusData,
  encodeBusError,
} from "../lib/cluster_frame.ts";

const dir = new URL("./vectors/", import.meta.url);
// deno-lint-ignore no-explicit-any
const load = (name: string): any =>
  JSON.parse(Deno.readTextFileSync(new URL(name, dir)));

Deno.test("decodeBusMessage() and the encoders reproduce every good_cluster_* vector", () => {
  const names = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) =>
    n.startsWith("good_cluster_")
  );
  assert.equal(names.length, 3);
  for (const name of names) {
    const v = load(name);
    const bytes = Uint8Array.fromHex(v.message);
    const m = decodeBusMessage(bytes, 65536);
    assert.equal(m.kind, v.expect.kind, name);
    assert.equal(m.id.toHex(), v.expect.id, name);
    assert.equal(channelFor(m.id), v.channel, name);
    if (m.kind === "claim") {
      assert.equal(m.claim.node, v.expect.node);
      assert.equal(m.claim.timeMs, v.expect.timeMs);
      assert.equal(m.claim.nonce.toHex(), v.expect.nonce);
      assert.equal(encodeBusClaim(m.id, m.claim).toHex(), v.message);
    } else {
      assert.equal(m.frame.toHex(), v.expect.frame, name);
      const again = m.kind === "data"
        ? encodeBusData(m.id, m.frame)
        : encodeBusError(m.id, m.frame);
      assert.equal(again.toHex(), v.message, name);
    }
  }
});

Deno.test("decodeBusMessage() refuses every fail_cluster_* vector, and frames above maxFrame", () => {
  const names = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) =>
    n.startsWith("fail_cluster_")
  );
  assert.ok(names.length >= 6);
  for (const name of names) {
    const v = load(name);
    assert.equal(v.expect, "refused");
    assert.throws(
      () => decodeBusMessage(Uint8Array.fromHex(v.message), 65536),
      BusMessageError,
      name,
    );
  }
  const good = Uint8Array.fromHex(load("good_cluster_data.json").message);
  assert.throws(() => decodeBusMessage(good, 23), /expected 22\.\.23/);
  assert.throws(() => decodeBusMessage(good.subarray(0, 17), 65536), /header/);
});

Deno.test("compareClaims(): later time wins, then the larger nonce; the same registration is 0", () => {
  const n = (b: number) => new Uint8Array(16).fill(b);
  const a = { node: "a", timeMs: 10, nonce: n(1) };
  assert.ok(compareClaims({ ...a, timeMs: 11 }, a) > 0);
  assert.ok(compareClaims(a, { ...a, timeMs: 11 }) < 0);
  assert.ok(compareClaims({ ...a, nonce: n(2) }, a) > 0);
  assert.equal(compareClaims({ ...a, node: "b" }, a), 0);
  assert.throws(() => encodeBusClaim(n(0), { ...a, node: "" }), RangeError);
  assert.throws(
    () => encodeBusClaim(n(0), { ...a, nonce: n(1).subarray(1) }),
    RangeError,
  );
  assert.throws(
    () => encodeBusData(new Uint8Array(15), new Uint8Array(22)),
    RangeError,
  );
});

Deno.test("channelFor(): one Redis Cluster hash tag per ID", () => {
  const id = Uint8Array.fromHex("00112233445566778899aabbccddeeff");
  assert.equal(channelFor(id), "relay.v1:{00112233445566778899aabbccddeeff}");
});
