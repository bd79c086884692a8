/**
 * Client control messages (PROTOCOL.md §2.4): application-level messages the
 * clients exchange inside a secure session as ordinary DATA bodies, told
 * apart from chat text by a leading 0x00 byte followed by UTF-8 JSON. User
 * text never starts with U+0000 (the engine refuses such lines), so a body
 * starting with 0x00 is always a control message. They travel, are
 * acknowledged and are signed like any DATA message (they are in the
 * transcript), but are never shown as chat messages.
 *
 * The only kind so far is `resume`, sent as the first DATA message of every
 * session, so that messages re-queued from a lost session are not delivered
 * twice.
 * @module
 */

/** First byte of every control message body (U+0000: never the start of user text). */
export const CONTROL_PREFIX = 0x00;

/** Hex characters of a session hash (SHA-256). */
const SESSION_HASH_HEX = 64;

/** `resume`: what the sender delivered from the peer in its previous session with it. */
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
}

/** Every control message understood by this version. */
export type ControlMessage = ResumeMessage;

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
  if (o.kind !== "resume") return undefined;
  const prev = o.prev;
  if (
    prev !== null &&
    !(typeof prev === "string" && prev.length === SESSION_HASH_HEX &&
      /^[0-9a-f]+$/.test(prev))
  ) {
    throw new RangeError("resume: prev must be null or a 64-digit hex hash");
  }
  const delivered = o.delivered;
  if (
    typeof delivered !== "number" || !Number.isSafeInteger(delivered) ||
    delivered < 0
  ) {
    throw new RangeError("resume: delivered must be an integer ≥ 0");
  }
  const role = o.role;
  if (
    role !== undefined &&
    (typeof role !== "string" || role.length === 0 || role.length > 64 ||
      // deno-lint-ignore no-control-regex
      /[\u0000-\u001f\u007f-\u009f]/.test(role))
  ) {
    throw new RangeError("resume: role must be a short printable string");
  }
  return role === undefined
    ? { kind: "resume", prev, delivered }
    : { kind: "resume", prev, delivered, role };
}

/** One-line description for displays and transcripts, e.g. `[resume prev=ab12cd34… delivered=3]`. */
export function describeControl(body: Uint8Array): string {
  try {
    const m = parseControl(body);
    if (!m) return "[control message of an unknown kind]";
    const prev = m.prev === null ? "none" : `${m.prev.slice(0, 16)}…`;
    return `[resume prev=${prev} delivered=${m.delivered}]`;
  } catch (e) {
    return `[malformed control message: ${(e as Error).message}]`;
  }
}
