/**
 * The malicious relay (tests/helpers/mitm_relay.ts) against the REAL bank and
 * customer processes: it drops, duplicates, replays, reorders, delays,
 * alters, truncates, re-stamps and injects frames, and splices or replays
 * handshakes. What the users see must match the promise: every message
 * delivered exactly once and in order, tampered frames never delivered,
 * silent dropping reported (`undelivered`), handshake attacks fail cleanly,
 * and a live session is never killed by an unauthenticated packet.
 */

import assert from "node:assert/strict";
import {
  bankTo,
  type ClientProc,
  customerIn,
  type Ev,
} from "./helpers/client_proc.ts";
import { type Captured, MitmRelay } from "./helpers/mitm_relay.ts";
import { parseSessionId } from "../lib/registration.ts";
import { waitFor as waitUntil } from "./helpers/relay_fixture.ts";

const isType = (t: string) => (e: Ev) => e.type === t;
/** 300 characters: every DATA record lands in the 512-byte bucket, apart from the 256-byte ACK/DUMMY/CHECKPOINT/CLOSE records. */
const text = (i: number) =>
  `m${i} `.padEnd(300, String.fromCharCode(97 + (i % 26)));
/** e2e payload of a 512-byte relay frame: a DATA record as chosen above. */
const isDataRecord = (c: Captured) => c.kind === 4 && c.payload.length >= 490;
const idHex = (s: string) => parseSessionId(s).toHex();
const hex = (b: Uint8Array) => b.toHex();

interface Pair {
  customer: ClientProc;
  bank: ClientProc;
  dir: string;
  bankId: string;
  customerId: string;
}

/** What a test adds to the clients' default flags. */
interface Extra {
  customer?: string[];
  bank?: string[];
  dir?: string;
}

/** The flags and grants of a client through `relay` (keys under `dir`). */
function through(relay: MitmRelay, dir: string) {
  const caDir = relay.caFile.slice(0, relay.caFile.lastIndexOf("/"));
  const common = ["--json", "--relay", relay.url, "--ca", relay.caFile];
  return { common, grants: `${dir},${caDir}` };
}

/** No cover traffic, a 20 s wait, then what the test adds. */
const quiet = (extra: string[] = []) => [
  "--cover-rate",
  "0",
  "--wait",
  "20",
  ...extra,
];

/** Customer waits, bank contacts it; both through `relay`, no cover traffic unless asked. */
async function clients(relay: MitmRelay, extra: Extra = {}): Promise<Pair> {
  const dir = extra.dir ??
    await Deno.makeTempDir({ prefix: "mitm-test-" });
  const { common, grants } = through(relay, dir);
  const customer = customerIn(dir, common, grants, quiet(extra.customer));
  const ready = await customer.waitFor(isType("ready"), "customer ready");
  const bank = bankTo(ready.address, dir, common, grants, quiet(extra.bank));
  const b = await bank.waitFor(isType("ready"), "bank ready");
  return {
    customer,
    bank,
    dir,
    bankId: idHex(b.id),
    customerId: idHex(ready.id),
  };
}

async function secure(p: Pair): Promise<void> {
  await Promise.all([
    p.bank.waitFor(isType("secure"), "bank secure"),
    p.customer.waitFor(isType("secure"), "customer secure"),
  ]);
}

/** Texts of the message events, in the order shown. */
const received = (c: ClientProc) =>
  c.events.filter(isType("message")).map((e) => e.text);
const errors = (c: ClientProc) => c.events.filter(isType("error"));

/** Ends input on both and expects a clean close (exit 0 both). */
async function closeCleanly(p: Pair, bankCode = 0): Promise<void> {
  await p.bank.end();
  await p.customer.end();
  const [b, c] = await Promise.all([p.bank.exit(), p.customer.exit()]);
  assert.deepEqual(
    [b, c],
    [bankCode, 0],
    `exit codes; bank stderr: ${p.bank.stderr.join("")}`,
  );
}

/**
 * With the customer's records already being dropped by `relay.tamper`, sends
 * messages 1–3 from the bank and drives it to a re-handshake: a forged
 * peer-offline puts the bank in its fastest probing mode (one probe a second
 * once the relay delivers again), so after 3 unanswered probes (~3 s instead
 * of ~11–22 s of RTO backoff) it concludes the customer lost its session —
 * which it did not. Returns the three texts, as the customer received them.
 */
async function forceRehandshake(q: Pair, relay: MitmRelay): Promise<string[]> {
  const first = await sendAll(q.bank, q.customer, 1, 3);
  relay.reportOffline(q.customerId, q.bankId);
  await q.bank.waitFor(
    (e) => e.type === "notice" && /starting a new secure session/.test(e.text),
    "bank re-handshakes",
    10000,
  );
  return first;
}

/**
 * Starts a malicious relay and runs `run` on it; whatever happens, disposes
 * of the relay and of the last pair `run` handed to `track`.
 */
async function withRelay(
  run: (relay: MitmRelay, track: (p: Pair) => Pair) => Promise<void>,
): Promise<void> {
  const relay = await MitmRelay.start();
  let p: Pair | undefined;
  try {
    await run(relay, (next) => (p = next));
  } finally {
    await p?.bank.dispose();
    await p?.customer.dispose();
    await relay.close();
  }
}

/** {@link withRelay} with one pair of {@link clients}, secure before `run` starts. */
function withSecurePair(
  run: (
    q: Pair,
    relay: MitmRelay,
    track: (p: Pair) => Pair,
  ) => Promise<void>,
  extra?: Extra,
): Promise<void> {
  return withRelay(async (relay, track) => {
    const q = track(await clients(relay, extra));
    await secure(q);
    await run(q, relay, track);
  });
}

/** Neither side reported an error event. */
function noErrors(p: Pair): void {
  assert.deepEqual(errors(p.bank), []);
  assert.deepEqual(errors(p.customer), []);
}

const count = (c: ClientProc, type: string) =>
  c.events.filter(isType(type)).length;

/** Waits for the `undelivered` error event. */
const undelivered = (c: ClientProc, ms: number) =>
  c.waitFor(
    (e) => e.type === "error" && e.code === "undelivered",
    "undelivered",
    ms,
  );

/** Sends `n` messages from `from` and waits until `to` shows them all. */
async function sendAll(
  from: ClientProc,
  to: ClientProc,
  first: number,
  n: number,
  ms = 15000,
): Promise<string[]> {
  const texts: string[] = [];
  for (let i = first; i < first + n; i++) {
    texts.push(text(i));
    await from.line(text(i));
  }
  await to.waitFor(
    () => texts.every((t) => received(to).includes(t)),
    `${n} messages`,
    ms,
  );
  return texts;
}

Deno.test("malicious relay: duplicated, replayed, delayed and reordered records — each message delivered exactly once, in order", () =>
  withSecurePair(async (q, relay) => {
    // Every DATA record, both ways: delivered twice, delayed by a scrambled
    // amount (reordering), and replayed once more later.
    relay.tamper = (c, r) => {
      if (!isDataRecord(c)) return;
      const delay = ((c.index * 7) % 5) * 40;
      r.deliverLater(c.from, c.to, c.payload, delay);
      r.deliverLater(c.from, c.to, c.payload, delay + 90);
      r.deliverLater(c.from, c.to, c.payload, 600);
      return "drop";
    };
    const toCustomer = await sendAll(q.bank, q.customer, 1, 10);
    const toBank = await sendAll(q.customer, q.bank, 11, 6);
    await q.bank.waitCount(isType("delivered"), 10, "bank delivered");
    await q.customer.waitCount(isType("delivered"), 6, "customer delivered");
    // Replay every earlier frame of the session (handshake included) once more.
    relay.tamper = () => {};
    for (const c of [...relay.log]) relay.deliver(c.from, c.to, c.payload);
    await new Promise((r) => setTimeout(r, 800));
    assert.deepEqual(received(q.customer), toCustomer);
    assert.deepEqual(received(q.bank), toBank);
    const ids = (c: ClientProc) =>
      c.events.filter(isType("delivered")).map((e) => e.id);
    assert.deepEqual(ids(q.bank).toSorted((a, b) => a - b), [
      1,
      2,
      3,
      4,
      5,
      6,
      7,
      8,
      9,
      10,
    ]);
    assert.deepEqual(ids(q.customer).toSorted((a, b) => a - b), [
      1,
      2,
      3,
      4,
      5,
      6,
    ]);
    noErrors(q);
    assert.equal(count(q.customer, "secure"), 1);
    await closeCleanly(q);
  }));

/** Ways to damage a record; each must be rejected by the receiver without ending the session. */
const damage: ((b: Uint8Array) => Uint8Array)[] = [
  (b) => flip(b, b.length - 1, 0x01), // tag
  (b) => flip(b, 100, 0x80), // ciphertext
  (b) => flip(b, 13, 0x01), // counter (header, in the AAD and nonce)
  (b) => flip(b, 5, 0x01), // epoch
  (b) => b.slice(0, b.length >> 1), // truncated
  (b) => b.slice(0, 20), // truncated into the header region
  (b) => new Uint8Array([...b, 0, 0, 0, 0]), // extended
  (b) => flip(b, 0, 0x02), // e2e version
];
function flip(b: Uint8Array, i: number, mask: number): Uint8Array {
  const c = b.slice();
  c[i] ^= mask;
  return c;
}

Deno.test("malicious relay: bit flips, truncation, extension — never delivered, the session survives, retransmissions get through", () =>
  withSecurePair(async (q, relay) => {
    const seen = new Set<string>();
    let damaged = 0;
    let dataRecords = 0;
    // First sight of every DATA record (both ways) is replaced by a damaged
    // copy; the byte-identical retransmission passes. ACKs are never resent
    // byte-identical, so only every third one is damaged.
    relay.tamper = (c, r) => {
      if (c.kind !== 4) return;
      if (!isDataRecord(c) && c.index % 3 !== 0) return;
      const key = hex(c.payload);
      if (seen.has(key)) return;
      seen.add(key);
      if (isDataRecord(c)) dataRecords++;
      r.deliver(c.from, c.to, damage[damaged++ % damage.length](c.payload));
      return "drop";
    };
    const toCustomer = await sendAll(q.bank, q.customer, 1, 8);
    const toBank = await sendAll(q.customer, q.bank, 20, 3);
    await q.bank.waitCount(isType("delivered"), 8, "bank delivered");
    await q.customer.waitCount(isType("delivered"), 3, "customer delivered");
    // Lines queued together may share a record (coalescing): at least one
    // record each way, every one of them damaged on first sight.
    assert.ok(dataRecords >= 2, `${dataRecords} DATA records`);
    assert.ok(damaged >= dataRecords, `damaged ${damaged} records`);
    assert.deepEqual(received(q.customer), toCustomer);
    assert.deepEqual(received(q.bank), toBank);
    noErrors(q);
    relay.tamper = () => {};
    await closeCleanly(q);
  }));

Deno.test("malicious relay: frames re-stamped with forged sender IDs and injected garbage never become messages", () =>
  withSecurePair(async (q, relay) => {
    const stranger = crypto.getRandomValues(new Uint8Array(16)).toHex();
    let injected = 0;
    const seen = new Set<string>();
    relay.tamper = (c, r) => {
      // First sight of every DATA record (lines may share one: coalescing);
      // its byte-identical retransmission passes.
      if (!isDataRecord(c)) return;
      const key = hex(c.payload);
      if (seen.has(key)) return;
      seen.add(key);
      // The real record, claimed to come from a stranger …
      r.deliver(stranger, c.to, c.payload);
      // … and random records, a random HS1/HS3 claimed to come from the peer.
      const junk = crypto.getRandomValues(new Uint8Array(c.payload.length));
      junk[0] = 1;
      junk[1] = 4;
      r.deliver(c.from, c.to, junk);
      r.deliver(c.from, c.to, new Uint8Array([1, 3, ...junk.slice(0, 205)]));
      injected += 3;
      return "drop"; // the original comes through on retransmission
    };
    const toCustomer = await sendAll(q.bank, q.customer, 1, 6);
    await q.bank.waitCount(isType("delivered"), 6, "bank delivered");
    assert.ok(injected >= 3, `${injected} injected`);
    assert.deepEqual(received(q.customer), toCustomer);
    assert.deepEqual(errors(q.customer), []);
    assert.equal(count(q.customer, "secure"), 1);
    relay.tamper = () => {};
    await closeCleanly(q);
  }));

Deno.test("malicious relay: DATA silently dropped forever (peer still sends cover traffic) → `undelivered` naming the messages", () =>
  // The customer keeps sending cover traffic, so the bank keeps hearing
  // from it: the case where the peer-silence heuristic never fires.
  withSecurePair(async (q, relay) => {
    relay.tamper = (c) => isDataRecord(c) ? "drop" : undefined;
    const t0 = Date.now();
    for (let i = 1; i <= 3; i++) await q.bank.line(text(i));
    const e = await undelivered(q.bank, 8000);
    const took = Date.now() - t0;
    const dataFrames = () =>
      relay.frames(q.bankId, q.customerId).filter(isDataRecord).length;
    const atReport = dataFrames();
    assert.deepEqual(e.ids, [1, 2, 3]);
    assert.match(e.message, /#1, #2, #3/);
    assert.ok(took >= 2000 && took < 6000, `reported after ${took} ms`);
    assert.equal(count(q.bank, "delivered"), 0);
    assert.deepEqual(received(q.customer), []);
    // Retransmission goes on after the report (its timer is independent of
    // it): a DATA record sent after the report, whether the three lines
    // went out as one record or as three.
    await waitUntil(
      () => dataFrames() > atReport,
      "a retransmission of the dropped records after the report",
      10000,
    );
  }, {
    customer: ["--cover-rate", "4"],
    bank: ["--deliver-timeout", "2.5"],
  }));

Deno.test("malicious relay: every frame from one side dropped after N (ACKs included) → sender gets `undelivered`, a late ACK still gives `delivered`", () =>
  withSecurePair(async (q, relay) => {
    let cut = true;
    relay.tamper = (c) =>
      cut && c.from === q.customerId && c.kind === 4 ? "drop" : undefined;
    await sendAll(q.bank, q.customer, 1, 2); // delivered to the customer, its ACKs dropped
    const e = await undelivered(q.bank, 6000);
    assert.deepEqual(e.ids, [1, 2]);
    assert.equal(count(q.bank, "delivered"), 0);
    cut = false; // the relay relents: the next retransmission is re-acknowledged
    await q.bank.waitCount(isType("delivered"), 2, "late delivered", 15000);
    assert.deepEqual(received(q.customer), [text(1), text(2)]);
    await closeCleanly(q);
  }, { bank: ["--deliver-timeout", "1.5"] }));

Deno.test("malicious relay: tampered HS2 → the bank stops with exit 4 (decrypt-failed); the customer does not crash", () =>
  withRelay(async (relay, track) => {
    relay.tamper = (c, r) => {
      if (c.kind !== 2) return;
      r.deliver(c.from, c.to, flip(c.payload, 200, 0x01));
      return "drop";
    };
    const p = track(await clients(relay));
    assert.equal(await p.bank.exit(), 4);
    assert.equal(errors(p.bank)[0]?.code, "decrypt-failed");
    assert.equal(count(p.bank, "secure"), 0);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(errors(p.customer), []);
    assert.equal(count(p.customer, "closed"), 0);
  }));

Deno.test("malicious relay: HS1 spliced under another sender ID → handshake fails with exit 4, nobody gets a session", () =>
  withRelay(async (relay, track) => {
    const fake = crypto.getRandomValues(new Uint8Array(16)).toHex();
    let bank = "";
    relay.tamper = (c, r) => {
      if (c.kind === 1) { // HS1 bank → customer, re-stamped as from `fake`
        bank = c.from;
        r.deliver(fake, c.to, c.payload);
        return "drop";
      }
      if (c.kind === 2 && c.to === fake) { // HS2 for `fake` handed to the bank
        r.deliver(c.from, bank, c.payload);
        return "drop";
      }
      return undefined;
    };
    const p = track(await clients(relay));
    assert.equal(await p.bank.exit(), 4);
    assert.equal(errors(p.bank)[0]?.code, "decrypt-failed");
    assert.equal(count(p.customer, "secure"), 0);
    assert.equal(count(p.customer, "closed"), 0);
  }));

Deno.test("malicious relay: an old session's HS1/HS3 replayed into a live session does not end it", () =>
  // Session 1: record the handshake, close.
  withSecurePair(async (p, relay, track) => {
    await sendAll(p.bank, p.customer, 1, 1);
    await closeCleanly(p);
    const old = [...relay.log];
    const oldHs1 = old.find((c) => c.kind === 1)!;
    const oldHs3 = old.find((c) => c.kind === 3)!;
    // Session 2, same keys (same session IDs and identities).
    const q = track(await clients(relay, { dir: p.dir }));
    await secure(q);
    await q.bank.line(text(2)); // in flight while the replay happens
    relay.deliver(oldHs1.from, oldHs1.to, oldHs1.payload);
    await q.customer.waitFor(
      (e) => e.type === "notice" && /new secure session/.test(e.text),
      "customer answers the replayed HS1",
    );
    relay.deliver(oldHs3.from, oldHs3.to, oldHs3.payload);
    await q.customer.waitFor(
      (e) =>
        e.type === "notice" && /attempt failed \(decrypt-failed\)/.test(e.text),
      "replayed HS3 refused",
    );
    const more = await sendAll(q.bank, q.customer, 3, 2);
    await sendAll(q.customer, q.bank, 10, 1);
    await q.bank.waitCount(isType("delivered"), 3, "bank delivered");
    assert.deepEqual(received(q.customer), [text(2), ...more]);
    assert.equal(count(q.customer, "secure"), 1);
    assert.deepEqual(errors(q.customer), []);
    assert.deepEqual(errors(q.bank), []);
    await closeCleanly(q);
  }));

Deno.test("honest restart still works: the bank restarts with the same keys, the customer switches to the new session", () =>
  withSecurePair(async (first, relay, track) => {
    await sendAll(first.bank, first.customer, 1, 1);
    first.bank.kill();
    await first.bank.exit();
    const address =
      (await first.customer.waitFor(isType("ready"), "ready")).address;
    const { common, grants } = through(relay, first.dir);
    const bank = bankTo(address, first.dir, common, grants, quiet());
    const p = track({ ...first, bank });
    await bank.waitFor(isType("secure"), "restarted bank secure");
    await p.customer.waitCount(isType("secure"), 2, "customer second session");
    await sendAll(bank, p.customer, 2, 1);
    await sendAll(p.customer, bank, 3, 1);
    assert.deepEqual(received(p.customer), [text(1), text(2)]);
    await closeCleanly(p);
  }));

Deno.test("malicious relay: ACKs from the customer dropped long enough to force a re-handshake → every message delivered exactly once, the bank gets `delivered` for all", () =>
  withSecurePair(async (q, relay) => {
    // Every record from the customer (its ACKs) is dropped until the bank
    // gives up on the session and starts a new handshake (HS1).
    let cut = true;
    relay.tamper = (c) => {
      if (c.from === q.bankId && c.kind === 1) cut = false;
      return cut && c.from === q.customerId && c.kind === 4
        ? "drop"
        : undefined;
    };
    const first = await forceRehandshake(q, relay);
    await q.bank.line(text(4)); // typed while #1–#3 are held: must stay behind them
    await q.customer.waitCount(isType("secure"), 2, "customer second session");
    await q.bank.waitCount(isType("delivered"), 4, "bank delivered", 10000);
    await q.customer.waitFor(
      () => received(q.customer).includes(text(4)),
      "message typed during the hold",
    );
    await new Promise((r) => setTimeout(r, 800)); // would-be duplicates have time to show up
    assert.deepEqual(received(q.customer), [...first, text(4)]);
    const delivered = q.bank.events.filter(isType("delivered")).map((e) =>
      e.id
    );
    assert.deepEqual(delivered.toSorted((a, b) => a - b), [1, 2, 3, 4]);
    assert.ok(
      q.bank.events.some((e) =>
        e.type === "notice" &&
        /already received message\(s\) #1, #2, #3 .*not re-sent/.test(e.text)
      ),
      "bank says the peer had them",
    );
    noErrors(q);
    // The new session works both ways.
    const more = await sendAll(q.bank, q.customer, 5, 2);
    await sendAll(q.customer, q.bank, 10, 1);
    assert.deepEqual(received(q.customer), [...first, text(4), ...more]);
    await closeCleanly(q);
  }));

Deno.test("a user line starting with NUL is refused: it cannot inject a client control message", () =>
  withSecurePair(async (q) => {
    const forged = '\u0000{"kind":"resume","prev":null,"delivered":99}';
    await q.bank.line(forged);
    const e = await q.bank.waitFor(
      (e) => e.type === "error" && e.code === "invalid-text",
      "refused",
    );
    assert.deepEqual(e.ids, [1]);
    assert.match(e.message, /starts with a NUL/);
    const after = await sendAll(q.bank, q.customer, 1, 1);
    await q.bank.waitCount(isType("delivered"), 1, "bank delivered");
    assert.deepEqual(
      q.bank.events.filter(isType("delivered")).map((e) => e.id),
      [2],
    );
    assert.deepEqual(received(q.customer), after);
    assert.deepEqual(errors(q.customer), []);
    assert.equal(
      q.customer.events.filter((e) =>
        e.type === "notice" && /control message/.test(e.text)
      ).length,
      0,
    );
    // The refused line was never delivered: exit 7 (issue 13), naming #1.
    await closeCleanly(q, 7);
    assert.deepEqual(
      q.bank.events.find(isType("closed"))?.undelivered,
      ["#1"],
    );
  }));

Deno.test("malicious relay: the peer's resume withheld too → after 5 s the held messages go out anyway, the customer drops the copies: each message exactly once, and both close cleanly", () =>
  withSecurePair(async (q, relay) => {
    // Drop every record from the customer: first its ACKs (forcing the bank
    // to re-handshake), then, in the new session, its `resume` too — until
    // the bank gives up waiting for it.
    let relent = false;
    relay.tamper = (c) =>
      !relent && c.from === q.customerId && c.kind === 4 ? "drop" : undefined;
    const first = await forceRehandshake(q, relay);
    const started = Date.now();
    await q.bank.waitFor(
      (e) => e.type === "notice" && /no resume from the peer/.test(e.text),
      "fallback after the resume wait",
      12000,
    );
    const waited = Date.now() - started;
    assert.ok(waited >= 4000, `fell back after ${waited} ms`);
    relent = true;
    await q.bank.waitCount(isType("delivered"), 3, "bank delivered", 15000);
    // Re-sent blindly after the wait, yet each shown once: the customer
    // recognises the message ids it delivered in the first session
    // (PROTOCOL.md §2.4).
    assert.deepEqual(received(q.customer), first);
    await closeCleanly(q);
  }));
