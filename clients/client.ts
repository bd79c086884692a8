/**
 * The client driver shared by `clients/bank.ts` and `clients/customer.ts`:
 * parses flags, checks permissions, loads (or creates) the identity, the
 * relay mailbox key and the known peers, sets up the relay connection (pinned
 * to one CA when asked), and runs the {@link ChatClient} engine with the
 * terminal or JSON interface over stdin/stdout. See `usage()` in args.ts.
 *
 * Files in the keys folder (default `.`), all mode 0600, written atomically:
 * `<role>_identity_keys.json` (identity), `<role>_mailbox_key.json` (relay
 * session ID key, so the ID is stable across restarts), `known_peers.json`.
 * @module
 */

import { SUITE_X25519 } from "../lib/suite.ts";
import {
  checkPathPermissions,
  type ClientOptions,
  DEFAULT_CA,
  EXIT,
  parseClientArgs,
  type Role,
  usage,
} from "./args.ts";
import type { ClientEvent, Connector } from "./engine.ts";
import { ChatClient, type ClientDeps } from "./chat.ts";
import { runService } from "./serve.ts";
import {
  bufferedWriter,
  jsonRenderer,
  queuedSink,
  terminalRenderer,
  writeStdout,
  writeStdoutBytes,
} from "./ui.ts";
import { TerminalInput } from "./tty.ts";
import { StdinLines } from "./stdin_lines.ts";
import { formatAddress } from "../lib/address.ts";
import { ProtocolError } from "../lib/errors.ts";
import {
  certificateFingerprint,
  selectPinnedCertificate,
} from "../lib/x509.ts";
import { loadKnownPeers, loadOrCreateIdentity } from "../lib/deno/key_file.ts";
import { loadOrCreateMailboxKey } from "../lib/deno/mailbox_file.ts";
import {
  RelayConnectError,
  RelayConnection,
} from "../lib/deno/relay_client.ts";
import { PinnedRelayConnection } from "../lib/deno/pinned_relay.ts";
import type { MailboxKey } from "../lib/registration.ts";

/** Reads a passphrase: the first line of `path`, without its line ending; refuses an empty one. */
async function readPassphrase(path: string): Promise<string> {
  const text = await Deno.readTextFile(path);
  const line = text.split(/\r?\n/, 1)[0];
  if (line === "") {
    throw new Error(`--passphrase-file ${path}: the first line is empty`);
  }
  return line;
}

/** Longest passphrase typed at the prompt (characters). */
const MAX_TYPED_PASSPHRASE = 1024;

/** Reads a passphrase from the terminal without echo; Ctrl-C, Ctrl-D or an empty line give up. */
async function promptPassphrase(prompt: string): Promise<string> {
  const enc = new TextEncoder();
  Deno.stderr.writeSync(enc.encode(prompt));
  Deno.stdin.setRaw(true);
  const bytes: number[] = [];
  const buf = new Uint8Array(256);
  try {
    read: for (;;) {
      const n = await Deno.stdin.read(buf);
      if (n === null) break;
      for (const b of buf.subarray(0, n)) {
        if (b === 0x0d || b === 0x0a) break read;
        if (b === 0x03 || b === 0x04) bytes.length = 0;
        if (b === 0x03 || b === 0x04) break read;
        if (b === 0x7f || b === 0x08) bytes.pop();
        else if (bytes.length < MAX_TYPED_PASSPHRASE * 4) bytes.push(b);
      }
    }
  } finally {
    Deno.stdin.setRaw(false);
    Deno.stderr.writeSync(enc.encode("\n"));
  }
  const text = new TextDecoder().decode(new Uint8Array(bytes));
  if (text === "") {
    throw new ProtocolError(
      "bad-passphrase",
      "no passphrase typed (it can also be given with --passphrase-file FILE)",
    );
  }
  return text;
}

/** Relay connect timeout (ms). */
const CONNECT_TIMEOUT_MS = 10000;

/** File names of `role` in the keys folder. */
export function keyFiles(role: Role, dir: string): {
  identity: string;
  identityEd25519: string;
  mailbox: string;
  knownPeers: string;
} {
  return {
    identity: `${dir}/${role}_identity_keys.json`,
    identityEd25519: `${dir}/${role}_identity_ed25519_keys.json`,
    mailbox: `${dir}/${role}_mailbox_key.json`,
    knownPeers: `${dir}/known_peers.json`,
  };
}

/** How the relay's certificate is checked, after reading the CA file and checking the pin. */
export interface TrustSetup {
  /** Opens a registered connection. */
  connect: Connector;
  /** Fingerprint of the CA to put in our address (undefined = system roots). */
  caFingerprint?: string;
  /** Human description. */
  mode: string;
}

/** Reads the CA file, checks the pin, and returns the connector. Throws Error with exit code in `cause`. */
export async function setupTrust(
  o: ClientOptions,
  mailbox: MailboxKey,
): Promise<TrustSetup> {
  let caPem: string | undefined;
  if (o.caFile !== undefined) {
    try {
      caPem = await Deno.readTextFile(o.caFile);
    } catch (e) {
      const missingDefault = e instanceof Deno.errors.NotFound &&
        o.caFile === DEFAULT_CA;
      if (!missingDefault || o.pin) {
        throw new Error(
          `cannot read the CA certificate ${o.caFile}: ${
            (e as Error).message
          }` +
            (o.pin
              ? " (a pinned address needs the relay's CA certificate: --ca FILE)"
              : ""),
          {
            cause: e instanceof Deno.errors.NotFound && !o.pin
              ? EXIT.usage
              : EXIT.relay,
          },
        );
      }
    }
  }
  let caFingerprint: string | undefined;
  if (caPem !== undefined) {
    try {
      caFingerprint = await certificateFingerprint(caPem);
    } catch {
      throw new Error(`${o.caFile} holds no PEM certificate`, {
        cause: EXIT.usage,
      });
    }
  }
  if (o.pin) {
    // Trust exactly the pinned certificate: a bundle's other CAs are dropped.
    const { pem: pinned, fingerprints } = await selectPinnedCertificate(
      caPem!,
      o.pin,
    );
    if (pinned === undefined) {
      throw new Error(
        `CA pin mismatch: the address pins CA ${o.pin} but ${o.caFile} holds ${
          fingerprints.length === 1 ? "CA" : "CAs"
        } ${fingerprints.join(", ")}; ` +
          "refusing to connect (get the right CA certificate from the relay operator)",
        { cause: EXIT.relay },
      );
    }
    caFingerprint = o.pin;
    const pem = pinned;
    return {
      connect: () =>
        PinnedRelayConnection.connect({
          url: o.relay,
          mailbox,
          caPem: pem,
          timeoutMs: CONNECT_TIMEOUT_MS,
        }),
      caFingerprint,
      mode: `pinned to CA ${o.pin.slice(0, 16)}… only`,
    };
  }
  const trusted = caPem !== undefined
    ? `the CA in ${o.caFile} and the system roots`
    : `the system roots only (no ${o.caFile ?? DEFAULT_CA})`;
  return {
    connect: () =>
      RelayConnection.connect({
        url: o.relay,
        mailbox,
        caCerts: caPem !== undefined ? [caPem] : undefined,
        timeoutMs: CONNECT_TIMEOUT_MS,
      }).catch((e) => {
        throw explainConnectError(e, trusted);
      }),
    caFingerprint,
    mode: caPem !== undefined
      ? `CA ${o.caFile} (added to the system roots)`
      : "system roots",
  };
}

/** Adds what to do to a connection failure a person can fix. */
export function explainConnectError(e: unknown, trusted: string): unknown {
  if (!(e instanceof RelayConnectError)) return e;
  if (e.kind === "unreachable" && /tcp connect|refused/i.test(e.message)) {
    return new RelayConnectError(
      e.kind,
      `${e.message} (is the relay running? start it with \`deno task relay\`, or check --relay)`,
    );
  }
  if (e.kind === "tls" && /UnknownIssuer|unknown issuer/i.test(e.message)) {
    return new RelayConnectError(
      e.kind,
      `${e.message}: the relay's certificate is not signed by a CA we trust (tried ${trusted}); ` +
        "pass the CA that signed it, e.g. --ca certs/ca.pem for a relay started with `deno task relay`",
    );
  }
  return e;
}

/** Adds how to recover to an identity file that cannot be used. */
function explainKeyError(e: unknown): unknown {
  if (!(e instanceof ProtocolError)) return e;
  const detail = e.message.slice(e.code.length + 2);
  if (e.code === "bad-passphrase" && /passphrase is required/.test(detail)) {
    return new ProtocolError(
      e.code,
      `${detail}: give it with --passphrase-file FILE (a file holding the passphrase, mode 0600)`,
    );
  }
  if (
    e.code === "bad-key-file" && !/chmod|--encrypt-key|key where/.test(detail)
  ) {
    return new ProtocolError(
      e.code,
      `${detail}. Restore this file from your backup. Without one, move it away and run again to ` +
        "create a new identity: that changes your fingerprint, and every peer will be warned that your key changed",
    );
  }
  return e;
}

/** Everything the engine needs, loaded from disk. */
export async function prepareClient(
  o: ClientOptions,
  emit: (ev: ClientEvent) => void,
  drainInput?: () => Promise<void>,
): Promise<ChatClient> {
  const d = await loadFiles(o);
  return new ChatClient(o, {
    ...d,
    emit,
    drainInput,
    address: (id) => formatAddress(o.relay, id, d.caFingerprint),
  });
}

/** Identity, mailbox key, known peers and the relay connector of `o`. */
async function loadFiles(o: ClientOptions): Promise<
  Omit<ClientDeps, "emit" | "address"> & { caFingerprint?: string }
> {
  const files = keyFiles(o.role, o.keysDir);
  const kind = await Deno.stat(o.keysDir).catch(() => undefined);
  if (kind !== undefined && !kind.isDirectory) {
    throw new Error(
      `--keys ${o.keysDir}: not a folder; give the folder that holds (or will hold) ` +
        `${o.role}_identity_keys.json and the other key files`,
      { cause: EXIT.usage },
    );
  }
  await Deno.mkdir(o.keysDir, { recursive: true, mode: 0o700 });
  let passphrase = o.passphraseFile === undefined
    ? undefined
    : await readPassphrase(o.passphraseFile);
  const { identity } = await loadOrCreateIdentity(files.identity, {
    passphrase,
  }).catch(async (e) => {
    // A protected key without --passphrase-file: on a terminal, ask.
    if (
      !(e instanceof ProtocolError && e.code === "bad-passphrase" &&
        passphrase === undefined && !o.json && Deno.stdin.isTerminal())
    ) throw explainKeyError(e);
    passphrase = await promptPassphrase(`Passphrase for ${files.identity}: `);
    return await loadOrCreateIdentity(files.identity, { passphrase })
      .catch((e) => {
        throw explainKeyError(e);
      });
  });
  // One identity per suite (PROTOCOL.md §2.1): the Ed25519 one only when
  // suite 0x0002 is enabled.
  const identities = o.suites.includes(SUITE_X25519)
    ? [
      (await loadOrCreateIdentity(files.identityEd25519, {
        passphrase,
        algorithm: "Ed25519",
      }).catch((e) => {
        throw explainKeyError(e);
      })).identity,
    ]
    : [];
  const { key: mailbox } = await loadOrCreateMailboxKey(files.mailbox);
  const knownPeers = await loadKnownPeers(files.knownPeers);
  const trust = await setupTrust(o, mailbox);
  return {
    identity,
    identities,
    knownPeers,
    knownPeersPath: files.knownPeers,
    connect: trust.connect,
    caFingerprint: trust.caFingerprint,
  };
}

/** Bytes read from stdin at once (one reused buffer: a pipe hands over ≤ 64 KiB per read). */
const STDIN_CHUNK = 256 * 1024;

/** Reads stdin line by line into the client; calls `eof` at the end. */
async function pumpStdin(client: ChatClient): Promise<void> {
  // Deno.stdin.read into one buffer, not Deno.stdin.readable: the stream
  // costs ~2× the CPU per byte (a new chunk and promise chain per read).
  // Lines go on as bytes (clients/stdin_lines.ts): no string per message.
  const buf = new Uint8Array(STDIN_CHUNK);
  const lines = new StdinLines();
  try {
    for (;;) {
      const n = await Deno.stdin.read(buf);
      if (n === null) break;
      const got = lines.push(buf.subarray(0, n));
      if (got.length > 0) client.inputLines(got);
    }
  } catch {
    // stdin closed under us: treat as EOF
  }
  const last = lines.end(); // a truncated character at EOF becomes U+FFFD
  if (last !== undefined) client.input(last);
  client.eof();
}

/** Runs a client for `role` with command-line `args`; resolves to the exit code. */
export async function runClient(role: Role, args: string[]): Promise<number> {
  let o: ClientOptions | undefined;
  try {
    o = parseClientArgs(role, args);
  } catch (e) {
    console.error(
      `${role}: ${(e as Error).message}\nRun with --help for the flags.`,
    );
    return EXIT.usage;
  }
  if (o === undefined) {
    console.log(usage(role));
    return EXIT.ok;
  }
  if (!Deno.stdin.isTerminal()) o.json = true;
  const problem = checkPathPermissions(o);
  if (problem) {
    console.error(`${role}: ${problem}`);
    return EXIT.usage;
  }
  const peerLabel = o.peerName;
  // JSON mode: events of one burst go out in one write (flushed below, and
  // by the listeners if the process dies of an uncaught error).
  const out = o.json ? bufferedWriter(writeStdoutBytes) : undefined;
  // Interactive: typed keys through the line editor (clients/tty.ts), output above the typed line.
  const tty = o.json ? undefined : new TerminalInput(writeStdout);
  const emit = out
    ? jsonRenderer(out)
    : terminalRenderer(tty!.screen, () => peerLabel);
  const flushOnExit = () => out?.flush();
  for (const type of ["unload", "error", "unhandledrejection"]) {
    globalThis.addEventListener(type, flushOnExit);
  }
  try {
    return await runPrepared(o, emit, tty);
  } finally {
    tty?.restore();
    flushOnExit();
    for (const type of ["unload", "error", "unhandledrejection"]) {
      globalThis.removeEventListener(type, flushOnExit);
    }
  }
}

/** `--encrypt-key`: rewrites the unencrypted identity files encrypted (the Ed25519 one when it exists); no relay, no session. */
async function encryptKey(
  o: ClientOptions,
  emit: (ev: ClientEvent) => void,
): Promise<void> {
  const files = keyFiles(o.role, o.keysDir);
  const passphrase = await readPassphrase(o.passphraseFile!);
  const ed = await Deno.stat(files.identityEd25519).then(
    () => true,
    () => false,
  );
  for (
    const [path, algorithm] of [
      [files.identity, undefined],
      ...(ed ? [[files.identityEd25519, "Ed25519"] as const] : []),
    ] as const
  ) {
    const { encrypted } = await loadOrCreateIdentity(path, {
      passphrase,
      create: false,
      encryptPlaintext: true,
      algorithm,
    });
    emit({
      type: "notice",
      text: encrypted
        ? `${path}: identity key encrypted with the passphrase of ${o.passphraseFile}`
        : `${path}: the identity key was already encrypted (the passphrase opens it)`,
    });
  }
}

/** Erases the prompt the screen drew after the last output (the cursor stays on that empty line). */
const NO_PROMPT = "\r\x1b[K";

/** Loads the client's files and runs it until it ends; resolves to the exit code. */
async function runPrepared(
  o: ClientOptions,
  emit: (ev: ClientEvent) => void,
  tty: TerminalInput | undefined,
): Promise<number> {
  let client: ChatClient;
  const input: { pump?: Promise<void> } = {};
  try {
    if (o.encryptKey) {
      await encryptKey(o, emit);
      if (!o.json) writeStdout(NO_PROMPT);
      return EXIT.ok;
    }
    if (o.serve) {
      const d = await loadFiles(o);
      // Written without blocking: a slow API reader must not stop every
      // conversation (clients/ui.ts queuedSink); its backlog is bounded by
      // the service (OUTPUT_BACKLOG_MAX: relay frames wait unread past it).
      const stdout = queuedSink((b) => Deno.stdout.write(b));
      const out = bufferedWriter(stdout.sink);
      try {
        return await runService(o, {
          ...d,
          writeLine: (line) => out.write(line + "\n"),
          lines: out,
          outputBacklog: () => stdout.pending,
          onOutputWritten: (listener) => stdout.onWritten = listener,
        }, Deno.stdin.readable);
      } finally {
        out.flush();
        await stdout.drained();
      }
    }
    client = await prepareClient(o, emit, () => drainStdin(input.pump));
  } catch (e) {
    const code = typeof (e as Error).cause === "number"
      ? (e as Error).cause as number
      : EXIT.other;
    emit({
      type: "error",
      code: code === EXIT.relay
        ? "pin-mismatch"
        : e instanceof ProtocolError
        ? e.code
        : "setup",
      // A ProtocolError's message starts with its code: shown once.
      message: e instanceof ProtocolError
        ? e.message.slice(e.code.length + 2)
        : (e as Error).message,
    });
    if (!o.json) writeStdout(NO_PROMPT); // the program ends: no `> ` after its last words
    return code;
  }
  // SIGINT (Ctrl-C), SIGTERM (systemd, Docker, Kubernetes) and SIGHUP (the
  // terminal went away) all close cleanly: flush, acknowledge, report.
  let interrupts = 0;
  const onSignal = (sig: Deno.Signal) =>
    client.quit(
      ++interrupts > 1 ? `${SIGNAL_NAMES[sig]} twice` : SIGNAL_NAMES[sig],
    );
  const listeners = CLOSE_SIGNALS.map((sig) => {
    const fn = () => onSignal(sig);
    Deno.addSignalListener(sig, fn);
    return [sig, fn] as const;
  });
  const running = client.run();
  input.pump = tty
    ? tty.pump(client, () => onSignal("SIGINT"))
    : pumpStdin(client);
  const code = await running;
  for (const [sig, fn] of listeners) Deno.removeSignalListener(sig, fn);
  return code;
}

/** Signals that close the conversation cleanly, like /quit. */
const CLOSE_SIGNALS: Deno.Signal[] = ["SIGINT", "SIGTERM", "SIGHUP"];
const SIGNAL_NAMES: Record<string, string> = {
  SIGINT: "interrupted",
  SIGTERM: "terminated (SIGTERM)",
  SIGHUP: "hung up (SIGHUP)",
};

/** How long input still arriving after the conversation ended is read (to report it as not sent). */
const DRAIN_MS = 1000;

/** Waits until the stdin `pump` has reached EOF, at most {@link DRAIN_MS}; a terminal is not drained. */
async function drainStdin(pump: Promise<void> | undefined): Promise<void> {
  if (!pump || Deno.stdin.isTerminal()) return;
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    pump,
    new Promise<void>((r) => timer = setTimeout(r, DRAIN_MS)),
  ]);
  clearTimeout(timer);
}
