/**
 * Channel benchmark, in one process with no network: full handshakes per
 * second (both sides, 16 in parallel) and sealed+opened DATA messages per
 * second through two `Session`s configured like the clients' (no transcript
 * kept in memory, as without `--transcript`; chain signing every 64th message or every message), for each
 * primitive provider: WebCrypto (the lib default, the browser path),
 * `nodeHashPrimitives` (the clients' default, `--crypto keys`) and
 * `nodePrimitives` (`--crypto fast`). The sender keeps several `sendMany`
 * batches in flight, the receiver opens them with `receiveMany` in order and
 * its ACKs go back, as a driver pipelines them. Every loop is bounded in time.
 * @module
 */

import { Initiator, Responder } from "../lib/handshake.ts";
import type { HandshakeResult } from "../lib/handshake_result.ts";
import { generateIdentity, type Identity } from "../lib/identity.ts";
import { Session, type SessionOptions } from "../lib/session.ts";
import type { SessionPrimitives } from "../lib/primitives.ts";
import {
  nodeHashPrimitives,
  nodePrimitives,
} from "../lib/deno/node_primitives.ts";

/** Handshakes run concurrently (WebCrypto pipelines ECDSA/ECDH work). */
const PARALLEL_HANDSHAKES = 16;
/** Messages sealed per `sendMany` call (the clients' pump batch). */
const BATCH = 64;
/** `sendMany` batches in flight at once: 4 × 64 = a quarter of the 1,024-message flow window. */
const DEPTH = 4;
/** Body sizes measured (bytes). */
const SIZES = [256, 4096];
/** Chain signature cadences measured: 64 = the default, 1 = every message signed. */
const SIGN_EVERY = [64, 1];

/** The providers measured, by the name used in the output. */
export const PROVIDERS: {
  name: ProviderName;
  primitives?: SessionPrimitives;
}[] = [
  { name: "webcrypto" },
  { name: "node-hash", primitives: nodeHashPrimitives },
  { name: "node", primitives: nodePrimitives },
];
/** Provider names: webcrypto (browser path), node-hash (client default), node (`--crypto fast`). */
export type ProviderName = "webcrypto" | "node-hash" | "node";
/** The provider the clients use by default (`--crypto keys`): fills the legacy top-level fields. */
export const CLIENT_DEFAULT_PROVIDER: ProviderName = "node-hash";

/** One sealed+opened throughput figure. */
export interface RecordFigure {
  /** Application body bytes per message. */
  bodySize: number;
  /** Chain signature cadence: 64 = default, 1 = every message signed. */
  signEvery: number;
  /** Messages sealed by one side and opened by the other, per second. */
  msgsPerSec: number;
  /** Body megabytes (10^6) per second. */
  mbPerSec: number;
}

/** One row of the richer table: a {@link RecordFigure} for one provider. */
export interface ChannelRow {
  /** Body bytes. */
  size: number;
  /** "chain" (signed every 64) or "per-message". */
  signing: "chain" | "per-message";
  /** Signature cadence (64 or 1). */
  signEvery: number;
  /** Session primitive provider. */
  primitives: ProviderName;
  /** Messages sealed and opened per second. */
  msgsPerSec: number;
  /** Body megabytes (10^6) per second. */
  mbPerSec: number;
}

/** Everything the channel section measured. */
export interface ChannelFigures {
  /** False when the session/handshake modules could not run. */
  available: boolean;
  /** Why not, when unavailable. */
  reason?: string;
  /** Complete handshakes (HS1→HS2→HS3, both sides' work) per second. */
  handshakesPerSec?: number;
  /** Provider of `records` (the clients' default). */
  recordsPrimitives?: ProviderName;
  /** Seal+open throughput per body size and signing mode, client-default provider. */
  records?: RecordFigure[];
  /** Every size × signing × provider. */
  rows?: ChannelRow[];
  /** Batches of {@link BATCH} messages in flight. */
  pipeline?: { batch: number; depth: number };
}

const trust = () => "ok" as const;

async function pairIds(): Promise<[Identity, Identity]> {
  return await Promise.all([generateIdentity(), generateIdentity()]);
}

async function handshake(
  alice: Identity,
  bob: Identity,
  options: SessionOptions,
): Promise<[Session, Session]> {
  const idA = new Uint8Array(16).fill(1);
  const idB = new Uint8Array(16).fill(2);
  const complete = (r: HandshakeResult) => Session.fromHandshake(r, options);
  const now = performance.now();
  const { handshake: hi, message: hs1 } = await Initiator.start({
    identity: alice,
    localId: idA,
    peerId: idB,
    now,
    trust,
    complete,
  });
  const hr = Responder.create({ identity: bob, localId: idB, trust, complete });
  const { send: hs2 } = await hr.receive(hs1, { now, from: idA });
  if (!hs2) throw new Error("responder sent no HS2");
  const { send: hs3, session: a } = await hi.receive(hs2, now);
  const { session: b } = await hr.receive(hs3, { now });
  if (!b) throw new Error("responder completed without a session");
  return [a, b];
}

/** Handshakes per second for `ms` (both sides' work in this process). */
async function handshakeRate(ids: [Identity, Identity], ms: number) {
  const options = { keepTranscript: false };
  const t0 = performance.now();
  let done = 0;
  while (performance.now() - t0 < ms) {
    await Promise.all(
      Array.from(
        { length: PARALLEL_HANDSHAKES },
        () => handshake(ids[0], ids[1], options),
      ),
    );
    done += PARALLEL_HANDSHAKES;
  }
  return done / ((performance.now() - t0) / 1000);
}

/**
 * Seals on one session and opens on the other for `ms`, {@link DEPTH}
 * batches in flight: each batch is opened (in order) as soon as it is sealed
 * while later batches are being sealed; ACKs go back as they come.
 */
async function recordRate(
  ids: [Identity, Identity],
  bodySize: number,
  signEvery: number,
  primitives: SessionPrimitives | undefined,
  ms: number,
): Promise<RecordFigure> {
  const [a, b] = await handshake(ids[0], ids[1], {
    signEvery,
    primitives,
    keepTranscript: false,
  });
  const bodies = Array.from(
    { length: BATCH },
    () => crypto.getRandomValues(new Uint8Array(bodySize)),
  );
  let delivered = 0;
  let failure: unknown;
  const inflight = new Set<Promise<void>>();
  let opened: Promise<void> = Promise.resolve();
  const t0 = performance.now();
  let now = t0;
  while (now - t0 < ms && failure === undefined) {
    if (inflight.size < DEPTH && a.sendCapacity() >= BATCH) {
      const sealed = a.sendMany(bodies, now);
      const t = now;
      const done: Promise<void> = opened = Promise.all([opened, sealed])
        .then(([, packets]) => b.receiveMany(packets, t))
        .then(async (r) => {
          for (const e of r.events) if (e.type === "message") delivered++;
          if (r.packets.length > 0) await a.receiveMany(r.packets, t);
        })
        .catch((e) => {
          failure ??= e;
        })
        .finally(() => inflight.delete(done));
      inflight.add(done);
    } else if (inflight.size > 0) {
      await Promise.race(inflight);
    } else {
      // Window closed with nothing in flight: let the receiver's coalesced ACK out.
      const acks = await b.poll(now + 1000);
      if (acks.length > 0) await a.receiveMany(acks, now);
      if (a.sendCapacity() < BATCH) {
        throw new Error("flow window did not reopen after ACKs");
      }
    }
    now = performance.now();
  }
  await Promise.all(inflight);
  if (failure !== undefined) throw failure;
  const secs = (performance.now() - t0) / 1000;
  return {
    bodySize,
    signEvery,
    msgsPerSec: delivered / secs,
    mbPerSec: delivered * bodySize / secs / 1e6,
  };
}

/** Runs the channel section; `ms` bounds each figure's loop. */
export async function measureChannel(ms: number): Promise<ChannelFigures> {
  const ids = await pairIds();
  const handshakesPerSec = await handshakeRate(ids, ms);
  const rows: ChannelRow[] = [];
  const records: RecordFigure[] = [];
  for (const signEvery of SIGN_EVERY) {
    for (const size of SIZES) {
      for (const p of PROVIDERS) {
        const r = await recordRate(ids, size, signEvery, p.primitives, ms);
        rows.push({
          size,
          signing: signEvery === 1 ? "per-message" : "chain",
          signEvery,
          primitives: p.name,
          msgsPerSec: r.msgsPerSec,
          mbPerSec: r.mbPerSec,
        });
        if (p.name === CLIENT_DEFAULT_PROVIDER) records.push(r);
      }
    }
  }
  return {
    available: true,
    handshakesPerSec,
    recordsPrimitives: CLIENT_DEFAULT_PROVIDER,
    records,
    rows,
    pipeline: { batch: BATCH, depth: DEPTH },
  };
}

if (import.meta.main) {
  const { runWithMs } = await import("./cli.ts");
  await runWithMs(
    "bench/channel.ts",
    "deno run -A bench/channel.ts [MS]   the channel figures alone, MS (default 1000) per figure, JSON on stdout",
    1000,
    async (ms) =>
      console.log(JSON.stringify(await measureChannel(ms), null, 1)),
  );
}
