/**
 * Test helper: a real headless Chromium (Debian's /usr/bin/chromium) driven
 * over the DevTools protocol — JSON commands and events over one WebSocket,
 * no automation library. {@link Browser.launch} starts it with a fresh
 * profile and `--remote-debugging-port=0`, reads the DevTools URL from its
 * stderr; {@link Browser.newPage} opens a tab attached in flat mode.
 * {@link Browser.close} ends it by PID and removes the profile.
 *
 * The relay's test certificate is trusted with
 * `--ignore-certificate-errors-spki-list=<base64 SHA-256 of the leaf's
 * SPKI>`: only a certificate carrying exactly that public key is accepted
 * without a chain to a known root — every other certificate is still
 * checked. Simpler and narrower than an NSS database in the profile
 * (which needs `certutil` and would trust the CA for every host).
 * @module
 */

import { X509Certificate } from "node:crypto";

/** Where Debian installs Chromium. */
export const CHROMIUM = "/usr/bin/chromium";

/** A DevTools event. */
export interface CdpEvent {
  method: string;
  // deno-lint-ignore no-explicit-any
  params: any;
  sessionId?: string;
}

/** base64 SHA-256 of a certificate's SubjectPublicKeyInfo (PEM, first certificate). */
export async function spkiHash(certPem: string): Promise<string> {
  const der = new X509Certificate(certPem).publicKey.export({
    type: "spki",
    format: "der",
  });
  const digest = await crypto.subtle.digest("SHA-256", new Uint8Array(der));
  return new Uint8Array(digest).toBase64();
}

/** Options of {@link Browser.launch}. */
export interface LaunchOptions {
  /** base64 SPKI SHA-256 hashes of certificates to accept. */
  trustSpki?: string[];
  /** Window size (CSS px), default 1000×800. */
  width?: number;
  height?: number;
}

/** A Chromium process and its browser-level DevTools connection. */
export class Browser {
  readonly #child: Deno.ChildProcess;
  readonly #ws: WebSocket;
  readonly #profile: string;
  #nextId = 1;
  readonly #pending = new Map<
    number,
    {
      resolve: (v: unknown) => void;
      reject: (e: Error) => void;
      method: string;
    }
  >();
  readonly #listeners = new Set<(e: CdpEvent) => void>();
  readonly #closed: Promise<void>;
  readonly #stderrDone: Promise<void>;

  private constructor(
    child: Deno.ChildProcess,
    ws: WebSocket,
    profile: string,
    stderrDone: Promise<void>,
  ) {
    this.#child = child;
    this.#ws = ws;
    this.#profile = profile;
    this.#stderrDone = stderrDone;
    this.#closed = new Promise((r) => ws.onclose = () => r());
    ws.onmessage = (ev) => {
      const msg = JSON.parse(ev.data as string);
      if (msg.id !== undefined) {
        const p = this.#pending.get(msg.id);
        if (!p) return;
        this.#pending.delete(msg.id);
        if (msg.error) {
          p.reject(new Error(`${p.method}: ${msg.error.message}`));
        } else p.resolve(msg.result);
      } else {
        for (const l of this.#listeners) l(msg as CdpEvent);
      }
    };
  }

  /** Starts Chromium headless with a new temporary profile. */
  static async launch(opts: LaunchOptions = {}): Promise<Browser> {
    const profile = await Deno.makeTempDir({ prefix: "chromium-profile-" });
    const args = [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--no-default-browser-check",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-extensions",
      "--disable-dev-shm-usage",
      "--password-store=basic",
      `--user-data-dir=${profile}`,
      "--remote-debugging-port=0",
      `--window-size=${opts.width ?? 1000},${opts.height ?? 800}`,
    ];
    if (opts.trustSpki?.length) {
      args.push(
        `--ignore-certificate-errors-spki-list=${opts.trustSpki.join(",")}`,
      );
    }
    args.push("about:blank");
    const child = new Deno.Command(CHROMIUM, {
      args,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const { promise: urlP, resolve, reject } = Promise.withResolvers<string>();
    const timer = setTimeout(
      () => reject(new Error("chromium printed no DevTools URL in 60 s")),
      60_000, // a cold start on 2 busy cores has taken more than 15 s
    );
    const stderrDone = (async () => {
      let buf = "";
      const dec = new TextDecoder();
      for await (const chunk of child.stderr) {
        buf += dec.decode(chunk, { stream: true });
        const m = buf.match(/DevTools listening on (ws:\/\/\S+)/);
        if (m) {
          resolve(m[1]);
          buf = "";
        }
        if (buf.length > 65536) buf = buf.slice(-4096);
      }
      reject(
        new Error(`chromium exited before DevTools was up: ${buf.slice(-500)}`),
      );
    })();
    let url: string;
    try {
      url = await urlP;
    } catch (e) {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
      await child.status;
      await stderrDone;
      await Deno.remove(profile, { recursive: true }).catch(() => {});
      throw e;
    } finally {
      clearTimeout(timer);
    }
    const ws = new WebSocket(url);
    await new Promise<void>((res, rej) => {
      ws.onopen = () => res();
      ws.onerror = () => rej(new Error(`cannot open ${url}`));
    });
    return new Browser(child, ws, profile, stderrDone);
  }

  /** Sends a command (browser-level, or to a session); resolves with its result. */
  send<T = Record<string, unknown>>(
    method: string,
    params: Record<string, unknown> = {},
    sessionId?: string,
  ): Promise<T> {
    const id = this.#nextId++;
    const { promise, resolve, reject } = Promise.withResolvers<unknown>();
    this.#pending.set(id, { resolve, reject, method });
    this.#ws.send(JSON.stringify({ id, method, params, sessionId }));
    return promise as Promise<T>;
  }

  /** Registers an event listener; returns its remover. */
  on(listener: (e: CdpEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Opens a new tab (about:blank) and attaches to it. */
  async newPage(): Promise<Page> {
    const { targetId } = await this.send<{ targetId: string }>(
      "Target.createTarget",
      { url: "about:blank" },
    );
    const { sessionId } = await this.send<{ sessionId: string }>(
      "Target.attachToTarget",
      { targetId, flatten: true },
    );
    const page = new Page(this, sessionId, targetId);
    await page.init();
    return page;
  }

  /** Closes the browser: politely, then SIGKILL by PID; removes the profile. */
  async close(): Promise<void> {
    try {
      await Promise.race([
        this.send("Browser.close"),
        new Promise((r) => setTimeout(r, 2000)),
      ]);
    } catch { /* already closing */ }
    const status = this.#child.status;
    const killer = setTimeout(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch { /* gone */ }
    }, 3000);
    await status;
    clearTimeout(killer);
    if (this.#ws.readyState === WebSocket.OPEN) this.#ws.close();
    await this.#closed;
    await this.#stderrDone;
    for (const p of this.#pending.values()) {
      p.reject(new Error("browser closed"));
    }
    await Deno.remove(this.#profile, { recursive: true }).catch(() => {});
  }
}

/** One tab. */
export class Page {
  readonly browser: Browser;
  readonly sessionId: string;
  readonly targetId: string;
  /** Console messages, exceptions, log entries (CSP violations, failed loads). */
  readonly console: { level: string; text: string }[] = [];
  /** Responses of the main frame and its resources: URL → headers. */
  readonly responses = new Map<
    string,
    { status: number; headers: Record<string, string> }
  >();

  constructor(browser: Browser, sessionId: string, targetId: string) {
    this.browser = browser;
    this.sessionId = sessionId;
    this.targetId = targetId;
    browser.on((e) => {
      if (e.sessionId !== sessionId) return;
      if (e.method === "Runtime.consoleAPICalled") {
        this.console.push({
          level: e.params.type,
          text: e.params.args.map((
            a: { value?: unknown; description?: string },
          ) => a.value ?? a.description ?? "").join(" "),
        });
      } else if (e.method === "Runtime.exceptionThrown") {
        const d = e.params.exceptionDetails;
        this.console.push({
          level: "exception",
          text: d.exception?.description ?? d.text,
        });
      } else if (e.method === "Log.entryAdded") {
        this.console.push({
          level: e.params.entry.level,
          text: e.params.entry.text,
        });
      } else if (e.method === "Network.responseReceived") {
        const r = e.params.response;
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(r.headers)) {
          headers[k.toLowerCase()] = String(v);
        }
        this.responses.set(r.url, { status: r.status, headers });
      }
    });
  }

  /** Sends a command to this tab. */
  send<T = Record<string, unknown>>(
    method: string,
    params: Record<string, unknown> = {},
  ): Promise<T> {
    return this.browser.send<T>(method, params, this.sessionId);
  }

  /** Enables the domains the helpers use. */
  async init(): Promise<void> {
    await Promise.all([
      this.send("Page.enable"),
      this.send("Runtime.enable"),
      this.send("Log.enable"),
      this.send("Network.enable"),
    ]);
  }

  /** Navigates and waits for the load event. */
  async goto(url: string): Promise<void> {
    const loaded = this.waitEvent("Page.loadEventFired", 15_000);
    const r = await this.send<{ errorText?: string }>("Page.navigate", { url });
    if (r.errorText) throw new Error(`navigate ${url}: ${r.errorText}`);
    await loaded;
  }

  /** Reloads and waits for the load event. */
  async reload(): Promise<void> {
    const loaded = this.waitEvent("Page.loadEventFired", 15_000);
    await this.send("Page.reload", { ignoreCache: false });
    await loaded;
  }

  /** Resolves with the next event `method` of this tab. */
  waitEvent(method: string, timeoutMs = 10_000): Promise<CdpEvent> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`no ${method} within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = this.browser.on((e) => {
        if (
          e.method === method &&
          (e.sessionId === this.sessionId || e.sessionId === undefined)
        ) {
          clearTimeout(timer);
          off();
          resolve(e);
        }
      });
    });
  }

  /** Evaluates an expression in the page (awaiting promises); returns its value. */
  async eval<T = unknown>(expression: string): Promise<T> {
    const r = await this.send<{
      result: { value?: T };
      exceptionDetails?: { text: string; exception?: { description?: string } };
    }>("Runtime.evaluate", {
      expression,
      awaitPromise: true,
      returnByValue: true,
      userGesture: true,
    });
    if (r.exceptionDetails) {
      throw new Error(
        `page: ${
          r.exceptionDetails.exception?.description ?? r.exceptionDetails.text
        }`,
      );
    }
    return r.result.value as T;
  }

  /** Polls `expression` until it is truthy; returns its value. */
  async waitFor<T = unknown>(
    expression: string,
    timeoutMs = 10_000,
    what = expression,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await this.eval<T>(expression);
      if (v) return v;
      if (Date.now() > deadline) {
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** The text of the first element matching `selector` ("" when none). */
  text(selector: string): Promise<string> {
    return this.eval<string>(
      `document.querySelector(${JSON.stringify(selector)})?.textContent ?? ""`,
    );
  }

  /** A real mouse click in the middle of the element (it must be visible and on top). */
  async click(selector: string): Promise<void> {
    const box = await this.waitFor<{ x: number; y: number }>(
      `(() => { const e = document.querySelector(${JSON.stringify(selector)});
        if (!e || e.disabled) return null; e.scrollIntoView({block: "center"});
        const r = e.getBoundingClientRect(); if (r.width === 0) return null;
        const x = r.left + r.width / 2, y = r.top + r.height / 2;
        const top = document.elementFromPoint(x, y);
        return top && (top === e || e.contains(top)) ? { x, y } : null; })()`,
      10_000,
      `${selector} to be clickable`,
    );
    for (const type of ["mousePressed", "mouseReleased"]) {
      await this.send("Input.dispatchMouseEvent", {
        type,
        x: box.x,
        y: box.y,
        button: "left",
        clickCount: 1,
      });
    }
  }

  /** Focuses `selector` and types `text` as keyboard input. */
  async type(selector: string, text: string): Promise<void> {
    await this.eval(
      `document.querySelector(${JSON.stringify(selector)}).focus()`,
    );
    await this.send("Input.insertText", { text });
  }

  /** Presses a key (e.g. "Enter", "Tab") on the focused element. */
  async press(key: "Enter" | "Tab"): Promise<void> {
    const code = { Enter: 13, Tab: 9 }[key];
    const text = key === "Enter" ? "\r" : undefined;
    await this.send("Input.dispatchKeyEvent", {
      type: "keyDown",
      key,
      code: key,
      windowsVirtualKeyCode: code,
      ...(text ? { text } : {}),
    });
    await this.send("Input.dispatchKeyEvent", {
      type: "keyUp",
      key,
      code: key,
      windowsVirtualKeyCode: code,
    });
  }

  /** Puts files into an `<input type=file>` (as if the user picked them). */
  async setFiles(selector: string, paths: string[]): Promise<void> {
    const { root } = await this.send<{ root: { nodeId: number } }>(
      "DOM.getDocument",
      { depth: 0 },
    );
    const { nodeId } = await this.send<{ nodeId: number }>(
      "DOM.querySelector",
      { nodeId: root.nodeId, selector },
    );
    await this.send("DOM.setFileInputFiles", { nodeId, files: paths });
  }

  /** Answers every `alert`/`confirm`/`prompt` with `accept`; returns their messages. */
  answerDialogs(accept: boolean): string[] {
    const seen: string[] = [];
    this.browser.on((e) => {
      if (
        e.sessionId === this.sessionId &&
        e.method === "Page.javascriptDialogOpening"
      ) {
        seen.push(e.params.message);
        this.send("Page.handleJavaScriptDialog", { accept });
      }
    });
    return seen;
  }

  /** Sets the viewport (CSS px) — e.g. a phone-sized window. */
  async viewport(width: number, height: number, mobile = false): Promise<void> {
    await this.send("Emulation.setDeviceMetricsOverride", {
      width,
      height,
      deviceScaleFactor: 1,
      mobile,
    });
  }

  /**
   * A PNG screenshot of the viewport, optionally scaled (0.5 = half size).
   * The page is brought to the front first: a page hidden behind a newer one
   * renders no frames, and the capture then waits seconds for one.
   */
  async screenshot(scale = 1): Promise<Uint8Array> {
    await this.send("Page.bringToFront");
    const view = await this.eval<
      { x: number; y: number; w: number; h: number }
    >(
      `({ x: scrollX, y: scrollY, w: innerWidth, h: innerHeight })`,
    );
    const { data } = await this.send<{ data: string }>(
      "Page.captureScreenshot",
      {
        format: "png",
        ...(scale === 1 ? {} : {
          clip: {
            x: view.x,
            y: view.y,
            width: view.w,
            height: view.h,
            scale,
          },
        }),
      },
    );
    return Uint8Array.fromBase64(data);
  }

  /**
   * Lets downloads go to `dir` (files named by GUID). Returns a function that
   * resolves with the path of the next download to complete after this call.
   */
  async allowDownloads(dir: string): Promise<() => Promise<string>> {
    await this.browser.send("Browser.setDownloadBehavior", {
      behavior: "allowAndName",
      downloadPath: dir,
      eventsEnabled: true,
    });
    const done: string[] = [];
    let wake = () => {};
    this.browser.on((e) => {
      if (
        e.method === "Browser.downloadProgress" &&
        e.params.state === "completed"
      ) {
        done.push(`${dir}/${e.params.guid}`);
        wake();
      }
    });
    return async () => {
      const deadline = Date.now() + 10_000;
      while (done.length === 0) {
        if (Date.now() > deadline) throw new Error("no download completed");
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 100);
        });
      }
      return done.shift()!;
    };
  }
}
