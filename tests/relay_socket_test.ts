/**
 * lib/deno/relay_socket.ts over a fake socket: a relayed (framed) message
 * goes out as a view of its read chunk only when the batch holds at least
 * half of that chunk; otherwise it is copied, so a small frame cannot keep
 * a large chunk alive while it waits in a slow recipient's socket.
 * @module
 */

import assert from "node:assert/strict";
import { RelaySocket } from "../lib/deno/relay_socket.ts";
import type { FrontConn } from "../lib/deno/tls_front.ts";
import { encodeWsFrame, Opcode, WsDecoder } from "../lib/ws_codec.ts";

/** A FrontConn that records what is written. */
function fakeConn(): FrontConn & { written: Uint8Array[][] } {
  const written: Uint8Array[][] = [];
  return {
    written,
    remoteAddr: { hostname: "127.0.0.1", port: 1, transport: "tcp" },
    secure: Promise.resolve(),
    onData: null,
    onEnd: null,
    write(bytes) {
      written.push([bytes]);
    },
    writev(parts) {
      written.push(parts);
    },
    writableLength: 0,
    pause() {},
    resume() {},
    endWrite() {},
    destroy() {},
    end() {},
  };
}

/** The messages a client decodes from what was written. */
function decoded(parts: Uint8Array[]): number[][] {
  const d = new WsDecoder("client", 1 << 20);
  for (const p of parts) d.push(p);
  const out: number[][] = [];
  for (let e = d.next(); e; e = d.next()) {
    if (e.kind === "message") out.push([...e.data]);
  }
  return out;
}

Deno.test("relay socket: framed payloads go out as views only when the batch holds half their chunk, else copied; the bytes are the same", async () => {
  const conn = fakeConn();
  const ws = new RelaySocket(conn, 1 << 20, 1000, {
    onMessage() {},
    onTooLarge() {},
    onClosed() {},
  });
  ws.start(new Uint8Array(0));
  // Two chunks as a reader hands them over: frames decoded in place.
  const mask = new Uint8Array([9, 8, 7, 6]);
  const p = (n: number, v: number) => new Uint8Array(n).fill(v);
  const mostly = [p(3000, 1), p(3000, 2)]; // 6 KB of a ~6 KB chunk
  const little = p(100, 3); // 100 B of a ~10 KB chunk
  const sink = (parts: Uint8Array[]) => {
    const d = new WsDecoder("server", 1 << 20, { ownsInput: true });
    d.push(
      Uint8Array.from(
        parts.flatMap((x) => [...encodeWsFrame(Opcode.BINARY, x, mask)]),
      ),
    );
    const out = [];
    for (let e = d.next(); e; e = d.next()) {
      assert.ok(e.kind === "message" && e.framed);
      out.push(e.data);
    }
    return out;
  };
  const a = sink(mostly);
  const b = sink([little, p(10_000, 4)]);
  for (const m of a) ws.send(m, true);
  ws.send(b[0], true);
  await Promise.resolve();
  assert.equal(conn.written.length, 1, "one batch");
  const parts = conn.written[0];
  assert.deepEqual(decoded(parts), [[...mostly[0]], [...mostly[1]], [
    ...little,
  ]]);
  assert.ok(
    parts.some((x) => x.buffer === a[0].buffer),
    "the 6 KB pair is sent from its chunk",
  );
  assert.ok(
    parts.every((x) => x.buffer !== b[0].buffer),
    "the 100 B message is copied out of its 10 KB chunk",
  );
});

Deno.test("relay socket: framed payloads under 1 KiB are copied into one part even when they are all of their chunk", async () => {
  const conn = fakeConn();
  const ws = new RelaySocket(conn, 1 << 20, 1000, {
    onMessage() {},
    onTooLarge() {},
    onClosed() {},
  });
  ws.start(new Uint8Array(0));
  const mask = new Uint8Array([1, 2, 3, 4]);
  const small = [1, 2, 3, 4].map((v) => new Uint8Array(250).fill(v));
  const d = new WsDecoder("server", 1 << 20, { ownsInput: true });
  const chunk = Uint8Array.from(
    small.flatMap((x) => [...encodeWsFrame(Opcode.BINARY, x, mask)]),
  );
  d.push(chunk);
  const got = [];
  for (let e = d.next(); e; e = d.next()) {
    assert.ok(e.kind === "message" && e.framed);
    got.push(e.data);
  }
  assert.equal(got.length, 4);
  for (const m of got) ws.send(m, true);
  await Promise.resolve();
  assert.equal(conn.written.length, 1, "one batch");
  const parts = conn.written[0];
  assert.equal(parts.length, 1, "one part: the four messages copied together");
  assert.notEqual(parts[0].buffer, chunk.buffer, "a copy, not a view");
  assert.deepEqual(decoded(parts), small.map((x) => [...x]));
});
