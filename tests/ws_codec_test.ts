/**
 * The shared RFC 6455 codec (lib/ws_codec.ts), sans-I/O: round trips in
 * both roles, input split at every byte, the limit enforced at the header,
 * and each violation RFC 6455 says must fail the connection.
 * @module
 */

import assert from "node:assert/strict";
import { concat } from "../lib/bytes.ts";
import {
  encodeClosePayload,
  encodeWsFrame,
  Opcode,
  WS_PROTOCOL_ERROR,
  wsAccept,
  WsDecoder,
  type WsEvent,
} from "../lib/ws_codec.ts";

const MASK = new Uint8Array([1, 2, 3, 4]);

function all(d: WsDecoder): WsEvent[] {
  const out: WsEvent[] = [];
  for (let e = d.next(); e; e = d.next()) out.push(e);
  return out;
}

Deno.test("ws codec: masked client frames decode on the server, unmasked server frames on the client", () => {
  for (const len of [0, 1, 125, 126, 65535, 65536, 70000]) {
    const payload = crypto.getRandomValues(
      new Uint8Array(Math.min(len, 65536)),
    );
    const p = len > 65536 ? new Uint8Array(len).fill(7) : payload;
    const s = new WsDecoder("server", 1 << 20);
    s.push(encodeWsFrame(Opcode.BINARY, p, MASK));
    assert.deepEqual(
      all(s),
      [{ kind: "message", opcode: 2, data: p }],
      `len ${len}`,
    );
    const c = new WsDecoder("client", 1 << 20);
    c.push(encodeWsFrame(Opcode.BINARY, p));
    assert.deepEqual(all(c), [{ kind: "message", opcode: 2, data: p }]);
  }
});

Deno.test("ws codec: input split at every byte gives the same events (and the caller may reuse its buffer)", () => {
  const wire = concat(
    encodeWsFrame(Opcode.PING, new Uint8Array([9]), MASK),
    encodeWsFrame(Opcode.BINARY, new Uint8Array(300).fill(5), MASK),
    encodeWsFrame(Opcode.CLOSE, encodeClosePayload(1000, "bye"), MASK),
  );
  const d = new WsDecoder("server", 4096);
  const events: WsEvent[] = [];
  const scratch = new Uint8Array(1);
  for (const b of wire) {
    scratch[0] = b;
    d.push(scratch);
    events.push(...all(d));
    scratch[0] = 0xee; // reused: must not corrupt what the decoder kept
  }
  assert.deepEqual(events, [
    { kind: "ping", data: new Uint8Array([9]) },
    { kind: "message", opcode: 2, data: new Uint8Array(300).fill(5) },
    { kind: "close", code: 1000, reason: "bye" },
  ]);
});

Deno.test("ws codec: fragments are joined; control frames may come between them", () => {
  const first = encodeWsFrame(Opcode.BINARY, new Uint8Array([1, 2]), MASK);
  first[0] &= 0x7f; // FIN off
  const last = encodeWsFrame(Opcode.CONTINUATION, new Uint8Array([3]), MASK);
  const d = new WsDecoder("server", 16);
  d.push(
    concat(first, encodeWsFrame(Opcode.PONG, new Uint8Array(0), MASK), last),
  );
  assert.deepEqual(all(d), [
    { kind: "pong", data: new Uint8Array(0) },
    { kind: "message", opcode: 2, data: new Uint8Array([1, 2, 3]) },
  ]);
});

Deno.test("ws codec: a frame above the limit is refused at its header, with the bytes that came with it", () => {
  const d = new WsDecoder("server", 1000);
  const head = new Uint8Array([
    0x82,
    0x80 | 127,
    0,
    0,
    0,
    0,
    0x04,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
  ]);
  d.push(concat(head, new Uint8Array([1, 0x10, 5, 6])));
  const e = d.next();
  assert.equal(e?.kind, "too-large");
  if (e?.kind !== "too-large") return;
  assert.equal(e.length, 64 * 1024 * 1024);
  assert.deepEqual(e.prefix, new Uint8Array([1, 0x10, 5, 6]));
  assert.ok(d.failed);
  d.push(new Uint8Array(100));
  assert.equal(d.next(), undefined, "input ignored afterwards");
  // Fragments count together.
  const f = new WsDecoder("server", 10);
  const a = encodeWsFrame(Opcode.BINARY, new Uint8Array(8), MASK);
  a[0] &= 0x7f;
  f.push(
    concat(a, encodeWsFrame(Opcode.CONTINUATION, new Uint8Array(8), MASK)),
  );
  assert.equal(f.next()?.kind, "too-large");
});

Deno.test("ws codec: violations fail with 1002", () => {
  const cases: [string, Uint8Array, "server" | "client"][] = [
    [
      "unmasked from a client",
      encodeWsFrame(Opcode.BINARY, new Uint8Array(3)),
      "server",
    ],
    [
      "masked from a server",
      encodeWsFrame(Opcode.BINARY, new Uint8Array(3), MASK),
      "client",
    ],
    [
      "reserved bit",
      Uint8Array.from(
        encodeWsFrame(Opcode.BINARY, new Uint8Array(1), MASK),
        (b, i) => i === 0 ? b | 0x40 : b,
      ),
      "server",
    ],
    ["reserved opcode", encodeWsFrame(0x3, new Uint8Array(1), MASK), "server"],
    [
      "control frame above 125 bytes",
      encodeWsFrame(Opcode.PING, new Uint8Array(126), MASK),
      "server",
    ],
    [
      "continuation without a message",
      encodeWsFrame(Opcode.CONTINUATION, new Uint8Array(1), MASK),
      "server",
    ],
    [
      "1-byte close body",
      encodeWsFrame(Opcode.CLOSE, new Uint8Array(1), MASK),
      "server",
    ],
  ];
  for (const [what, bytes, role] of cases) {
    const d = new WsDecoder(role, 1000);
    d.push(bytes);
    const e = d.next();
    assert.equal(e?.kind, "error", what);
    if (e?.kind === "error") assert.equal(e.code, WS_PROTOCOL_ERROR, what);
  }
});

Deno.test("ws codec: Sec-WebSocket-Accept matches RFC 6455 §1.3's example", async () => {
  assert.equal(
    await wsAccept("dGhlIHNhbXBsZSBub25jZQ=="),
    "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
  );
  assert.equal(encodeClosePayload(1000, "é".repeat(100)).length <= 125, true);
});
