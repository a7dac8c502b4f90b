import { createLogger } from '@appproxy/telemetry';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { describe, expect, it, onTestFinished } from 'vitest';
import { PinnedConnections } from './affinity.js';
import { ConnectorMetrics } from './metrics.js';

/** A backend that answers with the client port of the connection the request came on. */
async function backend(): Promise<{ origin: string; server: Server }> {
  const server = createServer((req, res) => {
    if (req.url === '/close') res.setHeader('connection', 'close');
    res.end(String(req.socket.remotePort));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  onTestFinished(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

function pinned(opts: { max?: number; idleMs?: number } = {}) {
  const gauge = new ConnectorMetrics().pinnedConnections.labels();
  const p = new PinnedConnections({
    gauge,
    log: createLogger({ name: 'test', write: () => {} }),
    ...opts,
  });
  onTestFinished(() => p.close());
  return { p, gauge };
}

/** One request with `id`'s connection; the backend's answer: which connection it was. */
async function via(p: PinnedConnections, id: string, origin: string, path = '/'): Promise<string> {
  const lease = p.acquire(id, true, undefined);
  try {
    const res = await request(`${origin}${path}`, { dispatcher: lease.dispatcher });
    return await res.body.text();
  } finally {
    lease.done();
  }
}

describe('PinnedConnections', () => {
  it('one connection per id, never shared with another id', async () => {
    const { origin } = await backend();
    const { p, gauge } = pinned();
    const first = await via(p, 'client-aaaaaaaa', origin);
    expect(await via(p, 'client-aaaaaaaa', origin)).toBe(first);
    expect(await via(p, 'client-aaaaaaaa', origin)).toBe(first);
    const other = await via(p, 'client-bbbbbbbb', origin);
    expect(other).not.toBe(first);
    expect(await via(p, 'client-aaaaaaaa', origin)).toBe(first);
    expect(gauge.value).toBe(2);
  });

  it('release closes the id’s connection; the id starts afresh', async () => {
    const { origin } = await backend();
    const { p, gauge } = pinned();
    const first = await via(p, 'client-aaaaaaaa', origin);
    await p.release({ affinity: 'client-aaaaaaaa' });
    expect(gauge.value).toBe(0);
    expect(await via(p, 'client-aaaaaaaa', origin)).not.toBe(first);
    await expect(p.release({ affinity: 'x y' })).rejects.toMatchObject({
      code: 'APPPROXY_TUNNEL_META_INVALID',
    });
    await expect(p.release({ affinity: 'unknown-id-1' })).resolves.toBeUndefined();
  });

  it('the backend closed it: the next request gets a new connection', async () => {
    const { origin } = await backend();
    const { p } = pinned();
    const first = await via(p, 'client-aaaaaaaa', origin, '/close');
    await new Promise((r) => setTimeout(r, 50));
    expect(await via(p, 'client-aaaaaaaa', origin)).not.toBe(first);
  });

  it('bounded: the least recently used id is closed first', async () => {
    const { origin } = await backend();
    const { p, gauge } = pinned({ max: 2 });
    const x = await via(p, 'client-xxxxxxxx', origin);
    const y = await via(p, 'client-yyyyyyyy', origin);
    await via(p, 'client-xxxxxxxx', origin); // x is now the most recent
    await via(p, 'client-zzzzzzzz', origin); // y goes
    expect(gauge.value).toBe(2);
    expect(await via(p, 'client-xxxxxxxx', origin)).toBe(x);
    expect(await via(p, 'client-yyyyyyyy', origin)).not.toBe(y);
  });

  it('closed after idleMs without requests, not while one is in flight', async () => {
    const { origin } = await backend();
    const { p, gauge } = pinned({ idleMs: 100 });
    const lease = p.acquire('client-aaaaaaaa', true, undefined);
    await new Promise((r) => setTimeout(r, 200));
    expect(gauge.value).toBe(1);
    const res = await request(`${origin}/`, { dispatcher: lease.dispatcher });
    await res.body.text();
    lease.done();
    lease.done(); // twice is once
    await new Promise((r) => setTimeout(r, 250));
    expect(gauge.value).toBe(0);
    expect(p.size).toBe(0);
  });
});
