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
 * Only one `TranscriptFile` may have a path open at a time (not locked).
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

/** Largest existing transcript file `open` reads (bytes). */
export const MAX_TRANSCRIPT_FILE_BYTES = 256 * 1024 * 1024;

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
   * Opens (or creates) the transcript file at `path` for appending. Throws
   * when the file exists but is not a transcript (nothing is changed then).
   */
  static async open(path: string, now: number): Promise<TranscriptFile> {
    let text: string | undefined;
    try {
      const info = await Deno.stat(path);
      if (info.size > MAX_TRANSCRIPT_FILE_BYTES) {
        throw new RangeError(
          `${path} is larger than ${MAX_TRANSCRIPT_FILE_BYTES} bytes; start a new transcript file`,
        );
      }
      text = await Deno.readTextFile(path);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    let sessions = 0;
    if (text === undefined || text === "") {
      await writeFileAtomic(path, conversationLine(now), PRIVATE_FILE_MODE);
    } else {
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
      sessions = parsed.sessions.length;
      if (parsed.legacy) {
        const s = parsed.sessions[0];
        const lines = [conversationLine(now), legacySessionLine(s.json)];
        for (const m of s.json.messages) {
          lines.push(
            JSON.stringify({ record: "message", session: 1, ...m }) +
              "\n",
          );
        }
        lines.push(endLine(1, "stopped", now));
        await writeFileAtomic(path, lines.join(""), PRIVATE_FILE_MODE);
      } else if (parsed.torn) {
        const keep = utf8(text.slice(0, text.lastIndexOf("\n") + 1)).length;
        await Deno.truncate(path, keep);
      }
    }
    const file = await Deno.open(path, { append: true });
    return new TranscriptFile(file, path, sessions);
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
          for (let off = 0; off < bytes.length;) {
            off += await this.#file.write(bytes.subarray(off));
          }
          await this.#file.syncData();
        } catch (e) {
          this.#error = e as Error;
        }
      }
    } finally {
      this.#writing = undefined;
    }
  }
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
