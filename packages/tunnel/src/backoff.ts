export interface BackoffOptions {
  /** @default 250 */
  baseMs?: number;
  /** @default 4000 */
  maxMs?: number;
}

/**
 * Capped exponential backoff with full jitter (AWS architecture blog): the n-th retry
 * waits a uniform random time in [0, min(max, base·2ⁿ)], so a fleet of connectors that
 * lost their relay at once does not reconnect in lockstep.
 *
 * @example
 * const b = new Backoff({ baseMs: 100, maxMs: 2000 });
 * setTimeout(retry, b.next()); // later, after a success: b.reset()
 */
export class Backoff {
  readonly #base: number;
  readonly #max: number;
  #attempt = 0;
  constructor(opts: BackoffOptions = {}) {
    this.#base = opts.baseMs ?? 250;
    this.#max = opts.maxMs ?? 4000;
  }
  get attempt(): number {
    return this.#attempt;
  }
  next(random: () => number = Math.random): number {
    const ceiling = Math.min(this.#max, this.#base * 2 ** Math.min(this.#attempt, 30));
    this.#attempt++;
    return Math.round(random() * ceiling);
  }
  reset(): void {
    this.#attempt = 0;
  }
}
