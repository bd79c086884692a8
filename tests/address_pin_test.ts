/**
 * An address's identity pins (PROTOCOL.md §1.3: `fp=` P-256, `ed=` Ed25519)
 * at the conversation level, on a fake clock over the in-memory relay
 * (tests/helpers/conversation_net.ts): with `ed=` suite x25519 is offered
 * first and chosen by a bank accepting both; only the pinned identities are
 * accepted (another Ed25519 key, or a suite the address pins no key of →
 * `identity-rejected`, no session), also in a handshake the peer (or a relay
 * under its ID) starts; a relay that strips the x25519 offer gets no session.
 */

import assert from "node:assert/strict";
import type { Bytes } from "../lib/bytes.ts";
import { type Client, Net } from "./helpers/conversation_net.ts";
import { PACKET_HS1, PACKET_HS2 } from "../lib/handshake.ts";
import { generateIdentity, type Identity } from "../lib/identity.ts";
import { Conversations } from "../lib/conversations.ts";
import { fingerprint } from "../lib/fingerprint.ts";
import { spkiAlgorithm, SUITE_P256, SUITE_X25519 } from "../lib/suite.ts";

const BOTH = [SUITE_P256, SUITE_X25519]; // the clients' default --suites order

/** A bank and a customer, each with a P-256 and an Ed25519 identity. */
async function pair(
  bankSuites: number[] = BOTH,
): Promise<{ net: Net; bank: Client; customer: Client; bankEd: string }> {
  const net = new Net();
  const bankEdKey = await generateIdentity("Ed25519");
  const bank = await net.client("bank", {
    identities: [bankEdKey],
    suites: bankSuites,
  });
  const customer = await net.client("customer", {
    identities: [await generateIdentity("Ed25519")],
    suites: BOTH,
  });
  return {
    net,
    bank,
    customer,
    bankEd: (await fingerprint(bankEdKey.spki)).toHex(),
  };
}

/** The suites of the first HS1 `from` sent, in offer order (HS1: ver type randomI(32) n offers…). */
function offered(net: Net, from: Client): number[] {
  const hs1 =
    net.log.find((p) =>
      p.from.toHex() === from.id.toHex() && p.packet[1] === PACKET_HS1
    )!.packet;
  const out: number[] = [];
  for (let i = 0, at = 35; i < hs1[34]; i++) {
    out.push((hs1[at] << 8) | hs1[at + 1]);
    at += 3 + hs1[at + 2];
  }
  return out;
}

/** The suite the first HS2 `from` sent names (HS2: ver type suite…). */
function chosen(net: Net, from: Client): number {
  const hs2 =
    net.log.find((p) =>
      p.from.toHex() === from.id.toHex() && p.packet[1] === PACKET_HS2
    )!.packet;
  return (hs2[2] << 8) | hs2[3];
}

Deno.test("ed= pin: x25519 offered first, chosen by a bank accepting both, only that key accepted", async () => {
  const { net, bank, customer, bankEd } = await pair();
  await customer.dial(bank, {
    expectFingerprint: bank.fp,
    expectEd25519Fingerprint: bankEd,
  });
  await net.run(() => customer.of("secure").length > 0, 10_000);
  assert.deepEqual(offered(net, customer), [SUITE_X25519, SUITE_P256]);
  assert.equal(chosen(net, bank), SUITE_X25519);
  const s = customer.of("secure")[0];
  assert.equal(spkiAlgorithm(s.spki), "Ed25519");
  assert.equal(s.fingerprint, bankEd);
  assert.equal(s.trust, "expected");

  // fp= alone: the client's own order (P-256 first), as before.
  const b = await pair();
  await b.customer.dial(b.bank, { expectFingerprint: b.bank.fp });
  await b.net.run(() => b.customer.of("secure").length > 0, 10_000);
  assert.deepEqual(offered(b.net, b.customer), [SUITE_P256, SUITE_X25519]);
  assert.equal(b.customer.of("secure")[0].fingerprint, b.bank.fp);
  assert.equal(b.customer.of("secure")[0].trust, "expected");
});

Deno.test("ed= pin: another Ed25519 key → identity-rejected, before a session exists", async () => {
  const { net, bank, customer } = await pair();
  const other: Identity = await generateIdentity("Ed25519");
  const otherFp = (await fingerprint(other.spki)).toHex();
  await customer.dial(bank, {
    expectFingerprint: bank.fp,
    expectEd25519Fingerprint: otherFp,
  });
  await net.run(() => customer.of("refused").length > 0, 10_000);
  const r = customer.of("refused")[0];
  assert.equal(r.code, "identity-rejected");
  assert.equal(spkiAlgorithm(r.spki), "Ed25519");
  assert.match(r.message, new RegExp(`ed=${otherFp}`));
  assert.equal(customer.of("secure").length, 0);
  assert.equal(bank.of("secure").length, 0, "the refusal came at HS2");
});

Deno.test("one pin alone: a bank (or an impostor) answering in the other suite is refused — no unpinned suite", async () => {
  const { net, bank, customer, bankEd } = await pair([SUITE_P256]);
  await customer.dial(bank, { expectEd25519Fingerprint: bankEd });
  await net.run(() => customer.of("refused").length > 0, 10_000);
  assert.equal(chosen(net, bank), SUITE_P256);
  const r = customer.of("refused")[0];
  assert.equal(r.code, "identity-rejected");
  assert.equal(r.fingerprint, bank.fp, "the bank's own P-256 key, not pinned");
  assert.equal(customer.of("secure").length, 0);

  // fp= alone and a bank answering in x25519: refused the same way (as before).
  const b = await pair([SUITE_X25519]);
  await b.customer.dial(b.bank, { expectFingerprint: b.bank.fp });
  await b.net.run(() => b.customer.of("refused").length > 0, 10_000);
  assert.equal(chosen(b.net, b.bank), SUITE_X25519);
  assert.equal(b.customer.of("refused")[0].code, "identity-rejected");
  assert.equal(b.customer.of("refused")[0].fingerprint, b.bankEd);
  assert.equal(b.customer.of("secure").length, 0);
});

Deno.test("ed= pin: a relay that strips the x25519 offer gets no session (the transcript binds the offers)", async () => {
  const { net, bank, customer, bankEd } = await pair();
  let stripped = 0;
  net.verdict = (p) => {
    // HS1 = ver type randomI n=2 [0002 32 eI(32)] [0001 65 eI(65)] zeros:
    // re-sent offering only P-256, padded like an honest HS1.
    if (
      p.from.toHex() !== customer.id.toHex() || p.packet[1] !== PACKET_HS1 ||
      p.packet[34] !== 2
    ) return "deliver";
    assert.equal((p.packet[35] << 8) | p.packet[36], SUITE_X25519);
    const forged = new Uint8Array(p.packet.length);
    forged.set(p.packet.slice(0, 34));
    forged[34] = 1;
    forged.set(p.packet.slice(70, 138), 35);
    stripped++;
    net.inject({ ...p, packet: forged });
    return "drop";
  };
  await customer.dial(bank, {
    expectFingerprint: bank.fp,
    expectEd25519Fingerprint: bankEd,
  });
  await net.run(() => customer.of("closed").length > 0, 60_000);
  assert.equal(stripped, 1);
  const end = customer.of("closed")[0];
  assert.deepEqual([end.reason, end.code], [
    "handshake-failed",
    "decrypt-failed",
  ]);
  assert.equal(chosen(net, bank), SUITE_P256, "the bank took the bait");
  assert.equal(customer.of("secure").length, 0);
  assert.equal(bank.of("secure").length, 0);
});

Deno.test("pins hold in every handshake of the conversation: a relay-forged HS1 under the bank's ID (we answer) is refused", async () => {
  const { net, bank, customer, bankEd } = await pair();
  await customer.dial(bank, {
    expectFingerprint: bank.fp,
    expectEd25519Fingerprint: bankEd,
  });
  await net.run(() => customer.of("secure").length > 0, 10_000);
  // The relay runs its own handshake with the customer, stamping the bank's
  // ID on it, with fresh keys of both kinds, the fast suite first.
  const forger25519 = await generateIdentity("Ed25519");
  const forger = new Conversations({
    identity: await generateIdentity(),
    localId: bank.id,
    now: net.now,
    options: () => ({
      identities: [forger25519],
      suites: [SUITE_X25519, SUITE_P256],
      trust: () => ({ status: "new" }),
      sessionOptions: { coverRate: 0 },
    }),
  });
  const mark = net.log.length;
  const { output } = await forger.dial(customer.id, net.now);
  const stamp = (packets: { packet: Bytes }[]) => {
    for (const p of packets) {
      net.inject({
        from: bank.id,
        to: customer.id,
        packet: p.packet,
        at: net.now,
      });
    }
  };
  stamp(output.packets);
  net.verdict = (p) =>
    p.packet[1] === PACKET_HS2 && p.from.toHex() === customer.id.toHex()
      ? "drop"
      : "deliver";
  await net.deliver();
  const hs2 = net.log.slice(mark).find((p) => p.packet[1] === PACKET_HS2)!;
  assert.equal((hs2.packet[2] << 8) | hs2.packet[3], SUITE_X25519);
  stamp((await forger.receive(customer.id, hs2.packet, net.now)).packets);
  net.verdict = () => "deliver";
  await net.deliver();
  assert.ok(
    customer.of("notice").some((n) =>
      /new handshake attempt failed \(identity-rejected\)/.test(n.text)
    ),
    JSON.stringify(customer.of("notice")),
  );
  assert.equal(customer.of("secure").length, 1, "the live session stays");
  assert.equal(customer.of("secure")[0].fingerprint, bankEd);
});
