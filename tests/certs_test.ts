/**
 * Certificate generation: DER/PEM codecs, the CA + relay certificate checked
 * by openssl, file modes and no-clobber rules, a real TLS WebSocket that
 * trusts only the CA, and the `tools/certs.ts` CLI as a subprocess.
 * Needs `openssl` on PATH (`apt-get install -y openssl`).
 * @module
 */

import assert from "node:assert/strict";
import * as der from "../lib/der.ts";
import { decodePem, decodePemAll, encodePem } from "../lib/pem.ts";
import {
  certificateDer,
  certificateFingerprint,
  generateCertificateAuthority,
  issueServerCertificate,
  parseHost,
} from "../lib/x509.ts";
import { writeFileAtomic } from "../lib/deno/atomic_file.ts";
import {
  CERT_FILES,
  certPaths,
  ensureCerts,
  type EnsureCertsResult,
} from "../tools/certs.ts";

const CERTS_CLI = new URL("../tools/certs.ts", import.meta.url).pathname;
const WS_TIMEOUT_MS = 10_000;

// ---------------------------------------------------------------- helpers

interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(
  cmd: string,
  args: string[],
  stdin?: Uint8Array,
): Promise<Output> {
  const command = new Deno.Command(cmd, {
    args,
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  });
  const child = command.spawn();
  if (stdin) {
    const writer = child.stdin.getWriter();
    await writer.write(stdin);
    await writer.close();
  }
  const { code, stdout, stderr } = await child.output();
  const text = new TextDecoder();
  return { code, stdout: text.decode(stdout), stderr: text.decode(stderr) };
}

async function openssl(...args: string[]): Promise<Output> {
  try {
    return await run("openssl", args);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(
        "openssl is not installed; these tests need it (apt-get install -y openssl)",
      );
    }
    throw e;
  }
}

async function withCerts(
  opts: { hosts?: string[] },
  fn: (result: EnsureCertsResult) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "certs_test_" });
  try {
    await fn(await ensureCerts({ dir, hosts: opts.hosts }));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function readAll(r: EnsureCertsResult): Promise<string[]> {
  return await Promise.all(
    [r.caPath, r.caKeyPath, r.certPath, r.keyPath].map((p) =>
      Deno.readTextFile(p)
    ),
  );
}

function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out waiting for ${what}`)),
      WS_TIMEOUT_MS,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Echo server over TLS with a WebSocket upgrade; `closed` resolves when its socket closes. */
function startEchoServer(cert: string, key: string) {
  let serverSocketClosed: Promise<void> = Promise.resolve();
  const server = Deno.serve(
    {
      port: 0,
      hostname: "127.0.0.1",
      cert,
      key,
      onListen: () => {},
      onError: () => new Response(null, { status: 500 }),
    },
    (req) => {
      const { socket, response } = Deno.upgradeWebSocket(req);
      serverSocketClosed = new Promise((resolve) =>
        socket.addEventListener("close", () => resolve())
      );
      socket.onmessage = (e) => socket.send(`echo:${e.data}`);
      return response;
    },
  );
  return {
    server,
    port: server.addr.port,
    socketClosed: () => serverSocketClosed,
  };
}

/** Opens `url`, sends one message, returns the reply, closes. Rejects on an error event. */
function exchange(url: string, client?: Deno.HttpClient): Promise<string> {
  return new Promise((resolve, reject) => {
    const ws = client ? new WebSocket(url, { client }) : new WebSocket(url);
    let reply: string | undefined;
    ws.onopen = () => ws.send("hello");
    ws.onmessage = (e) => {
      reply = String(e.data);
      ws.close();
    };
    ws.onerror = (e) =>
      reject(
        new Error(e instanceof ErrorEvent ? e.message : "WebSocket error"),
      );
    ws.onclose = () => (reply === undefined
      ? reject(new Error("closed without a reply"))
      : resolve(reply));
  });
}

// ---------------------------------------------------------------- DER and PEM

Deno.test("der: INTEGER strips leading zeros and keeps values positive", () => {
  assert.deepEqual(der.integer(0), new Uint8Array([2, 1, 0]));
  assert.deepEqual(der.integer(127), new Uint8Array([2, 1, 0x7f]));
  assert.deepEqual(der.integer(128), new Uint8Array([2, 2, 0, 0x80]));
  assert.deepEqual(
    der.integer(new Uint8Array([0, 0, 0x01, 0x02])),
    new Uint8Array([2, 2, 1, 2]),
  );
  assert.deepEqual(
    der.integer(new Uint8Array([0xff])),
    new Uint8Array([2, 2, 0, 0xff]),
  );
  assert.deepEqual(
    der.integer(new Uint8Array([0, 0])),
    new Uint8Array([2, 1, 0]),
  );
  assert.deepEqual(
    der.decodeUnsignedInteger(new Uint8Array([0, 0xff])),
    new Uint8Array([0xff]),
  );
  assert.throws(() => der.integer(-1), RangeError);
});

Deno.test("der: lengths, OIDs, bit strings, times, SET ordering", () => {
  assert.deepEqual(der.encodeLength(127), new Uint8Array([0x7f]));
  assert.deepEqual(der.encodeLength(128), new Uint8Array([0x81, 0x80]));
  assert.deepEqual(
    der.encodeLength(0x1234),
    new Uint8Array([0x82, 0x12, 0x34]),
  );
  const ecdsaSha256 = der.oid("1.2.840.10045.4.3.2");
  assert.equal(ecdsaSha256.toHex(), "06082a8648ce3d040302");
  assert.equal(
    der.decodeOid(der.readOnly(ecdsaSha256, der.Tag.OID).content),
    "1.2.840.10045.4.3.2",
  );
  assert.equal(der.namedBits([5, 6]).toHex(), "03020106"); // keyCertSign + cRLSign
  assert.equal(der.namedBits([0]).toHex(), "03020780"); // digitalSignature
  const date = new Date(Date.UTC(2049, 11, 31, 23, 59, 59, 999));
  assert.equal(
    new TextDecoder().decode(der.x509Time(date).subarray(2)),
    "491231235959Z",
  );
  const later = new Date(Date.UTC(2050, 0, 1));
  assert.equal(der.x509Time(later)[0], der.Tag.GENERALIZED_TIME);
  assert.deepEqual(
    der.set(der.integer(2), der.integer(1)),
    der.set(der.integer(1), der.integer(2)),
  );
  const long = der.octetString(new Uint8Array(300));
  const el = der.readOnly(long, der.Tag.OCTET_STRING);
  assert.equal(el.content.length, 300);
  assert.throws(() => der.readOnly(new Uint8Array([0x04, 0x80])), /indefinite/);
  assert.throws(
    () => der.readOnly(new Uint8Array([0x04, 0x81, 0x05, 0])),
    /minimally/,
  );
  assert.throws(
    () => der.readOnly(new Uint8Array([0x04, 0x05, 0])),
    /needs 5 bytes/,
  );
});

Deno.test("pem: round trip and clear errors", () => {
  const data = crypto.getRandomValues(new Uint8Array(200));
  const pem = encodePem("CERTIFICATE", data);
  assert.ok(pem.split("\n").every((line) => line.length <= 64));
  assert.deepEqual(
    decodePem("junk before\n" + pem.replaceAll("\n", "\r\n"), "CERTIFICATE"),
    data,
  );
  assert.equal(decodePemAll(pem + encodePem("PRIVATE KEY", data)).length, 2);
  assert.throws(
    () => decodePem(pem, "PRIVATE KEY"),
    /expected a "-----BEGIN PRIVATE KEY-----" block, found only "CERTIFICATE"/,
  );
  assert.throws(() => decodePem("hello", "CERTIFICATE"), /found no PEM blocks/);
  assert.throws(
    () => decodePem(pem.replace("-----END", "-----FIN"), "CERTIFICATE"),
    /no matching/,
  );
  assert.throws(
    () => decodePem(pem.replace(/\n[A-Za-z]/, "\n!"), "CERTIFICATE"),
    /not valid base64/,
  );
});

Deno.test("x509: parseHost classifies DNS names and IP addresses", () => {
  assert.deepEqual(parseHost("LocalHost."), { type: "dns", name: "localhost" });
  assert.deepEqual(parseHost("*.example.test"), {
    type: "dns",
    name: "*.example.test",
  });
  assert.equal(ipHex("127.0.0.1"), "7f000001");
  assert.equal(ipHex("::1"), "00000000000000000000000000000001");
  assert.equal(ipHex("[::1]"), "00000000000000000000000000000001");
  assert.equal(
    ipHex("2001:db8::8:800:200c:417a"),
    "20010db8000000000008080020" + "0c417a",
  );
  assert.equal(ipHex("::ffff:10.0.0.1"), "00000000000000000000ffff0a000001");
  for (
    const bad of [
      "1.2.3.999",
      "::1::2",
      "1:2:3:4:5:6:7:8:9",
      "exa mple",
      "-bad.test",
      "a..b",
      "",
    ]
  ) {
    assert.throws(() => parseHost(bad), RangeError, bad);
  }
});

function ipHex(host: string): string {
  const san = parseHost(host);
  assert.equal(san.type, "ip");
  return san.type === "ip" ? san.address.toHex() : "";
}

Deno.test("x509: refuses a CA key that does not belong to the CA certificate", async () => {
  const a = await generateCertificateAuthority();
  const b = await generateCertificateAuthority();
  await assert.rejects(
    issueServerCertificate({ certPem: a.certPem, keyPem: b.keyPem }, {
      hosts: ["localhost"],
    }),
    /does not match/,
  );
  await assert.rejects(
    issueServerCertificate(a, { hosts: [] }),
    /at least one host/,
  );
});

Deno.test("x509: leaf validity never outlives the CA", async () => {
  const ca = await generateCertificateAuthority({ validityDays: 30 });
  const leaf = await issueServerCertificate(ca, { hosts: ["localhost"] });
  const dates = async (pem: string) =>
    (await opensslStdin(["x509", "-noout", "-enddate"], pem)).stdout;
  assert.equal(await dates(leaf.certPem), await dates(ca.certPem));
});

async function opensslStdin(args: string[], input: string): Promise<Output> {
  await openssl("version");
  return await run("openssl", args, new TextEncoder().encode(input));
}

// ---------------------------------------------------------------- openssl checks

Deno.test("certs: openssl verifies the relay certificate against the CA", async () => {
  await withCerts({}, async (r) => {
    const out = await openssl(
      "verify",
      "-x509_strict",
      "-CAfile",
      r.caPath,
      r.certPath,
    );
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /: OK\n$/);
  });
});

Deno.test("certs: relay certificate has SANs, key usages and CA:FALSE", async () => {
  await withCerts({ hosts: ["example.test", "10.1.2.3"] }, async (r) => {
    const out = await openssl("x509", "-in", r.certPath, "-text", "-noout");
    assert.equal(out.code, 0, out.stderr);
    for (
      const want of [
        "DNS:localhost",
        "IP Address:127.0.0.1",
        "IP Address:0:0:0:0:0:0:0:1",
        "DNS:example.test",
        "IP Address:10.1.2.3",
        "CA:FALSE",
        "TLS Web Server Authentication",
        "Digital Signature",
        "Issuer: CN = Relay Local CA",
        "Signature Algorithm: ecdsa-with-SHA256",
        "NIST CURVE: P-256",
        "X509v3 Authority Key Identifier",
        "X509v3 Subject Key Identifier",
      ]
    ) {
      assert.ok(
        out.stdout.includes(want),
        `relay.pem text lacks "${want}":\n${out.stdout}`,
      );
    }
    assert.match(out.stdout, /Basic Constraints: critical\n\s+CA:FALSE/);
    assert.match(out.stdout, /Key Usage: critical\n\s+Digital Signature\n/);
  });
});

Deno.test("certs: CA certificate is CA:TRUE pathlen 0 with keyCertSign", async () => {
  await withCerts({}, async (r) => {
    const out = await openssl("x509", "-in", r.caPath, "-text", "-noout");
    assert.equal(out.code, 0, out.stderr);
    assert.match(
      out.stdout,
      /Basic Constraints: critical\n\s+CA:TRUE, pathlen:0/,
    );
    assert.match(
      out.stdout,
      /Key Usage: critical\n\s+Certificate Sign, CRL Sign/,
    );
    assert.ok(out.stdout.includes("Subject: CN = Relay Local CA"));
    const key = await openssl("pkey", "-in", r.caKeyPath, "-noout");
    assert.equal(
      key.code,
      0,
      `ca-key.pem is not a key openssl reads: ${key.stderr}`,
    );
  });
});

Deno.test("certs: fingerprint is SHA-256 of the certificate DER", async () => {
  await withCerts({}, async (r) => {
    const pem = await Deno.readTextFile(r.caPath);
    const fingerprint = await certificateFingerprint(pem);
    assert.match(fingerprint, /^[0-9a-f]{64}$/);
    const digest = new Uint8Array(
      await crypto.subtle.digest("SHA-256", certificateDer(pem)),
    );
    assert.equal(fingerprint, digest.toHex());
    const out = await openssl(
      "x509",
      "-in",
      r.caPath,
      "-noout",
      "-fingerprint",
      "-sha256",
    );
    const opensslHex = out.stdout.trim().split("=")[1].replaceAll(":", "")
      .toLowerCase();
    assert.equal(fingerprint, opensslHex);
  });
});

// ---------------------------------------------------------------- files

Deno.test("certs: private keys are 0600, certificates 0644, no temp files left", async () => {
  await withCerts({}, async (r) => {
    assert.equal(r.generated, true);
    const mode = async (p: string) => ((await Deno.stat(p)).mode ?? 0) & 0o777;
    assert.equal(await mode(r.caKeyPath), 0o600);
    assert.equal(await mode(r.keyPath), 0o600);
    assert.equal(await mode(r.caPath), 0o644);
    assert.equal(await mode(r.certPath), 0o644);
    const names = (await Array.fromAsync(Deno.readDir(r.dir))).map((e) =>
      e.name
    ).sort();
    assert.deepEqual(names, Object.values(CERT_FILES).sort());
  });
});

Deno.test("certs: existing files are kept without force and replaced with force", async () => {
  await withCerts({}, async (r) => {
    const before = await readAll(r);
    const again = await ensureCerts({ dir: r.dir });
    assert.equal(again.generated, false);
    assert.deepEqual(again.written, []);
    assert.deepEqual(await readAll(r), before);

    const forced = await ensureCerts({ dir: r.dir, force: true });
    assert.equal(forced.generated, true);
    const after = await readAll(r);
    after.forEach((text, i) => assert.notEqual(text, before[i]));
  });
});

Deno.test("certs: an incomplete set is an error naming the files, unless forced", async () => {
  await withCerts({}, async (r) => {
    await Deno.remove(r.certPath);
    const kept = await Deno.readTextFile(r.caPath);
    await assert.rejects(ensureCerts({ dir: r.dir }), (e: Error) => {
      assert.match(e.message, /incomplete certificate set/);
      assert.match(e.message, /missing [^;]*relay\.pem/);
      assert.match(e.message, /--force/);
      return true;
    });
    assert.equal(await Deno.readTextFile(r.caPath), kept);
    assert.equal(
      (await ensureCerts({ dir: r.dir, force: true })).generated,
      true,
    );
    const out = await openssl("verify", "-CAfile", r.caPath, r.certPath);
    assert.equal(out.code, 0, out.stderr);
  });
});

Deno.test("atomic_file: replaces content, honours mode, refuses to clobber when asked", async () => {
  const dir = await Deno.makeTempDir({ prefix: "atomic_test_" });
  try {
    const path = `${dir}/file.txt`;
    await writeFileAtomic(path, "one");
    assert.equal(((await Deno.stat(path)).mode ?? 0) & 0o777, 0o600);
    await writeFileAtomic(path, new TextEncoder().encode("two"), 0o644);
    assert.equal(await Deno.readTextFile(path), "two");
    assert.equal(((await Deno.stat(path)).mode ?? 0) & 0o777, 0o644);
    await assert.rejects(
      writeFileAtomic(path, "three", 0o600, { overwrite: false }),
      Deno.errors.AlreadyExists,
    );
    assert.equal(await Deno.readTextFile(path), "two");
    await assert.rejects(
      writeFileAtomic(`${dir}/missing/x`, "x"),
      Deno.errors.NotFound,
    );
    assert.deepEqual(
      (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name),
      ["file.txt"],
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------- TLS

Deno.test("certs: a WebSocket client that trusts only the CA connects (by name and by IP)", async () => {
  await withCerts({}, async (r) => {
    const [caPem, , cert, key] = await readAll(r);
    const { server, port, socketClosed } = startEchoServer(cert, key);
    const client = Deno.createHttpClient({ caCerts: [caPem] });
    try {
      for (const host of ["localhost", "127.0.0.1"]) {
        const reply = await withTimeout(
          exchange(`wss://${host}:${port}/`, client),
          `wss://${host}`,
        );
        assert.equal(reply, "echo:hello");
        await withTimeout(socketClosed(), "server socket close");
      }
    } finally {
      client.close();
      await server.shutdown();
    }
  });
});

Deno.test("certs: a client that does not trust the CA gets an UnknownIssuer error", async () => {
  await withCerts({}, async (r) => {
    const [, , cert, key] = await readAll(r);
    const { server, port } = startEchoServer(cert, key);
    try {
      await assert.rejects(
        withTimeout(exchange(`wss://localhost:${port}/`), "TLS failure"),
        /UnknownIssuer/,
      );
    } finally {
      await server.shutdown();
    }
  });
});

Deno.test("certs: a certificate whose SAN lacks the host is refused", async () => {
  await withCerts({}, async (r) => {
    const [caPem, caKeyPem] = await readAll(r);
    const other = await issueServerCertificate({
      certPem: caPem,
      keyPem: caKeyPem,
    }, { hosts: ["other.test"] });
    const { server, port } = startEchoServer(other.certPem, other.keyPem);
    const client = Deno.createHttpClient({ caCerts: [caPem] });
    try {
      const connecting = exchange(`wss://localhost:${port}/`, client);
      await assert.rejects(
        withTimeout(connecting, "SAN failure"),
        /not valid for name|NotValidForName/,
      );
    } finally {
      client.close();
      await server.shutdown();
    }
  });
});

// ---------------------------------------------------------------- CLI

/** tools/certs.ts --dir `dir` `args`, granted `dir` only. */
const certsCli = (dir: string, ...args: string[]) =>
  run(Deno.execPath(), [
    "run",
    `--allow-read=${dir}`,
    `--allow-write=${dir}`,
    CERTS_CLI,
    "--dir",
    dir,
    ...args,
  ]);

Deno.test("certs CLI: writes the four files, one line each, no key material on stdout", async () => {
  const dir = await Deno.makeTempDir({ prefix: "certs_cli_" });
  try {
    const out = await certsCli(dir, "--host", "example.test");
    assert.equal(out.code, 0, out.stderr);
    const lines = out.stdout.trim().split("\n");
    assert.equal(lines.length, 4, out.stdout);
    assert.ok(
      !out.stdout.includes("PRIVATE KEY") &&
        !out.stderr.includes("PRIVATE KEY"),
    );
    const paths = certPaths(dir);
    for (
      const p of [paths.caPath, paths.caKeyPath, paths.certPath, paths.keyPath]
    ) {
      assert.ok(out.stdout.includes(p), `stdout does not mention ${p}`);
    }
    const text = await openssl(
      "x509",
      "-in",
      paths.certPath,
      "-text",
      "-noout",
    );
    assert.ok(text.stdout.includes("DNS:example.test"));

    const again = await certsCli(dir);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /nothing written/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("certs CLI: unknown flag and bad host exit 2 with a message", async () => {
  const bogus = await run(Deno.execPath(), ["run", CERTS_CLI, "--bogus"]);
  assert.equal(bogus.code, 2);
  assert.match(bogus.stderr, /Unknown option '--bogus'/);
  assert.match(bogus.stderr, /Usage:/);
  const badHost = await run(Deno.execPath(), [
    "run",
    CERTS_CLI,
    "--host",
    "exa mple",
  ]);
  assert.equal(badHost.code, 2);
  assert.match(badHost.stderr, /not a valid DNS name/);
});
