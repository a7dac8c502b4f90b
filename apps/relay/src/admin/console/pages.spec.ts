import { AUDIT_TYPES } from '@appproxy/config';
import { Script } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { CONSOLE_CSS, CONSOLE_JS, consoleAsset } from './assets.js';
import {
  formatTime,
  renderApps,
  renderAudit,
  renderOverview,
  renderTokens,
  type ConsoleConnector,
} from './pages.js';

const viewer = { user: 'alice@example.com', name: 'Alice <Admin>', csrf: 'csrf-"x"' };
const EVIL = '<script>alert(1)</script>';

const connector = (over: Partial<ConsoleConnector> = {}): ConsoleConnector => ({
  id: 'c1',
  group: 'Default',
  hostname: 'host-a',
  version: '0.1.0',
  state: 'active',
  lastSeen: '2026-11-30T17:05:12.345Z',
  tunnels: 2,
  inFlight: 0,
  instances: [
    { name: 'relay-a', tunnels: 2 },
    { name: 'relay-b', tunnels: 0 },
  ],
  ...over,
});

/** No element or attribute the page did not write itself: every `<` of a value is escaped. */
function expectNoInjection(html: string): void {
  expect(html).not.toContain('<script>alert');
  expect(html).not.toMatch(/<script(?![^>]*src="\/console\/assets\/)/);
  expect(html).not.toContain(' style=');
  expect(html).not.toContain('<style');
  expect(html).not.toMatch(/\son[a-z]+=/);
}

describe('console pages', () => {
  it('frame: the CSRF meta, the hashed assets, navigation with the current page', () => {
    const html = renderOverview(viewer, [], []);
    expect(html).toContain('<meta name="appproxy-csrf" content="csrf-&quot;x&quot;">');
    expect(html).toContain(`<link rel="stylesheet" href="${CONSOLE_CSS.path}">`);
    expect(html).toContain(`<script src="${CONSOLE_JS.path}" defer></script>`);
    expect(html).toContain('<a href="/console/" aria-current="page">Overview</a>');
    expect(html).toContain('Alice &lt;Admin&gt; (alice@example.com)');
    expect(html).toContain('data-page="overview"');
    expectNoInjection(html);
  });

  it('overview: connectors by group with state, version, instances with tunnels, last seen', () => {
    const html = renderOverview(
      viewer,
      [
        { name: 'Default', apps: ['Wiki', EVIL] },
        { name: 'Empty', apps: [] },
      ],
      [
        connector(),
        connector({ id: 'c2', state: 'inactive', tunnels: 0, instances: [], lastSeen: null }),
        connector({ id: 'gone', state: 'revoked' }),
        connector({ id: 'c3', group: `Old${EVIL}` }),
      ],
    );
    const defaultSection = html.slice(html.indexOf('<h2>Default'), html.indexOf('<h2>Empty'));
    expect(defaultSection).toContain('1 active, 1 inactive');
    expect(defaultSection).toContain('Applications: Wiki, &lt;script&gt;alert(1)&lt;/script&gt;');
    expect(defaultSection).toMatch(
      /<tr data-connector="c1"><td><code>c1<\/code><\/td><td>host-a<\/td><td><span class="badge state-active">active<\/span><\/td><td>0\.1\.0<\/td><td>relay-a \(2\)<\/td><td class="num">2<\/td><td class="num">0<\/td><td><time datetime="2026-11-30T17:05:12.345Z">2026-11-30 17:05:12 UTC<\/time><\/td><\/tr>/,
    );
    expect(defaultSection).toContain('<tr data-connector="c2">');
    // A deleted connector is not listed; an empty group says so.
    expect(html).not.toContain('data-connector="gone"');
    expect(html).toContain('No connector registered in this group.');
    // A connector whose group the configuration dropped still shows, escaped.
    expect(html).toContain('<table data-group="Old&lt;script&gt;alert(1)&lt;/script&gt;">');
    expect(html).toContain('This group is not in the configuration any more.');
    expectNoInjection(html);
  });

  it('apps: group, URLs, modes, the last test (or never) and a Test button per app', () => {
    const html = renderApps(
      viewer,
      [
        {
          name: 'Wiki',
          externalUrl: 'https://wiki.example.com/',
          internalUrl: 'http://wiki.corp:8080/',
          connectorGroup: 'Default',
          preauth: 'oidc',
          sso: 'headers',
        },
        {
          name: EVIL,
          externalUrl: 'https://x.example.com/"><b>',
          internalUrl: 'http://x/',
          connectorGroup: 'Default',
          preauth: 'passthrough',
          sso: 'none',
        },
      ],
      new Map([['Wiki', { ok: false, at: '2026-11-30T17:00:00.000Z', actor: 'user:<bob>' }]]),
    );
    const wiki = html.slice(html.indexOf('<tr data-app="Wiki">'));
    expect(wiki).toMatch(
      /^<tr data-app="Wiki"><td><strong>Wiki<\/strong><\/td><td>Default<\/td><td class="url"><a href="https:\/\/wiki\.example\.com\/" rel="noreferrer">/,
    );
    expect(wiki).toContain(
      '<td class="last-test"><span class="badge fail">fail</span> <time datetime="2026-11-30T17:00:00.000Z">2026-11-30 17:00:00 UTC</time> <span class="note">by user:&lt;bob&gt;</span></td>',
    );
    expect(wiki).toContain('<button type="button" data-test-app="Wiki">Test</button>');
    expect(html).toContain('data-test-app="&lt;script&gt;alert(1)&lt;/script&gt;"');
    expect(html).toContain('href="https://x.example.com/&quot;&gt;&lt;b&gt;"');
    expect(html).toContain('never tested');
    expectNoInjection(html);
  });

  it('tokens: the list with revoke buttons, the create form with the groups, no token text', () => {
    const html = renderTokens(
      viewer,
      ['Default', EVIL],
      [
        {
          id: 'abcd2345',
          group: 'Default',
          createdAt: '2026-11-30T17:00:00.000Z',
          expiresAt: '2026-11-30T18:00:00.000Z',
        },
      ],
    );
    expect(html).toContain(
      '<tr data-token="abcd2345"><td><code>abcd2345</code></td><td>Default</td>',
    );
    expect(html).toContain('data-revoke-token="abcd2345"');
    expect(html).toContain(
      '<option value="&lt;script&gt;alert(1)&lt;/script&gt;">&lt;script&gt;alert(1)&lt;/script&gt;</option>',
    );
    expect(html).toContain('<option selected>1h</option>');
    // The slot the script fills once, hidden and empty in what the server sends.
    expect(html).toContain('<div class="callout secret" id="created-token" hidden>');
    expect(html).toContain('<code id="token-value"></code>');
    expect(renderTokens(viewer, ['Default'], [])).toContain(
      'No registration token can be used now.',
    );
    expectNoInjection(html);
  });

  it('audit: the filter form keeps its values; every field of an event escaped', () => {
    const html = renderAudit(
      viewer,
      { since: '1h"><x', user: EVIL, app: '', type: 'admin.' },
      [
        {
          id: 'e1',
          at: '2026-11-30T17:00:00.000Z',
          type: 'signin.failed',
          actor: `user:${EVIL}`,
          user: EVIL,
          app: EVIL,
          clientAddress: '127.0.0.1',
          code: 'SIGN_IN_FAILED',
          correlationId: 'corr-1',
          connector: 'c1',
          group: 'Default',
          detail: { reason: EVIL, ok: false, n: 3, none: null },
        },
      ],
      { limit: 1 },
    );
    expect(html).toContain('<form class="filters" method="get" action="/console/audit"');
    expect(html).toContain('name="since" value="1h&quot;&gt;&lt;x"');
    expect(html).toContain('<option value="admin." selected>admin.*</option>');
    const row = html.slice(
      html.indexOf('<tr data-event="e1"'),
      html.indexOf('</tr>', html.indexOf('<tr data-event="e1"')),
    );
    expect(row).toContain('<td class="type"><code>signin.<wbr>failed</code></td>');
    expect(row).toContain('<td class="who">user:&lt;script&gt;alert(1)&lt;/script&gt;</td>');
    expect(row).toContain('<td>connector c1, group Default</td>');
    expect(row).toContain('reason=&lt;script&gt;alert(1)&lt;/script&gt; ok=false n=3 none=null');
    expect(row).toContain('corr-1');
    expect(html).toContain('Showing the newest 1 events');
    const failed = renderAudit(viewer, { since: 'x', user: '', app: '', type: 'weird.type' }, [], {
      error: `bad ${EVIL}`,
    });
    expect(failed).toContain('<p class="callout error" id="filter-error">bad &lt;script&gt;');
    // A type typed into the URL stays selected.
    expect(failed).toContain('<option value="weird.type" selected>weird.type</option>');
    expect(failed).toContain('No event matches.');
    expectNoInjection(html);
  });

  it('audit: the type filter offers every audit type, each group led by its prefix', () => {
    const offered = [
      ...renderAudit(viewer, { since: '1h', user: '', app: '', type: '' }, []).matchAll(
        /<option value="([^"]*)"/g,
      ),
    ].map((m) => m[1]);
    expect(offered.filter((t) => t !== '' && !t!.endsWith('.'))).toEqual([...AUDIT_TYPES]);
    expect(offered.filter((t) => t!.endsWith('.'))).toEqual(['signin.', 'admin.', 'connector.']);
    expect(offered.indexOf('admin.')).toBe(offered.indexOf('admin.registration-token.created') - 1);
  });

  it('times: ISO to a UTC line; none as a dash', () => {
    expect(formatTime('2026-11-30T17:05:12.345Z')).toBe('2026-11-30 17:05:12 UTC');
    expect(formatTime('2026-11-30T17:05:12Z')).toBe('2026-11-30 17:05:12 UTC');
    expect(formatTime(null)).toBe('-');
  });
});

describe('console assets', () => {
  it('are named by their content hash, and the script parses', () => {
    expect(CONSOLE_CSS.path).toMatch(/^\/console\/assets\/console\.[0-9a-f]{12}\.css$/);
    expect(CONSOLE_JS.path).toMatch(/^\/console\/assets\/console\.[0-9a-f]{12}\.js$/);
    expect(consoleAsset(CONSOLE_JS.path)).toBe(CONSOLE_JS);
    expect(consoleAsset('/console/assets/console.js')).toBeUndefined();
    expect(() => new Script(CONSOLE_JS.body.toString('utf8'))).not.toThrow();
    // It writes into the page with textContent only.
    expect(CONSOLE_JS.body.toString('utf8')).not.toMatch(
      /innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(/,
    );
  });
});
