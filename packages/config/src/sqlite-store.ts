import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { StateStoreError, TokenError } from './errors.js';
import { ensureStateDir } from './state-dir.js';
import {
  ADMIN_TOKEN_COLUMNS,
  ADMIN_TOKEN_USE_INTERVAL_MS,
  AUDIT_COLUMNS,
  CONNECTOR_COLUMNS,
  TOKEN_RETENTION_MS,
  adminTokenMatches,
  adminTokenUseDue,
  toRegistrationToken,
  type RegistrationTokenRow,
  auditSelect,
  auditValues,
  formatAdminToken,
  newAdminTokenParts,
  parseAdminToken,
  toAdminToken,
  toAuditEvent,
  type AdminTokenRecord,
  type AdminTokenRow,
  type AuditEvent,
  type AuditQuery,
  type AuditRow,
  type NewAuditEvent,
  type RegistrationTokenRecord,
  byConnector,
  connectorValues,
  newTokenId,
  newTokenParts,
  plausibleTokenId,
  sha256,
  toInstance,
  toRecord,
  validateToken,
  type AttachmentRow,
  type ConnectorRecord,
  type ConnectorRow,
  type ConnectorSeen,
  type CreatedRegistrationToken,
  type InstanceHeartbeat,
  type InstanceRecord,
  type InstanceRow,
  type MaterialSealer,
  type StateStore,
  type TokenRow,
} from './state-store.js';

/** File name of the database inside the state directory. */
export const STATE_DB_FILE = 'state.db';

/** How often `watch` polls `data_version`. */
const WATCH_INTERVAL_MS = 250;

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
  // Tunnels and in-flight per (connector, instance); open_tunnels/in_flight stay unused.
  `CREATE TABLE connector_attachments (
     connector_id TEXT NOT NULL,
     instance TEXT NOT NULL,
     tunnels INTEGER NOT NULL DEFAULT 0,
     in_flight INTEGER NOT NULL DEFAULT 0,
     seen_at INTEGER NOT NULL,
     PRIMARY KEY (connector_id, instance)
   ) STRICT;
   CREATE TABLE instances (
     name TEXT PRIMARY KEY,
     tunnel_url TEXT,
     version TEXT NOT NULL,
     started_at INTEGER NOT NULL,
     heartbeat_at INTEGER NOT NULL
   ) STRICT;
   CREATE TABLE materials (
     name TEXT PRIMARY KEY,
     sealed INTEGER NOT NULL,
     value BLOB NOT NULL,
     updated_at INTEGER NOT NULL
   ) STRICT;`,
  // Audit events, admin tokens, revocable registration tokens.
  `ALTER TABLE registration_tokens ADD COLUMN revoked_at INTEGER;
   CREATE TABLE audit_events (
     id TEXT PRIMARY KEY,
     at INTEGER NOT NULL,
     type TEXT NOT NULL,
     instance TEXT NOT NULL,
     actor TEXT,
     user_name TEXT,
     app TEXT,
     client_address TEXT,
     code TEXT,
     connector TEXT,
     connector_group TEXT,
     correlation_id TEXT,
     detail TEXT
   ) STRICT;
   CREATE INDEX audit_events_at ON audit_events (at);
   CREATE INDEX audit_events_user ON audit_events (user_name, at);
   CREATE INDEX audit_events_app ON audit_events (app, at);
   CREATE INDEX audit_events_type ON audit_events (type, at);
   CREATE TABLE admin_tokens (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL,
     secret_sha256 BLOB NOT NULL,
     created_at INTEGER NOT NULL,
     expires_at INTEGER,
     last_used_at INTEGER,
     created_by TEXT,
     revoked_at INTEGER
   ) STRICT;`,
];

/**
 * `node:sqlite`, loaded on first use rather than at import: a static import fails on a Node
 * without it (< 22.5) before the CLI can say which Node it needs, even for `--version`.
 */
function loadSqlite(): typeof import('node:sqlite') {
  // Not createRequire(import.meta.url): the release bundles are CommonJS (no import.meta).
  return process.getBuiltinModule('node:sqlite');
}

/**
 * Opens (creating if needed) `<stateDir>/state.db`: embedded SQLite via `node:sqlite`, WAL
 * mode, a 5 s busy timeout so the running relay and the `token create` CLI can use it at the
 * same time. The directory is created with mode 0700 and the database file is made 0600.
 */
export function openSqliteStore(opts: {
  stateDir: string;
  sealer?: MaterialSealer;
  instance: string;
}): StateStore {
  ensureStateDir(opts.stateDir);
  const file = join(opts.stateDir, STATE_DB_FILE);
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
  return new SqliteStateStore(db, opts.instance, opts.sealer);
}

type StatementName =
  | 'insertToken'
  | 'findToken'
  | 'spendToken'
  | 'listTokens'
  | 'revokeToken'
  | 'insertAudit'
  | 'pruneAudit'
  | 'insertAdminToken'
  | 'findAdminToken'
  | 'useAdminToken'
  | 'listAdminTokens'
  | 'revokeAdminToken'
  | 'pruneAdminTokens'
  | 'pruneTokens'
  | 'upsert'
  | 'getConnector'
  | 'listConnectors'
  | 'attachmentsOf'
  | 'allAttachments'
  | 'seen'
  | 'attach'
  | 'revoke'
  | 'renew'
  | 'prunable'
  | 'deleteConnector'
  | 'pruneAttachments'
  | 'dataVersion'
  | 'getMaterial'
  | 'insertMaterial'
  | 'putMaterial'
  | 'deleteMaterial'
  | 'heartbeat'
  | 'listInstances'
  | 'removeInstance'
  | 'detachInstance';

class SqliteStateStore implements StateStore {
  readonly kind = 'sqlite';
  readonly instance: string;
  readonly #db: DatabaseSync;
  readonly #sealer: MaterialSealer | undefined;
  readonly #sql: Record<StatementName, StatementSync>;
  /** Each `watch`: its poll timer → its callback. */
  readonly #watchers = new Map<NodeJS.Timeout, () => void>();
  #closed = false;

  constructor(db: DatabaseSync, instance: string, sealer: MaterialSealer | undefined) {
    this.#db = db;
    this.instance = instance;
    this.#sealer = sealer;
    const cols = CONNECTOR_COLUMNS.join(', ');
    this.#sql = {
      insertToken: db.prepare(
        `INSERT INTO registration_tokens (id, secret_sha256, connector_group, created_at, expires_at)
         VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
      ),
      findToken: db.prepare(
        'SELECT secret_sha256, connector_group, expires_at, used_at, revoked_at FROM registration_tokens WHERE id = ?',
      ),
      // The WHERE makes redemption single-use even when two processes race for it.
      spendToken: db.prepare(
        'UPDATE registration_tokens SET used_at = ? WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?',
      ),
      listTokens: db.prepare(
        `SELECT id, connector_group, created_at, expires_at FROM registration_tokens
         WHERE used_at IS NULL AND revoked_at IS NULL AND expires_at > ? ORDER BY created_at, id`,
      ),
      revokeToken: db.prepare(
        `UPDATE registration_tokens SET revoked_at = ?
         WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?`,
      ),
      insertAudit: db.prepare(
        `INSERT INTO audit_events (${AUDIT_COLUMNS.join(', ')}) VALUES (${AUDIT_COLUMNS.map(() => '?').join(', ')})`,
      ),
      pruneAudit: db.prepare('DELETE FROM audit_events WHERE at < ?'),
      insertAdminToken: db.prepare(
        `INSERT INTO admin_tokens (id, name, secret_sha256, created_at, expires_at, created_by)
         VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
      ),
      findAdminToken: db.prepare(`SELECT ${ADMIN_TOKEN_COLUMNS} FROM admin_tokens WHERE id = ?`),
      useAdminToken: db.prepare(
        `UPDATE admin_tokens SET last_used_at = ?
         WHERE id = ? AND (last_used_at IS NULL OR last_used_at <= ?)`,
      ),
      listAdminTokens: db.prepare(
        `SELECT ${ADMIN_TOKEN_COLUMNS} FROM admin_tokens
         WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?) ORDER BY created_at, id`,
      ),
      revokeAdminToken: db.prepare(
        'UPDATE admin_tokens SET revoked_at = ? WHERE (id = ? OR name = ?) AND revoked_at IS NULL',
      ),
      pruneAdminTokens: db.prepare(
        'DELETE FROM admin_tokens WHERE revoked_at < ? OR expires_at < ?',
      ),
      pruneTokens: db.prepare('DELETE FROM registration_tokens WHERE expires_at < ?'),
      upsert: db.prepare(
        `INSERT INTO connectors (${cols}) VALUES (${CONNECTOR_COLUMNS.map(() => '?').join(', ')})
         ON CONFLICT (id) DO UPDATE SET ${CONNECTOR_COLUMNS.slice(1)
           .map((c) => `${c} = excluded.${c}`)
           .join(', ')}`,
      ),
      getConnector: db.prepare(`SELECT ${cols} FROM connectors WHERE id = ?`),
      listConnectors: db.prepare(`SELECT ${cols} FROM connectors ORDER BY created_at, id`),
      attachmentsOf: db.prepare('SELECT * FROM connector_attachments WHERE connector_id = ?'),
      allAttachments: db.prepare('SELECT * FROM connector_attachments'),
      seen: db.prepare(
        `UPDATE connectors SET last_seen_at = ?, hostname = COALESCE(?, hostname), version = COALESCE(?, version),
           capabilities = COALESCE(?, capabilities) WHERE id = ?`,
      ),
      attach: db.prepare(
        `INSERT INTO connector_attachments (connector_id, instance, tunnels, in_flight, seen_at)
         VALUES (?, ?, COALESCE(?, 0), COALESCE(?, 0), ?)
         ON CONFLICT (connector_id, instance) DO UPDATE SET
           tunnels = COALESCE(?, tunnels), in_flight = COALESCE(?, in_flight), seen_at = excluded.seen_at`,
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
      pruneAttachments: db.prepare(
        `DELETE FROM connector_attachments
         WHERE seen_at < ? OR connector_id NOT IN (SELECT id FROM connectors)`,
      ),
      dataVersion: db.prepare('PRAGMA data_version'),
      getMaterial: db.prepare('SELECT sealed, value FROM materials WHERE name = ?'),
      insertMaterial: db.prepare(
        `INSERT INTO materials (name, sealed, value, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (name) DO NOTHING`,
      ),
      putMaterial: db.prepare(
        `INSERT INTO materials (name, sealed, value, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET sealed = excluded.sealed, value = excluded.value,
           updated_at = excluded.updated_at`,
      ),
      deleteMaterial: db.prepare('DELETE FROM materials WHERE name = ?'),
      heartbeat: db.prepare(
        `INSERT INTO instances (name, tunnel_url, version, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET tunnel_url = excluded.tunnel_url, version = excluded.version,
           started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at`,
      ),
      listInstances: db.prepare('SELECT * FROM instances WHERE heartbeat_at >= ? ORDER BY name'),
      removeInstance: db.prepare('DELETE FROM instances WHERE name = ?'),
      detachInstance: db.prepare('DELETE FROM connector_attachments WHERE instance = ?'),
    };
  }

  async createRegistrationToken({
    group,
    ttlMs,
    now = new Date(),
  }: {
    group: string;
    ttlMs: number;
    now?: Date;
  }): Promise<CreatedRegistrationToken> {
    const { secret, expiresAt } = newTokenParts(group, ttlMs, now);
    this.#sql.pruneTokens.run(now.getTime() - TOKEN_RETENTION_MS);
    for (;;) {
      const id = newTokenId();
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

  async checkRegistrationToken(
    id: string,
    secret: string,
    { now = new Date() }: { now?: Date } = {},
  ): Promise<{ group: string }> {
    return { group: this.#validToken(id, secret, now).connector_group };
  }

  async redeemRegistrationToken(
    id: string,
    secret: string,
    { now = new Date(), connector }: { now?: Date; connector?: ConnectorRecord } = {},
  ): Promise<{ group: string }> {
    // Synchronous from BEGIN to COMMIT: nothing else on this connection runs in between.
    this.#db.exec('BEGIN IMMEDIATE');
    try {
      const row = this.#validToken(id, secret, now);
      const { changes } = this.#sql.spendToken.run(now.getTime(), id, now.getTime());
      if (Number(changes) !== 1) throw new TokenError('APPPROXY_TOKEN_USED');
      if (connector)
        this.#sql.upsert.run(...connectorValues({ ...connector, group: row.connector_group }));
      this.#db.exec('COMMIT');
      return { group: row.connector_group };
    } catch (err) {
      this.#db.exec('ROLLBACK');
      throw err;
    }
  }

  #validToken(id: string, secret: string, now: Date): TokenRow {
    const row = plausibleTokenId(id)
      ? (this.#sql.findToken.get(id) as TokenRow | undefined)
      : undefined;
    return validateToken(row, secret, now);
  }

  async upsertConnector(c: ConnectorRecord): Promise<void> {
    this.#sql.upsert.run(...connectorValues(c));
  }

  async getConnector(id: string): Promise<ConnectorRecord | undefined> {
    const row = this.#sql.getConnector.get(id) as ConnectorRow | undefined;
    return row && toRecord(row, this.#sql.attachmentsOf.all(id) as unknown as AttachmentRow[]);
  }

  async listConnectors(): Promise<ConnectorRecord[]> {
    const attachments = byConnector(this.#sql.allAttachments.all() as unknown as AttachmentRow[]);
    const now = Date.now();
    return (this.#sql.listConnectors.all() as unknown as ConnectorRow[]).map((r) =>
      toRecord(r, attachments.get(r.id) ?? [], now),
    );
  }

  async recordConnectorSeen(id: string, seen: ConnectorSeen): Promise<void> {
    const { changes } = this.#sql.seen.run(
      seen.at.getTime(),
      seen.hostname ?? null,
      seen.version ?? null,
      seen.capabilities ? JSON.stringify(seen.capabilities) : null,
      id,
    );
    if (Number(changes) !== 1) return;
    const tunnels = seen.tunnels ?? null;
    const inFlight = seen.inFlight ?? null;
    this.#sql.attach.run(
      id,
      seen.instance ?? this.instance,
      tunnels,
      inFlight,
      seen.at.getTime(),
      tunnels,
      inFlight,
    );
  }

  async revokeConnector(id: string, at = new Date()): Promise<boolean> {
    const revoked = Number(this.#sql.revoke.run(at.getTime(), id).changes) === 1;
    // `data_version` does not move for this connection's own writes: its watchers are told
    // here (the admin API deletes through the relay's own store).
    if (revoked) for (const onChange of this.#watchers.values()) setImmediate(onChange);
    return revoked;
  }

  async renewConnectorCertificate(
    id: string,
    cert: { serial: string; fingerprint: string; notAfter: Date },
    replacing: { fingerprint: string; notAfter: Date },
  ): Promise<void> {
    this.#sql.renew.run(
      replacing.fingerprint,
      replacing.notAfter.getTime(),
      cert.serial,
      cert.fingerprint,
      cert.notAfter.getTime(),
      id,
    );
  }

  async pruneConnectors(before: Date): Promise<string[]> {
    const t = before.getTime();
    const ids = (this.#sql.prunable.all(t, t) as Array<{ id: string }>).map((r) => r.id);
    for (const id of ids) this.#sql.deleteConnector.run(id);
    this.#sql.pruneAttachments.run(t);
    return ids;
  }

  watch(onChange: () => void): () => void {
    let version = this.#dataVersion();
    const timer = setInterval(() => {
      if (this.#closed) return;
      const now = this.#dataVersion();
      if (now === version) return;
      version = now;
      onChange();
    }, WATCH_INTERVAL_MS);
    timer.unref();
    this.#watchers.set(timer, onChange);
    return () => {
      clearInterval(timer);
      this.#watchers.delete(timer);
    };
  }

  /** Changes whenever another connection commits (not on this one's own writes). */
  #dataVersion(): number {
    return (this.#sql.dataVersion.get() as { data_version: number }).data_version;
  }

  async getMaterial(name: string): Promise<string | undefined> {
    const row = this.#sql.getMaterial.get(name) as
      { sealed: number; value: Uint8Array } | undefined;
    if (!row) return undefined;
    if (!row.sealed) return Buffer.from(row.value).toString('utf8');
    if (!this.#sealer)
      throw new StateStoreError(
        'APPPROXY_STORE_KEY_MISSING',
        `material ${name} is sealed: relay.storeKey is required to open it`,
      );
    return this.#sealer.open(name, row.value);
  }

  #stored(name: string, value: string): [string, number, Buffer, number] {
    return this.#sealer
      ? [name, 1, this.#sealer.seal(name, value), Date.now()]
      : [name, 0, Buffer.from(value, 'utf8'), Date.now()];
  }

  async putMaterialIfAbsent(name: string, value: string): Promise<string> {
    this.#sql.insertMaterial.run(...this.#stored(name, value));
    return (await this.getMaterial(name))!;
  }

  async putMaterial(name: string, value: string): Promise<void> {
    this.#sql.putMaterial.run(...this.#stored(name, value));
  }

  async deleteMaterial(name: string): Promise<boolean> {
    return this.#sql.deleteMaterial.run(name).changes === 1;
  }

  async heartbeatInstance(i: InstanceHeartbeat, at = new Date()): Promise<void> {
    this.#sql.heartbeat.run(
      i.name,
      i.tunnelUrl ?? null,
      i.version,
      i.startedAt.getTime(),
      at.getTime(),
    );
  }

  async listInstances({ liveSince }: { liveSince: Date }): Promise<InstanceRecord[]> {
    return (this.#sql.listInstances.all(liveSince.getTime()) as unknown as InstanceRow[]).map(
      toInstance,
    );
  }

  async removeInstance(name: string): Promise<boolean> {
    this.#sql.detachInstance.run(name);
    return Number(this.#sql.removeInstance.run(name).changes) === 1;
  }

  async listRegistrationTokens(now = new Date()): Promise<RegistrationTokenRecord[]> {
    const rows = this.#sql.listTokens.all(now.getTime()) as unknown as RegistrationTokenRow[];
    return rows.map(toRegistrationToken);
  }

  async revokeRegistrationToken(id: string, at = new Date()): Promise<boolean> {
    return Number(this.#sql.revokeToken.run(at.getTime(), id, at.getTime()).changes) === 1;
  }

  async appendAudit(events: NewAuditEvent[]): Promise<void> {
    if (events.length === 0) return;
    const now = new Date();
    this.#db.exec('BEGIN IMMEDIATE');
    try {
      for (const e of events) this.#sql.insertAudit.run(...auditValues(e, this.instance, now));
      this.#db.exec('COMMIT');
    } catch (err) {
      this.#db.exec('ROLLBACK');
      throw err;
    }
  }

  async queryAudit(q: AuditQuery): Promise<AuditEvent[]> {
    const { text, values } = auditSelect(q, () => '?');
    return (this.#db.prepare(text).all(...values) as unknown as AuditRow[]).map(toAuditEvent);
  }

  async pruneAudit(before: Date): Promise<number> {
    return Number(this.#sql.pruneAudit.run(before.getTime()).changes);
  }

  async createAdminToken({
    name,
    ttlMs,
    createdBy,
    now = new Date(),
  }: {
    name: string;
    ttlMs?: number;
    createdBy?: string;
    now?: Date;
  }): Promise<{ token: string; record: AdminTokenRecord }> {
    const { secret, expiresAt } = newAdminTokenParts(name, ttlMs, now);
    const old = now.getTime() - TOKEN_RETENTION_MS;
    this.#sql.pruneAdminTokens.run(old, old);
    for (;;) {
      const id = newTokenId();
      const { changes } = this.#sql.insertAdminToken.run(
        id,
        name,
        sha256(secret),
        now.getTime(),
        expiresAt?.getTime() ?? null,
        createdBy ?? null,
      );
      if (Number(changes) !== 1) continue;
      const record: AdminTokenRecord = {
        id,
        name,
        createdAt: now,
        ...(expiresAt && { expiresAt }),
        ...(createdBy !== undefined && { createdBy }),
      };
      return { token: formatAdminToken(id, secret), record };
    }
  }

  async verifyAdminToken(token: string, now = new Date()): Promise<AdminTokenRecord | undefined> {
    const parsed = parseAdminToken(token);
    const row = parsed
      ? (this.#sql.findAdminToken.get(parsed.id) as AdminTokenRow | undefined)
      : undefined;
    if (!adminTokenMatches(row, parsed?.secret ?? '', now)) return undefined;
    const t = now.getTime();
    if (!adminTokenUseDue(row, t)) return toAdminToken(row);
    const { changes } = this.#sql.useAdminToken.run(t, row.id, t - ADMIN_TOKEN_USE_INTERVAL_MS);
    return toAdminToken(Number(changes) === 1 ? { ...row, last_used_at: t } : row);
  }

  async listAdminTokens(now = new Date()): Promise<AdminTokenRecord[]> {
    return (this.#sql.listAdminTokens.all(now.getTime()) as unknown as AdminTokenRow[]).map(
      toAdminToken,
    );
  }

  async revokeAdminToken(idOrName: string, at = new Date()): Promise<boolean> {
    return Number(this.#sql.revokeAdminToken.run(at.getTime(), idOrName, idOrName).changes) > 0;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#watchers.keys()) clearInterval(t);
    this.#watchers.clear();
    this.#db.close();
  }
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
