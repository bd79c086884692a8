/**
 * The relay behind a real reverse proxy (Debian's nginx, started here on a
 * free port with its configuration in a temporary folder, stopped by PID):
 * TLS terminated by nginx on another port than the relay's, re-encrypted to
 * the relay, `Host` passed through. With `--public-origin` the bank and the
 * customer register and converse through it; without, the relay refuses
 * with 421, logs it and names the flag. README → "Behind a reverse proxy"
 * shows the same configuration.
 * @module
 */

import assert from "node:assert/strict";
import {
  bankTo,
  ClientProc,
  customerIn,
  type Ev,
  freePort,
} from "./helpers/client_proc.ts";
import { testCerts } from "./helpers/relay_fixture.ts";
import { spawnRelay } from "./helpers/relay_process.ts";
import { certificateFingerprint } from "../lib/x509.ts";

const NGINX = "/usr/sbin/nginx";

/** The nginx configuration README documents, for a relay on 127.0.0.1:relayPort. */
function nginxConf(
  dir: string,
  port: number,
  relayPort: number,
  certsDir: string,
): string {
  return `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 128; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/tmp; proxy_temp_path ${dir}/tmp; fastcgi_temp_path ${dir}/tmp;
  uwsgi_temp_path ${dir}/tmp; scgi_temp_path ${dir}/tmp;
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${certsDir}/relay.pem;
    ssl_certificate_key ${certsDir}/relay-key.pem;
    location / {
      proxy_pass https://127.0.0.1:${relayPort};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $http_host;
      proxy_ssl_trusted_certificate ${certsDir}/ca.pem;
      proxy_ssl_verify on;
      proxy_ssl_name localhost;
      proxy_ssl_server_name on;
      proxy_read_timeout 1h;
      proxy_buffering off;
    }
  }
}
`;
}

async function startNginx(
  relayPort: number,
  certsDir: string,
): Promise<{ port: number; stop(): Promise<void>; dir: string }> {
  const dir = await Deno.makeTempDir({ prefix: "relay-nginx-" });
  await Deno.mkdir(`${dir}/tmp`);
  const port = freePort();
  await Deno.writeTextFile(
    `${dir}/nginx.conf`,
    nginxConf(dir, port, relayPort, certsDir),
  );
  const child = new Deno.Command(NGINX, {
    args: ["-p", dir, "-c", `${dir}/nginx.conf`, "-e", `${dir}/error.log`],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const deadline = Date.now() + 10000;
  for (;;) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      break;
    } catch {
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        throw new Error(`nginx did not start: ${await stderr}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    port,
    dir,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      await child.status;
      await stderr;
      await Deno.remove(dir, { recursive: true });
    },
  };
}

const isType = (t: string) => (e: Ev) => e.type === t;

Deno.test("relay behind nginx on another port: --public-origin makes registration and a conversation work; without it the 421 is logged with the flag", async () => {
  const certs = await testCerts();
  const dir = await Deno.makeTempDir({ prefix: "relay-proxy-" });
  const relayPort = freePort();
  const nginx = await startNginx(relayPort, certs.dir);
  const publicUrl = `wss://localhost:${nginx.port}/ws`;
  const grants = `${dir},${certs.dir}`;
  // Pinned (the clients' own transport, ALPN http/1.1), as a shared address's ca= pins.
  const pin = await certificateFingerprint(certs.ca);
  const common = [
    "--json",
    "--relay",
    publicUrl,
    "--ca",
    `${certs.dir}/ca.pem`,
    "--pin",
    pin,
    "--wait",
    "20",
  ];
  try {
    // 1. Without --public-origin: refused, logged, explained.
    const plain = await spawnRelay({
      certsDir: certs.dir,
      args: ["--port", String(relayPort)],
    });
    try {
      const c = new ClientProc(
        "customer",
        [...common, "--keys", `${dir}/x`],
        grants,
      );
      const code = await c.exit();
      assert.notEqual(code, 0, "the customer cannot register");
      assert.match(c.rawStdout + c.stderr.join(""), /421/);
      const line = plain.lines.find((l) =>
        l.includes(`refused Host 'localhost:${nginx.port}'`)
      );
      assert.ok(line, plain.lines.join("\n"));
      assert.match(
        line,
        new RegExp(`--public-origin wss://localhost:${nginx.port}`),
      );
    } finally {
      await plain.stop();
    }
    // 2. With --public-origin: a whole conversation through the proxy.
    const relay = await spawnRelay({
      certsDir: certs.dir,
      args: [
        "--port",
        String(relayPort),
        "--public-origin",
        `wss://localhost:${nginx.port}`,
      ],
    });
    const customer = customerIn(dir, common, grants);
    let bank: ClientProc | undefined;
    try {
      const ready = await customer.waitFor(isType("ready"), "customer ready");
      assert.ok(ready.address.startsWith(`${publicUrl}#`), ready.address);
      bank = bankTo(ready.address, dir, common, grants);
      const [sb, sc] = await Promise.all([
        bank.waitFor(isType("secure"), "bank secure"),
        customer.waitFor(isType("secure"), "customer secure"),
      ]);
      assert.equal(sb.safetyNumber, sc.safetyNumber);
      await bank.line("through the proxy");
      await customer.line("and back");
      assert.equal(
        (await customer.waitFor(isType("message"), "at customer")).text,
        "through the proxy",
      );
      assert.equal(
        (await bank.waitFor(isType("message"), "at bank")).text,
        "and back",
      );
      await bank.end();
      await customer.end();
      assert.equal(await bank.exit(), 0);
      assert.equal(await customer.exit(), 0);
      assert.ok(
        (await Deno.readTextFile(`${nginx.dir}/access.log`)).includes(
          'GET /ws HTTP/1.1" 101',
        ),
        "the upgrade went through nginx",
      );
    } finally {
      await bank?.dispose();
      await customer.dispose();
      await relay.stop();
    }
  } finally {
    await nginx.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
