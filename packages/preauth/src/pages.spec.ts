import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { bearerChallenge, interstitialPage } from './index.js';

/** Every inline <script>/<style> must be allowed by a hash in the CSP. */
function expectCspCovers(html: string, csp: string, tag: 'script' | 'style') {
  const bodies = [...html.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g'))].map(
    (m) => m[1]!,
  );
  expect(bodies.length).toBeGreaterThan(0);
  for (const body of bodies) {
    const hash = createHash('sha256').update(body).digest('base64');
    expect(csp).toContain(`'sha256-${hash}'`);
  }
}

describe('interstitialPage', () => {
  it('continues to sign-in with the fragment (script) or without it (noscript)', () => {
    const page = interstitialPage('/reports?year=2025&q=1', 'https://app.example.com');
    expect(page.status).toBe(401);
    expect(page.headers['cache-control']).toBe('no-store');
    expect(page.headers['www-authenticate']).toBe('Bearer realm="https://app.example.com"');
    expect(page.body).toContain('location.hash');
    expect(page.body).toContain(
      '<noscript><meta http-equiv="refresh" content="0;url=/.appproxy/signin?rd=%2Freports%3Fyear%3D2025%26q%3D1"></noscript>',
    );
    const csp = page.headers['content-security-policy']!;
    expect(csp).toContain("default-src 'none'");
    expect(csp).not.toContain('unsafe-inline');
    expectCspCovers(page.body, csp, 'script');
    expectCspCovers(page.body, csp, 'style');
  });

  it('never puts request data inside the script, and escapes it elsewhere', () => {
    const evil = `/x?"><script>alert(1)</script>'`;
    const page = interstitialPage(evil);
    expect(page.body).not.toContain('<script>alert');
    expect(page.body).toContain('rd=%2Fx%3F%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E&#39;"');
    const scripts = [...page.body.matchAll(/<script>([\s\S]*?)<\/script>/g)];
    expect(scripts).toHaveLength(1);
    expect(scripts[0]![1]).not.toContain('alert');
    // The same bytes for any request: the CSP hash is static.
    expect(interstitialPage('/a').headers['content-security-policy']).toBe(
      interstitialPage('/b?c').headers['content-security-policy'],
    );
  });

  it('runs in a browser-like evaluation: the script targets this host’s sign-in path only', () => {
    const script = /<script>([\s\S]*?)<\/script>/.exec(interstitialPage('/').body)![1]!;
    let target = '';
    const location = {
      pathname: '/app/page',
      search: '?a=1',
      hash: '#/deep/link?x=y',
      replace: (u: string) => {
        target = u;
      },
    };
    new Function('location', script)(location);
    expect(target).toBe(
      `/.appproxy/signin?rd=${encodeURIComponent('/app/page?a=1#/deep/link?x=y')}`,
    );
  });
});

describe('interstitialPage under another sign-in path', () => {
  it('continues there, with the CSP hash of its own script', () => {
    const page = interstitialPage('/console/apps', undefined, '/console/signin');
    expect(page.body).toContain("location.replace('/console/signin?rd='");
    expect(page.body).toContain('url=/console/signin?rd=%2Fconsole%2Fapps');
    expectCspCovers(page.body, page.headers['content-security-policy']!, 'script');
    expect(page.headers['content-security-policy']).not.toBe(
      interstitialPage('/console/apps').headers['content-security-policy'],
    );
  });

  it('refuses a path that would need escaping inside the script', () => {
    expect(() => interstitialPage('/', undefined, "/x');alert(1);('")).toThrow(TypeError);
  });
});

describe('bearerChallenge', () => {
  it('follows RFC 6750 and cannot split headers', () => {
    expect(bearerChallenge()).toBe('Bearer');
    expect(bearerChallenge('r')).toBe('Bearer realm="r"');
    expect(bearerChallenge('r', 'invalid_token', 'bad "token"\r\nX: y')).toBe(
      'Bearer realm="r", error="invalid_token", error_description="bad \\"token\\"X: y"',
    );
  });
});
