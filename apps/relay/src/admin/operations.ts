import {
  AUDIT_QUERY_MAX_LIMIT,
  StateStoreError,
  type AdminTokenRecord,
  type AuditEvent,
  type AuditQuery,
  type NewAuditEvent,
  type PublishedAppConfig,
  type RelayConfig,
  type StateStore,
} from '@appproxy/config';
import { CAPABILITY, formatRegistrationToken } from '@appproxy/tunnel';
import { connectorState, type ConnectorState } from '../connector-registry.js';
import { loadConnectorCa } from '../relay-store.js';

/**
 * The admin operations, one implementation for the CLI and the admin API. Every function
 * returns plain JSON-able objects (dates as ISO strings), checks its input (AdminError
 * `BAD_REQUEST`), and audits what it changes as `ctx.actor`.
 */

/** An operation that cannot be done: a stable code, a one-line message, the HTTP status. */
export class AdminError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: 400 | 403 | 404 | 409 | 503,
  ) {
    super(message);
    this.name = 'AdminError';
  }
}

export interface AdminContext {
  config: RelayConfig;
  store: StateStore;
  audit: { record(e: NewAuditEvent): void };
  /** Who asks: `cli`, `token:ops`, `user:alice`. */
  actor: string;
}

export interface AppView {
  name: string;
  externalUrl: string;
  internalUrl: string;
  connectorGroup: string;
  preauth: PublishedAppConfig['preAuthentication'];
  /** `none`, `headers`, `jwt` or `kerberos`. */
  sso: 'none' | NonNullable<PublishedAppConfig['sso']>['mode'];
  /** The app's configuration after defaults, without secrets (a proxy's password). */
  settings: Record<string, unknown>;
}

export interface GroupView {
  name: string;
  apps: string[];
  /** Connectors not deleted, by state. */
  connectors: { active: number; inactive: number };
}

/** One row of `connectors list --json`. */
export interface ConnectorView {
  id: string;
  group: string;
  hostname: string;
  version: string;
  state: ConnectorState;
  lastSeen: string | null;
  tunnels: number;
  inFlight: number;
  /** The relay instances it has tunnels to (seen within the active window). */
  instances: Array<{ name: string; tunnels: number; inFlight: number; seenAt: string }>;
  capabilities: string[];
  kerberos: boolean;
  /** Known only once it connected and said what it can do. */
  missingCapabilities: string[];
  certificateExpires: string;
}

export interface RegistrationTokenView {
  id: string;
  group: string;
  createdAt: string;
  expiresAt: string;
}

export interface AdminTokenView {
  id: string;
  name: string;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  createdBy: string | null;
}

export type AuditEventView = Omit<AuditEvent, 'at'> & { at: string };

/** Store failures the caller can do nothing about but retry: 503 `STORE_UNAVAILABLE`. */
async function stored<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof StateStoreError && err.code === 'APPPROXY_STORE_UNAVAILABLE')
      throw new AdminError('STORE_UNAVAILABLE', err.message, 503);
    throw err;
  }
}

const iso = (d: Date | undefined) => d?.toISOString() ?? null;

/** `http://user:secret@proxy:3128` → `http://user:***@proxy:3128`. */
function withoutPassword(url: string): string {
  try {
    const u = new URL(url);
    if (!u.password) return url;
    u.password = '***';
    return u.toString().replace(/\/$/, url.endsWith('/') ? '/' : '');
  } catch {
    return '(unparsable URL)';
  }
}

export function listApps(ctx: AdminContext): AppView[] {
  return ctx.config.apps.map((app) => {
    const settings: Record<string, unknown> = { ...app };
    if (app.backendProxy) settings.backendProxy = withoutPassword(app.backendProxy);
    return {
      name: app.name,
      externalUrl: app.externalUrl,
      internalUrl: app.internalUrl,
      connectorGroup: app.connectorGroup,
      preauth: app.preAuthentication,
      sso: app.sso?.mode ?? 'none',
      settings,
    };
  });
}

/** The groups with their apps and connector counts (from `connectors` when already listed). */
export async function listGroups(
  ctx: AdminContext,
  listed?: ReadonlyArray<Pick<ConnectorView, 'group' | 'state'>>,
): Promise<GroupView[]> {
  const connectors = listed ?? (await listConnectors(ctx));
  return ctx.config.connectorGroups.map(({ name }) => {
    const mine = connectors.filter((c) => c.group === name);
    return {
      name,
      apps: ctx.config.apps.filter((a) => a.connectorGroup === name).map((a) => a.name),
      connectors: {
        active: mine.filter((c) => c.state === 'active').length,
        inactive: mine.filter((c) => c.state === 'inactive').length,
      },
    };
  });
}

export async function listConnectors(ctx: AdminContext): Promise<ConnectorView[]> {
  const now = Date.now();
  // What every connector of this version has; Kerberos is a connector's own setting.
  const known: string[] = [CAPABILITY.websocket, CAPABILITY.backendTls, CAPABILITY.diagnose];
  return (await stored(() => ctx.store.listConnectors())).map((c) => {
    const state = connectorState(c, now);
    const live = state === 'active';
    return {
      id: c.id,
      group: c.group,
      hostname: c.hostname ?? '',
      version: c.version ?? '',
      state,
      lastSeen: iso(c.lastSeenAt),
      tunnels: live ? c.tunnels : 0,
      inFlight: live ? c.inFlight : 0,
      instances: (c.instances ?? []).map((i) => ({
        name: i.name,
        tunnels: i.tunnels,
        inFlight: i.inFlight,
        seenAt: i.seenAt.toISOString(),
      })),
      capabilities: c.capabilities,
      kerberos: c.capabilities.includes(CAPABILITY.kerberos),
      missingCapabilities: c.lastSeenAt ? known.filter((k) => !c.capabilities.includes(k)) : [],
      certificateExpires: c.certNotAfter.toISOString(),
    };
  });
}

/** Revokes the connector's certificate: its tunnels close and it can never connect again. */
export async function deleteConnector(ctx: AdminContext, id: string): Promise<void> {
  const record = await stored(() => ctx.store.getConnector(id));
  if (!record || !(await stored(() => ctx.store.revokeConnector(id))))
    throw new AdminError('NOT_FOUND', `no connector with id ${id}`, 404);
  ctx.audit.record({
    type: 'admin.connector.deleted',
    actor: ctx.actor,
    connector: id,
    group: record.group,
  });
}

export async function createRegistrationToken(
  ctx: AdminContext,
  o: { group: string; ttlMs: number },
): Promise<{ token: string; id: string; group: string; expiresAt: string }> {
  if (!ctx.config.connectorGroups.some((g) => g.name === o.group))
    throw new AdminError('UNKNOWN_GROUP', `no connector group named "${o.group}"`, 400);
  if (!Number.isFinite(o.ttlMs) || o.ttlMs <= 0)
    throw new AdminError('BAD_REQUEST', 'ttl must be a positive duration', 400);
  // The CA first: with SQLite it creates stateDir's CA files, or says why it cannot.
  const ca = await stored(() => loadConnectorCa(ctx.store, ctx.config.relay.stateDir));
  const created = await stored(() =>
    ctx.store.createRegistrationToken({ group: o.group, ttlMs: o.ttlMs }),
  );
  ctx.audit.record({
    type: 'admin.registration-token.created',
    actor: ctx.actor,
    group: o.group,
    detail: { id: created.id, expiresAt: created.expiresAt.toISOString() },
  });
  return {
    token: formatRegistrationToken({
      id: created.id,
      secret: created.secret,
      caFingerprint: ca.fingerprint,
    }),
    id: created.id,
    group: o.group,
    expiresAt: created.expiresAt.toISOString(),
  };
}

export async function listRegistrationTokens(ctx: AdminContext): Promise<RegistrationTokenView[]> {
  return (await stored(() => ctx.store.listRegistrationTokens())).map((t) => ({
    id: t.id,
    group: t.group,
    createdAt: t.createdAt.toISOString(),
    expiresAt: t.expiresAt.toISOString(),
  }));
}

export async function revokeRegistrationToken(ctx: AdminContext, id: string): Promise<void> {
  if (!(await stored(() => ctx.store.revokeRegistrationToken(id))))
    throw new AdminError('NOT_FOUND', `no registration token ${id} that could still be used`, 404);
  ctx.audit.record({
    type: 'admin.registration-token.revoked',
    actor: ctx.actor,
    detail: { id },
  });
}

const ADMIN_TOKEN_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export async function createAdminToken(
  ctx: AdminContext,
  o: { name: string; ttlMs?: number },
): Promise<{ token: string; id: string; name: string; expiresAt: string | null }> {
  if (typeof o.name !== 'string' || !ADMIN_TOKEN_NAME.test(o.name))
    throw new AdminError(
      'BAD_REQUEST',
      'name must be 1-64 characters of A-Z a-z 0-9 . _ - (a letter or digit first)',
      400,
    );
  if (o.ttlMs !== undefined && (!Number.isFinite(o.ttlMs) || o.ttlMs <= 0))
    throw new AdminError('BAD_REQUEST', 'ttl must be a positive duration', 400);
  const active = await stored(() => ctx.store.listAdminTokens());
  if (active.some((t) => t.name === o.name))
    throw new AdminError(
      'CONFLICT',
      `an admin token named "${o.name}" exists; revoke it first or choose another name`,
      409,
    );
  const { token, record } = await stored(() =>
    ctx.store.createAdminToken({
      name: o.name,
      ...(o.ttlMs !== undefined && { ttlMs: o.ttlMs }),
      createdBy: ctx.actor,
    }),
  );
  ctx.audit.record({
    type: 'admin.admin-token.created',
    actor: ctx.actor,
    detail: { id: record.id, name: record.name, expiresAt: iso(record.expiresAt) },
  });
  return { token, id: record.id, name: record.name, expiresAt: iso(record.expiresAt) };
}

const adminTokenView = (t: AdminTokenRecord): AdminTokenView => ({
  id: t.id,
  name: t.name,
  createdAt: t.createdAt.toISOString(),
  expiresAt: iso(t.expiresAt),
  lastUsedAt: iso(t.lastUsedAt),
  createdBy: t.createdBy ?? null,
});

export async function listAdminTokens(ctx: AdminContext): Promise<AdminTokenView[]> {
  return (await stored(() => ctx.store.listAdminTokens())).map(adminTokenView);
}

export async function revokeAdminToken(ctx: AdminContext, idOrName: string): Promise<void> {
  const match = (await stored(() => ctx.store.listAdminTokens())).find(
    (t) => t.id === idOrName || t.name === idOrName,
  );
  if (!match || !(await stored(() => ctx.store.revokeAdminToken(idOrName))))
    throw new AdminError('NOT_FOUND', `no admin token with id or name ${idOrName}`, 404);
  ctx.audit.record({
    type: 'admin.admin-token.revoked',
    actor: ctx.actor,
    detail: { id: match.id, name: match.name },
  });
}

const AUDIT_TYPE = /^[a-z][a-z.-]{0,63}$/;

export async function queryAudit(ctx: AdminContext, q: AuditQuery): Promise<AuditEventView[]> {
  const valid = (d: Date | undefined) => d === undefined || Number.isFinite(d.getTime());
  if (!valid(q.since) || !valid(q.until))
    throw new AdminError('BAD_REQUEST', 'since and until must be valid times', 400);
  if (q.since && q.until && q.since > q.until)
    throw new AdminError('BAD_REQUEST', 'since must not be after until', 400);
  if (q.type !== undefined && !AUDIT_TYPE.test(q.type))
    throw new AdminError('BAD_REQUEST', `not an audit type or prefix: ${q.type}`, 400);
  if (
    q.limit !== undefined &&
    (!Number.isInteger(q.limit) || q.limit < 1 || q.limit > AUDIT_QUERY_MAX_LIMIT)
  )
    throw new AdminError(
      'BAD_REQUEST',
      `limit must be a whole number from 1 to ${AUDIT_QUERY_MAX_LIMIT}`,
      400,
    );
  return (await stored(() => ctx.store.queryAudit(q))).map((e) => ({
    ...e,
    at: e.at.toISOString(),
  }));
}
