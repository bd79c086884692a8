/**
 * The browser client in a real headless Chromium (tests/helpers/cdp.ts),
 * served by `tools/web.ts` (the `deno task web` process, with the task's
 * permissions) from the bundle `deno task web:build` makes, talking to a
 * real relay process over TLS and to a real `deno task bank` process.
 * Screenshots go to tests/output/web/ (git-ignored).
 * @module
 */

import assert from "node:assert/strict";
import { Browser, type Page, spkiHash } from "./helpers/cdp.ts";
import { testCerts } from "./helpers/relay_fixture.ts";
import { ROOT, taskFlags } from "./helpers/client_proc.ts";
import { contentSecurityPolicy } from "../tools/web.ts";

const OUT = `${ROOT}/tests/output/web`;

/** A subprocess whose stderr is scanned for a line matching `ready`. */
class Proc {
  readonly child: Deno.ChildProcess;
  readonly stderr: string[] = [];
  readonly match: Promise<RegExpMatchArray>;
  readonly #done: Promise<void>;

  constructor(args: string[], ready: RegExp) {
    const child = new Deno.Command("deno", {
      args,
      cwd: ROOT,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    this.child = child;
    const { promise, resolve, reject } = Promise.withResolvers<
      RegExpMatchArray
    >();
    this.match = promise;
    const timer = setTimeout(
      () => reject(new Error(`no ${ready} from ${args.join(" ")}`)),
      15_000,
    );
    this.#done = (async () => {
      const dec = new TextDecoder();
      let all = "";
      for await (const chunk of child.stderr) {
        const t = dec.decode(chunk, { stream: true });
        this.stderr.push(t);
        all += t;
        const m = all.match(ready);
        if (m) {
          clearTimeout(timer);
          resolve(m);
        }
      }
      clearTimeout(timer);
      reject(new Error(`exited: ${all.slice(-500)}`));
    })();
  }

  async stop(): Promise<void> {
    try {
      this.child.kill("SIGTERM");
    } catch { /* gone */ }
    const t = setTimeout(() => {
      try {
        this.child.kill("SIGKILL");
      } catch { /* gone */ }
    }, 3000);
    await this.child.status;
    clearTimeout(t);
    await this.#done;
    await this.match.catch(() => {});
  }
}

/** Builds the bundle as `deno task web:build` does. */
async function buildBundle(): Promise<void> {
  const json = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`));
  const words = json.tasks["web:build"].command.split(/\s+/).slice(1);
  const out = await new Deno.Command("deno", {
    args: words,
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
}

/** Starts the relay process (server.ts, port 0) with the test certificates. */
async function startRelayProc(
  certs: { dir: string },
): Promise<{ proc: Proc; url: string }> {
  const proc = new Proc([
    "run",
    "--allow-net=127.0.0.1,localhost",
    `--allow-read=${certs.dir}`,
    "server.ts",
    "--port",
    "0",
    "--cert",
    `${certs.dir}/relay.pem`,
    "--key",
    `${certs.dir}/relay-key.pem`,
    "--quiet",
  ], /listening on wss:\/\/127\.0\.0\.1:(\d+)\/ws/);
  const m = await proc.match;
  return { proc, url: `wss://localhost:${m[1]}/ws` };
}

/** Starts `tools/web.ts` with the `web` task's flags on a free port. */
async function startWeb(relay: string): Promise<{ proc: Proc; url: string }> {
  const { flags, entry } = taskFlags("web");
  const proc = new Proc(
    ["run", ...flags, entry, "--relay", relay, "--port", "0"],
    /serving the browser client on (http:\/\/\S+\/)/,
  );
  return { proc, url: (await proc.match)[1] };
}

async function shot(page: Page, name: string): Promise<void> {
  await Deno.mkdir(OUT, { recursive: true });
  await Deno.writeFile(`${OUT}/${name}.png`, await page.screenshot());
}

function errorsIn(page: Page): string[] {
  return page.console
    .filter((c) => ["error", "exception", "assert"].includes(c.level))
    .map((c) => `${c.level}: ${c.text}`);
}

Deno.test("browser client: loads with its CSP, registers, shows its address", async () => {
  await buildBundle();
  const certs = await testCerts();
  const relay = await startRelayProc(certs);
  const web = await startWeb(relay.url);
  const browser = await Browser.launch({
    trustSpki: [await spkiHash(certs.cert)],
  });
  try {
    const page = await browser.newPage();
    await page.goto(web.url);
    const doc = page.responses.get(web.url);
    assert.ok(doc, "main document response seen");
    assert.equal(
      doc.headers["content-security-policy"],
      contentSecurityPolicy(relay.url),
    );
    assert.equal(doc.headers["cache-control"], "no-cache");
    await page.waitFor(
      `document.body.dataset.relay === "registered"`,
      10_000,
      "registration at the relay",
    );
    const address = await page.text("#my-address");
    assert.match(address, /^wss:\/\/localhost:\d+\/ws#id=[a-z2-7]{26}$/);
    assert.equal(await page.text("#relay-status"), "Connected");
    await shot(page, "first-start");
    assert.deepEqual(errorsIn(page), []);
    // Inline script is refused by the CSP (Trusted Types too): prove the policy is live.
    const blocked = await page.eval<boolean>(`(() => {
      try { document.body.innerHTML = "<b>x</b>"; return false; } catch { return true; } })()`);
    assert.equal(blocked, true, "Trusted Types refuse innerHTML");
  } finally {
    await browser.close();
    await web.proc.stop();
    await relay.proc.stop();
  }
});
