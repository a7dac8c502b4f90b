import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomUUID,
  sign,
  type JsonWebKey,
  type KeyObject,
} from 'node:crypto';
import { SsoError } from './errors.js';
import type { SsoIdentity } from './identity.js';
import type { SigningKeyStore, StoredSigningKey } from './keystore.js';

/** How long past its successor's start a retired key stays published, for clock skew. */
export const KEY_RETIRE_SKEW_MS = 5 * 60_000;
const REFRESH_MIN_LEFT_MS = 5_000;

export interface AssertionSignerOptions {
  /**
   * Where keys are kept across restarts and shared between processes.
   * @default keys in memory only
   */
  store?: SigningKeyStore;
  /**
   * A new key signs once the newest is this old.
   * @default 86_400_000 (24 h)
   */
  rotateAfterMs?: number;
  /**
   * Longest assertion lifetime any app uses: a retired key stays published this long (+ 5 min
   * skew) after the next key took over, then it is dropped from the store and the JWKS.
   * Longer lifetimes are refused.
   * @default 3_600_000 (1 h)
   */
  maxLifetimeMs?: number;
  /** Clock in ms, for tests. @default Date.now */
  now?: () => number;
}

/** Options of one assertion. */
export interface AssertionOptions {
  /** `iss`: the relay's external origin. */
  issuer: string;
  /** `aud`: the app. */
  audience: string;
  /** `exp - iat`, in ms (whole seconds are used; at least 1 s, at most `maxLifetimeMs`). */
  lifetimeMs: number;
  /** `login_identity`: the resolved login identity. */
  loginIdentity: string;
}

interface LiveKey extends StoredSigningKey {
  key: KeyObject;
  publicJwk: JsonWebKey;
  /** base64url of the JWS header, with its `.`. */
  headerPart: string;
}

interface CachedToken {
  token: string;
  refreshAt: number;
}

const b64url = (s: string) => Buffer.from(s, 'utf8').toString('base64url');

/** RFC 7638 thumbprint: a kid that is the same wherever the key is loaded. */
function thumbprint(jwk: JsonWebKey): string {
  const canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
  return createHash('sha256').update(canonical).digest('base64url');
}

function liveKey(stored: StoredSigningKey, where: string): LiveKey {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: stored.privateJwk, format: 'jwk' });
  } catch (err) {
    throw new SsoError(
      'APPPROXY_SSO_KEYSTORE_INVALID',
      `SSO signing key store ${where}: key ${stored.kid} is not a usable EC key`,
      { cause: err },
    );
  }
  const { kty, crv, x, y } = createPublicKey(key).export({ format: 'jwk' });
  const publicJwk: JsonWebKey = { kty, crv, x, y, kid: stored.kid, alg: 'ES256', use: 'sig' };
  const headerPart = b64url(JSON.stringify({ alg: 'ES256', kid: stored.kid, typ: 'JWT' })) + '.';
  return { ...stored, key, publicJwk, headerPart };
}

function newKey(now: number): LiveKey {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const privateJwk = privateKey.export({ format: 'jwk' });
  return liveKey({ kid: thumbprint(privateJwk), privateJwk, createdAt: now }, 'memory');
}

const newestFirst = (a: StoredSigningKey, b: StoredSigningKey) =>
  b.createdAt - a.createdAt || (a.kid < b.kid ? -1 : 1);

/**
 * Signs short-lived ES256 (P-256) JWT assertions of the signed-in user for backends, and
 * publishes its public keys as a JWKS. Signing is synchronous (node:crypto); tokens verify
 * with jose's `jwtVerify` against `createLocalJWKSet(signer.jwks())` or the relay's JWKS URL.
 *
 * Keys rotate after `rotateAfterMs`; a retired key stays in the JWKS for `maxLifetimeMs` + 5 min
 * after its successor started, so every token it signed (cached ones included) still verifies.
 * Two processes on one {@link fileKeyStore} file: each re-reads the file before writing and
 * adopts a fresh key another wrote instead of making its own; `jwks()` re-reads it so each
 * process publishes every process's keys.
 *
 * @example
 * const signer = new AssertionSigner();
 * const jwt = signer.assertion(identity, {
 *   issuer: 'https://wiki.example.com',
 *   audience: 'wiki',
 *   lifetimeMs: 300_000,
 *   loginIdentity: 'alice@corp.example',
 * });
 */
export class AssertionSigner {
  /** The longest lifetime {@link assertion} accepts. */
  readonly maxLifetimeMs: number;
  readonly #rotateAfterMs: number;
  readonly #store: SigningKeyStore | undefined;
  readonly #now: () => number;
  /** Newest first. */
  #keys: LiveKey[] = [];
  #cache = new WeakMap<object, Map<string, CachedToken>>();

  /** @throws SsoError `APPPROXY_SSO_KEYSTORE_INVALID` when the store holds unusable keys. */
  constructor(opts: AssertionSignerOptions = {}) {
    this.#rotateAfterMs = positive(opts.rotateAfterMs ?? 86_400_000, 'rotateAfterMs');
    this.maxLifetimeMs = positive(opts.maxLifetimeMs ?? 3_600_000, 'maxLifetimeMs');
    this.#store = opts.store;
    this.#now = opts.now ?? Date.now;
    this.#load();
  }

  /** The public keys, newest first: `{ keys: [{ kty, crv, x, y, kid, alg: 'ES256', use: 'sig' }] }`. */
  jwks(): { keys: JsonWebKey[] } {
    this.#load();
    this.#prune(this.#now());
    return { keys: this.#keys.map((k) => ({ ...k.publicJwk })) };
  }

  /** Starts signing with a new key now (tests, operations). */
  rotate(): void {
    this.#rotate(this.#now(), true);
  }

  /**
   * A signed compact JWT: header `{ alg: 'ES256', kid, typ: 'JWT' }`; claims `iss`, `aud`,
   * `sub`, `email`, `name`, `groups`, `roles`, `upn`, `preferred_username`, `login_identity`,
   * `iat`, `exp` (= `iat` + lifetime), `jti` (random); absent or empty values left out.
   *
   * The token is cached per identity object and (issuer, audience, login identity): the same
   * one comes back until less than 25 % of its lifetime (or at most 5 s) is left.
   *
   * @throws SsoError `APPPROXY_SSO_CONFIG_INVALID` on a lifetime under 1 s or over
   *   `maxLifetimeMs`, or an empty issuer/audience.
   */
  assertion(identity: SsoIdentity, opts: AssertionOptions): string {
    const now = this.#now();
    const cacheKey = opts.issuer + '\n' + opts.audience + '\n' + opts.loginIdentity;
    let perIdentity = this.#cache.get(identity);
    const hit = perIdentity?.get(cacheKey);
    if (hit !== undefined && now < hit.refreshAt) return hit.token;

    const { lifetimeMs } = opts;
    this.checkLifetime(lifetimeMs);
    if (typeof opts.issuer !== 'string' || opts.issuer === '') throw config('issuer is empty');
    if (typeof opts.audience !== 'string' || opts.audience === '') {
      throw config('audience is empty');
    }
    const key = this.#signingKey(now);
    const iat = Math.floor(now / 1000);
    const exp = iat + Math.floor(lifetimeMs / 1000);
    const claims: Record<string, unknown> = { iss: opts.issuer, aud: opts.audience };
    claims.sub = identity.sub;
    if (identity.email) claims.email = identity.email;
    if (identity.name) claims.name = identity.name;
    if (identity.groups?.length) claims.groups = identity.groups;
    if (identity.roles?.length) claims.roles = identity.roles;
    if (identity.upn) claims.upn = identity.upn;
    if (identity.preferredUsername) claims.preferred_username = identity.preferredUsername;
    claims.login_identity = opts.loginIdentity;
    claims.iat = iat;
    claims.exp = exp;
    claims.jti = randomUUID();
    const input = key.headerPart + b64url(JSON.stringify(claims));
    const signature = sign('sha256', Buffer.from(input), {
      key: key.key,
      dsaEncoding: 'ieee-p1363',
    });
    const token = input + '.' + signature.toString('base64url');

    const lifetime = (exp - iat) * 1000;
    const refreshAt = exp * 1000 - Math.max(lifetime / 4, REFRESH_MIN_LEFT_MS);
    if (perIdentity === undefined) this.#cache.set(identity, (perIdentity = new Map()));
    perIdentity.set(cacheKey, { token, refreshAt });
    return token;
  }

  /** @throws SsoError `APPPROXY_SSO_CONFIG_INVALID` when `lifetimeMs` is not one this signer serves. */
  checkLifetime(lifetimeMs: number): void {
    if (
      typeof lifetimeMs !== 'number' ||
      !Number.isFinite(lifetimeMs) ||
      lifetimeMs < 1000 ||
      lifetimeMs > this.maxLifetimeMs
    ) {
      throw config(
        `assertion lifetime ${String(lifetimeMs)} ms must be between 1000 and maxLifetimeMs (${this.maxLifetimeMs})`,
      );
    }
  }

  #signingKey(now: number): LiveKey {
    const newest = this.#keys[0];
    if (newest !== undefined && now - newest.createdAt < this.#rotateAfterMs) return newest;
    return this.#rotate(now, false);
  }

  /** A new key signs from `now`; without `force`, a fresh key another process stored wins. */
  #rotate(now: number, force: boolean): LiveKey {
    this.#load();
    const newest = this.#keys[0];
    if (!force && newest !== undefined && now - newest.createdAt < this.#rotateAfterMs) {
      return newest;
    }
    const key = newKey(now);
    this.#keys.unshift(key);
    this.#prune(now);
    this.#save();
    return key;
  }

  /** Merges the store's keys into ours (union by kid). */
  #load(): void {
    const stored = this.#store?.load();
    if (stored === undefined) return;
    const known = new Set(this.#keys.map((k) => k.kid));
    let added = false;
    for (const s of stored) {
      if (known.has(s.kid)) continue;
      this.#keys.push(liveKey(s, 'store'));
      known.add(s.kid);
      added = true;
    }
    if (added) this.#keys.sort(newestFirst);
  }

  /** Drops keys retired longer than the longest assertion lifetime + skew. */
  #prune(now: number): void {
    const keep = this.#keys.filter(
      (k, i) =>
        i === 0 || now < this.#keys[i - 1]!.createdAt + this.maxLifetimeMs + KEY_RETIRE_SKEW_MS,
    );
    if (keep.length === this.#keys.length) return;
    this.#keys = keep;
    this.#save();
  }

  #save(): void {
    this.#store?.save(
      this.#keys.map(({ kid, privateJwk, createdAt }) => ({ kid, privateJwk, createdAt })),
    );
  }
}

function config(problem: string): SsoError {
  return new SsoError('APPPROXY_SSO_CONFIG_INVALID', `SSO assertion: ${problem}`);
}

function positive(v: number, name: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw config(`${name} must be a positive number of ms`);
  }
  return v;
}
