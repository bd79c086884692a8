/**
 * Cluster mode with real processes only: redis-server, two relay nodes
 * (`server.ts --cluster … --node …` with the relay task's permission flags),
 * HAProxy running the shipped deploy/haproxy.cfg, and the real bank and
 * customer CLIs. PROTOCOL.md §1.8, README → Cluster.
 */

import assert from "node:assert/strict";
import {
  bankTo,
  ClientProc,
  customerIn,
  type Ev,
  freePort,
} from "./helpers/client_proc.ts";
import { HaproxyProc, NodeProc } from "./helpers/cluster_procs.ts";
import { RedisProc } from "./helpers/redis_proc.ts";
import { waitFor } from "./helpers/relay_fixture.ts";
import { ensureCerts } from "../tools/certs.ts";
import { RelayConnection } from "../lib/deno/relay_client.ts";
import { generateMailboxKey, type MailboxKey } from "../lib/registration.ts";
import type { Frame } from "../lib/relay_frame.ts";

const isType = (t: string) => (e: Ev) => e.type === t;

async function health(
  origin: string,
  ca: string,
): Promise<Record<string, unknown>> {
  const client = Deno.createHttpClient({ caCerts: [ca] });
  try {
    return await (await fetch(`${origin}/healthz`, { client })).json();
  } finally {
    client.close();
  }
}

async function certs(dir: string): Promise<string> {
  await ensureCerts({ dir, hosts: ["127.0.0.2", "127.0.0.3"] });
  return Deno.readTextFile(`${dir}/ca.pem`);
}

Deno.test("cluster via HAProxy: bank and customer on different nodes talk both ways; the node of one is killed → every message once, in order", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cluster-test-" });
  await certs(dir);
  // HAProxy on 127.0.0.1:P, the nodes on 127.0.0.2:P and 127.0.0.3:P: the
  // same port everywhere, so the Host header clients send (localhost:P) and
  // the origin they sign are the nodes' own.
  // (The test process itself may only use 127.0.0.1: the nodes report through their logs.)
  const port = freePort();
  const redis = await RedisProc.start();
  const nodes = ["127.0.0.2", "127.0.0.3"].map((host, i) =>
    new NodeProc({
      name: `node-${"ab"[i]}`,
      host,
      port,
      redisUrl: redis.url,
      certDir: dir,
      extraHosts: [host],
    })
  );
  let haproxy: HaproxyProc | undefined;
  const clients: ClientProc[] = [];
  try {
    await Promise.all(nodes.map((n) => n.ready));
    await Promise.all(
      nodes.map((n) => n.waitLog(/redis subscribe connection up/)),
    );
    haproxy = await HaproxyProc.start(
      dir,
      port,
      nodes.map((n) => ({ name: n.name, address: `${n.host}:${n.port}` })),
    );
    const url = `wss://localhost:${port}/ws`;
    const common = [
      "--json",
      "--relay",
      url,
      "--ca",
      `${dir}/ca.pem`,
      "--wait",
      "20",
    ];
    const customer = customerIn(dir, common, dir);
    clients.push(customer);
    const ready = await customer.waitFor(isType("ready"), "customer ready");
    const bank = bankTo(ready.address, dir, common, dir);
    clients.push(bank);
    await Promise.all([
      bank.waitFor(isType("secure"), "bank secure"),
      customer.waitFor(isType("secure"), "customer secure"),
    ]);
    // leastconn put them on different nodes: each node holds one registration.
    for (const n of nodes) await n.waitLog(/registered \S+… \(1 online\)/);
    for (const n of nodes) assert.doesNotMatch(n.log, /\(2 online\)/);

    const say = async (n: number) => {
      await bank.line(`b${n}`);
      await customer.line(`c${n}`);
    };
    for (let i = 1; i <= 4; i++) await say(i);
    await bank.waitCount(isType("message"), 4, "4 at bank");
    await customer.waitCount(isType("message"), 4, "4 at customer");

    // Mid-conversation: kill node a (it holds one of them) without a goodbye.
    await say(5);
    await say(6);
    await nodes[0].kill();
    for (let i = 7; i <= 10; i++) await say(i);
    const expect = (p: string) =>
      Array.from({ length: 10 }, (_, i) => `${p}${i + 1}`);
    const atBank = await bank.waitCount(
      isType("message"),
      10,
      "10 at bank",
      25000,
    );
    const atCustomer = await customer.waitCount(
      isType("message"),
      10,
      "10 at customer",
      25000,
    );
    assert.deepEqual(atBank.map((e) => e.text), expect("c"));
    assert.deepEqual(atCustomer.map((e) => e.text), expect("b"));
    // Both now sit on node b; nothing arrived twice.
    await nodes[1].waitLog(/registered \S+… \(2 online\)/);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(bank.events.filter(isType("message")).length, 10);
    assert.equal(customer.events.filter(isType("message")).length, 10);
    // HAProxy's health checks (GET /healthz with the public Host) kept node b in service.
    assert.doesNotMatch(haproxy.log, /node-b is DOWN/, haproxy.log);
    await bank.end();
    await customer.end();
    assert.equal(await bank.exit(), 0);
    assert.equal(await customer.exit(), 0);
  } finally {
    for (const c of clients) await c.dispose();
    await haproxy?.stop();
    for (const n of nodes) await n.kill();
    await redis.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cluster via HAProxy with --public-origin: nodes on their own ports behind HAProxy's; clients land on different nodes and talk both ways; health checks keep both in service", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cluster-test-" });
  const ca = await certs(dir);
  const port = freePort(); // HAProxy: the public origin wss://localhost:port
  const redis = await RedisProc.start();
  const nodes = ["a", "b"].map((name) =>
    new NodeProc({
      name: `node-${name}`,
      host: "127.0.0.1",
      port: freePort(),
      redisUrl: redis.url,
      certDir: dir,
      extraArgs: ["--public-origin", `wss://localhost:${port}`],
    })
  );
  let haproxy: HaproxyProc | undefined;
  const conns: RelayConnection[] = [];
  try {
    await Promise.all(nodes.map((n) => n.ready));
    await Promise.all(
      nodes.map((n) => n.waitLog(/redis subscribe connection up/)),
    );
    haproxy = await HaproxyProc.start(
      dir,
      port,
      nodes.map((n) => ({ name: n.name, address: `127.0.0.1:${n.port}` })),
    );
    const connect = async () => {
      const c = await RelayConnection.connect({
        url: `wss://localhost:${port}/ws`,
        mailbox: (await generateMailboxKey()).key,
        caCerts: [ca],
      });
      conns.push(c);
      const got: Frame[] = [];
      c.onFrame = (f) => got.push(f);
      return { c, got };
    };
    const x = await connect();
    await waitFor(
      () => nodes.some((n) => /registered \S+… \(1 online\)/.test(n.log)),
      "first registration",
    );
    const y = await connect();
    // leastconn: one registration on each node (each signed wss://localhost:port).
    for (const n of nodes) await n.waitLog(/registered \S+… \(1 online\)/);
    for (const n of nodes) assert.doesNotMatch(n.log, /\(2 online\)/);
    const deliver = async (
      from: RelayConnection,
      to: { c: RelayConnection; got: Frame[] },
      what: string,
    ) => {
      const deadline = Date.now() + 8000;
      while (!to.got.some((f) => f.type === "data")) {
        if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
        from.send(to.c.id, new Uint8Array([1]));
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await deliver(x.c, y, "x → y across nodes");
    await deliver(y.c, x, "y → x across nodes");
    // The health checks (GET /healthz, Host localhost:port) passed on both nodes.
    await new Promise((r) => setTimeout(r, 2500));
    assert.doesNotMatch(haproxy.log, /is DOWN/, haproxy.log);
    for (const n of nodes) assert.doesNotMatch(n.log, /refused Host/);
  } finally {
    await Promise.all(conns.map((c) => c.close().catch(() => {})));
    await haproxy?.stop();
    for (const n of nodes) await n.kill();
    await redis.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cluster processes: same ID on the other node → 4000; Redis stopped → local forwarding goes on, degraded; restarted → cross-node resumes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cluster-test-" });
  const ca = await certs(dir);
  const redis = await RedisProc.start();
  const nodes = ["a", "b"].map((name) =>
    new NodeProc({
      name,
      host: "127.0.0.1",
      port: freePort(),
      redisUrl: redis.url,
      certDir: dir,
    })
  );
  const conns: RelayConnection[] = [];
  const connect = async (node: NodeProc, key?: MailboxKey) => {
    const c = await RelayConnection.connect({
      url: `wss://localhost:${node.port}/ws`,
      mailbox: key ?? (await generateMailboxKey()).key,
      caCerts: [ca],
    });
    conns.push(c);
    const got: Frame[] = [];
    c.onFrame = (f) => got.push(f);
    return { c, got };
  };
  /** Sends until one frame arrives (a fresh registration takes a moment to reach Redis). */
  const deliver = async (
    from: RelayConnection,
    to: { c: RelayConnection; got: Frame[] },
    what: string,
  ) => {
    const before = to.got.filter((f) => f.type === "data").length;
    const deadline = Date.now() + 8000;
    while (to.got.filter((f) => f.type === "data").length === before) {
      if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
      from.send(to.c.id, new Uint8Array([1]));
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  try {
    await Promise.all(nodes.map((n) => n.ready));
    await Promise.all(
      nodes.map((n) => n.waitLog(/redis subscribe connection up/)),
    );
    const x = await connect(nodes[0]);
    const z = await connect(nodes[0]);
    const y = await connect(nodes[1]);
    await deliver(x.c, y, "a → b");
    await deliver(y.c, x, "b → a");

    // The same mailbox key on node b displaces its connection on node a.
    const key = (await generateMailboxKey()).key;
    const first = await connect(nodes[0], key);
    await deliver(x.c, first, "to the first holder");
    await connect(nodes[1], key);
    const closed = await Promise.race([
      first.c.closed,
      new Promise<never>((_, r) =>
        setTimeout(() => r(new Error("no 4000")), 5000)
      ),
    ]);
    assert.equal(closed.code, 4000);
    await nodes[0].waitLog(/registered on node b: displacing/);

    // Redis stopped: node a degraded, still forwards locally; cross-node gets peer-offline.
    await redis.stop();
    await waitFor(
      () => /connection down/.test(nodes[0].log),
      "node a notices",
      5000,
    );
    const h = await health(`https://localhost:${nodes[0].port}`, ca);
    assert.equal(h.status, "degraded");
    await deliver(x.c, z, "local while Redis is down");
    x.got.length = 0;
    x.c.send(y.c.id, new Uint8Array([2]));
    await waitFor(
      () => x.got.some((f) => f.type === "error" && f.name === "peer-offline"),
      "peer-offline while Redis is down",
    );

    // Restarted: both nodes reconnect and re-subscribe; cross-node resumes.
    await redis.restart();
    for (const n of nodes) {
      await waitFor(
        () => (n.log.match(/redis subscribe connection up/g) ?? []).length >= 2,
        `node ${n.name} back`,
        8000,
      );
    }
    await deliver(x.c, y, "a → b after restart");
    await deliver(y.c, x, "b → a after restart");
    assert.equal(
      (await health(`https://localhost:${nodes[1].port}`, ca)).status,
      "ok",
    );
  } finally {
    await Promise.all(conns.map((c) => c.close().catch(() => {})));
    for (const n of nodes) await n.kill();
    await redis.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task relay:cluster: a Redis outside the grant is refused with the exact flag; --cluster needs --node", async () => {
  const run = async (args: string[]) => {
    const r = await new Deno.Command("deno", {
      args: ["task", "-q", "relay:cluster", "--port", "0", ...args],
      cwd: new URL("..", import.meta.url).pathname,
      stdout: "piped",
      stderr: "piped",
    }).output();
    return { code: r.code, err: new TextDecoder().decode(r.stderr) };
  };
  const far = await run(["--node", "x", "--cluster", "redis://10.1.2.3:6380"]);
  assert.equal(far.code, 1, far.err);
  assert.match(
    far.err,
    /not permitted to connect to Redis at 10\.1\.2\.3:6380/,
  );
  assert.match(
    far.err,
    /--allow-net=127\.0\.0\.1,localhost,\[::1\],10\.1\.2\.3:6380 /,
  );
  assert.match(
    far.err,
    /deno run --v8-flags=--max-semi-space-size=1 --allow-net=/,
    "the line keeps the task's V8 flags",
  );
  const noNode = await run([]);
  assert.equal(noNode.code, 2);
  assert.match(
    noNode.err,
    /needs both --cluster redis:\/\/HOST:PORT and --node NAME/,
  );
  const badNode = await run(["--node", "no spaces"]);
  assert.equal(badNode.code, 2);
  assert.match(badNode.err, /--node must be/);
});
