import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { RelyingParty, type ProtectedAppOptions, type RelyingPartyOptions } from './index.js';
import { startFakeOp } from './__fixtures__/fake-op.js';
import {
  Jar,
  OTHER_SECRET,
  SECRET,
  browserRequest,
  pathOf,
  signInFlow,
  testClock,
} from './__fixtures__/rp.js';

async function setup(
  rpOpts: Partial<RelyingPartyOptions> = {},
  appOpts: Partial<ProtectedAppOptions> = {},
) {
  const op = await startFakeOp();
  const clock = testClock();
  const rp = new RelyingParty({
    issuer: op.issuer,
    clientId: op.clientId,
    clientSecret: op.clientSecret,
    sessionSecrets: [{ id: 'k1', secret: SECRET }],
    clock: clock.now,
    ...rpOpts,
  });
  const app = rp.protectApp({
    externalUrl: 'https://app.example.com/',
    name: 'Expenses',
    ...appOpts,
  });
  return { op, rp, app, clock };
}

const api = (jar: Jar, extra = {}) =>
  browserRequest('/api/items', jar, { headers: { accept: 'application/json' }, ...extra });

describe('anonymous requests', () => {
  it('a browser gets the interstitial, an API client 401 with WWW-Authenticate: Bearer', async () => {
    const { app } = await setup();
    const page = await app.authenticate(browserRequest('/reports?y=1', new Jar()));
    expect(page.ok).toBe(false);
    if (page.ok) return;
    expect(page.response).toMatchObject({ status: 401, cookies: [] });
    expect(page.response.error).toBeUndefined();
    expect(page.response.body).toContain('rd=%2Freports%3Fy%3D1');

    const res = await app.authenticate(api(new Jar()));
    if (res.ok) throw new Error('expected a refusal');
    expect(res.response).toMatchObject({
      status: 401,
      body: '',
      headers: { 'www-authenticate': 'Bearer realm="https://app.example.com"' },
    });
    expect(res.response.error?.code).toBe('APPPROXY_PREAUTH_SIGN_IN_REQUIRED');
  });

  it('handle() answers only the reserved paths it owns', async () => {
    const { app } = await setup();
    expect(await app.handle(browserRequest('/', new Jar()))).toBeUndefined();
    expect(
      await app.handle(browserRequest('/.appproxy/assets/logo.svg', new Jar())),
    ).toBeUndefined();
    expect((await app.handle(browserRequest('/.appproxy/signin', new Jar())))!.status).toBe(302);
    const out = (await app.handle(browserRequest('/.appproxy/signed-out', new Jar())))!;
    expect(out.status).toBe(200);
    expect(out.body).toContain('You have signed out of Expenses.');
    expect(out.body).toContain('href="/"');
  });
});

describe('homePath (the app’s custom home page)', () => {
  it('is where sign-in returns without a return URL, and the signed-out page’s link', async () => {
    const { app, op } = await setup({}, { homePath: '/start.aspx?tab=1' });
    expect(app.homePath).toBe('/start.aspx?tab=1');
    // No rd, or one that is not a path on this origin: the home page.
    const none = await signInFlow(app, op, new Jar(), '');
    expect(none.callback.headers.location).toBe('/start.aspx?tab=1');
    const evil = await signInFlow(app, op, new Jar(), '//evil.example/');
    expect(evil.callback.headers.location).toBe('/start.aspx?tab=1');
    // A page asked for still wins.
    const asked = await signInFlow(app, op, new Jar(), '/reports');
    expect(asked.callback.headers.location).toBe('/reports');
    const out = (await app.handle(browserRequest('/.appproxy/signed-out', new Jar())))!;
    expect(out.body).toContain('href="/start.aspx?tab=1"');
  });

  it('is never another origin: an unsafe one falls back to the external path', async () => {
    const { app } = await setup({}, { homePath: 'https://evil.example/' });
    expect(app.homePath).toBe('/');
  });
});

describe('sign-in', () => {
  it('builds a code + PKCE request with state, nonce and the app’s own redirect URI', async () => {
    const { app, op } = await setup({
      authorizationParams: { domain_hint: 'example.com' },
      scopes: ['openid', 'email', 'groups'],
    });
    op.discovery = { authorization_endpoint: `${op.issuer}/authorize?p=b2c_policy` };
    const res = await app.signIn(browserRequest('/.appproxy/signin?rd=%2Fx', new Jar()));
    expect(res.status).toBe(302);
    expect(res.headers['cache-control']).toBe('no-store');
    const url = new URL(res.headers.location!);
    expect(`${url.origin}${url.pathname}`).toBe(`${op.issuer}/authorize`);
    const p = Object.fromEntries(url.searchParams);
    expect(p).toMatchObject({
      p: 'b2c_policy',
      domain_hint: 'example.com',
      response_type: 'code',
      client_id: 'relay',
      redirect_uri: 'https://app.example.com/.appproxy/callback',
      scope: 'openid email groups',
      code_challenge_method: 'S256',
    });
    expect(p.state).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(p.nonce).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(p.code_challenge).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(p.nonce).not.toBe(p.state);
    // The transaction cookie: per sign-in, short-lived, Lax (the provider comes back with a top-level GET).
    expect(res.cookies).toEqual([
      {
        name: `__Host-appproxy_txn_${p.state!.slice(0, 12)}`,
        value: expect.any(String),
        maxAge: 600,
        path: '/',
        httpOnly: true,
        secure: true,
        sameSite: 'Lax',
      },
    ]);
    // Nothing of the sign-in is readable in the cookie.
    expect(res.cookies[0]!.value).not.toContain(p.state!.slice(12));
  });

  it('returns to the exact URL asked for, #fragment included, with the session cookie', async () => {
    const { app, op } = await setup();
    const jar = new Jar();
    const before = Math.floor(Date.now() / 1000);
    const { callback } = await signInFlow(app, op, jar, '/reports/2025?tab=q3#/chart/7?zoom=2');
    const after = Math.floor(Date.now() / 1000);
    expect(callback.status).toBe(302);
    expect(callback.headers.location).toBe('/reports/2025?tab=q3#/chart/7?zoom=2');
    const session = callback.cookies.find((c) => c.name === '__Host-appproxy_session')!;
    // The app's cookie settings; SameSite None when secure (the reference product), session cookie.
    expect(session).toMatchObject({ path: '/', httpOnly: true, secure: true, sameSite: 'None' });
    expect(session.maxAge).toBeUndefined();
    expect(callback.cookies.find((c) => c.name.includes('_txn_'))).toMatchObject({ maxAge: 0 });

    const auth = await app.authenticate(browserRequest('/reports/2025', jar));
    expect(auth).toMatchObject({
      ok: true,
      via: 'session',
      cookies: [],
      stripAuthorization: false,
      identity: {
        sub: 'user-1',
        issuer: op.issuer,
        email: 'alice@example.com',
        name: 'Alice Example',
        preferredUsername: 'alice',
        groups: ['Staff', 'Finance'],
        amr: ['pwd', 'mfa'],
      },
    });
    // When the session was signed in: the CSRF token of the admin console is bound to it.
    const signedInAt = auth.ok ? auth.signedInAt : undefined;
    expect(signedInAt).toBeGreaterThanOrEqual(before);
    expect(signedInAt).toBeLessThanOrEqual(after);
  });

  it('follows the app’s cookie settings: not secure → no __Host- prefix and Lax; persistent → Max-Age', async () => {
    const { app, op } = await setup(
      {},
      { cookies: { secure: false, httpOnly: false, persistent: true } },
    );
    const { callback, signIn } = await signInFlow(app, op, new Jar());
    expect(signIn.cookies[0]!.name).toMatch(/^appproxy_txn_/);
    expect(callback.cookies.find((c) => c.name === 'appproxy_session')).toMatchObject({
      secure: false,
      httpOnly: false,
      sameSite: 'Lax',
      maxAge: 8 * 3600,
    });
  });

  it('SameSite=Strict sessions continue from a page of the app’s own origin', async () => {
    const { app, op } = await setup({}, { cookies: { sameSite: 'Strict' } });
    const { callback } = await signInFlow(app, op, new Jar(), '/a?b=1#frag');
    expect(callback.status).toBe(200);
    expect(callback.body).toContain('<meta http-equiv="refresh" content="0;url=/a?b=1#frag">');
    expect(callback.body).toContain('id="continue" href="/a?b=1#frag"');
    expect(callback.cookies.find((c) => c.name === '__Host-appproxy_session')).toMatchObject({
      sameSite: 'Strict',
    });
  });

  it('a sign-in kept apart (the admin console): its own paths, cookie and sealing purpose', async () => {
    const { app, op, rp } = await setup(
      {},
      {
        externalUrl: 'http://127.0.0.1:9090/console/',
        reservedPrefix: '/console/',
        sessionCookie: { name: 'appproxy_admin', purpose: 'admin-session' },
        cookies: { secure: false, sameSite: 'Strict' },
      },
    );
    expect(app.redirectUri).toBe('http://127.0.0.1:9090/console/callback');
    expect(app.postLogoutRedirectUri).toBe('http://127.0.0.1:9090/console/signed-out');
    expect(await app.handle(browserRequest('/.appproxy/signin', new Jar()))).toBeUndefined();
    const start = (await app.handle(browserRequest('/console/signin', new Jar())))!;
    expect(new URL(start.headers.location!).searchParams.get('redirect_uri')).toBe(app.redirectUri);
    const jar = new Jar();
    const { callback } = await signInFlow(app, op, jar, '/console/apps');
    const cookie = callback.cookies.find((c) => c.name === 'appproxy_admin')!;
    expect(cookie).toMatchObject({ sameSite: 'Strict', secure: false });
    expect((await app.authenticate(browserRequest('/console/', jar))).ok).toBe(true);
    // Sealed for its own purpose: not an app session, and an app session is not one of it.
    await expect(rp.keyring.unseal('session', cookie.value)).rejects.toMatchObject({
      reason: 'wrong_type',
    });
    const appSession = await rp.keyring.seal('session', { v: 1 });
    const forged = await app.authenticate(
      browserRequest('/console/', new Jar(), { cookies: { appproxy_admin: appSession } }),
    );
    expect(forged.ok).toBe(false);
    // An anonymous browser's interstitial continues to this sign-in, not to /.appproxy/.
    const anonymous = await app.authenticate(browserRequest('/console/apps', new Jar()));
    const page = !anonymous.ok ? anonymous.response : undefined;
    expect(page?.status).toBe(401);
    expect(page?.body).toContain("location.replace('/console/signin?rd='");
    expect(page?.body).toContain('url=/console/signin?rd=%2Fconsole%2Fapps');
    expect(page?.body).not.toContain('/.appproxy/');
  });

  it('refuses a reservedPrefix that is not a plain path, when the app is built', async () => {
    const { rp } = await setup();
    for (const reservedPrefix of ["/x');alert(1);('/", 'console/', '/console'])
      expect(() =>
        rp.protectApp({ externalUrl: 'https://admin.example.com/', name: 'A', reservedPrefix }),
      ).toThrow(expect.objectContaining({ code: 'APPPROXY_PREAUTH_CONFIG_INVALID' }));
  });

  it('two tabs signing in at once both complete; old transactions are bounded', async () => {
    const { app, op } = await setup({ maxConcurrentSignIns: 3 });
    const jar = new Jar();
    const tab1 = await app.signIn(browserRequest('/.appproxy/signin?rd=%2Fone', jar));
    jar.apply(tab1.cookies);
    const tab2 = await app.signIn(browserRequest('/.appproxy/signin?rd=%2Ftwo', jar));
    jar.apply(tab2.cookies);
    expect(Object.keys(jar.cookies)).toHaveLength(2);
    const cb2 = await app.callback(
      browserRequest(pathOf(op.authorize(tab2.headers.location!)), jar),
    );
    jar.apply(cb2.cookies);
    const cb1 = await app.callback(
      browserRequest(pathOf(op.authorize(tab1.headers.location!)), jar),
    );
    jar.apply(cb1.cookies);
    expect([cb1.headers.location, cb2.headers.location]).toEqual(['/one', '/two']);
    expect(Object.keys(jar.cookies)).toEqual(['__Host-appproxy_session']);

    // A fourth concurrent sign-in drops the oldest; garbage transaction cookies are dropped too.
    const many = new Jar();
    many.cookies['__Host-appproxy_txn_garbage'] = 'not-sealed';
    for (let i = 0; i < 4; i++) {
      many.apply((await app.signIn(browserRequest('/.appproxy/signin', many))).cookies);
    }
    expect(Object.keys(many.cookies)).toHaveLength(3);
  });

  it('fetches userinfo when asked (providers that keep ID tokens small)', async () => {
    const { app, op } = await setup({ userinfo: true });
    op.user = { sub: 'user-1' };
    op.forgeIdToken = (claims, o) => o.sign(claims);
    const jar = new Jar();
    // The fake provider's userinfo answers the full profile for the same sub.
    op.user = { sub: 'user-1', email: 'u@example.com', groups: ['G'] };
    await signInFlow(app, op, jar);
    expect(await app.authenticate(browserRequest('/', jar))).toMatchObject({
      ok: true,
      identity: { email: 'u@example.com', groups: ['G'] },
    });
    expect(op.hits['/userinfo']).toBe(1);
  });

  it('says the provider is unreachable instead of hanging', async () => {
    const { app, op } = await setup({ timeoutMs: 200 });
    op.delays['/.well-known/openid-configuration'] = 2000;
    const res = await app.signIn(browserRequest('/.appproxy/signin', new Jar()));
    expect(res.status).toBe(502);
    expect(res.error?.code).toBe('APPPROXY_PREAUTH_DISCOVERY_FAILED');
  });
});

describe('session lifetime', () => {
  it('idle timeout and sliding refresh (a quarter of the idle time), with an injected clock', async () => {
    const { app, op, clock } = await setup({
      session: { idleTimeoutMs: 60 * 60_000, lifetimeMs: 8 * 3_600_000 },
    });
    const jar = new Jar();
    await signInFlow(app, op, jar);
    clock.advance(10 * 60_000);
    const early = await app.authenticate(browserRequest('/', jar));
    expect(early).toMatchObject({ ok: true, cookies: [] }); // not re-issued on every request
    clock.advance(6 * 60_000);
    const slid = await app.authenticate(browserRequest('/', jar));
    expect(slid.ok && slid.cookies.map((c) => c.name)).toEqual(['__Host-appproxy_session']);
    jar.apply(slid.ok ? slid.cookies : []);
    clock.advance(59 * 60_000); // 75 min after sign-in, 59 min after the refresh
    expect((await app.authenticate(browserRequest('/', jar))).ok).toBe(true);
    clock.advance(60 * 60_000 + 1000);
    const idle = await app.authenticate(browserRequest('/', jar));
    expect(idle.ok).toBe(false);
    const read = await app.readSession(jar.cookies['__Host-appproxy_session']!);
    expect(read.ok || [read.error.code, read.error.reason]).toEqual([
      'APPPROXY_PREAUTH_SESSION_EXPIRED',
      'idle',
    ]);
  });

  it('the absolute lifetime is never extended by activity', async () => {
    const { app, op, clock } = await setup({
      session: { idleTimeoutMs: 60 * 60_000, lifetimeMs: 2 * 3_600_000 },
    });
    const jar = new Jar();
    await signInFlow(app, op, jar);
    for (let i = 0; i < 7; i++) {
      clock.advance(16 * 60_000);
      const r = await app.authenticate(browserRequest('/', jar));
      expect(r.ok).toBe(true);
      if (r.ok) jar.apply(r.cookies);
    }
    clock.advance(16 * 60_000); // 128 min
    const r = await app.authenticate(api(jar));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.response.status).toBe(401);
    expect(r.response.cookies).toEqual([
      expect.objectContaining({ name: '__Host-appproxy_session', maxAge: 0 }),
    ]);
    const read = await app.readSession(jar.cookies['__Host-appproxy_session']!);
    expect(read.ok || read.error.reason).toBe('lifetime');
  });

  it('apps may have their own lifetimes', async () => {
    const { rp, op, clock } = await setup();
    const short = rp.protectApp({
      externalUrl: 'https://short.example.com/',
      session: { idleTimeoutMs: 5 * 60_000 },
    });
    const jar = new Jar();
    await signInFlow(short, op, jar);
    clock.advance(5 * 60_000);
    expect((await short.authenticate(browserRequest('/', jar))).ok).toBe(false);
  });

  it('a session sealed with a retired-but-listed key still works and is re-sealed with the current one', async () => {
    const { op, clock } = await setup();
    const before = new RelyingParty({
      issuer: op.issuer,
      clientId: op.clientId,
      clientSecret: op.clientSecret,
      sessionSecrets: [{ id: 'old', secret: OTHER_SECRET }],
      clock: clock.now,
    }).protectApp({ externalUrl: 'https://app.example.com/' });
    const jar = new Jar();
    await signInFlow(before, op, jar);
    const after = new RelyingParty({
      issuer: op.issuer,
      clientId: op.clientId,
      sessionSecrets: [
        { id: 'new', secret: SECRET },
        { id: 'old', secret: OTHER_SECRET },
      ],
      clock: clock.now,
    }).protectApp({ externalUrl: 'https://app.example.com/' });
    const r = await after.authenticate(browserRequest('/', jar));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.cookies).toHaveLength(1);
    jar.apply(r.cookies);
    expect(
      await after.rp.keyring.unseal('session', jar.cookies['__Host-appproxy_session']!),
    ).toMatchObject({ keyId: 'new' });
  });

  it('many groups make a long sealed value that still round-trips', async () => {
    const { app, op } = await setup({ maxSessionGroups: 400 });
    op.user = { ...op.user, groups: Array.from({ length: 400 }, () => randomUUID()) };
    const jar = new Jar();
    await signInFlow(app, op, jar);
    const value = jar.cookies['__Host-appproxy_session']!;
    expect(value.length).toBeGreaterThan(4096); // the relay splits it (@appproxy/cookies)
    const r = await app.authenticate(browserRequest('/', jar));
    expect(r.ok && r.identity.groups).toHaveLength(400);
    // An ID token that big is not kept for id_token_hint.
    const read = await app.readSession(value);
    expect(read.ok && read.payload.idt).toBeUndefined();
  });

  it('beyond maxSessionGroups, the groups that apps assign are kept first', async () => {
    const { rp, op } = await setup({ maxSessionGroups: 10 });
    const app = rp.protectApp({
      externalUrl: 'https://app.example.com/',
      assignment: { required: true, groups: ['needle'] },
    });
    op.user = { ...op.user, groups: [...Array.from({ length: 30 }, (_, i) => `g${i}`), 'Needle'] };
    const jar = new Jar();
    await signInFlow(app, op, jar);
    const r = await app.authenticate(browserRequest('/', jar));
    if (!r.ok) throw new Error('expected a session');
    expect(r.identity.groups).toEqual([
      'Needle',
      'g0',
      'g1',
      'g2',
      'g3',
      'g4',
      'g5',
      'g6',
      'g7',
      'g8',
    ]);
    expect(r.identity.groupsTruncated).toBe(true);
    expect(app.authorize(r.identity)).toEqual({ ok: true });
    // A small ID token is kept for id_token_hint.
    expect((await app.readSession(jar.cookies['__Host-appproxy_session']!)).ok).toBe(true);
  });
});

describe('sign-out', () => {
  it('expires the session and continues to RP-initiated logout with id_token_hint', async () => {
    const { app, op } = await setup();
    const jar = new Jar();
    await signInFlow(app, op, jar);
    const res = (await app.handle(browserRequest('/.appproxy/signout', jar)))!;
    expect(res.status).toBe(302);
    expect(res.cookies).toEqual([
      expect.objectContaining({ name: '__Host-appproxy_session', value: '', maxAge: 0 }),
    ]);
    const url = new URL(res.headers.location!);
    expect(`${url.origin}${url.pathname}`).toBe(`${op.issuer}/logout`);
    expect(url.searchParams.get('id_token_hint')!.split('.')).toHaveLength(3);
    expect(url.searchParams.get('client_id')).toBe('relay');
    expect(url.searchParams.get('post_logout_redirect_uri')).toBe(
      'https://app.example.com/.appproxy/signed-out',
    );
  });

  it('without id_token_hint when the session does not keep the ID token', async () => {
    const { app, op } = await setup({ idTokenHint: false });
    const jar = new Jar();
    await signInFlow(app, op, jar);
    const url = new URL(
      (await app.signOut(browserRequest('/.appproxy/signout', jar))).headers.location!,
    );
    expect(url.searchParams.has('id_token_hint')).toBe(false);
    expect(url.searchParams.get('client_id')).toBe('relay');
  });

  it('goes to the signed-out page when the provider has no end_session_endpoint or is down', async () => {
    const { app, op } = await setup({ timeoutMs: 200 });
    op.discovery = { end_session_endpoint: undefined };
    expect(
      (await app.signOut(browserRequest('/.appproxy/signout', new Jar()))).headers.location,
    ).toBe('/.appproxy/signed-out');
    const down = await setup({ timeoutMs: 200 });
    down.op.delays['/.well-known/openid-configuration'] = 2000;
    const res = await down.app.signOut(browserRequest('/.appproxy/signout', new Jar()));
    expect(res.headers.location).toBe('/.appproxy/signed-out');
    expect(res.cookies[0]).toMatchObject({ maxAge: 0 });
  });

  it('refuses a cross-site sub-request (an <img> on another site)', async () => {
    const { app } = await setup();
    const res = await app.signOut(
      browserRequest('/.appproxy/signout', new Jar(), {
        headers: { accept: 'image/*', 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'no-cors' },
      }),
    );
    expect(res.error?.code).toBe('APPPROXY_PREAUTH_SIGN_OUT_REFUSED');
    expect(res.cookies).toEqual([]);
  });
});
