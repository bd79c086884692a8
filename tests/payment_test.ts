import assert from "node:assert/strict";
import {
  encodePaymentMessage,
  parsePaymentMessage,
  paymentRequest,
  paymentResponse,
} from "../lib/payment.ts";

Deno.test("payment: request/response encode, parse, and bind the request by hash", async () => {
  const req = paymentRequest({
    amount: "125.00",
    currency: "EUR",
    payee: "ACME",
    reference: "R1",
  });
  const body = encodePaymentMessage(req);
  assert.equal(
    body,
    '{"kind":"payment-request","amount":"125.00","currency":"EUR","payee":"ACME","reference":"R1"}',
  );
  assert.deepEqual(parsePaymentMessage(body), req);
  const resp = await paymentResponse(body, req, false);
  assert.equal(resp.decision, "declined");
  assert.match(resp.request, /^[0-9a-f]{64}$/);
  assert.deepEqual(parsePaymentMessage(encodePaymentMessage(resp)), resp);
  const other = await paymentResponse(
    body.replace("125.00", "126.00"),
    req,
    false,
  );
  assert.notEqual(other.request, resp.request);
});

Deno.test("payment: invalid fields are refused; other text is not a payment", () => {
  assert.throws(
    () =>
      paymentRequest({
        amount: "1e3",
        currency: "EUR",
        payee: "x",
        reference: "r",
      }),
    /amount/,
  );
  assert.throws(
    () =>
      paymentRequest({
        amount: "1.00",
        currency: "eur",
        payee: "x",
        reference: "r",
      }),
    /currency/,
  );
  assert.throws(
    () =>
      paymentRequest({
        amount: "1.00",
        currency: "EUR",
        payee: "a\u001bb",
        reference: "r",
      }),
    /control/,
  );
  assert.equal(parsePaymentMessage("hello"), undefined);
  // Only the exact canonical encoding is a payment (PROTOCOL.md §2.4): a
  // duplicated key (parsers disagree which one counts), whitespace, an
  // escaped letter, another key order or an extra member make it plain text.
  const canonical = encodePaymentMessage(
    paymentRequest({
      amount: "1.00",
      currency: "EUR",
      payee: "ACME",
      reference: "r",
    }),
  );
  assert.ok(parsePaymentMessage(canonical));
  for (
    const variant of [
      canonical.replace('"amount":"1.00"', '"amount":"999.00","amount":"1.00"'),
      canonical.replace('"currency":', ' "currency": '),
      canonical.replace("ACME", "\\u0041CME"),
      canonical.replace(
        '"amount":"1.00","currency":"EUR"',
        '"currency":"EUR","amount":"1.00"',
      ),
      canonical.replace("}", ',"note":"x"}'),
    ]
  ) {
    assert.notEqual(variant, canonical);
    assert.ok(JSON.parse(variant), variant);
    assert.equal(parsePaymentMessage(variant), undefined, variant);
  }
  assert.equal(
    parsePaymentMessage('{"kind":"payment-request","amount":"x"}'),
    undefined,
  );
  assert.equal(
    parsePaymentMessage(
      '{"kind":"payment-response","decision":"maybe","reference":"r","request":"00"}',
    ),
    undefined,
  );
});
