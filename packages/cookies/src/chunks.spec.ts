import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  chunkCookieNames,
  isChunkOf,
  joinCookies,
  joinCookieValue,
  serializeCookieHeader,
  splitCookieValue,
} from './index.js';

describe('splitCookieValue / joinCookieValue', () => {
  it('leaves a value that fits as one cookie', () => {
    expect(splitCookieValue('s', 'abc')).toStrictEqual([{ name: 's', value: 'abc' }]);
    expect(joinCookieValue('s=abc', 's')).toBe('abc');
  });

  it('splits a sealed-session-sized value within the byte limit and joins it back in any order', () => {
    for (const size of [4001, 7999, 8000, 11_000]) {
      const value = randomBytes(size).toString('base64url').slice(0, size);
      const parts = splitCookieValue('__Host-appproxy', value, { maxBytesPerCookie: 4000 });
      expect(parts[0]).toStrictEqual({
        name: '__Host-appproxy',
        value: `chunks-${parts.length - 1}`,
      });
      for (const p of parts) expect(Buffer.byteLength(p.name + p.value)).toBeLessThanOrEqual(4000);
      expect(parts.slice(1).map((p) => p.name)).toStrictEqual(
        parts.slice(1).map((_, i) => `__Host-appproxyC${i + 1}`),
      );
      expect(joinCookieValue(serializeCookieHeader([...parts].reverse()), '__Host-appproxy')).toBe(
        value,
      );
      expect(joinCookieValue(parts, '__Host-appproxy')).toBe(value);
    }
  });

  it('accepts the byte limit as a plain number', () => {
    expect(splitCookieValue('s', 'abcdefghijklmnopqrst', 10)).toStrictEqual([
      { name: 's', value: 'chunks-3' },
      { name: 'sC1', value: 'abcdefg' },
      { name: 'sC2', value: 'hijklmn' },
      { name: 'sC3', value: 'opqrst' },
    ]);
  });

  it('never returns half a value', () => {
    const header = 'other=1; s=chunks-3; sC1=aaa; sC3=ccc';
    expect(joinCookieValue(header, 's')).toBeUndefined();
    expect(joinCookieValue('sC1=aaa; sC2=bbb', 's')).toBeUndefined();
    expect(joinCookieValue('s=chunks-0', 's')).toBeUndefined();
    expect(joinCookieValue('s=chunks-2; sC1=a; sC2=b; sC3=stale', 's')).toBe('ab');
  });

  it('chunks a value that merely looks like a chunk head, so it cannot be misread', () => {
    const parts = splitCookieValue('s', 'chunks-2');
    expect(parts).toHaveLength(2);
    expect(joinCookieValue(parts, 's')).toBe('chunks-2');
  });

  it('refuses values it cannot carry', () => {
    expect(() => splitCookieValue('s', 'a b')).toThrow(
      expect.objectContaining({ code: 'APPPROXY_COOKIE_INVALID_VALUE' }),
    );
    expect(() => splitCookieValue('s', 'x'.repeat(20_000))).toThrow(
      expect.objectContaining({ code: 'APPPROXY_COOKIE_TOO_LARGE' }),
    );
    expect(() => splitCookieValue('long-name', 'x'.repeat(50), 8)).toThrow(
      expect.objectContaining({ code: 'APPPROXY_COOKIE_TOO_LARGE' }),
    );
    expect(() => splitCookieValue('s', 'x', 0)).toThrow(
      expect.objectContaining({ code: 'APPPROXY_COOKIE_INVALID_OPTION' }),
    );
  });

  it('names the cookies that belong to a split cookie', () => {
    expect(
      chunkCookieNames('s=chunks-2; sC1=a; sC2=b; sCx=no; sC0=no; other=1; s2=no', 's'),
    ).toStrictEqual(['s', 'sC1', 'sC2']);
    expect(isChunkOf('sessC12', 'sess')).toBe(true);
    expect(isChunkOf('sessC', 'sess')).toBe(false);
  });
});

describe('joinCookies — a request’s cookies with split values joined', () => {
  it('joins a split cookie in any order and keeps the others as they are', () => {
    const cookies = joinCookies('sC2=def; app=1; s=chunks-2; sC1=abc');
    expect(cookies.s).toBe('abcdef');
    expect(cookies.app).toBe('1');
  });

  it('a name that merely looks like a chunk is a cookie of its own', () => {
    // A transaction cookie is named after its random state: `…C7` happens about once in 400.
    const cookies = joinCookies('appproxy_txn_Ab3xYzC7=sealed; appproxy_txn_QQC12=other');
    expect(cookies).toStrictEqual({
      appproxy_txn_Ab3xYzC7: 'sealed',
      appproxy_txn_QQC12: 'other',
    });
  });

  it('leaves out a split cookie missing a chunk, never a part of it', () => {
    expect(joinCookies('s=chunks-3; sC1=a; sC3=c')).not.toHaveProperty('s');
  });

  it('joins only the names isSplit accepts; the first of a repeated name wins', () => {
    const cookies = joinCookies('app=chunks-2; appC1=x; s=one; s=two', (n) => n !== 'app');
    expect(cookies.app).toBe('chunks-2');
    expect(cookies.s).toBe('one');
  });
});
