import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { Worker } from 'node:worker_threads';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  STATE_DB_FILE,
  TokenError,
  openStateStore,
  type ConnectorRecord,
  type StateStore,
} from './index.js';

let root: string;
let stateDir: string;
const opened: StateStore[] = [];
const open = (dir = stateDir) => {
  const store = openStateStore(dir);
  opened.push(store);
  return store;
};

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'appproxy-state-'));
  stateDir = join(root, 'var/relay');
});
afterEach(() => {
  for (const store of opened.splice(0)) store.close();
  rmSync(root, { recursive: true, force: true });
});

function tokenError(fn: () => unknown): TokenError {
  try {
    fn();
  } catch (err) {
    if (err instanceof TokenError) return err;
    throw err;
  }
  throw new Error('expected a TokenError');
}

describe('openStateStore', () => {
  it('creates the directory (0700) and a WAL database (0600) with the current schema', () => {
    open();
    expect(statSync(stateDir).mode & 0o777).toBe(0o700);
    expect(statSync(join(stateDir, STATE_DB_FILE)).mode & 0o777).toBe(0o600);
    const raw = new DatabaseSync(join(stateDir, STATE_DB_FILE));
    try {
      expect(raw.prepare('PRAGMA journal_mode').get()).toEqual({ journal_mode: 'wal' });
      expect(raw.prepare('PRAGMA user_version').get()).toEqual({ user_version: 2 });
    } finally {
      raw.close();
    }
  });

  it('reopens an existing database without migrating again', () => {
    const first = open();
    const { id, secret } = first.createRegistrationToken({ group: 'Default', ttlMs: 60_000 });
    first.close();
    expect(open().redeemRegistrationToken(id, secret)).toStrictEqual({ group: 'Default' });
  });

  it('upgrades a database of schema 1 and keeps its connectors', () => {
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
    expect(open().getConnector('old')).toStrictEqual({
      id: 'old',
      group: 'Default',
      certSerial: '01',
      certFingerprint: 'ee',
      certNotAfter: new Date(1900000000000),
      createdAt: new Date(1800000000000),
      capabilities: [],
      tunnels: 0,
      inFlight: 0,
    });
  });

  it('refuses a database written by a newer version', () => {
    open().close();
    const raw = new DatabaseSync(join(stateDir, STATE_DB_FILE));
    raw.exec('PRAGMA user_version = 99');
    raw.close();
    expect(() => openStateStore(stateDir)).toThrow(
      expect.objectContaining({ code: 'APPPROXY_STATE_INCOMPATIBLE' }),
    );
  });

  it('close is idempotent', () => {
    const store = open();
    store.close();
    expect(() => store.close()).not.toThrow();
  });
});

describe('registration tokens', () => {
  it('have an 8-character base32 id and a 32-byte base64url secret', () => {
    const now = new Date('2030-01-01T00:00:00Z');
    const t = open().createRegistrationToken({ group: 'Default', ttlMs: 3_600_000, now });
    expect(t.id).toMatch(/^[a-z2-7]{8}$/);
    expect(t.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(t.secret, 'base64url')).toHaveLength(32);
    expect(t.expiresAt).toStrictEqual(new Date('2030-01-01T01:00:00Z'));
  });

  it('check does not spend; redeem with a connector records both or neither', () => {
    const store = open();
    const { id, secret } = store.createRegistrationToken({ group: 'Berlin', ttlMs: 60_000 });
    expect(store.checkRegistrationToken(id, secret)).toStrictEqual({ group: 'Berlin' });
    expect(store.checkRegistrationToken(id, secret)).toStrictEqual({ group: 'Berlin' });
    expect(tokenError(() => store.checkRegistrationToken(id, 'wrong')).code).toBe(
      'APPPROXY_TOKEN_INVALID',
    );
    const connector = {
      id: 'c-1',
      group: 'ignored: the token says',
      certSerial: '01',
      certFingerprint: 'ab',
      certNotAfter: new Date('2031-01-01T00:00:00Z'),
      createdAt: new Date('2030-01-01T00:00:00Z'),
      capabilities: [],
      tunnels: 0,
      inFlight: 0,
    };
    expect(store.redeemRegistrationToken(id, secret, { connector })).toStrictEqual({
      group: 'Berlin',
    });
    expect(store.getConnector('c-1')?.group).toBe('Berlin');
    // Spent: a second redeem records nothing.
    expect(
      tokenError(() =>
        store.redeemRegistrationToken(id, secret, { connector: { ...connector, id: 'c-2' } }),
      ).code,
    ).toBe('APPPROXY_TOKEN_USED');
    expect(tokenError(() => store.checkRegistrationToken(id, secret)).code).toBe(
      'APPPROXY_TOKEN_USED',
    );
    expect(store.getConnector('c-2')).toBeUndefined();
  });

  it('redeem once: the second time is APPPROXY_TOKEN_USED', () => {
    const store = open();
    const { id, secret } = store.createRegistrationToken({ group: 'Berlin', ttlMs: 60_000 });
    expect(store.redeemRegistrationToken(id, secret)).toStrictEqual({ group: 'Berlin' });
    expect(tokenError(() => store.redeemRegistrationToken(id, secret)).code).toBe(
      'APPPROXY_TOKEN_USED',
    );
  });

  it('expire: APPPROXY_TOKEN_EXPIRED at the expiry instant, fine just before', () => {
    const store = open();
    const now = new Date('2030-01-01T00:00:00Z');
    const a = store.createRegistrationToken({ group: 'Default', ttlMs: 1_000, now });
    const b = store.createRegistrationToken({ group: 'Default', ttlMs: 1_000, now });
    expect(
      store.redeemRegistrationToken(a.id, a.secret, { now: new Date(now.getTime() + 999) }),
    ).toStrictEqual({ group: 'Default' });
    const err = tokenError(() =>
      store.redeemRegistrationToken(b.id, b.secret, { now: new Date(now.getTime() + 1_000) }),
    );
    expect(err.code).toBe('APPPROXY_TOKEN_EXPIRED');
    // An expired token stays unspent: still EXPIRED, never USED.
    expect(
      tokenError(() =>
        store.redeemRegistrationToken(b.id, b.secret, { now: new Date(now.getTime() + 5_000) }),
      ).code,
    ).toBe('APPPROXY_TOKEN_EXPIRED');
  });

  it('a wrong secret or an unknown id is APPPROXY_TOKEN_INVALID, and spends nothing', () => {
    const store = open();
    const { id, secret } = store.createRegistrationToken({ group: 'Default', ttlMs: 60_000 });
    const wrong = `${secret.slice(0, -1)}${secret.endsWith('A') ? 'B' : 'A'}`;
    expect(tokenError(() => store.redeemRegistrationToken(id, wrong)).code).toBe(
      'APPPROXY_TOKEN_INVALID',
    );
    expect(tokenError(() => store.redeemRegistrationToken(id, '')).code).toBe(
      'APPPROXY_TOKEN_INVALID',
    );
    expect(tokenError(() => store.redeemRegistrationToken('aaaaaaaa', secret)).code).toBe(
      'APPPROXY_TOKEN_INVALID',
    );
    expect(tokenError(() => store.redeemRegistrationToken("x' OR 1=1 --", secret)).code).toBe(
      'APPPROXY_TOKEN_INVALID',
    );
    expect(store.redeemRegistrationToken(id, secret)).toStrictEqual({ group: 'Default' });
    // Once used, a wrong secret still says INVALID: the state is only told to the holder.
    expect(tokenError(() => store.redeemRegistrationToken(id, wrong)).code).toBe(
      'APPPROXY_TOKEN_INVALID',
    );
  });

  it('error messages never contain the secret', () => {
    const store = open();
    const { id, secret } = store.createRegistrationToken({ group: 'Default', ttlMs: 60_000 });
    store.redeemRegistrationToken(id, secret);
    expect(tokenError(() => store.redeemRegistrationToken(id, secret)).message).not.toContain(
      secret,
    );
  });

  it('are stored hashed: no file of the state directory contains a secret', () => {
    const store = open();
    const secrets = Array.from(
      { length: 5 },
      () => store.createRegistrationToken({ group: 'Default', ttlMs: 60_000 }).secret,
    );
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

  it('refuse nonsense options', () => {
    const store = open();
    expect(() => store.createRegistrationToken({ group: 'Default', ttlMs: 0 })).toThrow(RangeError);
    expect(() => store.createRegistrationToken({ group: 'Default', ttlMs: Number.NaN })).toThrow(
      RangeError,
    );
    expect(() => store.createRegistrationToken({ group: '', ttlMs: 1_000 })).toThrow(TypeError);
  });
});

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
  ...over,
});

describe('connectors', () => {
  it('upsert, get and list round-trip every field', () => {
    const store = open();
    const full = connector({
      lastSeenAt: new Date('2030-01-02T00:00:00Z'),
      hostname: 'conn-01.corp.local',
      version: '0.1.0',
      capabilities: ['ws', 'kcd'],
      revokedAt: new Date('2030-01-03T00:00:00Z'),
      previousCert: { fingerprint: 'cc'.repeat(32), notAfter: new Date('2030-06-01T00:00:00Z') },
      tunnels: 2,
      inFlight: 7,
    });
    const minimal = connector({ id: 'second', createdAt: new Date('2030-01-05T00:00:00Z') });
    store.upsertConnector(minimal);
    store.upsertConnector(full);
    expect(store.getConnector(full.id)).toStrictEqual(full);
    expect(store.getConnector('second')).toStrictEqual(minimal);
    expect(store.getConnector('nope')).toBeUndefined();
    expect(store.listConnectors()).toStrictEqual([full, minimal]);
  });

  it('upsert replaces the record with the same id (e.g. a new certificate)', () => {
    const store = open();
    store.upsertConnector(connector({ hostname: 'old' }));
    const renewed = connector({
      certSerial: '02cd',
      certFingerprint: 'bb'.repeat(32),
      certNotAfter: new Date('2032-01-01T00:00:00Z'),
    });
    store.upsertConnector(renewed);
    expect(store.listConnectors()).toStrictEqual([renewed]);
  });

  it('recordConnectorSeen updates what it is given and keeps the rest', () => {
    const store = open();
    store.upsertConnector(
      connector({ hostname: 'conn-01', version: '0.1.0', capabilities: ['ws'] }),
    );
    const at = new Date('2030-02-01T12:00:00Z');
    store.recordConnectorSeen(connector().id, { at, version: '0.2.0' });
    expect(store.getConnector(connector().id)).toMatchObject({
      lastSeenAt: at,
      hostname: 'conn-01',
      version: '0.2.0',
      capabilities: ['ws'],
    });
    const later = new Date('2030-02-01T12:05:00Z');
    store.recordConnectorSeen(connector().id, {
      at: later,
      hostname: 'conn-01b',
      capabilities: ['ws', 'h2c'],
    });
    expect(store.getConnector(connector().id)).toMatchObject({
      lastSeenAt: later,
      hostname: 'conn-01b',
      version: '0.2.0',
      capabilities: ['ws', 'h2c'],
    });
    expect(() => store.recordConnectorSeen('unknown', { at })).not.toThrow();
    expect(store.getConnector('unknown')).toBeUndefined();
    store.recordConnectorSeen(connector().id, { at, tunnels: 3, inFlight: 12 });
    expect(store.getConnector(connector().id)).toMatchObject({ tunnels: 3, inFlight: 12 });
    store.recordConnectorSeen(connector().id, { at, tunnels: 0 });
    expect(store.getConnector(connector().id)).toMatchObject({ tunnels: 0, inFlight: 12 });
  });

  it('revokeConnector marks it once and keeps the first time', () => {
    const store = open();
    store.upsertConnector(connector());
    const first = new Date('2030-04-01T00:00:00Z');
    expect(store.revokeConnector(connector().id, first)).toBe(true);
    expect(store.revokeConnector(connector().id, new Date('2030-05-01T00:00:00Z'))).toBe(true);
    expect(store.getConnector(connector().id)?.revokedAt).toStrictEqual(first);
    expect(store.revokeConnector('unknown')).toBe(false);
  });

  it('renewConnectorCertificate keeps the certificate it replaces as the previous one', () => {
    const store = open();
    store.upsertConnector(connector());
    const next = { serial: '03ef', fingerprint: 'dd'.repeat(32), notAfter: new Date('2033-01-01') };
    store.renewConnectorCertificate(connector().id, next, {
      fingerprint: 'aa'.repeat(32),
      notAfter: new Date('2031-01-01T00:00:00Z'),
    });
    expect(store.getConnector(connector().id)).toMatchObject({
      certSerial: '03ef',
      certFingerprint: 'dd'.repeat(32),
      certNotAfter: new Date('2033-01-01'),
      previousCert: { fingerprint: 'aa'.repeat(32), notAfter: new Date('2031-01-01T00:00:00Z') },
    });
  });

  it('pruneConnectors removes connectors unseen or revoked before the cut-off, and only those', () => {
    const store = open();
    const cut = new Date('2030-06-01T00:00:00Z');
    store.upsertConnector(connector({ id: 'seen-recently', lastSeenAt: new Date('2030-06-02') }));
    store.upsertConnector(connector({ id: 'seen-long-ago', lastSeenAt: new Date('2030-05-01') }));
    store.upsertConnector(connector({ id: 'never-seen-old', createdAt: new Date('2030-05-01') }));
    store.upsertConnector(connector({ id: 'never-seen-new', createdAt: new Date('2030-06-02') }));
    store.upsertConnector(
      connector({
        id: 'revoked-old',
        lastSeenAt: new Date('2030-06-05'),
        revokedAt: new Date('2030-05-20'),
      }),
    );
    store.upsertConnector(connector({ id: 'revoked-new', revokedAt: new Date('2030-06-03') }));
    expect(store.pruneConnectors(cut).sort()).toStrictEqual([
      'never-seen-old',
      'revoked-old',
      'seen-long-ago',
    ]);
    expect(
      store
        .listConnectors()
        .map((c) => c.id)
        .sort(),
    ).toStrictEqual(['never-seen-new', 'revoked-new', 'seen-recently']);
  });
});

describe('two stores on one directory (relay and CLI)', () => {
  it('see each other’s writes', () => {
    const relay = open();
    const cli = open();
    const { id, secret } = cli.createRegistrationToken({ group: 'Default', ttlMs: 60_000 });
    expect(relay.redeemRegistrationToken(id, secret)).toStrictEqual({ group: 'Default' });
    expect(tokenError(() => cli.redeemRegistrationToken(id, secret)).code).toBe(
      'APPPROXY_TOKEN_USED',
    );
    relay.upsertConnector(connector());
    expect(cli.listConnectors()).toStrictEqual([connector()]);
    cli.recordConnectorSeen(connector().id, { at: new Date('2030-03-01T00:00:00Z') });
    expect(relay.getConnector(connector().id)?.lastSeenAt).toStrictEqual(
      new Date('2030-03-01T00:00:00Z'),
    );
  });

  it('dataVersion changes when the other one commits, not on its own writes', () => {
    const relay = open();
    const cli = open();
    relay.upsertConnector(connector());
    const before = relay.dataVersion();
    relay.recordConnectorSeen(connector().id, { at: new Date() });
    expect(relay.dataVersion()).toBe(before);
    cli.revokeConnector(connector().id);
    expect(relay.dataVersion()).not.toBe(before);
  });

  it('waits for a writer that holds the lock instead of failing with SQLITE_BUSY', async () => {
    const store = open();
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
    const token = store.createRegistrationToken({ group: 'Default', ttlMs: 60_000 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    expect(store.redeemRegistrationToken(token.id, token.secret)).toStrictEqual({
      group: 'Default',
    });
    await exited;
  });
});
