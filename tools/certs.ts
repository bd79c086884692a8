/**
 * Local TLS material for the relay: a CA (`ca.pem`, `ca-key.pem`) and a relay
 * certificate it signs (`relay.pem`, `relay-key.pem`), generated with
 * WebCrypto (no openssl needed). Existing files are never overwritten without
 * `force`. Also a CLI (`deno task certs`):
 *
 * ```sh
 * deno run --allow-read=certs --allow-write=certs tools/certs.ts [--dir DIR] [--host NAME]... [--force]
 * ```
 * @module
 */

import { parseArgs } from "node:util";
import {
  PRIVATE_FILE_MODE,
  PUBLIC_FILE_MODE,
  writeFileAtomic,
} from "../lib/deno/atomic_file.ts";
import {
  certificateFingerprint,
  generateCertificateAuthority,
  issueServerCertificate,
  parseHost,
} from "../lib/x509.ts";

/** Default output directory (relative to the working directory). */
export const DEFAULT_CERTS_DIR = "certs";
/** Names every relay certificate covers; `--host` adds to these. */
export const DEFAULT_HOSTS: readonly string[] = [
  "localhost",
  "127.0.0.1",
  "::1",
];
/** File names inside the certificate directory. */
export const CERT_FILES = {
  ca: "ca.pem",
  caKey: "ca-key.pem",
  cert: "relay.pem",
  key: "relay-key.pem",
} as const;

/** Exit status for bad command-line usage. */
const EXIT_USAGE = 2;
/** Exit status for a failure while running. */
const EXIT_FAILURE = 1;

const USAGE = `Usage: deno task certs [--dir DIR] [--host NAME]... [--force]

Writes a local CA (ca.pem, ca-key.pem) and a relay certificate signed by it
(relay.pem, relay-key.pem) for localhost, 127.0.0.1, ::1 and any --host names.

  --dir DIR     output directory (default: ${DEFAULT_CERTS_DIR})
  --host NAME   extra DNS name or IP address for the relay certificate (repeatable)
  --force       replace existing files (clients must then trust the new ca.pem)
  -h, --help    show this help`;

/** Options for {@link ensureCerts}. */
export interface EnsureCertsOptions {
  /** Directory for the four files; created if missing. */
  dir: string;
  /** Extra SAN names or IPs besides {@link DEFAULT_HOSTS}. */
  hosts?: string[];
  /** Regenerate all four files even if some or all exist. */
  force?: boolean;
  /** Issue time (tests). Default: now. */
  now?: Date;
}

/** Where the four files live. */
export interface CertPaths {
  /** The directory as given. */
  dir: string;
  /** CA certificate (public; clients trust it). */
  caPath: string;
  /** CA private key (secret, 0600). */
  caKeyPath: string;
  /** Relay certificate (public). */
  certPath: string;
  /** Relay private key (secret, 0600). */
  keyPath: string;
}

/** Result of {@link ensureCerts}. */
export interface EnsureCertsResult extends CertPaths {
  /** True when new files were written, false when all four already existed. */
  generated: boolean;
  /** Paths written, in order (empty when nothing was generated). */
  written: string[];
}

/** Paths of the four certificate files in `dir`. */
export function certPaths(dir: string): CertPaths {
  const base = dir.replace(/[\\/]+$/, "") || dir;
  const join = (name: string) => `${base}/${name}`;
  return {
    dir,
    caPath: join(CERT_FILES.ca),
    caKeyPath: join(CERT_FILES.caKey),
    certPath: join(CERT_FILES.cert),
    keyPath: join(CERT_FILES.key),
  };
}

/**
 * Generates the CA and relay certificate into `opts.dir` unless all four files
 * exist. Throws if only some exist (naming them) unless `force`, which
 * regenerates all four. Throws `RangeError` on an invalid host.
 */
export async function ensureCerts(
  opts: EnsureCertsOptions,
): Promise<EnsureCertsResult> {
  const hosts = uniqueHosts([...DEFAULT_HOSTS, ...(opts.hosts ?? [])]);
  const paths = certPaths(opts.dir);
  const all = [paths.caPath, paths.caKeyPath, paths.certPath, paths.keyPath];
  const existing = await existingPaths(all);
  if (!opts.force && existing.length === all.length) {
    return { ...paths, generated: false, written: [] };
  }
  if (!opts.force && existing.length > 0) {
    const found = existing.join(", ");
    const missing = all.filter((p) => !existing.includes(p)).join(", ");
    throw new Error(
      `incomplete certificate set in ${opts.dir}: found ${found} but missing ${missing}; ` +
        "refusing to mix old and new files (use --force to regenerate all four)",
    );
  }
  await Deno.mkdir(opts.dir, { recursive: true });
  const ca = await generateCertificateAuthority({ now: opts.now });
  const relay = await issueServerCertificate(ca, { hosts, now: opts.now });
  const files: [string, string, number][] = [
    [paths.caKeyPath, ca.keyPem, PRIVATE_FILE_MODE],
    [paths.caPath, ca.certPem, PUBLIC_FILE_MODE],
    [paths.keyPath, relay.keyPem, PRIVATE_FILE_MODE],
    [paths.certPath, relay.certPem, PUBLIC_FILE_MODE],
  ];
  for (const [path, pem, mode] of files) {
    await writeFileAtomic(path, pem, mode, { overwrite: opts.force === true });
  }
  return { ...paths, generated: true, written: files.map(([path]) => path) };
}

/** Drops hosts that name the same SAN entry (case, brackets, IPv6 spelling). */
function uniqueHosts(hosts: string[]): string[] {
  const seen = new Set<string>();
  return hosts.filter((host) => {
    const san = parseHost(host);
    const key = san.type === "dns"
      ? `dns:${san.name}`
      : `ip:${san.address.toHex()}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

async function existingPaths(paths: string[]): Promise<string[]> {
  const found: string[] = [];
  for (const path of paths) {
    try {
      await Deno.lstat(path);
      found.push(path);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  return found;
}

// ---------------------------------------------------------------- CLI

interface CliArgs {
  dir: string;
  hosts: string[];
  force: boolean;
  help: boolean;
}

function parseCli(args: string[]): CliArgs {
  const { values } = parseArgs({
    args,
    options: {
      dir: { type: "string", default: DEFAULT_CERTS_DIR },
      host: { type: "string", multiple: true, default: [] },
      force: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.dir === "") throw new TypeError("--dir needs a directory");
  return {
    dir: values.dir,
    hosts: values.host,
    force: values.force,
    help: values.help,
  };
}

async function describe(path: string, pem: string): Promise<string> {
  if (path.endsWith(`/${CERT_FILES.ca}`)) {
    return `CA certificate, SHA-256 ${await certificateFingerprint(pem)}`;
  }
  if (path.endsWith(`/${CERT_FILES.cert}`)) return "relay certificate";
  return `private key, mode ${PRIVATE_FILE_MODE.toString(8).padStart(4, "0")}`;
}

/** Runs the CLI with `args`; returns the exit status. */
export async function main(args: string[]): Promise<number> {
  let cli: CliArgs;
  try {
    cli = parseCli(args);
    cli.hosts.forEach(parseHost);
  } catch (e) {
    console.error(
      `certs: ${e instanceof Error ? e.message : String(e)}\n\n${USAGE}`,
    );
    return EXIT_USAGE;
  }
  if (cli.help) {
    console.log(USAGE);
    return 0;
  }
  try {
    const result = await ensureCerts({
      dir: cli.dir,
      hosts: cli.hosts,
      force: cli.force,
    });
    if (!result.generated) return reportExisting(result, cli.hosts);
    for (const path of result.written) {
      console.log(
        `wrote ${path} (${await describe(
          path,
          await Deno.readTextFile(path),
        )})`,
      );
    }
    return 0;
  } catch (e) {
    console.error(`certs: ${e instanceof Error ? e.message : String(e)}`);
    return EXIT_FAILURE;
  }
}

function reportExisting(result: EnsureCertsResult, hosts: string[]): number {
  const names = Object.values(CERT_FILES).join(", ");
  if (hosts.length > 0) {
    console.error(
      `certs: ${result.dir} already has ${names}; --host names are added only when generating. ` +
        `Use --force to regenerate (clients must then trust the new ${result.caPath}).`,
    );
    return EXIT_FAILURE;
  }
  console.log(
    `${result.dir} already has ${names}; nothing written (use --force to regenerate)`,
  );
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
