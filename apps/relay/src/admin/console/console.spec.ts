import {
  openStateStore,
  parseConfig,
  type NewAuditEvent,
  type RelayConfig,
  type StateStore,
} from '@appproxy/config';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONSOLE_CSS, CONSOLE_JS } from './assets.js';
import { CONSOLE_CSP, createConsoleHandler } from './console.js';

/**
 * The console handler on a real HTTP server over a real SQLite store and the real admin
 * operations. Who is signed in comes from a test header here; the admin server resolves the
 * session from its cookie in the running relay (admin-console.e2e.ts).
 */
let dir: string;
let store: StateStore;
let server: Server;
let port: number;
let bare: RelayConfig;
const EVIL = '<script>alert(1)</script>';

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'appproxy-console-'));
  const stateDir = join(dir, 'state');
  store = await openStateStore({ stateDir, instance: 'relay-a' });
  const config = parseConfig(
    `relay:
  listen: 127.0.0.1:8443
  tunnelListen: 127.0.0.1:9443
  stateDir: ${stateDir}
  certificates: [{ cert: ${import.meta.filename}, key: ${import.meta.filename} }]
  adminListen: 127.0.0.1:9090
  admins: { users: [alice] }
identityProvider: { issuer: https://idp.example.com, clientId: x }
connectorGroups: [{ name: Default }, { name: Berlin }]
apps:
  - { name: Wiki, internalUrl: http://wiki.corp/, externalUrl: https://wiki.example.com/ }
  - name: '${EVIL}'
    internalUrl: http://crm.corp/
    externalUrl: https://crm.example.com/
    connectorGroup: Berlin
`,
    { baseDir: '/' },
  );
  bare = parseConfig(
    `relay:
  listen: 127.0.0.1:8443
  tunnelListen: 127.0.0.1:9443
  stateDir: ${stateDir}
  certificates: [{ cert: ${import.meta.filename}, key: ${import.meta.filename} }]
apps: []
`,
    { baseDir: '/' },
  );
  const now = new Date();
  await store.upsertConnector({
    id: 'conn-live',
    group: 'Default',
    hostname: 'host-a',
    version: '0.1.0',
    certSerial: '01',
    certFingerprint: 'aa'.repeat(32),
    certNotAfter: new Date(now.getTime() + 86_400_000),
    createdAt: now,
    capabilities: ['websocket'],
    tunnels: 0,
    inFlight: 0,
  });
  await store.recordConnectorSeen('conn-live', {
    instance: 'relay-a',
    tunnels: 2,
    inFlight: 0,
    capabilities: ['websocket'],
    version: '0.1.0',
    hostname: 'host-a',
    at: now,
  });
  await store.appendAudit([
    {
      type: 'admin.app.tested',
      app: 'Wiki',
      actor: 'user:alice',
      detail: { ok: false },
      at: new Date(now.getTime() - 60_000),
    },
    { type: 'admin.app.tested', app: 'Wiki', actor: 'user:bob', detail: { ok: true }, at: now },
    { type: 'signin.failed', user: EVIL, app: 'Wiki', code: 'SIGN_IN_FAILED', at: now },
    { type: 'admin.registration-token.created', actor: 'user:alice', group: 'Default', at: now },
  ]);
  const handler = createConsoleHandler();
  // The admin server's part: the session of an admin (here from a test header), its context
  // for the operations, and a correlation id.
  server = createServer((req, res) => {
    const user = req.headers['x-test-user'];
    const session = typeof user === 'string' ? { user, csrf: 'csrf-1' } : undefined;
    const ctx = session && {
      config,
      store,
      actor: `user:${session.user}`,
      audit: { record: (e: NewAuditEvent) => void store.appendAudit([e]) },
    };
    const host = { config: () => (req.headers['x-test-no-admins'] ? bare : config) };
    handler(req, res, session, { ctx, correlationId: 'corr-1', host }).then(
      (done) => {
        if (!done) {
          res.writeHead(418);
          res.end('not the console');
        }
      },
      (err: Error) => {
        res.writeHead(599);
        res.end(err.message);
      },
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

function get(
  path: string,
  headers: Record<string, string> = {},
  method = 'GET',
): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode!,
          headers: res.headers,
          body: Buffer.concat(chunks).toString(),
        }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

const alice = { 'x-test-user': 'alice' };

function expectStrictHeaders(headers: IncomingHttpHeaders): void {
  expect(headers['content-security-policy']).toBe(CONSOLE_CSP);
  expect(headers['x-content-type-options']).toBe('nosniff');
  expect(headers['referrer-policy']).toBe('no-referrer');
}

describe('console handler', () => {
  it('sends a visitor without a session to sign-in, keeping where they were going', async () => {
    const res = await get('/console/audit?type=admin.');
    expect(res.status).toBe(302);
    expect(res.headers.location).toBe('/console/signin?return=%2Fconsole%2Faudit%3Ftype%3Dadmin.');
    expect((await get('/console')).headers.location).toBe('/console/');
  });

  it('says what is missing when nobody can sign in (no relay.admins or provider)', async () => {
    const res = await get('/console/', { 'x-test-no-admins': '1' });
    expect(res.status).toBe(404);
    expectStrictHeaders(res.headers);
    expect(res.body).toContain('it needs relay.admins (users or groups) and an identityProvider');
    // The assets are still served (they hold nothing).
    expect((await get(CONSOLE_CSS.path, { 'x-test-no-admins': '1' })).status).toBe(200);
  });

  it('leaves paths outside /console/ to the admin server', async () => {
    for (const path of ['/api/v1/apps', '/consoles'])
      expect((await get(path, alice)).status).toBe(418);
  });

  it('overview: the live connector in its group, under the strict CSP, not cached', async () => {
    const res = await get('/console/', alice);
    expect(res.status).toBe(200);
    expectStrictHeaders(res.headers);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    const section = res.body.slice(res.body.indexOf('<h2>Default'), res.body.indexOf('<h2>Berlin'));
    expect(section).toContain('1 active, 0 inactive');
    expect(section).toMatch(
      /<tr data-connector="conn-live">.*state-active">active<.*relay-a \(2\)/,
    );
    expect(res.body).toContain('<meta name="appproxy-csrf" content="csrf-1">');
    expect(res.body).not.toMatch(/<script>|<style|style=/);
  });

  it('apps: the newest admin.app.tested event per app; names escaped', async () => {
    const res = await get('/console/apps', alice);
    expect(res.status).toBe(200);
    const wiki = res.body.slice(res.body.indexOf('<tr data-app="Wiki">'));
    expect(wiki.slice(0, wiki.indexOf('</tr>'))).toMatch(
      /class="last-test"><span class="badge pass">pass<\/span>.*by user:bob/,
    );
    expect(res.body).toContain('data-test-app="&lt;script&gt;alert(1)&lt;/script&gt;"');
    expect(res.body).toContain('never tested');
    expect(res.body).not.toContain(EVIL);
  });

  it('tokens: the unused tokens by id and group, never their secret', async () => {
    const created = await store.createRegistrationToken({ group: 'Berlin', ttlMs: 3_600_000 });
    const res = await get('/console/tokens', alice);
    expect(res.status).toBe(200);
    expect(res.body).toContain(
      `<tr data-token="${created.id}"><td><code>${created.id}</code></td><td>Berlin</td>`,
    );
    expect(res.body).not.toContain(created.secret);
    expect(res.body).toContain('<option value="Berlin">Berlin</option>');
  });

  it('audit: filters by type (prefix), user; a bad filter is a 400 page that says why', async () => {
    const admin = await get('/console/audit?type=admin.registration-token.created', alice);
    expect(admin.status).toBe(200);
    expect(admin.body).toContain('data-type="admin.registration-token.created"');
    expect(admin.body).not.toContain('data-type="signin.failed"');
    const byUser = await get(`/console/audit?since=1h&user=${encodeURIComponent(EVIL)}`, alice);
    expect(byUser.body.match(/<tr data-event=/g)).toHaveLength(1);
    expect(byUser.body).toContain('data-type="signin.failed"');
    expect(byUser.body).not.toContain(EVIL);
    const badSince = await get('/console/audit?since=yesterday', alice);
    expect(badSince.status).toBe(400);
    expect(badSince.body).toContain(
      '<p class="callout error" id="filter-error">since must be a duration (1h, 7d) or an ISO time</p>',
    );
    const iso = await get('/console/audit?since=2000-01-01T00:00:00Z&type=signin.', alice);
    expect(iso.status).toBe(200);
    expect(iso.body).toContain('data-type="signin.failed"');
    const badType = await get('/console/audit?type=%3Cx%3E', alice);
    expect(badType.status).toBe(400);
    expect(badType.body).toContain('not an audit type or prefix: &lt;x&gt;');
  });

  it('assets: hashed names with a year of cache and an ETag; 304 on a match; others 404', async () => {
    for (const asset of [CONSOLE_CSS, CONSOLE_JS]) {
      const res = await get(asset.path);
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toBe(asset.contentType);
      expect(res.headers['cache-control']).toBe('public, max-age=31536000, immutable');
      expect(res.headers.etag).toBe(asset.etag);
      expectStrictHeaders(res.headers);
      expect(res.body).toBe(asset.body.toString());
      expect((await get(asset.path, { 'if-none-match': asset.etag })).status).toBe(304);
    }
    expect((await get('/console/assets/console.js')).status).toBe(404);
  });

  it('answers only GET and HEAD; unknown pages are 404 with a correlation id', async () => {
    const post = await get('/console/', alice, 'POST');
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');
    const missing = await get('/console/nothing', alice);
    expect(missing.status).toBe(404);
    expect(missing.headers['x-appproxy-correlation-id']).toBe('corr-1');
    expect(missing.body).toContain('<dd id="correlation-id">corr-1</dd>');
    const head = await get('/console/', alice, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
  });
});
