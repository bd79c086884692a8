/**
 * The handshake half of lib/conversation.ts: starting and retransmitting
 * HS1, answering HS1 (bounded per peer ID: RESPONDER_RATE_PER_PEER), the
 * simultaneous-open tie-break, HS2/HS3, trust decisions (the address's
 * expected fingerprints, or the caller's known-peers lookup), the address's
 * suite preference, a new
 * handshake beside a live session that replaces it only once authenticated,
 * and refusals. Functions over the conversation's {@link Host}; sans-I/O.
 * @module
 */

import { Backoff } from "./backoff.ts";
import type { Bytes } from "./bytes.ts";
import {
  HANDSHAKE_RETRY_BASE_MS,
  HANDSHAKE_RETRY_MAX_MS,
  HANDSHAKE_TIMEOUT_MS,
} from "./constants.ts";
import { onRecords } from "./conversation_secure.ts";
import {
  type Answering,
  type Attempt,
  type ConversationOptions,
  type ConversationOutput,
  equal,
  type Established,
  type Host,
  type Secure,
} from "./conversation_types.ts";
import { ProtocolError } from "./errors.ts";
import { Initiator, Responder, type TrustDecision } from "./handshake.ts";
import type { HandshakeResult, HandshakeRole } from "./handshake_result.ts";
import { formatSessionId } from "./registration.ts";
import { Session } from "./session.ts";
import { keyAlgorithm, SUITE_X25519, suiteForAlgorithm } from "./suite.ts";

export function trustCallback(
  h: Host,
  attempt: Attempt,
): (spki: Bytes, fp: string) => TrustDecision {
  return (spki, fp) => {
    attempt.spki = spki.slice();
    attempt.fingerprint = fp;
    // The address's pins (PROTOCOL.md §1.3): a fingerprint hashes the whole
    // SPKI, algorithm included, so each pin matches only its suite's key; in
    // a suite the address pins no key of, every identity is refused.
    const { expectFingerprint: fpPin, expectEd25519Fingerprint: edPin } = h.o;
    if (fpPin !== undefined || edPin !== undefined) {
      if (fp === fpPin || fp === edPin) return "ok";
      const named = [
        ...(fpPin === undefined ? [] : [`fp=${fpPin}`]),
        ...(edPin === undefined ? [] : [`ed=${edPin}`]),
      ].join(", ");
      return {
        code: "identity-rejected",
        message:
          `the peer presented identity ${fp}, not one its address names (${named}); refusing`,
      };
    }
    const lookup = h.o.trust(fp, spki);
    attempt.lookup = lookup;
    if (lookup.status !== "changed") return "ok";
    return {
      code: "identity-changed",
      message:
        `the peer's identity key has CHANGED (recorded ${lookup.previous}, presented ${fp}); refusing`,
    };
  };
}

/**
 * The options with the address's suite preference applied (PROTOCOL.md
 * §1.3): with an `ed=` pin, suite x25519 is offered first when it is among
 * ours (the caller's `suites`, default the identities' suites), the others
 * after it in their order; otherwise `o` as it is.
 */
export function withAddressSuites(
  o: ConversationOptions,
): ConversationOptions {
  if (o.expectEd25519Fingerprint === undefined) return o;
  const suites = o.suites ??
    [o.identity, ...(o.identities ?? [])].map((i) =>
      suiteForAlgorithm(keyAlgorithm(i.privateKey)).id
    );
  if (!suites.includes(SUITE_X25519) || suites[0] === SUITE_X25519) return o;
  return {
    ...o,
    suites: [SUITE_X25519, ...suites.filter((s) => s !== SUITE_X25519)],
  };
}

export const completeFor =
  (o: ConversationOptions) => (r: HandshakeResult): Promise<Established> =>
    Session.fromHandshake(r, o.sessionOptions).then((session) => ({
      session,
      hash: r.sessionHash.toHex(),
      spki: r.peerIdentity.spki,
    }));

export async function startInitiator(
  h: Host,
  now: number,
  out: ConversationOutput,
): Promise<void> {
  const attempt: Attempt = {};
  const { handshake, message } = await Initiator.start({
    identity: h.o.identity,
    identities: h.o.identities,
    suites: h.o.suites,
    localId: h.o.localId,
    peerId: h.o.peerId,
    now,
    trust: trustCallback(h, attempt),
    complete: h.complete,
    // The session's primitives run the handshake too (a provider's
    // synchronous key schedule, ephemerals and signature checks).
    sessionOptions: h.o.sessionOptions,
  });
  const backoff = new Backoff({
    baseMs: HANDSHAKE_RETRY_BASE_MS,
    maxMs: HANDSHAKE_RETRY_MAX_MS,
    random: h.o.random,
  });
  h.phase = {
    kind: "initiating",
    hs: handshake,
    hs1: message,
    deadline: now + HANDSHAKE_TIMEOUT_MS,
    retryAt: now + backoff.next(),
    backoff,
    attempt,
  };
  out.packets.push(message);
}

/** Starts answering an HS1; undefined when it failed (reported) or was rate-limited. */
export async function answer(
  h: Host,
  hs1: Bytes,
  now: number,
  out: ConversationOutput,
): Promise<Answering | undefined> {
  if (!h.responderBucket.take(now)) return undefined; // responder work per peer ID is bounded
  const attempt: Attempt = {};
  const hs = Responder.create({
    identity: h.o.identity,
    identities: h.o.identities,
    suites: h.o.suites,
    localId: h.o.localId,
    trust: trustCallback(h, attempt),
    complete: h.complete,
    sessionOptions: h.o.sessionOptions,
  });
  const r = await hs.receive(hs1, { now, from: h.o.peerId });
  out.packets.push(r.send!);
  return {
    hs,
    hs1: hs1.slice(),
    hs2: r.send!,
    deadline: now + HANDSHAKE_TIMEOUT_MS,
    early: [],
    attempt,
  };
}

export async function onHs1(
  h: Host,
  p: Bytes,
  now: number,
  out: ConversationOutput,
): Promise<void> {
  const ph = h.phase;
  if (ph.kind === "secure") {
    if (ph.beside && equal(p, ph.beside.hs1)) {
      return void out.packets.push(ph.beside.hs2);
    }
    // HS1 is unauthenticated (a relay can replay or forge one): the live
    // session stays until the new handshake has authenticated the peer.
    ph.beside?.hs.abort();
    ph.beside = undefined;
    try {
      ph.beside = await answer(h, p, now, out);
      if (ph.beside) {
        h.notice(
          out,
          "the peer started a new secure session (it restarted?); answering — the current session stays until the new one is authenticated",
        );
      }
    } catch (e) {
      besideFailed(h, ph, e, out);
    }
    return;
  }
  if (ph.kind === "initiating") {
    // Simultaneous open: the side with the smaller ID answers.
    if (formatSessionId(h.o.localId) > formatSessionId(h.o.peerId)) {
      return;
    }
    h.notice(out, "both sides started a handshake; answering the peer's");
  }
  if (ph.kind === "responding" && equal(p, ph.hs1)) {
    return void out.packets.push(ph.hs2);
  }
  if (ph.kind === "closed") return;
  let answering: Answering | undefined;
  try {
    answering = await answer(h, p, now, out);
  } catch (e) {
    return handshakeFailed(h, e, out);
  }
  if (!answering) return;
  if (ph.kind === "initiating") ph.hs.abort();
  if (ph.kind === "responding") ph.hs.abort();
  h.phase = { kind: "responding", ...answering };
}

export async function onHs2(
  h: Host,
  p: Bytes,
  now: number,
  out: ConversationOutput,
): Promise<void> {
  const ph = h.phase;
  if (ph.kind === "secure" && ph.hs3) {
    return void out.packets.push(ph.hs3.packet); // our HS3 was lost
  }
  if (ph.kind !== "initiating") return;
  let r;
  try {
    r = await ph.hs.receive(p, now);
  } catch (e) {
    return handshakeFailed(h, e, out, {
      attempt: ph.attempt,
      role: "initiator",
    });
  }
  out.packets.push(r.send);
  await h.secure(r.session, "initiator", ph.attempt, now, out);
  const s = h.phase;
  if (s.kind === "secure") s.hs3 = { packet: r.send, tries: 0 };
}

export async function onHs3(
  h: Host,
  p: Bytes,
  now: number,
  out: ConversationOutput,
): Promise<void> {
  const ph = h.phase;
  const answering = ph.kind === "responding"
    ? ph
    : ph.kind === "secure"
    ? ph.beside
    : undefined;
  if (!answering) return;
  let r;
  try {
    r = await answering.hs.receive(p, { now, from: h.o.peerId });
  } catch (e) {
    if (ph.kind === "secure") return besideFailed(h, ph, e, out);
    return handshakeFailed(h, e, out, {
      attempt: answering.attempt,
      role: "responder",
    });
  }
  await h.secure(r.session!, "responder", answering.attempt, now, out);
  if (answering.early.length > 0) {
    await onRecords(h, answering.early, now, out);
  }
}

/** A handshake beside a live session failed (forged, replayed, changed key): the session goes on. */
export function besideFailed(
  h: Host,
  s: Secure,
  e: unknown,
  out: ConversationOutput,
): void {
  if (!(e instanceof ProtocolError)) throw e;
  s.beside = undefined;
  h.notice(
    out,
    `a new handshake attempt failed (${e.code}): ignored; the current secure session continues`,
  );
}

/** A handshake failed with no session live (`failed`: the attempt whose identity was checked, and our role in it). */
export function handshakeFailed(
  h: Host,
  e: unknown,
  out: ConversationOutput,
  failed?: { attempt: Attempt; role: HandshakeRole },
): void {
  if (!(e instanceof ProtocolError)) throw e;
  const attempt = failed?.attempt;
  const refused = e.code === "identity-changed" ||
    e.code === "identity-rejected";
  if (refused && attempt?.fingerprint) {
    h.phase = {
      kind: "refused",
      fingerprint: attempt.fingerprint,
      spki: attempt.spki!,
    };
    out.events.push({
      type: "refused",
      code: e.code,
      message: e.message,
      fingerprint: attempt.fingerprint,
      spki: attempt.spki!,
      previous: attempt.lookup?.status === "changed"
        ? attempt.lookup.previous
        : undefined,
      role: failed!.role,
    });
    return;
  }
  const p = h.phase;
  if (p.kind === "initiating" && h.dial) {
    // The peer we contacted failed the handshake (or a relay forged its HS2).
    return h.end("handshake-failed", out, e.code, e.message);
  }
  if (h.lastSecure === undefined && !h.dial) {
    // A stranger's failed attempt: this conversation never existed.
    return h.end("handshake-failed", out, e.code, e.message);
  }
  if (p.kind === "responding") h.phase = { kind: "listening" };
  h.notice(out, `a handshake attempt failed (${e.code}): ignored`);
}
