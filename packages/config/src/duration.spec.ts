import { describe, expect, it } from 'vitest';
import { parseDuration, parseHostPort } from './index.js';

describe('parseDuration', () => {
  it.each<[string | number, number]>([
    [0, 0],
    [250, 250],
    ['250', 250],
    ['500ms', 500],
    ['5s', 5_000],
    ['1.5s', 1_500],
    ['2m', 120_000],
    ['1h', 3_600_000],
    ['1d', 86_400_000],
    ['1h30m', 5_400_000],
    ['1m 30s', 90_000],
    [' 10s ', 10_000],
    ['0.1s', 100],
  ])('%j → %d ms', (input, ms) => {
    expect(parseDuration(input)).toBe(ms);
  });

  it.each<string | number>([
    '',
    ' ',
    '5x',
    's',
    '-5s',
    '5 seconds',
    '1.s',
    'ms5',
    '5S',
    -1,
    Number.NaN,
    Number.POSITIVE_INFINITY,
  ])('refuses %j with a RangeError that does not repeat it', (input) => {
    expect(() => parseDuration(input)).toThrow(RangeError);
    try {
      parseDuration(input);
    } catch (err) {
      if (typeof input === 'string' && input.trim().length > 3)
        expect((err as Error).message).not.toContain(input.trim());
    }
  });
});

describe('parseHostPort', () => {
  it.each<[string | number, { host: string; port: number }]>([
    ['127.0.0.1:9090', { host: '127.0.0.1', port: 9090 }],
    ['localhost:0', { host: 'localhost', port: 0 }],
    ['relay.example.com:8443', { host: 'relay.example.com', port: 8443 }],
    ['[::1]:443', { host: '::1', port: 443 }],
    ['[::]:80', { host: '::', port: 80 }],
    [':8443', { host: '0.0.0.0', port: 8443 }],
    ['8443', { host: '0.0.0.0', port: 8443 }],
    [443, { host: '0.0.0.0', port: 443 }],
  ])('%j', (input, expected) => {
    expect(parseHostPort(input)).toStrictEqual(expected);
  });

  it.each<[string | number, string]>([
    ['localhost', 'missing port'],
    ['::1:443', 'put an IPv6 address in brackets, e.g. [::1]:443'],
    ['[::1]', 'expected [ipv6]:port, e.g. [::1]:443'],
    ['[127.0.0.1]:443', 'the address in brackets is not an IPv6 address'],
    ['host:65536', 'the port must be a number from 0 to 65535'],
    ['host:http', 'the port must be a number from 0 to 65535'],
    ['bad_host!:80', 'not a valid host name or IP address'],
    [70_000, 'the port must be a number from 0 to 65535'],
    [1.5, 'the port must be a number from 0 to 65535'],
  ])('refuses %j: %s', (input, message) => {
    expect(() => parseHostPort(input)).toThrow(new RangeError(message));
  });
});
