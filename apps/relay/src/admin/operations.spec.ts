import {
  openStateStore,
  parseConfig,
  type ConnectorRecord,
  type NewAuditEvent,
  type StateStore,
} from '@appproxy/config';
import { parseRegistrationToken } from '@appproxy/tunnel';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as ops from './operations.js';
import { AdminError, type AdminContext } from './operations.js';

let dir: string;
let store: StateStore;
let audited: NewAuditEvent[];
let ctx: AdminContext;

const config = (stateDir: string) =>
  parseConfig(
    `relay:
  listen: 127.0.0.1:8443
  tunnelListen: 127.0.0.1:9443
  stateDir: ${stateDir}
  certificates: [{ cert: ${import.meta.filename}, key: ${import.meta.filename} }]
identityProvider: { issuer: https://idp.example.com, clientId: x }
connectorGroups: [{ name: Default }, { name: Berlin }]
apps:
  - { name: Wiki, internalUrl: http://wiki.corp/, externalUrl: https://wiki.example.com/ }
  - name: Crm
    internalUrl: http://crm.corp/
    externalUrl: https://crm.example.com/
    connectorGroup: Berlin
    preAuthentication: passthrough
    backendProxy: http://proxyuser:proxy-pass-word@proxy.corp:3128
`,
    { baseDir: '/' },
  );

const connector = (over: Partial<ConnectorRecord>): ConnectorRecord => ({
  id: 'c-1',
  group: 'Default',
  certSerial: '01',
  certFingerprint: 'aa'.repeat(32),
  certNotAfter: new Date('2031-01-01T00:00:00Z'),
  createdAt: new Date('2030-01-01T00:00:00Z'),
  capabilities: [],
  tunnels: 0,
  inFlight: 0,
  ...over,
});

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'appproxy-ops-'));
  store = await openStateStore({ stateDir: join(dir, 'state'), instance: 'relay-a' });
  audited = [];
  ctx = {
    config: config(join(dir, 'state')),
    store,
    actor: 'token:ops',
    audit: { record: (e) => audited.push(e) },
  };
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function adminError(fn: () => unknown): Promise<AdminError> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof AdminError) return err;
    throw err;
  }
  throw new Error('expected an AdminError');
}

describe('apps and groups', () => {
  it('listApps: names, URLs, group, preauth, sso mode and settings without a proxy password', () => {
    const apps = ops.listApps(ctx);
    expect(apps.map((a) => [a.name, a.connectorGroup, a.preauth, a.sso])).toStrictEqual([
      ['Wiki', 'Default', 'oidc', 'none'],
      ['Crm', 'Berlin', 'passthrough', 'none'],
    ]);
    expect(apps[0]).toMatchObject({
      externalUrl: 'https://wiki.example.com/',
      internalUrl: 'http://wiki.corp/',
      settings: { backendTimeoutMs: 85_000, translateHeaders: true },
    });
    const text = JSON.stringify(apps);
    expect(text).not.toContain('proxy-pass-word');
    expect(apps[1]!.settings.backendProxy).toBe('http://proxyuser:***@proxy.corp:3128');
    // JSON-able: a round trip changes nothing.
    expect(JSON.parse(text)).toStrictEqual(apps);
  });

  it('listGroups: apps and connectors by state (deleted ones not counted)', async () => {
    const now = new Date();
    await store.upsertConnector(connector({ id: 'live', lastSeenAt: now }));
    await store.upsertConnector(connector({ id: 'idle' }));
    await store.upsertConnector(connector({ id: 'gone', revokedAt: now }));
    expect(await ops.listGroups(ctx)).toStrictEqual([
      { name: 'Default', apps: ['Wiki'], connectors: { active: 1, inactive: 1 } },
      { name: 'Berlin', apps: ['Crm'], connectors: { active: 0, inactive: 0 } },
    ]);
  });
});

describe('connectors', () => {
  it('listConnectors: the rows of `connectors list --json`', async () => {
    const seen = new Date();
    await store.upsertConnector(
      connector({ id: 'c-1', hostname: 'gw1', version: '1.2.3', capabilities: ['websocket'] }),
    );
    await store.recordConnectorSeen('c-1', { at: seen, tunnels: 2, inFlight: 1 });
    expect(await ops.listConnectors(ctx)).toStrictEqual([
      {
        id: 'c-1',
        group: 'Default',
        hostname: 'gw1',
        version: '1.2.3',
        state: 'active',
        lastSeen: seen.toISOString(),
        tunnels: 2,
        inFlight: 1,
        instances: [{ name: 'relay-a', tunnels: 2, inFlight: 1, seenAt: seen.toISOString() }],
        capabilities: ['websocket'],
        kerberos: false,
        missingCapabilities: ['backend-tls', 'diagnose'],
        certificateExpires: '2031-01-01T00:00:00.000Z',
      },
    ]);
  });

  it('deleteConnector revokes and audits; an unknown id is NOT_FOUND (404), not audited', async () => {
    await store.upsertConnector(connector({ id: 'c-1', group: 'Berlin' }));
    await ops.deleteConnector(ctx, 'c-1');
    expect((await store.getConnector('c-1'))?.revokedAt).toBeInstanceOf(Date);
    expect(audited).toStrictEqual([
      { type: 'admin.connector.deleted', actor: 'token:ops', connector: 'c-1', group: 'Berlin' },
    ]);
    const e = await adminError(() => ops.deleteConnector(ctx, 'nope'));
    expect([e.code, e.status, e.message]).toStrictEqual([
      'NOT_FOUND',
      404,
      'no connector with id nope',
    ]);
    expect(audited).toHaveLength(1);
  });
});

describe('registration tokens', () => {
  it('create gives a redeemable token for a known group; list and revoke; all audited', async () => {
    const created = await ops.createRegistrationToken(ctx, { group: 'Berlin', ttlMs: 3_600_000 });
    const parsed = parseRegistrationToken(created.token);
    expect(parsed.id).toBe(created.id);
    expect(await store.checkRegistrationToken(parsed.id, parsed.secret)).toStrictEqual({
      group: 'Berlin',
    });
    expect(await ops.listRegistrationTokens(ctx)).toStrictEqual([
      {
        id: created.id,
        group: 'Berlin',
        createdAt: expect.stringMatching(/Z$/),
        expiresAt: created.expiresAt,
      },
    ]);
    await ops.revokeRegistrationToken(ctx, created.id);
    expect(await ops.listRegistrationTokens(ctx)).toStrictEqual([]);
    expect((await adminError(() => ops.revokeRegistrationToken(ctx, created.id))).code).toBe(
      'NOT_FOUND',
    );
    expect(audited.map((e) => [e.type, e.actor, e.detail?.id])).toStrictEqual([
      ['admin.registration-token.created', 'token:ops', created.id],
      ['admin.registration-token.revoked', 'token:ops', created.id],
    ]);
    // The audit never carries the secret.
    expect(JSON.stringify(audited)).not.toContain(parsed.secret);
  });

  it('an unknown group is UNKNOWN_GROUP, a bad ttl BAD_REQUEST (400)', async () => {
    const unknown = await adminError(() =>
      ops.createRegistrationToken(ctx, { group: 'Nowhere', ttlMs: 1000 }),
    );
    expect([unknown.code, unknown.status]).toStrictEqual(['UNKNOWN_GROUP', 400]);
    for (const ttlMs of [0, -1, Number.NaN])
      expect(
        (await adminError(() => ops.createRegistrationToken(ctx, { group: 'Default', ttlMs })))
          .code,
      ).toBe('BAD_REQUEST');
    expect(audited).toStrictEqual([]);
  });
});

describe('admin tokens', () => {
  it('create, verify, list, revoke by name; audited without the secret', async () => {
    const created = await ops.createAdminToken(ctx, { name: 'ci', ttlMs: 86_400_000 });
    expect(created.token).toMatch(/^apx_[a-z2-7]{8}_/);
    expect((await store.verifyAdminToken(created.token))?.name).toBe('ci');
    const [view] = await ops.listAdminTokens(ctx);
    expect(view).toStrictEqual({
      id: created.id,
      name: 'ci',
      createdAt: expect.any(String),
      expiresAt: created.expiresAt,
      lastUsedAt: expect.any(String),
      createdBy: 'token:ops',
    });
    await ops.revokeAdminToken(ctx, 'ci');
    expect(await store.verifyAdminToken(created.token)).toBeUndefined();
    expect(await ops.listAdminTokens(ctx)).toStrictEqual([]);
    expect((await adminError(() => ops.revokeAdminToken(ctx, 'ci'))).status).toBe(404);
    expect(audited.map((e) => e.type)).toStrictEqual([
      'admin.admin-token.created',
      'admin.admin-token.revoked',
    ]);
    expect(JSON.stringify(audited)).not.toContain(created.token.slice(13));
  });

  it('a name in use is CONFLICT (409); a bad name or ttl BAD_REQUEST; no expiry is null', async () => {
    const first = await ops.createAdminToken(ctx, { name: 'ops' });
    expect(first.expiresAt).toBeNull();
    const e = await adminError(() => ops.createAdminToken(ctx, { name: 'ops' }));
    expect([e.code, e.status]).toStrictEqual(['CONFLICT', 409]);
    for (const o of [{ name: 'a b' }, { name: '' }, { name: 'x', ttlMs: 0 }])
      expect((await adminError(() => ops.createAdminToken(ctx, o))).code).toBe('BAD_REQUEST');
    // Revoked, the name is free again.
    await ops.revokeAdminToken(ctx, first.id);
    expect((await ops.createAdminToken(ctx, { name: 'ops' })).name).toBe('ops');
  });
});

describe('queryAudit', () => {
  it('passes the filters to the store, newest first, dates as ISO strings', async () => {
    const t0 = Date.parse('2030-01-01T00:00:00Z');
    await store.appendAudit([
      { at: new Date(t0), type: 'signin.succeeded', user: 'alice', app: 'Wiki' },
      { at: new Date(t0 + 1000), type: 'access.refused', user: 'bob', app: 'Wiki', code: 'X' },
      { at: new Date(t0 + 2000), type: 'signout', user: 'alice', app: 'Wiki' },
    ]);
    const got = await ops.queryAudit(ctx, { user: 'alice', type: 'signin' });
    expect(got).toStrictEqual([
      {
        id: expect.any(String),
        at: '2030-01-01T00:00:00.000Z',
        type: 'signin.succeeded',
        instance: 'relay-a',
        user: 'alice',
        app: 'Wiki',
      },
    ]);
    expect(
      (await ops.queryAudit(ctx, { since: new Date(t0 + 500) })).map((e) => e.type),
    ).toStrictEqual(['signout', 'access.refused']);
  });

  it('refuses a bad limit, type or time range with BAD_REQUEST', async () => {
    for (const q of [
      { limit: 0 },
      { limit: 1001 },
      { limit: 1.5 },
      { type: "x' OR 1=1" },
      { type: 'Signin' },
      { since: new Date(2000), until: new Date(1000) },
      { since: new Date(Number.NaN) },
    ])
      expect((await adminError(() => ops.queryAudit(ctx, q))).code).toBe('BAD_REQUEST');
  });
});

describe('store unavailable', () => {
  it('is STORE_UNAVAILABLE (503)', async () => {
    const broken = {
      ...ctx,
      store: {
        ...store,
        listConnectors: async () => {
          const { StateStoreError } = await import('@appproxy/config');
          throw new StateStoreError('APPPROXY_STORE_UNAVAILABLE', 'PostgreSQL store down');
        },
      } as StateStore,
    };
    const e = await adminError(() => ops.listConnectors(broken));
    expect([e.code, e.status]).toStrictEqual(['STORE_UNAVAILABLE', 503]);
  });
});
