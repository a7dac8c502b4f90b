import { startSampleApp } from '@appproxy/sample-app';
import { once } from 'node:events';
import WebSocket from 'ws';
import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RELAY_BIN, Stack, connectorId, request, runCli, until } from './harness.js';

// relay.workers: 2 — a primary and two relay processes sharing the public port. Each worker
// is a relay instance with its own tunnel port; the one connector keeps tunnels to both, so
// whichever worker accepts a request reaches it.

type SampleApp = Awaited<ReturnType<typeof startSampleApp>>;
let sample: SampleApp;
let stack: Stack;
const APP = 'workers.apps.localhost';
const MAINT = 'maint.apps.localhost';

const relay = () => stack.relay!;
const admin = (path: string) => fetch(`http://127.0.0.1:${stack.ports.admin}${path}`);
const workerPids = (): number[] => {
  const listening = relay().lines.find((l) => l.msg === 'relay listening')!;
  return (listening.workers as Array<{ pid: number }>).map((w) => w.pid);
};
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
/** Log lines of requests, by the worker that answered them. */
const servedBy = (path: string) => {
  const by = [0, 0];
  for (const l of relay().lines)
    if (l.msg === 'request' && l.path === path) by[l.worker as number]! += 1;
  return by;
};
/** Connects to worker 1's tunnel port (tunnelListen.port + 1) once it listens. */
const connectedToWorker1 = (id: string) =>
  relay().count((l) => l.msg === 'connector connected' && l.connectorId === id && l.worker === 1);

async function metric(series: string): Promise<number> {
  const text = await (await admin('/metrics')).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : Number.NaN;
}

beforeAll(async () => {
  sample = await startSampleApp({ basePath: '/' });
  stack = await new Stack({
    workers: 2,
    apps: [
      {
        name: 'Sample',
        internalUrl: `http://127.0.0.1:${sample.port}/`,
        externalUrl: `https://${APP}/`,
      },
      {
        name: 'Maint',
        internalUrl: `http://127.0.0.1:${sample.port}/`,
        externalUrl: `https://${MAINT}/`,
        extra: '    maintenanceMode: true\n',
      },
    ],
  }).start();
  // One connector, registered at worker 0: the hello names both workers (instances), and it
  // keeps tunnels to each.
  const id = connectorId(stack.connectorState);
  await relay().waitFor(() => connectedToWorker1(id) >= 2, 20_000, 'worker 1 tunnels');
}, 60_000);

afterAll(async () => {
  await stack?.stop();
  await sample?.close();
});

describe('relay.workers: 2', () => {
  it('two worker processes serve the public port; metrics are their sum', async () => {
    const pids = workerPids();
    expect(new Set(pids).size).toBe(2);
    expect(pids).not.toContain(relay().pid);
    for (let i = 0; i < 40; i++) expect((await request(stack, APP, '/echo')).status).toBe(200);
    await until(() => servedBy('/echo')[0]! + servedBy('/echo')[1]! === 40, 'request lines');
    const [w0, w1] = servedBy('/echo');
    expect(w0).toBeGreaterThan(0);
    expect(w1).toBeGreaterThan(0);
    expect(await metric('appproxy_requests_total{app="Sample",status="200"}')).toBe(40);
    expect(await metric('appproxy_relay_workers{state="ready"}')).toBe(2);
    expect((await admin('/readyz')).status).toBe(200);
  });

  it('WebSockets through either worker reach the connector', async () => {
    const upgradedBy = () => {
      const by = [0, 0];
      for (const l of relay().lines) if (l.msg === 'upgraded') by[l.worker as number]! += 1;
      return by;
    };
    // Fresh connections spread over both workers (SO_REUSEPORT hashes the client's port).
    for (let i = 0; i < 16; i++) {
      const ws = new WebSocket(`wss://127.0.0.1:${stack.ports.public}/ws`, {
        ca: stack.ca,
        servername: APP,
        headers: { host: APP },
      });
      await once(ws, 'open');
      ws.send(`hello ${i}`);
      const [echo] = (await once(ws, 'message')) as [Buffer];
      expect(echo.toString()).toContain(`hello ${i}`);
      ws.close();
      await once(ws, 'close');
    }
    await until(() => upgradedBy()[0]! + upgradedBy()[1]! >= 16, 'upgraded lines');
    expect(upgradedBy().every((n) => n > 0)).toBe(true);
  });

  it('SIGHUP reaches every worker; the primary logs one line', async () => {
    const answered = (l: Record<string, unknown>) =>
      l.msg === 'configuration reload by the workers';
    relay().child.kill('SIGHUP');
    const line = await relay().waitFor(answered, 20_000, 'the reload outcome');
    expect(line).toMatchObject({ workers: 2, reloaded: [0, 1], refused: [], noAnswer: [] });
    // Each worker's own line (written by that process: it may follow the primary's).
    await relay().waitFor(
      () => relay().count((l) => l.msg === 'configuration reloaded') === 2,
      5_000,
      'both workers reloaded',
    );
  });

  it('kill -9 of a worker: /readyz 503, new connections keep succeeding, it is restarted', async () => {
    const [, pid1] = workerPids();
    const failures: string[] = [];
    let served = 0;
    let done = false;
    // Requests in flight on the killed worker fail with it; counted are the ones sent
    // (on new connections) once its death is seen.
    let counting = false;
    // Through the connector, on new connections: whichever worker accepts one reaches it.
    const load = (async () => {
      while (!done) {
        const counted = counting;
        const res = await request(stack, APP, '/echo', {
          headers: { accept: 'application/json' },
        }).catch((e: Error) => ({ status: e.message }));
        if (res.status === 200) served += 1;
        else if (counted)
          failures.push(`${res.status} ${'body' in res ? String(res.body).slice(0, 200) : ''}`);
      }
    })();
    await until(() => served > 5, 'load before the kill');
    process.kill(pid1!, 'SIGKILL');
    await until(async () => (await admin('/readyz')).status === 503, '/readyz 503');
    counting = true;
    const atDeath = served;
    const restarted = await relay().waitFor(
      (l) => l.msg === 'relay worker restarted' && l.worker === 1,
      20_000,
      'worker 1 restarted',
    );
    await until(async () => (await admin('/readyz')).status === 200, '/readyz 200 again');
    const atRestart = served;
    expect(atRestart).toBeGreaterThan(atDeath);
    await until(() => served > atRestart + 20, 'load after the restart');
    done = true;
    await load;
    expect(failures).toStrictEqual([]);
    expect(relay().lines.find((l) => l.msg === 'relay worker exited; restarting it')).toMatchObject(
      {
        worker: 1,
        signal: 'SIGKILL',
        restartInMs: 1000,
      },
    );
    expect(restarted.pid).not.toBe(pid1);
    expect(alive(restarted.pid as number)).toBe(true);
    expect(await metric('appproxy_relay_worker_restarts_total')).toBe(1);
    // The connector's tunnels to the new worker 1 are back, and requests on either worker pass.
    const id = connectorId(stack.connectorState);
    await relay().waitFor(() => connectedToWorker1(id) >= 4, 20_000, 'worker 1 tunnels again');
    for (let i = 0; i < 20; i++) expect((await request(stack, APP, '/echo')).status).toBe(200);
  });

  it('SIGTERM drains every worker: slow requests in flight complete, then all exit 0', async () => {
    const slow = Array.from({ length: 12 }, () => request(stack, APP, '/slow?ms=2500'));
    let inFlight = 0;
    await until(
      async () => (inFlight = await metric('appproxy_requests_in_flight{app="Sample"}')) === 12,
      'slow requests in flight',
      5_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}: ${inFlight}`);
    });
    // Worker 0 as it started, worker 1 as it was restarted.
    const restarted = relay().lines.filter((l) => l.msg === 'relay worker restarted');
    const workers = [workerPids()[0]!, restarted.at(-1)!.pid as number].filter(alive);
    expect(workers).toHaveLength(2);
    relay().child.kill('SIGTERM');
    await until(
      async () => (await admin('/readyz')).status === 503,
      '/readyz 503 while draining',
      5_000,
    );
    const answers = await Promise.all(slow);
    expect(answers.map((a) => a.status)).toStrictEqual(Array(12).fill(200));
    expect(await relay().exited).toBe(0);
    // Logged by each worker once its response ended; all in once the relay exited.
    const [w0, w1] = servedBy('/slow');
    expect(w0! + w1!).toBe(12);
    expect(w0).toBeGreaterThan(0);
    expect(w1).toBeGreaterThan(0);
    expect(workers.filter(alive)).toStrictEqual([]);
  });
});

describe('a worker that cannot start', () => {
  let blocker: Server | undefined;
  let failing: Stack | undefined;
  afterAll(async () => {
    blocker?.close();
    await failing?.stop();
  });

  it('stops the whole start with its error (worker 1 tunnel port in use), no restart loop', async () => {
    failing = new Stack({
      workers: 2,
      apps: [{ name: 'A', internalUrl: 'http://127.0.0.1:9/', externalUrl: `https://${MAINT}/` }],
      startConnector: false,
    });
    await failing.writeConfig();
    blocker = createServer();
    await new Promise<void>((r) => blocker!.listen(failing!.ports.tunnel + 1, '127.0.0.1', r));
    const res = await runCli(RELAY_BIN, ['start', '--config', failing.configPath]);
    expect(res.code, res.stderr).toBe(1);
    expect(res.stderr).toContain(
      `relay.tunnelListen 127.0.0.1:${failing.ports.tunnel + 1} is already in use`,
    );
  });
});
