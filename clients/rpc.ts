/**
 * The bank service's JSON-RPC 2.0 API, transport-independent: a method
 * table over the {@link Engine} (`send`, `connect`, `trust`, `verify`,
 * `close`, `peers`, `status`) and the mapping of engine events to
 * notifications. `clients/serve.ts` speaks it one object per line over
 * stdin/stdout (signal-cli's `jsonRpc` conventions); an HTTP front-end can
 * call {@link RpcDispatcher.handle} per request body and stream
 * {@link notification}s (e.g. as Server-Sent Events). Methods, events and
 * error codes are documented in README ("Bank service").
 * @module
 */

import { parsePeerAddress } from "../lib/address.ts";
import type { Bytes } from "../lib/bytes.ts";
import { MAX_BODY } from "../lib/constants.ts";
import { formatSessionId, parseSessionId } from "../lib/registration.ts";
import {
  type ClientEvent,
  type Engine,
  IncomingMessageEvent,
} from "./engine.ts";
import {
  type BufferedWriter,
  jsonSafe,
  MAX_DIGITS,
  plainInteger,
  put,
  putDigits,
} from "./ui.ts";

const encoder = new TextEncoder();
/** The `message` notification up to its text's opening quote. */
const MESSAGE_HEAD = encoder.encode(
  '{"jsonrpc":"2.0","method":"message","params":{"text":"',
);
/** The `delivered` notification up to its id. */
const DELIVERED_HEAD = encoder.encode(
  '{"jsonrpc":"2.0","method":"delivered","params":{"id":',
);
const ID_KEY = encoder.encode('","id":');
const COUNTER_KEY = encoder.encode(',"counter":');
const NO_ID_COUNTER_KEY = encoder.encode('","counter":');
const SEQ_KEY = encoder.encode(',"seq":');

/** JSON-RPC error codes: the standard ones, then ours (each also named in `error.data.code`). */
export const RPC_ERRORS = {
  /** Not JSON, or a line longer than MAX_RPC_LINE. */
  "parse-error": -32700,
  /** JSON, but not a JSON-RPC 2.0 request object. */
  "invalid-request": -32600,
  /** No such method. */
  "unknown-method": -32601,
  /** Missing or mistyped parameters. */
  "invalid-params": -32602,
  /** A bug: the request may or may not have had an effect. */
  internal: -32603,
  /** No conversation with this peer. */
  "unknown-peer": -32001,
  /** The text was refused: empty, longer than MAX_BODY bytes, or starting with U+0000. */
  "invalid-text": -32002,
  /** The peer's outbox is full. */
  "outbox-full": -32003,
  /** The conversation is closing or closed. */
  "not-sent": -32004,
  /** Not a peer address or ID. */
  "bad-address": -32005,
  /** `trust`: the conversation is not refusing a key, or another key is refused than the one named. */
  "nothing-to-trust": -32006,
  /** `verify`: no secure session yet, or the safety number given is not the one computed. */
  "not-verified": -32007,
  /** The service is shutting down. */
  "shutting-down": -32008,
} as const;

/** An error code name of {@link RPC_ERRORS}. */
export type RpcErrorName = keyof typeof RPC_ERRORS;

/** Longest request line accepted (bytes of UTF-8): a MAX_BODY text escaped as JSON fits. */
export const MAX_RPC_LINE = 8 * MAX_BODY;

/** A JSON-RPC response object. */
export type RpcResponse =
  | { jsonrpc: "2.0"; id: RpcId; result: unknown }
  | {
    jsonrpc: "2.0";
    id: RpcId;
    error: { code: number; message: string; data: { code: RpcErrorName } };
  };

/** A request id (JSON-RPC: string, number or null). */
export type RpcId = string | number | null;

/** A JSON-RPC notification object (server → client). */
export interface RpcNotification {
  jsonrpc: "2.0";
  method: string;
  params: Record<string, unknown>;
}

class RpcError extends Error {
  constructor(readonly rpcName: RpcErrorName, message: string) {
    super(message);
  }
}

type Params = Record<string, unknown>;
type Method = (p: Params) => Promise<unknown>;

function str(p: Params, key: string): string {
  const v = p[key];
  if (typeof v !== "string") {
    throw new RpcError("invalid-params", `params.${key} must be a string`);
  }
  return v;
}

/** The method table and event mapping; see the module doc. */
export class RpcDispatcher {
  readonly #engine: Engine;
  readonly #methods: Record<string, Method>;
  #stopping = false;

  /** A dispatcher over `engine`. */
  constructor(engine: Engine) {
    this.#engine = engine;
    this.#methods = {
      send: (p) => this.#send(p),
      connect: (p) => this.#connect(p),
      trust: (p) => this.#trust(p),
      verify: (p) => this.#verify(p),
      close: (p) => this.#close(p),
      peers: () => Promise.resolve(this.#peers()),
      status: () => Promise.resolve(this.#status()),
    };
  }

  /** From now on every request fails with `shutting-down`. */
  stopping(): void {
    this.#stopping = true;
  }

  /** One request line → the response line (undefined for a notification: no response). */
  async handleLine(line: string): Promise<string | undefined> {
    if (new TextEncoder().encode(line).length > MAX_RPC_LINE) {
      return JSON.stringify(
        failure(
          null,
          "parse-error",
          `request longer than ${MAX_RPC_LINE} bytes`,
        ),
      );
    }
    let req: unknown;
    try {
      req = JSON.parse(line);
    } catch {
      return JSON.stringify(failure(null, "parse-error", "not JSON"));
    }
    const res = await this.handle(req);
    return res && JSON.stringify(res);
  }

  /** One parsed request → its response (undefined for a valid notification). */
  async handle(req: unknown): Promise<RpcResponse | undefined> {
    if (!req || typeof req !== "object" || Array.isArray(req)) {
      return failure(
        null,
        "invalid-request",
        "a request is one JSON object (batches are not supported)",
      );
    }
    const r = req as Record<string, unknown>;
    const id = r.id;
    const validId = id === undefined || id === null || typeof id === "string" ||
      (typeof id === "number" && Number.isFinite(id));
    const rid: RpcId = validId && id !== undefined ? id as RpcId : null;
    if (r.jsonrpc !== "2.0" || typeof r.method !== "string" || !validId) {
      return failure(
        rid,
        "invalid-request",
        'need "jsonrpc": "2.0", a string "method" and an optional id',
      );
    }
    const params = r.params ?? {};
    if (
      typeof params !== "object" || params === null || Array.isArray(params)
    ) {
      return failure(rid, "invalid-params", "params must be an object");
    }
    const method = Object.hasOwn(this.#methods, r.method)
      ? this.#methods[r.method]
      : undefined;
    let out: RpcResponse;
    if (!method) {
      out = failure(
        rid,
        "unknown-method",
        `unknown method '${r.method.slice(0, 40)}'`,
      );
    } else if (this.#stopping) {
      out = failure(rid, "shutting-down", "the service is shutting down");
    } else {
      try {
        out = {
          jsonrpc: "2.0",
          id: rid,
          result: await method(params as Params),
        };
      } catch (e) {
        out = e instanceof RpcError
          ? failure(rid, e.rpcName, e.message)
          : failure(rid, "internal", (e as Error)?.message ?? String(e));
      }
    }
    return id === undefined ? undefined : out;
  }

  /** The notification for an engine event (`method` = the event type; `params.peer`/`fingerprint` name the peer). */
  notification(ev: ClientEvent): RpcNotification {
    // The text of a `sent` or `message` event is a getter on its prototype
    // (clients/engine.ts SentEvent, IncomingMessageEvent), which a spread does not
    // copy: named here, in its place.
    const { type, ...rest } = ev.type === "sent"
      ? {
        type: ev.type,
        id: ev.id,
        text: ev.text,
        at: ev.at,
        peer: ev.peer,
        peerFingerprint: ev.peerFingerprint,
      }
      : ev.type === "message"
      ? {
        type: ev.type,
        text: ev.text,
        ...(ev.id === undefined ? {} : { id: ev.id }),
        counter: ev.counter,
        seq: ev.seq,
        at: ev.at,
        peer: ev.peer,
        peerFingerprint: ev.peerFingerprint,
      }
      : ev;
    const params: Record<string, unknown> = { ...rest };
    if (ev.peer !== undefined) {
      params.fingerprint = ev.peerFingerprint ??
        this.#engine.peer(parseSessionId(ev.peer))?.fingerprint ?? null;
      delete params.peerFingerprint;
    }
    return { jsonrpc: "2.0", method: type, params };
  }

  /**
   * `JSON.stringify(notification(ev))`, with the per-message events spelled
   * out (same bytes, tests/serve_test.ts): numbers, ISO 8601 times, the
   * base32 relay ID and the hex fingerprint need no escaping.
   */
  notificationLine(ev: ClientEvent): string {
    if (ev.peer === undefined) return JSON.stringify(this.notification(ev));
    const fp = ev.peerFingerprint ??
      this.#engine.peer(parseSessionId(ev.peer))?.fingerprint;
    const tail = `,"peer":"${ev.peer}","fingerprint":${
      fp === undefined ? "null" : `"${fp}"`
    }}}`;
    switch (ev.type) {
      case "message":
        return `{"jsonrpc":"2.0","method":"message","params":{"text":${
          JSON.stringify(ev.text)
        }${
          ev.id === undefined ? "" : `,"id":${ev.id}`
        },"counter":${ev.counter},"seq":${ev.seq},"at":"${ev.at}"${tail}`;
      case "delivered":
        return `{"jsonrpc":"2.0","method":"delivered","params":{"id":${ev.id},"at":"${ev.at}"${tail}`;
      default:
        return JSON.stringify(this.notification(ev));
    }
  }

  // The last tail of writeNotification: `,"at":…` with the peer fields and `}}\n`, as bytes.
  #tail = new Uint8Array(0);
  #tailAt = "";
  #tailPeer = "";
  #tailFp = "";

  /** `,"at":"…","peer":"…","fingerprint":"…"}}\n` as bytes, encoded once per millisecond and peer. */
  #tailOf(at: string, peer: string, fp: string): Uint8Array {
    if (at !== this.#tailAt || peer !== this.#tailPeer || fp !== this.#tailFp) {
      this.#tail = encoder.encode(
        `,"at":"${at}","peer":"${peer}","fingerprint":"${fp}"}}\n`,
      );
      this.#tailAt = at;
      this.#tailPeer = peer;
      this.#tailFp = fp;
    }
    return this.#tail;
  }

  /**
   * Writes `notificationLine(ev) + "\n"` into `w` as bytes, for the
   * per-message events — `message` (made by the engine, its text valid
   * UTF-8 that needs no escaping) and `delivered` — when they carry the
   * peer's fingerprint: fixed keys, the numbers' digits, the engine's body
   * bytes as they are (clients/engine.ts IncomingMessageEvent), the rest of
   * the line encoded once per millisecond and peer; no string is decoded,
   * stringified or encoded per message (the same bytes,
   * tests/rpc_line_test.ts). Returns false, having written nothing, for any
   * other event: write its {@link notificationLine} instead.
   */
  writeNotification(ev: ClientEvent, w: BufferedWriter): boolean {
    if (ev.peer === undefined || ev.peerFingerprint === undefined) return false;
    if (ev.type === "delivered") {
      if (!plainInteger(ev.id)) return false;
      const tail = this.#tailOf(ev.at, ev.peer, ev.peerFingerprint);
      const b = w.reserve(DELIVERED_HEAD.length + MAX_DIGITS + tail.length);
      w.commit(
        put(b, putDigits(b, put(b, w.end, DELIVERED_HEAD), ev.id), tail),
      );
      return true;
    }
    if (ev.type !== "message") return false;
    const body = IncomingMessageEvent.bodyOf(ev);
    if (
      !body || (ev.id !== undefined && !plainInteger(ev.id)) ||
      !plainInteger(ev.counter) || !plainInteger(ev.seq) || !jsonSafe(body)
    ) return false;
    const tail = this.#tailOf(ev.at, ev.peer, ev.peerFingerprint);
    const b = w.reserve(
      MESSAGE_HEAD.length + body.length + 3 * MAX_DIGITS + ID_KEY.length +
        COUNTER_KEY.length + SEQ_KEY.length + tail.length,
    );
    let at = put(b, w.end, MESSAGE_HEAD);
    b.set(body, at);
    at += body.length;
    if (ev.id !== undefined) {
      at = put(b, putDigits(b, put(b, at, ID_KEY), ev.id), COUNTER_KEY);
    } else at = put(b, at, NO_ID_COUNTER_KEY);
    at = putDigits(b, at, ev.counter);
    at = putDigits(b, put(b, at, SEQ_KEY), ev.seq);
    w.commit(put(b, at, tail));
    return true;
  }

  // ── methods ──────────────────────────────────────────────────────────────

  #peerId(p: Params): Bytes {
    const text = str(p, "peer");
    let id: Bytes;
    try {
      id = parseSessionId(text);
    } catch {
      throw new RpcError(
        "invalid-params",
        "params.peer must be a relay session ID",
      );
    }
    if (!this.#engine.conversations.get(id)) {
      throw new RpcError(
        "unknown-peer",
        `no conversation with ${text.slice(0, 32)}`,
      );
    }
    return id;
  }

  async #send(p: Params): Promise<unknown> {
    const id = this.#peerId(p);
    const text = str(p, "text");
    const bytes = new TextEncoder().encode(text);
    if (bytes.length === 0 || bytes.length > MAX_BODY || bytes[0] === 0) {
      throw new RpcError(
        "invalid-text",
        bytes[0] === 0
          ? "text must not start with U+0000 (reserved for control messages)"
          : `text must be 1 to ${MAX_BODY} bytes of UTF-8`,
      );
    }
    const v = (await this.#engine.send(id, [text]))?.[0];
    if (!v) throw new RpcError("unknown-peer", "the conversation has ended");
    if (!v.ok) {
      throw new RpcError(
        v.code === "outbox-full"
          ? "outbox-full"
          : v.code === "invalid-text" || v.code === "too-large"
          ? "invalid-text"
          : "not-sent",
        v.message,
      );
    }
    return { id: v.id };
  }

  async #connect(p: Params): Promise<unknown> {
    let addr;
    try {
      addr = parsePeerAddress(str(p, "address"));
    } catch (e) {
      if (e instanceof RpcError) throw e;
      throw new RpcError("bad-address", (e as Error).message);
    }
    await this.#engine.dial(addr.id, addr);
    return { peer: formatSessionId(addr.id) };
  }

  async #trust(p: Params): Promise<unknown> {
    const id = this.#peerId(p);
    const fp = str(p, "fingerprint").replace(/[\s:]/g, "").toLowerCase();
    const c = this.#engine.conversations.get(id)!;
    const refused = c.refusedFingerprint;
    if (refused === undefined || refused !== fp) {
      throw new RpcError(
        "nothing-to-trust",
        refused === undefined
          ? "this conversation is not refusing a key"
          : `the refused key is ${refused}, not ${fp}`,
      );
    }
    await this.#engine.retrust(id, fp);
    return { peer: formatSessionId(id), fingerprint: fp };
  }

  async #verify(p: Params): Promise<unknown> {
    const id = this.#peerId(p);
    const peer = this.#engine.peer(id);
    if (!peer?.safetyNumber || !peer.fingerprint) {
      throw new RpcError(
        "not-verified",
        "no secure session with this peer yet",
      );
    }
    if (p.safetyNumber === undefined) {
      return {
        safetyNumber: peer.safetyNumber,
        fingerprint: peer.fingerprint,
        verified: peer.trust === "verified",
      };
    }
    const given = str(p, "safetyNumber").replace(/\s/g, "");
    if (given !== peer.safetyNumber.replace(/\s/g, "")) {
      throw new RpcError(
        "not-verified",
        "the safety number given is not the one of this conversation",
      );
    }
    await this.#engine.markVerified(id);
    return {
      safetyNumber: peer.safetyNumber,
      fingerprint: peer.fingerprint,
      verified: true,
    };
  }

  async #close(p: Params): Promise<unknown> {
    const id = this.#peerId(p);
    await this.#engine.close(id);
    return { closing: true };
  }

  #peers(): unknown {
    return this.#engine.conversations.list().filter((c) => !c.ended).map(
      (c) => {
        const s = c.status();
        const d = this.#engine.peer(c.peerId);
        return {
          peer: formatSessionId(c.peerId),
          fingerprint: s.fingerprint ?? null,
          trust: s.phase === "refused" ? "refused" : d?.trust ?? null,
          session: s.phase,
          peerAway: s.peerAway,
          outbox: s.queued,
          inflight: s.inflight,
          undelivered: s.undelivered,
        };
      },
    );
  }

  #status(): unknown {
    return {
      id: formatSessionId(this.#engine.localId),
      fingerprint: this.#engine.fingerprint,
      address: this.#engine.address,
      relay: this.#engine.connected ? "connected" : "reconnecting",
      conversations:
        this.#engine.conversations.list().filter((c) => !c.ended).length,
      secure: this.#engine.conversations.list().filter((c) => c.secure).length,
    };
  }
}

function failure(id: RpcId, name: RpcErrorName, message: string): RpcResponse {
  return {
    jsonrpc: "2.0",
    id,
    error: { code: RPC_ERRORS[name], message, data: { code: name } },
  };
}
