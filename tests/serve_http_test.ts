/**
 * The bank service's HTTP API (`--serve --http 127.0.0.1:PORT`) with real
 * processes over the real relay (TLS): the bearer token is required (none,
 * wrong → 401, foreign Host → 421), the token file is 0600, `POST /rpc`
 * answers JSON-RPC (errors included), `GET /events` streams notifications as
 * Server-Sent Events, multi-line UTF-8 text travels intact both ways, the end
 * of stdin does not stop the daemon, and SIGTERM closes cleanly with exit 0.
 */

import assert from "node:assert/strict";
import { startTestRelay } from "./helpers/relay_fixture.ts";
import { ClientProc, type Ev, freePort } from "./helpers/client_proc.ts";

Deno.test("bank --serve --http: token required, JSON-RPC over POST /rpc, events over SSE, text intact both ways, SIGTERM", async () => {
  const relay = await startTestRelay();
  const dir = await Deno.makeTempDir({ prefix: "serve-http-" });
  const ca = `${relay.certsDir}/ca.pem`;
  const grants = `${dir},${relay.certsDir}`;
  const port = freePort();
  const base = `http://127.0.0.1:${port}`;
  const common = ["--relay", relay.url, "--ca", ca, "--cover-rate", "0"];
  const bank = new ClientProc("bank", [
    "--serve",
    "--http",
    `127.0.0.1:${port}`,
    ...common,
    "--keys",
    `${dir}/bank`,
  ], grants);
  let customer: ClientProc | undefined;
  const sse = new AbortController();
  try {
    await bank.end(); // a daemon's stdin: at its end at once — the service keeps running
    const ready = await bank.waitFor((e) => e.method === "ready", "ready");
    await bank.waitFor(
      (e) => e.method === "notice" && /HTTP API on/.test(e.params.text),
      "HTTP API listening",
    );
    const tokenFile = `${dir}/bank/api_token`;
    assert.equal((await Deno.stat(tokenFile)).mode! & 0o777, 0o600);
    const token = (await Deno.readTextFile(tokenFile)).trim();
    const auth = { authorization: `Bearer ${token}` };
    let nextId = 1;
    const call = async (method: string, params: unknown = {}) => {
      const r = await fetch(`${base}/rpc`, {
        method: "POST",
        headers: { ...auth, "content-type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: nextId++, method, params }),
      });
      assert.equal(r.status, 200);
      return await r.json();
    };

    // Without the token, with a wrong one, from a foreign Host: refused.
    for (
      const headers of [
        {} as Record<string, string>,
        { authorization: `Bearer ${"x".repeat(token.length)}` },
        { authorization: token },
      ]
    ) {
      const r = await fetch(`${base}/rpc`, {
        method: "POST",
        headers,
        body: '{"jsonrpc":"2.0","id":1,"method":"status"}',
      });
      assert.equal(r.status, 401);
      assert.match(r.headers.get("www-authenticate") ?? "", /^Bearer/);
      await r.body?.cancel();
    }
    // fetch() will not send a foreign Host: a raw request (DNS rebinding).
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const body = '{"jsonrpc":"2.0","id":1,"method":"status"}';
    await conn.write(
      new TextEncoder().encode(
        `POST /rpc HTTP/1.1\r\nHost: evil.example\r\nAuthorization: Bearer ${token}\r\n` +
          `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
      ),
    );
    const answer = new Uint8Array(4096);
    const n = await conn.read(answer);
    conn.close();
    assert.match(
      new TextDecoder().decode(answer.subarray(0, n ?? 0)),
      /^HTTP\/1\.1 421 /,
    );
    const get = await fetch(`${base}/rpc`, { headers: auth });
    assert.equal(get.status, 405);
    await get.body?.cancel();

    // Bad input over HTTP: a JSON-RPC error, nothing else.
    const bad = await fetch(`${base}/rpc`, {
      method: "POST",
      headers: auth,
      body: "{not json",
    });
    assert.equal((await bad.json()).error.code, -32700);
    assert.equal((await call("nope")).error.data.code, "unknown-method");
    const status = await call("status");
    assert.ok(status.result, JSON.stringify(status));

    // The event stream.
    const events: Ev[] = [];
    const stream = await fetch(`${base}/events`, {
      headers: auth,
      signal: sse.signal,
    });
    assert.equal(stream.status, 200);
    assert.match(stream.headers.get("content-type")!, /^text\/event-stream/);
    const pumping = (async () => {
      const reader = stream.body!.pipeThrough(new TextDecoderStream())
        .getReader();
      let buf = "";
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return;
          buf += value;
          let i;
          while ((i = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            for (const line of block.split("\n")) {
              if (line.startsWith("data: ")) {
                events.push(JSON.parse(line.slice(6)));
              }
            }
          }
        }
      } catch { /* aborted */ }
    })();
    const until = async (pred: (e: Ev) => boolean, what: string) => {
      const end = Date.now() + 20_000;
      while (!events.some(pred)) {
        if (Date.now() > end) {
          throw new Error(
            `no SSE event: ${what}; got ${JSON.stringify(events)}`,
          );
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      return events.find(pred)!;
    };

    customer = new ClientProc("customer", [
      "--json",
      ...common,
      "--keys",
      `${dir}/c`,
      "--peer",
      ready.params.address,
    ], grants);
    const secure = await until((e) => e.method === "secure", "secure");
    const peer: string = secure.params.peer;
    assert.match(secure.params.fingerprint, /^[0-9a-f]{64}$/);

    const text = "line one\nline two — ünïcödé ✓ 🏦";
    const sent = await call("send", { peer, text });
    assert.equal(typeof sent.result.id, "number", JSON.stringify(sent));
    const got = await customer.waitFor(
      (e) => e.type === "message",
      "customer got it",
    );
    assert.equal(got.text, text);
    await until(
      (e) => e.method === "delivered" && e.params.id === sent.result.id,
      "delivered",
    );
    await customer.line("hello bank");
    const msg = await until((e) => e.method === "message", "message");
    assert.equal(msg.params.text, "hello bank");
    assert.equal(msg.params.peer, peer);
    const peers = await call("peers");
    assert.equal(peers.result.length, 1);

    bank.signal("SIGTERM");
    assert.equal(await bank.exit(), 0);
    await pumping;
    assert.ok(events.some((e) => e.method === "closed"));
    await customer.end();
    await customer.exit();
  } finally {
    sse.abort();
    await bank.dispose();
    await customer?.dispose();
    await relay.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--http takes only a loopback HOST:PORT and needs --serve; --token-file needs --http", async () => {
  const { parseClientArgs } = await import("../clients/args.ts");
  for (
    const bad of [
      "0.0.0.0:8780",
      "192.168.1.2:80",
      "127.0.0.1",
      "127.0.0.1:99999",
    ]
  ) {
    assert.throws(
      () => parseClientArgs("bank", ["--serve", "--http", bad]),
      /loopback HOST:PORT/,
    );
  }
  assert.throws(
    () => parseClientArgs("bank", ["--http", "127.0.0.1:8780"]),
    /--http needs --serve/,
  );
  assert.throws(
    () => parseClientArgs("bank", ["--token-file", "t"]),
    /--token-file needs --http/,
  );
  const o = parseClientArgs("bank", [
    "--serve",
    "--http",
    "[::1]:8780",
    "--keys",
    "k",
  ])!;
  assert.deepEqual(o.http, { hostname: "::1", port: 8780 });
  assert.equal(o.tokenFile, "k/api_token");
});
