/**
 * Test fixture: an in-process relay over real TLS on a random loopback port,
 * with certificates generated into a temporary folder, plus a raw WebSocket
 * client that exposes every frame for protocol tests.
 * @module
 */

import { ensureCerts } from "../../tools/certs.ts";
import {
  type RelayHandle,
  type RelayOptions,
  startRelay,
} from "../../lib/deno/relay_server.ts";
import { RELAY_SUBPROTOCOL } from "../../lib/constants.ts";
import { decodeFrame, type Frame } from "../../lib/relay_frame.ts";
import { generateMailboxKey, type MailboxKey } from "../../lib/registration.ts";
import { RelayConnection } from "../../lib/deno/relay_client.ts";

/** A running test relay. */
export interface TestRelay {
  relay: RelayHandle;
  url: string;
  /** `http://127.0.0.1:PORT/metrics` (the loopback metrics listener). */
  metricsUrl: string;
  caPem: string;
  certsDir: string;
  logs: string[];
  connect(mailbox?: MailboxKey): Promise<RelayConnection>;
  close(): Promise<void>;
}

/** A relay on 127.0.0.1 (a free port) serving `cert` and `key` (PEM), logging nothing. */
export function startQuietRelay(
  cert: string,
  key: string,
): Promise<RelayHandle> {
  return startRelay({
    hostname: "127.0.0.1",
    port: 0,
    cert,
    key,
    quiet: true,
    log: () => {},
  });
}

/** Generates certificates once per process into a temp dir. */
let certsCache:
  | Promise<{ dir: string; ca: string; cert: string; key: string }>
  | undefined;
export function testCerts(): Promise<
  { dir: string; ca: string; cert: string; key: string }
> {
  certsCache ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "relay-certs-" });
    const r = await ensureCerts({ dir });
    return {
      dir,
      ca: await Deno.readTextFile(r.caPath),
      cert: await Deno.readTextFile(r.certPath),
      key: await Deno.readTextFile(r.keyPath),
    };
  })();
  return certsCache;
}

/** Starts a relay on 127.0.0.1:0 with `opts` overriding defaults. */
export async function startTestRelay(
  opts: Partial<RelayOptions> = {},
): Promise<TestRelay> {
  const certs = await testCerts();
  const logs: string[] = [];
  const relay = await startRelay({
    hostname: "127.0.0.1",
    port: 0,
    cert: certs.cert,
    key: certs.key,
    log: (l) => logs.push(l),
    metricsPort: 0,
    ...opts,
  });
  const url = `wss://localhost:${relay.port}/ws`;
  const opened: RelayConnection[] = [];
  return {
    relay,
    url,
    metricsUrl: `http://127.0.0.1:${relay.metricsPort}/metrics`,
    caPem: certs.ca,
    certsDir: certs.dir,
    logs,
    async connect(mailbox?: MailboxKey) {
      const key = mailbox ?? (await generateMailboxKey()).key;
      const c = await RelayConnection.connect({
        url,
        mailbox: key,
        caCerts: [certs.ca],
      });
      opened.push(c);
      return c;
    },
    async close() {
      await Promise.all(opened.map((c) => c.close()));
      await relay.shutdown();
      await relay.finished;
    },
  };
}

/** A raw WebSocket to the relay that queues every decoded frame. */
export class RawClient {
  readonly ws: WebSocket;
  readonly frames: Frame[] = [];
  readonly closed: Promise<CloseEvent>;
  readonly opened: Promise<void>;
  #waiters: (() => void)[] = [];
  readonly #client: Deno.HttpClient;

  constructor(
    url: string,
    caPem: string,
    protocols: string[] = [RELAY_SUBPROTOCOL],
  ) {
    this.#client = Deno.createHttpClient({ caCerts: [caPem] });
    this.ws = new WebSocket(url, { protocols, client: this.#client });
    this.ws.binaryType = "arraybuffer";
    this.opened = new Promise((r) => this.ws.onopen = () => r());
    this.closed = new Promise((r) =>
      this.ws.onclose = (ev) => {
        this.#client.close();
        r(ev);
        this.#wake();
      }
    );
    this.ws.onerror = () => {};
    this.ws.onmessage = (ev) => {
      if (typeof ev.data !== "string") {
        this.frames.push(decodeFrame(new Uint8Array(ev.data)));
      }
      this.#wake();
    };
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  /** Waits for the next frame matching `pred` (consumes it), or throws after `ms`. */
  async next(
    pred: (f: Frame) => boolean = () => true,
    ms = 5000,
  ): Promise<Frame> {
    const deadline = Date.now() + ms;
    while (true) {
      const i = this.frames.findIndex(pred);
      if (i >= 0) return this.frames.splice(i, 1)[0];
      if (this.ws.readyState === WebSocket.CLOSED) {
        throw new Error("socket closed while waiting");
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("timed out waiting for a frame");
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((r) => {
        this.#waiters.push(r);
        timer = setTimeout(r, left);
      });
      clearTimeout(timer);
    }
  }

  /** Closes the socket and waits for the close. */
  async close(): Promise<void> {
    if (this.ws.readyState <= WebSocket.OPEN) this.ws.close();
    await this.closed;
  }
}

/** Polls `cond` every 10 ms until true or `ms` passes (then throws with `what`). */
export async function waitFor(
  cond: () => boolean,
  what: string,
  ms = 5000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
