/** Client control messages (clients/control.ts): encoding, strict parsing, display. */

import assert from "node:assert/strict";
import {
  describeControl,
  encodeControl,
  isControl,
  parseControl,
} from "../clients/control.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const hash = "ab".repeat(32);

Deno.test("control: resume round-trips; the body starts with 0x00, user text never does", () => {
  const body = encodeControl({ kind: "resume", prev: hash, delivered: 7 });
  assert.equal(body[0], 0);
  assert.ok(isControl(body));
  assert.deepEqual(parseControl(body), {
    kind: "resume",
    prev: hash,
    delivered: 7,
  });
  const none = encodeControl({ kind: "resume", prev: null, delivered: 0 });
  assert.deepEqual(parseControl(none), {
    kind: "resume",
    prev: null,
    delivered: 0,
  });
  assert.equal(describeControl(none), "[resume prev=none delivered=0]");
  assert.equal(
    describeControl(body),
    `[resume prev=${hash.slice(0, 16)}… delivered=7]`,
  );
  assert.ok(!isControl(enc("hello")));
  assert.ok(!isControl(new Uint8Array()));
});

Deno.test("control: malformed resume is refused, an unknown kind is ignored", () => {
  const bad = [
    "\0not json",
    "\0[1]",
    '\0{"prev":null}',
    '\0{"kind":"resume","prev":"xyz","delivered":0}',
    `\0{"kind":"resume","prev":"${hash.toUpperCase()}","delivered":0}`,
    '\0{"kind":"resume","prev":null,"delivered":-1}',
    '\0{"kind":"resume","prev":null,"delivered":1.5}',
    '\0{"kind":"resume","prev":null,"delivered":"3"}',
    '\0{"kind":"resume","prev":null}',
  ];
  for (const s of bad) {
    assert.throws(() => parseControl(enc(s)), RangeError, JSON.stringify(s));
    assert.match(describeControl(enc(s)), /^\[malformed control message/);
  }
  assert.throws(() => parseControl(new Uint8Array([0, 0xff])), RangeError);
  assert.throws(() => parseControl(enc("{}")), RangeError);
  assert.equal(parseControl(enc('\0{"kind":"later"}')), undefined);
});
