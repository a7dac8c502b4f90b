import { startSampleApp } from '@appproxy/sample-app';
import { createHash, randomBytes } from 'node:crypto';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, newContext } from './browser.js';
import { Stack, devIdpFor, json, request } from './harness.js';

/**
 * Per-user rate limits on an oidc app key on the signed-in user, not the client address:
 * alice and bob, both from 127.0.0.1 with bearer tokens, each get their own bucket; people
 * not signed in get 401, not 429 (the bucket is consulted after sign-in).
 */
let sample: Awaited<ReturnType<typeof startSampleApp>>;
let stack: Stack;
let idp: Awaited<ReturnType<typeof devIdpFor>>;
let browser: Browser;

const API = 'api.apps.localhost';

beforeAll(async () => {
  sample = await startSampleApp({ basePath: '/' });
  stack = new Stack({
    apps: [
      {
        name: 'Api',
        internalUrl: `http://127.0.0.1:${sample.port}/`,
        externalUrl: `https://${API}:{port}/`,
        preAuthentication: 'oidc',
        extra: '    limits: { perUserRequestsPerSecond: 0.01 }\n',
      },
    ],
  });
  idp = await devIdpFor(stack, [API], {
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

/** An access token for `user` from the development provider (code + PKCE in Chromium). */
async function accessToken(user: string): Promise<string> {
  const ctx = await newContext(browser);
  try {
    const page = await ctx.newPage();
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
      scope: 'openid profile email',
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
    return ((await token.json()) as { access_token: string }).access_token;
  } finally {
    await ctx.close();
  }
}

describe('per-user rate limits on an oidc app', () => {
  it('each signed-in user has a bucket of their own, whatever their address', async () => {
    const [alice, bob] = [await accessToken('alice'), await accessToken('bob')];
    const get = (token?: string) =>
      request(stack, API, '/echo', {
        headers: {
          host: `${API}:${stack.ports.public}`,
          accept: 'application/json',
          ...(token && { authorization: `Bearer ${token}` }),
        },
      });
    // Not signed in: the sign-in answer, never a throttle.
    for (let i = 0; i < 3; i++) expect((await get()).status).toBe(401);
    expect((await get(alice)).status).toBe(200);
    const refused = await get(alice);
    expect(refused.status).toBe(429);
    expect(json(refused).error).toMatchObject({ code: 'THROTTLED', reason: 'limit:user' });
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    // Same address (127.0.0.1), another user: a bucket of their own.
    expect((await get(bob)).status).toBe(200);
    expect((await get(bob)).status).toBe(429);
  });
});
