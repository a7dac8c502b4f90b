import { describe, expect, it } from 'vitest';
import { MAX_RETURN_URL_LENGTH, safeReturnUrl } from './index.js';

const ORIGIN = 'https://app.example.com';
const ok = (v: string) => safeReturnUrl(v, ORIGIN, '/home/');

describe('safeReturnUrl', () => {
  it('keeps paths on the origin, with query and fragment', () => {
    expect(ok('/')).toBe('/');
    expect(ok('/reports?year=2025&q=a%20b#/tab/2?x=1')).toBe(
      '/reports?year=2025&q=a%20b#/tab/2?x=1',
    );
    expect(ok('/a/./b/../c')).toBe('/a/c');
    expect(ok('/%2F%2Fevil.example')).toBe('/%2F%2Fevil.example'); // stays a path on the app
    expect(ok('/ünïcode path')).toBe('/%C3%BCn%C3%AFcode%20path');
    expect(ok('/x?a=<script>')).toBe('/x?a=%3Cscript%3E');
  });

  it.each([
    ['absolute URL elsewhere', 'https://evil.example/'],
    ['absolute URL on the same origin (relative only)', 'https://app.example.com/x'],
    ['protocol-relative', '//evil.example/x'],
    ['backslash', '/\\evil.example'],
    ['backslash later', '/a\\b'],
    ['tab that browsers strip', '/\t/evil.example'],
    ['newline (header splitting)', '/x\r\nSet-Cookie: a=b'],
    ['javascript:', 'javascript:alert(1)'],
    ['data:', 'data:text/html,hi'],
    ['no leading slash', 'evil.example'],
    ['dot segments that collapse to //', '/a/..//evil.example'],
    ['encoded dots that collapse to //', '/a/%2e%2e//evil.example'],
    ['empty', ''],
    ['too long', `/${'a'.repeat(MAX_RETURN_URL_LENGTH)}`],
  ])('refuses %s', (_name, candidate) => {
    expect(ok(candidate)).toBe('/home/');
  });

  it('refuses what is not a string', () => {
    expect(safeReturnUrl(undefined, ORIGIN, '/')).toBe('/');
    expect(safeReturnUrl(null, ORIGIN, '/')).toBe('/');
    expect(safeReturnUrl(['/x'], ORIGIN, '/')).toBe('/');
  });
});
