import { hkdfSync } from 'node:crypto';
import { CompactEncrypt, compactDecrypt, decodeProtectedHeader } from 'jose';
import { PreauthError } from './errors.js';

/** One relay secret: its id travels in each sealed cookie's header (`kid`). */
export interface SealingSecret {
  /** 1–64 of `A–Z a–z 0–9 . _ -`. */
  id: string;
  /** At least 32 characters of high entropy (e.g. `openssl rand -base64 48`). */
  secret: string;
}

/** What a sealed value is for; each purpose has its own derived key and `typ`. */
export type SealPurpose = 'session' | 'transaction';

/** An unsealed value and whether it was sealed with the current key. */
export interface Unsealed {
  payload: Record<string, unknown>;
  keyId: string;
  current: boolean;
}

const KEY_ID = /^[A-Za-z0-9._-]{1,64}$/;
const MIN_SECRET_LENGTH = 32;
const TYP: Record<SealPurpose, string> = {
  session: 'appproxy-session',
  transaction: 'appproxy-transaction',
};

/**
 * The relay's sealing keys: JWE `dir` + `A256GCM`, DEFLATE-compressed, one key per purpose
 * derived (HKDF-SHA256) from each secret. The first secret seals; every listed secret still
 * unseals, so secrets rotate without signing anyone out: put a new one first, keep the old
 * one listed for the session lifetime, then drop it.
 *
 * @example
 * const keyring = new Keyring([{ id: '2025-06', secret: process.env.APPPROXY_SESSION_SECRET! }]);
 * const sealed = await keyring.seal('session', { sub: 'alice' });
 * (await keyring.unseal('session', sealed)).payload.sub; // 'alice'
 */
export class Keyring {
  readonly currentKeyId: string;
  readonly #keys = new Map<string, Record<SealPurpose, Uint8Array>>();

  constructor(secrets: readonly SealingSecret[]) {
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
      });
    }
    this.currentKeyId = secrets[0]!.id;
  }

  /** Seals a JSON object with the current key. */
  async seal(purpose: SealPurpose, payload: Record<string, unknown>): Promise<string> {
    const key = this.#keys.get(this.currentKeyId)![purpose];
    return new CompactEncrypt(new TextEncoder().encode(JSON.stringify(payload)))
      .setProtectedHeader({
        alg: 'dir',
        enc: 'A256GCM',
        zip: 'DEF',
        kid: this.currentKeyId,
        typ: TYP[purpose],
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
    let header;
    try {
      header = decodeProtectedHeader(sealed);
    } catch (cause) {
      throw invalid('malformed', cause);
    }
    if (header.typ !== TYP[purpose]) throw invalid('wrong_type');
    const keys = typeof header.kid === 'string' ? this.#keys.get(header.kid) : undefined;
    if (!keys) throw invalid('unknown_key');
    let plaintext: Uint8Array;
    try {
      ({ plaintext } = await compactDecrypt(sealed, keys[purpose], {
        keyManagementAlgorithms: ['dir'],
        contentEncryptionAlgorithms: ['A256GCM'],
        maxDecompressedLength: 512 * 1024,
      }));
    } catch (cause) {
      throw invalid('decrypt_failed', cause);
    }
    let payload: unknown;
    try {
      payload = JSON.parse(new TextDecoder().decode(plaintext));
    } catch (cause) {
      throw invalid('malformed', cause);
    }
    if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
      throw invalid('malformed');
    }
    return {
      payload: payload as Record<string, unknown>,
      keyId: header.kid as string,
      current: header.kid === this.currentKeyId,
    };
  }
}

function derive(secret: string, purpose: SealPurpose): Uint8Array {
  return new Uint8Array(
    hkdfSync(
      'sha256',
      Buffer.from(secret, 'utf8'),
      'appproxy-preauth',
      `appproxy ${purpose} v1`,
      32,
    ),
  );
}
