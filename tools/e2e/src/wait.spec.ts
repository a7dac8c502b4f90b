import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { freePort, freePortRun } from './wait.js';

const ephemeralStart = Number(
  readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').split(/\s+/)[0],
);

async function hold(port: number): Promise<Server> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  onTestFinished(() => new Promise<void>((r) => server.close(() => r())));
  return server;
}

describe('freePort / freePortRun — ports a test names before its server binds', () => {
  it('come from below the ephemeral range, never twice, and can be bound', async () => {
    const ports = [];
    for (let i = 0; i < 20; i++) ports.push(await freePort());
    expect(new Set(ports).size).toBe(20);
    for (const port of ports) {
      expect(port).toBeGreaterThanOrEqual(10_000);
      expect(port).toBeLessThan(ephemeralStart);
    }
    await hold(ports[0]!);
  });

  it('skip a port something already listens on', async () => {
    // Candidates are taken in turn: hold the three after this one, and the next port handed
    // out is none of them.
    const port = await freePort();
    const held = [port + 1, port + 2, port + 3];
    for (const p of held) await hold(p).catch(() => undefined);
    const next = await freePort();
    expect(held).not.toContain(next);
    await hold(next);
  });

  it('a run is consecutive and every port of it is free', async () => {
    const first = await freePortRun(4);
    for (let i = 0; i < 4; i++) await hold(first + i);
  });
});
