/**
 * Generates the conversation-transcript vectors of PROTOCOL.md §2.2.10:
 * `good_transcript_*.json` and `fail_transcript_*.json`. Each vector is
 * `{ description, expect: { verdict, error?, missing? }, file }`, where
 * `file` is the exact text of a transcript file (JSON Lines) and `expect`
 * the verifier's result: `verdict` COMPLETE / INCOMPLETE / INVALID, `error`
 * the ProtocolError code of an INVALID file, `missing` the number of items
 * that keep an INCOMPLETE file from COMPLETE. Checker:
 * tests/vectors_transcript_test.ts.
 *
 * Run by hand from the repository root:
 *
 *   deno run --allow-read=tests/vectors --allow-write=tests/vectors tests/vectors/generate_transcript.ts
 *
 * The identities are those of good_handshake.json, master and session
 * hashes are fixed, times are fixed. The rekey ephemerals are fresh on each
 * run, so REKEY bodies and the signatures after them change when
 * regenerating (checkers verify signatures, they do not compare them).
 * @module
 */

import { encodeControl } from "../../clients/control.ts";
import {
  conversationLine,
  endLine,
  messageLine,
  type RoleLabels,
  sessionLine,
} from "../../lib/conversation_transcript.ts";
import type { HandshakeResult } from "../../lib/handshake_result.ts";
import { importIdentity } from "../../lib/identity.ts";
import {
  encodePaymentMessage,
  paymentRequest,
  paymentResponse,
} from "../../lib/payment.ts";
import { Session, type SessionEvent } from "../../lib/session.ts";
import { importSecret } from "../../lib/suite.ts";

const DIR = new URL(".", import.meta.url).pathname;
const hs = JSON.parse(await Deno.readTextFile(`${DIR}good_handshake.json`));
const h = (s: string) => Uint8Array.fromHex(s);
const enc = new TextEncoder();
const T0 = Date.UTC(2026, 11, 2, 9, 0, 0);

const idI = await importIdentity(
  h(hs.initiator.identityPkcs8),
  h(hs.initiator.identitySpki),
  "initiator",
);
const idR = await importIdentity(
  h(hs.responder.identityPkcs8),
  h(hs.responder.identitySpki),
  "responder",
);

async function sessions(k: number, options: Record<string, number>) {
  const sessionHash = new Uint8Array(32).fill(0x5a);
  sessionHash[31] = k;
  const base = {
    suite: 1,
    sessionHash,
    initiatorId: h(hs.initiatorId),
    responderId: h(hs.responderId),
  };
  const result = async (role: "initiator" | "responder") => ({
    role,
    suite: 1,
    localId: role === "initiator" ? base.initiatorId : base.responderId,
    peerId: role === "initiator" ? base.responderId : base.initiatorId,
    localIdentity: role === "initiator" ? idI : idR,
    peerIdentity: role === "initiator"
      ? { publicKey: idR.publicKey, spki: idR.spki }
      : { publicKey: idI.publicKey, spki: idI.spki },
    sessionHash: sessionHash.slice(),
    master: await importSecret(new Uint8Array(32).fill(0x11 + k)),
  } satisfies HandshakeResult);
  const opts = { minSignGapMs: 0, coalesce: false, ...options };
  return {
    bank: await Session.fromHandshake(await result("initiator"), opts),
    customer: await Session.fromHandshake(await result("responder"), opts),
    sessionHash,
  };
}

/** Delivers packets back and forth until quiet. */
async function exchange(
  from: Session,
  to: Session,
  packets: Uint8Array[],
  now: number,
): Promise<SessionEvent[]> {
  const events: SessionEvent[] = [];
  let queue: [Session, Uint8Array[]][] = [[to, packets]];
  while (queue.length > 0) {
    const next: [Session, Uint8Array[]][] = [];
    for (const [dst, pkts] of queue) {
      if (pkts.length === 0) continue;
      // deno-lint-ignore no-explicit-any -- Bytes brand
      const r = await dst.receiveMany(pkts as any, now);
      events.push(...r.events);
      next.push([dst === from ? to : from, r.packets]);
    }
    queue = next;
  }
  return events;
}

const req = paymentRequest({
  amount: "125.00",
  currency: "EUR",
  payee: "ACME Supplies Ltd",
  reference: "INV-2026-1125",
});
const REQUEST = encodePaymentMessage(req);
const APPROVAL = encodePaymentMessage(
  await paymentResponse(REQUEST, req, true),
);
const DANGLING = encodePaymentMessage({
  kind: "payment-response",
  decision: "approved",
  reference: "INV-2026-1125",
  request: "00".repeat(32),
});

interface Script {
  bank: string[];
  customer: string[];
  close: boolean;
  /** Wait past signIntervalMs before closing (a CHECKPOINT carries the signature). */
  checkpoint?: boolean;
  options?: Record<string, number>;
}

/** The bank's (initiator's) file of the sessions in `scripts`, as lines (strings with their "\n"). */
async function bankFile(scripts: Script[]): Promise<string[]> {
  const lines = [conversationLine(T0)];
  let prev: string | null = null;
  let t = T0;
  for (let k = 0; k < scripts.length; k++) {
    const s = scripts[k];
    const { bank, customer, sessionHash } = await sessions(
      k + 1,
      s.options ?? { signEvery: 1 },
    );
    const labels: RoleLabels = { initiator: "bank" };
    lines.push(sessionLine(k + 1, bank.transcript!.context, labels, t));
    const resume = (role: string, delivered: number) =>
      encodeControl({ kind: "resume", prev, delivered, role });
    await exchange(bank, customer, await bank.send(resume("bank", 0), t), t);
    await exchange(
      customer,
      bank,
      await customer.send(resume("customer", 0), t),
      t,
    );
    for (const x of s.bank) {
      await exchange(bank, customer, await bank.send(enc.encode(x), t), t);
      t += 10;
    }
    for (const x of s.customer) {
      await exchange(customer, bank, await customer.send(enc.encode(x), t), t);
      t += 10;
    }
    if (s.checkpoint) {
      // First poll: the rekey that is due; second: the CHECKPOINTs that sign it.
      for (let round = 0; round < 2; round++) {
        t += 1500;
        for (const side of [bank, customer]) {
          const other = side === bank ? customer : bank;
          await exchange(side, other, await side.poll(t), t);
        }
      }
    }
    t += 1000;
    if (s.close) await exchange(bank, customer, await bank.close(t), t);
    for (const m of bank.transcript!.messages) {
      lines.push(messageLine(k + 1, m));
    }
    lines.push(endLine(k + 1, s.close ? "closed" : "replaced", t));
    prev = sessionHash.toHex();
  }
  return lines;
}

interface Vector {
  description: string;
  expect: { verdict: string; error?: string; missing?: number };
  file: string;
}

const out = new Map<string, Vector>();
const put = (name: string, v: Vector) => out.set(name, v);
const parse = (l: string) => JSON.parse(l);
const join = (objs: unknown[]) =>
  objs.map((o) => JSON.stringify(o) + "\n").join("");

const complete = await bankFile([{
  bank: [REQUEST, "thank you"],
  customer: [APPROVAL, "bye"],
  close: true,
  checkpoint: true,
  options: { signEvery: 3, rekeyAfterMessages: 3, signIntervalMs: 1000 },
}]);
put("good_transcript_complete", {
  description:
    "One closed session recorded by the bank (initiator): resume, payment request, approval, a rekey (rekey-init / rekey-resp), a checkpoint, chain signatures every 3 messages, both CLOSEs. Every message is covered, the approval names the request: COMPLETE.",
  expect: { verdict: "COMPLETE", missing: 0 },
  file: complete.join(""),
});

const two = await bankFile([
  { bank: [REQUEST], customer: [APPROVAL], close: false },
  { bank: ["see you"], customer: [], close: true },
]);
put("good_transcript_two_sessions", {
  description:
    "Two sessions of one conversation: session 1 (request, approval) was replaced by session 2 (whose resumes name session 1) before any CLOSE; session 2 closed. Both directions of session 1 end without CLOSE: INCOMPLETE with 2 missing items, although every record verifies and the approval is linked to its request.",
  expect: { verdict: "INCOMPLETE", missing: 2 },
  file: two.join(""),
});

const objs = complete.map(parse);
const idx = (pred: (o: Record<string, string>) => boolean) =>
  objs.findIndex(pred);
const lastR2i = objs.findLast((o) => o.dir === "r2i")!;
const endAt = idx((o) => o.record === "end");

{
  const f = structuredClone(objs);
  f.splice(endAt, 0, {
    record: "message",
    session: 1,
    dir: "r2i",
    seq: String(Number(lastR2i.seq) + 1),
    type: "data",
    body: enc.encode(DANGLING).toBase64({
      alphabet: "base64url",
      omitPadding: true,
    }),
  });
  put("fail_transcript_after_close", {
    description:
      "An unsigned payment approval appended after the customer's signed CLOSE: the protocol cannot produce a message after a CLOSE in its direction.",
    expect: { verdict: "INVALID", error: "malformed" },
    file: join(f),
  });
}
{
  const f = structuredClone(objs);
  f[1].labels = { initiator: "customer" };
  put("fail_transcript_relabelled", {
    description:
      'The session record labels the initiator "customer", but the initiator\'s signed resume says "bank".',
    expect: { verdict: "INVALID", error: "relabelled" },
    file: join(f),
  });
}
{
  const f = structuredClone(objs);
  const m = f.find((o) => o.sig !== undefined && o.dir === "r2i")!;
  const sig = Uint8Array.fromBase64(m.sig, { alphabet: "base64url" });
  sig[5] ^= 1;
  m.sig = sig.toBase64({ alphabet: "base64url", omitPadding: true });
  put("fail_transcript_bad_signature", {
    description: "One bit of the responder's first chain signature flipped.",
    expect: { verdict: "INVALID", error: "bad-signature" },
    file: join(f),
  });
}
{
  const f = structuredClone(objs);
  const m = f.find((o) =>
    o.dir === "i2r" && o.type === "data" &&
    new TextDecoder().decode(
      Uint8Array.fromBase64(o.body, { alphabet: "base64url" }),
    ).includes("125.00")
  )!;
  m.body = enc.encode(REQUEST.replace("125.00", "925.00")).toBase64({
    alphabet: "base64url",
    omitPadding: true,
  });
  put("fail_transcript_chain_mismatch", {
    description:
      "The amount of the payment request altered (125.00 → 925.00): the recomputed chain head differs from the recorded one at the next signature.",
    expect: { verdict: "INVALID", error: "chain-mismatch" },
    file: join(f),
  });
}
{
  const f = structuredClone(objs);
  const at = f.findIndex((o) => o.dir === "i2r" && o.seq === "2");
  f.splice(at, 1);
  put("fail_transcript_seq_gap", {
    description: "The bank's seq 2 removed: a gap in the seqs of a direction.",
    expect: { verdict: "INVALID", error: "malformed" },
    file: join(f),
  });
}
{
  // Cut each direction back to its last signature before the CLOSE.
  const f = objs.filter((o) => o.record !== "end");
  for (const dir of ["i2r", "r2i"]) {
    const mine = f.filter((o) => o.dir === dir);
    const close = mine.findLast((o) => o.type === "close")!;
    const before = mine.filter((o) => o !== close && o.sig !== undefined)
      .at(-1)!;
    for (const o of mine) {
      if (Number(o.seq) > Number(before.seq)) f.splice(f.indexOf(o), 1);
    }
  }
  put("fail_transcript_prefix", {
    description:
      "Each direction cut back to a signed prefix: everything after each side's last signature before its CLOSE removed, CLOSEs included. Signatures verify; both directions end without CLOSE.",
    expect: { verdict: "INCOMPLETE", missing: 2 },
    file: join(f),
  });
}
{
  const f = objs.filter((o) => o.dir !== "i2r");
  put("fail_transcript_direction_deleted", {
    description:
      "The bank's whole direction deleted: the initiator direction is empty, and the approval now names a request that is not in the file.",
    expect: { verdict: "INCOMPLETE", missing: 2 },
    file: join(f),
  });
}
{
  const dangling = await bankFile([{
    bank: [REQUEST],
    customer: [DANGLING],
    close: true,
  }]);
  put("fail_transcript_dangling_payment", {
    description:
      "A signed payment approval whose request hash (00…00) matches no request in the file.",
    expect: { verdict: "INCOMPLETE", missing: 1 },
    file: dangling.join(""),
  });
}
{
  const text = complete.join("");
  put("fail_transcript_torn", {
    description:
      "A complete file followed by a torn last line (no final newline, as a crash during a write leaves it): the torn line is ignored and reported.",
    expect: { verdict: "INCOMPLETE", missing: 1 },
    file: text + '{"record":"message","session":1,"dir":"i2r","se',
  });
}

{
  // Session 1 removed and session 2 renumbered 1 (session numbers are not
  // signed): what remains verifies and is closed, but both signed resumes
  // name a previous session that is no longer in the file.
  const f = two.map(parse).filter((o) => o.session !== 1);
  for (const o of f) if (o.session === 2) o.session = 1;
  put("fail_transcript_session_deleted", {
    description:
      "The first of two sessions deleted (and the second renumbered 1): every record verifies and both directions end with a signed CLOSE, but each side's signed resume names as its previous session a session hash that is not in the file: INCOMPLETE with 2 missing items.",
    expect: { verdict: "INCOMPLETE", missing: 2 },
    file: join(f),
  });
}

for (const [name, v] of out) {
  await Deno.writeTextFile(
    `${DIR}${name}.json`,
    JSON.stringify(v, null, 2) + "\n",
  );
  console.log(`wrote tests/vectors/${name}.json`);
}
