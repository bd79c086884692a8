/**
 * `deno task web [flags]`: serves the customers' browser client — static
 * files only (`web/index.html`, the bundle `web/dist/app.js` built by
 * `deno task web:build`, `web/style.css`, `web/icon.svg`) — on a loopback
 * port. It stands for the bank's own web origin: the page must never be
 * served by the relay (README → Browser client → threat model).
 *
 * Every response carries a strict Content-Security-Policy (scripts, styles
 * and images from this origin only, no inline script, `connect-src` the one
 * configured relay origin, Trusted Types so no string ever reaches an HTML
 * sink), `Cache-Control: no-cache` with an ETag, `nosniff`, no referrer, and
 * framing refused. The relay URL reaches the page as a `<meta>` tag, not as
 * script. Files are read once at start; anything else is 404, methods other
 * than GET/HEAD are 405.
 * @module
 */

import { parseArgs } from "node:util";
import { type Bytes, sha256, utf8 } from "../lib/bytes.ts";

const HELP =
  `deno task web [flags]   — serve the customers' browser client (static files)

  --relay URL      relay the page connects to (default wss://localhost:8765/ws);
                   the CSP's connect-src allows this origin only
  --host ADDR      address to bind (default 127.0.0.1)
  --port N         port (default 8080; 0 = any free port, printed)
  --cert FILE      serve over HTTPS with this certificate chain (PEM) …
  --key FILE       … and key; without them plain HTTP (fine on loopback,
                   which browsers treat as a secure context)
  --dir DIR        folder holding index.html, style.css, icon.svg, dist/app.js
                   (default web)
  -h, --help       this help

Build the bundle first: deno task web:build (deno task web does it for you).`;

/** Default port of `deno task web`. */
export const DEFAULT_WEB_PORT = 8080;
/** Default relay the page uses. */
export const DEFAULT_WEB_RELAY = "wss://localhost:8765/ws";

/** The files served: URL path → file under the web folder and its type. */
const FILES: Record<string, { file: string; type: string }> = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/app.js": { file: "dist/app.js", type: "text/javascript; charset=utf-8" },
  "/style.css": { file: "style.css", type: "text/css; charset=utf-8" },
  "/icon.svg": { file: "icon.svg", type: "image/svg+xml" },
};

/** Placeholder in index.html replaced by the relay URL (attribute-escaped). */
const RELAY_PLACEHOLDER = "%RELAY_URL%";

/**
 * The page's Content-Security-Policy for a relay URL (`wss://host:port/ws`):
 * everything from this origin only, no inline script or style, WebSocket to
 * that relay origin only, no plugins, no framing, no forms, Trusted Types
 * enforced with no policy (so `innerHTML` and friends throw).
 */
export function contentSecurityPolicy(relay: string): string {
  const u = new URL(relay);
  if (u.protocol !== "wss:") {
    throw new RangeError(`--relay must be a wss:// URL (got ${u.protocol}//)`);
  }
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    `connect-src ${u.protocol}//${u.host}`,
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
    "object-src 'none'",
    "require-trusted-types-for 'script'",
    "trusted-types 'none'",
  ].join("; ");
}

/** Headers of every response (besides Content-Type, ETag). */
export function securityHeaders(relay: string): Record<string, string> {
  return {
    "content-security-policy": contentSecurityPolicy(relay),
    "cache-control": "no-cache",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy":
      "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
  };
}

/** Options of {@link startWebServer}. */
export interface WebServerOptions {
  /** Relay URL given to the page and allowed by connect-src. */
  relay: string;
  /** Folder with the files (default `web`). */
  dir?: string;
  /** Address to bind (default 127.0.0.1). */
  hostname?: string;
  /** Port (0 = any free). */
  port?: number;
  /** PEM certificate chain and key for HTTPS. */
  cert?: string;
  key?: string;
}

/** A running web server. */
export interface WebServer {
  /** The page's URL (`http://127.0.0.1:PORT/`). */
  url: string;
  /** Stops serving. */
  shutdown(): Promise<void>;
  /** Resolves when the server has stopped. */
  finished: Promise<void>;
}

interface Asset {
  body: Bytes;
  type: string;
  etag: string;
}

function escapeAttribute(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Reads the files once (the bundle must exist) and serves them. */
export async function startWebServer(
  opts: WebServerOptions,
): Promise<WebServer> {
  const dir = opts.dir ?? "web";
  const headers = securityHeaders(opts.relay);
  const assets = new Map<string, Asset>();
  for (const [path, { file, type }] of Object.entries(FILES)) {
    let body: Bytes;
    try {
      body = await Deno.readFile(`${dir}/${file}`);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new Error(
          `${dir}/${file} is missing${
            file.startsWith("dist/") ? ": run deno task web:build first" : ""
          }`,
        );
      }
      throw e;
    }
    if (file === "index.html") {
      const html = new TextDecoder().decode(body);
      if (!html.includes(RELAY_PLACEHOLDER)) {
        throw new Error(`${dir}/index.html has no ${RELAY_PLACEHOLDER}`);
      }
      body = utf8(
        html.replaceAll(RELAY_PLACEHOLDER, escapeAttribute(opts.relay)),
      );
    }
    const etag = `"${(await sha256(body)).toHex().slice(0, 32)}"`;
    assets.set(path, { body, type, etag });
  }
  assets.set("/index.html", assets.get("/")!);

  const handler = (req: Request): Response => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      return new Response("method not allowed\n", {
        status: 405,
        headers: { ...headers, allow: "GET, HEAD" },
      });
    }
    const asset = assets.get(new URL(req.url).pathname);
    if (asset === undefined) {
      return new Response("not found\n", {
        status: 404,
        headers: { ...headers, "content-type": "text/plain; charset=utf-8" },
      });
    }
    const h = { ...headers, "content-type": asset.type, etag: asset.etag };
    if (req.headers.get("if-none-match") === asset.etag) {
      return new Response(null, { status: 304, headers: h });
    }
    return new Response(req.method === "HEAD" ? null : asset.body, {
      headers: h,
    });
  };

  const { promise: listening, resolve } = Promise.withResolvers<
    Deno.NetAddr
  >();
  const hostname = opts.hostname ?? "127.0.0.1";
  const server = Deno.serve({
    hostname,
    port: opts.port ?? DEFAULT_WEB_PORT,
    ...(opts.cert && opts.key ? { cert: opts.cert, key: opts.key } : {}),
    onListen: (addr) => resolve(addr as Deno.NetAddr),
  }, handler);
  const addr = await listening;
  const host = addr.hostname.includes(":")
    ? `[${addr.hostname}]`
    : addr.hostname;
  return {
    url: `${opts.cert ? "https" : "http"}://${host}:${addr.port}/`,
    shutdown: () => server.shutdown(),
    finished: server.finished,
  };
}

async function main(args: string[]): Promise<number> {
  let v;
  try {
    v = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        relay: { type: "string" },
        host: { type: "string" },
        port: { type: "string" },
        cert: { type: "string" },
        key: { type: "string" },
        dir: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }).values;
    if (v.help) {
      console.log(HELP);
      return 0;
    }
    if ((v.cert === undefined) !== (v.key === undefined)) {
      throw new Error("--cert and --key go together");
    }
    contentSecurityPolicy(v.relay ?? DEFAULT_WEB_RELAY);
  } catch (e) {
    console.error(`web: ${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  const port = v.port === undefined ? DEFAULT_WEB_PORT : Number(v.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`web: --port must be 0..65535 (got '${v.port}')`);
    return 2;
  }
  let server;
  try {
    server = await startWebServer({
      relay: v.relay ?? DEFAULT_WEB_RELAY,
      dir: v.dir,
      hostname: v.host,
      port,
      cert: v.cert === undefined ? undefined : await Deno.readTextFile(v.cert),
      key: v.key === undefined ? undefined : await Deno.readTextFile(v.key),
    });
  } catch (e) {
    console.error(`web: cannot start: ${(e as Error).message}`);
    return 1;
  }
  console.error(
    `web: serving the browser client on ${server.url} (relay ${
      v.relay ?? DEFAULT_WEB_RELAY
    })`,
  );
  const stop = () => server.shutdown().then(() => Deno.exit(0));
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  await server.finished;
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
