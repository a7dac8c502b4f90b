import { startDevIdp } from '@appproxy/dev-idp';
import { startSampleApp } from '@appproxy/sample-app';
import { createHash, randomBytes } from 'node:crypto';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM, launchChromium, logInAtDevIdp, newContext } from './browser.js';
import { Stack, devIdpFor, freePort, json, request } from './harness.js';

/**
 * Pre-authentication through the real relay and connector, with the dev OpenID provider
 * (oidc-provider) and a real browser (Debian's chromium via playwright-core).
 */
type SampleApp = Awaited<ReturnType<typeof startSampleApp>>;
type DevIdp = Awaited<ReturnType<typeof startDevIdp>>;
let sample: SampleApp;
let idp: DevIdp;
let stack: Stack;
let browser: Browser;
const contexts: BrowserContext[] = [];

const HOSTS = {
  sso: 'sso.apps.localhost',
  finance: 'finance.apps.localhost',
  mfa: 'mfa.apps.localhost',
  api: 'api.apps.localhost',
  office: 'office.apps.localhost',
  open: 'open.apps.localhost',
};
const origin = (host: string) => `https://${host}:${stack.ports.public}`;

describe.skipIf(!CHROMIUM)('pre-authentication (OIDC)', () => {
  beforeAll(async () => {
    sample = await startSampleApp({ basePath: '/' });
    const internal = `http://127.0.0.1:${sample.port}/`;
    stack = new Stack({
      apps: [
        {
          name: 'Intranet',
          internalUrl: internal,
          externalUrl: `https://${HOSTS.sso}:{port}/app/`,
          preAuthentication: 'oidc',
        },
        {
          name: 'Finance',
          internalUrl: internal,
          externalUrl: `https://${HOSTS.finance}:{port}/`,
          preAuthentication: 'oidc',
          extra: '    assignment: { required: true, groups: [Finance] }\n',
        },
        {
          name: 'Mfa',
          internalUrl: internal,
          externalUrl: `https://${HOSTS.mfa}:{port}/`,
          preAuthentication: 'oidc',
          extra: '    rules: { requiredAmr: [mfa] }\n',
        },
        {
          name: 'Api',
          internalUrl: internal,
          externalUrl: `https://${HOSTS.api}:{port}/`,
          preAuthentication: 'oidc',
        },
        {
          name: 'Office',
          internalUrl: internal,
          externalUrl: `https://${HOSTS.office}:{port}/`,
          preAuthentication: 'oidc',
          extra: '    rules: { clientIpRanges: [10.0.0.0/8, 192.168.0.0/16] }\n',
        },
        {
          name: 'Open',
          internalUrl: internal,
          externalUrl: `https://${HOSTS.open}:{port}/`,
        },
      ],
    });
    idp = await devIdpFor(stack, Object.values(HOSTS), {
      clients: [{ clientId: 'appproxy-cli', redirectUris: ['http://127.0.0.1/callback'] }],
      more: (p) => [`  bearerAudiences: [${p.audience}]`],
    });
    await stack.start();
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
    await idp?.close();
    await sample?.close();
  });

  afterEach(async () => {
    await Promise.all(contexts.splice(0).map((c) => c.close()));
  });

  async function context(opts: { javaScriptEnabled?: boolean } = {}): Promise<Page> {
    const ctx = await newContext(browser, opts);
    contexts.push(ctx);
    return ctx.newPage();
  }

  describe('in a real browser', () => {
    /** On the provider's login form: signs in as `user`. */
    async function logIn(page: Page, user: string): Promise<void> {
      await logInAtDevIdp(page, idp.issuer, user);
    }

    it('sign-in lands on the exact URL asked for, #fragment included; then sign-out', async () => {
      const page = await context();
      const wanted = `${origin(HOSTS.sso)}/app/page2?tab=q3#section-2`;
      await page.goto(wanted);
      await logIn(page, 'alice');
      await page.waitForURL(wanted, { timeout: 15_000 });
      expect(page.url()).toBe(wanted);
      expect(await page.textContent('h1')).toBe('Page 2');
      // The session cookie is the relay's: host-only, HttpOnly, Secure.
      const cookies = await page.context().cookies(origin(HOSTS.sso));
      const session = cookies.find((c) => c.name === '__Host-appproxy_session');
      expect(session).toMatchObject({ httpOnly: true, secure: true, path: '/' });
      // The backend never saw the relay's cookie or the identity header.
      const seen = await page.goto(`${origin(HOSTS.sso)}/app/headers`);
      const headers = ((await seen!.json()) as { headers: Record<string, string> }).headers;
      expect(headers.cookie ?? '').not.toContain('appproxy');
      expect(Object.keys(headers).some((h) => h.startsWith('appproxy-'))).toBe(false);

      // Sign-out: the relay's session ends, and the provider's (RP-initiated logout).
      await page.goto(`${origin(HOSTS.sso)}/.appproxy/signout`);
      await page.waitForURL((u) => u.href.startsWith(idp.issuer), { timeout: 15_000 });
      await page.click('button[name="logout"]');
      await page.waitForURL(`${origin(HOSTS.sso)}/.appproxy/signed-out`, { timeout: 15_000 });
      expect(
        (await page.context().cookies(origin(HOSTS.sso))).some((c) =>
          c.name.startsWith('__Host-appproxy_session'),
        ),
      ).toBe(false);
      // Back to the app: the provider asks for the password again.
      await page.goto(`${origin(HOSTS.sso)}/app/page2`);
      await page.waitForURL((u) => u.href.startsWith(idp.issuer), { timeout: 15_000 });
      expect(await page.isVisible('#password')).toBe(true);
    });

    it('without JavaScript, sign-in still works and lands without the fragment (the reference’s behaviour)', async () => {
      const page = await context({ javaScriptEnabled: false });
      await page.goto(`${origin(HOSTS.sso)}/app/page2?x=1#lost`);
      await logIn(page, 'alice');
      await page.waitForURL(`${origin(HOSTS.sso)}/app/page2?x=1`, { timeout: 15_000 });
      expect(await page.textContent('h1')).toBe('Page 2');
    });

    it('a user not assigned to the app gets 403 NOT_ASSIGNED saying who they are, with a way out', async () => {
      const page = await context();
      await page.goto(`${origin(HOSTS.finance)}/echo`);
      await logIn(page, 'bob');
      await page.waitForURL(`${origin(HOSTS.finance)}/echo`, { timeout: 15_000 });
      const body = await page.textContent('body');
      expect(body).toContain('NOT_ASSIGNED');
      expect(body).toContain('Signed in as');
      expect(body).toContain('bob');
      expect(await page.getAttribute('a[href="/.appproxy/signout"]', 'href')).toBe(
        '/.appproxy/signout',
      );
      // alice (in Finance) gets the app.
      const other = await context();
      await other.goto(`${origin(HOSTS.finance)}/echo`);
      await logIn(other, 'alice');
      await other.waitForURL(`${origin(HOSTS.finance)}/echo`, { timeout: 15_000 });
      expect(JSON.parse((await other.textContent('body'))!).method).toBe('GET');
    });

    it('a sign-in without MFA gets 403 POLICY_DENIED from an app that requires it', async () => {
      const page = await context();
      await page.goto(`${origin(HOSTS.mfa)}/echo`);
      await logIn(page, 'bob');
      await page.waitForURL(`${origin(HOSTS.mfa)}/echo`, { timeout: 15_000 });
      expect(await page.textContent('body')).toContain('POLICY_DENIED');
    });

    it('a session too large for one cookie is split and joined again (200 groups)', async () => {
      const page = await context();
      await page.goto(`${origin(HOSTS.sso)}/app/echo`);
      await logIn(page, 'carol');
      await page.waitForURL(`${origin(HOSTS.sso)}/app/echo`, { timeout: 15_000 });
      expect(JSON.parse((await page.textContent('body'))!).method).toBe('GET');
      const names = (await page.context().cookies(origin(HOSTS.sso))).map((c) => c.name);
      expect(names).toEqual(
        expect.arrayContaining([
          '__Host-appproxy_session',
          '__Host-appproxy_sessionC1',
          '__Host-appproxy_sessionC2',
        ]),
      );
      // A second request is served from the joined session, without signing in again.
      const again = await page.goto(`${origin(HOSTS.sso)}/app/echo?again=1`);
      expect(again!.status()).toBe(200);
    });

    it('sign-in to one app does not open another, and a session cookie copied to it is refused', async () => {
      const page = await context();
      await page.goto(`${origin(HOSTS.sso)}/app/echo`);
      await logIn(page, 'alice');
      await page.waitForURL(`${origin(HOSTS.sso)}/app/echo`, { timeout: 15_000 });
      const session = (await page.context().cookies(origin(HOSTS.sso))).find(
        (c) => c.name === '__Host-appproxy_session',
      )!;
      const before = sample.requests.length;
      const stolen = await request(stack, HOSTS.api, '/echo', {
        headers: {
          host: `${HOSTS.api}:${stack.ports.public}`,
          cookie: `__Host-appproxy_session=${session.value}`,
          accept: 'application/json',
        },
      });
      expect(stolen.status).toBe(401);
      expect((json(stolen) as { error: { code: string } }).error.code).toBe('SIGN_IN_REQUIRED');
      expect(sample.requests.length).toBe(before);
    });

    it('passthrough apps never see a sign-in', async () => {
      const res = await request(stack, HOSTS.open, '/echo', {
        headers: { host: `${HOSTS.open}:${stack.ports.public}` },
      });
      expect(res.status).toBe(200);
      expect(json(res).method).toBe('GET');
    });
  });

  describe('API clients, native clients and attacks', () => {
    const apiHost = () => `${HOSTS.api}:${stack.ports.public}`;

    /** A native client's authorization code + PKCE flow, in the browser, for an API token. */
    async function nativeAccessToken(user: string): Promise<string> {
      const page = await context();
      const verifier = randomBytes(32).toString('base64url');
      const challenge = createHash('sha256').update(verifier).digest('base64url');
      let code: string | undefined;
      await page.route('http://127.0.0.1/callback**', async (route) => {
        code = new URL(route.request().url()).searchParams.get('code') ?? undefined;
        await route.fulfill({ status: 200, body: 'ok' });
      });
      const authorize = new URL(`${idp.issuer}/auth`);
      for (const [k, v] of Object.entries({
        client_id: 'appproxy-cli',
        response_type: 'code',
        redirect_uri: 'http://127.0.0.1/callback',
        scope: 'openid profile email groups',
        code_challenge: challenge,
        code_challenge_method: 'S256',
        resource: idp.audience,
        state: 'native',
      }))
        authorize.searchParams.set(k, v);
      await page.goto(authorize.href);
      await page.fill('#username', user);
      await page.fill('#password', `${user}-password`);
      await page.click('#sign-in');
      await page.waitForURL('http://127.0.0.1/callback**', { timeout: 15_000 });
      const token = await fetch(`${idp.issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'authorization_code',
          code: code!,
          redirect_uri: 'http://127.0.0.1/callback',
          client_id: 'appproxy-cli',
          code_verifier: verifier,
          resource: idp.audience,
        }),
      });
      const body = (await token.json()) as { access_token: string };
      return body.access_token;
    }

    it('API clients without a session get 401 with WWW-Authenticate: Bearer, not a redirect', async () => {
      const res = await request(stack, HOSTS.api, '/echo', {
        headers: { host: apiHost(), accept: 'application/json' },
      });
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toMatch(
        /^Bearer realm="https:\/\/api\.apps\.localhost/,
      );
      expect((json(res) as { error: { code: string } }).error.code).toBe('SIGN_IN_REQUIRED');
      const xhr = await request(stack, HOSTS.api, '/echo', {
        headers: { host: apiHost(), 'x-requested-with': 'XMLHttpRequest' },
      });
      expect(xhr.status).toBe(401);
    });

    it('a native client’s access token is accepted instead of a cookie, and never forwarded', async () => {
      const token = await nativeAccessToken('alice');
      const res = await request(stack, HOSTS.api, '/headers', {
        headers: { host: apiHost(), authorization: `Bearer ${token}`, accept: 'application/json' },
      });
      expect(res.status).toBe(200);
      const seen = (json(res) as { headers: Record<string, string> }).headers;
      expect(seen.authorization).toBeUndefined();
      expect(Object.keys(seen).some((h) => h.startsWith('appproxy-'))).toBe(false);
      // Tampered: refused with invalid_token.
      const [h, p, sig] = token.split('.');
      const tampered = `${h}.${p}.${sig!.slice(0, -4)}AAAA`;
      const bad = await request(stack, HOSTS.api, '/headers', {
        headers: {
          host: apiHost(),
          authorization: `Bearer ${tampered}`,
          accept: 'application/json',
        },
      });
      expect(bad.status).toBe(401);
      expect(bad.headers['www-authenticate']).toContain('invalid_token');
    });

    it('rules on client address apply to bearer tokens too (403 POLICY_DENIED from 127.0.0.1)', async () => {
      const token = await nativeAccessToken('alice');
      const res = await request(stack, HOSTS.office, '/echo', {
        headers: {
          host: `${HOSTS.office}:${stack.ports.public}`,
          authorization: `Bearer ${token}`,
          accept: 'application/json',
        },
      });
      expect(res.status).toBe(403);
      expect(json(res)).toMatchObject({
        error: { code: 'POLICY_DENIED', signedInAs: expect.any(String) },
      });
    });

    it('callback CSRF and replays are refused; forged sessions count as none', async () => {
      const before = sample.requests.length;
      // A callback this browser never started (no transaction cookie).
      const csrf = await request(stack, HOSTS.api, '/.appproxy/callback?code=abc&state=def', {
        headers: { host: apiHost(), accept: 'application/json' },
      });
      expect(csrf.status).toBe(400);
      const refusal = (json(csrf) as { error: { code: string; reason: string } }).error;
      expect(refusal.code).toBe('SIGN_IN_FAILED');
      // No sign-in of this browser carries that state.
      expect(['APPPROXY_PREAUTH_STATE_MISMATCH', 'APPPROXY_PREAUTH_TRANSACTION_MISSING']).toContain(
        refusal.reason,
      );
      // A forged session cookie: anonymous, never forwarded.
      const forged = await request(stack, HOSTS.api, '/echo', {
        headers: {
          host: apiHost(),
          accept: 'application/json',
          cookie: `__Host-appproxy_session=${randomBytes(300).toString('base64url')}`,
        },
      });
      expect(forged.status).toBe(401);
      // Its cookie is expired by the answer.
      expect(String(forged.headers['set-cookie'])).toMatch(/__Host-appproxy_session=;.*Max-Age=0/i);
      // Reserved paths never reach a backend.
      const reserved = await request(stack, HOSTS.open, '/.appproxy/anything', {
        headers: { host: `${HOSTS.open}:${stack.ports.public}`, accept: 'application/json' },
      });
      expect(reserved.status).toBe(404);
      expect(sample.requests.length).toBe(before);
    });

    it('the return URL only ever leads back to the app’s own origin; a callback works once', async () => {
      const page = await context();
      let callback: string | undefined;
      page.on('request', (r) => {
        if (r.url().includes('/.appproxy/callback')) callback = r.url();
      });
      await page.goto(
        `${origin(HOSTS.sso)}/.appproxy/signin?rd=${encodeURIComponent('//evil.example/steal')}`,
      );
      await page.waitForURL((u) => u.href.startsWith(idp.issuer), { timeout: 15_000 });
      await page.fill('#username', 'alice');
      await page.fill('#password', 'alice-password');
      await page.click('#sign-in');
      await page.waitForURL((u) => u.origin === origin(HOSTS.sso), { timeout: 15_000 });
      expect(new URL(page.url()).origin).toBe(origin(HOSTS.sso));
      expect(page.url()).not.toContain('evil');
      // Replaying the provider's answer, even in the same browser, is refused.
      expect(callback).toBeDefined();
      const replay = await page.goto(callback!);
      expect(replay!.status()).toBe(400);
      expect(await page.textContent('body')).toContain('SIGN_IN_FAILED');
    });
  });
});

describe('pre-authentication when the identity provider is down', () => {
  let down: Stack;
  afterAll(async () => {
    await down?.stop();
  });

  it('sign-in answers 502 IDENTITY_PROVIDER_UNAVAILABLE at once, and the relay keeps serving', async () => {
    const closed = await freePort();
    down = await new Stack({
      startConnector: false,
      identityProvider: [
        `  issuer: http://127.0.0.1:${closed}`,
        '  clientId: appproxy',
        '  clientSecret: e2e-client-secret',
      ].join('\n'),
      apps: [
        {
          name: 'Gated',
          internalUrl: 'http://127.0.0.1:9/',
          externalUrl: 'https://gated.apps.localhost:{port}/',
          preAuthentication: 'oidc',
        },
      ],
    }).start();
    await down.relay!.waitFor(
      (l) => l.msg === 'identity provider not reachable yet',
      10_000,
      'the relay says so at start',
    );
    const started = Date.now();
    const res = await request(down, 'gated.apps.localhost', '/.appproxy/signin?rd=%2F', {
      headers: { accept: 'application/json' },
    });
    expect(res.status).toBe(502);
    expect(json(res)).toMatchObject({
      error: {
        code: 'IDENTITY_PROVIDER_UNAVAILABLE',
        reason: 'APPPROXY_PREAUTH_DISCOVERY_FAILED',
      },
    });
    expect(Date.now() - started).toBeLessThan(10_000);
    // Anonymous API requests still get their 401, never a hang.
    const api = await request(down, 'gated.apps.localhost', '/', {
      headers: { accept: 'application/json' },
    });
    expect(api.status).toBe(401);
  });
});
