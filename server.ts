/**
 * The relay entry point: `deno task relay [flags]`. Parses flags, makes sure
 * a certificate exists (generating a local CA and relay certificate into
 * `certs/` on first start), starts the relay and shuts it down gracefully on
 * SIGINT/SIGTERM. All relay logic lives in lib/deno/relay_server.ts.
 * @module
 */

import { X509Certificate } from "node:crypto";
import { parseArgs } from "node:util";
import {
  DEFAULT_BURST,
  DEFAULT_HEADER_TIMEOUT_MS,
  DEFAULT_HIGH_WATER,
  DEFAULT_IDLE_TIMEOUT_S,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_FRAME,
  DEFAULT_MAX_UNAUTH_PER_IP,
  DEFAULT_PORT,
  DEFAULT_RATE,
  DEFAULT_REGISTER_TIMEOUT_MS,
  DEFAULT_TLS_TIMEOUT_MS,
} from "./lib/constants.ts";
import { parsePublicOrigin } from "./lib/http_head.ts";
import { startRelay } from "./lib/deno/relay_server.ts";
import {
  attachRelay,
  ClusterBus,
  NODE_NAME_PATTERN,
} from "./lib/deno/cluster_bus.ts";
import { parseRedisUrl } from "./lib/deno/redis_client.ts";
import { certPaths, DEFAULT_CERTS_DIR, ensureCerts } from "./tools/certs.ts";

const HELP = `deno task relay [flags]   — TLS WebSocket relay (PROTOCOL.md §1)

  --host ADDR            address to bind (default 127.0.0.1)
  --port N               port 0-65535 (default ${DEFAULT_PORT}; 0 = any free port)
  --cert FILE            certificate chain PEM, leaf first (default certs/relay.pem; generated
                         when missing; a CA certificate is refused)
  --key FILE             private key PEM (default certs/relay-key.pem)
  --name HOST            extra host name clients use to reach the relay (repeatable;
                         also added to a generated certificate)
  --public-origin URL    wss://host[:port] clients use when a reverse proxy is in front
                         (repeatable): accepted as Host and as the signed registration origin
  --allow-origin ORIGIN  browser origin (https://bank.example) allowed to open WebSockets
                         (repeatable); a request with another Origin gets 403, one without
                         Origin (CLI clients) is accepted
  --metrics-port N       serve /metrics on http://127.0.0.1:N only (0 = any free port;
                         default: no metrics listener; /metrics is never on the public port)
  --max-frame BYTES      largest frame, header included (default ${DEFAULT_MAX_FRAME})
  --max-connections N    simultaneous connections (default ${DEFAULT_MAX_CONNECTIONS})
  --rate N               frames/s per connection (default ${DEFAULT_RATE})
  --burst N              token-bucket burst per connection (default ${DEFAULT_BURST})
  --high-water BYTES     per-recipient send buffer cap → peer-busy (default ${DEFAULT_HIGH_WATER})
  --idle-timeout S       ping/idle timeout in seconds, 0 disables (default ${DEFAULT_IDLE_TIMEOUT_S})
  --register-timeout MS  time allowed to register after the upgrade (default ${DEFAULT_REGISTER_TIMEOUT_MS})
  --tls-timeout MS       time allowed for the TLS handshake (default ${DEFAULT_TLS_TIMEOUT_MS})
  --header-timeout MS    time allowed for the HTTP request head (default ${DEFAULT_HEADER_TIMEOUT_MS})
  --max-unauth-per-ip N  unregistered connections per client IP (default ${DEFAULT_MAX_UNAUTH_PER_IP};
                         behind a proxy every client has the proxy's IP: raise it)
  --cluster redis://HOST:PORT
                         cluster mode: forward to the other relay nodes over this Redis
                         (sharded pub/sub; PROTOCOL.md §1.8). Needs --node. A Redis that is
                         not on loopback needs --allow-net for it (see README, Cluster)
  --node NAME            this node's name in the cluster (letters, digits, . _ -)
  --quiet                no per-connection log lines
  -h, --help             this help`;

function intFlag(
  name: string,
  value: string | undefined,
  fallback: number,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new RangeError(
      max === Number.MAX_SAFE_INTEGER
        ? `--${name} must be an integer ≥ ${min} (got '${value}')`
        : `--${name} must be an integer from ${min} to ${max} (got '${value}')`,
    );
  }
  return n;
}

/** Why `pem` (a chain, leaf first) cannot be a relay's own certificate, or undefined. */
function notAServerCertificate(pem: string): string | undefined {
  const first = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/
    .exec(pem)?.[0];
  if (first === undefined) return "it holds no PEM certificate";
  try {
    if (new X509Certificate(first).ca) {
      return "it is a CA certificate (basicConstraints CA:TRUE), not a server certificate: " +
        "clients would refuse it at the TLS handshake. Give the relay certificate the CA issued " +
        "(deno task certs writes certs/relay.pem and certs/relay-key.pem)";
    }
  } catch (e) {
    return `it is not a valid certificate (${(e as Error).message})`;
  }
  return undefined;
}

/** The cluster bus from --cluster/--node, or an exit code after a clear message. */
async function makeCluster(
  url: string | undefined,
  node: string | undefined,
  maxFrame: string | undefined,
): Promise<ClusterBus | number> {
  if (url === undefined || node === undefined) {
    console.error(
      "relay: cluster mode needs both --cluster redis://HOST:PORT and --node NAME",
    );
    return 2;
  }
  if (!NODE_NAME_PATTERN.test(node)) {
    console.error(
      `relay: --node must be 1-64 letters, digits, '.', '_' or '-' (got '${node}')`,
    );
    return 2;
  }
  let target;
  try {
    target = parseRedisUrl(url);
  } catch (e) {
    console.error(`relay: --cluster: ${(e as Error).message}`);
    return 2;
  }
  const host = target.hostname.includes(":")
    ? `[${target.hostname}]`
    : target.hostname;
  const perm = await Deno.permissions.query({
    name: "net",
    host: `${host}:${target.port}`,
  });
  if (perm.state !== "granted") {
    console.error(
      `relay: not permitted to connect to Redis at ${host}:${target.port}.\n` +
        `Add it to the relay's network grant, e.g.\n` +
        `  deno run --v8-flags=--max-semi-space-size=1 --allow-net=127.0.0.1,localhost,[::1],${host}:${target.port} --allow-read=certs --allow-write=certs server.ts ...`,
    );
    return 1;
  }
  return new ClusterBus({
    url,
    node,
    maxFrame: Number(maxFrame ?? DEFAULT_MAX_FRAME) || DEFAULT_MAX_FRAME,
    log: (line) => console.error(`${new Date().toISOString()} ${line}`),
  });
}

async function main(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        host: { type: "string" },
        port: { type: "string" },
        cert: { type: "string" },
        key: { type: "string" },
        name: { type: "string", multiple: true },
        "public-origin": { type: "string", multiple: true },
        "allow-origin": { type: "string", multiple: true },
        "metrics-port": { type: "string" },
        "tls-timeout": { type: "string" },
        "header-timeout": { type: "string" },
        "max-unauth-per-ip": { type: "string" },
        "max-frame": { type: "string" },
        "max-connections": { type: "string" },
        rate: { type: "string" },
        burst: { type: "string" },
        "high-water": { type: "string" },
        "idle-timeout": { type: "string" },
        "register-timeout": { type: "string" },
        quiet: { type: "boolean" },
        cluster: { type: "string" },
        node: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (e) {
    console.error(`relay: ${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  const v = parsed.values;
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  let cluster: ClusterBus | undefined;
  if (v.cluster !== undefined || v.node !== undefined) {
    const made = await makeCluster(v.cluster, v.node, v["max-frame"]);
    if (typeof made === "number") return made;
    cluster = made;
  }
  let options;
  try {
    options = {
      hostname: v.host ?? "127.0.0.1",
      port: intFlag("port", v.port, DEFAULT_PORT, 0, 65535),
      maxFrame: intFlag("max-frame", v["max-frame"], DEFAULT_MAX_FRAME, 64),
      maxConnections: intFlag(
        "max-connections",
        v["max-connections"],
        DEFAULT_MAX_CONNECTIONS,
        1,
      ),
      rate: intFlag("rate", v.rate, DEFAULT_RATE, 1),
      burst: intFlag("burst", v.burst, DEFAULT_BURST, 1),
      highWater: intFlag(
        "high-water",
        v["high-water"],
        DEFAULT_HIGH_WATER,
        1024,
      ),
      idleTimeoutS: intFlag(
        "idle-timeout",
        v["idle-timeout"],
        DEFAULT_IDLE_TIMEOUT_S,
        0,
      ),
      registerTimeoutMs: intFlag(
        "register-timeout",
        v["register-timeout"],
        DEFAULT_REGISTER_TIMEOUT_MS,
        100,
      ),
      tlsTimeoutMs: intFlag(
        "tls-timeout",
        v["tls-timeout"],
        DEFAULT_TLS_TIMEOUT_MS,
        50,
      ),
      headerTimeoutMs: intFlag(
        "header-timeout",
        v["header-timeout"],
        DEFAULT_HEADER_TIMEOUT_MS,
        50,
      ),
      maxUnauthPerIp: intFlag(
        "max-unauth-per-ip",
        v["max-unauth-per-ip"],
        DEFAULT_MAX_UNAUTH_PER_IP,
        1,
      ),
      metricsPort: v["metrics-port"] === undefined
        ? undefined
        : intFlag("metrics-port", v["metrics-port"], 0, 0, 65535),
      names: v.name ?? [],
      publicOrigins: (v["public-origin"] ?? []).map((o) => {
        try {
          return parsePublicOrigin(o).origin;
        } catch (e) {
          throw new RangeError(`--public-origin: ${(e as Error).message}`);
        }
      }),
      allowOrigins: (v["allow-origin"] ?? []).map((o) => {
        if (!/^https?:\/\/[^/\s]+$/i.test(o)) {
          throw new RangeError(
            `--allow-origin must be scheme://host[:port] as browsers send it (got '${o}')`,
          );
        }
        return o;
      }),
      quiet: v.quiet ?? false,
      remote: cluster,
    };
  } catch (e) {
    console.error(`relay: ${(e as Error).message}`);
    return 2;
  }

  const defaults = certPaths(DEFAULT_CERTS_DIR);
  const certFile = v.cert ?? defaults.certPath;
  const keyFile = v.key ?? defaults.keyPath;
  let cert: string, key: string;
  try {
    if (v.cert === undefined && v.key === undefined) {
      const extra = [...options.names];
      if (
        !["127.0.0.1", "::1", "localhost", "0.0.0.0", "::"].includes(
          options.hostname,
        )
      ) {
        extra.push(options.hostname);
      }
      const r = await ensureCerts({ dir: DEFAULT_CERTS_DIR, hosts: extra });
      if (r.generated) {
        console.error(
          `relay: no certificate found: generated a local CA and relay certificate in ${DEFAULT_CERTS_DIR}/ (clients trust ${r.caPath})`,
        );
      }
    }
    cert = await Deno.readTextFile(certFile);
    key = await Deno.readTextFile(keyFile);
  } catch (e) {
    console.error(
      `relay: cannot load certificate/key (${certFile}, ${keyFile}): ${
        (e as Error).message
      }`,
    );
    return 1;
  }
  const badCert = notAServerCertificate(cert);
  if (badCert !== undefined) {
    console.error(`relay: refusing --cert ${certFile}: ${badCert}`);
    return 1;
  }

  let relay;
  try {
    relay = await startRelay({ ...options, cert, key });
  } catch (e) {
    const msg = (e as Error).message;
    if (
      e instanceof Deno.errors.NotCapable ||
      e instanceof Deno.errors.PermissionDenied
    ) {
      console.error(
        `relay: not permitted to listen on ${options.hostname}:${options.port} (${msg}).\n` +
          `The relay task only grants loopback; for other addresses run\n` +
          `  deno run --v8-flags=--max-semi-space-size=1 --allow-net=${options.hostname}:${options.port},127.0.0.1 --allow-read=certs --allow-write=certs server.ts ...\n` +
          `(127.0.0.1: --metrics-port)`,
      );
    } else if (e instanceof Deno.errors.AddrInUse) {
      console.error(
        `relay: cannot start: port ${options.port}${
          options.metricsPort
            ? ` (or --metrics-port ${options.metricsPort})`
            : ""
        } on ${options.hostname} is already in use ` +
          `(another relay running?); stop it or choose another port with --port N`,
      );
    } else {
      console.error(`relay: cannot start: ${msg}`);
    }
    return 1;
  }
  // The bus reaches local connections through the relay handle, then connects.
  if (cluster) attachRelay(cluster, relay);
  cluster?.start();
  // Signal handlers before the "listening" line: whoever waits for it may stop us at once.
  // Once: a second signal (Ctrl-C twice, SIGTERM after SIGINT) waits for the same shutdown.
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    console.error(
      "relay: shutting down (closing every connection with 1001 going away)",
    );
    relay.shutdown().then(() => Deno.exit(0));
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  const shown = relay.hostname.includes(":")
    ? `[${relay.hostname}]`
    : relay.hostname;
  console.error(
    `relay: listening on wss://${shown}:${relay.port}/ws (health /healthz; ${
      relay.metricsPort === undefined
        ? "metrics off: --metrics-port N"
        : `metrics http://127.0.0.1:${relay.metricsPort}/metrics`
    })${cluster ? `, cluster node ${cluster.node} via ${v.cluster}` : ""}`,
  );

  await relay.finished;
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
