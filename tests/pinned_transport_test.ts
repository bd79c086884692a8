/**
 * The client's own WebSocket transport (lib/deno/pinned_relay.ts) and the
 * Nagle/delayed-ACK stall: frames written in one task leave in one write,
 * every read is answered with one empty unsolicited Pong unless data goes
 * out anyway, and the real relay ignores those pongs.
 * A scripted TLS server sees the exact bytes the client writes.
 */

import assert from "node:assert/strict";
import { concat, utf8 } from "../lib/bytes.ts";
import { RELAY_SUBPROTOCOL } from "../lib/constants.ts";
import { PinnedRelayConnection } from "../lib/deno/pinned_relay.ts";
import { startQuietRelay } from "./helpers/relay_fixture.ts";
import {
  encodeChallenge,
  encodeData,
  encodeRegistered,
  type Frame,
} from "../lib/relay_frame.ts";
import { generateMailboxKey } from "../lib/registration.ts";
import {
  generateCertificateAuthority,
  issueServerCertificate,
} from "../lib/x509.ts";

const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** One client→server WebSocket frame, unmasked. */
interface WsFrame {
  op: number;
  masked: boolean;
  payload: Uint8Array;
}

/** A server-side WebSocket over a TLS connection, scripted by the test. */
class ScriptedServer {
  #buf = new Uint8Array(0);
  /** Number of `read` calls that returned bytes. */
  reads = 0;
  constructor(readonly conn: Deno.TlsConn) {}

  /** Reads one chunk (one `read` call) into the buffer; false at EOF. */
  async readChunk(): Promise<boolean> {
    const b = new Uint8Array(65536);
    const n = await this.conn.read(b);
    if (n === null) return false;
    this.reads++;
    this.#buf = concat(this.#buf, b.subarray(0, n));
    return true;
  }

  /** Complete frames currently buffered (parsed and removed). */
  frames(): WsFrame[] {
    const out: WsFrame[] = [];
    for (;;) {
      const b = this.#buf;
      if (b.length < 2) return out;
      let len = b[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) return out;
        len = (b[2] << 8) | b[3];
        off = 4;
      }
      const masked = (b[1] & 0x80) !== 0;
      const maskAt = off;
      if (masked) off += 4;
      if (b.length < off + len) return out;
      const payload = b.slice(off, off + len);
      if (masked) {
        for (let i = 0; i < len; i++) payload[i] ^= b[maskAt + (i & 3)];
      }
      out.push({ op: b[0] & 0x0f, masked, payload });
      this.#buf = b.slice(off + len);
    }
  }

  /** Reads until `n` frames are buffered, then returns them; fails after 5 s. */
  async nextFrames(n: number): Promise<WsFrame[]> {
    const got: WsFrame[] = [];
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`fewer than ${n} frames in 5 s`)),
        5000,
      );
    });
    try {
      while (got.length < n) {
        got.push(...this.frames());
        if (got.length >= n) break;
        if (!await Promise.race([this.readChunk(), late])) {
          throw new Error("client closed");
        }
      }
    } finally {
      clearTimeout(timer);
    }
    return got;
  }

  /** Writes binary frames (unmasked, server side) in one write. */
  async send(...payloads: Uint8Array[]): Promise<void> {
    const parts = payloads.map((p) => {
      const head = p.length < 126
        ? new Uint8Array([0x82, p.length])
        : new Uint8Array([0x82, 126, p.length >> 8, p.length & 0xff]);
      return concat(head, p);
    });
    const all = concat(...parts);
    for (let off = 0; off < all.length;) {
      off += await this.conn.write(all.subarray(off));
    }
  }

  /** Answers the HTTP upgrade with 101 and the relay subprotocol. */
  async upgrade(): Promise<void> {
    let text = "";
    while (!text.includes("\r\n\r\n")) {
      const b = new Uint8Array(4096);
      const n = await this.conn.read(b);
      if (n === null) throw new Error("closed during upgrade");
      text += new TextDecoder().decode(b.subarray(0, n));
    }
    const key = /sec-websocket-key: *(\S+)/i.exec(text)![1];
    const accept = new Uint8Array(
      await crypto.subtle.digest("SHA-1", utf8(key + WS_GUID)),
    ).toBase64();
    await this.conn.write(utf8(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
        `Connection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n` +
        `Sec-WebSocket-Protocol: ${RELAY_SUBPROTOCOL}\r\n\r\n`,
    ));
  }
}

/** A scripted TLS server and a pinned client registered with it. */
async function scriptedPair(): Promise<{
  server: ScriptedServer;
  client: PinnedRelayConnection;
  frames: Frame[];
  listener: Deno.TlsListener;
}> {
  const ca = await generateCertificateAuthority({});
  const leaf = await issueServerCertificate(ca, { hosts: ["localhost"] });
  const listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: leaf.certPem,
    key: leaf.keyPem,
  });
  const { key: mailbox } = await generateMailboxKey();
  const accepted = listener.accept();
  const connecting = PinnedRelayConnection.connect({
    url: `wss://localhost:${listener.addr.port}/ws`,
    mailbox,
    caPem: ca.certPem,
  });
  const server = new ScriptedServer(await accepted);
  await server.upgrade();
  await server.send(encodeChallenge(new Uint8Array(32).fill(7), 65536));
  // The CHALLENGE read is acknowledged by a pong before REGISTER (signed later).
  const [ack, register] = await server.nextFrames(2);
  assert.deepEqual([ack.op, register.op], [0xa, 0x2]);
  await server.send(encodeRegistered(mailbox.id));
  const client = await connecting;
  const [registeredAck] = await server.nextFrames(1);
  assert.equal(registeredAck.op, 0xa);
  const frames: Frame[] = [];
  client.onFrame = (f) => frames.push(f);
  return { server, client, frames, listener };
}

async function close(
  p: {
    client: PinnedRelayConnection;
    listener: Deno.TlsListener;
    server: ScriptedServer;
  },
): Promise<void> {
  p.client.close();
  try {
    p.server.conn.close();
  } catch { /* closed */ }
  await p.client.closed;
  p.listener.close();
}

const peer = new Uint8Array(16).fill(1);

Deno.test("transport: a read carrying data is answered by exactly one empty masked Pong", async () => {
  const p = await scriptedPair();
  try {
    await p.server.send(
      encodeData(peer, 1, utf8("a")),
      encodeData(peer, 2, utf8("b")),
      encodeData(peer, 3, utf8("c")),
    );
    const [pong] = await p.server.nextFrames(1);
    assert.equal(pong.op, 0xa, "an unsolicited Pong");
    assert.equal(pong.masked, true, "client frames are masked");
    assert.equal(pong.payload.length, 0);
    assert.equal(p.frames.length, 3);
    // Nothing more: one pong per read, not per frame.
    await new Promise((r) => setTimeout(r, 100));
    const more = await Promise.race([
      p.server.readChunk().then(() => p.server.frames()),
      new Promise<WsFrame[]>((r) => setTimeout(() => r([]), 200)),
    ]);
    assert.deepEqual(more, []);
  } finally {
    await close(p);
  }
});

Deno.test("transport: a read that ends inside a frame is answered too (the rest may be what Nagle holds back)", async () => {
  const p = await scriptedPair();
  try {
    const frame = encodeData(peer, 1, new Uint8Array(200).fill(5));
    const ws = concat(new Uint8Array([0x82, 126, 0, frame.length]), frame);
    await p.server.conn.write(ws.subarray(0, 100));
    const [pong] = await p.server.nextFrames(1);
    assert.equal(pong.op, 0xa, "pong after half a frame");
    assert.equal(p.frames.length, 0, "nothing delivered yet");
    await p.server.conn.write(ws.subarray(100));
    const [pong2] = await p.server.nextFrames(1);
    assert.equal(pong2.op, 0xa);
    assert.equal(p.frames.length, 1, "the frame, once complete");
  } finally {
    await close(p);
  }
});

Deno.test("transport: frames sent in one task leave in one write; a reply in the same task replaces the Pong", async () => {
  const p = await scriptedPair();
  try {
    const readsBefore = p.server.reads;
    for (let i = 0; i < 5; i++) {
      p.client.send(peer, new Uint8Array(300).fill(i));
    }
    const sent = await p.server.nextFrames(5);
    assert.equal(p.server.reads - readsBefore, 1, "all five in one read");
    assert.deepEqual(sent.map((f) => f.op), [2, 2, 2, 2, 2]);
    assert.deepEqual(sent.map((f) => f.payload[22]), [0, 1, 2, 3, 4]);

    // The peer answers within the task that received: its frame carries the ACK, no pong.
    p.client.onFrame = () => p.client.send(peer, utf8("reply"));
    await p.server.send(encodeData(peer, 4, utf8("ping?")));
    const [reply] = await p.server.nextFrames(1);
    assert.equal(reply.op, 0x2);
    assert.equal(new TextDecoder().decode(reply.payload.subarray(22)), "reply");
    const more = await Promise.race([
      p.server.readChunk().then(() => p.server.frames()),
      new Promise<WsFrame[]>((r) => setTimeout(() => r([]), 200)),
    ]);
    assert.deepEqual(more, [], "no pong after a reply");
  } finally {
    await close(p);
  }
});

Deno.test("transport: through the real relay, 32 frames in flight, pongs are ignored and every frame arrives in order", async () => {
  const ca = await generateCertificateAuthority({});
  const leaf = await issueServerCertificate(ca, { hosts: ["localhost"] });
  const relay = await startQuietRelay(leaf.certPem, leaf.keyPem);
  const url = `wss://localhost:${relay.port}/ws`;
  const connect = async () =>
    await PinnedRelayConnection.connect({
      url,
      mailbox: (await generateMailboxKey()).key,
      caPem: ca.certPem,
    });
  const a = await connect();
  const b = await connect();
  try {
    const total = 3000;
    let sent = 0;
    const got: number[] = [];
    const errors: Frame[] = [];
    a.onFrame = (f) => errors.push(f);
    const done = Promise.withResolvers<void>();
    const send = () => {
      const body = new Uint8Array(234);
      new DataView(body.buffer).setUint32(0, sent++);
      a.send(b.id, body);
    };
    b.onFrame = (f) => {
      if (f.type !== "data") {
        errors.push(f);
        return;
      }
      got.push(
        new DataView(f.payload.buffer, f.payload.byteOffset).getUint32(0),
      );
      if (sent < total) send();
      if (got.length === total) done.resolve();
    };
    for (let i = 0; i < 32; i++) send();
    await done.promise;
    assert.deepEqual(got, Array.from({ length: total }, (_, i) => i));
    assert.deepEqual(errors, [], "no ERROR frame from the relay");
    assert.ok(a.open && b.open, "the relay kept both connections");
  } finally {
    await a.close();
    await b.close();
    await relay.shutdown();
    await relay.finished;
  }
});

Deno.test("transport: client frames of every length class are masked so the server unmasks exactly the DATA frame sent", async () => {
  const p = await scriptedPair();
  try {
    // Word-wise masking for aligned payloads, byte-wise tails, 7- and 16-bit lengths.
    const lengths = [0, 1, 3, 100, 103, 104, 105, 1001, 4099, 60001, 65513];
    const sent: Uint8Array[] = [];
    for (const [i, n] of lengths.entries()) {
      const body = new Uint8Array(n);
      for (let j = 0; j < n; j++) body[j] = (j * 31 + i) & 0xff;
      const frameNo = p.client.send(peer, body);
      sent.push(encodeData(peer, frameNo, body));
      await new Promise((r) => setTimeout(r, 0)); // one frame per write
    }
    const got = (await p.server.nextFrames(lengths.length))
      .filter((f) => f.op === 0x2);
    assert.equal(got.length, lengths.length);
    for (const [i, f] of got.entries()) {
      assert.equal(f.masked, true);
      assert.deepEqual(f.payload, sent[i], `${lengths[i]}-byte payload`);
    }
  } finally {
    await close(p);
  }
});
