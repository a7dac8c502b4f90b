import type { startDevIdp } from '@appproxy/dev-idp';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM, launchChromium, logInAtDevIdp, newContext } from './browser.js';
import { RELAY_BIN, Stack, devIdpFor, json, request, runCli } from './harness.js';

/**
 * Issue 12 items 4, 5 and 9 through the real CLIs: per-app HSTS (on the backend's responses
 * and the relay's own pages, the backend's own header kept when the app sets none), the
 * home page redirect of an app's external root (and sign-in returning there, in Chromium),
 * and branded pages from relay.pages with escaped variables, a strict CSP and hot reload.
 */
let backend: Server;
let idp: Awaited<ReturnType<typeof startDevIdp>>;
let stack: Stack;
let browser: Browser | undefined;

const PLAIN = 'plain.apps.localhost';
const STRICT = 'strict.apps.localhost';
const PORTAL = 'portal.apps.localhost';
const MAINT = 'maint.apps.localhost';
const NOWHERE = 'nowhere.apps.localhost';
const EVIL_NAME = '<script>alert(1)</script> & "Co"';

const hostHeader = (h: string) => `${h}:${stack.ports.public}`;
const get = (host: string, path: string, headers: Record<string, string> = {}, method = 'GET') =>
  request(stack, host, path, {
    method,
    headers: { host: hostHeader(host), accept: 'text/html', ...headers },
  });
const body = (res: { body: Buffer }) => res.body.toString('utf8');
const origin = (host: string) => `https://${host}:${stack.ports.public}`;

const pagesDir = () => join(stack.dir, 'pages');

/** error.html / maintenance.html / signin.html with a version marker. */
function writeTemplates(version: string): void {
  mkdirSync(pagesDir(), { recursive: true });
  const style = '<style>body{font-family:serif;color:#123}</style>';
  writeFileSync(
    join(pagesDir(), 'error.html'),
    `<!doctype html><html><head><title>{{title}}</title>${style}</head><body>
<h1 id="brand">Contoso ${version}</h1><p id="code">{{code}}</p><p id="app">{{app}}</p>
<p id="hint">{{hint}}</p><p id="cid">{{correlationId}}</p><p id="time">{{time}}</p><p id="user">{{user}}</p>
</body></html>`,
  );
  writeFileSync(
    join(pagesDir(), 'maintenance.html'),
    `<!doctype html><html><head>${style}</head><body><h1>Contoso ${version} maintenance</h1><p id="app">{{app}}</p><p>{{code}}</p></body></html>`,
  );
  writeFileSync(
    join(pagesDir(), 'signin.html'),
    `<!doctype html><html><head><title>{{title}}</title>${style}</head><body><h1 id="brand">Contoso ${version} sign-in to {{app}}</h1></body></html>`,
  );
}

const sha256 = (s: string) => `'sha256-${createHash('sha256').update(s).digest('base64')}'`;

beforeAll(async () => {
  // The backend: `/own-hsts` sends its own Strict-Transport-Security, the rest says its path.
  backend = createServer((req, res) => {
    const headers: Record<string, string> = { 'content-type': 'text/html; charset=utf-8' };
    if (req.url === '/own-hsts') headers['strict-transport-security'] = 'max-age=123';
    res.writeHead(200, headers).end(`<h1>backend ${req.url}</h1>`);
  });
  backend.listen(0, '127.0.0.1');
  await once(backend, 'listening');
  const internal = `http://127.0.0.1:${(backend.address() as { port: number }).port}/`;
  stack = new Stack({
    apps: [
      { name: 'Plain', internalUrl: internal, externalUrl: `https://${PLAIN}:{port}/` },
      {
        name: 'Strict',
        internalUrl: internal,
        externalUrl: `https://${STRICT}:{port}/`,
        extra: '    hsts: { maxAge: 730d, includeSubDomains: true, preload: true }\n',
      },
      {
        name: 'Portal',
        internalUrl: internal,
        externalUrl: `https://${PORTAL}:{port}/portal/`,
        preAuthentication: 'oidc',
        extra: '    hsts: true\n    homePage: /portal/start.aspx?tab=1\n',
      },
      {
        name: JSON.stringify(EVIL_NAME),
        internalUrl: internal,
        externalUrl: `https://${MAINT}:{port}/`,
        extra: '    maintenanceMode: true\n',
      },
    ],
    relayExtra: '  pages: { dir: ./pages }\n',
  });
  idp = await devIdpFor(stack, [PORTAL]);
  writeTemplates('v1');
  await stack.start();
  if (CHROMIUM) browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
  await idp?.close();
  backend?.close();
});

describe('HSTS (apps[].hsts)', () => {
  it('absent by default; the backend’s own header is kept when the app sets none', async () => {
    const plain = await get(PLAIN, '/');
    expect(plain.status).toBe(200);
    expect(plain.headers['strict-transport-security']).toBeUndefined();
    const own = await get(PLAIN, '/own-hsts');
    expect(own.headers['strict-transport-security']).toBe('max-age=123');
  });

  it('the app’s header replaces the backend’s and is on the relay’s own pages', async () => {
    const value = 'max-age=63072000; includeSubDomains; preload';
    expect((await get(STRICT, '/')).headers['strict-transport-security']).toBe(value);
    expect((await get(STRICT, '/own-hsts')).headers['strict-transport-security']).toBe(value);
    // A reserved path the relay answers itself (404), HTML and JSON.
    const reserved = await get(STRICT, '/.appproxy/nothing-here');
    expect(reserved.status).toBe(404);
    expect(reserved.headers['strict-transport-security']).toBe(value);
    const api = await get(STRICT, '/.appproxy/nothing-here', { accept: 'application/json' });
    expect(json(api).error).toMatchObject({ code: 'RESERVED_PATH' });
    expect(api.headers['strict-transport-security']).toBe(value);
    // hsts: true is one year; the relay's redirects and sign-in page carry it too.
    const oneYear = 'max-age=31536000';
    const slash = await get(PORTAL, '/portal');
    expect(slash.status).toBe(301);
    expect(slash.headers['strict-transport-security']).toBe(oneYear);
    const signIn = await get(PORTAL, '/portal/page');
    expect(signIn.status).toBe(401);
    expect(signIn.headers['strict-transport-security']).toBe(oneYear);
    // A path no app owns on that host: the host's HSTS still.
    const notFound = await get(PORTAL, '/elsewhere');
    expect(notFound.status).toBe(404);
    expect(notFound.headers['strict-transport-security']).toBe(oneYear);
    // Never on a host whose apps do not set it.
    expect((await get(NOWHERE, '/')).headers['strict-transport-security']).toBeUndefined();
  });
});

describe('home page (apps[].homePage)', () => {
  it('GET and HEAD of exactly the external path redirect (302) before sign-in', async () => {
    for (const method of ['GET', 'HEAD']) {
      const res = await get(PORTAL, '/portal/', {}, method);
      expect(res.status).toBe(302);
      expect(res.headers.location).toBe('/portal/start.aspx?tab=1');
    }
    // Not another method, not with a query, not another path: the sign-in page.
    expect((await get(PORTAL, '/portal/', {}, 'POST')).status).toBe(401);
    expect((await get(PORTAL, '/portal/?x=1')).status).toBe(401);
    expect((await get(PORTAL, '/portal/other')).status).toBe(401);
    // An app without one is served at its root.
    expect((await get(PLAIN, '/')).status).toBe(200);
  });

  it.skipIf(!CHROMIUM)(
    'a browser opening the root signs in and lands on the home page',
    async () => {
      const ctx = await newContext(browser!);
      try {
        const page = await ctx.newPage();
        await page.goto(`${origin(PORTAL)}/portal/`);
        await logInAtDevIdp(page, idp.issuer, 'alice');
        const home = `${origin(PORTAL)}/portal/start.aspx?tab=1`;
        await page.waitForURL(home, { timeout: 15_000 });
        expect(await page.textContent('h1')).toBe('backend /start.aspx?tab=1');
        // The root again, signed in: the home page, without a sign-in.
        await page.goto(`${origin(PORTAL)}/portal/`);
        expect(page.url()).toBe(home);
      } finally {
        await ctx.close();
      }
    },
  );
});

describe('branded pages (relay.pages)', () => {
  it('a 404 from error.html, variables filled in, CSP with the template’s style hash', async () => {
    const res = await get(NOWHERE, '/x');
    expect(res.status).toBe(404);
    const html = body(res);
    expect(html).toContain('Contoso v1');
    expect(html).toContain('<p id="code">APP_NOT_FOUND</p>');
    expect(html).toContain('<title>Application not found</title>');
    expect(html).toContain(`<p id="cid">${res.headers['x-appproxy-correlation-id']}</p>`);
    expect(html).toMatch(/<p id="time">\d{4}-\d\d-\d\dT[\d:.]+Z<\/p>/);
    expect(res.headers['x-appproxy-error']).toBe('APP_NOT_FOUND');
    expect(res.headers['content-security-policy']).toBe(
      `default-src 'none'; style-src ${sha256('body{font-family:serif;color:#123}')}; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
    );
    // API clients still get JSON.
    const api = await get(NOWHERE, '/x', { accept: 'application/json' });
    expect(json(api).error).toMatchObject({ code: 'APP_NOT_FOUND', status: 404 });
  });

  it('a 503 from maintenance.html with the app name escaped', async () => {
    const res = await get(MAINT, '/');
    expect(res.status).toBe(503);
    const html = body(res);
    expect(html).toContain('Contoso v1 maintenance');
    expect(html).toContain(
      '<p id="app">&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;Co&quot;</p>',
    );
    expect(html).not.toContain('<script>');
    expect(html).toContain('MAINTENANCE');
  });

  it('the sign-in interstitial from signin.html keeps the hashed script', async () => {
    const res = await get(PORTAL, '/portal/page');
    expect(res.status).toBe(401);
    const html = body(res);
    expect(html).toContain('Contoso v1 sign-in to Portal');
    const script = /<script>([^<]*)<\/script>/.exec(html)?.[1];
    expect(script).toContain('location.replace');
    const csp = String(res.headers['content-security-policy']);
    expect(csp).toContain(`script-src ${sha256(script!)}`);
    expect(csp).toContain(`style-src ${sha256('body{font-family:serif;color:#123}')}`);
    expect(html).toContain('<noscript><meta http-equiv="refresh"');
  });

  it.skipIf(!CHROMIUM)(
    'in Chromium the branded interstitial signs in with the #fragment',
    async () => {
      const ctx = await newContext(browser!);
      try {
        const page = await ctx.newPage();
        const violations: string[] = [];
        page.on('console', (m) => {
          if (/Content Security Policy/i.test(m.text())) violations.push(m.text());
        });
        const wanted = `${origin(PORTAL)}/portal/deep?q=1#frag`;
        await page.goto(wanted);
        await logInAtDevIdp(page, idp.issuer, 'bob');
        await page.waitForURL(wanted, { timeout: 15_000 });
        expect(await page.textContent('h1')).toBe('backend /deep?q=1');
        expect(violations).toStrictEqual([]);
      } finally {
        await ctx.close();
      }
    },
  );

  it('reload switches templates; a template with an unknown variable is refused by path', async () => {
    writeTemplates('v2');
    expect((await stack.signalReload()).msg).toBe('configuration reloaded');
    expect(body(await get(NOWHERE, '/x'))).toContain('Contoso v2');
    expect(body(await get(MAINT, '/'))).toContain('Contoso v2 maintenance');

    writeFileSync(join(pagesDir(), 'error.html'), '<p>{{nope}}</p>');
    const check = await runCli(RELAY_BIN, [
      'config',
      'check',
      '--config',
      stack.configPath,
      '--offline',
    ]);
    expect(check.code).not.toBe(0);
    expect(check.stderr + check.stdout).toContain(
      'relay.pages.dir: error.html: unknown variable {{nope}}',
    );
    expect((await stack.signalReload()).msg).toBe(
      'configuration reload refused; the running configuration keeps serving',
    );
    expect(body(await get(NOWHERE, '/x'))).toContain('Contoso v2');

    // Without the templates: the built-in pages again.
    writeTemplates('v3');
    stack.configure({ relayExtra: '' });
    expect((await stack.reload()).msg).toBe('configuration reloaded');
    const builtIn = await get(NOWHERE, '/x');
    expect(body(builtIn)).not.toContain('Contoso');
    expect(body(builtIn)).toContain('Application not found');
    // Applied live: never reported as waiting for a restart.
    expect(
      stack.relay!.count(
        (l) =>
          l.msg === 'configuration reload: these settings apply after a restart' &&
          JSON.stringify(l).includes('relay.pages'),
      ),
    ).toBe(0);
  });
});
