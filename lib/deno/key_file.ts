/**
 * Identity key files and the known-peers file on disk (Deno driver for
 * `lib/identity.ts` and `lib/known_peers.ts`). Files are written atomically
 * with mode 0600; an identity file that group or others can access is refused
 * (`chmod 600 <file>`), as is a known-peers file that group or others can
 * write (anyone who can edit it can make us trust their key).
 * @module
 */

import { keyAlgorithm } from "../suite.ts";
import {
  MAX_IDENTITY_FILE_SIZE,
  MAX_KNOWN_PEERS_FILE_SIZE,
} from "../constants.ts";
import { ProtocolError } from "../errors.ts";
import {
  createIdentity,
  type Identity,
  type IdentityAlgorithm,
  isEncryptedIdentityFile,
  parseIdentityFile,
  serializeIdentity,
} from "../identity.ts";
import { decodePem } from "../pem.ts";
import { KnownPeers } from "../known_peers.ts";
import { PRIVATE_FILE_MODE, writeFileAtomic } from "./atomic_file.ts";

/** Permission bits that must be clear on an identity file: any group/other access. */
const IDENTITY_FORBIDDEN_BITS = 0o077;
/** Permission bits that must be clear on a known-peers file: group/other write. */
const PEERS_FORBIDDEN_BITS = 0o022;

/** Options for {@link loadOrCreateIdentity}. */
export interface LoadIdentityOptions {
  /** Passphrase to decrypt an existing file, or to protect a new one. */
  passphrase?: string;
  /** Create the file when it does not exist (default true). */
  create?: boolean;
  /** Algorithm of the identity: a new file gets it, an existing one must have it (default ECDSA P-256). */
  algorithm?: IdentityAlgorithm;
  /** PBKDF2 iterations for a new protected file (tests only; default from constants). */
  iterations?: number;
  /** Fewest PBKDF2 iterations accepted on load (tests only; default from constants). */
  minIterations?: number;
  /**
   * An existing unencrypted file given with a passphrase is refused unless
   * this is true; then it is rewritten encrypted with the passphrase
   * (atomically, mode 0600) before it is loaded.
   */
  encryptPlaintext?: boolean;
}

/** An identity and whether this call created its file. */
export interface LoadedIdentity {
  /** The identity (private key non-extractable). */
  identity: Identity;
  /** True when the file did not exist and was created now. */
  created: boolean;
  /** True when an unencrypted file was rewritten encrypted now (`encryptPlaintext`). */
  encrypted?: boolean;
}

/**
 * Loads the identity in `path`, or creates it there (mode 0600, atomically,
 * never replacing a file that appeared meanwhile) when it does not exist.
 * Errors (`bad-key-file`, `bad-passphrase`) name the file.
 */
export async function loadOrCreateIdentity(
  path: string,
  options: LoadIdentityOptions = {},
): Promise<LoadedIdentity> {
  const text = await readChecked(
    path,
    IDENTITY_FORBIDDEN_BITS,
    MAX_IDENTITY_FILE_SIZE,
    "bad-key-file",
    "group or others can access it; the private key must be readable by its owner only",
  );
  if (
    text !== undefined && options.passphrase !== undefined &&
    !isEncryptedIdentityFile(text)
  ) {
    if (options.encryptPlaintext !== true) {
      throw new ProtocolError(
        "bad-key-file",
        `${path}: the identity key in this file is NOT encrypted, but a passphrase was given; ` +
          "refusing to run as if it were protected. To encrypt it with that passphrase, run " +
          "the client once with --encrypt-key added (same --keys and --passphrase-file): it " +
          "rewrites the file encrypted and exits. Or drop --passphrase-file to use it unencrypted.",
      );
    }
    // Validates the file (key pair consistent) before rewriting it.
    const { spki } = await parseIdentityFile(text, path);
    const data = JSON.parse(text) as { privateKey: string; created: string };
    const pkcs8 = decodePem(data.privateKey, "PRIVATE KEY");
    try {
      const json = await serializeIdentity(pkcs8, spki, {
        passphrase: options.passphrase,
        iterations: options.iterations,
        created: new Date(data.created),
      });
      await writeFileAtomic(path, json, PRIVATE_FILE_MODE);
    } finally {
      pkcs8.fill(0);
    }
    const { identity } = await loadOrCreateIdentity(path, {
      ...options,
      create: false,
      encryptPlaintext: false,
    });
    return { identity, created: false, encrypted: true };
  }
  if (text !== undefined) {
    const identity = await parseIdentityFile(
      text,
      path,
      options.passphrase,
      { minIterations: options.minIterations },
    );
    const want = options.algorithm ?? "ECDSA-P256-SHA256";
    if (keyAlgorithm(identity.privateKey) !== want) {
      throw new ProtocolError(
        "bad-key-file",
        `${path}: holds an ${
          keyAlgorithm(identity.privateKey)
        } key where an ${want} identity is expected`,
      );
    }
    return { identity, created: false };
  }
  if (options.create === false) {
    throw new ProtocolError("bad-key-file", `${path}: no such identity file`);
  }
  const { identity, json } = await createIdentity({
    passphrase: options.passphrase,
    iterations: options.iterations,
    algorithm: options.algorithm,
  });
  try {
    await writeFileAtomic(path, json, PRIVATE_FILE_MODE, { overwrite: false });
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) {
      // Another process created it between our check and our write: use theirs.
      return loadOrCreateIdentity(path, { ...options, create: false });
    }
    throw e;
  }
  return { identity, created: true };
}

/** Loads the known-peers file at `path`; an absent file is an empty set. */
export async function loadKnownPeers(path: string): Promise<KnownPeers> {
  const bytes = await readKnownPeersFile(path);
  return bytes === undefined
    ? new KnownPeers()
    : parseKnownPeersFile(bytes, path);
}

/**
 * The known-peers file's bytes after the checks of {@link loadKnownPeers}
 * (regular file, not writable by group or others, size limit); undefined
 * when it does not exist.
 */
export function readKnownPeersFile(
  path: string,
): Promise<Uint8Array | undefined> {
  return readCheckedBytes(
    path,
    PEERS_FORBIDDEN_BITS,
    MAX_KNOWN_PEERS_FILE_SIZE,
    "bad-known-peers",
    "group or others can write it, so they could make us trust their key",
  );
}

/** Parses the bytes of the known-peers file at `path` (strict UTF-8, then {@link KnownPeers.parse}). */
export function parseKnownPeersFile(
  bytes: Uint8Array,
  path: string,
): KnownPeers {
  return KnownPeers.parse(decodeChecked(bytes, path, "bad-known-peers"), path);
}

/** Saves `peers` to `path` atomically with mode 0600. */
export function saveKnownPeers(path: string, peers: KnownPeers): Promise<void> {
  return writeFileAtomic(path, peers.serialize(), PRIVATE_FILE_MODE);
}

/**
 * Reads `path` as UTF-8 after checking (on the open handle, so the checked
 * file is the read one) that it is a regular file, not larger than `maxSize`,
 * and has none of `forbidden` permission bits. Undefined when it does not exist.
 */
async function readChecked(
  path: string,
  forbidden: number,
  maxSize: number,
  code: "bad-key-file" | "bad-known-peers",
  why: string,
): Promise<string | undefined> {
  const bytes = await readCheckedBytes(path, forbidden, maxSize, code, why);
  if (bytes === undefined) return undefined;
  try {
    return decodeChecked(bytes, path, code);
  } finally {
    bytes.fill(0);
  }
}

/** Strict UTF-8 decoding; invalid text is a `code` error naming `path`. */
function decodeChecked(
  bytes: Uint8Array,
  path: string,
  code: "bad-key-file" | "bad-known-peers",
): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new ProtocolError(code, `${path}: not valid UTF-8 text`);
  }
}

/** {@link readChecked} without the decoding: the file's bytes (the caller clears them if secret). */
async function readCheckedBytes(
  path: string,
  forbidden: number,
  maxSize: number,
  code: "bad-key-file" | "bad-known-peers",
  why: string,
): Promise<Uint8Array | undefined> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
  try {
    const info = await file.stat();
    if (!info.isFile) {
      throw new ProtocolError(code, `${path}: not a regular file`);
    }
    // `mode` is null on Windows, where POSIX permission bits do not apply.
    if (info.mode !== null && (info.mode & forbidden) !== 0) {
      const mode = (info.mode & 0o777).toString(8).padStart(4, "0");
      throw new ProtocolError(
        code,
        `${path}: permissions ${mode} are too open (${why}); run: chmod 600 ${path}`,
      );
    }
    if (info.size > maxSize) {
      throw new ProtocolError(
        code,
        `${path}: file is ${info.size} bytes, larger than the ${maxSize} allowed`,
      );
    }
    // Room for the whole file in one read (a known-peers file may be MBs), one byte more to see its end.
    const buf = new Uint8Array(
      Math.min(maxSize, Math.max(16 * 1024, info.size)) + 1,
    );
    let total = 0;
    const chunks: Uint8Array[] = [];
    try {
      for (;;) {
        const n = await file.read(buf);
        if (n === null) break;
        total += n;
        if (total > maxSize) {
          throw new ProtocolError(
            code,
            `${path}: file is larger than the ${maxSize} bytes allowed`,
          );
        }
        chunks.push(buf.slice(0, n));
      }
      if (chunks.length === 1) return chunks.pop()!;
      const bytes = new Uint8Array(total);
      let off = 0;
      for (const c of chunks) {
        bytes.set(c, off);
        off += c.length;
      }
      return bytes;
    } finally {
      buf.fill(0);
      for (const c of chunks) c.fill(0);
    }
  } finally {
    file.close();
  }
}
