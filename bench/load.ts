/**
 * The load generator: TLS WebSocket clients that register the way the relay
 * requires (CHALLENGE → REGISTER signed with a fresh Ed25519 mailbox key →
 * REGISTERED) and then run closed-loop sender/receiver pairs. Every DATA
 * frame carries its send time; the receiver's arrival sends the next frame,
 * so each pair keeps exactly `inFlight` frames in flight. Every loop is
 * bounded in time. Works unchanged against the relay and the baseline.
 *
 * Two transports behind one {@link BenchClient}:
 * - Deno's built-in `WebSocket` ({@link connectClient}): cannot set
 *   `TCP_NODELAY`, so small frames meet Nagle/delayed-ACK stalls (~40 ms);
 * - our own client transport, `PinnedRelayConnection` from
 *   lib/deno/pinned_relay.ts ({@link connectOwnClient}): `TCP_NODELAY`, one
 *   write per task and an ack pong after reads.
 * @module
 */

import { RELAY_SUBPROTOCOL } from "../lib/constants.ts";
import { encodeRegister, type Frame, FrameType } from "../lib/relay_frame.ts";
import {
  type MailboxKey,
  sessionIdOf,
  signRegistration,
} from "../lib/registration.ts";
import { PinnedRelayConnection } from "../lib/deno/pinned_relay.ts";

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

/**
 * A registered bench client, whatever its transport.
 *
 * `onFrame` is called for every frame received after registration with the
 * frame's type byte (`FrameType.DATA`, `FrameType.ERROR`, …) and, for a DATA
 * frame at least {@link MIN_FRAME} bytes long, the float64 send stamp at
 * offset 22 (the first payload bytes; 0 otherwise).
 */
export interface BenchClient {
  /** Bound session ID. */
  id: Uint8Array;
  /**
   * Sends a whole relay frame (header included; the buffer may be reused as
   * soon as this returns). The own transport numbers frames itself: the
   * frame number at bytes 18..22 is ignored there.
   */
  send(frame: Uint8Array): void;
  /** Receives each frame's type byte and, for DATA, its send stamp. */
  onFrame: ((type: number, stamp: number) => void) | null;
  /** Closes the connection and waits until it is closed. */
  close(): Promise<void>;
}

/** How {@link connectMany} connects: the built-in WebSocket through an HttpClient, or our own transport pinned to a CA. */
export type BenchTransport = Deno.HttpClient | { caPem: string };

/** Scratch for reading a stamp without allocating (copied byte-wise: the source need not be aligned). */
const stampBytes = new Uint8Array(8);
const stampView = new DataView(stampBytes.buffer);

/** The float64 (big-endian, as DataView writes it) at `at` in `bytes`. */
function readStamp(bytes: Uint8Array, at: number): number {
  for (let i = 0; i < 8; i++) stampBytes[i] = bytes[at + i];
  return stampView.getFloat64(0);
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

/** Opens one client on Deno's built-in WebSocket and registers it. */
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
  const client: BenchClient = {
    id,
    send(frame) {
      ws.send(frame); // the runtime copies the bytes: the buffer is reused
    },
    onFrame: null,
    async close() {
      if (ws.readyState <= WebSocket.OPEN) ws.close();
      await closed;
    },
  };
  ws.onmessage = (ev) => {
    const on = client.onFrame;
    if (on === null) return;
    const f = new Uint8Array(ev.data as ArrayBuffer);
    on(
      f[1],
      f[1] === FrameType.DATA && f.length >= MIN_FRAME
        ? readStamp(f, STAMP_AT)
        : 0,
    );
  };
  return client;
}

/**
 * Opens one client on our own transport (`PinnedRelayConnection`: node:tls
 * pinned to `caPem`, `TCP_NODELAY`, ack pongs) and registers it.
 */
export async function connectOwnClient(
  url: string,
  caPem: string,
): Promise<BenchClient> {
  const conn = await PinnedRelayConnection.connect({
    url,
    mailbox: await freshMailbox(),
    caPem,
    timeoutMs: CONNECT_TIMEOUT_MS,
  });
  // The peer and payload views of the last frame sent: runPairs reuses one
  // buffer per pair, so they are made once, not per send.
  let last: Uint8Array | undefined;
  let peer: Uint8Array = new Uint8Array(0);
  let payload: Uint8Array = new Uint8Array(0);
  const client: BenchClient = {
    id: conn.id,
    send(frame) {
      if (frame !== last) {
        last = frame;
        peer = frame.subarray(2, 18);
        payload = frame.subarray(HEADER);
      }
      conn.send(peer, payload); // encodes into a new buffer: `frame` may be reused
    },
    onFrame: null,
    async close() {
      await conn.close();
    },
  };
  conn.onFrame = (f: Frame) => {
    const on = client.onFrame;
    if (on === null) return;
    if (f.type === "data") {
      on(
        FrameType.DATA,
        f.payload.length >= MIN_FRAME - HEADER ? readStamp(f.payload, 0) : 0,
      );
    } else if (f.type === "error") on(FrameType.ERROR, 0);
  };
  return client;
}

/**
 * Opens `n` registered clients, `concurrency` at a time; closes them all if
 * one fails. `via` picks the transport: an HttpClient for the built-in
 * WebSocket, `{ caPem }` for our own.
 */
export async function connectMany(
  url: string,
  via: BenchTransport,
  n: number,
  concurrency = 64,
): Promise<BenchClient[]> {
  const connect = () =>
    "caPem" in via ? connectOwnClient(url, via.caPem) : connectClient(url, via);
  const out: BenchClient[] = [];
  let next = 0;
  let failure: unknown;
  const worker = async () => {
    while (next < n && failure === undefined) {
      next++;
      try {
        out.push(await connect());
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
  /**
   * With `probeLoop`: the load generator's own longest event-loop gap in the
   * window (ms; a 1 ms interval timer that ran late), and the longest such gap
   * that overlapped the slowest frame's flight (0: none did). A gap is time
   * this process did not run: every frame in flight then waits for it,
   * whatever the server does.
   */
  loopGapMaxMs?: number;
  maxFrameLoopGapMs?: number;
}

/** Gaps longer than this (ms) between 1 ms probe ticks are kept. */
export const LOOP_GAP_MIN_MS = 2;
/** At most this many gaps are kept for {@link LoopGaps.longestOverlapping}; later ones count in `max` only. */
const LOOP_GAPS_KEPT = 10_000;

/**
 * The event-loop gaps a 1 ms interval timer sees: each tick's distance from
 * the previous one, kept when longer than {@link LOOP_GAP_MIN_MS}.
 */
export class LoopGaps {
  #last: number;
  #gaps: [start: number, length: number][] = [];
  #max = 0;
  constructor(now: number) {
    this.#last = now;
  }
  /** One probe tick at `now` (ms). */
  tick(now: number): void {
    const gap = now - this.#last;
    this.#last = now;
    if (gap > this.#max) this.#max = gap;
    if (gap > LOOP_GAP_MIN_MS && this.#gaps.length < LOOP_GAPS_KEPT) {
      this.#gaps.push([now - gap, gap]);
    }
  }
  /** Longest gap seen (ms). */
  get max(): number {
    return this.#max;
  }
  /** Longest kept gap that overlaps [from, to] (ms), 0 if none. */
  longestOverlapping(from: number, to: number): number {
    let best = 0;
    for (const [start, length] of this.#gaps) {
      if (start < to && start + length > from && length > best) best = length;
    }
    return best;
  }
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
  /** Measured window (ms); longer on a starved machine, see {@link WINDOW_MAX_FACTOR}. */
  measureMs: number;
  /** Called at the start and end of the measured window (e.g. to read server CPU). */
  onWindow?: (edge: "start" | "end") => Promise<void> | void;
  /** Watch this process's own event loop in the window (see {@link LoadResult.loopGapMaxMs}). */
  probeLoop?: boolean;
}

/**
 * The measured window lasts until every pair's in-flight frames have come
 * back at least once on average (pairs × inFlight deliveries), at most this
 * many times `measureMs` (and at least {@link WINDOW_MAX_MIN_MS}). On a
 * loaded machine a short window could otherwise end before the first frame
 * came through the pipeline (P=10 × 32 × 4 KiB took > 600 ms per round trip
 * at load 26 on 2 cores) and report 0 msgs/s; the rate is still deliveries
 * over the window's real length. A stall longer than the cap still shows 0.
 */
export const WINDOW_MAX_FACTOR = 20;
/** Lower bound of the window's cap (ms), see {@link WINDOW_MAX_FACTOR}. */
export const WINDOW_MAX_MIN_MS = 10_000;

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
  let maxSentAt = 0;
  const samples = new Float64Array(MAX_SAMPLES);
  let kept = 0;
  const record = (ms: number) => {
    seen++;
    if (ms > maxMs) {
      maxMs = ms;
      maxSentAt = performance.now() - ms;
    }
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
      sender.send(frame); // both transports copy the bytes: the buffer is reused
    };
    sender.onFrame = (type) => {
      if (type === FrameType.ERROR) {
        errors++;
        outstanding--;
        if (sending) send();
        else if (outstanding === 0) drainedResolve();
      }
    };
    receiver.onFrame = (type, sent) => {
      if (type !== FrameType.DATA) return;
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
  const gaps = opts.probeLoop ? new LoopGaps(t0) : undefined;
  const probe = gaps
    ? setInterval(() => gaps.tick(performance.now()), 1)
    : undefined;
  await sleep(opts.measureMs);
  const cap = Math.max(opts.measureMs * WINDOW_MAX_FACTOR, WINDOW_MAX_MIN_MS);
  while (
    delivered < pairs * inFlight && performance.now() - t0 < cap
  ) await sleep(20);
  measuring = false;
  clearInterval(probe);
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
  for (const c of clients) c.onFrame = null;
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
    ...(gaps
      ? {
        loopGapMaxMs: gaps.max,
        maxFrameLoopGapMs: gaps.longestOverlapping(
          maxSentAt,
          maxSentAt + maxMs,
        ),
      }
      : {}),
  };
}
