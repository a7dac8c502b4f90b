import { CompactEncrypt } from 'jose';
import { describe, expect, it } from 'vitest';
import { Keyring, PreauthError } from './index.js';
import { OTHER_SECRET, SECRET } from './__fixtures__/rp.js';

const reasonOf = async (p: Promise<unknown>) => {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PreauthError);
  expect((err as PreauthError).code).toBe('APPPROXY_PREAUTH_SESSION_INVALID');
  return (err as PreauthError).reason;
};

describe('Keyring', () => {
  it('seals and unseals, compressed and encrypted', async () => {
    const keyring = new Keyring([{ id: 'k1', secret: SECRET }]);
    const payload = { sub: 'alice', groups: Array.from({ length: 300 }, (_, i) => `group-${i}`) };
    const sealed = await keyring.seal('session', payload);
    expect(sealed.split('.')).toHaveLength(5);
    expect(sealed).not.toContain('alice');
    // DEFLATE keeps many similar groups small.
    expect(sealed.length).toBeLessThan(JSON.stringify(payload).length);
    await expect(keyring.unseal('session', sealed)).resolves.toEqual({
      payload,
      keyId: 'k1',
      current: true,
    });
  });

  it('rotates: the first secret seals, older ones still unseal', async () => {
    const old = new Keyring([{ id: 'old', secret: OTHER_SECRET }]);
    const sealedOld = await old.seal('session', { n: 1 });
    const rotated = new Keyring([
      { id: 'new', secret: SECRET },
      { id: 'old', secret: OTHER_SECRET },
    ]);
    await expect(rotated.unseal('session', sealedOld)).resolves.toMatchObject({
      keyId: 'old',
      current: false,
    });
    const sealedNew = await rotated.seal('session', { n: 2 });
    await expect(rotated.unseal('session', sealedNew)).resolves.toMatchObject({
      keyId: 'new',
      current: true,
    });
    expect(await reasonOf(old.unseal('session', sealedNew))).toBe('unknown_key');
  });

  it('refuses tampered, forged, foreign-key and wrong-purpose values', async () => {
    const keyring = new Keyring([{ id: 'k1', secret: SECRET }]);
    const sealed = await keyring.seal('session', { sub: 'alice' });
    const parts = sealed.split('.');
    const flip = (s: string) =>
      s[5] === 'A' ? `${s.slice(0, 5)}B${s.slice(6)}` : `${s.slice(0, 5)}A${s.slice(6)}`;
    expect(
      await reasonOf(
        keyring.unseal('session', [parts[0], '', parts[2], flip(parts[3]!), parts[4]].join('.')),
      ),
    ).toBe('decrypt_failed');
    expect(
      await reasonOf(
        keyring.unseal('session', [parts[0], '', parts[2], parts[3], flip(parts[4]!)].join('.')),
      ),
    ).toBe('decrypt_failed');
    // Same kid, another secret (an attacker guessing the format).
    const forger = new Keyring([{ id: 'k1', secret: OTHER_SECRET }]);
    expect(
      await reasonOf(keyring.unseal('session', await forger.seal('session', { sub: 'admin' }))),
    ).toBe('decrypt_failed');
    // A transaction can never be used as a session, even with the same secret.
    expect(
      await reasonOf(keyring.unseal('session', await keyring.seal('transaction', { sub: 'x' }))),
    ).toBe('wrong_type');
    // A header claiming our typ and kid, but encrypted with a key of the attacker's choosing.
    const evil = await new CompactEncrypt(new TextEncoder().encode('{"sub":"admin"}'))
      .setProtectedHeader({
        alg: 'dir',
        enc: 'A256GCM',
        kid: 'k1',
        typ: 'appproxy-session',
        cty: 'json+deflate',
      })
      .encrypt(new Uint8Array(32));
    expect(await reasonOf(keyring.unseal('session', evil))).toBe('decrypt_failed');
    expect(await reasonOf(keyring.unseal('session', 'garbage'))).toBe('malformed');
    expect(await reasonOf(keyring.unseal('session', ''))).toBe('malformed');
    expect(await reasonOf(keyring.unseal('session', 'x'.repeat(70_000)))).toBe('malformed');
  });

  it('refuses weak or malformed secrets with a config error that never shows the secret', () => {
    const codeOf = (f: () => unknown) => {
      try {
        f();
      } catch (err) {
        expect((err as Error).message).not.toContain('short-secret');
        return (err as PreauthError).code;
      }
      return 'no error';
    };
    expect(codeOf(() => new Keyring([]))).toBe('APPPROXY_PREAUTH_CONFIG_INVALID');
    expect(codeOf(() => new Keyring([{ id: 'k1', secret: 'short-secret' }]))).toBe(
      'APPPROXY_PREAUTH_CONFIG_INVALID',
    );
    expect(codeOf(() => new Keyring([{ id: 'bad id!', secret: SECRET }]))).toBe(
      'APPPROXY_PREAUTH_CONFIG_INVALID',
    );
    expect(
      codeOf(
        () =>
          new Keyring([
            { id: 'a', secret: SECRET },
            { id: 'a', secret: OTHER_SECRET },
          ]),
      ),
    ).toBe('APPPROXY_PREAUTH_CONFIG_INVALID');
  });

  it('caches opened sessions by the hash of the exact bytes, frozen; never transactions', async () => {
    const keyring = new Keyring([{ id: 'k1', secret: SECRET }]);
    const sealed = await keyring.seal('session', { sub: 'alice', groups: ['a'] });
    const first = await keyring.unseal('session', sealed);
    expect(await keyring.unseal('session', sealed)).toBe(first);
    expect(Object.isFrozen(first.payload)).toBe(true);
    expect(Object.isFrozen(first.payload.groups)).toBe(true);
    // One character off is another cache key, and fails as before.
    const parts = sealed.split('.');
    const c = parts[3]!;
    parts[3] = `${c.slice(0, 3)}${c[3] === 'A' ? 'B' : 'A'}${c.slice(4)}`;
    expect(await reasonOf(keyring.unseal('session', parts.join('.')))).toBe('decrypt_failed');
    const txn = await keyring.seal('transaction', { st: 'x' });
    expect(await keyring.unseal('transaction', txn)).not.toBe(
      await keyring.unseal('transaction', txn),
    );
    const uncached = new Keyring([{ id: 'k1', secret: SECRET }], { cacheBytes: 0 });
    expect(await uncached.unseal('session', sealed)).not.toBe(
      await uncached.unseal('session', sealed),
    );
  });
});
