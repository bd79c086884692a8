/**
 * An exclusive `flock` on an open file with a bounded wait
 * (`Deno.FsFile.lock`, checked across processes here). The kernel releases
 * it when the holder closes the file, exits or crashes, so no lock is ever
 * stale. A lock is per open file: a second open of the same file waits too,
 * in the same process.
 * @module
 */

/**
 * Waits at most `timeoutMs` for an exclusive lock on `file`. On timeout it
 * rejects with an Error saying `what` is locked, and takes over `file`: it is
 * closed (after releasing the lock, should it still arrive).
 */
export async function lockExclusive(
  file: Deno.FsFile,
  timeoutMs: number,
  what: string,
): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const locking = file.lock(true);
  try {
    await Promise.race([
      locking,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new Error(
                `${what} is locked by another process after ${timeoutMs} ms (is another client using it?)`,
              ),
            ),
          timeoutMs,
        );
      }),
    ]);
  } catch (e) {
    locking.then(() => file.unlock()).catch(() => {}).finally(() =>
      file.close()
    );
    throw e;
  } finally {
    clearTimeout(timer);
  }
}
