import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import {
  BACKEND_TLS_ID,
  decodeBackendTls,
  encodeBackendTls,
  type BackendTlsMeta,
} from './backend-tls.js';
import { TunnelError } from './errors.js';
import { META } from './protocol.js';

/**
 * The signed-in user the relay passes to the connector (`appproxy-identity`): the claims an
 * oidc app's sign-in produced. For the connector (logs, single sign-on); never forwarded to
 * a backend.
 */
export interface TunnelIdentity {
  sub: string;
  issuer: string;
  name?: string;
  email?: string;
  preferredUsername?: string;
  upn?: string;
  /** On-premises sAMAccountName, when the provider sends it. */
  samAccountName?: string;
  groups?: string[];
  roles?: string[];
  /** Claims kept for single sign-on settings (`claim:<path>`), by path. */
  claims?: Record<string, string | number | boolean | string[]>;
  amr?: string[];
  groupsOverage?: true;
  groupsTruncated?: true;
  authTime?: number;
}

/**
 * What the relay tells the connector about one proxied request or upgrade, beside the
 * request itself (docs/tunnel-protocol.md §3.2). One definition for both sides, so the
 * relay that writes it and the connector that reads it cannot drift.
 */
export interface RequestMeta {
  /** Origin of the internal URL the connector contacts (`http(s)://host[:port]`). */
  target: URL;
  /** Correlation id: both sides' logs and the user's error page. */
  requestId: string;
  /** The app's name (logs, metrics). */
  app: string;
  /** Backend timeout for headers and between body bytes. */
  timeoutMs: number;
  /** `false`: the app's `validateBackendTls: false`. */
  verifyTls: boolean;
  /** Forward proxy towards the backend (the app's `backendProxy`). */
  backendProxy?: string;
  /** How long an idle backend connection is kept (the app's `backendKeepAlive`); absent: the connector's default. */
  keepAliveMs?: number;
  /** The signed-in user of an oidc app. */
  identity?: TunnelIdentity;
  /** On an extended CONNECT stream: the client's `Upgrade` protocol. */
  upgrade?: string;
  /** Connection affinity: one dedicated backend connection per id (NTLM/Negotiate). */
  affinity?: string;
  /**
   * Kerberos single sign-on: the connector gets a ticket for `user` (the login identity)
   * towards `spn` by constrained delegation and sends `Authorization: Negotiate …`.
   */
  kerberos?: { user: string; spn: string };
  /** The app's `backendTls`: its id, and its material until the connector has it. */
  backendTls?: BackendTlsMeta;
}

/** Codes a connector answers with when the backend never did (`appproxy-error`). */
export const CONNECTOR_ERROR_CODES = [
  'BACKEND_UNREACHABLE',
  'BACKEND_TIMEOUT',
  'BACKEND_TLS_INVALID',
  'BACKEND_UPGRADE_REFUSED',
  /** An upgrade the connector never forwards (h2c), whatever the relay asked. */
  'UPGRADE_REFUSED',
  // Kerberos single sign-on (docs/kerberos.md): the connector could not get or use a ticket.
  /** This connector has no Kerberos settings (the relay tries another connector). */
  'SSO_NOT_CONFIGURED',
  'SSO_KDC_UNREACHABLE',
  'SSO_DELEGATION_DENIED',
  'SSO_USER_UNKNOWN',
  'SSO_CLOCK_SKEW',
  'SSO_SPN_UNKNOWN',
  'SSO_SERVICE_LOGIN_FAILED',
  'SSO_KERBEROS_FAILED',
  /** The backend still answered 401 Negotiate to the delegated ticket. */
  'SSO_BACKEND_REJECTED',
] as const;
export type ConnectorErrorCode = (typeof CONNECTOR_ERROR_CODES)[number];

const CONNECTOR_ERRORS: ReadonlySet<string> = new Set(CONNECTOR_ERROR_CODES);

/**
 * Whether `value` is one of {@link CONNECTOR_ERROR_CODES}.
 *
 * @example
 * isConnectorErrorCode('BACKEND_TIMEOUT'); // true
 */
export function isConnectorErrorCode(value: unknown): value is ConnectorErrorCode {
  return typeof value === 'string' && CONNECTOR_ERRORS.has(value);
}

/** What {@link encodeRequestMeta} takes: the target also as an origin string. */
export type RequestMetaInit = Omit<RequestMeta, 'target'> & { target: URL | string };

/**
 * Writes `meta` into the headers of a tunnel stream (in place; returns them).
 *
 * @example
 * const h = encodeRequestMeta(
 *   { target: new URL('http://wiki.corp:8080'), requestId: 'r1', app: 'Wiki', timeoutMs: 85000, verifyTls: true },
 *   { ':method': 'GET', ':path': '/' },
 * );
 * h['appproxy-target']; // 'http://wiki.corp:8080'
 */
export function encodeRequestMeta(
  meta: RequestMetaInit,
  headers: OutgoingHttpHeaders,
): OutgoingHttpHeaders {
  headers[META.target] = typeof meta.target === 'string' ? meta.target : meta.target.origin;
  headers[META.requestId] = meta.requestId;
  headers[META.app] = meta.app;
  headers[META.timeout] = String(meta.timeoutMs);
  headers[META.tlsVerify] = meta.verifyTls ? '1' : '0';
  if (meta.backendProxy !== undefined) headers[META.backendProxy] = meta.backendProxy;
  if (meta.keepAliveMs !== undefined) headers[META.backendKeepAlive] = String(meta.keepAliveMs);
  if (meta.identity !== undefined)
    headers[META.identity] = Buffer.from(JSON.stringify(meta.identity)).toString('base64url');
  if (meta.upgrade !== undefined) headers[META.upgrade] = meta.upgrade;
  if (meta.affinity !== undefined) headers[META.affinity] = meta.affinity;
  if (meta.kerberos !== undefined) {
    headers[META.kerberosSpn] = meta.kerberos.spn;
    headers[META.ssoUser] = encodeURIComponent(meta.kerberos.user);
  }
  if (meta.backendTls !== undefined) {
    headers[META.backendTlsId] = meta.backendTls.id;
    if (meta.backendTls.material)
      headers[META.backendTls] = encodeBackendTls(meta.backendTls.material);
  }
  return headers;
}

/** An affinity id: the relay makes 16 random bytes in base64url. */
export const AFFINITY_ID = /^[A-Za-z0-9_-]{8,64}$/;

/** Parsed targets by header value (one per published app; cleared if it ever grows large). */
const targets = new Map<string, URL>();
const MAX_CACHED_TARGETS = 1000;

function invalid(header: string, why: string): TunnelError {
  return new TunnelError('APPPROXY_TUNNEL_META_INVALID', `${header}: ${why}`);
}

function one(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function parseTarget(value: string | undefined): URL {
  if (value === undefined) throw invalid(META.target, 'missing');
  let url = targets.get(value);
  if (url) return url;
  try {
    url = new URL(value);
  } catch {
    throw invalid(META.target, 'not a URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw invalid(META.target, `scheme ${url.protocol} is not http or https`);
  if (targets.size >= MAX_CACHED_TARGETS) targets.clear();
  targets.set(value, url);
  return url;
}

function parseIdentity(value: string | undefined): TunnelIdentity | undefined {
  if (value === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(value, 'base64url').toString('utf8'));
  } catch {
    throw invalid(META.identity, 'not base64url JSON');
  }
  const id = parsed as Partial<TunnelIdentity> | null;
  if (!id || typeof id !== 'object' || typeof id.sub !== 'string' || typeof id.issuer !== 'string')
    throw invalid(META.identity, 'not an identity (sub and issuer required)');
  return id as TunnelIdentity;
}

/**
 * Reads the metadata of a tunnel stream; throws a `TunnelError` with code
 * `APPPROXY_TUNNEL_META_INVALID` naming the header that is missing or malformed.
 *
 * @example
 * decodeRequestMeta({ 'appproxy-target': 'http://wiki.corp:8080', 'appproxy-request-id': 'r1', 'appproxy-app': 'Wiki', 'appproxy-timeout-ms': '5000' }).timeoutMs; // 5000
 */
export function decodeRequestMeta(headers: IncomingHttpHeaders): RequestMeta {
  const target = parseTarget(one(headers, META.target));
  const timeout = one(headers, META.timeout);
  const timeoutMs = Number(timeout);
  if (timeout === undefined || !/^\d+$/.test(timeout) || timeoutMs <= 0)
    throw invalid(META.timeout, `${JSON.stringify(timeout ?? null)} is not a positive integer`);
  const meta: RequestMeta = {
    target,
    requestId: one(headers, META.requestId) ?? '',
    app: one(headers, META.app) ?? '-',
    timeoutMs,
    verifyTls: one(headers, META.tlsVerify) !== '0',
  };
  const proxy = one(headers, META.backendProxy);
  if (proxy !== undefined) meta.backendProxy = proxy;
  const keepAlive = one(headers, META.backendKeepAlive);
  if (keepAlive !== undefined) {
    if (!/^\d{1,9}$/.test(keepAlive))
      throw invalid(META.backendKeepAlive, `${JSON.stringify(keepAlive)} is not a whole number`);
    meta.keepAliveMs = Number(keepAlive);
  }
  const identity = parseIdentity(one(headers, META.identity));
  if (identity !== undefined) meta.identity = identity;
  const upgrade = one(headers, META.upgrade);
  if (upgrade !== undefined) meta.upgrade = upgrade;
  const affinity = one(headers, META.affinity);
  if (affinity !== undefined) {
    if (!AFFINITY_ID.test(affinity))
      throw invalid(META.affinity, 'not 8 to 64 base64url characters');
    meta.affinity = affinity;
  }
  const spn = one(headers, META.kerberosSpn);
  if (spn !== undefined) meta.kerberos = { spn, user: parseSsoUser(one(headers, META.ssoUser)) };
  const tlsId = one(headers, META.backendTlsId);
  if (tlsId !== undefined) {
    if (!BACKEND_TLS_ID.test(tlsId)) throw invalid(META.backendTlsId, 'not a base64url digest');
    const material = one(headers, META.backendTls);
    meta.backendTls =
      material === undefined
        ? { id: tlsId }
        : { id: tlsId, material: decodeBackendTls(META.backendTls, material, tlsId) };
  }
  return meta;
}

function parseSsoUser(value: string | undefined): string {
  if (value === undefined || value === '') throw invalid(META.ssoUser, 'missing');
  try {
    return decodeURIComponent(value);
  } catch {
    throw invalid(META.ssoUser, 'not percent-encoded UTF-8');
  }
}
