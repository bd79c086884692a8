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
import {
  ClientProc,
  type Ev,
  flagsWithDir,
  freePort,
  ROOT,
  taskFlags,
} from "./helpers/client_proc.ts";
import { contentSecurityPolicy } from "../tools/web.ts";
import {
  createIdentity,
  isEncryptedIdentityFile,
  parseIdentityFile,
} from "../lib/identity.ts";
import { fingerprint, formatFingerprint } from "../lib/fingerprint.ts";

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
  allowOrigins: string[],
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
    ...allowOrigins.flatMap((o) => ["--allow-origin", o]),
    "--quiet",
  ], /listening on wss:\/\/127\.0\.0\.1:(\d+)\/ws/);
  const m = await proc.match;
  return { proc, url: `wss://localhost:${m[1]}/ws` };
}

/** Starts `tools/web.ts` with the `web` task's flags on a free port. */
async function startWeb(
  relay: string,
  port: number,
): Promise<{ proc: Proc; url: string }> {
  const { flags, entry } = taskFlags("web");
  const proc = new Proc(
    ["run", ...flags, entry, "--relay", relay, "--port", String(port)],
    /serving the browser client on (http:\/\/\S+\/)/,
  );
  return { proc, url: (await proc.match)[1] };
}

async function shot(page: Page, name: string): Promise<void> {
  await Deno.mkdir(OUT, { recursive: true });
  await Deno.writeFile(`${OUT}/${name}.png`, await page.screenshot());
  // Half-size copies, as committed under docs/ for the README.
  await Deno.writeFile(`${OUT}/small-${name}.png`, await page.screenshot(0.5));
}

function errorsIn(page: Page): string[] {
  return page.console
    .filter((c) => ["error", "exception", "assert"].includes(c.level))
    .map((c) => `${c.level}: ${c.text}`);
}

/** Every form control has a label, every button a name (checked in the page). */
const UNLABELLED =
  `[...document.querySelectorAll("input, textarea, select, button")]
  .filter((e) => !e.closest("[hidden]"))
  .filter((e) => e.tagName === "BUTTON" ? !e.textContent.trim() && !e.ariaLabel
    : e.labels.length === 0 && !e.ariaLabel).map((e) => e.id || e.outerHTML)`;

/** The keys the page keeps in IndexedDB, as the page itself can see them. */
const STORED_KEYS = `(async () => {
  const db = await new Promise((ok, no) => {
    const r = indexedDB.open("e2e-customer");
    r.onsuccess = () => ok(r.result);
    r.onerror = () => no(r.error);
  });
  const get = (k) => new Promise((ok, no) => {
    const q = db.transaction("keys").objectStore("keys").get(k);
    q.onsuccess = () => ok(q.result);
    q.onerror = () => no(q.error);
  });
  const identity = await get("identity"), mailbox = await get("mailbox");
  const exportOf = (k) => crypto.subtle.exportKey("pkcs8", k)
    .then(() => "exported", (e) => e.name);
  const out = {
    types: [identity.privateKey, mailbox.privateKey].map((k) => k.constructor.name),
    algorithms: [identity.privateKey, mailbox.privateKey].map((k) => k.algorithm.name),
    extractable: [identity.privateKey.extractable, mailbox.privateKey.extractable],
    exports: [await exportOf(identity.privateKey), await exportOf(mailbox.privateKey)],
  };
  db.close();
  return out;
})()`;

/** What STORED_KEYS must find: CryptoKeys no script can read out. */
const NON_EXTRACTABLE = {
  types: ["CryptoKey", "CryptoKey"],
  algorithms: ["ECDSA", "Ed25519"],
  extractable: [false, false],
  exports: ["InvalidAccessError", "InvalidAccessError"],
};

Deno.test("browser client in a real Chromium", async (t) => {
  await buildBundle();
  const certs = await testCerts();
  // The relay refuses WebSockets from web origins it was not told about (--allow-origin).
  const webPort = freePort();
  const relay = await startRelayProc(certs, [
    `http://127.0.0.1:${webPort}`,
    `http://localhost:${webPort}`,
  ]);
  const web = await startWeb(relay.url, webPort);
  const trusted = await spkiHash(certs.cert);
  const browser = await Browser.launch({ trustSpki: [trusted] });
  const tmp = await Deno.makeTempDir({ prefix: "web-test-" });
  const extra: { stop(): Promise<void> }[] = [];
  try {
    const page = await browser.newPage();
    const nextDownload = await page.allowDownloads(tmp);
    const fingerprintShown = () => page.text("#my-fingerprint .mono");

    await t.step(
      "loads with its CSP and no console errors, registers, shows its address",
      async () => {
        await page.goto(web.url);
        const doc = page.responses.get(web.url);
        assert.ok(doc, "main document response seen");
        assert.equal(
          doc.headers["content-security-policy"],
          contentSecurityPolicy(relay.url),
        );
        assert.equal(doc.headers["cache-control"], "no-cache");
        // What the policy says: this origin only, no inline code, the relay's origin only.
        const csp = new Map(
          doc.headers["content-security-policy"].split(/;\s*/).map((d) => {
            const [name, ...values] = d.split(" ");
            return [name, values.join(" ")];
          }),
        );
        assert.equal(csp.get("default-src"), "'none'");
        assert.equal(csp.get("script-src"), "'self'");
        assert.equal(csp.get("style-src"), "'self'");
        assert.equal(
          csp.get("connect-src"),
          `wss://${new URL(relay.url).host}`,
        );
        assert.doesNotMatch(doc.headers["content-security-policy"], /unsafe/);
        assert.equal(page.responses.get(`${web.url}app.js`)?.status, 200);
        await page.waitFor(
          `document.body.dataset.relay === "registered"`,
          10_000,
          "registration at the relay",
        );
        const address = await page.text("#my-address");
        assert.match(address, /^wss:\/\/localhost:\d+\/ws#id=[a-z2-7]{26}$/);
        assert.equal(await page.text("#relay-status"), "Connected");
        // Copy puts the address on the clipboard.
        await browser.send("Browser.grantPermissions", {
          origin: new URL(web.url).origin,
          permissions: ["clipboardReadWrite", "clipboardSanitizedWrite"],
        });
        await page.click("#copy-address");
        await page.waitFor(
          `document.querySelector("#copy-address").textContent === "Copied"`,
        );
        assert.equal(
          await page.eval(`navigator.clipboard.readText()`),
          address,
        );
        assert.deepEqual(await page.eval(UNLABELLED), []);
        // Identity and mailbox key are in IndexedDB as non-extractable CryptoKeys.
        assert.deepEqual(await page.eval(STORED_KEYS), NON_EXTRACTABLE);
        // No third-party resource: everything the page loaded came from its origin.
        const origins = new Set(
          [...page.responses.keys()].map((u) => new URL(u).origin),
        );
        assert.deepEqual([...origins], [new URL(web.url).origin]);
        await shot(page, "first-start");
        assert.deepEqual(errorsIn(page), []);
      },
    );

    await t.step(
      "backup in the CLI's identity-file format; reload keeps the identity; restore a CLI identity",
      async () => {
        const fp = await fingerprintShown();
        const address = await page.text("#my-address");
        const pass = "correct horse battery";
        await page.type("#export-passphrase", pass);
        await page.click("#export-button");
        const json = await Deno.readTextFile(await nextDownload());
        assert.ok(isEncryptedIdentityFile(json), "the backup is encrypted");
        const restored = await parseIdentityFile(json, "backup", pass);
        assert.equal(formatFingerprint(await fingerprint(restored.spki)), fp);

        await page.reload();
        await page.waitFor(`document.body.dataset.relay === "registered"`);
        assert.equal(
          await fingerprintShown(),
          fp,
          "same identity after reload",
        );
        assert.equal(await page.text("#my-address"), address, "same address");
        // The encrypted backup is kept: a later visit downloads the same file.
        await page.eval(`document.querySelector("#backup").open = true`);
        await page.click("#export-button");
        assert.equal(await Deno.readTextFile(await nextDownload()), json);

        // Restore an identity file made by the CLI's code (lib/identity.ts).
        const cli = await createIdentity({ passphrase: "cli passphrase" });
        const file = `${tmp}/customer_identity_keys.json`;
        await Deno.writeTextFile(file, cli.json);
        const dialogs = page.answerDialogs(true);
        await page.setFiles("#import-file", [file]);
        await page.type("#import-passphrase", "wrong passphrase");
        await page.click("#import-button");
        await page.waitFor(
          `document.querySelector("#backup-status").textContent.includes("Wrong passphrase")`,
        );
        await page.eval(
          `document.querySelector("#import-passphrase").value = ""`,
        );
        await page.type("#import-passphrase", "cli passphrase");
        const reloaded = page.waitEvent("Page.loadEventFired", 15_000);
        await page.click("#import-button");
        await reloaded;
        await page.waitFor(`document.body.dataset.relay === "registered"`);
        assert.equal(
          await fingerprintShown(),
          formatFingerprint(await fingerprint(cli.identity.spki)),
        );
        assert.equal(await page.text("#my-address"), address, "address kept");
        assert.deepEqual(
          await page.eval(STORED_KEYS),
          NON_EXTRACTABLE,
          "a restored identity is stored non-extractable too",
        );
        assert.equal(dialogs.length, 2, "each restore asked for confirmation");
        assert.deepEqual(errorsIn(page), []);
      },
    );

    await t.step(
      "a bad address, an unreachable relay and an untrusted certificate are explained",
      async () => {
        await page.type("#peer-address", "hello bank");
        await page.press("Enter");
        assert.match(await page.text("#connect-error"), /not a valid address/);
        await page.eval(`document.querySelector("#peer-address").value = ""`);
        await page.type(
          "#peer-address",
          "wss://relay.example:9443/ws#id=aaaaaaaaaaaaaaaaaaaaaaaaaa",
        );
        await page.click("#connect-button");
        assert.match(await page.text("#connect-error"), /another relay/);

        // Nothing listens on this port.
        const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
        const deadPort = (closed.addr as Deno.NetAddr).port;
        closed.close();
        const deadWeb = await startWeb(`wss://localhost:${deadPort}/ws`, 0);
        extra.push(deadWeb.proc);
        const p2 = await browser.newPage();
        await p2.goto(deadWeb.url);
        const unreachable = await p2.waitFor<string>(
          `!document.querySelector("#problem").hidden && document.querySelector("#problem").textContent`,
        );
        assert.match(unreachable, /Cannot reach the message relay/);
        assert.match(unreachable, /does not trust its certificate/);
        // The policy is live: Trusted Types refuse HTML sinks.
        const blocked = await p2.eval<boolean>(`(() => {
        try { document.body.innerHTML = "<b>x</b>"; return false; } catch { return true; } })()`);
        assert.equal(blocked, true, "Trusted Types refuse innerHTML");
        // connect-src is live: a WebSocket to any other origin is refused.
        const elsewhere = await p2.eval<string>(`new Promise((r) => {
          try { const w = new WebSocket("wss://127.0.0.1:9/ws");
            w.onerror = () => r("error"); w.onopen = () => r("open"); }
          catch (e) { r(e.name); } })`);
        assert.notEqual(elsewhere, "open");
        const violation = () =>
          p2.console.some((c) =>
            /Content Security Policy/.test(c.text) &&
            c.text.includes("wss://127.0.0.1:9/ws")
          );
        for (let i = 0; i < 100 && !violation(); i++) {
          await new Promise((r) => setTimeout(r, 50));
        }
        assert.ok(violation(), JSON.stringify(p2.console));

        // A page on an origin the relay was not told about (--allow-origin):
        // refused with 403 before the upgrade — a bare error again, explained.
        const strangerWeb = await startWeb(relay.url, 0);
        extra.push(strangerWeb.proc);
        const p4 = await browser.newPage();
        await p4.goto(strangerWeb.url);
        const refused = await p4.waitFor<string>(
          `!document.querySelector("#problem").hidden && document.querySelector("#problem").textContent`,
        );
        assert.match(refused, /does not accept pages from this web site/);
        await p4.send("Page.close");

        // A browser that lacks the relay's CA: the same bare error, the same explanation.
        const untrusting = await Browser.launch();
        extra.push({ stop: () => untrusting.close() });
        const p3 = await untrusting.newPage();
        await p3.goto(web.url);
        const untrusted = await p3.waitFor<string>(
          `!document.querySelector("#problem").hidden && document.querySelector("#problem").textContent`,
        );
        assert.match(untrusted, /healthz/);
        assert.match(await p3.text("#relay-status"), /^Not connected/);
      },
    );

    // ── the conversation with a real `deno task bank` process ──────────────
    const bankDir = `${tmp}/bank`;
    await Deno.mkdir(bankDir);
    await Deno.copyFile(`${certs.dir}/ca.pem`, `${tmp}/ca.pem`);
    const bankArgs = (dir: string, more: string[] = []) => [
      "--json",
      "--relay",
      relay.url,
      "--ca",
      `${tmp}/ca.pem`,
      "--keys",
      dir,
      "--cover-rate",
      "0",
      ...more,
    ];
    let bank = new ClientProc(
      "bank",
      bankArgs(bankDir, [
        "--scenario",
        "payment",
        "--transcript",
        `${bankDir}/bank-transcript.jsonl`,
      ]),
      tmp,
    );
    extra.push({ stop: () => bank.dispose() });
    const ready = await bank.waitFor((e) => e.type === "ready", "bank ready");
    const bankLink = `${web.url}#${ready.address}`;
    const inPage = (sel: string) =>
      `[...document.querySelectorAll(${JSON.stringify(sel)})]`;

    await t.step(
      "the bank's link in the fragment contacts the bank at once; both sides show the same safety number",
      async () => {
        await page.goto("about:blank");
        await page.goto(bankLink);
        const secure = await bank.waitFor(
          (e) => e.type === "secure",
          "bank secure",
        );
        await page.waitFor(`document.body.dataset.conversation === "secure"`);
        assert.equal(await page.text("#safety-number"), secure.safetyNumber);
        assert.match(secure.safetyNumber, /^(\d{5} ){11}\d{5}$/);
        assert.equal(await page.text("#trust-state"), "new");
        assert.equal(
          (await page.text("#peer-fingerprint")).replaceAll(" ", "")
            .toLowerCase(),
          ready.fingerprint,
        );
      },
    );

    await t.step(
      "messages both ways with delivered marks; peer text neutralised",
      async () => {
        await bank.line("Hello from your bank \u202eevil\u0007");
        await page.waitFor(
          `${
            inPage(".msg.in .text")
          }.some((e) => e.textContent.startsWith("Hello from your bank"))`,
        );
        const shown = await page.eval<string>(
          `${
            inPage(".msg.in .text")
          }.find((e) => e.textContent.startsWith("Hello")).textContent`,
        );
        assert.equal(shown, "Hello from your bank <U+202E>evil\\x07");
        // Each message shows its time of day.
        assert.match(
          await page.eval<string>(
            `${
              inPage(".msg.in .text")
            }.find((e) => e.textContent.startsWith("Hello")).parentElement.querySelector(".meta").textContent`,
          ),
          /^\d{1,2}:\d{2}:\d{2}.* · from your bank$/,
        );
        // HTML from the peer is text: shown as typed, no element made.
        const html = `<img src=x onerror="document.title='pwned'"><b>bold</b>`;
        await bank.line(html);
        await page.waitFor(
          `${inPage(".msg.in .text")}.some((e) => e.textContent === ${
            JSON.stringify(html)
          })`,
        );
        assert.equal(
          await page.eval(
            `document.querySelectorAll(".msg img, .msg b").length`,
          ),
          0,
        );
        assert.notEqual(await page.eval(`document.title`), "pwned");
        await page.type("#compose-text", "Thank you, I will look at it.");
        await page.press("Enter");
        const got = await bank.waitFor(
          (e) =>
            e.type === "message" && e.text === "Thank you, I will look at it.",
          "customer message at the bank",
        );
        assert.ok(got);
        await page.waitFor(
          `document.querySelector('.msg.out [data-state="delivered"]')`,
          10_000,
          "delivered mark",
        );
        // The bank's line is its last message sent so far (after the payment request).
        const sent = bank.events.filter((e: Ev) => e.type === "sent").at(-1);
        assert.ok(sent, "the bank sent its line");
        await bank.waitFor(
          (e) => e.type === "delivered" && e.id === sent.id,
          "bank's message delivered",
        );
        await page.eval(`document.activeElement.blur(); scrollTo(0, 0)`);
        await shot(page, "conversation");
        // Too long for one message: refused with an explanation, nothing sent.
        await page.eval(
          `{ const t = document.querySelector("#compose-text"); t.value = "x".repeat(70000); t.focus(); }`,
        );
        await page.press("Enter");
        assert.match(await page.text("#compose-error"), /too long/);
        await page.eval(`document.querySelector("#compose-text").value = ""`);
      },
    );

    await t.step(
      "a payment request is a card; Approve by a click; the bank receives the signed answer",
      async () => {
        await page.waitFor(`document.querySelector("[data-payment]")`);
        const card = await page.text("[data-payment]");
        assert.match(card, /125\.00 EUR/);
        assert.match(card, /ACME Supplies Ltd/);
        // The whole card in view (the message list scrolls inside the page).
        await page.eval(`document.activeElement.blur();
          document.querySelector("[data-payment]").scrollIntoView({ block: "center" })`);
        await shot(page, "payment");
        await page.click(`[data-payment] [data-action="approve"]`);
        const answer = await bank.waitFor(
          (e) => e.type === "payment" && e.direction === "received",
          "payment answer at the bank",
        );
        assert.equal(answer.decision, "approved");
        assert.equal(answer.matches, true);
        await page.waitFor(
          `document.querySelector("[data-payment]").dataset.delivered`,
        );
      },
    );

    await t.step(
      "the downloaded transcript verifies with tools/verify_transcript.ts, and so does the bank's",
      async () => {
        await bank.end(); // the bank closes cleanly once everything is acknowledged
        assert.equal(await bank.exit(), 0);
        await page.waitFor(`document.body.dataset.conversation === "closed"`);
        await page.click("#transcript-button");
        const file = await nextDownload();
        for (const f of [file, `${bankDir}/bank-transcript.jsonl`]) {
          const { flags, entry } = flagsWithDir("verify-transcript", tmp);
          const out = await new Deno.Command("deno", {
            args: ["run", ...flags, entry, f, "--json"],
            cwd: ROOT,
            stdout: "piped",
            stderr: "piped",
          }).output();
          const text = new TextDecoder().decode(out.stdout);
          assert.equal(
            out.code,
            0,
            text + new TextDecoder().decode(out.stderr),
          );
          const r = JSON.parse(text);
          assert.equal(r.verdict, "COMPLETE");
          const texts = r.sessions.flatMap((
            s: { messages: { text?: string }[] },
          ) => s.messages.map((m) => m.text ?? ""));
          assert.ok(
            texts.some((x: string) => x.includes('"decision":"approved"')),
            "signed approval",
          );
        }
      },
    );

    await t.step(
      "reload keeps the known bank: trust 'known'; the verify flow marks it verified",
      async () => {
        bank = new ClientProc("bank", bankArgs(bankDir), tmp);
        await bank.waitFor((e) => e.type === "ready", "bank ready again");
        await page.reload();
        await bank.waitFor((e) => e.type === "secure", "bank secure again");
        await page.waitFor(`document.body.dataset.conversation === "secure"`);
        assert.equal(await page.text("#trust-state"), "known");
        await page.click("#verify-button");
        assert.equal(
          await page.text("#verify-number"),
          await page.text("#safety-number"),
        );
        await page.click("#verify-yes");
        await page.waitFor(
          `document.querySelector("#trust-state").textContent === "verified"`,
        );
        await bank.dispose();
      },
    );

    await t.step(
      "the bank's key changed: a full-page warning blocks everything until an explicit re-trust",
      async () => {
        const newKeys = `${tmp}/bank2`;
        await Deno.mkdir(newKeys);
        // Same mailbox key (same address), new identity key.
        await Deno.copyFile(
          `${bankDir}/bank_mailbox_key.json`,
          `${newKeys}/bank_mailbox_key.json`,
        );
        await Deno.chmod(`${newKeys}/bank_mailbox_key.json`, 0o600);
        bank = new ClientProc("bank", bankArgs(newKeys), tmp);
        await bank.waitFor((e) => e.type === "ready", "new bank ready");
        // A link that names the old keys (fp=, and ed=, which this P-256-only
        // page accepts and keeps): refused outright, no re-trust offered.
        assert.match(ready.ed25519Fingerprint, /^[0-9a-f]{64}$/);
        await page.goto("about:blank");
        await page.goto(
          `${bankLink}&fp=${ready.fingerprint}&ed=${ready.ed25519Fingerprint}`,
        );
        await page.waitFor(
          `!document.querySelector("#key-changed").hidden`,
          10_000,
          "pinned-link warning",
        );
        assert.equal(
          await page.eval(`document.querySelector("#kc-trust").hidden`),
          true,
        );
        assert.match(
          await page.text("#kc-text"),
          /Ask your bank for a new link/,
        );
        // Without fp=: trust on first use, the key recorded earlier changed.
        await page.goto("about:blank");
        await page.goto(bankLink);
        await page.waitFor(
          `!document.querySelector("#key-changed").hidden`,
          10_000,
          "key-changed warning",
        );
        assert.equal(await page.text("#trust-state"), "changed");
        assert.equal(
          await page.eval(`document.querySelector("main").inert`),
          true,
        );
        // The page behind is not reachable: a click lands on the warning.
        assert.equal(
          await page.eval(
            `(() => { const r = document.querySelector("#send-button").getBoundingClientRect();
          return document.elementFromPoint(r.x + 2, r.y + 2)?.closest("#key-changed") !== null; })()`,
          ),
          true,
        );
        assert.equal(await page.eval(`document.activeElement.id`), "kc-refuse");
        await shot(page, "key-changed");
        assert.equal(bank.events.some((e: Ev) => e.type === "secure"), false);
        // By keyboard: Tab reaches the re-trust button, never the page behind
        // (inert); Enter presses it.
        await page.press("Tab");
        assert.equal(await page.eval(`document.activeElement.id`), "kc-trust");
        await page.press("Tab");
        assert.equal(
          await page.eval(
            `document.querySelector("main").contains(document.activeElement)`,
          ),
          false,
          "focus never enters the page behind the warning",
        );
        await page.eval(`document.querySelector("#kc-trust").focus()`);
        await page.press("Enter");
        await bank.waitFor(
          (e) => e.type === "secure",
          "secure with the new key",
        );
        await page.waitFor(`document.body.dataset.conversation === "secure"`);
        assert.equal(await page.text("#trust-state"), "new");
        assert.equal(
          await page.eval(`document.querySelector("main").inert`),
          false,
        );
        await bank.dispose();
        assert.deepEqual(errorsIn(page), []);
      },
    );

    await t.step("readable on a phone-sized window", async () => {
      await page.viewport(360, 740, true); // README: readable from 360 px wide
      const overflow = await page.eval<number>(
        `document.documentElement.scrollWidth - window.innerWidth`,
      );
      assert.ok(
        overflow <= 0,
        `no sideways scrolling (${overflow} px too wide)`,
      );
      await shot(page, "phone");
      await page.send("Emulation.clearDeviceMetricsOverride");
    });
    await t.step(
      "a page that waits is contacted by the bank (bank --peer <page address>); a pasted address contacts a waiting bank, whose payment request is declined",
      async () => {
        const other = await Browser.launch({ trustSpki: [trusted] });
        extra.push({ stop: () => other.close() });
        const p = await other.newPage();
        await p.goto(web.url);
        await p.waitFor(`document.body.dataset.relay === "registered"`);
        const address = await p.text("#my-address");
        const dir = `${tmp}/bank3`;
        await Deno.mkdir(dir);
        const caller = new ClientProc(
          "bank",
          bankArgs(dir, ["--peer", address]),
          tmp,
        );
        extra.push({ stop: () => caller.dispose() });
        const secure = await caller.waitFor(
          (e) => e.type === "secure",
          "bank secure with the waiting page",
        );
        await p.waitFor(`document.body.dataset.conversation === "secure"`);
        assert.equal(await p.text("#safety-number"), secure.safetyNumber);
        await caller.line("We contacted you.");
        await p.waitFor(
          `[...document.querySelectorAll(".msg.in .text")].some((e) => e.textContent === "We contacted you.")`,
        );
        await caller.dispose();
        assert.deepEqual(errorsIn(p), []);

        // The same page, reloaded without a link: the customer pastes the
        // address of a bank that waits; its payment request is declined by a click.
        const waitingDir = `${tmp}/bank4`;
        await Deno.mkdir(waitingDir);
        const waiting = new ClientProc(
          "bank",
          bankArgs(waitingDir, [
            "--scenario",
            "payment",
            "--amount",
            "9.99",
            "--currency",
            "GBP",
            "--payee",
            "Corner Shop",
            "--reference",
            "REF-4242",
          ]),
          tmp,
        );
        extra.push({ stop: () => waiting.dispose() });
        const waitingReady = await waiting.waitFor(
          (e) => e.type === "ready",
          "waiting bank ready",
        );
        let framesSent = 0;
        other.on((e) => {
          if (
            e.sessionId === p.sessionId &&
            e.method === "Network.webSocketFrameSent"
          ) framesSent++;
        });
        await p.goto("about:blank");
        await p.goto(web.url);
        await p.waitFor(`document.body.dataset.relay === "registered"`);
        await p.type("#peer-address", waitingReady.address);
        await p.click("#connect-button");
        const pasted = await waiting.waitFor(
          (e) => e.type === "secure",
          "secure with the page that pasted the address",
        );
        await p.waitFor(`document.body.dataset.conversation === "secure"`);
        assert.equal(await p.text("#safety-number"), pasted.safetyNumber);
        await p.waitFor(`document.querySelector("[data-payment]")`);
        const card = await p.text("[data-payment]");
        for (const field of ["9.99 GBP", "Corner Shop", "REF-4242"]) {
          assert.ok(card.includes(field), `${field} on the card: ${card}`);
        }
        // Cover traffic is on: while the card waits for an answer the page
        // has nothing to send but the ACK of the request, and the bank sends
        // nothing more (--cover-rate 0); the page still sends packets (0.5/s
        // on average: 2 of them take ~4 s; none in 30 s has odds of ~1e-5).
        const start = framesSent;
        const deadline = Date.now() + 30_000;
        while (framesSent < start + 3 && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 100));
        }
        assert.ok(
          framesSent >= start + 3,
          `cover packets from an idle page (${start} → ${framesSent})`,
        );
        await p.click(`[data-payment] [data-action="decline"]`);
        const declined = await waiting.waitFor(
          (e) => e.type === "payment" && e.direction === "received",
          "declined answer at the bank",
        );
        assert.equal(declined.decision, "declined");
        assert.equal(declined.matches, true);
        await waiting.dispose();
        assert.deepEqual(errorsIn(p), []);
      },
    );
    await t.step(
      "peer offline and relay lost are shown; messages wait",
      async () => {
        await page.type("#compose-text", "Are you still there?");
        await page.press("Enter");
        await page.waitFor(
          `document.querySelector("#peer-state").textContent.includes("not connected right now")`,
          10_000,
          "peer-offline state",
        );
        await relay.proc.stop();
        await page.waitFor(
          `document.querySelector("#peer-state").textContent.includes("Reconnecting")`,
          10_000,
          "reconnecting state",
        );
        assert.match(
          await page.text("#relay-status"),
          /Reconnecting|Not connected/,
        );
      },
    );
  } finally {
    for (const x of extra) await x.stop();
    await browser.close();
    await web.proc.stop();
    await relay.proc.stop();
    await Deno.remove(tmp, { recursive: true });
  }
});
