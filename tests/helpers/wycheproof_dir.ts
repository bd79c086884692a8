/**
 * Where the Wycheproof vectors are: `$WYCHEPROOF_DIR` when set, otherwise
 * `../shared/vectors/wycheproof/` beside the repository (never copied in).
 * @module
 */

const fromEnv = (() => {
  try {
    return Deno.env.get("WYCHEPROOF_DIR");
  } catch {
    return undefined; // no --allow-env: use the default location
  }
})();

/** Directory URL of the Wycheproof JSON files (with a trailing slash). */
export const WYCHEPROOF_DIR: URL = fromEnv
  ? new URL(`file://${fromEnv.replace(/\/?$/, "/")}`)
  : new URL("../../../shared/vectors/wycheproof/", import.meta.url);

/**
 * Fails (never skips) when the vectors are not where {@link WYCHEPROOF_DIR}
 * says: a missing vector set is a broken test set-up, not a pass.
 */
export function requireWycheproof(): void {
  let ok = false;
  try {
    ok = Deno.statSync(WYCHEPROOF_DIR).isDirectory;
  } catch {
    ok = false;
  }
  if (!ok) {
    throw new Error(
      `Wycheproof vectors not found at ${WYCHEPROOF_DIR.pathname}: ` +
        `set WYCHEPROOF_DIR to the folder holding them (.ci/run does this)`,
    );
  }
}
