import { startSampleApp } from '@appproxy/sample-app';
import { once } from 'node:events';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { RELAY_BIN, Stack, connectorId, json, request, runCli } from './harness.js';
import { LoadGenerator } from './traffic.js';

type SampleApp = Awaited<ReturnType<typeof startSampleApp>>;
let sample: SampleApp;
let stack: Stack;
const ids: Record<string, string> = {};

/** Default: a1, a2, a3 (a3 without WebSocket); Berlin: b1. */
beforeAll(async () => {
  sample = await startSampleApp({ basePath: '/' });
  const internal = `http://127.0.0.1:${sample.port}/`;
  stack = await new Stack({
    groups: ['Default', 'Berlin'],
    startConnector: false,
    apps: [
      { name: 'Spread', internalUrl: internal, externalUrl: 'https://spread.apps.localhost/' },
      {
        name: 'Berlin',
        internalUrl: internal,
        externalUrl: 'https://berlin.apps.localhost/',
        extra: '    connectorGroup: Berlin\n',
      },
      {
        name: 'Sticky',
        internalUrl: internal,
        externalUrl: 'https://sticky.apps.localhost/',
        extra: '    sticky: session\n',
      },
      {
        name: 'ByAddress',
        internalUrl: internal,
        externalUrl: 'https://byaddress.apps.localhost/',
        extra: '    sticky: clientAddress\n',
      },
    ],
  }).start();
  for (const [name, group] of [
    ['a1', 'Default'],
    ['a2', 'Default'],
    ['a3', 'Default'],
    ['b1', 'Berlin'],
  ] as const) {
    const dir = join(stack.dir, name);
    await stack.registerConnector(dir, group);
    await stack.startConnector(dir, 2, name === 'a3' ? ['--no-websocket'] : []);
    ids[name] = connectorId(dir);
  }
});

afterAll(async () => {
  await stack?.stop();
  await sample?.close();
});

/** Which connector served each correlation id, from the relay's request log. */
function servedBy(correlationIds: string[]): string[] {
  const byId = new Map(
    stack.relay!.lines.filter((l) => l.msg === 'request').map((l) => [l.requestId, l.connector]),
  );
  return correlationIds.map((id) => String(byId.get(id)));
}

async function waitLogged(correlationIds: string[]): Promise<void> {
  const wanted = new Set(correlationIds);
  await stack.relay!.waitFor(
    () =>
      stack.relay!.lines.filter((l) => l.msg === 'request' && wanted.has(String(l.requestId)))
        .length === wanted.size,
    10_000,
    'request log lines',
  );
}

describe('connector groups', () => {
  it('a request for an app only ever reaches a connector of its group', async () => {
    const done = await new LoadGenerator(stack, {
      host: 'berlin.apps.localhost',
      concurrency: 6,
      maxRequests: 60,
    }).run();
    expect(done).toHaveLength(60);
    expect(done.every((o) => o.status === 200)).toBe(true);
    const correlation = done.map((o) => o.correlationId!);
    await waitLogged(correlation);
    expect(new Set(servedBy(correlation))).toEqual(new Set([ids.b1]));
  });

  it('spreads load over the three connectors of a group within ±20 %', async () => {
    // Requests that each take the backend 20 ms, so what decides is the relay's choice, not
    // which connector process the shared CPU happens to schedule first.
    const outcomes = await new LoadGenerator(stack, {
      host: 'spread.apps.localhost',
      concurrency: 12,
      maxRequests: 600,
      next: () => ({ method: 'GET', path: '/slow?ms=20' }),
    }).run();
    expect(outcomes).toHaveLength(600);
    expect(outcomes.every((o) => o.status === 200)).toBe(true);
    const correlation = outcomes.map((o) => o.correlationId!);
    await waitLogged(correlation);
    const counts = new Map<string, number>();
    for (const c of servedBy(correlation)) counts.set(c, (counts.get(c) ?? 0) + 1);
    expect(new Set(counts.keys())).toEqual(new Set([ids.a1, ids.a2, ids.a3]));
    for (const [connector, n] of counts) {
      expect(n, connector).toBeGreaterThanOrEqual(160);
      expect(n, connector).toBeLessThanOrEqual(240);
    }
  });

  it('sticky: session keeps a browser session on one connector; new sessions spread', async () => {
    const first = await request(stack, 'sticky.apps.localhost', '/echo');
    const setCookie = first.headers['set-cookie'] ?? [];
    // The app's own three cookies, plus the relay's affinity cookie.
    expect(setCookie).toHaveLength(4);
    const cookie = setCookie.find((c) => c.startsWith('__Host-'))!.split(';')[0]!;
    expect(cookie).toMatch(/^__Host-appproxy_affinity=[A-Za-z0-9_-]{22}$/);
    // The backend never sees the relay's cookie.
    expect((json(first).headers as Record<string, string>).cookie).toBeUndefined();
    const again: string[] = [];
    for (let i = 0; i < 20; i++) {
      const res = await request(stack, 'sticky.apps.localhost', '/echo', {
        headers: { cookie: `${cookie}; app=1` },
      });
      expect(res.headers['set-cookie']?.some((c) => c.startsWith('__Host-'))).toBe(false);
      expect((json(res).headers as Record<string, string>).cookie).toBe('app=1');
      again.push(String(res.headers['x-appproxy-correlation-id']));
    }
    await waitLogged(again);
    expect(new Set(servedBy(again)).size).toBe(1);
    // Fresh sessions land on more than one connector.
    const fresh: string[] = [];
    for (let i = 0; i < 30; i++) {
      const res = await request(stack, 'sticky.apps.localhost', '/echo');
      fresh.push(String(res.headers['x-appproxy-correlation-id']));
    }
    await waitLogged(fresh);
    expect(new Set(servedBy(fresh)).size).toBeGreaterThan(1);
  });

  it('sticky: clientAddress keeps a client address on one connector', async () => {
    const seen: string[] = [];
    for (let i = 0; i < 20; i++) {
      const res = await request(stack, 'byaddress.apps.localhost', '/echo');
      expect(res.status).toBe(200);
      seen.push(String(res.headers['x-appproxy-correlation-id']));
    }
    await waitLogged(seen);
    expect(new Set(servedBy(seen)).size).toBe(1);
  });

  it('WebSocket upgrades go only to connectors that declare the capability', async () => {
    const upgradedBefore = stack.relay!.count((l) => l.msg === 'upgraded');
    for (let i = 0; i < 6; i++) {
      const ws = new WebSocket(`wss://127.0.0.1:${stack.ports.public}/ws`, {
        ca: stack.ca,
        servername: 'spread.apps.localhost',
        headers: { host: 'spread.apps.localhost' },
      });
      await once(ws, 'open');
      const reply = once(ws, 'message');
      ws.send(`hello ${i}`);
      expect(String((await reply)[0])).toBe(`hello ${i}`);
      ws.close();
      await once(ws, 'close');
    }
    await stack.relay!.waitFor(
      () => stack.relay!.count((l) => l.msg === 'upgraded') >= upgradedBefore + 6,
      5000,
      'upgrade logs',
    );
    const used = stack
      .relay!.lines.filter((l) => l.msg === 'upgraded')
      .slice(upgradedBefore)
      .map((l) => l.connector);
    expect(used).not.toContain(ids.a3);
    expect(new Set(used).size).toBe(2);
  });

  it('connectors list says which connector lacks WebSocket (and shows every column)', async () => {
    const res = await runCli(RELAY_BIN, [
      'connectors',
      'list',
      '--config',
      stack.configPath,
      '--json',
    ]);
    expect(res.code).toBe(0);
    const rows = JSON.parse(res.stdout) as Array<Record<string, unknown>>;
    const byId = new Map(rows.map((r) => [r.id, r]));
    expect(byId.get(ids.a3)).toMatchObject({
      group: 'Default',
      state: 'active',
      tunnels: 2,
      capabilities: ['backend-tls', 'diagnose'],
      kerberos: false,
      missingCapabilities: ['websocket'],
    });
    // One relay: its tunnels are all at the instance named after this host.
    expect(byId.get(ids.a3)?.instances).toStrictEqual([
      expect.objectContaining({ name: hostname(), tunnels: 2 }),
    ]);
    expect(byId.get(ids.b1)).toMatchObject({
      group: 'Berlin',
      missingCapabilities: [],
      capabilities: ['websocket', 'backend-tls', 'diagnose'],
    });
    for (const row of rows) {
      expect(row.version).toMatch(/^\d+\.\d+\.\d+/);
      expect(String(row.hostname).length).toBeGreaterThan(0);
      expect(typeof row.inFlight).toBe('number');
      expect(Date.parse(String(row.lastSeen))).toBeGreaterThan(Date.now() - 60_000);
    }
    const table = await runCli(RELAY_BIN, ['connectors', 'list', '--config', stack.configPath]);
    expect(table.stdout.split('\n')[0]).toMatch(
      /^ID\s+GROUP\s+HOST\s+VERSION\s+STATE\s+LAST SEEN\s+TUNNELS\s+IN-FLIGHT\s+INSTANCES\s+KERBEROS\s+LACKS$/,
    );
    expect(table.stdout).toMatch(
      new RegExp(`^${ids.a3}\\s.*\\s${hostname()}\\(2\\)\\s.*\\swebsocket$`, 'm'),
    );
  });

  it('a group whose only connector cannot upgrade answers 502 UPGRADE_UNSUPPORTED', async () => {
    // Stop a1 and a2: only a3 (no WebSocket) is left in Default.
    const [a1, a2] = stack.connectors;
    await Promise.all([a1!.stop('SIGTERM'), a2!.stop('SIGTERM')]);
    await stack.relay!.waitFor(
      () =>
        stack.relay!.count(
          (l) =>
            l.msg === 'connector disconnected' &&
            (l.connectorId === ids.a1 || l.connectorId === ids.a2) &&
            l.tunnelsLeft === 0,
        ) >= 2,
      10_000,
      'a1 and a2 gone',
    );
    const res = await request(stack, 'spread.apps.localhost', '/ws', {
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
        accept: 'application/json',
      },
    }).catch((err: Error) => err);
    expect(res).not.toBeInstanceOf(Error);
    const r = res as Awaited<ReturnType<typeof request>>;
    expect(r.status).toBe(502);
    expect((json(r) as { error: { code: string } }).error.code).toBe('UPGRADE_UNSUPPORTED');
    // Plain requests still work through a3.
    expect((await request(stack, 'spread.apps.localhost', '/echo')).status).toBe(200);
  });
});
