import { describe, expect, it } from 'vitest';
import { rewriteBackendSetCookie, rewriteCookiePath, type CookieScope } from './index.js';

const scope: CookieScope = {
  internalHosts: ['expenses.corp.local', 'expenses'],
  externalHost: 'expenses.example.com',
  internalPath: '/app/',
  externalPath: '/expenses/',
};

describe('rewriteCookiePath', () => {
  it.each([
    ['/app/', '/expenses/'],
    ['/app', '/expenses'],
    ['/app/reports/2024', '/expenses/reports/2024'],
    ['/', '/expenses'],
    ['/apple', undefined],
    ['/other', undefined],
  ])('%s → %s', (path, out) => {
    expect(rewriteCookiePath(path, '/app/', '/expenses/')).toBe(out);
  });

  it('handles root prefixes on either side', () => {
    expect(rewriteCookiePath('/app/x', '/app/', '/')).toBe('/x');
    expect(rewriteCookiePath('/app', '/app/', '/')).toBe('/');
    expect(rewriteCookiePath('/x', '/', '/ext/')).toBe('/ext/x');
    expect(rewriteCookiePath('/', '/', '/ext/')).toBe('/ext');
    expect(rewriteCookiePath('/x', '/', '/')).toBeUndefined();
  });
});

describe('rewriteBackendSetCookie', () => {
  it.each([
    [
      'sid=1; Domain=expenses.corp.local; Path=/app/',
      'sid=1; Domain=expenses.example.com; Path=/expenses/',
    ],
    ['sid=1; Domain=.EXPENSES.corp.local', 'sid=1; Domain=expenses.example.com'],
    ['sid=1; Domain=expenses', 'sid=1; Domain=expenses.example.com'],
    ['sid=1; Domain=corp.local; Path=/', 'sid=1; Path=/expenses'],
    ['sid=1; Domain=example.com', 'sid=1; Domain=example.com'],
    ['sid=1; Domain=elsewhere.org', 'sid=1; Domain=elsewhere.org'],
    [
      'sid=1; Path=/app/x; Priority=High; Unknown',
      'sid=1; Path=/expenses/x; Priority=High; Unknown',
    ],
    ['__Host-sid=1; Path=/; Secure', '__Host-sid=1; Path=/; Secure'],
  ])('%s → %s', (line, out) => {
    expect(rewriteBackendSetCookie(line, { scope })).toBe(out);
  });

  it('uses externalParentDomain for parent-domain cookies when it contains the external host', () => {
    expect(
      rewriteBackendSetCookie('sso=1; Domain=.corp.local', {
        scope: { ...scope, externalParentDomain: 'example.com' },
      }),
    ).toBe('sso=1; Domain=example.com');
    expect(
      rewriteBackendSetCookie('sso=1; Domain=.corp.local', {
        scope: { ...scope, externalParentDomain: 'other.org' },
      }),
    ).toBe('sso=1');
  });

  it('drops Domain for an IP external host', () => {
    expect(
      rewriteBackendSetCookie('a=1; Domain=expenses.corp.local', {
        scope: { ...scope, externalHost: '127.0.0.1' },
      }),
    ).toBe('a=1');
  });

  it('returns untouched lines byte for byte, also ones a browser ignores', () => {
    for (const line of [
      'a=b;path=/other;  Secure',
      'broken\x01=1; Domain=expenses.corp.local',
      '=',
    ]) {
      expect(rewriteBackendSetCookie(line, { scope, policy: { secure: false } })).toBe(line);
    }
  });

  it('applies the policy together with the scope', () => {
    expect(
      rewriteBackendSetCookie('a=1; Path=/app', {
        scope,
        policy: { secure: true, sameSite: 'Strict' },
      }),
    ).toBe('a=1; Path=/expenses; Secure; SameSite=Strict');
  });
});
