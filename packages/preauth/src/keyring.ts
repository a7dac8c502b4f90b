import { createHash, hkdfSync } from 'node:crypto';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { CompactEncrypt, compactDecrypt, decodeProtectedHeader, type CryptoKey } from 'jose';
import { PreauthError } from './errors.js';
import { LruCache } from './internal/lru.js';

/** One relay secret: its id travels in each sealed cookie's header (`kid`). */
export interface SealingSecret {
  /** 1–64 of `A–Z a–z 0–9 . _ -`. */
  id: string;
  /** At least 32 characters of high entropy (e.g. `openssl rand -base64 48`). */
  secret: string;
}

/**
 * What a sealed value is for; each purpose has its own derived key and `typ`, so a value
 * sealed for one is refused as another (an app session is never an admin session).
 */
export type SealPurpose = 'session' | 'transaction' | 'admin-session';

/** An unsealed value and whether it was sealed with the current key. */
export interface Unsealed {
  payload: Record<string, unknown>;
  keyId: string;
  current: boolean;
}

const KEY_ID = /^[A-Za-z0-9._-]{1,64}$/;
/** The plaintext is DEFLATE-compressed JSON (node:zlib, synchronous: no web streams per request). */
const CTY = 'json+deflate';
const MAX_PLAINTEXT = 512 * 1024;
const MIN_SECRET_LENGTH = 32;
const TYP: Record<SealPurpose, string> = {
  session: 'appproxy-session',
  transaction: 'appproxy-transaction',
  'admin-session': 'appproxy-admin-session',
};

/** Options of {@link Keyring}. */
export interface KeyringOptions {
  /**
   * Memory for sessions already opened, keyed by the SHA-256 of the sealed value: a hit skips
   * the decryption (WebCrypto, ~100–200 µs) — the same bytes always open to the same payload.
   * Transactions are never cached. `0` disables it. @default 16777216 (16 MiB)
   */
  cacheBytes?: number;
}

/**
 * The relay's sealing keys: JWE `dir` + `A256GCM` over DEFLATE-compressed JSON
 * (`cty: json+deflate`), one key per purpose derived (HKDF-SHA256) from each secret. The first
 * secret seals; every listed secret still unseals, so secrets rotate without signing anyone
 * out: put a new one first, keep the old one listed for the session lifetime, then drop it.
 * Unsealed payloads are frozen (they may be shared through the cache).
 *
 * @example
 * const keyring = new Keyring([{ id: '2025-06', secret: process.env.APPPROXY_SESSION_SECRET! }]);
 * const sealed = await keyring.seal('session', { sub: 'alice' });
 * (await keyring.unseal('session', sealed)).payload.sub; // 'alice'
 */
export class Keyring {
  readonly currentKeyId: string;
  readonly #keys = new Map<string, Record<SealPurpose, Promise<CryptoKey>>>();
  readonly #cache: LruCache<Unsealed> | undefined;

  constructor(secrets: readonly SealingSecret[], opts: KeyringOptions = {}) {
    if (!Array.isArray(secrets) || secrets.length === 0) {
      throw new PreauthError(
        'APPPROXY_PREAUTH_CONFIG_INVALID',
        'at least one session secret is required',
      );
    }
    for (const [i, s] of secrets.entries()) {
      if (typeof s?.id !== 'string' || !KEY_ID.test(s.id)) {
        throw new PreauthError(
          'APPPROXY_PREAUTH_CONFIG_INVALID',
          `session secret #${i + 1}: id must be 1-64 of A-Z a-z 0-9 . _ -`,
        );
      }
      if (typeof s.secret !== 'string' || s.secret.length < MIN_SECRET_LENGTH) {
        throw new PreauthError(
          'APPPROXY_PREAUTH_CONFIG_INVALID',
          `session secret "${s.id}" must be at least ${MIN_SECRET_LENGTH} characters`,
        );
      }
      if (this.#keys.has(s.id)) {
        throw new PreauthError(
          'APPPROXY_PREAUTH_CONFIG_INVALID',
          `session secret id "${s.id}" is listed twice`,
        );
      }
      this.#keys.set(s.id, {
        session: derive(s.secret, 'session'),
        transaction: derive(s.secret, 'transaction'),
        'admin-session': derive(s.secret, 'admin-session'),
      });
    }
    this.currentKeyId = secrets[0]!.id;
    const cacheBytes = opts.cacheBytes ?? 16 * 1024 * 1024;
    this.#cache = cacheBytes > 0 ? new LruCache(cacheBytes) : undefined;
  }

  /** Seals a JSON object with the current key. */
  async seal(purpose: SealPurpose, payload: Record<string, unknown>): Promise<string> {
    const key = await this.#keys.get(this.currentKeyId)![purpose];
    return new CompactEncrypt(deflateRawSync(JSON.stringify(payload)))
      .setProtectedHeader({
        alg: 'dir',
        enc: 'A256GCM',
        kid: this.currentKeyId,
        typ: TYP[purpose],
        cty: CTY,
      })
      .encrypt(key);
  }

  /**
   * Opens a sealed value of `purpose`.
   * @throws PreauthError `APPPROXY_PREAUTH_SESSION_INVALID` with reason `malformed`,
   *   `unknown_key`, `wrong_type` or `decrypt_failed` — a forged, tampered or foreign value.
   */
  async unseal(purpose: SealPurpose, sealed: string): Promise<Unsealed> {
    const invalid = (reason: string, cause?: unknown) =>
      new PreauthError('APPPROXY_PREAUTH_SESSION_INVALID', `sealed ${purpose} refused: ${reason}`, {
        reason,
        cause,
      });
    if (typeof sealed !== 'string' || sealed.length > 64 * 1024) throw invalid('malformed');
    const cacheKey =
      purpose !== 'transaction' && this.#cache
        ? // The purpose is part of the key: a value cached as one purpose never opens as another.
          createHash('sha256').update(purpose).update('\n').update(sealed).digest('base64')
        : undefined;
    const cached = cacheKey === undefined ? undefined : this.#cache!.get(cacheKey);
    if (cached) return cached;
    let header;
    try {
      header = decodeProtectedHeader(sealed);
    } catch (cause) {
      throw invalid('malformed', cause);
    }
    if (header.typ !== TYP[purpose]) throw invalid('wrong_type');
    if (header.cty !== CTY) throw invalid('malformed');
    const keys = typeof header.kid === 'string' ? this.#keys.get(header.kid) : undefined;
    if (!keys) throw invalid('unknown_key');
    let plaintext: Uint8Array;
    try {
      ({ plaintext } = await compactDecrypt(sealed, await keys[purpose], {
        keyManagementAlgorithms: ['dir'],
        contentEncryptionAlgorithms: ['A256GCM'],
      }));
    } catch (cause) {
      throw invalid('decrypt_failed', cause);
    }
    let payload: unknown;
    try {
      payload = JSON.parse(
        inflateRawSync(plaintext, { maxOutputLength: MAX_PLAINTEXT }).toString('utf8'),
      );
    } catch (cause) {
      throw invalid('malformed', cause);
    }
    if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
      throw invalid('malformed');
    }
    const out: Unsealed = Object.freeze({
      payload: deepFreeze(payload as Record<string, unknown>),
      keyId: header.kid as string,
      current: header.kid === this.currentKeyId,
    });
    // Cost: the sealed length stands in for the payload's size in memory.
    if (cacheKey !== undefined) this.#cache!.set(cacheKey, out, 256 + sealed.length * 3);
    return out;
  }
}

function derive(secret: string, purpose: SealPurpose): Promise<CryptoKey> {
  const raw = new Uint8Array(
    hkdfSync(
      'sha256',
      Buffer.from(secret, 'utf8'),
      'appproxy-preauth',
      `appproxy ${purpose} v1`,
      32,
    ),
  );
  // Imported once: jose would import a raw key on every call.
  const key = crypto.subtle.importKey('raw', raw, 'AES-GCM', false, ['encrypt', 'decrypt']);
  key.catch(() => {}); // awaited where used; never an unhandled rejection
  return key;
}

function deepFreeze<T extends object>(v: T): T {
  for (const child of Object.values(v)) {
    if (typeof child === 'object' && child !== null && !Object.isFrozen(child)) deepFreeze(child);
  }
  return Object.freeze(v);
}
