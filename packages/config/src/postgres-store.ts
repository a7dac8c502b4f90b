import pg from 'pg';
import { StateStoreError, TokenError } from './errors.js';
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

/** Connections per store: the relay's writes are few and small. */
const POOL_SIZE = 4;
const STATEMENT_TIMEOUT_MS = 10_000;
const CONNECT_TIMEOUT_MS = 5_000;
/** The NOTIFY channel of writes that matter to tunnels. */
const CHANNEL = 'appproxy_state';
/** The fallback poll of the change counter, in case a notification was lost. */
const POLL_INTERVAL_MS = 5_000;
/** Between attempts to LISTEN again after the connection broke. */
const RELISTEN_MS = 1_000;
/** `pg_advisory_lock` key of migrations: "AppProxy" in ASCII. */
const MIGRATION_LOCK = 0x4170_7050_726f_7879n;

/**
 * Forward-only schema migrations; `appproxy_schema.version` counts those applied. Append,
 * never edit. Times are milliseconds since the epoch (bigint), as in the SQLite store.
 */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE registration_tokens (
     id text PRIMARY KEY,
     secret_sha256 bytea NOT NULL,
     connector_group text NOT NULL,
     created_at bigint NOT NULL,
     expires_at bigint NOT NULL,
     used_at bigint
   );
   CREATE TABLE connectors (
     id text PRIMARY KEY,
     connector_group text NOT NULL,
     cert_serial text NOT NULL,
     cert_fingerprint text NOT NULL,
     cert_not_after bigint NOT NULL,
     created_at bigint NOT NULL,
     last_seen_at bigint,
     hostname text,
     version text,
     capabilities text NOT NULL DEFAULT '[]',
     revoked_at bigint,
     prev_cert_fingerprint text,
     prev_cert_not_after bigint
   );
   CREATE TABLE connector_attachments (
     connector_id text NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
     instance text NOT NULL,
     tunnels integer NOT NULL DEFAULT 0,
     in_flight integer NOT NULL DEFAULT 0,
     seen_at bigint NOT NULL,
     PRIMARY KEY (connector_id, instance)
   );
   CREATE TABLE instances (
     name text PRIMARY KEY,
     tunnel_url text,
     version text NOT NULL,
     started_at bigint NOT NULL,
     heartbeat_at bigint NOT NULL
   );
   CREATE TABLE materials (
     name text PRIMARY KEY,
     value bytea NOT NULL,
     updated_at bigint NOT NULL
   );
   CREATE TABLE store_meta (
     key text PRIMARY KEY,
     value bytea NOT NULL
   );
   CREATE SEQUENCE state_changes;`,
  // Audit events, admin tokens, revocable registration tokens.
  `ALTER TABLE registration_tokens ADD COLUMN revoked_at bigint;
   CREATE TABLE audit_events (
     id text PRIMARY KEY,
     at bigint NOT NULL,
     type text NOT NULL,
     instance text NOT NULL,
     actor text,
     user_name text,
     app text,
     client_address text,
     code text,
     connector text,
     connector_group text,
     correlation_id text,
     detail text
   );
   CREATE INDEX audit_events_at ON audit_events (at);
   CREATE INDEX audit_events_user ON audit_events (user_name, at);
   CREATE INDEX audit_events_app ON audit_events (app, at);
   CREATE INDEX audit_events_type ON audit_events (type, at);
   CREATE TABLE admin_tokens (
     id text PRIMARY KEY,
     name text NOT NULL,
     secret_sha256 bytea NOT NULL,
     created_at bigint NOT NULL,
     expires_at bigint,
     last_used_at bigint,
     created_by text,
     revoked_at bigint
   );`,
];

/** A Postgres URL for messages: scheme, host, port and database, never user or password. */
export function describePostgresUrl(url: string): string {
  try {
    const u = new URL(url);
    const host = u.hostname || u.searchParams.get('host') || 'localhost';
    return `postgres://${host}${u.port ? `:${u.port}` : ''}${u.pathname}`;
  } catch {
    return 'postgres://(unparsable URL)';
  }
}

/** Numbers for bigint columns (milliseconds fit in a double). */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8
      ? (v: string) => Number(v)
      : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/** SQLSTATE classes that mean "the server cannot be used", not "this query is wrong". */
const UNAVAILABLE_SQLSTATE = /^(08|28|53|57|3D)/;

function unavailable(where: string, err: unknown): StateStoreError {
  const e = err as { code?: string; message?: string };
  // pg's own messages name the user and database, never the password; keep only the code
  // and text, not the error object, so nothing else of the configuration travels along.
  const why = `${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}`;
  return new StateStoreError(
    'APPPROXY_STORE_UNAVAILABLE',
    `PostgreSQL store ${where} unavailable: ${why}`,
  );
}

const isUnavailable = (err: unknown) => {
  if (err instanceof StateStoreError || err instanceof TokenError) return false;
  const code = (err as { code?: unknown }).code;
  return typeof code !== 'string' || UNAVAILABLE_SQLSTATE.test(code) || /^E[A-Z]+$/.test(code);
};

/**
 * Opens the shared store in PostgreSQL: a pool of {@link POOL_SIZE} connections with a
 * statement timeout, schema migrations under an advisory lock (one instance at a time),
 * and a check that `sealer` is the key the store's materials were sealed with.
 */
export async function openPostgresStore(opts: {
  url: string;
  sealer: MaterialSealer;
  instance: string;
}): Promise<StateStore> {
  const where = describePostgresUrl(opts.url);
  const config: pg.PoolConfig = {
    connectionString: opts.url,
    max: POOL_SIZE,
    statement_timeout: STATEMENT_TIMEOUT_MS,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    idleTimeoutMillis: 30_000,
    application_name: 'appproxy-relay',
    types,
  };
  const pool = new pg.Pool(config);
  // An idle connection that breaks must not crash the process; the next query reconnects.
  pool.on('error', () => {});
  try {
    await migrate(pool, where);
    await checkKey(pool, opts.sealer);
  } catch (err) {
    await pool.end().catch(() => {});
    throw isUnavailable(err) ? unavailable(where, err) : err;
  }
  return new PostgresStateStore(pool, config, where, opts.instance, opts.sealer);
}

async function migrate(pool: pg.Pool, where: string): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK.toString()]);
    try {
      await client.query('CREATE TABLE IF NOT EXISTS appproxy_schema (version integer NOT NULL)');
      const { rows } = await client.query<{ version: number }>(
        'SELECT version FROM appproxy_schema',
      );
      let version = rows[0]?.version ?? 0;
      if (rows.length === 0) await client.query('INSERT INTO appproxy_schema VALUES (0)');
      if (version > MIGRATIONS.length)
        throw new StateStoreError(
          'APPPROXY_STATE_INCOMPATIBLE',
          `the PostgreSQL store ${where} was written by a newer AppProxy (schema ${version}, this one knows ${MIGRATIONS.length})`,
        );
      while (version < MIGRATIONS.length) {
        await client.query('BEGIN');
        try {
          await client.query(MIGRATIONS[version]!);
          await client.query('UPDATE appproxy_schema SET version = $1', [version + 1]);
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK');
          throw err;
        }
        version++;
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK.toString()]);
    }
  } finally {
    client.release();
  }
}

async function checkKey(pool: pg.Pool, sealer: MaterialSealer): Promise<void> {
  await pool.query(
    `INSERT INTO store_meta (key, value) VALUES ('key-check', $1) ON CONFLICT (key) DO NOTHING`,
    [sealer.keyCheck()],
  );
  const { rows } = await pool.query<{ value: Buffer }>(
    `SELECT value FROM store_meta WHERE key = 'key-check'`,
  );
  sealer.verifyKeyCheck(rows[0]!.value);
}

const cols = CONNECTOR_COLUMNS.join(', ');
const SQL = {
  insertToken: `INSERT INTO registration_tokens (id, secret_sha256, connector_group, created_at, expires_at)
    VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING`,
  findToken:
    'SELECT secret_sha256, connector_group, expires_at, used_at, revoked_at FROM registration_tokens WHERE id = $1',
  // The WHERE makes redemption single-use even when two instances race for it.
  spendToken:
    'UPDATE registration_tokens SET used_at = $1 WHERE id = $2 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $1',
  pruneTokens: 'DELETE FROM registration_tokens WHERE expires_at < $1',
  upsert: `INSERT INTO connectors (${cols}) VALUES (${CONNECTOR_COLUMNS.map((_, i) => `$${i + 1}`).join(', ')})
    ON CONFLICT (id) DO UPDATE SET ${CONNECTOR_COLUMNS.slice(1)
      .map((c) => `${c} = excluded.${c}`)
      .join(', ')}`,
  seen: `UPDATE connectors SET last_seen_at = $1, hostname = COALESCE($2, hostname),
    version = COALESCE($3, version), capabilities = COALESCE($4, capabilities) WHERE id = $5`,
  attach: `INSERT INTO connector_attachments (connector_id, instance, tunnels, in_flight, seen_at)
    VALUES ($1, $2, COALESCE($3::integer, 0), COALESCE($4::integer, 0), $5)
    ON CONFLICT (connector_id, instance) DO UPDATE SET
      tunnels = COALESCE($3::integer, connector_attachments.tunnels),
      in_flight = COALESCE($4::integer, connector_attachments.in_flight), seen_at = excluded.seen_at`,
  notify: `SELECT pg_notify('${CHANNEL}', nextval('state_changes')::text)`,
} as const;

class PostgresStateStore implements StateStore {
  readonly kind = 'postgres';
  readonly instance: string;
  readonly #pool: pg.Pool;
  readonly #config: pg.PoolConfig;
  readonly #where: string;
  readonly #sealer: MaterialSealer;
  readonly #stops = new Set<() => void>();
  #closed = false;

  constructor(
    pool: pg.Pool,
    config: pg.PoolConfig,
    where: string,
    instance: string,
    sealer: MaterialSealer,
  ) {
    this.#pool = pool;
    this.#config = config;
    this.#where = where;
    this.instance = instance;
    this.#sealer = sealer;
  }

  async #query<R extends pg.QueryResultRow>(
    text: string,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>> {
    try {
      return await this.#pool.query<R>(text, values);
    } catch (err) {
      throw isUnavailable(err) ? unavailable(this.#where, err) : err;
    }
  }

  /** Runs `fn` in one transaction on one connection. */
  async #transaction<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (err) {
      throw unavailable(this.#where, err);
    }
    try {
      await client.query('BEGIN');
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw isUnavailable(err) ? unavailable(this.#where, err) : err;
    } finally {
      client.release();
    }
  }

  /** Tells every watcher (this and other instances) that something that matters changed. */
  async #notify(): Promise<void> {
    await this.#query(SQL.notify);
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
    await this.#query(SQL.pruneTokens, [now.getTime() - TOKEN_RETENTION_MS]);
    for (;;) {
      const id = newTokenId();
      const { rowCount } = await this.#query(SQL.insertToken, [
        id,
        sha256(secret),
        group,
        now.getTime(),
        expiresAt.getTime(),
      ]);
      if (rowCount === 1) return { id, secret, expiresAt };
    }
  }

  async checkRegistrationToken(
    id: string,
    secret: string,
    { now = new Date() }: { now?: Date } = {},
  ): Promise<{ group: string }> {
    const row = plausibleTokenId(id)
      ? (await this.#query<TokenRow>(SQL.findToken, [id])).rows[0]
      : undefined;
    return { group: validateToken(row, secret, now).connector_group };
  }

  async redeemRegistrationToken(
    id: string,
    secret: string,
    { now = new Date(), connector }: { now?: Date; connector?: ConnectorRecord } = {},
  ): Promise<{ group: string }> {
    const group = await this.#transaction(async (c) => {
      const found = plausibleTokenId(id)
        ? (await c.query<TokenRow>(`${SQL.findToken} FOR UPDATE`, [id])).rows[0]
        : undefined;
      const row = validateToken(found, secret, now);
      const { rowCount } = await c.query(SQL.spendToken, [now.getTime(), id]);
      if (rowCount !== 1) throw new TokenError('APPPROXY_TOKEN_USED');
      if (connector)
        await c.query(SQL.upsert, connectorValues({ ...connector, group: row.connector_group }));
      return row.connector_group;
    });
    if (connector) await this.#notify();
    return { group };
  }

  async upsertConnector(c: ConnectorRecord): Promise<void> {
    await this.#query(SQL.upsert, connectorValues(c));
    await this.#notify();
  }

  async getConnector(id: string): Promise<ConnectorRecord | undefined> {
    const [connectors, attachments] = await Promise.all([
      this.#query<ConnectorRow>(`SELECT ${cols} FROM connectors WHERE id = $1`, [id]),
      this.#query<AttachmentRow>('SELECT * FROM connector_attachments WHERE connector_id = $1', [
        id,
      ]),
    ]);
    const row = connectors.rows[0];
    return row && toRecord(row, attachments.rows);
  }

  async listConnectors(): Promise<ConnectorRecord[]> {
    const [connectors, attachments] = await Promise.all([
      this.#query<ConnectorRow>(`SELECT ${cols} FROM connectors ORDER BY created_at, id`),
      this.#query<AttachmentRow>('SELECT * FROM connector_attachments'),
    ]);
    const by = byConnector(attachments.rows);
    const now = Date.now();
    return connectors.rows.map((r) => toRecord(r, by.get(r.id) ?? [], now));
  }

  async recordConnectorSeen(id: string, seen: ConnectorSeen): Promise<void> {
    const { rowCount } = await this.#query(SQL.seen, [
      seen.at.getTime(),
      seen.hostname ?? null,
      seen.version ?? null,
      seen.capabilities ? JSON.stringify(seen.capabilities) : null,
      id,
    ]);
    if (rowCount !== 1) return;
    // A connector deleted in between: the foreign key refuses the row, which is right.
    await this.#query(SQL.attach, [
      id,
      seen.instance ?? this.instance,
      seen.tunnels ?? null,
      seen.inFlight ?? null,
      seen.at.getTime(),
    ]).catch((err: { code?: string }) => {
      if (err.code !== '23503') throw err;
    });
  }

  async revokeConnector(id: string, at = new Date()): Promise<boolean> {
    const { rowCount } = await this.#query(
      'UPDATE connectors SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2',
      [at.getTime(), id],
    );
    if (rowCount === 1) await this.#notify();
    return rowCount === 1;
  }

  async renewConnectorCertificate(
    id: string,
    cert: { serial: string; fingerprint: string; notAfter: Date },
    replacing: { fingerprint: string; notAfter: Date },
  ): Promise<void> {
    await this.#query(
      `UPDATE connectors SET prev_cert_fingerprint = $1, prev_cert_not_after = $2,
         cert_serial = $3, cert_fingerprint = $4, cert_not_after = $5 WHERE id = $6`,
      [
        replacing.fingerprint,
        replacing.notAfter.getTime(),
        cert.serial,
        cert.fingerprint,
        cert.notAfter.getTime(),
        id,
      ],
    );
    await this.#notify();
  }

  async pruneConnectors(before: Date): Promise<string[]> {
    const t = before.getTime();
    const { rows } = await this.#query<{ id: string }>(
      `DELETE FROM connectors
       WHERE (revoked_at IS NOT NULL AND revoked_at < $1)
          OR (revoked_at IS NULL AND COALESCE(last_seen_at, created_at) < $1)
       RETURNING id`,
      [t],
    );
    await this.#query('DELETE FROM connector_attachments WHERE seen_at < $1', [t]);
    if (rows.length > 0) await this.#notify();
    return rows.map((r) => r.id);
  }

  watch(onChange: () => void): () => void {
    let stopped = false;
    let listener: pg.Client | undefined;
    let retry: NodeJS.Timeout | undefined;
    let last: number | undefined;
    const fire = () => {
      if (!stopped && !this.#closed) onChange();
    };
    // A dedicated connection: LISTEN belongs to one session, which the pool would reuse.
    const listen = async () => {
      if (stopped || this.#closed) return;
      const client = new pg.Client(this.#config);
      client.on('error', () => {});
      client.on('notification', fire);
      client.on('end', () => {
        if (listener !== client || stopped) return;
        listener = undefined;
        retry = setTimeout(() => void listen(), RELISTEN_MS);
        retry.unref();
      });
      try {
        await client.connect();
        await client.query(`LISTEN ${CHANNEL}`);
        if (stopped || this.#closed) return void client.end().catch(() => {});
        listener = client;
        // Whatever happened before listening (at start, or while reconnecting) is told now.
        fire();
      } catch {
        void client.end().catch(() => {});
        retry = setTimeout(() => void listen(), RELISTEN_MS);
        retry.unref();
      }
    };
    void listen();
    const poll = setInterval(() => {
      this.#query<{ last_value: number }>('SELECT last_value FROM state_changes').then(
        ({ rows }) => {
          const now = rows[0]!.last_value;
          if (last !== undefined && now !== last) fire();
          last = now;
        },
        () => {},
      );
    }, POLL_INTERVAL_MS);
    poll.unref();
    // The counter as it is now, so the first poll does not report old changes.
    this.#query<{ last_value: number }>('SELECT last_value FROM state_changes').then(
      ({ rows }) => (last ??= rows[0]!.last_value),
      () => {},
    );
    const stop = () => {
      stopped = true;
      clearInterval(poll);
      clearTimeout(retry);
      const client = listener;
      listener = undefined;
      void client?.end().catch(() => {});
      this.#stops.delete(stop);
    };
    this.#stops.add(stop);
    return stop;
  }

  async getMaterial(name: string): Promise<string | undefined> {
    const { rows } = await this.#query<{ value: Buffer }>(
      'SELECT value FROM materials WHERE name = $1',
      [name],
    );
    return rows[0] && this.#sealer.open(name, rows[0].value);
  }

  async putMaterialIfAbsent(name: string, value: string): Promise<string> {
    const { rowCount } = await this.#query(
      `INSERT INTO materials (name, value, updated_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING`,
      [name, this.#sealer.seal(name, value), Date.now()],
    );
    // Written materials are told to watchers: the other instances reload (ACME certificates).
    if (rowCount === 1) await this.#notify();
    return (await this.getMaterial(name))!;
  }

  async putMaterial(name: string, value: string): Promise<void> {
    await this.#query(
      `INSERT INTO materials (name, value, updated_at) VALUES ($1, $2, $3)
       ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
      [name, this.#sealer.seal(name, value), Date.now()],
    );
    await this.#notify();
  }

  async deleteMaterial(name: string): Promise<boolean> {
    const { rowCount } = await this.#query('DELETE FROM materials WHERE name = $1', [name]);
    if (rowCount === 1) await this.#notify();
    return rowCount === 1;
  }

  async heartbeatInstance(i: InstanceHeartbeat, at = new Date()): Promise<void> {
    // xmax = 0 only for a row this statement inserted: a new instance, or a new tunnel URL,
    // is told to watchers; a plain heartbeat is not.
    const { rows } = await this.#query<{ inserted: boolean; url_changed: boolean }>(
      `WITH old AS (SELECT tunnel_url FROM instances WHERE name = $1)
       INSERT INTO instances (name, tunnel_url, version, started_at, heartbeat_at)
       VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (name) DO UPDATE SET tunnel_url = excluded.tunnel_url, version = excluded.version,
         started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at
       RETURNING (xmax = 0) AS inserted,
         (SELECT tunnel_url FROM old) IS DISTINCT FROM $2::text AS url_changed`,
      [i.name, i.tunnelUrl ?? null, i.version, i.startedAt.getTime(), at.getTime()],
    );
    if (rows[0]?.inserted || rows[0]?.url_changed) await this.#notify();
  }

  async listInstances({ liveSince }: { liveSince: Date }): Promise<InstanceRecord[]> {
    const { rows } = await this.#query<InstanceRow>(
      'SELECT * FROM instances WHERE heartbeat_at >= $1 ORDER BY name',
      [liveSince.getTime()],
    );
    return rows.map(toInstance);
  }

  async removeInstance(name: string): Promise<boolean> {
    await this.#query('DELETE FROM connector_attachments WHERE instance = $1', [name]);
    const { rowCount } = await this.#query('DELETE FROM instances WHERE name = $1', [name]);
    if (rowCount === 1) await this.#notify();
    return rowCount === 1;
  }

  async listRegistrationTokens(now = new Date()): Promise<RegistrationTokenRecord[]> {
    const { rows } = await this.#query<RegistrationTokenRow>(
      `SELECT id, connector_group, created_at, expires_at FROM registration_tokens
       WHERE used_at IS NULL AND revoked_at IS NULL AND expires_at > $1 ORDER BY created_at, id`,
      [now.getTime()],
    );
    return rows.map(toRegistrationToken);
  }

  async revokeRegistrationToken(id: string, at = new Date()): Promise<boolean> {
    const { rowCount } = await this.#query(
      `UPDATE registration_tokens SET revoked_at = $1
       WHERE id = $2 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $1`,
      [at.getTime(), id],
    );
    return rowCount === 1;
  }

  async appendAudit(events: NewAuditEvent[]): Promise<void> {
    if (events.length === 0) return;
    const now = new Date();
    const n = AUDIT_COLUMNS.length;
    // One multi-row INSERT: one round trip per batch.
    await this.#query(
      `INSERT INTO audit_events (${AUDIT_COLUMNS.join(', ')}) VALUES ${events
        .map((_, i) => `(${AUDIT_COLUMNS.map((_c, j) => `$${i * n + j + 1}`).join(', ')})`)
        .join(', ')}`,
      events.flatMap((e) => auditValues(e, this.instance, now)),
    );
  }

  async queryAudit(q: AuditQuery): Promise<AuditEvent[]> {
    const { text, values } = auditSelect(q, (i) => `$${i}`);
    return (await this.#query<AuditRow>(text, values)).rows.map(toAuditEvent);
  }

  async pruneAudit(before: Date): Promise<number> {
    const { rowCount } = await this.#query('DELETE FROM audit_events WHERE at < $1', [
      before.getTime(),
    ]);
    return rowCount ?? 0;
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
    await this.#query('DELETE FROM admin_tokens WHERE revoked_at < $1 OR expires_at < $1', [
      now.getTime() - TOKEN_RETENTION_MS,
    ]);
    for (;;) {
      const id = newTokenId();
      const { rowCount } = await this.#query(
        `INSERT INTO admin_tokens (id, name, secret_sha256, created_at, expires_at, created_by)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING`,
        [id, name, sha256(secret), now.getTime(), expiresAt?.getTime() ?? null, createdBy ?? null],
      );
      if (rowCount !== 1) continue;
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
      ? (
          await this.#query<AdminTokenRow>(
            `SELECT ${ADMIN_TOKEN_COLUMNS} FROM admin_tokens WHERE id = $1`,
            [parsed.id],
          )
        ).rows[0]
      : undefined;
    if (!adminTokenMatches(row, parsed?.secret ?? '', now)) return undefined;
    const t = now.getTime();
    if (!adminTokenUseDue(row, t)) return toAdminToken(row);
    // Another instance may have written it since the SELECT: the WHERE keeps one write a minute.
    const { rowCount } = await this.#query(
      `UPDATE admin_tokens SET last_used_at = $1
       WHERE id = $2 AND (last_used_at IS NULL OR last_used_at <= $3)`,
      [t, row.id, t - ADMIN_TOKEN_USE_INTERVAL_MS],
    );
    return toAdminToken(rowCount === 1 ? { ...row, last_used_at: t } : row);
  }

  async listAdminTokens(now = new Date()): Promise<AdminTokenRecord[]> {
    const { rows } = await this.#query<AdminTokenRow>(
      `SELECT ${ADMIN_TOKEN_COLUMNS} FROM admin_tokens
       WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1) ORDER BY created_at, id`,
      [now.getTime()],
    );
    return rows.map(toAdminToken);
  }

  async revokeAdminToken(idOrName: string, at = new Date()): Promise<boolean> {
    const { rowCount } = await this.#query(
      'UPDATE admin_tokens SET revoked_at = $1 WHERE (id = $2 OR name = $2) AND revoked_at IS NULL',
      [at.getTime(), idOrName],
    );
    return (rowCount ?? 0) > 0;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const stop of [...this.#stops]) stop();
    await this.#pool.end().catch(() => {});
  }
}
