/**
 * `deno task bank --serve --http 127.0.0.1:PORT`: the bank service's
 * JSON-RPC methods over HTTP on a loopback address, in the manner of
 * signal-cli's `daemon --http`: `POST /rpc` takes one JSON-RPC 2.0 request
 * and answers it; `GET /events` streams every notification as Server-Sent
 * Events. Every request carries `Authorization: Bearer <token>` (the token
 * file is 0600, created on first start). The Host header must name the
 * listening address (a browser page on another origin cannot reach the API
 * by DNS rebinding), and every size is bounded.
 * @module
 */

import { timingSafeEqual } from "node:crypto";
import { utf8 } from "../lib/bytes.ts";
import { PRIVATE_FILE_MODE, writeFileAtomic } from "../lib/deno/atomic_file.ts";

/** Largest request body (bytes): the same bound as a stdin request line. */
export const MAX_HTTP_BODY = 8 * 65536;
/** Event streams open at once; more get 503. */
export const MAX_EVENT_STREAMS = 16;
/** Bytes queued for one slow event stream before it is dropped (it can reconnect). */
export const EVENT_STREAM_HIGH_WATER = 4 * 1024 * 1024;
/** Interval of the SSE keep-alive comment (ms). */
export const EVENT_KEEPALIVE_MS = 15_000;
/** Random bytes of a new token (base64url: 43 characters). */
const TOKEN_BYTES = 32;

/**
 * Reads the bearer token from `path`, or creates it (random, 0600, written
 * atomically). A token file readable by others, or too short, is refused.
 */
export async function loadOrCreateToken(path: string): Promise<string> {
  let text: string;
  try {
    const info = await Deno.stat(path);
    if (info.mode !== null && (info.mode & 0o077) !== 0) {
      throw new Error(
        `${path}: the API token file is readable by others (mode ${
          (info.mode & 0o777).toString(8)
        }); run chmod 600 ${path}`,
      );
    }
    text = (await Deno.readTextFile(path)).trim();
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    text = crypto.getRandomValues(new Uint8Array(TOKEN_BYTES)).toBase64({
      alphabet: "base64url",
      omitPadding: true,
    });
    await writeFileAtomic(path, text + "\n", PRIVATE_FILE_MODE, {
      overwrite: false,
    });
  }
  if (!/^[A-Za-z0-9_-]{32,256}$/.test(text)) {
    throw new Error(
      `${path}: not an API token (32–256 base64url characters); delete it to have a new one made`,
    );
  }
  return text;
}

/** What {@link startHttpApi} needs. */
export interface HttpApiOptions {
  /** Loopback address to listen on. */
  hostname: string;
  /** Port (0: any free one). */
  port: number;
  /** The bearer token. */
  token: string;
  /** One JSON-RPC request (text) → its response (text), undefined for a notification. */
  handle: (request: string) => Promise<string | undefined>;
}

/** A running HTTP API: {@link broadcast} notifications, then {@link close}. */
export interface HttpApi {
  /** The bound port. */
  readonly port: number;
  /** Sends one notification (a JSON text) to every event stream. */
  broadcast(json: string): void;
  /** Ends every event stream and stops listening. */
  close(): Promise<void>;
}

/** Starts the API; resolves once it listens. */
export async function startHttpApi(o: HttpApiOptions): Promise<HttpApi> {
  const expected = utf8(`Bearer ${o.token}`);
  const streams = new Set<ReadableStreamDefaultController<Uint8Array>>();
  const listening = Promise.withResolvers<number>();
  let hostOk: (host: string) => boolean = () => false;

  const authorized = (req: Request): boolean => {
    const got = utf8(req.headers.get("authorization") ?? "");
    return got.length === expected.length && timingSafeEqual(got, expected);
  };
  const json = (status: number, body: unknown, headers = {}) =>
    new Response(JSON.stringify(body) + "\n", {
      status,
      headers: {
        "content-type": "application/json",
        "cache-control": "no-store",
        ...headers,
      },
    });

  const events = (): Response => {
    if (streams.size >= MAX_EVENT_STREAMS) {
      return json(503, { error: `at most ${MAX_EVENT_STREAMS} event streams` });
    }
    let self: ReadableStreamDefaultController<Uint8Array>;
    let keepalive: ReturnType<typeof setInterval>;
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        self = c;
        streams.add(c);
        c.enqueue(utf8(": events of the bank service\n\n"));
        keepalive = setInterval(
          () => send(c, utf8(": keep-alive\n\n")),
          EVENT_KEEPALIVE_MS,
        );
      },
      cancel() {
        streams.delete(self);
        clearInterval(keepalive);
      },
    }, { highWaterMark: EVENT_STREAM_HIGH_WATER, size: (b) => b.length });
    return new Response(body, {
      headers: {
        "content-type": "text/event-stream",
        "cache-control": "no-store",
      },
    });
  };

  /** Queues `b` on `c`; a stream that lets its queue pass the high-water mark is dropped. */
  const send = (
    c: ReadableStreamDefaultController<Uint8Array>,
    b: Uint8Array,
  ) => {
    if (!streams.has(c)) return;
    if ((c.desiredSize ?? 0) < 0) {
      streams.delete(c);
      try {
        c.error(new Error("event stream too slow: dropped"));
      } catch { /* already closed */ }
      return;
    }
    c.enqueue(b);
  };

  const rpc = async (req: Request): Promise<Response> => {
    const length = Number(req.headers.get("content-length") ?? NaN);
    if (!(length <= MAX_HTTP_BODY)) {
      return json(413, {
        jsonrpc: "2.0",
        id: null,
        error: {
          code: -32700,
          message:
            `a request body of at most ${MAX_HTTP_BODY} bytes, with Content-Length`,
        },
      });
    }
    const text = await req.text();
    const res = await o.handle(text);
    if (res === undefined) return new Response(null, { status: 204 });
    return new Response(res + "\n", {
      headers: {
        "content-type": "application/json",
        "cache-control": "no-store",
      },
    });
  };

  const server = Deno.serve({
    hostname: o.hostname,
    port: o.port,
    onListen: ({ port }) => listening.resolve(port),
    onError: () => json(500, { error: "internal error" }),
  }, async (req) => {
    if (!hostOk(req.headers.get("host") ?? "")) {
      return json(421, {
        error: "Host must be the API's own loopback address",
      });
    }
    if (!authorized(req)) {
      return json(401, { error: "bearer token required (see --token-file)" }, {
        "www-authenticate": 'Bearer realm="bank-service"',
      });
    }
    const path = new URL(req.url).pathname;
    if (path === "/rpc") {
      return req.method === "POST"
        ? await rpc(req)
        : json(405, { error: "POST a JSON-RPC request" }, { allow: "POST" });
    }
    if (path === "/events") {
      return req.method === "GET"
        ? events()
        : json(405, { error: "GET the event stream" }, { allow: "GET" });
    }
    return json(404, { error: "not found: POST /rpc, GET /events" });
  });
  const port = await listening.promise;
  const host = o.hostname.includes(":") ? `[${o.hostname}]` : o.hostname;
  const allowed = new Set([`${host}:${port}`, `localhost:${port}`]);
  hostOk = (h) => allowed.has(h.toLowerCase());

  return {
    port,
    broadcast(line: string) {
      const b = utf8(`data: ${line}\n\n`);
      for (const c of [...streams]) send(c, b);
    },
    async close() {
      for (const c of streams) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
      streams.clear();
      await server.shutdown();
    },
  };
}
