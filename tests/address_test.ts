import assert from "node:assert/strict";
import { formatAddress, parseCaPin, parsePeerAddress } from "../lib/address.ts";
import { formatSessionId, parseSessionId } from "../lib/registration.ts";

const id = new Uint8Array(16).map((_, i) => i * 7);
const pin = "ab".repeat(32);

Deno.test("address: format → parse round trip; bare IDs in base32 and hex", () => {
  const a = formatAddress("wss://localhost:8765/ws", id, pin);
  assert.equal(
    a,
    `wss://localhost:8765/ws#ca=${pin}&id=${formatSessionId(id)}`,
  );
  const p = parsePeerAddress(a);
  assert.deepEqual(p.id, id);
  assert.equal(p.relay, "wss://localhost:8765/ws");
  assert.equal(p.ca, pin);
  assert.deepEqual(parsePeerAddress(formatSessionId(id)), { id });
  assert.deepEqual(parsePeerAddress(id.toHex()).id, id);
  assert.equal(parsePeerAddress(formatAddress("wss://h/ws", id)).ca, undefined);
});

Deno.test("address: clear errors for bad input", () => {
  assert.throws(
    () => parsePeerAddress("ws://localhost/ws#id=" + formatSessionId(id)),
    /wss:\/\//,
  );
  assert.throws(
    () => parsePeerAddress("wss://localhost/ws#ca=" + pin),
    /no '#…id=/,
  );
  assert.throws(
    () => parsePeerAddress(`wss://h/ws#ca=zz&id=${formatSessionId(id)}`),
    /invalid CA pin/,
  );
  assert.throws(
    () => parsePeerAddress(`wss://h/ws#id=${formatSessionId(id)}&x=1`),
    /unknown parameter 'x'/,
  );
  assert.throws(() => parsePeerAddress("hello"), /invalid session ID/);
  // PROTOCOL.md §1.3: each parameter at most once (two ids would be ambiguous).
  const other = formatSessionId(new Uint8Array(16));
  assert.throws(
    () => parsePeerAddress(`wss://h/ws#id=${formatSessionId(id)}&id=${other}`),
    /'id=' given twice/,
  );
  assert.throws(
    () => parsePeerAddress(`wss://h/ws#ca=${pin}&ca=${pin}&id=${other}`),
    /'ca=' given twice/,
  );
  // Either order, pin in upper case with colons, id in upper case or hex.
  const upper = pin.toUpperCase().match(/../g)!.join(":");
  const p = parsePeerAddress(
    `wss://h/ws#id=${formatSessionId(id).toUpperCase()}&ca=${upper}`,
  );
  assert.deepEqual([p.id, p.ca], [id, pin]);
  assert.deepEqual(parsePeerAddress(`wss://h/ws#id=${id.toHex()}`).id, id);
  assert.equal(parseCaPin(pin.toUpperCase().match(/../g)!.join(":")), pin);
});

Deno.test("address: fp= carries the peer's identity fingerprint, round-trips, is checked", () => {
  const id = new Uint8Array(16).fill(7);
  const fp = "ab".repeat(32);
  const a = formatAddress("wss://localhost:8765/ws", id, "cd".repeat(32), fp);
  assert.ok(a.endsWith(`&fp=${fp}`));
  const p = parsePeerAddress(a);
  assert.equal(p.fp, fp);
  assert.deepEqual(p.id, id);
  assert.equal(
    parsePeerAddress(a.replace(`fp=${fp}`, `fp=${fp.toUpperCase()}`)).fp,
    fp,
  );
  assert.throws(
    () => parsePeerAddress(a.replace(`fp=${fp}`, "fp=12")),
    /identity fingerprint/,
  );
  assert.throws(() => parsePeerAddress(`${a}&fp=${fp}`), /given twice/);
  assert.equal(
    parsePeerAddress(formatAddress("wss://localhost:8765/ws", id)).fp,
    undefined,
  );
});

Deno.test("parseSessionId() says what is wrong: a typo in the last character, a non-base32 character, a wrong length", () => {
  const sid = formatSessionId(new Uint8Array(16).fill(7));
  assert.throws(
    () => parseSessionId(sid.slice(0, -1) + "b"),
    /last character 'b' cannot end an ID \(a typo\?/,
  );
  assert.throws(
    () => parseSessionId("0" + sid.slice(1)),
    /'0' is not a base32 character/,
  );
  assert.throws(
    () => parseSessionId(sid.slice(1)),
    /25 characters; an ID is 26 base32 characters/,
  );
});

Deno.test("address: ed= carries the peer's Ed25519 fingerprint beside fp=, in any order, at most once, checked", () => {
  const id = new Uint8Array(16).fill(9);
  const fp = "ab".repeat(32);
  const ed = "c4".repeat(31) + "7e";
  const sid = formatSessionId(id);
  const a = formatAddress("wss://h:1/ws", id, "cd".repeat(32), fp, ed);
  assert.equal(
    a,
    `wss://h:1/ws#ca=${"cd".repeat(32)}&id=${sid}&fp=${fp}&ed=${ed}`,
  );
  const p = parsePeerAddress(a);
  assert.deepEqual([p.id, p.fp, p.ed], [id, fp, ed]);
  // ed= alone, first, in upper case with colons.
  const upper = ed.toUpperCase().match(/../g)!.join(":");
  const q = parsePeerAddress(`wss://h:1/ws#ed=${upper}&id=${sid}`);
  assert.deepEqual([q.id, q.fp, q.ed], [id, undefined, ed]);
  assert.equal(
    formatAddress("wss://h:1/ws", id, undefined, undefined, ed),
    `wss://h:1/ws#id=${sid}&ed=${ed}`,
  );
  assert.equal(parsePeerAddress(formatAddress("wss://h/ws", id)).ed, undefined);
  // Refused: twice (even with the same value), bad hex, wrong length, empty.
  assert.throws(() => parsePeerAddress(`${a}&ed=${ed}`), /'ed=' given twice/);
  for (const bad of ["zz".repeat(32), ed.slice(2), ed + "00", ""]) {
    assert.throws(
      () => parsePeerAddress(`wss://h:1/ws#id=${sid}&ed=${bad}`),
      /invalid identity fingerprint/,
      bad,
    );
  }
  assert.throws(
    () => formatAddress("wss://h:1/ws", id, undefined, fp, "12"),
    /invalid identity fingerprint/,
  );
});
