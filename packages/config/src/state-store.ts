import {
  createCipheriv,
  createDecipheriv,
  createHash,
  hkdfSync,
  randomBytes,
  randomInt,
  timingSafeEqual,
} from 'node:crypto';
import { StateStoreError, TokenError } from './errors.js';

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
  /** Tunnels open: the sum over {@link instances}. Ignored by `upsertConnector`. */
  tunnels: number;
  /** Requests in flight through it: the sum over {@link instances}. Ignored by `upsertConnector`. */
  inFlight: number;
  /**
   * The relay instances that saw it within {@link ATTACHMENT_WINDOW_MS} (one row per
   * instance, by name). Ignored by `upsertConnector`; `recordConnectorSeen` writes them.
   * @default []
   */
  instances?: ConnectorAttachment[];
}

/** What one relay instance last noted about its tunnels from one connector. */
export interface ConnectorAttachment {
  /** The instance's name (`relay.instance.name`, else the host name). */
  name: string;
  tunnels: number;
  inFlight: number;
  seenAt: Date;
}

/** What the relay notes each time it sees a connector. */
export interface ConnectorSeen {
  at: Date;
  /** The instance that saw it. @default the store's `instance` */
  instance?: string;
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

/** What a relay instance says about itself in its heartbeat. */
export interface InstanceHeartbeat {
  name: string;
  /** How connectors reach this instance's tunnel port (`relay.instance.tunnelUrl`). */
  tunnelUrl?: string;
  version: string;
  startedAt: Date;
}

/** A relay instance as the store knows it. */
export interface InstanceRecord extends InstanceHeartbeat {
  heartbeatAt: Date;
}

/** The relay's durable state: registration tokens, connectors, instances and materials. */
export interface StateStore {
  /** `sqlite` (embedded, in stateDir) or `postgres` (shared by several relay instances). */
  readonly kind: 'sqlite' | 'postgres';
  /** The instance name `recordConnectorSeen` uses when it is not told one. */
  readonly instance: string;
  /**
   * A one-time registration token for a connector of `group`, valid for `ttlMs`.
   * Only SHA-256 of the secret is stored.
   */
  createRegistrationToken(opts: {
    group: string;
    ttlMs: number;
    now?: Date;
  }): Promise<CreatedRegistrationToken>;
  /**
   * Spends a token (once, even across processes and instances) and says which group the
   * connector joins.
   * @throws {TokenError} `APPPROXY_TOKEN_INVALID` (unknown id or wrong secret),
   * `APPPROXY_TOKEN_EXPIRED`, `APPPROXY_TOKEN_USED`, `APPPROXY_TOKEN_REVOKED`.
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
  ): Promise<{ group: string }>;
  /**
   * What `redeemRegistrationToken` would say, without spending the token: check it before
   * costly or fallible work (validating the CSR, signing), then redeem.
   * @throws {TokenError} as `redeemRegistrationToken`
   */
  checkRegistrationToken(
    id: string,
    secret: string,
    opts?: { now?: Date },
  ): Promise<{ group: string }>;
  /** Inserts or replaces the connector with this id (its attachments stay). */
  upsertConnector(c: ConnectorRecord): Promise<void>;
  getConnector(id: string): Promise<ConnectorRecord | undefined>;
  /** Every connector, oldest first. */
  listConnectors(): Promise<ConnectorRecord[]>;
  /**
   * Notes a tunnel from the connector; fields left out keep their value. `tunnels` and
   * `inFlight` are kept per instance (`seen.instance`). Unknown ids are ignored.
   */
  recordConnectorSeen(id: string, seen: ConnectorSeen): Promise<void>;
  /** Marks the connector revoked: its certificates are refused from now on. False for unknown ids. */
  revokeConnector(id: string, at?: Date): Promise<boolean>;
  /**
   * Records a renewed certificate. The certificate the connector presented when it asked
   * (`replacing`) stays accepted as the previous one until it expires.
   */
  renewConnectorCertificate(
    id: string,
    cert: { serial: string; fingerprint: string; notAfter: Date },
    replacing: { fingerprint: string; notAfter: Date },
  ): Promise<void>;
  /**
   * Removes connectors not seen since `before` (never seen: registered before it) and those
   * revoked before it, and attachments not seen since `before`. Returns the connectors' ids.
   */
  pruneConnectors(before: Date): Promise<string[]>;
  /**
   * Calls `onChange` (without arguments, possibly more than once per change) after a write
   * that matters to tunnels — a revocation, a new or replaced connector, a renewal, an
   * instance that came or went — made by another connection: another process (the CLI) or
   * another relay instance; and a revocation made through this store. SQLite polls `data_version` every 250 ms; PostgreSQL uses
   * LISTEN/NOTIFY, with a poll every 5 s in case a notification was lost, and calls
   * `onChange` once each time it (re)starts listening. Returns the function that stops
   * watching.
   */
  watch(onChange: () => void): () => void;
  /** A material (the connector CA, session secrets, ACME keys) by name, or undefined. */
  getMaterial(name: string): Promise<string | undefined>;
  /** Stores `value` unless `name` exists; returns the stored value (the first writer wins). */
  putMaterialIfAbsent(name: string, value: string): Promise<string>;
  /** Stores or replaces a material. */
  putMaterial(name: string, value: string): Promise<void>;
  /** Removes a material; false if there was none. */
  deleteMaterial(name: string): Promise<boolean>;
  /**
   * Notes that an instance is alive at `at` (inserting it the first time). Call it every few
   * seconds; `listInstances` tells the live ones.
   */
  heartbeatInstance(instance: InstanceHeartbeat, at?: Date): Promise<void>;
  /** Instances whose last heartbeat is at or after `liveSince`, by name. */
  listInstances(opts: { liveSince: Date }): Promise<InstanceRecord[]>;
  /** Forgets an instance and its attachments (e.g. on shutdown). False for unknown names. */
  removeInstance(name: string): Promise<boolean>;
  /** Appends audit events (`id`, `at` unless given, and `instance` are filled in). */
  appendAudit(events: NewAuditEvent[]): Promise<void>;
  /** Audit events matching `q`, newest first (at most `q.limit`, default 200, max 1000). */
  queryAudit(q: AuditQuery): Promise<AuditEvent[]>;
  /** Removes audit events older than `before`; returns how many. */
  pruneAudit(before: Date): Promise<number>;
  /**
   * A new admin token `apx_<id>_<secret>` (shown once; only SHA-256 of the secret is kept).
   * @throws {TypeError} for a name that is not 1–64 of `A-Za-z0-9._-` or a non-positive ttl
   */
  createAdminToken(o: {
    name: string;
    ttlMs?: number;
    createdBy?: string;
    now?: Date;
  }): Promise<{ token: string; record: AdminTokenRecord }>;
  /**
   * The token's record, or undefined for an unknown, malformed, expired or revoked token
   * (compared in constant time). Notes `lastUsedAt`, at most once a minute.
   */
  verifyAdminToken(token: string, now?: Date): Promise<AdminTokenRecord | undefined>;
  /** Admin tokens neither revoked nor expired, oldest first. */
  listAdminTokens(now?: Date): Promise<AdminTokenRecord[]>;
  /** Revokes the (not yet revoked) tokens with this id or name; false if there was none. */
  revokeAdminToken(idOrName: string, at?: Date): Promise<boolean>;
  /** Registration tokens neither redeemed, expired nor revoked, oldest first. */
  listRegistrationTokens(now?: Date): Promise<RegistrationTokenRecord[]>;
  /**
   * Revokes a registration token that could still be redeemed (it is refused from now on
   * with `APPPROXY_TOKEN_REVOKED`); false for unknown, redeemed, expired or revoked ones.
   */
  revokeRegistrationToken(id: string, at?: Date): Promise<boolean>;
  /** Closes the database; the store cannot be used afterwards. Idempotent. */
  close(): Promise<void>;
}

/** Every audit event type, grouped by what it is about (the console's filter offers them in this order). */
export const AUDIT_TYPES = [
  'signin.succeeded',
  'signin.failed',
  'signout',
  'access.refused',
  'admin.registration-token.created',
  'admin.registration-token.revoked',
  'admin.admin-token.created',
  'admin.admin-token.revoked',
  'admin.connector.deleted',
  'admin.config.reloaded',
  'admin.app.tested',
  'admin.signin.succeeded',
  'admin.signin.failed',
  'admin.signin.refused',
  'admin.signout',
  'connector.registered',
  'connector.connected',
  'connector.disconnected',
  'connector.revoked',
] as const;

/** What an audit event is about. */
export type AuditType = (typeof AUDIT_TYPES)[number];

/** One audit record. Never holds a secret. */
export interface AuditEvent {
  /** Assigned by the store; sorts by time. */
  id: string;
  at: Date;
  type: AuditType;
  /** `store.instance` of the writer. */
  instance: string;
  /** Who did it: `user:alice`, `token:ops`, `cli`, `connector:<id>`, `signal:SIGHUP`. */
  actor?: string;
  user?: string;
  app?: string;
  clientAddress?: string;
  /** Reason code: NOT_ASSIGNED, POLICY_DENIED, THROTTLED, SIGN_IN_FAILED… */
  code?: string;
  connector?: string;
  group?: string;
  correlationId?: string;
  /** Small, no secrets. */
  detail?: Record<string, string | number | boolean | null>;
}

export type NewAuditEvent = Omit<AuditEvent, 'id' | 'at' | 'instance'> & { at?: Date };

export interface AuditQuery {
  since?: Date;
  until?: Date;
  user?: string;
  app?: string;
  /**
   * A type, or a prefix of types: `signin` and `signin.` both match `signin.succeeded` and
   * `signin.failed` (a prefix without the dot matches at a dot boundary only).
   */
  type?: AuditType | string;
  /** @default 200, at most 1000 */
  limit?: number;
}

export interface AdminTokenRecord {
  id: string;
  name: string;
  createdAt: Date;
  expiresAt?: Date;
  lastUsedAt?: Date;
  createdBy?: string;
}

export interface RegistrationTokenRecord {
  id: string;
  group: string;
  createdAt: Date;
  expiresAt: Date;
}

/** How to open the state store. */
export interface StateStoreOptions {
  /** `relay.stateDir`: the SQLite database lives here (and the CA files with SQLite). */
  stateDir: string;
  /** `relay.store.postgres`: a shared PostgreSQL database instead of SQLite. */
  postgres?: { url: string };
  /**
   * `relay.storeKey`: seals every material (AES-256-GCM, key by HKDF-SHA256). Required with
   * PostgreSQL; with SQLite, materials are sealed too when it is given.
   */
  storeKey?: string;
  /** The name of this relay instance. @default os.hostname() */
  instance?: string;
}

// ---- shared by both implementations ----

/** Used or expired tokens are deleted this long after expiry (until then they say EXPIRED/USED). */
export const TOKEN_RETENTION_MS = 7 * 24 * 3600 * 1000;
/**
 * Attachments seen within this long count in `tunnels`, `inFlight` and `instances`: the relay
 * notes its connectors every 5 s, so three missed notes mean the instance is gone.
 */
export const ATTACHMENT_WINDOW_MS = 15_000;
/** Shortest `relay.storeKey`. */
export const STORE_KEY_MIN_LENGTH = 32;

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';
const TOKEN_ID = /^[a-z2-7]{8}$/;

export const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** 8 base32 characters: 40 random bits (callers retry on the rare clash). */
export const newTokenId = () => Array.from({ length: 8 }, () => BASE32[randomInt(32)]).join('');

/** A token's new secret and expiry, after checking the options. */
export function newTokenParts(group: string, ttlMs: number, now: Date) {
  if (typeof group !== 'string' || group === '')
    throw new TypeError('group must be a non-empty string');
  if (!Number.isFinite(ttlMs) || ttlMs <= 0)
    throw new RangeError('ttlMs must be a positive number of milliseconds');
  return {
    secret: randomBytes(32).toString('base64url'),
    expiresAt: new Date(now.getTime() + ttlMs),
  };
}

/** Whether `id` can be a token id at all (anything else is not even looked up). */
export const plausibleTokenId = (id: unknown): id is string =>
  typeof id === 'string' && TOKEN_ID.test(id);

export interface TokenRow {
  secret_sha256: Uint8Array;
  connector_group: string;
  expires_at: number;
  used_at: number | null;
  revoked_at: number | null;
}

/** Checks a presented secret against the stored row; throws the token's error. */
export function validateToken(row: TokenRow | undefined, secret: string, now: Date): TokenRow {
  const presented = sha256(typeof secret === 'string' ? secret : '');
  // Compare even for unknown ids, so timing does not tell which ids exist.
  const stored = row ? Buffer.from(row.secret_sha256) : Buffer.alloc(presented.length);
  const matches = stored.length === presented.length && timingSafeEqual(stored, presented);
  if (!row || !matches) throw new TokenError('APPPROXY_TOKEN_INVALID');
  if (row.revoked_at !== null) throw new TokenError('APPPROXY_TOKEN_REVOKED');
  if (row.used_at !== null) throw new TokenError('APPPROXY_TOKEN_USED');
  if (now.getTime() >= row.expires_at) throw new TokenError('APPPROXY_TOKEN_EXPIRED');
  return row;
}

export interface ConnectorRow {
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
}

export interface AttachmentRow {
  connector_id: string;
  instance: string;
  tunnels: number;
  in_flight: number;
  seen_at: number;
}

/** The values of a connector row, in the column order of {@link CONNECTOR_COLUMNS}. */
export const CONNECTOR_COLUMNS = [
  'id',
  'connector_group',
  'cert_serial',
  'cert_fingerprint',
  'cert_not_after',
  'created_at',
  'last_seen_at',
  'hostname',
  'version',
  'capabilities',
  'revoked_at',
  'prev_cert_fingerprint',
  'prev_cert_not_after',
] as const;

export function connectorValues(c: ConnectorRecord): Array<string | number | null> {
  return [
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
  ];
}

/** A record from its row and its attachments (those seen within the window count). */
export function toRecord(
  r: ConnectorRow,
  attachments: readonly AttachmentRow[],
  now = Date.now(),
): ConnectorRecord {
  const instances = attachments
    .filter((a) => a.seen_at > now - ATTACHMENT_WINDOW_MS)
    .map((a) => ({
      name: a.instance,
      tunnels: a.tunnels,
      inFlight: a.in_flight,
      seenAt: new Date(a.seen_at),
    }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
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
    tunnels: instances.reduce((n, a) => n + a.tunnels, 0),
    inFlight: instances.reduce((n, a) => n + a.inFlight, 0),
    instances,
  };
}

/** Groups attachment rows by connector id. */
export function byConnector(rows: readonly AttachmentRow[]): Map<string, AttachmentRow[]> {
  const m = new Map<string, AttachmentRow[]>();
  for (const r of rows) {
    const list = m.get(r.connector_id);
    if (list) list.push(r);
    else m.set(r.connector_id, [r]);
  }
  return m;
}

export interface InstanceRow {
  name: string;
  tunnel_url: string | null;
  version: string;
  started_at: number;
  heartbeat_at: number;
}

export const toInstance = (r: InstanceRow): InstanceRecord => ({
  name: r.name,
  ...(r.tunnel_url !== null && { tunnelUrl: r.tunnel_url }),
  version: r.version,
  startedAt: new Date(r.started_at),
  heartbeatAt: new Date(r.heartbeat_at),
});

const SEAL_VERSION = 1;
const KEY_CHECK = 'appproxy store key check';

/**
 * Seals materials with a key derived from `relay.storeKey`: AES-256-GCM, a random 96-bit IV
 * per value, the material's name as associated data (a value moved to another name does
 * not open). Layout: version (1) | IV (12) | tag (16) | ciphertext.
 */
export class MaterialSealer {
  readonly #key: Buffer;

  constructor(storeKey: string) {
    if (typeof storeKey !== 'string' || storeKey.length < STORE_KEY_MIN_LENGTH)
      throw new StateStoreError(
        'APPPROXY_STORE_KEY_MISSING',
        `relay.storeKey must be at least ${STORE_KEY_MIN_LENGTH} characters`,
      );
    this.#key = Buffer.from(
      hkdfSync('sha256', storeKey, 'appproxy-state-store', 'materials v1', 32),
    );
  }

  seal(name: string, value: string): Buffer {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv).setAAD(Buffer.from(name));
    const body = Buffer.concat([cipher.update(value, 'utf8'), cipher.final()]);
    return Buffer.concat([Buffer.of(SEAL_VERSION), iv, cipher.getAuthTag(), body]);
  }

  /** @throws {StateStoreError} `APPPROXY_STORE_KEY_WRONG` when the key does not open it */
  open(name: string, sealed: Uint8Array): string {
    const b = Buffer.from(sealed);
    try {
      if (b[0] !== SEAL_VERSION) throw new Error('unknown seal version');
      const decipher = createDecipheriv('aes-256-gcm', this.#key, b.subarray(1, 13))
        .setAAD(Buffer.from(name))
        .setAuthTag(b.subarray(13, 29));
      return Buffer.concat([decipher.update(b.subarray(29)), decipher.final()]).toString('utf8');
    } catch {
      throw wrongKey();
    }
  }

  /** A sealed known text: stored once, opened at every start to tell a wrong key early. */
  keyCheck(): Buffer {
    return this.seal('key-check', KEY_CHECK);
  }

  /** @throws {StateStoreError} `APPPROXY_STORE_KEY_WRONG` */
  verifyKeyCheck(sealed: Uint8Array): void {
    if (this.open('key-check', sealed) !== KEY_CHECK) throw wrongKey();
  }
}

const wrongKey = () =>
  new StateStoreError(
    'APPPROXY_STORE_KEY_WRONG',
    'relay.storeKey is not the key the store was sealed with (materials cannot be opened)',
  );

// ---- audit events and admin tokens (shared by both implementations) ----

export const AUDIT_QUERY_DEFAULT_LIMIT = 200;
export const AUDIT_QUERY_MAX_LIMIT = 1000;
/** `lastUsedAt` of an admin token is written at most this often. */
export const ADMIN_TOKEN_USE_INTERVAL_MS = 60_000;
const ADMIN_TOKEN_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** Admin tokens read `apx_<id>_<secret>`. */
export const ADMIN_TOKEN_PREFIX = 'apx_';

let auditSequence = 0;

/**
 * A sortable event id: the time (ms, base36, 9 characters), a per-process sequence (so events
 * of one writer in one millisecond keep their order) and 40 random bits (unique across writers).
 */
export function newAuditId(at: Date): string {
  auditSequence = (auditSequence + 1) % 36 ** 4;
  return (
    Math.max(0, at.getTime()).toString(36).padStart(9, '0') +
    auditSequence.toString(36).padStart(4, '0') +
    randomBytes(5).toString('hex')
  );
}

export interface AuditRow {
  id: string;
  at: number;
  type: string;
  instance: string;
  actor: string | null;
  user_name: string | null;
  app: string | null;
  client_address: string | null;
  code: string | null;
  connector: string | null;
  connector_group: string | null;
  correlation_id: string | null;
  detail: string | null;
}

/** The columns of an audit row, in the order of {@link auditValues}. */
export const AUDIT_COLUMNS = [
  'id',
  'at',
  'type',
  'instance',
  'actor',
  'user_name',
  'app',
  'client_address',
  'code',
  'connector',
  'connector_group',
  'correlation_id',
  'detail',
] as const;

export function auditValues(
  e: NewAuditEvent,
  instance: string,
  now: Date,
): Array<string | number | null> {
  const at = e.at ?? now;
  const s = (v: unknown) => (typeof v === 'string' && v !== '' ? v : null);
  return [
    newAuditId(at),
    at.getTime(),
    e.type,
    instance,
    s(e.actor),
    s(e.user),
    s(e.app),
    s(e.clientAddress),
    s(e.code),
    s(e.connector),
    s(e.group),
    s(e.correlationId),
    e.detail && Object.keys(e.detail).length > 0 ? JSON.stringify(e.detail) : null,
  ];
}

export function toAuditEvent(r: AuditRow): AuditEvent {
  return {
    id: r.id,
    at: new Date(Number(r.at)),
    type: r.type as AuditType,
    instance: r.instance,
    ...(r.actor !== null && { actor: r.actor }),
    ...(r.user_name !== null && { user: r.user_name }),
    ...(r.app !== null && { app: r.app }),
    ...(r.client_address !== null && { clientAddress: r.client_address }),
    ...(r.code !== null && { code: r.code }),
    ...(r.connector !== null && { connector: r.connector }),
    ...(r.connector_group !== null && { group: r.connector_group }),
    ...(r.correlation_id !== null && { correlationId: r.correlation_id }),
    ...(r.detail !== null && { detail: JSON.parse(r.detail) as AuditEvent['detail'] }),
  };
}

/**
 * The SELECT of an audit query, newest first; `p(n)` writes the n-th (1-based) placeholder
 * (`?` for SQLite, `$n` for PostgreSQL).
 */
export function auditSelect(
  q: AuditQuery,
  p: (n: number) => string,
): { text: string; values: Array<string | number> } {
  const where: string[] = [];
  const values: Array<string | number> = [];
  const add = (sql: (ph: string) => string, v: string | number) => {
    values.push(v);
    where.push(sql(p(values.length)));
  };
  if (q.since) add((ph) => `at >= ${ph}`, q.since.getTime());
  if (q.until) add((ph) => `at < ${ph}`, q.until.getTime());
  if (q.user) add((ph) => `user_name = ${ph}`, q.user);
  if (q.app) add((ph) => `app = ${ph}`, q.app);
  if (q.type) {
    // substr instead of LIKE: nothing in the value is a wildcard.
    const t = q.type;
    if (t.endsWith('.')) {
      values.push(t);
      where.push(`substr(type, 1, ${t.length}) = ${p(values.length)}`);
    } else {
      values.push(t, `${t}.`);
      where.push(
        `(type = ${p(values.length - 1)} OR substr(type, 1, ${t.length + 1}) = ${p(values.length)})`,
      );
    }
  }
  const limit = Math.min(
    AUDIT_QUERY_MAX_LIMIT,
    Math.max(1, Math.floor(q.limit ?? AUDIT_QUERY_DEFAULT_LIMIT) || AUDIT_QUERY_DEFAULT_LIMIT),
  );
  return {
    text: `SELECT ${AUDIT_COLUMNS.join(', ')} FROM audit_events${
      where.length ? ` WHERE ${where.join(' AND ')}` : ''
    } ORDER BY at DESC, id DESC LIMIT ${limit}`,
    values,
  };
}

export interface AdminTokenRow {
  id: string;
  name: string;
  secret_sha256: Uint8Array;
  created_at: number;
  expires_at: number | null;
  last_used_at: number | null;
  created_by: string | null;
  revoked_at: number | null;
}

/** A new admin token's secret and expiry, after checking the options. */
export function newAdminTokenParts(name: string, ttlMs: number | undefined, now: Date) {
  if (typeof name !== 'string' || !ADMIN_TOKEN_NAME.test(name))
    throw new TypeError(
      'name must be 1-64 characters of A-Z a-z 0-9 . _ - (a letter or digit first)',
    );
  if (ttlMs !== undefined && (!Number.isFinite(ttlMs) || ttlMs <= 0))
    throw new RangeError('ttlMs must be a positive number of milliseconds');
  return {
    secret: randomBytes(32).toString('base64url'),
    expiresAt: ttlMs === undefined ? undefined : new Date(now.getTime() + ttlMs),
  };
}

export const formatAdminToken = (id: string, secret: string) =>
  `${ADMIN_TOKEN_PREFIX}${id}_${secret}`;

/** `apx_<id>_<secret>` split, or undefined when it cannot be an admin token. */
export function parseAdminToken(token: unknown): { id: string; secret: string } | undefined {
  if (typeof token !== 'string' || !token.startsWith(ADMIN_TOKEN_PREFIX)) return undefined;
  const id = token.slice(ADMIN_TOKEN_PREFIX.length, ADMIN_TOKEN_PREFIX.length + 8);
  const rest = token.slice(ADMIN_TOKEN_PREFIX.length + 8);
  if (!plausibleTokenId(id) || !rest.startsWith('_') || rest.length < 2) return undefined;
  return { id, secret: rest.slice(1) };
}

/** Whether the row is a usable token whose secret is `secret` (constant-time compare). */
export function adminTokenMatches(
  row: AdminTokenRow | undefined,
  secret: string,
  now: Date,
): row is AdminTokenRow {
  const presented = sha256(secret);
  const stored = row ? Buffer.from(row.secret_sha256) : Buffer.alloc(presented.length);
  const matches = stored.length === presented.length && timingSafeEqual(stored, presented);
  return (
    !!row &&
    matches &&
    row.revoked_at === null &&
    (row.expires_at === null || now.getTime() < row.expires_at)
  );
}

/**
 * Whether a verified token's `lastUsedAt` is due a write (at most once a
 * `ADMIN_TOKEN_USE_INTERVAL_MS`): every other request with it reads and writes nothing more.
 */
export function adminTokenUseDue(row: AdminTokenRow, now: number): boolean {
  return row.last_used_at === null || Number(row.last_used_at) <= now - ADMIN_TOKEN_USE_INTERVAL_MS;
}

/** A registration token row (unused, unrevoked) as both stores read it. */
export interface RegistrationTokenRow {
  id: string;
  connector_group: string;
  created_at: number;
  expires_at: number;
}

export const toRegistrationToken = (r: RegistrationTokenRow): RegistrationTokenRecord => ({
  id: r.id,
  group: r.connector_group,
  createdAt: new Date(r.created_at),
  expiresAt: new Date(r.expires_at),
});

export const toAdminToken = (r: AdminTokenRow): AdminTokenRecord => ({
  id: r.id,
  name: r.name,
  createdAt: new Date(Number(r.created_at)),
  ...(r.expires_at !== null && { expiresAt: new Date(Number(r.expires_at)) }),
  ...(r.last_used_at !== null && { lastUsedAt: new Date(Number(r.last_used_at)) }),
  ...(r.created_by !== null && { createdBy: r.created_by }),
});

export const ADMIN_TOKEN_COLUMNS =
  'id, name, secret_sha256, created_at, expires_at, last_used_at, created_by, revoked_at';
