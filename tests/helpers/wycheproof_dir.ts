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
