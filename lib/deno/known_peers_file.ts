/**
 * Read-modify-write of `known_peers.json` (lib/known_peers.ts) that several
 * processes sharing one keys folder can do at once without losing a
 * decision: every update takes an exclusive lock, re-reads the file, applies
 * one change to the fresh contents, writes the result atomically
 * (lib/deno/atomic_file.ts) and releases the lock. A process never writes
 * back a stale copy.
 *
 * The lock is `Deno.FsFile.lock(true)` (flock) on a separate, persistent
 * `<file>.lock` (0600, empty): the data file itself is replaced by rename on
 * every write, so it cannot carry the lock. The kernel releases the lock
 * when its holder exits or crashes, so there is no stale lock to clean up.
 * Updates within one process are also queued per path (one lock wait at a
 * time). A lock not obtained within `KNOWN_PEERS_LOCK_TIMEOUT_MS` fails the
 * update with a clear error (the late lock, if it comes, is released at once).
 *
 * @example
 * ```ts ignore
 * const { result, peers } = await updateKnownPeers(path, (p) => p.markVerified(fp));
 * ```
 * @module
 */

import { KNOWN_PEERS_LOCK_TIMEOUT_MS } from "../constants.ts";
import { ProtocolError } from "../errors.ts";
import type { KnownPeers } from "../known_peers.ts";
import { lockExclusive } from "./file_lock.ts";
import { loadKnownPeers, saveKnownPeers } from "./key_file.ts";

/** Per-path queue of this process's updates. */
const queues = new Map<string, Promise<unknown>>();

/** Options of {@link updateKnownPeers}. */
export interface UpdateKnownPeersOptions {
  /** Longest wait for the lock (ms); default `KNOWN_PEERS_LOCK_TIMEOUT_MS`. */
  lockTimeoutMs?: number;
}

/**
 * Applies `change` to the current contents of the known-peers file at
 * `path` under the file's lock and saves the result (when `change` returns
 * without throwing). Resolves to `change`'s result and the fresh set.
 */
export function updateKnownPeers<T>(
  path: string,
  change: (peers: KnownPeers) => T,
  options: UpdateKnownPeersOptions = {},
): Promise<{ result: T; peers: KnownPeers }> {
  const prior = queues.get(path) ?? Promise.resolve();
  const run = prior.catch(() => {}).then(() =>
    withLock(
      `${path}.lock`,
      options.lockTimeoutMs ?? KNOWN_PEERS_LOCK_TIMEOUT_MS,
      async () => {
        const peers = await loadKnownPeers(path);
        const result = change(peers);
        await saveKnownPeers(path, peers);
        return { result, peers };
      },
    )
  );
  queues.set(path, run);
  run.finally(() => {
    if (queues.get(path) === run) queues.delete(path);
  }).catch(() => {});
  return run;
}

/** Runs `fn` holding an exclusive flock on `lockPath` (created 0600 if needed). */
async function withLock<T>(
  lockPath: string,
  timeoutMs: number,
  fn: () => Promise<T>,
): Promise<T> {
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
  try {
    return await fn();
  } finally {
    await file.unlock().catch(() => {});
    file.close();
  }
}
