/**
 * `deno run -A bench/attack.ts [--script PATH] [--runs N]`: the giant-frame
 * attack of issue 10 against a relay process — six concurrent 63 MiB
 * WebSocket messages written as fast as the relay takes them (3 s budget):
 * time from each frame header to the relay's close, the close codes, and
 * the relay's RSS before / peak (VmHWM) / after. `--script` runs another
 * relay entry file with the same flags (e.g. an older `server.ts`, to
 * compare approaches). Loopback only; bounded in count and time.
 * @module
 */

import { parseArgs } from "node:util";
import { ensureCerts } from "../tools/certs.ts";
import { giantFrames, spawnRelay } from "../tests/helpers/relay_process.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    script: { type: "string" },
    runs: { type: "string", default: "3" },
  },
});
const dir = await Deno.makeTempDir({ prefix: "relay-attack-" });
try {
  await ensureCerts({ dir });
  const ca = await Deno.readTextFile(`${dir}/ca.pem`);
  for (let i = 0; i < Number(values.runs); i++) {
    const relay = await spawnRelay({
      certsDir: dir,
      script: values.script,
      args: ["--quiet"],
    });
    try {
      const r = await giantFrames(relay, ca, 6, 63, 3000);
      const mb = (kb: number) => (kb / 1024).toFixed(0);
      console.log(
        `run ${i + 1}: close after ${
          r.closeMs.map((m) => m.toFixed(0)).join("/")
        } ms, codes ${r.codes.map((c) => c ?? "none").join("/")}, RSS ${
          mb(r.rssBeforeKb)
        } → peak ${mb(r.peakKb)} → after ${mb(r.rssAfterKb)} MB, ${
          (r.bytesSent / 2 ** 20).toFixed(0)
        } MiB written by the attackers`,
      );
    } finally {
      await relay.stop();
    }
  }
} finally {
  await Deno.remove(dir, { recursive: true });
}
