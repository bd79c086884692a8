/**
 * The relay mailbox key on disk, so a client keeps the same relay session ID
 * across restarts. File (JSON, mode 0600, written atomically, never
 * replaced): `{ "version": 1, "kind": "relay mailbox key", "pkcs8": "<base64url>" }`.
 * The key only authenticates registrations at the relay (it is not the
 * end-to-end identity). A file that group or others can access is refused.
 * @module
 */

import type { Bytes } from "../bytes.ts";
import {
  generateMailboxKey,
  importMailboxKey,
  type MailboxKey,
} from "../registration.ts";
import { PRIVATE_FILE_MODE, writeFileAtomic } from "./atomic_file.ts";

/** `kind` field of a mailbox key file. */
const MAILBOX_FILE_KIND = "relay mailbox key";
/** Largest mailbox key file accepted (bytes). */
const MAX_MAILBOX_FILE_SIZE = 4096;

/** A mailbox key and whether this call created its file. */
export interface LoadedMailbox {
  /** The key (private half non-extractable). */
  key: MailboxKey;
  /** True when the file was created now. */
  created: boolean;
}

/** Loads the mailbox key in `path`, or creates it (0600, atomic) when absent. Errors name the file. */
export async function loadOrCreateMailboxKey(
  path: string,
): Promise<LoadedMailbox> {
  let text: string | undefined;
  try {
    const info = await Deno.stat(path);
    if (!info.isFile) throw new Error(`${path}: not a regular file`);
    if (info.mode !== null && (info.mode & 0o077) !== 0) {
      throw new Error(
        `${path}: permissions ${
          (info.mode & 0o777).toString(8)
        } are too open for a private key; run: chmod 600 ${path}`,
      );
    }
    if (info.size > MAX_MAILBOX_FILE_SIZE) {
      throw new Error(`${path}: file too large`);
    }
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  if (text !== undefined) {
    return { key: await parseMailboxFile(text, path), created: false };
  }
  const { key, pkcs8 } = await generateMailboxKey();
  const json = JSON.stringify({
    version: 1,
    kind: MAILBOX_FILE_KIND,
    pkcs8: pkcs8.toBase64({ alphabet: "base64url", omitPadding: true }),
  }) + "\n";
  pkcs8.fill(0);
  try {
    await writeFileAtomic(path, json, PRIVATE_FILE_MODE, { overwrite: false });
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) {
      return {
        key: await parseMailboxFile(await Deno.readTextFile(path), path),
        created: false,
      };
    }
    throw e;
  }
  return { key, created: true };
}

async function parseMailboxFile(
  text: string,
  path: string,
): Promise<MailboxKey> {
  let o: { version?: unknown; kind?: unknown; pkcs8?: unknown };
  try {
    o = JSON.parse(text);
  } catch {
    throw new Error(`${path}: not a mailbox key file (invalid JSON)`);
  }
  if (
    o?.version !== 1 || o.kind !== MAILBOX_FILE_KIND ||
    typeof o.pkcs8 !== "string"
  ) {
    throw new Error(`${path}: not a version 1 mailbox key file`);
  }
  let pkcs8: Bytes;
  try {
    pkcs8 = Uint8Array.fromBase64(o.pkcs8, { alphabet: "base64url" }) as Bytes;
  } catch {
    throw new Error(`${path}: "pkcs8" is not base64url`);
  }
  try {
    return await importMailboxKey(pkcs8);
  } catch (e) {
    throw new Error(`${path}: invalid Ed25519 key (${(e as Error).message})`);
  } finally {
    pkcs8.fill(0);
  }
}
