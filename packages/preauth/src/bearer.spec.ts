import { SignJWT, base64url } from 'jose';
import { describe, expect, it } from 'vitest';
import { RelyingParty, type Authentication } from './index.js';
import { makeKey, startFakeOp } from './__fixtures__/fake-op.js';
import { Jar, SECRET, browserRequest, signInFlow } from './__fixtures__/rp.js';

const AUD = 'api://appproxy';

async function setup(bearerAudiences: string[] | undefined = [AUD]) {
  const op = await startFakeOp();
  const rp = new RelyingParty({
    issuer: op.issuer,
    clientId: op.clientId,
    clientSecret: op.clientSecret,
    sessionSecrets: [{ id: 'k1', secret: SECRET }],
    ...(bearerAudiences && { bearerAudiences }),
  });
  const app = rp.protectApp({ externalUrl: 'https://app.example.com/' });
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    iss: op.issuer,
    aud: AUD,
    sub: 'native-user',
    iat: now,
    exp: now + 600,
    scp: 'access',
    groups: ['Staff'],
  };
  const call = (token: string, accept = 'application/json') =>
    app.authenticate(
      browserRequest('/api', new Jar(), { headers: { accept, authorization: `Bearer ${token}` } }),
    );
  return { op, app, claims, call };
}

function refusal(r: Authentication) {
  if (r.ok) throw new Error('expected a refusal');
  return r.response;
}

describe('bearer access tokens (native and API clients)', () => {
  it('a valid JWT access token authenticates and is stripped before forwarding', async () => {
    const { op, claims, call } = await setup();
    const r = await call(await op.sign(claims));
    expect(r).toMatchObject({
      ok: true,
      via: 'bearer',
      stripAuthorization: true,
      identity: { sub: 'native-user', groups: ['Staff'], issuer: op.issuer },
    });
  });

  it.each([
    ['wrong audience', { aud: 'api://other' }, 'aud_mismatch'],
    ['the relay’s client id as audience (an ID token)', { aud: 'relay' }, 'aud_mismatch'],
    ['wrong issuer', { iss: 'https://evil.example' }, 'iss_mismatch'],
    ['expired', { exp: Math.floor(Date.now() / 1000) - 300 }, 'expired'],
  ])('%s → 401 invalid_token', async (_name, patch, reason) => {
    const { op, claims, call } = await setup();
    const res = refusal(await call(await op.sign({ ...claims, ...patch })));
    expect(res.status).toBe(401);
    expect(res.error).toMatchObject({ code: 'APPPROXY_PREAUTH_BEARER_INVALID', reason });
    expect(res.headers['www-authenticate']).toMatch(
      /^Bearer realm="https:\/\/app\.example\.com", error="invalid_token", error_description="/,
    );
    if (reason === 'expired')
      expect(res.headers['www-authenticate']).toContain('The access token expired');
  });

  it('HS256 signed with the public key, alg none, and a foreign key are refused', async () => {
    const { op, claims, call } = await setup();
    const hs = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256', kid: op.keys[0]!.kid })
      .sign(base64url.decode(op.keys[0]!.publicJwk.n!));
    expect(refusal(await call(hs)).error?.reason).toBe('alg_not_allowed');
    const none = `${base64url.encode('{"alg":"none"}')}.${base64url.encode(JSON.stringify(claims))}.`;
    expect(refusal(await call(none)).error?.reason).toBe('alg_not_allowed');
    const foreign = await op.sign(claims, { key: await makeKey('ES256', op.keys[0]!.kid) });
    expect(refusal(await call(foreign)).error?.reason).toMatch(/^(unknown_key|signature_invalid)$/);
    expect(refusal(await call('not.a.jwt')).error?.reason).toBe('malformed');
  });

  it('accepts tokens of any listed audience and issuer', async () => {
    const op = await startFakeOp();
    const app = new RelyingParty({
      issuer: op.issuer,
      clientId: op.clientId,
      sessionSecrets: [{ id: 'k1', secret: SECRET }],
      bearerAudiences: ['a1'],
      bearerIssuers: [op.issuer, 'https://sts.example.com/tenant/'],
    }).protectApp({ externalUrl: 'https://app.example.com/', bearerAudiences: ['a2', 'a3'] });
    const now = Math.floor(Date.now() / 1000);
    const base = { sub: 's', iat: now, exp: now + 60 };
    await expect(
      app.verifyBearer(await op.sign({ ...base, iss: op.issuer, aud: 'a3' })),
    ).resolves.toMatchObject({ sub: 's' });
    await expect(
      app.verifyBearer(
        await op.sign({ ...base, iss: 'https://sts.example.com/tenant/', aud: ['x', 'a2'] }),
      ),
    ).resolves.toMatchObject({
      sub: 's',
    });
    await expect(
      app.verifyBearer(await op.sign({ ...base, iss: op.issuer, aud: 'a1' })),
    ).rejects.toMatchObject({ reason: 'aud_mismatch' });
  });

  it('without bearer audiences a bearer token is just anonymous', async () => {
    const { op, claims, call } = await setup([]);
    const res = refusal(await call(await op.sign(claims)));
    expect(res.error?.code).toBe('APPPROXY_PREAUTH_SIGN_IN_REQUIRED');
    expect(res.headers['www-authenticate']).toBe('Bearer realm="https://app.example.com"');
  });

  it('a valid session wins; the app’s own Authorization header is then forwarded untouched', async () => {
    const { op, app } = await setup();
    const jar = new Jar();
    await signInFlow(app, op, jar);
    const r = await app.authenticate(
      browserRequest('/api', jar, {
        headers: { accept: 'application/json', authorization: 'Bearer someone-elses-token' },
      }),
    );
    expect(r).toMatchObject({ ok: true, via: 'session', stripAuthorization: false });
  });

  it('an unreachable provider is a 502, not a 401', async () => {
    const { op, claims, call } = await setup();
    op.discovery = { jwks_uri: `${op.issuer}/gone` };
    const res = refusal(await call(await op.sign(claims)));
    expect(res.status).toBe(502);
    expect(res.error?.code).toBe('APPPROXY_PREAUTH_JWKS_FAILED');
    expect(res.headers['www-authenticate']).toBeUndefined();
  });

  it('caches a verified token per audience list, and still expires it', async () => {
    let now = Date.now();
    const op = await startFakeOp();
    const rp = new RelyingParty({
      issuer: op.issuer,
      clientId: op.clientId,
      sessionSecrets: [{ id: 'k1', secret: SECRET }],
      bearerAudiences: [AUD],
      clock: () => now,
    });
    const app = rp.protectApp({ externalUrl: 'https://app.example.com/' });
    const other = rp.protectApp({
      externalUrl: 'https://other.example.com/',
      bearerAudiences: ['api://other'],
    });
    const iat = Math.floor(now / 1000);
    const token = await op.sign({ iss: op.issuer, aud: AUD, sub: 's', iat, exp: iat + 300 });
    const first = await app.verifyBearer(token);
    expect(await app.verifyBearer(token)).toBe(first); // from the cache
    await expect(other.verifyBearer(token)).rejects.toMatchObject({ reason: 'aud_mismatch' });
    now += (300 + 61) * 1000;
    await expect(app.verifyBearer(token)).rejects.toMatchObject({ reason: 'expired' });
  });
});
