import type { PublishedAppConfig, RelayConfig } from '@appproxy/config';

/** Which bucket refused a request: the relay's overall one, the app's, or one user's. */
export type ThrottleScope = 'relay' | 'app' | 'user';

export interface Throttled {
  scope: ThrottleScope;
  /** Whole seconds until the bucket has a token again (`Retry-After`), at least 1. */
  retryAfterSeconds: number;
}

/** Milliseconds on a monotonic clock; tests pass a fake one. */
export type Clock = () => number;

const monotonic: Clock = () => performance.now();

/**
 * Per-user buckets kept per app at most; beyond, the least recently used go first. A bucket
 * that has refilled is the same as none, so dropping it changes nothing for its user.
 * @default 10000
 */
export const MAX_USER_BUCKETS = 10_000;

/**
 * A token bucket: `burst` tokens, refilled at `ratePerSecond`; each request takes one.
 * Refilled lazily on each take, so an idle bucket costs no timer.
 */
export class TokenBucket {
  #tokens: number;
  #at: number;

  constructor(
    readonly ratePerSecond: number,
    readonly burst: number,
    now: number,
  ) {
    this.#tokens = burst;
    this.#at = now;
  }

  #refill(now: number): void {
    if (now > this.#at) {
      this.#tokens = Math.min(
        this.burst,
        this.#tokens + ((now - this.#at) / 1000) * this.ratePerSecond,
      );
      this.#at = now;
    }
  }

  /** True when a token is there (at `now`), without taking it. */
  has(now: number): boolean {
    this.#refill(now);
    return this.#tokens >= 1;
  }

  /** Takes a token; false (and nothing taken) when there is none. */
  take(now: number): boolean {
    if (!this.has(now)) return false;
    this.#tokens -= 1;
    return true;
  }

  /** Whole seconds until a token is there again; 0 when one is. */
  waitSeconds(now: number): number {
    this.#refill(now);
    if (this.#tokens >= 1) return 0;
    return Math.max(1, Math.ceil((1 - this.#tokens) / this.ratePerSecond));
  }

  /** True when the bucket is full at `now`: keeping it tells nothing a new one would not. */
  full(now: number): boolean {
    this.#refill(now);
    return this.#tokens >= this.burst;
  }
}

/** Per-user buckets of one app with bounded memory: full ones and the least recent go. */
class UserBuckets {
  readonly #buckets = new Map<string, TokenBucket>();

  constructor(
    readonly ratePerSecond: number,
    readonly maxUsers: number,
  ) {}

  get size(): number {
    return this.#buckets.size;
  }

  get(user: string, now: number): TokenBucket {
    let bucket = this.#buckets.get(user);
    if (bucket) {
      // Map order is insertion order: re-inserting keeps the least recently used first.
      this.#buckets.delete(user);
    } else {
      if (this.#buckets.size >= this.maxUsers) this.#evict(now);
      bucket = new TokenBucket(this.ratePerSecond, Math.max(1, Math.ceil(this.ratePerSecond)), now);
    }
    this.#buckets.set(user, bucket);
    return bucket;
  }

  /** Drops every refilled bucket, then, if still full, the least recently used. */
  #evict(now: number): void {
    for (const [user, bucket] of this.#buckets) if (bucket.full(now)) this.#buckets.delete(user);
    if (this.#buckets.size >= this.maxUsers) {
      const oldest = this.#buckets.keys().next().value;
      if (oldest !== undefined) this.#buckets.delete(oldest);
    }
  }
}

interface AppBuckets {
  app?: TokenBucket;
  users?: UserBuckets;
}

/**
 * `relay.limits.requestsPerSecond` and each app's `limits`: token buckets in front of the
 * tunnels, so a flood at one app (or from one user) is answered 429 at the relay and never
 * reaches its backend nor crowds out the other apps. Built per configuration (`Edge`); a
 * reload starts from full buckets with the new limits.
 *
 * `share`: the number of processes that split these limits (relay workers on one host); each
 * bucket gets 1/share of every rate and burst (at least one token), so together they admit
 * what the configuration says.
 */
export class Throttle {
  readonly #now: Clock;
  readonly #relay?: TokenBucket;
  readonly #apps = new Map<string, AppBuckets>();
  /** The processes splitting these limits. */
  readonly share: number;

  constructor(
    config: Pick<RelayConfig, 'relay' | 'apps'>,
    opts: { clock?: Clock; maxUsers?: number; share?: number } = {},
  ) {
    this.#now = opts.clock ?? monotonic;
    const now = this.#now();
    const share = (this.share = opts.share ?? 1);
    const bucket = (rate: number, burst: number | undefined) =>
      new TokenBucket(rate / share, Math.max(1, (burst ?? Math.ceil(rate)) / share), now);
    const { requestsPerSecond, burst } = config.relay.limits;
    if (requestsPerSecond !== undefined) this.#relay = bucket(requestsPerSecond, burst);
    for (const app of config.apps) {
      const limits = app.limits;
      if (!limits) continue;
      const buckets: AppBuckets = {};
      if (limits.requestsPerSecond !== undefined)
        buckets.app = bucket(limits.requestsPerSecond, limits.burst);
      if (limits.perUserRequestsPerSecond !== undefined)
        buckets.users = new UserBuckets(
          limits.perUserRequestsPerSecond / share,
          opts.maxUsers ?? MAX_USER_BUCKETS,
        );
      this.#apps.set(app.name, buckets);
    }
  }

  /** True when the app has a per-user limit (the caller then names the user). */
  perUser(app: PublishedAppConfig): boolean {
    return this.#apps.get(app.name)?.users !== undefined;
  }

  /**
   * Admits one request to `app` against the relay's and the app's buckets: a token is taken
   * from both, or from neither when one is empty (the refusal names that one).
   */
  admit(app: PublishedAppConfig): Throttled | undefined {
    const relay = this.#relay;
    const own = this.#apps.get(app.name)?.app;
    if (!relay && !own) return undefined;
    const now = this.#now();
    if (relay && !relay.has(now))
      return { scope: 'relay', retryAfterSeconds: relay.waitSeconds(now) };
    if (own && !own.has(now)) return { scope: 'app', retryAfterSeconds: own.waitSeconds(now) };
    relay?.take(now);
    own?.take(now);
    return undefined;
  }

  /** Admits one request of `user` (a signed-in name or a client address) to `app`. */
  admitUser(app: PublishedAppConfig, user: string): Throttled | undefined {
    const users = this.#apps.get(app.name)?.users;
    if (!users) return undefined;
    const now = this.#now();
    const bucket = users.get(user, now);
    if (bucket.take(now)) return undefined;
    return { scope: 'user', retryAfterSeconds: bucket.waitSeconds(now) };
  }

  /** Per-user buckets held for `app` now (memory bound tests). */
  usersHeld(appName: string): number {
    return this.#apps.get(appName)?.users?.size ?? 0;
  }
}
