/**
 * `deno task bank --serve --json`: one process serving any number of
 * conversations (customers that run `deno task customer --peer <address>`,
 * and peers it contacts with `connect`), driven by JSON-RPC 2.0 over
 * stdin/stdout, one object per line (clients/rpc.ts has the methods).
 * Requests are answered in the order they complete, each exactly once;
 * events go out as notifications naming their peer. SIGTERM, SIGINT or the
 * end of stdin close every conversation cleanly (flush, acknowledge, finish
 * the transcripts), then the process exits 0.
 * @module
 */

import { formatAddress } from "../lib/address.ts";
import { formatSessionId } from "../lib/registration.ts";
import { SUITE_X25519 } from "../lib/suite.ts";
import type { ClientOptions } from "./args.ts";
import { EXIT } from "./args.ts";
import { connectErrorCode, PRIMITIVES, startRetryingWhenFull } from "./chat.ts";
import type { ClientDeps } from "./chat.ts";
import { type ClientEvent, Engine } from "./engine.ts";
import { MAX_RPC_LINE, RpcDispatcher } from "./rpc.ts";
import { type HttpApi, loadOrCreateToken, startHttpApi } from "./serve_http.ts";
import {
  type BufferedWriter,
  OUTPUT_BACKLOG_MAX,
  OUTPUT_BACKLOG_RESUME,
} from "./ui.ts";

/** What {@link runService} needs besides the options: loaded files and I/O. */
export type ServiceDeps =
  & Omit<ClientDeps, "emit" | "address">
  & {
    /** Writes one line (a response or notification) to the API's output. */
    writeLine: (line: string) => void;
    /**
     * The writer behind `writeLine`, if it is one: the per-message
     * notifications are then built in its buffer as bytes
     * ({@link RpcDispatcher.writeNotification}; not with `--http`, whose
     * event stream needs each line as a string too).
     */
    lines?: BufferedWriter;
    /** Bytes of API output waiting for its reader (undefined: the output never waits). */
    outputBacklog?: () => number;
    /** Registers the call made whenever the output backlog went down (with {@link outputBacklog}). */
    onOutputWritten?: (listener: () => void) => void;
    /** The CA pin to put in our address (undefined = none). */
    caFingerprint?: string;
  };

/** Runs the service until a signal or the end of stdin; resolves to the exit code. */
export async function runService(
  o: ClientOptions,
  d: ServiceDeps,
  input: ReadableStream<Uint8Array>,
): Promise<number> {
  let rpc: RpcDispatcher | undefined;
  const early: ClientEvent[] = [];
  const fatal = Promise.withResolvers<number>();
  let http: HttpApi | undefined;
  const emit = (ev: ClientEvent) => {
    if (!rpc) return void early.push(ev);
    if (!http && d.lines && rpc.writeNotification(ev, d.lines)) return;
    const line = rpc.notificationLine(ev);
    d.writeLine(line);
    http?.broadcast(line);
  };
  const engine: Engine = new Engine({
    role: o.role,
    identity: d.identity,
    identities: d.identities,
    suites: o.suites,
    knownPeers: d.knownPeers,
    knownPeersPath: d.knownPeersPath,
    connect: d.connect,
    // The service's address names its identities (fp= P-256; ed= Ed25519,
    // when it accepts suite x25519): a customer following it trusts only
    // these keys, and offers x25519 first (PROTOCOL.md §1.3).
    address: (id) =>
      formatAddress(
        o.relay,
        id,
        d.caFingerprint,
        engine.fingerprint,
        o.suites.includes(SUITE_X25519) ? engine.ed25519Fingerprint : undefined,
      ),
    // Known peers by relay ID: every customer is its own entry.
    peerName: (id) => formatSessionId(id),
    accept: () => true,
    sessionOptions: {
      coverRate: o.coverRate,
      signEvery: o.signEvery,
      primitives: PRIMITIVES[o.crypto],
    },
    outbox: o.outbox,
    deliverTimeoutMs: o.deliverTimeoutS * 1000,
    closeTimeoutMs: o.closeTimeoutS * 1000,
    reconnectMs: o.reconnectS * 1000,
    transcriptPath: o.transcript === undefined
      ? undefined
      : (id) => `${o.transcript}/${formatSessionId(id)}.jsonl`,
    emit,
    onFatal: (kind, message) => {
      emit({ type: "error", code: kind, message });
      fatal.resolve(kind === "replaced" ? EXIT.other : EXIT.relay);
    },
    now: d.now,
    // A reader far behind: relay frames wait unread (bounded), taken again as it catches up.
    ...(d.outputBacklog ? { admit: outputGate(d.outputBacklog) } : {}),
  });
  d.onOutputWritten?.(() => engine.resume());
  if (o.transcript !== undefined) {
    await Deno.mkdir(o.transcript, { recursive: true, mode: 0o700 });
  }
  // Written at once (emit holds events until the service has started).
  const emitNow = (ev: ClientEvent) =>
    d.writeLine(new RpcDispatcher(engine).notificationLine(ev));
  // A full relay (HTTP 503) is retried with backoff; a signal meanwhile stops.
  const earlyStop = Promise.withResolvers<void>();
  const onEarlySignal = () => earlyStop.resolve();
  for (const sig of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(sig, onEarlySignal);
  }
  const started = await startRetryingWhenFull(() => engine.start(), {
    reconnectMs: o.reconnectS * 1000,
    now: d.now ?? Date.now,
    notice: (text) => emitNow({ type: "notice", text }),
    stopped: earlyStop.promise,
  });
  for (const sig of ["SIGTERM", "SIGINT"] as const) {
    Deno.removeSignalListener(sig, onEarlySignal);
  }
  if (started === "stopped") {
    await engine.stop();
    emitNow({ type: "closed", reason: "stopped" });
    return EXIT.ok;
  }
  if (started !== "started") {
    rpc = new RpcDispatcher(engine);
    emit({
      type: "error",
      code: connectErrorCode(started),
      message: (started as Error).message,
    });
    return EXIT.relay;
  }
  rpc = new RpcDispatcher(engine);
  if (o.http) {
    try {
      const token = await loadOrCreateToken(o.tokenFile!);
      http = await startHttpApi({
        ...o.http,
        token,
        handle: (request) => rpc!.handleLine(request),
      });
    } catch (e) {
      emit({
        type: "error",
        code: "http",
        message: `--http ${o.http.hostname}:${o.http.port}: ${
          (e as Error).message
        }`,
      });
      await engine.stop();
      return EXIT.usage;
    }
    emit({
      type: "notice",
      text: `HTTP API on http://${
        o.http.hostname.includes(":") ? `[${o.http.hostname}]` : o.http.hostname
      }:${http.port} (POST /rpc, GET /events; bearer token in ${o.tokenFile})`,
    });
  }
  for (const ev of early.splice(0)) emit(ev);

  const stop = Promise.withResolvers<void>();
  const onSignal = () => stop.resolve();
  for (const sig of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(sig, onSignal);
  }
  // With --http the API is the HTTP one: the end of stdin (a daemon's
  // /dev/null) does not stop the service, a signal does.
  const reading = o.http ? Promise.resolve() : readLines(input, (line) => {
    rpc!.handleLine(line).then((res) => res && d.writeLine(res));
  }).then(() => stop.resolve());
  const code = await Promise.race([
    stop.promise.then(() => EXIT.ok),
    fatal.promise,
  ]);
  rpc.stopping();
  await engine.stop();
  for (const sig of ["SIGTERM", "SIGINT"] as const) {
    Deno.removeSignalListener(sig, onSignal);
  }
  emit({ type: "closed", reason: code === EXIT.ok ? "stopped" : "failed" });
  await http?.close();
  void reading;
  return code;
}

/**
 * Whether the service takes relay frames now, given its API output backlog:
 * no from `max` bytes waiting on, yes again once the reader brought it down
 * to `resumeAt` (hysteresis: no switching per written chunk). Frames not
 * taken wait in the engine (clients/engine.ts `admit`, `resume`).
 */
export function outputGate(
  backlog: () => number,
  max = OUTPUT_BACKLOG_MAX,
  resumeAt = OUTPUT_BACKLOG_RESUME,
): () => boolean {
  let holding = false;
  return () => {
    const n = backlog();
    if (n >= max) holding = true;
    else if (n <= resumeAt) holding = false;
    return !holding;
  };
}

/** Calls `onLine` per line of `input` (without its `\n` / `\r\n`); resolves at the end. */
async function readLines(
  input: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  const decoder = new TextDecoder();
  let rest = "";
  let skipping = false;
  try {
    for await (const chunk of input) {
      rest += decoder.decode(chunk, { stream: true });
      let i;
      while ((i = rest.indexOf("\n")) >= 0) {
        const line = rest.slice(0, i).replace(/\r$/, "");
        rest = rest.slice(i + 1);
        if (skipping) skipping = false; // the rest of an oversized line
        else if (line.trim() !== "") onLine(line);
      }
      if (rest.length > MAX_RPC_LINE && !skipping) {
        // An endless line must not grow without bound: answered as too long, then skipped to its end.
        onLine(rest);
        rest = "";
        skipping = true;
      } else if (skipping) rest = "";
    }
  } catch {
    // stdin closed under us: the end
  }
  if (rest.trim() !== "") onLine(rest);
}
