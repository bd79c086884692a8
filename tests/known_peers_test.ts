import assert from "node:assert/strict";
import { ProtocolError } from "../lib/errors.ts";
import { KnownPeers } from "../lib/known_peers.ts";
import { formatFingerprint } from "../lib/fingerprint.ts";
import { formatSessionId } from "../lib/registration.ts";
import {
  KNOWN_PEERS_EVICT_BATCH,
  MAX_CONVERSATIONS,
  MAX_KNOWN_PEERS,
  MAX_KNOWN_PEERS_FILE_SIZE,
} from "../lib/constants.ts";

const FP1 = "11".repeat(32);
const FP2 = "22".repeat(32);
const FP3 = "33".repeat(32);
const ID_A = "a".repeat(26);
const ID_B = "b".repeat(26);
const T0 = Date.UTC(2026, 0, 1);
const T1 = T0 + 60_000;
const T2 = T0 + 120_000;
const A = { relayId: ID_A, name: "customer" };
const B = { relayId: ID_B, name: "customer" };

Deno.test("TOFU per identity: new → known → changed key at the same relay ID refused → retrust", () => {
  const peers = new KnownPeers();
  assert.deepEqual(peers.check(A, FP1), { status: "new" });
  assert.deepEqual(peers.record(A, FP1, T0), { status: "new" });
  assert.deepEqual(peers.check(A, FP1), { status: "known" });
  assert.deepEqual(peers.record(A, FP1.toUpperCase(), T1), {
    status: "known",
  });
  assert.equal(peers.get(FP1)!.lastSeen, new Date(T1).toISOString());
  assert.equal(peers.get(FP1)!.firstSeen, new Date(T0).toISOString());
  assert.equal(peers.get(FP1)!.relayId, ID_A);

  // A different key from that relay ID: check reports it and changes nothing; record refuses loudly.
  assert.deepEqual(peers.check(A, FP2), { status: "changed", previous: FP1 });
  assert.throws(() => peers.record(A, FP2, T2), (e: unknown) => {
    assert.ok(e instanceof ProtocolError);
    assert.equal(e.code, "identity-changed");
    assert.ok(e.message.includes("CHANGED"), e.message);
    assert.ok(e.message.includes(ID_A), e.message);
    // Both fingerprints in the grouped form the banners use (lib/fingerprint.ts).
    const shown = (fp: string) => formatFingerprint(Uint8Array.fromHex(fp));
    assert.ok(
      e.message.includes(shown(FP1)) && e.message.includes(shown(FP2)),
      e.message,
    );
    return true;
  });
  assert.deepEqual(peers.fingerprints(), [FP1]);

  peers.retrust(A, FP2, T2);
  assert.deepEqual(peers.fingerprints(), [FP2], "the old key is forgotten");
  assert.deepEqual(peers.check(A, FP2), { status: "known" });
  assert.deepEqual(peers.check(A, FP1), { status: "changed", previous: FP2 });
  assert.equal(peers.get(FP2)!.firstSeen, new Date(T2).toISOString());
});

Deno.test("many peers under one name are many entries; a changed key refuses only that peer", () => {
  const peers = new KnownPeers();
  peers.record(A, FP1, T0);
  // A second customer (another relay ID, another key) is new, not a changed key of the first.
  assert.deepEqual(peers.check(B, FP2), { status: "new" });
  peers.record(B, FP2, T0);
  peers.markVerified(FP2);
  // The first customer's key changes: refused for A; B is untouched.
  assert.deepEqual(peers.check(A, FP3), { status: "changed", previous: FP1 });
  assert.deepEqual(peers.check(B, FP2), { status: "verified" });
  // A known key seen at a new relay ID (the peer lost its mailbox key) is still that peer.
  assert.deepEqual(peers.record({ relayId: "c".repeat(26) }, FP1, T1), {
    status: "known",
  });
  assert.equal(peers.get(FP1)!.relayId, "c".repeat(26));
});

Deno.test("verified flag: set only for a recorded key, cleared by retrust", () => {
  const peers = new KnownPeers();
  peers.record(A, FP1, T0);
  assert.throws(() => peers.markVerified(FP2), RangeError);
  peers.markVerified(FP1);
  assert.deepEqual(peers.check(A, FP1), { status: "verified" });
  assert.deepEqual(peers.record(A, FP1, T1), { status: "verified" });
  peers.retrust(A, FP2, T2);
  assert.equal(peers.get(FP2)!.verified, false);
  assert.deepEqual(peers.check(A, FP2), { status: "known" });
});

Deno.test("serialize/parse round trip (version 2, keyed by fingerprint, sorted)", () => {
  const peers = new KnownPeers();
  peers.record(B, FP2, T1);
  peers.record({ relayId: ID_A }, FP1, T0);
  peers.markVerified(FP1);
  const json = peers.serialize();
  const data = JSON.parse(json);
  assert.equal(data.version, 2);
  assert.deepEqual(Object.keys(data.peers), [FP1, FP2]);
  assert.deepEqual(data.peers[FP1], {
    fingerprint: FP1,
    relayId: ID_A,
    firstSeen: new Date(T0).toISOString(),
    lastSeen: new Date(T0).toISOString(),
    verified: true,
  });
  assert.equal(data.peers[FP2].name, "customer");
  const back = KnownPeers.parse(json, "known_peers.json");
  assert.deepEqual(back.get(FP1), peers.get(FP1));
  assert.deepEqual(back.check(B, FP2), { status: "known" });
  assert.equal(back.serialize(), json);
  assert.ok(back.remove(FP2));
  assert.equal(back.remove(FP2), false);
  assert.deepEqual(back.check(B, FP2), { status: "new" });
});

Deno.test("version 1 files are migrated on read: names kept, a changed key under that name still refused", () => {
  const v1 = JSON.stringify({
    version: 1,
    peers: {
      bank: {
        fingerprint: FP1,
        firstSeen: "2026-01-01T00:00:00.000Z",
        lastSeen: "2026-01-02T00:00:00.000Z",
        verified: true,
      },
    },
  });
  const peers = KnownPeers.parse(v1, "known_peers.json");
  assert.deepEqual(peers.get(FP1), {
    fingerprint: FP1,
    name: "bank",
    firstSeen: "2026-01-01T00:00:00.000Z",
    lastSeen: "2026-01-02T00:00:00.000Z",
    verified: true,
  });
  const bank = { relayId: ID_A, name: "bank" };
  assert.deepEqual(peers.check(bank, FP2), {
    status: "changed",
    previous: FP1,
  });
  assert.deepEqual(peers.record(bank, FP1, T2), { status: "verified" });
  assert.equal(peers.get(FP1)!.relayId, ID_A, "relay ID learnt");
  assert.equal(JSON.parse(peers.serialize()).version, 2);
});

Deno.test("parse: malformed files fail with bad-known-peers naming the source", () => {
  const entry = {
    fingerprint: FP1,
    firstSeen: "2026-01-01T00:00:00.000Z",
    lastSeen: "2026-01-01T00:00:00.000Z",
    verified: false,
  };
  const v2 = (e: unknown, key = FP1) =>
    JSON.stringify({ version: 2, peers: { [key]: e } });
  const cases: [string, string][] = [
    ["{", "not valid JSON"],
    ["null", "not a JSON object"],
    [JSON.stringify({ version: 3, peers: {} }), "unsupported version"],
    [JSON.stringify({ version: 2 }), '"peers"'],
    [v2(1), "not an object"],
    [v2({ ...entry, fingerprint: "xyz" }, "xyz"), "fingerprint"],
    [v2(entry, FP2), "key must be the entry's fingerprint"],
    [v2({ ...entry, firstSeen: "never" }), "firstSeen"],
    [v2({ ...entry, verified: "yes" }), "verified"],
    [v2({ ...entry, relayId: "nope" }), "relayId"],
    [v2({ ...entry, name: "" }), "empty"],
    [v2({ ...entry, name: "a\u001b[31m" }), "control"],
    [JSON.stringify({ version: 1, peers: { "": entry } }), "empty"],
  ];
  for (const [json, fragment] of cases) {
    assert.throws(() => KnownPeers.parse(json, "peers.json"), (e: unknown) => {
      assert.ok(e instanceof ProtocolError, json);
      assert.equal(e.code, "bad-known-peers");
      assert.ok(e.message.includes("peers.json"), e.message);
      assert.ok(e.message.includes(fragment), `${fragment} in ${e.message}`);
      return true;
    });
  }
});

Deno.test("bad inputs to record/retrust are refused", () => {
  const peers = new KnownPeers();
  assert.throws(() => peers.record(A, "abc", T0), RangeError);
  assert.throws(() => peers.record({ name: "" }, FP1, T0), RangeError);
  assert.throws(() => peers.record({ relayId: "x" }, FP1, T0), RangeError);
  assert.throws(
    () => peers.retrust({ name: "x".repeat(300) }, FP1, T0),
    RangeError,
  );
  assert.throws(() => peers.check(A, "zz"), RangeError);
  assert.deepEqual(peers.fingerprints(), []);
});

Deno.test("serialize is exactly JSON.stringify(…, null, 2) of the sorted set after any mix of changes; a clone is independent", () => {
  const v1 = JSON.stringify({
    version: 1,
    peers: {
      "old name": {
        fingerprint: FP3,
        firstSeen: new Date(T0).toISOString(),
        lastSeen: new Date(T0).toISOString(),
        verified: false,
      },
    },
  });
  const peers = KnownPeers.parse(v1, "v1");
  const reference = (p: KnownPeers) => {
    const all: Record<string, unknown> = {};
    for (const fp of p.fingerprints()) all[fp] = p.get(fp);
    return JSON.stringify({ version: 2, peers: all }, null, 2) + "\n";
  };
  assert.equal(peers.serialize(), reference(peers));
  peers.record(A, FP2, T0);
  peers.record({ relayId: ID_B, name: 'Zoë \u{1f3e6} "bank"' }, FP1, T1);
  assert.equal(peers.serialize(), reference(peers));
  const copy = peers.clone();
  // The migrated entry gains a relay ID (a key added last); another is verified, one re-trusted.
  copy.record({ relayId: "c".repeat(26), name: "old name" }, FP3, T2);
  copy.markVerified(FP2);
  copy.retrust(B, "44".repeat(32), T2);
  assert.equal(copy.serialize(), reference(copy));
  assert.deepEqual(Object.keys(copy.get(FP3)!).at(-1), "relayId");
  assert.deepEqual(copy.check(B, FP1), {
    status: "changed",
    previous: "44".repeat(32),
  });
  // The original saw none of it.
  assert.equal(peers.serialize(), reference(peers));
  assert.equal(peers.get(FP2)!.verified, false);
  assert.equal(peers.get(FP3)!.relayId, undefined);
  assert.deepEqual(peers.check(B, FP1), { status: "known" });
  assert.equal(peers.size, 3);
  assert.ok(copy.remove(FP2));
  assert.equal(copy.serialize(), reference(copy));
  assert.deepEqual(copy.check(A, FP2), { status: "new" });
  assert.deepEqual(
    KnownPeers.parse(copy.serialize(), "x").fingerprints(),
    copy.fingerprints(),
  );
  assert.equal(new KnownPeers().serialize(), reference(new KnownPeers()));
});

Deno.test("the relay-ID index: a key seen again at another relay ID moves its binding; the old ID is then new", () => {
  const peers = new KnownPeers();
  peers.record(A, FP1, T0);
  peers.record(B, FP1, T1); // same key, now at ID_B
  assert.deepEqual(peers.check(A, FP2), { status: "new" });
  assert.deepEqual(peers.check(B, FP2), { status: "changed", previous: FP1 });
  peers.record(A, FP2, T1);
  peers.record(A, FP1, T2); // FP1 back at ID_A, where FP2 also is: the first recorded wins
  assert.deepEqual(peers.check(A, FP3), { status: "changed", previous: FP1 });
  assert.ok(peers.remove(FP1));
  assert.deepEqual(peers.check(A, FP3), { status: "changed", previous: FP2 });
  assert.deepEqual(peers.check(B, FP3), { status: "new" });
});

Deno.test("entries by name only (the service's NAME/ed25519 keys): found by their name among many bound ones, a changed key refused, an independent clone", () => {
  const peers = new KnownPeers();
  const fp = (i: number) => i.toString(16).padStart(64, "0");
  const id = (i: number) =>
    Array.from({ length: 26 }, (_, k) => "abcdefgh"[(i >> (3 * (k % 4))) & 7])
      .join("");
  for (let i = 0; i < 200; i++) {
    peers.record({ relayId: id(i), name: `c${i}` }, fp(i + 1), T0);
  }
  const ed = (i: number) => ({ name: `c${i}/ed25519` });
  assert.deepEqual(peers.record(ed(7), FP1, T0), { status: "new" });
  assert.deepEqual(peers.record(ed(8), FP2, T0), { status: "new" });
  assert.deepEqual(peers.check(ed(7), FP1), { status: "known" });
  assert.deepEqual(peers.check(ed(7), FP3), {
    status: "changed",
    previous: FP1,
  });
  assert.deepEqual(peers.check(ed(9), FP3), { status: "new" });
  const copy = peers.clone();
  peers.retrust(ed(7), FP3, T1);
  assert.deepEqual(peers.check(ed(7), FP3), { status: "known" });
  assert.deepEqual(peers.check(ed(7), FP1), {
    status: "changed",
    previous: FP3,
  });
  // The clone still holds the old binding.
  assert.deepEqual(copy.check(ed(7), FP1), { status: "known" });
  assert.ok(peers.remove(FP3));
  assert.deepEqual(peers.check(ed(7), FP1), { status: "new" });
  assert.deepEqual(peers.check(ed(8), FP2), { status: "known" });
  // Seen later at a relay ID: the entry is bound there, no longer by name alone.
  peers.record({ relayId: ID_A, name: "c8/ed25519" }, FP2, T2);
  assert.equal(peers.get(FP2)!.relayId, ID_A);
  assert.deepEqual(peers.check(A, FP2), { status: "known" });
});

Deno.test("bounded: at the limit a new key first forgets the unverified entries seen longest ago (never verified ones); all verified → refused; the file stays readable", () => {
  const id = (i: number) => formatSessionId(new Uint8Array(16).fill(i));
  const fp = (i: number) => i.toString(16).padStart(64, "0");
  const k = new KnownPeers({ max: 10, batch: 3 });
  const t0 = Date.UTC(2026, 0, 1);
  for (let i = 1; i <= 10; i++) k.record({ relayId: id(i) }, fp(i), t0 + i);
  k.markVerified(fp(1)); // the oldest, but verified: kept
  k.record({ relayId: id(2) }, fp(2), t0 + 100); // seen again: now recent
  assert.equal(k.size, 10);
  // The 11th key: the three oldest unverified (3, 4, 5) are forgotten first.
  k.record({ relayId: id(11) }, fp(11), t0 + 200);
  assert.equal(k.size, 8);
  assert.equal(k.evicted, 3);
  for (const gone of [3, 4, 5]) assert.equal(k.get(fp(gone)), undefined);
  for (const kept of [1, 2, 6, 11]) assert.ok(k.get(fp(kept)), `kept ${kept}`);
  assert.equal(k.check({ relayId: id(3) }, fp(3)).status, "new"); // first use again
  // The serialized set is the entries left, sorted, and parses back.
  const back = KnownPeers.parse(k.serialize(), "t");
  assert.deepEqual(back.fingerprints(), k.fingerprints());
  assert.equal(back.size, 8);
  // Every entry verified: a new key is refused, nothing else changes.
  const v = new KnownPeers({ max: 3, batch: 2 });
  for (let i = 1; i <= 3; i++) {
    v.record({ relayId: id(i) }, fp(i), t0 + i);
    v.markVerified(fp(i));
  }
  assert.throws(
    () => v.record({ relayId: id(9) }, fp(9), t0 + 9),
    (e: unknown) =>
      e instanceof ProtocolError && e.code === "bad-known-peers" &&
      /all 3 entries are verified/.test(e.message),
  );
  assert.equal(v.size, 3);
  // A clone keeps the bound.
  const c = k.clone();
  for (let i = 20; i < 23; i++) {
    c.record({ relayId: id(i) }, fp(i), t0 + 300 + i);
  }
  assert.ok(c.size <= 10);
});

Deno.test("bounded: the default bound keeps the largest file below MAX_KNOWN_PEERS_FILE_SIZE and is above MAX_CONVERSATIONS", () => {
  assert.ok(MAX_KNOWN_PEERS > MAX_CONVERSATIONS);
  assert.ok(
    KNOWN_PEERS_EVICT_BATCH > 0 && KNOWN_PEERS_EVICT_BATCH < MAX_KNOWN_PEERS,
  );
  // An entry as the clients write it (relay ID, no name: what a stranger can add).
  const k = new KnownPeers();
  k.record(
    { relayId: formatSessionId(new Uint8Array(16)) },
    "f".repeat(64),
    Date.now(),
  );
  const perEntry = new TextEncoder().encode(k.serialize()).length;
  assert.ok(
    perEntry * MAX_KNOWN_PEERS < MAX_KNOWN_PEERS_FILE_SIZE,
    `${perEntry} B per entry`,
  );
});
