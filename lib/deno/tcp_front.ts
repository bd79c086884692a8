/**
 * The relay's public socket: plain TCP (`Deno.listen`) in front of a private
 * loopback `Deno.listenTls`, bytes pumped between the two.
 *
 * Why: a `Deno.TlsConn` whose TLS handshake has not finished cannot be
 * closed — `close()` waits for the handshake, so a client that never sends
 * its ClientHello keeps the socket and its file descriptor for as long as it
 * likes (measured: still open after 60 s) — and `Deno.TlsConn` cannot set
 * `TCP_NODELAY`. A `Deno.TcpConn` closes at once and takes `setNoDelay`. So
 * the public side is TCP (with `TCP_NODELAY`, closable at every stage), and
 * TLS runs on a loopback link the relay owns both ends of: closing the
 * public socket and our end of the link ends the TLS connection too.
 * Costs: three sockets per client instead of one (budget LimitNOFILE for
 * it) and one extra copy per chunk each way.
 * @module
 */

/** One accepted client: the public TCP socket and the TLS connection carried over the link. */
export interface FrontConn {
  /** The client's address. */
  remoteAddr: Deno.NetAddr;
  /** TLS server side (handshake not yet done). */
  tls: Deno.TlsConn;
  /** Closes the public socket and the link now (frees all three descriptors). */
  destroy(): void;
  /**
   * Lets what the TLS side already wrote reach the client, then destroys:
   * when both directions have ended, or after `graceMs` at the latest.
   */
  end(graceMs: number): void;
}

/** Smallest / largest pump buffer: an idle connection holds two of the small ones. */
const MIN_BUF = 1024;
const MAX_BUF = 64 * 1024;

async function writeAll(conn: Deno.Conn, b: Uint8Array): Promise<void> {
  for (let off = 0; off < b.length;) off += await conn.write(b.subarray(off));
}

/** Copies `src` to `dst` until either ends; then half-closes `dst` (or calls `onEnd` on error). */
async function pump(
  src: Deno.Conn,
  dst: Deno.Conn,
  onEnd: () => void,
): Promise<void> {
  let size = MIN_BUF;
  let buf = new Uint8Array(size);
  try {
    for (;;) {
      const n = await src.read(buf);
      if (n === null) break;
      await writeAll(dst, buf.subarray(0, n));
      if (n === size && size < MAX_BUF) {
        size *= 2;
        buf = new Uint8Array(size);
      } else if (n < size / 8 && size > MIN_BUF) {
        size /= 2;
        buf = new Uint8Array(size);
      }
    }
    await dst.closeWrite().catch(() => {});
  } catch {
    // either side failed
  }
  onEnd();
}

/** Where the relay's connections come from: {@link TcpFront} or {@link DirectTls}. */
export interface Front {
  /** The public address. */
  readonly addr: Deno.NetAddr;
  /** The next client (throws EMFILE/ENFILE for the caller to shed). */
  accept(): Promise<FrontConn>;
  /** Stops listening. */
  close(): void;
}

/**
 * `Deno.listenTls` alone (`--direct-tls`): one descriptor per client and
 * no extra copy, but no `TCP_NODELAY`, and a client that never completes
 * its TLS handshake keeps its socket until it acts (the relay stops
 * counting it at the deadline; Deno keeps the descriptor).
 */
export class DirectTls implements Front {
  readonly #l: Deno.TlsListener;

  private constructor(l: Deno.TlsListener) {
    this.#l = l;
  }

  /** Listens with TLS on `hostname:port`. */
  static listen(
    opts: { hostname: string; port: number; cert: string; key: string },
  ): DirectTls {
    return new DirectTls(Deno.listenTls(opts));
  }

  /** The public address. */
  get addr(): Deno.NetAddr {
    return this.#l.addr;
  }

  /** The next client. */
  async accept(): Promise<FrontConn> {
    const tls = await this.#l.accept();
    const close = () => {
      try {
        tls.close();
      } catch {
        // already closed
      }
    };
    return {
      remoteAddr: tls.remoteAddr as Deno.NetAddr,
      tls,
      destroy: close,
      end: close,
    };
  }

  /** Stops listening. */
  close(): void {
    try {
      this.#l.close();
    } catch {
      // closed
    }
  }
}

/** A TCP listener whose connections arrive as TLS connections. */
export class TcpFront implements Front {
  readonly #outer: Deno.TcpListener;
  readonly #inner: Deno.TlsListener;
  readonly #innerPort: number;
  readonly #waiting = new Map<number, (c: Deno.TlsConn) => void>();
  /** Link connections accepted before their public side asked for them (by link port). */
  readonly #arrived = new Map<number, Deno.TlsConn>();
  #closed = false;
  readonly #onFdExhausted: (code: string) => void;

  private constructor(
    outer: Deno.TcpListener,
    inner: Deno.TlsListener,
    onFdExhausted: (code: string) => void,
  ) {
    this.#outer = outer;
    this.#inner = inner;
    this.#onFdExhausted = onFdExhausted;
    this.#innerPort = (inner.addr as Deno.NetAddr).port;
    this.#acceptInner();
  }

  /** Listens on `hostname:port` (public, TCP) and on a free loopback port (TLS). */
  static listen(
    opts: { hostname: string; port: number; cert: string; key: string },
    onFdExhausted: (code: string) => void,
  ): TcpFront {
    const inner = Deno.listenTls({
      hostname: "127.0.0.1",
      port: 0,
      cert: opts.cert,
      key: opts.key,
    });
    try {
      return new TcpFront(
        Deno.listen({ hostname: opts.hostname, port: opts.port }),
        inner,
        onFdExhausted,
      );
    } catch (e) {
      inner.close();
      throw e;
    }
  }

  /** The public address. */
  get addr(): Deno.NetAddr {
    return this.#outer.addr;
  }

  async #acceptInner(): Promise<void> {
    while (!this.#closed) {
      let c: Deno.TlsConn;
      try {
        c = await this.#inner.accept();
      } catch (e) {
        if (this.#closed || e instanceof Deno.errors.BadResource) return;
        const code = (e as { code?: string }).code;
        if (code === "EMFILE" || code === "ENFILE") this.#onFdExhausted(code);
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      const port = (c.remoteAddr as Deno.NetAddr).port;
      const w = this.#waiting.get(port);
      if (w) {
        this.#waiting.delete(port);
        w(c);
      } else {
        this.#arrived.set(port, c);
        setTimeout(() => {
          if (this.#arrived.get(port) === c) {
            this.#arrived.delete(port);
            c.close(); // nobody claimed it
          }
        }, 5000);
      }
    }
  }

  /**
   * Accepts the next client. Throws what `Deno.TcpListener.accept` throws
   * (EMFILE/ENFILE included: the caller decides how to shed).
   */
  async accept(): Promise<FrontConn> {
    for (;;) {
      const tcp = await this.#outer.accept();
      const c = await this.#link(tcp).catch((e) => {
        const code = (e as { code?: string }).code;
        if (code === "EMFILE" || code === "ENFILE") throw e; // the caller sheds
        return undefined;
      });
      if (c) return c;
    }
  }

  async #link(tcp: Deno.TcpConn): Promise<FrontConn> {
    let link: Deno.TcpConn;
    try {
      tcp.setNoDelay(true);
      link = await Deno.connect({
        hostname: "127.0.0.1",
        port: this.#innerPort,
      });
    } catch (e) {
      tcp.close();
      throw e;
    }
    link.setNoDelay(true);
    const port = (link.localAddr as Deno.NetAddr).port;
    const tls = this.#arrived.get(port) ??
      await new Promise<Deno.TlsConn | undefined>((resolve) => {
        this.#waiting.set(port, resolve);
        setTimeout(() => {
          if (this.#waiting.delete(port)) resolve(undefined);
        }, 5000);
      });
    this.#arrived.delete(port);
    if (!tls) {
      tcp.close();
      link.close();
      throw new Error("loopback link not accepted");
    }
    let done = false;
    const destroy = () => {
      if (done) return;
      done = true;
      for (const s of [tcp, link]) {
        try {
          s.close();
        } catch {
          // already closed
        }
      }
    };
    let ended = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const onEnd = () => {
      if (++ended === 2) {
        clearTimeout(timer);
        destroy();
      }
    };
    pump(tcp, link, onEnd);
    pump(link, tcp, onEnd);
    const end = (graceMs: number) => {
      if (done || timer !== undefined) return;
      timer = setTimeout(destroy, graceMs);
    };
    return { remoteAddr: tcp.remoteAddr as Deno.NetAddr, tls, destroy, end };
  }

  /** Stops listening (open connections stay). */
  close(): void {
    this.#closed = true;
    for (const l of [this.#outer, this.#inner]) {
      try {
        l.close();
      } catch {
        // closed
      }
    }
  }
}
