import { describe, expect, it } from 'vitest';
import { getCookie, parseCookieHeader, serializeCookieHeader, stripCookies } from './index.js';

describe('parseCookieHeader / serializeCookieHeader', () => {
  it('keeps order and duplicates, splits at the first "="', () => {
    const pairs = parseCookieHeader(' a=1;b=x=y ;  a=2;;nameless ');
    expect(pairs).toStrictEqual([
      { name: 'a', value: '1' },
      { name: 'b', value: 'x=y' },
      { name: 'a', value: '2' },
      { name: '', value: 'nameless' },
    ]);
    expect(serializeCookieHeader(pairs)).toBe('a=1; b=x=y; a=2; nameless');
    expect(getCookie(pairs, 'a')).toBe('1');
    expect(parseCookieHeader(['a=1; b=2', 'c=3'])).toHaveLength(3);
    expect(parseCookieHeader(undefined)).toStrictEqual([]);
  });
});

describe('stripCookies', () => {
  it('removes the named cookies and keeps every other byte', () => {
    expect(stripCookies('a=1; s=x; b=2', ['s'])).toBe('a=1; b=2');
    expect(stripCookies('s=x; a=1;b=2', ['s'])).toBe('a=1;b=2');
    expect(stripCookies('a=1;  b="q r" ; s=x', ['s'])).toBe('a=1;  b="q r" ');
    expect(stripCookies('a=%20weird%3B;c=ü', ['s'])).toBe('a=%20weird%3B;c=ü');
    expect(stripCookies('s=1; s=2', ['s'])).toBeUndefined();
    expect(stripCookies(undefined, ['s'])).toBeUndefined();
  });

  it('takes a predicate and several header fields (HTTP/2)', () => {
    expect(stripCookies(['a=1; sC1=x', 'sC2=y', 'b=2'], (n) => n.startsWith('sC'))).toBe(
      'a=1; b=2',
    );
  });
});
