/**
 * The one import point of the sans-I/O protocol core (runs in Deno and in a
 * browser): relay frames and registration, identities and trust, the signed
 * handshake, the session, transcripts. Deno drivers live in `lib/deno/`.
 *
 * @example Handshake to session (typestate: a Session exists only after success)
 * ```ts
 * import { generateIdentity, Initiator, Responder } from "./mod.ts";
 *
 * const alice = await generateIdentity();
 * const bob = await generateIdentity();
 * const idA = crypto.getRandomValues(new Uint8Array(16));
 * const idB = crypto.getRandomValues(new Uint8Array(16));
 * const trust = () => "ok" as const;
 * const { handshake, message: hs1 } = await Initiator.start({
 *   identity: alice, localId: idA, peerId: idB, now: 0, trust,
 * });
 * const responder = Responder.create({ identity: bob, localId: idB, trust });
 * const { send: hs2 } = await responder.receive(hs1, { now: 0, from: idA });
 * const { send: hs3, session: aliceSession } = await handshake.receive(hs2!, 0);
 * const { session: bobSession } = await responder.receive(hs3!, { now: 0, from: idA });
 * const packets = await aliceSession.send(new TextEncoder().encode("hello"), 0);
 * const { events } = await bobSession!.receive(packets[0], 0);
 * console.assert(events.some((e) => e.type === "message"));
 * ```
 * @module
 */

export * from "./errors.ts";
export * from "./bytes.ts";
export * from "./base32.ts";
export * from "./relay_frame.ts";
export * from "./registration.ts";
export * from "./token_bucket.ts";
export * from "./identity.ts";
export * from "./fingerprint.ts";
export * from "./known_peers.ts";
export * from "./handshake.ts";
export * from "./handshake_result.ts";
export * from "./session.ts";
export * from "./transcript.ts";
export * from "./conversation_transcript.ts";
export * from "./display_text.ts";
export * from "./replay_window.ts";
export * from "./padding.ts";
export * from "./suite.ts";
export * from "./primitives.ts";
export * from "./record.ts";
export * from "./hash_chain.ts";
export * from "./address.ts";
export * from "./payment.ts";
export * from "./backoff.ts";
