import { openStateStore, parseConfig, type NewAuditEvent, type StateStore } from '@appproxy/config';
import { RelyingParty } from '@appproxy/preauth';
import { createLogger } from '@appproxy/telemetry';
import { mkdtempSync, rmSync } from 'node:fs';
import { request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminSessionCookie } from './__fixtures__/admin-session.js';
import { MAX_BODY_BYTES, createAdminServer, type AdminHost, type AdminRoute } from './server.js';
import { adminOrigin } from './session.js';

/** A JSON answer as `JSON.parse` gives it; the assertions check its shape. */
type Json = ReturnType<typeof JSON.parse>;

const dir = mkdtempSync(join(tmpdir(), 'appproxy-admin-'));
const config = parseConfig(
  `relay:
  listen: 127.0.0.1:8443
  tunnelListen: 127.0.0.1:9443
  adminListen: 127.0.0.1:9090
  admins: { users: [alice], groups: ['AppProxy Admins'] }
  stateDir: ${join(dir, 'state')}
  certificates: [{ cert: ${import.meta.filename}, key: ${import.meta.filename} }]
identityProvider: { issuer: 'http://127.0.0.1:1', clientId: x }
apps: []
`,
  { baseDir: '/' },
);
const rp = new RelyingParty({
  issuer: 'http://127.0.0.1:1',
  clientId: 'x',
  sessionSecrets: [{ id: 'k1', secret: 'a-session-secret-of-at-least-32-characters' }],
});
let TOKEN = '';
const audited: NewAuditEvent[] = [];
const logLines: string[] = [];
let store: StateStore;
let server: Server;
let base: string;
let ready = true;

const echo: AdminRoute[] = [
  {
    method: 'GET',
    path: '/api/v1/echo/{name}',
    operationId: 'echoGet',
    summary: 'Echo',
    handler: async (r) => ({
      status: 200,
      body: { actor: r.actor, name: r.params.name, q: r.query.get('q'), ctxActor: r.ctx.actor },
    }),
  },
  {
    method: 'POST',
    path: '/api/v1/echo',
    operationId: 'echoPost',
    summary: 'Echo a body',
    handler: async (r) => ({ status: 201, body: { got: r.body ?? null, actor: r.actor } }),
  },
  {
    method: 'DELETE',
    path: '/api/v1/echo/{name}',
    operationId: 'echoDelete',
    summary: 'Delete',
    handler: async () => ({ status: 204, body: undefined }),
  },
  {
    method: 'GET',
    path: '/api/v1/refused',
    operationId: 'refused',
    summary: 'Always a coded error',
    handler: async () => {
      throw Object.assign(new Error('no such thing'), { code: 'NOT_FOUND', status: 404 });
    },
  },
  {
    method: 'GET',
    path: '/api/v1/boom',
    operationId: 'boom',
    summary: 'Always a bug',
    handler: async () => {
      throw new Error('secret detail');
    },
  },
];

beforeAll(async () => {
  store = await openStateStore({ stateDir: join(dir, 'state'), instance: 'a' });
  ({ token: TOKEN } = await store.createAdminToken({ name: 'ops' }));
  const host: AdminHost = {
    config: () => config,
    store,
    audit: { record: (e) => void audited.push(e), recordCoalesced: (e) => void audited.push(e) },
    log: createLogger({ name: 'test', level: 'debug', write: (l) => logLines.push(l) }),
    health: () => ({ ready, body: { status: ready ? 'ready' : 'not ready' } }),
    metrics: () => 'appproxy_up 1\n',
    testApp: () => Promise.reject(new Error('unused')),
    relyingParty: () => rp,
  };
  server = createAdminServer(host, {
    routes: echo,
    console: async (req, res, session, api) => {
      if (req.url !== '/console/') return false;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ session: session ?? null, actor: api.ctx?.actor ?? null }));
      return true;
    },
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json: () => Json;
}

function call(
  method: string,
  path: string,
  o: { headers?: Record<string, string | number>; body?: string | Buffer; chunks?: Buffer[] } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}${path}`, { method, headers: o.headers ?? {} }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        resolve({
          status: res.statusCode!,
          headers: res.headers,
          text,
          json: () => JSON.parse(text),
        });
      });
    });
    req.on('error', reject);
    if (o.chunks) {
      for (const c of o.chunks) req.write(c);
      req.end();
    } else req.end(o.body);
  });
}

const bearer = () => ({ authorization: `Bearer ${TOKEN}` });
const errorOf = (a: Answer) =>
  a.json().error as { code: string; message: string; correlationId: string };

describe('admin server: open paths', () => {
  it('serves /healthz, /readyz and /metrics without credentials', async () => {
    expect((await call('GET', '/healthz')).json()).toStrictEqual({ status: 'ok' });
    expect((await call('GET', '/readyz')).status).toBe(200);
    ready = false;
    expect((await call('GET', '/readyz')).status).toBe(503);
    ready = true;
    const metrics = await call('GET', '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.headers['content-type']).toMatch(/^text\/plain/);
    expect(metrics.text).toBe('appproxy_up 1\n');
  });

  it('serves the OpenAPI document, redirects / to the console, and gives every answer a correlation id', async () => {
    const doc = await call('GET', '/api/v1/openapi.json');
    expect(doc.status).toBe(200);
    expect(doc.json().openapi).toBe('3.1.0');
    const root = await call('GET', '/');
    expect(root.status).toBe(302);
    expect(root.headers.location).toBe('/console/');
    expect(root.headers['x-appproxy-correlation-id']).toMatch(/^[0-9a-f]{32}$/);
  });
});

describe('admin server: router', () => {
  it('answers 404 NOT_FOUND and 405 METHOD_NOT_ALLOWED with Allow, as JSON', async () => {
    const missing = await call('GET', '/api/v1/nothing', { headers: bearer() });
    expect(missing.status).toBe(404);
    expect(errorOf(missing).code).toBe('NOT_FOUND');
    expect(errorOf(missing).correlationId).toBe(missing.headers['x-appproxy-correlation-id']);
    expect((await call('GET', '/elsewhere')).status).toBe(404);
    const wrong = await call('PUT', '/api/v1/echo/x', { headers: bearer() });
    expect(wrong.status).toBe(405);
    expect(errorOf(wrong).code).toBe('METHOD_NOT_ALLOWED');
    expect(wrong.headers.allow).toBe('GET, DELETE');
  });

  it('passes decoded path parameters and the query; 204 has no body', async () => {
    const r = await call('GET', '/api/v1/echo/Wiki%20App?q=1', { headers: bearer() });
    expect(r.json()).toStrictEqual({
      actor: 'token:ops',
      name: 'Wiki App',
      q: '1',
      ctxActor: 'token:ops',
    });
    const gone = await call('DELETE', '/api/v1/echo/x', { headers: bearer() });
    expect(gone.status).toBe(204);
    expect(gone.text).toBe('');
  });

  it('answers a coded error with its status and code, anything else as 500 without detail', async () => {
    const refused = await call('GET', '/api/v1/refused', { headers: bearer() });
    expect(refused.status).toBe(404);
    expect(errorOf(refused)).toMatchObject({ code: 'NOT_FOUND', message: 'no such thing' });
    const boom = await call('GET', '/api/v1/boom', { headers: bearer() });
    expect(boom.status).toBe(500);
    expect(errorOf(boom).code).toBe('INTERNAL_ERROR');
    expect(boom.text).not.toContain('secret detail');
  });
});

describe('admin server: JSON bodies', () => {
  const json = () => ({ ...bearer(), 'content-type': 'application/json' });

  it('takes a JSON body up to 64 KiB', async () => {
    const r = await call('POST', '/api/v1/echo', { headers: json(), body: '{"group":"Default"}' });
    expect(r.status).toBe(201);
    expect(r.json()).toStrictEqual({ got: { group: 'Default' }, actor: 'token:ops' });
    const big = JSON.stringify({ pad: 'x'.repeat(MAX_BODY_BYTES - 20) });
    expect((await call('POST', '/api/v1/echo', { headers: json(), body: big })).status).toBe(201);
  });

  it('refuses a bigger body with 413 BODY_TOO_LARGE, by Content-Length or as it streams', async () => {
    const declared = await call('POST', '/api/v1/echo', {
      headers: json(),
      body: Buffer.alloc(MAX_BODY_BYTES + 1, 0x20),
    });
    expect(declared.status).toBe(413);
    expect(errorOf(declared).code).toBe('BODY_TOO_LARGE');
    const streamed = await call('POST', '/api/v1/echo', {
      headers: { ...json(), 'transfer-encoding': 'chunked' },
      chunks: [Buffer.alloc(40_000, 0x20), Buffer.alloc(40_000, 0x20)],
    });
    expect(streamed.status).toBe(413);
    expect(errorOf(streamed).code).toBe('BODY_TOO_LARGE');
  });

  it('refuses malformed JSON (400 INVALID_JSON) and other media types (415)', async () => {
    const bad = await call('POST', '/api/v1/echo', { headers: json(), body: '{"group":' });
    expect(bad.status).toBe(400);
    expect(errorOf(bad).code).toBe('INVALID_JSON');
    const form = await call('POST', '/api/v1/echo', {
      headers: { ...bearer(), 'content-type': 'application/x-www-form-urlencoded' },
      body: 'group=Default',
    });
    expect(form.status).toBe(415);
    expect(errorOf(form).code).toBe('UNSUPPORTED_MEDIA_TYPE');
  });
});

describe('admin server: admin tokens', () => {
  it('answers anonymous API requests 401 UNAUTHENTICATED with a Bearer challenge', async () => {
    const r = await call('GET', '/api/v1/echo/x');
    expect(r.status).toBe(401);
    expect(errorOf(r).code).toBe('UNAUTHENTICATED');
    expect(r.headers['www-authenticate']).toBe('Bearer realm="appproxy-admin"');
  });

  it('answers an expired or revoked token 401 UNAUTHENTICATED invalid_token', async () => {
    const expired = await store.createAdminToken({
      name: 'old',
      ttlMs: 1000,
      now: new Date(Date.now() - 60_000),
    });
    const revoked = await store.createAdminToken({ name: 'gone' });
    const ok = await call('GET', '/api/v1/echo/x', {
      headers: { authorization: `Bearer ${revoked.token}` },
    });
    expect(ok.json().actor).toBe('token:gone');
    expect(await store.revokeAdminToken('gone')).toBe(true);
    for (const token of [expired.token, revoked.token]) {
      const r = await call('GET', '/api/v1/echo/x', {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(r.status).toBe(401);
      expect(errorOf(r).code).toBe('UNAUTHENTICATED');
      expect(r.headers['www-authenticate']).toContain('error="invalid_token"');
    }
  });

  it.each([
    ['an unknown token', 'apx_zzzz2345_0123456789abcdefghijklmnopqrstuvwxyzABCDEF'],
    ['a malformed token', 'not-a-token'],
    ['an empty scheme', ''],
  ])('answers %s 401 UNAUTHENTICATED invalid_token', async (_what, token) => {
    const r = await call('GET', '/api/v1/echo/x', {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(r.status).toBe(401);
    expect(errorOf(r).code).toBe('UNAUTHENTICATED');
    expect(r.headers['www-authenticate']).toContain('error="invalid_token"');
  });

  it('never logs the token', () => {
    expect(logLines.join('')).not.toContain(TOKEN.slice(14));
  });
});

describe('admin server: admin sessions', () => {
  const alice = { sub: 'a-1', preferredUsername: 'alice', name: 'Alice Admin' };
  const dora = { sub: 'd-1', preferredUsername: 'dora', groups: ['appproxy admins'] };
  const bob = { sub: 'b-1', preferredUsername: 'bob', groups: ['Staff'] };

  it('lets an admin (by user or group, any case) in and hands the console the session', async () => {
    for (const who of [alice, dora]) {
      const cookie = await adminSessionCookie(rp, config, who);
      const r = await call('GET', '/api/v1/echo/x', { headers: { cookie } });
      expect(r.status).toBe(200);
      expect(r.json().actor).toBe(`user:${who.preferredUsername}`);
    }
    const cookie = await adminSessionCookie(rp, config, alice);
    const page = (await call('GET', '/console/', { headers: { cookie } })).json();
    expect(page.actor).toBe('user:alice');
    expect(page.session).toMatchObject({ user: 'alice', name: 'Alice Admin', groups: [] });
    expect(page.session.csrf).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect((await call('GET', '/console/')).json()).toStrictEqual({ session: null, actor: null });
  });

  it('needs X-CSRF-Token on state-changing requests with a session (not with a token)', async () => {
    const cookie = await adminSessionCookie(rp, config, alice);
    const { csrf } = (await call('GET', '/console/', { headers: { cookie } })).json().session;
    const body = '{}';
    const headers = { cookie, 'content-type': 'application/json' };
    const missing = await call('POST', '/api/v1/echo', { headers, body });
    expect(missing.status).toBe(403);
    expect(errorOf(missing).code).toBe('CSRF_TOKEN_INVALID');
    const wrong = await call('POST', '/api/v1/echo', {
      headers: { ...headers, 'x-csrf-token': `${csrf.slice(1)}x` },
      body,
    });
    expect(errorOf(wrong).code).toBe('CSRF_TOKEN_INVALID');
    const deleted = await call('DELETE', '/api/v1/echo/x', { headers: { cookie } });
    expect(errorOf(deleted).code).toBe('CSRF_TOKEN_INVALID');
    const ok = await call('POST', '/api/v1/echo', {
      headers: { ...headers, 'x-csrf-token': csrf },
      body,
    });
    expect(ok.status).toBe(201);
    expect(ok.json().actor).toBe('user:alice');
    // Another session of the same person has another token.
    const later = await adminSessionCookie(rp, config, alice, { ageSec: 60 });
    const other = (await call('GET', '/console/', { headers: { cookie: later } })).json().session;
    expect(other.csrf).not.toBe(csrf);
  });

  it('answers a signed-in non-admin 403 NOT_AN_ADMIN, as JSON on the API and a page on the console', async () => {
    const cookie = await adminSessionCookie(rp, config, bob);
    const api = await call('GET', '/api/v1/echo/x', { headers: { cookie } });
    expect(api.status).toBe(403);
    expect(errorOf(api).code).toBe('NOT_AN_ADMIN');
    const page = await call('GET', '/console/', { headers: { cookie, accept: 'text/html' } });
    expect(page.status).toBe(403);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.text).toContain('NOT_AN_ADMIN');
    expect(page.text).toContain('bob');
  });

  it('treats an expired, forged or app session as anonymous (401) and expires the cookie', async () => {
    const expired = await adminSessionCookie(rp, config, alice, { ageSec: 9 * 3600 });
    const r = await call('GET', '/api/v1/echo/x', { headers: { cookie: expired } });
    expect(r.status).toBe(401);
    expect(String(r.headers['set-cookie'])).toMatch(/^appproxy_admin=;.*Max-Age=0/i);
    const forged = await call('GET', '/api/v1/echo/x', {
      headers: { cookie: `appproxy_admin=${expired.slice(16, -4)}abcd` },
    });
    expect(forged.status).toBe(401);
    // A session sealed for the apps is no admin session, even with the admin origin.
    const appSession = await rp.keyring.seal('session', {
      v: 1,
      iss: rp.provider.issuer,
      aud: 'http://127.0.0.1:9090',
    });
    const foreign = await call('GET', '/api/v1/echo/x', {
      headers: { cookie: `appproxy_admin=${appSession}` },
    });
    expect(foreign.status).toBe(401);
  });

  it('starts the sign-in at /console/signin with the relay’s provider (here unreachable: 502)', async () => {
    const r = await call('GET', '/console/signin?return=%2Fconsole%2F', {
      headers: { accept: 'application/json' },
    });
    expect(r.status).toBe(502);
    expect(r.headers['x-appproxy-error']).toBe('IDENTITY_PROVIDER_UNAVAILABLE');
  });

  it('prefers the bearer token over the cookie', async () => {
    const cookie = await adminSessionCookie(rp, config, bob);
    const r = await call('GET', '/api/v1/echo/x', { headers: { cookie, ...bearer() } });
    expect(r.json().actor).toBe('token:ops');
  });
});

describe('admin origin', () => {
  const origin = (adminListen: string, adminUrl?: string) =>
    adminOrigin(
      parseConfig(
        `relay:
  listen: 127.0.0.1:8443
  tunnelListen: 127.0.0.1:9443
  stateDir: ${tmpdir()}
  certificates: [{ cert: ${import.meta.filename}, key: ${import.meta.filename} }]
  adminListen: '${adminListen}'
${adminUrl ? `  adminUrl: ${adminUrl}\n` : ''}apps: []
`,
        { baseDir: '/' },
      ),
    );

  it('is where a browser on this machine reaches adminListen, a wildcard as loopback', () => {
    expect(origin('0.0.0.0:9090')).toBe('http://127.0.0.1:9090');
    expect(origin(':9090')).toBe('http://127.0.0.1:9090');
    expect(origin('[::]:9090')).toBe('http://[::1]:9090');
    expect(origin('[::1]:9090')).toBe('http://[::1]:9090');
    expect(origin('10.0.0.5:9090')).toBe('http://10.0.0.5:9090');
    expect(origin('0.0.0.0:9090', 'https://admin.example.com')).toBe('https://admin.example.com');
  });
});
