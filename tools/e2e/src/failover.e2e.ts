import { startSampleApp } from '@appproxy/sample-app';
import { once } from 'node:events';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type LoggedProcess, Stack, connectorId, request } from './harness.js';
import { CuttableConnectProxy, LoadGenerator, type Outcome } from './traffic.js';

type SampleApp = Awaited<ReturnType<typeof startSampleApp>>;
let sample: SampleApp;
let stack: Stack;
const HOST = 'ha.apps.localhost';
const cleanups: Array<() => Promise<void>> = [];

beforeEach(async () => {
  sample = await startSampleApp({ basePath: '/' });
  stack = await new Stack({
    startConnector: false,
    apps: [
      {
        name: 'HA',
        internalUrl: `http://127.0.0.1:${sample.port}/`,
        externalUrl: `https://${HOST}/`,
      },
    ],
  }).start();
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await stack?.stop();
  await sample?.close();
});

/** Registers and starts connectors c0…cN-1; returns processes and ids. */
async function connectors(n: number, extraArgs: string[] = []) {
  const started: Array<{ proc: LoggedProcess; id: string; dir: string }> = [];
  for (let i = 0; i < n; i++) {
    const dir = join(stack.dir, `c${i}`);
    await stack.registerConnector(dir);
    const proc = await stack.startConnector(dir, 2, extraArgs);
    started.push({ proc, id: connectorId(dir), dir });
  }
  return started;
}

/** GETs and POSTs with a body, mixed: a load ops would see. */
const mixed = (i: number) =>
  i % 3 === 0
    ? { method: 'POST', path: '/upload', body: Buffer.alloc(32 * 1024, i % 251) }
    : { method: 'GET', path: '/echo' };

const failed = (outcomes: Outcome[]) =>
  outcomes.filter((o) => o.error !== undefined || o.status !== 200);

describe('high availability', () => {
  it('one broken tunnel TCP connection never takes the connector out', async () => {
    const proxy = await new CuttableConnectProxy().start();
    cleanups.push(() => proxy.stop());
    await connectors(1, ['--outbound-proxy', proxy.url]);
    expect(proxy.tunnels.size).toBe(2);
    const load = new LoadGenerator(stack, { host: HOST, concurrency: 4 }).start();
    await load.completed(100);
    proxy.cutOne();
    await load.completed(200);
    const outcomes = await load.stop();
    // GETs in flight on the cut tunnel are retried on the other one; POSTs with a body are
    // not (they may have reached the backend), so this load is GET only.
    expect(failed(outcomes)).toEqual([]);
    // And the cut tunnel comes back by itself.
    await stack.connector!.waitFor(
      () => stack.connector!.count((l) => l.msg === 'tunnel connected') >= 3,
      10_000,
      'tunnel reconnected',
    );
  });

  it('SIGKILL under load: in-flight requests end with 502 CONNECTOR_LOST within 1 s, then zero errors', async () => {
    const [victim] = await connectors(2);
    const load = new LoadGenerator(stack, { host: HOST, concurrency: 6 }).start();
    await load.completed(150);
    // Slow POSTs with a body on both connectors: the victim's cannot be retried safely.
    const slow = Array.from({ length: 6 }, () => {
      const entry = {
        done: false,
        at: 0,
        res: undefined as Awaited<ReturnType<typeof request>> | undefined,
      };
      void request(stack, HOST, '/slow?ms=5000', {
        method: 'POST',
        body: 'x'.repeat(1000),
        headers: { accept: 'application/json', 'content-length': '1000' },
      }).then((res) => Object.assign(entry, { done: true, at: Date.now(), res }));
      return entry;
    });
    const arrived = () => sample.requests.filter((r) => r.rawUrl.startsWith('/slow')).length;
    while (arrived() < 6) await new Promise((r) => setTimeout(r, 20));
    const killedAt = Date.now();
    victim!.proc.child.kill('SIGKILL');
    await stack.relay!.waitFor(
      (l) =>
        l.msg === 'connector disconnected' && l.connectorId === victim!.id && l.tunnelsLeft === 0,
      5000,
      'victim gone',
    );
    const detectedAt = Date.now();
    await load.completed(300);
    const outcomes = await load.stop();
    // GETs in flight on the victim were retried on the survivor: no GET failed at all,
    // before or after detection.
    expect(outcomes.filter((o) => o.startedAt > detectedAt).length).toBeGreaterThan(100);
    expect(failed(outcomes)).toEqual([]);
    // The victim's slow POSTs ended at once with CONNECTOR_LOST; the survivor's still run.
    await new Promise((r) => setTimeout(r, Math.max(0, killedAt + 1500 - Date.now())));
    const ended = slow.filter((e) => e.done);
    expect(ended.length).toBeGreaterThan(0);
    expect(ended.length).toBeLessThan(6);
    for (const e of ended) {
      expect(e.res!.status).toBe(502);
      expect(JSON.parse(e.res!.body.toString()).error.code).toBe('CONNECTOR_LOST');
      expect(e.at - killedAt).toBeLessThan(1000);
    }
    // …and finish normally.
    while (slow.some((e) => !e.done)) await new Promise((r) => setTimeout(r, 50));
    for (const e of slow.filter((x) => !ended.includes(x))) {
      expect(e.res!.status).toBe(200);
      expect(e.res!.body.toString()).toBe('slow done (1000 bytes)');
    }
  });

  it('SIGSTOP (a silent connector) is found by PING timeout within 2 s; requests go to the survivor', async () => {
    const [frozen] = await connectors(2);
    const load = new LoadGenerator(stack, { host: HOST, concurrency: 4 }).start();
    await load.completed(100);
    const stoppedAt = Date.now();
    frozen!.proc.child.kill('SIGSTOP');
    cleanups.push(async () => void frozen!.proc.child.kill('SIGCONT'));
    const detected = await stack.relay!.waitFor(
      (l) =>
        l.msg === 'connector disconnected' &&
        l.connectorId === frozen!.id &&
        l.code === 'APPPROXY_TUNNEL_PING_TIMEOUT' &&
        l.tunnelsLeft === 0,
      5000,
      'frozen connector detected',
    );
    // When the relay decided, by its own log line's time (not when this process read the
    // line from the pipe, which a busy machine delays).
    expect(Date.parse(String(detected.ts)) - stoppedAt).toBeLessThanOrEqual(2000);
    await load.completed(150);
    const outcomes = await load.stop();
    // Requests caught on the frozen connector were GETs: retried on the survivor.
    expect(failed(outcomes)).toEqual([]);
  });

  it('rolling restart of every connector under load: zero failed requests; WebSockets finish', async () => {
    const group = await connectors(2);
    const load = new LoadGenerator(stack, { host: HOST, concurrency: 6, next: mixed }).start();
    await load.completed(100);
    // A WebSocket open during the drain of its connector keeps working until it closes.
    const ws = new WebSocket(`wss://127.0.0.1:${stack.ports.public}/ws`, {
      ca: stack.ca,
      servername: HOST,
      headers: { host: HOST },
    });
    await once(ws, 'open');
    const upgraded = await stack.relay!.waitFor((l) => l.msg === 'upgraded', 5000, 'upgraded');
    const wsConnector = group.find((c) => c.id === upgraded.connector)!;
    for (const member of [wsConnector, ...group.filter((c) => c !== wsConnector)]) {
      const exited = member.proc.stop('SIGTERM');
      if (member === wsConnector) {
        // Draining: the WebSocket still echoes, and the connector waits for it.
        await member.proc.waitFor((l) => l.msg === 'connector draining', 5000, 'draining');
        const reply = once(ws, 'message');
        ws.send('still here');
        expect(String((await reply)[0])).toBe('still here');
        ws.close();
      }
      expect(await exited).toBe(0);
      member.proc = await stack.startConnector(member.dir);
      await load.completed(60);
    }
    const outcomes = await load.stop();
    expect(outcomes.length).toBeGreaterThan(250);
    expect(outcomes.some((o) => o.method === 'POST')).toBe(true);
    expect(failed(outcomes)).toEqual([]);
  });
});

describe('relay restart', () => {
  it('SIGTERM drains requests in flight; connectors are back within 5 s of the relay', async () => {
    await connectors(2);
    const inFlight = request(stack, HOST, '/slow?ms=1500');
    await new Promise((r) => setTimeout(r, 300));
    const exit = stack.relay!.stop('SIGTERM');
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('slow done');
    expect(await exit).toBe(0);
    // Down long enough for the connectors' backoff to reach its cap.
    await new Promise((r) => setTimeout(r, 4000));
    await stack.startRelay();
    const back = Date.now();
    let status = 0;
    while (status !== 200 && Date.now() - back < 10_000) {
      status = (await request(stack, HOST, '/echo', { headers: { accept: 'application/json' } }))
        .status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 50));
    }
    expect(status).toBe(200);
    expect(Date.now() - back).toBeLessThanOrEqual(5000);
  });
});
