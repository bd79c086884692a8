/**
 * Known peers, trust on first use (like SSH `known_hosts`): the first key seen
 * under a name is recorded; a different key later under the same name is
 * refused (`identity-changed`) until the user explicitly re-trusts it. A peer
 * is marked verified once the safety number was compared out of band.
 *
 * File format (JSON):
 * `{ "version": 1, "peers": { "<name>": { "fingerprint": "<64 hex>",
 *   "firstSeen": ISO, "lastSeen": ISO, "verified": bool } } }`.
 * Pure data, sans-I/O; `lib/deno/key_file.ts` loads and saves the file.
 * @module
 */

import { KNOWN_PEERS_VERSION, MAX_PEER_NAME_LENGTH } from "./constants.ts";
import { ProtocolError } from "./errors.ts";

/** One remembered peer. */
export interface KnownPeer {
  /** SHA-256 of the peer's SPKI, 64 lower-case hex digits. */
  fingerprint: string;
  /** When this key was first accepted (ISO 8601). */
  firstSeen: string;
  /** When this key was last seen (ISO 8601). */
  lastSeen: string;
  /** True once the user compared the safety number for this key. */
  verified: boolean;
}

/** Verdict of {@link KnownPeers.check}. */
export type PeerStatus = "new" | "known" | "verified" | "changed";

/** Result of {@link KnownPeers.check}. */
export interface PeerCheck {
  /** `new`: name never seen; `known`/`verified`: same key as recorded; `changed`: a different key. */
  status: PeerStatus;
  /** The recorded fingerprint, when the status is `changed`. */
  previous?: string;
}

const FINGERPRINT_RE = /^[0-9a-f]{64}$/;
/** Printable names only: no control characters that could forge terminal output. */
// deno-lint-ignore no-control-regex
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/;

/** The set of known peers; mutate with the methods, persist with {@link KnownPeers.serialize}. */
export class KnownPeers {
  #peers = new Map<string, KnownPeer>();

  /** Parses a known-peers file; errors are `bad-known-peers` naming `source`. */
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
    if (data.version !== KNOWN_PEERS_VERSION) {
      throw fail(
        `unsupported version ${
          JSON.stringify(data.version)
        } (expected ${KNOWN_PEERS_VERSION})`,
      );
    }
    if (!isRecord(data.peers)) throw fail(`"peers" is not an object`);
    const out = new KnownPeers();
    for (const [name, entry] of Object.entries(data.peers)) {
      const where = `peer ${JSON.stringify(name)}`;
      const nameProblem = checkName(name);
      if (nameProblem) throw fail(`${where}: ${nameProblem}`);
      if (!isRecord(entry)) throw fail(`${where} is not an object`);
      const { fingerprint, firstSeen, lastSeen, verified } = entry;
      if (
        typeof fingerprint !== "string" || !FINGERPRINT_RE.test(fingerprint)
      ) {
        throw fail(`${where}: "fingerprint" must be 64 lower-case hex digits`);
      }
      for (const [k, v] of [["firstSeen", firstSeen], ["lastSeen", lastSeen]]) {
        if (typeof v !== "string" || Number.isNaN(Date.parse(v))) {
          throw fail(`${where}: "${k}" is not an ISO date`);
        }
      }
      if (typeof verified !== "boolean") {
        throw fail(`${where}: "verified" is not a boolean`);
      }
      out.#peers.set(name, {
        fingerprint,
        firstSeen: firstSeen as string,
        lastSeen: lastSeen as string,
        verified,
      });
    }
    return out;
  }

  /** The file contents (stable order: names sorted). */
  serialize(): string {
    const peers: Record<string, KnownPeer> = {};
    for (const name of this.names()) {
      Object.defineProperty(peers, name, {
        value: { ...this.#peers.get(name)! },
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return JSON.stringify({ version: KNOWN_PEERS_VERSION, peers }, null, 2) +
      "\n";
  }

  /** Names of all known peers, sorted. */
  names(): string[] {
    return [...this.#peers.keys()].sort();
  }

  /** A copy of the entry for `name`, if any. */
  get(name: string): KnownPeer | undefined {
    const p = this.#peers.get(name);
    return p && { ...p };
  }

  /** Compares `fingerprint` (64 hex digits) with what is recorded for `name`; changes nothing. */
  check(name: string, fingerprint: string): PeerCheck {
    const fp = normalize(fingerprint);
    const p = this.#peers.get(name);
    if (p === undefined) return { status: "new" };
    if (p.fingerprint !== fp) {
      return { status: "changed", previous: p.fingerprint };
    }
    return { status: p.verified ? "verified" : "known" };
  }

  /**
   * Records first use of `name` with `fingerprint`, or refreshes `lastSeen`
   * when the same key is seen again. A different key for a known name is
   * refused with `identity-changed`: only {@link retrust} replaces a key.
   * `now` is milliseconds since the epoch.
   */
  record(name: string, fingerprint: string, now: number): PeerCheck {
    const fp = normalize(fingerprint);
    const nameProblem = checkName(name);
    if (nameProblem) throw new RangeError(`peer name: ${nameProblem}`);
    const result = this.check(name, fp);
    const at = new Date(now).toISOString();
    switch (result.status) {
      case "new":
        this.#peers.set(name, {
          fingerprint: fp,
          firstSeen: at,
          lastSeen: at,
          verified: false,
        });
        break;
      case "changed":
        throw identityChanged(name, result.previous!, fp);
      default:
        this.#peers.get(name)!.lastSeen = at;
    }
    return result;
  }

  /**
   * Marks `name` verified after the user compared the safety number for the
   * key with `fingerprint`; refuses if that is not the recorded key.
   */
  markVerified(name: string, fingerprint: string): void {
    const fp = normalize(fingerprint);
    const p = this.#peers.get(name);
    if (p === undefined) {
      throw new RangeError(`no known peer named ${JSON.stringify(name)}`);
    }
    if (p.fingerprint !== fp) throw identityChanged(name, p.fingerprint, fp);
    p.verified = true;
  }

  /** Explicitly replaces the key recorded for `name` (after a user decision); clears `verified`. */
  retrust(name: string, fingerprint: string, now: number): void {
    const fp = normalize(fingerprint);
    const nameProblem = checkName(name);
    if (nameProblem) throw new RangeError(`peer name: ${nameProblem}`);
    const at = new Date(now).toISOString();
    this.#peers.set(name, {
      fingerprint: fp,
      firstSeen: at,
      lastSeen: at,
      verified: false,
    });
  }

  /** Forgets `name`; returns whether it was known. */
  remove(name: string): boolean {
    return this.#peers.delete(name);
  }
}

/** The loud, specific error for a changed key. */
function identityChanged(
  name: string,
  previous: string,
  presented: string,
): ProtocolError {
  return new ProtocolError(
    "identity-changed",
    `WARNING: the identity key of peer ${
      JSON.stringify(name)
    } has CHANGED. Someone may be impersonating this peer (man-in-the-middle), or the peer created a new key. Recorded fingerprint ${previous}, presented ${presented}. Refusing to continue; compare the safety number with the peer out of band, then re-trust the new key explicitly.`,
  );
}

function normalize(fingerprint: string): string {
  const fp = fingerprint.toLowerCase();
  if (!FINGERPRINT_RE.test(fp)) {
    throw new RangeError("a fingerprint is 64 hex digits");
  }
  return fp;
}

function checkName(name: string): string | undefined {
  if (name.length === 0) return "name is empty";
  if (name.length > MAX_PEER_NAME_LENGTH) {
    return `name is longer than ${MAX_PEER_NAME_LENGTH} characters`;
  }
  if (CONTROL_RE.test(name)) return "name contains control characters";
  return undefined;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
