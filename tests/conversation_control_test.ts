/** lib/control.ts: the message-id members of `resume` and the `next` message (PROTOCOL.md §2.4), member by member. */

import assert from "node:assert/strict";
import {
  describeControl,
  encodeControl,
  parseControl,
} from "../lib/control.ts";

const enc = (o: unknown) =>
  new Uint8Array([0, ...new TextEncoder().encode(JSON.stringify(o))]);
const S = "0123456789abcdef0123456789abcdef";
const base = { kind: "resume", prev: null, delivered: 0 };

Deno.test("control: resume with stream members and next round-trip", () => {
  const r = {
    kind: "resume",
    prev: "ab".repeat(32),
    delivered: 4,
    role: "bank",
    stream: S,
    peerStream: null,
    deliveredId: 0,
    next: 1,
  } as const;
  const bytes = encodeControl(r);
  assert.deepEqual(parseControl(bytes), r);
  assert.match(
    describeControl(bytes),
    /^\[resume prev=abababababababab… delivered=4\]$/,
  );
  assert.deepEqual(parseControl(encodeControl({ kind: "next", id: 7 })), {
    kind: "next",
    id: 7,
  });
  assert.equal(
    describeControl(encodeControl({ kind: "next", id: 7 })),
    "[next id=7]",
  );
  // Members in any order, unknown members ignored.
  assert.deepEqual(
    parseControl(
      enc({ deliveredId: 3, peerStream: S, extra: 1, stream: S, ...base }),
    ),
    { ...base, stream: S, peerStream: S, deliveredId: 3 },
  );
  // A peer without message ids: no stream members.
  assert.deepEqual(parseControl(enc(base)), base);
});

Deno.test("control: malformed stream members and next are named", () => {
  const bad: [unknown, RegExp][] = [
    [
      { ...base, stream: S.toUpperCase(), peerStream: null, deliveredId: 0 },
      /stream/,
    ],
    [{ ...base, stream: S, peerStream: "ab", deliveredId: 0 }, /peerStream/],
    [
      { ...base, stream: S, peerStream: null, deliveredId: 2 },
      /0 when peerStream is null/,
    ],
    [{ ...base, stream: S, peerStream: S, deliveredId: -1 }, /deliveredId/],
    [{ ...base, stream: S, peerStream: S, deliveredId: 1.5 }, /deliveredId/],
    [
      { ...base, stream: S, peerStream: S, deliveredId: 2 ** 53 },
      /deliveredId/,
    ],
    [{ ...base, stream: S, peerStream: S }, /deliveredId/],
    [{ ...base, deliveredId: 1 }, /need stream/],
    [{ ...base, next: 1 }, /need stream/],
    [{ ...base, stream: S, peerStream: null, deliveredId: 0, next: 0 }, /next/],
    [{ kind: "next", id: 0 }, /id/],
    [{ kind: "next", id: "1" }, /id/],
  ];
  for (const [o, re] of bad) {
    assert.throws(() => parseControl(enc(o)), re, JSON.stringify(o));
  }
});
