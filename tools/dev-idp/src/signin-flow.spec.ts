// The whole sign-in against the real dev identity provider (oidc-provider), through a relay
// stand-in that uses @appproxy/preauth exactly as the relay does, driven by a hand-rolled
// browser: interstitial → signin → login form → callback → session → the app → signout with
// RP-initiated logout. Real sockets on 127.0.0.1, nothing mocked.
import { createHash, randomBytes } from 'node:crypto';
import {
  RelyingParty,
  type ProtectedAppOptions,
  type RelyingPartyOptions,
} from '@appproxy/preauth';
import { describe, expect, it, onTestFinished } from 'vitest';
import { startDevIdp, type DevIdp } from './server.mjs';
import { Browser, startHarness, type Forwarded, type Page } from './__fixtures__/harness.js';

const SECRET = 'a-dev-only-session-secret-of-enough-length';
const CLIENT_SECRET = 'relay-client-secret';

interface Setup {
  idp: DevIdp;
  origin: string;
  forwarded: Forwarded[];
  rp: RelyingParty;
}

/**
 * The dev IdP and one protected app on the harness. The client's redirect URI is only known
 * once the harness listens, so the IdP starts after it (clients are fixed at start).
 */
async function setup(
  opts: {
    rp?: Partial<RelyingPartyOptions>;
    app?: Partial<ProtectedAppOptions>;
    idp?: Parameters<typeof startDevIdp>[0];
    clock?: () => number;
  } = {},
): Promise<Setup> {
  // The harness builds the app at its first request, once `rp` below exists.
  const harness = await startHarness((origin) => {
    return rp.protectApp({
      externalUrl: `${origin}/`,
      name: 'Expenses',
      cookies: { secure: false },
      ...opts.app,
    });
  });
  const idp = await startDevIdp({
    clients: [
      {
        clientId: 'relay',
        clientSecret: CLIENT_SECRET,
        redirectUris: [`${harness.origin}/.appproxy/callback`],
        postLogoutRedirectUris: [`${harness.origin}/.appproxy/signed-out`],
      },
      { clientId: 'native-cli', redirectUris: ['http://127.0.0.1/callback'] },
    ],
    ...opts.idp,
  });
  onTestFinished(() => idp.close());
  const rp = new RelyingParty({
    issuer: idp.issuer,
    clientId: 'relay',
    clientSecret: CLIENT_SECRET,
    scopes: ['openid', 'profile', 'email', 'groups'],
    sessionSecrets: [{ id: 'k1', secret: SECRET }],
    bearerAudiences: [idp.audience],
    ...(opts.clock && { clock: opts.clock }),
    ...opts.rp,
  });
  return { idp, origin: harness.origin, forwarded: harness.forwarded, rp };
}

/** From an app URL to the provider's login form, as a browser with JavaScript. */
async function toLoginForm(browser: Browser, url: string): Promise<Page> {
  const interstitial = await browser.open(url);
  expect(interstitial.status).toBe(401);
  expect(interstitial.headers.get('cache-control')).toBe('no-store');
  const login = await browser.runScript(interstitial);
  expect(login.status).toBe(200);
  expect(login.body).toContain('<form method="post" action="/interaction/');
  return login;
}

async function signIn(
  browser: Browser,
  url: string,
  username: string,
  password = `${username}-password`,
): Promise<Page> {
  const login = await toLoginForm(browser, url);
  return browser.submit(login, /\/login"/, { username, password });
}

describe('sign-in against the dev identity provider', () => {
  it('interstitial → login form → callback → the exact URL, fragment included → sign-out', async () => {
    const { origin, forwarded, idp } = await setup();
    const browser = new Browser();
    browser.jar(origin).set('app_pref', 'dark'); // the app's own cookie

    const landed = await signIn(browser, `${origin}/reports/2025?tab=q3#/chart/7?zoom=2`, 'alice');
    expect(landed.status).toBe(200);
    expect(landed.url).toBe(`${origin}/reports/2025?tab=q3#/chart/7?zoom=2`);
    const seen = JSON.parse(landed.body) as Forwarded;
    expect(seen).toMatchObject({
      path: '/reports/2025?tab=q3',
      cookieNames: ['app_pref'], // the relay's own cookies never reach the app
      identity: {
        sub: '0f6a8b3c-7d51-4b9e-9a2f-a11ce0000001',
        issuer: idp.issuer,
        name: 'Alice Admin',
        email: 'alice@example.com',
        preferredUsername: 'alice',
        upn: 'alice@corp.example.com',
        groups: ['Staff', 'Finance', 'AppProxy Admins'],
        roles: ['Expenses.Approver'],
        amr: ['pwd', 'mfa'],
      },
    });
    expect(forwarded).toHaveLength(1);
    // PKCE was used, and the provider saw the app's own redirect URI.
    const authorize = new URL(browser.visited.find((u) => u.startsWith(`${idp.issuer}/auth?`))!);
    expect(authorize.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authorize.searchParams.get('redirect_uri')).toBe(`${origin}/.appproxy/callback`);
    // Transaction cookies are gone; the session stays.
    expect([...browser.jar(origin).keys()].sort()).toEqual(['app_pref', 'appproxy_session']);

    // Signed in: the next request goes straight through.
    expect((await browser.open(`${origin}/other`)).status).toBe(200);

    // Sign-out: the relay's session, then the provider's (RP-initiated logout).
    const confirm = await browser.open(`${origin}/.appproxy/signout`);
    expect(confirm.url).toMatch(new RegExp(`^${idp.issuer}/session/end`));
    expect(browser.jar(origin).has('appproxy_session')).toBe(false);
    const out = await browser.submit(confirm, /op\.logoutForm/, { logout: 'yes' });
    expect(out.url).toBe(`${origin}/.appproxy/signed-out`);
    expect(out.body).toContain('You have signed out of Expenses.');
    // Both sessions are gone: the app asks again and so does the provider.
    const again = await toLoginForm(browser, `${origin}/reports`);
    expect(again.url).toMatch(new RegExp(`^${idp.issuer}/interaction/`));
  });

  it('without JavaScript the fragment is lost (the reference product’s behaviour), nothing else', async () => {
    const { origin } = await setup();
    const browser = new Browser();
    const interstitial = await browser.open(`${origin}/reports?x=1#/tab`);
    const login = await browser.followMetaRefresh(interstitial);
    const landed = await browser.submit(login, /\/login"/, {
      username: 'alice',
      password: 'alice-password',
    });
    expect(landed.url).toBe(`${origin}/reports?x=1`);
    expect(landed.status).toBe(200);
  });

  it('a wrong password stays at the provider; the right one continues', async () => {
    const { origin } = await setup();
    const browser = new Browser();
    const login = await toLoginForm(browser, `${origin}/`);
    const wrong = await browser.submit(login, /\/login"/, { username: 'alice', password: 'nope' });
    expect(wrong.status).toBe(401);
    expect(wrong.body).toContain('Wrong username or password.');
    const ok = await browser.submit(wrong, /\/login"/, {
      username: 'alice',
      password: 'alice-password',
    });
    expect(ok.url).toBe(`${origin}/`);
    expect(ok.status).toBe(200);
  });

  it('cancelling at the provider shows the relay’s refusal, not a crash', async () => {
    const { origin } = await setup();
    const browser = new Browser();
    const login = await toLoginForm(browser, `${origin}/`);
    const abort = /href="(\/interaction\/[^"]+\/abort)"/.exec(login.body)![1]!;
    const res = await browser.open(new URL(abort, login.url).href);
    expect(res.status).toBe(403);
    expect(JSON.parse(res.body)).toMatchObject({ code: 'APPPROXY_PREAUTH_IDP_ERROR' });
  });

  it('SameSite=Strict sessions land through the continue page', async () => {
    const { origin } = await setup({ app: { cookies: { secure: false, sameSite: 'Strict' } } });
    const browser = new Browser();
    const page = await signIn(browser, `${origin}/deep?q=1#frag`, 'alice');
    expect(page.status).toBe(200);
    expect(page.body).toContain('Signed in.');
    const landed = await browser.runScript(page);
    expect(landed.url).toBe(`${origin}/deep?q=1#frag`);
    expect(landed.status).toBe(200);
  });

  it('a user in 200 groups gets a session split over several cookies', async () => {
    const { origin } = await setup();
    const browser = new Browser();
    const landed = await signIn(browser, `${origin}/`, 'carol');
    expect(landed.status).toBe(200);
    const names = [...browser.jar(origin).keys()];
    expect(names.filter((n) => n.startsWith('appproxy_session')).length).toBeGreaterThan(1);
    const seen = JSON.parse((await browser.open(`${origin}/x`)).body) as Forwarded;
    expect((seen.identity as { groups: string[] }).groups).toHaveLength(201);
  });

  it('providers that put only sub in ID tokens: the profile comes from userinfo', async () => {
    const { origin } = await setup({ idp: { conformIdTokenClaims: true }, rp: { userinfo: true } });
    const browser = new Browser();
    const landed = await signIn(browser, `${origin}/`, 'bob');
    expect(JSON.parse(landed.body)).toMatchObject({
      identity: { email: 'bob@example.com', groups: ['Staff'] },
    });
  });
});

describe('assignment and policy', () => {
  it('a user not assigned gets NOT_ASSIGNED with who they are; an assigned one gets in', async () => {
    const { origin } = await setup({
      app: { assignment: { required: true, groups: ['Finance'] } },
    });
    const bob = new Browser();
    const refused = await signIn(bob, `${origin}/`, 'bob');
    expect(refused.status).toBe(403);
    expect(JSON.parse(refused.body)).toEqual({
      code: 'NOT_ASSIGNED',
      reason: 'Your account is not assigned to this app.',
      signedInAs: 'bob',
    });
    const alice = new Browser();
    expect((await signIn(alice, `${origin}/`, 'alice')).status).toBe(200);
  });

  it('MFA required: a password-only sign-in gets POLICY_DENIED', async () => {
    const { origin } = await setup({ app: { rules: { requiredAmr: ['mfa'] } } });
    const refused = await signIn(new Browser(), `${origin}/`, 'bob');
    expect(refused.status).toBe(403);
    expect(JSON.parse(refused.body)).toMatchObject({ code: 'POLICY_DENIED' });
    expect((await signIn(new Browser(), `${origin}/`, 'alice')).status).toBe(200);
  });

  it('client IP ranges', async () => {
    const { origin } = await setup({ app: { rules: { clientIpRanges: ['10.0.0.0/8'] } } });
    const refused = await signIn(new Browser(), `${origin}/`, 'alice');
    expect(JSON.parse(refused.body)).toMatchObject({ code: 'POLICY_DENIED' });
  });

  it('signing in to one app does not open another the user is not assigned to', async () => {
    const idpClients: { origin: string }[] = [];
    const open = await startHarness((origin) =>
      rp.protectApp({ externalUrl: `${origin}/`, cookies: { secure: false } }),
    );
    const restricted = await startHarness((origin) =>
      rp.protectApp({
        externalUrl: `${origin}/`,
        cookies: { secure: false },
        assignment: { required: true, users: ['alice@example.com'] },
      }),
    );
    idpClients.push(open, restricted);
    const idp = await startDevIdp({
      clients: [
        {
          clientId: 'relay',
          clientSecret: CLIENT_SECRET,
          redirectUris: idpClients.map((h) => `${h.origin}/.appproxy/callback`),
        },
      ],
    });
    onTestFinished(() => idp.close());
    const rp = new RelyingParty({
      issuer: idp.issuer,
      clientId: 'relay',
      clientSecret: CLIENT_SECRET,
      scopes: ['openid', 'profile', 'email', 'groups'],
      sessionSecrets: [{ id: 'k1', secret: SECRET }],
    });
    const browser = new Browser();
    expect((await signIn(browser, `${open.origin}/`, 'bob')).status).toBe(200);
    // The provider remembers bob: the second app signs him in without a form…
    const before = browser.visited.length;
    const second = await browser.runScript(await browser.open(`${restricted.origin}/`));
    expect(browser.visited.slice(before).some((u) => u.endsWith('/login'))).toBe(false);
    // …and refuses him, while the first app still serves him.
    expect(second.status).toBe(403);
    expect(JSON.parse(second.body)).toMatchObject({ code: 'NOT_ASSIGNED', signedInAs: 'bob' });
    expect((await browser.open(`${open.origin}/`)).status).toBe(200);
  });
});

describe('bearer tokens for native clients', () => {
  /** A native public client: authorization code + PKCE with resource=<audience>, as MSAL or the Okta CLI do. */
  async function nativeToken(idp: DevIdp, username: string): Promise<string> {
    const browser = new Browser();
    const verifier = randomBytes(32).toString('base64url');
    const auth = new URL(`${idp.issuer}/auth`);
    auth.search = new URLSearchParams({
      client_id: 'native-cli',
      response_type: 'code',
      redirect_uri: 'http://127.0.0.1:53682/callback',
      scope: 'openid profile email groups',
      resource: idp.audience,
      state: 's',
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
    }).toString();
    const login = await browser.open(auth.href);
    // The loopback redirect URI has no listener (the CLI would): the code is in the last URL.
    await browser
      .submit(login, /\/login"/, { username, password: `${username}-password` })
      .catch(() => {});
    const code = new URL(browser.visited.at(-1)!).searchParams.get('code');
    expect(code).toBeTruthy();
    const res = await fetch(`${idp.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        client_id: 'native-cli',
        code: code!,
        redirect_uri: 'http://127.0.0.1:53682/callback',
        code_verifier: verifier,
      }),
    });
    const json = (await res.json()) as { access_token: string; token_type: string };
    expect(res.status).toBe(200);
    return json.access_token;
  }

  it('a JWT access token for the API audience is accepted, then stripped', async () => {
    const { origin, idp } = await setup();
    const token = await nativeToken(idp, 'alice');
    expect(token.split('.')).toHaveLength(3);
    const res = await fetch(`${origin}/api/items`, {
      headers: { accept: 'application/json', authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(200);
    const seen = (await res.json()) as Forwarded;
    expect(seen.authorization).toBeUndefined();
    expect(seen.identity).toMatchObject({
      sub: '0f6a8b3c-7d51-4b9e-9a2f-a11ce0000001',
      preferredUsername: 'alice',
      groups: ['Staff', 'Finance', 'AppProxy Admins'],
      amr: ['pwd', 'mfa'],
    });
  });

  it('API clients get 401 with WWW-Authenticate, never a redirect', async () => {
    const { origin, idp } = await setup();
    const anonymous = await fetch(`${origin}/api/items`, {
      headers: { accept: 'application/json' },
      redirect: 'manual',
    });
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toBe(`Bearer realm="${origin}"`);
    const xhr = await fetch(`${origin}/api/items`, {
      headers: { 'x-requested-with': 'XMLHttpRequest', accept: 'text/html' },
    });
    expect(xhr.status).toBe(401);
    const bad = await fetch(`${origin}/api/items`, {
      headers: {
        accept: 'application/json',
        authorization: `Bearer ${(await nativeToken(idp, 'bob')).slice(0, -4)}AAAA`,
      },
    });
    expect(bad.status).toBe(401);
    expect(bad.headers.get('www-authenticate')).toMatch(/error="invalid_token"/);
  });

  it('an expired access token is refused (injected relay clock)', async () => {
    let skew = 0;
    const { origin, idp } = await setup({
      clock: () => Date.now() + skew,
      idp: { accessTokenTtl: 120 },
    });
    const token = await nativeToken(idp, 'alice');
    const call = () =>
      fetch(`${origin}/api`, {
        headers: { accept: 'application/json', authorization: `Bearer ${token}` },
      });
    expect((await call()).status).toBe(200);
    skew = 120_000 + 61_000; // past exp plus the 60 s tolerance
    const res = await call();
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toContain('The access token expired');
  });
});

describe('signing-key rotation at the provider', () => {
  it('new ID tokens signed with a new key validate after one JWKS refetch', async () => {
    let skew = 0;
    const { origin, idp } = await setup({ clock: () => Date.now() + skew });
    expect((await signIn(new Browser(), `${origin}/`, 'alice')).status).toBe(200);
    expect(idp.hits['/jwks']).toBe(1);
    const oldKid = idp.currentKeyId();
    const newKid = await idp.rotateSigningKey();
    expect(newKid).not.toBe(oldKid);
    skew = 31_000; // past the refetch cooldown
    expect((await signIn(new Browser(), `${origin}/`, 'bob')).status).toBe(200);
    expect(idp.hits['/jwks']).toBe(2);
    // The old session (old key's ID token) is unaffected: sessions are the relay's own.
    expect((await signIn(new Browser(), `${origin}/`, 'alice')).status).toBe(200);
    expect(idp.hits['/jwks']).toBe(2);
  });
});
