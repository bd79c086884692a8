/**
 * Atomic file writes for Deno: the data goes to a new temporary file in the
 * target's directory (created exclusively with the final mode), is fsynced,
 * then renamed over the target, so readers see the old file or the complete
 * new one, never a partial write. Needs read and write permission on the
 * target's directory.
 * @module
 */

import { utf8 } from "../bytes.ts";

/** Mode for files holding secrets: owner read/write only. */
export const PRIVATE_FILE_MODE = 0o600;
/** Mode for public files: world-readable, owner-writable. */
export const PUBLIC_FILE_MODE = 0o644;
/** Random bytes in a temporary file's name. */
const TEMP_NAME_RANDOM_BYTES = 8;

/** Options for {@link writeFileAtomic}. */
export interface WriteFileAtomicOptions {
  /**
   * When false, fail with `Deno.errors.AlreadyExists` instead of replacing an
   * existing target (the final step is then a hard link, which is atomic and
   * never clobbers). Default true.
   */
  overwrite?: boolean;
}

/**
 * Writes `data` to `path` atomically with permission bits `mode` (default
 * 0600; not applied on Windows). The temporary file is removed if anything fails.
 */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array | string,
  mode: number = PRIVATE_FILE_MODE,
  options: WriteFileAtomicOptions = {},
): Promise<void> {
  const bytes = typeof data === "string" ? utf8(data) : data;
  const temp = tempPathFor(path);
  try {
    await writeAndSync(temp, bytes, mode);
    if (options.overwrite === false) {
      await Deno.link(temp, path);
      await Deno.remove(temp);
    } else {
      await Deno.rename(temp, path);
    }
  } catch (e) {
    await Deno.remove(temp).catch(() => {});
    throw e;
  }
  await syncDirectory(splitPath(path).dir);
}

/** Creates `temp` exclusively, writes all of `bytes`, sets `mode`, and fsyncs. */
async function writeAndSync(
  temp: string,
  bytes: Uint8Array,
  mode: number,
): Promise<void> {
  using file = await Deno.open(temp, { write: true, createNew: true, mode });
  // `mode` at creation is filtered by the umask; set it exactly.
  if (Deno.build.os !== "windows") await Deno.chmod(temp, mode);
  for (let off = 0; off < bytes.length;) {
    off += await file.write(bytes.subarray(off));
  }
  await file.sync();
}

/** Best effort: fsync the directory so the rename itself survives a crash (POSIX only). */
async function syncDirectory(dir: string): Promise<void> {
  if (Deno.build.os === "windows") return;
  // Never trigger a permission prompt just for this optional step.
  if (
    Deno.permissions.querySync({ name: "read", path: dir }).state !== "granted"
  ) return;
  try {
    using handle = await Deno.open(dir, { read: true });
    await handle.sync();
  } catch {
    // Some filesystems refuse to fsync a directory; the data itself is synced.
  }
}

function tempPathFor(path: string): string {
  const { dir, base } = splitPath(path);
  if (base === "") {
    throw new TypeError(
      `writeFileAtomic: "${path}" names a directory, not a file`,
    );
  }
  const random = crypto.getRandomValues(new Uint8Array(TEMP_NAME_RANDOM_BYTES))
    .toHex();
  return `${dir}/.${base}.${random}.tmp`;
}

/** Directory (`.` when there is none) and final component of `path`; handles `/` and `\`. */
function splitPath(path: string): { dir: string; base: string } {
  const i = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  if (i < 0) return { dir: ".", base: path };
  return {
    dir: i === 0 ? path.slice(0, 1) : path.slice(0, i),
    base: path.slice(i + 1),
  };
}
