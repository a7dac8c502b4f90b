import { startSampleApp } from '@appproxy/sample-app';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Stack, freePort, json, request, systemTool } from './harness.js';

/**
 * Corporate proxies, with a real one: Debian's tinyproxy, started here on loopback. The
 * connector reaches the relay through it (CONNECT) and reaches an app through it (forward
 * proxy, the app's `backendProxy`).
 */
const TINYPROXY = systemTool('tinyproxy');

type SampleApp = Awaited<ReturnType<typeof startSampleApp>>;
let sample: SampleApp;
let stack: Stack;
let proxy: ChildProcess;
let proxyPort: number;
let proxyLog: string;
let proxyDir: string;

async function startTinyproxy(dir: string): Promise<void> {
  proxyPort = await freePort();
  proxyLog = join(dir, 'tinyproxy.log');
  const conf = join(dir, 'tinyproxy.conf');
  writeFileSync(
    conf,
    [
      `Port ${proxyPort}`,
      'Listen 127.0.0.1',
      'Timeout 600',
      'Allow 127.0.0.1',
      `LogFile "${proxyLog}"`,
      'LogLevel Connect',
      'MaxClients 100',
      `PidFile "${join(dir, 'tinyproxy.pid')}"`,
      '',
    ].join('\n'),
  );
  proxy = spawn(TINYPROXY!, ['-d', '-c', conf], { stdio: 'ignore' });
  // Ready when it accepts connections.
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      import('node:net').then(({ connect }) => {
        const s = connect(proxyPort, '127.0.0.1');
        s.once('connect', () => (s.destroy(), resolve(true)));
        s.once('error', () => resolve(false));
      });
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('tinyproxy did not start');
}

const proxyLines = () => readFileSync(proxyLog, 'utf8').split('\n');

describe.skipIf(!TINYPROXY)('through a corporate proxy (tinyproxy)', () => {
  beforeAll(async () => {
    sample = await startSampleApp({ basePath: '/' });
    proxyDir = mkdtempSync(join(tmpdir(), 'appproxy-tinyproxy-'));
    await startTinyproxy(proxyDir);
    // Two apps on the same backend: one direct, one through the forward proxy.
    stack = await new Stack({
      startConnector: false,
      apps: [
        {
          name: 'Direct',
          internalUrl: `http://127.0.0.1:${sample.port}/`,
          externalUrl: 'https://direct.apps.localhost/',
        },
        {
          name: 'Proxied',
          internalUrl: `http://127.0.0.1:${sample.port}/`,
          externalUrl: 'https://proxied.apps.localhost/',
          extra: `    backendProxy: http://127.0.0.1:${proxyPort}\n`,
        },
        {
          name: 'DeadProxy',
          internalUrl: `http://127.0.0.1:${sample.port}/`,
          externalUrl: 'https://deadproxy.apps.localhost/',
          extra: `    backendProxy: http://127.0.0.1:${await freePort()}\n`,
        },
      ],
    }).start();
    await stack.registerConnector();
    // HTTPS_PROXY, as set on a corporate machine, is honoured without a flag.
    await stack.startConnector(stack.connectorState, 2, [], {
      HTTPS_PROXY: `http://127.0.0.1:${proxyPort}`,
    });
  });

  afterAll(async () => {
    await stack?.stop();
    proxy?.kill();
    if (proxy && proxy.exitCode === null) await once(proxy, 'exit');
    await sample?.close();
    rmSync(proxyDir, { recursive: true, force: true });
  });

  it('the connector reaches the relay through the proxy (HTTPS_PROXY → CONNECT)', async () => {
    const tunnelConnects = proxyLines().filter((l) =>
      l.includes(`CONNECT 127.0.0.1:${stack.ports.tunnel}`),
    );
    expect(tunnelConnects.length).toBeGreaterThanOrEqual(2);
    const res = await request(stack, 'direct.apps.localhost', '/headers');
    expect(res.status).toBe(200);
    // Direct app: the backend is reached without the proxy.
    expect((json(res).headers as Record<string, string>).via).toBeUndefined();
  });

  it('an app with backendProxy is reached through the forward proxy', async () => {
    const before = proxyLines().length;
    const res = await request(stack, 'proxied.apps.localhost', '/headers?through=proxy');
    expect(res.status).toBe(200);
    expect((json(res).headers as Record<string, string>).via).toMatch(/tinyproxy/);
    expect(proxyLines().slice(before).join('\n')).toContain(
      `GET http://127.0.0.1:${sample.port}/headers?through=proxy`,
    );
    // Bodies both ways through the forward proxy.
    const body = Buffer.alloc(300_000, 3);
    const up = await request(stack, 'proxied.apps.localhost', '/upload', {
      method: 'POST',
      body,
      headers: { 'content-length': String(body.length) },
    });
    expect(json(up)).toMatchObject({ bytes: body.length });
  });

  it('WebSocket upgrades to a proxied app go through a CONNECT tunnel of the proxy', async () => {
    const before = proxyLines().length;
    const ws = new WebSocket(`wss://127.0.0.1:${stack.ports.public}/ws`, {
      ca: stack.ca,
      servername: 'proxied.apps.localhost',
      headers: { host: 'proxied.apps.localhost' },
    });
    await once(ws, 'open');
    const reply = once(ws, 'message');
    ws.send('via proxy');
    expect(String((await reply)[0])).toBe('via proxy');
    ws.close();
    expect(proxyLines().slice(before).join('\n')).toContain(`CONNECT 127.0.0.1:${sample.port}`);
  });

  it('a forward proxy that is down is a BACKEND_UNREACHABLE page, not a hang', async () => {
    const res = await request(stack, 'deadproxy.apps.localhost', '/echo', {
      headers: { accept: 'application/json' },
    });
    expect(res.status).toBe(502);
    expect((json(res) as { error: { code: string } }).error.code).toBe('BACKEND_UNREACHABLE');
  });
});
