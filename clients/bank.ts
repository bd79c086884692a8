/**
 * The bank client: `deno task bank [--peer ID|ADDRESS] [flags]` (see
 * `deno task bank --help`). Keys: `bank_identity_keys.json`,
 * `bank_mailbox_key.json`, `known_peers.json` in `--keys DIR` (default `.`).
 * By default the bank contacts the customer given with `--peer`.
 * @module
 */

import { runClient } from "./client.ts";

if (import.meta.main) Deno.exit(await runClient("bank", Deno.args));
