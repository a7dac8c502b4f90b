import { compilePageTemplate, type PageTemplate, type PublishedAppConfig } from '@appproxy/config';
import { interstitialPage } from '@appproxy/preauth';
import { describe, expect, it } from 'vitest';
import { EdgePages, hstsValue, signInBrand } from './edge-pages.js';
import { renderError } from './error-pages.js';

const app = (name: string, externalUrl: string, more: Partial<PublishedAppConfig> = {}) =>
  ({ name, externalUrl, internalUrl: 'http://in/', ...more }) as PublishedAppConfig;

const template = (name: 'error' | 'forbidden' | 'maintenance' | 'signin', text: string) =>
  compilePageTemplate(name, `/t/${name}.html`, text) as PageTemplate;

describe('EdgePages', () => {
  const apps = [
    app('A', 'https://a.example.com/', {
      hsts: { maxAgeSeconds: 60, includeSubDomains: false, preload: false },
    }),
    app('B', 'https://a.example.com/b/', {
      hsts: { maxAgeSeconds: 600, includeSubDomains: true, preload: false },
      homePage: '/b/home?x=1',
    }),
    app('C', 'https://c.example.com:8443/'),
  ];

  it('HSTS: the app’s value replaces the backend’s; none keeps it', () => {
    const pages = new EdgePages(apps, undefined);
    const out = { 'strict-transport-security': 'max-age=1' };
    pages.backendHeaders(out, apps[0]!);
    expect(out['strict-transport-security']).toBe('max-age=60');
    const kept = { 'strict-transport-security': 'max-age=1' };
    pages.backendHeaders(kept, apps[2]!);
    expect(kept['strict-transport-security']).toBe('max-age=1');
    expect(hstsValue({ maxAgeSeconds: 63_072_000, includeSubDomains: true, preload: true })).toBe(
      'max-age=63072000; includeSubDomains; preload',
    );
  });

  it('HSTS on the relay’s pages: the app’s, else the longest of the host', () => {
    const pages = new EdgePages(apps, undefined);
    const page = renderError('APP_NOT_FOUND', { correlationId: 'c' });
    const hsts = (host: string, name?: string) =>
      pages.finish(page, host, name).headers['strict-transport-security'];
    expect(hsts('a.example.com', 'A')).toBe('max-age=60');
    expect(hsts('A.Example.com:443')).toBe('max-age=600; includeSubDomains');
    expect(hsts('c.example.com:8443', 'C')).toBeUndefined();
    expect(hsts('other.example.com')).toBeUndefined();
    // Responses that are no page (the SSO JWKS): the same rule.
    expect(pages.hstsFor('a.example.com', undefined)).toBe('max-age=600; includeSubDomains');
    expect(pages.hstsFor('c.example.com:8443', undefined)).toBeUndefined();
  });

  it('home page: GET/HEAD of exactly the external path', () => {
    const pages = new EdgePages(apps, undefined);
    expect(pages.homeRedirect(apps[1]!, 'GET', '/b/')).toMatchObject({
      status: 302,
      headers: { location: '/b/home?x=1' },
    });
    expect(pages.homeRedirect(apps[1]!, 'HEAD', '/b/')?.status).toBe(302);
    expect(pages.homeRedirect(apps[1]!, 'POST', '/b/')).toBeUndefined();
    expect(pages.homeRedirect(apps[1]!, 'GET', '/b/?q')).toBeUndefined();
    expect(pages.homeRedirect(apps[1]!, 'GET', '/b/x')).toBeUndefined();
    expect(pages.homeRedirect(apps[0]!, 'GET', '/')).toBeUndefined();
  });

  it('branded pages: the template by kind, variables escaped, built-in otherwise', () => {
    const pages = new EdgePages(apps, {
      dir: '/t',
      templates: {
        error: template('error', '<h1>{{title}}</h1><p>{{code}} {{app}} {{user}} {{hint}}</p>'),
        maintenance: template('maintenance', '<style>p{}</style><p>M {{ app }}</p>'),
      },
    });
    const notFound = pages.finish(
      renderError('APP_NOT_FOUND', { correlationId: 'c', app: '<b>&"' }),
      'x',
      undefined,
    );
    expect(notFound.body).toBe(
      '<h1>Application not found</h1><p>APP_NOT_FOUND &lt;b&gt;&amp;&quot;  No application is published at this address. Check the URL, or ask your administrator for the right one.</p>',
    );
    expect(notFound.headers['content-security-policy']).toContain("style-src 'none'");
    const maintenance = pages.finish(
      renderError('MAINTENANCE', { correlationId: 'c', app: "<script>'" }),
      'x',
      undefined,
    );
    expect(maintenance.status).toBe(503);
    expect(maintenance.body).toBe('<style>p{}</style><p>M &lt;script&gt;&#39;</p>');
    // 403 without forbidden.html: error.html, with the user.
    const forbidden = pages.finish(
      renderError('NOT_ASSIGNED', { correlationId: 'c', signedInAs: 'eve<' }),
      'x',
      undefined,
    );
    expect(forbidden.body).toContain('NOT_ASSIGNED  eve&lt;');
    // JSON is never branded; nor the interstitial without signin.html.
    const json = renderError('APP_NOT_FOUND', { correlationId: 'c', accept: 'application/json' });
    expect(pages.finish(json, 'x', undefined).body).toBe(json.body);
    const interstitial = { ...interstitialPage('/x'), brand: signInBrand('A', 'c') };
    expect(pages.finish(interstitial, 'x', 'A').body).toBe(interstitial.body);
  });

  it('the branded interstitial carries the built-in script and its hash', () => {
    const pages = new EdgePages(apps, {
      dir: '/t',
      templates: { signin: template('signin', '<html><head></head><body>{{app}}</body></html>') },
    });
    const builtIn = interstitialPage('/x?y=1', 'https://a.example.com');
    const page = pages.finish({ ...builtIn, brand: signInBrand('A&B', 'c') }, 'x', 'C');
    expect(page.status).toBe(401);
    expect(page.body).toContain('<body>A&amp;B</body>');
    const script = /<script>([^<]*)<\/script>/.exec(builtIn.body)![0];
    expect(page.body).toContain(`${script}\n</head>`);
    expect(page.body).toContain('<noscript><meta http-equiv="refresh"');
    const scriptSrc = /script-src [^;]+/.exec(builtIn.headers['content-security-policy'])![0];
    expect(page.headers['content-security-policy']).toContain(scriptSrc);
    expect(page.headers['www-authenticate']).toBe(builtIn.headers['www-authenticate']);
  });
});
