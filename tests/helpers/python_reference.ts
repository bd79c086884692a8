/**
 * The independent Python references (tests/reference/*.py, Debian's
 * `cryptography`), run as a vector test's second opinion.
 * @module
 */

import assert from "node:assert/strict";

/**
 * Runs tests/reference/`script` with /usr/bin/python3 and `args`, asserts it
 * exits 0 (its stderr as the message), and returns its stdout parsed as JSON.
 */
export async function runReference(
  script: string,
  ...args: string[]
  // deno-lint-ignore no-explicit-any -- each script prints its own JSON shape (as JSON.parse gives)
): Promise<any> {
  const out = await new Deno.Command("/usr/bin/python3", {
    args: [
      new URL(`../reference/${script}`, import.meta.url).pathname,
      ...args,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout));
}
