/**
 * Nothing is lost at exit, and the exit code says so (issue 13): real client
 * processes over a real TLS relay. SIGTERM and SIGHUP close like Ctrl-C; a
 * run that leaves input undelivered exits 7 and names every message in its
 * `closed` event.
 */

import assert from "node:assert/strict";
import { startTestRelay } from "./helpers/relay_fixture.ts";
import {
  bankTo,
  ClientProc,
  customerIn,
  type Ev,
} from "./helpers/client_proc.ts";

const isType = (t: string) => (e: Ev) => e.type === t;

/** Number of messages a `closed` event's `undelivered` list names (`#N` or `K input line(s)`). */
function lostCount(closed: Ev): number {
  return ((closed.undelivered ?? []) as string[]).reduce(
    (n, s) => n + (s.startsWith("#") ? 1 : parseInt(s, 10)),
    0,
  );
}

function common(url: string, ca: string): string[] {
  return ["--json", "--relay", url, "--ca", ca, "--wait", "20"];
}

Deno.test("SIGTERM while messages wait for a peer: closed event naming them, exit 7; SIGHUP with nothing pending: exit 0", async () => {
  const relay = await startTestRelay();
  const dir = await Deno.makeTempDir({ prefix: "client-exit-" });
  const ca = `${relay.certsDir}/ca.pem`;
  const grants = `${dir},${relay.certsDir}`;
  const waiting = customerIn(dir, common(relay.url, ca), grants);
  const idle = new ClientProc("bank", [
    ...common(relay.url, ca),
    "--keys",
    `${dir}/b`,
  ], grants);
  try {
    await waiting.waitFor(isType("ready"), "ready");
    await idle.waitFor(isType("ready"), "ready");
    await waiting.line("first");
    await waiting.line("second");
    // Give the lines time to be read before the signal.
    await new Promise((r) => setTimeout(r, 300));
    waiting.signal("SIGTERM");
    assert.equal(await waiting.exit(), 7);
    const closed = await waiting.waitFor(isType("closed"), "closed");
    assert.equal(lostCount(closed), 2, JSON.stringify(closed));
    assert.match(closed.reason, /SIGTERM/);

    idle.signal("SIGHUP");
    assert.equal(await idle.exit(), 0);
    const closed2 = await idle.waitFor(isType("closed"), "closed");
    assert.match(closed2.reason, /SIGHUP/);
    assert.equal(closed2.undelivered, undefined);
  } finally {
    await waiting.dispose();
    await idle.dispose();
    await relay.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/** A waiting customer and a bank that contacts it, over a fresh relay; runs `body`, then cleans up. */
async function withPair(
  body: (customer: ClientProc, bank: ClientProc) => Promise<void>,
): Promise<void> {
  const relay = await startTestRelay();
  const dir = await Deno.makeTempDir({ prefix: "client-exit-" });
  const ca = `${relay.certsDir}/ca.pem`;
  const grants = `${dir},${relay.certsDir}`;
  const customer = customerIn(dir, common(relay.url, ca), grants);
  let bank: ClientProc | undefined;
  try {
    const ready = await customer.waitFor(isType("ready"), "ready");
    bank = bankTo(ready.address, dir, common(relay.url, ca), grants);
    await body(customer, bank);
  } finally {
    await bank?.dispose();
    await customer.dispose();
    await relay.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("SIGTERM in a live conversation flushes and closes cleanly (exit 0, everything delivered)", async () => {
  await withPair(async (customer, bank) => {
    await bank.waitFor(isType("secure"), "secure");
    for (let i = 0; i < 20; i++) await bank.line(`m${i}`);
    // Every line read and sealed (a line read after the signal would rightly be "not sent").
    await bank.waitCount(isType("sent"), 20, "sent");
    bank.signal("SIGTERM");
    assert.equal(await bank.exit(), 0);
    const got = await customer.waitCount(isType("message"), 20, "messages");
    assert.deepEqual(
      got.map((e) => e.text),
      Array.from({ length: 20 }, (_, i) => `m${i}`),
    );
    const closed = bank.events.find(isType("closed"))!;
    assert.equal(closed.undelivered, undefined);
    await customer.end();
    assert.equal(await customer.exit(), 0);
  });
});

Deno.test("the peer closes while our stdin still has lines: each one reported not sent, exit 7", async () => {
  await withPair(async (customer, bank) => {
    await bank.waitFor(isType("secure"), "secure");
    await customer.waitFor(isType("secure"), "secure");
    await customer.end(); // the customer closes the conversation
    assert.equal(await customer.exit(), 0);
    await bank.waitFor(
      (e) => e.type === "notice" && /peer closed/.test(e.text),
      "peer closed",
    );
    for (let i = 0; i < 5; i++) await bank.line(`late ${i}`);
    await bank.end();
    assert.equal(await bank.exit(), 7);
    const closed = bank.events.find(isType("closed"))!;
    assert.equal(lostCount(closed), 5, JSON.stringify(bank.events.slice(-8)));
    // closed is the last event: every not-sent report comes before it.
    assert.equal(bank.events.at(-1)!.type, "closed");
  });
});

Deno.test("a line refused as too-large is not delivered: error naming it, exit 7, the rest delivered", async () => {
  await withPair(async (customer, bank) => {
    await bank.waitFor(isType("secure"), "secure");
    await bank.line("before");
    await bank.line("x".repeat(70_000)); // more than one message body (MAX_BODY)
    await bank.line("after");
    await bank.end();
    assert.equal(await bank.exit(), 7);
    const refused = bank.events.find(isType("error"))!;
    assert.equal(refused.code, "too-large");
    assert.deepEqual(refused.ids, [2]);
    assert.deepEqual(bank.events.find(isType("closed"))!.undelivered, ["#2"]);
    const got = await customer.waitCount(isType("message"), 2, "messages");
    assert.deepEqual(got.map((e) => e.text), ["before", "after"]);
    assert.equal(await customer.exit(), 0);
  });
});
