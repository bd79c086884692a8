/**
 * The cluster bus on a real Redis Cluster (three redis-server masters made
 * into a cluster by `redis-cli --cluster create`): slots computed here match
 * the server's CLUSTER KEYSLOT, channels are routed to their masters, and
 * two relays forward across nodes for IDs on different masters.
 */

import assert from "node:assert/strict";
import { attachRelay, ClusterBus } from "../lib/deno/cluster_bus.ts";
import { RedisClient } from "../lib/deno/redis_client.ts";
import { channelFor } from "../lib/cluster_frame.ts";
import { keySlot, parseClusterSlots } from "../lib/redis_slot.ts";
import { replyText } from "../lib/resp.ts";
import type { Frame } from "../lib/relay_frame.ts";
import type { RelayConnection } from "../lib/deno/relay_client.ts";
import { freePort } from "./helpers/client_proc.ts";
import { redisServerArgs } from "./helpers/redis_proc.ts";
import { startTestRelay, waitFor } from "./helpers/relay_fixture.ts";

const FAST = { baseMs: 20, maxMs: 200 };

/** Three cluster-enabled redis-servers joined into one cluster; stopped by PID. */
async function startRedisCluster(dir: string) {
  const ports = [freePort(), freePort(), freePort()];
  const children = ports.map((port) =>
    new Deno.Command("redis-server", {
      args: redisServerArgs(port, [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        `${dir}/nodes-${port}.conf`,
      ]),
      cwd: dir,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn()
  );
  const stop = async () => {
    for (const c of children) {
      try {
        c.kill("SIGKILL");
      } catch { /* gone */ }
      await c.status;
    }
  };
  try {
    // Every node must answer before `redis-cli --cluster create` (one slow
    // start under load failed the create with exit 1).
    for (const port of ports) {
      const probe = new RedisClient({
        url: `redis://127.0.0.1:${port}`,
        backoff: FAST,
      });
      probe.start();
      await waitFor(() => probe.state === "up", `cluster node ${port} up`);
      await probe.close();
    }
    const made = await new Deno.Command("redis-cli", {
      args: [
        "--cluster",
        "create",
        ...ports.map((p) => `127.0.0.1:${p}`),
        "--cluster-replicas",
        "0",
        "--cluster-yes",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(
      made.code,
      0,
      new TextDecoder().decode(made.stdout).slice(-500),
    );
    return { ports, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

Deno.test("cluster bus on a real Redis Cluster: slots match the server, channels go to their masters, cross-node forwarding", async () => {
  const dir = await Deno.makeTempDir({ prefix: "redis-cluster-" });
  const cluster = await startRedisCluster(dir);
  const seed = `redis://127.0.0.1:${cluster.ports[0]}`;
  const probe = new RedisClient({ url: seed, backoff: FAST });
  probe.start();
  const relays: Awaited<ReturnType<typeof startTestRelay>>[] = [];
  const buses: ClusterBus[] = [];
  try {
    await waitFor(() => probe.state === "up", "probe up");
    // Every node must agree the cluster is complete before the buses ask.
    for (let i = 0; i < 100; i++) {
      const info = replyText(await probe.command(["CLUSTER", "INFO"])) ?? "";
      if (info.includes("cluster_state:ok")) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const ranges = parseClusterSlots(
      await probe.command(["CLUSTER", "SLOTS"]),
      "127.0.0.1",
    );
    assert.equal(new Set(ranges.map((r) => r.port)).size, 3);
    const masterOf = (channel: string) =>
      ranges.find((r) =>
        keySlot(channel) >= r.start && keySlot(channel) <= r.end
      )!.port;

    // Our CRC16 slot = the server's, for the channel names the bus uses.
    for (let i = 0; i < 20; i++) {
      const ch = channelFor(crypto.getRandomValues(new Uint8Array(16)));
      const r = await probe.command(["CLUSTER", "KEYSLOT", ch]);
      assert.deepEqual(r, { type: "integer", value: BigInt(keySlot(ch)) }, ch);
    }

    for (const name of ["a", "b"]) {
      const bus = new ClusterBus({
        url: seed,
        node: name,
        maxFrame: 65536,
        backoff: FAST,
        pingIntervalMs: 500,
      });
      buses.push(bus);
      const relay = await startTestRelay({ remote: bus, quiet: true });
      attachRelay(bus, relay.relay);
      relays.push(relay);
      bus.start();
    }
    await waitFor(
      () => buses.every((b) => b.status() === "ok"),
      "buses ok",
      8000,
    );
    assert.ok(
      buses.every((b) => /relay_cluster_redis_masters 3/.test(b.metricsText())),
    );

    // Clients on node b until their IDs live on at least two different masters.
    const onB: { c: RelayConnection; got: Frame[] }[] = [];
    while (new Set(onB.map((x) => masterOf(channelFor(x.c.id)))).size < 2) {
      assert.ok(onB.length < 20, "IDs spread over masters");
      const c = await relays[1].connect();
      const got: Frame[] = [];
      c.onFrame = (f) => got.push(f);
      onB.push({ c, got });
    }
    const sender = await relays[0].connect();
    const back: Frame[] = [];
    sender.onFrame = (f) => back.push(f);
    for (const r of onB) {
      const deadline = Date.now() + 5000;
      while (r.got.length === 0) {
        assert.ok(Date.now() < deadline, "cross-node frame on a master");
        sender.send(r.c.id, new Uint8Array([1]));
        await new Promise((res) => setTimeout(res, 30));
      }
      assert.equal(
        r.got[0].type === "data" && r.got[0].peer.toHex(),
        sender.id.toHex(),
      );
    }
    // Each channel is subscribed on its own master, and nowhere else.
    for (const r of onB) {
      const ch = channelFor(r.c.id);
      for (const port of cluster.ports) {
        const node = new RedisClient({
          url: `redis://127.0.0.1:${port}`,
          backoff: FAST,
        });
        node.start();
        await waitFor(() => node.state === "up", "node probe");
        const v = await node.command(["PUBSUB", "SHARDNUMSUB", ch]).catch((e) =>
          e
        );
        await node.close();
        if (port === masterOf(ch)) {
          assert.equal(
            v.type === "array" && v.items[1].value,
            1n,
            `${ch} on ${port}`,
          );
        }
      }
    }
    // Back from a master: an ID nobody holds is peer-offline.
    back.length = 0;
    sender.send(
      crypto.getRandomValues(new Uint8Array(16)),
      new Uint8Array([2]),
    );
    await waitFor(
      () => back.some((f) => f.type === "error" && f.name === "peer-offline"),
      "peer-offline",
    );
  } finally {
    for (const r of relays) await r.close();
    await probe.close();
    await cluster.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
