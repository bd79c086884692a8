/**
 * Channel benchmark, in one process with no network: full handshakes per
 * second (both sides, 16 in parallel) and sealed+opened DATA messages per
 * second through two `Session`s (initiator seals, responder opens, its ACKs
 * go back), with the default chain signing (every 64th message) and with
 * per-message signing. Every loop is bounded in time.
 * @module
 */

import { Initiator, Responder } from "../lib/handshake.ts";
import type { HandshakeResult } from "../lib/handshake_result.ts";
import { generateIdentity, type Identity } from "../lib/identity.ts";
import { Session, type SessionOptions } from "../lib/session.ts";

/** Handshakes run concurrently (WebCrypto pipelines ECDSA/ECDH work). */
const PARALLEL_HANDSHAKES = 16;
/** Messages sealed per `sendMany` call (half the ACK_EVERY cadence × 2: keeps the window open). */
const BATCH = 64;

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

/** Everything the channel section measured. */
export interface ChannelFigures {
  /** False when the session/handshake modules could not run. */
  available: boolean;
  /** Why not, when unavailable. */
  reason?: string;
  /** Complete handshakes (HS1→HS2→HS3, both sides' work) per second. */
  handshakesPerSec?: number;
  /** Seal+open throughput per body size and signing mode. */
  records?: RecordFigure[];
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

/** Seals on one session and opens on the other for `ms`. */
async function recordRate(
  ids: [Identity, Identity],
  bodySize: number,
  signEvery: number,
  ms: number,
): Promise<RecordFigure> {
  const [a, b] = await handshake(ids[0], ids[1], {
    signEvery,
    keepTranscript: false,
  });
  const bodies = Array.from(
    { length: BATCH },
    () => crypto.getRandomValues(new Uint8Array(bodySize)),
  );
  let delivered = 0;
  const t0 = performance.now();
  let now = t0;
  while (now - t0 < ms) {
    if (a.sendCapacity() < BATCH) {
      // Let the receiver's coalesced ACK out and feed it back.
      const acks = await b.poll(now + 1000);
      if (acks.length > 0) await a.receiveMany(acks, now);
      if (a.sendCapacity() < BATCH) {
        throw new Error("flow window did not reopen after ACKs");
      }
    }
    const packets = await a.sendMany(bodies, now);
    const r = await b.receiveMany(packets, now);
    for (const e of r.events) if (e.type === "message") delivered++;
    if (r.packets.length > 0) await a.receiveMany(r.packets, now);
    now = performance.now();
  }
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
  const records: RecordFigure[] = [];
  for (const signEvery of [64, 1]) {
    for (const size of [256, 4096]) {
      records.push(await recordRate(ids, size, signEvery, ms));
    }
  }
  return { available: true, handshakesPerSec, records };
}
