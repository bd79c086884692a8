/**
 * A token bucket for per-connection flood control, sans-I/O: the caller
 * passes the current time in milliseconds.
 * @module
 */

/** Token bucket refilled at `rate` tokens/s up to `burst`. Not safe for concurrent use. */
export class TokenBucket {
  #tokens: number;
  #last: number;
  readonly #rate: number;
  readonly #burst: number;

  /** Creates a full bucket. */
  constructor(rate: number, burst: number, now: number) {
    this.#rate = rate;
    this.#burst = burst;
    this.#tokens = burst;
    this.#last = now;
  }

  /** Takes `n` tokens if available at time `now` (ms); false when empty. */
  take(now: number, n = 1): boolean {
    const elapsed = now - this.#last;
    if (elapsed > 0) {
      this.#tokens = Math.min(
        this.#burst,
        this.#tokens + (elapsed * this.#rate) / 1000,
      );
      this.#last = now;
    }
    if (this.#tokens < n) return false;
    this.#tokens -= n;
    return true;
  }
}
