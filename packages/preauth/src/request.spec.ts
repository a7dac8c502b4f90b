import { describe, expect, it } from 'vitest';
import { bearerToken, isApiRequest } from './index.js';

describe('isApiRequest', () => {
  it.each([
    [{ accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' }, false],
    [{ accept: 'application/json' }, true],
    [{ accept: '*/*' }, true],
    [{}, true],
    [{ accept: 'text/html', 'x-requested-with': 'XMLHttpRequest' }, true],
    [{ accept: 'text/htmlx' }, true],
    [{ accept: 'TEXT/HTML' }, false],
    [{ accept: '*/*', 'sec-fetch-mode': 'navigate' }, false],
    [{ accept: ['application/json', 'text/html'] }, true],
  ])('%j → API client: %s', (headers, api) => {
    expect(isApiRequest({ headers })).toBe(api);
  });
});

describe('bearerToken', () => {
  it.each([
    ['Bearer abc.def-ghi_jkl', 'abc.def-ghi_jkl'],
    ['bearer abc==', 'abc=='],
    ['Basic dXNlcjpwYXNz', undefined],
    ['Bearer', undefined],
    ['Bearer a b', undefined],
    ['Bearer a"b', undefined],
    [undefined, undefined],
  ])('%j → %j', (authorization, token) => {
    expect(bearerToken({ headers: { authorization } })).toBe(token);
  });
});
