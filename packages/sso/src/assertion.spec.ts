import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { AssertionSigner, KEY_RETIRE_SKEW_MS } from './assertion.js';
import { SsoError } from './errors.js';
import type { SsoIdentity } from './identity.js';
import { fileKeyStore, type SigningKeyStore, type StoredSigningKey } from './keystore.js';

const dir = mkdtempSync(join(tmpdir(), 'appproxy-sso-keys-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 0, 1);
const opts = {
  issuer: 'https://wiki.example.com',
  audience: 'wiki',
  lifetimeMs: 300_000,
  loginIdentity: 'alice@corp.example',
};
const alice = (): SsoIdentity => ({
  sub: 'sub-1',
  name: 'Alice',
  email: 'alice@mail.example',
  upn: 'alice@corp.example',
  preferredUsername: 'alice.p@corp.example',
  groups: ['eng', 'ops'],
  roles: ['Admin'],
});

function clock(start = T0) {
  const c = { t: start, now: () => c.t };
  return c;
}

const jwks = (signer: AssertionSigner) => signer.jwks() as JSONWebKeySet;

async function verify(signer: AssertionSigner, token: string, at: number) {
  return jwtVerify(token, createLocalJWKSet(jwks(signer)), {
    issuer: opts.issuer,
    audience: opts.audience,
    currentDate: new Date(at),
    algorithms: ['ES256'],
  });
}

function memoryStore(): SigningKeyStore & { keys?: StoredSigningKey[]; saves: number } {
  const s: SigningKeyStore & { keys?: StoredSigningKey[]; saves: number } = {
    saves: 0,
    load: () => (s.keys ? structuredClone(s.keys) : undefined),
    save: (keys) => {
      s.keys = structuredClone(keys);
      s.saves++;
    },
  };
  return s;
}

describe('AssertionSigner.assertion', () => {
  it('signs every claim, verifiable with jose against jwks()', async () => {
    const c = clock(T0 + 123);
    const signer = new AssertionSigner({ now: c.now });
    const token = signer.assertion(alice(), opts);
    const { payload, protectedHeader } = await verify(signer, token, c.t);
    expect(protectedHeader).toEqual({ alg: 'ES256', kid: jwks(signer).keys[0]!.kid, typ: 'JWT' });
    expect(payload).toEqual({
      iss: 'https://wiki.example.com',
      aud: 'wiki',
      sub: 'sub-1',
      email: 'alice@mail.example',
      name: 'Alice',
      groups: ['eng', 'ops'],
      roles: ['Admin'],
      upn: 'alice@corp.example',
      preferred_username: 'alice.p@corp.example',
      login_identity: 'alice@corp.example',
      iat: Math.floor(T0 / 1000),
      exp: Math.floor(T0 / 1000) + 300,
      jti: expect.stringMatching(/^[0-9a-f-]{36}$/),
    });
  });

  it('leaves absent and empty values out', async () => {
    const signer = new AssertionSigner();
    const token = signer.assertion({ sub: 's', email: '', groups: [] }, opts);
    const { payload } = await verify(signer, token, Date.now());
    expect(Object.keys(payload).sort()).toEqual(
      ['aud', 'exp', 'iat', 'iss', 'jti', 'login_identity', 'sub'].sort(),
    );
  });

  it('exp - iat is the lifetime', async () => {
    const signer = new AssertionSigner();
    for (const lifetimeMs of [1000, 60_000, HOUR]) {
      const { payload } = await verify(
        signer,
        signer.assertion(alice(), { ...opts, lifetimeMs }),
        Date.now(),
      );
      expect(payload.exp! - payload.iat!).toBe(lifetimeMs / 1000);
    }
  });

  it('a token does not verify for another audience, issuer, or after exp', async () => {
    const c = clock();
    const signer = new AssertionSigner({ now: c.now });
    const token = signer.assertion(alice(), opts);
    const set = createLocalJWKSet(jwks(signer));
    const at = { currentDate: new Date(c.t) };
    await expect(jwtVerify(token, set, { ...at, audience: 'other' })).rejects.toThrow();
    await expect(jwtVerify(token, set, { ...at, issuer: 'https://evil' })).rejects.toThrow();
    await expect(
      jwtVerify(token, set, { currentDate: new Date(c.t + 301_000) }),
    ).rejects.toMatchObject({ code: 'ERR_JWT_EXPIRED' });
    const [h, p, s] = token.split('.');
    const tampered = `${h}.${p}.${s!.slice(0, -4)}AAAA`;
    await expect(jwtVerify(tampered, set, at)).rejects.toThrow();
  });

  it('gives fresh tokens a unique jti', () => {
    const signer = new AssertionSigner();
    const jtis = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const token = signer.assertion(alice(), opts); // a new identity object: no cache hit
      jtis.add(JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).jti);
    }
    expect(jtis.size).toBe(200);
  });

  it('returns the cached token within its life and a fresh one when 25 % is left', () => {
    const c = clock();
    const signer = new AssertionSigner({ now: c.now });
    const id = alice();
    const first = signer.assertion(id, opts);
    c.t += 224_000; // 76 s of 300 left
    expect(signer.assertion(id, opts)).toBe(first);
    expect(signer.assertion(alice(), opts)).not.toBe(first); // another identity object
    expect(signer.assertion(id, { ...opts, audience: 'crm' })).not.toBe(first);
    expect(signer.assertion(id, { ...opts, loginIdentity: 'other' })).not.toBe(first);
    expect(signer.assertion(id, { ...opts, issuer: 'https://crm.example.com' })).not.toBe(first);
    expect(signer.assertion(id, opts)).toBe(first);
    c.t += 1_000; // 75 s left: 25 %
    const second = signer.assertion(id, opts);
    expect(second).not.toBe(first);
    expect(signer.assertion(id, opts)).toBe(second);
  });

  it('refreshes a short-lived token when 5 s are left', () => {
    const c = clock();
    const signer = new AssertionSigner({ now: c.now });
    const id = alice();
    const first = signer.assertion(id, { ...opts, lifetimeMs: 10_000 });
    c.t += 4_999;
    expect(signer.assertion(id, { ...opts, lifetimeMs: 10_000 })).toBe(first);
    c.t += 1;
    expect(signer.assertion(id, { ...opts, lifetimeMs: 10_000 })).not.toBe(first);
  });

  it.each([0, 999, HOUR + 1, Number.NaN])('refuses lifetime %s', (lifetimeMs) => {
    const signer = new AssertionSigner();
    expect(() => signer.assertion(alice(), { ...opts, lifetimeMs })).toThrow(
      expect.objectContaining({ code: 'APPPROXY_SSO_CONFIG_INVALID' }),
    );
  });
});

describe('AssertionSigner keys', () => {
  it('publishes P-256 public keys only', () => {
    const signer = new AssertionSigner();
    signer.assertion(alice(), opts);
    const [key] = jwks(signer).keys;
    expect(Object.keys(key!).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
    expect(key).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
  });

  it('rotates after rotateAfterMs; a token of the old key verifies until its key is dropped', async () => {
    const c = clock();
    const store = memoryStore();
    const signer = new AssertionSigner({ now: c.now, store, rotateAfterMs: 24 * HOUR });
    const id = alice();
    const old = signer.assertion(id, opts);
    const oldKid = decodeProtectedHeader(old).kid;

    c.t += 24 * HOUR - 120_000;
    const cached = signer.assertion(alice(), opts); // a miss, still the first key
    expect(decodeProtectedHeader(cached).kid).toBe(oldKid);

    c.t += 120_000; // the key is 24 h old: the next miss makes a new one
    const rotatedAt = c.t;
    const fresh = signer.assertion(alice(), opts);
    const newKid = decodeProtectedHeader(fresh).kid;
    expect(newKid).not.toBe(oldKid);
    expect(jwks(signer).keys.map((k) => k.kid)).toEqual([newKid, oldKid]);
    expect(store.keys!.map((k) => k.kid)).toEqual([newKid, oldKid]);

    // A token the old key signed just before the rotation keeps verifying.
    c.t += 60_000;
    await expect(verify(signer, cached, c.t)).resolves.toBeTruthy();

    c.t = rotatedAt + HOUR + KEY_RETIRE_SKEW_MS - 1;
    expect(jwks(signer).keys.map((k) => k.kid)).toEqual([newKid, oldKid]);
    c.t += 1;
    expect(jwks(signer).keys.map((k) => k.kid)).toEqual([newKid]);
    expect(store.keys!.map((k) => k.kid)).toEqual([newKid]);
    await expect(verify(signer, cached, c.t - 3_000_000)).rejects.toMatchObject({
      code: 'ERR_JWKS_NO_MATCHING_KEY',
    });
  });

  it('rotate() starts a new key at once; tokens of the old one still verify', async () => {
    const signer = new AssertionSigner();
    const id = alice();
    const before = signer.assertion(id, opts);
    signer.rotate();
    expect(jwks(signer).keys).toHaveLength(2);
    expect(signer.assertion(id, opts)).toBe(before); // still cached, still valid
    const after = signer.assertion(alice(), opts);
    expect(decodeProtectedHeader(after).kid).toBe(jwks(signer).keys[0]!.kid);
    expect(decodeProtectedHeader(before).kid).toBe(jwks(signer).keys[1]!.kid);
    await verify(signer, before, Date.now());
    await verify(signer, after, Date.now());
  });
});

describe('fileKeyStore', () => {
  it('persists keys across signers (same kid), mode 0600', async () => {
    const path = join(dir, 'nested', 'keys.json');
    const first = new AssertionSigner({ store: fileKeyStore(path) });
    const token = first.assertion(alice(), opts);
    expect(statSync(path).mode & 0o777).toBe(0o600);

    const second = new AssertionSigner({ store: fileKeyStore(path) });
    expect(second.jwks()).toEqual(first.jwks());
    const again = second.assertion(alice(), opts);
    expect(decodeProtectedHeader(again).kid).toBe(decodeProtectedHeader(token).kid);
    await verify(second, token, Date.now());
  });

  it('two signers on one file: one rotates, the other adopts its key and publishes it', () => {
    const path = join(dir, 'shared.json');
    const c = clock();
    const a = new AssertionSigner({ store: fileKeyStore(path), now: c.now });
    a.assertion(alice(), opts);
    const b = new AssertionSigner({ store: fileKeyStore(path), now: c.now });
    const k1 = b.jwks().keys[0]!.kid;

    c.t += 25 * HOUR;
    const fromA = a.assertion(alice(), opts);
    const k2 = decodeProtectedHeader(fromA).kid;
    expect(k2).not.toBe(k1);
    // B's own key is as old: on its next miss it re-reads the file and signs with A's new key
    // instead of making a third one, and publishes it.
    expect(decodeProtectedHeader(b.assertion(alice(), opts)).kid).toBe(k2);
    expect(b.jwks().keys.map((k) => k.kid)).toEqual([k2, k1]);
    expect(
      fileKeyStore(path)
        .load()!
        .map((k) => k.kid),
    ).toEqual([k2, k1]);
  });

  it.each([
    ['not json', '{'],
    ['wrong shape', '{"keys": {}}'],
    ['bad key', '{"keys": [{"kid": "k", "createdAt": 1, "privateJwk": {"kty": "RSA"}}]}'],
    [
      'unusable key',
      '{"keys": [{"kid": "k", "createdAt": 1, "privateJwk": {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "d": "AA"}}]}',
    ],
  ])('a corrupt file (%s) is APPPROXY_SSO_KEYSTORE_INVALID naming the path', (_, text) => {
    const path = join(dir, `corrupt-${_.replace(/ /g, '-')}.json`);
    writeFileSync(path, text);
    try {
      new AssertionSigner({ store: fileKeyStore(path) });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(SsoError);
      expect((err as SsoError).code).toBe('APPPROXY_SSO_KEYSTORE_INVALID');
      expect((err as SsoError).message).toContain(path);
    }
  });

  it('a missing file is an empty store', () => {
    expect(fileKeyStore(join(dir, 'absent.json')).load()).toBeUndefined();
  });
});
