import { openStateStore, parseConfig, type StateStore } from '@appproxy/config';
import { createLogger } from '@appproxy/telemetry';
import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../audit.js';
import { createAdminServer, type AdminRoute } from './server.js';

/** A JSON answer as `JSON.parse` gives it; the assertions check its shape. */
type Json = ReturnType<typeof JSON.parse>;

const dir = mkdtempSync(join(tmpdir(), 'appproxy-admin-routes-'));
const config = parseConfig(
  `relay:
  listen: 127.0.0.1:8443
  tunnelListen: 127.0.0.1:9443
  adminListen: 127.0.0.1:9090
  stateDir: ${join(dir, 'state')}
  certificates: [{ cert: ${import.meta.filename}, key: ${import.meta.filename} }]
connectorGroups: [{ name: Default }, { name: Berlin }]
apps:
  - { name: Wiki, internalUrl: http://wiki.corp/, externalUrl: https://wiki.example.com/, preAuthentication: passthrough }
  - name: Crm
    internalUrl: http://crm.corp/
    externalUrl: https://crm.example.com/
    connectorGroup: Berlin
    preAuthentication: passthrough
    backendProxy: http://proxyuser:proxy-pass-word@proxy.corp:3128
`,
  { baseDir: '/' },
);
/** A route another module adds (app tests): it must be in the document too. */
const extra: AdminRoute = {
  method: 'POST',
  path: '/api/v1/apps/{name}/tests',
  operationId: 'testApp',
  summary: 'Test an app',
  handler: async () => ({ status: 200, body: {} }),
};
let store: StateStore;
let audit: AuditLog;
let server: Server;
let base: string;
let token = '';

beforeAll(async () => {
  store = await openStateStore({ stateDir: join(dir, 'state'), instance: 'relay-a' });
  const log = createLogger({ name: 'test', write: () => {} });
  audit = new AuditLog({ store, log, retentionMs: 86_400_000, flushIntervalMs: 10 });
  ({ token } = await store.createAdminToken({ name: 'ops' }));
  server = createAdminServer(
    {
      config: () => config,
      store,
      audit,
      log,
      health: () => ({ ready: true, body: {} }),
      metrics: () => '',
      testApp: () => Promise.reject(new Error('unused')),
      relyingParty: () => undefined,
    },
    [extra],
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await audit.stop();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function api(method: string, path: string, body?: unknown) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body !== undefined && { 'content-type': 'application/json' }),
    },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

let document: Json;
/** Checks a response body against the schema the document gives for (path, method, status). */
function conforms(path: string, method: string, status: number, body: unknown): void {
  const ajv = new Ajv2020({ strict: false, validateFormats: false });
  ajv.addSchema({ $id: 'doc', components: document.components });
  const responses = document.paths[path][method].responses;
  const schema = responses[String(status)].content['application/json'].schema;
  const rewrite = (s: unknown): unknown =>
    JSON.parse(JSON.stringify(s).replaceAll('"#/components/', '"doc#/components/'));
  const validate = ajv.compile(rewrite(schema) as object);
  expect(validate(body), JSON.stringify(validate.errors)).toBe(true);
}

describe('the OpenAPI document', () => {
  it('is valid OpenAPI 3.1 and describes every route, the extra ones too', async () => {
    const res = await fetch(`${base}/api/v1/openapi.json`);
    expect(res.status).toBe(200);
    document = (await res.json()) as Json;
    const validator = new Validator();
    const result = await validator.validate(document);
    expect(result.errors ?? []).toStrictEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
    const described = Object.entries(document.paths as Record<string, object>).flatMap(
      ([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
    );
    expect(described.sort()).toStrictEqual(
      [
        'GET /api/v1/apps',
        'GET /api/v1/apps/{name}',
        'POST /api/v1/apps/{name}/tests',
        'GET /api/v1/connector-groups',
        'GET /api/v1/connectors',
        'GET /api/v1/connectors/{id}',
        'DELETE /api/v1/connectors/{id}',
        'GET /api/v1/registration-tokens',
        'POST /api/v1/registration-tokens',
        'DELETE /api/v1/registration-tokens/{id}',
        'GET /api/v1/admin-tokens',
        'POST /api/v1/admin-tokens',
        'DELETE /api/v1/admin-tokens/{id}',
        'GET /api/v1/audit',
        'GET /api/v1/session',
      ].sort(),
    );
    const ids = described.map((d) => {
      const [m, p] = d.split(' ');
      return document.paths[p!][m!.toLowerCase()].operationId;
    });
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe('/api/v1 routes', () => {
  it('lists apps with their settings (no secrets) and answers one app or 404', async () => {
    const apps = await api('GET', '/api/v1/apps');
    expect(apps.status).toBe(200);
    conforms('/api/v1/apps', 'get', 200, apps.body);
    // The check can fail: a body the schema does not allow.
    expect(() => conforms('/api/v1/apps', 'get', 200, { apps: [{ name: 1 }] })).toThrow();
    expect(apps.body.apps.map((a: { name: string }) => a.name)).toStrictEqual(['Wiki', 'Crm']);
    expect(JSON.stringify(apps.body)).not.toContain('proxy-pass-word');
    const crm = await api('GET', '/api/v1/apps/Crm');
    conforms('/api/v1/apps/{name}', 'get', 200, crm.body);
    expect(crm.body).toMatchObject({
      name: 'Crm',
      connectorGroup: 'Berlin',
      preauth: 'passthrough',
    });
    const missing = await api('GET', '/api/v1/apps/Nope');
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('NOT_FOUND');
  });

  it('lists connector groups and connectors; an unknown connector is 404 to read and delete', async () => {
    const groups = await api('GET', '/api/v1/connector-groups');
    conforms('/api/v1/connector-groups', 'get', 200, groups.body);
    expect(groups.body.groups).toStrictEqual([
      { name: 'Default', apps: ['Wiki'], connectors: { active: 0, inactive: 0 } },
      { name: 'Berlin', apps: ['Crm'], connectors: { active: 0, inactive: 0 } },
    ]);
    const connectors = await api('GET', '/api/v1/connectors');
    conforms('/api/v1/connectors', 'get', 200, connectors.body);
    expect(connectors.body).toStrictEqual({ connectors: [] });
    expect((await api('GET', '/api/v1/connectors/c-nope')).status).toBe(404);
    const gone = await api('DELETE', '/api/v1/connectors/c-nope');
    expect(gone.status).toBe(404);
    expect(gone.body.error.code).toBe('NOT_FOUND');
  });

  it('creates, lists and revokes registration tokens', async () => {
    const created = await api('POST', '/api/v1/registration-tokens', {
      group: 'Berlin',
      ttl: '2h',
    });
    expect(created.status).toBe(201);
    conforms('/api/v1/registration-tokens', 'post', 201, created.body);
    expect(created.body.group).toBe('Berlin');
    expect(Date.parse(created.body.expiresAt) - Date.now()).toBeGreaterThan(7_100_000);
    const listed = await api('GET', '/api/v1/registration-tokens');
    conforms('/api/v1/registration-tokens', 'get', 200, listed.body);
    expect(listed.body.tokens.map((t: { id: string }) => t.id)).toContain(created.body.id);
    expect(JSON.stringify(listed.body)).not.toContain(created.body.token);
    expect((await api('DELETE', `/api/v1/registration-tokens/${created.body.id}`)).status).toBe(
      204,
    );
    const again = await api('DELETE', `/api/v1/registration-tokens/${created.body.id}`);
    expect(again.status).toBe(404);
    const after = await api('GET', '/api/v1/registration-tokens');
    expect(after.body.tokens.map((t: { id: string }) => t.id)).not.toContain(created.body.id);
  });

  it('refuses bad registration token requests with 400 codes', async () => {
    const unknown = await api('POST', '/api/v1/registration-tokens', { group: 'Mars' });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.code).toBe('UNKNOWN_GROUP');
    for (const body of [{}, { group: 'Default', ttl: 'soon' }, ['Default']]) {
      const bad = await api('POST', '/api/v1/registration-tokens', body);
      expect(bad.status, JSON.stringify(body)).toBe(400);
      expect(bad.body.error.code).toBe('BAD_REQUEST');
    }
  });

  it('creates, lists and revokes admin tokens; the new one works, the revoked one does not', async () => {
    const created = await api('POST', '/api/v1/admin-tokens', { name: 'ci', ttl: '1d' });
    expect(created.status).toBe(201);
    conforms('/api/v1/admin-tokens', 'post', 201, created.body);
    const listed = await api('GET', '/api/v1/admin-tokens');
    conforms('/api/v1/admin-tokens', 'get', 200, listed.body);
    expect(listed.body.tokens.find((t: { name: string }) => t.name === 'ci')).toMatchObject({
      createdBy: 'token:ops',
    });
    const asCi = () =>
      fetch(`${base}/api/v1/session`, {
        headers: { authorization: `Bearer ${created.body.token}` },
      });
    expect(await (await asCi()).json()).toStrictEqual({ actor: 'token:ci' });
    expect((await api('POST', '/api/v1/admin-tokens', { name: 'ci' })).status).toBe(409);
    expect((await api('DELETE', '/api/v1/admin-tokens/ci')).status).toBe(204);
    expect((await asCi()).status).toBe(401);
    expect((await api('DELETE', '/api/v1/admin-tokens/ci')).status).toBe(404);
  });

  it('queries the audit log with filters; the admin actions are there with their actor', async () => {
    await audit.flush();
    const all = await api('GET', '/api/v1/audit?since=1h&type=admin.');
    expect(all.status).toBe(200);
    conforms('/api/v1/audit', 'get', 200, all.body);
    const types = all.body.events.map((e: { type: string }) => e.type);
    expect(types).toEqual(
      expect.arrayContaining([
        'admin.registration-token.created',
        'admin.registration-token.revoked',
        'admin.admin-token.created',
        'admin.admin-token.revoked',
      ]),
    );
    for (const e of all.body.events) expect(e.actor).toBe('token:ops');
    const one = await api('GET', '/api/v1/audit?type=admin.admin-token.created&limit=1');
    expect(one.body.events).toHaveLength(1);
    const future = await api(
      'GET',
      `/api/v1/audit?since=${new Date(Date.now() + 60_000).toISOString()}`,
    );
    expect(future.body.events).toStrictEqual([]);
    for (const q of ['since=yesterday', 'limit=0', 'limit=x', 'type=NOPE', 'since=1m&until=1h']) {
      const bad = await api('GET', `/api/v1/audit?${q}`);
      expect(bad.status, q).toBe(400);
      expect(bad.body.error.code).toBe('BAD_REQUEST');
    }
  });
});
