/**
 * A least-recently-used map bounded by an approximate byte budget: each entry declares its
 * cost, the oldest entries go when the total is over budget.
 */
export class LruCache<V> {
  readonly #entries = new Map<string, { value: V; cost: number }>();
  readonly #budget: number;
  #total = 0;

  constructor(budgetBytes: number) {
    this.#budget = budgetBytes;
  }

  get size(): number {
    return this.#entries.size;
  }

  get(key: string): V | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    // Re-insert: Map keeps insertion order, so the front is always the least recently used.
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    return entry.value;
  }

  set(key: string, value: V, cost: number): void {
    if (cost > this.#budget) return;
    const old = this.#entries.get(key);
    if (old) {
      this.#total -= old.cost;
      this.#entries.delete(key);
    }
    this.#entries.set(key, { value, cost });
    this.#total += cost;
    for (const [k, e] of this.#entries) {
      if (this.#total <= this.#budget) break;
      this.#entries.delete(k);
      this.#total -= e.cost;
    }
  }

  delete(key: string): void {
    const entry = this.#entries.get(key);
    if (!entry) return;
    this.#entries.delete(key);
    this.#total -= entry.cost;
  }
}
