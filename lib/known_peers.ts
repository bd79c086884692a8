/**
 * Known peers, trust on first use (like SSH `known_hosts`), one entry per
 * peer **identity**: keyed by the identity fingerprint, each entry remembers
 * the relay ID the peer was last seen at, an optional name, first/last seen
 * and whether the safety number was verified. A different key presented
 * from a relay ID that belongs to a known peer is refused
 * (`identity-changed`) — for that peer only — until the user explicitly
 * re-trusts it. Another peer (another relay ID, another key) is simply new:
 * many customers of one bank are many entries, not one name.
 *
 * File format version 2 (JSON; PROTOCOL.md §2.3):
 * `{ "version": 2, "peers": { "<fingerprint>": { "fingerprint": "<64 hex>",
 *   "relayId"?: "<26 base32>", "name"?: str, "firstSeen": ISO, "lastSeen": ISO,
 *   "verified": bool } } }`. Version 1 (`peers` keyed by name, no relay ID)
 * is migrated on read: each entry keeps its name and is matched by that name
 * until the peer is seen again and its relay ID recorded.
 *
 * Pure data, sans-I/O; `lib/deno/known_peers_file.ts` reads and updates the
 * file (one entry at a time, under a lock).
 * @module
 */

import {
  KNOWN_PEERS_EVICT_BATCH,
  KNOWN_PEERS_VERSION,
  MAX_KNOWN_PEERS,
  MAX_PEER_NAME_LENGTH,
} from "./constants.ts";
import { ProtocolError } from "./errors.ts";
import { formatFingerprint } from "./fingerprint.ts";

/** One remembered peer identity. */
export interface KnownPeer {
  /** SHA-256 of the peer's SPKI, 64 lower-case hex digits (the key of the entry). */
  fingerprint: string;
  /** The peer's relay session ID (base32) when last seen; absent for entries migrated from version 1. */
  relayId?: string;
  /** Optional display name (`--peer-name`). */
  name?: string;
  /** When this key was first accepted (ISO 8601). */
  firstSeen: string;
  /** When this key was last seen (ISO 8601). */
  lastSeen: string;
  /** True once the user compared the safety number for this key. */
  verified: boolean;
}

/** Who a conversation is with, as far as the driver knows before trusting a key. */
export interface PeerRef {
  /** The peer's relay session ID (base32). */
  relayId?: string;
  /** Its display name, if any (matches only entries migrated from version 1, which have no relay ID). */
  name?: string;
}

/** Verdict of {@link KnownPeers.check}. */
export type PeerStatus = "new" | "known" | "verified" | "changed";

/** Result of {@link KnownPeers.check}. */
export interface PeerCheck {
  /** `new`: key and relay ID never seen; `known`/`verified`: a recorded key; `changed`: the relay ID's peer had another key. */
  status: PeerStatus;
  /** The recorded fingerprint, when the status is `changed`. */
  previous?: string;
}

const FINGERPRINT_RE = /^[0-9a-f]{64}$/;
const RELAY_ID_RE = /^[a-z2-7]{26}$/;
/** Printable names only: no control characters that could forge terminal output. */
// deno-lint-ignore no-control-regex
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/;

/** The set of known peers; mutate with the methods, persist with {@link KnownPeers.serialize}. */
export class KnownPeers {
  // Entries, index arrays and texts are never changed in place (a change
  // replaces them), so a clone shares them: copying the maps is all it costs.
  #peers = new Map<string, Readonly<KnownPeer>>();
  /** Index: relay ID → fingerprints of the entries recorded at it (usually one). */
  #byRelay = new Map<string, readonly string[]>();
  /** Entries without a relay ID (migrated from version 1, matched by name). */
  #unbound = 0;
  /** Index: name → fingerprints of the entries without a relay ID under it (e.g. the service's `ID/ed25519` entries). */
  #unboundByName = new Map<string, readonly string[]>();
  /** Each entry's serialized text, UTF-8 (as in {@link serialize}), dropped when the entry changes. */
  #text = new Map<string, Uint8Array>();
  /** The sorted fingerprints, dropped when an entry is added or removed. */
  #sorted?: readonly string[];
  /** Entries forgotten by the bound on the number of entries. */
  #evicted = 0;
  /** The bound (MAX_KNOWN_PEERS, KNOWN_PEERS_EVICT_BATCH); smaller in tests. */
  #limits: { max: number; batch: number } = {
    max: MAX_KNOWN_PEERS,
    batch: KNOWN_PEERS_EVICT_BATCH,
  };

  /** Creates an empty set; `limits` lowers the bound on entries (tests). */
  constructor(limits?: { max: number; batch: number }) {
    if (limits) this.#limits = limits;
  }

  /** An independent copy (changes to one never show in the other); O(n) map copies, no entry copied. */
  clone(): KnownPeers {
    const out = new KnownPeers(this.#limits);
    out.#evicted = this.#evicted;
    out.#peers = new Map(this.#peers);
    out.#byRelay = new Map(this.#byRelay);
    out.#unbound = this.#unbound;
    out.#unboundByName = new Map(this.#unboundByName);
    out.#text = new Map(this.#text);
    out.#sorted = this.#sorted;
    return out;
  }

  /** Number of known peers. */
  get size(): number {
    return this.#peers.size;
  }

  /** Adds or replaces the entry of `p.fingerprint` (an existing one keeps its place), keeping the indexes. */
  #put(p: KnownPeer): void {
    const old = this.#peers.get(p.fingerprint);
    if (old) this.#unindex(old);
    else if (this.#sorted) {
      const s = this.#sorted;
      this.#sorted = s.toSpliced(
        lowerBound(s, p.fingerprint),
        0,
        p.fingerprint,
      );
    }
    this.#peers.set(p.fingerprint, p);
    this.#text.delete(p.fingerprint);
    this.#index(p);
  }

  #delete(fp: string): boolean {
    const old = this.#peers.get(fp);
    if (!old) return false;
    this.#unindex(old);
    this.#peers.delete(fp);
    this.#text.delete(fp);
    if (this.#sorted) {
      this.#sorted = this.#sorted.toSpliced(lowerBound(this.#sorted, fp), 1);
    }
    return true;
  }

  #index(p: Readonly<KnownPeer>): void {
    if (p.relayId === undefined) {
      this.#unbound++;
      if (p.name !== undefined) add(this.#unboundByName, p.name, p.fingerprint);
      return;
    }
    add(this.#byRelay, p.relayId, p.fingerprint);
  }

  #unindex(p: Readonly<KnownPeer>): void {
    if (p.relayId === undefined) {
      this.#unbound--;
      if (p.name !== undefined) {
        remove(this.#unboundByName, p.name, p.fingerprint);
      }
      return;
    }
    remove(this.#byRelay, p.relayId, p.fingerprint);
  }

  /** Parses a known-peers file (version 2, or version 1 migrated); errors are `bad-known-peers` naming `source`. */
  static parse(json: string, source: string): KnownPeers {
    const fail = (detail: string) =>
      new ProtocolError("bad-known-peers", `${source}: ${detail}`);
    let data: unknown;
    try {
      data = JSON.parse(json);
    } catch (e) {
      throw fail(`not valid JSON (${(e as Error).message})`);
    }
    if (!isRecord(data)) throw fail("not a JSON object");
    if (data.version !== 1 && data.version !== KNOWN_PEERS_VERSION) {
      throw fail(
        `unsupported version ${
          JSON.stringify(data.version)
        } (expected 1 or ${KNOWN_PEERS_VERSION})`,
      );
    }
    if (!isRecord(data.peers)) throw fail(`"peers" is not an object`);
    const v1 = data.version === 1;
    const out = new KnownPeers();
    for (const [key, entry] of Object.entries(data.peers)) {
      const where = `peer ${JSON.stringify(key)}`;
      if (!isRecord(entry)) throw fail(`${where} is not an object`);
      const { fingerprint, firstSeen, lastSeen, verified, relayId } = entry;
      if (
        typeof fingerprint !== "string" || !FINGERPRINT_RE.test(fingerprint)
      ) {
        throw fail(`${where}: "fingerprint" must be 64 lower-case hex digits`);
      }
      const name = v1 ? key : entry.name;
      if (name !== undefined) {
        const problem = typeof name === "string"
          ? checkName(name)
          : "is not a string";
        if (problem) throw fail(`${where}: name ${problem}`);
      }
      if (!v1 && key !== fingerprint) {
        throw fail(`${where}: the key must be the entry's fingerprint`);
      }
      if (
        relayId !== undefined &&
        (v1 || typeof relayId !== "string" || !RELAY_ID_RE.test(relayId))
      ) {
        throw fail(`${where}: "relayId" must be a 26-character base32 ID`);
      }
      for (const [k, v] of [["firstSeen", firstSeen], ["lastSeen", lastSeen]]) {
        if (typeof v !== "string" || Number.isNaN(Date.parse(v))) {
          throw fail(`${where}: "${k}" is not an ISO date`);
        }
      }
      if (typeof verified !== "boolean") {
        throw fail(`${where}: "verified" is not a boolean`);
      }
      const prior = out.#peers.get(fingerprint);
      out.#put({
        fingerprint,
        ...(relayId === undefined ? {} : { relayId: relayId as string }),
        ...(name === undefined ? {} : { name: name as string }),
        firstSeen: firstSeen as string,
        lastSeen: lastSeen as string,
        // Version 1 may list one key under two names: keep it verified if either was.
        verified: verified || (prior?.verified ?? false),
      });
    }
    return out;
  }

  /** The file contents, version 2 (stable order: fingerprints sorted). */
  serialize(): string {
    return UTF8_DECODER.decode(this.serializeBytes());
  }

  /**
   * {@link serialize} as UTF-8 bytes, assembled from each entry's cached
   * text: only entries changed since the last call are stringified, so a
   * write after a few changes costs copying the bytes, not O(n) JSON work.
   */
  serializeBytes(): Uint8Array {
    // Exactly JSON.stringify({ version, peers }, null, 2) + "\n".
    if (this.#peers.size === 0) {
      return UTF8_ENCODER.encode(
        JSON.stringify({ version: KNOWN_PEERS_VERSION, peers: {} }, null, 2) +
          "\n",
      );
    }
    const parts = this.#sortedFingerprints().map((fp) => {
      let t = this.#text.get(fp);
      if (t === undefined) {
        const json = JSON.stringify(this.#peers.get(fp), null, 2);
        t = UTF8_ENCODER.encode(
          `    ${JSON.stringify(fp)}: ${json.replaceAll("\n", "\n    ")}`,
        );
        this.#text.set(fp, t);
      }
      return t;
    });
    const head = UTF8_ENCODER.encode(
      `{\n  "version": ${KNOWN_PEERS_VERSION},\n  "peers": {\n`,
    );
    const tail = UTF8_ENCODER.encode("\n  }\n}\n");
    let size = head.length + tail.length + 2 * (parts.length - 1);
    for (const t of parts) size += t.length;
    const out = new Uint8Array(size);
    out.set(head);
    let off = head.length;
    for (let i = 0; i < parts.length; i++) {
      if (i > 0) {
        out[off++] = 0x2c; // ","
        out[off++] = 0x0a; // "\n"
      }
      out.set(parts[i], off);
      off += parts[i].length;
    }
    out.set(tail, off);
    return out;
  }

  /** Fingerprints of all known peers, sorted. */
  fingerprints(): string[] {
    return [...this.#sortedFingerprints()];
  }

  #sortedFingerprints(): readonly string[] {
    return this.#sorted ??= [...this.#peers.keys()].sort();
  }

  /** A copy of the entry for `fingerprint`, if any. */
  get(fingerprint: string): KnownPeer | undefined {
    const p = this.#peers.get(normalize(fingerprint));
    return p && { ...p };
  }

  /**
   * The entry `peer` is bound to, if any: the one recorded at its relay ID,
   * else a version-1 entry (no relay ID) of the same name.
   */
  find(peer: PeerRef): KnownPeer | undefined {
    const p = this.#find(peer);
    return p && { ...p };
  }

  #find(peer: PeerRef): KnownPeer | undefined {
    // From the indexes: the entry at the relay ID (the first in insertion
    // order should several share it), else the first unbound one by name.
    const fps = peer.relayId === undefined
      ? undefined
      : this.#byRelay.get(peer.relayId);
    if (fps?.length === 1) return this.#peers.get(fps[0]);
    if (fps) {
      for (const p of this.#peers.values()) {
        if (fps.includes(p.fingerprint)) return p;
      }
    }
    if (peer.name === undefined || this.#unbound === 0) return undefined;
    const named = this.#unboundByName.get(peer.name);
    if (named === undefined) return undefined;
    if (named.length === 1) return this.#peers.get(named[0]);
    for (const p of this.#peers.values()) {
      if (p.relayId === undefined && p.name === peer.name) return p;
    }
    return undefined;
  }

  /** Compares the key `fingerprint` presented by `peer` with what is recorded; changes nothing. */
  check(peer: PeerRef, fingerprint: string): PeerCheck {
    const fp = normalize(fingerprint);
    const own = this.#peers.get(fp);
    if (own) return { status: own.verified ? "verified" : "known" };
    const bound = this.#find(peer);
    if (bound) return { status: "changed", previous: bound.fingerprint };
    return { status: "new" };
  }

  /**
   * Records first use of `fingerprint` by `peer`, or refreshes `lastSeen`
   * (and the relay ID, and a missing name) when the key is seen again. A
   * different key for a known peer is refused with `identity-changed`: only
   * {@link retrust} replaces a key. `now` is milliseconds since the epoch.
   */
  record(peer: PeerRef, fingerprint: string, now: number): PeerCheck {
    const fp = normalize(fingerprint);
    checkRef(peer);
    const result = this.check(peer, fp);
    const at = new Date(now).toISOString();
    switch (result.status) {
      case "new":
        this.#makeRoom();
        this.#put({
          fingerprint: fp,
          ...(peer.relayId === undefined ? {} : { relayId: peer.relayId }),
          ...(peer.name === undefined ? {} : { name: peer.name }),
          firstSeen: at,
          lastSeen: at,
          verified: false,
        });
        break;
      case "changed":
        throw identityChanged(peer, result.previous!, fp);
      default: {
        const p = { ...this.#peers.get(fp)!, lastSeen: at };
        if (peer.relayId !== undefined) p.relayId = peer.relayId;
        if (p.name === undefined && peer.name !== undefined) p.name = peer.name;
        this.#put(p);
      }
    }
    return result;
  }

  /** Entries forgotten by the bound so far (this object and the copies it was cloned from). */
  get evicted(): number {
    return this.#evicted;
  }

  /**
   * Before a new entry: at `max` entries, forgets the `batch` unverified
   * entries seen longest ago (all unverified ones if fewer). Strangers can
   * add entries (any fresh key is `new`), so without a bound they could grow
   * the file until it can no longer be read. Verified entries are never
   * forgotten; when every entry is verified the new key is refused.
   */
  #makeRoom(): void {
    const { max, batch } = this.#limits;
    if (this.#peers.size < max) return;
    const old = [...this.#peers.values()].filter((p) => !p.verified);
    if (old.length === 0) {
      throw new ProtocolError(
        "bad-known-peers",
        `known peers full: all ${this.#peers.size} entries are verified (limit ${max}); remove some from known_peers.json`,
      );
    }
    // ISO 8601 UTC strings of one format order as their times do.
    old.sort((a, b) =>
      a.lastSeen < b.lastSeen ? -1 : a.lastSeen > b.lastSeen ? 1 : 0
    );
    const n = Math.min(old.length, Math.max(batch, this.#peers.size - max + 1));
    this.#sorted = undefined; // rebuilt once when next needed, not spliced n times
    for (let i = 0; i < n; i++) this.#delete(old[i].fingerprint);
    this.#evicted += n;
  }

  /** Marks the peer with `fingerprint` verified after the user compared the safety number. */
  markVerified(fingerprint: string): void {
    const p = this.#peers.get(normalize(fingerprint));
    if (p === undefined) {
      throw new RangeError(`no known peer with fingerprint ${fingerprint}`);
    }
    this.#put({ ...p, verified: true });
  }

  /**
   * Explicitly trusts `fingerprint` for `peer` after a user decision: the
   * entry `peer` was bound to (its old key) is forgotten, the new key is
   * recorded unverified.
   */
  retrust(peer: PeerRef, fingerprint: string, now: number): void {
    const fp = normalize(fingerprint);
    checkRef(peer);
    const old = this.#find(peer);
    if (old && old.fingerprint !== fp) this.#delete(old.fingerprint);
    const at = new Date(now).toISOString();
    this.#put({
      fingerprint: fp,
      ...(peer.relayId === undefined ? {} : { relayId: peer.relayId }),
      ...(peer.name ?? old?.name) === undefined
        ? {}
        : { name: (peer.name ?? old?.name)! },
      firstSeen: at,
      lastSeen: at,
      verified: false,
    });
  }

  /** Forgets the peer with `fingerprint`; returns whether it was known. */
  remove(fingerprint: string): boolean {
    return this.#delete(normalize(fingerprint));
  }
}

/** The loud, specific error for a changed key. */
function identityChanged(
  peer: PeerRef,
  previous: string,
  presented: string,
): ProtocolError {
  const who = [
    peer.name === undefined ? undefined : JSON.stringify(peer.name),
    peer.relayId === undefined ? undefined : `at relay ID ${peer.relayId}`,
  ].filter((x) => x !== undefined).join(" ");
  return new ProtocolError(
    "identity-changed",
    `WARNING: the identity key of peer ${who} has CHANGED. Someone may be impersonating this peer (man-in-the-middle), or the peer created a new key. Recorded fingerprint ${
      readable(previous)
    }, presented ${
      readable(presented)
    }. Refusing to continue; compare the presented fingerprint and the safety number with the peer out of band, then re-trust the new key explicitly (the clients: /trust, or --trust with the presented fingerprint).`,
  );
}

/** A hex fingerprint in the grouped form people compare (anything else as is). */
function readable(fp: string): string {
  return FINGERPRINT_RE.test(fp)
    ? formatFingerprint(Uint8Array.fromHex(fp))
    : fp;
}

function normalize(fingerprint: string): string {
  const fp = fingerprint.toLowerCase();
  if (!FINGERPRINT_RE.test(fp)) {
    throw new RangeError("a fingerprint is 64 hex digits");
  }
  return fp;
}

function checkRef(peer: PeerRef): void {
  if (peer.name !== undefined) {
    const problem = checkName(peer.name);
    if (problem) throw new RangeError(`peer name: ${problem}`);
  }
  if (peer.relayId !== undefined && !RELAY_ID_RE.test(peer.relayId)) {
    throw new RangeError("a relay ID is 26 base32 characters");
  }
}

function checkName(name: string): string | undefined {
  if (name.length === 0) return "is empty";
  if (name.length > MAX_PEER_NAME_LENGTH) {
    return `is longer than ${MAX_PEER_NAME_LENGTH} characters`;
  }
  if (CONTROL_RE.test(name)) return "contains control characters";
  return undefined;
}

const UTF8_ENCODER = new TextEncoder();
const UTF8_DECODER = new TextDecoder();

/** Index of the first element of sorted `a` that is ≥ `x`. */
function lowerBound(a: readonly string[], x: string): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Appends `fp` to the index entry `key` (arrays are replaced, never changed: clones share them). */
function add(
  index: Map<string, readonly string[]>,
  key: string,
  fp: string,
): void {
  index.set(key, [...index.get(key) ?? [], fp]);
}

/** Removes `fp` from the index entry `key` (the entry goes when empty). */
function remove(
  index: Map<string, readonly string[]>,
  key: string,
  fp: string,
): void {
  const fps = index.get(key)?.filter((f) => f !== fp);
  if (fps?.length) index.set(key, fps);
  else index.delete(key);
}
