/**
 * "Test application" end to end: `appproxy-relay apps test` asks the running relay's admin
 * API, which runs the checks through the real connector (resolve, connect, TLS, GET).
 */
import { createDevCertificates } from '@appproxy/pki';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttps, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RELAY_BIN, Stack, connectorId, freePort, runCli, until } from './harness.js';

let stack: Stack;
const servers: Server[] = [];

async function httpsApp(certPath: string, keyPath: string): Promise<number> {
  const server = createHttps(
    { cert: readFileSync(certPath), key: readFileSync(keyPath) },
    (_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end('hello'),
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  servers.push(server);
  return (server.address() as AddressInfo).port;
}

beforeAll(async () => {
  stack = new Stack({ apps: [] });
  // Certificates of the stack's dev CA: the app's own, and one for another name.
  const good = await createDevCertificates({
    dir: stack.tlsDir,
    hosts: ['localhost'],
    name: 'app',
  });
  const wrong = await createDevCertificates({
    dir: stack.tlsDir,
    hosts: ['wrong.example'],
    name: 'wrong',
  });
  const healthy = await httpsApp(good.certPath, good.keyPath);
  const wrongName = await httpsApp(wrong.certPath, wrong.keyPath);
  const stopped = await freePort();
  const ca = `    backendTls: { ca: ${good.caCertPath} }\n`;
  stack.configure({
    apps: [
      {
        name: 'Healthy',
        internalUrl: `https://localhost:${healthy}/`,
        externalUrl: 'https://healthy.apps.localhost:{port}/',
        extra: ca,
      },
      {
        name: 'Stopped',
        internalUrl: `http://127.0.0.1:${stopped}/`,
        externalUrl: 'https://stopped.apps.localhost:{port}/',
      },
      {
        name: 'WrongName',
        internalUrl: `https://localhost:${wrongName}/`,
        externalUrl: 'https://wrong.apps.localhost:{port}/',
        extra: ca,
      },
    ],
  });
  await stack.start();
});

afterAll(async () => {
  await stack?.stop();
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
});

const appsTest = (...args: string[]) =>
  runCli(RELAY_BIN, ['apps', 'test', ...args, '--config', stack.configPath]);

/** The RESULT column of a check's row in the table. */
const resultOf = (stdout: string, check: string) =>
  new RegExp(`^${check}\\s+(pass|fail|skip|warn)\\s`, 'm').exec(stdout)?.[1];

describe('appproxy-relay apps test', () => {
  it('a healthy app: exit 0, every check passes through the connector', async () => {
    const res = await appsTest('Healthy');
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/^App Healthy: PASS/);
    expect(res.stdout).toContain(`Connector ${connectorId(stack.connectorState)}`);
    expect(res.stdout).toMatch(/^CHECK\s+RESULT\s+TIME\s+DETAIL$/m);
    for (const check of ['resolve', 'connect', 'tls', 'http'])
      expect(resultOf(res.stdout, check), check).toBe('pass');
    expect(resultOf(res.stdout, 'sso')).toBe('skip');
    expect(res.stdout).not.toContain('FIX');
  });

  it('a stopped backend: exit 1, connect fails with a fix line', async () => {
    const res = await appsTest('Stopped');
    expect(res.code).toBe(1);
    expect(res.stdout).toMatch(/^App Stopped: FAIL/);
    expect(resultOf(res.stdout, 'connect')).toBe('fail');
    expect(resultOf(res.stdout, 'http')).toBe('skip');
    expect(res.stdout).toMatch(/^FIX connect: nothing listens on 127\.0\.0\.1:\d+/m);
  });

  it('an https backend with a certificate for another name: tls fails', async () => {
    const res = await appsTest('WrongName');
    expect(res.code).toBe(1);
    expect(resultOf(res.stdout, 'tls')).toBe('fail');
    expect(res.stdout).toMatch(/^FIX tls: the certificate does not name localhost/m);
  });

  it('--json prints the AppTestResult', async () => {
    const res = await appsTest('Healthy', '--json');
    expect(res.code).toBe(0);
    const result = JSON.parse(res.stdout) as {
      app: string;
      ok: boolean;
      at: string;
      connectors: Array<{
        id: string;
        hostname?: string;
        ok: boolean;
        checks: Array<{ name: string; ok: boolean; ms?: number; detail: string }>;
      }>;
    };
    expect(result).toMatchObject({ app: 'Healthy', ok: true });
    expect(Number.isNaN(Date.parse(result.at))).toBe(false);
    expect(result.connectors).toHaveLength(1);
    const [c] = result.connectors;
    expect(c).toMatchObject({ id: connectorId(stack.connectorState), ok: true });
    expect(c!.checks.map((k) => k.name)).toEqual(['resolve', 'connect', 'tls', 'sso', 'http']);
    const tls = c!.checks.find((k) => k.name === 'tls') as unknown as {
      data: Record<string, unknown>;
    };
    expect(tls.data).toMatchObject({
      nameMatch: true,
      chain: 'ok',
      issuer: 'AppProxy Development CA',
    });
    const failed = JSON.parse((await appsTest('Stopped', '--json')).stdout) as typeof result;
    expect(failed.ok).toBe(false);
    expect(failed.connectors[0]!.checks.find((k) => k.name === 'connect')).toMatchObject({
      ok: false,
    });
  });

  it('--connector unknown, or an unknown app: exit 2 with NOT_FOUND', async () => {
    const conn = await appsTest('Healthy', '--connector', 'no-such-connector');
    expect(conn.code).toBe(2);
    expect(conn.stderr).toMatch(/NOT_FOUND: no connector no-such-connector/);
    const app = await appsTest('Nope');
    expect(app.code).toBe(2);
    expect(app.stderr).toMatch(/NOT_FOUND: no app named "Nope"/);
    const named = await appsTest('Healthy', '--connector', connectorId(stack.connectorState));
    expect(named.code).toBe(0);
  });

  it('each test is audited as admin.app.tested; the CLI’s own token is revoked after', async () => {
    type Event = { type: string; app?: string; actor?: string; detail?: { ok?: boolean } };
    let events: Event[] = [];
    await until(async () => {
      const res = await runCli(RELAY_BIN, [
        'audit',
        '--since',
        '10m',
        '--type',
        'admin.app.tested',
        '--json',
        '--config',
        stack.configPath,
      ]);
      events = JSON.parse(res.stdout || '[]') as Event[];
      return events.some((e) => e.app === 'Stopped');
    }, 'the audit events of the app tests');
    expect(events.find((e) => e.app === 'Healthy')).toMatchObject({
      actor: expect.stringMatching(/^token:cli-apps-test-[0-9a-f]{6}$/),
      detail: { ok: true },
    });
    // The CLI's own short-lived tokens are admin actions too: made and revoked, by `cli`.
    const made = await runCli(RELAY_BIN, [
      'audit',
      '--since',
      '10m',
      '--type',
      'admin.admin-token.',
      '--json',
      '--config',
      stack.configPath,
    ]);
    const tokenEvents = JSON.parse(made.stdout) as Event[];
    for (const type of ['admin.admin-token.created', 'admin.admin-token.revoked'])
      expect(
        tokenEvents.filter((e) => e.type === type && e.actor === 'cli').length,
      ).toBeGreaterThan(0);
    expect(events.find((e) => e.app === 'Stopped')).toMatchObject({ detail: { ok: false } });
    const tokens = await runCli(RELAY_BIN, [
      'admin-token',
      'list',
      '--json',
      '--config',
      stack.configPath,
    ]);
    expect(tokens.code).toBe(0);
    expect(JSON.parse(tokens.stdout)).toEqual([]);
  });

  it('without relay.adminListen: exit 2 saying so', async () => {
    const other = join(stack.dir, 'no-admin.yaml');
    writeFileSync(
      other,
      readFileSync(stack.configPath, 'utf8').replace(/^ {2}adminListen:.*\n/m, ''),
    );
    const res = await runCli(RELAY_BIN, ['apps', 'test', 'Healthy', '--config', other]);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/relay\.adminListen is not set/);
  });
});
