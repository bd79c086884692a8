/**
 * `deno task verify-transcript FILE [--json]`: checks a conversation
 * transcript written by a client (`--transcript FILE`, every session of the
 * conversation; PROTOCOL.md §2.2.10) offline — recomputes every hash chain,
 * verifies every chain signature with the recorded identity keys — and
 * prints who said what, then a graded verdict:
 *
 * - `COMPLETE` (exit 0): every session's both directions end with a signed
 *   CLOSE, every message is covered by its sender's signature, every payment
 *   response answers a signed request in the file sent to its signer.
 * - `INCOMPLETE` (exit 3): the signatures hold, but something is missing
 *   (listed: an open direction, an empty one, uncovered messages, a dangling
 *   payment response, a torn last line, a previous session that a signed
 *   `resume` names but the file lacks or holds short). Uncovered messages
 *   are listed apart, raw, as assertions of the file's author.
 * - `INVALID` (exit 1): the file is altered or could not have been produced
 *   (broken chain, bad signature, a message after a CLOSE, relabelled roles).
 * - exit 2: usage or the file cannot be read.
 * @module
 */

import { parseArgs } from "node:util";
import {
  type ConversationReport,
  ORDER_NOTE,
  type RoleLabels,
  verifyConversation,
} from "../lib/conversation_transcript.ts";
import { ProtocolError } from "../lib/errors.ts";
import { parsePaymentMessage } from "../lib/payment.ts";
import { neutralizeText } from "../lib/display_text.ts";
import { describeControl, isControl } from "../clients/control.ts";
import type { HandshakeRole } from "../lib/handshake_result.ts";

/** Largest transcript file read (bytes). */
const MAX_TRANSCRIPT_FILE = 256 * 1024 * 1024;

/** Exit codes of the tool. */
export const VERIFY_EXIT = {
  complete: 0,
  invalid: 1,
  usage: 2,
  incomplete: 3,
} as const;

const B64 = { alphabet: "base64url", omitPadding: true } as const;
const one = (s: string) => neutralizeText(s, { singleLine: true });

/** Runs the tool; resolves to the exit code. */
export async function main(args: string[]): Promise<number> {
  let values, positionals;
  try {
    ({ values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (e) {
    console.error((e as Error).message);
    return VERIFY_EXIT.usage;
  }
  if (values.help || positionals.length !== 1) {
    console.error(
      "usage: deno task verify-transcript FILE [--json]\n" +
        "exit 0 COMPLETE, 3 INCOMPLETE (what is missing is listed), 1 INVALID, 2 usage/unreadable",
    );
    return values.help ? 0 : VERIFY_EXIT.usage;
  }
  const path = positionals[0];
  if (Deno.permissions.querySync({ name: "read", path }).state !== "granted") {
    const dir = path.includes("/")
      ? path.slice(0, path.lastIndexOf("/")) || "/"
      : ".";
    console.error(
      `cannot read ${path}: the task only grants the current folder; run ` +
        `deno run --allow-read=${dir} tools/verify_transcript.ts ${path}`,
    );
    return VERIFY_EXIT.usage;
  }
  let text: string;
  try {
    const info = await Deno.stat(path);
    if (info.size > MAX_TRANSCRIPT_FILE) throw new Error("file too large");
    text = await Deno.readTextFile(path);
  } catch (e) {
    console.error(`cannot read ${path}: ${(e as Error).message}`);
    return VERIFY_EXIT.usage;
  }
  let r: ConversationReport;
  try {
    r = await verifyConversation(text);
  } catch (e) {
    const code = e instanceof ProtocolError ? e.code : "malformed";
    const why = e instanceof ProtocolError
      ? e.message
      : `invalid transcript: ${(e as Error).message}`;
    if (values.json) {
      console.log(JSON.stringify({
        verdict: "INVALID",
        valid: false,
        complete: false,
        error: { code, message: why },
      }));
    }
    console.error(`Transcript ${one(path)}: INVALID — ${one(why)}`);
    return VERIFY_EXIT.invalid;
  }
  if (values.json) console.log(JSON.stringify(toJson(r)));
  else printReport(path, r);
  return r.verdict === "COMPLETE"
    ? VERIFY_EXIT.complete
    : VERIFY_EXIT.incomplete;
}

function labelOf(
  labels: RoleLabels,
  claimed: RoleLabels,
  role: HandshakeRole,
): { label?: string; proven: boolean } {
  if (labels[role] !== undefined) return { label: labels[role], proven: true };
  return { label: claimed[role], proven: false };
}

function describePayment(
  r: ConversationReport,
  session: number,
  role: HandshakeRole,
  seq: bigint,
  text: string,
): string | undefined {
  const p = parsePaymentMessage(text);
  if (p?.kind === "payment-request") {
    return `PAYMENT REQUEST ${p.amount} ${p.currency} to ${
      one(JSON.stringify(p.payee))
    } ref ${one(p.reference)}`;
  }
  if (p?.kind === "payment-response") {
    const link = r.payments.find((x) =>
      x.session === session && x.role === role && x.seq === seq
    );
    const to = link?.matched
      ? `answers the ${link.matched.role}'s request #${link.matched.seq} of session ${link.matched.session}`
      : link?.otherIdentity
      ? `DANGLING: names request #${link.otherIdentity.seq} of session ${link.otherIdentity.session}, which was sent to another identity than this response's signer`
      : `DANGLING: names request ${
        p.request.slice(0, 16)
      }…, which is not a signed request in this file`;
    const copy = link?.copyOf
      ? `; a re-sent copy of #${link.copyOf.seq} of session ${link.copyOf.session}, not another decision`
      : "";
    return `PAYMENT ${p.decision.toUpperCase()} (ref ${
      one(p.reference)
    }; ${to}${copy})`;
  }
  return undefined;
}

/**
 * Sessions whose pair of identity keys differs from session 1's (a changed
 * key, another suite's key — or a session someone added with a key of their
 * own): each one's number.
 */
function otherIdentities(r: ConversationReport): number[] {
  const pair = (s: ConversationReport["sessions"][number]) =>
    [s.verified.fingerprints.initiator, s.verified.fingerprints.responder]
      .sort().join("|");
  const first = r.sessions[0] ? pair(r.sessions[0]) : "";
  return r.sessions.filter((s) => pair(s) !== first).map((s) => s.n);
}

function printReport(path: string, r: ConversationReport): void {
  const signatures = r.sessions.reduce((n, s) => n + s.verified.signatures, 0);
  console.log(`Transcript ${one(path)}: ${r.verdict}`);
  console.log(
    `  ${r.sessions.length} session(s), ${signatures} chain signatures verified${
      r.legacy ? " (older single-session file)" : ""
    }`,
  );
  console.log(`  ${ORDER_NOTE}`);
  const changed = otherIdentities(r);
  if (changed.length > 0) {
    console.log(
      `  NOTE: session(s) ${
        changed.join(", ")
      } are between other identity keys than session 1 (compare the fingerprints below: a changed key, another suite's key, or a session added by someone else)`,
    );
  }
  for (const s of r.sessions) {
    const v = s.verified;
    const end = s.end ? `ended: ${s.end.reason}` : "no end record";
    console.log(
      `\n  Session ${s.n} (session hash ${
        v.sessionHash.slice(0, 16)
      }…, ${end})`,
    );
    const name = (role: HandshakeRole) => {
      const l = labelOf(s.labels, s.claimedLabels, role);
      if (l.label === undefined) return role;
      return l.proven
        ? `${role} (${one(l.label)})`
        : `${role} (${one(l.label)}?: label claimed by the file, not signed)`;
    };
    for (const role of ["initiator", "responder"] as const) {
      console.log(
        `    ${name(role)}: identity fingerprint ${v.fingerprints[role]}`,
      );
    }
    for (const m of v.messages) {
      if (m.coveredBy === undefined) continue; // listed apart below
      const shown = m.type !== "data"
        ? `[${m.type}]`
        : isControl(m.body)
        ? one(describeControl(m.body))
        : describePayment(r, s.n, m.role, m.seq, m.text) ??
          one(JSON.stringify(m.text));
      console.log(
        `    ${
          name(m.role)
        } #${m.seq}: ${shown}   [signed at seq ${m.coveredBy}]`,
      );
    }
  }
  if (r.uncovered.length > 0) {
    console.log(
      `\n  NOT covered by any signature — assertions of the file's author only, shown raw (never decoded as payments):`,
    );
    for (const u of r.uncovered) {
      const raw = new TextDecoder().decode(u.body);
      console.log(
        `    session ${u.session} ${u.role} #${u.seq} ${u.type}: ${
          one(JSON.stringify(raw))
        }`,
      );
    }
  }
  if (r.missing.length > 0) {
    console.log(`\n  INCOMPLETE because:`);
    for (const m of r.missing) console.log(`    - ${one(m)}`);
  }
}

function toJson(r: ConversationReport) {
  return {
    verdict: r.verdict,
    valid: r.verdict === "COMPLETE",
    complete: r.verdict === "COMPLETE",
    missing: r.missing,
    order: ORDER_NOTE,
    otherIdentities: otherIdentities(r),
    torn: r.torn,
    legacy: r.legacy,
    sessions: r.sessions.map((s) => ({
      session: s.n,
      sessionHash: s.verified.sessionHash,
      end: s.end ?? null,
      fingerprints: s.verified.fingerprints,
      labels: {
        initiator: labelOf(s.labels, s.claimedLabels, "initiator"),
        responder: labelOf(s.labels, s.claimedLabels, "responder"),
      },
      signatures: s.verified.signatures,
      closed: s.verified.closed,
      uncovered: s.verified.uncovered,
      messages: s.verified.messages.filter((m) => m.coveredBy !== undefined)
        .map((m) => ({
          role: m.role,
          label: labelOf(s.labels, s.claimedLabels, m.role).label,
          labelProven: labelOf(s.labels, s.claimedLabels, m.role).proven,
          seq: Number(m.seq),
          type: m.type,
          text: m.text,
          control: m.type === "data" && isControl(m.body),
          signedAt: Number(m.coveredBy),
        })),
    })),
    uncovered: r.uncovered.map((u) => ({
      session: u.session,
      role: u.role,
      seq: Number(u.seq),
      type: u.type,
      body: u.body.toBase64(B64),
    })),
    payments: r.payments.map((p) => ({
      session: p.session,
      role: p.role,
      seq: Number(p.seq),
      decision: p.decision,
      request: p.request,
      matched: p.matched ? { ...p.matched, seq: Number(p.matched.seq) } : null,
      ...(p.otherIdentity
        ? {
          otherIdentity: {
            ...p.otherIdentity,
            seq: Number(p.otherIdentity.seq),
          },
        }
        : {}),
      ...(p.copyOf
        ? { copyOf: { ...p.copyOf, seq: Number(p.copyOf.seq) } }
        : {}),
    })),
  };
}

if (import.meta.main) Deno.exit(await main(Deno.args));
