import assert from "node:assert/strict";
import { ProtocolError } from "../lib/errors.ts";
import { KnownPeers } from "../lib/known_peers.ts";

const FP1 = "11".repeat(32);
const FP2 = "22".repeat(32);
const T0 = Date.UTC(2026, 0, 1);
const T1 = T0 + 60_000;
const T2 = T0 + 120_000;

Deno.test("TOFU: new → known → changed refused → retrust", () => {
  const peers = new KnownPeers();
  assert.deepEqual(peers.check("bob", FP1), { status: "new" });
  assert.deepEqual(peers.record("bob", FP1, T0), { status: "new" });
  assert.deepEqual(peers.check("bob", FP1), { status: "known" });
  assert.deepEqual(peers.record("bob", FP1.toUpperCase(), T1), {
    status: "known",
  });
  assert.equal(peers.get("bob")!.lastSeen, new Date(T1).toISOString());
  assert.equal(peers.get("bob")!.firstSeen, new Date(T0).toISOString());

  // A different key: check reports it and changes nothing; record refuses loudly.
  assert.deepEqual(peers.check("bob", FP2), {
    status: "changed",
    previous: FP1,
  });
  assert.throws(() => peers.record("bob", FP2, T2), (e: unknown) => {
    assert.ok(e instanceof ProtocolError);
    assert.equal(e.code, "identity-changed");
    assert.ok(e.message.includes("CHANGED"), e.message);
    assert.ok(e.message.includes('"bob"'), e.message);
    assert.ok(e.message.includes(FP1) && e.message.includes(FP2), e.message);
    return true;
  });
  assert.equal(peers.get("bob")!.fingerprint, FP1);
  assert.equal(peers.get("bob")!.lastSeen, new Date(T1).toISOString());

  peers.retrust("bob", FP2, T2);
  assert.deepEqual(peers.check("bob", FP2), { status: "known" });
  assert.deepEqual(peers.check("bob", FP1), {
    status: "changed",
    previous: FP2,
  });
  assert.equal(peers.get("bob")!.firstSeen, new Date(T2).toISOString());
});

Deno.test("verified flag: set only for the recorded key, cleared by retrust", () => {
  const peers = new KnownPeers();
  peers.record("carol", FP1, T0);
  assert.throws(
    () => peers.markVerified("carol", FP2),
    (e: unknown) => e instanceof ProtocolError && e.code === "identity-changed",
  );
  assert.throws(() => peers.markVerified("dave", FP1), RangeError);
  peers.markVerified("carol", FP1);
  assert.deepEqual(peers.check("carol", FP1), { status: "verified" });
  assert.deepEqual(peers.record("carol", FP1, T1), { status: "verified" });
  peers.retrust("carol", FP2, T2);
  assert.equal(peers.get("carol")!.verified, false);
  assert.deepEqual(peers.check("carol", FP2), { status: "known" });
});

Deno.test("serialize/parse round trip keeps every field; names sorted", () => {
  const peers = new KnownPeers();
  peers.record("zed", FP2, T1);
  peers.record("amy", FP1, T0);
  peers.markVerified("amy", FP1);
  peers.record("__proto__", FP1, T0);
  const json = peers.serialize();
  const data = JSON.parse(json);
  assert.equal(data.version, 1);
  assert.deepEqual(Object.keys(data.peers), ["__proto__", "amy", "zed"]);
  assert.deepEqual(data.peers.amy, {
    fingerprint: FP1,
    firstSeen: new Date(T0).toISOString(),
    lastSeen: new Date(T0).toISOString(),
    verified: true,
  });
  const back = KnownPeers.parse(json, "known_peers.json");
  assert.deepEqual(back.names(), ["__proto__", "amy", "zed"]);
  assert.deepEqual(back.get("amy"), peers.get("amy"));
  assert.deepEqual(back.check("zed", FP2), { status: "known" });
  assert.equal(back.serialize(), json);
  assert.ok(back.remove("zed"));
  assert.equal(back.remove("zed"), false);
  assert.deepEqual(back.check("zed", FP2), { status: "new" });
});

Deno.test("parse: malformed files fail with bad-known-peers naming the source", () => {
  const entry = {
    fingerprint: FP1,
    firstSeen: "2026-01-01T00:00:00.000Z",
    lastSeen: "2026-01-01T00:00:00.000Z",
    verified: false,
  };
  const cases: [string, string][] = [
    ["{", "not valid JSON"],
    ["null", "not a JSON object"],
    [JSON.stringify({ version: 2, peers: {} }), "unsupported version"],
    [JSON.stringify({ version: 1 }), '"peers"'],
    [JSON.stringify({ version: 1, peers: { bob: 1 } }), "not an object"],
    [
      JSON.stringify({
        version: 1,
        peers: { bob: { ...entry, fingerprint: "xyz" } },
      }),
      "fingerprint",
    ],
    [
      JSON.stringify({
        version: 1,
        peers: { bob: { ...entry, firstSeen: "never" } },
      }),
      "firstSeen",
    ],
    [
      JSON.stringify({
        version: 1,
        peers: { bob: { ...entry, verified: "yes" } },
      }),
      "verified",
    ],
    [JSON.stringify({ version: 1, peers: { "": entry } }), "empty"],
    [
      JSON.stringify({ version: 1, peers: { "a\u001b[31m": entry } }),
      "control",
    ],
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
  assert.throws(() => peers.record("bob", "abc", T0), RangeError);
  assert.throws(() => peers.record("", FP1, T0), RangeError);
  assert.throws(() => peers.retrust("x".repeat(300), FP1, T0), RangeError);
  assert.throws(() => peers.check("bob", "zz"), RangeError);
  assert.deepEqual(peers.names(), []);
});
