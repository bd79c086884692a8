/**
 * Session transcripts: the record of every reliable message a session sent
 * or delivered, with the chain signatures, and `verifyTranscript`, which
 * checks a saved transcript offline: it recomputes both hash chains from the
 * session hash and the roles, verifies every signature with the recorded
 * SPKIs, and reports which messages are covered by a later signature of
 * their sender (non-repudiable) and which trailing ones are not.
 *
 * JSON form (bytes as base64url without padding, seq as decimal strings):
 * { "format": "e2e.v1 transcript", "suite": 1, "localRole": "initiator",
 *   "sessionHash", "initiatorSpki", "responderSpki",
 *   "messages": [{ "dir": "i2r", "seq": "1", "type": "data", "body",
 *                  "sig"?, "head"? }] }
 * @module
 */

import type { Bytes } from "./bytes.ts";
import { ProtocolError } from "./errors.ts";
import type { HandshakeRole } from "./handshake_result.ts";
import { chainSignatureInput, chainStart, chainStep } from "./hash_chain.ts";
import {
  type Direction,
  INNER_TYPE_NAMES,
  InnerType,
  isReliable,
} from "./record.ts";
import { importIdentityPublic, verify } from "./suite.ts";
import { fingerprint, formatFingerprint } from "./fingerprint.ts";

/** Format tag of transcript files. */
export const TRANSCRIPT_FORMAT = "e2e.v1 transcript";

/** One reliable message in a transcript. */
export interface TranscriptMessage {
  /** Who sent it: "i2r" (initiator → responder) or "r2i". */
  direction: Direction;
  /** Reliable sequence number in that direction. */
  seq: bigint;
  /** Inner type ({@link INNER_TYPE_NAMES}). */
  type: number;
  /** Body bytes exactly as hashed into the chain. */
  body: Bytes;
  /** Sender's chain signature over H_seq, when this message carried one. */
  signature?: Bytes;
  /** Chain head H_seq, recorded for signed messages (lets a verifier tell a tampered body from a bad signature). */
  head?: Bytes;
  /**
   * True while a signature for this message is being made (sent) or checked
   * (received): `signature`/`head` are not final yet. The session clears it
   * when they are set. Writers of a transcript file stop at the first
   * pending message so a signature is never written before it exists.
   */
  pending?: boolean;
}

/** Session facts a transcript is verified against. */
export interface TranscriptContext {
  /** Cipher suite wire id. */
  suite: number;
  /** Role of the side that recorded the transcript. */
  localRole: HandshakeRole;
  /** th_final of the handshake. */
  sessionHash: Bytes;
  /** Initiator's identity SPKI (DER). */
  initiatorSpki: Bytes;
  /** Responder's identity SPKI (DER). */
  responderSpki: Bytes;
}

/** JSON shape of a saved transcript. */
export interface TranscriptJson {
  /** Always {@link TRANSCRIPT_FORMAT}. */
  format: string;
  /** Cipher suite wire id. */
  suite: number;
  /** Role of the recorder. */
  localRole: HandshakeRole;
  /** base64url session hash. */
  sessionHash: string;
  /** base64url initiator SPKI. */
  initiatorSpki: string;
  /** base64url responder SPKI. */
  responderSpki: string;
  /** Messages in the order they were recorded. */
  messages: {
    dir: Direction;
    seq: string;
    type: string;
    body: string;
    sig?: string;
    head?: string;
  }[];
}

const B64 = { alphabet: "base64url", omitPadding: true } as const;
const b64 = (b: Uint8Array) => b.toBase64(B64);

/** Recorder of a live session's reliable messages (mutable; entries may gain signatures later). */
export class Transcript {
  /** Session facts. */
  readonly context: TranscriptContext;
  /** Messages in recording order. */
  readonly messages: TranscriptMessage[] = [];

  /** Creates an empty transcript for `context`. */
  constructor(context: TranscriptContext) {
    this.context = context;
  }

  /** Appends a message record (the caller may fill `signature`/`head` later, then clears `pending`). */
  add(message: TranscriptMessage): TranscriptMessage {
    this.messages.push(message);
    return message;
  }

  /**
   * How many messages from the start are final (none of them `pending`),
   * scanning from `from` (a count the caller already knows to be final).
   */
  settled(from = 0): number {
    let i = from;
    while (i < this.messages.length && !this.messages[i].pending) i++;
    return i;
  }

  /** The JSON form (see module doc). */
  toJSON(): TranscriptJson {
    const c = this.context;
    return {
      format: TRANSCRIPT_FORMAT,
      suite: c.suite,
      localRole: c.localRole,
      sessionHash: b64(c.sessionHash),
      initiatorSpki: b64(c.initiatorSpki),
      responderSpki: b64(c.responderSpki),
      messages: this.messages.map((m) => {
        const o: TranscriptJson["messages"][number] = {
          dir: m.direction,
          seq: m.seq.toString(),
          type: INNER_TYPE_NAMES[m.type] ?? String(m.type),
          body: b64(m.body),
        };
        if (m.signature) o.sig = b64(m.signature);
        if (m.signature && m.head) o.head = b64(m.head);
        return o;
      }),
    };
  }
}

/** One message as established by {@link verifyTranscript}. */
export interface VerifiedMessage {
  /** Sender role. */
  role: HandshakeRole;
  /** Sender's fingerprint (readable hex groups). */
  fingerprint: string;
  /** Sequence number in the sender's direction. */
  seq: bigint;
  /** Inner type name ("data", "close", …). */
  type: string;
  /** Body bytes. */
  body: Bytes;
  /** Body decoded as UTF-8 (replacement characters where invalid). */
  text: string;
  /** Seq of the sender's signature that covers this message, if any. */
  coveredBy?: bigint;
}

/** Result of {@link verifyTranscript}. */
export interface VerifiedTranscript {
  /** Hex session hash. */
  sessionHash: string;
  /** Readable fingerprints by role. */
  fingerprints: Record<HandshakeRole, string>;
  /** Messages per direction in seq order, i2r first then r2i. */
  messages: VerifiedMessage[];
  /** Valid signatures checked. */
  signatures: number;
  /** Count of trailing messages per sender not covered by any signature. */
  uncovered: Record<HandshakeRole, number>;
  /** Whether each sender's direction ends with its (always signed) CLOSE. */
  closed: Record<HandshakeRole, boolean>;
}

function fromB64(s: unknown, what: string): Bytes {
  if (typeof s !== "string") {
    throw new ProtocolError("malformed", `transcript: ${what} missing`);
  }
  try {
    return Uint8Array.fromBase64(s, { alphabet: "base64url" }) as Bytes;
  } catch {
    throw new ProtocolError(
      "malformed",
      `transcript: ${what} is not base64url`,
    );
  }
}

const TYPE_BY_NAME = new Map(
  Object.entries(INNER_TYPE_NAMES).map(([k, v]) => [v, Number(k)]),
);

/**
 * Verifies a saved transcript (JSON text or parsed object). Throws
 * ProtocolError: `malformed` (shape, gaps in seq), `chain-mismatch` (a body
 * or order was altered: recomputed head differs from the recorded one), or
 * `bad-signature`. Returns who said what and what is covered.
 */
export async function verifyTranscript(
  input: string | TranscriptJson,
): Promise<VerifiedTranscript> {
  let t: TranscriptJson;
  try {
    t = typeof input === "string" ? JSON.parse(input) : input;
  } catch {
    throw new ProtocolError("malformed", "transcript is not JSON");
  }
  if (!t || t.format !== TRANSCRIPT_FORMAT || !Array.isArray(t.messages)) {
    throw new ProtocolError("malformed", "not an e2e.v1 transcript");
  }
  const sessionHash = fromB64(t.sessionHash, "sessionHash");
  if (sessionHash.length !== 32) {
    throw new ProtocolError(
      "malformed",
      "transcript: sessionHash must be 32 bytes",
    );
  }
  const spki: Record<HandshakeRole, Bytes> = {
    initiator: fromB64(t.initiatorSpki, "initiatorSpki"),
    responder: fromB64(t.responderSpki, "responderSpki"),
  };
  const keys = {
    initiator: await importIdentityPublic(spki.initiator),
    responder: await importIdentityPublic(spki.responder),
  };
  const fps = {
    initiator: await fingerprint(spki.initiator),
    responder: await fingerprint(spki.responder),
  };
  const result: VerifiedTranscript = {
    sessionHash: sessionHash.toHex(),
    fingerprints: {
      initiator: formatFingerprint(fps.initiator),
      responder: formatFingerprint(fps.responder),
    },
    messages: [],
    signatures: 0,
    uncovered: { initiator: 0, responder: 0 },
    closed: { initiator: false, responder: false },
  };
  const decoder = new TextDecoder();
  for (const role of ["initiator", "responder"] as const) {
    const dir: Direction = role === "initiator" ? "i2r" : "r2i";
    const peer: HandshakeRole = role === "initiator"
      ? "responder"
      : "initiator";
    const entries = t.messages.filter((m) => m?.dir === dir);
    let head = await chainStart(sessionHash, role);
    let pendingFrom = 0; // index in `out` of the first not-yet-covered message
    const out: VerifiedMessage[] = [];
    for (let i = 0; i < entries.length; i++) {
      const m = entries[i];
      const where = `${dir} message #${i + 1}`;
      if (typeof m.seq !== "string" || !/^[1-9][0-9]{0,19}$/.test(m.seq)) {
        throw new ProtocolError("malformed", `transcript: ${where} has no seq`);
      }
      const seq = BigInt(m.seq);
      if (seq !== BigInt(i + 1)) {
        throw new ProtocolError(
          "malformed",
          `transcript: ${dir} seq ${seq} where ${
            i + 1
          } was expected (gap or reorder)`,
        );
      }
      const type = TYPE_BY_NAME.get(m.type);
      if (type === undefined || !isReliable(type)) {
        throw new ProtocolError(
          "malformed",
          `transcript: ${where} has type ${m.type}`,
        );
      }
      if (out.length > 0 && out[out.length - 1].type === "close") {
        throw new ProtocolError(
          "malformed",
          `transcript: ${role}'s seq ${seq} follows its CLOSE (nothing can be sent after a CLOSE: the message was added to the file)`,
        );
      }
      if (type === InnerType.CLOSE && m.sig === undefined) {
        throw new ProtocolError(
          "malformed",
          `transcript: ${role}'s CLOSE at seq ${seq} has no signature (a CLOSE is always signed)`,
        );
      }
      const body = fromB64(m.body, `${where} body`);
      head = await chainStep(head, seq, type, body);
      out.push({
        role,
        fingerprint: result.fingerprints[role],
        seq,
        type: m.type,
        body,
        text: decoder.decode(body),
      });
      if (m.sig === undefined) continue;
      const sig = fromB64(m.sig, `${where} signature`);
      if (m.head !== undefined) {
        const recorded = fromB64(m.head, `${where} head`);
        if (recorded.toHex() !== head.toHex()) {
          throw new ProtocolError(
            "chain-mismatch",
            `transcript: ${role}'s chain head at seq ${seq} does not match the recorded messages (a body, type or order was altered)`,
          );
        }
      }
      const ok = await verify(
        keys[role],
        sig,
        chainSignatureInput(role, fps[role], fps[peer], sessionHash, seq, head),
      );
      if (!ok) {
        throw new ProtocolError(
          "bad-signature",
          `transcript: ${role}'s signature at seq ${seq} does not verify over the recomputed chain (messages altered or signature forged)`,
        );
      }
      result.signatures++;
      for (let k = pendingFrom; k < out.length; k++) out[k].coveredBy = seq;
      pendingFrom = out.length;
    }
    result.uncovered[role] = out.length - pendingFrom;
    result.closed[role] = out.length > 0 &&
      out[out.length - 1].type === "close";
    result.messages.push(...out);
  }
  return result;
}
