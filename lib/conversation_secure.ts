/**
 * The live-session half of lib/conversation.ts: records in (delivery,
 * acknowledgements, `resume`/`next`, the peer's CLOSE), the send pump with
 * `next` before id gaps, retransmission rounds and their count
 * (REHANDSHAKE_AFTER_UNANSWERED, PROTOCOL.md §2.5), probing an away peer,
 * the hold for the peer's `resume`, clean close. Functions over the
 * conversation's {@link Host}; sans-I/O.
 * @module
 */

import type { Bytes } from "./bytes.ts";
import {
  MAX_EARLY_RECORDS,
  REHANDSHAKE_AFTER_UNANSWERED,
  RESUME_WAIT_MS,
  SEND_BATCH,
} from "./constants.ts";
import { encodeControl, isControl, parseControl } from "./control.ts";
import { ProtocolError } from "./errors.ts";
import type { ConversationOutput, Host, Secure } from "./conversation_types.ts";

export async function onRecords(
  h: Host,
  ps: Bytes[],
  now: number,
  out: ConversationOutput,
): Promise<void> {
  const p = h.phase;
  const stash = p.kind === "responding"
    ? p
    : p.kind === "secure"
    ? p.beside
    : undefined;
  if (stash) {
    for (const r of ps) {
      if (stash.early.length < MAX_EARLY_RECORDS) {
        stash.early.push(r.slice());
      }
    }
  }
  if (p.kind !== "secure" || p.session.failed) return;
  const s = p.session;
  const before = s.stats.packetsReceived;
  let r;
  try {
    r = await s.receiveMany(ps, now);
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e;
    return h.end("failed", out, e.code, e.message);
  }
  if (s.stats.packetsReceived > before) p.hs3 = undefined;
  out.packets.push(...r.packets);
  for (const ev of r.events) {
    if (h.phase !== p) break;
    switch (ev.type) {
      case "message":
        p.rxSeq = ev.seq;
        if (isControl(ev.body)) onControl(h, p, ev.body, out);
        else {
          const v = h.inbox.message();
          if (v.deliver) {
            out.events.push({
              type: "message",
              id: v.id,
              body: ev.body,
              seq: ev.seq,
              counter: ev.counter,
            });
          }
        }
        break;
      case "acked": {
        if (ev.seqs.length === 0) break;
        p.rto.reset();
        p.rtoAt = undefined;
        p.unanswered = 0;
        const ids = h.outbox.acked(ev.seqs);
        if (ids.length > 0) out.events.push({ type: "delivered", ids });
        break;
      }
      case "peer-closed": {
        p.peerClosed = true;
        out.events.push({ type: "peer-closed" });
        const ids = h.outbox.dropQueued();
        if (ids.length > 0) notSent(out, ids, "the peer closed first");
        break;
      }
      case "closed":
        return h.end("closed", out);
    }
  }
  if (h.phase === p) await after(h, now, out);
}

export function onControl(
  h: Host,
  s: Secure,
  body: Bytes,
  out: ConversationOutput,
): void {
  let m;
  try {
    m = parseControl(body);
  } catch (e) {
    return h.notice(
      out,
      `ignored a malformed control message from the peer: ${
        (e as Error).message
      }`,
    );
  }
  if (m?.kind === "next") return h.inbox.next(m.id);
  if (m?.kind !== "resume") return;
  if (m.stream !== undefined) h.inbox.peerStream(m.stream);
  if (m.next !== undefined) h.inbox.next(m.next);
  if (m.peerStream === h.stream) {
    const ids = h.outbox.confirmUpTo(m.deliveredId ?? 0);
    if (ids.length > 0) {
      out.events.push({ type: "delivered", ids, byResume: true });
      h.notice(
        out,
        `the peer had already received message(s) #${
          ids.join(", #")
        } in an earlier session: not re-sent`,
      );
    }
  }
  if (s.holdUntil !== undefined) {
    release(
      h,
      s,
      m.peerStream === h.stream
        ? "re-sending"
        : "the peer has none of them (it restarted); re-sending",
      out,
    );
  }
}

export function release(
  h: Host,
  s: Secure,
  why: string,
  out: ConversationOutput,
): void {
  s.holdUntil = undefined;
  const ids = h.outbox.release();
  if (ids.length > 0) {
    h.notice(
      out,
      `${why} ${ids.length} unconfirmed message(s): #${ids.join(", #")}`,
    );
  }
}

/** After session activity: arm the retransmission timer, pump, maybe close. */
export async function after(
  h: Host,
  now: number,
  out: ConversationOutput,
): Promise<void> {
  const p = h.phase;
  if (p.kind !== "secure") return;
  await pump(h, now, out);
  await maybeClose(h, now, out);
  armRto(h, p, now);
}

export function awaitingAck(
  h: Host,
  s: Secure,
): boolean {
  return h.outbox.inflight > 0 || s.session.unacked().length > 0;
}

export function armRto(
  h: Host,
  s: Secure,
  now: number,
): void {
  if (
    s.rtoAt === undefined && !s.peerAway && (awaitingAck(h, s) || s.hs3)
  ) {
    s.rtoAt = now + s.rto.next();
  }
}

/** Seals queued messages while the peer is reachable (or `limit` of them as a probe). */
export async function pump(
  h: Host,
  now: number,
  out: ConversationOutput,
  limit = Infinity,
): Promise<void> {
  const s = h.phase;
  if (
    s.kind !== "secure" || s.session.failed || s.closeSent || !h.linkUp
  ) return;
  if (s.holdUntil !== undefined) return; // waiting for the peer's resume
  if (s.peerAway && limit === Infinity) return;
  let budget = limit;
  while (h.outbox.queued > 0 && budget > 0) {
    const room = s.session.sendCapacity();
    const batch = h.outbox.peek(
      Math.min(SEND_BATCH, budget, h.outbox.queued),
    );
    // A `next` precedes the first message and any gap in the ids (refused input, confirmed by resume).
    const bodies: Uint8Array[] = [];
    const user: number[] = [];
    let expect = s.nextId;
    for (const m of batch) {
      if (bodies.length + (m.id !== expect ? 2 : 1) > room) break;
      if (m.id !== expect) {
        bodies.push(encodeControl({ kind: "next", id: m.id }));
      }
      user.push(bodies.length);
      bodies.push(m.body);
      expect = m.id + 1;
    }
    if (user.length === 0) break;
    const sealing = s.session.sendMany(bodies as Bytes[], now);
    if (sealing.seqs.length === 0) {
      const e = await sealing.then(() => undefined, (e) => e);
      if (e instanceof ProtocolError && e.code === "window-full") break;
      if (e instanceof ProtocolError && e.code === "closed") {
        const ids = h.outbox.dropQueued();
        notSent(out, ids, "the session is closing");
        break;
      }
      throw e;
    }
    const sent = h.outbox.markSent(
      s.hash,
      user.map((i) => sealing.seqs[i]),
      now,
    );
    s.nextId = expect;
    budget -= sent.length;
    out.packets.push(...await sealing);
    // The outbox's own records (id, body): no object per message here.
    out.events.push({ type: "sent", messages: sent });
  }
}

export async function maybeClose(
  h: Host,
  now: number,
  out: ConversationOutput,
): Promise<void> {
  const s = h.phase;
  if (
    !h.closing || s.kind !== "secure" || s.closeSent || s.session.failed
  ) return;
  if (
    h.outbox.queued > 0 || s.holdUntil !== undefined ||
    awaitingAck(h, s) || !h.linkUp
  ) return;
  s.closeSent = true;
  out.packets.push(...await s.session.close(now));
  s.rtoAt ??= now + s.rto.next();
}

/** Resends HS3 (if not yet confirmed) and every unacknowledged packet, byte-identical. */
export function retransmit(s: Secure, out: ConversationOutput): void {
  if (s.hs3) out.packets.push(s.hs3.packet);
  if (!s.session.failed) out.packets.push(...s.session.unacked());
}

export async function tickSecure(
  h: Host,
  p: { kind: "secure" } & Secure,
  now: number,
  out: ConversationOutput,
): Promise<void> {
  if (p.beside && now >= p.beside.deadline) {
    p.beside.hs.abort();
    p.beside = undefined;
    h.notice(
      out,
      "a new handshake attempt failed (timeout): ignored; the current secure session continues",
    );
  }
  if (p.holdUntil !== undefined && now >= p.holdUntil) {
    release(
      h,
      p,
      `no resume from the peer within ${
        RESUME_WAIT_MS / 1000
      } s; re-sending (the peer drops any it already has)`,
      out,
    );
  }
  const due = p.session.nextDeadline();
  if (due !== undefined && now >= due && !p.session.failed) {
    out.packets.push(...await p.session.poll(now));
  }
  const timer = p.peerAway ? p.probeAt : p.rtoAt;
  // Rounds while the relay link is down are not unanswered: nothing went out.
  if (timer !== undefined && now >= timer && h.linkUp) {
    if (await probe(h, p, now, out)) return;
    if (p.peerAway) p.probeAt = now + p.probe.next();
    else {
      p.rtoAt = awaitingAck(h, p) || p.hs3 ? now + p.rto.next() : undefined;
    }
  }
  if (h.phase === p) await after(h, now, out);
}

/**
 * One retransmission round (see REHANDSHAKE_AFTER_UNANSWERED); after that
 * many unanswered rounds, a new handshake instead. True in that case.
 */
export async function probe(
  h: Host,
  p: { kind: "secure" } & Secure,
  now: number,
  out: ConversationOutput,
): Promise<boolean> {
  if (!awaitingAck(h, p) && h.outbox.queued > 0) {
    await pump(h, now, out, 1);
  }
  if (awaitingAck(h, p)) {
    if (++p.unanswered > REHANDSHAKE_AFTER_UNANSWERED) {
      h.notice(
        out,
        "the peer stopped acknowledging although the relay delivers to it (it restarted?); starting a new secure session",
      );
      await h.rehandshake(p, now, out);
      return true;
    }
    retransmit(p, out);
  } else if (p.hs3) {
    if (++p.hs3.tries > REHANDSHAKE_AFTER_UNANSWERED) p.hs3 = undefined;
    else out.packets.push(p.hs3.packet);
  }
  return false;
}

/** Reports queued messages that will not be sent, and why. */
function notSent(out: ConversationOutput, ids: number[], why: string): void {
  out.events.push({
    type: "not-sent",
    ids,
    code: "not-sent",
    message: `${why}; messages not sent: #${ids.join(", #")}`,
  });
}
