/**
 * Maps allocated on first write. An empty `Map` costs ~190 B of heap; an
 * idle conversation holds several that are empty most of its life (outbox,
 * in-flight packets, the reorder buffer). A field starts as the one shared
 * {@link EMPTY_MAP}, which refuses writes (a write through a field that was
 * not made {@link writable} throws instead of leaking into other
 * conversations), and gets its own map at the first write.
 * @module
 */

/** The shared empty map: reads see nothing, `set` throws. */
class NoMap extends Map<never, never> {
  override set(): this {
    throw new TypeError("write to the shared empty map (use writable())");
  }
}

const NONE: Map<never, never> = new NoMap();

/**
 * The shared empty map, typed for a field.
 * @example
 * ```ts
 * import { emptyMap, writable } from "./lazy_map.ts";
 * let m = emptyMap<number, string>();
 * m = writable(m);
 * m.set(1, "one");
 * ```
 */
export function emptyMap<K, V>(): Map<K, V> {
  return NONE as unknown as Map<K, V>;
}

/** `m` itself, or a new map when `m` is the shared empty one: assign it back before writing. */
export function writable<K, V>(m: Map<K, V>): Map<K, V> {
  return m === (NONE as unknown) ? new Map<K, V>() : m;
}

/** `m`, or the shared empty map once `m` is empty (its table is freed): for fields that empty out when idle. */
export function shrink<K, V>(m: Map<K, V>): Map<K, V> {
  return m.size === 0 ? emptyMap<K, V>() : m;
}
