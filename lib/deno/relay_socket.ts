/**
 * The relay's server side of one WebSocket (RFC 6455) over a `Deno.TlsConn`
 * from `Deno.listenTls`, framed by the shared codec (lib/ws_codec.ts).
 *
 * Why not `Deno.upgradeWebSocket`: Deno's WebSocket buffers every message up
 * to 64 MiB before the application sees it, and that limit cannot be lowered;
 * here a frame above the relay's `--max-frame` is refused at its header, and
 * the close codes the relay sends are delivered (README → "Why the relay
 * frames WebSocket itself").
 *
 * Acknowledgement pongs: a read that carried (part of) a message and caused
 * no write is answered with an empty unsolicited pong (RFC 6455 §5.5.3),
 * as the pinned client transport does the other way (PROTOCOL.md §1.6).
 *
 * Close, as the relay does it (`close()`): stop acting on input, queue the
 * close frame, and once it is written half-close (TLS close_notify + FIN);
 * keep reading and discarding what the client still sends (so unread input
 * does not turn the close into a reset), and drop the socket when the client
 * closes its side or after `closeGraceMs`, whichever comes first. The slot
 * is free at the latest `closeGraceMs` after `close()`.
 * @module
 */

import type { Bytes } from "../bytes.ts";
import {
  encodeClosePayload,
  encodeWsFrame,
  encodeWsHeader,
  Opcode,
  WsDecoder,
  type WsEvent,
} from "../ws_codec.ts";

/** Socket states, as `WebSocket.readyState`. */
export const SocketState = { OPEN: 1, CLOSING: 2, CLOSED: 3 } as const;

/** Smallest read buffer (an idle connection holds one of these). */
const MIN_READ = 1024;
/** Largest read buffer (a busy connection grows to it). */
const MAX_READ = 64 * 1024;

/** An empty unsolicited pong (RFC 6455 §5.5.3): carries the TCP ACK for what was just read. */
const ACK_PONG = new Uint8Array([0x80 | Opcode.PONG, 0]);

/** What the socket reports to its owner. */
export interface RelaySocketHandlers {
  /** A complete data message (`text` true for a text message). */
  onMessage(data: Bytes, text: boolean): void;
  /** A frame header announced more than the limit (the socket is being closed with 1009 by the owner). */
  onTooLarge(length: number, opcode: number, prefix: Bytes): void;
  /** The socket is gone (`code` the close code sent or received; 1006 when none). */
  onClosed(code: number, byRelay: boolean): void;
}

/** One server-side WebSocket. */
export class RelaySocket {
  /** `SocketState` value. */
  readyState: number = SocketState.OPEN;
  /** Bytes queued or being written. */
  bufferedAmount = 0;
  /** Set by every read; cleared by the owner's idle sweep. */
  seen = true;
  /** A ping was sent by the idle sweep and nothing was read since. */
  pinged = false;
  readonly #conn: Deno.TlsConn;
  readonly #decoder: WsDecoder;
  readonly #handlers: RelaySocketHandlers;
  readonly #closeGraceMs: number;
  #queue: Uint8Array[] = [];
  #writing = false;
  #flushQueued = false;
  #closeCode = 1006;
  #byRelay = false;
  #halfClosed = false;
  #dropTimer?: ReturnType<typeof setTimeout>;
  #readSize = MIN_READ;
  #dropped = false;
  /** Bytes were read and nothing was written since: answer with an empty pong (ACK piggyback). */
  #ackDue = false;

  /** Wraps an upgraded connection; `initial` holds bytes read after the request head. */
  constructor(
    conn: Deno.TlsConn,
    maxMessage: number,
    closeGraceMs: number,
    handlers: RelaySocketHandlers,
  ) {
    this.#conn = conn;
    this.#decoder = new WsDecoder("server", maxMessage);
    this.#handlers = handlers;
    this.#closeGraceMs = closeGraceMs;
  }

  /** Starts reading; `initial` are bytes already read past the HTTP head. */
  start(initial: Bytes): void {
    if (initial.length) this.#input(initial);
    this.#readLoop();
  }

  /** Queues a binary message (dropped silently unless open). */
  send(payload: Uint8Array): void {
    if (this.readyState !== SocketState.OPEN) return;
    const head = encodeWsHeader(Opcode.BINARY, payload.length);
    this.#queue.push(head, payload);
    this.bufferedAmount += head.length + payload.length;
    this.#scheduleFlush();
  }

  /** Queues a ping (idle detection). */
  ping(): void {
    this.#enqueue(encodeWsFrame(Opcode.PING, new Uint8Array(0)));
  }

  /** Relay-initiated close: see the module doc. */
  close(code: number, reason: string): void {
    if (this.readyState !== SocketState.OPEN) return;
    this.readyState = SocketState.CLOSING;
    this.#closeCode = code;
    this.#byRelay = true;
    this.#enqueue(
      encodeWsFrame(Opcode.CLOSE, encodeClosePayload(code, reason)),
      true,
    );
    this.#dropTimer = setTimeout(() => this.#drop(), this.#closeGraceMs);
  }

  /** Drops the socket now (no close handshake). */
  abort(): void {
    this.#drop();
  }

  #enqueue(frame: Bytes, force = false): void {
    if (this.readyState !== SocketState.OPEN && !force) return;
    this.#queue.push(frame);
    this.bufferedAmount += frame.length;
    this.#scheduleFlush();
  }

  #scheduleFlush(): void {
    if (this.#flushQueued || this.#writing) return;
    this.#flushQueued = true;
    queueMicrotask(() => {
      this.#flushQueued = false;
      if (
        this.#ackDue && this.#queue.length === 0 &&
        this.readyState === SocketState.OPEN
      ) {
        this.#queue.push(ACK_PONG);
        this.bufferedAmount += ACK_PONG.length;
      }
      this.#ackDue = false;
      this.#flush();
    });
  }

  async #flush(): Promise<void> {
    if (this.#writing || this.#dropped) return;
    this.#writing = true;
    try {
      while (this.#queue.length > 0 && !this.#dropped) {
        const q = this.#queue;
        this.#queue = [];
        let chunk: Uint8Array;
        if (q.length === 1) chunk = q[0];
        else {
          let n = 0;
          for (const p of q) n += p.length;
          chunk = new Uint8Array(n);
          let off = 0;
          for (const p of q) {
            chunk.set(p, off);
            off += p.length;
          }
        }
        let off = 0;
        while (off < chunk.length) {
          off += await this.#conn.write(chunk.subarray(off));
        }
        this.bufferedAmount -= chunk.length;
      }
    } catch {
      this.#drop();
      return;
    } finally {
      this.#writing = false;
    }
    if (
      this.readyState === SocketState.CLOSING && !this.#halfClosed &&
      !this.#dropped
    ) {
      this.#halfClosed = true;
      this.#conn.closeWrite().catch(() => this.#drop());
    }
  }

  async #readLoop(): Promise<void> {
    let buf = new Uint8Array(this.#readSize);
    for (;;) {
      let n: number | null;
      try {
        n = await this.#conn.read(buf);
      } catch {
        n = null;
      }
      if (n === null || this.#dropped) break;
      this.seen = true;
      this.pinged = false;
      if (this.readyState === SocketState.OPEN) {
        // A read that carried (part of) a message is answered at once, with
        // the data it caused or else an empty pong: that segment carries the
        // TCP ACK, so a client running Nagle does not wait for our delayed
        // ACK. A read of pongs only is not answered (no pong ping-pong with
        // a client that acknowledges the same way).
        if (this.#input(buf.subarray(0, n)) && !this.#writing) {
          this.#ackDue = true;
          this.#scheduleFlush();
        }
      }
      // Size the next read: grow while reads fill the buffer, shrink back when idle.
      if (n === buf.length && this.#readSize < MAX_READ) {
        this.#readSize *= 2;
        buf = new Uint8Array(this.#readSize);
      } else if (n < this.#readSize / 8 && this.#readSize > MIN_READ) {
        this.#readSize /= 2;
        buf = new Uint8Array(this.#readSize);
      }
    }
    this.#drop();
  }

  /** Decodes and dispatches; true when the bytes carried more than pongs. */
  #input(chunk: Uint8Array): boolean {
    this.#decoder.push(chunk);
    let worth = false;
    let ev: WsEvent | undefined;
    while (
      this.readyState === SocketState.OPEN && (ev = this.#decoder.next())
    ) {
      if (ev.kind !== "pong") worth = true;
      switch (ev.kind) {
        case "message":
          this.#handlers.onMessage(ev.data, ev.opcode === Opcode.TEXT);
          break;
        case "ping":
          this.#enqueue(encodeWsFrame(Opcode.PONG, ev.data));
          break;
        case "pong":
          break; // liveness only (`seen`)
        case "close":
          // Client-initiated: echo its code, then half-close and drop as for ours.
          this.#enqueue(
            encodeWsFrame(
              Opcode.CLOSE,
              ev.code === 1005
                ? new Uint8Array(0)
                : encodeClosePayload(ev.code, ""),
            ),
          );
          this.readyState = SocketState.CLOSING;
          this.#closeCode = ev.code;
          this.#dropTimer = setTimeout(() => this.#drop(), this.#closeGraceMs);
          this.#scheduleFlush();
          break;
        case "too-large":
          this.#handlers.onTooLarge(ev.length, ev.opcode, ev.prefix);
          break;
        case "error":
          this.close(ev.code, ev.reason);
          break;
      }
    }
    return worth || this.#decoder.pending > 0;
  }

  #drop(): void {
    if (this.#dropped) return;
    this.#dropped = true;
    clearTimeout(this.#dropTimer);
    this.readyState = SocketState.CLOSED;
    this.#queue = [];
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
    this.#handlers.onClosed(this.#closeCode, this.#byRelay);
  }
}
