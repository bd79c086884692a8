import assert from "node:assert/strict";
import { findUnsafeText, neutralizeText } from "../lib/display_text.ts";
import {
  encodePaymentMessage,
  parsePaymentMessage,
  paymentRequest,
} from "../lib/payment.ts";
import { terminalRenderer } from "../clients/ui.ts";

/** Every character the issue names, and the rest of the set. */
const UNSAFE = [
  ...[0x00, 0x07, 0x08, 0x0b, 0x0d, 0x1b, 0x1f, 0x7f, 0x80, 0x9b, 0x9f],
  0x00ad,
  0x061c,
  0x180e,
  ...[0x200b, 0x200c, 0x200d, 0x200e, 0x200f],
  0x2028,
  0x2029,
  ...[0x202a, 0x202b, 0x202c, 0x202d, 0x202e],
  ...[0x2060, 0x2064],
  ...[0x2066, 0x2067, 0x2068, 0x2069],
  0x206f,
  0xfeff,
  0xfff9,
  0xe0001,
  0xe007f,
];

Deno.test("neutralizeText() escapes every bidi, invisible and control character, and nothing else", () => {
  for (const cp of UNSAFE) {
    const c = String.fromCodePoint(cp);
    const out = neutralizeText(`a${c}b`);
    assert.ok(!out.includes(c), `U+${cp.toString(16)} left raw`);
    assert.match(out, /^a(\\x[0-9a-f]{2}|<U\+[0-9A-F]{4,5}>)b$/);
    assert.ok(findUnsafeText(`x${c}`), `U+${cp.toString(16)} not found`);
  }
  assert.equal(neutralizeText("pay \u202eRCA"), "pay <U+202E>RCA");
  const fine = "Grüße, שלום, مرحبا, 你好 🙂 – “quotes”\ttab\nline";
  assert.equal(neutralizeText(fine), fine, "ordinary text untouched");
  assert.equal(
    neutralizeText("a\tb\nc", { singleLine: true }),
    "a\\tb\\nc",
  );
  assert.equal(findUnsafeText("plain text"), undefined);
  assert.deepEqual(findUnsafeText("ab\u2066c"), {
    codePoint: "U+2066",
    index: 2,
  });
});

Deno.test("payment fields refuse bidi/invisible characters with a clear error; such a message is not parsed as a payment", () => {
  for (const payee of ["ACME\u202eLTD", "AC\u200bME", "A\u2066B", "A\u061cB"]) {
    assert.throws(
      () =>
        paymentRequest({
          amount: "1.00",
          currency: "EUR",
          payee,
          reference: "R",
        }),
      /payee contains U\+[0-9A-F]{4} at position \d+ .*refused/,
    );
  }
  assert.throws(
    () =>
      paymentRequest({
        amount: "1.00",
        currency: "EUR",
        payee: "ACME",
        reference: "R\u202e1",
      }),
    /reference contains U\+202E/,
  );
  const ok = encodePaymentMessage(
    paymentRequest({
      amount: "1.00",
      currency: "EUR",
      payee: "ACME",
      reference: "R1",
    }),
  );
  assert.equal(
    parsePaymentMessage(ok.replace("ACME", "AC\\u202eME")),
    undefined,
  );
});

Deno.test("the terminal renderer shows peer text, notices and errors neutralised", () => {
  let screen = "";
  const render = terminalRenderer((s) => screen += s, () => "bank");
  const at = new Date(0).toISOString();
  render({
    type: "message",
    text: "hi \u202etxt.exe\x1b[2J",
    counter: 0,
    seq: 1,
    at,
  });
  render({ type: "notice", text: "n\u2067" });
  render({ type: "error", code: "x", message: "e\u200b" });
  assert.ok(!/[\u202e\u2067\u200b]/.test(screen));
  assert.ok(!screen.includes("\x1b[2J"));
  assert.match(screen, /hi <U\+202E>txt\.exe\\x1b\[2J/);
  assert.match(screen, /n<U\+2067>/);
  assert.match(screen, /e<U\+200B>/);
});
