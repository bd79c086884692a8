/**
 * Exponential backoff with full jitter ("Exponential Backoff And Jitter",
 * AWS Architecture Blog, 2015): the n-th delay is uniform in
 * [base·2^n / 2, base·2^n], capped at `max`. Pure; randomness injected.
 * @module
 */

/** Options of a {@link Backoff}. */
export interface BackoffOptions {
  /** First delay ceiling in ms. */
  baseMs: number;
  /** Largest delay in ms. */
  maxMs: number;
  /** Uniform random numbers in [0, 1) (default Math.random: timing, not secrets). */
  random?: () => number;
}

/** A backoff schedule; call {@link next} per failed attempt and {@link reset} on success. */
export class Backoff {
  readonly #base: number;
  readonly #max: number;
  readonly #random: () => number;
  #attempt = 0;

  /** Creates a schedule starting at attempt 0. */
  constructor(options: BackoffOptions) {
    if (!(options.baseMs > 0) || !(options.maxMs >= options.baseMs)) {
      throw new RangeError("backoff needs 0 < baseMs ≤ maxMs");
    }
    this.#base = options.baseMs;
    this.#max = options.maxMs;
    this.#random = options.random ?? Math.random;
  }

  /** Failed attempts since the last reset. */
  get attempt(): number {
    return this.#attempt;
  }

  /** The delay before the next attempt (ms); advances the schedule. */
  next(): number {
    const ceiling = Math.min(
      this.#max,
      this.#base * 2 ** Math.min(this.#attempt, 30),
    );
    this.#attempt++;
    return Math.round(ceiling / 2 + (ceiling / 2) * this.#random());
  }

  /** Back to the first delay (after a success). */
  reset(): void {
    this.#attempt = 0;
  }
}
