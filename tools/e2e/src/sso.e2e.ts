import { startDevIdp } from '@appproxy/dev-idp';
import { startSampleApp } from '@appproxy/sample-app';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { once } from 'node:events';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { CHROMIUM, launchChromium, logInAtDevIdp, newContext } from './browser.js';
import { Stack, devIdpFor, json, request } from './harness.js';

/**
 * Single sign-on to the apps behind the proxy, through the real relay and connector CLIs, the
 * dev OpenID provider and a real browser: identity headers, the signed assertion verified
 * against the relay's JWKS, WebSocket upgrades, a user without the needed claim, spoofed
 * headers from clients (oidc and passthrough apps), sign-out.
 */
type SampleApp = Awaited<ReturnType<typeof startSampleApp>>;
type DevIdp = Awaited<ReturnType<typeof startDevIdp>>;
let sample: SampleApp;
let idp: DevIdp;
let stack: Stack;
let browser: Browser;
const contexts: BrowserContext[] = [];

const HOSTS = {
  wiki: 'wiki.apps.localhost',
  assert: 'assert.apps.localhost',
  bearer: 'bearer.apps.localhost',
  staff: 'staff.apps.localhost',
  open: 'open.apps.localhost',
};
const origin = (host: string) => `https://${host}:${stack.ports.public}`;
const hostHeader = (host: string) => `${host}:${stack.ports.public}`;

/** What a client tries to pass off as someone else. */
const SPOOFED = {
  'x-remote-user': 'admin',
  'remote-user': 'admin',
  'x-forwarded-user': 'admin',
  'x-auth-request-user': 'admin',
  'x-auth-request-email': 'admin@example.com',
  'x-ms-client-principal-name': 'admin',
  'x-real-ip': '10.0.0.1',
  'x-appproxy-assertion': 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.',
  'x-webauth-user': 'admin',
};

describe.skipIf(!CHROMIUM)('single sign-on to the apps (headers, assertion, WebSocket)', () => {
  beforeAll(async () => {
    sample = await startSampleApp({ basePath: '/' });
    const internal = `http://127.0.0.1:${sample.port}/`;
    stack = new Stack({
      apps: [
        {
          name: 'Wiki',
          internalUrl: internal,
          externalUrl: `https://${HOSTS.wiki}:{port}/`,
          preAuthentication: 'oidc',
          extra: [
            '    sso:',
            '      mode: headers',
            '      loginIdentity: upn',
            '      headers:',
            '        X-Remote-User: "{loginIdentity}"',
            '        X-Remote-Email: "{email}"',
            '        X-Remote-Groups: "{groups}"',
            '        X-Remote-Sam: "{samAccountName}"',
            '',
          ].join('\n'),
        },
        {
          name: 'Assert',
          internalUrl: internal,
          externalUrl: `https://${HOSTS.assert}:{port}/`,
          preAuthentication: 'oidc',
          extra: '    sso: { mode: jwt, loginIdentity: samAccountName }\n',
        },
        {
          name: 'Bearer',
          internalUrl: internal,
          externalUrl: `https://${HOSTS.bearer}:{port}/`,
          preAuthentication: 'oidc',
          extra:
            '    sso: { mode: jwt, loginIdentity: email, jwt: { header: Authorization, audience: bearer-api, lifetime: 2m } }\n',
        },
        {
          name: 'Staff',
          internalUrl: internal,
          externalUrl: `https://${HOSTS.staff}:{port}/`,
          preAuthentication: 'oidc',
          extra:
            '    sso: { mode: headers, loginIdentity: "claim:employee_id", headers: { X-Employee: "{loginIdentity}" } }\n',
        },
        { name: 'Open', internalUrl: internal, externalUrl: `https://${HOSTS.open}:{port}/` },
      ],
    });
    idp = await devIdpFor(stack, Object.values(HOSTS), {
      more: ['  claims: { samAccountName: onprem_sam }'],
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

  async function page(): Promise<Page> {
    const ctx = await newContext(browser);
    contexts.push(ctx);
    return ctx.newPage();
  }

  /** Opens `url` in a fresh browser, signs in as `user` at the provider, lands on `url`. */
  async function signedIn(url: string, user: string): Promise<Page> {
    const p = await page();
    await p.goto(url);
    await logInAtDevIdp(p, idp.issuer, user);
    await p.waitForURL(url, { timeout: 15_000 });
    return p;
  }

  /** The relay's session cookies of the page's browser, as a Cookie header. */
  async function sessionCookie(p: Page, host: string): Promise<string> {
    const cookies = await p.context().cookies(origin(host));
    return cookies
      .filter((c) => c.name.startsWith('__Host-appproxy_session'))
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }

  /** The headers the sample app received for the last request whose path is `path`. */
  function backendSaw(path: string): Record<string, string | string[] | undefined> {
    const hit = sample.requests.findLast((r) => r.rawUrl === path);
    if (!hit) throw new Error(`the backend never saw ${path}`);
    return hit.headers;
  }

  it('headers mode: the backend sees who signed in, in the browser and with spoofed headers', async () => {
    const p = await signedIn(`${origin(HOSTS.wiki)}/headers`, 'alice');
    const seen = JSON.parse((await p.textContent('body'))!) as {
      headers: Record<string, string>;
    };
    expect(seen.headers['x-remote-user']).toBe('alice@corp.example.com');
    expect(seen.headers['x-remote-email']).toBe('alice@example.com');
    expect(seen.headers['x-remote-groups']).toBe('Staff, Finance, AppProxy Admins');
    expect(seen.headers['x-remote-sam']).toBe('ALICE');

    // The same session, with every identity header a client could try: the backend sees
    // alice once, and none of the client's values.
    const cookie = await sessionCookie(p, HOSTS.wiki);
    const res = await request(stack, HOSTS.wiki, '/headers?spoof=1', {
      headers: { host: hostHeader(HOSTS.wiki), cookie, ...SPOOFED },
    });
    expect(res.status).toBe(200);
    const got = backendSaw('/headers?spoof=1');
    expect(got['x-remote-user']).toBe('alice@corp.example.com');
    for (const name of Object.keys(SPOOFED).filter((n) => n !== 'x-remote-user'))
      expect([name, got[name]]).toStrictEqual([name, undefined]);
    expect(JSON.stringify(got)).not.toContain('admin');
  });

  it('a client-sent X-Remote-User never reaches a passthrough app, nor an oidc app before sign-in', async () => {
    const res = await request(stack, HOSTS.open, '/headers?open-spoof=1', {
      headers: { host: hostHeader(HOSTS.open), ...SPOOFED },
    });
    expect(res.status).toBe(200);
    const got = backendSaw('/headers?open-spoof=1');
    for (const name of Object.keys(SPOOFED))
      expect([name, got[name]]).toStrictEqual([name, undefined]);
    // Mixed case and repeated: still stripped (HTTP/1.1 joins repeated headers).
    const raw = await request(stack, HOSTS.open, '/headers?open-spoof=2', {
      headers: { host: hostHeader(HOSTS.open), 'X-REMOTE-USER': 'root', 'Remote-User': 'root' },
    });
    expect(raw.status).toBe(200);
    expect(JSON.stringify(backendSaw('/headers?open-spoof=2'))).not.toContain('root');

    // Anonymous at an oidc app (an API client: no text/html): 401, and nothing at the backend.
    const before = sample.requests.length;
    const anon = await request(stack, HOSTS.wiki, '/headers?anon=1', {
      headers: { host: hostHeader(HOSTS.wiki), ...SPOOFED },
    });
    expect(anon.status).toBe(401);
    expect(sample.requests.length).toBe(before);
  });

  it('jwt mode: the backend verifies the assertion against /.appproxy/jwks.json fetched through the relay', async () => {
    const p = await signedIn(`${origin(HOSTS.assert)}/headers`, 'alice');
    const seen = JSON.parse((await p.textContent('body'))!) as {
      headers: Record<string, string>;
    };
    const token = seen.headers['x-appproxy-assertion']!;
    expect(token.split('.')).toHaveLength(3);

    const jwks = await request(stack, HOSTS.assert, '/.appproxy/jwks.json', {
      headers: { host: hostHeader(HOSTS.assert) },
    });
    expect(jwks.status).toBe(200);
    expect(jwks.headers['content-type']).toBe('application/jwk-set+json');
    expect(jwks.headers['cache-control']).toBe('public, max-age=300');
    const keySet = json(jwks) as { keys: Array<Record<string, unknown>> };
    expect(keySet.keys.length).toBeGreaterThan(0);
    for (const key of keySet.keys) {
      expect(key).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
      expect(key).not.toHaveProperty('d');
    }
    expect(decodeProtectedHeader(token)).toMatchObject({ alg: 'ES256' });
    const { payload } = await jwtVerify(token, createLocalJWKSet(keySet as never), {
      issuer: origin(HOSTS.assert),
      audience: `http://127.0.0.1:${sample.port}`,
    });
    expect(payload).toMatchObject({
      sub: idp.users[0]!.sub,
      email: 'alice@example.com',
      name: 'Alice Admin',
      upn: 'alice@corp.example.com',
      login_identity: 'ALICE',
      groups: ['Staff', 'Finance', 'AppProxy Admins'],
    });
    expect(payload.exp! - payload.iat!).toBe(60);
    expect(typeof payload.jti).toBe('string');

    // The same keys on every app's host, passthrough ones included; refused where none is.
    const elsewhere = await request(stack, HOSTS.open, '/.appproxy/jwks.json', {
      headers: { host: hostHeader(HOSTS.open) },
    });
    expect(json(elsewhere)).toStrictEqual(keySet);
    const nowhere = await request(stack, 'unknown.apps.localhost', '/.appproxy/jwks.json', {
      headers: { host: hostHeader('unknown.apps.localhost'), accept: 'application/json' },
    });
    expect(nowhere.status).toBe(404);

    // A forged assertion from the client never gets there, and a token signed with another
    // key does not verify against the relay's keys.
    const cookie = await sessionCookie(p, HOSTS.assert);
    await request(stack, HOSTS.assert, '/headers?forged=1', {
      headers: { host: hostHeader(HOSTS.assert), cookie, 'x-appproxy-assertion': 'forged' },
    });
    const relayed = backendSaw('/headers?forged=1')['x-appproxy-assertion'] as string;
    expect(relayed).not.toBe('forged');
    await expect(
      jwtVerify(relayed, createLocalJWKSet(keySet as never), {
        issuer: origin(HOSTS.assert),
        audience: `http://127.0.0.1:${sample.port}`,
      }),
    ).resolves.toBeTruthy();
  });

  it('jwt mode with Authorization: the backend gets Bearer <assertion> for its audience', async () => {
    const p = await signedIn(`${origin(HOSTS.bearer)}/headers`, 'bob');
    const seen = JSON.parse((await p.textContent('body'))!) as {
      headers: Record<string, string>;
    };
    const [scheme, token] = seen.headers.authorization!.split(' ');
    expect(scheme).toBe('Bearer');
    const jwks = json(
      await request(stack, HOSTS.bearer, '/.appproxy/jwks.json', {
        headers: { host: hostHeader(HOSTS.bearer) },
      }),
    );
    const { payload } = await jwtVerify(token!, createLocalJWKSet(jwks as never), {
      issuer: origin(HOSTS.bearer),
      audience: 'bearer-api',
    });
    expect(payload.login_identity).toBe('bob@example.com');
    expect(payload.exp! - payload.iat!).toBe(120);
    // A client's own Authorization is replaced, never forwarded next to the assertion.
    const cookie = await sessionCookie(p, HOSTS.bearer);
    await request(stack, HOSTS.bearer, '/headers?own-auth=1', {
      headers: { host: hostHeader(HOSTS.bearer), cookie, authorization: 'Basic YWRtaW46YWRtaW4=' },
    });
    expect(String(backendSaw('/headers?own-auth=1').authorization)).toMatch(/^Bearer ey/);
  });

  it('WebSocket: the upgrade request carries the same SSO, spoofed headers stripped', async () => {
    const p = await signedIn(`${origin(HOSTS.wiki)}/headers`, 'bob');
    const cookie = await sessionCookie(p, HOSTS.wiki);
    const ws = new WebSocket(`wss://127.0.0.1:${stack.ports.public}/ws`, {
      ca: stack.ca,
      servername: HOSTS.wiki,
      headers: { host: hostHeader(HOSTS.wiki), cookie, ...SPOOFED },
    });
    await once(ws, 'open');
    const reply = once(ws, 'message') as Promise<[Buffer, boolean]>;
    ws.send('who am i');
    expect((await reply)[0].toString()).toBe('who am i');
    const upgrade = sample.requests.findLast((r) => r.rawUrl === '/ws')!;
    expect(upgrade.headers.upgrade).toBe('websocket');
    expect(upgrade.headers['x-remote-user']).toBe('bob@corp.example.com');
    expect(upgrade.headers['x-remote-email']).toBe('bob@example.com');
    expect(upgrade.headers['x-auth-request-user']).toBeUndefined();
    expect(upgrade.headers['x-real-ip']).toBeUndefined();
    ws.close();
    await once(ws, 'close');

    // The assertion too, on an upgrade to a jwt app.
    const a = await signedIn(`${origin(HOSTS.assert)}/headers`, 'bob');
    const ws2 = new WebSocket(`wss://127.0.0.1:${stack.ports.public}/ws`, {
      ca: stack.ca,
      servername: HOSTS.assert,
      headers: { host: hostHeader(HOSTS.assert), cookie: await sessionCookie(a, HOSTS.assert) },
    });
    await once(ws2, 'open');
    const assertion = sample.requests.findLast((r) => r.rawUrl === '/ws')!.headers[
      'x-appproxy-assertion'
    ] as string;
    const jwks = json(
      await request(stack, HOSTS.assert, '/.appproxy/jwks.json', {
        headers: { host: hostHeader(HOSTS.assert) },
      }),
    );
    const { payload } = await jwtVerify(assertion, createLocalJWKSet(jwks as never), {
      issuer: origin(HOSTS.assert),
    });
    expect(payload.login_identity).toBe('BOB');
    ws2.close();
    await once(ws2, 'close');
  });

  it('a user without the claim the login identity needs gets 403 SSO_IDENTITY_MISSING, never an empty user', async () => {
    const before = sample.requests.length;
    const p = await signedIn(`${origin(HOSTS.staff)}/headers`, 'carol');
    const body = (await p.textContent('body'))!;
    expect(body).toContain('SSO_IDENTITY_MISSING');
    expect(body).toContain('employee_id');
    expect(body).toContain('Signed in as');
    expect(sample.requests.slice(before).some((r) => r.rawUrl.startsWith('/headers'))).toBe(false);
    // As JSON for API clients, and on an upgrade too.
    const cookie = await sessionCookie(p, HOSTS.staff);
    const res = await request(stack, HOSTS.staff, '/headers', {
      headers: { host: hostHeader(HOSTS.staff), cookie, accept: 'application/json' },
    });
    expect(res.status).toBe(403);
    expect(json(res).error).toMatchObject({
      code: 'SSO_IDENTITY_MISSING',
      reason: 'claim:employee_id',
    });
    const ws = new WebSocket(`wss://127.0.0.1:${stack.ports.public}/ws`, {
      ca: stack.ca,
      servername: HOSTS.staff,
      headers: { host: hostHeader(HOSTS.staff), cookie },
    });
    const [, refused] = (await once(ws, 'unexpected-response')) as [
      unknown,
      { statusCode: number },
    ];
    expect(refused.statusCode).toBe(403);
    ws.on('error', () => {}).terminate();
    expect(sample.requests.slice(before).some((r) => r.rawUrl === '/ws')).toBe(false);
    await stack.relay!.waitFor(
      (l) =>
        l.msg === 'single sign-on refused' &&
        l.code === 'SSO_IDENTITY_MISSING' &&
        l.claim === 'employee_id' &&
        l.app === 'Staff',
      5_000,
      'the relay logging the missing claim',
    );

    // alice has the claim: the backend sees it.
    const ok = await signedIn(`${origin(HOSTS.staff)}/headers`, 'alice');
    const seen = JSON.parse((await ok.textContent('body'))!) as { headers: Record<string, string> };
    expect(seen.headers['x-employee']).toBe('E-1001');
  });

  it('after sign-out no request or new upgrade from that browser carries the identity', async () => {
    const p = await signedIn(`${origin(HOSTS.wiki)}/headers`, 'alice');
    await p.goto(`${origin(HOSTS.wiki)}/.appproxy/signout`);
    await p.waitForURL((u) => u.href.startsWith(idp.issuer), { timeout: 15_000 });
    await p.click('button[name="logout"]');
    await p.waitForURL(`${origin(HOSTS.wiki)}/.appproxy/signed-out`, { timeout: 15_000 });
    const cookie = await sessionCookie(p, HOSTS.wiki);
    expect(cookie).toBe('');
    const before = sample.requests.length;
    // The browser is sent to sign in again; nothing reached the backend.
    await p.goto(`${origin(HOSTS.wiki)}/headers?after=1`);
    await p.waitForURL((u) => u.href.startsWith(idp.issuer), { timeout: 15_000 });
    const ws = new WebSocket(`wss://127.0.0.1:${stack.ports.public}/ws`, {
      ca: stack.ca,
      servername: HOSTS.wiki,
      headers: { host: hostHeader(HOSTS.wiki), cookie: '' },
    });
    const [, refused] = (await once(ws, 'unexpected-response')) as [
      unknown,
      { statusCode: number },
    ];
    expect(refused.statusCode).toBeGreaterThanOrEqual(300);
    ws.on('error', () => {}).terminate();
    expect(sample.requests.length).toBe(before);
  });
});
