/**
 * Messages a person can act on: the clients and the relay as real processes
 * given a relay that is not running, a full relay, an unknown CA, broken key
 * files, bad relay flags, a relay that shuts down or dies; each message must
 * say what to do or what happened.
 */

import assert from "node:assert/strict";
import {
  RawClient,
  startTestRelay,
  testCerts,
  waitFor,
} from "./helpers/relay_fixture.ts";
import {
  ClientProc,
  type Ev,
  flagsWithDir,
  freePort,
  RelayProc,
  ROOT,
} from "./helpers/client_proc.ts";
import { spawnRelay } from "./helpers/relay_process.ts";
import { createIdentity } from "../lib/identity.ts";

const isType = (t: string) => (e: Ev) => e.type === t;

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "client-msg-test-" });
}

Deno.test("relay not running → says to start it, no stray prompt; relay full (503) → at capacity, retried, then gives up", async () => {
  const dir = await tempDir();
  const relay = await startTestRelay({ maxConnections: 0 });
  const ca = `${relay.certsDir}/ca.pem`;
  const grants = `${dir},${relay.certsDir}`;
  try {
    const port = freePort();
    const base = ["--ca", ca, "--keys", dir];
    const down = new ClientProc("customer", [
      ...base,
      "--relay",
      `wss://localhost:${port}/ws`,
    ], grants);
    assert.equal(await down.exit(), 3);
    const out = down.rawStdout + down.stderr.join("");
    assert.match(out, /is the relay running\? start it with `deno task relay`/);
    assert.doesNotMatch(out, /> *$/);
    const full = new ClientProc("customer", [
      ...base,
      "--json",
      "--reconnect-timeout",
      "2",
      "--relay",
      relay.url,
    ], grants);
    assert.equal(await full.exit(), 3);
    const retry = full.events.find(isType("notice"))!;
    assert.match(retry.text, /at capacity.*trying again in \d+\.\d s/);
    const err = full.events.find(isType("error"))!;
    assert.equal(err.code, "relay-full");
    assert.match(err.message, /at capacity/);
    assert.match(err.message, /gave up after \d+ attempt\(s\) in 2 s/);
    assert.match(err.message, /--reconnect-timeout/);
  } finally {
    await relay.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("relay full at start → the customer and the bank service retry with backoff and get in when a slot frees; a signal while retrying stops cleanly", async () => {
  const dir = await tempDir();
  const relay = await startTestRelay({ maxConnections: 1 });
  const ca = `${relay.certsDir}/ca.pem`;
  const grants = `${dir},${relay.certsDir}`;
  const hold = new RawClient(relay.url, relay.caPem);
  const procs: ClientProc[] = [];
  try {
    await hold.opened; // the only slot
    await Deno.mkdir(`${dir}/c`);
    await Deno.mkdir(`${dir}/b`);
    const base = ["--ca", ca, "--json", "--relay", relay.url];
    const customer = new ClientProc("customer", [
      ...base,
      "--keys",
      `${dir}/c`,
    ], grants);
    procs.push(customer);
    await customer.waitFor(
      (e) => e.type === "notice" && /at capacity.*trying again/.test(e.text),
      "the customer's retry notice",
    );
    assert.equal(customer.events.some(isType("ready")), false);
    await hold.close(); // a slot frees
    await customer.waitFor(isType("ready"), "the customer registered");
    customer.signal("SIGTERM");
    assert.equal(await customer.exit(), 0);
    // The relay is full again (the customer's slot is held); the service retries too.
    const hold2 = new RawClient(relay.url, relay.caPem);
    await hold2.opened;
    const bank = new ClientProc("bank", [
      ...base,
      "--serve",
      "--keys",
      `${dir}/b`,
    ], grants);
    procs.push(bank);
    await bank.waitFor(
      (e) => e.method === "notice" && /at capacity/.test(e.params?.text),
      "the service's retry notice",
    );
    bank.signal("SIGTERM"); // while retrying: stops at once, exit 0
    assert.equal(await bank.exit(), 0);
    assert.ok(bank.events.some((e) => e.method === "closed"));
    await hold2.close();
  } finally {
    for (const p of procs) await p.dispose();
    await hold.close();
    await relay.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("unknown CA, not pinned → names the CA file tried and how to fix", async () => {
  const dir = await tempDir();
  const relay = await startTestRelay();
  const grants = `${dir},${relay.certsDir}`;
  try {
    const other = `${dir}/other-ca.pem`;
    // A CA that did not sign the relay's certificate: the relay's own cert as a "CA".
    await Deno.copyFile(`${relay.certsDir}/relay.pem`, other);
    const c = new ClientProc("customer", [
      "--json",
      "--keys",
      dir,
      "--relay",
      relay.url,
      "--ca",
      other,
    ], grants);
    assert.equal(await c.exit(), 3);
    const err = c.events.find(isType("error"))!;
    assert.equal(err.code, "tls");
    assert.ok(err.message.includes(other), err.message);
    assert.match(err.message, /system roots/);
    assert.match(err.message, /--ca certs\/ca\.pem/);
  } finally {
    await relay.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("broken identity file → one prefix and how to recover; protected key without a flag → --passphrase-file; --keys FILE → not a folder", async () => {
  const dir = await tempDir();
  try {
    const keyPath = `${dir}/customer_identity_keys.json`;
    await Deno.writeTextFile(keyPath, "{ not json", { mode: 0o600 });
    const broken = new ClientProc("customer", ["--json", "--keys", dir], dir);
    assert.equal(await broken.exit(), 1);
    const err = broken.events.find(isType("error"))!;
    assert.equal(err.code, "bad-key-file");
    assert.doesNotMatch(err.message, /bad-key-file/);
    assert.ok(err.message.startsWith(keyPath), err.message);
    assert.match(err.message, /Restore this file from your backup/);
    assert.match(err.message, /changes your fingerprint/);
    assert.equal(await Deno.readTextFile(keyPath), "{ not json", "untouched");

    const { json } = await createIdentity({ passphrase: "pw" });
    await Deno.writeTextFile(keyPath, json, { mode: 0o600 });
    const locked = new ClientProc("customer", ["--json", "--keys", dir], dir);
    assert.equal(await locked.exit(), 1);
    const lockedErr = locked.events.find(isType("error"))!;
    assert.equal(lockedErr.code, "bad-passphrase");
    assert.match(lockedErr.message, /--passphrase-file FILE/);

    const notFolder = `${dir}/README.md`;
    await Deno.writeTextFile(notFolder, "# not a folder\n");
    const file = new ClientProc("customer", [
      "--json",
      "--keys",
      notFolder,
    ], dir);
    assert.equal(await file.exit(), 2);
    const fileErr = file.events.find(isType("error"))!;
    assert.match(fileErr.message, /README\.md: not a folder/);
    assert.doesNotMatch(fileErr.message, /os error/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Runs the relay task's command with `args`; its exit code and stderr. */
async function relayRun(
  args: string[],
  certsDir: string,
): Promise<{ code: number; err: string }> {
  const { flags, entry } = flagsWithDir("relay", certsDir);
  const out = await new Deno.Command("deno", {
    args: ["run", ...flags, entry, ...args],
    cwd: ROOT,
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  return { code: out.code, err: new TextDecoder().decode(out.stderr) };
}

Deno.test("relay: --port 99999 → usage exit 2; port busy → names the port; the CA certificate as --cert → refused at start", async () => {
  const certs = await testCerts();
  const files = [
    "--cert",
    `${certs.dir}/relay.pem`,
    "--key",
    `${certs.dir}/relay-key.pem`,
  ];
  const range = await relayRun(["--port", "99999", ...files], certs.dir);
  assert.equal(range.code, 2, range.err);
  assert.match(range.err, /--port must be an integer from 0 to 65535/);

  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const port = (busy.addr as Deno.NetAddr).port;
    const r = await relayRun(["--port", String(port), ...files], certs.dir);
    assert.equal(r.code, 1, r.err);
    assert.match(
      r.err,
      new RegExp(`port ${port} on 127\\.0\\.0\\.1 is already in use`),
    );
  } finally {
    busy.close();
  }

  const ca = await relayRun([
    "--port",
    "0",
    "--cert",
    `${certs.dir}/ca.pem`,
    "--key",
    `${certs.dir}/relay-key.pem`,
  ], certs.dir);
  assert.equal(ca.code, 1, ca.err);
  assert.match(ca.err, /refusing --cert .*ca\.pem: it is a CA certificate/);
  assert.doesNotMatch(ca.err, /listening/);
});

/** The customer, interactive, on a pseudo-terminal (script(1)) with its key folder `dir`. */
function ptyCustomer(dir: string, url: string, ca: string) {
  const { flags, entry } = flagsWithDir(
    "customer",
    `${dir},${ca.slice(0, ca.lastIndexOf("/"))}`,
  );
  const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
  const cmd = ["deno", "run", ...flags, entry, "--keys", dir, "--relay"]
    .concat([url, "--ca", ca]).map(quote).join(" ");
  const child = new Deno.Command("script", {
    args: ["-qfec", cmd, "/dev/null"],
    cwd: ROOT,
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
    env: { NO_COLOR: "1" },
  }).spawn();
  const writer = child.stdin.getWriter();
  const state = { screen: "" };
  const reading = (async () => {
    const dec = new TextDecoder();
    for await (const chunk of child.stdout) state.screen += dec.decode(chunk);
  })();
  return {
    state,
    write: (text: string) => writer.write(new TextEncoder().encode(text)),
    async until(re: RegExp): Promise<void> {
      const deadline = Date.now() + 15000;
      while (!re.test(state.screen)) {
        if (Date.now() > deadline) {
          child.kill("SIGKILL");
          throw new Error(`no ${re} on screen: ${state.screen.slice(-800)}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async close(): Promise<void> {
      await writer.close().catch(() => {});
      await child.status;
      await reading;
    },
  };
}

Deno.test("/help in interactive mode (under a pseudo-terminal) lists the commands; deno task demo --help prints help, not the demo", async () => {
  const dir = await tempDir();
  const relay = await startTestRelay();
  try {
    const pty = ptyCustomer(dir, relay.url, `${relay.certsDir}/ca.pem`);
    const { write, until } = pty;
    try {
      await until(/Session ID/);
      await write("/help\r");
      await until(/\/trust +accept a peer's CHANGED key/);
      assert.match(pty.state.screen, /\/status +relay connection/);
      assert.doesNotMatch(pty.state.screen, /unknown command/);
      await write("/quit\r");
      await until(/closed/);
    } finally {
      await pty.close();
    }

    const demo = await new Deno.Command("deno", {
      args: ["task", "--quiet", "demo", "--help"],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const text = new TextDecoder().decode(demo.stdout);
    assert.equal(demo.code, 0);
    assert.match(text, /deno task demo/);
    assert.match(text, /--help/);
    assert.doesNotMatch(text, /End-to-end demo/);
  } finally {
    await relay.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("protected key, no --passphrase-file, on a terminal → asks for the passphrase without echo", async () => {
  const dir = await tempDir();
  const relay = await startTestRelay();
  try {
    const secret = "s3cret-horse-battery";
    const { json } = await createIdentity({ passphrase: secret });
    await Deno.writeTextFile(`${dir}/customer_identity_keys.json`, json, {
      mode: 0o600,
    });
    const pty = ptyCustomer(dir, relay.url, `${relay.certsDir}/ca.pem`);
    try {
      await pty.until(/Passphrase for .*customer_identity_keys\.json: /);
      await pty.write(secret + "\r");
      await pty.until(/Session ID/);
      assert.ok(
        !pty.state.screen.includes(secret),
        "the passphrase is not echoed",
      );
      await pty.write("/quit\r");
      await pty.until(/closed/);
    } finally {
      await pty.close();
    }
  } finally {
    await relay.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("relay shuts down (SIGINT then SIGTERM) → one shutting-down line, and relay log and client both name 1001 going away; relay killed → the client says no close frame", async () => {
  const certs = await testCerts();
  const dir = await tempDir();
  const port = freePort();
  const relay = await spawnRelay({
    certsDir: certs.dir,
    args: ["--port", String(port)],
  });
  const customer = new ClientProc("customer", [
    "--json",
    "--relay",
    `wss://localhost:${port}/ws`,
    "--ca",
    `${certs.dir}/ca.pem`,
    "--keys",
    dir,
    "--cover-rate",
    "0",
  ], `${dir},${certs.dir}`);
  let again: RelayProc | undefined;
  const lost = (n: number) =>
    customer.waitCount(
      (e) => e.type === "notice" && /reconnecting$/.test(e.text),
      n,
      "relay-lost notice",
    );
  try {
    await customer.waitFor(isType("ready"), "customer ready");
    await waitFor(
      () => relay.lines.some((l) => / registered /.test(l)),
      "registered line",
    );
    Deno.kill(relay.pid, "SIGINT");
    Deno.kill(relay.pid, "SIGTERM");
    assert.equal(await relay.exited, 0);
    const [gone] = await lost(1);
    assert.equal(
      gone.text,
      "the relay closed the connection (1001 going away: relay shutting down); reconnecting",
    );
    assert.equal(
      relay.lines.filter((l) => /shutting down/.test(l)).length,
      1,
      relay.lines.join("\n"),
    );
    assert.ok(
      relay.lines.some((l) =>
        /closed [a-z2-7]{6}… by the relay: 1001 going away \(0 online\)/
          .test(l)
      ),
      relay.lines.join("\n"),
    );
    again = new RelayProc(
      port,
      `${certs.dir}/relay.pem`,
      `${certs.dir}/relay-key.pem`,
      certs.dir,
    );
    await again.ready;
    await customer.waitFor(
      (e) => e.type === "notice" && /reconnected/.test(e.text),
      "reconnected",
      30000,
    );
    await again.kill(); // SIGKILL: no close frame
    const [, dead] = await lost(2);
    assert.match(
      dead.text,
      /^connection to the relay lost \(no close frame: the network failed or the relay stopped abruptly\); reconnecting$/,
    );
  } finally {
    await customer.dispose();
    await again?.kill();
    await relay.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
