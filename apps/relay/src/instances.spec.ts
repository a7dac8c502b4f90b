import { openStateStore, type StateStore } from '@appproxy/config';
import { createLogger } from '@appproxy/telemetry';
import type { InstanceList } from '@appproxy/tunnel';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InstanceDirectory, instanceName, instanceTunnelUrl } from './instances.js';

const dir = mkdtempSync(join(tmpdir(), 'appproxy-instances-'));
const stores: StateStore[] = [];
afterAll(async () => {
  for (const s of stores) await s.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Two processes' views of one SQLite store (as two workers of one host have). */
async function store(): Promise<StateStore> {
  const s = await openStateStore(join(dir, 'relay'));
  stores.push(s);
  return s;
}

function logger() {
  const lines: Array<Record<string, unknown>> = [];
  const write = (line: string) => {
    for (const l of line.split('\n').filter(Boolean))
      lines.push(JSON.parse(l) as Record<string, unknown>);
  };
  return { log: createLogger({ name: 'relay', write, format: 'json' }), lines };
}

describe('InstanceDirectory', () => {
  it('lists itself first, then every instance with a heartbeat in the live window', async () => {
    let now = new Date('2026-11-30T10:00:00Z');
    const changes: InstanceList[] = [];
    const { log, lines } = logger();
    const a = new InstanceDirectory({
      store: await store(),
      self: { name: 'a', tunnelUrl: 'https://a.example:8443', version: '1' },
      log,
      onChange: (l) => changes.push(l),
      now: () => now,
    });
    const b = new InstanceDirectory({
      store: await store(),
      self: { name: 'b', version: '1' },
      log: logger().log,
      onChange: () => {},
      now: () => now,
    });
    await a.refresh();
    expect(a.list()).toStrictEqual({
      instance: { name: 'a' },
      instances: [{ name: 'a', tunnelUrl: 'https://a.example:8443' }],
    });
    expect(changes).toHaveLength(0);

    await b.refresh();
    await a.refresh();
    expect(a.list().instances).toStrictEqual([
      { name: 'a', tunnelUrl: 'https://a.example:8443' },
      { name: 'b' },
    ]);
    expect(a.liveCount).toBe(2);
    expect(changes).toHaveLength(1);
    expect(lines.find((l) => l.msg === 'relay instances changed')).toMatchObject({
      added: ['b'],
      removed: [],
    });
    // Nothing new: no change announced.
    await a.refresh();
    expect(changes).toHaveLength(1);

    // b stops heartbeating (killed): gone once its last heartbeat is older than the window.
    now = new Date(now.getTime() + 3000);
    await a.refresh();
    expect(a.liveCount).toBe(2);
    now = new Date(now.getTime() + 1000);
    await a.refresh();
    expect(a.list().instances.map((i) => i.name)).toStrictEqual(['a']);
    expect(changes).toHaveLength(2);

    // b back, then stopping cleanly: removed from the store at once.
    await b.refresh();
    await a.refresh();
    expect(a.liveCount).toBe(2);
    await b.stop();
    await a.refresh();
    expect(a.liveCount).toBe(1);
  });

  it('keeps the last list while the store fails, and says so once', async () => {
    const { log, lines } = logger();
    let failing = false;
    const real = await store();
    const flaky = {
      heartbeatInstance: (...args: Parameters<StateStore['heartbeatInstance']>) =>
        failing ? Promise.reject(new Error('connection refused')) : real.heartbeatInstance(...args),
      listInstances: (o: { liveSince: Date }) => real.listInstances(o),
      removeInstance: (n: string) => real.removeInstance(n),
    };
    await real.heartbeatInstance({ name: 'other', version: '1', startedAt: new Date() });
    const d = new InstanceDirectory({
      store: flaky,
      self: { name: 'me', version: '1' },
      log,
      onChange: () => {},
    });
    await d.refresh();
    expect(d.list().instances.map((i) => i.name)).toStrictEqual(['me', 'other']);
    failing = true;
    await d.refresh();
    await d.refresh();
    expect(d.list().instances.map((i) => i.name)).toStrictEqual(['me', 'other']);
    expect(
      lines.filter((l) => l.msg?.toString().startsWith('instance heartbeat failed')),
    ).toHaveLength(1);
    failing = false;
    await d.refresh();
    expect(lines.some((l) => l.msg === 'instance heartbeat restored')).toBe(true);
  });
});

describe('instance names and tunnel URLs', () => {
  it('worker i is <name>-<i> on the tunnel port + i', () => {
    expect(instanceName('edge1', undefined)).toBe('edge1');
    expect(instanceName('edge1', { index: 2 })).toBe('edge1-2');
    const url = 'https://relay.example.com:8443';
    expect(instanceTunnelUrl(url, undefined, undefined)).toBe(url);
    expect(instanceTunnelUrl(url, { index: 2 }, undefined)).toBe('https://relay.example.com:8445');
    expect(instanceTunnelUrl('https://r.example', { index: 1 }, undefined)).toBe(
      'https://r.example:444',
    );
  });

  it('tunnelListen port 0: the port bound', () => {
    expect(instanceTunnelUrl('https://127.0.0.1:8443', { index: 1 }, 40123)).toBe(
      'https://127.0.0.1:40123',
    );
  });
});
