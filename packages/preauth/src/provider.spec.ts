import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { OidcProvider, PreauthError } from './index.js';
import { startFakeOp } from './__fixtures__/fake-op.js';
import { testClock } from './__fixtures__/rp.js';

async function rejection(p: Promise<unknown>): Promise<PreauthError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PreauthError);
  return err as PreauthError;
}

/** A server that answers every request with `handler`'s choice. */
async function rawServer(handler: Parameters<typeof createServer>[1]): Promise<string> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  afterEach(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('OidcProvider: discovery', () => {
  it('fetches the document once and caches it', async () => {
    const op = await startFakeOp();
    const clock = testClock();
    const idp = new OidcProvider({
      issuer: op.issuer,
      clientId: 'relay',
      clock: clock.now,
      metadataMaxAgeMs: 60_000,
    });
    const [a, b] = await Promise.all([idp.metadata(), idp.metadata()]);
    expect(a).toBe(b);
    expect(a).toMatchObject({ issuer: op.issuer, end_session_endpoint: `${op.issuer}/logout` });
    expect(op.hits['/.well-known/openid-configuration']).toBe(1);
    clock.advance(60_000);
    await idp.metadata();
    expect(op.hits['/.well-known/openid-configuration']).toBe(2);
  });

  it('keeps the last good document when a refresh fails', async () => {
    const op = await startFakeOp();
    const clock = testClock();
    const idp = new OidcProvider({
      issuer: op.issuer,
      clientId: 'relay',
      clock: clock.now,
      metadataMaxAgeMs: 1000,
    });
    const first = await idp.metadata();
    op.discovery = { issuer: 'https://elsewhere.example' };
    clock.advance(2000);
    await expect(idp.metadata()).resolves.toBe(first);
  });

  it('refuses a document of another issuer', async () => {
    const op = await startFakeOp();
    op.discovery = { issuer: `${op.issuer}/` };
    const err = await rejection(
      new OidcProvider({ issuer: op.issuer, clientId: 'relay' }).metadata(),
    );
    expect(err.code).toBe('APPPROXY_PREAUTH_DISCOVERY_FAILED');
    expect(err.status).toBe(502);
    expect(err.message).toMatch(/issuer is not the configured one/);
  });

  it('refuses plain-http endpoints off loopback and missing endpoints', async () => {
    const op = await startFakeOp();
    op.discovery = { token_endpoint: 'http://idp.example.com/token' };
    expect(
      (await rejection(new OidcProvider({ issuer: op.issuer, clientId: 'r' }).metadata())).message,
    ).toMatch(/token_endpoint/);
    op.discovery = { jwks_uri: undefined };
    expect(
      (await rejection(new OidcProvider({ issuer: op.issuer, clientId: 'r' }).metadata())).message,
    ).toMatch(/jwks_uri/);
  });

  it('fails with a code on 404, non-JSON, oversized and silent providers', async () => {
    const notFound = await rawServer((_req, res) => res.writeHead(404).end('nope'));
    expect(
      (await rejection(new OidcProvider({ issuer: notFound, clientId: 'r' }).metadata())).code,
    ).toBe('APPPROXY_PREAUTH_DISCOVERY_FAILED');
    const html = await rawServer((_req, res) =>
      res.writeHead(200, { 'content-type': 'text/html' }).end('<html>'),
    );
    expect(
      (await rejection(new OidcProvider({ issuer: html, clientId: 'r' }).metadata())).message,
    ).toMatch(/not a JSON object/);
    const huge = await rawServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      let sent = 0;
      const pump = () => {
        while (sent < 4 * 1024 * 1024) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    });
    expect(
      (await rejection(new OidcProvider({ issuer: huge, clientId: 'r' }).metadata())).message,
    ).toMatch(/larger than/);
    const silent = await rawServer(() => {});
    const err = await rejection(
      new OidcProvider({ issuer: silent, clientId: 'r', timeoutMs: 200 }).metadata(),
    );
    expect(err.code).toBe('APPPROXY_PREAUTH_DISCOVERY_FAILED');
    expect(err.message).toMatch(/no answer within 200 ms/);
  });

  it('refuses bad settings at construction', () => {
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (err) {
        return (err as PreauthError).code;
      }
    };
    expect(code(() => new OidcProvider({ issuer: 'not a url', clientId: 'r' }))).toBe(
      'APPPROXY_PREAUTH_CONFIG_INVALID',
    );
    expect(code(() => new OidcProvider({ issuer: 'https://x', clientId: '' }))).toBe(
      'APPPROXY_PREAUTH_CONFIG_INVALID',
    );
    expect(
      code(
        () =>
          new OidcProvider({
            issuer: 'https://x',
            clientId: 'r',
            tokenEndpointAuthMethod: 'client_secret_post',
          }),
      ),
    ).toBe('APPPROXY_PREAUTH_CONFIG_INVALID');
  });
});

describe('OidcProvider: token endpoint client authentication', () => {
  async function exchange(op: Awaited<ReturnType<typeof startFakeOp>>, idp: OidcProvider) {
    const url = new URL(`${op.issuer}/authorize`);
    url.searchParams.set('client_id', op.clientId);
    url.searchParams.set('redirect_uri', 'https://app.example.com/.appproxy/callback');
    url.searchParams.set('nonce', 'n');
    url.searchParams.set('state', 's');
    // S256 of the verifier 'v'.repeat(43)
    const { createHash } = await import('node:crypto');
    const verifier = 'v'.repeat(43);
    url.searchParams.set(
      'code_challenge',
      createHash('sha256').update(verifier).digest('base64url'),
    );
    url.searchParams.set('code_challenge_method', 'S256');
    const code = new URL(op.authorize(url.href)).searchParams.get('code')!;
    return idp.exchangeCode({
      code,
      redirectUri: 'https://app.example.com/.appproxy/callback',
      codeVerifier: verifier,
    });
  }

  it('client_secret_basic form-encodes id and secret before base64 (RFC 6749 §2.3.1)', async () => {
    const op = await startFakeOp({ clientSecret: 'sécret with spaces/+:' });
    const idp = new OidcProvider({
      issuer: op.issuer,
      clientId: op.clientId,
      clientSecret: op.clientSecret,
    });
    const tokens = await exchange(op, idp);
    expect(tokens.idToken.split('.')).toHaveLength(3);
    const basic = op.lastTokenRequest!.headers.authorization!;
    expect(Buffer.from(basic.slice(6), 'base64').toString()).toBe(
      'relay:s%C3%A9cret+with+spaces%2F%2B%3A',
    );
    expect(op.lastTokenRequest!.form.get('client_secret')).toBeNull();
  });

  it('uses client_secret_post when the provider lists only that', async () => {
    const op = await startFakeOp({ authMethods: ['client_secret_post'] });
    const idp = new OidcProvider({
      issuer: op.issuer,
      clientId: op.clientId,
      clientSecret: op.clientSecret,
    });
    await exchange(op, idp);
    expect(op.lastTokenRequest!.headers.authorization).toBeUndefined();
    expect(op.lastTokenRequest!.form.get('client_secret')).toBe(op.clientSecret);
  });

  it('a public client sends only client_id and the PKCE verifier', async () => {
    const op = await startFakeOp({ publicClient: true });
    const idp = new OidcProvider({ issuer: op.issuer, clientId: op.clientId });
    await exchange(op, idp);
    expect(op.lastTokenRequest!.headers.authorization).toBeUndefined();
    expect(op.lastTokenRequest!.form.get('client_id')).toBe('relay');
    expect(op.lastTokenRequest!.form.get('code_verifier')).toBe('v'.repeat(43));
  });

  it('a refused exchange says why, without the code or the secret', async () => {
    const op = await startFakeOp();
    const idp = new OidcProvider({
      issuer: op.issuer,
      clientId: op.clientId,
      clientSecret: 'wrong-secret',
    });
    const err = await rejection(exchange(op, idp));
    expect(err.code).toBe('APPPROXY_PREAUTH_TOKEN_EXCHANGE_FAILED');
    expect(err.message).toBe('token endpoint: answered 401 (invalid_client)');
    expect(err.message).not.toContain('wrong-secret');
  });
});

describe('JwksCache: key rotation', () => {
  it('an unknown kid refetches once per cooldown; rotated keys validate', async () => {
    const op = await startFakeOp();
    const clock = testClock();
    const idp = new OidcProvider({
      issuer: op.issuer,
      clientId: 'relay',
      clock: clock.now,
      jwks: { cooldownMs: 30_000, maxAgeMs: 3_600_000 },
    });
    const now = Math.floor(clock.now() / 1000);
    const token = (claims = {}) =>
      op.sign({ iss: op.issuer, aud: 'api', sub: 's', iat: now, exp: now + 600, ...claims });
    await expect(
      idp.verifyAccessToken(await token(), { audiences: ['api'] }),
    ).resolves.toMatchObject({ sub: 's' });
    expect(op.hits['/jwks']).toBe(1);

    // The provider rotates: new tokens carry a kid the cache has never seen.
    await op.rotate();
    const fresh = await token();
    // Within the cooldown after the first fetch: refused, no refetch.
    const early = await rejection(idp.verifyAccessToken(fresh, { audiences: ['api'] }));
    expect(early.reason).toBe('unknown_key');
    expect(op.hits['/jwks']).toBe(1);
    clock.advance(30_000);
    await expect(idp.verifyAccessToken(fresh, { audiences: ['api'] })).resolves.toMatchObject({
      sub: 's',
    });
    expect(op.hits['/jwks']).toBe(2);

    // A flood of forged kids costs at most one fetch per cooldown.
    const unknownKid = await op.sign(
      { iss: op.issuer, aud: 'api', sub: 's', iat: now, exp: now + 600 },
      { key: { ...(await (await import('./__fixtures__/fake-op.js')).makeKey()), kid: 'nobody' } },
    );
    for (let i = 0; i < 20; i++) {
      expect(
        (await rejection(idp.verifyAccessToken(unknownKid, { audiences: ['api'] }))).reason,
      ).toBe('unknown_key');
    }
    expect(op.hits['/jwks']).toBe(2);
    clock.advance(30_000);
    await rejection(idp.verifyAccessToken(unknownKid, { audiences: ['api'] }));
    expect(op.hits['/jwks']).toBe(3);

    // Old keys dropped by the provider stop working after the next refresh.
    await op.rotate({ drop: true });
    clock.advance(3_600_000);
    expect((await rejection(idp.verifyAccessToken(fresh, { audiences: ['api'] }))).reason).toBe(
      'unknown_key',
    );
  });

  it('concurrent verifications share one fetch', async () => {
    const op = await startFakeOp();
    op.delays['/jwks'] = 50;
    const idp = new OidcProvider({ issuer: op.issuer, clientId: 'relay' });
    const now = Math.floor(Date.now() / 1000);
    const t = await op.sign({ iss: op.issuer, aud: 'api', sub: 's', iat: now, exp: now + 600 });
    await Promise.all(
      Array.from({ length: 10 }, () => idp.verifyAccessToken(t, { audiences: ['api'] })),
    );
    expect(op.hits['/jwks']).toBe(1);
  });

  it('fails with JWKS_FAILED when the key set is unusable', async () => {
    const op = await startFakeOp();
    op.discovery = { jwks_uri: `${op.issuer}/nowhere` };
    const idp = new OidcProvider({ issuer: op.issuer, clientId: 'relay' });
    const now = Math.floor(Date.now() / 1000);
    const t = await op.sign({ iss: op.issuer, aud: 'api', sub: 's', iat: now, exp: now + 600 });
    const err = await rejection(idp.verifyAccessToken(t, { audiences: ['api'] }));
    expect(err.code).toBe('APPPROXY_PREAUTH_JWKS_FAILED');
    expect(err.status).toBe(502);
  });
});
