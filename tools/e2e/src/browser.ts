/**
 * A real browser for end-to-end tests: Debian's `chromium`, driven by `playwright-core` (no
 * browser download). Launched with the flags a closed network needs; certificate errors are
 * ignored because the relay serves the tests' own dev CA (cookies with `Secure` and `__Host-`
 * still need HTTPS, which this keeps).
 */
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { systemTool } from './harness.js';

export const CHROMIUM = systemTool('chromium');

export async function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM!,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      // *.localhost resolves to loopback in Chromium already; this keeps it from asking DNS.
      '--host-resolver-rules=MAP *.apps.localhost 127.0.0.1',
    ],
  });
}

export function newContext(
  browser: Browser,
  opts: { javaScriptEnabled?: boolean; viewport?: { width: number; height: number } } = {},
): Promise<BrowserContext> {
  return browser.newContext({ ignoreHTTPSErrors: true, ...opts });
}

/**
 * On the way to the development provider's login form (after the relay sent the browser
 * there): waits for `issuer`, signs in as `user` (password `<user>-password`), submits.
 */
export async function logInAtDevIdp(
  page: Page,
  issuer: string,
  user: string,
  timeoutMs = 15_000,
): Promise<void> {
  await page.waitForURL((u) => u.href.startsWith(issuer), { timeout: timeoutMs });
  await page.fill('#username', user);
  await page.fill('#password', `${user}-password`);
  await page.click('#sign-in');
}
