/**
 * Generates the session-layer test vectors in this folder —
 * `good_record_keys.json`, `good_record_data.json`, `good_record_ack.json`,
 * `good_record_data_coalesced.json`, `good_record_body_lengths.json` and
 * `fail_record_*.json` (except the
 * `fail_record_dummy_*` of generate_session_control.ts) — and exports the
 * reference computation that
 * tests/vectors_session_test.ts checks them with. The reference is written
 * from PROTOCOL.md §2.2 with `crypto.subtle` only (labels typed out, no
 * import from lib/), so a change in lib/ shows up as a vector mismatch.
 *
 * Run by hand from the repository root:
 *
 *   deno run --allow-read=tests/vectors --allow-write=tests/vectors tests/vectors/generate_session.ts [--fresh]
 *
 * Inputs are fixed: master, sessionHash and relay IDs are constants below;
 * the identities are those of good_handshake.json; the rekey ephemerals are
 * read back from the existing good_record_keys.json (`--fresh` draws new
 * ones). Only the chain signature depends on ECDSA: Deno signs
 * deterministically (RFC 6979) as observed, but checkers must verify it,
 * not expect to reproduce it.
 * @module
 */

// ── Vector file shapes ──────────────────────────────────────────────────────

/** Key and IV of one direction in one epoch, with the HKDF info strings (all hex). */
export interface DirectionKeys {
  key: string;
  keyInfo: string;
  iv: string;
  ivInfo: string;
}

/** good_record_keys.json */
export interface KeysVector {
  description: string;
  /** Epoch-0 master secret (raw bytes given to importSecret). */
  master: string;
  sessionHash: string;
  epoch0: { i2r: DirectionKeys; r2i: DirectionKeys };
  rekey: {
    newEpoch: number;
    initiatorEphemeralPkcs8: string;
    initiatorEphemeralPublic: string;
    responderEphemeralPkcs8: string;
    responderEphemeralPublic: string;
    /** ECDH(own new eph, peer eph): equal on both sides. */
    sharedSecret: string;
    /** HKDF info of the "rekey" derivation. */
    info: string;
    /** master_1 raw bytes (importSecret them). */
    master1: string;
  };
  epoch1: { i2r: DirectionKeys; r2i: DirectionKeys };
}

/** One party's identity (hex). */
export interface IdentityVector {
  identityPkcs8: string;
  identitySpki: string;
  /** SHA-256 of the SPKI DER. */
  fingerprint: string;
}

/** Chain values of a signed record. */
export interface ChainVector {
  senderRole: "initiator" | "responder";
  h0: string;
  h1: string;
  h2: string;
  /** Bytes hashed into H_2 (H_1 ‖ u64(2) ‖ u8(type) ‖ u32(bodyLen) ‖ body). */
  step2Input: string;
  /** Exact bytes the chain signature over H_2 signs. */
  signatureInput: string;
  /** Recorded ECDSA P-256/SHA-256 P1363 signature: verify it, do not expect to reproduce it. */
  signature: string;
}

/** One sealed RECORD with every intermediate value. */
export interface RecordVector {
  name: string;
  direction: "i2r" | "r2i";
  epoch: number;
  /** u64 as a decimal string. */
  counter: string;
  innerType: number;
  flags: number;
  /** u64 as a decimal string. */
  seq: string;
  /** UTF-8 body when it is text. */
  bodyText?: string;
  body: string;
  /** Whole relay frame length the record fills (22 + packet length). */
  bucket: number;
  header: string;
  nonce: string;
  aad: string;
  /** Padded inner plaintext. */
  innerPlaintext: string;
  packet: string;
  chain?: ChainVector;
}

/** good_record_data.json */
export interface DataVector {
  description: string;
  base: "good_record_keys.json";
  initiatorId: string;
  responderId: string;
  initiator: IdentityVector;
  responder: IdentityVector;
  records: RecordVector[];
}

/** good_record_ack.json */
export interface AckVector {
  description: string;
  base: "good_record_data.json";
  /** Highest counter accepted from the peer (decimal). */
  highest: string;
  /** 128-byte bitmap: bit i (byte i>>3, bit i&7, LSB first) = counter highest − i accepted. */
  bitmap: string;
  /** Counters the bitmap names (decimal). */
  acknowledgedCounters: string[];
  cumulativeSeq: string;
  record: RecordVector;
}

/** Expected outcome of a fail vector. */
export interface FailExpectation {
  /**
   * ProtocolError code of the first failing step of a strict record-level
   * open: header decode, AEAD open (`decrypt-failed`), inner decode.
   */
  record: string;
  /** What a receiving session does: drop and count, or fail. */
  session: "dropped" | "failed";
  /** "dropped": the SessionStats counter incremented by one. */
  stat?: string;
  /** "failed": the ProtocolError code the session throws. */
  error?: string;
}

/** fail_record_*.json */
export interface FailVector {
  description: string;
  base: "good_record_data.json";
  /** The packet travels i2r; the responder receives it with the epoch-0 keys. */
  direction: "i2r";
  packet: string;
  /** For records that authenticate: the (bad) inner plaintext sealed in them. */
  innerPlaintext?: string;
  expected: FailExpectation;
}

/** One record of good_record_body_lengths.json: i2r, epoch 0, counter 0, accepted by a fresh responder. */
export interface BodyLengthRecord {
  name: string;
  innerType: number;
  flags: number;
  /** u64 as a decimal string. */
  seq: string;
  /** The body length §2.2.3 requires for this type. */
  bodyLength: number;
  body: string;
  innerPlaintext: string;
  packet: string;
  /** Event types a fresh responding Session emits for it, in order. */
  events: string[];
  /** The fail_record_body_*.json vectors that break only this record's body-length (or seq) rule. */
  failVectors: string[];
}

/** good_record_body_lengths.json */
export interface BodyLengthsVector {
  description: string;
  base: "good_record_data.json";
  /** Required body length per inner type (DATA: 0..MAX_BODY, absent here). */
  rules: Record<string, number>;
  records: BodyLengthRecord[];
}

/** Where one reliable message sits in its sender's chain (hex). */
export interface MessageChain {
  senderRole: "initiator" | "responder";
  /** H_{s−1}. */
  prev: string;
  /** H_{s−1} ‖ u64(s) ‖ u8(innerType) ‖ u32(bodyLen) ‖ body. */
  stepInput: string;
  /** H_s = SHA-256(stepInput). */
  head: string;
  /** Signed messages: the exact chain-signature input over H_s. */
  signatureInput?: string;
  /** Signed messages: one recorded P1363 signature (verify, do not compare). */
  signature?: string;
}

/** One message inside a coalesced record. */
export interface CoalescedMessage {
  innerType: number;
  flags: number;
  /** u64 as a decimal string. */
  seq: string;
  /** UTF-8 body when it is text. */
  bodyText?: string;
  body: string;
  /** Where the message starts in the inner plaintext. */
  offset: number;
  /** 14 + bodyLen (+ 64 when signed). */
  length: number;
  chain: MessageChain;
}

/** good_record_data_coalesced.json */
export interface CoalescedVector {
  description: string;
  base: "good_record_data.json";
  record: {
    name: string;
    direction: "i2r";
    epoch: number;
    /** u64 as a decimal string. */
    counter: string;
    /** In plaintext (= seq) order. */
    messages: CoalescedMessage[];
    /** Σ of the messages' lengths: the inner plaintext before padding. */
    contentLength: number;
    /** Whole relay frame length the record fills (22 + packet length). */
    bucket: number;
    header: string;
    nonce: string;
    aad: string;
    /** Padded inner plaintext: the messages back to back, then zeros. */
    innerPlaintext: string;
    packet: string;
  };
}

/** good_record_data_large.json: records in the fine buckets above 1024 bytes. */
export interface LargeVector {
  description: string;
  base: "good_record_data.json";
  /** DATA seq 1 (counter 0) and seq 2 (counter 1), unsigned, i2r, epoch 0. */
  records: RecordVector[];
}

// ── Reference computation (PROTOCOL.md §2.2) ────────────────────────────────

type B = Uint8Array<ArrayBuffer>;
const enc = new TextEncoder();
const LABEL_PREFIX = "e2e.v1 ";
const CHAIN_LABEL = "e2e.v1 chain\0";
const CHAIN_SIGNATURE_LABEL = "e2e.v1 chain signature\0";
/** Relay DATA header 22 + RECORD header 14 + GCM tag 16. */
const FRAME_OVERHEAD = 52;
const RELAY_DATA_HEADER = 22;

/** Concatenates byte strings. */
export function cat(...parts: Uint8Array[]): B {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Big-endian unsigned integer of `bytes` bytes. */
export function be(value: number | bigint, bytes: number): B {
  const out = new Uint8Array(bytes);
  let v = BigInt(value);
  for (let i = bytes - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/** HKDF info of deriveLabel: u16(length) ‖ u8(len) ‖ "e2e.v1 " ‖ label ‖ u8(len(ctx)) ‖ ctx. */
export function labelInfo(label: string, context: B, length: number): B {
  const full = enc.encode(LABEL_PREFIX + label);
  return cat(
    be(length, 2),
    be(full.length, 1),
    full,
    be(context.length, 1),
    context,
  );
}

/** HKDF-SHA256(ikm = secret, salt, info) to `length` bytes. */
export async function hkdf(
  secret: B,
  salt: B,
  info: B,
  length: number,
): Promise<B> {
  const k = await crypto.subtle.importKey("raw", secret, "HKDF", false, [
    "deriveBits",
  ]);
  return new Uint8Array(
    await crypto.subtle.deriveBits(
      { name: "HKDF", hash: "SHA-256", salt, info },
      k,
      length * 8,
    ),
  );
}

/** SHA-256. */
export async function sha(data: B): Promise<B> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", data));
}

/** key_d,e and iv_d,e from master_e (raw). */
export async function refTrafficKeys(
  master: B,
  sessionHash: B,
  direction: "i2r" | "r2i",
  epoch: number,
): Promise<{ key: B; iv: B; keyInfo: B; ivInfo: B }> {
  const keyInfo = labelInfo(`${direction} key`, be(epoch, 4), 32);
  const ivInfo = labelInfo(`${direction} iv`, be(epoch, 4), 12);
  return {
    key: await hkdf(master, sessionHash, keyInfo, 32),
    iv: await hkdf(master, sessionHash, ivInfo, 12),
    keyInfo,
    ivInfo,
  };
}

/** master_{e+1} raw = deriveLabel(master_e, salt = shared, "rekey", u32(e+1), 32). */
export async function refRekeyMaster(
  master: B,
  shared: B,
  newEpoch: number,
): Promise<{ master: B; info: B }> {
  const info = labelInfo("rekey", be(newEpoch, 4), 32);
  return { master: await hkdf(master, shared, info, 32), info };
}

/** ver 1 ‖ type 0x04 ‖ u32(epoch) ‖ u64(counter). */
export function refHeader(epoch: number, counter: bigint): B {
  return cat(new Uint8Array([1, 4]), be(epoch, 4), be(counter, 8));
}

/** iv XOR (0^4 ‖ u64(counter)). */
export function refNonce(iv: B, counter: bigint): B {
  const c = cat(new Uint8Array(4), be(counter, 8));
  return iv.map((x, i) => x ^ c[i]);
}

/** header ‖ senderId ‖ recipientId. */
export function refAad(header: B, senderId: B, recipientId: B): B {
  return cat(header, senderId, recipientId);
}

/**
 * Every bucket (whole relay frame) of PROTOCOL.md §2.2.3, listed: 256, 512,
 * 1024, then for each power of two 2^k, k = 11..16, the 16 sizes
 * 2^(k−1) + j · 2^(k−5), j = 1..16 (1088, 1152, …, 2048, 2176, …, 65536).
 */
export const REF_BUCKETS: readonly number[] = [256, 512, 1024].concat(
  ...Array.from(
    { length: 6 },
    (_, i) =>
      Array.from(
        { length: 16 },
        (_, j) => 2 ** (i + 10) + (j + 1) * 2 ** (i + 6),
      ),
  ),
);

/** The smallest bucket of {@link REF_BUCKETS} holding n inner bytes + 52. */
export function refBucket(n: number): number {
  const b = REF_BUCKETS.find((x) => x >= n + FRAME_OVERHEAD);
  if (b === undefined) throw new RangeError(`${n} inner bytes fit no bucket`);
  return b;
}

/** innerType ‖ flags ‖ u64(seq) ‖ u32(bodyLen) ‖ body ‖ [sig] ‖ zeros to `padTo` (default: the minimal bucket − 52). */
export function refInner(
  type: number,
  flags: number,
  seq: bigint,
  body: B,
  signature?: B,
  padTo?: number,
): B {
  const content = cat(
    new Uint8Array([type, flags]),
    be(seq, 8),
    be(body.length, 4),
    body,
    signature ?? new Uint8Array(0),
  );
  const out = new Uint8Array(
    padTo ?? refBucket(content.length) - FRAME_OVERHEAD,
  );
  out.set(content);
  return out;
}

/** One message of an inner plaintext (PROTOCOL.md §2.2.3). */
export interface RefMessage {
  type: number;
  seq: bigint;
  body: B;
  signature?: B;
  /** Default: 1 when signed, else 0. */
  flags?: number;
}

/** innerType ‖ flags ‖ u64(seq) ‖ u32(bodyLen) ‖ body ‖ [sig]: one message, unpadded. */
export function refMessage(m: RefMessage): B {
  return cat(
    new Uint8Array([m.type, m.flags ?? (m.signature ? 1 : 0)]),
    be(m.seq, 8),
    be(m.body.length, 4),
    m.body,
    m.signature ?? new Uint8Array(0),
  );
}

/** message | message … | zeros to `padTo` (default: the minimal bucket − 52 of the messages' total length). */
export function refInnerMany(msgs: RefMessage[], padTo?: number): B {
  const content = cat(...msgs.map(refMessage));
  const out = new Uint8Array(
    padTo ?? refBucket(content.length) - FRAME_OVERHEAD,
  );
  out.set(content);
  return out;
}

/**
 * Body length per inner type (§2.2.3): DUMMY, CLOSE, CHECKPOINT empty; ACK
 * 8 + 128 + 8; REKEY_INIT/RESP 65 + 64. DATA (1) is 0..MAX_BODY.
 */
export const REF_BODY_LENGTH: Record<number, number> = {
  2: 0,
  3: 144,
  4: 129,
  5: 129,
  6: 0,
  7: 0,
};

/**
 * Strict decoding of a padded inner plaintext as PROTOCOL.md §2.2.3 states
 * it: length = bucket − 52 of a bucket of {@link REF_BUCKETS}; messages
 * back to back until a zero byte where a message would start; each with a
 * known type, only flags bit 0, seq ≠ 0 exactly for reliable types, no
 * signature on DUMMY/ACK, the body length of its type, header and body
 * inside the plaintext; several
 * messages only if all are DATA with consecutive seqs, at most 64; padding
 * all zero; the smallest bucket for the content. Throws an Error naming the
 * violation (a receiver's `malformed`).
 */
export function refDecodeInner(pt: B): RefMessage[] {
  const bad = (why: string): never => {
    throw new Error(`malformed: ${why}`);
  };
  const bucket = pt.length + FRAME_OVERHEAD;
  if (!REF_BUCKETS.includes(bucket)) bad("length is not bucket − 52");
  const num = (at: number, n: number) =>
    pt.subarray(at, at + n).reduce((v, x) => (v << 8n) | BigInt(x), 0n);
  const msgs: RefMessage[] = [];
  let at = 0;
  while (at < pt.length && pt[at] !== 0) {
    if (msgs.length === 64) bad("more than 64 messages");
    if (at + 14 > pt.length) bad("message header past the end");
    const type = pt[at], flags = pt[at + 1];
    const seq = num(at + 2, 8), bodyLen = Number(num(at + 10, 4));
    if (type < 1 || type > 7) bad(`type ${type}`);
    if (flags > 1) bad(`flags ${flags}`);
    const reliable = type !== 2 && type !== 3;
    if (reliable !== (seq !== 0n)) bad("seq rule");
    if (!reliable && flags === 1) bad("signature on DUMMY/ACK");
    const end = at + 14 + bodyLen + 64 * flags;
    if (bodyLen > 65406) bad("body longer than MAX_BODY");
    const want = REF_BODY_LENGTH[type];
    if (want !== undefined && bodyLen !== want) {
      bad(`type ${type} needs a ${want}-byte body, has ${bodyLen}`);
    }
    if (end > pt.length) bad("body past the end");
    const m: RefMessage = {
      type,
      seq,
      body: pt.slice(at + 14, at + 14 + bodyLen),
    };
    if (flags === 1) m.signature = pt.slice(end - 64, end);
    const prev = msgs.at(-1);
    if (prev && (prev.type !== 1 || type !== 1)) bad("non-DATA shares");
    if (prev && seq !== prev.seq + 1n) bad("seqs not consecutive");
    msgs.push(m);
    at = end;
  }
  if (msgs.length === 0) bad("no message");
  if (pt.subarray(at).some((x) => x !== 0)) bad("non-zero padding");
  if (refBucket(at) !== bucket) bad("not the smallest bucket");
  return msgs;
}

/** AES-256-GCM encryption: ciphertext ‖ tag. */
export async function refSeal(
  key: B,
  nonce: B,
  plaintext: B,
  aad: B,
): Promise<B> {
  const k = await crypto.subtle.importKey("raw", key, "AES-GCM", false, [
    "encrypt",
  ]);
  return new Uint8Array(
    await crypto.subtle.encrypt(
      { name: "AES-GCM", iv: nonce, additionalData: aad },
      k,
      plaintext,
    ),
  );
}

/** AES-256-GCM decryption; null when the tag does not verify. */
export async function refOpen(
  key: B,
  nonce: B,
  sealed: B,
  aad: B,
): Promise<B | null> {
  const k = await crypto.subtle.importKey("raw", key, "AES-GCM", false, [
    "decrypt",
  ]);
  try {
    return new Uint8Array(
      await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: nonce, additionalData: aad },
        k,
        sealed,
      ),
    );
  } catch {
    return null;
  }
}

/** H_0 = SHA-256("e2e.v1 chain\0" ‖ sessionHash ‖ senderRole). */
export function refChainStart(sessionHash: B, role: string): Promise<B> {
  return sha(cat(enc.encode(CHAIN_LABEL), sessionHash, enc.encode(role)));
}

/** H_{s−1} ‖ u64(s) ‖ u8(innerType) ‖ u32(bodyLen) ‖ body. */
export function refChainStepInput(
  prev: B,
  seq: bigint,
  type: number,
  body: B,
): B {
  return cat(prev, be(seq, 8), be(type, 1), be(body.length, 4), body);
}

/** "e2e.v1 chain signature\0" ‖ senderRole ‖ fp(sender) ‖ fp(recipient) ‖ sessionHash ‖ u64(s) ‖ H_s. */
export function refChainSignatureInput(
  role: string,
  senderFp: B,
  recipientFp: B,
  sessionHash: B,
  seq: bigint,
  head: B,
): B {
  return cat(
    enc.encode(CHAIN_SIGNATURE_LABEL),
    enc.encode(role),
    senderFp,
    recipientFp,
    sessionHash,
    be(seq, 8),
    head,
  );
}

/** ACK body: u64(highest) ‖ bitmap(128) ‖ u64(cumulativeSeq). */
export function refAckBody(
  highest: bigint,
  counters: bigint[],
  cumulativeSeq: bigint,
): B {
  const bitmap = new Uint8Array(128);
  for (const c of counters) {
    const i = Number(highest - c);
    bitmap[i >> 3] |= 1 << (i & 7);
  }
  return cat(be(highest, 8), bitmap, be(cumulativeSeq, 8));
}

/** The fields {@link refRecord} builds one record from. */
export interface RecordFields {
  name: string;
  direction: "i2r" | "r2i";
  epoch: number;
  counter: bigint;
  innerType: number;
  seq: bigint;
  body: B;
  bodyText?: string;
  signature?: B;
}

/** Builds every value of one record and seals it. */
export async function refRecord(
  keys: { key: B; iv: B },
  r: RecordFields,
  senderId: B,
  recipientId: B,
): Promise<RecordVector> {
  const flags = r.signature ? 1 : 0;
  const header = refHeader(r.epoch, r.counter);
  const nonce = refNonce(keys.iv, r.counter);
  const aad = refAad(header, senderId, recipientId);
  const inner = refInner(r.innerType, flags, r.seq, r.body, r.signature);
  const packet = cat(header, await refSeal(keys.key, nonce, inner, aad));
  return {
    name: r.name,
    direction: r.direction,
    epoch: r.epoch,
    counter: r.counter.toString(),
    innerType: r.innerType,
    flags,
    seq: r.seq.toString(),
    ...(r.bodyText !== undefined ? { bodyText: r.bodyText } : {}),
    body: r.body.toHex(),
    bucket: packet.length + RELAY_DATA_HEADER,
    header: header.toHex(),
    nonce: nonce.toHex(),
    aad: aad.toHex(),
    innerPlaintext: inner.toHex(),
    packet: packet.toHex(),
  };
}

// ── Fixed inputs ────────────────────────────────────────────────────────────

/** Epoch-0 master: bytes 0x00..0x1f. */
export const MASTER = Uint8Array.from({ length: 32 }, (_, i) => i);
/** sessionHash: bytes 0x20..0x3f. */
export const SESSION_HASH = Uint8Array.from({ length: 32 }, (_, i) => 0x20 + i);
/** Initiator relay session ID. */
export const INITIATOR_ID = Uint8Array.fromHex(
  "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
);
/** Responder relay session ID. */
export const RESPONDER_ID = Uint8Array.fromHex(
  "b0b1b2b3b4b5b6b7b8b9babbbcbdbebf",
);
/** Body of the first DATA record. */
export const BODY_1 = "pay 125.00 EUR to ACME";
/** Body of the second (signed) DATA record. */
export const BODY_2 = "confirm order 4711";
/** Bodies of the three DATA messages (seqs 3, 4, 5; 4 signed) coalesced into one record. */
export const COALESCED_BODIES = [
  "ship order 4711: 12 pallets to Hamburg",
  "invoice 4711-A: 1250.00 EUR, due in 30 days",
  "tracking number HH-4711-0042",
] as const;

/** Lengths of the two DATA bodies of good_record_data_large.json: frames of 1216 and 5120 bytes. */
export const LARGE_BODY_LENGTHS = [1100, 5000] as const;
/** Deterministic text body of `n` bytes for good_record_data_large.json. */
export function largeBody(n: number): string {
  return "statement line 0042: 1250.00 EUR; ".repeat(Math.ceil(n / 30)).slice(
    0,
    n,
  );
}

// ── Generation ──────────────────────────────────────────────────────────────

const ECDH = { name: "ECDH", namedCurve: "P-256" } as const;
const ECDSA = { name: "ECDSA", namedCurve: "P-256" } as const;

async function freshEphemeral(): Promise<{ pkcs8: string; pub: string }> {
  const pair = await crypto.subtle.generateKey(ECDH, true, ["deriveBits"]);
  return {
    pkcs8: new Uint8Array(
      await crypto.subtle.exportKey("pkcs8", pair.privateKey),
    ).toHex(),
    pub: new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey))
      .toHex(),
  };
}

/** ECDH P-256 between a PKCS#8 private key and a raw public point. */
export async function refEcdh(pkcs8: B, peerPublic: B): Promise<B> {
  const priv = await crypto.subtle.importKey("pkcs8", pkcs8, ECDH, false, [
    "deriveBits",
  ]);
  const pub = await crypto.subtle.importKey("raw", peerPublic, ECDH, false, []);
  return new Uint8Array(
    await crypto.subtle.deriveBits({ name: "ECDH", public: pub }, priv, 256),
  );
}

/** Hex form of one direction's keys, IVs and their info strings. */
export function hexKeys(
  k: { key: B; iv: B; keyInfo: B; ivInfo: B },
): DirectionKeys {
  return {
    key: k.key.toHex(),
    keyInfo: k.keyInfo.toHex(),
    iv: k.iv.toHex(),
    ivInfo: k.ivInfo.toHex(),
  };
}

/** Writes a vector file: `value` as JSON, two-space indented, newline-terminated. */
export async function write(
  dir: URL,
  name: string,
  value: unknown,
): Promise<void> {
  await Deno.writeTextFile(
    new URL(name, dir),
    JSON.stringify(value, null, 2) + "\n",
  );
}

async function generate(dir: URL, fresh: boolean): Promise<void> {
  const h = (s: string) => Uint8Array.fromHex(s);
  // Rekey ephemerals: read back unless --fresh.
  let old: KeysVector | undefined;
  if (!fresh) {
    try {
      old = JSON.parse(
        await Deno.readTextFile(new URL("good_record_keys.json", dir)),
      );
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  const ephI = old
    ? {
      pkcs8: old.rekey.initiatorEphemeralPkcs8,
      pub: old.rekey.initiatorEphemeralPublic,
    }
    : await freshEphemeral();
  const ephR = old
    ? {
      pkcs8: old.rekey.responderEphemeralPkcs8,
      pub: old.rekey.responderEphemeralPublic,
    }
    : await freshEphemeral();

  // ── keys
  const k0i = await refTrafficKeys(MASTER, SESSION_HASH, "i2r", 0);
  const k0r = await refTrafficKeys(MASTER, SESSION_HASH, "r2i", 0);
  const shared = await refEcdh(h(ephI.pkcs8), h(ephR.pub));
  const shared2 = await refEcdh(h(ephR.pkcs8), h(ephI.pub));
  if (shared.toHex() !== shared2.toHex()) throw new Error("ECDH sides differ");
  const m1 = await refRekeyMaster(MASTER, shared, 1);
  const keys: KeysVector = {
    description:
      "Traffic keys (PROTOCOL.md §2.2.1) from a fixed epoch-0 master, and the signed-rekey master derivation (§2.2.7) from fixed ephemerals. key_d,e = deriveLabel(master_e, sessionHash, '<d> key', u32(e), 32), iv_d,e = deriveLabel(master_e, sessionHash, '<d> iv', u32(e), 12); master_1 = deriveLabel(master_0, ECDH shared, 'rekey', u32(1), 32). Every value is deterministic.",
    master: MASTER.toHex(),
    sessionHash: SESSION_HASH.toHex(),
    epoch0: { i2r: hexKeys(k0i), r2i: hexKeys(k0r) },
    rekey: {
      newEpoch: 1,
      initiatorEphemeralPkcs8: ephI.pkcs8,
      initiatorEphemeralPublic: ephI.pub,
      responderEphemeralPkcs8: ephR.pkcs8,
      responderEphemeralPublic: ephR.pub,
      sharedSecret: shared.toHex(),
      info: m1.info.toHex(),
      master1: m1.master.toHex(),
    },
    epoch1: {
      i2r: hexKeys(await refTrafficKeys(m1.master, SESSION_HASH, "i2r", 1)),
      r2i: hexKeys(await refTrafficKeys(m1.master, SESSION_HASH, "r2i", 1)),
    },
  };

  // ── data records (identities from good_handshake.json)
  const hsv = JSON.parse(
    await Deno.readTextFile(new URL("good_handshake.json", dir)),
  );
  const identity = async (
    p: { identityPkcs8: string; identitySpki: string },
  ) => ({
    identityPkcs8: p.identityPkcs8,
    identitySpki: p.identitySpki,
    fingerprint: (await sha(h(p.identitySpki))).toHex(),
  });
  const idI = await identity(hsv.initiator);
  const idR = await identity(hsv.responder);
  const body1 = enc.encode(BODY_1), body2 = enc.encode(BODY_2);
  const h0 = await refChainStart(SESSION_HASH, "initiator");
  const h1 = await sha(refChainStepInput(h0, 1n, 1, body1));
  const step2Input = refChainStepInput(h1, 2n, 1, body2);
  const h2 = await sha(step2Input);
  const sigInput = refChainSignatureInput(
    "initiator",
    h(idI.fingerprint),
    h(idR.fingerprint),
    SESSION_HASH,
    2n,
    h2,
  );
  const signKey = await crypto.subtle.importKey(
    "pkcs8",
    h(idI.identityPkcs8),
    ECDSA,
    false,
    ["sign"],
  );
  const signature = new Uint8Array(
    await crypto.subtle.sign(
      { name: "ECDSA", hash: "SHA-256" },
      signKey,
      sigInput,
    ),
  );
  const rec1 = await refRecord(
    k0i,
    {
      name: "data_seq1",
      direction: "i2r",
      epoch: 0,
      counter: 0n,
      innerType: 1,
      seq: 1n,
      body: body1,
      bodyText: BODY_1,
    },
    INITIATOR_ID,
    RESPONDER_ID,
  );
  const rec2 = await refRecord(
    k0i,
    {
      name: "data_seq2_signed",
      direction: "i2r",
      epoch: 0,
      counter: 1n,
      innerType: 1,
      seq: 2n,
      body: body2,
      bodyText: BODY_2,
      signature,
    },
    INITIATOR_ID,
    RESPONDER_ID,
  );
  rec2.chain = {
    senderRole: "initiator",
    h0: h0.toHex(),
    h1: h1.toHex(),
    h2: h2.toHex(),
    step2Input: step2Input.toHex(),
    signatureInput: sigInput.toHex(),
    signature: signature.toHex(),
  };
  const data: DataVector = {
    description:
      "Two DATA records the initiator sends (i2r, epoch 0) under the keys of good_record_keys.json: seq 1 at counter 0, then seq 2 at counter 1 carrying a chain signature over H_2 (flags bit 0). Everything but the signature is deterministic; the signature is one recorded run (verify it with the initiator's SPKI; Deno's ECDSA happens to be deterministic, others may randomize). A record sealed with another signature differs only from the signature bytes on.",
    base: "good_record_keys.json",
    initiatorId: INITIATOR_ID.toHex(),
    responderId: RESPONDER_ID.toHex(),
    initiator: idI,
    responder: idR,
    records: [rec1, rec2],
  };

  // ── Coalesced: seqs 3, 4, 5 in one record (counter 2), seq 4 signed, as a
  // Session with signEvery 2 seals a sendMany of three bodies after data_seq2.
  const messages: CoalescedMessage[] = [];
  const refMsgs: RefMessage[] = [];
  let prev = h2, offset = 0;
  for (const [i, text] of COALESCED_BODIES.entries()) {
    const seq = BigInt(3 + i), body = enc.encode(text);
    const stepInput = refChainStepInput(prev, seq, 1, body);
    const head = await sha(stepInput);
    const chain: MessageChain = {
      senderRole: "initiator",
      prev: prev.toHex(),
      stepInput: stepInput.toHex(),
      head: head.toHex(),
    };
    const m: RefMessage = { type: 1, seq, body };
    if (seq === 4n) {
      const input = refChainSignatureInput(
        "initiator",
        h(idI.fingerprint),
        h(idR.fingerprint),
        SESSION_HASH,
        seq,
        head,
      );
      m.signature = new Uint8Array(
        await crypto.subtle.sign(
          { name: "ECDSA", hash: "SHA-256" },
          signKey,
          input,
        ),
      );
      chain.signatureInput = input.toHex();
      chain.signature = m.signature.toHex();
    }
    const length = refMessage(m).length;
    messages.push({
      innerType: 1,
      flags: m.signature ? 1 : 0,
      seq: seq.toString(),
      bodyText: text,
      body: body.toHex(),
      offset,
      length,
      chain,
    });
    refMsgs.push(m);
    prev = head;
    offset += length;
  }
  const cHeader = refHeader(0, 2n);
  const cNonce = refNonce(k0i.iv, 2n);
  const cAad = refAad(cHeader, INITIATOR_ID, RESPONDER_ID);
  const cInner = refInnerMany(refMsgs);
  const cPacket = cat(cHeader, await refSeal(k0i.key, cNonce, cInner, cAad));
  const coalesced: CoalescedVector = {
    description:
      `Coalescing (PROTOCOL.md §2.2.3): continuing good_record_data.json, the initiator's next record (i2r, epoch 0, counter 2) holds three DATA messages with consecutive seqs 3, 4, 5, back to back, the middle one (seq 4) carrying a chain signature over H_4 (flags bit 0). Each message keeps its own seq and chain link (H_3 extends H_2 of good_record_data.json). Together they need ${offset} bytes, so the record is padded to the ${
        cInner.length + FRAME_OVERHEAD
      }-byte bucket (${cInner.length}-byte plaintext) although each alone would fit 256. A Session with signEvery 2 seals exactly this from sendMany of the three bodies after data_seq1 and data_seq2 (the signature gap elapsed). Everything but the signature is deterministic; the signature is one recorded run (verify it with the initiator's SPKI of good_record_data.json); a record sealed with another signature differs only from the signature bytes on.`,
    base: "good_record_data.json",
    record: {
      name: "data_seq3_5_coalesced",
      direction: "i2r",
      epoch: 0,
      counter: "2",
      messages,
      contentLength: offset,
      bucket: cPacket.length + RELAY_DATA_HEADER,
      header: cHeader.toHex(),
      nonce: cNonce.toHex(),
      aad: cAad.toHex(),
      innerPlaintext: cInner.toHex(),
      packet: cPacket.toHex(),
    },
  };

  // ── Large: two DATA records (counters 0, 1; seqs 1, 2) in fine buckets.
  const largeRecords: RecordVector[] = [];
  for (const [i, n] of LARGE_BODY_LENGTHS.entries()) {
    const text = largeBody(n);
    largeRecords.push(
      await refRecord(
        k0i,
        {
          name: `data_seq${i + 1}_${n}`,
          direction: "i2r",
          epoch: 0,
          counter: BigInt(i),
          innerType: 1,
          seq: BigInt(i + 1),
          body: enc.encode(text),
          bodyText: text,
        },
        INITIATOR_ID,
        RESPONDER_ID,
      ),
    );
  }
  const large: LargeVector = {
    description:
      `Fine padding buckets (PROTOCOL.md §2.2.3): an alternative start of the conversation of good_record_data.json (same keys, relay IDs), two unsigned i2r DATA records of ${
        LARGE_BODY_LENGTHS.join(" and ")
      } bytes (counters 0 and 1, seqs 1 and 2). Above 1024 bytes the frame is the content rounded up to 1/16 of its power of two: ${
        LARGE_BODY_LENGTHS[0]
      } + 14 + 52 = ${LARGE_BODY_LENGTHS[0] + 66} → ${
        largeRecords[0].bucket
      } (steps of 64 in 1024..2048), ${LARGE_BODY_LENGTHS[1]} + 66 = ${
        LARGE_BODY_LENGTHS[1] + 66
      } → ${
        largeRecords[1].bucket
      } (steps of 256 in 4096..8192). A fresh responder Session delivers both. Deterministic.`,
    base: "good_record_data.json",
    records: largeRecords,
  };

  // ── ACK: the responder acknowledges both records (counters 0 and 1, seqs 1..2).
  const ackBody = refAckBody(1n, [0n, 1n], 2n);
  const ackRec = await refRecord(
    k0r,
    {
      name: "ack",
      direction: "r2i",
      epoch: 0,
      counter: 0n,
      innerType: 3,
      seq: 0n,
      body: ackBody,
    },
    RESPONDER_ID,
    INITIATOR_ID,
  );
  const ack: AckVector = {
    description:
      "The responder's first packet (r2i, epoch 0, counter 0): an ACK (inner type 3, seq 0, unsigned) of the two records of good_record_data.json. Body (144 bytes) = u64(highest) ‖ bitmap(128) ‖ u64(cumulativeSeq). Deterministic.",
    base: "good_record_data.json",
    highest: "1",
    bitmap: ackBody.subarray(8, 136).toHex(),
    acknowledgedCounters: ["0", "1"],
    cumulativeSeq: "2",
    record: ackRec,
  };

  // ── fail vectors, all i2r at epoch 0, received by the responder
  /** The two outcomes most fail vectors share: a forgery dropped and counted, an authenticated violation that ends the session. */
  const FORGED: FailExpectation = {
    record: "decrypt-failed",
    session: "dropped",
    stat: "forgeries",
  };
  const MALFORMED: FailExpectation = {
    record: "malformed",
    session: "failed",
    error: "malformed",
  };
  const p1 = h(rec1.packet);
  const header1 = h(rec1.header);
  const nonce1 = h(rec1.nonce);
  const aad1 = h(rec1.aad);
  const sealInner = async (inner: B) =>
    cat(header1, await refSeal(k0i.key, nonce1, inner, aad1));
  const fails: Record<string, Omit<FailVector, "base" | "direction">> = {};
  {
    const p = p1.slice();
    p[p.length - 1] ^= 0x01;
    fails.bad_tag = {
      description:
        "data_seq1 with the last tag bit flipped: the AEAD tag does not verify; a relay could do this, so the packet is dropped and counted, the session goes on.",
      packet: p.toHex(),
      expected: FORGED,
    };
  }
  {
    const inner = h(rec1.innerPlaintext);
    const swapped = refAad(header1, RESPONDER_ID, INITIATOR_ID);
    const p = cat(header1, await refSeal(k0i.key, nonce1, inner, swapped));
    fails.swapped_ids = {
      description:
        "data_seq1 sealed with the relay IDs swapped in the AAD (senderId = responder, recipientId = initiator): the receiver's AAD differs, the tag does not verify; dropped and counted.",
      packet: p.toHex(),
      expected: FORGED,
    };
  }
  {
    const inner = h(rec1.innerPlaintext);
    inner[inner.length - 1] = 0x01;
    fails.nonzero_padding = {
      description:
        "data_seq1 whose last padding byte is 0x01, correctly sealed: authenticates, then strict inner decoding fails; an authenticated violation ends the session.",
      packet: (await sealInner(inner)).toHex(),
      innerPlaintext: inner.toHex(),
      expected: MALFORMED,
    };
  }
  {
    const inner = refInner(1, 0, 1n, body1, undefined, 512 - FRAME_OVERHEAD);
    fails.non_minimal_bucket = {
      description:
        "data_seq1 padded to the 512-byte bucket (460-byte plaintext) although it fits the 256-byte one: authenticates, then fails strict decoding; ends the session.",
      packet: (await sealInner(inner)).toHex(),
      innerPlaintext: inner.toHex(),
      expected: MALFORMED,
    };
  }
  {
    // data_seq1 of good_record_data_large.json padded to a wrong fine size.
    const large = enc.encode(largeBody(LARGE_BODY_LENGTHS[0]));
    const padded = async (name: string, frame: number, why: string) => {
      const inner = refInner(
        1,
        0,
        1n,
        large,
        undefined,
        frame - FRAME_OVERHEAD,
      );
      fails[name] = {
        description: `good_record_data_large.json's data_seq1 (${
          LARGE_BODY_LENGTHS[0]
        }-byte body) ${why}: authenticates, then fails strict decoding; ends the session.`,
        packet: (await sealInner(inner)).toHex(),
        innerPlaintext: inner.toHex(),
        expected: MALFORMED,
      };
    };
    await padded(
      "non_minimal_fine_bucket",
      1280,
      "padded to the 1280-byte bucket although it fits 1216 (the next fine bucket down)",
    );
    await padded(
      "off_grid_bucket",
      1200,
      "padded to a 1200-byte frame (1148-byte plaintext): big enough, but 1200 is no bucket (1152 and 1216 are)",
    );
  }
  {
    const inner = refInner(1, 0x02, 1n, body1);
    fails.bad_flags = {
      description:
        "data_seq1 with flags = 0x02 (an undefined bit): authenticates, then fails strict decoding; ends the session.",
      packet: (await sealInner(inner)).toHex(),
      innerPlaintext: inner.toHex(),
      expected: MALFORMED,
    };
  }
  fails.truncated_header = {
    description:
      "data_seq1 cut to 20 bytes, shorter than header (14) + tag (16): malformed cleartext header; dropped and counted.",
    packet: p1.slice(0, 20).toHex(),
    expected: { record: "malformed", session: "dropped", stat: "malformed" },
  };
  fails.truncated_tag = {
    description:
      "data_seq1 without its last 16 bytes (ciphertext cut): the tag does not verify; dropped and counted.",
    packet: p1.slice(0, p1.length - 16).toHex(),
    expected: FORGED,
  };
  {
    const p = p1.slice();
    p[0] = 2;
    fails.wrong_version = {
      description:
        "data_seq1 with version byte 2: refused before decryption (unsupported-version at record level); the session drops and counts it as malformed.",
      packet: p.toHex(),
      expected: {
        record: "unsupported-version",
        session: "dropped",
        stat: "malformed",
      },
    };
  }
  {
    const p = p1.slice();
    p[5] = 7; // epoch 7
    fails.unknown_epoch = {
      description:
        "data_seq1 with epoch 7 in its header: the receiver holds no key for it; dropped and counted (a strict opener with the epoch-0 key fails the tag, the header being in the AAD).",
      packet: p.toHex(),
      expected: {
        record: "decrypt-failed",
        session: "dropped",
        stat: "unknownEpoch",
      },
    };
  }

  // Coalesced records that authenticate but break §2.2.3 (all at counter 0).
  const coalescedFail = async (
    name: string,
    description: string,
    inner: B,
  ) => {
    fails[`coalesced_${name}`] = {
      description,
      packet: (await sealInner(inner)).toHex(),
      innerPlaintext: inner.toHex(),
      expected: MALFORMED,
    };
  };
  const data1: RefMessage = { type: 1, seq: 1n, body: body1 };
  await coalescedFail(
    "checkpoint",
    "A record (counter 0) holding DATA seq 1 then an (unsigned, empty) CHECKPOINT seq 2, correctly sealed: only DATA messages may share a record; authenticates, then fails strict decoding; ends the session.",
    refInnerMany([data1, { type: 7, seq: 2n, body: new Uint8Array(0) }]),
  );
  await coalescedFail(
    "seq_gap",
    "A record (counter 0) holding DATA seq 1 then DATA seq 3, correctly sealed: coalesced seqs must be consecutive; authenticates, then fails strict decoding; ends the session.",
    refInnerMany([data1, { type: 1, seq: 3n, body: body2 }]),
  );
  await coalescedFail(
    "too_many",
    "A record (counter 0) holding 65 empty DATA messages, seqs 1..65 (910 bytes, 1024-byte bucket), correctly sealed: at most MAX_MESSAGES_PER_RECORD = 64 share a record; authenticates, then fails strict decoding; ends the session.",
    refInnerMany(
      Array.from({ length: 65 }, (_, i) => ({
        type: 1,
        seq: BigInt(i + 1),
        body: new Uint8Array(0),
      })),
    ),
  );
  await coalescedFail(
    "truncated",
    "A record (counter 0) whose 204-byte plaintext (256-byte bucket) holds DATA seq 1 with a 186-byte body (200 bytes) followed by only the first 4 of the 14 header bytes of a DATA seq 2 (01 00 00 00): the second message's header runs past the plaintext; authenticates, then fails strict decoding; ends the session.",
    cat(
      refMessage({
        type: 1,
        seq: 1n,
        body: enc.encode(BODY_1.padEnd(186, ".")),
      }),
      new Uint8Array([1, 0, 0, 0]),
    ),
  );
  await coalescedFail(
    "dummy_first",
    "A record (counter 0) holding a DUMMY (seq 0, empty) then DATA seq 1, correctly sealed: a DUMMY never shares a record; authenticates, then fails strict decoding; ends the session.",
    refInnerMany([{ type: 2, seq: 0n, body: new Uint8Array(0) }, data1]),
  );

  // Body lengths per inner type (§2.2.3), all i2r at counter 0: each good
  // record is accepted by a fresh responder; each fail vector is the same
  // record with one byte count (or the seq) wrong, still authentic.
  const sign = async (data: B) =>
    new Uint8Array(
      await crypto.subtle.sign(
        { name: "ECDSA", hash: "SHA-256" },
        signKey,
        data,
      ),
    );
  const empty = new Uint8Array(0);
  const closeSig = await sign(refChainSignatureInput(
    "initiator",
    h(idI.fingerprint),
    h(idR.fingerprint),
    SESSION_HASH,
    1n,
    await sha(refChainStepInput(h0, 1n, 6, empty)),
  ));
  const rekeyBody = cat(
    h(ephI.pub),
    await sign(cat(
      enc.encode("e2e.v1 rekey\0"),
      SESSION_HASH,
      be(1, 4),
      enc.encode("initiator"),
      h(ephI.pub),
    )),
  );
  const bodyCases: {
    name: string;
    good: RefMessage;
    events: string[];
    fails: Record<string, { m: RefMessage; why: string }>;
  }[] = [
    {
      name: "dummy",
      good: { type: 2, seq: 0n, body: empty },
      events: [],
      fails: {
        dummy_nonempty: {
          m: { type: 2, seq: 0n, body: new Uint8Array([0x2a]) },
          why: "a DUMMY (seq 0) with a 1-byte body: DUMMY bodies are empty",
        },
      },
    },
    {
      name: "ack",
      good: { type: 3, seq: 0n, body: refAckBody(0n, [], 0n) },
      events: [],
      fails: {
        ack_short: {
          m: { type: 3, seq: 0n, body: refAckBody(0n, [], 0n).slice(0, 143) },
          why: "an ACK with a 143-byte body: an ACK body is exactly 144 bytes",
        },
        ack_long: {
          m: { type: 3, seq: 0n, body: new Uint8Array(145) },
          why: "an ACK with a 145-byte body: an ACK body is exactly 144 bytes",
        },
      },
    },
    {
      name: "rekey_init",
      good: { type: 4, seq: 1n, body: rekeyBody },
      events: ["rekeyed"], // answered at once: nothing of ours is unacked
      fails: {
        rekey_short: {
          m: { type: 4, seq: 1n, body: rekeyBody.slice(0, 128) },
          why:
            "a REKEY_INIT (seq 1) whose body is the valid 129-byte one without its last byte: a rekey body is exactly 65 + 64 bytes",
        },
      },
    },
    {
      name: "close",
      good: { type: 6, seq: 1n, body: empty, signature: closeSig },
      events: ["signature-verified", "peer-closed"],
      fails: {
        close_nonempty: {
          m: {
            type: 6,
            seq: 1n,
            body: new Uint8Array([0x2a]),
            signature: closeSig,
          },
          why:
            "a signed CLOSE (seq 1) with a 1-byte body: CLOSE bodies are empty",
        },
      },
    },
    {
      name: "checkpoint",
      good: { type: 7, seq: 1n, body: empty },
      events: [],
      fails: {
        checkpoint_nonempty: {
          m: { type: 7, seq: 1n, body: new Uint8Array([0x2a]) },
          why:
            "an (unsigned) CHECKPOINT (seq 1) with a 1-byte body: CHECKPOINT bodies are empty",
        },
      },
    },
    {
      name: "data_empty",
      good: { type: 1, seq: 1n, body: empty },
      events: ["message"],
      fails: {
        data_seq_zero: {
          m: { type: 1, seq: 0n, body: empty },
          why: "an empty DATA with seq 0: reliable messages carry seq ≥ 1",
        },
      },
    },
  ];
  const bodyRecords: BodyLengthRecord[] = [];
  for (const c of bodyCases) {
    const inner = refInnerMany([c.good]);
    bodyRecords.push({
      name: c.name,
      innerType: c.good.type,
      flags: c.good.signature ? 1 : 0,
      seq: c.good.seq.toString(),
      bodyLength: c.good.body.length,
      body: c.good.body.toHex(),
      innerPlaintext: inner.toHex(),
      packet: (await sealInner(inner)).toHex(),
      events: c.events,
      failVectors: Object.keys(c.fails).map((n) =>
        `fail_record_body_${n}.json`
      ),
    });
    for (const [name, f] of Object.entries(c.fails)) {
      const bad = refInnerMany([f.m]);
      fails[`body_${name}`] = {
        description:
          `A record (i2r, counter 0) holding ${f.why}; correctly sealed, so it authenticates, then fails strict decoding (§2.2.3); ends the session. The same record with the rule kept is "${c.name}" of good_record_body_lengths.json.`,
        packet: (await sealInner(bad)).toHex(),
        innerPlaintext: bad.toHex(),
        expected: MALFORMED,
      };
    }
  }
  const bodyLengths: BodyLengthsVector = {
    description:
      "Body length per inner type (PROTOCOL.md §2.2.3): one record per rule, i2r at epoch 0 and counter 0 under the keys of good_record_keys.json, each accepted by a fresh responding Session (its events listed: the REKEY_INIT is answered at once, so `rekeyed`). DUMMY, CLOSE and CHECKPOINT bodies are empty, an ACK body is 144 bytes (here highest 0, empty bitmap, cumulativeSeq 0), REKEY_INIT/REKEY_RESP bodies 129 bytes (the REKEY_INIT carries the initiator rekey ephemeral of good_record_keys.json, validly signed for epoch 1), DATA 0..MAX_BODY bytes with seq ≥ 1. The CLOSE's chain signature and the rekey signature are recorded runs (verify, do not compare). Each fail_record_body_*.json named here breaks only that rule.",
    base: "good_record_data.json",
    rules: { "2": 0, "3": 144, "4": 129, "5": 129, "6": 0, "7": 0 },
    records: bodyRecords,
  };

  await write(dir, "good_record_body_lengths.json", bodyLengths);
  await write(dir, "good_record_keys.json", keys);
  await write(dir, "good_record_data.json", data);
  await write(dir, "good_record_ack.json", ack);
  await write(dir, "good_record_data_coalesced.json", coalesced);
  await write(dir, "good_record_data_large.json", large);
  for (const [name, v] of Object.entries(fails)) {
    const full: FailVector = {
      description: v.description,
      base: "good_record_data.json",
      direction: "i2r",
      packet: v.packet,
      ...(v.innerPlaintext ? { innerPlaintext: v.innerPlaintext } : {}),
      expected: v.expected,
    };
    await write(dir, `fail_record_${name}.json`, full);
  }
  console.log(
    `wrote good_record_{keys,data,ack,data_coalesced,body_lengths,data_large}.json and ${
      Object.keys(fails).length
    } fail_record_*.json`,
  );
}

if (import.meta.main) {
  await generate(new URL("./", import.meta.url), Deno.args.includes("--fresh"));
}
