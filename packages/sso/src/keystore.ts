import { createPrivateKey, randomBytes, type JsonWebKey } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { SsoError } from './errors.js';

/** One signing key as kept in a store. */
export interface StoredSigningKey {
  kid: string;
  /** The EC P-256 private key as a JWK (`kty`, `crv`, `x`, `y`, `d`). */
  privateJwk: JsonWebKey;
  /** When the key was made, in ms since the epoch: it signs from then until the next one. */
  createdAt: number;
}

/** Where an {@link AssertionSigner} keeps its keys between restarts. */
export interface SigningKeyStore {
  /** The keys, or undefined when the store is empty. */
  load(): StoredSigningKey[] | undefined;
  save(keys: StoredSigningKey[]): void;
}

const invalid = (path: string, problem: string, cause?: unknown) =>
  new SsoError('APPPROXY_SSO_KEYSTORE_INVALID', `SSO signing key store ${path}: ${problem}`, {
    cause,
  });

/** Checks the shape of stored keys; `where` names the store in the error. */
export function parseStoredKeys(value: unknown, where: string): StoredSigningKey[] {
  const keys = (value as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) throw invalid(where, 'expected {"keys": [...]}');
  return keys.map((k: unknown, i) => {
    const key = k as Partial<StoredSigningKey> | null;
    const jwk = key?.privateJwk as Record<string, unknown> | undefined;
    if (
      typeof key?.kid !== 'string' ||
      key.kid === '' ||
      typeof key.createdAt !== 'number' ||
      !Number.isFinite(key.createdAt) ||
      jwk === null ||
      typeof jwk !== 'object' ||
      jwk.kty !== 'EC' ||
      jwk.crv !== 'P-256' ||
      typeof jwk.d !== 'string' ||
      typeof jwk.x !== 'string' ||
      typeof jwk.y !== 'string'
    ) {
      throw invalid(where, `key ${i} is not {kid, privateJwk (EC P-256), createdAt}`);
    }
    try {
      createPrivateKey({ key: key.privateJwk!, format: 'jwk' });
    } catch (err) {
      throw invalid(where, `key ${i} (${key.kid}) is not a usable EC key`, err);
    }
    return { kid: key.kid, privateJwk: key.privateJwk!, createdAt: key.createdAt };
  });
}

/**
 * Keys in a JSON file, readable by the owner only (mode 0600). Each save writes a temporary
 * file next to it and renames it over the old one, so a reader sees the old or the new file,
 * never half of one.
 *
 * @throws SsoError `APPPROXY_SSO_KEYSTORE_INVALID` (from `load`) naming the path when the file
 *   is not JSON or not a key list.
 * @example
 * const signer = new AssertionSigner({ store: fileKeyStore('/var/lib/appproxy/sso-keys.json') });
 */
export function fileKeyStore(path: string): SigningKeyStore {
  return {
    load() {
      let text: string;
      try {
        text = readFileSync(path, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw invalid(path, 'cannot be read', err);
      }
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch (err) {
        throw invalid(path, 'is not JSON', err);
      }
      const keys = parseStoredKeys(json, path);
      return keys.length === 0 ? undefined : keys;
    },
    save(keys) {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
      try {
        writeFileSync(tmp, JSON.stringify({ keys }, null, 2) + '\n', { mode: 0o600 });
        chmodSync(tmp, 0o600);
        renameSync(tmp, path);
      } catch (err) {
        rmSync(tmp, { force: true });
        throw invalid(path, 'cannot be written', err);
      }
    },
  };
}
