/**
 * Issue 9's exactly-once requirement end to end, with a customer that
 * approves on its own (`--approve`): the real bank and customer processes
 * run the payment scenario through a malicious relay
 * (tests/helpers/mitm_relay.ts, real TLS). Once the signed payment request
 * can be sent, the relay withholds every record of the customer — its ACKs,
 * and its approval, whose record acknowledges the request too — so the bank never learns the
 * request arrived and, after its unanswered probes, starts a new session; in
 * that session the relay holds back every record of the customer — its
 * `resume` first — until the bank's 5 s wait for it
 * (RESUME_WAIT_MS) is over and the bank re-sends the request blindly. The
 * customer must recognise the request's message id from the first session
 * (PROTOCOL.md §2.4) and neither show nor approve it again: one approval
 * sent, one response at the bank, and both transcripts hold one signed
 * request and one approval (by message id: a file may also hold the copy
 * re-sent in the second session).
 */
import assert from "node:assert/strict";
import {
  ClientProc,
  type Ev,
  flagsWithDir,
  ROOT,
} from "./helpers/client_proc.ts";
import { type Captured, MitmRelay } from "./helpers/mitm_relay.ts";
import { parseSessionId } from "../lib/registration.ts";

const isType = (t: string) => (e: Ev) => e.type === t;
const payments = (c: ClientProc, event: string, direction: string) =>
  c.events.filter((e) =>
    e.type === "payment" && e.event === event && e.direction === direction
  );

/** A user message of a verified transcript with the id its sender gave it (PROTOCOL.md §2.4). */
interface Sent {
  label: string;
  text: string;
  stream: string;
  key: string;
}

/**
 * The user messages of `verify-transcript --json` sessions with their ids:
 * per session and direction, a `resume` names the sender's stream and the
 * next id, a `next` sets it, each user message takes one.
 */
function messageIds(sessions: Ev[]): Sent[] {
  const found: Sent[] = [];
  for (const s of sessions) {
    const dirs = new Map<string, { stream: string; next: number }>();
    for (const m of s.messages) {
      if (m.type !== "data") continue;
      const d = dirs.get(m.role) ?? { stream: "?", next: 0 };
      dirs.set(m.role, d);
      if (m.control) {
        const c = JSON.parse(m.text.slice(1));
        if (c.kind === "resume") d.stream = c.stream ?? "?";
        if (typeof c.next === "number") d.next = c.next;
        continue;
      }
      const id = d.next++;
      found.push({
        label: m.label,
        text: m.text,
        stream: d.stream,
        key: `${d.stream}#${id}`,
      });
    }
  }
  return found;
}

Deno.test("--approve through a relay that withholds ACKs and then the customer's resume past the 5 s wait: the blindly re-sent request is approved once, answered once", async () => {
  const relay = await MitmRelay.start();
  const dir = await Deno.makeTempDir({ prefix: "approve-once-" });
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
    // Generous bounds for a loaded machine, not timing assertions.
    "--wait",
    "120",
    "--scenario",
    "payment",
  ];
  let bank: ClientProc | undefined;
  const customer = new ClientProc("customer", [
    ...common,
    "--keys",
    `${dir}/c`,
    "--approve",
    "--transcript",
    `${dir}/customer.jsonl`,
  ], grants);
  try {
    const ready = await customer.waitFor(
      isType("ready"),
      "customer ready",
      60_000,
    );
    const customerId = parseSessionId(ready.id).toHex();
    // before: honest. withholding: the customer's `resume` has passed; every
    // later record of the customer is dropped — its ACKs, and its approval too, which would
    // acknowledge the request as well. holding: a new handshake began; every
    // record of the customer is kept back, its `resume` first. released: the
    // bank re-sent blindly; the kept records are delivered late, in order,
    // and the relay is honest again.
    let phase: "before" | "withholding" | "holding" | "released" = "before";
    let withheld = 0;
    const held: Captured[] = [];
    relay.tamper = (c) => {
      if (phase === "withholding" && c.kind === 1) phase = "holding";
      if (
        phase === "before" && c.from === customerId && c.kind === 4
      ) {
        // The customer's first record, its `resume`, lets the bank send the
        // request; from here on the bank hears nothing from the customer.
        phase = "withholding";
        return undefined;
      }
      if (phase === "withholding" && c.from === customerId && c.kind === 4) {
        withheld++;
        return "drop";
      }
      if (phase === "holding" && c.from === customerId && c.kind === 4) {
        held.push(c);
        return "drop";
      }
      return undefined;
    };
    bank = new ClientProc("bank", [
      ...common,
      "--keys",
      `${dir}/b`,
      "--peer",
      ready.address,
      "--transcript",
      `${dir}/bank.jsonl`,
    ], grants);
    const bankId = parseSessionId(
      (await bank.waitFor(isType("ready"), "bank ready", 60_000)).id,
    ).toHex();
    // The request reached the customer in the first session (its approval is
    // being dropped): a forged peer-offline (the customer away, told to the
    // bank) puts the bank in its fastest probing mode, so after 3 unanswered
    // probes (~2–4 s instead of ~20 s of RTO backoff) it starts a new session.
    await customer.waitFor(
      isType("message"),
      "the request shown in the first session",
      60_000,
    );
    relay.reportOffline(customerId, bankId);
    const fallback = await bank.waitFor(
      (e) => e.type === "notice" && /no resume from the peer/.test(e.text),
      "the bank's fallback after the resume wait",
      90_000,
    );
    assert.equal(phase, "holding", "a new session, the customer held back");
    // The fallback did re-send the request (message #1) without knowing.
    assert.match(fallback.text, /re-sending.*#1\b/);
    assert.ok(held.length > 0, "the customer's resume was held back");
    phase = "released";
    for (const c of held) relay.deliver(c.from, c.to, c.payload);
    await customer.end();
    await bank.end();
    const [b, c] = await Promise.all([
      bank.exit(120_000),
      customer.exit(120_000),
    ]);
    assert.ok(withheld > 0);
    assert.equal(bank.events.filter(isType("secure")).length, 2);
    assert.equal(customer.events.filter(isType("secure")).length, 2);

    // The customer showed the request in the first session: the copy in the
    // second is the one that must not be shown, nor approved, again.
    const secures = customer.events.flatMap((e, i) =>
      e.type === "secure" ? [i] : []
    );
    const shown = customer.events.findIndex(isType("message"));
    assert.ok(
      secures[0] < shown && shown < secures[1],
      "request delivered in the first session",
    );
    // Exactly once at both ends.
    assert.equal(payments(customer, "request", "received").length, 1);
    const approvals = payments(customer, "response", "sent");
    assert.deepEqual(approvals.map((e) => e.decision), ["approved"]);
    assert.equal(payments(bank, "request", "sent").length, 1);
    const answers = payments(bank, "response", "received");
    assert.deepEqual(
      answers.map((e) => [e.decision, e.matches]),
      [["approved", true]],
    );
    assert.equal(customer.events.filter(isType("message")).length, 1);
    assert.equal(bank.events.filter(isType("message")).length, 1);
    assert.deepEqual(customer.events.filter(isType("error")), []);
    assert.deepEqual(bank.events.filter(isType("error")), []);

    // Exit codes as documented (README, exit codes): both 0.
    assert.deepEqual(
      [b, c],
      [0, 0],
      bank.stderr.join("") + customer.stderr.join(""),
    );

    const { flags, entry } = flagsWithDir("verify-transcript", dir);
    for (const who of ["bank", "customer"]) {
      const out = await new Deno.Command("deno", {
        args: ["run", ...flags, entry, "--json", `${dir}/${who}.jsonl`],
        cwd: ROOT,
        env: { NO_COLOR: "1" },
      }).output();
      const r = JSON.parse(new TextDecoder().decode(out.stdout));
      const sent = messageIds(r.sessions);
      const requests = sent.filter((m) =>
        m.label === "bank" && /"payment-request"/.test(m.text)
      );
      const approvals = sent.filter((m) =>
        m.label === "customer" && /"decision":"approved"/.test(m.text)
      );
      // One signed request and one approval, each message #1 of its
      // sender's stream: a copy re-sent in the second session keeps its id
      // (§2.4) and its receiver dropped it, so a file may hold it in both.
      for (
        const [what, list] of [["request", requests], [
          "approval",
          approvals,
        ]] as const
      ) {
        assert.deepEqual(
          [...new Set(list.map((m) => m.key))],
          [`${list[0]?.stream}#1`],
          `${who}: one signed ${what}: ${JSON.stringify(list)}`,
        );
        assert.ok(list.length <= 2, `${who}: at most one copy per session`);
      }
      // One decision; a re-sent copy is reported as such (copyOf), not as a
      // second approval.
      const decisions = r.payments.filter((p: Ev) => !p.copyOf);
      assert.equal(
        decisions.length,
        1,
        `${who}: ${JSON.stringify(r.payments)}`,
      );
      assert.equal(decisions[0].decision, "approved");
      assert.ok(decisions[0].matched, `${who}: answers a signed request`);
      for (const p of r.payments.filter((p: Ev) => p.copyOf)) {
        assert.deepEqual(p.copyOf, {
          session: decisions[0].session,
          seq: decisions[0].seq,
        });
      }
      // The first session was replaced (cut short): not vouched for as complete.
      assert.equal(r.sessions.length, 2, `${who}: both sessions in the file`);
      assert.equal(r.sessions[0].end.reason, "replaced");
      assert.equal(r.verdict, "INCOMPLETE", JSON.stringify(r));
      assert.equal(out.code, 3, `${who}: INCOMPLETE exit code`);
      assert.equal(r.sessions[1].end.reason, "closed");
    }
  } finally {
    await bank?.dispose();
    await customer.dispose();
    await relay.close();
    await Deno.remove(dir, { recursive: true });
  }
});
