/**
 * Issue 9's withheld-ACK attack on transcripts, end to end with the real
 * clients: after the customer's payment approval, a malicious relay
 * (tests/helpers/mitm_relay.ts) withholds only the small, ACK-sized records
 * until the bank gives up on the session and handshakes again. `resume`
 * rightly re-sends nothing and both exit 0 — and before per-conversation
 * transcripts, both saved files held only the second session and verified
 * VALID without the signed request and approval. Now both files keep both
 * sessions, `verify-transcript` finds the signed request and the approval
 * that answers it, and says the first session was cut short (INCOMPLETE).
 */
import assert from "node:assert/strict";
import {
  bankTo,
  ClientProc,
  customerIn,
  type Ev,
  flagsWithDir,
  ROOT,
} from "./helpers/client_proc.ts";
import { MitmRelay } from "./helpers/mitm_relay.ts";
import { parseSessionId } from "../lib/registration.ts";

const isType = (t: string) => (e: Ev) => e.type === t;
/** A record in the smallest (256-byte) bucket: ACKs, CLOSE, short DATA. */
const SMALL_RECORD_MAX = 300;

Deno.test("withheld ACKs after a payment approval force a re-handshake: both transcripts still hold the signed request and approval", async () => {
  const relay = await MitmRelay.start();
  const dir = await Deno.makeTempDir({ prefix: "transcript-attack-" });
  const caDir = relay.caFile.slice(0, relay.caFile.lastIndexOf("/"));
  const grants = `${dir},${caDir}`;
  const common = [
    "--json",
    "--relay",
    relay.url,
    "--ca",
    relay.caFile,
    "--cover-rate",
    "0",
    // Generous bounds, not timing assertions: under heavy load the bank's
    // start, two handshakes and the probe rounds before the second took
    // longer than the former 20 s wait and 30 s exit limit.
    "--wait",
    "120",
    "--scenario",
    "payment",
  ];
  let bank: ClientProc | undefined;
  const customer = customerIn(dir, common, grants, [
    "--approve",
    "--transcript",
    `${dir}/customer.jsonl`,
  ]);
  try {
    const ready = await customer.waitFor(
      isType("ready"),
      "customer ready",
      60_000,
    );
    const customerId = parseSessionId(ready.id).toHex();
    // Once the approval (the customer's second large record, after its
    // signed `resume`) has passed, drop every small record both ways until
    // the next HS1.
    let phase: "before" | "withholding" | "after" = "before";
    let withheld = 0;
    let large = 0;
    relay.tamper = (c) => {
      if (phase === "withholding" && c.kind === 1) phase = "after";
      if (
        phase === "before" && c.from === customerId && c.kind === 4 &&
        c.payload.length > SMALL_RECORD_MAX && ++large === 2
      ) {
        phase = "withholding";
        // Forged peer-offlines make both sides probe once a second (a fast re-handshake).
        setTimeout(() => {
          relay.reportOffline(customerId, c.to);
          relay.reportOffline(c.to, customerId);
        }, 50);
        return undefined;
      }
      if (
        phase === "withholding" && c.kind === 4 &&
        c.payload.length <= SMALL_RECORD_MAX
      ) {
        withheld++;
        return "drop";
      }
      return undefined;
    };
    bank = bankTo(ready.address, dir, common, grants, [
      "--transcript",
      `${dir}/bank.jsonl`,
    ]);
    await customer.end();
    await bank.end();
    const [b, c] = await Promise.all([
      bank.exit(120_000),
      customer.exit(120_000),
    ]);
    assert.deepEqual(
      [b, c],
      [0, 0],
      bank.stderr.join("") + customer.stderr.join(""),
    );
    assert.equal(phase, "after", "the relay forced a new handshake");
    assert.ok(withheld > 0);
    assert.equal(bank.events.filter(isType("secure")).length, 2);

    const { flags, entry } = flagsWithDir("verify-transcript", dir);
    for (const who of ["bank", "customer"]) {
      const out = await new Deno.Command("deno", {
        args: ["run", ...flags, entry, "--json", `${dir}/${who}.jsonl`],
        cwd: ROOT,
        env: { NO_COLOR: "1" },
      }).output();
      const r = JSON.parse(new TextDecoder().decode(out.stdout));
      assert.equal(r.sessions.length, 2, `${who}: both sessions in the file`);
      const first = r.sessions[0];
      assert.equal(first.end.reason, "replaced");
      const texts = first.messages.map((m: Ev) => `${m.label}:${m.text}`);
      assert.ok(
        texts.some((t: string) => /^bank:.*"payment-request"/.test(t)),
        `${who}: signed request kept: ${texts}`,
      );
      assert.ok(
        texts.some((t: string) => /^customer:.*"decision":"approved"/.test(t)),
        `${who}: signed approval kept: ${texts}`,
      );
      assert.equal(r.payments.length, 1);
      assert.deepEqual(r.payments[0].matched?.session, 1);
      assert.equal(r.payments[0].decision, "approved");
      // The cut-short first session is not vouched for as complete.
      assert.equal(out.code, 3, `${who}: INCOMPLETE exit code`);
      assert.equal(r.verdict, "INCOMPLETE");
      assert.ok(
        r.missing.some((m: string) =>
          /^session 1: .*without a signed CLOSE/.test(m)
        ),
        r.missing.join("\n"),
      );
      assert.equal(r.sessions[1].end.reason, "closed");
      assert.deepEqual(r.sessions[1].closed, {
        initiator: true,
        responder: true,
      });
    }
  } finally {
    await bank?.dispose();
    await customer.dispose();
    await relay.close();
    await Deno.remove(dir, { recursive: true });
  }
});
