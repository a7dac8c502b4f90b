import type { ConnectorRecord, StateStore, StateStoreOptions } from '@appproxy/config';
import type { ConnectorCA } from '@appproxy/pki';
import { createLogger } from '@appproxy/telemetry';
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
// The PostgreSQL fixture lives with the other system fixtures; it imports nothing of ours.
// eslint-disable-next-line @nx/enforce-module-boundaries
import {
  postgresAvailable,
  startPostgres,
  type PostgresServer,
} from '../../../tools/e2e/src/postgres.js';
import type { TunnelSession } from '@appproxy/tunnel';
import type { NewAuditEvent } from '@appproxy/config';
import { ConnectorRegistry } from './connector-registry.js';
import { RelayMetrics } from './metrics.js';
import { openRelayStore } from './relay-store.js';

const havePostgres = postgresAvailable();
let server: PostgresServer | undefined;
const root = mkdtempSync(join(tmpdir(), 'appproxy-registry-'));
const cleanups: Array<() => unknown> = [];

beforeAll(async () => {
  if (havePostgres) server = await startPostgres();
}, 60_000);
afterAll(async () => {
  await server?.stop();
  rmSync(root, { recursive: true, force: true });
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const record = (id: string): ConnectorRecord => ({
  id,
  group: 'Default',
  certSerial: '01',
  certFingerprint: `${id}-fp`,
  certNotAfter: new Date(Date.now() + 86_400_000),
  createdAt: new Date(),
  capabilities: [],
  tunnels: 0,
  inFlight: 0,
});
const peer = (id: string) => ({
  commonName: id,
  fingerprint: `${id}-fp`,
  serialNumber: '01',
  validTo: new Date(Date.now() + 86_400_000),
});

let n = 0;
const backends: Array<{ name: string; skip: boolean; options: () => Promise<StateStoreOptions> }> =
  [
    {
      name: 'sqlite',
      skip: false,
      options: async () => ({ stateDir: join(root, `sqlite-${++n}`) }),
    },
    {
      name: 'postgres',
      skip: !havePostgres,
      options: async () => ({
        stateDir: join(root, `pg-${++n}`),
        store: { postgres: { url: await server!.createDatabase() } },
        storeKey: 'registry-spec-key-0123456789abcdefghijklm',
      }),
    },
  ];

describe.each(backends)('ConnectorRegistry on $name', ({ skip, options }) => {
  /** A registry (instance A) and another connection to the same state (instance B, or the CLI). */
  async function setUp() {
    const o = await options();
    const relay = o as Parameters<typeof openRelayStore>[0];
    const a: StateStore = await openRelayStore(relay, { instance: 'a' });
    const b: StateStore = await openRelayStore(relay, { instance: 'b' });
    cleanups.push(
      () => a.close(),
      () => b.close(),
    );
    await a.upsertConnector(record('known'));
    const metrics = new RelayMetrics();
    const registry = new ConnectorRegistry({
      store: a,
      ca: {} as ConnectorCA,
      log: createLogger({ name: 'test', write: () => {}, format: 'json' }),
      metrics,
      groups: () => new Set(['Default']),
      certValidityMs: 86_400_000,
      inactiveRetentionMs: 86_400_000,
    });
    await registry.start();
    cleanups.push(() => registry.stop());
    return { registry, b, metrics };
  }

  it.skipIf(skip)('answers known connectors from its cache, without a Promise', async () => {
    const { registry } = await setUp();
    expect(registry.authorize(peer('known'))).toBeUndefined();
  });

  it.skipIf(skip)(
    'accepts a connector registered elsewhere a moment ago, by asking the store',
    async () => {
      const { registry, b } = await setUp();
      await b.upsertConnector(record('fresh'));
      const verdict = registry.authorize(peer('fresh'));
      expect(verdict).toBeInstanceOf(Promise);
      expect(await verdict).toBeUndefined();
      // Cached now.
      expect(registry.authorize(peer('fresh'))).toBeUndefined();
      expect(await registry.authorize(peer('never-registered'))).toStrictEqual({
        reason: 'unknown connector (deleted or never registered)',
        revoked: true,
      });
    },
  );

  it.skipIf(skip)('learns of a revocation elsewhere through the store’s watch', async () => {
    const { registry, b, metrics } = await setUp();
    const revoked = () =>
      /appproxy_connectors\{group="Default",state="revoked"\} 1\b/.test(metrics.registry.render());
    expect(revoked()).toBe(false);
    await b.revokeConnector('known');
    // The cache (which metrics read) follows within a second: watch, not the 5 s refresh.
    const started = Date.now();
    await expect.poll(revoked, { timeout: 3_000, interval: 20 }).toBe(true);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(await registry.authorize(peer('known'))).toStrictEqual({
      reason: 'connector deleted (certificate revoked)',
      revoked: true,
    });
  });
});

let tunnelSeq = 0;
/** A tunnel as the registry sees it: an emitter of `closed` with the connector's identity. */
function fakeTunnel(id: string) {
  const t = Object.assign(new EventEmitter(), {
    id: `t${++tunnelSeq}`,
    connectorId: id,
    peer: peer(id),
    hello: { hostname: 'gw1', version: '1.0.0', capabilities: [] },
    remoteAddress: '192.0.2.10',
    accepting: true,
    inFlight: 0,
    hasCapability: () => true,
    destroy(reason: string, code?: string) {
      t.accepting = false;
      t.emit('closed', code ? Object.assign(new Error(reason), { code }) : undefined);
    },
  });
  return t;
}

describe('ConnectorRegistry audit', () => {
  it('connected on the first tunnel, disconnected when the last is gone, revoked once', async () => {
    const store = await openRelayStore({ stateDir: join(root, 'audit') } as never, {
      instance: 'a',
    });
    const other = await openRelayStore({ stateDir: join(root, 'audit') } as never, {
      instance: 'cli',
    });
    cleanups.push(
      () => store.close(),
      () => other.close(),
    );
    await store.upsertConnector(record('known'));
    const audited: NewAuditEvent[] = [];
    const registry = new ConnectorRegistry({
      store,
      ca: {} as ConnectorCA,
      log: createLogger({ name: 'test', write: () => {}, format: 'json' }),
      metrics: new RelayMetrics(),
      groups: () => new Set(['Default']),
      certValidityMs: 86_400_000,
      inactiveRetentionMs: 86_400_000,
      audit: { record: (e) => audited.push(e), recordCoalesced: () => {} },
    });
    await registry.start();
    cleanups.push(() => registry.stop());
    const [t1, t2, t3] = [fakeTunnel('known'), fakeTunnel('known'), fakeTunnel('known')];
    registry.add(t1 as unknown as TunnelSession);
    registry.add(t2 as unknown as TunnelSession);
    expect(audited).toStrictEqual([
      {
        type: 'connector.connected',
        actor: 'connector:known',
        connector: 'known',
        group: 'Default',
        clientAddress: '192.0.2.10',
        detail: { hostname: 'gw1', version: '1.0.0' },
      },
    ]);
    t1.destroy('closed');
    expect(audited).toHaveLength(1);
    t2.destroy('closed');
    expect(audited.at(-1)).toStrictEqual({
      type: 'connector.disconnected',
      connector: 'known',
      group: 'Default',
      detail: { reason: 'closed' },
    });
    // Deleted by another process: its tunnels close, one revoked event for the connector.
    registry.add(t3 as unknown as TunnelSession);
    registry.add(fakeTunnel('known') as unknown as TunnelSession);
    audited.length = 0;
    await other.revokeConnector('known');
    await expect
      .poll(() => audited.map((e) => e.type), { timeout: 3000 })
      .toStrictEqual(['connector.revoked', 'connector.disconnected']);
    expect(audited[0]).toMatchObject({ connector: 'known', detail: { reason: 'revoked' } });
    expect(audited[1]).toMatchObject({
      code: 'APPPROXY_TUNNEL_UNAUTHORIZED',
      detail: { reason: 'revoked' },
    });
  });
});
