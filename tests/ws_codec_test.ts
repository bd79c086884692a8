/**
 * The shared RFC 6455 codec (lib/ws_codec.ts), sans-I/O: round trips in
 * both roles, input split at every byte, the limit enforced at the header,
 * and each violation RFC 6455 says must fail the connection.
 * @module
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { concat } from "../lib/bytes.ts";
import {
  encodeClosePayload,
  encodeWsFrame,
  encodeWsHeader,
  maskedFrameLength,
  Opcode,
  writeMaskedFrame,
  writeWsHeader,
  WS_PROTOCOL_ERROR,
  wsAccept,
  WsDecoder,
  type WsEvent,
  wsHeaderLength,
} from "../lib/ws_codec.ts";

const MASK = new Uint8Array([1, 2, 3, 4]);

/** An event with its data as length and a checksum. */
function summary(e: WsEvent): string {
  if (e.kind !== "message" && e.kind !== "ping" && e.kind !== "pong") {
    return JSON.stringify(e);
  }
  let h = 0;
  for (const b of e.data) h = (h * 31 + b) >>> 0;
  const op = e.kind === "message" ? e.opcode : "";
  return `${e.kind}${op} ${e.data.length} ${h}`;
}

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
      [{ kind: "message", opcode: 2, data: p, framed: false }],
      `len ${len}`,
    );
    const c = new WsDecoder("client", 1 << 20);
    c.push(encodeWsFrame(Opcode.BINARY, p));
    assert.deepEqual(all(c), [{
      kind: "message",
      opcode: 2,
      data: p,
      framed: false,
    }]);
  }
});

Deno.test("ws codec: large frames split anywhere (payload received in place) give the same events, masked and unmasked, fragmented too", () => {
  let seed = 7;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed % n;
  };
  const big = (n: number, v: number) =>
    Uint8Array.from({ length: n }, (_, i) => (i * 31 + v) & 0xff);
  for (const role of ["server", "client"] as const) {
    const m = role === "server" ? MASK : undefined;
    const frag = (op: number, p: Uint8Array, fin: boolean) => {
      const f = encodeWsFrame(op, p, m);
      if (!fin) f[0] &= 0x7f;
      return f;
    };
    const wire = concat(
      encodeWsFrame(Opcode.BINARY, big(5000, 1), m),
      encodeWsFrame(Opcode.PING, new Uint8Array([9]), m),
      frag(Opcode.BINARY, big(1500, 2), false),
      encodeWsFrame(Opcode.PONG, new Uint8Array(0), m),
      frag(Opcode.CONTINUATION, big(3001, 3), true),
      encodeWsFrame(Opcode.BINARY, big(1023, 4), m),
      encodeWsFrame(Opcode.BINARY, big(70000, 5), m),
      encodeWsFrame(Opcode.BINARY, big(10, 6), m),
    );
    const whole = new WsDecoder(role, 1 << 20);
    whole.push(wire);
    const want = all(whole);
    assert.equal(want.length, 7);
    assert.deepEqual(want[3], {
      kind: "message",
      opcode: 2,
      data: concat(big(1500, 2), big(3001, 3)),
      framed: false,
    });
    for (let round = 0; round < 40; round++) {
      const d = new WsDecoder(role, 1 << 20);
      const got: WsEvent[] = [];
      for (let at = 0; at < wire.length;) {
        const n = round === 0 ? 1 : 1 + rand(round < 20 ? 9 : 20000);
        const chunk = wire.slice(at, at + n);
        d.push(chunk);
        got.push(...all(d));
        chunk.fill(0xee); // reused by the caller
        at += n;
      }
      // Compared as short summaries: a diff of 70 KB arrays takes minutes.
      assert.deepEqual(got.map(summary), want.map(summary), `${role} ${round}`);
      assert.equal(d.pending, 0);
    }
  }
});

Deno.test("ws codec: writeMaskedFrame builds the same bytes as encodeWsFrame from parts at any alignment, several frames in one buffer", () => {
  const backing = Uint8Array.from({ length: 70100 }, (_, i) => (i * 7) & 0xff);
  for (const len of [0, 1, 15, 16, 17, 125, 126, 1000, 65535, 65536, 70000]) {
    for (const off of [0, 1, 2, 3]) {
      for (const split of [0, 1, 22, len >> 1]) {
        if (split > len) continue;
        const payload = backing.subarray(off, off + len);
        const parts = [payload.subarray(0, split), payload.subarray(split)];
        const mask = Uint8Array.of(0x9a, 0x01, 0xff, 0x37 + off);
        const want = encodeWsFrame(Opcode.BINARY, payload, mask);
        const pad = 1 + off; // the frame starts unaligned in the buffer
        const out = new Uint8Array(pad + 2 * maskedFrameLength(len));
        const end = writeMaskedFrame(out, pad, Opcode.BINARY, parts, mask);
        assert.equal(end, pad + want.length);
        assert.ok(
          out.subarray(pad, end).every((b, i) => b === want[i]),
          `len ${len} off ${off} split ${split}`,
        );
        const end2 = writeMaskedFrame(out, end, Opcode.PONG, [], mask);
        const d = new WsDecoder("server", 1 << 20);
        d.push(out.subarray(pad, end2));
        const evs = all(d);
        assert.equal(evs.length, 2);
        const ev = evs[0];
        assert.ok(ev.kind === "message" && ev.data.length === len);
        assert.ok(ev.data.every((b, i) => b === payload[i]), `decoded ${len}`);
        assert.deepEqual(evs[1], { kind: "pong", data: new Uint8Array(0) });
      }
    }
  }
});

Deno.test("ws codec: a masked frame at any byte offset of the socket's chunk unmasks exactly (word-wise, copied-then-word-wise and byte-wise paths)", () => {
  for (const len of [15, 16, 17, 126, 4096, 4099]) {
    const p = crypto.getRandomValues(new Uint8Array(len));
    const frame = encodeWsFrame(Opcode.BINARY, p, MASK);
    for (const offset of [0, 1, 2, 3, 5]) {
      const backing = new Uint8Array(offset + frame.length);
      backing.set(frame, offset);
      const s = new WsDecoder("server", 1 << 20);
      s.push(backing.subarray(offset));
      assert.deepEqual(
        all(s),
        [{ kind: "message", opcode: 2, data: p, framed: false }],
        `len ${len}, offset ${offset}`,
      );
    }
  }
});

Deno.test("ws codec: writeWsHeader writes encodeWsHeader's bytes at an offset of a caller's buffer", () => {
  for (const len of [0, 125, 126, 65535, 65536, 70000]) {
    const want = encodeWsHeader(Opcode.BINARY, len);
    const out = new Uint8Array(3 + want.length).fill(0xaa);
    assert.equal(writeWsHeader(out, 3, Opcode.BINARY, len), 3 + want.length);
    assert.deepEqual(out.subarray(3), want, `len ${len}`);
    assert.deepEqual(out.subarray(0, 3), new Uint8Array(3).fill(0xaa));
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
    {
      kind: "message",
      opcode: 2,
      data: new Uint8Array(300).fill(5),
      framed: false,
    },
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
    {
      kind: "message",
      opcode: 2,
      data: new Uint8Array([1, 2, 3]),
      framed: false,
    },
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

Deno.test("ws codec: with ownsInput, payloads are unmasked in place as views, and a framed message takes its outgoing header in front without touching any other message", () => {
  let seed = 11;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed % n;
  };
  const big = (n: number, v: number) =>
    Uint8Array.from({ length: n }, (_, i) => (i * 29 + v) & 0xff);
  const frag = (op: number, p: Uint8Array, fin: boolean) => {
    const f = encodeWsFrame(op, p, MASK);
    if (!fin) f[0] &= 0x7f;
    return f;
  };
  const wire = concat(
    encodeWsFrame(Opcode.BINARY, big(4096, 1), MASK),
    encodeWsFrame(Opcode.BINARY, big(4096, 2), MASK),
    encodeWsFrame(Opcode.PING, new Uint8Array([9]), MASK),
    encodeWsFrame(Opcode.BINARY, big(100, 3), MASK),
    frag(Opcode.BINARY, big(1500, 4), false),
    frag(Opcode.CONTINUATION, big(3001, 5), true),
    encodeWsFrame(Opcode.BINARY, big(0, 6), MASK),
    encodeWsFrame(Opcode.BINARY, big(70000, 7), MASK),
    encodeWsFrame(Opcode.BINARY, big(125, 8), MASK),
    encodeWsFrame(Opcode.BINARY, big(126, 9), MASK),
  );
  const copying = new WsDecoder("server", 1 << 20);
  copying.push(wire.slice());
  const want = all(copying);
  assert.equal(want.length, 9);
  assert.ok(want.every((e) => e.kind !== "message" || !e.framed));

  // One chunk: every whole frame is a view into it (no copy).
  const chunk = wire.slice();
  const one = new WsDecoder("server", 1 << 20, { ownsInput: true });
  one.push(chunk);
  const views = all(one);
  assert.deepEqual(views.map(summary), want.map(summary));
  const first = views[0];
  assert.ok(first.kind === "message" && first.framed);
  assert.equal(first.data.buffer, chunk.buffer);

  for (let round = 0; round < 30; round++) {
    const d = new WsDecoder("server", 1 << 20, { ownsInput: true });
    const got: WsEvent[] = [];
    for (let at = 0; at < wire.length;) {
      const n = round === 0 ? 1 : 1 + rand(round < 15 ? 9 : 20000);
      d.push(wire.slice(at, at + n)); // a fresh buffer, handed over
      got.push(...all(d));
      at += n;
    }
    assert.deepEqual(got.map(summary), want.map(summary), `round ${round}`);
    assert.equal(d.pending, 0);
    // Only the fragmented message (joined by a copy) is not framed.
    assert.deepEqual(
      got.filter((e) => e.kind === "message").map((e) =>
        e.kind === "message" && e.framed
      ),
      [true, true, true, false, true, true, true, true],
    );
    // Every framed message takes its header in front; then each one reads
    // as the server frame of its payload, and every payload is intact.
    const framed: Uint8Array[] = [];
    for (const e of got) {
      if (e.kind !== "message" || !e.framed) continue;
      const h = wsHeaderLength(e.data.length);
      assert.ok(e.data.byteOffset >= h);
      const f = new Uint8Array(
        e.data.buffer,
        e.data.byteOffset - h,
        h + e.data.length,
      );
      writeWsHeader(f, 0, Opcode.BINARY, e.data.length);
      framed.push(f);
    }
    assert.deepEqual(got.map(summary), want.map(summary), `after headers`);
    const c = new WsDecoder("client", 1 << 20);
    for (const f of framed) c.push(f);
    assert.deepEqual(
      all(c).map(summary),
      want.filter((e) => e.kind === "message" && e !== want[4]).map(summary),
    );
  }
});

Deno.test("ws codec: with ownsInput, a node Buffer chunk gives plain Uint8Array payloads (slice() copies)", () => {
  const payload = Uint8Array.from({ length: 40 }, (_, i) => i);
  const frame = encodeWsFrame(Opcode.BINARY, payload, MASK);
  const d = new WsDecoder("server", 1 << 20, { ownsInput: true });
  d.push(Buffer.from(frame));
  const [ev] = all(d);
  assert.ok(ev.kind === "message");
  assert.equal(Object.getPrototypeOf(ev.data), Uint8Array.prototype);
  const copy = ev.data.slice(2, 18);
  ev.data.fill(0xff);
  assert.deepEqual([...copy], [...payload.subarray(2, 18)]);
});
