/**
 * Read-modify-write of `known_peers.json` (lib/known_peers.ts) that several
 * processes sharing one keys folder can do at once without losing a
 * decision: every update takes an exclusive lock, re-reads the file, applies
 * its change to the fresh contents, writes the result atomically
 * (lib/deno/atomic_file.ts) and releases the lock. A process never writes
 * back a stale copy.
 *
 * Group commit: the updates of one process to one file are queued, and all
 * those waiting when the lock is obtained are applied in one
 * read-modify-write (one read, one atomic write with its fsyncs), in the
 * order they were made. A bank taking hundreds of new customers a second
 * thus writes the file a few times a second, not once per customer (the
 * file is O(peers) bytes). Each update still resolves only once the write
 * holding its change is on disk, and fails alone when its own change
 * throws: the others of the batch are then applied again, in order, to a
 * fresh copy without it — so `change` may run more than once and must only
 * act on the set it is given.
 *
 * The re-read under the lock is always done (another process may have
 * written since); when the file is byte for byte what this process wrote
 * (or parsed) last, the set kept from then is used instead of parsing it
 * again.
 *
 * The lock is `Deno.FsFile.lock(true)` (flock) on a separate, persistent
 * `<file>.lock` (0600, empty): the data file itself is replaced by rename on
 * every write, so it cannot carry the lock. The kernel releases the lock
 * when its holder exits or crashes, so there is no stale lock to clean up.
 * A lock not obtained within `KNOWN_PEERS_LOCK_TIMEOUT_MS` fails the waiting
 * updates with a clear error (the late lock, if it comes, is released at once).
 *
 * @example
 * ```ts ignore
 * const { result, peers } = await updateKnownPeers(path, (p) => p.markVerified(fp));
 * ```
 * @module
 */

import {
  KNOWN_PEERS_BATCH_MAX,
  KNOWN_PEERS_LOCK_TIMEOUT_MS,
} from "../constants.ts";
import { ProtocolError } from "../errors.ts";
import { KnownPeers } from "../known_peers.ts";
import { PRIVATE_FILE_MODE, writeFileAtomic } from "./atomic_file.ts";
import { lockExclusive } from "./file_lock.ts";
import { parseKnownPeersFile, readKnownPeersFile } from "./key_file.ts";
import { Buffer } from "node:buffer";

/** Options of {@link updateKnownPeers}. */
export interface UpdateKnownPeersOptions {
  /** Longest wait for the lock (ms); default `KNOWN_PEERS_LOCK_TIMEOUT_MS`. */
  lockTimeoutMs?: number;
}

/** One queued update. */
interface Waiter {
  change: (peers: KnownPeers) => unknown;
  lockTimeoutMs: number;
  resolve: (v: { result: unknown; peers: KnownPeers }) => void;
  reject: (e: unknown) => void;
}

/** Per path: the queue, whether a commit runs, and what this process wrote last. */
interface PathState {
  waiting: Waiter[];
  running: boolean;
  /** The bytes last written (or read) and the set they hold (handed out read-only; a batch changes a clone). */
  last?: { bytes: Uint8Array; peers: KnownPeers };
}

const states = new Map<string, PathState>();

/**
 * Applies `change` to the current contents of the known-peers file at
 * `path` under the file's lock and saves the result (when `change` returns
 * without throwing). Resolves to `change`'s result and the fresh set (shared
 * by the updates of a batch and kept for the next one: read it, never change
 * it — the next update works on a copy).
 */
export function updateKnownPeers<T>(
  path: string,
  change: (peers: KnownPeers) => T,
  options: UpdateKnownPeersOptions = {},
): Promise<{ result: T; peers: KnownPeers }> {
  let st = states.get(path);
  if (!st) states.set(path, st = { waiting: [], running: false });
  const { promise, resolve, reject } = Promise.withResolvers<
    { result: unknown; peers: KnownPeers }
  >();
  st.waiting.push({
    change,
    lockTimeoutMs: options.lockTimeoutMs ?? KNOWN_PEERS_LOCK_TIMEOUT_MS,
    resolve,
    reject,
  });
  if (!st.running) void drain(path, st);
  return promise as Promise<{ result: T; peers: KnownPeers }>;
}

/** Commits batches until the queue is empty. */
async function drain(path: string, st: PathState): Promise<void> {
  st.running = true;
  try {
    while (st.waiting.length > 0) await commit(path, st);
  } finally {
    st.running = false;
  }
}

/** One read-modify-write under the lock for the updates waiting once it is held. */
async function commit(path: string, st: PathState): Promise<void> {
  const timeoutMs = st.waiting[0].lockTimeoutMs;
  let file: Deno.FsFile;
  try {
    file = await lock(`${path}.lock`, timeoutMs);
  } catch (e) {
    // Those that asked for this wait fail; later ones with another bound try again.
    for (const w of takeBatch(st, timeoutMs)) w.reject(e);
    return;
  }
  // Taken now: every update made while the lock was awaited joins the batch.
  const batch = takeBatch(st, timeoutMs);
  try {
    const bytes = await readKnownPeersFile(path);
    const base = bytes !== undefined && st.last && same(bytes, st.last.bytes)
      ? st.last.peers
      : bytes === undefined
      ? new KnownPeers()
      : parseKnownPeersFile(bytes, path);
    const { peers, results, live } = applyAll(base, batch);
    const out = peers.serializeBytes();
    if (live.length > 0 && !(bytes && same(out, bytes))) {
      st.last = undefined; // unknown until the write succeeds
      await writeFileAtomic(path, out, PRIVATE_FILE_MODE);
    }
    st.last = { bytes: out, peers };
    batch.forEach((w, i) => {
      const r = results[i];
      if (r.ok) w.resolve({ result: r.value, peers });
      else w.reject(r.error);
    });
  } catch (e) {
    st.last = undefined;
    for (const w of batch) w.reject(e);
  } finally {
    await file.unlock().catch(() => {});
    file.close();
  }
}

/** Byte equality (native memcmp). */
function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length &&
    Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);
}

/** The leading updates that share the lock bound `timeoutMs` (at most KNOWN_PEERS_BATCH_MAX). */
function takeBatch(st: PathState, timeoutMs: number): Waiter[] {
  let n = 0;
  while (
    n < st.waiting.length && n < KNOWN_PEERS_BATCH_MAX &&
    st.waiting[n].lockTimeoutMs === timeoutMs
  ) n++;
  return st.waiting.splice(0, n);
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/**
 * Applies the batch in order to a copy of `base`. When a change throws, it
 * fails alone: the copy is made again and the others re-applied without it
 * (its partial effect, if any, is gone), until a pass has no new failure.
 */
function applyAll(base: KnownPeers, batch: Waiter[]): {
  peers: KnownPeers;
  results: Outcome[];
  live: number[];
} {
  const failed = new Map<number, unknown>();
  for (;;) {
    const peers = base.clone();
    const results: Outcome[] = [];
    const live: number[] = [];
    let fresh = false;
    for (let i = 0; i < batch.length; i++) {
      if (failed.has(i)) {
        results.push({ ok: false, error: failed.get(i) });
        continue;
      }
      try {
        results.push({ ok: true, value: batch[i].change(peers) });
        live.push(i);
      } catch (e) {
        failed.set(i, e);
        fresh = true;
        break;
      }
    }
    if (!fresh) return { peers, results, live };
  }
}

/** Opens `lockPath` (created 0600 if needed) and takes an exclusive flock within `timeoutMs`. */
async function lock(lockPath: string, timeoutMs: number): Promise<Deno.FsFile> {
  const file = await Deno.open(lockPath, {
    read: true,
    write: true,
    create: true,
    mode: 0o600,
  });
  try {
    await lockExclusive(file, timeoutMs, lockPath);
  } catch (e) {
    throw new ProtocolError(
      "bad-known-peers",
      `${(e as Error).message}; known peers not updated`,
    );
  }
  return file;
}
