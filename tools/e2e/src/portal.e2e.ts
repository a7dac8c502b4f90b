import { startDevIdp } from '@appproxy/dev-idp';
import { startSampleApp } from '@appproxy/sample-app';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM, launchChromium, logInAtDevIdp, newContext } from './browser.js';
import { Stack, devIdpFor, request, type StackApp } from './harness.js';

/**
 * Item 10 of issue 12: the My Apps portal, in Chromium with the development provider —
 * alice (group Finance) sees the Finance apps, bob does not; sign-out ends the portal's
 * session; a reload changes what the portal lists.
 */
type SampleApp = Awaited<ReturnType<typeof startSampleApp>>;
let sample: SampleApp;
let idp: Awaited<ReturnType<typeof startDevIdp>>;
let stack: Stack;
let browser: Browser;
const contexts: BrowserContext[] = [];

const PORTAL = 'myapps.apps.localhost';
const HOSTS = ['payroll', 'expenses', 'wiki', 'open'].map((h) => `${h}.apps.localhost`);
const portalUrl = () => `https://${PORTAL}:${stack.ports.public}/`;

function apps(payrollUsers: string[] = []): StackApp[] {
  const internal = `http://127.0.0.1:${sample.port}/`;
  const list: StackApp[] = [
    {
      name: 'Payroll',
      internalUrl: internal,
      externalUrl: 'https://payroll.apps.localhost:{port}/',
      preAuthentication: 'oidc',
      extra: `    assignment: { required: true, groups: [Finance], users: [${payrollUsers.join(', ')}] }
    icon: https://icons.apps.localhost:{port}/payroll.png
    description: 'Pay slips <script>alert("x")</script> & tax forms'
`,
    },
    {
      name: 'Expenses',
      internalUrl: internal,
      externalUrl: 'https://expenses.apps.localhost:{port}/',
      preAuthentication: 'oidc',
      extra: '    assignment: { required: true, groups: [finance] }\n',
    },
    {
      name: 'Wiki <b>',
      internalUrl: internal,
      externalUrl: 'https://wiki.apps.localhost:{port}/',
      preAuthentication: 'oidc',
    },
    { name: 'Open', internalUrl: internal, externalUrl: 'https://open.apps.localhost:{port}/' },
  ];
  const port = String(stack.ports.public);
  return list.map((a) => (a.extra ? { ...a, extra: a.extra.replaceAll('{port}', port) } : a));
}

beforeAll(async () => {
  sample = await startSampleApp({ basePath: '/' });
  stack = new Stack({ apps: [] });
  await stack.allocatePorts();
  stack.configure({
    apps: apps(),
    topExtra: `portal:\n  externalUrl: https://${PORTAL}:${stack.ports.public}/\n  showPassthrough: true\n`,
  });
  idp = await devIdpFor(stack, [PORTAL, ...HOSTS]);
  await stack.start();
  if (CHROMIUM) browser = await launchChromium();
});

afterAll(async () => {
  await Promise.all(contexts.map((c) => c.close()));
  await browser?.close();
  await stack?.stop();
  await idp?.close();
  await sample?.close();
});

async function signedInPortal(user: string): Promise<Page> {
  const ctx = await newContext(browser);
  contexts.push(ctx);
  const page = await ctx.newPage();
  await page.goto(portalUrl());
  await logInAtDevIdp(page, idp.issuer, user);
  await page.waitForURL(portalUrl(), { timeout: 15_000 });
  return page;
}

const listed = (page: Page) => page.$$eval('#apps .name', (els) => els.map((e) => e.textContent));

describe('My Apps portal', () => {
  it('answers a visitor without a session like any oidc app: sign-in first', async () => {
    const get = (accept: string) =>
      request(stack, PORTAL, '/', { headers: { host: `${PORTAL}:${stack.ports.public}`, accept } });
    const page = await get('text/html');
    // The relay's sign-in interstitial (it keeps the #fragment, then goes to the provider).
    expect(page.status).toBe(401);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(String(page.body)).not.toContain('id="apps"');
    // An API client gets the relay's JSON refusal, as on any oidc app.
    const api = await get('application/json');
    expect(api.status).toBe(401);
    expect(JSON.parse(String(api.body))).toMatchObject({ error: { code: 'SIGN_IN_REQUIRED' } });
  });

  it.skipIf(!CHROMIUM)(
    'alice (Finance) sees the Finance apps, escaped, under a strict CSP',
    async () => {
      const page = await signedInPortal('alice');
      expect(await listed(page)).toStrictEqual(['Expenses', 'Open', 'Payroll', 'Wiki <b>']);
      expect(await page.textContent('#user')).toContain('alice');
      const payroll = page.locator('#apps li', { hasText: 'Payroll' });
      expect(await payroll.locator('a').getAttribute('href')).toBe(
        `https://payroll.apps.localhost:${stack.ports.public}/`,
      );
      expect(await payroll.locator('.desc').textContent()).toBe(
        'Pay slips <script>alert("x")</script> & tax forms',
      );
      expect(await payroll.locator('img').getAttribute('src')).toBe(
        `https://icons.apps.localhost:${stack.ports.public}/payroll.png`,
      );
      expect(await page.$$('script')).toHaveLength(0);
      const res = await page.goto(portalUrl());
      const csp = (await res!.allHeaders())['content-security-policy'];
      expect(csp).toContain("default-src 'none'");
      expect(csp).not.toContain('unsafe-inline');
      // API clients with the portal's session get the same list as JSON.
      const cookie = (await page.context().cookies(portalUrl()))
        .map((c) => `${c.name}=${c.value}`)
        .join('; ');
      const api = await request(stack, PORTAL, '/', {
        headers: { host: `${PORTAL}:${stack.ports.public}`, accept: 'application/json', cookie },
      });
      expect(api.status).toBe(200);
      const list = JSON.parse(String(api.body)) as { user: string; apps: Array<{ name: string }> };
      expect(list.apps.map((a) => a.name)).toStrictEqual([
        'Expenses',
        'Open',
        'Payroll',
        'Wiki <b>',
      ]);
    },
  );

  it.skipIf(!CHROMIUM)('bob sees no Finance app; sign-out ends the portal session', async () => {
    const page = await signedInPortal('bob');
    expect(await listed(page)).toStrictEqual(['Open', 'Wiki <b>']);
    await page.click('#sign-out');
    await page.waitForURL((u) => u.href.startsWith(idp.issuer), { timeout: 15_000 });
    await page.click('button[name="logout"]');
    await page.waitForURL(`${portalUrl()}.appproxy/signed-out`, { timeout: 15_000 });
    await page.goto(portalUrl());
    await page.waitForURL((u) => u.href.startsWith(idp.issuer), { timeout: 15_000 });
    expect(await page.isVisible('#password')).toBe(true);
  });

  it.skipIf(!CHROMIUM)('a reload that assigns bob to Payroll lists it for him', async () => {
    const page = await signedInPortal('bob');
    expect(await listed(page)).not.toContain('Payroll');
    stack.configure({ apps: apps(['bob@example.com']) });
    expect((await stack.reload()).msg).toMatch(/reloaded/);
    await page.reload();
    expect(await listed(page)).toContain('Payroll');
  });
});
