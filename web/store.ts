/**
 * The browser client's storage (IndexedDB, this origin only): the identity
 * and the mailbox key as non-extractable `CryptoKey`s (IndexedDB stores them
 * by structured clone; no script, ours included, can read their private
 * bytes), the passphrase-protected backup file once the user made one, and
 * the known peers in the CLI's `known_peers.json` format.
 *
 * A non-extractable key cannot be exported later, so a backup can only be
 * made while the page still holds the freshly generated PKCS#8 (the first
 * visit, until the tab is closed): {@link KeyStore.create} keeps it in
 * memory for {@link KeyStore.makeBackup} and wipes it after. The backup is
 * exactly the CLI's identity file (lib/identity.ts: PBKDF2-SHA256 +
 * AES-256-GCM); it is also kept here, encrypted, so "export" works on any
 * later visit.
 * @module
 */

import {
  generateIdentityWithPkcs8,
  type Identity,
  isEncryptedIdentityFile,
  parseIdentityFile,
  serializeIdentity,
} from "../lib/identity.ts";
import { KnownPeers } from "../lib/known_peers.ts";
import { generateMailboxKey, type MailboxKey } from "../lib/registration.ts";
import type { Bytes } from "../lib/bytes.ts";

const DB_NAME = "e2e-customer";
const DB_VERSION = 1;
const KEYS = "keys";
const PEERS = "peers";
/** Largest backup file accepted for import (bytes). */
export const MAX_BACKUP_SIZE = 16 * 1024;

function request<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

function openDb(): Promise<IDBDatabase> {
  const r = indexedDB.open(DB_NAME, DB_VERSION);
  r.onupgradeneeded = () => {
    r.result.createObjectStore(KEYS);
    r.result.createObjectStore(PEERS);
  };
  return request(r);
}

/** What {@link KeyStore.open} found or made. */
export interface LoadedKeys {
  /** The identity (private key non-extractable). */
  identity: Identity;
  /** The relay mailbox key (private key non-extractable). */
  mailbox: MailboxKey;
  /** True when they were created on this visit. */
  created: boolean;
}

/** The client's keys, backup and known peers in IndexedDB. */
export class KeyStore {
  readonly #db: IDBDatabase;
  /** PKCS#8 of an identity created on this visit, until a backup is made. */
  #freshPkcs8: Bytes | undefined;
  #identity!: Identity;

  private constructor(db: IDBDatabase) {
    this.#db = db;
  }

  /** Opens the database and loads the keys, creating them on the first visit. */
  static async open(): Promise<{ store: KeyStore; keys: LoadedKeys }> {
    const store = new KeyStore(await openDb());
    const identity = await store.#get<Identity>(KEYS, "identity");
    const mailbox = await store.#get<MailboxKey>(KEYS, "mailbox");
    if (identity !== undefined && mailbox !== undefined) {
      store.#identity = identity;
      return { store, keys: { identity, mailbox, created: false } };
    }
    const keys = await store.#create();
    return { store, keys };
  }

  async #create(): Promise<LoadedKeys> {
    const { identity, pkcs8 } = await generateIdentityWithPkcs8();
    const { key: mailbox, pkcs8: mailboxPkcs8 } = await generateMailboxKey();
    mailboxPkcs8.fill(0);
    await this.#put(KEYS, "identity", identity);
    await this.#put(KEYS, "mailbox", mailbox);
    this.#freshPkcs8 = pkcs8;
    this.#identity = identity;
    return { identity, mailbox, created: true };
  }

  /** True when a backup can be downloaded now (made earlier, or the key is still fresh). */
  async canExport(): Promise<"stored" | "fresh" | "no"> {
    if (await this.#get<string>(KEYS, "backup") !== undefined) return "stored";
    return this.#freshPkcs8 !== undefined ? "fresh" : "no";
  }

  /**
   * The backup file: the stored one, or — on the visit that created the key —
   * a new one protected by `passphrase` (then stored, and the in-memory
   * PKCS#8 wiped). Undefined when neither is possible.
   */
  async backup(passphrase?: string): Promise<string | undefined> {
    const stored = await this.#get<string>(KEYS, "backup");
    if (stored !== undefined) return stored;
    if (this.#freshPkcs8 === undefined || passphrase === undefined) {
      return undefined;
    }
    const json = await serializeIdentity(
      this.#freshPkcs8,
      this.#identity.spki,
      { passphrase },
    );
    await this.#put(KEYS, "backup", json);
    this.#freshPkcs8.fill(0);
    this.#freshPkcs8 = undefined;
    return json;
  }

  /**
   * Replaces the identity by the one in a backup file (the CLI's identity
   * file; it must be passphrase-protected). Errors are the lib's
   * `bad-key-file` / `bad-passphrase` ProtocolErrors, naming `source`.
   */
  async importBackup(
    json: string,
    passphrase: string,
    source: string,
  ): Promise<Identity> {
    if (json.length > MAX_BACKUP_SIZE) {
      throw new RangeError(`${source} is too large for an identity file`);
    }
    if (!isEncryptedIdentityFile(json)) {
      throw new RangeError(
        `${source} is not passphrase-protected: create the CLI identity with --passphrase-file, or export a backup from this page`,
      );
    }
    const identity = await parseIdentityFile(json, source, passphrase);
    await this.#put(KEYS, "identity", identity);
    await this.#put(KEYS, "backup", json);
    this.#freshPkcs8?.fill(0);
    this.#freshPkcs8 = undefined;
    this.#identity = identity;
    return identity;
  }

  /** The known peers (empty on the first visit). */
  async knownPeers(): Promise<KnownPeers> {
    const text = await this.#get<string>(PEERS, "known_peers");
    return text === undefined
      ? new KnownPeers()
      : KnownPeers.parse(text, "known peers (browser storage)");
  }

  /** Saves the known peers. */
  saveKnownPeers(peers: KnownPeers): Promise<void> {
    return this.#put(PEERS, "known_peers", peers.serialize());
  }

  async #get<T>(store: string, key: string): Promise<T | undefined> {
    const tx = this.#db.transaction(store, "readonly");
    return await request(tx.objectStore(store).get(key)) as T | undefined;
  }

  async #put(store: string, key: string, value: unknown): Promise<void> {
    const tx = this.#db.transaction(store, "readwrite");
    tx.objectStore(store).put(value, key);
    await new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  }
}
