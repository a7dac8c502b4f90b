import { createHash, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { StateStoreError, TokenError } from './errors.js';
import { ensureStateDir } from './state-dir.js';

/** A registered connector, as the relay remembers it. */
export interface ConnectorRecord {
  /** Also the common name of its client certificate. */
  id: string;
  group: string;
  certSerial: string;
  /** SHA-256 of the certificate the connector must present; a new one replaces the old. */
  certFingerprint: string;
  certNotAfter: Date;
  createdAt: Date;
  lastSeenAt?: Date;
  hostname?: string;
  version?: string;
  capabilities: string[];
  /** Set when the connector was deleted: its certificate is refused. */
  revokedAt?: Date;
  /**
   * The certificate a renewal replaced, still accepted until it expires: the connector may
   * not have its new one yet, or still drains tunnels opened with the old one.
   */
  previousCert?: { fingerprint: string; notAfter: Date };
  /** Tunnels open at `lastSeenAt` (0 once it disconnected). */
  tunnels: number;
  /** Requests in flight through it at `lastSeenAt`. */
  inFlight: number;
}

/** What the relay notes each time it sees a connector. */
export interface ConnectorSeen {
  at: Date;
  hostname?: string;
  version?: string;
  capabilities?: string[];
  tunnels?: number;
  inFlight?: number;
}

/** A registration token as created; the secret is shown once and only its hash is kept. */
export interface CreatedRegistrationToken {
  id: string;
  secret: string;
  expiresAt: Date;
}

/** The relay's durable state: registration tokens and connectors. */
export interface StateStore {
  /**
   * A one-time registration token for a connector of `group`, valid for `ttlMs`.
   * Only SHA-256 of the secret is stored.
   */
  createRegistrationToken(opts: {
    group: string;
    ttlMs: number;
    now?: Date;
  }): CreatedRegistrationToken;
  /**
   * Spends a token (once, even across processes) and says which group the connector joins.
   * @throws {TokenError} `APPPROXY_TOKEN_INVALID` (unknown id or wrong secret),
   * `APPPROXY_TOKEN_EXPIRED`, `APPPROXY_TOKEN_USED`.
   */
  redeemRegistrationToken(
    id: string,
    secret: string,
    opts?: {
      now?: Date;
      /**
       * Recorded in the same transaction: the token is spent if and only if this connector
       * is stored (no spent token without a connector, no connector without a token).
       */
      connector?: ConnectorRecord;
    },
  ): { group: string };
  /**
   * What `redeemRegistrationToken` would say, without spending the token: check it before
   * costly or fallible work (validating the CSR, signing), then redeem.
   * @throws {TokenError} as `redeemRegistrationToken`
   */
  checkRegistrationToken(id: string, secret: string, opts?: { now?: Date }): { group: string };
  /** Inserts or replaces the connector with this id. */
  upsertConnector(c: ConnectorRecord): void;
  getConnector(id: string): ConnectorRecord | undefined;
  /** Every connector, oldest first. */
  listConnectors(): ConnectorRecord[];
  /** Notes a tunnel from the connector; fields left out keep their value. Unknown ids are ignored. */
  recordConnectorSeen(id: string, seen: ConnectorSeen): void;
  /** Marks the connector revoked: its certificates are refused from now on. False for unknown ids. */
  revokeConnector(id: string, at?: Date): boolean;
  /**
   * Records a renewed certificate. The certificate the connector presented when it asked
   * (`replacing`) stays accepted as the previous one until it expires.
   */
  renewConnectorCertificate(
    id: string,
    cert: { serial: string; fingerprint: string; notAfter: Date },
    replacing: { fingerprint: string; notAfter: Date },
  ): void;
  /**
   * Removes connectors not seen since `before` (never seen: registered before it) and those
   * revoked before it. Returns their ids.
   */
  pruneConnectors(before: Date): string[];
  /**
   * Changes whenever another connection (another process, e.g. the CLI) commits: cheap to
   * poll, so the relay notices a revocation at once without re-reading everything.
   */
  dataVersion(): number;
  /** Closes the database; the store cannot be used afterwards. Idempotent. */
  close(): void;
}

/** File name of the database inside the state directory. */
export const STATE_DB_FILE = 'state.db';

/** Used or expired tokens are deleted this long after expiry (until then they say EXPIRED/USED). */
const TOKEN_RETENTION_MS = 7 * 24 * 3600 * 1000;

/**
 * Forward-only schema migrations; `PRAGMA user_version` counts those applied. Append, never
 * edit: a relay may open a database written by an older one.
 */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE registration_tokens (
     id TEXT PRIMARY KEY,
     secret_sha256 BLOB NOT NULL,
     connector_group TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL,
     used_at INTEGER
   ) STRICT;
   CREATE TABLE connectors (
     id TEXT PRIMARY KEY,
     connector_group TEXT NOT NULL,
     cert_serial TEXT NOT NULL,
     cert_fingerprint TEXT NOT NULL,
     cert_not_after INTEGER NOT NULL,
     created_at INTEGER NOT NULL,
     last_seen_at INTEGER,
     hostname TEXT,
     version TEXT,
     capabilities TEXT NOT NULL DEFAULT '[]',
     revoked_at INTEGER
   ) STRICT;`,
  `ALTER TABLE connectors ADD COLUMN prev_cert_fingerprint TEXT;
   ALTER TABLE connectors ADD COLUMN prev_cert_not_after INTEGER;
   ALTER TABLE connectors ADD COLUMN open_tunnels INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE connectors ADD COLUMN in_flight INTEGER NOT NULL DEFAULT 0;`,
];

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';
const TOKEN_ID = /^[a-z2-7]{8}$/;

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest();

interface TokenRow {
  secret_sha256: Uint8Array;
  connector_group: string;
  expires_at: number;
  used_at: number | null;
}

interface ConnectorRow {
  id: string;
  connector_group: string;
  cert_serial: string;
  cert_fingerprint: string;
  cert_not_after: number;
  created_at: number;
  last_seen_at: number | null;
  hostname: string | null;
  version: string | null;
  capabilities: string;
  revoked_at: number | null;
  prev_cert_fingerprint: string | null;
  prev_cert_not_after: number | null;
  open_tunnels: number;
  in_flight: number;
}

/**
 * `node:sqlite`, loaded on first use rather than at import: a static import fails on a Node
 * without it (< 22.5) before the CLI can say which Node it needs, even for `--version`.
 */
function loadSqlite(): typeof import('node:sqlite') {
  // Not createRequire(import.meta.url): the release bundles are CommonJS (no import.meta).
  return process.getBuiltinModule('node:sqlite');
}

/**
 * Opens (creating if needed) the relay's state in `<stateDir>/state.db`: embedded SQLite via
 * `node:sqlite`, WAL mode, a 5 s busy timeout so the running relay and the `token create`
 * CLI can use it at the same time. The directory is created with mode 0700 and the database
 * file is made 0600.
 *
 * @example
 * import { openStateStore } from '@appproxy/config';
 *
 * const store = openStateStore('./var/relay');
 * try {
 *   const { id, secret, expiresAt } = store.createRegistrationToken({ group: 'Default', ttlMs: 3_600_000 });
 *   const { group } = store.redeemRegistrationToken(id, secret); // 'Default'; a second redeem throws APPPROXY_TOKEN_USED
 * } finally {
 *   store.close();
 * }
 */
export function openStateStore(stateDir: string): StateStore {
  ensureStateDir(stateDir);
  const file = join(stateDir, STATE_DB_FILE);
  const db = new (loadSqlite().DatabaseSync)(file);
  try {
    // busy_timeout first: switching to WAL and migrating need locks another process may hold.
    db.exec('PRAGMA busy_timeout = 5000');
    db.exec('PRAGMA journal_mode = WAL');
    db.exec('PRAGMA synchronous = NORMAL');
    migrate(db);
    chmodSync(file, 0o600);
  } catch (err) {
    db.close();
    throw err;
  }
  return new SqliteStateStore(db);
}

class SqliteStateStore implements StateStore {
  readonly #db: DatabaseSync;
  readonly #sql: Record<
    | 'insertToken'
    | 'findToken'
    | 'spendToken'
    | 'pruneTokens'
    | 'upsert'
    | 'getConnector'
    | 'listConnectors'
    | 'seen'
    | 'revoke'
    | 'renew'
    | 'prunable'
    | 'deleteConnector'
    | 'dataVersion',
    StatementSync
  >;
  #closed = false;

  constructor(db: DatabaseSync) {
    this.#db = db;
    this.#sql = {
      insertToken: db.prepare(
        `INSERT INTO registration_tokens (id, secret_sha256, connector_group, created_at, expires_at)
         VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
      ),
      findToken: db.prepare(
        'SELECT secret_sha256, connector_group, expires_at, used_at FROM registration_tokens WHERE id = ?',
      ),
      // The WHERE makes redemption single-use even when two processes race for it.
      spendToken: db.prepare(
        'UPDATE registration_tokens SET used_at = ? WHERE id = ? AND used_at IS NULL AND expires_at > ?',
      ),
      pruneTokens: db.prepare('DELETE FROM registration_tokens WHERE expires_at < ?'),
      upsert: db.prepare(
        `INSERT INTO connectors (id, connector_group, cert_serial, cert_fingerprint, cert_not_after, created_at,
                                 last_seen_at, hostname, version, capabilities, revoked_at,
                                 prev_cert_fingerprint, prev_cert_not_after, open_tunnels, in_flight)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET
           connector_group = excluded.connector_group, cert_serial = excluded.cert_serial,
           cert_fingerprint = excluded.cert_fingerprint, cert_not_after = excluded.cert_not_after,
           created_at = excluded.created_at, last_seen_at = excluded.last_seen_at, hostname = excluded.hostname,
           version = excluded.version, capabilities = excluded.capabilities, revoked_at = excluded.revoked_at,
           prev_cert_fingerprint = excluded.prev_cert_fingerprint,
           prev_cert_not_after = excluded.prev_cert_not_after,
           open_tunnels = excluded.open_tunnels, in_flight = excluded.in_flight`,
      ),
      getConnector: db.prepare('SELECT * FROM connectors WHERE id = ?'),
      listConnectors: db.prepare('SELECT * FROM connectors ORDER BY created_at, id'),
      seen: db.prepare(
        `UPDATE connectors SET last_seen_at = ?, hostname = COALESCE(?, hostname), version = COALESCE(?, version),
           capabilities = COALESCE(?, capabilities), open_tunnels = COALESCE(?, open_tunnels),
           in_flight = COALESCE(?, in_flight) WHERE id = ?`,
      ),
      revoke: db.prepare('UPDATE connectors SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?'),
      renew: db.prepare(
        `UPDATE connectors SET prev_cert_fingerprint = ?, prev_cert_not_after = ?,
           cert_serial = ?, cert_fingerprint = ?, cert_not_after = ? WHERE id = ?`,
      ),
      prunable: db.prepare(
        `SELECT id FROM connectors
         WHERE (revoked_at IS NOT NULL AND revoked_at < ?)
            OR (revoked_at IS NULL AND COALESCE(last_seen_at, created_at) < ?)`,
      ),
      deleteConnector: db.prepare('DELETE FROM connectors WHERE id = ?'),
      dataVersion: db.prepare('PRAGMA data_version'),
    };
  }

  createRegistrationToken({
    group,
    ttlMs,
    now = new Date(),
  }: {
    group: string;
    ttlMs: number;
    now?: Date;
  }): CreatedRegistrationToken {
    if (typeof group !== 'string' || group === '')
      throw new TypeError('group must be a non-empty string');
    if (!Number.isFinite(ttlMs) || ttlMs <= 0)
      throw new RangeError('ttlMs must be a positive number of milliseconds');
    const secret = randomBytes(32).toString('base64url');
    const expiresAt = new Date(now.getTime() + ttlMs);
    this.#sql.pruneTokens.run(now.getTime() - TOKEN_RETENTION_MS);
    // 40 random bits: a clash is unlikely but possible; ids must stay unique.
    for (;;) {
      const id = Array.from({ length: 8 }, () => BASE32[randomInt(32)]).join('');
      const { changes } = this.#sql.insertToken.run(
        id,
        sha256(secret),
        group,
        now.getTime(),
        expiresAt.getTime(),
      );
      if (Number(changes) === 1) return { id, secret, expiresAt };
    }
  }

  checkRegistrationToken(
    id: string,
    secret: string,
    { now = new Date() }: { now?: Date } = {},
  ): { group: string } {
    return { group: this.#validToken(id, secret, now).connector_group };
  }

  redeemRegistrationToken(
    id: string,
    secret: string,
    { now = new Date(), connector }: { now?: Date; connector?: ConnectorRecord } = {},
  ): { group: string } {
    this.#db.exec('BEGIN IMMEDIATE');
    try {
      const row = this.#validToken(id, secret, now);
      const { changes } = this.#sql.spendToken.run(now.getTime(), id, now.getTime());
      if (Number(changes) !== 1) throw new TokenError('APPPROXY_TOKEN_USED');
      if (connector) this.upsertConnector({ ...connector, group: row.connector_group });
      this.#db.exec('COMMIT');
      return { group: row.connector_group };
    } catch (err) {
      this.#db.exec('ROLLBACK');
      throw err;
    }
  }

  #validToken(id: string, secret: string, now: Date): TokenRow {
    const row =
      typeof id === 'string' && TOKEN_ID.test(id)
        ? (this.#sql.findToken.get(id) as TokenRow | undefined)
        : undefined;
    const presented = sha256(typeof secret === 'string' ? secret : '');
    // Compare even for unknown ids, so timing does not tell which ids exist.
    const stored = row ? Buffer.from(row.secret_sha256) : Buffer.alloc(presented.length);
    const matches = timingSafeEqual(stored, presented);
    if (!row || !matches) throw new TokenError('APPPROXY_TOKEN_INVALID');
    if (row.used_at !== null) throw new TokenError('APPPROXY_TOKEN_USED');
    if (now.getTime() >= row.expires_at) throw new TokenError('APPPROXY_TOKEN_EXPIRED');
    return row;
  }

  upsertConnector(c: ConnectorRecord): void {
    this.#sql.upsert.run(
      c.id,
      c.group,
      c.certSerial,
      c.certFingerprint,
      c.certNotAfter.getTime(),
      c.createdAt.getTime(),
      c.lastSeenAt?.getTime() ?? null,
      c.hostname ?? null,
      c.version ?? null,
      JSON.stringify(c.capabilities ?? []),
      c.revokedAt?.getTime() ?? null,
      c.previousCert?.fingerprint ?? null,
      c.previousCert?.notAfter.getTime() ?? null,
      c.tunnels ?? 0,
      c.inFlight ?? 0,
    );
  }

  getConnector(id: string): ConnectorRecord | undefined {
    const row = this.#sql.getConnector.get(id) as ConnectorRow | undefined;
    return row && toRecord(row);
  }

  listConnectors(): ConnectorRecord[] {
    return (this.#sql.listConnectors.all() as unknown as ConnectorRow[]).map(toRecord);
  }

  recordConnectorSeen(id: string, seen: ConnectorSeen): void {
    this.#sql.seen.run(
      seen.at.getTime(),
      seen.hostname ?? null,
      seen.version ?? null,
      seen.capabilities ? JSON.stringify(seen.capabilities) : null,
      seen.tunnels ?? null,
      seen.inFlight ?? null,
      id,
    );
  }

  revokeConnector(id: string, at = new Date()): boolean {
    return Number(this.#sql.revoke.run(at.getTime(), id).changes) === 1;
  }

  renewConnectorCertificate(
    id: string,
    cert: { serial: string; fingerprint: string; notAfter: Date },
    replacing: { fingerprint: string; notAfter: Date },
  ): void {
    this.#sql.renew.run(
      replacing.fingerprint,
      replacing.notAfter.getTime(),
      cert.serial,
      cert.fingerprint,
      cert.notAfter.getTime(),
      id,
    );
  }

  pruneConnectors(before: Date): string[] {
    const t = before.getTime();
    const ids = (this.#sql.prunable.all(t, t) as Array<{ id: string }>).map((r) => r.id);
    for (const id of ids) this.#sql.deleteConnector.run(id);
    return ids;
  }

  dataVersion(): number {
    return (this.#sql.dataVersion.get() as { data_version: number }).data_version;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }
}

function toRecord(r: ConnectorRow): ConnectorRecord {
  return {
    id: r.id,
    group: r.connector_group,
    certSerial: r.cert_serial,
    certFingerprint: r.cert_fingerprint,
    certNotAfter: new Date(r.cert_not_after),
    createdAt: new Date(r.created_at),
    ...(r.last_seen_at !== null && { lastSeenAt: new Date(r.last_seen_at) }),
    ...(r.hostname !== null && { hostname: r.hostname }),
    ...(r.version !== null && { version: r.version }),
    capabilities: JSON.parse(r.capabilities) as string[],
    ...(r.revoked_at !== null && { revokedAt: new Date(r.revoked_at) }),
    ...(r.prev_cert_fingerprint !== null &&
      r.prev_cert_not_after !== null && {
        previousCert: {
          fingerprint: r.prev_cert_fingerprint,
          notAfter: new Date(r.prev_cert_not_after),
        },
      }),
    tunnels: r.open_tunnels,
    inFlight: r.in_flight,
  };
}

function migrate(db: DatabaseSync): void {
  const version = () =>
    (db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version;
  if (version() > MIGRATIONS.length) {
    throw new StateStoreError(
      'APPPROXY_STATE_INCOMPATIBLE',
      `${STATE_DB_FILE} was written by a newer AppProxy (schema ${version()}, this one knows ${MIGRATIONS.length})`,
    );
  }
  while (version() < MIGRATIONS.length) {
    // IMMEDIATE takes the write lock now, so two processes never run the same migration.
    db.exec('BEGIN IMMEDIATE');
    try {
      const current = version();
      if (current < MIGRATIONS.length) {
        db.exec(MIGRATIONS[current]!);
        db.exec(`PRAGMA user_version = ${current + 1}`);
      }
      db.exec('COMMIT');
    } catch (err) {
      db.exec('ROLLBACK');
      throw err;
    }
  }
}
