/**
 * `deno task bench --only service`: the bank service's targets (issue 9 §4)
 * with real processes over the real relay (TLS on loopback): one relay
 * subprocess, one `clients/bank.ts --serve --json` subprocess, and the
 * customers simulated in this process by lib/ directly — each customer its
 * own identity, mailbox key, relay connection (its own relay ID) and
 * Conversation, speaking the real protocol to the bank (bench/service_customer.ts),
 * in this thread or spread over `workers` Worker threads of this process
 * (default {@link DEFAULT_WORKERS}; /proc CPU of this process counts them all).
 *
 * 1. memory: the bank's VmRSS (/proc/PID/status) minus its RSS with one
 *    conversation, per idle secure conversation, at each level, both once
 *    the idle bank's RSS settled ({@link settledRssKb}); the one-conversation
 *    baseline follows a warm-up (customers that set up, send and close), and
 *    every figure is also taken after a full GC (the bank's inspector).
 * 2. set-ups/s: new customers dialled with a bounded number of handshakes
 *    in flight; rate = conversations the bank reported `secure` ÷ the time
 *    from the first HS1 to the last `secure` notification (largest step),
 *    and CPU time per set-up of the bank, the relay and this process (the
 *    customers) over the step (/proc). The level customers behave as
 *    customers following the bank's `ready` address do ({@link linkPolicy}):
 *    they accept only the identities the address pins (`fp=`, and `ed=`:
 *    the bank's Ed25519 identity), and with `ed=` offer `x25519,p256` (an
 *    identity for each) and get the fast suite; an address without `ed=`
 *    gets the clients' default order `p256,x25519`. After the relay restart,
 *    one more step of `otherSetups` customers offers only the other suite
 *    (`--suites p256` beside an `ed=` address; else `--suites x25519`,
 *    pinned to the Ed25519 fingerprint of the bank's `ready` notification). The bank runs with its default
 *    `--suites p256,x25519` (it accepts both); each step's suite is the one
 *    the bank's `secure` notifications name.
 * 3. throughput: `senders` customers send `perSender` 256 B messages at once
 *    (in rounds of `batch` per send call, every sender's round before the next);
 *    aggregate = `message` notifications the bank printed ÷ time; the
 *    slowest customer's share = its rate ÷ the median customer's rate, a
 *    customer's rate being its messages ÷ the time from the phase's start
 *    to its last message's arrival (1 = all finished together, 0.5 = served
 *    one after the other in a uniform order, near 0 = starved; target
 *    ≥ {@link SERVICE_SHARE_TARGET}). The share at half-time (its count ÷
 *    the mean count when half of all messages had arrived) is kept as
 *    `shareAtHalf`: it reads 0 whenever a customer's burst travels as one
 *    record, so it does not tell starvation apart from order.
 * 4. relay restart: the relay is stopped and started on the same port; each
 *    customer reconnects and sends one message; time from the new relay
 *    listening until the bank received every customer's message (the
 *    sessions survive: the relay only forwards; what is measured is the
 *    bank and customers being back in working secure conversations).
 *
 * The simulated customers all live in one process, so its heap holds
 * ~10,000 of them (300–490 MB): `deno task bench` runs this section in its
 * own process ({@link measureServiceSubprocess}) with
 * `--v8-flags=--initial-old-space-size=2048`, so V8 does not start marking
 * that heap inside the ~1 s throughput phase (150–280 ms of incremental
 * marking there, `--trace-gc`, which 1,000 separate customer devices would
 * not spend; 1,000 of ~10,000 senders went from 13.8–16.5k to 23–26k msgs/s,
 * the customers' CPU per message from 62–73 to 21–25 µs). The bank and the
 * relay run with their own tasks' flags.
 *
 * Every phase is bounded in count and time; a phase that runs out of time
 * reports what it reached (`complete: false`).
 * @module
 */

import { parsePeerAddress } from "../lib/address.ts";
import { median } from "./setup_bench.ts";
import { SUITE_P256, SUITE_X25519 } from "../lib/suite.ts";
import {
  type CustomerPolicy,
  CustomerThreads,
  type SimulatedCustomer,
} from "./service_customer.ts";
import {
  cpuUsOf,
  rssKbOf,
  type ServerProcess,
  startServer,
} from "./server_process.ts";
import {
  freePort,
  type Profiling,
  startProfile,
  startSelfProfile,
  summarizeProfile,
} from "./cpu_profile.ts";
import { collectGarbage, takeHeapSnapshot } from "./heap_snapshot.ts";
import { taskFlags } from "../tools/compile.ts";

/** Memory target per idle conversation (KB). */
export const SERVICE_MEMORY_TARGET_KB = 30;
/** Aggregate throughput target (msgs/s, 256 B). */
export const SERVICE_MSGS_TARGET = 20_000;
/** New session set-up target (/s). */
export const SERVICE_SETUP_TARGET = 200;
/** Relay-restart recovery target (s). */
export const SERVICE_RESTART_TARGET_S = 60;
/** Target: the slowest sender's rate ≥ this fraction of the median sender's (0.5 is a uniform one-after-the-other order; below a quarter, a customer waited more than twice as long as the one in the middle). */
export const SERVICE_SHARE_TARGET = 0.25;

/**
 * The throughput phase's fairness: each sender's rate is its messages ÷ the
 * seconds from `t0` (ms) to its last message's arrival (`lastAt`, ms); the
 * share is the slowest rate ÷ the median rate (a sender with no message
 * has rate 0). Also the median and the slowest sender's seconds to done
 * (`endAt`, the phase's end, for a sender with no message).
 */
export function shareOf(
  senders: readonly { count: number; lastAt: number }[],
  t0: number,
  endAt: number,
): { share: number; seconds: { median: number; slowest: number } } {
  if (senders.length === 0) {
    return { share: 0, seconds: { median: 0, slowest: 0 } };
  }
  const secs = senders.map((s) => Math.max(1e-3, (s.lastAt - t0) / 1000));
  const rates = senders.map((s, i) => s.count / secs[i]);
  const done = senders.map((s, i) =>
    s.count > 0 ? secs[i] : (endAt - t0) / 1000
  );
  const mid = median(rates);
  return {
    share: mid > 0 ? Math.min(...rates) / mid : 0,
    seconds: { median: median(done), slowest: Math.max(...done) },
  };
}

/**
 * Worker threads of the simulated customers by default: none. On this
 * 2-core machine two workers cost more CPU per message in every process
 * (1,000 senders, 4 rounds alternating with 5 in the main thread, medians:
 * customers 78 instead of 48 µs, bank 53 instead of 40, relay 14 instead of
 * 9.5; one of the 4 rounds was as cheap as the main thread's): the
 * customers' threads then compete with the bank and the relay for the two
 * cores.
 */
export const DEFAULT_WORKERS = 0;
/** Body size of the throughput phase. */
const BODY = 256;

/** Counts and time bounds of one run. */
export interface ServicePlan {
  /** Idle-conversation levels (ascending). */
  levels: number[];
  /** Customers sending at once. */
  senders: number;
  /** Messages per sender. */
  perSender: number;
  /**
   * Messages per send call (one record when they fit): a sender's messages
   * go out in rounds of this many, every sender's round r before anyone's
   * round r + 1 (default perSender: one send each).
   */
  batch?: number;
  /** Handshakes in flight at once. */
  window: number;
  /**
   * Worker threads the simulated customers run in (default
   * {@link DEFAULT_WORKERS}; 0: in this thread, where `profile`'s
   * customers profile sees them).
   */
  workers?: number;
  /**
   * Customers of the warm-up before the baseline: each sets up a
   * conversation, sends one message and closes it (default: the first
   * level; 0 = none, a cold baseline).
   */
  warmup?: number;
  /** Time bound of each phase (ms). */
  phaseMs: number;
  /** Write a CPU profile of the bank during the throughput phase to this file (the bank runs with --inspect). */
  profile?: string;
  /** Write a heap snapshot of the bank into this folder at one conversation and at each level, after its settled RSS (the bank runs with --inspect; bench/heap_snapshot.ts summarizes them). */
  heapDir?: string;
  /**
   * Write CPU profiles of the bank during the set-ups of the largest level
   * to this file, and of the other suite's step to the same name with
   * `.<suite>` before `.cpuprofile` (the bank runs with --inspect).
   */
  setupProfile?: string;
  /** Customers in the other suite's set-up step after the relay restart (p256 when the bank's address carries `ed=`; 0: none). */
  otherSetups: number;
}

/** CPU µs per set-up of each process over a set-up step (/proc, 10 ms resolution). */
export interface SetupCpu {
  /** The bank service process. */
  bank: number;
  /** The relay. */
  relay: number;
  /** This process: the simulated customers (their handshakes, TLS, relay connections). */
  customers: number;
}

/** One set-up step's figures. */
export interface SetupStep {
  /** The suite the bank's `secure` notifications named for the step's customers (`--suites` name). */
  suite: SuiteName;
  /** Conversations the bank reported `secure` in the step. */
  setups: number;
  /** Set-ups ÷ (last `secure` − first HS1), wall clock. */
  setupsPerSec: number;
  /** CPU µs per set-up, per process. */
  cpuUsPerSetup: SetupCpu;
  /** Every customer of the step got secure in time. */
  complete: boolean;
}

/** What {@link measureService} returns. */
export interface ServiceFigures {
  /** Worker threads the simulated customers ran in (0: the bench's main thread). */
  workers: number;
  /** RSS with one conversation, after the warm-up (KiB): the baseline of every level. */
  rss0Kb: number;
  /** RSS with one conversation before the warm-up (KiB): a cold process. */
  rss0ColdKb: number;
  /** The baseline's RSS after a full GC (KiB). */
  rss0AfterGcKb: number;
  /** Warm-up customers that set up, sent and closed before the baseline. */
  warmup: { customers: number; closed: number };
  /** Per level: conversations secure at the bank, RSS once settled, KB per conversation, set-ups/s of the step. */
  levels: {
    target: number;
    conversations: number;
    /** RSS once the idle bank settled (see {@link settledRssKb}). */
    rssKb: number;
    /** RSS 1 s after the step's last set-up (garbage of the set-ups not yet collected). */
    rssAfterStepKb: number;
    /** The settled figure per conversation over the baseline: the measurement. */
    kbPerConversation: number;
    /** RSS after a full GC requested over the inspector, following the settled samples. */
    rssAfterGcKb: number;
    /** The same over the baseline's after-GC RSS: how much of the settled figure was uncollected garbage. */
    kbPerConversationAfterGc: number;
    setupsPerSec: number;
    /** The suite of the step's set-ups (what customers following the bank's address negotiate). */
    suite: SuiteName;
    /** CPU µs per set-up of the step. */
    cpuUsPerSetup: SetupCpu;
    complete: boolean;
  }[];
  /** Set-ups/s of the largest step: the default path, customers following the bank's address (`suites[0].suite`). */
  setupsPerSec: number;
  /** What the level customers offered (`--suites` names, in order) and the address's pins they accepted only (`fp`, `ed`). */
  link: { offered: SuiteName[]; pins: ("fp" | "ed")[] };
  /** Set-ups per suite: first the largest level's step (the default path), then the other suite's step (absent with otherSetups 0). */
  suites: ({
    /** Conversations the bank held before the step. */
    before: number;
    /** Of those, customers taken offline first to leave the relay room (the other suite's step). */
    offline?: number;
  } & SetupStep)[];
  /** Throughput phase, after the largest level. */
  throughput: {
    /** Conversations the bank held during the phase (the senders among them). */
    conversations: number;
    senders: number;
    perSender: number;
    batch: number;
    received: number;
    msgsPerSec: number;
    /** The slowest customer's rate ÷ the median customer's (see the module doc). */
    slowestShare: number;
    /** The slowest customer's count ÷ the mean count when half of all messages had arrived. */
    shareAtHalf: number;
    /** Seconds from the phase's start until the median and the slowest customer had all their messages. */
    customerSeconds: { median: number; slowest: number };
    /** Seconds until 90 % of the messages had arrived (undefined: not reached). */
    secondsTo90?: number;
    /** CPU time per received message over the phase: the bank, the relay, this process (the customers). */
    cpuUsPerMsg: { bank: number; relay: number; customers: number };
    complete: boolean;
  };
  /** The same phase when the bank held as many conversations as there are senders (the level equal to `senders`, when it is not the largest): 1,000 customers, all sending at once. */
  throughputAtSenders?: ServiceFigures["throughput"];
  /** Relay restart phase. */
  restart: {
    conversations: number;
    recovered: number;
    seconds: number;
    complete: boolean;
  };
}

/** A suite's `--suites` name. */
export type SuiteName = "p256" | "x25519";
export type { CustomerPolicy };
const SUITE_NAMES: Record<number, SuiteName> = {
  [SUITE_P256]: "p256",
  [SUITE_X25519]: "x25519",
};

/**
 * What `deno task customer --peer <address>` does with the bank's `ready`
 * address (`link`): it pins the address's identities (`fp=`, and `ed=`, the
 * bank's Ed25519 identity), and with `ed=` offers `x25519,p256` (its default
 * `p256,x25519` with x25519 moved first; the bank accepts both and takes the
 * first offered: x25519); without `ed=` it offers `p256,x25519` (p256).
 * `other`: the suite the link customers do not get, offered alone (p256
 * under the same pins; or x25519 pinned to the `ready` notification's
 * Ed25519 fingerprint `readyEd`, when the address has no `ed=`).
 */
export function linkPolicy(
  addr: { fp?: string; ed?: string },
  readyEd?: string,
): { link: CustomerPolicy; other?: CustomerPolicy } {
  if (addr.fp === undefined) {
    throw new Error("the bank's address names no fingerprint (fp=)");
  }
  const pins = {
    fp: addr.fp,
    ...(addr.ed === undefined ? {} : { ed: addr.ed }),
  };
  if (addr.ed !== undefined) {
    return {
      link: { suites: [SUITE_X25519, SUITE_P256], pins },
      other: { suites: [SUITE_P256], pins },
    };
  }
  return {
    link: { suites: [SUITE_P256, SUITE_X25519], pins },
    other: readyEd === undefined
      ? undefined
      : { suites: [SUITE_X25519], pins: { ...pins, ed: readyEd } },
  };
}

/** How the bank's `message` notification lines start (clients/rpc.ts). */
const MESSAGE_PREFIX = '{"jsonrpc":"2.0","method":"message",';
const PEER_KEY = '"peer":"';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The `--v8-flags=…` of the `bank` task in deno.json: the bench runs the
 * bank as the task does (BENCH_BANK_V8_FLAGS overrides, for experiments;
 * empty = none).
 */
export const BANK_V8_FLAGS: string[] = (() => {
  const override = Deno.env.get("BENCH_BANK_V8_FLAGS");
  if (override !== undefined) {
    return override === "" ? [] : [`--v8-flags=${override}`];
  }
  return taskFlags(
    Deno.readTextFileSync(new URL("../deno.json", import.meta.url)),
    "bank",
    "clients/bank.ts",
  ).filter((f) => f.startsWith("--v8-flags"));
})();
/** The bank service subprocess and what its stdout said. */
class Bank {
  readonly child: Deno.ChildProcess;
  readonly ready = Promise.withResolvers<
    { address: string; ed25519Fingerprint?: string }
  >();
  readonly secureAt = new Map<string, number>();
  /** The suite named by each peer's last `secure` notification. */
  readonly suiteOf = new Map<string, string>();
  readonly messages = new Map<string, number>();
  /** Peers whose conversation the bank reported `closed`. */
  readonly closed = new Set<string>();
  received = 0;
  lastSecureAt = 0;
  lastMessageAt = 0;
  /** Called on every `message` notification. */
  onMessage: () => void = () => {};
  /** Per peer: when its last `message` notification was read. */
  readonly lastMessageOf = new Map<string, number>();

  constructor(
    relayUrl: string,
    caPath: string,
    dir: string,
    certDir: string,
    /** The bank's inspector (loopback): full GCs for the memory figures, profiles, snapshots. */
    readonly inspectPort: number,
  ) {
    this.child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        ...BANK_V8_FLAGS,
        `--inspect=127.0.0.1:${inspectPort}`,
        "--no-prompt",
        "--allow-net=localhost,127.0.0.1",
        `--allow-read=${dir},${certDir}`,
        `--allow-write=${dir}`,
        new URL("../clients/bank.ts", import.meta.url).pathname,
        "--serve",
        "--json",
        "--relay",
        relayUrl,
        "--ca",
        caPath,
        "--cover-rate",
        "0",
        "--keys",
        `${dir}/bank`,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    void this.#read();
  }

  async #read(): Promise<void> {
    let rest = "";
    try {
      for await (
        const chunk of this.child.stdout.pipeThrough(new TextDecoderStream())
      ) {
        rest += chunk;
        let i;
        while ((i = rest.indexOf("\n")) >= 0) {
          this.#line(rest.slice(0, i));
          rest = rest.slice(i + 1);
        }
      }
    } catch { /* closed */ }
    this.ready.reject(new Error("the bank service exited"));
  }

  #line(line: string): void {
    // The per-message notifications, without JSON.parse (the measuring end
    // must not be what limits the figure): a JSON string value escapes its
    // quotes, so the only unescaped `"peer":"` is the key.
    if (line.startsWith(MESSAGE_PREFIX)) {
      const at = line.lastIndexOf(PEER_KEY);
      if (at > 0) {
        const from = at + PEER_KEY.length;
        this.#message(line.slice(from, line.indexOf('"', from)));
        return;
      }
    }
    let m: { method?: string; params?: Record<string, unknown> };
    try {
      m = JSON.parse(line);
    } catch {
      return;
    }
    const peer = m.params?.peer as string | undefined;
    if (m.method === "ready") {
      this.ready.resolve({
        address: m.params!.address as string,
        ed25519Fingerprint: m.params!.ed25519Fingerprint as string | undefined,
      });
    } else if (m.method === "secure" && peer) {
      this.lastSecureAt = performance.now();
      this.secureAt.set(peer, this.lastSecureAt);
      this.suiteOf.set(peer, String(m.params?.suite));
    } else if (m.method === "message" && peer) {
      this.#message(peer);
    } else if (m.method === "closed" && peer) {
      this.closed.add(peer);
    }
  }

  #message(peer: string): void {
    this.received++;
    this.lastMessageAt = performance.now();
    this.lastMessageOf.set(peer, this.lastMessageAt);
    this.messages.set(peer, (this.messages.get(peer) ?? 0) + 1);
    this.onMessage();
  }

  rssKb(): Promise<number> {
    return rssKbOf(this.child.pid);
  }

  async stop(): Promise<void> {
    try {
      this.child.kill("SIGTERM");
    } catch { /* gone */ }
    const timer = setTimeout(() => {
      try {
        this.child.kill("SIGKILL");
      } catch { /* gone */ }
    }, 10_000);
    await this.child.status;
    clearTimeout(timer);
  }
}

/** Longest the idle bank's RSS is sampled (1 s apart) for the settled figure. */
const SETTLE_MAX_MS = 15_000;

/**
 * The bank's RSS once idle: the lowest of samples 1 s apart over `ms`
 * (SETTLE_MAX_MS, less for short plans). Right after a burst of set-ups the
 * RSS still holds their garbage, which V8 frees and returns over the next
 * seconds (at 1,000 conversations: 182 MB 1 s after the step, 124 MB 3 s
 * later, 113 MB after 13 s, then stable; measured); memory per *idle*
 * conversation is the settled figure. `first` is the first sample.
 */
async function settledRssKb(
  bank: Bank,
  ms: number,
): Promise<{ first: number; settled: number; afterGc: number }> {
  const first = await bank.rssKb();
  let settled = first;
  const end = performance.now() + ms;
  while (performance.now() + 1000 <= end) {
    await sleep(1000);
    settled = Math.min(settled, await bank.rssKb());
  }
  // Then a full GC requested over the inspector: what is left is what the
  // process holds, without the garbage V8 had not collected yet (reported
  // beside the settled figure, which stays the measurement).
  await collectGarbage(bank.inspectPort);
  let afterGc = Infinity;
  for (let i = 0; i < GC_SAMPLES; i++) {
    await sleep(1000);
    afterGc = Math.min(afterGc, await bank.rssKb());
  }
  return { first, settled, afterGc };
}

/** RSS samples (1 s apart) after the full GC; the lowest counts. */
const GC_SAMPLES = 3;

/** Runs `fn` over `items` with at most `width` at once; stops starting new ones after `deadline`. */
async function pool<T>(
  items: T[],
  width: number,
  deadline: number,
  fn: (t: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length && performance.now() < deadline) {
        const t = items[next++];
        await fn(t).catch(() => {});
      }
    }),
  );
}

/** Waits until `done()` or the deadline; true when done. */
async function until(done: () => boolean, deadline: number): Promise<boolean> {
  while (!done()) {
    if (performance.now() >= deadline) return false;
    await sleep(20);
  }
  return true;
}

/** Relay options: no rate limit, room for every customer from one address. */
const RELAY_FLAGS = [
  "--quiet",
  "--rate",
  "100000000",
  "--burst",
  "100000000",
  "--max-connections",
  "30000",
  "--max-unauth-per-ip",
  "30000",
];

/** The relay's certificate files (bench/main.ts `Certs`). */
export type ServiceCerts = {
  certDir: string;
  certPath: string;
  keyPath: string;
  caPath: string;
};

/** Runs the four phases; see the module doc. */
export async function measureService(
  plan: ServicePlan,
  certs: ServiceCerts,
  log: (s: string) => void,
): Promise<ServiceFigures> {
  const caPem = await Deno.readTextFile(certs.caPath);
  let relay: ServerProcess | undefined = await startServer({
    kind: "relay",
    ...certs,
    args: RELAY_FLAGS,
  });
  const port = relay.port;
  const dir = await Deno.makeTempDir({ prefix: "service-bench-" });
  const bank = new Bank(
    relay.url,
    certs.caPath,
    dir,
    certs.certDir,
    freePort(),
  );
  const snapshot = async (n: number) => {
    if (!plan.heapDir) return;
    const path = `${plan.heapDir}/bank-${n}.heapsnapshot`;
    await takeHeapSnapshot(bank.inspectPort, path);
    log(`service: heap snapshot in ${path}`);
  };
  const threads = new CustomerThreads(plan.workers ?? DEFAULT_WORKERS);
  const customers: SimulatedCustomer[] = [];
  try {
    const { address, ed25519Fingerprint } = await Promise.race([
      bank.ready.promise,
      sleep(60_000).then(() => {
        throw new Error("bank service not ready in 60 s");
      }),
    ]);
    const addr = parsePeerAddress(address);
    // An address without `ed=` (a bank that does not accept x25519) gets
    // the clients' default suite order (see linkPolicy).
    const policy = linkPolicy(addr, ed25519Fingerprint);
    log(
      `service: customers following the bank's address offer ${
        policy.link.suites.map((s) => SUITE_NAMES[s]).join(",")
      } and accept only its pinned identities (${
        Object.keys(policy.link.pins).map((k) => `${k}=`).join(", ")
      })`,
    );
    const url = relay.url;
    const secureCount = () =>
      customers.filter((c) => bank.secureAt.has(c.peerName)).length;
    const cpu = () =>
      Promise.all([bank.child.pid, relay!.pid, Deno.pid].map(cpuUsOf));

    // Grows the set by customers of `who` up to n; returns the step's set-up figures.
    const grow = async (
      n: number,
      who: CustomerPolicy,
      profilePath?: string,
    ): Promise<SetupStep> => {
      // Keys and relay connections first (bounded on their own): not the bank's work.
      const ready = performance.now() + plan.phaseMs;
      const fresh: SimulatedCustomer[] = [];
      for (let i = customers.length; i < n && performance.now() < ready; i++) {
        fresh.push(await threads.create(addr.id, who));
      }
      await pool(fresh, 100, ready, (c) => c.connect(url, caPem));
      const connected = fresh.filter((c) => c.conn);
      customers.push(...connected);
      log(
        `service: ${connected.length} more customers connected to the relay`,
      );
      const profiling = profilePath && bank.inspectPort
        ? await startProfile(bank.inspectPort)
        : undefined;
      const cpu0 = await cpu();
      const deadline = performance.now() + plan.phaseMs;
      const t0 = performance.now();
      await pool(connected, plan.window, deadline, async (c) => {
        await c.dial();
        await until(() => bank.secureAt.has(c.peerName), deadline);
      });
      const ok = connected.filter((c) => bank.secureAt.has(c.peerName));
      const [bankUs, relayUs, selfUs] = (await cpu()).map((us, i) =>
        (us - cpu0[i]) / Math.max(1, ok.length)
      );
      if (profiling) {
        const profile = await profiling.stop();
        await Deno.writeTextFile(profilePath!, JSON.stringify(profile));
        log(`service: bank CPU profile of the set-ups in ${profilePath}:`);
        for (const line of summarizeProfile(profile)) log(`  ${line}`);
      }
      const last = Math.max(
        t0,
        ...ok.map((c) => bank.secureAt.get(c.peerName)!),
      );
      // The suite the bank named (the first offered that it accepts).
      const named = new Map<string, number>();
      for (const c of ok) {
        const x = bank.suiteOf.get(c.peerName) ?? "?";
        named.set(x, (named.get(x) ?? 0) + 1);
      }
      if (named.size > 1) {
        log(`service: the step's set-ups named several suites: ${[...named]}`);
      }
      const top = [...named].sort((a, b) => b[1] - a[1])[0]?.[0];
      return {
        suite: top === "p256" || top === "x25519"
          ? top
          : SUITE_NAMES[who.suites[0]],
        setups: ok.length,
        setupsPerSec: ok.length / Math.max(1e-3, (last - t0) / 1000),
        cpuUsPerSetup: { bank: bankUs, relay: relayUs, customers: selfUs },
        complete: ok.length === connected.length &&
          customers.length === n,
      };
    };
    const cpuText = (c: SetupCpu) =>
      `CPU µs per set-up: bank ${c.bank.toFixed(0)}, relay ${
        c.relay.toFixed(0)
      }, customers ${c.customers.toFixed(0)}`;

    await grow(1, policy.link);
    await sleep(500);
    const settleMs = Math.min(SETTLE_MAX_MS, plan.phaseMs / 5);
    const cold = await settledRssKb(bank, settleMs);
    const rss0ColdKb = cold.settled;
    // Warm-up: the baseline is taken at the same level of process activity
    // as the levels (code compiled, V8's heap and the allocator's arenas
    // grown by a burst of set-ups), not in a process that never served a
    // burst. The warm-up conversations end; their known-peers entries stay.
    const warm = plan.warmup ?? plan.levels[0] ?? 0;
    const warmed: SimulatedCustomer[] = [];
    if (warm > 0) {
      const ready = performance.now() + plan.phaseMs;
      for (let i = 0; i < warm && performance.now() < ready; i++) {
        warmed.push(await threads.create(addr.id, policy.link));
      }
      await pool(warmed, 100, ready, (c) => c.connect(url, caPem));
      const deadline = performance.now() + plan.phaseMs;
      const enc = new TextEncoder();
      await pool(
        warmed.filter((c) => c.conn),
        plan.window,
        deadline,
        async (c) => {
          await c.dial();
          await until(() => bank.secureAt.has(c.peerName), deadline);
          const before = bank.messages.get(c.peerName) ?? 0;
          await c.send([enc.encode("warm-up")]);
          await until(
            () => (bank.messages.get(c.peerName) ?? 0) > before,
            deadline,
          );
          await c.close();
          await until(() => bank.closed.has(c.peerName), deadline);
        },
      );
      await Promise.all(warmed.map((c) => c.stop()));
    }
    const closedWarm = warmed.filter((c) => bank.closed.has(c.peerName))
      .length;
    log(
      `service: warm-up, ${closedWarm} of ${warm} customers set up, sent and closed`,
    );
    await sleep(1000);
    const warmBase = await settledRssKb(bank, settleMs);
    const rss0Kb = warmBase.settled;
    const rss0AfterGcKb = warmBase.afterGc;
    log(
      `service: baseline RSS ${rss0Kb} KiB with 1 conversation after the warm-up (${rss0ColdKb} KiB before it; ${rss0AfterGcKb} and ${cold.afterGc} KiB after a full GC)`,
    );
    await snapshot(1);
    // Throughput: the first `senders` customers send at once.
    const enc = new TextEncoder();
    const throughputPhase = async (
      withProfile: boolean,
    ): Promise<ServiceFigures["throughput"]> => {
      const senders = customers.filter((c) => bank.secureAt.has(c.peerName))
        .slice(0, plan.senders);
      const before = new Map(
        senders.map((c) => [c.peerName, bank.messages.get(c.peerName) ?? 0]),
      );
      const total = senders.length * plan.perSender;
      const base = bank.received;
      let shareAtHalf = 0;
      let half = false;
      let at90: number | undefined;
      bank.onMessage = () => {
        if (at90 === undefined && bank.received - base >= total * 0.9) {
          at90 = performance.now();
        }
        if (half || bank.received - base < total / 2) return;
        half = true;
        const counts = senders.map((c) =>
          (bank.messages.get(c.peerName) ?? 0) - before.get(c.peerName)!
        );
        const mean = counts.reduce((a, b) => a + b, 0) / counts.length;
        shareAtHalf = mean > 0 ? Math.min(...counts) / mean : 0;
      };
      // `${sender}:${message}:` then "x" up to BODY bytes; one buffer per
      // send call, each body a view of it (not a string and an encoding each).
      const bodiesOf = (i: number, from: number, n: number) => {
        const buf = new Uint8Array(n * BODY).fill(0x78);
        return Array.from({ length: n }, (_, k) => {
          const b = buf.subarray(k * BODY, (k + 1) * BODY);
          enc.encodeInto(`${i}:${from + k}:`, b);
          return b;
        });
      };
      let profiling: Profiling | undefined;
      let self: Profiling | undefined;
      if (plan.profile && withProfile) {
        profiling = await startProfile(bank.inspectPort);
        self = await startSelfProfile();
      }
      const cpu0 = await cpu();
      const t0 = performance.now();
      const batch = Math.min(plan.batch ?? plan.perSender, plan.perSender);
      for (let from = 0; from < plan.perSender; from += batch) {
        const n = Math.min(batch, plan.perSender - from);
        await Promise.all(senders.map((c, i) =>
          c.send(
            bodiesOf(i, from, n),
          )
        ));
      }
      const tDone = await until(
        () => bank.received - base >= total,
        t0 + plan.phaseMs,
      );
      const received = bank.received - base;
      const fairness = shareOf(
        senders.map((c) => ({
          count: (bank.messages.get(c.peerName) ?? 0) - before.get(c.peerName)!,
          lastAt: bank.lastMessageOf.get(c.peerName) ?? t0,
        })),
        t0,
        performance.now(),
      );
      const [bankUs, relayUs, selfUs] = (await cpu()).map((us, i) =>
        (us - cpu0[i]) / Math.max(1, received)
      );
      if (profiling) {
        const profile = await profiling.stop();
        await Deno.writeTextFile(plan.profile!, JSON.stringify(profile));
        log(`service: bank CPU profile in ${plan.profile}; self time:`);
        for (const line of summarizeProfile(profile)) log(`  ${line}`);
        const mine = await self!.stop();
        const path = plan.profile!.replace(/(\.cpuprofile)?$/, ".customers$1");
        await Deno.writeTextFile(path, JSON.stringify(mine));
        log(`service: this process's (the customers') CPU profile in ${path}`);
      }
      const throughput: ServiceFigures["throughput"] = {
        senders: senders.length,
        perSender: plan.perSender,
        batch,
        received,
        conversations: secureCount(),
        msgsPerSec: received /
          Math.max(
            1e-3,
            ((tDone ? bank.lastMessageAt : performance.now()) - t0) / 1000,
          ),
        slowestShare: fairness.share,
        shareAtHalf,
        customerSeconds: fairness.seconds,
        secondsTo90: at90 === undefined ? undefined : (at90 - t0) / 1000,
        cpuUsPerMsg: { bank: bankUs, relay: relayUs, customers: selfUs },
        complete: tDone,
      };
      bank.onMessage = () => {};
      log(
        `service: ${received} of ${total} messages beside ${throughput.conversations} conversations, ${
          throughput.msgsPerSec.toFixed(0)
        } msgs/s, slowest share ${
          fairness.share.toFixed(2)
        } (customers done after ${
          fairness.seconds.median.toFixed(2)
        } s median, ${
          fairness.seconds.slowest.toFixed(2)
        } s slowest; share at half-time ${shareAtHalf.toFixed(2)}); ${
          customers.reduce((n, c) => n + c.reconnects, 0)
        } customer relay links lost and reconnected so far`,
      );
      return throughput;
    };
    const levels: ServiceFigures["levels"] = [];
    let throughputAtSenders: ServiceFigures["throughput"] | undefined;
    const suites: ServiceFigures["suites"] = [];
    for (const [i, target] of plan.levels.entries()) {
      const t = performance.now();
      const before = secureCount();
      const step = await grow(
        target,
        policy.link,
        i === plan.levels.length - 1 ? plan.setupProfile : undefined,
      );
      if (i === plan.levels.length - 1) suites.push({ before, ...step });
      await sleep(1000);
      const conversations = secureCount();
      const {
        first: rssAfterStepKb,
        settled: rssKb,
        afterGc: rssAfterGcKb,
      } = await settledRssKb(bank, settleMs);
      levels.push({
        target,
        conversations,
        rssKb,
        rssAfterStepKb,
        kbPerConversation: (rssKb - rss0Kb) / Math.max(1, conversations - 1),
        rssAfterGcKb,
        kbPerConversationAfterGc: (rssAfterGcKb - rss0AfterGcKb) /
          Math.max(1, conversations - 1),
        setupsPerSec: step.setupsPerSec,
        suite: step.suite,
        cpuUsPerSetup: step.cpuUsPerSetup,
        complete: step.complete && conversations >= target,
      });
      log(
        `service: ${conversations} conversations in ${
          ((performance.now() - t) / 1000).toFixed(1)
        } s, ${step.setupsPerSec.toFixed(0)} set-ups/s, suite ${step.suite} (${
          cpuText(step.cpuUsPerSetup)
        }), RSS ${rssKb} KiB settled (${rssAfterStepKb} KiB 1 s after the step, ${rssAfterGcKb} KiB after a full GC)`,
      );
      await snapshot(conversations);
      if (conversations < target) break;
      // 1,000 customers and 1,000 senders: the phase as the target states it,
      // before the bank grows further (the phase after the largest level
      // below measures 1,000 senders among all its conversations).
      if (
        target === plan.senders && i < plan.levels.length - 1 &&
        plan.senders > 0
      ) {
        throughputAtSenders = await throughputPhase(false);
        await sleep(1000);
      }
    }

    const throughput = await throughputPhase(true);
    await sleep(1000);

    // Relay restart: same port, every customer reconnects and sends once.
    const live = customers.filter((c) => bank.secureAt.has(c.peerName));
    await Promise.all(customers.map((c) => c.setAutoReconnect(false)));
    await relay.stop();
    relay = undefined;
    relay = await startServer({
      kind: "relay",
      ...certs,
      args: [...RELAY_FLAGS, "--port", String(port)],
    });
    const r0 = performance.now();
    const deadline = r0 +
      Math.max(plan.phaseMs, SERVICE_RESTART_TARGET_S * 1000);
    const mark = new Map(
      live.map((c) => [c.peerName, bank.messages.get(c.peerName) ?? 0]),
    );
    const recovered = () =>
      live.filter((c) =>
        (bank.messages.get(c.peerName) ?? 0) > mark.get(c.peerName)!
      )
        .length;
    await pool(live, 100, deadline, async (c) => {
      await c.connect(relay!.url, caPem);
      await c.send([enc.encode("after the relay restart")]);
    });
    const rDone = await until(() => recovered() >= live.length, deadline);
    const restart = {
      conversations: live.length,
      recovered: recovered(),
      seconds: ((rDone ? bank.lastMessageAt : performance.now()) - r0) / 1000,
      complete: rDone,
    };
    log(
      `service: relay restart, ${restart.recovered} of ${live.length} back in ${
        restart.seconds.toFixed(1)
      } s`,
    );

    // The other suite: customers offering only it (p256 beside an `ed=`
    // address), into the same bank.
    const other = policy.other;
    if (plan.otherSetups > 0 && other) {
      const before = secureCount();
      // The relay holds two descriptors per connection (lib/deno/tls_front.ts)
      // and inherits this process's limit: without room the step would only
      // measure the relay shedding (fd-exhausted). Customers taken offline
      // for room keep their conversations at the bank (held, peer away).
      const limit = openFilesLimit();
      const room = Math.floor((limit - 200) / 2) -
        customers.filter((c) => c.conn?.open).length;
      const offline = Math.max(0, plan.otherSetups - room);
      if (offline > 0) {
        await Promise.all(customers.slice(-offline).map((c) => c.stop()));
        log(
          `service: ${offline} customers offline (their conversations stay at the bank) to leave the relay descriptors for ${plan.otherSetups} new ones (limit ${limit}, two per connection)`,
        );
      }
      const name = SUITE_NAMES[other.suites[0]];
      const step = await grow(
        customers.length + plan.otherSetups,
        other,
        plan.setupProfile?.replace(/(\.cpuprofile)?$/, `.${name}$1`),
      );
      suites.push({ before, offline, ...step });
      log(
        `service: suite ${step.suite} (--suites ${name}), ${step.setups} set-ups beside ${before} conversations, ${
          step.setupsPerSec.toFixed(0)
        } set-ups/s (${cpuText(step.cpuUsPerSetup)})`,
      );
    }
    const largest = levels[levels.length - 1];
    return {
      workers: threads.n,
      rss0Kb,
      rss0ColdKb,
      rss0AfterGcKb,
      warmup: { customers: warm, closed: closedWarm },
      levels,
      setupsPerSec: largest?.setupsPerSec ?? 0,
      link: {
        offered: policy.link.suites.map((s) => SUITE_NAMES[s]),
        pins: Object.keys(policy.link.pins) as ("fp" | "ed")[],
      },
      suites,
      throughput,
      throughputAtSenders,
      restart,
    };
  } finally {
    await Promise.all(customers.map((c) => c.stop().catch(() => {})));
    threads.terminate();
    await bank.stop();
    await relay?.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** This process's soft limit on open files (`ulimit -n` of a child shell: Deno refuses /proc/self/limits without --allow-all; children inherit it); 1,048,576 when unknown. */
function openFilesLimit(): number {
  try {
    const out = new Deno.Command("sh", { args: ["-c", "ulimit -n"] })
      .outputSync();
    const n = Number(new TextDecoder().decode(out.stdout).trim());
    return Number.isSafeInteger(n) && n > 0 ? n : 1_048_576;
  } catch {
    return 1_048_576;
  }
}

/**
 * The V8 flags of the service section's own process: its heap holds every
 * simulated customer (300–490 MB at ~10,000), and without a larger initial
 * old generation V8 started marking it inside the ~1 s throughput phase
 * (150–280 ms, `--trace-gc`), work that separate customer devices would not
 * do. In its own process the flag touches no other section's load generator.
 */
export const SERVICE_PROCESS_V8_FLAGS = [
  "--v8-flags=--initial-old-space-size=2048",
];

/**
 * {@link measureService} in a fresh `deno run` subprocess with
 * {@link SERVICE_PROCESS_V8_FLAGS} (the bench's own heap, grown by the
 * earlier sections, stays out of it too); its log lines go to `log`.
 */
export async function measureServiceSubprocess(
  plan: ServicePlan,
  certs: ServiceCerts,
  log: (s: string) => void,
): Promise<ServiceFigures> {
  const dir = await Deno.makeTempDir({ prefix: "service-bench-" });
  const path = `${dir}/figures.json`;
  try {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-prompt",
        ...SERVICE_PROCESS_V8_FLAGS,
        "--allow-net=127.0.0.1,localhost",
        "--allow-read",
        "--allow-write",
        "--allow-run",
        "--allow-env",
        "--allow-sys",
        import.meta.filename!,
        JSON.stringify({ plan, certs }),
        path,
      ],
      stdin: "null",
      stdout: "inherit",
      stderr: "piped",
    }).spawn();
    let rest = "";
    for await (
      const chunk of child.stderr.pipeThrough(new TextDecoderStream())
    ) {
      const lines = (rest + chunk).split("\n");
      rest = lines.pop()!;
      for (const line of lines) log(line);
    }
    if (rest) log(rest);
    const status = await child.status;
    if (!status.success) {
      throw new Error(`service bench subprocess exited with ${status.code}`);
    }
    return JSON.parse(await Deno.readTextFile(path)) as ServiceFigures;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  const { plan, certs } = JSON.parse(Deno.args[0]);
  const figures = await measureService(
    plan,
    certs,
    (line) => console.error(line),
  );
  await Deno.writeTextFile(Deno.args[1], JSON.stringify(figures));
  // Worker threads or timers left behind must not keep the process alive.
  Deno.exit(0);
}
