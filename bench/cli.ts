/**
 * The bench scripts' command lines: flags parsed with `node:util` parseArgs,
 * numbers checked, and every usage error reported as one line on stderr with
 * exit code 2 (never a stack trace); `--help` prints the usage and exits 0.
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";

/** Exit code of a usage error (unknown flag, bad number). */
export const USAGE_EXIT = 2;

/** A usage error: reported as `name: message` without a stack trace. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** A positive integer flag value, or a {@link UsageError} naming the flag. */
export function positiveInt(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) {
    throw new UsageError(`${flag}: '${text}' is not a positive integer`);
  }
  return n;
}

/** A positive (finite) number flag value, or a {@link UsageError}. */
export function positiveNumber(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) {
    throw new UsageError(`${flag}: '${text}' is not a positive number`);
  }
  return n;
}

/** parseArgs that throws a {@link UsageError} for an unknown flag, a missing value or a stray argument. */
export function parseFlags<T extends ParseArgsConfig>(
  args: string[],
  config: T,
): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs<T>({ ...config, args });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/**
 * Runs a script's `main`: its number is the exit code; a {@link UsageError}
 * prints `name: message (--help: usage)` and exits {@link USAGE_EXIT}. Other
 * errors propagate (a failed measurement keeps its stack).
 */
export async function runCli(
  name: string,
  main: () => Promise<number>,
): Promise<never> {
  let code: number;
  try {
    code = await main();
  } catch (e) {
    code = usageError(name, e);
  }
  Deno.exit(code);
}

/**
 * A script whose one optional argument is a duration in ms (default
 * `defaultMs`): `--help` prints `usage`; `f(ms)` prints the figures.
 */
export function runWithMs(
  name: string,
  usage: string,
  defaultMs: number,
  f: (ms: number) => Promise<void>,
): Promise<never> {
  return runCli(name, async () => {
    const [arg = String(defaultMs), ...rest] = Deno.args;
    if (arg === "--help" || arg === "-h") {
      console.log(usage);
      return 0;
    }
    if (rest.length) throw new UsageError(`unexpected '${rest[0]}'`);
    await f(positiveInt(arg, "MS"));
    return 0;
  });
}

/**
 * For a top-level script: runs its flag parsing `f`; a {@link UsageError}
 * prints `name: message (--help: usage)` and exits {@link USAGE_EXIT}.
 */
export function flagsOrExit<T>(name: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    Deno.exit(usageError(name, e));
  }
}

/** Reports a {@link UsageError} and returns {@link USAGE_EXIT}; rethrows anything else. */
function usageError(name: string, e: unknown): number {
  if (!(e instanceof UsageError)) throw e;
  console.error(`${name}: ${e.message} (--help: usage)`);
  return USAGE_EXIT;
}
