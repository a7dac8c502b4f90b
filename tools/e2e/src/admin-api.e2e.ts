import type { startDevIdp } from '@appproxy/dev-idp';
import { startSampleApp } from '@appproxy/sample-app';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminSignIn } from './admin.js';
import {
  CONNECTOR_BIN,
  RELAY_BIN,
  Stack,
  connectorId,
  devIdpFor,
  runCli,
  until,
} from './harness.js';

/** A JSON answer as `JSON.parse` gives it; the assertions check its shape. */
type Json = ReturnType<typeof JSON.parse>;

/**
 * The admin API on relay.adminListen with the real relay CLI, a connector and the dev IdP:
 * admin tokens, admins' console sessions, every route.
 */
type DevIdp = Awaited<ReturnType<typeof startDevIdp>>;
let sample: Awaited<ReturnType<typeof startSampleApp>>;
let idp: DevIdp;
let stack: Stack;
let workers: Stack | undefined;
let token = '';

const admin = (s = stack) => `http://127.0.0.1:${s.ports.admin}`;

async function api(
  path: string,
  init: { method?: string; headers?: Record<string, string>; body?: unknown; on?: Stack } = {},
): Promise<{ status: number; body: Json; headers: Headers }> {
  const res = await fetch(`${admin(init.on)}${path}`, {
    method: init.method ?? 'GET',
    headers: {
      ...init.headers,
      ...(init.body !== undefined && { 'content-type': 'application/json' }),
    },
    ...(init.body !== undefined && { body: JSON.stringify(init.body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
}

beforeAll(async () => {
  sample = await startSampleApp({ basePath: '/' });
  stack = new Stack({
    apps: [
      {
        name: 'Wiki',
        internalUrl: `http://127.0.0.1:${sample.port}/`,
        externalUrl: 'https://wiki.apps.localhost:{port}/',
        preAuthentication: 'oidc',
      },
    ],
    relayExtra: "  admins: { users: [alice], groups: ['Platform Ops'] }\n",
  });
  idp = await devIdpFor(stack, ['wiki.apps.localhost']);
  await stack.start();
}, 60_000);

afterAll(async () => {
  await workers?.stop();
  await stack?.stop();
  await idp?.close();
  await sample?.close();
});

describe('admin API: authentication', () => {
  it('answers anonymous requests 401 UNAUTHENTICATED; health and metrics stay open', async () => {
    const anon = await api('/api/v1/session');
    expect(anon.status).toBe(401);
    expect(anon.body.error.code).toBe('UNAUTHENTICATED');
    expect(anon.headers.get('www-authenticate')).toBe('Bearer realm="appproxy-admin"');
    expect((await api('/healthz')).status).toBe(200);
    expect((await api('/readyz')).body).toMatchObject({ status: 'ready', connectors: 1 });
    expect((await fetch(`${admin()}/metrics`)).status).toBe(200);
  });

  it('lets an admin in through the OIDC console sign-in, and refuses a non-admin 403', async () => {
    const alice = await adminSignIn(admin(), 'alice', 'alice-password');
    expect(alice.status).toBe(200);
    const me = await api('/api/v1/session', { headers: { cookie: alice.cookie } });
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({ actor: 'user:alice', user: 'alice' });
    expect(me.body.csrf).toMatch(/^[A-Za-z0-9_-]{43}$/);

    const bob = await adminSignIn(admin(), 'bob', 'bob-password');
    expect(bob.status).toBe(403);
    const refused = await api('/api/v1/session', { headers: { cookie: bob.cookie } });
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe('NOT_AN_ADMIN');
    expect(stack.relay!.lines.some((l) => l.msg === 'admin sign-in')).toBe(true);
  });

  it('audits a refused console callback and an admin sign-out, as the app sign-in does', async () => {
    // A callback nobody started (no transaction cookie): the relay's error page, audited.
    const forged = await fetch(`${admin()}/console/callback?code=x&state=${'A'.repeat(43)}`, {
      headers: { accept: 'application/json' },
    });
    expect(forged.status).toBe(400);
    expect(forged.headers.get('x-appproxy-error')).toBe('SIGN_IN_FAILED');
    const correlationId = forged.headers.get('x-appproxy-correlation-id');
    expect(correlationId).toMatch(/^[0-9a-f]{32}$/);

    const alice = await adminSignIn(admin(), 'alice', 'alice-password');
    const signOut = await fetch(`${admin()}/console/signout`, {
      headers: { cookie: alice.cookie },
      redirect: 'manual',
    });
    expect(signOut.status).toBe(302);
    expect(signOut.headers.getSetCookie().join('\n')).toMatch(/^appproxy_admin=;.*Max-Age=0/m);

    const reader = await adminSignIn(admin(), 'alice', 'alice-password');
    let events: Array<Record<string, unknown>> = [];
    await until(async () => {
      const res = await api('/api/v1/audit?since=1h&type=admin.', {
        headers: { cookie: reader.cookie },
      });
      events = res.body.events;
      return events.some((e) => e.type === 'admin.signout');
    }, 'the admin sign-out audited');
    expect(events.find((e) => e.type === 'admin.signin.failed')).toMatchObject({
      code: 'SIGN_IN_FAILED',
      correlationId,
      detail: { reason: 'APPPROXY_PREAUTH_TRANSACTION_MISSING' },
    });
    expect(events.find((e) => e.type === 'admin.signout')).toMatchObject({
      user: 'alice',
      actor: 'user:alice',
    });
  });
});

async function createAdminToken(s: Stack, name: string): Promise<string> {
  const res = await runCli(RELAY_BIN, [
    'admin-token',
    'create',
    '--config',
    s.configPath,
    '--name',
    name,
  ]);
  expect(res.code, res.stderr).toBe(0);
  return res.stdout.trim();
}

describe('admin API: every route with an admin token', () => {
  const bearer = () => ({ authorization: `Bearer ${token}` });

  beforeAll(async () => {
    token = await createAdminToken(stack, 'ops');
    expect(token).toMatch(/^apx_[a-z2-7]{8}_[A-Za-z0-9_-]{43}$/);
  });

  it('describes itself: GET /api/v1/openapi.json is OpenAPI 3.1, open', async () => {
    const doc = await api('/api/v1/openapi.json');
    expect(doc.status).toBe(200);
    expect(doc.body.openapi).toBe('3.1.0');
    expect(Object.keys(doc.body.paths)).toContain('/api/v1/connectors/{id}');
  });

  it('lists apps, one app, and connector groups', async () => {
    const apps = await api('/api/v1/apps', { headers: bearer() });
    expect(apps.status).toBe(200);
    expect(apps.body.apps).toMatchObject([
      { name: 'Wiki', connectorGroup: 'Default', preauth: 'oidc', sso: 'none' },
    ]);
    const wiki = await api('/api/v1/apps/Wiki', { headers: bearer() });
    expect(wiki.body.settings).toMatchObject({ translateHeaders: true });
    const groups = await api('/api/v1/connector-groups', { headers: bearer() });
    expect(groups.body.groups).toStrictEqual([
      { name: 'Default', apps: ['Wiki'], connectors: { active: 1, inactive: 0 } },
    ]);
  });

  it('shows the live connector with its instances, tunnels, version, capabilities, last seen', async () => {
    const id = connectorId(stack.connectorState);
    let connector: Json;
    await until(async () => {
      const list = await api('/api/v1/connectors', { headers: bearer() });
      connector = list.body.connectors.find((c: { id: string }) => c.id === id);
      return connector?.tunnels === 2 && connector.instances.length === 1;
    }, 'the connector listed with its 2 tunnels');
    expect(connector).toMatchObject({ id, group: 'Default', state: 'active', tunnels: 2 });
    expect(connector.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(connector.capabilities).toContain('websocket');
    expect(Date.now() - Date.parse(connector.lastSeen)).toBeLessThan(60_000);
    expect(connector.instances[0]).toMatchObject({ tunnels: 2 });
    const one = await api(`/api/v1/connectors/${id}`, { headers: bearer() });
    expect(one.body.id).toBe(id);
  });

  it('creates, lists and revokes a registration token', async () => {
    const created = await api('/api/v1/registration-tokens', {
      method: 'POST',
      headers: bearer(),
      body: { group: 'Default', ttl: '30m' },
    });
    expect(created.status).toBe(201);
    const listed = await api('/api/v1/registration-tokens', { headers: bearer() });
    expect(listed.body.tokens.map((t: { id: string }) => t.id)).toContain(created.body.id);
    const revoked = await api(`/api/v1/registration-tokens/${created.body.id}`, {
      method: 'DELETE',
      headers: bearer(),
    });
    expect(revoked.status).toBe(204);
    // A revoked token registers nothing.
    const register = await runCli(CONNECTOR_BIN, [
      'register',
      '--relay',
      stack.relayUrl,
      '--token',
      created.body.token,
      '--state-dir',
      `${stack.dir}/never`,
    ]);
    expect(register.code).not.toBe(0);
    const after = await api('/api/v1/registration-tokens', { headers: bearer() });
    expect(after.body.tokens.map((t: { id: string }) => t.id)).not.toContain(created.body.id);
  });

  it('lists admin tokens without their secrets', async () => {
    const tokens = await api('/api/v1/admin-tokens', { headers: bearer() });
    expect(tokens.body.tokens).toMatchObject([{ name: 'ops', createdBy: 'cli' }]);
    expect(JSON.stringify(tokens.body)).not.toContain(token.slice(14));
  });

  it('deletes the connector: it exits 3; the audit log shows the admin actions as token:ops', async () => {
    const id = connectorId(stack.connectorState);
    const deleted = await api(`/api/v1/connectors/${id}`, { method: 'DELETE', headers: bearer() });
    expect(deleted.status).toBe(204);
    expect(await stack.connector!.exited).toBe(3);
    let events: Array<Record<string, unknown>> = [];
    await until(async () => {
      events = (await api('/api/v1/audit?since=1h&type=admin.', { headers: bearer() })).body.events;
      return events.some((e) => e.type === 'admin.connector.deleted');
    }, 'the deletion audited');
    const mine = events.filter((e) => e.actor === 'token:ops').map((e) => e.type);
    expect(mine).toEqual(
      expect.arrayContaining([
        'admin.connector.deleted',
        'admin.registration-token.created',
        'admin.registration-token.revoked',
      ]),
    );
    expect(events.find((e) => e.type === 'admin.connector.deleted')).toMatchObject({
      connector: id,
      group: 'Default',
      // The id the DELETE's answer carried finds its event.
      correlationId: deleted.headers.get('x-appproxy-correlation-id'),
    });
    const signins = (await api('/api/v1/audit?type=admin.signin', { headers: bearer() })).body
      .events;
    expect(signins.map((e: { type: string; user: string }) => `${e.type} ${e.user}`)).toEqual(
      expect.arrayContaining(['admin.signin.succeeded alice', 'admin.signin.refused bob']),
    );
  });

  it('refuses a revoked admin token 401', async () => {
    const other = await createAdminToken(stack, 'temp');
    expect(
      (await api('/api/v1/apps', { headers: { authorization: `Bearer ${other}` } })).status,
    ).toBe(200);
    const revoke = await api('/api/v1/admin-tokens/temp', { method: 'DELETE', headers: bearer() });
    expect(revoke.status).toBe(204);
    const refused = await api('/api/v1/apps', { headers: { authorization: `Bearer ${other}` } });
    expect(refused.status).toBe(401);
    expect(refused.body.error.code).toBe('UNAUTHENTICATED');
  });
});

describe('admin API: workers', () => {
  it('answers from the primary of relay.workers: 2', async () => {
    workers = new Stack({
      apps: [
        {
          name: 'Wiki',
          internalUrl: `http://127.0.0.1:${sample.port}/`,
          externalUrl: 'https://wiki.apps.localhost:{port}/',
        },
      ],
      workers: 2,
    });
    await workers.start();
    const opsToken = await createAdminToken(workers, 'ops');
    const headers = { authorization: `Bearer ${opsToken}` };
    expect((await api('/api/v1/apps', { on: workers })).status).toBe(401);
    const id = connectorId(workers.connectorState);
    let connector: Json;
    await until(async () => {
      const list = await api('/api/v1/connectors', { on: workers, headers });
      connector = list.body.connectors.find((c: { id: string }) => c.id === id);
      return connector?.instances.length === 2;
    }, 'the connector seen by both workers');
    expect(connector.state).toBe('active');
    const created = await api('/api/v1/registration-tokens', {
      on: workers,
      method: 'POST',
      headers,
      body: { group: 'Default' },
    });
    expect(created.status).toBe(201);
    const ready = await api('/readyz', { on: workers });
    expect(ready.body.workers).toHaveLength(2);
    // App tests need tunnels, which only the workers have: the primary forwards them.
    const test = await api('/api/v1/apps/Wiki/tests', {
      on: workers,
      method: 'POST',
      headers,
      body: {},
    });
    expect(test.status).toBe(200);
    expect(test.body).toMatchObject({ app: 'Wiki', ok: true, connectors: [{ id, ok: true }] });
    const unknown = await api('/api/v1/apps/Nope/tests', {
      on: workers,
      method: 'POST',
      headers,
      body: {},
    });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('NOT_FOUND');
    // What the primary audits itself counts in its metrics, beside the workers' series.
    const metrics = await (await fetch(`${admin(workers)}/metrics`)).text();
    expect(metrics).toContain(
      'appproxy_audit_events_total{type="admin.registration-token.created"} 1',
    );
  }, 90_000);
});
