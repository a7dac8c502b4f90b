import { startSampleApp } from '@appproxy/sample-app';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RELAY_BIN, Stack, connectorId, json, request, runCli } from './harness.js';
import { LoadGenerator } from './traffic.js';

type SampleApp = Awaited<ReturnType<typeof startSampleApp>>;
let sample: SampleApp;
let stack: Stack | undefined;
const HOST = 'certs.apps.localhost';

beforeEach(async () => {
  sample = await startSampleApp({ basePath: '/' });
});

afterEach(async () => {
  await stack?.stop();
  stack = undefined;
  await sample?.close();
});

async function startStack(relayExtra: string) {
  stack = await new Stack({
    startConnector: false,
    relayExtra,
    apps: [
      {
        name: 'Certs',
        internalUrl: `http://127.0.0.1:${sample.port}/`,
        externalUrl: `https://${HOST}/`,
      },
    ],
  }).start();
  return stack;
}

async function list(s: Stack): Promise<Array<Record<string, unknown>>> {
  const res = await runCli(RELAY_BIN, ['connectors', 'list', '--config', s.configPath, '--json']);
  expect(res.code).toBe(0);
  return JSON.parse(res.stdout) as Array<Record<string, unknown>>;
}

const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256;

describe('revocation', () => {
  it('connectors delete closes its tunnels at once and it can never connect again', async () => {
    const s = await startStack('');
    const dir = join(s.dir, 'doomed');
    await s.registerConnector(dir);
    const connector = await s.startConnector(dir);
    const id = connectorId(dir);
    expect((await request(s, HOST, '/echo')).status).toBe(200);

    const res = await runCli(RELAY_BIN, ['connectors', 'delete', id, '--config', s.configPath]);
    expect(res.code).toBe(0);
    // At once: nothing else closes a healthy connector's tunnels within these 5 s (no
    // reconnect, no ping timeout), and the close says it was the revocation.
    const closed = await s.relay!.waitFor(
      (l) => l.msg === 'connector disconnected' && l.connectorId === id && l.tunnelsLeft === 0,
      5000,
      'tunnels closed',
    );
    expect(closed.code).toBe('APPPROXY_TUNNEL_UNAUTHORIZED');
    const after = await request(s, HOST, '/echo', { headers: { accept: 'application/json' } });
    expect(after.status).toBe(502);
    expect((json(after) as { error: { code: string } }).error.code).toBe('CONNECTOR_UNAVAILABLE');
    // It tries again, the relay refuses its certificate and tells it: it stops (exit 3).
    await s.relay!.waitFor(
      (l) =>
        l.msg === 'tunnel refused' &&
        String(l.reason).includes(id) &&
        String(l.reason).includes('revoked'),
      10_000,
      'reconnect refused',
    );
    await connector.waitFor((l) => l.msg === 'revoked: register again', 10_000, 'revoked');
    expect(await connector.exited).toBe(3);
    expect((await list(s)).find((r) => r.id === id)).toMatchObject({ state: 'revoked' });
    // Unknown ids are a clear error.
    const unknown = await runCli(RELAY_BIN, [
      'connectors',
      'delete',
      'nope',
      '--config',
      s.configPath,
    ]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no connector with id nope');
  });
});

describe('inactive connectors', () => {
  it('are removed after inactiveConnectorRetention without manual action', async () => {
    const s = await startStack('  inactiveConnectorRetention: 5s\n');
    const [idle, gone, live] = ['never-started', 'stopped', 'live'].map((n) => join(s.dir, n));
    for (const dir of [idle!, gone!, live!]) await s.registerConnector(dir);
    // Each was registered (the relay says so; a list now could already miss one when the
    // machine is slow, 5 s being short).
    for (const dir of [idle!, gone!, live!])
      await s.relay!.waitFor(
        (l) => l.msg === 'connector registered' && l.connectorId === connectorId(dir),
        5_000,
        'connector registered',
      );
    const proc = await s.startConnector(gone);
    await s.startConnector(live);
    expect(await proc.stop('SIGTERM')).toBe(0);
    await s.relay!.waitFor(
      (l) => l.msg === 'connector removed' && l.connectorId === connectorId(gone!),
      15_000,
      'stopped connector removed',
    );
    await s.relay!.waitFor(
      (l) => l.msg === 'connector removed' && l.connectorId === connectorId(idle!),
      15_000,
      'never-started connector removed',
    );
    // The connected one stays, however long it runs.
    expect((await list(s)).map((r) => r.id)).toEqual([connectorId(live!)]);
  });
});

describe('renewal', () => {
  it('renews the connector certificate over the tunnel before expiry, dropping no request', async () => {
    // 9 s certificates: renewed when 3 s are left, i.e. ~6 s after registration.
    const s = await startStack('  connectorCertValidity: 9s\n');
    const dir = join(s.dir, 'renewing');
    await s.registerConnector(dir);
    const original = readFileSync(join(dir, 'connector.pem'), 'utf8');
    const originalKey = readFileSync(join(dir, 'connector-key.pem'), 'utf8');
    const connector = await s.startConnector(dir);
    const load = new LoadGenerator(s, {
      host: HOST,
      concurrency: 4,
      pauseMs: 5,
      next: (i) =>
        i % 4 === 0
          ? { method: 'POST', path: '/upload', body: Buffer.alloc(20_000, 7) }
          : { method: 'GET', path: '/echo' },
    }).start();
    await connector.waitFor((l) => l.msg === 'certificate renewed', 15_000, 'renewed');
    await s.relay!.waitFor((l) => l.msg === 'connector certificate renewed', 5000, 'relay log');
    // Tunnels move to the new certificate one at a time.
    await connector.waitFor(
      () => connector.count((l) => l.msg === 'tunnel connected' && l.rotated === true) >= 2,
      10_000,
      'tunnels rotated',
    );
    const renewed = readFileSync(join(dir, 'connector.pem'), 'utf8');
    expect(fingerprint(renewed)).not.toBe(fingerprint(original));
    // A new key too, made on the connector; still 0600.
    expect(readFileSync(join(dir, 'connector-key.pem'), 'utf8')).not.toBe(originalKey);
    // Past the original certificate's end, everything still works…
    const originalEnd = Date.parse(new X509Certificate(original).validTo);
    while (Date.now() < originalEnd + 500) await new Promise((r) => setTimeout(r, 100));
    const outcomes = await load.stop();
    expect(outcomes.length).toBeGreaterThan(100);
    expect(outcomes.filter((o) => o.status !== 200 || o.error)).toEqual([]);
    // …and a restarted connector connects with the renewed certificate.
    expect(await connector.stop('SIGTERM')).toBe(0);
    await s.startConnector(dir);
    expect((await request(s, HOST, '/echo')).status).toBe(200);
    const row = (await list(s)).find((r) => r.id === connectorId(dir))!;
    expect(Date.parse(String(row.certificateExpires))).toBeGreaterThan(originalEnd);
  });
});
