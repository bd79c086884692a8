/**
 * WebSocket close codes as people read them: RFC 6455 §7.4's and the relay's
 * own (lib/relay_frame.ts `CloseCode`, PROTOCOL.md §1). One table for the
 * relay's log and the clients' notices, so both name a close the same way.
 * @module
 */

/** What each close code means (RFC 6455 §7.4.1, relay codes 4000–4003). */
const NAMES: Record<number, string> = {
  1000: "normal close",
  1001: "going away",
  1002: "protocol error",
  1003: "unsupported data",
  1005: "no close code",
  1006: "no close frame",
  1007: "invalid data",
  1008: "policy violation",
  1009: "message too big",
  1011: "internal error",
  4000: "replaced: the same session ID registered on a newer connection",
  4001: "registration timeout",
  4002: "subprotocol relay.v1 required",
  4003: "registration failed",
};

/**
 * True when the connection ended without a close frame: 1006 (RFC 6455
 * §7.1.5: the transport failed or was cut), or 0 (no code at all, as a
 * WebSocket implementation may report it).
 */
export function isAbnormalClose(code: number): boolean {
  return code === 1006 || code === 0;
}

/**
 * A close code with its meaning, and the reason text when there is one.
 *
 * @example
 * ```ts
 * import { describeClose } from "./close_code.ts";
 * describeClose(1001, "relay shutting down"); // "1001 going away: relay shutting down"
 * describeClose(4999, ""); // "4999"
 * ```
 */
export function describeClose(code: number, reason = ""): string {
  const name = NAMES[code];
  const head = name === undefined ? String(code) : `${code} ${name}`;
  return reason ? `${head}: ${reason}` : head;
}
