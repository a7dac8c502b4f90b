import { describe, expect, it } from 'vitest';
import {
  CookieError,
  cookieAttributes,
  getAttribute,
  parseCookieDate,
  parseSetCookie,
  serializeSetCookie,
  setAttribute,
} from './index.js';

describe('parseSetCookie (RFC 6265bis §5.6)', () => {
  it('keeps every attribute, known or not, in order and spelling', () => {
    const line =
      'SID=31d4d96e407aad42; Path=/; Secure; HttpOnly; Priority=High; SameParty; X-Thing=a=b';
    expect(parseSetCookie(line)).toStrictEqual({
      name: 'SID',
      value: '31d4d96e407aad42',
      attributes: [
        { name: 'Path', value: '/' },
        { name: 'Secure' },
        { name: 'HttpOnly' },
        { name: 'Priority', value: 'High' },
        { name: 'SameParty' },
        { name: 'X-Thing', value: 'a=b' },
      ],
    });
  });

  it('round-trips losslessly: parse → serialize → parse is the identity', () => {
    const lines = [
      'a=b',
      'lang=en-US; Expires=Wed, 09 Jun 2021 10:18:14 GMT; Path=/docs',
      'q="quoted value"; Domain=.Example.COM; partitioned; samesite=none; secure',
      'empty=; Path=',
      'x=1;  Comment = hello  ;Max-Age=-1;;',
      'nameless',
      'tab\t=\tv\t; Path=/\t',
    ];
    for (const line of lines) {
      const once = parseSetCookie(line)!;
      expect(parseSetCookie(serializeSetCookie(once)), line).toStrictEqual(once);
    }
    expect(serializeSetCookie(parseSetCookie('a=b;Path=/;Secure')!)).toBe('a=b; Path=/; Secure');
  });

  it('trims whitespace, splits at the first "=", treats a line without "=" as a nameless value', () => {
    expect(parseSetCookie('  a = b=c ; Path = /x ')).toMatchObject({ name: 'a', value: 'b=c' });
    expect(parseSetCookie('justvalue; Secure')).toMatchObject({ name: '', value: 'justvalue' });
    expect(serializeSetCookie(parseSetCookie('justvalue')!)).toBe('justvalue');
  });

  it('ignores what a user agent ignores', () => {
    expect(parseSetCookie('a=b\x00c')).toBeUndefined();
    expect(parseSetCookie('a=b\nSet-Cookie: evil=1')).toBeUndefined();
    expect(parseSetCookie('=')).toBeUndefined();
    expect(parseSetCookie(' ; Path=/')).toBeUndefined();
    expect(parseSetCookie(`a=${'x'.repeat(4096)}`)).toBeUndefined();
    expect(parseSetCookie('=__Host-evil=1')).toBeUndefined();
    expect(parseSetCookie('a=b\tc')).toMatchObject({ value: 'b\tc' });
  });
});

describe('cookieAttributes', () => {
  it('interprets as a user agent: last wins, Domain normalised, bad values ignored', () => {
    const c = parseSetCookie(
      'a=b; Max-Age=10; max-age=oops; Domain=.Corp.Local; Path=relative; SameSite=whatever; secure; HTTPONLY; Partitioned',
    )!;
    expect(cookieAttributes(c)).toStrictEqual({
      maxAge: 10,
      domain: 'corp.local',
      secure: true,
      httpOnly: true,
      partitioned: true,
    });
    expect(
      cookieAttributes(parseSetCookie('a=b; Path=/x; Path=/y; SameSite=STRICT')!),
    ).toMatchObject({
      path: '/y',
      sameSite: 'Strict',
    });
    expect(
      cookieAttributes(parseSetCookie(`a=b; Path=/${'p'.repeat(1100)}`)!).path,
    ).toBeUndefined();
    expect(
      cookieAttributes(parseSetCookie('a=b; Expires=Sun, 06 Nov 1994 08:49:37 GMT')!).expires,
    ).toStrictEqual(new Date('1994-11-06T08:49:37Z'));
  });
});

describe('parseCookieDate (RFC 6265 §5.1.1)', () => {
  it.each([
    ['Sun, 06 Nov 1994 08:49:37 GMT', '1994-11-06T08:49:37.000Z'],
    ['Sunday, 06-Nov-94 08:49:37 GMT', '1994-11-06T08:49:37.000Z'],
    ['Sun Nov  6 08:49:37 1994', '1994-11-06T08:49:37.000Z'],
    ['Wed, 21-Oct-15 07:28:00 GMT', '2015-10-21T07:28:00.000Z'],
    ['Thu, 01 Jan 1970 00:00:00 GMT', '1970-01-01T00:00:00.000Z'],
    ['1 january 2030 1:2:3', '2030-01-01T01:02:03.000Z'],
  ])('%s', (input, iso) => {
    expect(parseCookieDate(input)?.toISOString()).toBe(iso);
  });

  it.each([
    '',
    'tomorrow',
    'Wed, 31 Feb 2024 00:00:00 GMT',
    '06 Nov 1500 08:49:37',
    '06 Nov 1994 24:00:00',
    '06 Nov 1994',
  ])('refuses %j', (input) => {
    expect(parseCookieDate(input)).toBeUndefined();
  });
});

describe('getAttribute / setAttribute', () => {
  const c = parseSetCookie('a=b; path=/in; Priority=High; PATH=/dup; Secure')!;

  it('reads the last occurrence, case-insensitively', () => {
    expect(getAttribute(c, 'Path')).toBe('/dup');
    expect(getAttribute(c, 'secure')).toBe(true);
    expect(getAttribute(c, 'Domain')).toBeUndefined();
  });

  it('replaces in place (dropping duplicates), appends, removes — without touching the input', () => {
    expect(serializeSetCookie(setAttribute(c, 'Path', '/out'))).toBe(
      'a=b; path=/out; Priority=High; Secure',
    );
    expect(serializeSetCookie(setAttribute(c, 'HttpOnly', true))).toBe(
      'a=b; path=/in; Priority=High; PATH=/dup; Secure; HttpOnly',
    );
    expect(serializeSetCookie(setAttribute(c, 'secure', false))).toBe(
      'a=b; path=/in; Priority=High; PATH=/dup',
    );
    expect(c.attributes).toHaveLength(4);
  });
});

describe('serializeSetCookie', () => {
  it.each([
    [{ name: 'a;b', value: 'v', attributes: [] }, 'APPPROXY_COOKIE_INVALID_NAME'],
    [{ name: 'a=b', value: 'v', attributes: [] }, 'APPPROXY_COOKIE_INVALID_NAME'],
    [{ name: 'a', value: 'v;w', attributes: [] }, 'APPPROXY_COOKIE_INVALID_VALUE'],
    [{ name: 'a', value: 'v\r\n', attributes: [] }, 'APPPROXY_COOKIE_INVALID_VALUE'],
    [
      { name: 'a', value: 'v', attributes: [{ name: 'Path', value: '/;Domain=evil' }] },
      'APPPROXY_COOKIE_INVALID_ATTRIBUTE',
    ],
  ])('refuses %j with %s', (cookie, code) => {
    expect(() => serializeSetCookie(cookie)).toThrow(expect.objectContaining({ code }));
    expect(() => serializeSetCookie(cookie)).toThrow(CookieError);
  });
});
