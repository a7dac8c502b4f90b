// Item 9 of the issue: every attack on the sign-in and the session is refused, with the
// right code (and, for tokens, the right reason — so a test cannot pass for a wrong cause).
import { exportSPKI, importJWK, SignJWT, base64url, type CryptoKey, type JWTPayload } from 'jose';
import { describe, expect, it } from 'vitest';
import { RelyingParty, type PreauthResponse, type ProtectedAppOptions } from './index.js';
import { makeKey, startFakeOp, type FakeOp } from './__fixtures__/fake-op.js';
import {
  Jar,
  OTHER_SECRET,
  SECRET,
  browserRequest,
  pathOf,
  signInFlow,
} from './__fixtures__/rp.js';

async function setup(appOpts: Partial<ProtectedAppOptions> = {}) {
  const op = await startFakeOp();
  const rp = new RelyingParty({
    issuer: op.issuer,
    clientId: op.clientId,
    clientSecret: op.clientSecret,
    sessionSecrets: [{ id: 'k1', secret: SECRET }],
  });
  const app = rp.protectApp({ externalUrl: 'https://app.example.com/', ...appOpts });
  return { op, rp, app };
}

function expectRefused(res: PreauthResponse, code: string, reason?: string) {
  expect(res.error?.code, res.error?.message).toBe(code);
  expect(res.status).toBe(res.error!.status);
  if (reason) expect(res.error!.reason).toBe(reason);
  // A refused callback never sets a session.
  expect(res.cookies.filter((c) => c.name.includes('session') && c.maxAge !== 0)).toEqual([]);
}

/** Runs a sign-in whose ID token is replaced by `forge`. */
async function withForgedIdToken(
  forge: (claims: JWTPayload, op: FakeOp) => Promise<string> | string,
) {
  const { op, app } = await setup();
  op.forgeIdToken = forge;
  const { callback } = await signInFlow(app, op, new Jar());
  return callback;
}

describe('forged ID tokens are refused', () => {
  it('alg: none', async () => {
    const res = await withForgedIdToken((claims) => {
      const header = base64url.encode(JSON.stringify({ alg: 'none', typ: 'JWT' }));
      return `${header}.${base64url.encode(JSON.stringify(claims))}.`;
    });
    expectRefused(res, 'APPPROXY_PREAUTH_ID_TOKEN_INVALID', 'alg_not_allowed');
  });

  it('HS256 signed with the provider’s public key as the secret (key confusion)', async () => {
    const res = await withForgedIdToken(async (claims, op) => {
      const key = op.keys[0]!;
      const pem = await exportSPKI((await importJWK(key.publicJwk, 'RS256')) as CryptoKey);
      return new SignJWT(claims)
        .setProtectedHeader({ alg: 'HS256', kid: key.kid })
        .sign(new TextEncoder().encode(pem));
    });
    expectRefused(res, 'APPPROXY_PREAUTH_ID_TOKEN_INVALID', 'alg_not_allowed');
  });

  it('HS256 with the raw modulus as the secret', async () => {
    const res = await withForgedIdToken(async (claims, op) =>
      new SignJWT(claims)
        .setProtectedHeader({ alg: 'HS256' })
        .sign(base64url.decode(op.keys[0]!.publicJwk.n!)),
    );
    expectRefused(res, 'APPPROXY_PREAUTH_ID_TOKEN_INVALID', 'alg_not_allowed');
  });

  it('signed by an attacker’s key that claims the provider’s kid', async () => {
    const res = await withForgedIdToken(async (claims, op) => {
      const evil = await makeKey('RS256', op.keys[0]!.kid);
      return op.sign(claims, { key: evil });
    });
    expectRefused(res, 'APPPROXY_PREAUTH_ID_TOKEN_INVALID', 'signature_invalid');
  });

  it('payload tampered after signing', async () => {
    const res = await withForgedIdToken(async (claims, op) => {
      const [h, , s] = (await op.sign(claims)).split('.');
      return `${h}.${base64url.encode(JSON.stringify({ ...claims, sub: 'admin' }))}.${s}`;
    });
    expectRefused(res, 'APPPROXY_PREAUTH_ID_TOKEN_INVALID', 'signature_invalid');
  });

  it.each([
    ['wrong iss', { iss: 'https://evil.example' }, 'iss_mismatch'],
    ['wrong aud', { aud: 'another-client' }, 'aud_mismatch'],
    ['several audiences without azp', { aud: ['relay', 'other'] }, 'azp_mismatch'],
    ['azp of another client', { azp: 'other' }, 'azp_mismatch'],
    ['expired beyond the clock skew', { exp: Math.floor(Date.now() / 1000) - 120 }, 'expired'],
    ['not valid yet (nbf)', { nbf: Math.floor(Date.now() / 1000) + 600 }, 'not_yet_valid'],
    ['issued in the future (iat)', { iat: Math.floor(Date.now() / 1000) + 600 }, 'not_yet_valid'],
    ['issued over an hour ago', { iat: Math.floor(Date.now() / 1000) - 7200 }, 'too_old'],
    ['no sub', { sub: undefined }, 'claim_missing'],
    ['no exp', { exp: undefined }, 'claim_missing'],
  ])('%s', async (_name, patch, reason) => {
    const res = await withForgedIdToken((claims, op) => op.sign({ ...claims, ...patch }));
    expectRefused(res, 'APPPROXY_PREAUTH_ID_TOKEN_INVALID', reason);
  });

  it('accepts a small clock skew (expired 30 s ago, 60 s tolerance)', async () => {
    const res = await withForgedIdToken((claims, op) =>
      op.sign({ ...claims, exp: Math.floor(Date.now() / 1000) - 30 }),
    );
    expect(res.status).toBe(302);
  });

  it('nonce mismatch and missing nonce', async () => {
    expectRefused(
      await withForgedIdToken((claims, op) => op.sign({ ...claims, nonce: 'another-sign-in' })),
      'APPPROXY_PREAUTH_NONCE_MISMATCH',
    );
    expectRefused(
      await withForgedIdToken((claims, op) => op.sign({ ...claims, nonce: undefined })),
      'APPPROXY_PREAUTH_NONCE_MISMATCH',
    );
  });
});

describe('the callback is bound to the browser that started the sign-in', () => {
  async function started() {
    const ctx = await setup();
    const jar = new Jar();
    const signIn = await ctx.app.signIn(browserRequest('/.appproxy/signin?rd=%2F', jar));
    jar.apply(signIn.cookies);
    const callbackUrl = pathOf(ctx.op.authorize(signIn.headers.location!));
    return {
      ...ctx,
      jar,
      callbackUrl,
      state: new URL(callbackUrl, 'https://x').searchParams.get('state')!,
    };
  }

  it('without the transaction cookie (login CSRF: the attacker’s callback URL in the victim’s browser)', async () => {
    const { app, callbackUrl } = await started();
    const res = await app.callback(browserRequest(callbackUrl, new Jar()));
    expectRefused(res, 'APPPROXY_PREAUTH_TRANSACTION_MISSING');
    expect(res.status).toBe(400);
  });

  it('with a tampered state (same cookie slot, other value)', async () => {
    const { app, jar, callbackUrl, state } = await started();
    const tampered = state.slice(0, 12) + (state[12] === 'A' ? 'B' : 'A') + state.slice(13);
    const res = await app.callback(browserRequest(callbackUrl.replace(state, tampered), jar));
    expectRefused(res, 'APPPROXY_PREAUTH_STATE_MISMATCH');
  });

  it('with a malformed or missing state', async () => {
    const { app, jar, callbackUrl, state } = await started();
    expectRefused(
      await app.callback(browserRequest(callbackUrl.replace(state, 'short'), jar)),
      'APPPROXY_PREAUTH_STATE_MISMATCH',
    );
    expectRefused(
      await app.callback(browserRequest('/.appproxy/callback?code=x', jar)),
      'APPPROXY_PREAUTH_STATE_MISMATCH',
    );
  });

  it('a re-used state (the same callback replayed, cookie and all) is refused', async () => {
    const { app, op, jar, callbackUrl } = await started();
    const cookies = { ...jar.cookies };
    const first = await app.callback({ ...browserRequest(callbackUrl, jar), cookies });
    expect(first.status).toBe(302);
    // The transaction cookie is expired by the answer…
    expect(first.cookies.find((c) => c.name.includes('txn'))).toMatchObject({ maxAge: 0 });
    // …and a replay that still carries it is refused before the code is even tried.
    const tokenCalls = op.hits['/token'];
    const replay = await app.callback({ ...browserRequest(callbackUrl, jar), cookies });
    expectRefused(replay, 'APPPROXY_PREAUTH_STATE_REUSED');
    expect(op.hits['/token']).toBe(tokenCalls);
  });

  it('a transaction cookie forged, of another app, or expired', async () => {
    const { app, rp, jar, callbackUrl, op } = await started();
    const [name] = Object.keys(jar.cookies);
    // Forged: sealed with a secret the relay does not have.
    const forger = new RelyingParty({
      issuer: op.issuer,
      clientId: op.clientId,
      sessionSecrets: [{ id: 'k1', secret: OTHER_SECRET }],
    });
    const forgedJar = new Jar();
    forgedJar.cookies[name!] = (
      await forger
        .protectApp({ externalUrl: 'https://app.example.com/' })
        .signIn(browserRequest('/.appproxy/signin', forgedJar))
    ).cookies[0]!.value;
    expectRefused(
      await app.callback(browserRequest(callbackUrl, forgedJar)),
      'APPPROXY_PREAUTH_TRANSACTION_MISSING',
    );
    // Of app A, presented at app B's callback (same relay, same secret).
    const appB = rp.protectApp({ externalUrl: 'https://other.example.com/' });
    expectRefused(
      await appB.callback(browserRequest(callbackUrl, jar)),
      'APPPROXY_PREAUTH_TRANSACTION_MISSING',
    );
  });

  it('a transaction older than the sign-in timeout', async () => {
    let now = Date.now();
    const op = await startFakeOp();
    const rp = new RelyingParty({
      issuer: op.issuer,
      clientId: op.clientId,
      clientSecret: op.clientSecret,
      sessionSecrets: [{ id: 'k1', secret: SECRET }],
      signInTimeoutMs: 60_000,
      clock: () => now,
    });
    const app = rp.protectApp({ externalUrl: 'https://app.example.com/' });
    const jar = new Jar();
    const signIn = await app.signIn(browserRequest('/.appproxy/signin', jar));
    expect(signIn.cookies.at(-1)!.maxAge).toBe(60);
    jar.apply(signIn.cookies);
    const callbackUrl = pathOf(op.authorize(signIn.headers.location!));
    now += 61_000;
    expectRefused(
      await app.callback(browserRequest(callbackUrl, jar)),
      'APPPROXY_PREAUTH_TRANSACTION_MISSING',
    );
  });

  it('an authorization response from another issuer (mix-up, RFC 9207)', async () => {
    const { app, jar, callbackUrl, op } = await started();
    const evil = callbackUrl.replace(
      encodeURIComponent(op.issuer),
      encodeURIComponent('https://evil.example'),
    );
    expect(evil).not.toBe(callbackUrl);
    expectRefused(
      await app.callback(browserRequest(evil, jar)),
      'APPPROXY_PREAUTH_ISSUER_MISMATCH',
    );
  });

  it('an authorization response without iss when the provider promises it', async () => {
    const { app, jar, callbackUrl } = await started();
    const u = new URL(callbackUrl, 'https://app.example.com');
    u.searchParams.delete('iss');
    expectRefused(
      await app.callback(browserRequest(pathOf(u.href), jar)),
      'APPPROXY_PREAUTH_ISSUER_MISMATCH',
    );
  });

  it('the provider’s error answer', async () => {
    const { app, jar, callbackUrl } = await started();
    const u = new URL(callbackUrl, 'https://app.example.com');
    u.searchParams.delete('code');
    u.searchParams.set('error', 'access_denied');
    u.searchParams.set('error_description', '<script>alert(1)</script>');
    const res = await app.callback(browserRequest(pathOf(u.href), jar));
    expectRefused(res, 'APPPROXY_PREAUTH_IDP_ERROR');
    expect(res.error!.message).toBe('the provider answered error=access_denied');
  });

  it('a code the provider does not know (or already redeemed)', async () => {
    const { app, jar, callbackUrl } = await started();
    const u = new URL(callbackUrl, 'https://app.example.com');
    u.searchParams.set('code', 'made-up');
    const res = await app.callback(browserRequest(pathOf(u.href), jar));
    expectRefused(res, 'APPPROXY_PREAUTH_TOKEN_EXCHANGE_FAILED');
    expect(res.error!.message).not.toContain('made-up');
  });
});

describe('open redirects through the return URL', () => {
  it.each([
    'https://evil.example/',
    '//evil.example',
    '/\\evil.example',
    '/a/..//evil.example',
    'javascript:alert(1)',
  ])('%s lands on the app’s home', async (rd) => {
    const { app, op } = await setup({ externalUrl: 'https://app.example.com/home/' });
    const { callback } = await signInFlow(app, op, new Jar(), rd);
    expect(callback.status).toBe(302);
    expect(callback.headers.location).toBe('/home/');
  });
});

describe('forged and foreign session cookies', () => {
  it('a tampered session is anonymous, and expired', async () => {
    const { app, op } = await setup();
    const jar = new Jar();
    await signInFlow(app, op, jar);
    const value = jar.cookies[app.sessionCookieName]!;
    const tampered = value.slice(0, -5) + (value.at(-5) === 'A' ? 'B' : 'A') + value.slice(-4);
    const res = await app.authenticate(
      browserRequest('/', jar, { cookies: { [app.sessionCookieName]: tampered } }),
    );
    expect(res.ok).toBe(false);
    if (res.ok) return;
    expect(res.response.status).toBe(401);
    expect(res.response.body).toContain('/.appproxy/signin');
    expect(res.response.cookies).toEqual([
      expect.objectContaining({ name: app.sessionCookieName, maxAge: 0 }),
    ]);
  });

  it('a session sealed with another relay’s secret is refused', async () => {
    const { app, op } = await setup();
    const other = new RelyingParty({
      issuer: op.issuer,
      clientId: op.clientId,
      clientSecret: op.clientSecret,
      sessionSecrets: [{ id: 'k1', secret: OTHER_SECRET }],
    }).protectApp({ externalUrl: 'https://app.example.com/' });
    const jar = new Jar();
    await signInFlow(other, op, jar);
    expect((await other.authenticate(browserRequest('/', jar))).ok).toBe(true);
    expect((await app.authenticate(browserRequest('/', jar))).ok).toBe(false);
  });

  it('a cookie of app A is refused by app B (same relay, same secret)', async () => {
    const { app, rp, op } = await setup();
    const jar = new Jar();
    await signInFlow(app, op, jar);
    expect((await app.authenticate(browserRequest('/', jar))).ok).toBe(true);
    const appB = rp.protectApp({ externalUrl: 'https://b.example.com/' });
    const res = await appB.authenticate(browserRequest('/', jar));
    expect(res.ok).toBe(false);
    const read = await appB.readSession(jar.cookies[app.sessionCookieName]!);
    expect(read.ok || read.error.reason).toBe('aud_mismatch');
  });

  it('a session of another identity provider is refused', async () => {
    const { app, op } = await setup();
    const jar = new Jar();
    await signInFlow(app, op, jar);
    const op2 = await startFakeOp();
    const app2 = new RelyingParty({
      issuer: op2.issuer,
      clientId: op.clientId,
      sessionSecrets: [{ id: 'k1', secret: SECRET }],
    }).protectApp({ externalUrl: 'https://app.example.com/' });
    const read = await app2.readSession(jar.cookies[app.sessionCookieName]!);
    expect(read.ok || read.error.reason).toBe('iss_mismatch');
  });

  it('a transaction cookie is never accepted as a session', async () => {
    const { app } = await setup();
    const jar = new Jar();
    const signIn = await app.signIn(browserRequest('/.appproxy/signin', jar));
    const read = await app.readSession(signIn.cookies.at(-1)!.value);
    expect(read.ok || read.error.reason).toBe('wrong_type');
  });
});

describe('what refusals say', () => {
  it('never a secret, code, state, nonce, token or cookie value', async () => {
    const { op, app } = await setup();
    const secrets: string[] = [op.clientSecret, SECRET];
    const said: string[] = [];
    const collect = (res: PreauthResponse) => {
      expect(res.error).toBeDefined();
      said.push(res.error!.message, res.error!.description, String(res.error!.reason));
    };
    let forged = '';
    op.forgeIdToken = async (claims, o) => (forged = await o.sign({ ...claims, aud: 'other' }));
    const jar = new Jar();
    const { callback, callbackUrl } = await signInFlow(app, op, jar);
    collect(callback);
    const query = new URL(callbackUrl, 'https://x').searchParams;
    secrets.push(query.get('code')!, query.get('state')!, forged);
    // Replay, wrong state, no cookie, unknown code, foreign transaction.
    const txn = Object.values(
      (await app.signIn(browserRequest('/.appproxy/signin', new Jar()))).cookies,
    )[0]!;
    secrets.push(txn.value);
    for (const url of [callbackUrl, callbackUrl.replace(query.get('state')!, 'x'.repeat(43))]) {
      collect(await app.callback(browserRequest(url, jar)));
      collect(await app.callback(browserRequest(url, new Jar())));
    }
    const wrongSecret = new RelyingParty({
      issuer: op.issuer,
      clientId: op.clientId,
      clientSecret: 'wrong-client-secret',
      sessionSecrets: [{ id: 'k1', secret: SECRET }],
    }).protectApp({ externalUrl: 'https://app.example.com/' });
    secrets.push('wrong-client-secret');
    op.forgeIdToken = undefined;
    collect((await signInFlow(wrongSecret, op, new Jar())).callback);
    const bearer = await app.authenticate(
      browserRequest('/', new Jar(), {
        headers: { accept: 'application/json', authorization: `Bearer ${forged}` },
      }),
    );
    if (!bearer.ok) said.push(bearer.response.headers['www-authenticate'] ?? '');
    const text = said.join('\n');
    expect(said.length).toBeGreaterThan(10);
    for (const secret of secrets) expect(text).not.toContain(secret);
  });
});
