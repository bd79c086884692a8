/**
 * Relay tests over real TLS on a random loopback port (PROTOCOL.md §1).
 */

import assert from "node:assert/strict";
import { concat, u32 } from "../lib/bytes.ts";
import {
  RelayConnectError,
  RelayConnection,
} from "../lib/deno/relay_client.ts";
import {
  CloseCode,
  encodeData,
  encodeRegister,
  type Frame,
  RelayError,
} from "../lib/relay_frame.ts";
import {
  formatSessionId,
  generateMailboxKey,
  type MailboxKey,
  parseSessionId,
  sessionIdOf,
  signRegistration,
} from "../lib/registration.ts";
import { RawClient, startTestRelay, waitFor } from "./helpers/relay_fixture.ts";

type DataFrame = Extract<Frame, { type: "data" }>;
type ErrorFrame = Extract<Frame, { type: "error" }>;

function inbox(c: RelayConnection): Frame[] {
  const frames: Frame[] = [];
  c.onFrame = (f) => frames.push(f);
  return frames;
}

const isError = (name: string) => (f: Frame) =>
  f.type === "error" && f.name === name;

Deno.test("relay: two clients register, IDs are self-certifying and stable across reconnect", async () => {
  const t = await startTestRelay();
  try {
    const { key } = await generateMailboxKey();
    const a1 = await t.connect(key);
    assert.equal(a1.id.toHex(), (await sessionIdOf(key.publicRaw)).toHex());
    await a1.close();
    const a2 = await t.connect(key);
    assert.equal(
      a2.id.toHex(),
      a1.id.toHex(),
      "same key, same ID after reconnect",
    );
    const b = await t.connect();
    assert.notEqual(b.id.toHex(), a2.id.toHex());
    assert.equal(formatSessionId(b.id).length, 26);
    assert.deepEqual(parseSessionId(formatSessionId(b.id)), b.id);
  } finally {
    await t.close();
  }
});

Deno.test("relay: frames forward byte-exact both ways with the sender ID stamped", async () => {
  const t = await startTestRelay();
  try {
    const a = await t.connect();
    const b = await t.connect();
    const inA = inbox(a), inB = inbox(b);
    const payloads = [
      new Uint8Array(0),
      crypto.getRandomValues(new Uint8Array(1000)),
    ];
    for (let i = 0; i < 50; i++) {
      payloads.push(crypto.getRandomValues(new Uint8Array(i * 37)));
    }
    const sentNos = payloads.map((p) => a.send(b.id, p));
    for (const p of payloads.slice(0, 10)) b.send(a.id, p);
    await waitFor(
      () => inB.length === payloads.length && inA.length === 10,
      "delivery",
    );
    inB.forEach((f, i) => {
      assert.equal(f.type, "data");
      const d = f as DataFrame;
      assert.equal(
        d.peer.toHex(),
        a.id.toHex(),
        "sender ID stamped by the relay",
      );
      assert.equal(d.frameNo, sentNos[i]);
      assert.deepEqual(d.payload, payloads[i]);
    });
    inA.forEach((f) =>
      assert.equal((f as DataFrame).peer.toHex(), b.id.toHex())
    );
    // A raw frame cannot claim another sender: the relay overwrites the ID field.
    const c = await t.connect();
    const inC = inbox(c);
    a.sendRaw(encodeData(c.id, 7, new Uint8Array([1, 2, 3])));
    await waitFor(() => inC.length === 1, "raw frame");
    assert.equal((inC[0] as DataFrame).peer.toHex(), a.id.toHex());
    assert.equal(t.relay.metrics.framesForwarded, payloads.length + 11);
  } finally {
    await t.close();
  }
});

Deno.test("relay: offline recipient gets peer-offline naming the recipient and frame number", async () => {
  const t = await startTestRelay();
  try {
    const a = await t.connect();
    const inA = inbox(a);
    const ghost = (await generateMailboxKey()).key.id;
    const no = a.send(ghost, new Uint8Array([9]));
    await waitFor(() => inA.length === 1, "error frame");
    const e = inA[0] as ErrorFrame;
    assert.equal(e.name, "peer-offline");
    assert.equal(e.code, RelayError["peer-offline"]);
    assert.equal(e.peer.toHex(), ghost.toHex());
    assert.equal(e.frameNo, no);
  } finally {
    await t.close();
  }
});

Deno.test("relay: registration with a wrong signature or a replayed challenge fails", async () => {
  const t = await startTestRelay();
  try {
    const { key } = await generateMailboxKey();
    // 1. bad signature
    const r1 = new RawClient(t.url, t.caPem);
    const ch1 = await r1.next((f) => f.type === "challenge");
    assert.equal(ch1.type, "challenge");
    const badSig = crypto.getRandomValues(new Uint8Array(64));
    r1.ws.send(encodeRegister(key.publicRaw, badSig));
    await r1.next(isError("bad-registration"));
    assert.equal((await r1.closed).code, CloseCode.REGISTER_FAILED);
    // 2. a valid registration captured on one connection, replayed on another
    const r2 = new RawClient(t.url, t.caPem);
    const ch2 = await r2.next((f) => f.type === "challenge");
    const origin = new URL(t.url).origin.replace("https:", "wss:");
    const sig = await signRegistration(
      key,
      `wss://${new URL(t.url).host}`,
      (ch2 as Extract<Frame, { type: "challenge" }>).challenge,
    );
    assert.ok(origin.length > 0);
    const r3 = new RawClient(t.url, t.caPem);
    await r3.next((f) => f.type === "challenge");
    r3.ws.send(encodeRegister(key.publicRaw, sig)); // replay against a fresh challenge
    await r3.next(isError("bad-registration"));
    assert.equal((await r3.closed).code, CloseCode.REGISTER_FAILED);
    // the original connection can still use it
    r2.ws.send(encodeRegister(key.publicRaw, sig));
    const reg = await r2.next((f) => f.type === "registered");
    assert.equal(
      (reg as Extract<Frame, { type: "registered" }>).id.toHex(),
      key.id.toHex(),
    );
    // 3. a signature for another origin is refused
    const r4 = new RawClient(t.url, t.caPem);
    const ch4 = await r4.next((f) => f.type === "challenge");
    const sig4 = await signRegistration(
      key,
      "wss://evil.example:443",
      (ch4 as Extract<Frame, { type: "challenge" }>).challenge,
    );
    r4.ws.send(encodeRegister(key.publicRaw, sig4));
    await r4.next(isError("bad-registration"));
    await r2.close();
    await r4.closed;
    assert.ok(t.relay.metrics.droppedCount("bad-registration") >= 3);
  } finally {
    await t.close();
  }
});

Deno.test("relay: every bad input gets its error code and the relay keeps serving others", async () => {
  const t = await startTestRelay();
  try {
    const a = await t.connect();
    const b = await t.connect();
    const inB = inbox(b);
    // before registration
    const raw = new RawClient(t.url, t.caPem);
    await raw.next((f) => f.type === "challenge");
    raw.ws.send(encodeData(a.id, 1, new Uint8Array([1])));
    await raw.next(isError("not-registered"));
    raw.ws.send("hello");
    await raw.next(isError("text-frame"));
    raw.ws.send(new Uint8Array([1]));
    await raw.next(isError("malformed"));
    raw.ws.send(new Uint8Array([9, 0x10, 0, 0]));
    await raw.next(isError("unsupported-version"));
    raw.ws.send(new Uint8Array([1, 0x55]));
    await raw.next(isError("unknown-type"));
    raw.ws.send(new Uint8Array([1, 0x02, 1, 2, 3]));
    await raw.next(isError("malformed"));
    // after registration: short DATA header, second REGISTER
    const inA = inbox(a);
    a.sendRaw(new Uint8Array([1, 0x10, 1, 2, 3]));
    a.sendRaw(encodeRegister(new Uint8Array(32), new Uint8Array(64)));
    await waitFor(() => inA.length === 2, "errors for a");
    assert.deepEqual(inA.map((f) => (f as ErrorFrame).name), [
      "malformed",
      "already-registered",
    ]);
    // others still served
    a.send(b.id, new Uint8Array([42]));
    await waitFor(() => inB.length === 1, "forwarding after bad input");
    assert.deepEqual((inB[0] as DataFrame).payload, new Uint8Array([42]));
    await raw.close();
  } finally {
    await t.close();
  }
});

Deno.test("relay: oversize frame closes with 1009; floods are rate-limited then closed with 1008", async () => {
  const t = await startTestRelay({ maxFrame: 4096, rate: 100, burst: 20 });
  try {
    const a = await t.connect();
    const b = await t.connect();
    a.sendRaw(encodeData(b.id, 1, new Uint8Array(5000)));
    assert.equal((await a.closed).code, CloseCode.TOO_BIG);
    const c = await t.connect();
    const inC = inbox(c);
    for (let i = 0; i < 200; i++) c.send(b.id, new Uint8Array(10));
    await c.closed; // the client may see 1008 or an abrupt close while still sending
    assert.equal(
      t.relay.metrics.closeCount(CloseCode.POLICY),
      1,
      "relay closed it with 1008",
    );
    assert.ok(
      inC.some(isError("rate-limited")),
      "rate-limited error frames first",
    );
    assert.ok(t.relay.metrics.droppedCount("rate-limited") > 0);
    // the relay still works for a fresh client
    const d = await t.connect();
    const inB = inbox(b);
    d.send(b.id, new Uint8Array([1]));
    await waitFor(
      () => inB.some((f) => f.type === "data"),
      "forwarding after abuse",
    );
  } finally {
    await t.close();
  }
});

Deno.test("relay: a reader that never reads gets peer-busy for its senders; memory stays bounded", async () => {
  const highWater = 256 * 1024;
  const t = await startTestRelay({ highWater, rate: 1e6, burst: 1e6 });
  // A TCP-level slow reader: raw TLS socket doing the WebSocket upgrade by hand, then never reading.
  const { key } = await generateMailboxKey();
  const conn = await rawRegisteredSocket(t.relay.port, t.caPem, key);
  try {
    await waitFor(
      () => t.logs.some((l) => l.includes("registered")),
      "slow reader registered",
    );

    const sender = await t.connect();
    const inS = inbox(sender);
    const payload = new Uint8Array(16 * 1024);
    const rssBefore = Deno.memoryUsage().rss;
    let busy = false;
    for (let round = 0; round < 400 && !busy; round++) {
      for (let i = 0; i < 16; i++) sender.send(key.id, payload);
      await new Promise((r) => setTimeout(r, 5));
      busy = inS.some(isError("peer-busy"));
    }
    assert.ok(busy, "sender told peer-busy");
    const e = inS.find(isError("peer-busy")) as ErrorFrame;
    assert.equal(e.peer.toHex(), key.id.toHex());
    assert.ok(e.frameNo > 0);
    const forwarded = t.relay.metrics.framesForwarded;
    // Forwarded bytes stay near the high-water mark plus what the kernel buffers, not all that was sent.
    assert.ok(
      forwarded * payload.length < 64 * 1024 * 1024,
      `forwarded ${forwarded}`,
    );
    const growth = Deno.memoryUsage().rss - rssBefore;
    assert.ok(growth < 96 * 1024 * 1024, `rss grew ${growth} bytes`);
  } finally {
    conn.close();
    await t.close();
  }
});

Deno.test("relay: a second registration of the same ID replaces the first (close 4000)", async () => {
  const t = await startTestRelay();
  try {
    const { key } = await generateMailboxKey();
    const first = await t.connect(key);
    const b = await t.connect();
    const inF = inbox(first);
    b.send(key.id, new Uint8Array([4])); // b's relay connection now caches `first` as its target
    await waitFor(() => inF.length === 1, "delivery to the first connection");
    const second = await t.connect(key);
    const info = await first.closed;
    assert.equal(info.code, CloseCode.REPLACED);
    const inS = inbox(second);
    b.send(key.id, new Uint8Array([5]));
    await waitFor(() => inS.length === 1, "delivery to the newer connection");
  } finally {
    await t.close();
  }
});

Deno.test("relay: no subprotocol → close 4002 with a reason; unregistered connections time out", async () => {
  const t = await startTestRelay({ registerTimeoutMs: 300 });
  try {
    const r = new RawClient(t.url, t.caPem, []);
    const ev = await r.closed;
    assert.equal(ev.code, CloseCode.SUBPROTOCOL_REQUIRED);
    assert.match(ev.reason, /relay\.v1/);
    const idle = new RawClient(t.url, t.caPem);
    await idle.next((f) => f.type === "challenge");
    const ev2 = await idle.closed;
    assert.equal(ev2.code, CloseCode.REGISTER_TIMEOUT);
    // a client library error is clear too
    const { key } = await generateMailboxKey();
    await assert.rejects(
      RelayConnection.connect({
        url: t.url,
        mailbox: key,
        caCerts: [t.caPem],
        protocols: [],
      }),
      /4002.*relay\.v1/,
    );
  } finally {
    await t.close();
  }
});

Deno.test("relay: a client that does not trust the CA gets a TLS error", async () => {
  const t = await startTestRelay();
  try {
    const { key } = await generateMailboxKey();
    await assert.rejects(
      RelayConnection.connect({ url: t.url, mailbox: key }),
      (e: Error & { kind?: string }) =>
        e.kind === "tls" && /UnknownIssuer|certificate/i.test(e.message),
    );
  } finally {
    await t.close();
  }
});

Deno.test("relay: /healthz, /metrics, 404 and 426", async () => {
  const t = await startTestRelay();
  const client = Deno.createHttpClient({ caCerts: [t.caPem] });
  try {
    const a = await t.connect();
    const b = await t.connect();
    a.send(b.id, new Uint8Array(10));
    a.send((await generateMailboxKey()).key.id, new Uint8Array(1));
    await waitFor(
      () => t.relay.metrics.droppedCount("peer-offline") === 1,
      "drop counted",
    );
    const base = `https://localhost:${t.relay.port}`;
    const h = await fetch(`${base}/healthz`, { client });
    assert.equal(h.status, 200);
    const health = await h.json();
    assert.equal(health.status, "ok");
    assert.equal(health.registered, 2);
    const onPublic = await fetch(`${base}/metrics`, { client });
    assert.equal(onPublic.status, 404, "/metrics is not on the public port");
    await onPublic.body?.cancel();
    const m = await (await fetch(t.metricsUrl)).text();
    assert.match(m, /^relay_connections 2$/m);
    assert.match(m, /^relay_registered 2$/m);
    assert.match(m, /^relay_frames_forwarded_total 1$/m);
    assert.match(m, /^relay_bytes_forwarded_total 32$/m);
    assert.match(m, /^relay_frames_dropped_total\{reason="peer-offline"\} 1$/m);
    assert.match(m, /^relay_errors_total\{code="peer-offline"\} 1$/m);
    assert.match(m, /^relay_registrations_total 2$/m);
    assert.match(m, /# TYPE relay_frames_forwarded_total counter/);
    const nf = await fetch(`${base}/nope`, { client });
    assert.equal(nf.status, 404);
    await nf.body?.cancel();
    const up = await fetch(`${base}/ws`, { client });
    assert.equal(up.status, 426);
    assert.match(await up.text(), /relay\.v1/);
  } finally {
    client.close();
    await t.close();
  }
});

Deno.test("relay: graceful shutdown closes clients with 1001 within two seconds", async () => {
  const t = await startTestRelay();
  const a = await t.connect();
  const b = await t.connect();
  const started = performance.now();
  await t.relay.shutdown();
  await t.relay.finished;
  assert.equal((await a.closed).code, CloseCode.GOING_AWAY);
  assert.equal((await b.closed).code, CloseCode.GOING_AWAY);
  assert.ok(performance.now() - started < 2000);
  await t.close();
});

Deno.test("relay: logs carry no full IDs", async () => {
  const t = await startTestRelay();
  try {
    const a = await t.connect();
    await a.close();
    await waitFor(
      () => t.logs.some((l) => l.startsWith("closed")),
      "close log",
    );
    const full = formatSessionId(a.id);
    assert.ok(t.logs.length >= 2);
    for (const l of t.logs) {
      assert.ok(!l.includes(full) && !l.includes(a.id.toHex()), l);
    }
  } finally {
    await t.close();
  }
});

Deno.test("relay: u32 frame numbers wrap without error", () => {
  const f = encodeData(new Uint8Array(16), 0xffffffff + 2, new Uint8Array(0));
  assert.deepEqual(f.subarray(18, 22), u32(1));
});

Deno.test("relay: connections above --max-connections are refused with 503; a freed slot is reusable", async () => {
  const t = await startTestRelay({ maxConnections: 2 });
  try {
    const a = await t.connect();
    await t.connect();
    const { key } = await generateMailboxKey();
    await assert.rejects(
      RelayConnection.connect({ url: t.url, mailbox: key, caCerts: [t.caPem] }),
      RelayConnectError, // Deno reports the 503 as a generic stream error
    );
    assert.ok(t.relay.metrics.droppedCount("capacity") >= 1);
    await a.close();
    await waitFor(() => t.relay.metrics.render(0, 0).length > 0, "metrics");
    const c = await t.connect(key);
    assert.equal(c.id.toHex(), key.id.toHex());
  } finally {
    await t.close();
  }
});

/**
 * A registered connection on a raw TLS socket: the WebSocket upgrade and the
 * REGISTER frame written by hand, after which the socket is never read (so it
 * answers no ping and drains nothing).
 */
async function rawRegisteredSocket(
  port: number,
  caPem: string,
  key: MailboxKey,
): Promise<Deno.TlsConn> {
  const conn = await Deno.connectTls({
    hostname: "localhost",
    port,
    caCerts: [caPem],
  });
  const wsKey = crypto.getRandomValues(new Uint8Array(16)).toBase64();
  const req =
    `GET /ws HTTP/1.1\r\nHost: localhost:${port}\r\nUpgrade: websocket\r\n` +
    `Connection: Upgrade\r\nSec-WebSocket-Key: ${wsKey}\r\nSec-WebSocket-Version: 13\r\n` +
    `Sec-WebSocket-Protocol: relay.v1\r\n\r\n`;
  await conn.write(new TextEncoder().encode(req));
  // Read the 101 response and the CHALLENGE frame (40 bytes: 2-byte header + 38).
  let buf = new Uint8Array(0);
  const chunk = new Uint8Array(4096);
  while (true) {
    const n = await conn.read(chunk);
    if (n === null) throw new Error("closed during upgrade");
    buf = concat(buf, chunk.subarray(0, n));
    const text = new TextDecoder().decode(buf);
    const end = text.indexOf("\r\n\r\n");
    if (end >= 0 && buf.length >= end + 4 + 40) {
      assert.match(text, /^HTTP\/1.1 101/);
      buf = buf.subarray(end + 4);
      break;
    }
  }
  assert.equal(buf[0], 0x82); // FIN + binary
  const challenge = buf.slice(2 + 2, 2 + 2 + 32);
  const sig = await signRegistration(key, `wss://localhost:${port}`, challenge);
  const reg = encodeRegister(key.publicRaw, sig);
  const mask = crypto.getRandomValues(new Uint8Array(4));
  const masked = reg.map((v, i) => v ^ mask[i % 4]);
  await conn.write(
    concat(new Uint8Array([0x82, 0x80 | reg.length]), mask, masked),
  );
  return conn;
}

Deno.test("relay: an idle peer that answers no ping is closed after the idle timeout", async () => {
  const t = await startTestRelay({ idleTimeoutS: 1 });
  const { key } = await generateMailboxKey();
  const conn = await rawRegisteredSocket(t.relay.port, t.caPem, key);
  try {
    await waitFor(
      () => t.logs.some((l) => l.startsWith("registered")),
      "registered",
    );
    const started = performance.now();
    await waitFor(
      () => t.logs.some((l) => l.startsWith("closed")),
      "idle close",
      5000,
    );
    const took = performance.now() - started;
    assert.ok(took < 4000, `closed after ${took} ms`);
    const h = await fetch(`https://localhost:${t.relay.port}/healthz`, {
      client: Deno.createHttpClient({ caCerts: [t.caPem] }),
    });
    assert.equal((await h.json()).registered, 0);
  } finally {
    conn.close();
    await t.close();
  }
});
