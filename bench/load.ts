/**
 * The load generator: raw TLS WebSocket clients that register the way the
 * relay requires (CHALLENGE → REGISTER signed with a fresh Ed25519 mailbox
 * key → REGISTERED) and then run closed-loop sender/receiver pairs. Every
 * DATA frame carries its send time; the receiver's arrival sends the next
 * frame, so each pair keeps exactly `inFlight` frames in flight. Every loop
 * is bounded in time. Works unchanged against the relay and the baseline.
 * @module
 */

import { RELAY_SUBPROTOCOL } from "../lib/constants.ts";
import { encodeRegister, FrameType } from "../lib/relay_frame.ts";
import {
  type MailboxKey,
  sessionIdOf,
  signRegistration,
} from "../lib/registration.ts";

/** Relay DATA header length: version, type, peer ID (16), frame number u32. */
const HEADER = 22;
/** Offset of the send timestamp (float64, ms from performance.now) in a bench frame. */
const STAMP_AT = HEADER;
/** Smallest bench frame: header plus the timestamp. */
export const MIN_FRAME = HEADER + 8;
/** Latency samples kept per run (a bounded reservoir; beyond it samples are replaced at random). */
const MAX_SAMPLES = 200_000;
/** Time allowed to connect and register one client. */
const CONNECT_TIMEOUT_MS = 15000;
/** Time allowed for in-flight frames to drain after a run. */
const DRAIN_TIMEOUT_MS = 3000;

/** A registered bench client. */
export interface BenchClient {
  /** The socket. */
  ws: WebSocket;
  /** Bound session ID. */
  id: Uint8Array;
  /** Closes the socket and waits for the close event. */
  close(): Promise<void>;
}

/** A fresh Ed25519 mailbox key (lighter than generateMailboxKey: nothing to persist). */
async function freshMailbox(): Promise<MailboxKey> {
  const pair = await crypto.subtle.generateKey("Ed25519", false, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const publicRaw = new Uint8Array(
    await crypto.subtle.exportKey("raw", pair.publicKey),
  );
  return {
    privateKey: pair.privateKey,
    publicRaw,
    id: await sessionIdOf(publicRaw),
  };
}

/** Opens one client and registers it. */
export async function connectClient(
  url: string,
  httpClient: Deno.HttpClient,
): Promise<BenchClient> {
  const mailbox = await freshMailbox();
  const origin = `wss://${new URL(url).host}`;
  const ws = new WebSocket(url, {
    protocols: [RELAY_SUBPROTOCOL],
    client: httpClient,
  });
  ws.binaryType = "arraybuffer";
  const closed = new Promise<void>((r) => {
    ws.addEventListener("close", () => r());
  });
  ws.onerror = () => {};
  const id = await new Promise<Uint8Array>((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.close();
      reject(new Error("registration timed out"));
    }, CONNECT_TIMEOUT_MS);
    ws.onclose = (ev) => {
      clearTimeout(timer);
      reject(new Error(`closed during registration: ${ev.code} ${ev.reason}`));
    };
    ws.onmessage = async (ev) => {
      const f = new Uint8Array(ev.data as ArrayBuffer);
      if (f[1] === FrameType.CHALLENGE) {
        const sig = await signRegistration(mailbox, origin, f.slice(2, 34));
        ws.send(encodeRegister(mailbox.publicRaw, sig));
      } else if (f[1] === FrameType.REGISTERED) {
        clearTimeout(timer);
        resolve(f.slice(2, 18));
      } else {
        clearTimeout(timer);
        ws.close();
        reject(new Error(`unexpected frame type ${f[1]} while registering`));
      }
    };
  });
  ws.onclose = null;
  ws.onmessage = null;
  return {
    ws,
    id,
    async close() {
      if (ws.readyState <= WebSocket.OPEN) ws.close();
      await closed;
    },
  };
}

/** Opens `n` registered clients, `concurrency` at a time; closes them all if one fails. */
export async function connectMany(
  url: string,
  httpClient: Deno.HttpClient,
  n: number,
  concurrency = 64,
): Promise<BenchClient[]> {
  const out: BenchClient[] = [];
  let next = 0;
  let failure: unknown;
  const worker = async () => {
    while (next < n && failure === undefined) {
      next++;
      try {
        out.push(await connectClient(url, httpClient));
      } catch (e) {
        failure ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  if (failure !== undefined) {
    await closeAll(out);
    throw failure;
  }
  return out;
}

/** Closes every client. */
export async function closeAll(clients: BenchClient[]): Promise<void> {
  await Promise.all(clients.map((c) => c.close()));
}

/** What a closed-loop run measured. */
export interface LoadResult {
  /** Frames delivered inside the measured window. */
  delivered: number;
  /** Length of the measured window (ms). */
  elapsedMs: number;
  /** Delivered frames per second. */
  msgsPerSec: number;
  /** Delivered megabytes (10^6 bytes of whole frames) per second. */
  mbPerSec: number;
  /** Latency percentiles (ms) over frames delivered in the window. */
  p50Ms: number;
  /** 99th percentile latency (ms). */
  p99Ms: number;
  /** Largest latency seen in the window (ms). */
  maxMs: number;
  /** ERROR frames the senders received (refused frames; each was replaced). */
  errors: number;
}

/** Options of {@link runPairs}. */
export interface RunPairsOptions {
  /** Sender/receiver pairs: clients[2i] sends to clients[2i+1]. */
  clients: BenchClient[];
  /** Whole frame size in bytes, header included. */
  size: number;
  /** Frames in flight per pair. */
  inFlight: number;
  /** Unmeasured warm-up (ms). */
  warmupMs: number;
  /** Measured window (ms). */
  measureMs: number;
  /** Called at the start and end of the measured window (e.g. to read server CPU). */
  onWindow?: (edge: "start" | "end") => Promise<void> | void;
}

/** Runs closed-loop pairs for warm-up + window, then drains; bounded in time. */
export async function runPairs(opts: RunPairsOptions): Promise<LoadResult> {
  const { clients, size, inFlight } = opts;
  if (size < MIN_FRAME) throw new RangeError(`frame size below ${MIN_FRAME}`);
  const pairs = clients.length / 2;
  let sending = true;
  let measuring = false;
  let delivered = 0;
  let errors = 0;
  let outstanding = 0;
  let seen = 0;
  let maxMs = 0;
  const samples = new Float64Array(MAX_SAMPLES);
  let kept = 0;
  const record = (ms: number) => {
    seen++;
    if (ms > maxMs) maxMs = ms;
    if (kept < MAX_SAMPLES) samples[kept++] = ms;
    else {
      const j = Math.floor(Math.random() * seen);
      if (j < MAX_SAMPLES) samples[j] = ms;
    }
  };
  let drainedResolve = () => {};
  for (let p = 0; p < pairs; p++) {
    const sender = clients[2 * p];
    const receiver = clients[2 * p + 1];
    const frame = new Uint8Array(size);
    const dv = new DataView(frame.buffer);
    frame[0] = 1;
    frame[1] = FrameType.DATA;
    frame.set(receiver.id, 2);
    let frameNo = 0;
    const send = () => {
      dv.setUint32(18, ++frameNo);
      dv.setFloat64(STAMP_AT, performance.now());
      outstanding++;
      sender.ws.send(frame); // the runtime copies the bytes: the buffer is reused
    };
    sender.ws.onmessage = (ev) => {
      const f = new Uint8Array(ev.data as ArrayBuffer);
      if (f[1] === FrameType.ERROR) {
        errors++;
        outstanding--;
        if (sending) send();
        else if (outstanding === 0) drainedResolve();
      }
    };
    receiver.ws.onmessage = (ev) => {
      const buf = ev.data as ArrayBuffer;
      const sent = new DataView(buf).getFloat64(STAMP_AT);
      outstanding--;
      if (measuring) {
        delivered++;
        record(performance.now() - sent);
      }
      if (sending) send();
      else if (outstanding === 0) drainedResolve();
    };
    for (let i = 0; i < inFlight; i++) send();
  }
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  await sleep(opts.warmupMs);
  await opts.onWindow?.("start");
  measuring = true;
  const t0 = performance.now();
  await sleep(opts.measureMs);
  measuring = false;
  const elapsedMs = performance.now() - t0;
  const counted = delivered;
  await opts.onWindow?.("end");
  sending = false;
  if (outstanding > 0) {
    const drained = new Promise<void>((r) => drainedResolve = r);
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      drained,
      new Promise((r) => timer = setTimeout(r, DRAIN_TIMEOUT_MS)),
    ]);
    clearTimeout(timer);
  }
  for (const c of clients) c.ws.onmessage = null;
  const sorted = samples.subarray(0, kept).sort();
  const pct = (q: number) =>
    kept === 0 ? 0 : sorted[Math.min(kept - 1, Math.floor(q * kept))];
  return {
    delivered: counted,
    elapsedMs,
    msgsPerSec: counted / (elapsedMs / 1000),
    mbPerSec: counted * size / (elapsedMs / 1000) / 1e6,
    p50Ms: pct(0.5),
    p99Ms: pct(0.99),
    maxMs,
    errors,
  };
}
