/**
 * Command-line flags of the bank and customer clients, their defaults per
 * role, the usage text, and the up-front permission check that turns a path
 * outside the granted folders into a clear message naming the flag to add.
 * @module
 */

import { parseSuiteList } from "../lib/suite.ts";
import { parseArgs } from "node:util";
import { parseFingerprint } from "../lib/fingerprint.ts";
import {
  parseCaPin,
  parsePeerAddress,
  type PeerAddress,
} from "../lib/address.ts";

/** The two roles of the demo application. */
export type Role = "bank" | "customer";

/** Exit codes (documented in the README). */
export const EXIT = {
  /** Clean close. */
  ok: 0,
  /** Anything else (I/O error, replaced registration, close timeout). */
  other: 1,
  /** Bad flags or a path the permissions do not cover. */
  usage: 2,
  /** Relay unreachable, TLS failure, or CA pin mismatch. */
  relay: 3,
  /** The handshake failed (bad signature, malformed, …). */
  handshake: 4,
  /** The peer's identity key changed: refused. */
  trust: 5,
  /** The peer never arrived within `--wait` seconds. */
  noPeer: 6,
  /** The conversation ended, but some input was not delivered (each one named in an event). */
  undelivered: 7,
} as const;

/** Default relay URL. */
export const DEFAULT_RELAY = "wss://localhost:8765/ws";
/** Default CA certificate file. */
export const DEFAULT_CA = "certs/ca.pem";
/** Default cover traffic rate (DUMMY packets/s): low, constant background noise. */
export const DEFAULT_COVER_RATE = 0.5;
/** Default time to wait for the peer (s); 0 = forever. */
export const DEFAULT_WAIT_S = 300;
/** Default bound of the outbox (messages waiting while the peer is away). */
export const DEFAULT_OUTBOX = 1000;
/** Default time allowed for a clean close (s). */
export const DEFAULT_CLOSE_TIMEOUT_S = 30;
/** Default time to keep trying to reach a relay that went away (s). */
export const DEFAULT_RECONNECT_S = 300;
/**
 * Default time after which a sent message still not acknowledged is reported
 * as `undelivered` (s): far above the retransmission schedule's first rounds
 * (1.5 s, 3 s, 6 s, 12 s), so only a relay or network that keeps losing it
 * (or drops it on purpose) triggers it.
 */
export const DEFAULT_DELIVER_TIMEOUT_S = 30;

/** Everything a client run needs, after parsing and validation. */
export interface ClientOptions {
  /** Our role (file names, default peer name). */
  role: Role;
  /** Folder of identity, mailbox key and known peers files. */
  keysDir: string;
  /** Relay WebSocket URL. */
  relay: string;
  /** CA certificate file (PEM); undefined = system roots only. */
  caFile?: string;
  /** Pinned CA fingerprint (64 hex): trust only that CA. */
  pin?: string;
  /** Peer to contact (we initiate); undefined = wait for the peer. */
  peer?: PeerAddress;
  /** Name under which the peer is remembered in known_peers.json. */
  peerName: string;
  /** One JSON object per line instead of the terminal interface. */
  json: boolean;
  /** Bank service: any number of conversations, JSON-RPC on stdin/stdout (clients/serve.ts). */
  serve?: boolean;
  /** `--http HOST:PORT`: the service's JSON-RPC over HTTP + SSE events, on a loopback address. */
  http?: { hostname: string; port: number };
  /** Bearer token file of `--http` (created 0600 when missing). */
  tokenFile?: string;
  /** Cover traffic in DUMMY packets per second (0 = off). */
  coverRate: number;
  /** Seconds to wait for the peer (0 = forever). */
  waitS: number;
  /** Outbox bound. */
  outbox: number;
  /** Seconds allowed for a clean close. */
  closeTimeoutS: number;
  /** Seconds to keep reconnecting to a lost relay. */
  reconnectS: number;
  /** Seconds after which an unacknowledged sent message is reported `undelivered`. */
  deliverTimeoutS: number;
  /** Sign the message chain every N messages (1 = every message). */
  signEvery?: number;
  /** File whose first line is the identity key's passphrase (encrypts a new key, decrypts an existing one). */
  passphraseFile?: string;
  /** Encrypt the existing unencrypted identity file with the passphrase, then exit. */
  encryptKey?: boolean;
  /** `--trust`: the one NEW peer fingerprint (64 lower-case hex) accepted in place of a recorded one. */
  trust?: string;
  /** Where the session's hash and AEAD run (see `--crypto`). */
  crypto: "keys" | "fast" | "webcrypto";
  /** Handshake suites, in preference order: offered when initiating, accepted when responding (`--suites`). */
  suites: number[];
  /** Scenario to run. */
  scenario?: "payment";
  /** Scripted answer to a payment request. */
  decision?: "approve" | "decline";
  /** Payment request fields (bank side of the scenario). */
  payment: {
    amount: string;
    currency: string;
    payee: string;
    reference: string;
  };
  /** The conversation's transcript file (appended to, every session). */
  transcript?: string;
}

// deno-lint-ignore no-control-regex
const CONTROL_RE = /[\u0000-\u001f\u007f]/;

/** `--suites` default: both, P-256 preferred (the identity existing clients already verified). */
export const DEFAULT_SUITES = "p256,x25519";

/** Validates `--suites`. */
function suitesOption(v: string | undefined): number[] {
  try {
    return parseSuiteList(v ?? DEFAULT_SUITES);
  } catch (e) {
    throw new UsageError(`--suites: ${(e as Error).message}`);
  }
}

/** Validates `--crypto`. */
function cryptoMode(v: string | undefined): ClientOptions["crypto"] {
  if (v === undefined) return "keys";
  if (v === "keys" || v === "fast" || v === "webcrypto") return v;
  throw new UsageError(`--crypto must be keys, fast or webcrypto (got '${v}')`);
}

/** The usage text for `role`. */
export function usage(role: Role): string {
  const other = role === "bank" ? "customer" : "bank";
  return `deno task ${role} [flags]   — end-to-end encrypted ${role} client

  --peer ID|ADDRESS      contact this peer (an address printed by the ${other}, or a bare ID)
                         and start the handshake; without it, wait for the peer. An
                         address's fp=/ed= (the bank service prints both) pin the peer's
                         P-256/Ed25519 keys: only those are accepted, and ed= offers x25519 first
  --peer-name NAME       display name of the peer (default ${other}); known_peers.json
                         keys peers by identity fingerprint, not by this name
  --keys DIR             folder of ${role}_identity_keys.json, ${role}_mailbox_key.json and
                         known_peers.json (default .)
  --relay URL            relay (default ${DEFAULT_RELAY}; taken from --peer ADDRESS if given)
  --ca FILE              CA certificate of the relay (default ${DEFAULT_CA})
  --pin SHA256           trust ONLY the CA with this certificate fingerprint (an address's
                         ca=… part pins too); the --ca file must hold that CA (a bundle
                         may: only the pinned certificate in it is trusted)
  --serve                service mode (bank): serve any number of customers in one process,
                         JSON-RPC 2.0 on stdin/stdout, one object per line (see README,
                         "Bank service"); --transcript is then a folder (one file per peer)
  --http HOST:PORT       with --serve: the same methods over HTTP on a loopback address
                         (POST /rpc, GET /events as Server-Sent Events), bearer token
                         required; stdin is then not read (stop with SIGTERM)
  --token-file FILE      bearer token of --http (default <keys>/api_token; created 0600)
  --json                 scriptable mode: JSON lines on stdout, stdin lines are messages
                         (also when stdin is not a terminal)
  --cover-rate N         cover traffic, dummy packets per second (default ${DEFAULT_COVER_RATE}; 0 = off)
  --wait S               give up when the peer has not arrived after S seconds
                         (default ${DEFAULT_WAIT_S}; 0 = forever)
  --outbox N             messages kept while the peer is away (default ${DEFAULT_OUTBOX})
  --sign-every N         sign the message chain every N messages (default 64; under load
                         signatures are at least 10 ms apart, at most 255 messages unsigned;
                         else within 1 s, a burst after a quiet second by its last message)
  --passphrase-file F    protect the identity key with the passphrase on F's first line
                         (PBKDF2-SHA256 600k + AES-256-GCM); needed to load a protected key
                         (interactive on a terminal: asked for, not echoed, when missing);
                         an existing unencrypted key file is refused (see --encrypt-key)
  --encrypt-key          encrypt the existing unencrypted identity key file with the
                         --passphrase-file passphrase (atomic rewrite, 0600), then exit
  --crypto MODE          keys (default): SHA-256 via node:crypto, AES-GCM in WebCrypto with
                         non-extractable keys; fast: AES-GCM via node:crypto too (less CPU per record,
                         keys in node:crypto KeyObjects, exportable in-process); keys and fast run the
                         handshake's HKDF/HMAC/AES-GCM, X25519, Ed25519 and chain signatures in node:crypto (handshake
                         keys as raw bytes until it ends, zeroed); webcrypto: WebCrypto only
  --suites LIST          handshake suites in preference order, comma-separated (default
                         ${DEFAULT_SUITES}): p256 = ECDH/ECDSA P-256, x25519 = X25519 + Ed25519
                         (~6x cheaper handshakes); initiating, offer them; answering, accept
                         only them (a --peer address with ed= puts x25519 first). x25519 uses a
                         second identity, ${role}_identity_ed25519_keys.json
  --close-timeout S      time allowed to flush and close (default ${DEFAULT_CLOSE_TIMEOUT_S})
  --reconnect-timeout S  time to keep reconnecting to a lost relay, or retrying a full one
                         (HTTP 503) at start (default ${DEFAULT_RECONNECT_S})
  --deliver-timeout S    report a sent message still unacknowledged after S seconds as
                         undelivered (error event; retries go on) (default ${DEFAULT_DELIVER_TIMEOUT_S})
  --scenario payment     bank: send a signed payment request; customer: answer it
  --approve | --decline  customer's scripted answer to the payment request
  --amount A --currency C --payee P --reference R   the bank's request
                         (default 125.00 EUR "ACME Supplies Ltd" INV-2026-1125)
  --trust FINGERPRINT    if the peer's identity key CHANGED, accept the new key when its
                         fingerprint is exactly FINGERPRINT (64 hex digits, spaces allowed;
                         compare it with the peer first); any other changed key is still
                         refused (exit 5). known_peers.json is updated, "verified" cleared
  --transcript FILE      keep the conversation's signed transcript in FILE:
                         every session appended as it happens, never
                         rewritten (check it with deno task verify-transcript FILE)
  -h, --help             this help

Interactive commands: /help  /verify  /trust  /status  /quit   (Ctrl-C closes cleanly)
Interactive editing: what you type stays on its line while messages arrive; Backspace,
            Delete, ← →, ↑ ↓ (earlier lines), Home/End (Ctrl-A/E), Ctrl-U/K/W;
            Ctrl-D on an empty line ends input
Exit codes: 0 clean close, 1 other error, 2 usage, 3 relay unreachable / TLS / pin failure,
            4 handshake failure, 5 peer identity changed (refused), 6 peer never arrived,
            7 ended with input not delivered (each message named)

Without --peer, an interactive client asks for the peer: paste its ID or address and press
Enter to contact it, or wait to be contacted. SIGTERM and SIGHUP close like Ctrl-C.`;
}

/** A usage problem: the message is printed with a pointer to --help, exit 2. */
export class UsageError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

function num(
  name: string,
  v: string | undefined,
  fallback: number,
  min: number,
  integer = false,
): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) {
    throw new UsageError(
      `--${name} must be ${
        integer ? "an integer" : "a number"
      } ≥ ${min} (got '${v}')`,
    );
  }
  return n;
}

/** Parses the flags of `role`; returns undefined for --help. Throws {@link UsageError}. */
export function parseClientArgs(
  role: Role,
  args: string[],
): ClientOptions | undefined {
  let v;
  try {
    v = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        peer: { type: "string" },
        "peer-name": { type: "string" },
        keys: { type: "string" },
        relay: { type: "string" },
        ca: { type: "string" },
        pin: { type: "string" },
        json: { type: "boolean" },
        serve: { type: "boolean" },
        http: { type: "string" },
        "token-file": { type: "string" },
        "cover-rate": { type: "string" },
        wait: { type: "string" },
        outbox: { type: "string" },
        "sign-every": { type: "string" },
        crypto: { type: "string" },
        suites: { type: "string" },
        "passphrase-file": { type: "string" },
        "encrypt-key": { type: "boolean" },
        "close-timeout": { type: "string" },
        "reconnect-timeout": { type: "string" },
        "deliver-timeout": { type: "string" },
        scenario: { type: "string" },
        approve: { type: "boolean" },
        decline: { type: "boolean" },
        amount: { type: "string" },
        currency: { type: "string" },
        payee: { type: "string" },
        reference: { type: "string" },
        transcript: { type: "string" },
        trust: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }).values;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (v.help) return undefined;
  let peer: PeerAddress | undefined;
  if (v.peer !== undefined) {
    try {
      peer = parsePeerAddress(v.peer);
    } catch (e) {
      throw new UsageError(`--peer: ${(e as Error).message}`);
    }
  }
  let pin: string | undefined;
  if (v.pin !== undefined) {
    try {
      pin = parseCaPin(v.pin);
    } catch (e) {
      throw new UsageError(`--pin: ${(e as Error).message}`);
    }
  }
  if (peer?.ca !== undefined) {
    if (pin !== undefined && pin !== peer.ca) {
      throw new UsageError(
        "--pin differs from the ca=… pin in the --peer address",
      );
    }
    pin = peer.ca;
  }
  let relay = v.relay ?? peer?.relay ?? DEFAULT_RELAY;
  if (v.relay !== undefined && peer?.relay !== undefined) {
    if (new URL(v.relay).href !== new URL(peer.relay).href) {
      throw new UsageError(
        `--relay ${v.relay} differs from the relay in the --peer address (${peer.relay})`,
      );
    }
  }
  try {
    const u = new URL(relay);
    if (u.protocol !== "wss:") throw new Error();
    relay = u.href;
  } catch {
    throw new UsageError(`--relay must be a wss:// URL (got '${relay}')`);
  }
  if (v.scenario !== undefined && v.scenario !== "payment") {
    throw new UsageError(
      `--scenario: unknown scenario '${v.scenario}' (known: payment)`,
    );
  }
  if (v.serve && (v.peer !== undefined || v.scenario !== undefined)) {
    throw new UsageError(
      "--serve takes no --peer or --scenario (contact peers with the connect method)",
    );
  }
  if (v.serve && v.trust !== undefined) {
    throw new UsageError(
      "--serve takes no --trust (use the API's trust method)",
    );
  }
  let trust: string | undefined;
  if (v.trust !== undefined) {
    try {
      trust = parseFingerprint(v.trust);
    } catch (e) {
      throw new UsageError(`--trust: ${(e as Error).message}`);
    }
  }
  let http: { hostname: string; port: number } | undefined;
  if (v.http !== undefined) {
    if (!v.serve) throw new UsageError("--http needs --serve");
    const m = v.http.match(
      /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost|\[::1\]):(\d{1,5})$/,
    );
    const port = m ? Number(m[2]) : NaN;
    if (!m || port < 1 || port > 65535) {
      throw new UsageError(
        `--http: expected a loopback HOST:PORT such as 127.0.0.1:8780 (got '${v.http}'); the API is never exposed beyond this host`,
      );
    }
    http = { hostname: m[1] === "[::1]" ? "::1" : m[1], port };
  }
  if (v["token-file"] !== undefined && http === undefined) {
    throw new UsageError("--token-file needs --http");
  }
  if (v.approve && v.decline) {
    throw new UsageError("give --approve or --decline, not both");
  }
  if (v["encrypt-key"] && v["passphrase-file"] === undefined) {
    throw new UsageError("--encrypt-key needs --passphrase-file");
  }
  const peerName = v["peer-name"] ?? (role === "bank" ? "customer" : "bank");
  if (
    peerName.length === 0 || peerName.length > 256 ||
    CONTROL_RE.test(peerName)
  ) {
    throw new UsageError("--peer-name must be 1..256 printable characters");
  }
  return {
    role,
    keysDir: (v.keys ?? ".").replace(/(.)\/+$/, "$1"),
    relay,
    caFile: v.ca ?? DEFAULT_CA,
    pin,
    peer,
    peerName,
    json: (v.json || v.serve) ?? false,
    serve: v.serve ?? false,
    http,
    tokenFile: http === undefined ? undefined : v["token-file"] ??
      `${(v.keys ?? ".").replace(/(.)\/+$/, "$1")}/api_token`,
    coverRate: num("cover-rate", v["cover-rate"], DEFAULT_COVER_RATE, 0),
    waitS: num("wait", v.wait, DEFAULT_WAIT_S, 0),
    outbox: num("outbox", v.outbox, DEFAULT_OUTBOX, 1, true),
    closeTimeoutS: num(
      "close-timeout",
      v["close-timeout"],
      DEFAULT_CLOSE_TIMEOUT_S,
      1,
    ),
    reconnectS: num(
      "reconnect-timeout",
      v["reconnect-timeout"],
      DEFAULT_RECONNECT_S,
      1,
    ),
    deliverTimeoutS: num(
      "deliver-timeout",
      v["deliver-timeout"],
      DEFAULT_DELIVER_TIMEOUT_S,
      0.1,
    ),
    signEvery: v["sign-every"] === undefined
      ? undefined
      : num("sign-every", v["sign-every"], 64, 1, true),
    crypto: cryptoMode(v.crypto),
    suites: suitesOption(v.suites),
    passphraseFile: v["passphrase-file"],
    encryptKey: v["encrypt-key"] ?? false,
    trust,
    scenario: v.scenario as "payment" | undefined,
    decision: v.approve ? "approve" : v.decline ? "decline" : undefined,
    payment: {
      amount: v.amount ?? "125.00",
      currency: v.currency ?? "EUR",
      payee: v.payee ?? "ACME Supplies Ltd",
      reference: v.reference ?? "INV-2026-1125",
    },
    transcript: v.transcript,
  };
}

/**
 * Checks, without prompting, that the permissions cover the files this run
 * touches; returns a message naming the missing flag, or undefined.
 */
export function checkPathPermissions(o: ClientOptions): string | undefined {
  const needs: [("read" | "write"), string, string][] = [
    ["read", o.keysDir, "--keys"],
    ["write", o.keysDir, "--keys"],
  ];
  if (o.caFile !== undefined) needs.push(["read", o.caFile, "--ca"]);
  if (o.passphraseFile !== undefined) {
    needs.push(["read", o.passphraseFile, "--passphrase-file"]);
  }
  if (o.tokenFile !== undefined) {
    needs.push(["read", o.tokenFile, "--token-file"]);
    needs.push(["write", o.tokenFile, "--token-file"]);
  }
  if (o.transcript !== undefined && o.serve) {
    needs.push(["read", o.transcript, "--transcript"]); // a folder
    needs.push(["write", o.transcript, "--transcript"]);
  } else if (o.transcript !== undefined) {
    // Appended to, so read too (an existing file is checked and continued).
    needs.push(["read", o.transcript, "--transcript"]);
    needs.push(["write", o.transcript, "--transcript"]);
    needs.push(["write", parentDir(o.transcript), "--transcript"]);
  }
  for (const [name, path, flag] of needs) {
    if (Deno.permissions.querySync({ name, path }).state !== "granted") {
      const dir = flag === "--transcript" ? parentDir(path) : path;
      const read = name === "read" ? `.,${dir}` : ".";
      const write = name === "write" ? `.,${dir}` : ".";
      return `${flag} ${path}: this client may not ${name} there. The task only grants the ` +
        `current folder; run it with deno run and add --allow-${name}=${dir}, e.g.\n  ` +
        `deno run --no-prompt --allow-net=localhost,127.0.0.1 --allow-read=${read} ` +
        `--allow-write=${write} clients/${o.role}.ts …`;
    }
  }
  return undefined;
}

function parentDir(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "." : i === 0 ? "/" : path.slice(0, i);
}
