/**
 * lib/deno/tls_front.ts over real TLS: every chunk `onData` hands over is
 * a buffer of its own that later reads never touch (the relay's decoder
 * unmasks payloads in place in it and sends them on from it,
 * lib/deno/relay_socket.ts), and `writev` delivers its parts in order.
 * @module
 */

import assert from "node:assert/strict";
import { TlsFront } from "../lib/deno/tls_front.ts";
import { testCerts } from "./helpers/relay_fixture.ts";

Deno.test("tls front: each onData chunk is a fresh buffer no later read overwrites; writev keeps the order", async () => {
  const certs = await testCerts();
  const front = TlsFront.listen({
    hostname: "127.0.0.1",
    port: 0,
    cert: certs.cert,
    key: certs.key,
  });
  const client = await Deno.connectTls({
    hostname: "localhost",
    port: front.addr.port,
    caCerts: [certs.ca],
  });
  const conn = await front.accept();
  try {
    await conn.secure;
    // 200 writes of 1..2000 bytes with a running pattern: the server must
    // see the same byte stream in chunks that stay as they arrived.
    const sent: Uint8Array[] = [];
    let total = 0;
    for (let i = 0; i < 200; i++) {
      const n = 1 + ((i * 7919) % 2000);
      sent.push(Uint8Array.from({ length: n }, (_, j) => (total + j) & 0xff));
      total += n;
    }
    const chunks: Uint8Array[] = [];
    let got = 0;
    const all = Promise.withResolvers<void>();
    conn.onData = (c) => {
      chunks.push(c);
      got += c.length;
      if (got >= total) all.resolve();
    };
    conn.resume();
    const writer = (async () => {
      for (const s of sent) await client.write(s);
    })();
    await all.promise;
    await writer;
    const buffers = new Set(chunks.map((c) => c.buffer));
    assert.equal(buffers.size, chunks.length, "a buffer per chunk");
    // Plain Uint8Arrays: a node Buffer's slice() would be a view, not a copy.
    assert.ok(
      chunks.every((c) => Object.getPrototypeOf(c) === Uint8Array.prototype),
    );
    let at = 0;
    for (const c of chunks) {
      for (let j = 0; j < c.length; j++) {
        if (c[j] !== ((at + j) & 0xff)) {
          assert.fail(`byte ${at + j} changed after it was read`);
        }
      }
      at += c.length;
    }
    assert.equal(at, total);

    // writev: parts of one batch arrive in order, as one stream.
    const parts = [
      new Uint8Array([1, 2]),
      new Uint8Array(0),
      new Uint8Array([3]),
    ];
    const written = Promise.withResolvers<void>();
    conn.writev(parts, (err) => err ? written.reject(err) : written.resolve());
    await written.promise;
    const buf = new Uint8Array(16);
    let n = 0;
    while (n < 3) n += (await client.read(buf.subarray(n))) ?? 0;
    assert.deepEqual([...buf.subarray(0, n)], [1, 2, 3]);
  } finally {
    conn.destroy();
    client.close();
    front.close();
  }
});
