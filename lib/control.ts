/**
 * Conversation control messages (PROTOCOL.md §2.4): application-level
 * messages the two sides of a conversation exchange inside a secure session
 * as ordinary DATA bodies, told apart from user text by a leading 0x00 byte
 * followed by UTF-8 JSON. User text never starts with U+0000 (the
 * conversation refuses it), so a body starting with 0x00 is always a control
 * message. They travel, are acknowledged and are signed like any DATA
 * message (they are in the transcript), but are never shown as messages.
 *
 * Kinds: `resume` (first DATA message of every session: the previous
 * session, the sender's message stream, what it delivered of the peer's)
 * and `next` (the message id of the sender's next user message in this
 * session). Pure functions; safe in a browser.
 * @module
 */

/** First byte of every control message body (U+0000: never the start of user text). */
export const CONTROL_PREFIX = 0x00;

/** Hex characters of a session hash (SHA-256). */
const SESSION_HASH_HEX = 64;

/** Largest message id or count carried (2^53 − 1: exact in JSON numbers). */
const MAX_INT = Number.MAX_SAFE_INTEGER;

/** `resume`: sent as the first DATA message of every session (PROTOCOL.md §2.4, member by member). */
export interface ResumeMessage {
  /** Always "resume". */
  kind: "resume";
  /** Session hash (lower-case hex) of the sender's previous session with this peer; null = none. */
  prev: string | null;
  /** Highest reliable seq the sender delivered, in order, from the peer in that session (0 = none). */
  delivered: number;
  /**
   * The sender's application role ("bank", "customer"). Signed with the
   * chain like the rest, it binds the transcript's role label to the
   * sender's identity (PROTOCOL.md §2.2.10). Optional: older clients omit it.
   */
  role?: string;
  /** The sender's message stream ID (32 lower-case hex digits); absent = a peer without message ids. */
  stream?: string;
  /** The receiver's stream as last named to the sender; null = none yet (with `stream` only). */
  peerStream?: string | null;
  /** Highest message id of `peerStream` the sender delivered (0 when `peerStream` is null; with `stream` only). */
  deliveredId?: number;
  /** Message id (≥ 1) of the sender's next user message in this session, as a `next` would say (with `stream` only; optional). */
  next?: number;
}

/** `next`: the next user message in this session has message id `id`; later ones id + 1, id + 2, … */
export interface NextMessage {
  /** Always "next". */
  kind: "next";
  /** Message id (≥ 1) of the sender's next user message in this session. */
  id: number;
}

/** Every control message understood by this version. */
export type ControlMessage = ResumeMessage | NextMessage;

/** True when a DATA body is a control message (starts with 0x00). */
export function isControl(body: Uint8Array): boolean {
  return body.length > 0 && body[0] === CONTROL_PREFIX;
}

/** Encodes a control message: 0x00 ‖ UTF-8 JSON. */
export function encodeControl(m: ControlMessage): Uint8Array<ArrayBuffer> {
  const json = new TextEncoder().encode(JSON.stringify(m));
  const out = new Uint8Array(1 + json.length);
  out[0] = CONTROL_PREFIX;
  out.set(json, 1);
  return out;
}

const STREAM_RE = /^[0-9a-f]{32}$/;
const isStream = (v: unknown): v is string =>
  typeof v === "string" && STREAM_RE.test(v);
const isInt = (v: unknown, min: number): v is number =>
  typeof v === "number" && Number.isSafeInteger(v) && v >= min && v <= MAX_INT;

/**
 * Parses a control message body (with its 0x00 prefix). Returns the message,
 * `undefined` for a well-formed control message of an unknown kind (newer
 * client: ignored), or throws a RangeError naming what is wrong.
 */
export function parseControl(body: Uint8Array): ControlMessage | undefined {
  if (!isControl(body)) throw new RangeError("not a control message");
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(
      body.subarray(1),
    ));
  } catch {
    throw new RangeError("control message is not UTF-8 JSON");
  }
  if (!v || typeof v !== "object" || Array.isArray(v)) {
    throw new RangeError("control message is not a JSON object");
  }
  const o = v as Record<string, unknown>;
  if (typeof o.kind !== "string") {
    throw new RangeError("control message without a kind");
  }
  if (o.kind === "next") {
    if (!isInt(o.id, 1)) {
      throw new RangeError("next: id must be an integer ≥ 1");
    }
    return { kind: "next", id: o.id };
  }
  if (o.kind !== "resume") return undefined;
  const prev = o.prev;
  if (
    prev !== null &&
    !(typeof prev === "string" && prev.length === SESSION_HASH_HEX &&
      /^[0-9a-f]+$/.test(prev))
  ) {
    throw new RangeError("resume: prev must be null or a 64-digit hex hash");
  }
  if (!isInt(o.delivered, 0)) {
    throw new RangeError("resume: delivered must be an integer ≥ 0");
  }
  const m: ResumeMessage = { kind: "resume", prev, delivered: o.delivered };
  const role = o.role;
  if (
    role !== undefined &&
    (typeof role !== "string" || role.length === 0 || role.length > 64 ||
      // deno-lint-ignore no-control-regex
      /[\u0000-\u001f\u007f-\u009f]/.test(role))
  ) {
    throw new RangeError("resume: role must be a short printable string");
  }
  if (role !== undefined) m.role = role;
  if (o.stream === undefined) {
    if (
      o.peerStream !== undefined || o.deliveredId !== undefined ||
      o.next !== undefined
    ) {
      throw new RangeError("resume: peerStream, deliveredId, next need stream");
    }
    return m;
  }
  if (!isStream(o.stream)) {
    throw new RangeError("resume: stream must be 32 lower-case hex digits");
  }
  if (o.peerStream !== null && !isStream(o.peerStream)) {
    throw new RangeError("resume: peerStream must be null or 32 hex digits");
  }
  if (!isInt(o.deliveredId, 0)) {
    throw new RangeError("resume: deliveredId must be an integer ≥ 0");
  }
  if (o.peerStream === null && o.deliveredId !== 0) {
    throw new RangeError(
      "resume: deliveredId must be 0 when peerStream is null",
    );
  }
  if (o.next !== undefined && !isInt(o.next, 1)) {
    throw new RangeError("resume: next must be an integer ≥ 1");
  }
  m.stream = o.stream;
  m.peerStream = o.peerStream;
  m.deliveredId = o.deliveredId;
  if (o.next !== undefined) m.next = o.next;
  return m;
}

/** One-line description for displays and transcripts, e.g. `[resume prev=ab12cd34… delivered=3]`. */
export function describeControl(body: Uint8Array): string {
  try {
    const m = parseControl(body);
    if (!m) return "[control message of an unknown kind]";
    if (m.kind === "next") return `[next id=${m.id}]`;
    const prev = m.prev === null ? "none" : `${m.prev.slice(0, 16)}…`;
    return `[resume prev=${prev} delivered=${m.delivered}]`;
  } catch (e) {
    return `[malformed control message: ${(e as Error).message}]`;
  }
}
