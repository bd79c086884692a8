/**
 * The payment-confirmation scenario's message bodies (JSON text inside DATA
 * messages, so the session's signed hash chain covers them):
 * `{"kind":"payment-request","amount":"125.00","currency":"EUR","payee":"…","reference":"…"}`
 * and `{"kind":"payment-response","decision":"approved"|"declined","reference":"…","request":"<sha256 hex of the request body>"}`.
 * The response names the request by hash, so a transcript shows exactly what
 * was approved. Pure; safe in a browser.
 * @module
 */

import { sha256, utf8 } from "./bytes.ts";
import { findUnsafeText } from "./display_text.ts";

/** A payment the bank asks the customer to confirm. */
export interface PaymentRequest {
  /** Always "payment-request". */
  kind: "payment-request";
  /** Decimal amount with two fraction digits, e.g. "125.00". */
  amount: string;
  /** ISO 4217 code, e.g. "EUR". */
  currency: string;
  /** Who gets paid. */
  payee: string;
  /** The bank's reference. */
  reference: string;
}

/** The customer's answer. */
export interface PaymentResponse {
  /** Always "payment-response". */
  kind: "payment-response";
  /** The decision. */
  decision: "approved" | "declined";
  /** The request's reference. */
  reference: string;
  /** SHA-256 (hex) of the exact request body answered. */
  request: string;
}

const AMOUNT_RE = /^(0|[1-9][0-9]{0,11})\.[0-9]{2}$/;
const CURRENCY_RE = /^[A-Z]{3}$/;
/** Longest payee or reference accepted (characters). */
const MAX_TEXT_FIELD = 140;

function checkText(name: string, v: unknown): string {
  if (typeof v !== "string" || v.length === 0 || v.length > MAX_TEXT_FIELD) {
    throw new RangeError(`${name} must be 1..${MAX_TEXT_FIELD} characters`);
  }
  const bad = findUnsafeText(v);
  if (bad) {
    throw new RangeError(
      `${name} contains ${bad.codePoint} at position ${bad.index} (a control, invisible or bidi character that could disguise what is shown): refused`,
    );
  }
  return v;
}

/** Validates and returns a request; throws `RangeError` naming the bad field. */
export function paymentRequest(
  fields: Omit<PaymentRequest, "kind">,
): PaymentRequest {
  if (!AMOUNT_RE.test(fields.amount)) {
    throw new RangeError(`amount '${fields.amount}' must look like 125.00`);
  }
  if (!CURRENCY_RE.test(fields.currency)) {
    throw new RangeError(
      `currency '${fields.currency}' must be 3 capital letters`,
    );
  }
  return {
    kind: "payment-request",
    amount: fields.amount,
    currency: fields.currency,
    payee: checkText("payee", fields.payee),
    reference: checkText("reference", fields.reference),
  };
}

/** The body bytes of a request or response (canonical JSON, fixed key order). */
export function encodePaymentMessage(
  m: PaymentRequest | PaymentResponse,
): string {
  return m.kind === "payment-request"
    ? JSON.stringify({
      kind: m.kind,
      amount: m.amount,
      currency: m.currency,
      payee: m.payee,
      reference: m.reference,
    })
    : JSON.stringify({
      kind: m.kind,
      decision: m.decision,
      reference: m.reference,
      request: m.request,
    });
}

/**
 * Parses a message body as a payment message; undefined when it is not one:
 * invalid fields, or not exactly the canonical encoding of its fields
 * ({@link encodePaymentMessage}: that key order, no other member, no
 * whitespace, no escapes but `\"` and `\\`). So a body with a duplicated key,
 * which JSON parsers resolve differently, is never shown as a payment.
 */
export function parsePaymentMessage(
  text: string,
): PaymentRequest | PaymentResponse | undefined {
  const m = parseFields(text);
  return m !== undefined && encodePaymentMessage(m) === text ? m : undefined;
}

function parseFields(
  text: string,
): PaymentRequest | PaymentResponse | undefined {
  if (!text.startsWith("{")) return undefined;
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(text);
  } catch {
    return undefined;
  }
  try {
    if (o?.kind === "payment-request") {
      return paymentRequest({
        amount: String(o.amount),
        currency: String(o.currency),
        payee: o.payee as string,
        reference: o.reference as string,
      });
    }
    if (
      o?.kind === "payment-response" &&
      (o.decision === "approved" || o.decision === "declined") &&
      typeof o.request === "string" && /^[0-9a-f]{64}$/.test(o.request)
    ) {
      return {
        kind: "payment-response",
        decision: o.decision,
        reference: checkText("reference", o.reference),
        request: o.request,
      };
    }
  } catch {
    return undefined;
  }
  return undefined;
}

/** The response to `requestBody` (the exact text received). */
export async function paymentResponse(
  requestBody: string,
  request: PaymentRequest,
  approve: boolean,
): Promise<PaymentResponse> {
  return {
    kind: "payment-response",
    decision: approve ? "approved" : "declined",
    reference: request.reference,
    request: (await sha256(utf8(requestBody))).toHex(),
  };
}

/** One-line human description of a request. */
export function describePaymentRequest(r: PaymentRequest): string {
  return `pay ${r.amount} ${r.currency} to ${
    JSON.stringify(r.payee)
  } (reference ${JSON.stringify(r.reference)})`;
}
