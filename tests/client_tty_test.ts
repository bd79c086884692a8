/**
 * Interactive mode under a real pseudo-terminal (tmux): the customer runs in
 * a tmux pane with the task's permission flags; the bank is a JSON-mode
 * process. Covers the banner, the secure-session summary, typing a message,
 * delivery marks, typed text kept across incoming lines (the line editor,
 * clients/line_editor.ts), /verify with confirmation, /status, /quit, Ctrl-C,
 * and /trust after a CHANGED key.
 * Skipped (with a message) when tmux is not installed.
 */

import assert from "node:assert/strict";
import { startTestRelay, testCerts } from "./helpers/relay_fixture.ts";
import {
  ClientProc,
  flagsWithDir,
  freePort,
  ROOT,
} from "./helpers/client_proc.ts";

const hasTmux = await new Deno.Command("tmux", {
  args: ["-V"],
  stdout: "null",
  stderr: "null",
})
  .output().then((o) => o.success, () => false);
if (!hasTmux) {
  console.warn(
    "client_tty_test: tmux not installed (apt-get install -y tmux): skipped",
  );
}

/**
 * Our own tmux server socket, so nothing else is touched; a new one per test
 * (a server still exiting after kill-server refuses new sessions).
 */
let socket = 0;
const SOCKET = () => `e2e-client-test-${Deno.pid}-${socket}`;

/** Stops this test's tmux server; the next test starts its own. */
async function killServer(): Promise<void> {
  await tmux("kill-server").catch(() => "");
  socket++;
}

async function tmux(...args: string[]): Promise<string> {
  const out = await new Deno.Command("tmux", {
    args: ["-L", SOCKET(), ...args],
  })
    .output();
  if (!out.success) {
    throw new Error(`tmux ${args[0]}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

async function screenUntil(
  re: RegExp,
  what: string,
  ms = 15000,
  pane = "customer",
): Promise<string> {
  const deadline = Date.now() + ms;
  let screen = "";
  while (Date.now() < deadline) {
    screen = await tmux(
      "capture-pane",
      "-p",
      "-J",
      "-S",
      "-200",
      "-t",
      pane,
    );
    if (re.test(screen)) return screen;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}; screen:\n${screen}`);
}

/**
 * Starts `role` interactively in the tmux pane (named "customer", which
 * `screenUntil` reads) with the task's permission flags plus `grants`; the
 * pane prints `EXIT=<code> TTY=restored` when the client ends and left the
 * terminal's mode as it found it (`TTY=changed` otherwise).
 */
async function startInPane(
  role: "bank" | "customer",
  args: string[],
  grants: string,
  pane = "customer",
): Promise<void> {
  const { flags, entry } = flagsWithDir(role, grants);
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const cmd = ["deno", "run", ...flags, entry, ...args].map(quote).join(" ");
  await tmux(
    "new-session",
    "-d",
    "-s",
    pane,
    "-x",
    "200",
    "-y",
    "60",
    "-c",
    ROOT,
    `B=$(stty -g); NO_COLOR=1 ${cmd}; echo "EXIT=$? TTY=$([ "$(stty -g)" = "$B" ] && echo restored || echo changed)"; sleep 30`,
  );
}

Deno.test({
  name:
    "interactive customer in a terminal: secure session, chat, /verify, /status, /quit",
  ignore: !hasTmux,
  async fn() {
    const relay = await startTestRelay();
    const dir = await Deno.makeTempDir({ prefix: "client-tty-" });
    const ca = `${relay.certsDir}/ca.pem`;
    const grants = `${dir},${relay.certsDir}`;
    let bank: ClientProc | undefined;
    try {
      await startInPane("customer", [
        "--keys",
        `${dir}/c`,
        "--relay",
        relay.url,
        "--ca",
        ca,
        "--cover-rate",
        "0",
      ], grants);
      const banner = await screenUntil(
        /Share this address[\s\S]*id=[a-z2-7]{26}/,
        "banner",
      );
      assert.match(banner, /You are the customer\./);
      const address = banner.match(/wss:\/\/\S+id=[a-z2-7]{26}/)![0];
      bank = new ClientProc("bank", [
        "--json",
        "--relay",
        relay.url,
        "--ca",
        ca,
        "--keys",
        `${dir}/b`,
        "--peer",
        address,
      ], grants);
      const secure = await bank.waitFor(
        (e) => e.type === "secure",
        "bank secure",
      );
      const screen = await screenUntil(
        /Secure session with bank/,
        "secure summary",
      );
      assert.ok(screen.includes(`Safety number:    ${secure.safetyNumber}`));
      assert.match(screen, /Trust: NEW/);

      await bank.line("hello from the bank");
      await screenUntil(/\] bank: hello from the bank/, "incoming message");
      await tmux(
        "send-keys",
        "-t",
        "customer",
        "hi bank, customer here",
        "Enter",
      );
      const msg = await bank.waitFor(
        (e) => e.type === "message",
        "message at bank",
      );
      assert.equal(msg.text, "hi bank, customer here");
      await screenUntil(/✓ #1 delivered: hi bank/, "delivered mark");

      // Typed text survives incoming output: half a line typed, the peer
      // sends, the pane shows the incoming line and under it the half line
      // with the cursor after it; the rest (with a Backspace and ← →) and
      // Enter send the whole line, once.
      await tmux("send-keys", "-t", "customer", "-l", "I am typing a long sen");
      await screenUntil(/> I am typing a long sen\n/, "half line echoed");
      await bank.line("interrupting you");
      const redrawn = await screenUntil(
        /\] bank: interrupting you\n> I am typing a long sen\n/,
        "incoming line, then the half line redrawn under it",
      );
      assert.doesNotMatch(redrawn, /\] bank: interrupting you\n> \n/);
      assert.equal(
        (await tmux("display-message", "-p", "-t", "customer", "#{cursor_x}"))
          .trim(),
        String("> I am typing a long sen".length),
        "cursor after the typed text",
      );
      await tmux("send-keys", "-t", "customer", "-l", "tencx");
      await tmux("send-keys", "-t", "customer", "BSpace", "Left", "Right");
      await tmux("send-keys", "-t", "customer", "-l", "e");
      await tmux("send-keys", "-t", "customer", "Enter");
      await screenUntil(/✓ #2 delivered: I am typing/, "second delivered mark");
      assert.deepEqual(
        bank.events.filter((e) =>
          e.type === "message" && e.text.startsWith("I am typing")
        ).map((e) => e.text),
        ["I am typing a long sentence"],
        "the whole line, exactly once",
      );

      await tmux("send-keys", "-t", "customer", "/verify", "Enter");
      await screenUntil(/Type yes to mark bank verified/, "verify prompt");
      await tmux("send-keys", "-t", "customer", "yes", "Enter");
      await screenUntil(/bank marked as verified/, "verified");
      const peers = JSON.parse(
        await Deno.readTextFile(`${dir}/c/known_peers.json`),
      );
      const bankFp = bank.events.find((e) => e.type === "ready")!.fingerprint;
      assert.equal(peers.version, 2);
      assert.equal(peers.peers[bankFp].verified, true);
      assert.equal(peers.peers[bankFp].name, "bank");

      await tmux("send-keys", "-t", "customer", "/status", "Enter");
      await screenUntil(
        /status: secure, relay connected, peer [a-z2-7]{26} online.*trust verified/,
        "status",
      );

      await tmux("send-keys", "-t", "customer", "/quit", "Enter");
      await screenUntil(
        /closed: conversation closed\s+EXIT=0 TTY=restored/,
        "clean exit",
      );
      assert.equal(await bank.exit(), 0);
    } finally {
      await bank?.dispose();
      await killServer();
      await relay.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "interactive bank in a terminal: Ctrl-C closes the session cleanly on both sides",
  ignore: !hasTmux,
  async fn() {
    const relay = await startTestRelay();
    const dir = await Deno.makeTempDir({ prefix: "client-tty-" });
    const ca = `${relay.certsDir}/ca.pem`;
    const grants = `${dir},${relay.certsDir}`;
    const customer = new ClientProc("customer", [
      "--json",
      "--relay",
      relay.url,
      "--ca",
      ca,
      "--keys",
      `${dir}/c`,
    ], grants);
    try {
      const ready = await customer.waitFor(
        (e) => e.type === "ready",
        "customer ready",
      );
      await startInPane("bank", [
        "--keys",
        `${dir}/b`,
        "--relay",
        relay.url,
        "--ca",
        ca,
        "--peer",
        ready.address,
      ], grants);
      await screenUntil(/Secure session with customer/, "secure summary");
      await tmux("send-keys", "-t", "customer", "before ctrl-c", "Enter");
      await customer.waitFor(
        (e) => e.type === "message" && e.text === "before ctrl-c",
        "message at the customer",
      );
      await screenUntil(/✓ #1 delivered/, "delivered mark");
      // A half-typed line at Ctrl-C is not a message: shown once more, marked not sent.
      await tmux("send-keys", "-t", "customer", "-l", "unfinished draft");
      await screenUntil(/> unfinished draft\n/, "draft echoed");
      await tmux("send-keys", "-t", "customer", "C-c");
      await screenUntil(
        /closed: [^\n]*\n\(not sent: the line you were typing: unfinished draft\)\s+EXIT=0 TTY=restored/,
        "clean exit after Ctrl-C",
      );
      await customer.end();
      assert.equal(await customer.exit(), 0);
    } finally {
      await customer.dispose();
      await killServer();
      await relay.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "interactive bank in a terminal: a CHANGED key is refused until /trust + yes, then the session starts",
  ignore: !hasTmux,
  async fn() {
    const relay = await startTestRelay();
    const dir = await Deno.makeTempDir({ prefix: "client-tty-" });
    const ca = `${relay.certsDir}/ca.pem`;
    const grants = `${dir},${relay.certsDir}`;
    const fake = "ab".repeat(32);
    await Deno.mkdir(`${dir}/b`, { mode: 0o700 });
    await Deno.writeTextFile(
      `${dir}/b/known_peers.json`,
      JSON.stringify({
        version: 1,
        peers: {
          customer: {
            fingerprint: fake,
            firstSeen: "2026-01-01T00:00:00.000Z",
            lastSeen: "2026-01-01T00:00:00.000Z",
            verified: true,
          },
        },
      }),
      { mode: 0o600 },
    );
    const customer = new ClientProc("customer", [
      "--json",
      "--relay",
      relay.url,
      "--ca",
      ca,
      "--keys",
      `${dir}/c`,
    ], grants);
    try {
      const ready = await customer.waitFor(
        (e) => e.type === "ready",
        "customer ready",
      );
      await startInPane("bank", [
        "--keys",
        `${dir}/b`,
        "--relay",
        relay.url,
        "--ca",
        ca,
        "--peer",
        ready.address,
      ], grants);
      await screenUntil(/CHANGED/, "changed-key warning");
      await screenUntil(/Type \/trust to accept the new key/, "trust hint");
      const before = JSON.parse(
        await Deno.readTextFile(`${dir}/b/known_peers.json`),
      );
      assert.equal(
        before.peers.customer.fingerprint,
        fake,
        "not re-trusted silently",
      );
      // A line typed before /trust is neither an answer nor a chat message.
      await tmux("send-keys", "-t", "customer", "hello meanwhile", "Enter");
      await screenUntil(
        /not sent: the conversation with customer is refused/,
        "refused notice",
      );
      const screen = await screenUntil(/presented fingerprint: /, "warning");
      assert.match(
        screen,
        new RegExp(
          `presented fingerprint: ${
            ready.fingerprint.toUpperCase().match(/.{4}/g).join(" ")
          }`,
        ),
        "the new fingerprint as the peer's banner shows it",
      );
      await tmux("send-keys", "-t", "customer", "/trust", "Enter");
      await screenUntil(/Type yes to trust it/, "trust confirmation");
      await tmux("send-keys", "-t", "customer", "yes", "Enter");
      await screenUntil(/Secure session with customer/, "secure after /trust");
      const after = JSON.parse(
        await Deno.readTextFile(`${dir}/b/known_peers.json`),
      );
      assert.deepEqual(Object.keys(after.peers), [ready.fingerprint]);
      assert.equal(after.peers[ready.fingerprint].relayId, ready.id);
      assert.equal(
        after.peers[ready.fingerprint].verified,
        false,
        "re-trusting clears verified",
      );
      await tmux("send-keys", "-t", "customer", "after trust", "Enter");
      await customer.waitFor(
        (e) => e.type === "message" && e.text === "after trust",
        "message after /trust",
      );
      assert.ok(
        !customer.events.some((e) =>
          e.type === "message" && /hello meanwhile|^yes$/.test(e.text)
        ),
        "neither the line typed while refused nor the yes went out as chat",
      );
      await tmux("send-keys", "-t", "customer", "/quit", "Enter");
      await screenUntil(
        /EXIT=7 TTY=restored/,
        "exit 7: the line typed while refused was not sent",
      );
      await customer.end();
      assert.equal(await customer.exit(), 0);
    } finally {
      await customer.dispose();
      await killServer();
      await relay.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "a CHANGED key refused by the responder: both sides show the same fingerprint and safety number; /trust + yes after other typing recovers, and the changed side's message is delivered",
  ignore: !hasTmux,
  async fn() {
    const relay = await startTestRelay();
    const dir = await Deno.makeTempDir({ prefix: "client-tty-" });
    const ca = `${relay.certsDir}/ca.pem`;
    const grants = `${dir},${relay.certsDir}`;
    // The customer recorded another key for the bank: the bank's key "changed".
    await Deno.mkdir(`${dir}/c`, { mode: 0o700 });
    await Deno.writeTextFile(
      `${dir}/c/known_peers.json`,
      JSON.stringify({
        version: 1,
        peers: {
          bank: {
            fingerprint: "cd".repeat(32),
            firstSeen: "2026-01-01T00:00:00.000Z",
            lastSeen: "2026-01-01T00:00:00.000Z",
            verified: true,
          },
        },
      }),
      { mode: 0o600 },
    );
    const common = (who: string) => [
      "--keys",
      `${dir}/${who}`,
      "--relay",
      relay.url,
      "--ca",
      ca,
      "--cover-rate",
      "0",
    ];
    try {
      await startInPane("customer", common("c"), grants);
      const banner = await screenUntil(
        /Share this address[\s\S]*id=[a-z2-7]{26}/,
        "customer banner",
      );
      const address = banner.match(/wss:\/\/\S+id=[a-z2-7]{26}/)![0];
      // The changed side dials: it is the initiator, the customer refuses at HS3.
      await startInPane(
        "bank",
        [...common("b"), "--peer", address],
        grants,
        "bank",
      );
      const bankScreen = await screenUntil(
        /Secure session with customer[\s\S]*Safety number:\s+[0-9 ]{60,}/,
        "the changed side's secure summary",
        15000,
        "bank",
      );
      const warning = await screenUntil(
        /The session was refused\./,
        "the refusing side's warning",
      );
      const bankFp = bankScreen.match(/Fingerprint: ([0-9A-F ]{79})/)![1];
      const sn = bankScreen.match(/Safety number:\s+([0-9 ]{71})/)![1];
      assert.ok(warning.includes(`presented fingerprint: ${bankFp}`));
      assert.ok(warning.includes(`safety number with the new key: ${sn}`));
      assert.match(
        warning,
        /and its safety number,\s+which must equal this one/,
      );
      // What the changed side is told to read out: /verify shows both, in the same format.
      await tmux("send-keys", "-t", "bank", "/verify", "Enter");
      const verify = await screenUntil(
        /Type yes to mark customer verified/,
        "verify on the changed side",
        15000,
        "bank",
      );
      assert.ok(verify.includes(`Your fingerprint: ${bankFp}`));
      assert.ok(verify.includes(`Safety number: ${sn}`));
      await tmux("send-keys", "-t", "bank", "no", "Enter");
      await screenUntil(/\* not verified/, "not verified", 15000, "bank");
      await tmux("send-keys", "-t", "bank", "sent with the new key", "Enter");
      await screenUntil(/#1 sent/, "sent", 15000, "bank");
      // The refusing side: other typing, then /trust and yes.
      await tmux("send-keys", "-t", "customer", "something else", "Enter");
      await screenUntil(
        /not sent: the conversation with bank is refused/,
        "refused line",
      );
      await tmux("send-keys", "-t", "customer", "/trust", "Enter");
      await screenUntil(
        new RegExp(`Trust the NEW key of bank \\(fingerprint ${bankFp}\\)`),
        "trust question",
      );
      await tmux("send-keys", "-t", "customer", "yes", "Enter");
      await screenUntil(
        /new key of bank trusted[\s\S]*Secure session with bank/,
        "customer secure after /trust",
      );
      // The changed side is told: its message arrives and is acknowledged.
      await screenUntil(
        /\] bank: sent with the new key/,
        "delivered to the customer",
      );
      await screenUntil(
        /✓ #1 delivered: sent with the new key/,
        "delivered mark",
        15000,
        "bank",
      );
      const after = await tmux(
        "capture-pane",
        "-p",
        "-J",
        "-S",
        "-200",
        "-t",
        "customer",
      );
      const sns = [...after.matchAll(/Safety number:\s+([0-9 ]{71})/g)].map((
        m,
      ) => m[1]);
      assert.deepEqual(
        sns,
        [sn],
        "the customer's summary shows the number both compared",
      );
      await tmux("send-keys", "-t", "bank", "/quit", "Enter");
      await screenUntil(/EXIT=0 TTY=restored/, "bank exit", 15000, "bank");
      await screenUntil(
        /EXIT=7 TTY=restored/,
        "customer exit 7: the refused line",
      );
    } finally {
      await killServer();
      await relay.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "bank and customer in ONE keys folder both /verify → yes: both decisions survive in known_peers.json",
  ignore: !hasTmux,
  async fn() {
    const relay = await startTestRelay();
    const dir = await Deno.makeTempDir({ prefix: "client-tty-" });
    const ca = `${relay.certsDir}/ca.pem`;
    const grants = `${dir},${relay.certsDir}`;
    const common = ["--keys", dir, "--relay", relay.url, "--ca", ca];
    try {
      await startInPane("customer", [...common, "--cover-rate", "0"], grants);
      const banner = await screenUntil(
        /Share this address[\s\S]*id=[a-z2-7]{26}/,
        "customer banner",
      );
      const address = banner.match(/wss:\/\/\S+id=[a-z2-7]{26}/)![0];
      await startInPane(
        "bank",
        [...common, "--cover-rate", "0", "--peer", address],
        grants,
        "bank",
      );
      await screenUntil(/Secure session with bank/, "customer secure");
      await screenUntil(
        /Secure session with customer/,
        "bank secure",
        15000,
        "bank",
      );
      // Both prompts open before either answers: the two updates race.
      for (const pane of ["customer", "bank"]) {
        await tmux("send-keys", "-t", pane, "/verify", "Enter");
      }
      await screenUntil(/Type yes to mark bank verified/, "customer prompt");
      await screenUntil(
        /Type yes to mark customer verified/,
        "bank prompt",
        15000,
        "bank",
      );
      await Promise.all(
        ["customer", "bank"].map((pane) =>
          tmux("send-keys", "-t", pane, "yes", "Enter")
        ),
      );
      await screenUntil(/bank marked as verified/, "customer verified");
      await screenUntil(
        /customer marked as verified/,
        "bank verified",
        15000,
        "bank",
      );
      const file = JSON.parse(
        await Deno.readTextFile(`${dir}/known_peers.json`),
      );
      const entries = Object.values(file.peers) as {
        name: string;
        verified: boolean;
      }[];
      assert.deepEqual(
        entries.map((e) => `${e.name}:${e.verified}`).sort(),
        ["bank:true", "customer:true"],
      );
      // The bank ends its input with Ctrl-D (on an empty line): a clean close.
      await tmux("send-keys", "-t", "bank", "C-d");
      await screenUntil(/EXIT=0 TTY=restored/, "customer exit");
      await screenUntil(/EXIT=0 TTY=restored/, "bank exit", 15000, "bank");
    } finally {
      await killServer();
      await relay.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "two interactive clients without --peer: the customer's ID pasted at the bank's prompt starts the conversation; a non-ID line is not sent as chat",
  ignore: !hasTmux,
  async fn() {
    const relay = await startTestRelay();
    const dir = await Deno.makeTempDir({ prefix: "client-tty-" });
    const ca = `${relay.certsDir}/ca.pem`;
    const grants = `${dir},${relay.certsDir}`;
    const args = (who: string) => [
      "--keys",
      `${dir}/${who}`,
      "--relay",
      relay.url,
      "--ca",
      ca,
      "--cover-rate",
      "0",
    ];
    try {
      await startInPane("customer", args("c"), grants, "customer");
      await startInPane("bank", args("b"), grants, "bank");
      const banner = await screenUntil(
        /Share this address[\s\S]*id=[a-z2-7]{26}/,
        "customer banner",
      );
      const id = banner.match(/Session ID:\s+([a-z2-7]{26})/)![1];
      await screenUntil(
        /Paste your peer's ID or address/,
        "bank hint",
        15000,
        "bank",
      );
      await tmux("send-keys", "-t", "bank", "hello there", "Enter");
      await screenUntil(
        /not sent: there is no conversation yet/,
        "chat before a conversation refused",
        15000,
        "bank",
      );
      // Enter alone keeps waiting: no notice, no contact attempt.
      await tmux("send-keys", "-t", "bank", "Enter");
      await tmux("send-keys", "-t", "bank", "/status", "Enter");
      const waiting = await screenUntil(
        /status: waiting, relay connected, no peer yet/,
        "status",
        15000,
        "bank",
      );
      assert.equal(
        waiting.match(/not sent: there is no conversation yet/g)?.length,
        1,
      );
      assert.doesNotMatch(waiting, /contacting /);
      // No session: /verify shows our fingerprint as the banner does (what a
      // peer refusing our key compares), and says there is no safety number.
      await tmux("send-keys", "-t", "bank", "/verify", "Enter");
      const noSession = await screenUntil(
        /No secure session, so no safety number yet/,
        "verify without a session",
        15000,
        "bank",
      );
      const bannerFp = noSession.match(/Fingerprint: ([0-9A-F ]{79})/)![1];
      assert.ok(noSession.includes(`Your fingerprint: ${bannerFp}`));
      await tmux("send-keys", "-t", "bank", id, "Enter");
      await screenUntil(/Secure session with/, "bank secure", 15000, "bank");
      await screenUntil(/Secure session with/, "customer secure");
      const bankScreen = await tmux("capture-pane", "-p", "-J", "-t", "bank");
      const custScreen = await tmux(
        "capture-pane",
        "-p",
        "-J",
        "-t",
        "customer",
      );
      const sn = (s: string) =>
        s.match(/Safety number:\s+([0-9 ]{60,})/)![1].trim();
      assert.equal(sn(bankScreen), sn(custScreen));
      assert.doesNotMatch(custScreen, /hello there/);
      await tmux("send-keys", "-t", "bank", "/quit", "Enter");
      await screenUntil(/EXIT=0/, "bank exit 0", 15000, "bank");
      await screenUntil(/EXIT=0/, "customer exit 0");
    } finally {
      await killServer();
      await relay.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "interactive customer, relay not running: says to start it, no prompt after it, exit 3, terminal restored",
  ignore: !hasTmux,
  async fn() {
    const { dir: certsDir } = await testCerts();
    const dir = await Deno.makeTempDir({ prefix: "client-tty-" });
    try {
      await startInPane("customer", [
        "--keys",
        dir,
        "--relay",
        `wss://localhost:${freePort()}/ws`,
        "--ca",
        `${certsDir}/ca.pem`,
      ], `${dir},${certsDir}`);
      const screen = await screenUntil(/EXIT=\d+ TTY=\w+/, "exit");
      assert.match(
        screen,
        /is the relay running\? start it with `deno task relay`/,
      );
      assert.match(screen, /EXIT=3 TTY=restored/);
      assert.doesNotMatch(screen, /^> /m, "no stray prompt");
    } finally {
      await killServer();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "interactive bank contacting an ID nobody holds: /status does not say online, a typed line is queued for that peer (said so), Ctrl-C names it, exit 7",
  ignore: !hasTmux,
  async fn() {
    const relay = await startTestRelay();
    const dir = await Deno.makeTempDir({ prefix: "client-tty-" });
    const ca = `${relay.certsDir}/ca.pem`;
    const absent = "3x4jlupouh6ix257anohc2bm2a";
    try {
      await startInPane("bank", [
        "--keys",
        dir,
        "--relay",
        relay.url,
        "--ca",
        ca,
        "--cover-rate",
        "0",
      ], `${dir},${relay.certsDir}`);
      await screenUntil(/Paste your peer's ID or address/, "hint");
      await tmux("send-keys", "-t", "customer", absent, "Enter");
      await screenUntil(new RegExp(`contacting ${absent}`), "contacting");
      await tmux("send-keys", "-t", "customer", "/status", "Enter");
      const status = await screenUntil(/status: /, "status");
      assert.match(
        status,
        new RegExp(
          `status: \\w+, relay connected, peer ${absent}: no secure session yet`,
        ),
      );
      assert.doesNotMatch(status, /online/);
      await tmux("send-keys", "-t", "customer", "hello?", "Enter");
      await screenUntil(
        new RegExp(
          `#1 queued for customer ${absent}: sent once the secure session is up`,
        ),
        "queued notice naming the peer",
      );
      await tmux("send-keys", "-t", "customer", "C-c");
      await screenUntil(
        /closed: interrupted — NOT delivered: #1\s+EXIT=7 TTY=restored/,
        "Ctrl-C names the message, exit 7",
      );
    } finally {
      await killServer();
      await relay.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "interactive customer, broken identity file: how to recover, no prompt after it, exit 1, terminal restored",
  ignore: !hasTmux,
  async fn() {
    const { dir: certsDir } = await testCerts();
    const dir = await Deno.makeTempDir({ prefix: "client-tty-" });
    try {
      await Deno.writeTextFile(
        `${dir}/customer_identity_keys.json`,
        "{ not json",
        { mode: 0o600 },
      );
      await startInPane("customer", [
        "--keys",
        dir,
        "--relay",
        `wss://localhost:${freePort()}/ws`,
        "--ca",
        `${certsDir}/ca.pem`,
      ], `${dir},${certsDir}`);
      const screen = await screenUntil(/EXIT=\d+ TTY=\w+/, "exit");
      assert.match(
        screen,
        /! bad-key-file: .*Restore this file from your backup/,
      );
      assert.match(screen, /^EXIT=1 TTY=restored/m);
      assert.doesNotMatch(screen, /^> /m, "no stray prompt");
    } finally {
      await killServer();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
