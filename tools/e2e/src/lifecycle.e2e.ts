import { startSampleApp } from '@appproxy/sample-app';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack, json, request } from './harness.js';

type SampleApp = Awaited<ReturnType<typeof startSampleApp>>;
let sample: SampleApp;
let stack: Stack;
const HOST = 'life.apps.localhost';

beforeAll(async () => {
  sample = await startSampleApp({ basePath: '/' });
  stack = await new Stack({
    apps: [
      {
        name: 'Life',
        internalUrl: `http://127.0.0.1:${sample.port}/`,
        externalUrl: `https://${HOST}/`,
      },
    ],
  }).start();
});

afterAll(async () => {
  await stack?.stop();
  await sample?.close();
});

describe('connector and relay lifecycle', () => {
  it('serves through the connector; readyz reports its tunnels', async () => {
    expect((await request(stack, HOST, '/echo')).status).toBe(200);
    const ready = await fetch(`http://127.0.0.1:${stack.ports.admin}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ready', tunnels: 2, connectors: 1 });
    expect((await fetch(`http://127.0.0.1:${stack.ports.admin}/healthz`)).status).toBe(200);
  });

  it('the connector survives a relay restart and the app works again', async () => {
    const connector = stack.connector!;
    const reconnectsBefore = connector.count((l) => l.msg === 'tunnel connected');
    expect(await stack.relay!.stop('SIGTERM')).toBe(0);
    await connector.waitFor((l) => l.msg === 'tunnel disconnected', 10_000, 'tunnel disconnected');
    await stack.startRelay();
    await connector.waitFor(
      () => connector.count((l) => l.msg === 'tunnel connected') >= reconnectsBefore + 2,
      15_000,
      'reconnected',
    );
    await stack.relay!.waitFor(
      (l) => l.msg === 'connector connected',
      10_000,
      'relay sees connector',
    );
    const res = await request(stack, HOST, '/echo');
    expect(res.status).toBe(200);
  });

  it('connectors list shows the connector as active (and --json)', async () => {
    const { runCli, RELAY_BIN } = await import('./harness.js');
    const res = await runCli(RELAY_BIN, [
      'connectors',
      'list',
      '--config',
      stack.configPath,
      '--json',
    ]);
    expect(res.code).toBe(0);
    const rows = JSON.parse(res.stdout) as Array<Record<string, unknown>>;
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      group: 'Default',
      state: 'active',
      capabilities: ['websocket', 'backend-tls', 'diagnose'],
    });
    const table = await runCli(RELAY_BIN, ['connectors', 'list', '--config', stack.configPath]);
    expect(table.stdout).toMatch(/^ID\s+GROUP/m);
    expect(table.stdout).toContain(String(rows[0]!.id));
  });

  it('connectors list shows the requests in flight through a connector', async () => {
    const { runCli, RELAY_BIN } = await import('./harness.js');
    const slow = Array.from({ length: 3 }, () => request(stack, HOST, '/slow?ms=8000'));
    let inFlight = 0;
    const deadline = Date.now() + 7000;
    while (inFlight !== 3 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      const res = await runCli(RELAY_BIN, [
        'connectors',
        'list',
        '--config',
        stack.configPath,
        '--json',
      ]);
      inFlight = (JSON.parse(res.stdout) as Array<{ inFlight: number }>)[0]!.inFlight;
    }
    expect(inFlight).toBe(3);
    expect((await Promise.all(slow)).map((r) => r.status)).toEqual([200, 200, 200]);
  });

  it('no connector connected → 502 CONNECTOR_UNAVAILABLE at once; SIGTERM drains and exits 0', async () => {
    expect(await stack.connector!.stop('SIGTERM')).toBe(0);
    await stack.relay!.waitFor(
      (l) => l.msg === 'connector disconnected',
      10_000,
      'relay sees disconnect',
    );
    // Both tunnels must be gone before the relay can say "no connector".
    await new Promise((r) => setTimeout(r, 200));
    const started = Date.now();
    const res = await request(stack, HOST, '/echo', { headers: { accept: 'application/json' } });
    expect(res.status).toBe(502);
    expect((json(res) as { error: { code: string } }).error.code).toBe('CONNECTOR_UNAVAILABLE');
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
