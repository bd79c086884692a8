/**
 * The customer client: `deno task customer [flags]` (see
 * `deno task customer --help`). Keys: `customer_identity_keys.json`,
 * `customer_mailbox_key.json`, `known_peers.json` in `--keys DIR` (default
 * `.`). By default the customer prints its address and waits for the bank.
 * @module
 */

import { runClient } from "./client.ts";

if (import.meta.main) Deno.exit(await runClient("customer", Deno.args));
