/**
 * Test helper: a real bank ↔ customer conversation between two `Session`s in
 * memory (fixed master, real ECDSA identities, per-message signing as in the
 * payment scenario), recorded by both sides into conversation transcript
 * files with `TranscriptFile`. Session k has session hash 0x22…22 with its
 * last byte = k, so sessions differ.
 * @module
 */

import { encodeControl } from "../../clients/control.ts";
import {
  encodePaymentMessage,
  paymentRequest,
  paymentResponse,
} from "../../lib/payment.ts";
import { Session } from "../../lib/session.ts";
import { TranscriptFile } from "../../lib/deno/transcript_file.ts";
import { exchange, fixture } from "../session_helpers.ts";

const enc = new TextEncoder();

/** One session's script: what each side sends after its `resume`, and whether it closes. */
export interface SessionScript {
  bank: string[];
  customer: string[];
  close: boolean;
  /**
   * With message ids (PROTOCOL.md §2.4): each side's `resume` names its
   * stream (fixed per side) and this id as `next`, the id of its first
   * message in the session.
   */
  next?: { bank: number; customer: number };
}

/** The streams the sides name when a script gives `next`. */
export const STREAMS = { bank: "b".repeat(32), customer: "c".repeat(32) };

/** The payment request body the bank sends and the approval the customer answers with. */
export async function paymentBodies(): Promise<
  { request: string; approval: string }
> {
  const req = paymentRequest({
    amount: "125.00",
    currency: "EUR",
    payee: "ACME Ltd",
    reference: "INV-7",
  });
  const request = encodePaymentMessage(req);
  const approval = encodePaymentMessage(
    await paymentResponse(request, req, true),
  );
  return { request, approval };
}

/**
 * Runs the sessions of `scripts` in order (the bank initiates each) and
 * returns the paths of the bank's and the customer's transcript files in `dir`.
 */
export async function recordConversation(
  dir: string,
  scripts: SessionScript[],
): Promise<{ bank: string; customer: string }> {
  const fx = await fixture();
  const paths = {
    bank: `${dir}/bank.jsonl`,
    customer: `${dir}/customer.jsonl`,
  };
  const files = {
    bank: await TranscriptFile.open(paths.bank, 0),
    customer: await TranscriptFile.open(paths.customer, 0),
  };
  let prev: string | null = null;
  let delivered = { bank: 0, customer: 0 };
  let t = 1000;
  for (let k = 0; k < scripts.length; k++) {
    const sessionHash = fx.resultI.sessionHash.slice();
    sessionHash[31] = k + 1;
    const opts = { signEvery: 1, minSignGapMs: 0, coalesce: false };
    const bank = await Session.fromHandshake(
      { ...fx.resultI, sessionHash },
      opts,
    );
    const customer = await Session.fromHandshake(
      { ...fx.resultR, sessionHash },
      opts,
    );
    files.bank.beginSession(bank.transcript!, { initiator: "bank" }, t);
    files.customer.beginSession(
      customer.transcript!,
      { responder: "customer" },
      t,
    );
    const sync = () => {
      files.bank.sync();
      files.customer.sync();
    };
    const s = scripts[k];
    const resume = (role: "bank" | "customer") =>
      encodeControl({
        kind: "resume",
        prev,
        delivered: delivered[role],
        role,
        ...(s.next
          ? {
            stream: STREAMS[role],
            peerStream: null,
            deliveredId: 0,
            next: s.next[role],
          }
          : {}),
      });
    await exchange(bank, customer, await bank.send(resume("bank"), t), t);
    await exchange(
      customer,
      bank,
      await customer.send(resume("customer"), t),
      t,
    );
    sync();
    for (const text of s.bank) {
      await exchange(bank, customer, await bank.send(enc.encode(text), t), t);
      sync();
    }
    for (const text of s.customer) {
      await exchange(
        customer,
        bank,
        await customer.send(enc.encode(text), t),
        t,
      );
      sync();
    }
    t += 1000;
    if (s.close) {
      await exchange(bank, customer, await bank.close(t), t);
      files.bank.endSession("closed", t);
      files.customer.endSession("closed", t);
    } else {
      files.bank.endSession("replaced", t);
      files.customer.endSession("replaced", t);
    }
    prev = sessionHash.toHex();
    delivered = { bank: 1 + s.customer.length, customer: 1 + s.bank.length };
  }
  await files.bank.close();
  await files.customer.close();
  return paths;
}
