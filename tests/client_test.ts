/**
 * The bank and customer clients as real processes (same permission flags as
 * their tasks) over a real TLS relay: conversation both ways, the payment
 * scenario with transcript verification, wrong peer, peer timeout, changed
 * identity, relay restart mid-conversation, permission messages, the demo.
 */

import assert from "node:assert/strict";
import { startTestRelay, testCerts } from "./helpers/relay_fixture.ts";
import { parseSessionId } from "../lib/registration.ts";
import {
  bankTo,
  ClientProc,
  customerIn,
  type Ev,
  flagsWithDir,
  freePort,
  RelayProc,
  ROOT,
  taskFlags,
} from "./helpers/client_proc.ts";

const isType = (t: string) => (e: Ev) => e.type === t;

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "client-test-" });
}

/** Starts a customer (waiting) and a bank (initiating, given the customer's full address). */
async function pair(
  url: string,
  ca: string,
  dir: string,
  extra: { customer?: string[]; bank?: string[] } = {},
): Promise<{ customer: ClientProc; bank: ClientProc; address: string }> {
  const grants = `${dir},${ca.slice(0, ca.lastIndexOf("/"))}`;
  const common = [
    "--json",
    "--relay",
    url,
    "--ca",
    ca,
    "--cover-rate",
    "2",
    "--wait",
    "20",
  ];
  const customer = customerIn(dir, common, grants, extra.customer);
  const ready = await customer.waitFor(isType("ready"), "customer ready");
  const bank = bankTo(ready.address, dir, common, grants, extra.bank);
  return { customer, bank, address: ready.address };
}

/** Ends input on both and expects both to exit 0. */
async function endBoth(bank: ClientProc, customer: ClientProc): Promise<void> {
  await bank.end();
  await customer.end();
  assert.equal(await bank.exit(), 0);
  assert.equal(await customer.exit(), 0);
}

/** Writes a known_peers.json (0600) that pins `name` to `fingerprint` (verified, seen on 2026-01-01). */
async function writeKnownPeers(
  file: string,
  name: string,
  fingerprint: string,
): Promise<void> {
  await Deno.writeTextFile(
    file,
    JSON.stringify({
      version: 1,
      peers: {
        [name]: {
          fingerprint,
          firstSeen: "2026-01-01T00:00:00.000Z",
          lastSeen: "2026-01-01T00:00:00.000Z",
          verified: true,
        },
      },
    }),
    { mode: 0o600 },
  );
}

/** Key folders b/ and c/ in `dir`; the bank's known peers pin the customer to `fingerprint`. */
async function bankPinsCustomer(dir: string, fingerprint: string) {
  await Deno.mkdir(`${dir}/b`);
  await Deno.mkdir(`${dir}/c`);
  await writeKnownPeers(`${dir}/b/known_peers.json`, "customer", fingerprint);
}

Deno.test("--suites x25519 on the bank: X25519 + Ed25519 session with the default customer, per-key known peers", async () => {
  const relay = await startTestRelay();
  const dir = await tempDir();
  const ca = `${relay.certsDir}/ca.pem`;
  const { customer, bank } = await pair(relay.url, ca, dir, {
    bank: ["--suites", "x25519"],
  });
  try {
    const [sb, sc] = await Promise.all([
      bank.waitFor(isType("secure"), "bank secure"),
      customer.waitFor(isType("secure"), "customer secure"),
    ]);
    assert.equal(sb.suite, "x25519");
    assert.equal(sc.suite, "x25519");
    assert.equal(sb.safetyNumber, sc.safetyNumber);
    const readyC = customer.events.find(isType("ready"))!;
    const readyB = bank.events.find(isType("ready"))!;
    // The peers proved their Ed25519 identities, not the P-256 ones.
    assert.equal(sb.peerFingerprint, readyC.ed25519Fingerprint);
    assert.equal(sc.peerFingerprint, readyB.ed25519Fingerprint);
    assert.notEqual(sb.peerFingerprint, readyC.fingerprint);
    await bank.line("over the fast suite");
    const [m] = await customer.waitCount(isType("message"), 1, "message");
    assert.equal(m.text, "over the fast suite");
    await endBoth(bank, customer);
    const mode =
      (await Deno.stat(`${dir}/b/bank_identity_ed25519_keys.json`)).mode! &
      0o777;
    assert.equal(mode, 0o600);
    const peers = JSON.parse(
      await Deno.readTextFile(`${dir}/c/known_peers.json`),
    );
    assert.ok(
      JSON.stringify(peers).includes("bank/ed25519"),
      "the Ed25519 key is its own known-peers entry",
    );
  } finally {
    await bank.dispose();
    await customer.dispose();
    await relay.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("conversation both ways: secure, same safety number, messages in order, delivered, clean close", async () => {
  const relay = await startTestRelay();
  const dir = await tempDir();
  const ca = `${relay.certsDir}/ca.pem`;
  const { customer, bank, address } = await pair(relay.url, ca, dir);
  try {
    assert.match(
      address,
      /^wss:\/\/localhost:\d+\/ws#ca=[0-9a-f]{64}&id=[a-z2-7]{26}$/,
    );
    const [sb, sc] = await Promise.all([
      bank.waitFor(isType("secure"), "bank secure"),
      customer.waitFor(isType("secure"), "customer secure"),
    ]);
    assert.equal(sb.safetyNumber, sc.safetyNumber);
    assert.match(sb.safetyNumber, /^(\d{5} ){11}\d{5}$/);
    assert.equal(sb.trust, "new");
    assert.equal(
      sb.peerFingerprint,
      customer.events.find(isType("ready"))!.fingerprint,
    );
    assert.equal(
      sc.peerFingerprint,
      bank.events.find(isType("ready"))!.fingerprint,
    );
    for (let i = 1; i <= 5; i++) {
      await bank.line(`bank says ${i}`);
      await customer.line(`customer says ${i} ✓ ünïcode`);
    }
    const atCustomer = await customer.waitCount(
      isType("message"),
      5,
      "messages at customer",
    );
    const atBank = await bank.waitCount(
      isType("message"),
      5,
      "messages at bank",
    );
    assert.deepEqual(
      atCustomer.map((e) => e.text),
      [1, 2, 3, 4, 5].map((i) => `bank says ${i}`),
    );
    assert.deepEqual(
      atBank.map((e) => e.text),
      [1, 2, 3, 4, 5].map((i) => `customer says ${i} ✓ ünïcode`),
    );
    for (const e of atBank) {
      assert.ok(Number.isInteger(e.counter) && !Number.isNaN(Date.parse(e.at)));
    }
    await bank.waitCount(isType("delivered"), 5, "bank delivered");
    await customer.waitCount(isType("delivered"), 5, "customer delivered");
    await endBoth(bank, customer);
    assert.ok(bank.events.some(isType("closed")));
    // Second run: same IDs (mailbox key kept), peer now "known".
    const again = await pair(relay.url, ca, dir);
    try {
      const ready = again.customer.events.find(isType("ready"))!;
      assert.equal(again.address, address);
      assert.equal(ready.address, address);
      const s2 = await again.bank.waitFor(
        isType("secure"),
        "bank secure again",
      );
      assert.equal(s2.trust, "known");
      assert.equal(s2.safetyNumber, sb.safetyNumber);
      const mode =
        (await Deno.stat(`${dir}/c/customer_mailbox_key.json`)).mode! & 0o777;
      assert.equal(mode, 0o600);
    } finally {
      await again.bank.dispose();
      await again.customer.dispose();
    }
  } finally {
    await bank.dispose();
    await customer.dispose();
    await relay.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("payment scenario: approved, transcripts verify offline, a tampered transcript is rejected", async () => {
  const relay = await startTestRelay();
  const dir = await tempDir();
  const ca = `${relay.certsDir}/ca.pem`;
  const { customer, bank } = await pair(relay.url, ca, dir, {
    customer: [
      "--scenario",
      "payment",
      "--approve",
      "--transcript",
      `${dir}/customer.json`,
    ],
    bank: [
      "--scenario",
      "payment",
      "--amount",
      "99.50",
      "--transcript",
      `${dir}/bank.json`,
    ],
  });
  try {
    await customer.end(); // scripted: EOF must not close before the scenario is done
    await bank.end();
    assert.equal(await bank.exit(), 0);
    assert.equal(await customer.exit(), 0);
    const resp = bank.events.find((e) =>
      e.type === "payment" && e.direction === "received"
    )!;
    assert.equal(resp.decision, "approved");
    assert.equal(resp.matches, true);
    const req = customer.events.find((e) =>
      e.type === "payment" && e.direction === "received"
    )!;
    assert.equal(req.amount, "99.50");

    const { flags, entry } = flagsWithDir("verify-transcript", dir);
    const verify = async (file: string) => {
      const out = await new Deno.Command("deno", {
        args: ["run", ...flags, entry, file],
        cwd: ROOT,
        env: { NO_COLOR: "1" },
      }).output();
      return {
        code: out.code,
        stdout: new TextDecoder().decode(out.stdout),
        stderr: new TextDecoder().decode(out.stderr),
      };
    };
    for (const file of [`${dir}/bank.json`, `${dir}/customer.json`]) {
      const r = await verify(file);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /: COMPLETE\n/);
      assert.match(
        r.stdout,
        /initiator \(bank\) #2: PAYMENT REQUEST 99\.50 EUR/,
      );
      assert.match(
        r.stdout,
        /responder \(customer\) #2: PAYMENT APPROVED .*answers the initiator's request #2 of session 1/,
      );
      // Seq 1 of each side: the resume control message, shown as such.
      assert.match(
        r.stdout,
        /initiator \(bank\) #1: \[resume prev=none delivered=0\]/,
      );
      assert.match(
        r.stdout,
        /responder \(customer\) #1: \[resume prev=none delivered=0\]/,
      );
    }
    // Tamper: change the amount in the bank's request body.
    const lines = (await Deno.readTextFile(`${dir}/bank.json`)).split("\n");
    const decode = (x: Ev) =>
      new TextDecoder().decode(
        Uint8Array.fromBase64(x.body, { alphabet: "base64url" }),
      );
    // The payment request (seq 1 is the resume control message).
    const at = lines.findIndex((l) => {
      if (!l.startsWith('{"record":"message"')) return false;
      const x = JSON.parse(l);
      return x.dir === "i2r" && x.type === "data" &&
        decode(x).includes("99.50");
    });
    const m = JSON.parse(lines[at]);
    const body = decode(m);
    m.body = new TextEncoder().encode(body.replace("99.50", "9950.00"))
      .toBase64({
        alphabet: "base64url",
        omitPadding: true,
      });
    lines[at] = JSON.stringify(m);
    await Deno.writeTextFile(`${dir}/tampered.json`, lines.join("\n"));
    const bad = await verify(`${dir}/tampered.json`);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /INVALID.*(chain-mismatch|bad-signature)/);
  } finally {
    await bank.dispose();
    await customer.dispose();
    await relay.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("unknown peer ID → exit 6 after --wait; malformed peer ID → exit 2", async () => {
  const relay = await startTestRelay();
  const dir = await tempDir();
  const ca = `${relay.certsDir}/ca.pem`;
  const grants = `${dir},${relay.certsDir}`;
  try {
    const base = (keys: string) => [
      "--json",
      "--relay",
      relay.url,
      "--ca",
      ca,
      "--keys",
      `${dir}/${keys}`,
    ];
    // Three independent clients at once (each its own keys folder): the
    // waits run side by side instead of one after another.
    const started = Date.now();
    const bank = new ClientProc("bank", [
      ...base("b"),
      "--peer",
      "a".repeat(26),
      "--wait",
      "1.5",
    ], grants);
    const bad = new ClientProc(
      "bank",
      [...base("bad"), "--peer", "not-an-id"],
      grants,
    );
    // A waiting customer whose peer never comes.
    const lonely = new ClientProc(
      "customer",
      [...base("c"), "--wait", "1"],
      grants,
    );
    const [bankCode, badCode, lonelyCode] = await Promise.all([
      bank.exit(),
      bad.exit(),
      lonely.exit(),
    ]);
    assert.equal(bankCode, 6);
    assert.ok(Date.now() - started < 10000);
    const err = bank.events.find(isType("error"))!;
    assert.equal(err.code, "peer-timeout");
    assert.match(err.message, /^the peer never arrived within 1\.5 s/);
    assert.match(err.message, /is the ID right/);
    assert.equal(badCode, 2);
    assert.match(bad.stderr.join(""), /invalid session ID/);
    assert.equal(lonelyCode, 6);
    // It gave no ID: what to check is whether the peer has its address.
    const waited = lonely.events.find(isType("error"))!;
    assert.equal(waited.code, "peer-timeout");
    assert.match(waited.message, /^no peer arrived within 1 s/);
    assert.match(waited.message, /did your peer get this client's address/);
    assert.doesNotMatch(waited.message, /ID right|never/);
  } finally {
    await relay.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("changed peer identity is refused with exit 5 (initiator and responder side)", async () => {
  const relay = await startTestRelay();
  const dir = await tempDir();
  const ca = `${relay.certsDir}/ca.pem`;
  const fake = "ab".repeat(32);
  await bankPinsCustomer(dir, fake);
  const { customer, bank } = await pair(relay.url, ca, dir);
  try {
    assert.equal(await bank.exit(), 5);
    const err = bank.events.find(isType("error"))!;
    assert.equal(err.code, "identity-changed");
    assert.equal(err.previousFingerprint, fake);
    assert.match(err.message, /CHANGED/);
    assert.ok(!bank.events.some(isType("secure")));
    // The file still holds the old key: nothing was silently re-trusted.
    assert.match(
      await Deno.readTextFile(`${dir}/b/known_peers.json`),
      new RegExp(fake),
    );
  } finally {
    await bank.dispose();
    await customer.dispose();
  }
  // Responder side: the customer refuses the bank.
  await writeKnownPeers(`${dir}/c/known_peers.json`, "bank", fake);
  await Deno.remove(`${dir}/b/known_peers.json`);
  const second = await pair(relay.url, ca, dir);
  try {
    assert.equal(await second.customer.exit(), 5);
    assert.equal(
      second.customer.events.find(isType("error"))!.code,
      "identity-changed",
    );
  } finally {
    await second.bank.dispose();
    await second.customer.dispose();
    await relay.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--trust FINGERPRINT: a changed key with another fingerprint is still refused (exit 5); that exact one is trusted", async () => {
  const relay = await startTestRelay();
  const dir = await tempDir();
  const ca = `${relay.certsDir}/ca.pem`;
  const fake = "ab".repeat(32);
  await bankPinsCustomer(dir, fake);
  const first = await pair(relay.url, ca, dir, {
    bank: ["--trust", "cd".repeat(32)],
  });
  let newFp: string;
  try {
    assert.equal(await first.bank.exit(), 5);
    assert.equal(
      first.bank.events.find(isType("error"))!.code,
      "identity-changed",
    );
    assert.ok(!first.bank.events.some(isType("secure")));
    assert.match(
      await Deno.readTextFile(`${dir}/b/known_peers.json`),
      new RegExp(fake),
      "a fingerprint other than --trust is not trusted",
    );
    newFp = first.customer.events.find(isType("ready"))!.fingerprint;
  } finally {
    await first.bank.dispose();
    await first.customer.dispose();
  }
  // The same customer key again; the fingerprint given as people read it (groups of 4).
  const spaced = newFp.toUpperCase().match(/.{4}/g)!.join(" ");
  const { customer, bank } = await pair(relay.url, ca, dir, {
    bank: ["--trust", spaced],
  });
  try {
    await bank.waitFor(isType("secure"), "bank secure after --trust");
    await bank.line("after --trust");
    const [m] = await customer.waitCount(isType("message"), 1, "message");
    assert.equal(m.text, "after --trust");
    await endBoth(bank, customer);
    const peers = JSON.parse(
      await Deno.readTextFile(`${dir}/b/known_peers.json`),
    );
    assert.deepEqual(Object.keys(peers.peers), [newFp]);
    assert.equal(peers.peers[newFp].verified, false);
  } finally {
    await bank.dispose();
    await customer.dispose();
    await relay.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("relay killed and restarted mid-conversation: every message delivered exactly once, in order", async () => {
  const certs = await testCerts();
  const port = freePort();
  const url = `wss://localhost:${port}/ws`;
  let relay = new RelayProc(
    port,
    `${certs.dir}/relay.pem`,
    `${certs.dir}/relay-key.pem`,
    certs.dir,
  );
  await relay.ready;
  const dir = await tempDir();
  const { customer, bank } = await pair(url, `${certs.dir}/ca.pem`, dir);
  const N = 30;
  try {
    await bank.waitFor(isType("secure"), "bank secure");
    await customer.waitFor(isType("secure"), "customer secure");
    let sent = 0;
    const sendSome = async (n: number) => {
      for (let i = 0; i < n; i++, sent++) {
        await bank.line(`b${sent}`);
        await customer.line(`c${sent}`);
        await new Promise((r) => setTimeout(r, 15));
      }
    };
    await sendSome(10);
    await relay.kill(); // mid-conversation, no goodbye
    await sendSome(10); // while the relay is down: kept and retransmitted
    await new Promise((r) => setTimeout(r, 300));
    relay = new RelayProc(
      port,
      `${certs.dir}/relay.pem`,
      `${certs.dir}/relay-key.pem`,
      certs.dir,
    );
    await relay.ready;
    await sendSome(N - 20);
    const atCustomer = await customer.waitCount(
      isType("message"),
      N,
      "all bank messages",
      30000,
    );
    const atBank = await bank.waitCount(
      isType("message"),
      N,
      "all customer messages",
      30000,
    );
    await bank.waitCount(isType("delivered"), N, "bank delivered", 20000);
    await customer.waitCount(
      isType("delivered"),
      N,
      "customer delivered",
      20000,
    );
    await new Promise((r) => setTimeout(r, 300)); // would-be duplicates have time to show up
    const expect = (p: string) =>
      Array.from({ length: N }, (_, i) => `${p}${i}`);
    assert.deepEqual(
      customer.events.filter(isType("message")).map((e) => e.text),
      expect("b"),
    );
    assert.deepEqual(
      bank.events.filter(isType("message")).map((e) => e.text),
      expect("c"),
    );
    assert.equal(atCustomer.length, N);
    assert.equal(atBank.length, N);
    assert.ok(
      bank.events.some((e) =>
        e.type === "notice" && /reconnected/.test(e.text)
      ),
    );
    await endBoth(bank, customer);
  } finally {
    await bank.dispose();
    await customer.dispose();
    await relay.kill();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("peer offline: messages wait in the bounded outbox; overflow is reported by message number", async () => {
  const relay = await startTestRelay();
  const dir = await tempDir();
  const ca = `${relay.certsDir}/ca.pem`;
  const grants = `${dir},${relay.certsDir}`;
  const { customer, bank } = await pair(relay.url, ca, dir, {
    bank: ["--outbox", "3"],
  });
  let customer2: ClientProc | undefined;
  try {
    await bank.waitFor(isType("secure"), "secure");
    customer.kill(); // the customer goes away without closing
    await customer.exit();
    await bank.line("m1");
    await bank.waitFor(
      (e) => e.type === "notice" && /peer unavailable/.test(e.text),
      "peer-offline noticed",
      60_000,
    );
    // The notice may come from a cover packet's peer-offline before m1 was
    // sealed; m1 then goes out as the first probe: wait for it to leave the
    // outbox so that the outbox holds exactly m2..m4.
    await bank.waitFor(
      (e) => e.type === "sent" && e.id === 1,
      "m1 sent",
      60_000,
    );
    for (const t of ["m2", "m3", "m4", "m5"]) await bank.line(t);
    const full = await bank.waitFor(
      (e) => e.type === "error" && e.code === "outbox-full",
      "outbox full",
      60_000,
    );
    assert.deepEqual(full.ids, [5]);
    assert.match(full.message, /message #5 not sent/);
    // The customer comes back (same keys → same ID) without its old session: the bank notices
    // the silence, starts a new session and sends everything unconfirmed, in order.
    customer2 = new ClientProc(
      "customer",
      [
        "--json",
        "--relay",
        relay.url,
        "--ca",
        ca,
        "--keys",
        `${dir}/c`,
        "--wait",
        "120",
      ],
      grants,
    );
    // Generous bounds (not timing assertions): the bank first needs a few
    // probe rounds (2 s apart by then) to conclude the old session is gone,
    // then a new handshake; under heavy load that took longer than 20 s.
    await customer2.waitFor(isType("ready"), "customer back", 60_000);
    const got = await customer2.waitCount(
      isType("message"),
      4,
      "queued messages",
      90_000,
    );
    assert.deepEqual(got.map((e) => e.text), ["m1", "m2", "m3", "m4"]);
    await bank.waitCount(
      isType("delivered"),
      4,
      "delivered after return",
      60_000,
    );
    assert.ok(
      bank.events.some((e) =>
        e.type === "notice" && /re-sent in the new session: #1/.test(e.text)
      ),
    );
    await bank.end();
    // #5 never went out: the run ends "not everything delivered" and names it.
    assert.equal(await bank.exit(60_000), 7);
    assert.deepEqual(bank.events.find(isType("closed"))?.undelivered, ["#5"]);
    assert.equal(await customer2.exit(60_000), 0);
  } finally {
    await bank.dispose();
    await customer.dispose();
    await customer2?.dispose();
    await relay.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a path outside the task's grants gets a clear message naming the flag (exit 2)", async () => {
  const dir = await tempDir();
  try {
    const out = await new Deno.Command("deno", {
      args: [
        "task",
        "--quiet",
        "bank",
        "--keys",
        dir,
        "--json",
        "--peer",
        "a".repeat(26),
      ],
      cwd: ROOT,
      stdin: "null",
      env: { NO_COLOR: "1" },
    }).output();
    assert.equal(out.code, 2);
    const err = new TextDecoder().decode(out.stderr);
    assert.match(
      err,
      new RegExp(`--keys ${dir}: this client may not read there`),
    );
    assert.match(err, new RegExp(`--allow-read=${dir}`));
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task demo: handshake, payment and relay view, exit 0", async () => {
  assert.ok(taskFlags("demo").flags.length > 0);
  const out = await new Deno.Command("deno", {
    args: ["task", "--quiet", "demo"],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, text + new TextDecoder().decode(out.stderr));
  assert.match(text, /bank +SECURE with customer/);
  assert.match(text, /customer SECURE with bank/);
  assert.match(text, /safety numbers match: true/);
  assert.match(text, /customer receives: Good afternoon/);
  assert.match(text, /payment APPROVED/);
  assert.match(text, /What the relay saw \(\d+ frames forwarded/);
  assert.match(text, /demo finished OK/);
});

Deno.test("--passphrase-file: a protected identity key is created, reloaded, and refused with a wrong passphrase", async () => {
  const relay = await startTestRelay();
  const dir = await tempDir();
  const ca = `${relay.certsDir}/ca.pem`;
  const grants = `${dir},${relay.certsDir}`;
  try {
    await Deno.writeTextFile(`${dir}/pw`, "correct horse battery staple\n");
    await Deno.writeTextFile(`${dir}/bad`, "wrong\n");
    const base = [
      "--json",
      "--relay",
      relay.url,
      "--ca",
      ca,
      "--keys",
      dir,
      "--wait",
      "0.5",
    ];
    const first = new ClientProc("customer", [
      ...base,
      "--passphrase-file",
      `${dir}/pw`,
    ], grants);
    const ready = await first.waitFor(
      isType("ready"),
      "ready with a new protected key",
      30000,
    );
    assert.equal(await first.exit(), 6); // nobody came: peer-timeout
    const file = JSON.parse(
      await Deno.readTextFile(`${dir}/customer_identity_keys.json`),
    );
    assert.equal(file.privateKey, undefined, "no cleartext private key");
    assert.equal(file.encryptedPrivateKey.kdf, "PBKDF2-SHA256");
    assert.ok(file.encryptedPrivateKey.iterations >= 100000);
    const again = new ClientProc("customer", [
      ...base,
      "--passphrase-file",
      `${dir}/pw`,
    ], grants);
    const ready2 = await again.waitFor(
      isType("ready"),
      "ready with the same key",
      30000,
    );
    assert.equal(ready2.fingerprint, ready.fingerprint);
    assert.equal(await again.exit(), 6);
    const wrong = new ClientProc("customer", [
      ...base,
      "--passphrase-file",
      `${dir}/bad`,
    ], grants);
    assert.equal(await wrong.exit(), 1);
    const err = wrong.events.find(isType("error"))!;
    assert.equal(err.code, "bad-passphrase");
    assert.match(err.message, /customer_identity_keys\.json/);
    const none = new ClientProc("customer", base, grants);
    assert.equal(await none.exit(), 1);
    assert.match(none.events.find(isType("error"))!.message, /passphrase/);
  } finally {
    await relay.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--passphrase-file refuses an unencrypted identity key file and says how to encrypt it; --encrypt-key does", async () => {
  // Regression: the passphrase was silently ignored for an unencrypted file.
  const relay = await startTestRelay();
  const dir = await tempDir();
  const grants = `${dir},${relay.certsDir}`;
  const keyPath = `${dir}/customer_identity_keys.json`;
  try {
    await Deno.writeTextFile(`${dir}/pw`, "correct horse battery staple\n");
    const base = [
      "--json",
      ...["--relay", relay.url, "--ca", `${relay.certsDir}/ca.pem`],
      ...["--keys", dir, "--wait", "0.5"],
    ];
    const plain = new ClientProc("customer", base, grants);
    const ready = await plain.waitFor(isType("ready"), "plain key", 30000);
    assert.equal(await plain.exit(), 6);
    const before = await Deno.readTextFile(keyPath);
    assert.ok(JSON.parse(before).privateKey, "created unencrypted");

    const withPass = [...base, "--passphrase-file", `${dir}/pw`];
    const refused = new ClientProc("customer", withPass, grants);
    assert.equal(await refused.exit(), 1);
    assert.ok(!refused.events.some(isType("ready")), "never connects");
    const err = refused.events.find(isType("error"))!;
    assert.equal(err.code, "bad-key-file");
    assert.match(err.message, /NOT encrypted/);
    assert.match(err.message, /--encrypt-key/);
    assert.equal(await Deno.readTextFile(keyPath), before, "file untouched");

    const enc = new ClientProc(
      "customer",
      [...withPass, "--encrypt-key"],
      grants,
    );
    assert.equal(await enc.exit(), 0);
    assert.match(enc.events.find(isType("notice"))!.text, /encrypted/);
    const file = JSON.parse(await Deno.readTextFile(keyPath));
    assert.equal(file.privateKey, undefined, "no cleartext private key");
    assert.equal(file.encryptedPrivateKey.kdf, "PBKDF2-SHA256");
    assert.equal(file.created, JSON.parse(before).created);
    assert.equal((await Deno.stat(keyPath)).mode! & 0o777, 0o600);

    const again = new ClientProc("customer", withPass, grants);
    const ready2 = await again.waitFor(isType("ready"), "same key", 30000);
    assert.equal(ready2.fingerprint, ready.fingerprint, "same identity");
    assert.equal(await again.exit(), 6);
  } finally {
    await relay.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a waiting customer ignores a stranger's bad handshake and still serves the real bank", async () => {
  const relay = await startTestRelay();
  const dir = await tempDir();
  const ca = `${relay.certsDir}/ca.pem`;
  const grants = `${dir},${relay.certsDir}`;
  const common = ["--json", "--relay", relay.url, "--ca", ca, "--wait", "20"];
  const customer = new ClientProc(
    "customer",
    [...common, "--keys", `${dir}/c`],
    grants,
  );
  let bank: ClientProc | undefined;
  try {
    const ready = await customer.waitFor(isType("ready"), "customer ready");
    const customerId = parseSessionId(ready.id);
    // Any registered client can send the customer junk: a garbage HS1, then a
    // well-formed HS1 that will never be followed by a valid HS3.
    const stranger = await relay.connect();
    const junk = new Uint8Array(101);
    junk.set([1, 1, 0, 1]);
    stranger.send(customerId, junk);
    await customer.waitFor(
      (e) => e.type === "notice" && /handshake attempt failed/.test(e.text),
      "notice about the bad handshake",
    );
    assert.deepEqual(customer.events.filter(isType("closed")), []);
    bank = bankTo(ready.address, dir, common, grants);
    await Promise.all([
      bank.waitFor(isType("secure"), "bank secure"),
      customer.waitFor(isType("secure"), "customer secure"),
    ]);
    await bank.line("still here");
    const [m] = await customer.waitCount(isType("message"), 1, "message");
    assert.equal(m.text, "still here");
    await endBoth(bank, customer);
  } finally {
    await bank?.dispose();
    await customer.dispose();
    await relay.close();
    await Deno.remove(dir, { recursive: true });
  }
});
