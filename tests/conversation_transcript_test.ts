/**
 * Regression tests for the forgeries of issue 11 ("Transcript verification
 * must not vouch for what the protocol cannot produce"). Each forged file
 * was reported VALID (exit 0) before the graded verifier; now each is
 * INVALID or INCOMPLETE with the reason, in the library and in the CLI.
 */
import assert from "node:assert/strict";
import {
  endLine,
  messageLine,
  ORDER_NOTE,
  sessionLine,
  verifyConversation,
} from "../lib/conversation_transcript.ts";
import { encodeControl } from "../lib/control.ts";
import { generateIdentity } from "../lib/identity.ts";
import { Session } from "../lib/session.ts";
import { ProtocolError } from "../lib/errors.ts";
import {
  paymentBodies,
  recordConversation,
} from "./helpers/conversation_fixture.ts";
import { flagsWithDir, ROOT } from "./helpers/client_proc.ts";
import { exchange, fixture, pair } from "./session_helpers.ts";

type Rec = Record<string, string | number | undefined>;
const B64 = { alphabet: "base64url", omitPadding: true } as const;
const enc = new TextEncoder();

const isCode = (code: string, re?: RegExp) => (e: unknown) =>
  e instanceof ProtocolError && e.code === code &&
  (re === undefined || re.test(e.message));

/** The bank's file of one closed session: resume, payment request / resume, approval, CLOSEs. */
async function closedPaymentFile(): Promise<{ dir: string; lines: Rec[] }> {
  const dir = await Deno.makeTempDir({ prefix: "conversation_test_" });
  const { request, approval } = await paymentBodies();
  const { bank } = await recordConversation(dir, [
    { bank: [request], customer: [approval, "please revoke"], close: true },
  ]);
  const text = await Deno.readTextFile(bank);
  return { dir, lines: text.trimEnd().split("\n").map((l) => JSON.parse(l)) };
}

const text = (lines: Rec[]) =>
  lines.map((l) => JSON.stringify(l)).join("\n") + "\n";
const messages = (lines: Rec[], dir: string) =>
  lines.filter((l) => l.record === "message" && l.dir === dir);

async function verifyCli(dir: string, lines: Rec[]) {
  const path = `${dir}/forged.jsonl`;
  await Deno.writeTextFile(path, text(lines));
  const { flags, entry } = flagsWithDir("verify-transcript", dir);
  const out = await new Deno.Command("deno", {
    args: ["run", ...flags, entry, "--json", path],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  return { code: out.code, json: JSON.parse(stdout) };
}

Deno.test("the honest closed file is COMPLETE (exit 0), states the unproven order, links the approval to its request", async () => {
  const { dir, lines } = await closedPaymentFile();
  try {
    const r = await verifyConversation(text(lines));
    assert.equal(r.verdict, "COMPLETE", r.missing.join("\n"));
    assert.deepEqual(r.missing, []);
    assert.equal(r.payments.length, 1);
    assert.ok(r.payments[0].matched);
    const cli = await verifyCli(dir, lines);
    assert.equal(cli.code, 0);
    assert.equal(cli.json.verdict, "COMPLETE");
    assert.equal(cli.json.valid, true);
    assert.equal(cli.json.order, ORDER_NOTE);
    assert.deepEqual(cli.json.otherIdentities, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("forgery: an unsigned PAYMENT APPROVED appended after the signed CLOSE → INVALID (exit 1)", async () => {
  const { dir, lines } = await closedPaymentFile();
  try {
    const last = messages(lines, "r2i").at(-1)!;
    assert.equal(last.type, "close");
    const forged = JSON.stringify({
      kind: "payment-response",
      decision: "approved",
      reference: "INV-8",
      request: "ab".repeat(32),
    });
    const end = lines.findIndex((l) => l.record === "end");
    lines.splice(end, 0, {
      record: "message",
      session: 1,
      dir: "r2i",
      seq: String(Number(last.seq) + 1),
      type: "data",
      body: enc.encode(forged).toBase64(B64),
    });
    await assert.rejects(
      verifyConversation(text(lines)),
      isCode("malformed", /follows its CLOSE/),
    );
    const cli = await verifyCli(dir, lines);
    assert.equal(cli.code, 1);
    assert.equal(cli.json.verdict, "INVALID");
    assert.equal(cli.json.valid, false);
    assert.equal(cli.json.error.code, "malformed");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("forgery: each direction cut back to a signed prefix (revocation and both CLOSEs gone) → INCOMPLETE (exit 3) saying so", async () => {
  const { dir, lines } = await closedPaymentFile();
  try {
    // Keep the bank's resume + request, the customer's resume + approval.
    const cut = lines.filter((l) =>
      l.record !== "end" &&
      !(l.record === "message" && Number(l.seq) > 2)
    );
    const r = await verifyConversation(text(cut));
    assert.equal(r.verdict, "INCOMPLETE");
    assert.deepEqual(r.missing, [
      "session 1: the initiator (bank) direction ends at seq 2 without a signed CLOSE (later messages may be missing)",
      "session 1: the responder (customer) direction ends at seq 2 without a signed CLOSE (later messages may be missing)",
    ]);
    const cli = await verifyCli(dir, cut);
    assert.equal(cli.code, 3);
    assert.equal(cli.json.verdict, "INCOMPLETE");
    assert.equal(cli.json.valid, false);
    assert.equal(cli.json.missing.length, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("forgery: a whole direction deleted → INCOMPLETE, the empty direction named; the approval's request is then dangling", async () => {
  const { dir, lines } = await closedPaymentFile();
  try {
    const noBank = lines.filter((l) => l.dir !== "i2r");
    const r = await verifyConversation(text(noBank));
    assert.equal(r.verdict, "INCOMPLETE");
    assert.match(r.missing.join("\n"), /the initiator direction is empty/);
    assert.match(
      r.missing.join("\n"),
      /payment response #2 \(approved\) names request [0-9a-f]{16}…, which is not a signed request in this file/,
    );
    const cli = await verifyCli(dir, noBank);
    assert.equal(cli.code, 3);
    assert.equal(cli.json.payments[0].matched, null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("forgery: swapped role labels → INVALID (relabelled): each label is bound to its signer's signed resume", async () => {
  const { dir, lines } = await closedPaymentFile();
  try {
    const s = lines.find((l) => l.record === "session")! as unknown as {
      labels: Record<string, string>;
    };
    s.labels = { initiator: "customer", responder: "bank" };
    await assert.rejects(
      verifyConversation(text(lines)),
      isCode("relabelled", /labels the initiator "customer".*signed "bank"/),
    );
    const cli = await verifyCli(dir, lines);
    assert.equal(cli.code, 1);
    assert.equal(cli.json.error.code, "relabelled");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an unsigned message is listed apart, raw, never decoded as a payment; an unsigned CLOSE is INVALID", async () => {
  const { dir, lines } = await closedPaymentFile();
  try {
    // Drop the customer's messages after the approval and strip the approval's signature.
    const r2i = messages(lines, "r2i");
    const approval = r2i[1];
    const cut = lines.filter((l) =>
      !(l.record === "message" && l.dir === "r2i" && Number(l.seq) > 2) &&
      l.record !== "end"
    );
    delete approval.sig;
    delete approval.head;
    const r = await verifyConversation(text(cut));
    assert.equal(r.verdict, "INCOMPLETE");
    assert.equal(
      r.payments.length,
      0,
      "an uncovered response is not a payment",
    );
    assert.equal(r.uncovered.length, 1);
    assert.equal(r.uncovered[0].role, "responder");
    assert.match(new TextDecoder().decode(r.uncovered[0].body), /approved/);
    assert.match(
      r.missing.join("\n"),
      /1 message\(s\) of the responder \(customer\) are covered by no signature/,
    );

    const close = messages(lines, "i2r").at(-1)!;
    delete close.sig;
    delete close.head;
    await assert.rejects(
      verifyConversation(text(lines)),
      isCode("malformed", /CLOSE at seq \d+ has no signature/),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("verify-transcript shows peer text with bidi and control characters neutralised", async () => {
  const dir = await Deno.makeTempDir({ prefix: "conversation_test_" });
  try {
    const { bank } = await recordConversation(dir, [
      { bank: ["pay \u202eRCA\x1b[2J"], customer: ["ok\u2066"], close: true },
    ]);
    const { flags, entry } = flagsWithDir("verify-transcript", dir);
    const out = await new Deno.Command("deno", {
      args: ["run", ...flags, entry, bank],
      cwd: ROOT,
      env: { NO_COLOR: "1" },
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, stdout);
    for (const c of ["\u202e", "\u2066", "\x1b"]) {
      assert.ok(!stdout.includes(c), "nothing raw");
    }
    assert.match(
      stdout,
      /pay <U\+202E>RCA\\u001b\[2J/,
    );
    assert.match(stdout, /ok<U\+2066>/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a signed resume names what the previous session delivered: a message cut from that session is reported", async () => {
  const dir = await Deno.makeTempDir({ prefix: "conversation_test_" });
  try {
    const { request, approval } = await paymentBodies();
    const { bank } = await recordConversation(dir, [
      { bank: [request], customer: [approval], close: false },
      { bank: ["thanks"], customer: [], close: true },
    ]);
    const lines = (await Deno.readTextFile(bank)).trimEnd().split("\n").map((
      l,
    ) => JSON.parse(l));
    const honest = await verifyConversation(text(lines));
    assert.ok(!honest.missing.some((m) => /resume/.test(m)));
    // Drop the approval (the customer's last message of session 1).
    const cut = lines.filter((l) =>
      !(l.session === 1 && l.dir === "r2i" && l.seq === "2")
    );
    const r = await verifyConversation(text(cut));
    assert.match(
      r.missing.join("\n"),
      /session 1: the responder direction holds 1 message\(s\), but the peer's signed resume in session 2 says it delivered 2/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a seq with a leading zero, or a record of an unknown session, makes the file INVALID", async () => {
  const { dir, lines } = await closedPaymentFile();
  try {
    const padded = structuredClone(lines);
    messages(padded, "i2r")[0].seq = "01";
    await assert.rejects(
      verifyConversation(text(padded)),
      isCode("malformed", /has no seq/),
    );
    const stray = structuredClone(lines);
    messages(stray, "i2r")[0].session = 2;
    await assert.rejects(
      verifyConversation(text(stray)),
      isCode("malformed", /line \d+: message of an unknown session/),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an approval re-sent in the next session (same stream and message id) is one decision: the copy is reported as copyOf, in the library and in the CLI", async () => {
  const dir = await Deno.makeTempDir({ prefix: "conversation_test_" });
  try {
    const { request, approval } = await paymentBodies();
    // Session 1: the approval's ACK never came back; the customer re-sends
    // it as message #1 again in session 2 (the bank had it: it drops it).
    const { customer } = await recordConversation(dir, [
      {
        bank: [request],
        customer: [approval],
        close: false,
        next: { bank: 1, customer: 1 },
      },
      {
        bank: [],
        customer: [approval],
        close: true,
        next: { bank: 2, customer: 1 },
      },
    ]);
    const file = await Deno.readTextFile(customer);
    const r = await verifyConversation(file);
    assert.equal(r.payments.length, 2);
    assert.equal(r.payments[0].copyOf, undefined);
    assert.deepEqual(r.payments[1].copyOf, { session: 1, seq: 2n });
    assert.deepEqual(r.payments.map((p) => p.matched?.session), [1, 1]);
    const cli = await verifyCli(
      dir,
      JSON.parse(`[${file.trimEnd().split("\n").join(",")}]`),
    );
    assert.equal(cli.json.payments[0].copyOf, undefined);
    assert.deepEqual(cli.json.payments[1].copyOf, { session: 1, seq: 2 });
    // A new id in the next session is a second decision, not a copy.
    await Deno.mkdir(`${dir}/again`);
    const { customer: again } = await recordConversation(`${dir}/again`, [
      {
        bank: [request],
        customer: [approval],
        close: false,
        next: { bank: 1, customer: 1 },
      },
      {
        bank: [],
        customer: [approval],
        close: true,
        next: { bank: 2, customer: 2 },
      },
    ]);
    const second = await verifyConversation(await Deno.readTextFile(again));
    assert.deepEqual(second.payments.map((p) => p.copyOf), [
      undefined,
      undefined,
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reader rules of PROTOCOL.md §2.2.10: each listed shape error is INVALID; unknown members are ignored", async () => {
  const { dir, lines } = await closedPaymentFile();
  try {
    const honest = await verifyConversation(text(lines));
    assert.equal(honest.verdict, "COMPLETE", honest.missing.join("\n"));
    const sessionAt = lines.findIndex((l) => l.record === "session");
    const endAt = lines.findIndex((l) => l.record === "end");
    const firstMsg = lines.findIndex((l) => l.record === "message");
    const edits: [string, (f: Rec[]) => void, string][] = [
      [
        "a line that is not an object",
        (f) => f.splice(2, 0, [] as never),
        "malformed",
      ],
      [
        "the conversation record again",
        (f) => f.splice(2, 0, f[0]),
        "malformed",
      ],
      ["version 2", (f) => void (f[0].version = 2), "malformed"],
      [
        "an unknown record",
        (f) => f.splice(2, 0, { record: "note" }),
        "malformed",
      ],
      ["an unknown dir", (f) => void (f[firstMsg].dir = "x2y"), "malformed"],
      [
        "an unknown type",
        (f) => void (f[firstMsg].type = "dummy"),
        "malformed",
      ],
      [
        "an unknown end reason",
        (f) => void (f[endAt].reason = "done"),
        "malformed",
      ],
      [
        "an unknown localRole",
        (f) => void (f[sessionAt].localRole = "bank"),
        "malformed",
      ],
      ["session 2 first", (f) => void (f[sessionAt].session = 2), "malformed"],
      [
        "an end of a session not begun",
        (f) => f.push({ record: "end", session: 2, reason: "closed" }),
        "malformed",
      ],
      [
        "a message after its session's end",
        (f) => f.push({ ...f[firstMsg] }),
        "malformed",
      ],
      ["a second end", (f) => f.push({ ...f[endAt] }), "malformed"],
      [
        "a body that is not base64url",
        (f) => void (f[firstMsg].body = "!!"),
        "malformed",
      ],
      [
        "a 31-byte sessionHash",
        (f) =>
          void (f[sessionAt].sessionHash = new Uint8Array(31).toBase64(B64)),
        "malformed",
      ],
      [
        "labels that are not an object",
        (f) => void (f[sessionAt].labels = "bank" as never),
        "malformed",
      ],
      [
        "an SPKI that is no identity key",
        (f) =>
          void (f[sessionAt].responderSpki = new Uint8Array(91).toBase64(B64)),
        "invalid-public-key",
      ],
    ];
    for (const [what, edit, code] of edits) {
      const f = structuredClone(lines);
      edit(f);
      await assert.rejects(verifyConversation(text(f)), isCode(code), what);
    }
    // Members not listed in §2.2.10 are ignored; end records are claims only.
    const extra = structuredClone(lines);
    extra[sessionAt].note = "x";
    extra[firstMsg].note = "x";
    extra.splice(endAt, 1);
    const r = await verifyConversation(text(extra));
    assert.equal(r.verdict, "COMPLETE", "no end record: still COMPLETE");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("labels only the file claims (no signed resume role) are marked unproven in the text and in --json", async () => {
  const dir = await Deno.makeTempDir({ prefix: "conversation_test_" });
  try {
    // A closed session without resume messages (another implementation, or
    // raw Sessions): nothing signs a role, the file claims swapped ones.
    const { a, b } = await pair({ signEvery: 3 });
    await exchange(a, b, await a.send(enc.encode("hello"), 0), 0);
    await exchange(a, b, await a.close(10), 10);
    assert.ok(a.closed && b.closed);
    const file = {
      ...a.transcript!.toJSON(),
      labels: { initiator: "customer", responder: "bank" },
    };
    const path = `${dir}/claimed.json`;
    await Deno.writeTextFile(path, JSON.stringify(file));
    const r = await verifyConversation(JSON.stringify(file));
    assert.equal(r.verdict, "COMPLETE", r.missing.join("\n"));
    assert.deepEqual(r.sessions[0].labels, {}, "nothing proven");
    const { flags, entry } = flagsWithDir("verify-transcript", dir);
    const run = async (...extra: string[]) =>
      new TextDecoder().decode(
        (await new Deno.Command("deno", {
          args: ["run", ...flags, entry, ...extra, path],
          cwd: ROOT,
          env: { NO_COLOR: "1" },
        }).output()).stdout,
      );
    const json = JSON.parse(await run("--json"));
    const hello = json.sessions[0].messages.find((m: { text: string }) =>
      m.text === "hello"
    );
    assert.equal(hello.label, "customer");
    assert.equal(hello.labelProven, false);
    assert.deepEqual(json.sessions[0].labels.initiator, {
      label: "customer",
      proven: false,
    });
    assert.match(
      await run(),
      /initiator \(customer\?: label claimed by the file, not signed\) #1: "hello"/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("forgery: an approval signed by another identity in an appended session does not answer the customer's request", async () => {
  // The file's author appends a session with a key it controls, labelled
  // "customer", approving the request session 1 sent to the real customer.
  // Before: COMPLETE, the approval linked to the request. Now: a request
  // only counts as answered by the identity it was sent to.
  const dir = await Deno.makeTempDir({ prefix: "conversation_test_" });
  try {
    const { request, approval } = await paymentBodies();
    const { bank } = await recordConversation(dir, [
      { bank: [request], customer: ["let me check"], close: true },
    ]);
    const lines = (await Deno.readTextFile(bank)).trimEnd().split("\n").map((
      l,
    ) => JSON.parse(l));
    const fx = await fixture();
    const x = await generateIdentity();
    const sessionHash = fx.resultI.sessionHash.slice();
    sessionHash[0] ^= 0xff;
    const opts = { signEvery: 1, minSignGapMs: 0, coalesce: false };
    const b = await Session.fromHandshake({
      ...fx.resultI,
      sessionHash,
      peerIdentity: { publicKey: x.publicKey, spki: x.spki },
    }, opts);
    const c = await Session.fromHandshake(
      { ...fx.resultR, sessionHash, localIdentity: x },
      opts,
    );
    const resume = (role: string) =>
      encodeControl({ kind: "resume", prev: null, delivered: 0, role });
    await exchange(b, c, await b.send(resume("bank"), 0), 0);
    await exchange(c, b, await c.send(resume("customer"), 0), 0);
    await exchange(c, b, await c.send(enc.encode(approval), 0), 0);
    await exchange(b, c, await b.close(1), 1);
    assert.ok(b.closed);
    const forged = text(lines) +
      sessionLine(2, b.transcript!.context, { initiator: "bank" }, 0) +
      b.transcript!.messages.map((m) => messageLine(2, m)).join("") +
      endLine(2, "closed", 1);
    const r = await verifyConversation(forged);
    assert.equal(r.verdict, "INCOMPLETE");
    assert.equal(r.payments.length, 1);
    assert.equal(r.payments[0].matched, undefined);
    assert.deepEqual(r.payments[0].otherIdentity, {
      session: 1,
      role: "initiator",
      seq: 2n,
    });
    assert.match(r.missing.join("\n"), /sent to another identity/);
    // The same approval by the customer it was sent to is an answer.
    await Deno.mkdir(`${dir}/h`);
    const honest = await recordConversation(`${dir}/h`, [
      { bank: [request], customer: [approval], close: true },
    ]);
    const ok = await verifyConversation(await Deno.readTextFile(honest.bank));
    assert.equal(ok.verdict, "COMPLETE", ok.missing.join("\n"));
    assert.ok(ok.payments[0].matched);
    const path = `${dir}/forged.jsonl`;
    await Deno.writeTextFile(path, forged);
    const { flags, entry } = flagsWithDir("verify-transcript", dir);
    const out = await new Deno.Command("deno", {
      args: ["run", ...flags, entry, "--json", path],
      cwd: ROOT,
      env: { NO_COLOR: "1" },
    }).output();
    assert.equal(out.code, 3);
    const json = JSON.parse(new TextDecoder().decode(out.stdout));
    assert.equal(json.payments[0].matched, null);
    assert.deepEqual(json.payments[0].otherIdentity, {
      session: 1,
      role: "initiator",
      seq: 2,
    });
    assert.deepEqual(json.otherIdentities, [2], "session 2 has other keys");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
