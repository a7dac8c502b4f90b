import { describe, expect, it } from 'vitest';
import {
  applyCookiePolicy,
  parseCookieHeader,
  parseSetCookie,
  relayCookieLines,
  relayExpireCookie,
  relayExpireCookies,
  relaySetCookie,
  relaySetCookies,
  serializeSetCookie,
  splitCookieValue,
} from './index.js';

const NOW = Date.UTC(2026, 0, 1);

describe('relaySetCookie — the reference’s cookie settings', () => {
  it('defaults: HttpOnly, Secure, session cookie, SameSite=Lax', () => {
    expect(relaySetCookie('__Host-appproxy', 'v', {})).toBe(
      '__Host-appproxy=v; Path=/; Secure; HttpOnly; SameSite=Lax',
    );
  });

  it('persistent: Max-Age and Expires from the session lifetime', () => {
    expect(
      relaySetCookie('s', 'v', { persistent: true }, { lifetimeSeconds: 28_800, now: NOW }),
    ).toBe(
      's=v; Path=/; Max-Age=28800; Expires=Thu, 01 Jan 2026 08:00:00 GMT; Secure; HttpOnly; SameSite=Lax',
    );
  });

  it('httpOnly off (Remote Desktop clients read the cookie), secure off, SameSite chosen', () => {
    expect(
      relaySetCookie(
        's',
        'v',
        { httpOnly: false, secure: false, sameSite: 'Strict' },
        { path: '/app', domain: 'example.com' },
      ),
    ).toBe('s=v; Path=/app; Domain=example.com; SameSite=Strict');
    expect(relaySetCookie('s', 'v', { sameSite: 'None' })).toBe(
      's=v; Path=/; Secure; HttpOnly; SameSite=None',
    );
  });

  it.each([
    ['bad name', 'v', {}, {}, 'APPPROXY_COOKIE_INVALID_NAME'],
    ['s', 'has space', {}, {}, 'APPPROXY_COOKIE_INVALID_VALUE'],
    ['s', 'v', {}, { path: 'relative' }, 'APPPROXY_COOKIE_INVALID_ATTRIBUTE'],
    ['s', 'v', {}, { path: '/;Domain=evil' }, 'APPPROXY_COOKIE_INVALID_ATTRIBUTE'],
    ['s', 'v', { secure: false, sameSite: 'None' }, {}, 'APPPROXY_COOKIE_SAMESITE_NONE_INSECURE'],
    ['__Host-s', 'v', {}, { path: '/app' }, 'APPPROXY_COOKIE_PREFIX_VIOLATION'],
    ['__Host-s', 'v', {}, { domain: 'example.com' }, 'APPPROXY_COOKIE_PREFIX_VIOLATION'],
    ['__Secure-s', 'v', { secure: false }, {}, 'APPPROXY_COOKIE_PREFIX_VIOLATION'],
    ['s', 'v', { persistent: true }, {}, 'APPPROXY_COOKIE_INVALID_OPTION'],
    ['s', 'v', { persistent: true }, { lifetimeSeconds: 1.5 }, 'APPPROXY_COOKIE_INVALID_OPTION'],
  ] as const)('%s=%s %j %j → %s', (name, value, policy, options, code) => {
    expect(() => relaySetCookie(name, value, policy, options)).toThrow(
      expect.objectContaining({ code }),
    );
  });

  it('never puts the value in an error message', () => {
    try {
      relaySetCookie('s', 'secret-session value', {});
      expect.unreachable();
    } catch (err) {
      expect(String((err as Error).message)).not.toContain('secret-session');
    }
  });
});

describe('relaySetCookies / relayExpireCookies — split session cookies', () => {
  it('sets every chunk under the policy and expires chunks left from a longer value', () => {
    const value = 'a'.repeat(18);
    const lines = relaySetCookies(
      's',
      value,
      { persistent: true },
      {
        lifetimeSeconds: 60,
        now: NOW,
        maxBytesPerCookie: 12,
        requestCookies: 's=chunks-4; sC1=x; sC2=x; sC3=x; sC4=x; other=1',
      },
    );
    expect(lines.map((l) => parseSetCookie(l)!.name)).toStrictEqual([
      's',
      'sC1',
      'sC2',
      'sC3',
      'sC4',
    ]);
    expect(lines.slice(0, 3).every((l) => l.includes('Max-Age=60'))).toBe(true);
    expect(lines.slice(3).every((l) => l.includes('Max-Age=0'))).toBe(true);
    expect(splitCookieValue('s', value, 12).map((p) => `${p.name}=${p.value}`)).toStrictEqual(
      lines.slice(0, 3).map((l) => l.split(';')[0]),
    );
  });

  it('sign-out deletes the head and every chunk held or announced, but not thousands', () => {
    expect(
      relayExpireCookies('s', {}, { requestCookies: 's=chunks-2; sC1=a' }).map(
        (l) => l.split('=')[0],
      ),
    ).toStrictEqual(['s', 'sC1', 'sC2']);
    expect(
      relayExpireCookies('s', {}, { requestCookies: parseCookieHeader('s=chunks-9999') }),
    ).toHaveLength(51);
    expect(relayExpireCookie('__Host-s', {})).toBe(
      '__Host-s=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Secure; HttpOnly; SameSite=Lax',
    );
  });
});

describe('relayCookieLines — what preauth answers, as Set-Cookie lines', () => {
  const session = {
    name: '__Host-appproxy_session',
    path: '/',
    httpOnly: true,
    secure: true,
    sameSite: 'Lax',
  } as const;

  it('splits a large value and expires the chunks left from a longer one', () => {
    const lines = relayCookieLines(
      [{ ...session, value: 'x'.repeat(9000) }],
      parseCookieHeader(
        '__Host-appproxy_session=chunks-4; __Host-appproxy_sessionC1=a; __Host-appproxy_sessionC4=d',
      ),
    );
    expect(lines.map((l) => l.split('=')[0])).toEqual([
      '__Host-appproxy_session',
      '__Host-appproxy_sessionC1',
      '__Host-appproxy_sessionC2',
      '__Host-appproxy_sessionC3',
      '__Host-appproxy_sessionC4',
    ]);
    expect(lines[0]).toMatch(/^__Host-appproxy_session=chunks-3; .*HttpOnly/);
    expect(lines[4]).toMatch(/Max-Age=0/);
    expect(lines.slice(1, 4).every((l) => !/Max-Age/.test(l))).toBe(true);
  });

  it('maxAge 0 expires the cookie and every chunk the request announces', () => {
    const expired = relayCookieLines(
      [{ ...session, value: '', maxAge: 0 }],
      '__Host-appproxy_session=chunks-2; __Host-appproxy_sessionC1=a',
    );
    expect(expired.map((l) => l.split('=')[0])).toEqual([
      '__Host-appproxy_session',
      '__Host-appproxy_sessionC1',
      '__Host-appproxy_sessionC2',
    ]);
    expect(expired.every((l) => /Max-Age=0/.test(l))).toBe(true);
  });

  it('a positive maxAge makes a persistent cookie; none, a browser-session one', () => {
    const [persistent, browserSession] = relayCookieLines(
      [
        { ...session, name: '__Host-a', value: 'v', maxAge: 3600 },
        { ...session, name: '__Host-b', value: 'v' },
      ],
      undefined,
    );
    expect(persistent).toMatch(/Max-Age=3600/);
    expect(browserSession).not.toMatch(/Max-Age|Expires/);
  });
});

describe('applyCookiePolicy — the app’s own cookies', () => {
  const apply = (
    line: string,
    ...rest: Parameters<typeof applyCookiePolicy> extends [unknown, ...infer R] ? R : never
  ) => serializeSetCookie(applyCookiePolicy(parseSetCookie(line)!, ...rest));

  it('adds Secure, sets SameSite when the policy has one, leaves HttpOnly and lifetimes alone', () => {
    expect(apply('id=1; Max-Age=100', { secure: true, httpOnly: true, persistent: false })).toBe(
      'id=1; Max-Age=100; Secure',
    );
    expect(apply('id=1; samesite=strict', { sameSite: 'Lax' })).toBe('id=1; samesite=Lax; Secure');
    expect(apply('id=1', { secure: false, sameSite: 'None' })).toBe('id=1; Secure; SameSite=None');
    expect(apply('id=1; Secure', { secure: false })).toBe('id=1; Secure');
    expect(apply('XSRF-TOKEN=t', {}, { forceHttpOnly: true })).toBe(
      'XSRF-TOKEN=t; Secure; HttpOnly',
    );
  });

  it('returns the same object when nothing changes', () => {
    const c = parseSetCookie('id=1; Secure; SameSite=Lax')!;
    expect(applyCookiePolicy(c, { sameSite: 'Lax' })).toBe(c);
  });
});
