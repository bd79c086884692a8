/**
 * Test fixtures for the session layer: two `HandshakeResult`s built by hand
 * (fixed master and session hash, real ECDSA identities), an in-memory
 * "network" between two sessions, and a scripted malicious peer that seals
 * records with the same keys.
 * @module
 */

import type { Bytes } from "../lib/bytes.ts";
import type { HandshakeResult } from "../lib/handshake_result.ts";
import type { Identity } from "../lib/identity.ts";
import {
  chainSignatureInput,
  chainStart,
  chainStep,
} from "../lib/hash_chain.ts";
import { fingerprint } from "../lib/fingerprint.ts";
import {
  deriveTrafficKeys,
  encodeInner,
  type InnerMessage,
  sealRecord,
  type TrafficKeys,
} from "../lib/record.ts";
import {
  type ReceiveResult,
  Session,
  type SessionEvent,
  type SessionOptions,
} from "../lib/session.ts";
import { importSecret, sign } from "../lib/suite.ts";

export const MASTER_RAW = new Uint8Array(32).fill(0x11);
export const SESSION_HASH = new Uint8Array(32).fill(0x22);
export const INITIATOR_ID = new Uint8Array(16).fill(0x01);
export const RESPONDER_ID = new Uint8Array(16).fill(0x02);

export async function newIdentity(): Promise<Identity> {
  const pair = await crypto.subtle.generateKey(
    { name: "ECDSA", namedCurve: "P-256" },
    false,
    ["sign", "verify"],
  );
  const spki = new Uint8Array(
    await crypto.subtle.exportKey("spki", pair.publicKey),
  );
  return { privateKey: pair.privateKey, publicKey: pair.publicKey, spki };
}

export interface Fixture {
  idI: Identity;
  idR: Identity;
  resultI: HandshakeResult;
  resultR: HandshakeResult;
}

let cached: [Identity, Identity] | undefined;

export async function fixture(): Promise<Fixture> {
  cached ??= [await newIdentity(), await newIdentity()];
  const [idI, idR] = cached;
  const base = {
    suite: 1,
    sessionHash: SESSION_HASH.slice(),
  };
  const resultI: HandshakeResult = {
    ...base,
    role: "initiator",
    localId: INITIATOR_ID.slice(),
    peerId: RESPONDER_ID.slice(),
    localIdentity: idI,
    peerIdentity: { publicKey: idR.publicKey, spki: idR.spki },
    master: await importSecret(MASTER_RAW.slice()),
  };
  const resultR: HandshakeResult = {
    ...base,
    role: "responder",
    localId: RESPONDER_ID.slice(),
    peerId: INITIATOR_ID.slice(),
    localIdentity: idR,
    peerIdentity: { publicKey: idI.publicKey, spki: idI.spki },
    master: await importSecret(MASTER_RAW.slice()),
  };
  return { idI, idR, resultI, resultR };
}

export async function pair(
  optionsI: SessionOptions = {},
  optionsR: SessionOptions = optionsI,
): Promise<{ a: Session; b: Session; fx: Fixture }> {
  const fx = await fixture();
  // Tests place signatures by count and drop packets by index: no minimum
  // signature gap and one record per message unless a test asks otherwise.
  const base = { minSignGapMs: 0, coalesce: false };
  return {
    a: await Session.fromHandshake(fx.resultI, { ...base, ...optionsI }),
    b: await Session.fromHandshake(fx.resultR, { ...base, ...optionsR }),
    fx,
  };
}

/** Delivers `packets` from one side to the other and keeps delivering every answer until quiet; returns events per session. */
export async function exchange(
  from: Session,
  to: Session,
  packets: Bytes[],
  now: number,
): Promise<Map<Session, SessionEvent[]>> {
  const events = new Map<Session, SessionEvent[]>([[from, []], [to, []]]);
  let queue: [Session, Bytes[]][] = [[to, packets]];
  while (queue.length > 0) {
    const next: [Session, Bytes[]][] = [];
    for (const [dst, pkts] of queue) {
      if (pkts.length === 0) continue;
      const r: ReceiveResult = await dst.receiveMany(pkts, now);
      events.get(dst)!.push(...r.events);
      next.push([dst === from ? to : from, r.packets]);
    }
    queue = next;
  }
  return events;
}

/** Bodies of message events. */
export function messages(events: SessionEvent[]): Bytes[] {
  return events.flatMap((e) => e.type === "message" ? [e.body] : []);
}

/** A scripted initiator that seals arbitrary inner messages with the real epoch-0 keys. */
export class FakeInitiator {
  counter = 0n;
  constructor(
    readonly keys: TrafficKeys,
    readonly identity: Identity,
    readonly fpI: Bytes,
    readonly fpR: Bytes,
  ) {}

  static async create(fx: Fixture): Promise<FakeInitiator> {
    const master = await importSecret(MASTER_RAW.slice());
    return new FakeInitiator(
      await deriveTrafficKeys(master, SESSION_HASH, "i2r", 0),
      fx.idI,
      await fingerprint(fx.idI.spki),
      await fingerprint(fx.idR.spki),
    );
  }

  seal(msg: InnerMessage, counter = this.counter++): Promise<Bytes> {
    return sealRecord(
      this.keys,
      counter,
      encodeInner(msg),
      INITIATOR_ID,
      RESPONDER_ID,
    );
  }

  sealPlaintext(pt: Bytes, counter = this.counter++): Promise<Bytes> {
    return sealRecord(this.keys, counter, pt, INITIATOR_ID, RESPONDER_ID);
  }

  /** Chain head after hashing `msgs` (seq, type, body) from H_0. */
  async head(
    msgs: { seq: bigint; type: number; body: Bytes }[],
  ): Promise<Bytes> {
    let h = await chainStart(SESSION_HASH, "initiator");
    for (const m of msgs) h = await chainStep(h, m.seq, m.type, m.body);
    return h;
  }

  signHead(seq: bigint, head: Bytes): Promise<Bytes> {
    return sign(
      this.identity.privateKey,
      chainSignatureInput(
        "initiator",
        this.fpI,
        this.fpR,
        SESSION_HASH,
        seq,
        head,
      ),
    );
  }
}

/** Deterministic pseudo-random bytes (xorshift) for reproducible bodies. */
export function prng(seed: number): (n: number) => Bytes {
  let x = seed >>> 0 || 1;
  const next = () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
  return (n) => {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = next() & 0xff;
    return b;
  };
}
