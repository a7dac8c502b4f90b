/**
 * The HAProxy fixture itself, against two plain HTTP servers standing in for relay
 * instances: round-robin over both, a server whose /readyz answers 503 leaves the rotation
 * and comes back when it answers 200 again, a dead one is skipped.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { HAPROXY_BIN, startHaproxy, type Haproxy } from './haproxy.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function listen(server: Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise((r) => server.close(r).closeAllConnections()));
  return (server.address() as AddressInfo).port;
}

async function get(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/`, { headers: { connection: 'close' } });
  return res.text();
}

describe.skipIf(!HAPROXY_BIN)('HAProxy fixture (TCP mode, /readyz checks)', () => {
  it('balances, drops a server that is not ready or dead, and takes it back', async () => {
    const readiness: Record<string, boolean> = { a: true, b: true };
    const servers = [];
    for (const name of ['a', 'b']) {
      const pub = createServer((_req, res) =>
        res.writeHead(200, { connection: 'close' }).end(name),
      );
      const admin = createServer((_req, res) => res.writeHead(readiness[name] ? 200 : 503).end());
      servers.push({ name, pub, admin, port: await listen(pub), checkPort: await listen(admin) });
    }
    const haproxy: Haproxy = await startHaproxy(
      servers.map(({ name, port, checkPort }) => ({ name, port, checkPort })),
    );
    cleanups.push(() => haproxy.stop());
    await haproxy.waitFor('a', 'UP');
    await haproxy.waitFor('b', 'UP');

    const seen = new Set<string>();
    for (let n = 0; n < 6; n++) seen.add(await get(haproxy.port));
    expect([...seen].sort()).toEqual(['a', 'b']);

    readiness.a = false;
    await haproxy.waitFor('a', 'DOWN');
    for (let n = 0; n < 6; n++) expect(await get(haproxy.port)).toBe('b');

    readiness.a = true;
    await haproxy.waitFor('a', 'UP');
    // Dead (not listening) rather than unready: the check fails and traffic moves to a.
    for (const server of [servers[1]!.pub, servers[1]!.admin])
      await new Promise((r) => server.close(r).closeAllConnections());
    await haproxy.waitFor('b', 'DOWN');
    for (let n = 0; n < 6; n++) expect(await get(haproxy.port)).toBe('a');
  });
});
