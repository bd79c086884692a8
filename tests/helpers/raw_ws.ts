/**
 * Test helper: a WebSocket client written by hand over a real TLS socket, so
 * attack tests can send what no well-behaved client sends (giant headers,
 * unmasked frames, pipelined floods) and read exactly what the relay sends
 * back (frames, close codes, the end of the stream). Framing comes from the
 * shared codec (lib/ws_codec.ts).
 * @module
 */

import { concat, utf8 } from "../../lib/bytes.ts";
import { RELAY_SUBPROTOCOL } from "../../lib/constants.ts";
import {
  decodeFrame,
  encodeRegister,
  type Frame,
} from "../../lib/relay_frame.ts";
import { type MailboxKey, signRegistration } from "../../lib/registration.ts";
import {
  encodeWsFrame,
  Opcode,
  WsDecoder,
  type WsEvent,
} from "../../lib/ws_codec.ts";

/** Options of {@link RawWs.open}. */
export interface RawWsOptions {
  port: number;
  caPem: string;
  /** Host header (default `localhost:PORT`). */
  host?: string;
  /** Extra request header lines (`Origin: …`). */
  headers?: string[];
  /** Offer the relay subprotocol (default true). */
  subprotocol?: boolean;
}

/** A raw client WebSocket. */
export class RawWs {
  readonly conn: Deno.TlsConn;
  /** HTTP status of the upgrade response. */
  status = 0;
  /** The full response head. */
  head = "";
  readonly #decoder = new WsDecoder("client", 1 << 20);
  #events: WsEvent[] = [];
  #ended = false;
  #reading?: Promise<void>;

  private constructor(conn: Deno.TlsConn) {
    this.conn = conn;
  }

  /** Connects, sends the upgrade request and reads the response head. */
  static async open(o: RawWsOptions): Promise<RawWs> {
    const conn = await Deno.connectTls({
      hostname: "localhost",
      port: o.port,
      caCerts: [o.caPem],
    });
    const ws = new RawWs(conn);
    const key = crypto.getRandomValues(new Uint8Array(16)).toBase64();
    const lines = [
      `GET /ws HTTP/1.1`,
      `Host: ${o.host ?? `localhost:${o.port}`}`,
      "Upgrade: websocket",
      "Connection: Upgrade",
      `Sec-WebSocket-Key: ${key}`,
      "Sec-WebSocket-Version: 13",
      ...(o.subprotocol === false
        ? []
        : [`Sec-WebSocket-Protocol: ${RELAY_SUBPROTOCOL}`]),
      ...(o.headers ?? []),
    ];
    await writeAll(conn, utf8(lines.join("\r\n") + "\r\n\r\n"));
    let buf = new Uint8Array(0);
    const chunk = new Uint8Array(16384);
    for (;;) {
      const n = await conn.read(chunk).catch(() => null);
      if (n === null) break;
      buf = concat(buf, chunk.subarray(0, n));
      const text = new TextDecoder().decode(buf);
      const end = text.indexOf("\r\n\r\n");
      if (end >= 0) {
        ws.head = text.slice(0, end);
        ws.#decoder.push(buf.subarray(end + 4));
        break;
      }
    }
    ws.status = Number(/^HTTP\/1\.1 (\d{3})/.exec(ws.head)?.[1] ?? 0);
    return ws;
  }

  /** Writes one frame; masked unless `unmasked`. */
  async sendFrame(
    op: number,
    payload: Uint8Array,
    unmasked = false,
  ): Promise<void> {
    const mask = unmasked
      ? undefined
      : crypto.getRandomValues(new Uint8Array(4));
    await writeAll(this.conn, encodeWsFrame(op, payload, mask));
  }

  /** Writes raw bytes. */
  write(bytes: Uint8Array): Promise<void> {
    return writeAll(this.conn, bytes);
  }

  /** Reads until an event matching `pred` arrives (consuming events before it), or the stream ends. */
  async until(
    pred: (e: WsEvent) => boolean,
    ms = 5000,
  ): Promise<WsEvent | undefined> {
    const deadline = performance.now() + ms;
    for (;;) {
      for (let ev = this.#decoder.next(); ev; ev = this.#decoder.next()) {
        this.#events.push(ev);
      }
      const i = this.#events.findIndex(pred);
      if (i >= 0) return this.#events.splice(0, i + 1).at(-1);
      if (this.#ended) return undefined;
      const left = deadline - performance.now();
      if (left <= 0) throw new Error("timed out waiting for the relay");
      await this.#readOnce(left);
    }
  }

  /** The next relay frame (a binary message decoded as a relay frame). */
  async frame(ms = 5000): Promise<Frame> {
    const ev = await this.until((e) => e.kind === "message", ms);
    if (ev?.kind !== "message") throw new Error("stream ended before a frame");
    return decodeFrame(ev.data);
  }

  /** The close frame the relay sends (undefined when the stream ended without one). */
  async closeFrame(
    ms = 5000,
  ): Promise<{ code: number; reason: string } | undefined> {
    const ev = await this.until((e) => e.kind === "close", ms);
    return ev?.kind === "close"
      ? { code: ev.code, reason: ev.reason }
      : undefined;
  }

  /** Resolves when the relay ends the stream (EOF or reset); rejects after `ms`. */
  async ended(ms = 5000): Promise<void> {
    const deadline = performance.now() + ms;
    while (!this.#ended) {
      const left = deadline - performance.now();
      if (left <= 0) throw new Error("the relay did not close the connection");
      await this.#readOnce(left);
    }
  }

  async #readOnce(ms: number): Promise<void> {
    this.#reading ??= (async () => {
      const b = new Uint8Array(65536);
      const n = await this.conn.read(b).catch(() => null);
      if (n === null) this.#ended = true;
      else this.#decoder.push(b.slice(0, n));
      this.#reading = undefined;
    })();
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#reading,
      new Promise((r) => timer = setTimeout(r, ms)),
    ]);
    clearTimeout(timer);
  }

  /** Registers with `key` (the origin is `wss://` + Host). */
  async register(key: MailboxKey, origin: string): Promise<Frame> {
    const ch = await this.frame();
    if (ch.type !== "challenge") {
      throw new Error(`expected CHALLENGE, got ${ch.type}`);
    }
    const sig = await signRegistration(key, origin, ch.challenge);
    await this.sendFrame(Opcode.BINARY, encodeRegister(key.publicRaw, sig));
    return await this.frame();
  }

  /** Closes the socket (no close handshake). */
  close(): void {
    try {
      this.conn.close();
    } catch {
      // closed
    }
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) {
    off += await conn.write(bytes.subarray(off));
  }
}
