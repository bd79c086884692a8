/**
 * `deno task demo`: the whole system in one process, in a few seconds. Starts
 * a relay on a free loopback port (certificates generated into a temporary
 * folder), a customer and a bank with temporary identities, runs the
 * handshake and the payment scenario, verifies the bank's transcript, and
 * prints what each side saw and what the relay saw (frame sizes and timing
 * only: it never sees keys or plaintext). Everything temporary is deleted.
 * @module
 */

import { ensureCerts } from "./certs.ts";
import { startRelay } from "../lib/deno/relay_server.ts";
import { parseClientArgs } from "../clients/args.ts";
import { prepareClient } from "../clients/client.ts";
import type { ClientEvent } from "../clients/engine.ts";
import { verifyConversation } from "../lib/conversation_transcript.ts";
import { neutralizeText } from "../lib/display_text.ts";
import { describeControl, isControl } from "../clients/control.ts";
import { formatFingerprint } from "../lib/fingerprint.ts";

/** Give up if the demo has not finished after this long (ms). */
const DEMO_TIMEOUT_MS = 30000;

function fp(hex: string): string {
  return formatFingerprint(Uint8Array.fromHex(hex));
}

const HELP =
  `deno task demo   — the whole system in one process, in a few seconds

Starts a relay on a free loopback port (certificates in a temporary folder),
a customer and a bank with temporary identities, runs the handshake and the
payment scenario, verifies the bank's transcript, and prints what each side
and the relay saw. Everything temporary is deleted. Exit 0 when it worked.

  -h, --help   this help`;

/** Runs the demo; resolves to the exit code. */
export async function main(args: string[] = []): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(HELP);
    return 0;
  }
  if (args.length > 0) {
    console.error(`demo: takes no arguments (got ${args[0]})\n\n${HELP}`);
    return 2;
  }
  const tmp = await Deno.makeTempDir({ prefix: "e2e-demo-" });
  const t0 = performance.now();
  const ms = () => (performance.now() - t0).toFixed(0).padStart(5) + " ms";
  const say = (s: string) => console.log(s);
  try {
    say(
      "== End-to-end demo: relay, bank and customer (temporary keys, certificates, port) ==\n",
    );
    const certs = await ensureCerts({ dir: `${tmp}/certs` });
    const seen: { at: string; bytes: number }[] = [];
    const relay = await startRelay({
      hostname: "127.0.0.1",
      port: 0,
      cert: await Deno.readTextFile(certs.certPath),
      key: await Deno.readTextFile(certs.keyPath),
      quiet: true,
      log: () => {},
    });
    // Demo-only observation hook: the relay's own counter of forwarded frames.
    const forwarded = relay.metrics.forwarded.bind(relay.metrics);
    relay.metrics.forwarded = (bytes: number) => {
      seen.push({ at: ms(), bytes });
      forwarded(bytes);
    };
    const url = `wss://localhost:${relay.port}/ws`;
    say(
      `[${ms()}] relay listening on ${url} (TLS, local CA in a temporary folder)`,
    );

    const events: Record<string, ClientEvent[]> = { bank: [], customer: [] };
    const ready: Record<
      string,
      PromiseWithResolvers<ClientEvent & { type: "ready" }>
    > = {
      bank: Promise.withResolvers(),
      customer: Promise.withResolvers(),
    };
    const show = (who: string) => (ev: ClientEvent) => {
      events[who].push(ev);
      const pad = who.padEnd(8);
      switch (ev.type) {
        case "ready":
          ready[who].resolve(ev);
          say(`[${ms()}] ${pad} registered at the relay, session ID ${ev.id}`);
          say(`           ${pad} identity fingerprint ${fp(ev.fingerprint)}`);
          break;
        case "secure":
          say(
            `[${ms()}] ${pad} SECURE with ${ev.peerName} (as ${ev.role}); trust: ${ev.trust}`,
          );
          say(`           ${pad} peer fingerprint ${fp(ev.peerFingerprint)}`);
          say(`           ${pad} safety number    ${ev.safetyNumber}`);
          break;
        case "sent":
          say(`[${ms()}] ${pad} sends #${ev.id}: ${ev.text}`);
          break;
        case "delivered":
          say(
            `[${ms()}] ${pad} #${ev.id} acknowledged by the peer (delivered)`,
          );
          break;
        case "message":
          say(`[${ms()}] ${pad} receives: ${ev.text}`);
          break;
        case "payment":
          if (ev.event === "response" && ev.direction === "received") {
            say(
              `[${ms()}] ${pad} payment ${
                (ev.decision ?? "?").toUpperCase()
              } by the customer (answers our request: ${ev.matches})`,
            );
          }
          break;
        case "error":
          say(`[${ms()}] ${pad} ERROR ${ev.code}: ${ev.message}`);
          break;
        case "closed":
          say(`[${ms()}] ${pad} closed: ${ev.reason}`);
          break;
      }
    };
    const common = [
      "--relay",
      url,
      "--ca",
      certs.caPath,
      "--json",
      "--wait",
      "20",
      "--cover-rate",
      "1",
    ];
    const customerOpts = parseClientArgs("customer", [
      ...common,
      "--keys",
      `${tmp}/customer`,
      "--scenario",
      "payment",
      "--approve",
      "--transcript",
      `${tmp}/customer_transcript.json`,
    ])!;
    const customer = await prepareClient(customerOpts, show("customer"));
    const customerRun = customer.run();
    const customerReady = await ready.customer.promise;
    say(`           customer shares its address: ${customerReady.address}\n`);

    const bankOpts = parseClientArgs("bank", [
      ...common,
      "--keys",
      `${tmp}/bank`,
      "--peer",
      customerReady.address,
      "--scenario",
      "payment",
      "--transcript",
      `${tmp}/bank_transcript.json`,
    ])!;
    const bank = await prepareClient(bankOpts, (ev) => {
      show("bank")(ev);
      if (ev.type === "secure") {
        bank.input("Good afternoon, this is your bank.");
      }
    });
    const bankRun = bank.run();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<number[]>((r) =>
      timer = setTimeout(() => r([-1, -1]), DEMO_TIMEOUT_MS)
    );
    const [bankCode, customerCode] = await Promise.race([
      Promise.all([bankRun, customerRun]),
      timeout,
    ]);
    clearTimeout(timer);
    if (bankCode === -1) {
      bank.quit();
      customer.quit();
      say("demo timed out");
      await relay.shutdown();
      return 1;
    }

    const secure = (who: string) =>
      events[who].find((e) => e.type === "secure") as
        | (ClientEvent & { type: "secure" })
        | undefined;
    const b = secure("bank"), c = secure("customer");
    say("\n== Result ==");
    const snMatch = b !== undefined && c !== undefined &&
      b.safetyNumber === c.safetyNumber;
    const fpMatch = b !== undefined && c !== undefined &&
      b.peerFingerprint === customerReady.fingerprint &&
      c.peerFingerprint ===
        (events.bank.find((e) => e.type === "ready") as { fingerprint: string })
          .fingerprint;
    say(
      `handshake completed on both sides: ${
        b !== undefined && c !== undefined
      }`,
    );
    say(`each side sees the other's real fingerprint: ${fpMatch}`);
    say(
      `safety numbers match: ${snMatch}${
        snMatch ? ` (${b!.safetyNumber})` : ""
      }`,
    );
    say(`exit codes: bank ${bankCode}, customer ${customerCode}`);

    const report = await verifyConversation(
      await Deno.readTextFile(`${tmp}/bank_transcript.json`),
    );
    const v = report.sessions[report.sessions.length - 1].verified;
    say(
      `\nbank's signed transcript verified offline: ${report.verdict}, ${v.signatures} signatures, session ${
        v.sessionHash.slice(0, 16)
      }…`,
    );
    for (const m of v.messages.filter((m) => m.type === "data")) {
      say(
        `  ${m.role === "initiator" ? "bank    " : "customer"} #${m.seq}: ${
          isControl(m.body) ? describeControl(m.body) : neutralizeText(m.text)
        }`,
      );
    }

    say(
      `\n== What the relay saw (${seen.length} frames forwarded; sizes and timing only) ==`,
    );
    const sizes = new Map<number, number>();
    for (const f of seen) sizes.set(f.bytes, (sizes.get(f.bytes) ?? 0) + 1);
    say(
      "frame sizes: " +
        [...sizes].sort((x, y) => x[0] - y[0]).map(([s, n]) => `${s} B ×${n}`)
          .join(", "),
    );
    say(
      "(handshake frames have fixed sizes; every record frame is padded to a power of two,",
    );
    say(
      " and acknowledgements and cover packets look like messages: the relay cannot read or tell them apart)",
    );
    say(
      "timeline: " + seen.slice(0, 24).map((f) =>
        `${f.at.trim()}:${f.bytes}B`
      ).join("  ") +
        (seen.length > 24 ? "  …" : ""),
    );
    await relay.shutdown();
    await relay.finished;
    const ok = bankCode === 0 && customerCode === 0 && snMatch && fpMatch;
    say(`\ndemo ${ok ? "finished OK" : "FAILED"} in ${ms().trim()}`);
    return ok ? 0 : 1;
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
