/**
 * The Deno driver of conversation transcript files (format:
 * lib/conversation_transcript.ts, PROTOCOL.md §2.2.10): one append-only file
 * per conversation, every session of it in order, never rewritten.
 *
 * API (what a conversation engine calls):
 *
 *     const file = await TranscriptFile.open(path, Date.now());
 *     // new session secure: write its `session` record (numbered after the file's last one)
 *     file.beginSession(session.transcript, { initiator: "bank", responder: "customer" }, now);
 *     file.sync();                        // after any session activity: append the records now final
 *     file.endSession("replaced", now);   // session dropped / closed: append the rest + an `end` record
 *     await file.flush();                 // everything queued is written and fsynced (throws a write error)
 *     await file.close();                 // flush, then close the file
 *
 * `beginSession`, `sync` and `endSession` never block: they queue lines, and
 * one write + `fdatasync` at a time drains the queue (bursts coalesce). A
 * message whose signature is still being made or checked (`pending`) and
 * everything after it waits for the next `sync`; `endSession` writes the
 * rest, a still-pending signature omitted (the message is then uncovered).
 * The open file is locked (flock): a second client given the same file
 * waits `TRANSCRIPT_LOCK_TIMEOUT_MS`, then gets a clear error.
 *
 * Opening an existing file: a torn last line (a crash during a write) is cut
 * off; a single-session transcript of the older format (one JSON document)
 * is converted, atomically, into session 1 of a new-format file first, so
 * nothing already saved is lost. The file is created with mode 0600.
 * @module
 */

import { utf8 } from "../bytes.ts";
import {
  conversationLine,
  endLine,
  messageLine,
  parseConversation,
  type RoleLabels,
  type SessionEndReason,
  sessionLine,
} from "../conversation_transcript.ts";
import type { Transcript, TranscriptJson } from "../transcript.ts";
import { PRIVATE_FILE_MODE, writeFileAtomic } from "./atomic_file.ts";
import { lockExclusive } from "./file_lock.ts";

/** Largest existing transcript file `open` reads (bytes). */
export const MAX_TRANSCRIPT_FILE_BYTES = 256 * 1024 * 1024;
/** Longest wait for another process's lock on a transcript file (ms). */
export const TRANSCRIPT_LOCK_TIMEOUT_MS = 2000;

/** An open per-conversation transcript file (see module doc). */
export class TranscriptFile {
  readonly #file: Deno.FsFile;
  /** File path. */
  readonly path: string;
  #sessions: number;
  #current?: { n: number; t: Transcript; written: number };
  #queue: string[] = [];
  #writing?: Promise<void>;
  #error?: Error;
  #closed = false;

  private constructor(file: Deno.FsFile, path: string, sessions: number) {
    this.#file = file;
    this.path = path;
    this.#sessions = sessions;
  }

  /**
   * Opens (or creates) the transcript file at `path` for appending and locks
   * it (another client appending to the same file would interleave two
   * conversations: refused after `lockTimeoutMs`, default
   * {@link TRANSCRIPT_LOCK_TIMEOUT_MS}). Throws when the file exists but is
   * not a transcript (nothing is changed then).
   */
  static async open(
    path: string,
    now: number,
    options: { lockTimeoutMs?: number } = {},
  ): Promise<TranscriptFile> {
    for (;;) {
      const file = await Deno.open(path, {
        read: true,
        append: true,
        create: true,
        mode: PRIVATE_FILE_MODE,
      });
      await lockExclusive(
        file,
        options.lockTimeoutMs ?? TRANSCRIPT_LOCK_TIMEOUT_MS,
        `transcript file ${path}`,
      );
      try {
        // Converted (renamed over) by another process while we waited: reopen.
        if ((await file.stat()).ino !== (await Deno.stat(path)).ino) {
          file.close();
          continue;
        }
        const sessions = await TranscriptFile.#prepare(file, path, now);
        if (sessions === undefined) {
          file.close(); // converted to a new file: lock that one
          continue;
        }
        return new TranscriptFile(file, path, sessions);
      } catch (e) {
        file.close();
        throw e;
      }
    }
  }

  /**
   * Under the lock: writes the first line of an empty file, cuts a torn last
   * line, or converts an older single-session file (then resolves to
   * undefined: the caller reopens). Resolves to the sessions in the file.
   */
  static async #prepare(
    file: Deno.FsFile,
    path: string,
    now: number,
  ): Promise<number | undefined> {
    const size = (await file.stat()).size;
    if (size > MAX_TRANSCRIPT_FILE_BYTES) {
      throw new RangeError(
        `${path} is larger than ${MAX_TRANSCRIPT_FILE_BYTES} bytes; start a new transcript file`,
      );
    }
    if (size === 0) {
      await writeAll(file, utf8(conversationLine(now)));
      return 0;
    }
    const text = await Deno.readTextFile(path);
    let parsed;
    try {
      parsed = parseConversation(text);
    } catch (e) {
      throw new Error(
        `${path} is not a transcript file this client can append to (${
          (e as Error).message
        }); choose another --transcript file`,
      );
    }
    if (parsed.legacy) {
      const s = parsed.sessions[0];
      const lines = [conversationLine(now), legacySessionLine(s.json)];
      for (const m of s.json.messages) {
        lines.push(
          JSON.stringify({ record: "message", session: 1, ...m }) + "\n",
        );
      }
      lines.push(endLine(1, "stopped", now));
      await writeFileAtomic(path, lines.join(""), PRIVATE_FILE_MODE);
      return undefined;
    }
    if (parsed.torn) {
      await file.truncate(
        utf8(text.slice(0, text.lastIndexOf("\n") + 1)).length,
      );
    }
    return parsed.sessions.length;
  }

  /** Sessions in the file so far (including the current one). */
  get sessions(): number {
    return this.#sessions;
  }

  /**
   * Starts recording `transcript` (a new session's) as the next session.
   * Ends the current one first (`replaced`) if it was not ended.
   */
  beginSession(transcript: Transcript, labels: RoleLabels, now: number): void {
    if (this.#current) this.endSession("replaced", now);
    const n = ++this.#sessions;
    this.#current = { n, t: transcript, written: 0 };
    this.#push(sessionLine(n, transcript.context, labels, now));
    this.sync();
  }

  /** Appends the current session's messages that are final (in order; stops at the first pending one). */
  sync(): void {
    const c = this.#current;
    if (!c) return;
    const upTo = c.t.settled(c.written);
    if (upTo === c.written) return;
    let lines = "";
    for (let i = c.written; i < upTo; i++) {
      lines += messageLine(c.n, c.t.messages[i]);
    }
    c.written = upTo;
    this.#push(lines);
  }

  /** Appends everything left of the current session and its `end` record. */
  endSession(reason: SessionEndReason, now: number): void {
    const c = this.#current;
    if (!c) return;
    this.sync();
    let lines = "";
    for (let i = c.written; i < c.t.messages.length; i++) {
      lines += messageLine(c.n, c.t.messages[i]);
    }
    c.written = c.t.messages.length;
    this.#push(lines + endLine(c.n, reason, now));
    this.#current = undefined;
  }

  /** Resolves when every queued line is written and synced; rejects with the first write error. */
  async flush(): Promise<void> {
    while (this.#writing) await this.#writing;
    if (this.#error) throw this.#error;
  }

  /** Flushes and closes the file (idempotent). */
  async close(): Promise<void> {
    if (this.#closed) return;
    try {
      await this.flush();
    } finally {
      this.#closed = true;
      this.#file.close();
    }
  }

  #push(lines: string): void {
    if (lines === "") return;
    if (this.#closed) throw new Error(`${this.path}: transcript file closed`);
    this.#queue.push(lines);
    this.#writing ??= this.#drain();
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0 && !this.#error) {
        const bytes = utf8(this.#queue.join(""));
        this.#queue = [];
        try {
          await writeAll(this.#file, bytes);
        } catch (e) {
          this.#error = e as Error;
        }
      }
    } finally {
      this.#writing = undefined;
    }
  }
}

/** Writes all of `bytes` at the end of `file` (opened for append) and syncs the data. */
async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) {
    off += await file.write(bytes.subarray(off));
  }
  await file.syncData();
}

function legacySessionLine(j: TranscriptJson & { labels?: unknown }): string {
  return JSON.stringify({
    record: "session",
    session: 1,
    suite: j.suite,
    localRole: j.localRole,
    sessionHash: j.sessionHash,
    initiatorSpki: j.initiatorSpki,
    responderSpki: j.responderSpki,
    labels: j.labels ?? {},
  }) + "\n";
}
