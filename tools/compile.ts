/**
 * `deno task compile [--out DIR] [--target TRIPLE] [--timeout S]
 * [--relay-host HOST:PORT]… [--relay-bind ADDR:PORT] [--only NAME,…] [--dry-run]`: builds
 * standalone executables of the relay, the bank and the customer into `dist/`
 * with `deno compile`, baking in the same permission flags as their tasks in
 * deno.json (read from there, so they never drift). A compiled binary cannot
 * be given more permissions later, so the relay's public host is granted at
 * build time, and only it: `--relay-host relay.bank.example:443` (or
 * `RELAY_HOST=…`, comma-separated) adds exactly that host:port to the
 * clients' `--allow-net`; `--relay-bind ADDR:PORT` adds the relay's bind
 * address to the relay binary's. `--only bank,customer` builds only those
 * (a customer needs only `customer`). `--dry-run` prints the commands only.
 *
 * `deno compile` downloads the `denort` runtime for the target from
 * dl.deno.land on first use. Offline, that download fails: this tool watches
 * `deno compile`'s output, stops at the first download/DNS error (or after
 * `--timeout`, default 180 s) and says how to build on a connected machine.
 * Each binary built for this machine is run once with `--help`, which must
 * print our help (a binary built on the deno CLI instead of denort prints
 * Deno's): otherwise the build stops there and fails, naming the bad binary.
 * Exit codes: 0 built and checked, 1 a compile or its check failed, 2 usage
 * (a DENORT_BIN that is not a file too), 3 runtime download unavailable.
 * @module
 */

import { parseArgs } from "node:util";

/** What to build: output name, task whose permission flags are baked in, entry file. */
const TARGETS = [
  {
    name: "relay",
    task: "relay",
    entry: "server.ts",
    help: /^deno task relay \[flags\]/m,
  },
  {
    name: "bank",
    task: "bank",
    entry: "clients/bank.ts",
    help: /^deno task bank \[flags\]/m,
  },
  {
    name: "customer",
    task: "customer",
    entry: "clients/customer.ts",
    help: /^deno task customer \[flags\]/m,
  },
] as const;

/** Time allowed for a built binary's `--help` (ms). */
const SMOKE_TIMEOUT_MS = 20000;

/** Default overall time allowed per `deno compile` (s): a large download on a slow link. */
const DEFAULT_TIMEOUT_S = 180;
/** Output that means the runtime could not be downloaded. */
const DOWNLOAD_ERROR_RE =
  /dns error|failed to lookup address|error sending request|Connection refused|timed out|tcp connect error|Failed downloading|certificate/i;

/** The permission flags of `task` in deno.json (everything between `deno run` and the entry file). */
export function taskFlags(
  denoJson: string,
  task: string,
  entry: string,
): string[] {
  const tasks = JSON.parse(denoJson).tasks ?? {};
  const t = tasks[task];
  const command: string | undefined = typeof t === "string" ? t : t?.command;
  if (!command) throw new Error(`deno.json has no task "${task}"`);
  const words = command.trim().split(/\s+/);
  const end = words.indexOf(entry);
  if (words[0] !== "deno" || words[1] !== "run" || end < 0) {
    throw new Error(
      `task "${task}" is not "deno run [flags] ${entry}": ${command}`,
    );
  }
  return words.slice(2, end);
}

/** Checks `HOST:PORT` (IPv6 as `[::1]:PORT`); throws with `flag` in the message otherwise. */
export function hostPort(text: string, flag: string): string {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(text.trim());
  if (!m || Number(m[2]) > 65535 || Number(m[2]) === 0) {
    throw new Error(
      `${flag} must be HOST:PORT, e.g. relay.bank.example:443 (got '${text}')`,
    );
  }
  return `${m[1].toLowerCase()}:${m[2]}`;
}

/** `flags` with `hosts` appended to its `--allow-net=` list (least privilege: exactly those host:ports). */
export function grantNet(flags: string[], hosts: string[]): string[] {
  if (hosts.length === 0) return flags;
  const i = flags.findIndex((f) => f.startsWith("--allow-net="));
  if (i < 0) return [...flags, `--allow-net=${hosts.join(",")}`];
  return flags.map((f, j) => (j === i ? `${f},${hosts.join(",")}` : f));
}

/** The message printed when the runtime cannot be downloaded. */
export function offlineMessage(output: string): string {
  // deno-lint-ignore no-control-regex
  const lines = output.replace(/\x1b\[[0-9;]*m/g, "").split("\n").map((l) =>
    l.trim()
  );
  const cause = lines.find((l) => DOWNLOAD_ERROR_RE.test(l)) ??
    lines.filter(Boolean).at(-1) ?? "";
  return [
    "deno compile could not download the Deno runtime it embeds (denort) from dl.deno.land:",
    `  ${cause.slice(0, 300)}`,
    "This machine looks offline. To build the binaries:",
    "  • run `deno task compile` on a machine with internet access (same Deno version), or",
    "  • copy a denort binary of the same Deno version and target to this machine and run",
    "    `DENORT_BIN=/path/to/denort deno task compile` (it must be denort, not the deno binary).",
    "Without binaries, everything works from source: deno task relay / bank / customer.",
  ].join("\n");
}

async function compileOne(
  args: string[],
  timeoutMs: number,
): Promise<{ code: number; output: string; offline: boolean }> {
  const child = new Deno.Command("deno", {
    args,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  let offline = false;
  const timer = setTimeout(() => {
    offline = true;
    output += `\nno result after ${timeoutMs / 1000} s`;
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
  }, timeoutMs);
  const read = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      output += decoder.decode(chunk, { stream: true });
      if (
        !offline && DOWNLOAD_ERROR_RE.test(output) &&
        /denort|dl\.deno\.land|download/i.test(output)
      ) {
        offline = true;
        try {
          child.kill("SIGKILL");
        } catch { /* exited */ }
      }
    }
  };
  const [status] = await Promise.all([
    child.status,
    read(child.stdout),
    read(child.stderr),
  ]);
  clearTimeout(timer);
  return { code: status.code, output, offline };
}

/**
 * Runs `binary --help` and checks it prints our help (`expected`): a binary
 * built on the wrong runtime (DENORT_BIN pointing at the deno CLI) prints
 * Deno's. Undefined when it is ours, otherwise what is wrong.
 */
export async function smokeTest(
  binary: string,
  expected: RegExp,
): Promise<string | undefined> {
  let out;
  try {
    out = await new Deno.Command(binary, {
      args: ["--help"],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(SMOKE_TIMEOUT_MS),
    }).output();
  } catch (e) {
    return `cannot run ${binary} --help: ${(e as Error).message}`;
  }
  const text = new TextDecoder().decode(out.stdout) +
    new TextDecoder().decode(out.stderr);
  if (out.code === 0 && expected.test(text)) return undefined;
  if (/^Usage: deno \[OPTIONS\]/m.test(text)) {
    return `${binary} --help prints Deno's help, not ours: the binary is Deno's own CLI. ` +
      "DENORT_BIN must point at a denort binary (the runtime deno compile embeds), not at the deno binary";
  }
  return `${binary} --help (exit ${out.code}) did not print our help: ${
    text.trim().slice(0, 200)
  }`;
}

/** Why $DENORT_BIN cannot be used (undefined when unset or a file). */
export function denortProblem(path: string | undefined): string | undefined {
  if (path === undefined || path === "") return undefined;
  try {
    if (Deno.statSync(path).isFile) return undefined;
    return `DENORT_BIN=${path} is not a file`;
  } catch (e) {
    return `DENORT_BIN=${path}: ${
      e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message
    }`;
  }
}

/** Runs the tool; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  let v;
  try {
    v = parseArgs({
      args: argv,
      options: {
        out: { type: "string" },
        target: { type: "string" },
        timeout: { type: "string" },
        "relay-host": { type: "string", multiple: true },
        "relay-bind": { type: "string" },
        only: { type: "string" },
        "dry-run": { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }).values;
  } catch (e) {
    console.error((e as Error).message);
    return 2;
  }
  if (v.help) {
    console.log(
      "deno task compile [--out DIR (default dist)] [--target TRIPLE] [--timeout S]\n" +
        "                  [--relay-host HOST:PORT]... [--relay-bind ADDR:PORT] [--only NAME,...] [--dry-run]\n" +
        "  --relay-host  the relay's public host:port, added to the bank's and customer's --allow-net\n" +
        "                (repeatable; default $RELAY_HOST, comma-separated; without it: loopback only)\n" +
        "  --relay-bind  address:port the relay binary may listen on besides loopback\n" +
        "  --only        build only these of relay,bank,customer (comma-separated; default all three)\n" +
        "  --dry-run     print the deno compile commands (with their permission flags) and stop\n" +
        "Each binary is then run with --help and must print our help, or the build fails.\n" +
        "Offline: DENORT_BIN=/path/to/denort (a denort of this Deno version, not the deno binary).",
    );
    return 0;
  }
  let relayHosts: string[];
  let relayBind: string | undefined;
  try {
    relayHosts = [
      ...(v["relay-host"] ?? []),
      ...(v["relay-host"]
        ? []
        : (Deno.env.get("RELAY_HOST") ?? "").split(",").filter(Boolean)),
    ].map((h) => hostPort(h, "--relay-host"));
    relayBind = v["relay-bind"] === undefined
      ? undefined
      : hostPort(v["relay-bind"], "--relay-bind");
  } catch (e) {
    console.error((e as Error).message);
    return 2;
  }
  const names: string[] = TARGETS.map((t) => t.name);
  const only = v.only === undefined
    ? names
    : v.only.split(",").map((n) => n.trim()).filter(Boolean);
  const unknown = only.filter((n) => !names.includes(n));
  if (only.length === 0 || unknown.length > 0) {
    console.error(
      `--only takes some of ${names.join(",")} (got '${v.only}')`,
    );
    return 2;
  }
  const targets = TARGETS.filter((t) => only.includes(t.name));
  const out = (v.out ?? "dist").replace(/\/+$/, "");
  const timeoutS = Number(v.timeout ?? DEFAULT_TIMEOUT_S);
  if (!(timeoutS > 0)) {
    console.error("--timeout must be a positive number of seconds");
    return 2;
  }
  if (
    !v["dry-run"] &&
    Deno.permissions.querySync({ name: "write", path: out }).state !== "granted"
  ) {
    console.error(
      `--out ${out}: no write permission; the task grants dist/ only (add --allow-write=${out})`,
    );
    return 2;
  }
  const denort = denortProblem(Deno.env.get("DENORT_BIN"));
  if (denort !== undefined && !v["dry-run"]) {
    console.error(
      `${denort}. Point it at a denort binary of Deno ${Deno.version.deno} for the target ` +
        "(or unset it to download one from dl.deno.land).",
    );
    return 2;
  }
  const root = new URL("../", import.meta.url).pathname;
  const denoJson = await Deno.readTextFile(`${root}deno.json`);
  const existed = await Deno.stat(out).then(() => true, () => false);
  if (!v["dry-run"]) await Deno.mkdir(out, { recursive: true });
  for (const t of targets) {
    const extra = t.name === "relay"
      ? (relayBind ? [relayBind] : [])
      : relayHosts;
    const flags = grantNet(taskFlags(denoJson, t.task, t.entry), extra);
    const suffix = v.target?.includes("windows") ? ".exe" : "";
    const args = [
      "compile",
      ...flags,
      ...(v.target ? ["--target", v.target] : []),
      "--output",
      `${out}/${t.name}${suffix}`,
      `${root}${t.entry}`,
    ];
    console.log(
      `compiling ${t.name}: deno ${args.slice(0, -1).join(" ")} ${t.entry}`,
    );
    if (v["dry-run"]) continue;
    const r = await compileOne(args, timeoutS * 1000);
    if (r.offline) {
      console.error(offlineMessage(r.output));
      if (!existed) await Deno.remove(out).catch(() => {}); // only if still empty
      return 3;
    }
    if (r.code !== 0) {
      console.error(`deno compile failed for ${t.name}:\n${r.output.trim()}`);
      return 1;
    }
    if (v.target === undefined) {
      const binary = `${out}/${t.name}${suffix}`;
      const wrong = await smokeTest(binary, t.help);
      if (wrong !== undefined) {
        // Not removed here: Deno denies writing to a path this tool may run.
        console.error(`${wrong}. Do not ship ${binary}: delete it.`);
        return 1;
      }
    }
  }
  if (v["dry-run"]) return 0;
  console.log(
    `built ${targets.map((t) => `${out}/${t.name}`).join(", ")}` +
      (v.target === undefined
        ? " (each one's --help checked)"
        : ` (for ${v.target}: not run here)`),
  );
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
