/**
 * `deno task compile`: offline, the runtime download fails and the tool must
 * stop quickly with a clear message (exit 3); online it builds the binaries.
 */

import assert from "node:assert/strict";
import { offlineMessage, taskFlags } from "../tools/compile.ts";
import { ROOT } from "./helpers/client_proc.ts";

Deno.test("compile: fails fast and clearly without the denort download, or builds all three", async () => {
  const out = await Deno.makeTempDir({ prefix: "compile-test-" });
  try {
    const started = Date.now();
    const r = await compileWith(out, {});
    if (r.code === 0) {
      for (const name of ["relay", "bank", "customer"]) {
        assert.ok((await Deno.stat(`${out}/${name}`)).isFile);
      }
      return;
    }
    assert.equal(r.code, 3, r.stderr);
    assert.ok(Date.now() - started < 60000);
    assert.match(
      r.stderr,
      /could not download the Deno runtime it embeds \(denort\)/,
    );
    assert.match(r.stderr, /dl\.deno\.land|dns|lookup/i);
    assert.match(r.stderr, /on a machine with internet access/);
    assert.match(r.stderr, /DENORT_BIN=/);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("compile: permission flags come from the deno.json tasks", () => {
  const json = Deno.readTextFileSync(`${ROOT}/deno.json`);
  const bank = taskFlags(json, "bank", "clients/bank.ts");
  assert.ok(bank.some((f) => f.startsWith("--allow-net=")));
  assert.ok(!bank.includes("-A") && !bank.includes("--allow-all"));
  assert.throws(() => taskFlags(json, "nope", "x.ts"), /no task "nope"/);
  // The relay binary keeps the task's young-generation cap (memory per connection).
  assert.ok(
    taskFlags(json, "relay", "server.ts").includes(
      "--v8-flags=--max-semi-space-size=1",
    ),
  );
  assert.match(
    offlineMessage(
      "x\nerror sending request for url (https://dl.deno.land/…): dns error\n",
    ),
    /dns error/,
  );
});

Deno.test("compile: --relay-host grants exactly the relay's host to the clients (dry run shows the permission line)", async () => {
  const run = (args: string[], env: Record<string, string> = {}) =>
    new Deno.Command("deno", {
      args: [
        "run",
        "--no-prompt",
        "--allow-run=deno",
        "--allow-read",
        "--allow-write=dist",
        "--allow-env",
        "tools/compile.ts",
        "--dry-run",
        ...args,
      ],
      cwd: ROOT,
      env: { NO_COLOR: "1", ...env },
    }).output();
  const r = await run([
    "--relay-host",
    "relay.bank.example:443",
    "--relay-bind",
    "203.0.113.7:443",
  ]);
  const out = new TextDecoder().decode(r.stdout);
  assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
  for (const name of ["bank", "customer"]) {
    assert.match(
      out,
      new RegExp(
        `compiling ${name}: deno compile .*--allow-net=localhost,127\\.0\\.0\\.1,relay\\.bank\\.example:443 `,
      ),
    );
  }
  assert.match(
    out,
    /compiling relay: .*--allow-net=127\.0\.0\.1,localhost,\[::1\],203\.0\.113\.7:443 /,
  );
  assert.doesNotMatch(
    out,
    /compiling relay: .*relay\.bank\.example/,
    "the relay binary gets only its bind address",
  );
  // The same from the environment; a malformed host is a usage error.
  const env = await run([], { RELAY_HOST: "relay.bank.example:8443" });
  assert.match(
    new TextDecoder().decode(env.stdout),
    /--allow-net=localhost,127\.0\.0\.1,relay\.bank\.example:8443 /,
  );
  const bad = await run(["--relay-host", "relay.bank.example"]);
  assert.equal(bad.code, 2);
  assert.match(
    new TextDecoder().decode(bad.stderr),
    /--relay-host must be HOST:PORT/,
  );
});

/** Runs tools/compile.ts into `out` with `env`; exit code, stdout and stderr. */
async function compileWith(
  out: string,
  env: Record<string, string>,
  extra: string[] = [],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await new Deno.Command("deno", {
    args: [
      "run",
      "--no-prompt",
      `--allow-run=deno,${out}/relay,${out}/bank,${out}/customer`,
      "--allow-read",
      `--allow-write=${out}`,
      "--allow-env",
      "tools/compile.ts",
      "--out",
      out,
      "--timeout",
      "60",
      ...extra,
    ],
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
  }).output();
  return {
    code: r.code,
    stdout: new TextDecoder().decode(r.stdout),
    stderr: new TextDecoder().decode(r.stderr),
  };
}

Deno.test("compile: DENORT_BIN=the deno binary fails the --help smoke test (Deno's help, not ours); a missing DENORT_BIN file is a clear usage error", async () => {
  const out = await Deno.makeTempDir({ prefix: "compile-test-" });
  try {
    const missing = await compileWith(out, {
      DENORT_BIN: `${out}/no-such-denort`,
    });
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /DENORT_BIN=.*no-such-denort: no such file/);
    assert.doesNotMatch(missing.stderr, /backtrace|panicked/i);

    const deno = await compileWith(out, { DENORT_BIN: Deno.execPath() });
    assert.equal(deno.code, 1, deno.stdout + deno.stderr);
    assert.match(deno.stderr, /prints Deno's help, not ours/);
    assert.match(deno.stderr, /must point at a denort binary/);
    assert.doesNotMatch(deno.stdout, /^built /m);
    assert.match(deno.stderr, /Do not ship .*\/relay: delete it/);
    // The build stops at the first bad binary.
    assert.deepEqual(
      (await Array.fromAsync(Deno.readDir(out))).map((e) => e.name),
      ["relay"],
    );
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

/**
 * The permissions `deno compile` baked into `binary`: the metadata JSON it
 * embeds (Deno 2.9: `"permissions":{"allow_net":[…],…}`; no nested objects).
 */
async function bakedPermissions(
  binary: string,
): Promise<Record<string, string[] | boolean | null>> {
  const bytes = await Deno.readFile(binary);
  const marker = new TextEncoder().encode('"permissions":{');
  // The metadata sits near the end of the file: search backwards.
  let at = -1;
  for (
    let i = bytes.lastIndexOf(marker[0]);
    i >= 0;
    i = bytes.lastIndexOf(marker[0], i - 1)
  ) {
    if (marker.every((b, j) => bytes[i + j] === b)) {
      at = i;
      break;
    }
  }
  assert.ok(at >= 0, `${binary}: no embedded permissions`);
  const start = at + marker.length - 1;
  const end = bytes.indexOf("}".charCodeAt(0), start);
  return JSON.parse(new TextDecoder().decode(bytes.subarray(start, end + 1)));
}

Deno.test("compile: --relay-host / --relay-bind are baked into the built binaries' permissions (built offline on DENORT_BIN=deno, read from their metadata)", async () => {
  const out = await Deno.makeTempDir({ prefix: "compile-test-" });
  try {
    const flags = [
      "--relay-host",
      "relay.bank.example:443",
      "--relay-bind",
      "203.0.113.7:443",
    ];
    for (const name of ["relay", "bank", "customer"]) {
      // Built on the deno CLI (offline), the smoke test fails (exit 1) after the build.
      const r = await compileWith(out, { DENORT_BIN: Deno.execPath() }, [
        "--only",
        name,
        ...flags,
      ]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stderr, /prints Deno's help, not ours/);
      const p = await bakedPermissions(`${out}/${name}`);
      const net = p.allow_net as string[];
      if (name === "relay") {
        assert.deepEqual(net, [
          "127.0.0.1",
          "localhost",
          "[::1]",
          "203.0.113.7:443",
        ]);
        assert.deepEqual(p.allow_write, ["certs"]);
      } else {
        assert.deepEqual(net, [
          "localhost",
          "127.0.0.1",
          "relay.bank.example:443",
        ]);
        assert.deepEqual(p.allow_read, ["."]);
        assert.equal(p.prompt, false, `${name}: --no-prompt`);
      }
      await Deno.remove(`${out}/${name}`);
    }
    const bad = await compileWith(out, {}, ["--only", "relay,server"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--only takes some of relay,bank,customer/);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
