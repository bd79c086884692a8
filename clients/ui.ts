/**
 * How client events are shown: one JSON object per line (scriptable mode) or
 * readable lines for a person at a terminal (interactive mode).
 * @module
 */

import { clearImmediate, setImmediate } from "node:timers";
import { type ClientEvent, IncomingMessageEvent } from "./engine.ts";
import { isUtf8 } from "node:buffer";
import { formatFingerprint } from "../lib/fingerprint.ts";
import { parsePaymentMessage } from "../lib/payment.ts";
import { neutralizeText } from "../lib/display_text.ts";

const encoder = new TextEncoder();

/** Writes text to stdout synchronously (so lines never interleave). */
export function writeStdout(text: string): void {
  writeStdoutBytes(encoder.encode(text));
}

/** Writes bytes to stdout synchronously, all of them. */
export function writeStdoutBytes(bytes: Uint8Array): void {
  for (let off = 0; off < bytes.length;) {
    off += Deno.stdout.writeSync(bytes.subarray(off));
  }
}

/**
 * Buffered output waiting beyond this many bytes is written at once,
 * without waiting for the end of the task (bounds memory and latency under a
 * long burst).
 */
const BUFFER_FLUSH_BYTES = 64 * 1024;

/** A writer that collects text and writes it in one call; see {@link bufferedWriter}. */
export interface BufferedWriter {
  /**
   * Queues the texts, one after the other; they are written, in order, by
   * the next flush (never split between two writes).
   */
  write(...texts: string[]): void;
  /**
   * Room for a line built in place: returns the buffer, with at least `n`
   * bytes free from {@link end} on (valid until the next call); write the
   * line there, then {@link commit} its end. For per-message lines written
   * without a string built or encoded for them.
   */
  reserve(n: number): Uint8Array;
  /** Where the bytes queued end (the start of a line being built). */
  readonly end: number;
  /** Queues the line written into the buffer from {@link end} up to `end`. */
  commit(end: number): void;
  /** Writes everything queued now. */
  flush(): void;
}

/**
 * Collects text for `sink`, UTF-8 encoded into one reused buffer, and
 * writes it in one call at the end of the current task (a zero-delay timer),
 * or at once past {@link BUFFER_FLUSH_BYTES}: one write per burst of JSON
 * events instead of one per event, and no string joined or encoded per
 * burst. `sink` must consume the bytes before it returns (the buffer is
 * reused). Call `flush` before exiting.
 */
export function bufferedWriter(
  sink: (bytes: Uint8Array) => void,
): BufferedWriter {
  let buf = new Uint8Array(2 * BUFFER_FLUSH_BYTES);
  let len = 0;
  let timer: ReturnType<typeof setImmediate> | undefined;
  const flush = () => {
    if (timer !== undefined) {
      clearImmediate(timer);
      timer = undefined;
    }
    if (len === 0) return;
    const out = buf.subarray(0, len);
    len = 0;
    sink(out);
  };
  const room = (need: number) => {
    if (need <= buf.length) return;
    const bigger = new Uint8Array(Math.max(2 * buf.length, need));
    bigger.set(buf.subarray(0, len));
    buf = bigger;
  };
  const queued = () => {
    if (len >= BUFFER_FLUSH_BYTES) flush();
    else timer ??= setImmediate(flush);
  };
  return {
    write(...texts) {
      // At most 3 UTF-8 bytes per UTF-16 unit.
      let need = len;
      for (const text of texts) need += 3 * text.length;
      room(need);
      // Each text encoded as it is: a long one (a 60 KiB message) is never
      // joined into a rope that encodeInto would first flatten (a copy).
      for (const text of texts) {
        len += encoder.encodeInto(text, buf.subarray(len)).written;
      }
      queued();
    },
    reserve(n) {
      room(len + n);
      return buf;
    },
    get end() {
      return len;
    },
    commit(end) {
      if (end < len || end > buf.length) throw new RangeError("bad line end");
      len = end;
      queued();
    },
    flush,
  };
}

/** The start of a `message` line, up to its text. */
const MESSAGE_HEAD = `{"type":"message","text":`;
const MESSAGE_HEAD_BYTES = encoder.encode(MESSAGE_HEAD);

/**
 * Bytes of the service's API output (`--serve --json`) that may wait for a
 * slow reader; past it the service holds relay frames unread until the
 * reader has caught up to {@link OUTPUT_BACKLOG_RESUME} (clients/serve.ts),
 * so the backlog stays bounded.
 */
export const OUTPUT_BACKLOG_MAX = 8 * 1024 * 1024;
/** Output backlog at or below which held relay frames are taken again (half the bound: no switching per written chunk). */
export const OUTPUT_BACKLOG_RESUME = OUTPUT_BACKLOG_MAX / 2;

/** Output written without blocking the event loop; see {@link queuedSink}. */
export interface QueuedSink {
  /** Queues a copy of `bytes` (a {@link bufferedWriter} sink). */
  sink(bytes: Uint8Array): void;
  /** Bytes queued and not yet written. */
  readonly pending: number;
  /** Resolves once everything queued so far is written (or the writer failed). */
  drained(): Promise<void>;
  /** Called after each chunk is written (and once a write failed): {@link pending} went down. */
  onWritten: () => void;
}

/**
 * A sink that writes through `write` (an asynchronous write that may take
 * part of its input and says how much, as `Deno.stdout.write`), one chunk at
 * a time, in order. A synchronous write to a pipe blocks the whole process
 * while the reader is behind: the bank service then stopped reading the
 * relay, acknowledging and answering every conversation because one reader
 * was slow (measured: 62 % of the bank's samples in `op_write_sync` with
 * 1,000 customers sending at once). With this sink only the output waits;
 * `pending` tells the caller how far behind the reader is. A failed write
 * (the reader went away) drops what is queued.
 */
export function queuedSink(
  write: (bytes: Uint8Array) => Promise<number>,
): QueuedSink {
  const queue: Uint8Array[] = [];
  let pending = 0;
  let running: Promise<void> | undefined;
  const run = async () => {
    try {
      while (queue.length > 0) {
        const chunk = queue[0];
        for (let off = 0; off < chunk.length;) {
          off += await write(chunk.subarray(off));
        }
        queue.shift();
        pending -= chunk.length;
        written();
      }
    } catch {
      queue.length = 0;
      pending = 0;
      written();
    }
    running = undefined;
  };
  // A listener's failure is not the writer's: the output goes on.
  const written = () => {
    try {
      self.onWritten();
    } catch { /* the listener's own error */ }
  };
  const self: QueuedSink = {
    sink(bytes) {
      if (bytes.length === 0) return;
      queue.push(bytes.slice());
      pending += bytes.length;
      running ??= run();
    },
    get pending() {
      return pending;
    },
    async drained() {
      while (running) await running;
    },
    onWritten: () => {},
  };
  return self;
}

const SENT_HEAD = encoder.encode(`{"type":"sent","id":`);
const DELIVERED_HEAD = encoder.encode(`{"type":"delivered","id":`);
const ID_KEY = encoder.encode(`","id":`);
const COUNTER_KEY = encoder.encode(`,"counter":`);
const NO_ID_COUNTER_KEY = encoder.encode(`","counter":`);
const SEQ_KEY = encoder.encode(`,"seq":`);
/** Most bytes of a safe integer in decimal (2^53 − 1). */
export const MAX_DIGITS = 16;

/** Copies `src` into `b` at `at` (a short piece by a loop, a longer one by `set`); returns the end. */
export function put(b: Uint8Array, at: number, src: Uint8Array): number {
  if (src.length > 32) {
    b.set(src, at);
    return at + src.length;
  }
  for (let i = 0; i < src.length; i++) b[at++] = src[i];
  return at;
}

/** Writes the non-negative safe integer `n` in decimal (as `String(n)`) at `at`; returns the end. */
export function putDigits(b: Uint8Array, at: number, n: number): number {
  let digits = 1;
  for (let v = n; v >= 10; v = Math.floor(v / 10)) digits++;
  for (let i = at + digits - 1, v = n; i >= at; i--) {
    b[i] = 0x30 + v % 10;
    v = Math.floor(v / 10);
  }
  return at + digits;
}

/** Whether `n` is written by {@link putDigits} exactly as a template writes it. */
export const plainInteger = (n: number): boolean =>
  Number.isSafeInteger(n) && n >= 0;

/**
 * Whether the UTF-8 bytes `body` are, between quotes, the JSON string of
 * their text as the engine decodes it: valid UTF-8 without a control
 * character, `"` or `\` (what JSON.stringify escapes; valid UTF-8 has no
 * lone surrogate), and no leading byte-order mark (the decoder drops it).
 */
export function jsonSafe(body: Uint8Array): boolean {
  if (body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf) return false;
  const n = body.length;
  // Bytes up to a 4-byte boundary one by one, then four at a time (a 60 KiB
  // body: ~30 instead of ~100 µs), then the tail.
  let i = 0;
  for (const head = Math.min(n, -body.byteOffset & 3); i < head; i++) {
    if (jsonUnsafeByte(body[i])) return false;
  }
  const words = (n - i) >>> 2;
  if (words > 0 && !jsonSafeWords(body.buffer, body.byteOffset + i, words)) {
    return false;
  }
  for (i += 4 * words; i < n; i++) {
    if (jsonUnsafeByte(body[i])) return false;
  }
  return isUtf8(body);
}

/** A byte JSON.stringify escapes: a control character, `"` or `\`. */
const jsonUnsafeByte = (c: number) => c < 0x20 || c === 0x22 || c === 0x5c;

/**
 * Whether the `words` aligned 4-byte words at `offset` hold no byte that
 * {@link jsonUnsafeByte} names: per word, `(w − 0x20…) & ~w` has a high bit
 * set iff some byte is below 0x20, and the same over `w ^ 0x22…` / `w ^
 * 0x5c…` against 0x01 finds a `"` / `\` (the SWAR tests of "Bit Twiddling
 * Hacks", hasless/haszero: exact for "is there such a byte"). The byte order
 * does not matter: every byte is tested.
 */
function jsonSafeWords(
  buffer: ArrayBufferLike,
  offset: number,
  words: number,
): boolean {
  const w32 = new Int32Array(buffer, offset, words);
  for (let k = 0; k < words; k++) {
    const w = w32[k];
    const q = w ^ 0x22222222, b = w ^ 0x5c5c5c5c;
    if (
      (((w - 0x20202020) & ~w) | ((q - 0x01010101) & ~q) |
        ((b - 0x01010101) & ~b)) & 0x80808080
    ) return false;
  }
  return true;
}

/**
 * Scriptable mode: every event as one JSON line. A `sent` line carries only
 * `id` and `at` (the script wrote the text itself; echoing a 60 KiB body
 * cost ~20 % of the throughput). Given a {@link BufferedWriter}, the
 * per-message lines — `sent` and `delivered` on the sending side, `message`
 * on the receiving one — are built as bytes in the writer's buffer: fixed
 * keys, the numbers' digits, the engine's body bytes as they are when they
 * need no escaping (clients/engine.ts IncomingMessageEvent), and the rest of
 * the line encoded once per millisecond and peer; no string is decoded,
 * stringified or encoded per message. Same bytes as the string path
 * (tests/ui_test.ts).
 */
export function jsonRenderer(
  out: BufferedWriter | ((...texts: string[]) => void),
): (ev: ClientEvent) => void {
  const write = typeof out === "function" ? out : out.write;
  const lines = typeof out === "function" ? undefined : out;
  /** `head`, the id's digits, the tail (`sent`, `delivered`). */
  const idLine = (
    w: BufferedWriter,
    head: Uint8Array,
    id: number,
    at: string,
  ) => {
    const tail = tailOf(at);
    const b = w.reserve(head.length + MAX_DIGITS + tail.length);
    w.commit(put(b, putDigits(b, put(b, w.end, head), id), tail));
  };
  // The last events' peer fields, formatted once (every event of a burst names the same peer).
  let lastPeer: string | undefined, lastFp: string | undefined, suffix = "";
  // `,"at":"…"` + the peer fields + `}\n` as bytes, for `tailAt` and the current suffix.
  let tail = new Uint8Array(0), tailAt = "", tailSuffix = "";
  const tailOf = (at: string) => {
    if (at !== tailAt || suffix !== tailSuffix) {
      tail = encoder.encode(`,"at":"${at}"${suffix}}\n`);
      tailAt = at;
      tailSuffix = suffix;
    }
    return tail;
  };
  return (ev) => {
    // The per-message events are spelled out (same bytes as JSON.stringify,
    // tests/ui_test.ts): numbers and ISO 8601 times need no escaping.
    // `peer` (base32) and `peerFingerprint` (hex) need no escaping either.
    if (ev.peer !== lastPeer || ev.peerFingerprint !== lastFp) {
      lastPeer = ev.peer;
      lastFp = ev.peerFingerprint;
      suffix = (lastPeer === undefined ? "" : `,"peer":"${lastPeer}"`) +
        (lastFp === undefined ? "" : `,"peerFingerprint":"${lastFp}"`);
    }
    const peer = suffix;
    switch (ev.type) {
      case "sent":
        if (lines && plainInteger(ev.id)) {
          return idLine(lines, SENT_HEAD, ev.id, ev.at);
        }
        return write(`{"type":"sent","id":${ev.id},"at":"${ev.at}"${peer}}\n`);
      case "delivered":
        if (lines && plainInteger(ev.id)) {
          return idLine(lines, DELIVERED_HEAD, ev.id, ev.at);
        }
        return write(
          `{"type":"delivered","id":${ev.id},"at":"${ev.at}"${peer}}\n`,
        );
      case "message": {
        const body = lines && IncomingMessageEvent.bodyOf(ev);
        if (
          body && (ev.id === undefined || plainInteger(ev.id)) &&
          plainInteger(ev.counter) && plainInteger(ev.seq) && jsonSafe(body)
        ) {
          // The usual text: the engine's body bytes as they are.
          const tail = tailOf(ev.at);
          const b = lines.reserve(
            MESSAGE_HEAD_BYTES.length + body.length + 2 + 3 * MAX_DIGITS +
              ID_KEY.length + COUNTER_KEY.length + SEQ_KEY.length +
              tail.length,
          );
          let at = put(b, lines.end, MESSAGE_HEAD_BYTES);
          b[at++] = 0x22; // the opening quote; ID_KEY/NO_ID_COUNTER_KEY close it
          b.set(body, at);
          at += body.length;
          if (ev.id !== undefined) {
            at = putDigits(b, put(b, at, ID_KEY), ev.id);
            at = put(b, at, COUNTER_KEY);
          } else at = put(b, at, NO_ID_COUNTER_KEY);
          at = putDigits(b, at, ev.counter);
          at = putDigits(b, put(b, at, SEQ_KEY), ev.seq);
          return lines.commit(put(b, at, tail));
        }
        // Three pieces, not one template: the body's JSON string stays flat
        // and is encoded as it is (joined into a rope, encodeInto first
        // flattens it: decode + JSON + encode of a 60 KiB text took ~37
        // instead of ~28 µs of CPU).
        return write(
          MESSAGE_HEAD,
          JSON.stringify(ev.text),
          `${
            ev.id === undefined ? "" : `,"id":${ev.id}`
          },"counter":${ev.counter},"seq":${ev.seq},"at":"${ev.at}"${peer}}\n`,
        );
      }
      default:
        return write(JSON.stringify(ev) + "\n");
    }
  };
}

/** Peer text with control, invisible and bidi characters made visible (lib/display_text.ts). */
const safe = (text: string): string => neutralizeText(text);

function clock(iso: string): string {
  return new Date(iso).toTimeString().slice(0, 8);
}

/** A hex fingerprint as people compare it (lib/fingerprint.ts); anything else as is, neutralised. */
function readableFingerprint(v: unknown): string {
  return typeof v === "string" && /^[0-9a-f]{64}$/i.test(v)
    ? formatFingerprint(Uint8Array.fromHex(v.toLowerCase()))
    : safe(String(v ?? "?"));
}

const TRUST_TEXT = {
  new:
    "NEW — first contact: compare the safety number with your peer out of band, then /verify",
  known:
    "known — the key known_peers.json records for this peer (not verified yet: /verify)",
  verified: "VERIFIED — same key as the one you verified",
  expected: "as expected — the identity the peer's address names",
} as const;

/** Where the terminal renderer shows its lines (clients/tty.ts: above the line being typed). */
export interface TerminalScreen {
  /** Shows `text` (one or more lines), then the prompt again. */
  show(text: string): void;
  /** Shows `text` as the program's last output: no prompt after it. */
  end(text: string): void;
}

/** A {@link TerminalScreen} that writes to `write` with an empty `> ` prompt after each output. */
export function plainScreen(write: (s: string) => void): TerminalScreen {
  return {
    show: (text) => write(`\r\x1b[K${text}\n> `),
    end: (text) => write(`\r\x1b[K${text}\n`),
  };
}

/** Interactive mode: readable lines, the prompt after each (a function `sink` gets {@link plainScreen}). */
export function terminalRenderer(
  sink: TerminalScreen | ((s: string) => void),
  peerLabel: () => string,
): (ev: ClientEvent) => void {
  const screen = typeof sink === "function" ? plainScreen(sink) : sink;
  const texts = new Map<number, string>();
  const out = (s: string) => screen.show(s);
  return (ev) => {
    switch (ev.type) {
      case "ready":
        return out(
          `You are the ${ev.role}.\n  Session ID:  ${ev.id}\n  Fingerprint: ${
            formatFingerprint(Uint8Array.fromHex(ev.fingerprint))
          }\n  Share this address with your peer:\n    ${ev.address}\nWaiting for the secure session…`,
        );
      case "secure":
        return out(
          `Secure session with ${ev.peerName} (ID ${ev.peer}, suite ${ev.suite}).\n  Peer fingerprint: ${
            formatFingerprint(Uint8Array.fromHex(ev.peerFingerprint))
          }\n  Safety number:    ${ev.safetyNumber}\n  Trust: ${
            TRUST_TEXT[ev.trust]
          }\nType a message and press Enter. Commands: /help /verify /status /quit`,
        );
      case "sent": {
        const p = parsePaymentMessage(ev.text);
        const shown = p
          ? `[signed payment ${
            p.kind === "payment-request" ? "request" : p.decision
          }]`
          : ev.text;
        texts.set(ev.id, shown);
        return out(
          `[${clock(ev.at)}] you: ${safe(shown)}   (#${ev.id} sent)`,
        );
      }
      case "delivered": {
        const t = texts.get(ev.id) ?? "";
        texts.delete(ev.id);
        return out(
          `[${clock(ev.at)}] ✓ #${ev.id} delivered: ${safe(t.slice(0, 40))}${
            t.length > 40 ? "…" : ""
          }`,
        );
      }
      case "message":
        if (parsePaymentMessage(ev.text)) return; // shown by the "payment" event
        return out(`[${clock(ev.at)}] ${peerLabel()}: ${safe(ev.text)}`);
      case "payment":
        if (ev.event === "request") {
          return out(
            `💳 payment request ${ev.direction}: ${ev.amount} ${ev.currency} to ${
              safe(ev.payee ?? "")
            } (ref ${safe(ev.reference)})`,
          );
        }
        return out(
          `💳 payment ${ev.decision} (${ev.direction}, ref ${
            safe(ev.reference)
          })${
            ev.matches === false ? " — DOES NOT MATCH the request sent!" : ""
          }`,
        );
      case "prompt":
        return out(safe(ev.text));
      case "notice":
        return out(`* ${safe(ev.text)}`);
      case "status":
        return out(
          `status: ${ev.phase}, relay ${ev.relay}, ${
            ev.peer === undefined
              ? "no peer yet"
              : ev.phase !== "secure"
              ? `peer ${ev.peer}: no secure session yet`
              : `peer ${ev.peer} ${ev.peerOnline ? "online" : "away"}`
          }, ` +
            `outbox ${ev.outbox}, awaiting ack ${ev.unacked}` +
            (ev.epoch !== undefined ? `, key epoch ${ev.epoch}` : "") +
            (ev.trust ? `, trust ${ev.trust}` : ""),
        );
      case "verified":
        return out(`✓ ${ev.peerName} marked as verified in known_peers.json`);
      case "error":
        if (ev.code === "identity-changed") {
          return out(
            `\n!!! WARNING: THE IDENTITY KEY OF ${ev.peerName} HAS CHANGED !!!\n` +
              `Someone may be impersonating your peer, or your peer created a new key.\n` +
              `  recorded fingerprint:  ${
                readableFingerprint(ev.previousFingerprint)
              }\n  presented fingerprint: ${
                readableFingerprint(ev.presentedFingerprint)
              }\n` +
              `  safety number with the new key: ${ev.safetyNumber}\n` +
              `  Ask ${ev.peerName}, over another channel, to type /verify: it shows "Your fingerprint",\n` +
              `  which must equal "presented" (its start-up banner shows it too)` +
              (ev.role === "responder"
                ? `, and its safety number,\n  which must equal this one (${ev.peerName} got a secure session before the refusal).\n`
                : `. ${ev.peerName} has no session\n  (refused before one started), so no safety number yet: both sides show it once you accept the key.\n`) +
              "The session was refused.",
          );
        }
        // These end the program: no prompt after them.
        if (/^(tls|relay-unreachable|relay-full)$/.test(ev.code)) {
          return screen.end(`! ${ev.code}: ${safe(ev.message)}`);
        }
        return out(`! ${ev.code}: ${safe(ev.message)}`);
      case "closed":
        return screen.end(
          `* closed: ${ev.reason}${
            ev.undelivered
              ? ` — NOT delivered: ${ev.undelivered.join(", ")}`
              : ""
          }`,
        );
    }
  };
}
