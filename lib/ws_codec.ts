/**
 * WebSocket framing (RFC 6455 §5), sans-I/O, for both ends: the relay
 * (`lib/deno/relay_socket.ts`, expects masked client frames) and the pinned
 * client transport (`lib/deno/pinned_relay.ts`, expects unmasked server
 * frames). Bytes in, events out; no sockets, no timers, no clock.
 *
 * The decoder enforces a message limit **at the frame header**: a frame (or
 * a fragmented message) whose announced length is above `maxMessage` is
 * reported as `too-large` before any of its payload is buffered, like `ws`'s
 * `maxPayload` or gorilla's `SetReadLimit` — so a peer cannot make the other
 * side hold 64 MiB (Deno's built-in WebSocket buffers whole messages up to
 * that size and its limit cannot be lowered). Protocol violations the RFC
 * says must fail the connection (§5.1 masking, §5.2 reserved bits and
 * opcodes, §5.4 fragmentation, §5.5 control frames) come out as `error`
 * with close code 1002. After `too-large` or `error` the decoder ignores
 * all further input.
 *
 * A decoder that owns its input (`ownsInput`: the relay, whose socket hands
 * over a fresh buffer per read) unmasks payloads in place and returns them
 * as views, and says when the bytes in front of a payload may take its
 * outgoing header (`framed`): a relayed message is then never copied.
 * @module
 */

import { type Bytes, concat, utf8 } from "./bytes.ts";

/** Frame opcodes (RFC 6455 §5.2). */
export const Opcode = {
  /** Continuation of a fragmented message. */
  CONTINUATION: 0x0,
  /** Text message (UTF-8). */
  TEXT: 0x1,
  /** Binary message. */
  BINARY: 0x2,
  /** Close (control). */
  CLOSE: 0x8,
  /** Ping (control). */
  PING: 0x9,
  /** Pong (control). */
  PONG: 0xa,
} as const;

/** RFC 6455 §1.3 GUID for `Sec-WebSocket-Accept`. */
export const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/** Largest control frame payload (RFC 6455 §5.5). */
export const MAX_CONTROL_PAYLOAD = 125;
/** Close code: protocol error (RFC 6455 §7.4.1). */
export const WS_PROTOCOL_ERROR = 1002;
/** Close code: message too big (RFC 6455 §7.4.1). */
export const WS_TOO_BIG = 1009;
/** Close code meaning "no status received" (never sent on the wire). */
export const WS_NO_STATUS = 1005;
/** Bytes of a too-large frame's payload the decoder hands back (enough for a relay DATA header). */
export const TOO_LARGE_PREFIX = 22;

/** Whether this platform stores a u32 least significant byte first (for word-wise masking). */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * XORs `len` bytes of `src` from `from` with the 4-byte key `m` into `dst`
 * from `to` (in place when both are the same bytes); four bytes per step
 * where both sides have the same alignment, from the first word-aligned
 * byte of `dst` (a 64 KiB frame: ~15 µs of CPU instead of ~57); where they
 * differ, `src` is copied into `dst` first and XORed there in place.
 */
function xorMask(
  src: Uint8Array,
  from: number,
  dst: Uint8Array,
  to: number,
  len: number,
  m: Uint8Array,
  mAt: number,
): void {
  let i = 0;
  const s0 = src.byteOffset + from, d0 = dst.byteOffset + to;
  if (LITTLE_ENDIAN && len >= 16 && ((s0 - d0) & 3) === 0) {
    for (; ((d0 + i) & 3) !== 0; i++) {
      dst[to + i] = src[from + i] ^ m[mAt + (i & 3)];
    }
    const words = (len - i) >>> 2;
    const key = (m[mAt + (i & 3)] | m[mAt + ((i + 1) & 3)] << 8 |
      m[mAt + ((i + 2) & 3)] << 16 | m[mAt + ((i + 3) & 3)] << 24) >>> 0;
    const o = new Uint32Array(dst.buffer, d0 + i, words);
    const p = new Uint32Array(src.buffer, s0 + i, words);
    for (let w = 0; w < words; w++) o[w] = p[w] ^ key;
    i += words << 2;
  } else if (LITTLE_ENDIAN && len >= 16 && src.buffer !== dst.buffer) {
    // Alignments differ (a chunk the socket handed over at any offset):
    // one memcpy, then word-wise in place.
    dst.set(src.subarray(from, from + len), to);
    return xorMask(dst, to, dst, to, len, m, mAt);
  } else {
    const m0 = m[mAt], m1 = m[mAt + 1], m2 = m[mAt + 2], m3 = m[mAt + 3];
    for (; i + 4 <= len; i += 4) {
      dst[to + i] = src[from + i] ^ m0;
      dst[to + i + 1] = src[from + i + 1] ^ m1;
      dst[to + i + 2] = src[from + i + 2] ^ m2;
      dst[to + i + 3] = src[from + i + 3] ^ m3;
    }
  }
  for (; i < len; i++) dst[to + i] = src[from + i] ^ m[mAt + (i & 3)];
}

/** The masking key as seen from payload byte `at` on (key byte `at mod 4` first). */
function rotated(m: Uint8Array, at: number): Uint8Array {
  const r = at & 3;
  return r === 0
    ? m
    : Uint8Array.of(m[r], m[(r + 1) & 3], m[(r + 2) & 3], m[(r + 3) & 3]);
}

/** What {@link WsDecoder.next} returns. */
export type WsEvent =
  /**
   * A complete data message (fragments joined, unmasked). `framed`: the
   * decoder owns its input ({@link WsDecoderOptions}) and `data` has
   * {@link wsHeaderLength} free bytes in front of it in its buffer, which
   * the receiver may overwrite to send `data` on as one frame without a
   * copy ({@link writeWsHeader} at `data.byteOffset - wsHeaderLength`).
   */
  | { kind: "message"; opcode: 0x1 | 0x2; data: Bytes; framed: boolean }
  /** A ping; answer with a pong carrying `data`. */
  | { kind: "ping"; data: Bytes }
  /** A pong (solicited or not). */
  | { kind: "pong"; data: Bytes }
  /** The peer's close frame (`code` 1005 when it carried none). */
  | { kind: "close"; code: number; reason: string }
  /**
   * A frame header announced more than `maxMessage` bytes (`length` = the
   * message length so far). `prefix` holds the first payload bytes that were
   * already received with the header (unmasked, at most TOO_LARGE_PREFIX).
   */
  | { kind: "too-large"; length: number; opcode: number; prefix: Bytes }
  /** A violation of RFC 6455: fail the connection with `code`. */
  | { kind: "error"; code: number; reason: string };

/** Which end decodes: a server requires masked frames, a client unmasked ones (§5.1). */
export type WsRole = "server" | "client";

/**
 * Data frames at least this long whose payload is not all there yet are
 * received into their own buffer as bytes arrive (each byte copied once),
 * instead of re-joining the unread rest with every chunk (a 60 KiB frame
 * over 16 KiB TLS records was copied ~4 times).
 */
const PARTIAL_MIN = 1024;

/** A data frame whose header was read and whose payload is arriving. */
interface PartialFrame {
  op: number;
  fin: boolean;
  payload: Bytes;
  filled: number;
  /** The frame's masking key (server side), else undefined. */
  mask?: Uint8Array;
  /** `payload` has header room in front of it (see the `message` event). */
  framed: boolean;
}

/** Options of {@link WsDecoder}. */
export interface WsDecoderOptions {
  /**
   * The caller hands every chunk over for good (a fresh buffer per read,
   * never touched again): the decoder unmasks payloads in place and
   * returns them as views into the chunk, with no copy and no allocation.
   * Such a view has the frame's own header in front of it: the
   * {@link wsHeaderLength} bytes just before it may be overwritten with
   * an outgoing header ({@link WsEvent} `framed`).
   */
  ownsInput?: boolean;
}

/** Incremental RFC 6455 frame decoder. */
export class WsDecoder {
  readonly #role: WsRole;
  readonly #maxMessage: number;
  readonly #ownsInput: boolean;
  #buf: Uint8Array = new Uint8Array(0);
  #off = 0;
  /** The input chunk is the caller's (may be reused): copy what is left before returning. */
  #borrowed = false;
  #fragments: Bytes[] = [];
  #fragmentBytes = 0;
  #fragmentOp = 0;
  #failed = false;
  #partial?: PartialFrame;

  /** `maxMessage`: largest message payload accepted, in bytes. */
  constructor(
    role: WsRole,
    maxMessage: number,
    options: WsDecoderOptions = {},
  ) {
    this.#role = role;
    this.#maxMessage = maxMessage;
    this.#ownsInput = options.ownsInput ?? false;
  }

  /** True once a `too-large` or `error` event was returned: input is ignored from then on. */
  get failed(): boolean {
    return this.#failed;
  }

  /** Bytes received and not yet decoded (a partial frame). */
  get pending(): number {
    return this.#buf.length - this.#off + (this.#partial?.filled ?? 0);
  }

  /**
   * Adds received bytes. `chunk` is only read until {@link next} returns
   * `undefined`; after that the caller may reuse it.
   */
  push(chunk: Uint8Array): void {
    if (this.#failed || chunk.length === 0) return;
    if (
      this.#ownsInput && Object.getPrototypeOf(chunk) !== Uint8Array.prototype
    ) {
      // A node Buffer's slice() is a view, not a copy: payloads handed out
      // as views of it must be plain Uint8Arrays.
      chunk = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length);
    }
    const p = this.#partial;
    if (p !== undefined && p.filled < p.payload.length) {
      const take = Math.min(p.payload.length - p.filled, chunk.length);
      if (p.mask === undefined) {
        p.payload.set(chunk.subarray(0, take), p.filled);
      } else {
        xorMask(
          chunk,
          0,
          p.payload,
          p.filled,
          take,
          rotated(p.mask, p.filled),
          0,
        );
      }
      p.filled += take;
      if (take === chunk.length) return;
      chunk = chunk.subarray(take);
    }
    if (this.#off >= this.#buf.length) {
      this.#buf = chunk;
      this.#borrowed = !this.#ownsInput;
    } else {
      this.#buf = concat(this.#buf.subarray(this.#off), chunk);
      this.#borrowed = false;
    }
    this.#off = 0;
  }

  /** The next event, or `undefined` when more bytes are needed. */
  next(): WsEvent | undefined {
    while (!this.#failed) {
      const p = this.#partial;
      if (p !== undefined) {
        if (p.filled < p.payload.length) return undefined;
        this.#partial = undefined;
        const ev = this.#data(p.op, p.fin, p.payload, p.framed);
        if (ev) return ev;
        continue;
      }
      const b = this.#buf;
      const start = this.#off;
      const avail = b.length - start;
      if (avail < 2) return this.#stash();
      const b0 = b[start], b1 = b[start + 1];
      const fin = (b0 & 0x80) !== 0;
      const op = b0 & 0x0f;
      const masked = (b1 & 0x80) !== 0;
      if ((b0 & 0x70) !== 0) return this.#fail("reserved bits set");
      if (masked !== (this.#role === "server")) {
        return this.#fail(
          masked ? "masked frame from server" : "unmasked frame from client",
        );
      }
      let len = b1 & 0x7f;
      let head = 2;
      if (len === 126) {
        if (avail < 4) return this.#stash();
        len = (b[start + 2] << 8) | b[start + 3];
        head = 4;
      } else if (len === 127) {
        if (avail < 10) return this.#stash();
        const hi =
          (b[start + 2] << 24 | b[start + 3] << 16 | b[start + 4] << 8 |
            b[start + 5]) >>> 0;
        const lo =
          (b[start + 6] << 24 | b[start + 7] << 16 | b[start + 8] << 8 |
            b[start + 9]) >>> 0;
        if (hi & 0x80000000) {
          return this.#fail("64-bit length with the top bit set");
        }
        len = hi * 2 ** 32 + lo;
        head = 10;
      }
      const maskAt = start + head;
      if (masked) head += 4;
      const control = op >= 0x8;
      if (control) {
        if (op > Opcode.PONG) return this.#fail(`reserved opcode ${op}`);
        if (!fin) return this.#fail("fragmented control frame");
        if (len > MAX_CONTROL_PAYLOAD) {
          return this.#fail("control frame above 125 bytes");
        }
      } else {
        if (op > Opcode.BINARY) return this.#fail(`reserved opcode ${op}`);
        if (op === Opcode.CONTINUATION && this.#fragmentOp === 0) {
          return this.#fail("continuation without a message");
        }
        if (op !== Opcode.CONTINUATION && this.#fragmentOp !== 0) {
          return this.#fail("new message inside a fragmented one");
        }
        const total = this.#fragmentBytes + len;
        if (total > this.#maxMessage) {
          // Refused at the header: the payload is never buffered. The bytes
          // that came with the header are handed back (a DATA header's IDs).
          const have = avail < head
            ? 0
            : Math.min(len, TOO_LARGE_PREFIX, avail - head);
          const prefix = this.#fragmentBytes === 0 && have > 0
            ? this.#unmask(b, start + head, have, masked ? maskAt : -1)
            : new Uint8Array(0);
          this.#failed = true;
          this.#release();
          return {
            kind: "too-large",
            length: total,
            opcode: op === Opcode.CONTINUATION ? this.#fragmentOp : op,
            prefix,
          };
        }
      }
      if (avail < head + len) {
        if (control || len < PARTIAL_MIN || avail < head) return this.#stash();
        // Receive the rest straight into the payload (see PARTIAL_MIN).
        const have = avail - head;
        // With ownsInput, room for an outgoing header goes in front.
        const room = this.#ownsInput ? wsHeaderLength(len) : 0;
        const payload = new Uint8Array(room + len).subarray(room);
        const mask = masked ? b.slice(maskAt, maskAt + 4) : undefined;
        if (mask === undefined) {
          payload.set(b.subarray(start + head));
        } else xorMask(b, start + head, payload, 0, have, mask, 0);
        this.#partial = {
          op,
          fin,
          payload,
          filled: have,
          mask,
          framed: this.#ownsInput,
        };
        this.#off = b.length;
        return this.#stash();
      }
      const payload = this.#unmask(b, start + head, len, masked ? maskAt : -1);
      this.#off = start + head + len;
      if (control) {
        if (op === Opcode.PING) return { kind: "ping", data: payload };
        if (op === Opcode.PONG) return { kind: "pong", data: payload };
        if (payload.length === 1) {
          return this.#fail("close frame with a 1-byte body");
        }
        const code = payload.length >= 2
          ? (payload[0] << 8) | payload[1]
          : WS_NO_STATUS;
        let reason: string;
        try {
          reason = new TextDecoder("utf-8", { fatal: true }).decode(
            payload.subarray(2),
          );
        } catch {
          return this.#fail("close reason is not UTF-8");
        }
        this.#release();
        return { kind: "close", code, reason };
      }
      const ev = this.#data(op, fin, payload, this.#ownsInput);
      if (ev) return ev;
    }
    return undefined;
  }

  /** A whole data frame's payload: the message it ends, or undefined (a fragment). */
  #data(
    op: number,
    fin: boolean,
    payload: Bytes,
    framed: boolean,
  ): WsEvent | undefined {
    if (op !== Opcode.CONTINUATION) this.#fragmentOp = op;
    if (fin && this.#fragments.length === 0) {
      const opcode = this.#fragmentOp as 0x1 | 0x2;
      this.#fragmentOp = 0;
      return { kind: "message", opcode, data: payload, framed };
    }
    // An owned view would keep its whole chunk until the message ends.
    this.#fragments.push(this.#ownsInput ? payload.slice() : payload);
    this.#fragmentBytes += payload.length;
    if (!fin) return undefined;
    const data = concat(...this.#fragments);
    const opcode = this.#fragmentOp as 0x1 | 0x2;
    this.#fragments = [];
    this.#fragmentBytes = 0;
    this.#fragmentOp = 0;
    return { kind: "message", opcode, data, framed: false };
  }

  /**
   * `len` payload bytes at `at` of `b`, unmasked with the key at `maskAt`
   * (-1: none): a copy, or with `ownsInput` the bytes themselves, unmasked
   * in place.
   */
  #unmask(b: Uint8Array, at: number, len: number, maskAt: number): Bytes {
    if (this.#ownsInput) {
      if (maskAt >= 0) xorMask(b, at, b, at, len, b, maskAt);
      return b.subarray(at, at + len) as Bytes;
    }
    if (maskAt < 0) return b.slice(at, at + len);
    const out = new Uint8Array(len);
    xorMask(b, at, out, 0, len, b, maskAt);
    return out;
  }

  /** Keeps the undecoded rest (copied if it lives in the caller's chunk); more bytes are needed. */
  #stash(): undefined {
    if (this.#off >= this.#buf.length) {
      this.#release();
    } else if (this.#borrowed || this.#ownsInput) {
      // Owned too: a few bytes left must not keep a whole chunk alive.
      this.#buf = this.#buf.slice(this.#off);
      this.#off = 0;
      this.#borrowed = false;
    }
    return undefined;
  }

  #release(): void {
    if (this.#failed) this.#partial = undefined;
    if (this.#failed || this.#off >= this.#buf.length) {
      this.#buf = new Uint8Array(0);
      this.#off = 0;
      this.#borrowed = false;
    }
  }

  #fail(reason: string): WsEvent {
    this.#failed = true;
    this.#release();
    return { kind: "error", code: WS_PROTOCOL_ERROR, reason };
  }
}

/** Length of the header {@link encodeWsHeader} writes for `len` payload bytes (mask excluded). */
export function wsHeaderLength(len: number): number {
  return len < 126 ? 2 : len < 65536 ? 4 : 10;
}

/** An unmasked frame header (server → client, FIN set) for `len` payload bytes. */
export function encodeWsHeader(opcode: number, len: number): Bytes {
  const out = new Uint8Array(wsHeaderLength(len));
  writeHeader(out, opcode, len, false);
  return out;
}

/**
 * Writes an unmasked frame header (FIN set) for `len` payload bytes into
 * `out` at `offset`, without allocating; returns the offset after it.
 */
export function writeWsHeader(
  out: Uint8Array,
  offset: number,
  opcode: number,
  len: number,
): number {
  out[offset] = 0x80 | opcode;
  if (len < 126) {
    out[offset + 1] = len;
    return offset + 2;
  }
  if (len < 65536) {
    out[offset + 1] = 126;
    out[offset + 2] = len >>> 8;
    out[offset + 3] = len & 0xff;
    return offset + 4;
  }
  out[offset + 1] = 127;
  const dv = new DataView(out.buffer, out.byteOffset + offset);
  dv.setUint32(2, Math.floor(len / 2 ** 32));
  dv.setUint32(6, len >>> 0);
  return offset + 10;
}

function writeHeader(
  out: Uint8Array,
  opcode: number,
  len: number,
  masked: boolean,
): number {
  out[0] = 0x80 | opcode;
  const m = masked ? 0x80 : 0;
  if (len < 126) {
    out[1] = m | len;
    return 2;
  }
  if (len < 65536) {
    out[1] = m | 126;
    out[2] = len >>> 8;
    out[3] = len & 0xff;
    return 4;
  }
  out[1] = m | 127;
  const hi = Math.floor(len / 2 ** 32);
  new DataView(out.buffer, out.byteOffset).setUint32(2, hi);
  new DataView(out.buffer, out.byteOffset).setUint32(6, len >>> 0);
  return 10;
}

/**
 * One complete frame with FIN set. With `mask` (4 bytes) the payload is
 * masked (client → server, RFC 6455 §5.3); without it the frame is
 * unmasked (server → client).
 */
export function encodeWsFrame(
  opcode: number,
  payload: Uint8Array,
  mask?: Uint8Array,
): Bytes {
  const len = payload.length;
  const out = new Uint8Array(wsHeaderLength(len) + (mask ? 4 : 0) + len);
  const head = writeHeader(out, opcode, len, mask !== undefined);
  if (!mask) {
    out.set(payload, head);
    return out;
  }
  out.set(mask.subarray(0, 4), head);
  xorMask(payload, 0, out, head + 4, len, mask, 0);
  return out;
}

/** Bytes of a masked (client → server) frame with `len` payload bytes. */
export function maskedFrameLength(len: number): number {
  return wsHeaderLength(len) + 4 + len;
}

/**
 * Writes one masked frame with FIN set (client → server, RFC 6455 §5.3)
 * whose payload is `parts` joined, into `out` at `at`: the payload is copied
 * once and masked in place. Returns the offset after the frame; `out` needs
 * {@link maskedFrameLength} bytes from `at`.
 */
export function writeMaskedFrame(
  out: Uint8Array,
  at: number,
  opcode: number,
  parts: readonly Uint8Array[],
  mask: Uint8Array,
): number {
  let len = 0;
  for (const p of parts) len += p.length;
  let o = at + writeHeader(out.subarray(at), opcode, len, true);
  out.set(mask.subarray(0, 4), o);
  o += 4;
  const start = o;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  xorMask(out, start, out, start, len, mask, 0);
  return o;
}

/** A close frame body: `code` then the reason, cut to fit a control frame (RFC 6455 §5.5.1). */
export function encodeClosePayload(code: number, reason: string): Bytes {
  let r = utf8(reason);
  if (r.length > MAX_CONTROL_PAYLOAD - 2) {
    r = r.slice(0, MAX_CONTROL_PAYLOAD - 2);
    // do not end inside a UTF-8 sequence
    let end = r.length;
    while (end > 0 && (r[end - 1] & 0xc0) === 0x80) end--;
    if (end > 0 && r[end - 1] >= 0xc0) end--;
    r = r.slice(0, end);
  }
  const body = new Uint8Array(2 + r.length);
  body[0] = code >>> 8;
  body[1] = code & 0xff;
  body.set(r, 2);
  return body;
}

/** `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2: base64(SHA-1(key ‖ GUID))). */
export async function wsAccept(key: string): Promise<string> {
  return new Uint8Array(
    await crypto.subtle.digest("SHA-1", utf8(key + WS_GUID)),
  ).toBase64();
}
