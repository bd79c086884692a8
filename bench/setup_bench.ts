/**
 * Session set-up costs (issue 12), in this process with no network, for two
 * providers in the same run:
 *
 * - `node`: what the Deno clients run (`--crypto keys|fast`): transcript
 *   SHA-256, HKDF, HMAC, handshake AES-GCM, X25519 ephemerals and DH,
 *   Ed25519 signatures and their checks in node:crypto
 *   (lib/deno/node_primitives.ts); P-256 ephemerals, DH, signatures and
 *   their checks in WebCrypto (cheaper there). The targets are judged on
 *   these rows.
 * - `webcrypto`: the key schedule, MACs, handshake AEAD and signatures in
 *   WebCrypto (the lib default, as a browser runs it; transcript SHA-256 still
 *   via node:crypto, as the clients did before): the baseline.
 *
 * - full handshakes (HS1 → HS2 → HS3, both sides' work) per second for each
 *   suite and provider: one at a time, and 16 in flight; "per core" =
 *   handshakes per second of this process's CPU time (user + system,
 *   getrusage) in the 16-in-flight run — the median of
 *   {@link PER_CORE_WINDOWS} windows — against ≥ 250 (P-256) and ≥ 1,500
 *   (X25519 + Ed25519);
 * - the safety number for a new peer (lib/fingerprint.ts, own half cached):
 *   process CPU ms per new peer key, against ≤ 5 ms (wall-clock p50/max
 *   shown too: on a loaded machine they include waiting for a core);
 * - the floor: each public-key operation a handshake cannot do without
 *   (per side: generate the ephemeral, DH with the peer's, sign, verify),
 *   timed alone on the path the node provider takes, × 2 sides — the most
 *   handshakes per CPU-second this runtime allows before any hashing, AEAD,
 *   key schedule or state machine; the rest of a handshake is the
 *   difference.
 *
 * `deno task bench` runs this module in a fresh subprocess with no
 * permissions ({@link measureSetupSubprocess}): measured inside the bench
 * process, after the relay, memory and e2e sections have grown its heap to
 * ~1 GB, every handshake's garbage paid for collections of that heap (X25519
 * per core 1,171–1,222/s there against 1,405–1,607/s in a fresh process,
 * same machine, same hour), which is the bench's cost, not a handshake's.
 *
 * Run alone: `deno run bench/setup_bench.ts [ms]` (prints the JSON).
 * @module
 */

import { Initiator, Responder } from "../lib/handshake.ts";
import type { HandshakeResult } from "../lib/handshake_result.ts";
import { safetyNumber } from "../lib/fingerprint.ts";
import { generateIdentity, type Identity } from "../lib/identity.ts";
import {
  importSecret,
  sign,
  SUITE_P256,
  SUITE_X25519,
  SUITES,
  verify,
} from "../lib/suite.ts";
import { sharedSecret, transcript } from "../lib/handshake_keys.ts";
import {
  nodeHandshakePrimitives,
  nodeHashPrimitives,
} from "../lib/deno/node_primitives.ts";
import type { SessionPrimitives } from "../lib/primitives.ts";
import process from "node:process";

/** Handshakes per core-second targets per suite. */
export const HANDSHAKE_TARGETS: Readonly<Record<number, number>> = {
  [SUITE_P256]: 250,
  [SUITE_X25519]: 1500,
};
/** Safety number for a new peer: at most this many ms. */
export const SAFETY_NUMBER_TARGET_MS = 5;
/** Handshakes in flight in the pipelined run. */
const IN_FLIGHT = 16;
/**
 * Windows of the pipelined run: the per-core rate is the median of the
 * windows' rates (CPU time per window from getrusage, µs resolution), so one
 * burst of other load on the shared cores does not decide it; every
 * window's rate is kept in the JSON.
 */
export const PER_CORE_WINDOWS = 5;
/** New peer keys in the safety-number run (CPU time is read at 10 ms resolution: 100 × ~1.5 ms). */
const SAFETY_PEERS = 100;

/** One suite's figures. */
export interface SuiteFigures {
  /** Wire id. */
  suite: number;
  /** `--suites` name. */
  name: string;
  /** Handshake provider: "node" (the clients') or "webcrypto" (baseline). */
  provider: string;
  /** Handshakes/s, one at a time (wall clock). */
  sequentialPerSec: number;
  /** Handshakes/s, 16 in flight (wall clock). */
  pipelinedPerSec: number;
  /**
   * Handshakes per second of process CPU time (16 in flight): the per-core
   * rate, the median of {@link PER_CORE_WINDOWS} windows' rates.
   */
  perCoreSec: number;
  /** Each window's handshakes per CPU-second, in order (absent in JSON from before 2026-12-03). */
  perCoreWindows?: number[];
  /** Target (per core). */
  target: number;
  /** perCoreSec ≥ target. */
  met: boolean;
  /** perCoreSec − target. */
  margin: number;
}

/** One suite's floor: CPU µs of each mandatory public-key operation on the node provider's path. */
export interface FloorFigures {
  /** Wire id. */
  suite: number;
  /** `--suites` name. */
  name: string;
  /** Ephemeral key generation (with the export of its public key). */
  generateUs: number;
  /** DH with a peer's wire public key (its validation and import included). */
  dhUs: number;
  /** Identity signature over a transcript hash. */
  signUs: number;
  /** Check of a peer's signature (its key already imported). */
  verifyUs: number;
  /** 2 × (generate + DH + sign + verify): one handshake, both sides. */
  publicKeyUs: number;
  /** One side's transcript hashes, key schedule, MACs, AEAD and master import, × 2. */
  symmetricUs: number;
  /** publicKeyUs + symmetricUs. */
  perHandshakeUs: number;
  /** 1e6 / perHandshakeUs: the most handshakes per CPU-second these primitive calls allow. */
  ceilingPerSec: number;
}

/** What {@link measureSetup} returns. */
export interface SetupFigures {
  /** One entry per suite. */
  suites: SuiteFigures[];
  /** The floor of each suite (see the module doc). */
  floor: FloorFigures[];
  /** Safety number for a new peer (own half cached). */
  safetyNumber: {
    /** Peers measured. */
    peers: number;
    /** Process CPU ms per new peer (the cost; PBKDF2 runs on a WebCrypto worker thread of this process). */
    cpuMsPerPeer: number;
    /** Median wall-clock ms per new peer (includes waiting for a loaded machine). */
    p50Ms: number;
    /** Slowest, wall clock. */
    maxMs: number;
    /** Target (ms). */
    targetMs: number;
    /** cpuMsPerPeer ≤ targetMs. */
    met: boolean;
    /** targetMs − cpuMsPerPeer. */
    marginMs: number;
  };
}

const idA = new Uint8Array(16).fill(1);
const idB = new Uint8Array(16).fill(2);
const complete = (r: HandshakeResult) => r;
const trust = () => "ok" as const;

/** The providers compared (see the module doc); the targets judge "node". */
const PROVIDERS: [string, SessionPrimitives][] = [
  ["webcrypto", { ...nodeHashPrimitives, handshake: undefined }],
  ["node", nodeHashPrimitives],
];

async function handshake(
  a: Identity,
  b: Identity,
  primitives: SessionPrimitives,
): Promise<void> {
  const sessionOptions = { primitives };
  const { handshake: hi, message: hs1 } = await Initiator.start({
    identity: a,
    localId: idA,
    peerId: idB,
    now: 0,
    trust,
    complete,
    sessionOptions,
  });
  const hr = Responder.create({
    identity: b,
    localId: idB,
    trust,
    complete,
    sessionOptions,
  });
  const { send: hs2 } = await hr.receive(hs1, { now: 0, from: idA });
  const { send: hs3 } = await hi.receive(hs2!, 0);
  const { session } = await hr.receive(hs3, { now: 0 });
  if (!session) throw new Error("no session");
}

/** Runs `inFlight` handshakes at a time for `ms`; returns count, wall s and CPU s. */
async function rate(
  a: Identity,
  b: Identity,
  p: SessionPrimitives,
  inFlight: number,
  ms: number,
): Promise<{ n: number; wallS: number; cpuS: number }> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const end = t0 + ms;
  let n = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() < end) {
        await handshake(a, b, p);
        n++;
      }
    }),
  );
  const wallS = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const cpuS = (cpu.user + cpu.system) / 1e6;
  return { n, wallS, cpuS };
}

/** The median of `v` (mean of the middle two when even). */
export function median(v: number[]): number {
  const s = [...v].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Windows per floor measurement: the least CPU per call among them is kept. */
const FLOOR_WINDOWS = 5;

/**
 * CPU µs per call of `op` with {@link IN_FLIGHT} calls in flight (as the
 * handshake rows): the least of {@link FLOOR_WINDOWS} windows of about `ms`
 * each (other load on the machine only ever adds CPU time per call, so the
 * least is the closest to the operation's own cost). Process CPU time from
 * getrusage (all threads, µs resolution).
 */
async function cpuPerCall(
  op: () => unknown,
  ms: number,
): Promise<number> {
  for (let i = 0; i < 5; i++) await op(); // warm-up
  let least = Infinity;
  for (let w = 0; w < FLOOR_WINDOWS; w++) {
    const cpu0 = process.cpuUsage();
    const end = performance.now() + ms;
    let n = 0;
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (n < 20 || performance.now() < end) {
          await op();
          n++;
        }
      }),
    );
    const cpu = process.cpuUsage(cpu0);
    least = Math.min(least, (cpu.user + cpu.system) / n);
  }
  return least;
}

/** The floor of `suite` (see {@link FloorFigures}); each operation timed in windows of `ms`. */
async function measureFloor(suite: number, ms: number): Promise<FloorFigures> {
  const info = SUITES.get(suite)!;
  const p = nodeHandshakePrimitives;
  const id = await generateIdentity(info.identityAlgorithm);
  const data = new Uint8Array(27 + 32); // context ‖ transcript hash
  const signature = p.sign(id.privateKey, data) ??
    await sign(id.privateKey, data);
  const own = (await p.generateEphemeral(suite))!;
  const peer = (await p.generateEphemeral(suite))!.publicRaw;
  const generateUs = await cpuPerCall(() => p.generateEphemeral(suite), ms);
  const dhUs = await cpuPerCall(() => sharedSecret(own, suite, peer), ms);
  const signUs = await cpuPerCall(
    () => p.sign(id.privateKey, data) ?? sign(id.privateKey, data),
    ms,
  );
  const verifyUs = await cpuPerCall(async () => {
    const ok = p.verify(id.spki, signature, data) ??
      await verify(id.publicKey, signature, data); // as checkProof
    if (!ok) throw new Error("floor: signature does not verify");
  }, ms);
  const publicKeyUs = 2 * (generateUs + dhUs + signUs + verifyUs);
  const symmetricUs = 2 * await cpuPerCall(symmetricSide(), ms);
  const perHandshakeUs = publicKeyUs + symmetricUs;
  return {
    suite,
    name: info.flag,
    generateUs,
    dhUs,
    signUs,
    verifyUs,
    publicKeyUs,
    symmetricUs,
    perHandshakeUs,
    ceilingPerSec: 1e6 / perHandshakeUs,
  };
}

/**
 * One side's symmetric calls on the node provider, in a row, on 234-byte
 * messages (both suites' HS1/HS3 size): the transcript after HS1 ‖ prefix,
 * th_hello, four handshake keys (one HKDF extract, four expands), own proof (2 transcript hashes, HMAC,
 * seal), the peer's (open, 2 transcript hashes, HMAC), th_final, the master
 * (HKDF + import as a CryptoKey).
 */
function symmetricSide(): () => Promise<unknown> {
  const p = nodeHandshakePrimitives;
  const [prologue, hs1, prefix, sealedTail, hs3] = [77, 234, 69, 165, 234]
    .map((n) => crypto.getRandomValues(new Uint8Array(n)));
  const spki = new Uint8Array(44), signature = new Uint8Array(64);
  const nonce = new Uint8Array(12), proof = new Uint8Array(148);
  const info = new Uint8Array(31); // HKDF info ‖ 0x01
  const peerKey = new Uint8Array(32);
  const peerSealed = p.seal(peerKey, nonce, proof, prefix);
  return async () => {
    const shared = crypto.getRandomValues(new Uint8Array(32));
    const t = transcript(prologue, undefined, p).with(hs1, prefix);
    const thHello = await t.hash();
    const hkdf = p.hkdfFrom(shared); // the master's key object
    const prk = p.hmac(thHello, shared); // HKDF extract, once for the four keys
    const expander = p.hmacKey!(prk);
    const keys = [0, 1, 2, 3].map(() => expander.mac(info)); // one expand each
    expander.wipe();
    const own = t.with(spki);
    await own.hash();
    p.hmac(keys[2], await own.hash(signature));
    p.seal(keys[0], nonce, proof, prefix);
    if (p.open(peerKey, nonce, peerSealed, prefix) === null) {
      throw new Error("floor: open failed");
    }
    const peer = t.with(spki);
    await peer.hash();
    p.hmac(keys[3], await peer.hash(signature));
    const final = await t.with(sealedTail).hash(hs3);
    await importSecret(hkdf(final, info, 32));
  };
}

/** Measures both suites' handshake rates, their floors and the safety number for new peers. */
export async function measureSetup(ms: number): Promise<SetupFigures> {
  const suites: SuiteFigures[] = [];
  const floor: FloorFigures[] = [];
  for (const suite of [SUITE_P256, SUITE_X25519]) {
    const alg = SUITES.get(suite)!.identityAlgorithm;
    const [a, b] = [await generateIdentity(alg), await generateIdentity(alg)];
    for (const [provider, p] of PROVIDERS) {
      for (let i = 0; i < 20; i++) await handshake(a, b, p); // warm-up
      const seq = await rate(a, b, p, 1, ms / 2);
      const windows: { n: number; wallS: number; cpuS: number }[] = [];
      for (let w = 0; w < PER_CORE_WINDOWS; w++) {
        windows.push(await rate(a, b, p, IN_FLIGHT, ms / PER_CORE_WINDOWS));
      }
      const par = {
        n: windows.reduce((x, w) => x + w.n, 0),
        wallS: windows.reduce((x, w) => x + w.wallS, 0),
      };
      const perCoreWindows = windows.map((w) => w.cpuS > 0 ? w.n / w.cpuS : 0);
      const perCoreSec = median(perCoreWindows);
      const target = HANDSHAKE_TARGETS[suite];
      suites.push({
        suite,
        name: SUITES.get(suite)!.flag,
        provider,
        sequentialPerSec: seq.n / seq.wallS,
        pipelinedPerSec: par.n / par.wallS,
        perCoreWindows,
        perCoreSec,
        target,
        met: perCoreSec >= target,
        margin: perCoreSec - target,
      });
    }
    floor.push(await measureFloor(suite, Math.max(50, ms / 20)));
  }
  const own = await generateIdentity();
  await safetyNumber(own.spki, (await generateIdentity()).spki); // own half cached
  const peers: Uint8Array[] = [];
  for (let i = 0; i < SAFETY_PEERS; i++) {
    peers.push((await generateIdentity(i % 2 ? "Ed25519" : undefined)).spki);
  }
  const times: number[] = [];
  const cpu0 = process.cpuUsage();
  for (const peer of peers) {
    const t = performance.now();
    await safetyNumber(own.spki, peer as typeof own.spki);
    times.push(performance.now() - t);
  }
  const sn = process.cpuUsage(cpu0);
  const cpuMsPerPeer = (sn.user + sn.system) / 1000 / SAFETY_PEERS;
  times.sort((x, y) => x - y);
  const maxMs = times[times.length - 1];
  return {
    suites,
    floor,
    safetyNumber: {
      peers: SAFETY_PEERS,
      cpuMsPerPeer,
      p50Ms: times[Math.floor(times.length / 2)],
      maxMs,
      targetMs: SAFETY_NUMBER_TARGET_MS,
      met: cpuMsPerPeer <= SAFETY_NUMBER_TARGET_MS,
      marginMs: SAFETY_NUMBER_TARGET_MS - cpuMsPerPeer,
    },
  };
}

/** Text lines for the bench's stdout. */
export function renderSetup(
  f: SetupFigures,
  table: (rows: (string | number)[][]) => string,
  fmt: (n: number) => string,
): string[] {
  const s = f.safetyNumber;
  return [
    `Session set-up (a fresh subprocess, both sides, no network; per core = handshakes per CPU-second with ${IN_FLIGHT} in flight, the median of ${PER_CORE_WINDOWS} windows, their range beside it):`,
    table([
      [
        "suite",
        "provider",
        "1 at a time/s",
        `${IN_FLIGHT} in flight/s`,
        "per core/s",
        "windows",
        "target",
        "verdict",
      ],
      ...f.suites.map((x) => [
        x.name,
        x.provider,
        x.sequentialPerSec,
        x.pipelinedPerSec,
        x.perCoreSec,
        x.perCoreWindows?.length
          ? `${fmt(Math.min(...x.perCoreWindows))}–${
            fmt(Math.max(...x.perCoreWindows))
          }`
          : "—",
        `≥ ${fmt(x.target)}`,
        `${x.met ? "MET" : "MISSED"} (${x.margin >= 0 ? "+" : ""}${
          fmt(x.margin)
        })`,
      ]),
    ]),
    "Floor: the primitive calls a handshake cannot do without, on the node provider's path (CPU µs; public-key operations each timed alone, one side's symmetric calls in a row; × 2 sides):",
    table([
      [
        "suite",
        "generate",
        "DH",
        "sign",
        "verify",
        "public-key ×2",
        "symmetric ×2",
        "per handshake µs",
        "ceiling/s",
        "node row per core/s",
        "% of ceiling",
      ],
      ...f.floor.map((x) => {
        const row = f.suites.find((r) =>
          r.suite === x.suite && r.provider === "node"
        );
        return [
          x.name,
          x.generateUs,
          x.dhUs,
          x.signUs,
          x.verifyUs,
          x.publicKeyUs,
          x.symmetricUs,
          x.perHandshakeUs,
          x.ceilingPerSec,
          row?.perCoreSec ?? "—",
          row ? `${fmt(100 * row.perCoreSec / x.ceilingPerSec)} %` : "—",
        ];
      }),
    ]),
    ...f.floor.filter((x) => x.ceilingPerSec < HANDSHAKE_TARGETS[x.suite]).map(
      (x) =>
        `${x.name}: the target (≥ ${
          fmt(HANDSHAKE_TARGETS[x.suite])
        }/s per core) is above the ceiling of its primitive calls alone (${
          fmt(x.ceilingPerSec)
        }/s): out of reach with this runtime's primitives.`,
    ),
    `Target safety number ≤ ${s.targetMs} ms per new peer (own half cached, ${s.peers} new keys, CPU time): ${
      s.met ? "MET" : "MISSED"
    } — ${fmt(s.cpuMsPerPeer)} ms CPU per peer; wall clock p50 ${
      fmt(s.p50Ms)
    } ms, max ${fmt(s.maxMs)} ms (${
      s.marginMs >= 0
        ? `${fmt(s.marginMs)} ms to spare`
        : `${fmt(-s.marginMs)} ms over`
    })`,
    "",
  ];
}

/**
 * {@link measureSetup} in a fresh `deno run` subprocess with no permissions
 * (the same Deno binary): its JSON on stdout, its stderr passed through.
 */
export async function measureSetupSubprocess(
  ms: number,
): Promise<SetupFigures> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", import.meta.filename!, String(ms)],
    stdout: "piped",
    stderr: "inherit",
    stdin: "null",
  }).output();
  if (!out.success) {
    throw new Error(`setup bench subprocess exited with ${out.code}`);
  }
  return JSON.parse(new TextDecoder().decode(out.stdout)) as SetupFigures;
}

if (import.meta.main) {
  const { runWithMs } = await import("./cli.ts");
  await runWithMs(
    "bench/setup_bench.ts",
    "deno run bench/setup_bench.ts [MS]   the session set-up figures alone, MS (default 2000) per window, JSON on stdout",
    2000,
    async (ms) => console.log(JSON.stringify(await measureSetup(ms), null, 1)),
  );
}
