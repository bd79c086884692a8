/**
 * Applies asynchronous results in the order their calls were made, per key,
 * whatever order they finish in: a driver that calls a conversation as
 * events come (a relay frame, a timer, user input) and applies each call's
 * output when it resolves could otherwise show a later call's output first
 * (a message before the one the peer sent before it). Each key's queue is
 * dropped once it drains, so keys (peer IDs, possibly a stranger's) cost
 * nothing while idle.
 * @module
 */

/** Per-key in-order application; see the module doc. */
export class InOrder<T> {
  readonly #apply: (result: T) => void;
  readonly #fail: (error: unknown) => void;
  readonly #queues = new Map<
    string,
    { tail: Promise<void>; pending: number }
  >();

  /** `apply` takes each result in call order per key; `fail` each rejection (in its place in the order). */
  constructor(apply: (result: T) => void, fail: (error: unknown) => void) {
    this.#apply = apply;
    this.#fail = fail;
  }

  /**
   * Queues `result` behind the results pushed earlier under `key`; the
   * returned promise resolves once it was applied (never rejects).
   */
  push(key: string, result: Promise<T>): Promise<void> {
    let q = this.#queues.get(key);
    if (!q) {
      q = { tail: Promise.resolve(), pending: 0 };
      this.#queues.set(key, q);
    }
    const queue = q;
    queue.pending++;
    // Observe a rejection now (it is applied in order later), so it is never "unhandled".
    result.catch(() => {});
    queue.tail = queue.tail.then(() => result).then(
      (r) => this.#apply(r),
      (e) => this.#fail(e),
    ).catch((e) => this.#fail(e)).finally(() => {
      if (--queue.pending === 0 && this.#queues.get(key) === queue) {
        this.#queues.delete(key);
      }
    });
    return queue.tail;
  }

  /** Keys with results not yet applied. */
  get size(): number {
    return this.#queues.size;
  }
}
