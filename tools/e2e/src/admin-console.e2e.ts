import { startDevIdp } from '@appproxy/dev-idp';
import { startSampleApp } from '@appproxy/sample-app';
import { copyFileSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM, launchChromium, logInAtDevIdp, newContext } from './browser.js';
import {
  connectorId,
  devIdpFor,
  ROOT,
  runCli,
  RELAY_BIN,
  Stack,
  type StackApp,
} from './harness.js';

/**
 * Issue 15 item 4: the admin console on the admin listener, in Chromium, with the real
 * relay and connector CLIs, the development provider and the sample app. alice (group
 * "AppProxy Admins") signs in, sees the connector, tests the app, creates a registration
 * token (shown once) and finds its audit event; bob (not an admin) gets 403.
 *
 * Screenshots (1280×800) are taken on every run into the stack's directory; with
 * APPPROXY_SCREENSHOTS=1 they are copied to docs/images/console-*.png.
 */
type SampleApp = Awaited<ReturnType<typeof startSampleApp>>;
let sample: SampleApp;
let idp: Awaited<ReturnType<typeof startDevIdp>>;
let stack: Stack;
let browser: Browser;
const contexts: BrowserContext[] = [];

const WIKI = 'wiki.apps.localhost';
const EVIL_APP = 'Intranet <script>window.__xss=1</script>';
const consoleUrl = (path = '/console/') => `http://127.0.0.1:${stack.ports.admin}${path}`;

beforeAll(async () => {
  sample = await startSampleApp({ basePath: '/' });
  stack = new Stack({ apps: [] });
  const { admin } = await stack.allocatePorts();
  const internal = `http://127.0.0.1:${sample.port}/`;
  const apps: StackApp[] = [
    {
      name: 'Wiki',
      internalUrl: internal,
      externalUrl: `https://${WIKI}:{port}/`,
      preAuthentication: 'oidc',
    },
    {
      name: `'${EVIL_APP}'`,
      internalUrl: internal,
      externalUrl: 'https://intranet.apps.localhost:{port}/',
    },
  ];
  // Registers the apps' callbacks and the console's (<admin URL>/console/callback) too.
  idp = await devIdpFor(stack, [WIKI]);
  stack.configure({
    apps,
    relayExtra: `  admins: { groups: ['AppProxy Admins'] }\n  adminUrl: http://127.0.0.1:${admin}\n`,
  });
  await stack.start();
  if (CHROMIUM) browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await Promise.all(contexts.map((c) => c.close()));
  await browser?.close();
  await stack?.stop();
  await idp?.close();
  await sample?.close();
});

async function signedIn(user: string, path = '/console/'): Promise<Page> {
  const ctx = await newContext(browser, { viewport: { width: 1280, height: 800 } });
  contexts.push(ctx);
  const page = await ctx.newPage();
  await page.goto(consoleUrl(path));
  await logInAtDevIdp(page, idp.issuer, user);
  await page.waitForURL((u) => u.href.startsWith(consoleUrl(path)), { timeout: 15_000 });
  return page;
}

/** Into the stack's directory always; into docs/images with APPPROXY_SCREENSHOTS=1. */
async function screenshot(page: Page, name: string): Promise<void> {
  const dir = join(stack.dir, 'screenshots');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `console-${name}.png`);
  // Clicks scroll the page; the pictures show it from the top left.
  await page.evaluate(() =>
    (globalThis as unknown as { scrollTo(x: number, y: number): void }).scrollTo(0, 0),
  );
  await page.screenshot({ path: file });
  expect(statSync(file).size).toBeGreaterThan(1000);
  if (process.env.APPPROXY_SCREENSHOTS === '1') {
    mkdirSync(join(ROOT, 'docs/images'), { recursive: true });
    copyFileSync(file, join(ROOT, 'docs/images', `console-${name}.png`));
  }
}

describe.skipIf(!CHROMIUM)('admin console', () => {
  let page: Page;
  let tokenId = '';

  it('alice signs in through the provider and sees the connector, active, in its group', async () => {
    page = await signedIn('alice');
    const id = connectorId(stack.connectorState);
    const row = page.locator(`table[data-group="Default"] tr[data-connector="${id}"]`);
    await expect.poll(() => row.locator('.badge').textContent()).toBe('active');
    expect(await page.textContent('#viewer')).toContain('alice');
    // The strict CSP on the page; no inline script.
    const res = await page.goto(consoleUrl());
    const headers = await res!.allHeaders();
    expect(headers['content-security-policy']).toBe(
      "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    expect(headers['cache-control']).toBe('no-store');
    expect(await page.$$eval('script:not([src])', (s) => s.length)).toBe(0);
    // The live refresh: the page's script asks the API with the session cookie and builds
    // the rows again (a mark put on the server's row is gone, the row is back).
    await row.evaluate((tr) => tr.setAttribute('data-stale', '1'));
    const live = await page.waitForResponse((r) => r.url().endsWith('/api/v1/connectors'), {
      timeout: 10_000,
    });
    expect(live.status()).toBe(200);
    await expect.poll(() => page.locator('tr[data-stale]').count()).toBe(0);
    expect(await row.locator('.badge').textContent()).toBe('active');
    await expect.poll(() => page.textContent('#live-status')).toMatch(/^Updated /);
    expect(await row.locator('td').nth(5).textContent()).toBe('2');
    await screenshot(page, 'overview');
  });

  it('runs a test of the app: result rows shown, pass; names stay text', async () => {
    await page.goto(consoleUrl('/console/apps'));
    const evil = page.locator('#apps tr[data-app]').nth(1);
    expect(await evil.locator('strong').textContent()).toBe(EVIL_APP);
    expect(await page.evaluate(() => (globalThis as { __xss?: number }).__xss)).toBeUndefined();
    const wiki = page.locator('#apps tr[data-app="Wiki"]');
    await wiki.locator('button[data-test-app]').click();
    const result = page.locator('#apps tr.test-result .result .test-connector').first();
    await result.waitFor({ timeout: 40_000 });
    const checks = result.locator('tr[data-check]');
    expect(await checks.count()).toBeGreaterThan(0);
    const verdicts = await checks.locator('td:nth-child(2)').allTextContents();
    expect(verdicts.filter((v) => v !== 'skip').every((v) => v === 'pass')).toBe(true);
    expect(await wiki.locator('.last-test .badge').textContent()).toBe('pass');
    await screenshot(page, 'apps');
    // The last result survives a reload: the newest admin.app.tested event (the audit log
    // writes to the store in batches, within a second or so).
    await expect
      .poll(
        async () => {
          await page.reload();
          return wiki.locator('.last-test').textContent();
        },
        { timeout: 10_000 },
      )
      .toMatch(/^pass .* by user:alice$/);
  });

  it('creates a registration token, shown once, and revokes it', async () => {
    await page.goto(consoleUrl('/console/tokens'));
    await page.selectOption('#create-token select[name="group"]', 'Default');
    await page.click('#create-token button[type="submit"]');
    await page.locator('#created-token').waitFor({ state: 'visible', timeout: 10_000 });
    const token = (await page.textContent('#token-value'))!;
    expect(token.length).toBeGreaterThan(40);
    tokenId = (await page
      .locator('#tokens tbody tr[data-token]')
      .first()
      .getAttribute('data-token'))!;
    expect(tokenId).toMatch(/^[a-z2-7]{8}$/);
    // Copy puts exactly the token on the clipboard.
    await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], {
      origin: consoleUrl(''),
    });
    await page.click('#copy-token');
    await expect.poll(() => page.textContent('#copy-token')).toBe('Copied');
    expect(
      await page.evaluate(() =>
        (
          globalThis as unknown as { navigator: { clipboard: { readText(): Promise<string> } } }
        ).navigator.clipboard.readText(),
      ),
    ).toBe(token);
    await screenshot(page, 'token-created');
    // The CLI lists it (not the secret).
    const listed = await runCli(RELAY_BIN, [
      'token',
      'list',
      '--config',
      stack.configPath,
      '--json',
    ]);
    expect(listed.stdout).toContain(tokenId);
    expect(listed.stdout).not.toContain(token);
    // A reload shows the token's row, never the token again.
    await page.reload();
    expect(await page.locator('#created-token').isHidden()).toBe(true);
    expect(await page.content()).not.toContain(token);
    expect(await page.locator(`#tokens tr[data-token="${tokenId}"]`).count()).toBe(1);
    // Revoke: the row goes, and the token is gone for the CLI too.
    await page.click(`#tokens button[data-revoke-token="${tokenId}"]`);
    await expect.poll(() => page.locator(`#tokens tr[data-token="${tokenId}"]`).count()).toBe(0);
    const after = await runCli(RELAY_BIN, [
      'token',
      'list',
      '--config',
      stack.configPath,
      '--json',
    ]);
    expect(after.stdout).not.toContain(tokenId);
  });

  it('finds the audit event of that creation, filtered by type', async () => {
    await page.goto(consoleUrl('/console/audit'));
    await page.selectOption(
      '#audit-filters select[name="type"]',
      'admin.registration-token.created',
    );
    await Promise.all([
      page.waitForURL(/type=admin\.registration-token\.created/),
      page.click('#audit-filters button[type="submit"]'),
    ]);
    const rows = page.locator('#audit tbody tr[data-event]');
    await expect.poll(() => rows.count(), { timeout: 10_000 }).toBeGreaterThan(0);
    const types = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-type')));
    expect(new Set(types)).toStrictEqual(new Set(['admin.registration-token.created']));
    const mine = rows.filter({ hasText: `id=${tokenId}` });
    expect(await mine.count()).toBe(1);
    expect(await mine.locator('td').nth(2).textContent()).toBe('user:alice');
    await screenshot(page, 'audit');
    // The test of the app with a script in its name shows as text in the log.
    await page.goto(consoleUrl('/console/audit?type=admin.'));
    expect(await page.evaluate(() => (globalThis as { __xss?: number }).__xss)).toBeUndefined();
  });

  it('alice signs out: the console asks for sign-in again', async () => {
    await page.click('#sign-out');
    await page.waitForURL((u) => u.href.startsWith(idp.issuer), { timeout: 15_000 });
    await page.click('button[name="logout"]');
    await page.waitForURL(consoleUrl('/console/signed-out'), { timeout: 15_000 });
    await page.goto(consoleUrl('/console/apps'));
    await page.waitForURL((u) => u.href.startsWith(idp.issuer), { timeout: 15_000 });
  });

  it('bob (not an admin) gets 403 with a correlation id', async () => {
    const ctx = await newContext(browser);
    contexts.push(ctx);
    const bob = await ctx.newPage();
    await bob.goto(consoleUrl());
    // Refused where the sign-in comes back (the callback), and on any console page after.
    const refusal = bob.waitForResponse(
      (r) => r.url().startsWith(consoleUrl('/console/')) && r.status() === 403,
      { timeout: 20_000 },
    );
    await logInAtDevIdp(bob, idp.issuer, 'bob');
    const refused = await refusal;
    expect(refused.status()).toBe(403);
    // The relay's error page: the code, who is signed in, the correlation id.
    const text = (await bob.textContent('body'))!;
    expect(text).toContain('NOT_AN_ADMIN');
    expect(text).toContain('bob');
    expect(text).toContain(refused.headers()['x-appproxy-correlation-id']!);
    expect(await bob.locator('[data-connector]').count()).toBe(0);
    // Signed in, still not an admin: every console page is refused, no data leaks.
    const again = await bob.goto(consoleUrl('/console/apps'));
    expect(again!.status()).toBe(403);
    expect(await bob.content()).not.toContain('data-test-app');
    // The refusal page is as locked down as the console: its one style by hash, no script.
    const csp = again!.headers()['content-security-policy'];
    expect(csp).toMatch(/^default-src 'none'; style-src 'sha256-/);
    expect(csp).not.toContain('script-src');
    const maxWidth = await bob
      .locator('body')
      .evaluate(
        (body) =>
          (
            globalThis as unknown as { getComputedStyle(e: unknown): { maxWidth: string } }
          ).getComputedStyle(body).maxWidth,
      );
    expect(maxWidth).not.toBe('none');
  });
});
