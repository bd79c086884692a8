/**
 * lib/conversations.ts keeps its conversations' deadlines in a min-heap:
 * `nextDeadline()` must equal the minimum over every conversation, and
 * `poll` must run exactly the due ones, through handshakes, messages, loss
 * (retransmission timers) and time passing.
 */

import assert from "node:assert/strict";
import { type Client, Net, secure } from "./helpers/conversation_net.ts";

/** The minimum of every held conversation's own deadline (the old scan). */
function scanned(c: Client): number | undefined {
  let at: number | undefined;
  for (const x of c.set.list()) {
    const d = x.nextDeadline();
    if (d !== undefined && (at === undefined || d < at)) at = d;
  }
  return at;
}

function check(c: Client, what: string): void {
  assert.equal(c.set.nextDeadline(), scanned(c), `${c.name}: ${what}`);
}

Deno.test("conversations: the deadline heap equals the scan over 30 conversations through handshakes, loss, messages and time", async () => {
  const net = new Net();
  const bank = await net.client("bank");
  const customers: Client[] = [];
  for (let i = 0; i < 30; i++) customers.push(await net.client(`c${i}`));
  // Loss makes retransmission deadlines move: every 5th packet dropped.
  let n = 0;
  net.verdict = () => (n++ % 5 === 4 ? "drop" : "deliver");
  for (const c of customers) {
    await c.dial(bank);
    check(bank, "after a dial");
    check(c, "own dial");
  }
  await net.run(
    () => customers.every((c) => secure(c, bank) && secure(bank, c)),
    120_000,
    "all secure",
  );
  check(bank, "all secure");
  assert.equal(bank.set.size, 30);
  for (const [i, c] of customers.entries()) {
    await c.send(bank, `hello ${i}`);
    if (i % 3 === 0) await bank.send(c, `reply ${i}`);
    check(bank, "after sends");
  }
  await net.run(
    () => customers.every((c, i) => bank.texts(c).includes(`hello ${i}`)),
    120_000,
    "every message",
  );
  check(bank, "messages through");
  // Time moves on: every poll leaves the heap equal to the scan.
  for (let k = 0; k < 20; k++) {
    await net.advance(1_000);
    check(bank, `after ${k + 1} s`);
  }
});

/**
 * A secure bank–customer pair on a lossy-from-now-on net, and a message the
 * customer never acknowledges: the bank's conversation `c` has a
 * retransmission deadline `at`.
 */
async function unacknowledged() {
  const net = new Net();
  const bank = await net.client("bank");
  const customer = await net.client("customer");
  await customer.dial(bank);
  await net.run(() => secure(customer, bank) && secure(bank, customer));
  net.verdict = () => "drop";
  await bank.send(customer, "unacknowledged");
  const c = bank.set.get(customer.id)!;
  return { net, bank, c, at: c.nextDeadline()! };
}

Deno.test("conversations: due() hands out a due conversation once until its pollDue() returns, whatever other calls tag it meanwhile", async () => {
  // A message the customer never acknowledges: a retransmission deadline.
  const { net, bank, c, at } = await unacknowledged();
  assert.ok(at !== undefined);
  assert.deepEqual(bank.set.due(at - 1), [], "not due yet");
  assert.deepEqual(bank.set.due(at), [c]);
  // The poll waits behind another call, which returns (and is tagged) first.
  const poll = c.poll.bind(c);
  const gate = Promise.withResolvers<void>();
  c.poll = (now) => gate.promise.then(() => poll(now));
  const polling = bank.set.pollDue(c, at);
  net.apply(bank, bank.set.tag(c, await c.send([], at)));
  assert.deepEqual(bank.set.due(at), [], "not handed out again");
  assert.equal(bank.set.nextDeadline(), undefined, "kept off the heap");
  gate.resolve();
  net.apply(bank, await polling);
  c.poll = poll;
  check(bank, "after the poll");
  assert.ok(bank.set.nextDeadline()! > at, "registered again, later");
  assert.deepEqual(bank.set.due(bank.set.nextDeadline()!), [c]);
});

Deno.test("conversations: a pollDue() that throws still registers the conversation's deadline again", async () => {
  const { bank, c, at } = await unacknowledged();
  assert.deepEqual(bank.set.due(at), [c]);
  const poll = c.poll.bind(c);
  c.poll = () => Promise.reject(new Error("boom"));
  await assert.rejects(bank.set.pollDue(c, at), /boom/);
  c.poll = poll;
  check(bank, "after the failed poll");
  assert.deepEqual(bank.set.due(at), [c], "due again");
});
