import { describe, expect, it } from 'vitest';
import { AppTable, normalizeRequestTarget, parseRequestHost } from './index.js';

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

  it.each([
    '/pub/..;/admin',
    '/pub/..;jsessionid=x/admin',
    '/pub/.;/admin',
    '/pub/%2e%2e;/admin',
    '/pub/..%3b/admin',
    '/pub/.%2E%3Bx/admin',
    '/pub/..;',
  ])('refuses dot segments with path parameters in %s', (input) => {
    expect(normalizeRequestTarget(input)).toBe('DOT_SEGMENT_PARAMETERS');
  });

  it.each([
    ['/app/a;jsessionid=1/b', '/app/a;jsessionid=1/b'],
    ['/app/...;x', '/app/...;x'],
    ['/app/x..;y', '/app/x..;y'],
    ['/app/;/..', '/app/'],
  ])('keeps path parameters elsewhere: %s', (input, path) => {
    expect(normalizeRequestTarget(input)).toEqual({ path, search: '' });
  });

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
  });

  it('sends an app’s prefix without its slash to the prefix, query kept, never to another app', () => {
    // `/hr` is Hr's (not Root's `/hr` path): relative URLs on Hr's page need `/hr/`.
    expect(table.route('portal.example.com', '/hr')).toStrictEqual({
      app: apps[1],
      location: '/hr/',
    });
    expect(table.route('portal.example.com', '/hr?tab=2')).toStrictEqual({
      app: apps[1],
      location: '/hr/?tab=2',
    });
    expect(table.route('portal.example.com', '/./hr')).toMatchObject({ location: '/hr/' });
    // The root app has no prefix to miss; a longer path is only a path.
    expect(table.route('portal.example.com', '/hrx')).toMatchObject({ app: { name: 'Root' } });
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

  it("tells the backend the configured external host and port, not the client's", () => {
    const ported = new AppTable([
      { name: 'P', externalUrl: 'https://p.example.com:8443/x/', internalUrl: 'http://p.corp/' },
    ]);
    expect(ported.route('P.EXAMPLE.COM:9999', '/x/')).toMatchObject({
      externalHost: 'p.example.com:8443',
    });
    expect(table.route('Portal.example.com:443', '/')).toMatchObject({
      externalHost: 'portal.example.com',
    });
  });

  it.each([
    'portal.example.com:@evil.example',
    'portal.example.com:443,evil.example',
    'portal.example.com/x',
    'portal.example.com:',
    '',
  ])('refuses Host %j as INVALID_HOST', (host) => {
    expect(table.route(host, '/')).toBe('INVALID_HOST');
    expect(table.onHost(host)).toEqual([]);
  });

  it('returns undefined for unknown hosts', () => {
    expect(table.route('nope.example.com', '/')).toBeUndefined();
    expect(table.size).toBe(3);
  });
});

describe('parseRequestHost', () => {
  it.each([
    ['exp.example.com', { hostname: 'exp.example.com' }],
    ['Exp.Example.COM:8443', { hostname: 'exp.example.com', port: 8443 }],
    ['127.0.0.1:443', { hostname: '127.0.0.1', port: 443 }],
    ['[::1]:8443', { hostname: '::1', port: 8443 }],
    ['[2001:DB8::1]', { hostname: '2001:db8::1' }],
    ['intranet_01', { hostname: 'intranet_01' }],
  ])('%s → %j', (input, parsed) => {
    expect(parseRequestHost(input)).toEqual(parsed);
  });

  it.each([
    'exp.example.com:@evil.example',
    'user@exp.example.com',
    'exp.example.com:443,evil.example',
    'exp.example.com, evil.example',
    'exp.example.com/evil',
    'exp.example.com evil',
    'exp.example.com:',
    'exp.example.com:12a',
    'exp.example.com:65536',
    'exp.example.com:123456',
    '[::1',
    '::1',
    '..',
    '',
  ])('refuses %j', (input) => {
    expect(parseRequestHost(input)).toBeUndefined();
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

describe('AppTable: wildcard apps', () => {
  const table = new AppTable([
    {
      name: 'Sites',
      externalUrl: 'https://*.apps.example.com/',
      internalUrl: 'http://*.corp.local:8080/',
    },
    {
      name: 'Sites reports',
      externalUrl: 'https://*.apps.example.com:8443/reports/',
      internalUrl: 'http://*.corp.local:8080/rpt/',
    },
    {
      name: 'Wiki',
      externalUrl: 'https://wiki.apps.example.com/',
      internalUrl: 'http://wiki-prod.corp.local/',
    },
    {
      name: 'Docs only',
      externalUrl: 'https://docs.apps.example.com/docs/',
      internalUrl: 'http://docs.corp.local/',
    },
  ]);

  it('puts the label * matched into the internal host', () => {
    expect(table.route('Team-A.apps.example.com', '/x?y=1')).toMatchObject({
      app: {
        name: 'Sites',
        internalUrl: 'http://team-a.corp.local:8080/',
        externalUrl: 'https://team-a.apps.example.com/',
      },
      internalPath: '/x?y=1',
      internalOrigin: 'http://team-a.corp.local:8080',
      internalHost: 'team-a.corp.local:8080',
      externalHost: 'team-a.apps.example.com',
    });
    expect(table.route('b.apps.example.com:443', '/')).toMatchObject({
      app: { name: 'Sites' },
      internalHost: 'b.corp.local:8080',
    });
  });

  it('keeps the longest path prefix among wildcard apps, and the port of the external URL', () => {
    expect(table.route('b.apps.example.com', '/reports/q1')).toMatchObject({
      app: { name: 'Sites reports', externalUrl: 'https://b.apps.example.com:8443/reports/' },
      internalPath: '/rpt/q1',
      internalHost: 'b.corp.local:8080',
      externalHost: 'b.apps.example.com:8443',
    });
    expect(table.route('b.apps.example.com', '/reports')).toMatchObject({
      app: { name: 'Sites reports' },
      location: '/reports/',
    });
  });

  it('exact apps win; their host falls to the wildcard only for paths they do not take', () => {
    expect(table.route('wiki.apps.example.com', '/x')).toMatchObject({
      app: { name: 'Wiki' },
      internalHost: 'wiki-prod.corp.local',
    });
    expect(table.route('docs.apps.example.com', '/docs/a')).toMatchObject({
      app: { name: 'Docs only' },
    });
    expect(table.route('docs.apps.example.com', '/other')).toMatchObject({
      app: { name: 'Sites' },
      internalHost: 'docs.corp.local:8080',
    });
  });

  it('covers one label only, never the bare suffix', () => {
    expect(table.route('a.b.apps.example.com', '/')).toBeUndefined();
    expect(table.route('apps.example.com', '/')).toBeUndefined();
    expect(table.route('.apps.example.com', '/')).toBe('INVALID_HOST');
    expect(table.route('x.example.com', '/')).toBeUndefined();
  });

  it('onHost lists exact apps first, then the wildcard ones filled in', () => {
    expect(table.onHost('docs.apps.example.com').map((a) => [a.name, a.internalUrl])).toEqual([
      ['Docs only', 'http://docs.corp.local/'],
      ['Sites reports', 'http://docs.corp.local:8080/rpt/'],
      ['Sites', 'http://docs.corp.local:8080/'],
    ]);
    expect(table.size).toBe(4);
  });

  it('gives the same app object for a label each time (a bounded cache)', () => {
    const a = table.route('same.apps.example.com', '/') as { app: unknown };
    const b = table.route('same.apps.example.com', '/y') as { app: unknown };
    expect(a.app).toBe(b.app);
  });
});
