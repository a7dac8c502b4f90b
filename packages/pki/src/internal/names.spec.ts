import { describe, expect, it } from 'vitest';
import { connectorName, hostSans, serverCommonName } from './names.js';

describe('hostSans', () => {
  it.each([
    ['localhost', { type: 'dns', value: 'localhost' }],
    ['Relay.Example.COM.', { type: 'dns', value: 'relay.example.com' }],
    ['*.apps.localhost', { type: 'dns', value: '*.apps.localhost' }],
    ['bücher.example', { type: 'dns', value: 'xn--bcher-kva.example' }],
    ['under_score.internal', { type: 'dns', value: 'under_score.internal' }],
    ['127.0.0.1', { type: 'ip', value: '127.0.0.1' }],
    ['::1', { type: 'ip', value: '::1' }],
    ['[2001:db8::7]', { type: 'ip', value: '2001:db8::7' }],
    [' localhost ', { type: 'dns', value: 'localhost' }],
  ])('%s', (host, san) => {
    expect(hostSans([host])).toEqual([san]);
  });

  it('drops duplicates, keeping the order', () => {
    expect(hostSans(['b.test', 'a.test', 'B.test', '127.0.0.1', '127.0.0.1'])).toEqual([
      { type: 'dns', value: 'b.test' },
      { type: 'dns', value: 'a.test' },
      { type: 'ip', value: '127.0.0.1' },
    ]);
  });

  it.each([
    [[]],
    [['']],
    [['bad host']],
    [['foo*.example.com']],
    [['*.']],
    [['*']],
    [['-edge.example.com']],
    [['a..b']],
    [['1.2.3']], // WHATWG would read this as 1.2.0.3
    [['x'.repeat(64) + '.example']],
    [[42]],
    ['localhost'],
  ])('refuses %j', (hosts) => {
    expect(() => hostSans(hosts)).toThrow(
      expect.objectContaining({ code: 'APPPROXY_PKI_NAME_INVALID' }),
    );
  });

  it('picks a CN that fits, else the fallback', () => {
    const long = `${'x'.repeat(60)}.example`;
    expect(serverCommonName(hostSans([long, 'short.example']), 'fb')).toBe('short.example');
    expect(serverCommonName(hostSans([long]), 'fb')).toBe('fb');
  });
});

describe('connectorName', () => {
  it.each(['conn-1', '0f8fad5b-d9cb-469f-a165-70867728950e', 'a', 'x'.repeat(64), 'a.b_c~d:e'])(
    'accepts %s',
    (name) => expect(connectorName(name)).toBe(name),
  );

  it.each(['', ' a', 'a b', 'a/b', 'a%20', '-a', '.a', 'x'.repeat(65), 'ü', 7])(
    'refuses %j',
    (name) => {
      expect(() => connectorName(name)).toThrow(
        expect.objectContaining({ code: 'APPPROXY_PKI_NAME_INVALID' }),
      );
    },
  );
});
