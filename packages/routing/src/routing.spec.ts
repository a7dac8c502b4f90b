import { describe, expect, it } from 'vitest';
import { AppTable, normalizeRequestTarget } from './index.js';

describe('normalizeRequestTarget', () => {
  it.each([
    ['/app/../admin', '/admin', ''],
    ['/app/%2e%2e/admin', '/admin', ''],
    ['/app/%2E%2e/%2e/x', '/x', ''],
    ['/app/./a/b/../c?x=../y', '/app/a/c', '?x=../y'],
    ['/../../etc/passwd', '/etc/passwd', ''],
    ['/app/a/..', '/app/', ''],
    ['/app/caf%C3%A9', '/app/caf%C3%A9', ''],
    ['http://h/app/../x?q', '/x', '?q'],
  ])('%s → %s', (input, path, search) => {
    expect(normalizeRequestTarget(input)).toEqual({ path, search });
  });

  it.each(['/app/%2F..%2Fadmin', '/app/%2f', '/app/..%5Cadmin', '/app\\..\\admin', '/a%00b'])(
    'refuses encoded separators in %s',
    (input) => {
      expect(normalizeRequestTarget(input)).toBe('ENCODED_SEPARATOR');
    },
  );

  it('refuses targets that are not paths', () => {
    expect(normalizeRequestTarget('*')).toBe('INVALID_PATH');
    expect(normalizeRequestTarget('ftp://x/y')).toBe('INVALID_PATH');
  });
});

describe('AppTable', () => {
  const apps = [
    {
      name: 'Root',
      externalUrl: 'https://portal.example.com/',
      internalUrl: 'http://portal.corp:8080/',
    },
    {
      name: 'Hr',
      externalUrl: 'https://portal.example.com/hr/',
      internalUrl: 'http://hr.corp/people/',
    },
    {
      name: 'App',
      externalUrl: 'https://app.example.com/app/',
      internalUrl: 'http://127.0.0.1:9000/app/',
    },
  ];
  const table = new AppTable(apps);

  it('picks the longest matching prefix and maps to the internal prefix', () => {
    expect(table.route('portal.example.com', '/hr/list?x=1')).toMatchObject({
      app: { name: 'Hr' },
      internalPath: '/people/list?x=1',
      internalOrigin: 'http://hr.corp',
      internalHost: 'hr.corp',
    });
    expect(table.route('PORTAL.example.com:443', '/other')).toMatchObject({
      app: { name: 'Root' },
      internalPath: '/other',
    });
    expect(table.route('portal.example.com', '/hr')).toMatchObject({
      app: { name: 'Hr' },
      internalPath: '/people/',
    });
  });

  it('never maps outside the published path', () => {
    expect(table.route('app.example.com', '/app/../admin')).toBeUndefined();
    expect(table.route('app.example.com', '/app/%2e%2e/admin')).toBeUndefined();
    expect(table.route('app.example.com', '/app/%2F..%2Fadmin')).toBe('ENCODED_SEPARATOR');
    expect(table.route('portal.example.com', '/hr/../../x')).toMatchObject({
      app: { name: 'Root' },
      internalPath: '/x',
    });
  });

  it('keeps protocol-relative looking paths under the internal prefix', () => {
    const bare = new AppTable([
      { name: 'Bare', externalUrl: 'https://b.example.com/', internalUrl: 'http://b.corp/' },
    ]);
    const match = bare.route('b.example.com', '//evil.example.com/x');
    expect(match).toMatchObject({
      internalPath: '//evil.example.com/x',
      internalOrigin: 'http://b.corp',
    });
    // What the connector does with it: concatenation keeps the backend host.
    expect(new URL(`http://b.corp${(match as { internalPath: string }).internalPath}`).host).toBe(
      'b.corp',
    );
  });

  it('returns undefined for unknown hosts', () => {
    expect(table.route('nope.example.com', '/')).toBeUndefined();
    expect(table.size).toBe(3);
  });
});

describe('AppTable.onHost', () => {
  it('lists the apps of a host, longest prefix first, any case and port', () => {
    const table = new AppTable([
      { name: 'Root', externalUrl: 'https://portal.example.com/', internalUrl: 'http://a/' },
      { name: 'Hr', externalUrl: 'https://portal.example.com/hr/', internalUrl: 'http://b/' },
      { name: 'Other', externalUrl: 'https://other.example.com/', internalUrl: 'http://c/' },
    ]);
    expect(table.onHost('Portal.Example.com:443').map((a) => a.name)).toEqual(['Hr', 'Root']);
    expect(table.onHost('nowhere.example.com')).toEqual([]);
  });
});
