/**
 * The relay's server side of one WebSocket (RFC 6455) over a TLS socket
 * from lib/deno/tls_front.ts, framed by the shared codec (lib/ws_codec.ts).
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
 * Writes: everything queued in one task goes to the socket as one corked
 * batch (one write to the kernel with `TCP_NODELAY`). A relayed message of
 * 1 KiB or more is not copied: the decoder owns the chunks the socket hands
 * over (a fresh buffer per read) and unmasks each payload in place
 * (`ownsInput`), and its outgoing header is written over the bytes in front
 * of it, where its incoming header (4 bytes longer: the masking key) was
 * (`framed`). Smaller messages and other frames are encoded into one
 * buffer: copying a few hundred bytes costs less than one more part of the
 * corked write.
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
  Opcode,
  writeWsHeader,
  WsDecoder,
  type WsEvent,
  wsHeaderLength,
} from "../ws_codec.ts";
import type { FrontConn } from "./tls_front.ts";

/** Socket states, as `WebSocket.readyState`. */
export const SocketState = { OPEN: 1, CLOSING: 2, CLOSED: 3 } as const;

/** An empty unsolicited pong (RFC 6455 §5.5.3): carries the TCP ACK for what was just read. */
const ACK_PONG = new Uint8Array([0x80 | Opcode.PONG, 0]);

/** A framed payload is sent as a view only when its batch holds at least 1/this of its read chunk. */
const VIEW_MIN_SHARE = 2;

/**
 * Framed payloads shorter than this are copied into the batch's buffer
 * rather than written as views: a copy of a few hundred bytes costs less
 * than one more part in the socket's corked write (one more stream write
 * and a part of the native writev).
 */
const VIEW_MIN_BYTES = 1024;

/** Kinds of queued items. */
const Item = {
  /** A whole encoded frame (copied). */
  FRAME: 0,
  /** A binary message payload: header and payload copied. */
  PAYLOAD: 1,
  /** A binary message payload with header room in front: written in place, not copied. */
  FRAMED: 2,
} as const;

/** What the socket reports to its owner. */
export interface RelaySocketHandlers {
  /**
   * A complete data message (`text` true for a text message). `framed`:
   * `data` has room for an outgoing header in front of it (the decoder's
   * `framed`), so it may be passed to {@link RelaySocket.send} as framed.
   */
  onMessage(data: Bytes, text: boolean, framed: boolean): void;
  /** A frame header announced more than the limit (the socket is being closed with 1009 by the owner). */
  onTooLarge(length: number, opcode: number, prefix: Bytes): void;
  /** The socket is gone (`code` the close code sent or received; 1006 when none). */
  onClosed(code: number, byRelay: boolean): void;
}

/** One server-side WebSocket. */
export class RelaySocket {
  /** `SocketState` value. */
  readyState: number = SocketState.OPEN;
  /** Set by every read; cleared by the owner's idle sweep. */
  seen = true;
  /** A ping was sent by the idle sweep and nothing was read since. */
  pinged = false;
  readonly #conn: FrontConn;
  readonly #decoder: WsDecoder;
  readonly #handlers: RelaySocketHandlers;
  readonly #closeGraceMs: number;
  /** Whole frames and binary message payloads (headers encoded at flush) waiting for this task's write. */
  #queue: Uint8Array[] = [];
  /** For each entry of `#queue`, one of {@link Item}. */
  #kinds: number[] = [];
  /** Bytes `#queue` will write (headers included). */
  #queued = 0;
  /** Of `#queued`, the bytes to be copied into a write buffer (all but framed payloads). */
  #toCopy = 0;
  #flushQueued = false;
  #closeCode = 1006;
  #byRelay = false;
  #halfClosed = false;
  #dropTimer?: ReturnType<typeof setTimeout>;
  #dropped = false;
  /** Bytes were read and nothing was written since: answer with an empty pong (ACK piggyback). */
  #ackDue = false;

  /** Wraps an upgraded connection (start it with {@link start}). */
  constructor(
    conn: FrontConn,
    maxMessage: number,
    closeGraceMs: number,
    handlers: RelaySocketHandlers,
  ) {
    this.#conn = conn;
    this.#decoder = new WsDecoder("server", maxMessage, { ownsInput: true });
    this.#handlers = handlers;
    this.#closeGraceMs = closeGraceMs;
  }

  /** Bytes queued here or in the socket and not yet written. */
  get bufferedAmount(): number {
    return this.#queued + this.#conn.writableLength;
  }

  /** Starts reading; `initial` are bytes already read past the HTTP head. */
  start(initial: Bytes): void {
    this.#conn.onEnd = () => this.#drop();
    this.#conn.onData = (chunk) => this.#read(chunk);
    if (initial.length) this.#read(initial);
    this.#conn.resume();
  }

  /**
   * Queues a binary message (dropped silently unless open). `framed`: the
   * {@link wsHeaderLength} bytes in front of `payload` in its buffer are
   * free (a decoder's `framed` message, sent on once): the header is
   * written there and `payload` is not copied.
   */
  send(payload: Uint8Array, framed = false): void {
    if (this.readyState !== SocketState.OPEN) return;
    const n = wsHeaderLength(payload.length) + payload.length;
    this.#queue.push(payload);
    this.#kinds.push(framed ? Item.FRAMED : Item.PAYLOAD);
    this.#queued += n;
    if (!framed) this.#toCopy += n;
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
    this.#kinds.push(Item.FRAME);
    this.#queued += frame.length;
    this.#toCopy += frame.length;
    this.#scheduleFlush();
  }

  #scheduleFlush(): void {
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    queueMicrotask(() => this.#flush());
  }

  /**
   * Writes everything queued in this task: framed payloads as they are
   * (their header written in front), everything else copied into one
   * buffer, handed to the socket in one corked batch.
   */
  #flush(): void {
    this.#flushQueued = false;
    if (this.#dropped) return;
    if (
      this.#ackDue && this.#queue.length === 0 &&
      this.readyState === SocketState.OPEN
    ) {
      this.#enqueue(ACK_PONG);
      this.#flushQueued = false;
    }
    this.#ackDue = false;
    if (this.#queue.length > 0) {
      const q = this.#queue, kinds = this.#kinds;
      // A view keeps its whole read chunk alive while it waits in the
      // socket: framed payloads go out as views only when this batch holds
      // at least half of their chunk (consecutive payloads of one chunk
      // count together), so what is retained stays within twice what is
      // queued (bufferedAmount, bounded by the high-water mark). Others are
      // copied like any frame.
      for (let i = 0; i < q.length;) {
        if (kinds[i] !== Item.FRAMED) {
          i++;
          continue;
        }
        const buffer = q[i].buffer;
        let j = i, bytes = 0;
        while (
          j < q.length && kinds[j] === Item.FRAMED && q[j].buffer === buffer
        ) {
          bytes += q[j].length;
          j++;
        }
        if (
          bytes * VIEW_MIN_SHARE < buffer.byteLength ||
          bytes < VIEW_MIN_BYTES * (j - i)
        ) {
          for (let k = i; k < j; k++) {
            kinds[k] = Item.PAYLOAD;
            this.#toCopy += wsHeaderLength(q[k].length) + q[k].length;
          }
        }
        i = j;
      }
      const out = this.#toCopy > 0 ? new Uint8Array(this.#toCopy) : undefined;
      const parts: Uint8Array[] = [];
      let off = 0;
      let run = 0;
      for (let i = 0; i < q.length; i++) {
        const p = q[i];
        const kind = kinds[i];
        if (kind === Item.FRAMED) {
          if (off > run) parts.push(out!.subarray(run, off));
          run = off;
          const h = wsHeaderLength(p.length);
          const framed = new Uint8Array(
            p.buffer,
            p.byteOffset - h,
            h + p.length,
          );
          writeWsHeader(framed, 0, Opcode.BINARY, p.length);
          parts.push(framed);
          continue;
        }
        if (kind === Item.PAYLOAD) {
          off = writeWsHeader(out!, off, Opcode.BINARY, p.length);
        }
        out!.set(p, off);
        off += p.length;
      }
      if (off > run) parts.push(out!.subarray(run, off));
      this.#queue = [];
      this.#kinds = [];
      this.#queued = 0;
      this.#toCopy = 0;
      this.#conn.writev(parts);
    }
    if (this.readyState === SocketState.CLOSING && !this.#halfClosed) {
      this.#halfClosed = true;
      this.#conn.endWrite();
    }
  }

  #read(chunk: Uint8Array): void {
    if (this.#dropped) return;
    this.seen = true;
    this.pinged = false;
    if (this.readyState !== SocketState.OPEN) return; // closing: read and discard
    // A read that carried (part of) a message is answered in this task,
    // with the data it caused or else an empty pong: that segment carries
    // the TCP ACK, so a client running Nagle does not wait for our delayed
    // ACK. A read of pongs only is not answered (no pong ping-pong with a
    // client that acknowledges the same way).
    if (this.#input(chunk)) {
      this.#ackDue = true;
      this.#scheduleFlush();
    }
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
          this.#handlers.onMessage(
            ev.data,
            ev.opcode === Opcode.TEXT,
            ev.framed,
          );
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
    this.#kinds = [];
    this.#queued = 0;
    this.#toCopy = 0;
    this.#conn.destroy();
    this.#handlers.onClosed(this.#closeCode, this.#byRelay);
  }
}
