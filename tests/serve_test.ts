/**
 * `deno task bank --serve --json` with real processes over the real relay
 * (TLS): N customers (`deno task customer --peer <bank address> --json`) at
 * once, messages both ways through the JSON-RPC API — every message once,
 * in order, acknowledged — while a stranger sends a valid HS1 and never
 * finishes; bad requests get exactly one JSON-RPC error and change nothing;
 * SIGTERM closes every conversation cleanly and exits 0.
 */

import assert from "node:assert/strict";
import { startTestRelay } from "./helpers/relay_fixture.ts";
import { ClientProc, type Ev } from "./helpers/client_proc.ts";
import { Initiator } from "../lib/handshake.ts";
import { generateIdentity } from "../lib/identity.ts";
import { parsePeerAddress } from "../lib/address.ts";
import { formatSessionId } from "../lib/registration.ts";
import { MAX_BODY } from "../lib/constants.ts";

const N = 20;
const PER = 3;

/** The bank service with its JSON-RPC helpers. */
class Service {
  readonly proc: ClientProc;
  #nextId = 1;
  constructor(proc: ClientProc) {
    this.proc = proc;
  }
  async call(method: string, params: unknown = {}): Promise<Ev> {
    const id = this.#nextId++;
    await this.proc.line(
      JSON.stringify({ jsonrpc: "2.0", method, params, id }),
    );
    return await this.proc.waitFor(
      (e) => e.id === id,
      `response ${id}`,
      30_000,
    );
  }
  async raw(line: string): Promise<void> {
    await this.proc.line(line);
  }
  notes(method: string, peer?: string): Ev[] {
    return this.proc.events.filter((e) =>
      e.method === method && (peer === undefined || e.params.peer === peer)
    );
  }
}

Deno.test("bank --serve: 20 customers at once, both ways through JSON-RPC, a stranger's unfinished HS1, bad requests, SIGTERM", async () => {
  const relay = await startTestRelay();
  const dir = await Deno.makeTempDir({ prefix: "serve-test-" });
  const ca = `${relay.certsDir}/ca.pem`;
  const grants = `${dir},${relay.certsDir}`;
  const common = ["--relay", relay.url, "--ca", ca, "--cover-rate", "0"];
  const bank = new Service(
    new ClientProc("bank", [
      "--serve",
      "--json",
      ...common,
      "--keys",
      `${dir}/bank`,
      "--transcript",
      `${dir}/t`,
    ], grants),
  );
  const customers: ClientProc[] = [];
  try {
    const ready = await bank.proc.waitFor(
      (e) => e.method === "ready",
      "bank ready",
      30_000,
    );
    const address: string = ready.params.address;
    const addr = parsePeerAddress(address);
    assert.equal(
      addr.fp,
      ready.params.fingerprint,
      "the bank's address names its identity",
    );
    assert.equal(
      addr.ed,
      ready.params.ed25519Fingerprint,
      "and its Ed25519 identity (it accepts suite x25519)",
    );

    // A stranger: a valid HS1, then silence.
    const lurker = await relay.connect();
    const { message } = await Initiator.start({
      identity: await generateIdentity(),
      localId: lurker.id as Uint8Array<ArrayBuffer>,
      peerId: addr.id,
      now: Date.now(),
      trust: () => "ok",
    });
    lurker.send(addr.id, message);

    for (let i = 0; i < N; i++) {
      customers.push(
        new ClientProc("customer", [
          "--json",
          ...common,
          "--keys",
          `${dir}/c${i}`,
          "--peer",
          address,
          "--wait",
          "60",
        ], grants),
      );
    }
    const ids: string[] = [];
    for (const c of customers) {
      const r = await c.waitFor(
        (e) => e.type === "ready",
        "customer ready",
        60_000,
      );
      ids.push(r.id);
      const s = await c.waitFor(
        (e) => e.type === "secure",
        "customer secure",
        60_000,
      );
      assert.equal(
        s.trust,
        "expected",
        "the address's fp/ed were the only keys accepted",
      );
      // The address's ed= made the customer offer the fast suite first
      // (PROTOCOL.md §1.3), and the bank (p256,x25519) took it.
      assert.equal(s.suite, "x25519");
      assert.equal(s.peerFingerprint, addr.ed);
    }
    await bank.proc.waitCount(
      (e) => e.method === "secure",
      N,
      "bank secure",
      60_000,
    );
    // Both ways at once: customers type, the bank sends through the API (multi-line, any UTF-8).
    const bankText = (i: number, k: number) =>
      `b${i}.${k}\nline two ✓ «${"é".repeat(k)}»`;
    await Promise.all(customers.map(async (c, i) => {
      for (let k = 1; k <= PER; k++) await c.line(`c${i}.${k}`);
    }));
    const sent = await Promise.all(ids.map(async (peer, i) => {
      const out: number[] = [];
      for (let k = 1; k <= PER; k++) {
        const r = await bank.call("send", { peer, text: bankText(i, k) });
        assert.ok(r.result, JSON.stringify(r));
        out.push(r.result.id);
      }
      return out;
    }));
    for (let i = 0; i < N; i++) {
      const got = await customers[i].waitCount(
        (e) => e.type === "message",
        PER,
        `c${i} messages`,
        60_000,
      );
      assert.deepEqual(
        got.map((e) => e.text),
        [1, 2, 3].map((k) => bankText(i, k)),
      );
      assert.ok(
        got.every((e) => e.peer === formatSessionId(addr.id)),
        "events name their peer",
      );
      await customers[i].waitCount(
        (e) => e.type === "delivered",
        PER,
        `c${i} delivered`,
        60_000,
      );
    }
    await bank.proc.waitFor(
      () => ids.every((p) => bank.notes("message", p).length >= PER),
      "bank messages",
      60_000,
    );
    await bank.proc.waitFor(
      () => ids.every((p) => bank.notes("delivered", p).length >= PER),
      "bank delivered",
      60_000,
    );
    ids.forEach((p, i) => {
      assert.deepEqual(
        bank.notes("message", p).map((e) => e.params.text),
        [1, 2, 3].map((k) => `c${i}.${k}`),
      );
      assert.deepEqual(
        bank.notes("delivered", p).map((e) => e.params.id).sort((a, b) =>
          a - b
        ),
        sent[i],
      );
      assert.match(
        bank.notes("message", p)[0].params.fingerprint,
        /^[0-9a-f]{64}$/,
      );
    });

    // Bad requests: one error each, nothing else changes.
    // Counted over the real customers: the stranger's unfinished attempt may
    // expire meanwhile (that is its own timer, not a side effect of a bad request).
    const real = (list: Ev[]) => list.filter((p) => ids.includes(p.peer));
    const before = real((await bank.call("peers")).result).length;
    const errors = bank.proc.events.filter((e) => e.error).length;
    await bank.raw("{not json");
    await bank.proc.waitFor(
      () => bank.proc.events.filter((e) => e.error).length === errors + 1,
      "parse error",
    );
    assert.equal(
      bank.proc.events.filter((e) => e.error).at(-1)!.error.code,
      -32700,
    );
    assert.equal((await bank.call("nope")).error.data.code, "unknown-method");
    assert.equal(
      (await bank.call("send", { peer: "a".repeat(26), text: "x" })).error.data
        .code,
      "unknown-peer",
    );
    assert.equal(
      (await bank.call("send", {
        peer: ids[0],
        text: "x".repeat(MAX_BODY + 1),
      })).error.data.code,
      "invalid-text",
    );
    assert.equal(
      (await bank.call("send", { peer: ids[0] })).error.code,
      -32602,
    );
    assert.equal(
      (await bank.call("connect", { address: "wss://x" })).error.data.code,
      "bad-address",
    );
    assert.equal(
      (await bank.call("trust", { peer: ids[0], fingerprint: "00".repeat(32) }))
        .error.data.code,
      "nothing-to-trust",
    );
    const peers = (await bank.call("peers")).result;
    assert.equal(real(peers).length, before);
    const p0 = peers.find((p: Ev) => p.peer === ids[0]);
    assert.equal(p0.session, "secure");
    assert.equal(p0.outbox, 0);
    const st = (await bank.call("status")).result;
    assert.equal(st.relay, "connected");
    assert.equal(st.secure, N);
    const v = (await bank.call("verify", { peer: ids[1] })).result;
    assert.match(v.safetyNumber, /^(\d{5} ){11}\d{5}$/);
    assert.equal(
      (await bank.call("verify", {
        peer: ids[1],
        safetyNumber: v.safetyNumber,
      })).result.verified,
      true,
    );
    assert.equal(
      customers.filter((c) => c.events.some((e) => e.type === "closed")).length,
      0,
      "nobody was disturbed",
    );

    // SIGTERM with every conversation open: clean close everywhere, exit 0.
    bank.proc.signal("SIGTERM");
    assert.equal(await bank.proc.exit(60_000), 0);
    for (const c of customers) {
      assert.equal(await c.exit(60_000), 0);
      assert.equal(
        c.events.find((e) => e.type === "closed")!.reason,
        "conversation closed",
      );
    }
    const files = [...Deno.readDirSync(`${dir}/t`)].filter((f) =>
      f.name.endsWith(".jsonl")
    );
    assert.equal(files.length, N, "one transcript per conversation");
    lurker.close();
  } finally {
    await Promise.all([bank.proc, ...customers].map((c) => c.dispose()));
    await relay.close();
    await Deno.remove(dir, { recursive: true });
  }
});
