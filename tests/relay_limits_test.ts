/**
 * The relay under hostile or misconfigured clients, over real TLS (an
 * in-process relay on a free loopback port, raw sockets written by hand):
 * deadlines at every stage before registration, per-IP limits, slots freed
 * after relay-initiated closes, close codes delivered to pipelining clients,
 * refusal at the frame header, Host / Origin / public-origin rules, and the
 * contents of ERROR frames (PROTOCOL.md §1).
 * @module
 */

import assert from "node:assert/strict";
import { concat, utf8 } from "../lib/bytes.ts";
import { CloseCode, encodeData, FrameType } from "../lib/relay_frame.ts";
import { generateMailboxKey } from "../lib/registration.ts";
import { Opcode, WS_PROTOCOL_ERROR } from "../lib/ws_codec.ts";
import { RawWs } from "./helpers/raw_ws.ts";
import { startTestRelay, waitFor } from "./helpers/relay_fixture.ts";

/** Resolves with the ms until the relay ends `conn`'s stream (EOF or reset), or rejects after `ms`. */
async function closedWithin(conn: Deno.Conn, ms: number): Promise<number> {
  const start = performance.now();
  const buf = new Uint8Array(4096);
  for (;;) {
    const left = ms - (performance.now() - start);
    if (left <= 0) throw new Error(`still open after ${ms} ms`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const r = await Promise.race([
      conn.read(buf).catch(() => null),
      new Promise<"wait">((res) => timer = setTimeout(() => res("wait"), left)),
    ]);
    clearTimeout(timer);
    if (r === null) return performance.now() - start;
  }
}

Deno.test("relay limits: every stage before registration has its deadline (slowloris)", async () => {
  const t = await startTestRelay({
    tlsTimeoutMs: 300,
    headerTimeoutMs: 300,
    registerTimeoutMs: 300,
  });
  const port = t.relay.port;
  try {
    // 1. TCP only: never a ClientHello.
    const tcp = await Deno.connect({ hostname: "127.0.0.1", port });
    // 2. TLS done, no request.
    const tlsIdle = await Deno.connectTls({
      hostname: "localhost",
      port,
      caCerts: [t.caPem],
    });
    await tlsIdle.handshake();
    // 3. A request head trickled byte by byte (each byte well inside the deadline).
    const trickle = await Deno.connectTls({
      hostname: "localhost",
      port,
      caCerts: [t.caPem],
    });
    const head = utf8(
      `GET /ws HTTP/1.1\r\nHost: localhost:${port}\r\nX-Slow: ${
        "a".repeat(64)
      }`,
    );
    let stop = false;
    const trickling = (async () => {
      for (let i = 0; i < head.length && !stop; i++) {
        await trickle.write(head.subarray(i, i + 1)).catch(() => (stop = true));
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    // 4. Upgraded, never registers.
    const silent = await RawWs.open({ port, caPem: t.caPem });
    assert.equal(silent.status, 101);
    const [a, b, c] = await Promise.all([
      closedWithin(tcp, 2000),
      closedWithin(tlsIdle, 2000),
      closedWithin(trickle, 2000),
    ]);
    stop = true;
    await trickling;
    for (
      const [what, ms] of [["no ClientHello", a], ["no request", b], [
        "trickled head",
        c,
      ]] as const
    ) {
      assert.ok(
        ms < 1300,
        `${what}: closed after ${ms.toFixed(0)} ms (deadline 300)`,
      );
    }
    assert.equal(
      (await silent.closeFrame(2000))?.code,
      CloseCode.REGISTER_TIMEOUT,
    );
    await silent.ended(1500);
    assert.ok(t.relay.metrics.droppedCount("tls-timeout") >= 1);
    assert.ok(t.relay.metrics.droppedCount("header-timeout") >= 2);
    for (const s of [tcp, tlsIdle, trickle]) s.close();
    silent.close();
    // The relay serves as before.
    await t.connect();
  } finally {
    await t.close();
  }
});

Deno.test("relay limits: unregistered connections are limited per IP; registered ones are not", async () => {
  const t = await startTestRelay({ maxUnauthPerIp: 3 });
  const port = t.relay.port;
  const held: Deno.Conn[] = [];
  try {
    await t.connect(); // registered: does not count
    for (let i = 0; i < 3; i++) {
      held.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    }
    await waitFor(() => t.relay.metrics.render(0, 0).length > 0, "accepted");
    const fourth = await Deno.connect({ hostname: "127.0.0.1", port });
    assert.ok(
      (await closedWithin(fourth, 2000)) < 1000,
      "fourth closed at once",
    );
    fourth.close();
    assert.equal(t.relay.metrics.droppedCount("per-ip"), 1);
    assert.ok(
      t.logs.some((l) => l.includes("--max-unauth-per-ip")),
      "the refusal is logged",
    );
    for (const h of held) h.close();
    await waitFor(
      () => t.relay.metrics.droppedCount("per-ip") === 1,
      "settled",
    );
    await new Promise((r) => setTimeout(r, 100));
    await t.connect(); // slots are back
  } finally {
    for (const h of held) {
      try {
        h.close();
      } catch { /* closed */ }
    }
    await t.close();
  }
});

Deno.test("relay limits: clients that never answer the relay's close (4001, 4003, 1008) do not keep their slots", async () => {
  const t = await startTestRelay({ maxConnections: 4, registerTimeoutMs: 300 });
  const port = t.relay.port;
  try {
    // Four upgraded connections that never answer a close, never read
    // after it, never close: two never register (4001), one signs the
    // wrong origin (4003), one sends protocol errors (1008).
    const squatters = await Promise.all(
      [0, 1, 2, 3].map(() => RawWs.open({ port, caPem: t.caPem })),
    );
    assert.deepEqual(squatters.map((s) => s.status), [101, 101, 101, 101]);
    const full = await RawWs.open({ port, caPem: t.caPem });
    assert.equal(full.status, 503, "at capacity while they are open");
    full.close();
    const started = performance.now();
    const [, , badSig, abuser] = squatters;
    const r = await badSig.register(
      (await generateMailboxKey()).key,
      "wss://elsewhere.example",
    );
    assert.ok(r.type === "error" && r.name === "bad-registration");
    const { key } = await generateMailboxKey();
    assert.equal(
      (await abuser.register(key, `wss://localhost:${port}`)).type,
      "registered",
    );
    await abuser.write(concat(
      ...Array.from({ length: 40 }, () =>
        concat(
          new Uint8Array([0x82, 0x80 | 2, 0, 0, 0, 0]),
          new Uint8Array([1, 0x7f]),
        )),
    ));
    await waitFor(
      () =>
        t.relay.metrics.closeCount(CloseCode.REGISTER_TIMEOUT) === 2 &&
        t.relay.metrics.closeCount(CloseCode.REGISTER_FAILED) === 1 &&
        t.relay.metrics.closeCount(CloseCode.POLICY) === 1,
      "4001 × 2, 4003 and 1008 sent",
    );
    // 300 ms registration timeout + 500 ms grace: every slot comes back.
    const probes = [];
    while (probes.length < 4) {
      const probe = await RawWs.open({ port, caPem: t.caPem });
      if (probe.status === 101) {
        probes.push(probe);
        continue;
      }
      probe.close();
      assert.ok(
        performance.now() - started < 3000,
        `slots freed within the grace period (${probes.length} of 4 so far)`,
      );
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const p of probes) p.close();
    await t.connect();
    for (const s of squatters) s.close();
  } finally {
    await t.close();
  }
});

Deno.test("relay limits: a pipelining abuser receives the 1008 close frame (no reset)", async () => {
  const t = await startTestRelay();
  try {
    const ws = await RawWs.open({ port: t.relay.port, caPem: t.caPem });
    const { key } = await generateMailboxKey();
    assert.equal(
      (await ws.register(key, `wss://localhost:${t.relay.port}`)).type,
      "registered",
    );
    // 200 frames of an unknown type in one write: 32 allowed, then 1008.
    const bad = concat(
      ...Array.from({ length: 200 }, () =>
        concat(
          new Uint8Array([0x82, 0x80 | 2, 0, 0, 0, 0]),
          new Uint8Array([1, 0x7f]),
        )),
    );
    await ws.write(bad);
    // The abuser keeps pipelining without reading for 200 ms (inside the
    // relay's 500 ms drain): input arrives after the relay's close, and a
    // relay that dropped the socket at once would answer it with a reset
    // that destroys the unread close frame (the 1006).
    const until = performance.now() + 200;
    let writes = 0;
    while (performance.now() < until && writes < 100) {
      writes++;
      if (!(await ws.write(bad).then(() => true, () => false))) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    const close = await ws.closeFrame(3000);
    assert.equal(close?.code, CloseCode.POLICY, "the close frame arrived");
    await ws.ended(2000);
    ws.close();
  } finally {
    await t.close();
  }
});

Deno.test("relay limits: an unmasked client frame closes with 1002", async () => {
  const t = await startTestRelay();
  try {
    const ws = await RawWs.open({ port: t.relay.port, caPem: t.caPem });
    await ws.frame(); // CHALLENGE
    await ws.sendFrame(
      Opcode.BINARY,
      new Uint8Array([1, FrameType.DATA]),
      true,
    );
    assert.equal((await ws.closeFrame())?.code, WS_PROTOCOL_ERROR);
    await ws.ended(2000);
    ws.close();
  } finally {
    await t.close();
  }
});

Deno.test("relay limits: a frame above --max-frame is refused at its header: ERROR with its IDs, 1009, counted once", async () => {
  const t = await startTestRelay({ maxFrame: 4096 });
  try {
    const ws = await RawWs.open({ port: t.relay.port, caPem: t.caPem });
    const { key } = await generateMailboxKey();
    await ws.register(key, `wss://localhost:${t.relay.port}`);
    const peer = new Uint8Array(16).fill(9);
    const header = encodeData(peer, 77, new Uint8Array(0));
    // A 63 MiB frame header, the DATA header and only 1 KiB of its payload.
    const len = 63 * 1024 * 1024;
    const mask = new Uint8Array(4);
    const head = new Uint8Array(10);
    head[0] = 0x82;
    head[1] = 0x80 | 127;
    new DataView(head.buffer).setUint32(6, len);
    await ws.write(concat(head, mask, header, new Uint8Array(1024)));
    const started = performance.now();
    const err = await ws.frame(2000);
    assert.equal(err.type, "error");
    if (err.type !== "error") return;
    assert.equal(err.name, "too-large");
    assert.equal(err.frameNo, 77, "frameNo of the refused frame");
    assert.deepEqual(err.peer, peer, "peerId of the refused frame");
    assert.equal((await ws.closeFrame(1000))?.code, CloseCode.TOO_BIG);
    assert.ok(
      performance.now() - started < 1000,
      "closed within 1 s of the header",
    );
    await ws.ended(2000);
    assert.equal(t.relay.metrics.droppedCount("too-large"), 1, "counted once");
    ws.close();
  } finally {
    await t.close();
  }
});

Deno.test("relay limits: length headers of 64 MiB and more (up to 2^62) get ERROR too-large and the 1009 close frame, not a TCP cut", async () => {
  const t = await startTestRelay(); // the default --max-frame
  try {
    for (const len of [64 * 1024 * 1024, 2 ** 32, 2 ** 62]) {
      const ws = await RawWs.open({ port: t.relay.port, caPem: t.caPem });
      const { key } = await generateMailboxKey();
      await ws.register(key, `wss://localhost:${t.relay.port}`);
      const head = new Uint8Array(14); // 64-bit length, zero mask
      head[0] = 0x82;
      head[1] = 0x80 | 127;
      const dv = new DataView(head.buffer);
      dv.setUint32(2, Math.floor(len / 2 ** 32));
      dv.setUint32(6, len % 2 ** 32);
      const peer = new Uint8Array(16).fill(5);
      await ws.write(
        concat(
          head,
          encodeData(peer, 9, new Uint8Array(0)),
          new Uint8Array(64),
        ),
      );
      const started = performance.now();
      const err = await ws.frame(2000);
      assert.ok(
        err.type === "error" && err.name === "too-large" && err.frameNo === 9,
        `length ${len}: ${JSON.stringify(err)}`,
      );
      assert.equal(
        (await ws.closeFrame(1000))?.code,
        CloseCode.TOO_BIG,
        `length ${len}: the 1009 close frame arrived`,
      );
      assert.ok(
        performance.now() - started < 1000,
        `length ${len}: closed within 1 s of the header`,
      );
      await ws.ended(2000);
      ws.close();
    }
    assert.equal(t.relay.metrics.closeCount(CloseCode.TOO_BIG), 3);
  } finally {
    await t.close();
  }
});

Deno.test("relay limits: DATA before registration gets not-registered with its peerId and frameNo", async () => {
  const t = await startTestRelay();
  try {
    const ws = await RawWs.open({ port: t.relay.port, caPem: t.caPem });
    await ws.frame(); // CHALLENGE
    const peer = new Uint8Array(16).fill(3);
    await ws.sendFrame(
      Opcode.BINARY,
      encodeData(peer, 4242, new Uint8Array(4)),
    );
    const err = await ws.frame();
    assert.equal(err.type, "error");
    if (err.type !== "error") return;
    assert.equal(err.name, "not-registered");
    assert.equal(err.frameNo, 4242);
    assert.deepEqual(err.peer, peer);
    // An ERROR not about a DATA frame carries zeros.
    await ws.sendFrame(Opcode.BINARY, new Uint8Array([1, 0x7f]));
    const e2 = await ws.frame();
    assert.ok(
      e2.type === "error" && e2.name === "unknown-type" && e2.frameNo === 0,
    );
    if (e2.type === "error") assert.deepEqual(e2.peer, new Uint8Array(16));
    // A DATA-typed frame of another version has no known layout: zeros too.
    const v2 = encodeData(peer, 99, new Uint8Array(4));
    v2[0] = 2;
    await ws.sendFrame(Opcode.BINARY, v2);
    const e3 = await ws.frame();
    assert.ok(
      e3.type === "error" && e3.name === "unsupported-version" &&
        e3.frameNo === 0,
    );
    if (e3.type === "error") assert.deepEqual(e3.peer, new Uint8Array(16));
    ws.close();
  } finally {
    await t.close();
  }
});

Deno.test("relay limits: Host is checked on every path, Origin against --allow-origin; refusals are logged", async () => {
  const t = await startTestRelay({ allowOrigins: ["https://bank.example"] });
  const port = t.relay.port;
  try {
    const get = async (path: string, host: string) => {
      const c = await Deno.connectTls({
        hostname: "localhost",
        port,
        caCerts: [t.caPem],
      });
      await c.write(utf8(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`));
      let text = "";
      const b = new Uint8Array(4096);
      for (
        let n = await c.read(b);
        n !== null;
        n = await c.read(b).catch(() => null)
      ) {
        text += new TextDecoder().decode(b.subarray(0, n));
      }
      c.close();
      return text;
    };
    assert.match(await get("/healthz", "evil.example"), /^HTTP\/1\.1 421 /);
    assert.match(
      await get("/healthz", `localhost:${port}`),
      /^HTTP\/1\.1 200 /,
    );
    assert.ok(
      t.logs.some((l) =>
        l.includes("refused Host 'evil.example'") &&
        l.includes("--name evil.example")
      ),
    );
    const evil = await RawWs.open({
      port,
      caPem: t.caPem,
      headers: ["Origin: https://evil.example"],
    });
    assert.equal(evil.status, 403);
    evil.close();
    assert.ok(
      t.logs.some((l) =>
        l.includes("refused Origin 'https://evil.example' with 403")
      ),
    );
    const bank = await RawWs.open({
      port,
      caPem: t.caPem,
      headers: ["Origin: https://bank.example"],
    });
    assert.equal(bank.status, 101);
    bank.close();
    const cli = await RawWs.open({ port, caPem: t.caPem }); // no Origin: a CLI client
    assert.equal(cli.status, 101);
    cli.close();
  } finally {
    await t.close();
  }
});

Deno.test("relay limits: --public-origin is accepted as Host and as the signed origin; without it the refusal explains the flag", async () => {
  const publicOrigin = "wss://relay.bank.example:8444";
  const t = await startTestRelay({ publicOrigins: [publicOrigin] });
  const port = t.relay.port;
  try {
    // A proxy that keeps Host: the public authority is accepted.
    const kept = await RawWs.open({
      port,
      caPem: t.caPem,
      host: "relay.bank.example:8444",
    });
    assert.equal(kept.status, 101);
    const k1 = (await generateMailboxKey()).key;
    assert.equal((await kept.register(k1, publicOrigin)).type, "registered");
    kept.close();
    // A proxy that rewrites Host to the relay's own address: the public origin still verifies.
    const rewritten = await RawWs.open({ port, caPem: t.caPem });
    const k2 = (await generateMailboxKey()).key;
    assert.equal(
      (await rewritten.register(k2, publicOrigin)).type,
      "registered",
    );
    rewritten.close();
  } finally {
    await t.close();
  }
  const plain = await startTestRelay();
  try {
    const proxied = await RawWs.open({
      port: plain.relay.port,
      caPem: plain.caPem,
      host: "localhost:8444",
    });
    assert.equal(proxied.status, 421);
    proxied.close();
    assert.ok(
      plain.logs.some((l) =>
        l.includes("--public-origin wss://localhost:8444")
      ),
      "the 421 is logged with the right flag",
    );
    const rewritten = await RawWs.open({
      port: plain.relay.port,
      caPem: plain.caPem,
    });
    const k = (await generateMailboxKey()).key;
    const r = await rewritten.register(k, "wss://localhost:8444");
    assert.ok(r.type === "error" && r.name === "bad-registration");
    assert.ok(
      plain.logs.some((l) =>
        l.includes("registration refused") && l.includes("--public-origin")
      ),
    );
    rewritten.close();
  } finally {
    await plain.close();
  }
});
