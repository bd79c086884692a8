/**
 * The relay's public socket: `Deno.listen` accepts plain TCP, and TLS runs
 * on the accepted socket itself through `node:tls` (a server
 * `tls.TLSSocket` over a `net.Socket` that wraps the accepted connection).
 *
 * Why this shape (README → "Why the relay frames WebSocket itself"):
 * - `Deno.listen` reports EMFILE/ENFILE from `accept()`, so the relay can
 *   log, shed and keep serving. `node:net`'s server in Deno 2.9 stops
 *   accepting for good after one EMFILE, silently (measured: no `error`
 *   event, new clients time out after the descriptors are back).
 * - A `Deno.TlsConn` (from `Deno.listenTls`) cannot be closed before its
 *   handshake finished and has no `setNoDelay`. Here the socket takes
 *   `TCP_NODELAY` at accept, and `destroy()` closes it at every stage: no
 *   ClientHello, a stalled handshake, a trickled request head (measured:
 *   the client reads EOF at once, the descriptors are freed).
 * - No loopback link: no second TLS listener, no pump copying every chunk,
 *   and no Nagle stall on a link socket that cannot set `TCP_NODELAY`.
 *
 * The accepted `Deno.TcpConn` is handed to `node:net` with the runtime's
 * `tcp_wrap` binding (`TCP.openFromRid`, the same handle `node:net` uses),
 * which duplicates the descriptor: a client costs two descriptors (budget
 * LimitNOFILE for it), and both are closed together by {@link FrontConn}.
 *
 * Data is pushed (`onData`, a fresh buffer per read), writes are queued in
 * the socket (`write`, or `writev` for a corked batch; `writableLength` is
 * what waits there): one batch per task is the caller's job
 * (lib/deno/relay_socket.ts).
 * @module
 */

import net from "node:net";
import process from "node:process";
import tls from "node:tls";
import { getSystemErrorName } from "node:util";

/** One accepted client: the TLS server side of its TCP socket. */
export interface FrontConn {
  /** The client's address. */
  readonly remoteAddr: Deno.NetAddr;
  /** Resolves when the TLS handshake is done; rejects if the connection ends first. */
  readonly secure: Promise<void>;
  /**
   * Decrypted bytes as they arrive (null: dropped). Each chunk is a fresh
   * buffer of its own (`node:tls` allocates one per read and never touches
   * it again): the receiver may keep it and modify it in place. A plain
   * `Uint8Array` (not a node `Buffer`, whose `slice()` would not copy).
   */
  onData: ((chunk: Uint8Array) => void) | null;
  /** The client ended its side, the socket failed, or it was destroyed; called once. */
  onEnd: (() => void) | null;
  /**
   * Queues bytes for the client (the socket keeps a reference until they
   * are written: do not reuse the buffer). `done` runs once they were
   * handed to the kernel, or with an error.
   */
  write(bytes: Uint8Array, done?: (err?: Error | null) => void): void;
  /**
   * Queues `parts` in order as one batch (corked: one write of them all
   * when the socket is idle); `done` runs once all were written (same
   * rules as {@link write}).
   */
  writev(parts: Uint8Array[], done?: (err?: Error | null) => void): void;
  /** Bytes queued in the socket and not yet written. */
  readonly writableLength: number;
  /** Stops `onData` (bytes wait in the socket, bounded by its buffer). */
  pause(): void;
  /** Resumes `onData`. */
  resume(): void;
  /** Sends TLS close_notify and FIN once the queued bytes are out; reading goes on. */
  endWrite(): void;
  /** Closes now and frees the descriptors. */
  destroy(): void;
  /**
   * Stops reading (`onEnd` now), lets the queued bytes reach the client,
   * then destroys: when the client closed too, or after `graceMs` at the
   * latest (at once before the handshake finished).
   */
  end(graceMs: number): void;
}

/** The runtime's `tcp_wrap` handle (Deno 2.9; not in the public `node:` types). */
interface TcpHandle {
  openFromRid(rid: number): number;
}
interface TcpWrapBinding {
  TCP: new (type: number) => TcpHandle;
  constants: { SOCKET: number };
}

/** `process.binding` exists in Deno's `node:process` but not in its type declarations. */
const binding =
  (process as unknown as { binding(name: string): unknown }).binding;

function tcpWrap(): TcpWrapBinding {
  const b = binding("tcp_wrap") as Partial<TcpWrapBinding>;
  if (
    typeof b.TCP !== "function" ||
    typeof b.TCP.prototype.openFromRid !== "function" ||
    typeof b.constants?.SOCKET !== "number"
  ) {
    throw new Error(
      "this Deno has no tcp_wrap TCP.openFromRid: the relay needs Deno 2.9 (see README)",
    );
  }
  return b as TcpWrapBinding;
}

/** The resource id of a `Deno.TcpConn` (an own symbol property named "Deno.internal.rid"). */
function ridOf(conn: Deno.TcpConn): number {
  const sym = Object.getOwnPropertySymbols(conn).find((s) =>
    s.description === "Deno.internal.rid"
  );
  const rid = sym === undefined
    ? undefined
    : (conn as unknown as Record<symbol, unknown>)[sym];
  if (typeof rid !== "number") {
    throw new Error(
      "Deno.TcpConn has no resource id: the relay needs Deno 2.9",
    );
  }
  return rid;
}

/** The errno name (`EPERM`, …) of a libuv-style negative code. */
function errName(code: number): string {
  try {
    return getSystemErrorName(code);
  } catch {
    return String(code);
  }
}

/**
 * Own properties `node:tls` puts on every socket's `TLSWrap` handle (Deno
 * 2.9.6, `TLSSocket.prototype._wrapHandle`) that an accepted server socket
 * never uses: the TCP handle's methods bound onto it (for a client socket
 * that connects through it) and the hooks for a parent that connects later.
 * Measured per idle connection: the bound functions and the handle's
 * dictionary of properties are ~1.6 KB of JS heap.
 */
const UNUSED_HANDLE_PROPS = [
  "setNetPermToken",
  "getsockname",
  "getpeername",
  "connect",
  "connect6",
  "bind",
  "bind6",
  "listen",
  "ref",
  "unref",
  "setNoDelay",
  "setKeepAlive",
  "_attachNativeHandle",
  "_installNativeOnread",
];

/** Deletes {@link UNUSED_HANDLE_PROPS} from the socket's handle (bytes per idle connection). */
function dropUnusedHandleMethods(t: tls.TLSSocket): void {
  const handle = (t as unknown as { _handle?: Record<string, unknown> })
    ._handle;
  if (handle === undefined || handle === null) return;
  for (const k of UNUSED_HANDLE_PROPS) delete handle[k];
}

/**
 * What every {@link parentOf} shares: a `net.Socket` to `node:tls` (which
 * takes the handle of a `net.Socket` parent as its transport) without the
 * socket's streams and listeners. In Deno 2.9.6 `node:tls` listens on its
 * parent ("close", "connect", "error") and reads `readableLength` (bytes
 * read before the TLS socket took over: none). The parent never emits, so
 * `on`/`once` register nothing.
 */
const PARENT_PROTO: object = Object.create(net.Socket.prototype, {
  on: { value: returnThis },
  once: { value: returnThis },
  // Nothing was read through the parent before the TLS socket took over.
  readableLength: { value: 0 },
});

function returnThis<T>(this: T): T {
  return this;
}

/**
 * A stand-in `net.Socket` over `handle` for `new tls.TLSSocket(parent)`:
 * a real `net.Socket` is ~1.3 KB of JS heap per idle connection (its
 * readable and writable states, listeners) and is never read or written.
 * Once the TLS socket exists, detach the handle ({@link detach}): the TLS
 * socket's handle then closes the TCP handle itself when it closes
 * (`TLSWrap.prototype.close` in Deno 2.9.6 waits for a parent that still
 * holds the handle to be destroyed, else closes `_nativeTcpHandle`).
 */
function parentOf(handle: TcpHandle): net.Socket {
  const p = Object.create(PARENT_PROTO) as { _handle: TcpHandle | null };
  p._handle = handle;
  return p as unknown as net.Socket;
}

/** Detaches a {@link parentOf} parent from its handle (see there). */
function detach(parent: net.Socket): void {
  (parent as unknown as { _handle: TcpHandle | null })._handle = null;
}

/** The TLS socket's back-reference to its {@link NodeTlsConn} (listeners are shared, not closures). */
const OWNER = Symbol("NodeTlsConn");
type Owned = tls.TLSSocket & { [OWNER]: NodeTlsConn };

class NodeTlsConn implements FrontConn {
  readonly remoteAddr: Deno.NetAddr;
  onData: ((chunk: Uint8Array) => void) | null = null;
  onEnd: (() => void) | null = null;
  readonly #tcp: Deno.TcpConn;
  readonly #tls: tls.TLSSocket;
  /** Settled when the handshake is done or the socket closed (made when asked for). */
  #secure?: Promise<void>;
  #settle?: (ok: boolean) => void;
  #isSecure = false;
  #gone = false;
  #graceTimer?: ReturnType<typeof setTimeout>;

  // One set of listeners for every socket: `this` is the TLS socket.
  static #onSecure(this: Owned): void {
    const c = this[OWNER];
    c.#isSecure = true;
    c.#settle?.(true);
  }
  static #onData(this: Owned, chunk: Uint8Array): void {
    // A plain Uint8Array over the Buffer's bytes: Buffer's slice() is a view.
    this[OWNER].onData?.(
      new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length),
    );
  }
  static #onEnd(this: Owned): void {
    this[OWNER].#ended();
  }
  static #onClose(this: Owned): void {
    const c = this[OWNER];
    c.#settle?.(false);
    c.destroy();
  }
  static #ignore(): void {}

  constructor(tcp: Deno.TcpConn, wrap: TcpWrapBinding, ctx: tls.SecureContext) {
    this.#tcp = tcp;
    this.remoteAddr = tcp.remoteAddr;
    tcp.setNoDelay(true);
    const handle = new wrap.TCP(wrap.constants.SOCKET);
    const err = handle.openFromRid(ridOf(tcp));
    if (err !== 0) {
      // It duplicates the descriptor, and reports a failed dup (EMFILE) as
      // -1 (EPERM): nothing else fails for a socket just accepted.
      tcp.close();
      throw Object.assign(
        new Error(`no descriptor left for TLS (openFromRid: ${errName(err)})`),
        { code: "EMFILE" },
      );
    }
    const parent = parentOf(handle);
    const t = new tls.TLSSocket(parent, {
      isServer: true,
      secureContext: ctx,
    }) as Owned;
    detach(parent);
    this.#tls = t;
    t[OWNER] = this;
    dropUnusedHandleMethods(t);
    // Paused until a reader asks (readRequestHead): bytes that arrive with
    // the handshake's last flight wait in the socket instead of being lost.
    t.pause();
    t.once("secure", NodeTlsConn.#onSecure);
    t.on("data", NodeTlsConn.#onData);
    t.on("end", NodeTlsConn.#onEnd);
    t.on("error", NodeTlsConn.#ignore); // followed by "close"
    t.on("close", NodeTlsConn.#onClose);
  }

  get secure(): Promise<void> {
    if (this.#secure === undefined) {
      if (this.#isSecure) this.#secure = Promise.resolve();
      else if (this.#gone) {
        this.#secure = Promise.reject(new Error("closed"));
      } else {
        this.#secure = new Promise<void>((resolve, reject) => {
          this.#settle = (ok) => {
            this.#settle = undefined;
            if (ok) resolve();
            else reject(new Error("closed before the TLS handshake finished"));
          };
        });
      }
      this.#secure.catch(() => {}); // a connection that never handshakes is not an error
    }
    return this.#secure;
  }

  #ended(): void {
    const on = this.onEnd;
    this.onEnd = null;
    this.onData = null;
    on?.();
  }

  write(bytes: Uint8Array, done?: (err?: Error | null) => void): void {
    if (this.#gone || !this.#tls.writable) {
      done?.(new Error("socket closed"));
      return;
    }
    this.#tls.write(bytes, done);
  }

  writev(parts: Uint8Array[], done?: (err?: Error | null) => void): void {
    if (parts.length === 1) return this.write(parts[0], done);
    if (this.#gone || !this.#tls.writable) {
      done?.(new Error("socket closed"));
      return;
    }
    const t = this.#tls;
    t.cork();
    const last = parts.length - 1;
    for (let i = 0; i < last; i++) t.write(parts[i]);
    t.write(parts[last], done);
    t.uncork();
  }

  get writableLength(): number {
    return this.#tls.writableLength;
  }

  pause(): void {
    this.#tls.pause();
  }

  resume(): void {
    this.#tls.resume();
  }

  endWrite(): void {
    if (!this.#gone) this.#tls.end();
  }

  destroy(): void {
    if (this.#gone) return;
    this.#gone = true;
    clearTimeout(this.#graceTimer);
    this.#settle?.(false);
    this.#tls.destroy(); // closes the TCP handle too (see parentOf)
    try {
      this.#tcp.close(); // the runtime's descriptor (openFromRid made the other)
    } catch {
      // already closed
    }
    this.#ended();
  }

  end(graceMs: number): void {
    if (this.#gone || this.#graceTimer !== undefined) return;
    if (!this.#isSecure) return this.destroy();
    this.#ended(); // nothing more is read: the reader is done now
    this.#tls.end();
    this.#graceTimer = setTimeout(() => this.destroy(), graceMs);
  }
}

/** TCP listener whose connections arrive as TLS server sockets ({@link FrontConn}). */
export class TlsFront {
  readonly #l: Deno.TcpListener;
  readonly #ctx: tls.SecureContext;
  readonly #wrap: TcpWrapBinding;

  private constructor(l: Deno.TcpListener, ctx: tls.SecureContext) {
    this.#wrap = tcpWrap();
    this.#l = l;
    this.#ctx = ctx;
  }

  /** Listens on `hostname:port` with the certificate chain and key (PEM). */
  static listen(
    opts: { hostname: string; port: number; cert: string; key: string },
  ): TlsFront {
    const ctx = tls.createSecureContext({ cert: opts.cert, key: opts.key });
    return new TlsFront(
      Deno.listen({ hostname: opts.hostname, port: opts.port }),
      ctx,
    );
  }

  /** The public address. */
  get addr(): Deno.NetAddr {
    return this.#l.addr;
  }

  /**
   * The next client (TLS handshake under way). Throws what
   * `Deno.TcpListener.accept` throws, EMFILE/ENFILE included (also when
   * the second descriptor cannot be made): the caller sheds.
   */
  async accept(): Promise<FrontConn> {
    for (;;) {
      const tcp = await this.#l.accept();
      try {
        return new NodeTlsConn(tcp, this.#wrap, this.#ctx);
      } catch (e) {
        const code = (e as { code?: string }).code;
        if (code === "EMFILE" || code === "ENFILE") throw e;
        // any other failure loses this one client only
      }
    }
  }

  /** Stops listening (open connections stay). */
  close(): void {
    try {
      this.#l.close();
    } catch {
      // closed
    }
  }
}
