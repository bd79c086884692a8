/**
 * `deno task verify-transcript FILE [--json]`: checks a transcript written by
 * a client (`--transcript FILE`) offline — recomputes both hash chains from
 * the session hash, verifies every chain signature with the recorded
 * identity keys — and prints who said what. Exit 0 when valid, 1 when the
 * file was altered or a signature fails (with the reason), 2 on usage errors.
 * @module
 */

import { parseArgs } from "node:util";
import { verifyTranscript } from "../lib/transcript.ts";
import { ProtocolError } from "../lib/errors.ts";
import { parsePaymentMessage } from "../lib/payment.ts";
import { describeControl, isControl } from "../clients/control.ts";

/** Largest transcript file read (bytes). */
const MAX_TRANSCRIPT_FILE = 64 * 1024 * 1024;
// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

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
    return 2;
  }
  if (values.help || positionals.length !== 1) {
    console.error("usage: deno task verify-transcript FILE [--json]");
    return values.help ? 0 : 2;
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
    return 2;
  }
  let text: string;
  try {
    const info = await Deno.stat(path);
    if (info.size > MAX_TRANSCRIPT_FILE) throw new Error("file too large");
    text = await Deno.readTextFile(path);
  } catch (e) {
    console.error(`cannot read ${path}: ${(e as Error).message}`);
    return 2;
  }
  let labels: Record<string, string> = {};
  try {
    const parsed = JSON.parse(text);
    if (parsed && typeof parsed.labels === "object" && parsed.labels) {
      labels = parsed.labels;
    }
  } catch { /* verifyTranscript reports it */ }
  try {
    const v = await verifyTranscript(text);
    if (values.json) {
      console.log(JSON.stringify({
        valid: true,
        sessionHash: v.sessionHash,
        fingerprints: v.fingerprints,
        signatures: v.signatures,
        uncovered: v.uncovered,
        messages: v.messages.map((m) => ({
          role: m.role,
          label: labels[m.role],
          seq: Number(m.seq),
          type: m.type,
          text: m.text,
          control: m.type === "data" && isControl(m.body),
          signedAt: m.coveredBy === undefined ? null : Number(m.coveredBy),
        })),
      }));
      return 0;
    }
    const name = (role: string) =>
      labels[role]
        ? `${role} (${String(labels[role]).replace(CONTROL, "?")})`
        : role;
    console.log(`Transcript ${path}: VALID`);
    console.log(`  session hash: ${v.sessionHash}`);
    for (const role of ["initiator", "responder"] as const) {
      console.log(
        `  ${name(role)}: identity fingerprint ${v.fingerprints[role]}`,
      );
    }
    console.log(
      `  ${v.signatures} chain signatures verified; names in parentheses are labels from the file, the fingerprints are what is proven\n`,
    );
    for (const m of v.messages) {
      if (m.type !== "data") continue;
      const p = isControl(m.body) ? undefined : parsePaymentMessage(m.text);
      const shown = isControl(m.body)
        ? describeControl(m.body)
        : p?.kind === "payment-request"
        ? `PAYMENT REQUEST ${p.amount} ${p.currency} to ${
          JSON.stringify(p.payee)
        } ref ${p.reference}`
        : p?.kind === "payment-response"
        ? `PAYMENT ${p.decision.toUpperCase()} (ref ${p.reference}, request ${
          p.request.slice(0, 16)
        }…)`
        : JSON.stringify(m.text.replace(CONTROL, "?"));
      const sig = m.coveredBy !== undefined
        ? `signed (covered by signature at seq ${m.coveredBy})`
        : "NOT covered by a signature";
      console.log(`  ${name(m.role)} #${m.seq}: ${shown}   [${sig}]`);
    }
    for (const role of ["initiator", "responder"] as const) {
      if (v.uncovered[role] > 0) {
        console.log(
          `  note: the last ${
            v.uncovered[role]
          } message(s) of the ${role} are not covered by a signature`,
        );
      }
    }
    return 0;
  } catch (e) {
    const why = e instanceof ProtocolError
      ? e.message
      : `invalid transcript: ${(e as Error).message}`;
    console.error(`Transcript ${path}: INVALID — ${why}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
