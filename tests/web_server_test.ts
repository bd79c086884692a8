/**
 * `deno task web`'s server (tools/web.ts) without a browser: static files
 * only, the security headers on every response (errors included), GET/HEAD
 * only, ETag revalidation, the relay URL escaped into the page, and the
 * command line (--help, a relay that is not wss://).
 */

import assert from "node:assert/strict";
import {
  contentSecurityPolicy,
  securityHeaders,
  startWebServer,
} from "../tools/web.ts";
import { ROOT } from "./helpers/client_proc.ts";

const RELAY = "wss://relay.bank.example:8443/ws";

/** A web folder with stand-ins for the four files the server reads. */
async function webDir(withBundle = true): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "web-server-test-" });
  await Deno.writeTextFile(
    `${dir}/index.html`,
    `<meta name="relay" content="%RELAY_URL%"><script src="app.js"></script>`,
  );
  await Deno.writeTextFile(`${dir}/style.css`, "body{}");
  await Deno.writeTextFile(`${dir}/icon.svg`, "<svg/>");
  if (withBundle) {
    await Deno.mkdir(`${dir}/dist`);
    await Deno.writeTextFile(`${dir}/dist/app.js`, "console.log(1)");
  }
  return dir;
}

function assertSecurityHeaders(r: Response): void {
  for (const [k, v] of Object.entries(securityHeaders(RELAY))) {
    assert.equal(r.headers.get(k), v, `${k} on ${r.url} (${r.status})`);
  }
}

Deno.test("web server: static files with the CSP on every response; GET/HEAD only; 404; ETag", async () => {
  const dir = await webDir();
  const server = await startWebServer({ relay: RELAY, dir, port: 0 });
  try {
    const csp = contentSecurityPolicy(RELAY);
    assert.match(
      csp,
      /(^|; )connect-src wss:\/\/relay\.bank\.example:8443(;|$)/,
    );
    assert.match(csp, /(^|; )script-src 'self'(;|$)/);
    assert.doesNotMatch(csp, /unsafe|\*/);

    const page = await fetch(server.url);
    assertSecurityHeaders(page);
    assert.equal(page.headers.get("content-type"), "text/html; charset=utf-8");
    assert.equal(
      await page.text(),
      `<meta name="relay" content="${RELAY}"><script src="app.js"></script>`,
    );
    const js = await fetch(`${server.url}app.js`);
    assert.equal(
      js.headers.get("content-type"),
      "text/javascript; charset=utf-8",
    );
    assert.equal(await js.text(), "console.log(1)");

    const head = await fetch(`${server.url}style.css`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), "");
    assertSecurityHeaders(head);

    const etag = js.headers.get("etag")!;
    const again = await fetch(`${server.url}app.js`, {
      headers: { "if-none-match": etag },
    });
    assert.equal(again.status, 304);
    await again.body?.cancel();

    const post = await fetch(server.url, { method: "POST", body: "x" });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get("allow"), "GET, HEAD");
    assertSecurityHeaders(post);
    await post.body?.cancel();

    for (const path of ["dist/app.js", "../deno.json", "x", "index.html?q"]) {
      const r = await fetch(`${server.url}${path}`);
      assert.equal(r.status, path === "index.html?q" ? 200 : 404, path);
      assertSecurityHeaders(r);
      await r.body?.cancel();
    }
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("web server: the relay URL is attribute-escaped; no bundle → says to build it; a relay that is not wss:// is refused", async () => {
  const dir = await webDir();
  const odd = `wss://localhost:8765/ws?a="><script>`;
  const server = await startWebServer({ relay: odd, dir, port: 0 });
  try {
    const html = await (await fetch(server.url)).text();
    assert.ok(!html.includes("<script>x"), html);
    assert.ok(html.includes("&#34;&#62;&#60;script&#62;"), html);
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
  const bare = await webDir(false);
  try {
    await assert.rejects(
      startWebServer({ relay: RELAY, dir: bare, port: 0 }),
      /dist\/app\.js is missing: run deno task web:build first/,
    );
  } finally {
    await Deno.remove(bare, { recursive: true });
  }
  assert.throws(
    () => contentSecurityPolicy("ws://localhost:8765/ws"),
    /--relay must be a wss:\/\/ URL/,
  );
});

Deno.test("deno task web: --help prints the usage (exit 0); --relay ws://… is a usage error (exit 2)", async () => {
  const run = async (...args: string[]) => {
    const out = await new Deno.Command("deno", {
      args: ["run", "--allow-net=127.0.0.1", "tools/web.ts", ...args],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const d = new TextDecoder();
    return {
      code: out.code,
      text: d.decode(out.stdout) + d.decode(out.stderr),
    };
  };
  const help = await run("--help");
  assert.equal(help.code, 0, help.text);
  assert.match(help.text, /^deno task web \[flags\]/);
  assert.match(help.text, /--relay URL/);
  const bad = await run("--relay", "ws://localhost:8765/ws");
  assert.equal(bad.code, 2, bad.text);
  assert.match(bad.text, /--relay must be a wss:\/\/ URL/);
});
