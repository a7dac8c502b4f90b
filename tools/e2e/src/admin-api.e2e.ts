import type { startDevIdp } from '@appproxy/dev-idp';
import { startSampleApp } from '@appproxy/sample-app';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminSignIn } from './admin.js';
import { Stack, devIdpFor } from './harness.js';

/**
 * The admin API on relay.adminListen with the real relay CLI, a connector and the dev IdP:
 * admin tokens, admins' console sessions, every route.
 */
type DevIdp = Awaited<ReturnType<typeof startDevIdp>>;
let sample: Awaited<ReturnType<typeof startSampleApp>>;
let idp: DevIdp;
let stack: Stack;

const admin = () => `http://127.0.0.1:${stack.ports.admin}`;

async function api(
  path: string,
  init: { method?: string; headers?: Record<string, string>; body?: unknown } = {},
): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(`${admin()}${path}`, {
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
});
