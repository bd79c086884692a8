/**
 * The fixed inputs of the record-layer vectors, shared by
 * tests/vectors_session_test.ts and tests/vectors_session_control_test.ts:
 * loading tests/vectors/*.json, the keys and data vectors' IDs and session
 * hash, and a `Session` of either role built on them (the handshake result
 * those vectors assume).
 */

import type { Bytes } from "../../lib/bytes.ts";
import type { HandshakeResult } from "../../lib/handshake_result.ts";
import { type Identity, importIdentity } from "../../lib/identity.ts";
import { Session, type SessionOptions } from "../../lib/session.ts";
import { importSecret } from "../../lib/suite.ts";
import assert from "node:assert/strict";
import {
  cat,
  type DataVector,
  type KeysVector,
  type RecordVector,
  refOpen,
  refSeal,
} from "../vectors/generate_session.ts";

/** tests/vectors/. */
export const vectorDir = new URL("../vectors/", import.meta.url);

/** Parses tests/vectors/`name`. */
export const loadVector = async <V>(name: string): Promise<V> =>
  JSON.parse(await Deno.readTextFile(new URL(name, vectorDir)));

/** The vector files whose names start with `prefix`, sorted. */
export const vectorNames = (prefix: string): string[] =>
  [...Deno.readDirSync(vectorDir)]
    .map((e) => e.name)
    .filter((n) => n.startsWith(prefix) && n.endsWith(".json"))
    .sort();

/** Hex to bytes. */
export const h = (s: string): Bytes => Uint8Array.fromHex(s);

/** good_record_keys.json. */
export const K = await loadVector<KeysVector>("good_record_keys.json");
/** good_record_data.json. */
export const D = await loadVector<DataVector>("good_record_data.json");
/** The session hash of every record vector. */
export const sessionHash = h(K.sessionHash);
/** Session IDs of the two sides. */
export const initiatorId = h(D.initiatorId), responderId = h(D.responderId);

const identity = (p: DataVector["initiator"]): Promise<Identity> =>
  importIdentity(h(p.identityPkcs8), h(p.identitySpki), "vector");
/** The two sides' identities. */
export const idI = await identity(D.initiator);
export const idR = await identity(D.responder);

/** A `Session` of `role` on the vectors' handshake result (no transcript kept unless asked). */
export async function vectorSession(
  role: "initiator" | "responder",
  options: SessionOptions = {},
): Promise<Session> {
  const [local, peer] = role === "initiator" ? [idI, idR] : [idR, idI];
  const result: HandshakeResult = {
    role,
    suite: 1,
    localId: role === "initiator" ? initiatorId : responderId,
    peerId: role === "initiator" ? responderId : initiatorId,
    localIdentity: local,
    peerIdentity: { publicKey: peer.publicKey, spki: peer.spki },
    sessionHash,
    master: await importSecret(h(K.master)),
  };
  return await Session.fromHandshake(result, {
    keepTranscript: false,
    ...options,
  });
}

/**
 * Seals `inner` behind `header` with the reference and the record's nonce and
 * AAD: the packet must be the record's and fill its bucket (+22 bytes of
 * relay framing), and open back to the inner plaintext. Returns the packet.
 */
export async function checkSealedReference(
  key: string,
  r: Pick<
    RecordVector,
    "nonce" | "aad" | "packet" | "bucket" | "innerPlaintext"
  >,
  header: Bytes,
  inner: Bytes,
): Promise<Bytes> {
  const packet = cat(
    header,
    await refSeal(h(key), h(r.nonce), inner, h(r.aad)),
  );
  assert.equal(packet.toHex(), r.packet);
  assert.equal(packet.length + 22, r.bucket);
  const opened = await refOpen(
    h(key),
    h(r.nonce),
    packet.subarray(14),
    h(r.aad),
  );
  assert.equal(opened?.toHex(), r.innerPlaintext);
  return packet;
}
