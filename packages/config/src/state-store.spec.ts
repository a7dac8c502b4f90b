import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { Worker } from 'node:worker_threads';
import pg from 'pg';
import {
  afterAll,
  afterEach,
  beforeAll,
  beforeEach,
  describe,
  expect,
  it,
  onTestFinished,
} from 'vitest';
// The PostgreSQL fixture lives with the other system fixtures; it imports nothing of ours.
// eslint-disable-next-line @nx/enforce-module-boundaries
import {
  postgresAvailable,
  startPostgres,
  type PostgresServer,
} from '../../../tools/e2e/src/postgres.js';
import {
  STATE_DB_FILE,
  StateStoreError,
  TokenError,
  openStateStore,
  type ConnectorRecord,
  type StateStore,
  type StateStoreOptions,
} from './index.js';

const STORE_KEY = 'test-store-key-0123456789abcdefghijklmnop';

let root: string;
let stateDir: string;
const opened: StateStore[] = [];

const havePostgres = postgresAvailable();
let server: PostgresServer | undefined;
beforeAll(async () => {
  if (havePostgres) server = await startPostgres();
}, 60_000);
afterAll(async () => {
  await server?.stop();
});

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'appproxy-state-'));
  stateDir = join(root, 'var/relay');
});
afterEach(async () => {
  for (const store of opened.splice(0)) await store.close();
  rmSync(root, { recursive: true, force: true });
});

async function tokenError(fn: () => Promise<unknown>): Promise<TokenError> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof TokenError) return err;
    throw err;
  }
  throw new Error('expected a TokenError');
}

async function storeError(fn: () => Promise<unknown>): Promise<StateStoreError> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof StateStoreError) return err;
    throw err;
  }
  throw new Error('expected a StateStoreError');
}

const connector = (over: Partial<ConnectorRecord> = {}): ConnectorRecord => ({
  id: '3f1c2a9e-8d4b-4c1f-9e2a-1b2c3d4e5f60',
  group: 'Default',
  certSerial: '01ab',
  certFingerprint: 'aa'.repeat(32),
  certNotAfter: new Date('2031-01-01T00:00:00Z'),
  createdAt: new Date('2030-01-01T00:00:00Z'),
  capabilities: [],
  tunnels: 0,
  inFlight: 0,
  instances: [],
  ...over,
});

/** Resolves once a session of `url`'s database is LISTENing (bounded: 10 s). */
async function listening(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    for (const deadline = Date.now() + 10_000; Date.now() < deadline;) {
      const { rows } = await client.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity
         WHERE datname = current_database() AND query LIKE 'LISTEN %'`,
      );
      if (rows[0]!.n > 0) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error('no LISTEN session within 10 s');
  } finally {
    await client.end();
  }
}

interface Backend {
  name: 'sqlite' | 'postgres';
  /** Options of a store on this test's state (every call: the same state, another connection). */
  options: () => Promise<StateStoreOptions>;
}

let database: string | undefined;
const backends: Backend[] = [
  { name: 'sqlite', options: async () => ({ stateDir, instance: 'relay-a' }) },
  {
    name: 'postgres',
    options: async () => {
      database ??= await server!.createDatabase();
      return { stateDir, postgres: { url: database }, storeKey: STORE_KEY, instance: 'relay-a' };
    },
  },
];
beforeEach(() => {
  database = undefined;
});

describe.each(backends)('$name store', (backend) => {
  const skip = backend.name === 'postgres' && !havePostgres;
  const open = async (over: Partial<StateStoreOptions> = {}) => {
    const store = await openStateStore({ ...(await backend.options()), ...over });
    opened.push(store);
    return store;
  };

  describe.skipIf(skip)('openStateStore', () => {
    it('says which backend it is and which instance it speaks for', async () => {
      const store = await open();
      expect(store.kind).toBe(backend.name);
      expect(store.instance).toBe('relay-a');
    });

    it('reopens an existing store without migrating again', async () => {
      const first = await open();
      const { id, secret } = await first.createRegistrationToken({
        group: 'Default',
        ttlMs: 60_000,
      });
      await first.close();
      expect(await (await open()).redeemRegistrationToken(id, secret)).toStrictEqual({
        group: 'Default',
      });
    });

    it('close is idempotent', async () => {
      const store = await open();
      await store.close();
      await expect(store.close()).resolves.toBeUndefined();
    });
  });

  describe.skipIf(skip)('registration tokens', () => {
    it('have an 8-character base32 id and a 32-byte base64url secret', async () => {
      const now = new Date('2030-01-01T00:00:00Z');
      const t = await (
        await open()
      ).createRegistrationToken({ group: 'Default', ttlMs: 3_600_000, now });
      expect(t.id).toMatch(/^[a-z2-7]{8}$/);
      expect(t.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(Buffer.from(t.secret, 'base64url')).toHaveLength(32);
      expect(t.expiresAt).toStrictEqual(new Date('2030-01-01T01:00:00Z'));
    });

    it('check does not spend; redeem with a connector records both or neither', async () => {
      const store = await open();
      const { id, secret } = await store.createRegistrationToken({
        group: 'Berlin',
        ttlMs: 60_000,
      });
      expect(await store.checkRegistrationToken(id, secret)).toStrictEqual({ group: 'Berlin' });
      expect(await store.checkRegistrationToken(id, secret)).toStrictEqual({ group: 'Berlin' });
      expect((await tokenError(() => store.checkRegistrationToken(id, 'wrong'))).code).toBe(
        'APPPROXY_TOKEN_INVALID',
      );
      const c = connector({ id: 'c-1', group: 'ignored: the token says' });
      expect(await store.redeemRegistrationToken(id, secret, { connector: c })).toStrictEqual({
        group: 'Berlin',
      });
      expect((await store.getConnector('c-1'))?.group).toBe('Berlin');
      // Spent: a second redeem records nothing.
      expect(
        (
          await tokenError(() =>
            store.redeemRegistrationToken(id, secret, { connector: { ...c, id: 'c-2' } }),
          )
        ).code,
      ).toBe('APPPROXY_TOKEN_USED');
      expect((await tokenError(() => store.checkRegistrationToken(id, secret))).code).toBe(
        'APPPROXY_TOKEN_USED',
      );
      expect(await store.getConnector('c-2')).toBeUndefined();
    });

    it('redeem once: the second time is APPPROXY_TOKEN_USED', async () => {
      const store = await open();
      const { id, secret } = await store.createRegistrationToken({
        group: 'Berlin',
        ttlMs: 60_000,
      });
      expect(await store.redeemRegistrationToken(id, secret)).toStrictEqual({ group: 'Berlin' });
      expect((await tokenError(() => store.redeemRegistrationToken(id, secret))).code).toBe(
        'APPPROXY_TOKEN_USED',
      );
    });

    it('redeem once even when many race for it', async () => {
      const stores = [await open(), await open(), await open()];
      const { id, secret } = await stores[0]!.createRegistrationToken({
        group: 'Berlin',
        ttlMs: 60_000,
      });
      const results = await Promise.allSettled(
        Array.from({ length: 9 }, (_, i) =>
          stores[i % 3]!.redeemRegistrationToken(id, secret, {
            connector: connector({ id: `racer-${i}` }),
          }),
        ),
      );
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      for (const r of results)
        if (r.status === 'rejected')
          expect(r.reason).toMatchObject({ code: 'APPPROXY_TOKEN_USED' });
      expect(await stores[1]!.listConnectors()).toHaveLength(1);
    });

    it('expire: APPPROXY_TOKEN_EXPIRED at the expiry instant, fine just before', async () => {
      const store = await open();
      const now = new Date('2030-01-01T00:00:00Z');
      const a = await store.createRegistrationToken({ group: 'Default', ttlMs: 1_000, now });
      const b = await store.createRegistrationToken({ group: 'Default', ttlMs: 1_000, now });
      expect(
        await store.redeemRegistrationToken(a.id, a.secret, { now: new Date(now.getTime() + 999) }),
      ).toStrictEqual({ group: 'Default' });
      const err = await tokenError(() =>
        store.redeemRegistrationToken(b.id, b.secret, { now: new Date(now.getTime() + 1_000) }),
      );
      expect(err.code).toBe('APPPROXY_TOKEN_EXPIRED');
      // An expired token stays unspent: still EXPIRED, never USED.
      expect(
        (
          await tokenError(() =>
            store.redeemRegistrationToken(b.id, b.secret, { now: new Date(now.getTime() + 5_000) }),
          )
        ).code,
      ).toBe('APPPROXY_TOKEN_EXPIRED');
    });

    it('a wrong secret or an unknown id is APPPROXY_TOKEN_INVALID, and spends nothing', async () => {
      const store = await open();
      const { id, secret } = await store.createRegistrationToken({
        group: 'Default',
        ttlMs: 60_000,
      });
      const wrong = `${secret.slice(0, -1)}${secret.endsWith('A') ? 'B' : 'A'}`;
      for (const [tid, s] of [
        [id, wrong],
        [id, ''],
        ['aaaaaaaa', secret],
        ["x' OR 1=1 --", secret],
      ] as const)
        expect((await tokenError(() => store.redeemRegistrationToken(tid, s))).code).toBe(
          'APPPROXY_TOKEN_INVALID',
        );
      expect(await store.redeemRegistrationToken(id, secret)).toStrictEqual({ group: 'Default' });
      // Once used, a wrong secret still says INVALID: the state is only told to the holder.
      expect((await tokenError(() => store.redeemRegistrationToken(id, wrong))).code).toBe(
        'APPPROXY_TOKEN_INVALID',
      );
    });

    it('error messages never contain the secret', async () => {
      const store = await open();
      const { id, secret } = await store.createRegistrationToken({
        group: 'Default',
        ttlMs: 60_000,
      });
      await store.redeemRegistrationToken(id, secret);
      expect(
        (await tokenError(() => store.redeemRegistrationToken(id, secret))).message,
      ).not.toContain(secret);
    });

    it('refuse nonsense options', async () => {
      const store = await open();
      await expect(store.createRegistrationToken({ group: 'Default', ttlMs: 0 })).rejects.toThrow(
        RangeError,
      );
      await expect(
        store.createRegistrationToken({ group: 'Default', ttlMs: Number.NaN }),
      ).rejects.toThrow(RangeError);
      await expect(store.createRegistrationToken({ group: '', ttlMs: 1_000 })).rejects.toThrow(
        TypeError,
      );
    });
  });

  describe.skipIf(skip)('connectors', () => {
    it('upsert, get and list round-trip every field', async () => {
      const store = await open();
      const full = connector({
        lastSeenAt: new Date('2030-01-02T00:00:00Z'),
        hostname: 'conn-01.corp.local',
        version: '0.1.0',
        capabilities: ['ws', 'kcd'],
        revokedAt: new Date('2030-01-03T00:00:00Z'),
        previousCert: { fingerprint: 'cc'.repeat(32), notAfter: new Date('2030-06-01T00:00:00Z') },
      });
      const minimal = connector({ id: 'second', createdAt: new Date('2030-01-05T00:00:00Z') });
      await store.upsertConnector(minimal);
      await store.upsertConnector(full);
      expect(await store.getConnector(full.id)).toStrictEqual(full);
      expect(await store.getConnector('second')).toStrictEqual(minimal);
      expect(await store.getConnector('nope')).toBeUndefined();
      expect(await store.listConnectors()).toStrictEqual([full, minimal]);
    });

    it('upsert replaces the record with the same id (e.g. a new certificate)', async () => {
      const store = await open();
      await store.upsertConnector(connector({ hostname: 'old' }));
      const renewed = connector({
        certSerial: '02cd',
        certFingerprint: 'bb'.repeat(32),
        certNotAfter: new Date('2032-01-01T00:00:00Z'),
      });
      await store.upsertConnector(renewed);
      expect(await store.listConnectors()).toStrictEqual([renewed]);
    });

    it('recordConnectorSeen updates what it is given and keeps the rest', async () => {
      const store = await open();
      const id = connector().id;
      await store.upsertConnector(
        connector({ hostname: 'conn-01', version: '0.1.0', capabilities: ['ws'] }),
      );
      const at = new Date('2030-02-01T12:00:00Z');
      await store.recordConnectorSeen(id, { at, version: '0.2.0' });
      expect(await store.getConnector(id)).toMatchObject({
        lastSeenAt: at,
        hostname: 'conn-01',
        version: '0.2.0',
        capabilities: ['ws'],
      });
      const later = new Date('2030-02-01T12:05:00Z');
      await store.recordConnectorSeen(id, {
        at: later,
        hostname: 'conn-01b',
        capabilities: ['ws', 'h2c'],
      });
      expect(await store.getConnector(id)).toMatchObject({
        lastSeenAt: later,
        hostname: 'conn-01b',
        version: '0.2.0',
        capabilities: ['ws', 'h2c'],
      });
      await expect(store.recordConnectorSeen('unknown', { at })).resolves.toBeUndefined();
      expect(await store.getConnector('unknown')).toBeUndefined();
      await store.recordConnectorSeen(id, { at, tunnels: 3, inFlight: 12 });
      expect(await store.getConnector(id)).toMatchObject({ tunnels: 3, inFlight: 12 });
      await store.recordConnectorSeen(id, { at, tunnels: 0 });
      expect(await store.getConnector(id)).toMatchObject({ tunnels: 0, inFlight: 12 });
    });

    it('keeps tunnels per instance; the record sums those seen within the window', async () => {
      const store = await open();
      const id = connector().id;
      await store.upsertConnector(connector());
      const now = Date.now();
      await store.recordConnectorSeen(id, { at: new Date(now), tunnels: 2, inFlight: 5 });
      await store.recordConnectorSeen(id, {
        at: new Date(now - 1000),
        instance: 'relay-b',
        tunnels: 3,
        inFlight: 1,
      });
      // Seen a minute ago: that instance is gone; it counts no more.
      await store.recordConnectorSeen(id, {
        at: new Date(now - 60_000),
        instance: 'relay-c',
        tunnels: 9,
        inFlight: 9,
      });
      const record = await store.getConnector(id);
      expect(record).toMatchObject({ tunnels: 5, inFlight: 6 });
      expect(record?.instances).toStrictEqual([
        { name: 'relay-a', tunnels: 2, inFlight: 5, seenAt: new Date(now) },
        { name: 'relay-b', tunnels: 3, inFlight: 1, seenAt: new Date(now - 1000) },
      ]);
      expect((await store.listConnectors())[0]).toStrictEqual(record);
      // An upsert (a re-registration, a renewal) leaves the attachments alone.
      await store.upsertConnector(connector({ hostname: 'x' }));
      expect(await store.getConnector(id)).toMatchObject({ tunnels: 5, inFlight: 6 });
      expect(await store.removeInstance('relay-b')).toBe(false); // never heartbeated
      expect(await store.getConnector(id)).toMatchObject({ tunnels: 2, inFlight: 5 });
    });

    it('revokeConnector marks it once and keeps the first time', async () => {
      const store = await open();
      await store.upsertConnector(connector());
      const first = new Date('2030-04-01T00:00:00Z');
      expect(await store.revokeConnector(connector().id, first)).toBe(true);
      expect(await store.revokeConnector(connector().id, new Date('2030-05-01T00:00:00Z'))).toBe(
        true,
      );
      expect((await store.getConnector(connector().id))?.revokedAt).toStrictEqual(first);
      expect(await store.revokeConnector('unknown')).toBe(false);
    });

    it('renewConnectorCertificate keeps the certificate it replaces as the previous one', async () => {
      const store = await open();
      await store.upsertConnector(connector());
      const next = {
        serial: '03ef',
        fingerprint: 'dd'.repeat(32),
        notAfter: new Date('2033-01-01'),
      };
      await store.renewConnectorCertificate(connector().id, next, {
        fingerprint: 'aa'.repeat(32),
        notAfter: new Date('2031-01-01T00:00:00Z'),
      });
      expect(await store.getConnector(connector().id)).toMatchObject({
        certSerial: '03ef',
        certFingerprint: 'dd'.repeat(32),
        certNotAfter: new Date('2033-01-01'),
        previousCert: { fingerprint: 'aa'.repeat(32), notAfter: new Date('2031-01-01T00:00:00Z') },
      });
    });

    it('pruneConnectors removes connectors unseen or revoked before the cut-off, and only those', async () => {
      const store = await open();
      const cut = new Date('2030-06-01T00:00:00Z');
      for (const c of [
        connector({ id: 'seen-recently', lastSeenAt: new Date('2030-06-02') }),
        connector({ id: 'seen-long-ago', lastSeenAt: new Date('2030-05-01') }),
        connector({ id: 'never-seen-old', createdAt: new Date('2030-05-01') }),
        connector({ id: 'never-seen-new', createdAt: new Date('2030-06-02') }),
        connector({
          id: 'revoked-old',
          lastSeenAt: new Date('2030-06-05'),
          revokedAt: new Date('2030-05-20'),
        }),
        connector({ id: 'revoked-new', revokedAt: new Date('2030-06-03') }),
      ])
        await store.upsertConnector(c);
      expect((await store.pruneConnectors(cut)).sort()).toStrictEqual([
        'never-seen-old',
        'revoked-old',
        'seen-long-ago',
      ]);
      expect((await store.listConnectors()).map((c) => c.id).sort()).toStrictEqual([
        'never-seen-new',
        'revoked-new',
        'seen-recently',
      ]);
    });
  });

  describe.skipIf(skip)('instances', () => {
    it('heartbeats list the live ones; remove forgets one and its attachments', async () => {
      const store = await open();
      const startedAt = new Date('2030-01-01T00:00:00Z');
      await store.heartbeatInstance(
        { name: 'relay-a', tunnelUrl: 'wss://a.example:8443', version: '1.0.0', startedAt },
        new Date('2030-01-01T00:01:00Z'),
      );
      await store.heartbeatInstance(
        { name: 'relay-b', version: '1.0.0', startedAt },
        new Date('2030-01-01T00:00:10Z'),
      );
      expect(
        await store.listInstances({ liveSince: new Date('2030-01-01T00:00:30Z') }),
      ).toStrictEqual([
        {
          name: 'relay-a',
          tunnelUrl: 'wss://a.example:8443',
          version: '1.0.0',
          startedAt,
          heartbeatAt: new Date('2030-01-01T00:01:00Z'),
        },
      ]);
      expect(
        (await store.listInstances({ liveSince: new Date(0) })).map((i) => i.name),
      ).toStrictEqual(['relay-a', 'relay-b']);
      await store.upsertConnector(connector());
      await store.recordConnectorSeen(connector().id, {
        at: new Date(),
        instance: 'relay-b',
        tunnels: 2,
      });
      expect(await store.removeInstance('relay-b')).toBe(true);
      expect(await store.removeInstance('relay-b')).toBe(false);
      expect(await store.getConnector(connector().id)).toMatchObject({ tunnels: 0, instances: [] });
      expect(
        (await store.listInstances({ liveSince: new Date(0) })).map((i) => i.name),
      ).toStrictEqual(['relay-a']);
    });
  });

  describe.skipIf(skip)('registration tokens: list and revoke', () => {
    it('list shows only redeemable tokens, oldest first, without secrets', async () => {
      const store = await open();
      const t0 = new Date('2030-01-01T00:00:00Z');
      const a = await store.createRegistrationToken({
        group: 'Default',
        ttlMs: 3_600_000,
        now: t0,
      });
      const b = await store.createRegistrationToken({
        group: 'Berlin',
        ttlMs: 3_600_000,
        now: new Date(t0.getTime() + 1000),
      });
      const short = await store.createRegistrationToken({
        group: 'Default',
        ttlMs: 10_000,
        now: t0,
      });
      const spent = await store.createRegistrationToken({
        group: 'Default',
        ttlMs: 3_600_000,
        now: t0,
      });
      await store.redeemRegistrationToken(spent.id, spent.secret, { now: t0 });
      const later = new Date(t0.getTime() + 60_000);
      const list = await store.listRegistrationTokens(later);
      expect(list).toStrictEqual([
        { id: a.id, group: 'Default', createdAt: t0, expiresAt: a.expiresAt },
        {
          id: b.id,
          group: 'Berlin',
          createdAt: new Date(t0.getTime() + 1000),
          expiresAt: b.expiresAt,
        },
      ]);
      expect(JSON.stringify(list)).not.toContain(a.secret);
      // The expired one is listed while it was still valid.
      expect((await store.listRegistrationTokens(t0)).map((t) => t.id)).toContain(short.id);
    });

    it('a revoked token is refused with APPPROXY_TOKEN_REVOKED; revoke is true once', async () => {
      const store = await open();
      const t = await store.createRegistrationToken({ group: 'Default', ttlMs: 60_000 });
      const spent = await store.createRegistrationToken({ group: 'Default', ttlMs: 60_000 });
      await store.redeemRegistrationToken(spent.id, spent.secret);
      expect(await store.revokeRegistrationToken(t.id)).toBe(true);
      expect(await store.revokeRegistrationToken(t.id)).toBe(false);
      expect(await store.revokeRegistrationToken(spent.id)).toBe(false);
      expect(await store.revokeRegistrationToken('zzzzzzzz')).toBe(false);
      for (const fn of [
        () => store.checkRegistrationToken(t.id, t.secret),
        () => store.redeemRegistrationToken(t.id, t.secret, { connector: connector() }),
      ])
        expect((await tokenError(fn)).code).toBe('APPPROXY_TOKEN_REVOKED');
      // The wrong secret for a revoked id still says only INVALID.
      expect((await tokenError(() => store.checkRegistrationToken(t.id, 'x'))).code).toBe(
        'APPPROXY_TOKEN_INVALID',
      );
      expect(await store.getConnector(connector().id)).toBeUndefined();
      expect(await store.listRegistrationTokens()).toStrictEqual([]);
    });
  });

  describe.skipIf(skip)('admin tokens', () => {
    it('apx_<id>_<secret>: verify gives the record; a wrong secret or malformed token nothing', async () => {
      const store = await open();
      const now = new Date('2030-01-01T00:00:00Z');
      const { token, record } = await store.createAdminToken({
        name: 'ops',
        ttlMs: 3_600_000,
        createdBy: 'cli',
        now,
      });
      expect(token).toMatch(/^apx_[a-z2-7]{8}_[A-Za-z0-9_-]{43}$/);
      expect(record).toStrictEqual({
        id: token.slice(4, 12),
        name: 'ops',
        createdAt: now,
        expiresAt: new Date('2030-01-01T01:00:00Z'),
        createdBy: 'cli',
      });
      const at = new Date('2030-01-01T00:10:00Z');
      expect(await store.verifyAdminToken(token, at)).toStrictEqual({ ...record, lastUsedAt: at });
      const wrong = token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A');
      for (const bad of [
        wrong,
        token.slice(0, -1),
        `apx_zzzzzzzz_${token.slice(13)}`,
        '',
        'apx_',
        token.slice(4),
      ])
        expect(await store.verifyAdminToken(bad, at)).toBeUndefined();
    });

    it('expired and revoked tokens are refused and not listed; revoke by id or name', async () => {
      const store = await open();
      const t0 = new Date();
      const a = await store.createAdminToken({ name: 'ops', now: t0 });
      const b = await store.createAdminToken({ name: 'ci', ttlMs: 60_000, now: t0 });
      const c = await store.createAdminToken({ name: 'backup', now: t0 });
      expect(a.record.expiresAt).toBeUndefined();
      // Same creation time: by id.
      expect((await store.listAdminTokens(t0)).map((r) => r.id)).toStrictEqual(
        [a, b, c].map((t) => t.record.id).sort(),
      );
      const after = new Date(t0.getTime() + 60_000);
      expect(await store.verifyAdminToken(b.token, after)).toBeUndefined();
      expect((await store.listAdminTokens(after)).map((r) => r.name).sort()).toStrictEqual([
        'backup',
        'ops',
      ]);
      expect(await store.revokeAdminToken('ops')).toBe(true);
      expect(await store.revokeAdminToken(c.record.id)).toBe(true);
      expect(await store.revokeAdminToken('ops')).toBe(false);
      expect(await store.revokeAdminToken('nobody')).toBe(false);
      expect(await store.verifyAdminToken(a.token)).toBeUndefined();
      expect(await store.verifyAdminToken(c.token)).toBeUndefined();
      expect(await store.listAdminTokens(after)).toStrictEqual([]);
    });

    it('lastUsedAt is written at most once a minute', async () => {
      const store = await open();
      const t0 = new Date('2030-01-01T00:00:00Z');
      const { token } = await store.createAdminToken({ name: 'ops', now: t0 });
      const at = (s: number) => new Date(t0.getTime() + s * 1000);
      expect((await store.verifyAdminToken(token, at(1)))?.lastUsedAt).toStrictEqual(at(1));
      expect((await store.verifyAdminToken(token, at(30)))?.lastUsedAt).toStrictEqual(at(1));
      expect((await store.listAdminTokens(at(30)))[0]?.lastUsedAt).toStrictEqual(at(1));
      expect((await store.verifyAdminToken(token, at(61)))?.lastUsedAt).toStrictEqual(at(61));
      expect((await store.listAdminTokens(at(62)))[0]?.lastUsedAt).toStrictEqual(at(61));
    });

    it('refuse bad names and ttls', async () => {
      const store = await open();
      for (const name of ['', 'has space', '-lead', 'x'.repeat(65), 'a/b'])
        await expect(store.createAdminToken({ name })).rejects.toThrow(TypeError);
      await expect(store.createAdminToken({ name: 'ok', ttlMs: 0 })).rejects.toThrow(RangeError);
    });
  });

  describe.skipIf(skip)('audit events', () => {
    const t0 = new Date('2020-01-01T00:00:00Z');
    const at = (min: number) => new Date(t0.getTime() + min * 60_000);

    it('round-trip every field; the store fills in id and instance', async () => {
      const store = await open();
      await store.appendAudit([
        {
          at: at(0),
          type: 'access.refused',
          actor: 'user:alice',
          user: 'alice',
          app: 'Wiki',
          clientAddress: '203.0.113.7',
          code: 'NOT_ASSIGNED',
          connector: 'c-1',
          group: 'Default',
          correlationId: 'abc123',
          detail: { count: 3, ok: false, note: 'x', none: null },
        },
        { type: 'admin.config.reloaded', actor: 'cli' },
      ]);
      const [reload, refused] = await store.queryAudit({});
      expect(refused).toStrictEqual({
        id: expect.any(String),
        at: at(0),
        type: 'access.refused',
        instance: 'relay-a',
        actor: 'user:alice',
        user: 'alice',
        app: 'Wiki',
        clientAddress: '203.0.113.7',
        code: 'NOT_ASSIGNED',
        connector: 'c-1',
        group: 'Default',
        correlationId: 'abc123',
        detail: { count: 3, ok: false, note: 'x', none: null },
      });
      // `at` defaults to now.
      expect(reload).toStrictEqual({
        id: expect.any(String),
        at: expect.any(Date),
        type: 'admin.config.reloaded',
        instance: 'relay-a',
        actor: 'cli',
      });
      expect(Math.abs(reload!.at.getTime() - Date.now())).toBeLessThan(60_000);
      expect(reload!.id > refused!.id).toBe(true);
    });

    it('newest first (ids keep the order of one writer within a millisecond), with a limit', async () => {
      const store = await open();
      await store.appendAudit(
        Array.from({ length: 5 }, (_, i) => ({
          at: at(0),
          type: 'signin.succeeded' as const,
          user: `u${i}`,
        })),
      );
      await store.appendAudit([{ at: at(1), type: 'signout', user: 'late' }]);
      expect((await store.queryAudit({})).map((e) => e.user)).toStrictEqual([
        'late',
        'u4',
        'u3',
        'u2',
        'u1',
        'u0',
      ]);
      expect((await store.queryAudit({ limit: 2 })).map((e) => e.user)).toStrictEqual([
        'late',
        'u4',
      ]);
    });

    it('filter by time, user, app and type (exact, or a prefix at a dot)', async () => {
      const store = await open();
      await store.appendAudit([
        { at: at(0), type: 'signin.succeeded', user: 'alice', app: 'Wiki' },
        { at: at(1), type: 'signin.failed', user: 'bob', app: 'Wiki', code: 'SIGN_IN_FAILED' },
        { at: at(2), type: 'access.refused', user: 'alice', app: 'Crm', code: 'NOT_ASSIGNED' },
        { at: at(3), type: 'admin.connector.deleted', actor: 'cli', connector: 'c-1' },
        { at: at(4), type: 'signout', user: 'alice', app: 'Wiki' },
      ]);
      const types = async (q: Parameters<StateStore['queryAudit']>[0]) =>
        (await store.queryAudit(q)).map((e) => e.type);
      expect(await types({ since: at(1), until: at(3) })).toStrictEqual([
        'access.refused',
        'signin.failed',
      ]);
      expect(await types({ user: 'alice' })).toStrictEqual([
        'signout',
        'access.refused',
        'signin.succeeded',
      ]);
      expect(await types({ app: 'Wiki', user: 'alice' })).toStrictEqual([
        'signout',
        'signin.succeeded',
      ]);
      expect(await types({ type: 'signin.' })).toStrictEqual(['signin.failed', 'signin.succeeded']);
      expect(await types({ type: 'signin' })).toStrictEqual(['signin.failed', 'signin.succeeded']);
      expect(await types({ type: 'signin.failed' })).toStrictEqual(['signin.failed']);
      expect(await types({ type: 'sign' })).toStrictEqual([]);
      expect(await types({ type: 'admin' })).toStrictEqual(['admin.connector.deleted']);
      // Wildcards are plain characters.
      expect(await types({ type: '%' })).toStrictEqual([]);
      expect(await types({ user: '%' })).toStrictEqual([]);
    });

    it('limit defaults to 200 and is at most 1000', async () => {
      const store = await open();
      await store.appendAudit(
        Array.from({ length: 1005 }, (_, i) => ({ at: at(i), type: 'signout' as const })),
      );
      expect(await store.queryAudit({})).toHaveLength(200);
      expect(await store.queryAudit({ limit: 5000 })).toHaveLength(1000);
      expect(await store.queryAudit({ limit: 0 })).toHaveLength(200);
    });

    it('prune removes events before the cut-off and says how many', async () => {
      const store = await open();
      await store.appendAudit([0, 1, 2, 3].map((m) => ({ at: at(m), type: 'signout' as const })));
      expect(await store.pruneAudit(at(2))).toBe(2);
      expect((await store.queryAudit({})).map((e) => e.at)).toStrictEqual([at(3), at(2)]);
      expect(await store.pruneAudit(at(2))).toBe(0);
    });

    it('events written by one store are read by another (relay and CLI)', async () => {
      const relay = await open();
      const cli = await open({ instance: 'cli-host' });
      await cli.appendAudit([{ type: 'admin.connector.deleted', actor: 'cli' }]);
      expect((await relay.queryAudit({})).map((e) => [e.type, e.instance])).toStrictEqual([
        ['admin.connector.deleted', 'cli-host'],
      ]);
    });
  });

  describe.skipIf(skip)('materials', () => {
    it('first writer wins; put replaces', async () => {
      const a = await open();
      const b = await open();
      expect(await a.getMaterial('connector-ca')).toBeUndefined();
      expect(await a.putMaterialIfAbsent('connector-ca', 'first')).toBe('first');
      expect(await b.putMaterialIfAbsent('connector-ca', 'second')).toBe('first');
      expect(await b.getMaterial('connector-ca')).toBe('first');
      await b.putMaterial('acme/account', 'key-1');
      await a.putMaterial('acme/account', 'key-2');
      expect(await b.getMaterial('acme/account')).toBe('key-2');
      expect(await a.deleteMaterial('acme/account')).toBe(true);
      expect(await b.getMaterial('acme/account')).toBeUndefined();
      expect(await b.deleteMaterial('acme/account')).toBe(false);
    });

    it('watch tells of a material written or removed by the other (ACME certificates)', async () => {
      const a = await open();
      const b = await open({ instance: 'relay-b' });
      let changes = 0;
      const stop = a.watch(() => changes++);
      onTestFinished(stop);
      if (backend.name === 'postgres') {
        await listening(database!);
        await expect.poll(() => changes).toBe(1);
      }
      const before = changes;
      await b.putMaterial('acme/cert/a.test', 'pem');
      await expect.poll(() => changes).toBeGreaterThan(before);
      const written = changes;
      await b.deleteMaterial('acme/cert/a.test');
      await expect.poll(() => changes).toBeGreaterThan(written);
    });
  });

  describe.skipIf(skip)('two stores on one state (relay and CLI, or two instances)', () => {
    it('see each other’s writes', async () => {
      const relay = await open();
      const cli = await open({ instance: 'relay-b' });
      const { id, secret } = await cli.createRegistrationToken({ group: 'Default', ttlMs: 60_000 });
      expect(await relay.redeemRegistrationToken(id, secret)).toStrictEqual({ group: 'Default' });
      expect((await tokenError(() => cli.redeemRegistrationToken(id, secret))).code).toBe(
        'APPPROXY_TOKEN_USED',
      );
      await relay.upsertConnector(connector());
      expect(await cli.listConnectors()).toStrictEqual([connector()]);
      await cli.recordConnectorSeen(connector().id, { at: new Date('2030-03-01T00:00:00Z') });
      expect((await relay.getConnector(connector().id))?.lastSeenAt).toStrictEqual(
        new Date('2030-03-01T00:00:00Z'),
      );
    });

    it('watch tells of a revocation by the other within a second, and stops when asked', async () => {
      const relay = await open();
      const cli = await open({ instance: 'relay-b' });
      await relay.upsertConnector(connector());
      let changes = 0;
      let told: () => void = () => {};
      const stop = relay.watch(() => {
        changes++;
        told();
      });
      // PostgreSQL: LISTEN is on its own connection; wait until the server has it.
      if (backend.name === 'postgres') {
        await listening(database!);
        // Once listening it tells "something may have changed" (what happened before).
        await expect.poll(() => changes).toBe(1);
      }
      const seen = new Promise<void>((resolve) => (told = resolve));
      const revokedAt = Date.now();
      await cli.revokeConnector(connector().id);
      await seen;
      expect(Date.now() - revokedAt).toBeLessThan(1000);
      expect((await relay.getConnector(connector().id))?.revokedAt).toBeInstanceOf(Date);
      stop();
      const after = changes;
      await cli.upsertConnector(connector({ id: 'another' }));
      await new Promise((r) => setTimeout(r, 600));
      expect(changes).toBe(after);
    });
  });
});

describe('sqlite only', () => {
  const open = async (dir = stateDir) => {
    const store = await openStateStore(dir);
    opened.push(store);
    return store;
  };

  it('creates the directory (0700) and a WAL database (0600) with the current schema', async () => {
    await open();
    expect(statSync(stateDir).mode & 0o777).toBe(0o700);
    expect(statSync(join(stateDir, STATE_DB_FILE)).mode & 0o777).toBe(0o600);
    const raw = new DatabaseSync(join(stateDir, STATE_DB_FILE));
    try {
      expect(raw.prepare('PRAGMA journal_mode').get()).toEqual({ journal_mode: 'wal' });
      expect(raw.prepare('PRAGMA user_version').get()).toEqual({ user_version: 4 });
    } finally {
      raw.close();
    }
  });

  it('upgrades a database of schema 1 and keeps its connectors', async () => {
    mkdirSync(stateDir, { recursive: true });
    const raw = new DatabaseSync(join(stateDir, STATE_DB_FILE));
    raw.exec(`CREATE TABLE registration_tokens (id TEXT PRIMARY KEY, secret_sha256 BLOB NOT NULL,
        connector_group TEXT NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
        used_at INTEGER) STRICT;
      CREATE TABLE connectors (id TEXT PRIMARY KEY, connector_group TEXT NOT NULL,
        cert_serial TEXT NOT NULL, cert_fingerprint TEXT NOT NULL, cert_not_after INTEGER NOT NULL,
        created_at INTEGER NOT NULL, last_seen_at INTEGER, hostname TEXT, version TEXT,
        capabilities TEXT NOT NULL DEFAULT '[]', revoked_at INTEGER) STRICT;
      INSERT INTO connectors (id, connector_group, cert_serial, cert_fingerprint, cert_not_after, created_at)
        VALUES ('old', 'Default', '01', 'ee', 1900000000000, 1800000000000);
      PRAGMA user_version = 1;`);
    raw.close();
    expect(await (await open()).getConnector('old')).toStrictEqual({
      id: 'old',
      group: 'Default',
      certSerial: '01',
      certFingerprint: 'ee',
      certNotAfter: new Date(1900000000000),
      createdAt: new Date(1800000000000),
      capabilities: [],
      tunnels: 0,
      inFlight: 0,
      instances: [],
    });
  });

  it('refuses a database written by a newer version', async () => {
    await (await open()).close();
    const raw = new DatabaseSync(join(stateDir, STATE_DB_FILE));
    raw.exec('PRAGMA user_version = 99');
    raw.close();
    expect((await storeError(() => openStateStore(stateDir))).code).toBe(
      'APPPROXY_STATE_INCOMPATIBLE',
    );
  });

  it('tokens are stored hashed: no file of the state directory contains a secret', async () => {
    const store = await open();
    const secrets: string[] = [];
    for (let i = 0; i < 5; i++) {
      secrets.push(
        (await store.createRegistrationToken({ group: 'Default', ttlMs: 60_000 })).secret,
      );
      const { token } = await store.createAdminToken({ name: `ops${i}` });
      await store.verifyAdminToken(token);
      secrets.push(token.slice(13));
    }
    const files = readdirSync(stateDir);
    expect(files).toContain(STATE_DB_FILE);
    const bytes = Buffer.concat(files.map((f) => readFileSync(join(stateDir, f))));
    for (const secret of secrets) {
      expect(bytes.includes(Buffer.from(secret))).toBe(false);
      expect(bytes.includes(Buffer.from(secret, 'base64url'))).toBe(false);
    }
    // The check itself can fail: the group name, stored in plain text, is found.
    expect(bytes.includes(Buffer.from('Default'))).toBe(true);
  });

  it('watch reports the other connection’s writes and its own revocations only', async () => {
    const relay = await open();
    const cli = await open();
    const own = connector({ id: 'c-own' });
    await relay.upsertConnector(connector());
    await relay.upsertConnector(own);
    let changes = 0;
    const stop = relay.watch(() => changes++);
    await relay.recordConnectorSeen(connector().id, { at: new Date() });
    await new Promise((r) => setTimeout(r, 600));
    expect(changes).toBe(0);
    await cli.revokeConnector(connector().id);
    await new Promise((r) => setTimeout(r, 600));
    expect(changes).toBe(1);
    // A revocation through this store (the admin API's) is told at once, not by the poll.
    await relay.revokeConnector(own.id);
    await new Promise((r) => setImmediate(r));
    expect(changes).toBe(2);
    // Nothing to revoke: nothing to tell.
    await relay.revokeConnector('c-none');
    await new Promise((r) => setTimeout(r, 600));
    expect(changes).toBe(2);
    stop();
  });

  it('waits for a writer that holds the lock instead of failing with SQLITE_BUSY', async () => {
    const store = await open();
    // Another thread holds the write lock for 300 ms, as a concurrent CLI would.
    const worker = new Worker(
      `const { DatabaseSync } = require('node:sqlite');
       const { parentPort, workerData } = require('node:worker_threads');
       const db = new DatabaseSync(workerData);
       db.exec('BEGIN IMMEDIATE');
       parentPort.postMessage('locked');
       Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
       db.exec('COMMIT');
       db.close();`,
      { eval: true, workerData: join(stateDir, STATE_DB_FILE) },
    );
    const exited = new Promise((resolve, reject) =>
      worker.once('exit', resolve).once('error', reject),
    );
    await new Promise((resolve, reject) => worker.once('message', resolve).once('error', reject));
    const started = Date.now();
    const token = await store.createRegistrationToken({ group: 'Default', ttlMs: 60_000 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    expect(await store.redeemRegistrationToken(token.id, token.secret)).toStrictEqual({
      group: 'Default',
    });
    await exited;
  });
});

describe.skipIf(!havePostgres)('postgres only', () => {
  const options = async (over: Partial<StateStoreOptions> = {}): Promise<StateStoreOptions> => ({
    stateDir,
    postgres: { url: (database ??= await server!.createDatabase()) },
    storeKey: STORE_KEY,
    ...over,
  });
  const open = async (over: Partial<StateStoreOptions> = {}) => {
    const store = await openStateStore(await options(over));
    opened.push(store);
    return store;
  };
  const raw = async <T extends pg.QueryResultRow>(sql: string): Promise<T[]> => {
    const client = new pg.Client({ connectionString: database });
    await client.connect();
    try {
      return (await client.query<T>(sql)).rows;
    } finally {
      await client.end();
    }
  };

  it('migrates an empty database once when several instances open it at the same time', async () => {
    database = await server!.createDatabase();
    const stores = await Promise.all(Array.from({ length: 4 }, () => open()));
    expect(stores).toHaveLength(4);
    expect(await raw('SELECT version FROM appproxy_schema')).toStrictEqual([{ version: 2 }]);
    const t = await stores[0]!.createRegistrationToken({ group: 'Default', ttlMs: 60_000 });
    expect(await stores[3]!.redeemRegistrationToken(t.id, t.secret)).toStrictEqual({
      group: 'Default',
    });
  });

  it('refuses a schema written by a newer version', async () => {
    await open();
    await raw('UPDATE appproxy_schema SET version = 99');
    expect((await storeError(async () => openStateStore(await options()))).code).toBe(
      'APPPROXY_STATE_INCOMPATIBLE',
    );
  });

  it('admin tokens are stored hashed: no row holds the secret', async () => {
    const store = await open();
    const { token } = await store.createAdminToken({ name: 'ops' });
    expect(await store.verifyAdminToken(token)).toBeDefined();
    const rows = await raw<Record<string, unknown>>('SELECT * FROM admin_tokens');
    expect(rows).toHaveLength(1);
    const text = JSON.stringify(rows, (_k, v: unknown) =>
      v && typeof v === 'object' && 'type' in v && v.type === 'Buffer'
        ? Buffer.from((v as unknown as { data: number[] }).data).toString('latin1')
        : v,
    );
    expect(text).toContain('ops');
    expect(text).not.toContain(token.slice(13));
    expect(text).not.toContain(Buffer.from(token.slice(13), 'base64url').toString('latin1'));
  });

  it('a token created at one instance is redeemed at another, once', async () => {
    const a = await open({ instance: 'a' });
    const b = await open({ instance: 'b' });
    const t = await a.createRegistrationToken({ group: 'Default', ttlMs: 60_000 });
    expect(await b.redeemRegistrationToken(t.id, t.secret)).toStrictEqual({ group: 'Default' });
    expect((await tokenError(() => a.redeemRegistrationToken(t.id, t.secret))).code).toBe(
      'APPPROXY_TOKEN_USED',
    );
    // Stored hashed here too.
    const rows = await raw<{ secret_sha256: Buffer }>(
      'SELECT secret_sha256 FROM registration_tokens',
    );
    expect(rows[0]!.secret_sha256.includes(Buffer.from(t.secret))).toBe(false);
  });

  it('materials are sealed: the raw row holds no PEM text', async () => {
    const store = await open();
    const pem =
      '-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49\n-----END PRIVATE KEY-----\n';
    await store.putMaterialIfAbsent('connector-ca', pem);
    const rows = await raw<{ value: Buffer }>(
      `SELECT value FROM materials WHERE name = 'connector-ca'`,
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]!.value.includes(Buffer.from('BEGIN'))).toBe(false);
    expect(rows[0]!.value.includes(Buffer.from('MIGHAgEAMBMG'))).toBe(false);
    expect(await store.getMaterial('connector-ca')).toBe(pem);
  });

  it('a wrong storeKey is refused at open, naming relay.storeKey and not the key', async () => {
    await (await open()).putMaterial('session-secret', 'abc');
    const wrongKey = 'another-store-key-0123456789abcdefghijklmn';
    const err = await storeError(async () => openStateStore(await options({ storeKey: wrongKey })));
    expect(err.code).toBe('APPPROXY_STORE_KEY_WRONG');
    expect(err.message).toContain('relay.storeKey');
    expect(err.message).not.toContain(wrongKey);
  });

  it('no storeKey, or a short one: APPPROXY_STORE_KEY_MISSING', async () => {
    const { storeKey: _, ...noKey } = await options();
    expect((await storeError(() => openStateStore(noKey))).code).toBe('APPPROXY_STORE_KEY_MISSING');
    expect(
      (await storeError(async () => openStateStore(await options({ storeKey: 'short' })))).code,
    ).toBe('APPPROXY_STORE_KEY_MISSING');
  });

  it('an unreachable server or a wrong password: APPPROXY_STORE_UNAVAILABLE, no password in the message', async () => {
    const badPassword = 'n0t-the-Passw0rd-xyzzy';
    const url = new URL(server!.url);
    url.password = badPassword;
    const err = await storeError(async () =>
      openStateStore(await options({ postgres: { url: url.toString() } })),
    );
    expect(err.code).toBe('APPPROXY_STORE_UNAVAILABLE');
    expect(err.message).toContain(`127.0.0.1:${server!.port}`);
    expect(err.message).not.toContain(badPassword);
    expect(JSON.stringify(err)).not.toContain(badPassword);
    const closed = new URL(server!.url);
    closed.port = '1';
    const down = await storeError(async () =>
      openStateStore(await options({ postgres: { url: closed.toString() } })),
    );
    expect(down.code).toBe('APPPROXY_STORE_UNAVAILABLE');
    expect(down.message).not.toContain(server!.password);
  });
});
