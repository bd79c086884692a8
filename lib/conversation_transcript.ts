/**
 * Conversation transcript files (PROTOCOL.md §2.2.10): one append-only file
 * per conversation holding every session of it, in order, with the session
 * boundaries. This module is the file format (lines in, lines out) and the
 * graded verification; `lib/deno/transcript_file.ts` writes the file.
 *
 * The file is JSON Lines (UTF-8, one JSON object per line, each ending with
 * `\n`), told apart by `record`:
 *
 *     {"record":"conversation","format":"e2e.v1 conversation transcript","version":1,"created":ISO}
 *     {"record":"session","session":1,"suite":1,"localRole":"initiator","sessionHash":B64,
 *      "initiatorSpki":B64,"responderSpki":B64,"labels":{"initiator":"bank","responder":"customer"},"at":ISO}
 *     {"record":"message","session":1,"dir":"i2r","seq":"1","type":"data","body":B64,"sig"?:B64,"head"?:B64}
 *     {"record":"end","session":1,"reason":"closed","at":ISO}
 *
 * `verifyConversation` checks every session's chains and signatures
 * (lib/transcript.ts) and grades the file: `COMPLETE` only when every
 * session's both directions end with a signed CLOSE, nothing is uncovered
 * and every payment response answers a request in the file sent to its
 * signer; otherwise
 * `INCOMPLETE` with the list of what is missing. Anything the protocol
 * cannot produce (a message after a CLOSE, a relabelled direction, a broken
 * chain) throws a ProtocolError: the file is INVALID. Pure; safe in a
 * browser.
 * @module
 */

import { sha256 } from "./bytes.ts";
import { ProtocolError } from "./errors.ts";
import type { HandshakeRole } from "./handshake_result.ts";
import { isControl, parseControl } from "./control.ts";
import { parsePaymentMessage } from "./payment.ts";
import {
  TRANSCRIPT_FORMAT,
  type TranscriptContext,
  type TranscriptJson,
  type TranscriptMessage,
  type VerifiedMessage,
  type VerifiedTranscript,
  verifyTranscript,
} from "./transcript.ts";
import { INNER_TYPE_NAMES } from "./record.ts";

/** `format` of the first line of a conversation transcript file. */
export const CONVERSATION_FORMAT = "e2e.v1 conversation transcript";
/** `version` of the conversation transcript format this module writes and reads. */
export const CONVERSATION_VERSION = 1;
/** Longest role label accepted in a file or a `resume` (characters). */
export const MAX_LABEL_LENGTH = 64;
/** Most sessions one file may hold (a bound on what a verifier does). */
export const MAX_SESSIONS_PER_FILE = 100_000;

/** Why a session ended, as written in its `end` record. */
export type SessionEndReason = "closed" | "replaced" | "stopped" | "failed";
const END_REASONS: readonly string[] = [
  "closed",
  "replaced",
  "stopped",
  "failed",
];

/** Display labels of a session's two roles (the file author's assertion). */
export type RoleLabels = Partial<Record<HandshakeRole, string>>;

const B64 = { alphabet: "base64url", omitPadding: true } as const;
const iso = (ms: number) => new Date(ms).toISOString();

/** The first line of a new file. */
export function conversationLine(createdMs: number): string {
  return JSON.stringify({
    record: "conversation",
    format: CONVERSATION_FORMAT,
    version: CONVERSATION_VERSION,
    created: iso(createdMs),
  }) + "\n";
}

/** A `session` record: session `n` (1, 2, … in file order) begins. */
export function sessionLine(
  n: number,
  c: TranscriptContext,
  labels: RoleLabels,
  atMs: number,
): string {
  return JSON.stringify({
    record: "session",
    session: n,
    suite: c.suite,
    localRole: c.localRole,
    sessionHash: c.sessionHash.toBase64(B64),
    initiatorSpki: c.initiatorSpki.toBase64(B64),
    responderSpki: c.responderSpki.toBase64(B64),
    labels,
    at: iso(atMs),
  }) + "\n";
}

/**
 * A `message` record of session `n`. A message whose signature is still
 * `pending` is written without it (it then counts as uncovered).
 */
export function messageLine(n: number, m: TranscriptMessage): string {
  const o: Record<string, unknown> = {
    record: "message",
    session: n,
    dir: m.direction,
    seq: m.seq.toString(),
    type: INNER_TYPE_NAMES[m.type] ?? String(m.type),
    body: m.body.toBase64(B64),
  };
  if (m.signature && !m.pending) {
    o.sig = m.signature.toBase64(B64);
    if (m.head) o.head = m.head.toBase64(B64);
  }
  return JSON.stringify(o) + "\n";
}

/** An `end` record: session `n` is over (no record of it follows). */
export function endLine(
  n: number,
  reason: SessionEndReason,
  atMs: number,
): string {
  return JSON.stringify({ record: "end", session: n, reason, at: iso(atMs) }) +
    "\n";
}

/** One session as read from a file. */
export interface ParsedSession {
  /** Session number (1-based, file order). */
  n: number;
  /** The session in the single-session form {@link verifyTranscript} checks. */
  json: TranscriptJson;
  /** Labels claimed by the file's author. */
  labels: RoleLabels;
  /** When the session record was written (ISO), if given. */
  at?: string;
  /** The `end` record, if the session has one. */
  end?: { reason: SessionEndReason; at: string };
}

/** A file as read by {@link parseConversation}. */
export interface ParsedConversation {
  /** Sessions in file order. */
  sessions: ParsedSession[];
  /** The last line was cut short (a crash during a write); it was ignored. */
  torn: boolean;
  /** The file is a single-session transcript of the older format. */
  legacy: boolean;
}

function fail(detail: string): ProtocolError {
  return new ProtocolError("malformed", `transcript: ${detail}`);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function checkLabels(v: unknown, where: string): RoleLabels {
  if (v === undefined) return {};
  if (!isRecord(v)) throw fail(`${where}: labels is not an object`);
  const out: RoleLabels = {};
  for (const role of ["initiator", "responder"] as const) {
    const l = v[role];
    if (l === undefined) continue;
    if (typeof l !== "string" || l.length > MAX_LABEL_LENGTH) {
      throw fail(`${where}: label of the ${role} is not a short string`);
    }
    out[role] = l;
  }
  return out;
}

/**
 * Reads a conversation transcript file (or a single-session transcript of
 * the older format, as one session). Throws ProtocolError `malformed`
 * naming the line. A last line without its `\n` is a torn write: ignored
 * and reported (`torn`).
 */
export function parseConversation(text: string): ParsedConversation {
  const trimmed = text.trimStart();
  if (trimmed.startsWith("{") && !text.includes("\n{")) {
    // Older single-session form: one JSON document (possibly pretty-printed).
    let t: unknown;
    try {
      t = JSON.parse(text);
    } catch {
      t = undefined;
    }
    if (isRecord(t) && t.format === TRANSCRIPT_FORMAT) {
      return {
        sessions: [{
          n: 1,
          json: t as unknown as TranscriptJson,
          labels: checkLabels(t.labels, "transcript"),
        }],
        torn: false,
        legacy: true,
      };
    }
  }
  const lines = text.split("\n");
  let torn = false;
  if (lines[lines.length - 1] === "") lines.pop();
  else torn = true;
  if (torn) lines.pop();
  const sessions: ParsedSession[] = [];
  let open: ParsedSession | undefined;
  for (let i = 0; i < lines.length; i++) {
    const where = `line ${i + 1}`;
    let o: unknown;
    try {
      o = JSON.parse(lines[i]);
    } catch {
      throw fail(`${where} is not JSON`);
    }
    if (!isRecord(o)) throw fail(`${where} is not a JSON object`);
    if (i === 0) {
      if (
        o.record !== "conversation" || o.format !== CONVERSATION_FORMAT
      ) {
        throw fail(`not an ${CONVERSATION_FORMAT} file (${where})`);
      }
      if (o.version !== CONVERSATION_VERSION) {
        throw fail(
          `unsupported version ${JSON.stringify(o.version)} (${where})`,
        );
      }
      continue;
    }
    switch (o.record) {
      case "session": {
        if (o.session !== sessions.length + 1) {
          throw fail(
            `${where}: session ${JSON.stringify(o.session)} where ${
              sessions.length + 1
            } was expected`,
          );
        }
        if (sessions.length >= MAX_SESSIONS_PER_FILE) {
          throw fail(`more than ${MAX_SESSIONS_PER_FILE} sessions`);
        }
        if (o.localRole !== "initiator" && o.localRole !== "responder") {
          throw fail(`${where}: localRole is not initiator or responder`);
        }
        open = {
          n: o.session,
          json: {
            format: TRANSCRIPT_FORMAT,
            suite: o.suite as number,
            localRole: o.localRole,
            sessionHash: o.sessionHash as string,
            initiatorSpki: o.initiatorSpki as string,
            responderSpki: o.responderSpki as string,
            messages: [],
          },
          labels: checkLabels(o.labels, where),
          at: typeof o.at === "string" ? o.at : undefined,
        };
        sessions.push(open);
        break;
      }
      case "message": {
        const s = sessions[(o.session as number) - 1];
        if (s === undefined || o.session !== s.n) {
          throw fail(`${where}: message of an unknown session`);
        }
        if (s.end) {
          throw fail(`${where}: message of session ${s.n} after its end`);
        }
        const { dir, seq, type, body, sig, head } = o;
        if (dir !== "i2r" && dir !== "r2i") {
          throw fail(`${where}: dir is not i2r or r2i`);
        }
        s.json.messages.push({
          dir,
          seq: seq as string,
          type: type as string,
          body: body as string,
          ...(sig === undefined ? {} : { sig: sig as string }),
          ...(head === undefined ? {} : { head: head as string }),
        });
        break;
      }
      case "end": {
        const s = sessions[(o.session as number) - 1];
        if (s === undefined || o.session !== s.n || s.end) {
          throw fail(`${where}: end of an unknown or ended session`);
        }
        if (typeof o.reason !== "string" || !END_REASONS.includes(o.reason)) {
          throw fail(`${where}: unknown end reason`);
        }
        s.end = {
          reason: o.reason as SessionEndReason,
          at: typeof o.at === "string" ? o.at : "",
        };
        break;
      }
      default:
        throw fail(`${where}: unknown record ${JSON.stringify(o.record)}`);
    }
  }
  if (lines.length === 0 && !torn) throw fail("the file is empty");
  return { sessions, torn, legacy: false };
}

/** A message not covered by its sender's signature: only the file author's assertion. */
export interface UncoveredMessage {
  /** Session number. */
  session: number;
  /** Sender role. */
  role: HandshakeRole;
  /** Sender's signed label, if proven. */
  label?: string;
  /** Seq in the sender's direction. */
  seq: bigint;
  /** Inner type name. */
  type: string;
  /** Body bytes, raw (never decoded as a payment). */
  body: Uint8Array;
}

/** One payment response and the request it names. */
export interface PaymentLink {
  /** Session and sender of the response. */
  session: number;
  /** Responder role (who answered). */
  role: HandshakeRole;
  /** Seq of the response. */
  seq: bigint;
  /** The decision. */
  decision: "approved" | "declined";
  /** The request hash it names (hex). */
  request: string;
  /**
   * Where the request is (covered by a signature, and sent by the response's
   * recipient to the response's signer), or undefined: dangling.
   */
  matched?: { session: number; role: HandshakeRole; seq: bigint };
  /**
   * Set when the file holds a request with that hash only between other
   * identities (sent to someone else than this response's signer): not an
   * answer to it.
   */
  otherIdentity?: { session: number; role: HandshakeRole; seq: bigint };
  /**
   * Set when this is a copy of an earlier response re-sent in a later session
   * (same sender, stream and message id, PROTOCOL.md §2.4): where that one
   * is. The same decision, not a second one; its receiver dropped the copy.
   */
  copyOf?: { session: number; seq: bigint };
}

/** One verified session of a conversation. */
export interface SessionReport {
  /** Session number. */
  n: number;
  /** Chains, signatures, covered messages (lib/transcript.ts). */
  verified: VerifiedTranscript;
  /** Labels proven by each sender's signed `resume` (PROTOCOL.md §2.4). */
  labels: RoleLabels;
  /** Labels the file's author claims; any that disagree with `labels` make the file INVALID. */
  claimedLabels: RoleLabels;
  /** The `end` record, if any. */
  end?: { reason: SessionEndReason; at: string };
}

/** Result of {@link verifyConversation}. */
export interface ConversationReport {
  /** COMPLETE: nothing missing; INCOMPLETE: see `missing`. */
  verdict: "COMPLETE" | "INCOMPLETE";
  /** What keeps the file from being COMPLETE, one sentence each. */
  missing: string[];
  /** Sessions in order. */
  sessions: SessionReport[];
  /** Messages no signature covers, listed apart (raw). */
  uncovered: UncoveredMessage[];
  /** Every covered payment response with the request it names. */
  payments: PaymentLink[];
  /** A torn last line was ignored. */
  torn: boolean;
  /** The file is of the older single-session form. */
  legacy: boolean;
}

/** What the verifier states about order: each direction is ordered, the two are not. */
export const ORDER_NOTE =
  "Within one direction the order is proven (hash chain); the interleaving of the two directions, and times, are not.";

/** The fields of a `resume` control message (`0x00 ‖ JSON`, PROTOCOL.md §2.4) a verifier uses. */
export interface ResumeFields {
  /** Hex session hash of the sender's previous session, or null. */
  prev: string | null;
  /** Highest seq the sender delivered from the peer in `prev`. */
  delivered: number;
  /** The sender's signed role label, if any. */
  role?: string;
}

/** Parses a DATA body as a `resume`; undefined when it is not a well-formed one. */
export function parseResume(body: Uint8Array): ResumeFields | undefined {
  if (body.length < 2 || body[0] !== 0) return undefined;
  let o: unknown;
  try {
    o = JSON.parse(
      new TextDecoder("utf-8", { fatal: true }).decode(body.subarray(1)),
    );
  } catch {
    return undefined;
  }
  if (!isRecord(o) || o.kind !== "resume") return undefined;
  const prev = typeof o.prev === "string" ? o.prev : null;
  const delivered = typeof o.delivered === "number" ? o.delivered : 0;
  const role = typeof o.role === "string" && o.role.length <= MAX_LABEL_LENGTH
    ? o.role
    : undefined;
  return role === undefined ? { prev, delivered } : { prev, delivered, role };
}

/**
 * Verifies a conversation transcript file (text) and grades it. Throws
 * ProtocolError (`malformed`, `chain-mismatch`, `bad-signature`,
 * `relabelled`) when the file is INVALID.
 */
export async function verifyConversation(
  text: string,
): Promise<ConversationReport> {
  const parsed = parseConversation(text);
  const missing: string[] = [];
  const sessions: SessionReport[] = [];
  const uncovered: UncoveredMessage[] = [];
  const covered: { s: number; m: VerifiedMessage }[] = [];
  if (parsed.sessions.length === 0) missing.push("the file holds no session");
  if (parsed.torn) {
    missing.push("the last line was cut short (a write was interrupted)");
  }
  for (const ps of parsed.sessions) {
    let v: VerifiedTranscript;
    try {
      v = await verifyTranscript(ps.json);
    } catch (e) {
      if (e instanceof ProtocolError) {
        const detail = e.message.slice(e.code.length + 2);
        throw new ProtocolError(e.code, `session ${ps.n}: ${detail}`);
      }
      throw e;
    }
    const labels: RoleLabels = {};
    for (const m of v.messages) {
      if (m.seq !== 1n || m.coveredBy === undefined) continue;
      const l = m.type === "data" ? parseResume(m.body)?.role : undefined;
      if (l !== undefined) labels[m.role] = l;
    }
    for (const role of ["initiator", "responder"] as const) {
      const claimed = ps.labels[role];
      const proven = labels[role];
      if (claimed !== undefined && proven !== undefined && claimed !== proven) {
        throw new ProtocolError(
          "relabelled",
          `session ${ps.n}: the file labels the ${role} ${
            JSON.stringify(claimed)
          }, but that identity signed ${
            JSON.stringify(proven)
          } as its role: the labels were altered`,
        );
      }
    }
    const report: SessionReport = {
      n: ps.n,
      verified: v,
      labels,
      claimedLabels: ps.labels,
      end: ps.end,
    };
    sessions.push(report);
    for (const role of ["initiator", "responder"] as const) {
      const name = labels[role] ? `${role} (${labels[role]})` : role;
      const own = v.messages.filter((m) => m.role === role);
      if (own.length === 0) {
        missing.push(
          `session ${ps.n}: the ${name} direction is empty (no signed CLOSE)`,
        );
      } else if (!v.closed[role]) {
        missing.push(
          `session ${ps.n}: the ${name} direction ends at seq ${
            own[own.length - 1].seq
          } without a signed CLOSE (later messages may be missing)`,
        );
      }
      if (v.uncovered[role] > 0) {
        missing.push(
          `session ${ps.n}: ${
            v.uncovered[role]
          } message(s) of the ${name} are covered by no signature`,
        );
      }
    }
    for (const m of v.messages) {
      if (m.coveredBy === undefined) {
        uncovered.push({
          session: ps.n,
          role: m.role,
          label: labels[m.role],
          seq: m.seq,
          type: m.type,
          body: m.body,
        });
      } else covered.push({ s: ps.n, m });
    }
  }
  // Cross-check each signed resume against the session it names.
  const byHash = new Map(sessions.map((s) => [s.verified.sessionHash, s]));
  for (const { s, m } of covered) {
    if (m.seq !== 1n || m.type !== "data") continue;
    const o = parseResume(m.body);
    if (o === undefined || o.prev === null) continue;
    const prev = byHash.get(o.prev);
    if (prev === undefined) {
      missing.push(
        `session ${s}: the ${m.role} names a previous session ${
          o.prev.slice(0, 16)
        }… that is not in the file`,
      );
      continue;
    }
    const peer: HandshakeRole = m.role === "initiator"
      ? "responder"
      : "initiator";
    // The previous session's roles may differ; the peer is the other identity.
    const peerFp = sessions[s - 1].verified.fingerprints[peer];
    const prevRole = (["initiator", "responder"] as const).find((r) =>
      prev.verified.fingerprints[r] === peerFp
    );
    const delivered = o.delivered;
    if (prevRole === undefined) continue;
    const have = prev.verified.messages.filter((x) => x.role === prevRole)
      .length;
    if (have < delivered) {
      missing.push(
        `session ${prev.n}: the ${prevRole} direction holds ${have} message(s), but the peer's signed resume in session ${s} says it delivered ${delivered}`,
      );
    }
  }
  // Payment responses must answer a covered request in the file that the
  // response's recipient sent to the response's signer (fingerprints).
  type Request = {
    at: { session: number; role: HandshakeRole; seq: bigint };
    from: string;
    to: string;
  };
  const requests = new Map<string, Request[]>();
  const payments: PaymentLink[] = [];
  const other = (r: HandshakeRole): HandshakeRole =>
    r === "initiator" ? "responder" : "initiator";
  const fpsOf = (s: number, sender: HandshakeRole) => {
    const f = sessions[s - 1].verified.fingerprints;
    return { from: f[sender], to: f[other(sender)] };
  };
  for (const { s, m } of covered) {
    if (m.type !== "data") continue;
    const p = parsePaymentMessage(m.text);
    if (p?.kind === "payment-request") {
      const hash = (await sha256(m.body)).toHex();
      const list = requests.get(hash) ?? [];
      list.push({
        at: { session: s, role: m.role, seq: m.seq },
        ...fpsOf(s, m.role),
      });
      requests.set(hash, list);
    }
  }
  const ids = messageIds(sessions, covered);
  const firstById = new Map<string, { session: number; seq: bigint }>();
  for (const { s, m } of covered) {
    if (m.type !== "data") continue;
    const p = parsePaymentMessage(m.text);
    if (p?.kind !== "payment-response") continue;
    const me = fpsOf(s, m.role);
    const candidates = requests.get(p.request) ?? [];
    const matched = candidates.find((r) => r.from === me.to && r.to === me.from)
      ?.at;
    const otherIdentity = matched === undefined ? candidates[0]?.at : undefined;
    const id = ids.get(m);
    const copyOf = id === undefined ? undefined : firstById.get(id);
    if (id !== undefined && copyOf === undefined) {
      firstById.set(id, { session: s, seq: m.seq });
    }
    payments.push({
      session: s,
      role: m.role,
      seq: m.seq,
      decision: p.decision,
      request: p.request,
      matched,
      ...(otherIdentity ? { otherIdentity } : {}),
      ...(copyOf ? { copyOf } : {}),
    });
    if (otherIdentity !== undefined) {
      missing.push(
        `session ${s}: the ${m.role}'s payment response #${m.seq} (${p.decision}) names request ${
          p.request.slice(0, 16)
        }…, but that request (session ${otherIdentity.session} #${otherIdentity.seq}) was sent to another identity than the one that signed this response (${me.from})`,
      );
    } else if (matched === undefined) {
      missing.push(
        `session ${s}: the ${m.role}'s payment response #${m.seq} (${p.decision}) names request ${
          p.request.slice(0, 16)
        }…, which is not a signed request in this file`,
      );
    }
  }
  return {
    verdict: missing.length === 0 ? "COMPLETE" : "INCOMPLETE",
    missing,
    sessions,
    uncovered,
    payments,
    torn: parsed.torn,
    legacy: parsed.legacy,
  };
}

/**
 * The message id (PROTOCOL.md §2.4) of each covered user message, as
 * `sender fingerprint:stream:id`: per session and direction, the sender's
 * `resume` names its stream and next id, a `next` sets the id, each user
 * message takes one. Messages of a sender that names no stream get none.
 */
function messageIds(
  sessions: SessionReport[],
  covered: { s: number; m: VerifiedTranscript["messages"][number] }[],
): Map<object, string> {
  const ids = new Map<object, string>();
  const dirs = new Map<string, { stream?: string; next?: number }>();
  for (const { s, m } of covered) {
    if (m.type !== "data") continue;
    const key = `${s}:${m.role}`;
    const d = dirs.get(key) ?? {};
    dirs.set(key, d);
    if (isControl(m.body)) {
      let c;
      try {
        c = parseControl(m.body);
      } catch {
        continue;
      }
      if (c?.kind === "resume") {
        d.stream = c.stream;
        if (c.next !== undefined) d.next = c.next;
      } else if (c?.kind === "next") d.next = c.id;
      continue;
    }
    if (d.stream === undefined || d.next === undefined) continue;
    const fp = sessions[s - 1].verified.fingerprints[m.role];
    ids.set(m, `${fp}:${d.stream}:${d.next++}`);
  }
  return ids;
}
