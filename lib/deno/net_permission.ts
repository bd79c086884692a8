/**
 * Network permission for a relay URL, checked before connecting: a denied
 * host becomes a message naming the exact flag to add, instead of the raw
 * `getaddrinfo EPERM` / `Requires net access` the runtime gives.
 * @module
 */

/** `host:port` of a `wss://` URL as `--allow-net` spells it (IPv6 in brackets, port 443 by default). */
export function netGrant(url: URL): string {
  return `${url.hostname}:${url.port || "443"}`;
}

/**
 * Undefined when this process may connect to `url`'s host and port;
 * otherwise the explanation with the `--allow-net` flag (and the task and
 * compile variants that grant it).
 */
export function netPermissionProblem(url: URL): string | undefined {
  const grant = netGrant(url);
  let state: Deno.PermissionState;
  try {
    state = Deno.permissions.querySync({ name: "net", host: grant }).state;
  } catch {
    return undefined; // not a host the permission API can check: let the connection say
  }
  if (state === "granted") return undefined;
  return `no network permission for ${grant}. Add --allow-net=${grant} to the deno run line ` +
    `(tasks: RELAY_HOST=${grant} deno task bank:remote / customer:remote; ` +
    `binaries: deno task compile --relay-host ${grant})`;
}
