/**
 * The audit log end to end: the real relay CLI, a connector and the development identity
 * provider. Sign-ins, a user the assignment refuses, a throttled burst, a sign-out, a
 * deleted connector and admin tokens all show in `audit --json` with actor, user, app and
 * code, and each is a JSON log line with `type: "audit"` at once.
 */
import type { AuditEvent } from '@appproxy/config';
import { startSampleApp } from '@appproxy/sample-app';
import { signIn } from '@appproxy/dev-idp/sign-in';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RELAY_BIN, Stack, connectorId, devIdpFor, request, runCli, until } from './harness.js';

/** An event as `audit --json` prints it: the store's event, its time as ISO text. */
type AuditView = Omit<AuditEvent, 'at'> & { at: string };

const WIKI = 'wiki.apps.localhost';
const API = 'api.apps.localhost';
let sample: Awaited<ReturnType<typeof startSampleApp>>;
let stack: Stack;
let idp: Awaited<ReturnType<typeof devIdpFor>>;

beforeAll(async () => {
  sample = await startSampleApp({ basePath: '/' });
  stack = new Stack({
    apps: [
      {
        name: 'Wiki',
        internalUrl: `http://127.0.0.1:${sample.port}/`,
        externalUrl: `https://${WIKI}:{port}/`,
        preAuthentication: 'oidc',
        extra: '    assignment: { required: true, users: [alice@example.com] }\n',
      },
      {
        name: 'Api',
        internalUrl: `http://127.0.0.1:${sample.port}/`,
        externalUrl: `https://${API}:{port}/`,
        extra: '    limits: { requestsPerSecond: 0.01, burst: 2 }\n',
      },
    ],
  });
  idp = await devIdpFor(stack, [WIKI]);
  await stack.start();
}, 90_000);

afterAll(async () => {
  await stack?.stop();
  await idp?.close();
  await sample?.close();
});

const cli = (...args: string[]) => runCli(RELAY_BIN, [...args, '--config', stack.configPath]);

async function audit(...args: string[]): Promise<AuditView[]> {
  const res = await cli('audit', '--since', '10m', '--json', ...args);
  expect(res.code, res.stderr).toBe(0);
  return JSON.parse(res.stdout) as AuditView[];
}

/** Polls `audit` (the relay writes its batches every second) until `test` passes. */
async function auditUntil(
  test: (events: AuditView[]) => boolean,
  what: string,
  ...args: string[]
): Promise<AuditView[]> {
  let events: AuditView[] = [];
  await until(async () => test((events = await audit(...args))), what);
  return events;
}

const auditLines = (type: string) =>
  stack.relay!.lines.filter((l) => l.type === 'audit' && l.audit === type);

describe('audit', () => {
  it('a connector registered and connected once (not per tunnel)', async () => {
    const id = connectorId(stack.connectorState);
    const events = await auditUntil(
      (e) => e.some((x) => x.type === 'connector.connected'),
      'connector.connected',
      '--type',
      'connector',
    );
    expect(events.filter((e) => e.type === 'connector.connected')).toStrictEqual([
      expect.objectContaining({ connector: id, group: 'Default', actor: `connector:${id}` }),
    ]);
    expect(events.filter((e) => e.type === 'connector.registered')).toStrictEqual([
      expect.objectContaining({ connector: id, group: 'Default' }),
    ]);
  });

  it('sign-in, a refusal by assignment, a sign-out: events with user, app and client', async () => {
    const host = `${WIKI}:${stack.ports.public}`;
    const base = `https://127.0.0.1:${stack.ports.public}`;
    const alice = await signIn({ base, host, username: 'alice', password: 'alice-password' });
    expect((await request(stack, host, '/', { headers: { cookie: alice } })).status).toBe(200);
    const bob = await signIn({ base, host, username: 'bob', password: 'bob-password' });
    const refused = await request(stack, host, '/', {
      headers: { cookie: bob, accept: 'application/json' },
    });
    expect(refused.status).toBe(403);
    const signout = await request(stack, host, '/.appproxy/signout', {
      headers: { cookie: alice },
    });
    expect(signout.status).toBe(302);

    const events = await auditUntil(
      (e) => e.some((x) => x.type === 'signout'),
      'signout',
      '--app',
      'Wiki',
    );
    const of = (type: string) => events.filter((e) => e.type === type);
    expect(
      of('signin.succeeded')
        .map((e) => e.user)
        .sort(),
    ).toStrictEqual(['alice', 'bob']);
    expect(of('signin.succeeded')[0]).toMatchObject({
      app: 'Wiki',
      clientAddress: '127.0.0.1',
      correlationId: expect.any(String),
    });
    expect(of('access.refused')).toStrictEqual([
      expect.objectContaining({
        user: 'bob',
        app: 'Wiki',
        code: 'NOT_ASSIGNED',
        clientAddress: '127.0.0.1',
      }),
    ]);
    expect(of('signout')).toStrictEqual([expect.objectContaining({ user: 'alice', app: 'Wiki' })]);
    // Filters: by user, and a type prefix.
    expect((await audit('--user', 'bob', '--type', 'access')).map((e) => e.code)).toStrictEqual([
      'NOT_ASSIGNED',
    ]);
    // Each was a log line at once, with type "audit".
    expect(auditLines('access.refused')).toStrictEqual([
      expect.objectContaining({ level: 'info', user: 'bob', app: 'Wiki', code: 'NOT_ASSIGNED' }),
    ]);
    expect(auditLines('signin.succeeded')).toHaveLength(2);
  });

  it('a throttled burst is one THROTTLED event (per client and app per minute)', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await request(stack, API, '/')).status);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(5);
    const events = await auditUntil(
      (e) => e.some((x) => x.code === 'THROTTLED'),
      'THROTTLED',
      '--app',
      'Api',
    );
    expect(events).toStrictEqual([
      expect.objectContaining({
        type: 'access.refused',
        app: 'Api',
        code: 'THROTTLED',
        clientAddress: '127.0.0.1',
        detail: { scope: 'app' },
      }),
    ]);
    expect(auditLines('access.refused').filter((l) => l.code === 'THROTTLED')).toHaveLength(1);
  });

  it('callbacks with a bad state: one signin.failed per client and app a minute', async () => {
    const host = `${WIKI}:${stack.ports.public}`;
    for (let i = 0; i < 5; i++) {
      const res = await request(stack, host, `/.appproxy/callback?code=x&state=forged${i}`, {
        headers: { accept: 'application/json' },
      });
      expect(res.status).toBeGreaterThanOrEqual(400);
    }
    const events = await auditUntil(
      (e) => e.length > 0,
      'signin.failed',
      '--type',
      'signin.failed',
    );
    expect(events).toStrictEqual([
      expect.objectContaining({
        app: 'Wiki',
        clientAddress: '127.0.0.1',
        code: 'SIGN_IN_FAILED',
        detail: { reason: expect.stringMatching(/^APPPROXY_PREAUTH_/) },
      }),
    ]);
    expect(auditLines('signin.failed')).toHaveLength(1);
  });

  it('a reload by SIGHUP is admin.config.reloaded by signal:SIGHUP', async () => {
    await stack.signalReload();
    const events = await auditUntil(
      (e) => e.length > 0,
      'admin.config.reloaded',
      '--type',
      'admin.config',
    );
    expect(events).toStrictEqual([
      expect.objectContaining({
        actor: 'signal:SIGHUP',
        detail: expect.objectContaining({ ok: true, apps: 2 }),
      }),
    ]);
  });

  it('connectors delete: admin.connector.deleted by cli, then revoked and disconnected', async () => {
    const id = connectorId(stack.connectorState);
    const res = await cli('connectors', 'delete', id);
    expect(res.code, res.stderr).toBe(0);
    const events = await auditUntil(
      (e) => e.some((x) => x.type === 'connector.disconnected'),
      'connector.disconnected',
      '--type',
      'connector.disconnected',
    );
    expect(events).toStrictEqual([expect.objectContaining({ connector: id, group: 'Default' })]);
    const all = await audit();
    expect(all.filter((e) => e.type === 'admin.connector.deleted')).toStrictEqual([
      expect.objectContaining({ actor: 'cli', connector: id, group: 'Default' }),
    ]);
    expect(all.filter((e) => e.type === 'connector.revoked')).toStrictEqual([
      expect.objectContaining({ connector: id }),
    ]);
    // Newest first.
    const times = all.map((e) => e.at);
    expect([...times].sort().reverse()).toStrictEqual(times);
  });

  it('admin-token create then revoke: audited as cli, the secret nowhere', async () => {
    const created = await cli('admin-token', 'create', '--name', 'ops', '--ttl', '1d');
    expect(created.code, created.stderr).toBe(0);
    const token = created.stdout.trim();
    expect(token).toMatch(/^apx_[a-z2-7]{8}_/);
    expect((await cli('admin-token', 'revoke', 'ops')).code).toBe(0);
    const events = await audit('--type', 'admin.admin-token');
    expect(events.map((e) => [e.type, e.actor, e.detail?.name])).toStrictEqual([
      ['admin.admin-token.revoked', 'cli', 'ops'],
      ['admin.admin-token.created', 'cli', 'ops'],
    ]);
    const everything = JSON.stringify(await audit('--limit', '1000'));
    expect(everything).not.toContain(token.slice(13));
    expect(JSON.parse((await cli('admin-token', 'list', '--json')).stdout)).toStrictEqual([]);
  });
});
