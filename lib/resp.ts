/**
 * RESP, the Redis serialization protocol (RESP2 and RESP3,
 * https://redis.io/docs/latest/develop/reference/protocol-spec/), sans-I/O:
 * {@link encodeCommand} turns a command into bytes, {@link RespDecoder} turns
 * bytes — in chunks of any size, split anywhere — into replies. No sockets,
 * no timers; the Deno driver is lib/deno/redis_client.ts.
 *
 * Every length a server sends is bounded ({@link RespLimits}); a reply that
 * breaks the grammar or a bound throws {@link RespProtocolError} and the
 * decoder stays failed (the connection must be dropped: its framing is lost).
 * @module
 */

/** A decoded reply. Bulk strings stay bytes; simple strings are text. */
export type RespValue =
  | { type: "simple"; value: string }
  | { type: "error"; value: string }
  | { type: "integer"; value: bigint }
  | { type: "bulk"; value: Uint8Array }
  | { type: "null" }
  | { type: "array"; items: RespValue[] }
  | { type: "push"; items: RespValue[] }
  | { type: "map"; entries: [RespValue, RespValue][] }
  | { type: "set"; items: RespValue[] }
  | { type: "double"; value: number }
  | { type: "boolean"; value: boolean }
  | { type: "bignum"; value: bigint }
  | { type: "verbatim"; format: string; value: Uint8Array };

/** Bounds on what a server may send (defaults: {@link DEFAULT_RESP_LIMITS}). */
export interface RespLimits {
  /** Largest bulk / verbatim / blob-error body in bytes. */
  maxBulk: number;
  /** Most elements in one array, set, push or map (map: pairs). */
  maxItems: number;
  /** Deepest nesting of aggregates. */
  maxDepth: number;
  /** Longest simple line (simple string, error, number) in bytes. */
  maxLine: number;
}

/** Default bounds: 1 MiB bulk, 1M items, depth 16, 64 KiB lines. */
export const DEFAULT_RESP_LIMITS: RespLimits = {
  maxBulk: 1 << 20,
  maxItems: 1 << 20,
  maxDepth: 16,
  maxLine: 1 << 16,
};

/** The server broke RESP's grammar or a limit; the connection is unusable. */
export class RespProtocolError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(`RESP protocol error: ${message}`);
    this.name = "RespProtocolError";
  }
}

const CR = 0x0d;
const EMPTY = new Uint8Array(0);
const LF = 0x0a;
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: false });

/**
 * Encodes a command as a RESP array of bulk strings (what every server accepts).
 *
 * @example
 * ```ts
 * import { encodeCommand } from "./resp.ts";
 * const bytes = encodeCommand(["PING"]);
 * console.assert(new TextDecoder().decode(bytes) === "*1\r\n$4\r\nPING\r\n");
 * ```
 */
export function encodeCommand(args: readonly RespArgument[]): Uint8Array {
  const bodies: (Uint8Array | readonly Uint8Array[])[] = new Array(args.length);
  const lengths: number[] = new Array(args.length);
  let total = 1 + decimalLength(args.length) + 2;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const body = typeof a === "string" ? encoder.encode(a) : a;
    let n = 0;
    if (body instanceof Uint8Array) n = body.length;
    else for (const part of body) n += part.length;
    bodies[i] = body;
    lengths[i] = n;
    total += 1 + decimalLength(n) + 2 + n + 2;
  }
  const out = new Uint8Array(total);
  let o = writeHeader(out, 0, 0x2a, args.length); // *
  for (let i = 0; i < bodies.length; i++) {
    o = writeHeader(out, o, 0x24, lengths[i]); // $
    const body = bodies[i];
    if (body instanceof Uint8Array) {
      out.set(body, o);
      o += body.length;
    } else {
      for (const part of body) {
        out.set(part, o);
        o += part.length;
      }
    }
    out[o++] = CR;
    out[o++] = LF;
  }
  return out;
}

/** One command argument: text (sent as UTF-8), bytes, or bytes in parts (sent as one bulk string). */
export type RespArgument = string | Uint8Array | readonly Uint8Array[];

/** Digits of a non-negative integer. */
function decimalLength(n: number): number {
  let d = 1;
  while (n >= 10) {
    n = Math.floor(n / 10);
    d++;
  }
  return d;
}

/** Writes `tag ‖ decimal(n) ‖ CRLF` at `o`; returns the offset after it. */
function writeHeader(
  out: Uint8Array,
  o: number,
  tag: number,
  n: number,
): number {
  out[o++] = tag;
  const digits = decimalLength(n);
  for (let i = digits - 1; i >= 0; i--) {
    out[o + i] = 0x30 + (n % 10);
    n = Math.floor(n / 10);
  }
  o += digits;
  out[o++] = CR;
  out[o++] = LF;
  return o;
}

/** An aggregate being filled: what kind, how many children still to come. */
interface Pending {
  kind: "array" | "push" | "set" | "map" | "attribute";
  items: RespValue[];
  left: number;
}

/**
 * Incremental RESP2/RESP3 decoder: feed bytes with {@link push}, get every
 * complete top-level reply back. Attributes (`|`) are read and dropped.
 *
 * @example
 * ```ts
 * import { RespDecoder } from "./resp.ts";
 * const d = new RespDecoder();
 * const te = new TextEncoder();
 * console.assert(d.push(te.encode("+OK\r\n:4")).length === 1);
 * console.assert(d.push(te.encode("2\r\n"))[0].type === "integer");
 * ```
 */
export class RespDecoder {
  readonly #limits: RespLimits;
  #buf: Uint8Array = new Uint8Array(0);
  #pos = 0;
  #stack: Pending[] = [];
  #failed: RespProtocolError | undefined;

  /** Creates a decoder with the given bounds. */
  constructor(limits: Partial<RespLimits> = {}) {
    this.#limits = { ...DEFAULT_RESP_LIMITS, ...limits };
  }

  /** Uint8Array received but not yet part of a complete reply. */
  get buffered(): number {
    return this.#buf.length - this.#pos;
  }

  /**
   * Appends `chunk` and returns every reply it completes, in order (their
   * bytes are copies: `chunk` may be reused afterwards). Throws
   * {@link RespProtocolError}.
   */
  push(chunk: Uint8Array): RespValue[] {
    if (this.#failed) throw this.#failed;
    if (this.#pos === this.#buf.length) {
      this.#buf = chunk;
    } else {
      const rest = this.#buf.subarray(this.#pos);
      const joined = new Uint8Array(rest.length + chunk.length);
      joined.set(rest);
      joined.set(chunk, rest.length);
      this.#buf = joined;
    }
    this.#pos = 0;
    const out: RespValue[] = [];
    try {
      for (;;) {
        const v = this.#next();
        if (v === undefined) break;
        out.push(v);
      }
    } catch (e) {
      this.#failed = e instanceof RespProtocolError
        ? e
        : new RespProtocolError(String(e));
      throw this.#failed;
    }
    // Keep no reference into `chunk`: the caller may reuse its read buffer.
    this.#buf = this.#pos === this.#buf.length
      ? EMPTY
      : this.#buf.slice(this.#pos);
    this.#pos = 0;
    return out;
  }

  /** One complete top-level reply, or undefined when more bytes are needed. */
  #next(): RespValue | undefined {
    for (;;) {
      const start = this.#pos;
      const v = this.#element();
      if (v === undefined) {
        this.#pos = start; // rewind: retry this element with more bytes
        return undefined;
      }
      if (v === ATTRIBUTE_OPENED || v === AGGREGATE_OPENED) {
        const done = this.#closeEmpty();
        if (done !== undefined) return done;
        continue;
      }
      const done = this.#add(v);
      if (done !== undefined) return done;
    }
  }

  /** Adds a finished value to the innermost open aggregate; returns it when top level completes. */
  #add(v: RespValue | undefined): RespValue | undefined {
    let value = v;
    while (value !== undefined) {
      const top = this.#stack.at(-1);
      if (top === undefined) return value;
      top.items.push(value);
      top.left--;
      if (top.left > 0) return undefined;
      this.#stack.pop();
      value = finish(top);
    }
    return undefined;
  }

  /** Aggregates declared with zero children are complete at once. */
  #closeEmpty(): RespValue | undefined {
    const top = this.#stack.at(-1)!;
    if (top.left > 0) return undefined;
    this.#stack.pop();
    return this.#add(finish(top));
  }

  /** Reads one element header (and body for scalars); undefined = need more bytes. */
  #element():
    | RespValue
    | typeof AGGREGATE_OPENED
    | typeof ATTRIBUTE_OPENED
    | undefined {
    const line = this.#line();
    if (line === undefined) return undefined;
    const tag = line[0];
    // Lengths (the common case: `$`, `*`) are parsed from the bytes directly.
    const text = tag === 0x24 || tag === 0x2a || tag === 0x3e
      ? ""
      : decoder.decode(line.subarray(1));
    switch (tag) {
      case 0x2b: // +
        return { type: "simple", value: text };
      case 0x2d: // -
        return { type: "error", value: text };
      case 0x3a: // :
        return { type: "integer", value: parseInteger(text) };
      case 0x28: // (
        return { type: "bignum", value: parseInteger(text) };
      case 0x2c: // ,
        return { type: "double", value: parseDouble(text) };
      case 0x23: // #
        if (text !== "t" && text !== "f") {
          throw new RespProtocolError(`boolean '${text.slice(0, 20)}'`);
        }
        return { type: "boolean", value: text === "t" };
      case 0x5f: // _
        if (text !== "") throw new RespProtocolError("null with a body");
        return { type: "null" };
      case 0x24: // $ bulk
      case 0x21: // ! blob error
      case 0x3d: { // = verbatim
        const n = this.#length(line, this.#limits.maxBulk, tag === 0x24);
        if (n < 0) return { type: "null" }; // RESP2 null bulk
        if (this.#buf.length - this.#pos < n + 2) return undefined;
        const body = this.#buf.slice(this.#pos, this.#pos + n);
        if (
          this.#buf[this.#pos + n] !== CR || this.#buf[this.#pos + n + 1] !== LF
        ) {
          throw new RespProtocolError("bulk string not followed by CRLF");
        }
        this.#pos += n + 2;
        if (tag === 0x24) return { type: "bulk", value: body };
        if (tag === 0x21) return { type: "error", value: decoder.decode(body) };
        if (n < 4 || body[3] !== 0x3a) {
          throw new RespProtocolError("verbatim string without format");
        }
        return {
          type: "verbatim",
          format: decoder.decode(body.subarray(0, 3)),
          value: body.subarray(4),
        };
      }
      case 0x2a: // * array
      case 0x3e: // > push
      case 0x7e: // ~ set
      case 0x25: // % map
      case 0x7c: { // | attribute
        const n = this.#length(line, this.#limits.maxItems, tag === 0x2a);
        if (n < 0) return { type: "null" }; // RESP2 null array
        if (this.#stack.length >= this.#limits.maxDepth) {
          throw new RespProtocolError(
            `nesting deeper than ${this.#limits.maxDepth}`,
          );
        }
        const kind = tag === 0x2a
          ? "array"
          : tag === 0x3e
          ? "push"
          : tag === 0x7e
          ? "set"
          : tag === 0x25
          ? "map"
          : "attribute";
        const pairs = kind === "map" || kind === "attribute";
        this.#stack.push({ kind, items: [], left: pairs ? 2 * n : n });
        return kind === "attribute" ? ATTRIBUTE_OPENED : AGGREGATE_OPENED;
      }
      default:
        throw new RespProtocolError(`unknown type byte 0x${tag.toString(16)}`);
    }
  }

  /** A declared length: a decimal in [0, max], or -1 where RESP2 allows null. */
  #length(line: Uint8Array, max: number, nullable: boolean): number {
    // line = tag ‖ digits (or "-1" where RESP2 allows a null)
    if (nullable && line.length === 3 && line[1] === 0x2d && line[2] === 0x31) {
      return -1;
    }
    let n = 0;
    if (line.length < 2 || line.length > 11) n = -1;
    for (let i = 1; i < line.length && n >= 0; i++) {
      const d = line[i] - 0x30;
      n = d >= 0 && d <= 9 ? n * 10 + d : -1;
    }
    if (n < 0) {
      const shown = decoder.decode(line.subarray(1, 21));
      throw new RespProtocolError(`bad length '${shown}'`);
    }
    if (n > max) throw new RespProtocolError(`length ${n} above limit ${max}`);
    return n;
  }

  /** The next CRLF-terminated line without its CRLF; undefined = incomplete. */
  #line(): Uint8Array | undefined {
    const buf = this.#buf;
    const limit = Math.min(buf.length, this.#pos + this.#limits.maxLine + 2);
    for (let i = this.#pos; i < limit; i++) {
      if (buf[i] === LF) {
        if (i === this.#pos || buf[i - 1] !== CR) {
          throw new RespProtocolError("bare LF");
        }
        const line = buf.subarray(this.#pos, i - 1);
        if (line.length === 0) throw new RespProtocolError("empty line");
        this.#pos = i + 1;
        return line;
      }
    }
    if (limit - this.#pos > this.#limits.maxLine + 1) {
      throw new RespProtocolError(`line above ${this.#limits.maxLine} bytes`);
    }
    return undefined;
  }
}

const AGGREGATE_OPENED = Symbol("aggregate");
const ATTRIBUTE_OPENED = Symbol("attribute");

function finish(p: Pending): RespValue | undefined {
  switch (p.kind) {
    case "array":
      return { type: "array", items: p.items };
    case "push":
      return { type: "push", items: p.items };
    case "set":
      return { type: "set", items: p.items };
    case "map": {
      const entries: [RespValue, RespValue][] = [];
      for (let i = 0; i < p.items.length; i += 2) {
        entries.push([p.items[i], p.items[i + 1]]);
      }
      return { type: "map", entries };
    }
    case "attribute":
      return undefined; // metadata about the next reply: dropped
  }
}

function parseInteger(text: string): bigint {
  if (!/^[-+]?\d{1,400}$/.test(text)) {
    throw new RespProtocolError(`bad integer '${text.slice(0, 20)}'`);
  }
  return BigInt(text);
}

function parseDouble(text: string): number {
  if (text === "inf" || text === "+inf") return Infinity;
  if (text === "-inf") return -Infinity;
  if (text === "nan") return NaN;
  if (!/^[-+]?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(text)) {
    throw new RespProtocolError(`bad double '${text.slice(0, 20)}'`);
  }
  return Number(text);
}

/** Text of a simple or bulk string reply (UTF-8), else undefined. */
export function replyText(v: RespValue): string | undefined {
  if (v.type === "simple") return v.value;
  if (v.type === "bulk" || v.type === "verbatim") {
    return decoder.decode(v.value);
  }
  return undefined;
}
