import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { TranslateError, UrlMap, type PublishedAppUrls } from './index.js';

const apps = JSON.parse(
  readFileSync(new URL('./__fixtures__/apps.json', import.meta.url), 'utf8'),
) as PublishedAppUrls[];
const map = new UrlMap(apps);

describe('UrlMap.toExternal', () => {
  it.each([
    // scheme, host, port, longest path prefix first
    [
      'http://expenses.corp.local:8080/reports?id=1#top',
      'https://expenses.example.com/reports?id=1#top',
    ],
    [
      'http://sharepoint.corp.local/sites/hr/Shared%20Documents/a.docx',
      'https://hr.example.com/Shared%20Documents/a.docx',
    ],
    ['http://sharepoint.corp.local/sites/hr', 'https://hr.example.com'],
    ['http://sharepoint.corp.local/sites/hr?x', 'https://hr.example.com?x'],
    ['http://sharepoint.corp.local/sites/hrx/', 'https://intranet.example.com/sp/sites/hrx/'],
    ['http://sharepoint.corp.local/sites/it/', 'https://intranet.example.com/sp/sites/it/'],
    ['http://sharepoint.corp.local', 'https://intranet.example.com/sp'],
    ['http://sharepoint.corp.local?q=1', 'https://intranet.example.com/sp?q=1'],
    ['http://travel.corp.local/travel/', 'https://apps.example.com/trips/'],
    ['http://travel.corp.local/travel', 'https://apps.example.com/trips'],
    // default ports, case-insensitive hosts, trailing dot
    ['http://benefits.corp.local:80/x', 'https://benefits.example.com/x'],
    ['HTTP://BENEFITS.Corp.Local./x', 'https://benefits.example.com/x'],
    ['https://payroll.corp.local:443/payslips', 'https://payroll.example.com/payslips'],
    // NetBIOS short names
    ['http://expenses:8080/Approvals.aspx', 'https://expenses.example.com/Approvals.aspx'],
    ['http://sharepoint/sites/hr/Lists/', 'https://hr.example.com/Lists/'],
    ['http://jenkins:8080/jenkins/job/x/', 'https://ci.example.com/job/x/'],
    // IDN, Unicode or punycode
    [
      'http://bücher.corp.local/katalog?q=Übersicht',
      'https://books.example.com/katalog?q=Übersicht',
    ],
    ['http://BÜCHER.corp.local/', 'https://books.example.com/'],
    ['http://xn--bcher-kva.corp.local/x', 'https://books.example.com/x'],
    ['http://bücher/x', 'https://books.example.com/x'],
    // the other scheme of an internal authority is the same app (a backend behind a proxy
    // that says X-Forwarded-Proto: https links to https://<internal>): an explicit port
    // stays, a default one is the other scheme's default
    ['https://benefits.corp.local/secure', 'https://benefits.example.com/secure'],
    ['https://expenses.corp.local:8080/a', 'https://expenses.example.com/a'],
    ['https://expenses:8080/a', 'https://expenses.example.com/a'],
    ['http://payroll.corp.local/payslips', 'https://payroll.example.com/payslips'],
    // scheme-relative: the scheme of the internal URL
    ['//payroll.corp.local/payslips', 'https://payroll.example.com/payslips'],
    ['//expenses.corp.local:8080/a', 'https://expenses.example.com/a'],
  ])('%s → %s', (input, output) => {
    expect(map.toExternal(input)).toBe(output);
  });

  it.each([
    'http://feedback.corp.local/new', // not published
    'http://expenses.corp.local/reports', // port 80, published on 8080
    'http://expenses/Approvals.aspx', // short name, port 80
    'http://benefits.corp.local.evil.example/', // look-alike
    'http://user@benefits.corp.local/', // credentials
    'http://benefits.corp.local:99999/',
    'http://jenkins.corp.local:8080/jenkinsx/',
    'http://jenkins.corp.local:8080/',
    '/relative/path',
    'relative',
    'mailto:hr@corp.local',
    'javascript:go("http://benefits.corp.local/")',
    '',
  ])('%s stays', (input) => {
    expect(map.toExternal(input)).toBeUndefined();
  });

  it('the other scheme never shadows an app published from that very URL', () => {
    const both = new UrlMap([
      {
        name: 'Plain',
        internalUrl: 'http://site.corp/',
        externalUrl: 'https://plain.example.com/',
      },
      { name: 'Tls', internalUrl: 'https://site.corp/', externalUrl: 'https://tls.example.com/' },
    ]);
    expect(both.toExternal('http://site.corp/x')).toBe('https://plain.example.com/x');
    expect(both.toExternal('https://site.corp/x')).toBe('https://tls.example.com/x');
    // Other ports are other apps (or none).
    expect(both.toExternal('https://site.corp:8443/x')).toBeUndefined();
  });

  it('compares path prefixes ignoring case only when asked (IIS)', () => {
    const iis = new UrlMap(apps, { ignorePathCase: true });
    expect(map.toExternal('http://sharepoint.corp.local/Sites/HR/x')).toBe(
      'https://intranet.example.com/sp/Sites/HR/x',
    );
    expect(iis.toExternal('http://sharepoint.corp.local/Sites/HR/x')).toBe(
      'https://hr.example.com/x',
    );
  });

  it('leaves out short names that two hosts share, and short names when asked', () => {
    const two = new UrlMap([
      { internalUrl: 'http://app.one.local/', externalUrl: 'https://one.example.com/' },
      { internalUrl: 'http://app.two.local/', externalUrl: 'https://two.example.com/' },
      { internalUrl: 'http://wiki/', externalUrl: 'https://wiki.example.com/' },
      { internalUrl: 'http://wiki.corp.local/', externalUrl: 'https://wiki2.example.com/' },
    ]);
    expect(two.toExternal('http://app/')).toBeUndefined();
    expect(two.toExternal('http://app.two.local/')).toBe('https://two.example.com/');
    expect(two.toExternal('http://wiki/')).toBe('https://wiki.example.com/');
    expect(
      new UrlMap(apps, { shortNames: false }).toExternal('http://expenses:8080/'),
    ).toBeUndefined();
  });

  it('prefers the named app when two apps publish the same internal URL', () => {
    const twice = new UrlMap([
      { name: 'Users', internalUrl: 'http://e.corp.local/', externalUrl: 'https://e.example.com/' },
      {
        name: 'Api',
        internalUrl: 'http://e.corp.local/',
        externalUrl: 'https://e-api.example.com/',
      },
    ]);
    expect(twice.toExternal('http://e.corp.local/x')).toBe('https://e.example.com/x');
    expect(twice.toExternal('http://e.corp.local/x', 'Api')).toBe('https://e-api.example.com/x');
    expect(twice.toInternal('https://e-api.example.com/x')).toBe('http://e.corp.local/x');
  });
});

describe('UrlMap.toInternal and origins', () => {
  it('maps external URLs back', () => {
    expect(map.toInternal('https://hr.example.com/Lists/x')).toBe(
      'http://sharepoint.corp.local/sites/hr/Lists/x',
    );
    expect(map.toInternal('https://intranet.example.com/sp/')).toBe(
      'http://sharepoint.corp.local/',
    );
    expect(map.toInternal('https://apps.example.com/trips/42')).toBe(
      'http://travel.corp.local/travel/42',
    );
    expect(map.toInternal('https://apps.example.com/other/')).toBeUndefined();
    expect(map.toInternal('https://books.example.com/')).toBe('http://xn--bcher-kva.corp.local/');
    expect(map.toInternal('http://expenses.example.com/')).toBeUndefined();
  });

  it('maps origins whatever the path prefix', () => {
    expect(map.originToExternal('http://travel.corp.local')).toBe('https://apps.example.com');
    expect(map.originToExternal('http://expenses.corp.local:8080')).toBe(
      'https://expenses.example.com',
    );
    expect(map.originToExternal('http://sharepoint.corp.local')).toBe(
      'https://intranet.example.com',
    );
    expect(map.originToExternal('http://sharepoint.corp.local', 'HR site')).toBe(
      'https://hr.example.com',
    );
    expect(map.originToInternal('https://hr.example.com')).toBe('http://sharepoint.corp.local');
    expect(map.originToExternal('null')).toBeUndefined();
    expect(map.originToExternal('*')).toBeUndefined();
    expect(map.originToExternal('http://[bad')).toBeUndefined();
  });

  it('resolves each app', () => {
    expect(map.app('Expenses')).toStrictEqual({
      name: 'Expenses',
      internalUrl: 'http://expenses.corp.local:8080/',
      externalUrl: 'https://expenses.example.com/',
      internalOrigin: 'http://expenses.corp.local:8080',
      externalOrigin: 'https://expenses.example.com',
      internalHost: 'expenses.corp.local:8080',
      externalHost: 'expenses.example.com',
      internalHostname: 'expenses.corp.local',
      externalHostname: 'expenses.example.com',
      internalPath: '/',
      externalPath: '/',
      shortName: 'expenses',
    });
    expect(map.app('HR site')?.shortName).toBe('sharepoint');
    expect(map.cookieScope('Travel')).toStrictEqual({
      internalHosts: ['travel.corp.local', 'travel'],
      externalHost: 'apps.example.com',
      internalPath: '/travel/',
      externalPath: '/trips/',
    });
    expect(() => map.cookieScope('Nope')).toThrow(
      expect.objectContaining({ code: 'APPPROXY_TRANSLATE_INVALID_OPTION' }),
    );
  });
});

describe('UrlMap validation', () => {
  it.each([
    [
      { internalUrl: 'expenses.corp.local', externalUrl: 'https://e.example.com/' },
      /internalUrl is not an absolute URL/,
    ],
    [
      { internalUrl: 'ftp://e.corp.local/', externalUrl: 'https://e.example.com/' },
      /internalUrl must be http or https/,
    ],
    [
      { internalUrl: 'http://u:p@e.corp.local/', externalUrl: 'https://e.example.com/' },
      /credentials/,
    ],
    [
      { internalUrl: 'http://e.corp.local/?a', externalUrl: 'https://e.example.com/' },
      /query or fragment/,
    ],
    [
      { internalUrl: 'http://e.corp.local/app', externalUrl: 'https://e.example.com/' },
      /path must end/,
    ],
    [
      { internalUrl: 'http://e.corp.local/', externalUrl: 'https://e.example.com/#x' },
      /externalUrl must not have a query or fragment/,
    ],
  ])('%j', (app, message) => {
    expect(() => new UrlMap([{ name: 'E', ...app }])).toThrow(TranslateError);
    expect(() => new UrlMap([{ name: 'E', ...app }])).toThrow(message);
    expect(() => new UrlMap([app])).toThrow(
      expect.objectContaining({ code: 'APPPROXY_TRANSLATE_INVALID_APP' }),
    );
  });
});

describe('UrlMap.toExternal with the page’s app: root-relative URLs', () => {
  it.each([
    ['Jenkins', '/jenkins/job/x/', '/job/x/'],
    ['Jenkins', '/jenkins', '/'],
    ['Jenkins', '/jenkins?x=1', '/?x=1'],
    ['Jenkins', '/jenkinsx', undefined],
    ['Jenkins', '/static/x', undefined],
    ['HR site', '/sites/hr/Lists/', '/Lists/'],
    ['HR site', '/_layouts/15/x.js', 'https://intranet.example.com/sp/_layouts/15/x.js'],
    ['Portal', '/_layouts/15/x.js', '/sp/_layouts/15/x.js'],
    ['Portal', '/sites/hr/x', 'https://hr.example.com/x'],
    ['Travel', '/travel/img/a.png', '/trips/img/a.png'],
    ['Expenses', '/reports', undefined],
    ['Expenses', 'reports/1', undefined],
    ['Expenses', '//expenses.corp.local:8080/a', 'https://expenses.example.com/a'],
  ])('%s: %s → %s', (app, input, output) => {
    expect(map.toExternal(input, app)).toBe(output);
  });

  it('leaves root-relative URLs alone without an app', () => {
    expect(map.toExternal('/jenkins/job/x/')).toBeUndefined();
  });
});
