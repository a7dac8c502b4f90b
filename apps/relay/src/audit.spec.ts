import {
  openStateStore,
  StateStoreError,
  type NewAuditEvent,
  type StateStore,
} from '@appproxy/config';
import { createLogger } from '@appproxy/telemetry';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AuditLog, coalesceKey } from './audit.js';
import { RelayMetrics } from './metrics.js';

let dir: string;
let store: StateStore;
let lines: Array<Record<string, unknown>>;
let metrics: RelayMetrics;
const logs: AuditLog[] = [];

const log = () =>
  createLogger({
    name: 'relay',
    level: 'debug',
    format: 'json',
    write: (l) => lines.push(JSON.parse(l) as Record<string, unknown>),
  });

const audit = (over: Partial<ConstructorParameters<typeof AuditLog>[0]> = {}) => {
  const a = new AuditLog({
    store,
    log: log(),
    retentionMs: 3_600_000,
    metrics: metrics.audit,
    flushIntervalMs: 60_000,
    ...over,
  });
  logs.push(a);
  return a;
};

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'appproxy-audit-'));
  store = await openStateStore({ stateDir: dir, instance: 'relay-a' });
  lines = [];
  metrics = new RelayMetrics();
});
afterEach(async () => {
  for (const a of logs.splice(0)) await a.stop();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const until = async (cond: () => Promise<boolean> | boolean, ms = 5000) => {
  for (const end = Date.now() + ms; Date.now() < end;) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('condition not met in time');
};

describe('AuditLog', () => {
  it('logs a line at once (type audit, level info, the fields) and stores the event on flush', async () => {
    const a = audit();
    const at = new Date('2030-01-01T00:00:00Z');
    a.record({
      at,
      type: 'access.refused',
      user: 'alice',
      app: 'Wiki',
      clientAddress: '203.0.113.7',
      code: 'NOT_ASSIGNED',
      correlationId: 'c0ffee',
    });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 'info',
      msg: 'audit',
      type: 'audit',
      audit: 'access.refused',
      at: '2030-01-01T00:00:00.000Z',
      user: 'alice',
      app: 'Wiki',
      clientAddress: '203.0.113.7',
      code: 'NOT_ASSIGNED',
      correlationId: 'c0ffee',
    });
    expect(await store.queryAudit({})).toStrictEqual([]);
    await a.flush();
    expect(await store.queryAudit({})).toStrictEqual([
      {
        id: expect.any(String),
        at,
        type: 'access.refused',
        instance: 'relay-a',
        user: 'alice',
        app: 'Wiki',
        clientAddress: '203.0.113.7',
        code: 'NOT_ASSIGNED',
        correlationId: 'c0ffee',
      },
    ]);
    expect(metrics.audit.events.labels('access.refused').value).toBe(1);
  });

  it('writes without waiting for the timer once 100 events wait', async () => {
    const a = audit();
    for (let i = 0; i < 99; i++) a.record({ type: 'signout', user: `u${i}` });
    await new Promise((r) => setTimeout(r, 50));
    expect(await store.queryAudit({ limit: 1000 })).toHaveLength(0);
    a.record({ type: 'signout', user: 'u99' });
    await until(async () => (await store.queryAudit({ limit: 1000 })).length === 100);
  });

  it('flushes on its interval', async () => {
    const a = audit({ flushIntervalMs: 20 });
    a.record({ type: 'signout', user: 'alice' });
    await until(async () => (await store.queryAudit({})).length === 1);
  });

  it('a full queue drops from the store only: counted, warned, the log lines written', async () => {
    const a = audit({ maxQueue: 3 });
    for (let i = 0; i < 5; i++) a.record({ type: 'signout', user: `u${i}` });
    expect(lines.filter((l) => l.type === 'audit')).toHaveLength(5);
    const warn = lines.find((l) => l.level === 'warn');
    expect(warn).toMatchObject({ reason: 'queue_full', dropped: 1, queueMax: 3 });
    expect(metrics.audit.dropped.labels('queue_full').value).toBe(2);
    await a.flush();
    expect((await store.queryAudit({})).map((e) => e.user)).toStrictEqual(['u2', 'u1', 'u0']);
  });

  it('a failing store: record never throws, the batch is counted and the cause warned', async () => {
    const failing = {
      ...store,
      appendAudit: () =>
        Promise.reject(new StateStoreError('APPPROXY_STORE_UNAVAILABLE', 'PostgreSQL store down')),
      pruneAudit: () => Promise.resolve(0),
    } as StateStore;
    const a = audit({ store: failing });
    a.record({ type: 'signin.failed', user: 'bob', code: 'SIGN_IN_FAILED' });
    a.record({ type: 'signin.failed', user: 'bob', code: 'SIGN_IN_FAILED' });
    await a.flush();
    expect(metrics.audit.dropped.labels('store_failed').value).toBe(2);
    expect(lines.find((l) => l.level === 'warn')).toMatchObject({
      reason: 'store_failed',
      dropped: 2,
      cause: 'APPPROXY_STORE_UNAVAILABLE: PostgreSQL store down',
    });
    expect(lines.filter((l) => l.type === 'audit')).toHaveLength(2);
  });

  it('a throwing logger does not reach the caller', () => {
    const a = audit({
      log: {
        ...log(),
        info: () => {
          throw new Error('disk full');
        },
      },
    });
    expect(() => a.record({ type: 'signout' })).not.toThrow();
  });

  it('prunes events older than the retention at start and on its interval', async () => {
    const old = new Date(Date.now() - 2 * 3_600_000);
    await store.appendAudit([{ at: old, type: 'signout', user: 'old' }]);
    audit();
    await until(async () => (await store.queryAudit({})).length === 0);
    const a = audit({ pruneIntervalMs: 20 });
    await store.appendAudit([
      { at: old, type: 'signout', user: 'old' },
      { type: 'signout', user: 'new' },
    ]);
    await until(async () => (await store.queryAudit({})).length === 1);
    expect((await store.queryAudit({}))[0]!.user).toBe('new');
    await a.stop();
  });

  it('stop writes what waits; later events are logged and counted, not stored', async () => {
    const a = audit();
    a.record({ type: 'admin.config.reloaded', actor: 'signal:SIGHUP' });
    await a.stop();
    expect(await store.queryAudit({})).toHaveLength(1);
    a.record({ type: 'signout' });
    expect(lines.filter((l) => l.type === 'audit')).toHaveLength(2);
    expect(metrics.audit.dropped.labels('stopped').value).toBe(1);
    await a.flush();
    expect(await store.queryAudit({})).toHaveLength(1);
  });
});

describe('AuditLog.recordCoalesced', () => {
  it('one alike event per minute; the repeats are recorded once when the minute is over', async () => {
    const a = audit();
    const e = { type: 'access.refused' as const, user: 'alice', app: 'Wiki', code: 'THROTTLED' };
    // Alike whatever their correlation id, client address or other details.
    for (let i = 0; i < 50; i++)
      a.recordCoalesced({ ...e, correlationId: `c${i}`, clientAddress: `10.0.0.${i}` });
    a.recordCoalesced({ ...e, user: 'bob' });
    expect(lines.filter((l) => l.type === 'audit')).toHaveLength(2);
    // Stopping ends every window: alice's 49 repeats become one event.
    await a.stop();
    const stored = await store.queryAudit({});
    expect(stored.map((s) => [s.user, s.detail])).toStrictEqual([
      ['alice', { repeated: 49 }],
      ['bob', undefined],
      ['alice', undefined],
    ]);
  });

  it('alike: type, code, reason, the user (else the client address) and the app', () => {
    const e = { type: 'signin.failed' as const, app: 'Wiki', code: 'SIGN_IN_FAILED' };
    const key = (over: Partial<NewAuditEvent>) => coalesceKey({ ...e, ...over });
    const base = key({ clientAddress: '10.0.0.1', detail: { reason: 'STATE_MISMATCH' } });
    expect(key({ clientAddress: '10.0.0.1', detail: { reason: 'STATE_MISMATCH', n: 2 } })).toBe(
      base,
    );
    for (const other of [
      { clientAddress: '10.0.0.2', detail: { reason: 'STATE_MISMATCH' } },
      { clientAddress: '10.0.0.1', detail: { reason: 'STATE_REUSED' } },
      { clientAddress: '10.0.0.1', detail: { reason: 'STATE_MISMATCH' }, app: 'Crm' },
      { clientAddress: '10.0.0.1', detail: { reason: 'STATE_MISMATCH' }, code: 'OTHER' },
      { clientAddress: '10.0.0.1', detail: { reason: 'STATE_MISMATCH' }, type: 'signout' as const },
    ])
      expect(key(other)).not.toBe(base);
    // A signed-in user is one whatever their address; an anonymous one is their address.
    expect(key({ user: 'alice', clientAddress: 'a' })).toBe(
      key({ user: 'alice', clientAddress: 'b' }),
    );
    expect(key({ clientAddress: 'alice' })).not.toBe(key({ user: 'alice' }));
  });
});
