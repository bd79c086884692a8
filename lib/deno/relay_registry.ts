/**
 * The relay's only state: which connection holds which session ID, and
 * where a frame for an ID that is not connected here goes. A cluster bus
 * (several relay processes) plugs in as a {@link RemoteForwarder}; without
 * one, such a frame is `offline`.
 * @module
 */

import type { Bytes } from "../bytes.ts";

/** Outcome of delivering one DATA frame. */
export type Delivery = "sent" | "offline" | "busy";

/**
 * Delivers frames whose recipient is not connected to this relay process
 * (e.g. over a pub/sub bus to the process that holds it). `frame` is the
 * complete DATA frame with the sender's ID already stamped; `dst` is the
 * recipient's 16-byte session ID (a copy, safe to keep).
 */
export interface RemoteForwarder {
  /** Hands `frame` on towards `dst`; "offline" when no process holds it. */
  forward(dst: Bytes, frame: Bytes): Delivery;
  /** A local connection now holds `id` (after any local replacement): a cluster bus subscribes. */
  bound?(id: Bytes, idHex: string): void;
  /** The local connection holding `idHex` is gone. */
  unbound?(idHex: string): void;
  /** "degraded" while the bus cannot reach the other processes (shown by /healthz). */
  status?(): "ok" | "degraded";
  /** Extra `/healthz` fields. */
  health?(): Record<string, unknown>;
  /** Extra Prometheus lines for `/metrics`. */
  metricsText?(): string;
  /** Stops it when the relay shuts down. */
  close?(): Promise<void>;
}

/** Session ID (hex) → the connection bound to it. */
export class Registry<T> {
  readonly #byId = new Map<string, T>();

  /** Number of bound IDs. */
  get size(): number {
    return this.#byId.size;
  }

  /** The connection bound to `idHex`, if any. */
  get(idHex: string): T | undefined {
    return this.#byId.get(idHex);
  }

  /** Binds `idHex` to `conn`; returns the connection it replaces, if any. */
  bind(idHex: string, conn: T): T | undefined {
    const previous = this.#byId.get(idHex);
    this.#byId.set(idHex, conn);
    return previous === conn ? undefined : previous;
  }

  /** Unbinds `idHex` if (and only if) `conn` holds it. Returns true when it did. */
  unbind(idHex: string, conn: T): boolean {
    if (this.#byId.get(idHex) !== conn) return false;
    this.#byId.delete(idHex);
    return true;
  }
}
