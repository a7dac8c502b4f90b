import {
  createLocalJWKSet,
  errors as joseErrors,
  type CryptoKey,
  type FlattenedJWSInput,
  type JSONWebKeySet,
  type JWSHeaderParameters,
} from 'jose';
import { PreauthError } from './errors.js';
import { HttpFailure, requestJson, type HttpOptions } from './internal/http.js';

/** Options of {@link JwksCache}. */
export interface JwksCacheOptions {
  /** How long fetched keys are used before they are fetched again. @default 600000 (10 min) */
  maxAgeMs?: number;
  /**
   * Least time between two fetches caused by a key id the cache does not know: a token
   * signed with a new key (rotation) triggers one refetch, a flood of forged `kid`s no more
   * than one per cooldown. @default 30000
   */
  cooldownMs?: number;
  /** Clock in ms since the epoch. @default Date.now */
  clock?: () => number;
}

type KeyResolver = ReturnType<typeof createLocalJWKSet>;

/**
 * The identity provider's signing keys (`jwks_uri`), cached, with key rotation: an unknown
 * `kid` makes the cache fetch the set again — at most once per cooldown. Symmetric keys
 * (`kty: oct`) are dropped, so an HS256 token can never verify against them.
 *
 * @example
 * const jwks = new JwksCache(metadata.jwks_uri, http, { cooldownMs: 30_000 });
 * await jwtVerify(token, jwks.getKey, { algorithms: ['RS256'] });
 */
export class JwksCache {
  readonly #url: string;
  readonly #http: HttpOptions;
  readonly #maxAgeMs: number;
  readonly #cooldownMs: number;
  readonly #clock: () => number;
  #keys: KeyResolver | undefined;
  #fetchedAt = -Infinity;
  #attemptedAt = -Infinity;
  #inFlight: Promise<void> | undefined;
  #fetches = 0;

  constructor(url: string, http: HttpOptions, opts: JwksCacheOptions = {}) {
    this.#url = url;
    this.#http = http;
    this.#maxAgeMs = opts.maxAgeMs ?? 600_000;
    this.#cooldownMs = opts.cooldownMs ?? 30_000;
    this.#clock = opts.clock ?? Date.now;
  }

  /** How many times the set was fetched (for metrics and tests). */
  get fetchCount(): number {
    return this.#fetches;
  }

  /** The key resolver to hand to jose's `jwtVerify`. */
  readonly getKey = async (
    header: JWSHeaderParameters,
    token: FlattenedJWSInput,
  ): Promise<CryptoKey> => {
    const now = this.#clock();
    if (!this.#keys || now - this.#fetchedAt >= this.#maxAgeMs) {
      // Stale keys still serve when the refresh fails (the provider may be briefly down).
      await this.#refresh().catch((err: unknown) => {
        if (!this.#keys) throw err;
      });
    }
    try {
      return await this.#keys!(header, token);
    } catch (err) {
      if (!(err instanceof joseErrors.JWKSNoMatchingKey)) throw err;
      if (this.#clock() - this.#attemptedAt < this.#cooldownMs) throw err;
      await this.#refresh();
      return this.#keys!(header, token);
    }
  };

  /** Fetches the set now (deduplicated when a fetch is already under way). */
  refresh(): Promise<void> {
    return this.#refresh();
  }

  #refresh(): Promise<void> {
    this.#inFlight ??= this.#fetch().finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  async #fetch(): Promise<void> {
    this.#attemptedAt = this.#clock();
    this.#fetches++;
    let json: unknown;
    try {
      const res = await requestJson(
        this.#url,
        { headers: { accept: 'application/json, application/jwk-set+json' } },
        this.#http,
      );
      if (res.status !== 200) throw new HttpFailure(`answered ${res.status}`);
      json = res.json;
    } catch (cause) {
      throw new PreauthError(
        'APPPROXY_PREAUTH_JWKS_FAILED',
        `signing keys could not be fetched (${(cause as Error).message})`,
        { cause },
      );
    }
    const keys = (json as { keys?: unknown } | undefined)?.keys;
    if (!Array.isArray(keys)) {
      throw new PreauthError('APPPROXY_PREAUTH_JWKS_FAILED', 'jwks_uri did not answer a JWK set');
    }
    const usable = keys.filter(
      (k): k is Record<string, unknown> =>
        typeof k === 'object' && k !== null && (k as { kty?: unknown }).kty !== 'oct',
    );
    try {
      this.#keys = createLocalJWKSet({ keys: usable } as JSONWebKeySet);
    } catch (cause) {
      throw new PreauthError('APPPROXY_PREAUTH_JWKS_FAILED', 'the JWK set is malformed', {
        cause,
      });
    }
    this.#fetchedAt = this.#clock();
  }
}
