import { availableParallelism } from 'node:os';
import * as z from 'zod';
import { DURATION_PATTERN, parseDuration } from './duration.js';
import { HOST_PORT_EXPECTED, isHostnameOrIp, parseHostPort, type HostPort } from './host-port.js';
import { certificateShape } from './internal/certificates.js';
import { isIpOrCidr } from './internal/net.js';
import {
  checkAdminUrl,
  checkAppUrl,
  checkIssuer,
  checkProxyUrl,
  type UrlCheck,
} from './internal/urls.js';
import type { PagesConfig } from './pages.js';

/** `backendTimeout: default`. */
export const BACKEND_TIMEOUT_DEFAULT_MS = 85_000;
/** `backendTimeout: long`, for apps with slow reports or uploads. */
export const BACKEND_TIMEOUT_LONG_MS = 180_000;
/** Longest timer Node can arm (2^31-1 ms, about 24.8 days); longer ones fire at once. */
const MAX_TIMER_MS = 2_147_483_647;
const DAY_MS = 24 * 3600 * 1000;

/** Cookie attributes the relay applies to its own and the app's cookies. */
export interface CookiePolicy {
  /** @default true */
  httpOnly: boolean;
  /** @default true */
  secure: boolean;
  /** Keep cookies across browser restarts instead of session cookies. @default false */
  persistent: boolean;
  /** Unset keeps what the app sends. `None` requires `secure`. */
  sameSite?: 'Strict' | 'Lax' | 'None';
}

/** One published app, resolved: every default applied, URLs normalised. */
export interface PublishedAppConfig {
  /** Unique among apps; shown on error pages and in logs. */
  name: string;
  /** Absolute http(s) URL the connector forwards to; the path ends with `/`. */
  internalUrl: string;
  /** Absolute https URL users open; the path (a prefix) ends with `/`. Unique among apps. */
  externalUrl: string;
  /** @default 'Default' */
  connectorGroup: string;
  /** @default 'oidc' */
  preAuthentication: 'oidc' | 'passthrough';
  /** From `backendTimeout`. @default 85000 */
  backendTimeoutMs: number;
  cookies: CookiePolicy;
  /** Rewrite internal URLs in response headers. @default true */
  translateHeaders: boolean;
  /** Rewrite internal URLs in HTML and CSS bodies. @default false */
  translateBody: boolean;
  /**
   * With `translateBody`: also absolute internal URLs in inline scripts, JavaScript and JSON
   * responses (beyond the reference). @default false
   */
  translateScripts: boolean;
  /**
   * With `translateBody`: also absolute internal URLs in JSON responses. Separate from
   * `translateScripts`: JSON is often the app's own data, which it saves back (Node-RED's
   * flows would keep external URLs). @default false
   */
  translateJson: boolean;
  /**
   * With `translateBody`: string literals in inline scripts and JavaScript that start with
   * the internal path prefix get the external one (`'/dokuwiki/…'` → `'/…'`), for apps that
   * build URLs from a base path in script. @default false
   */
  translateRootRelative: boolean;
  /**
   * From `backendKeepAlive`: how long the connector keeps an idle connection to the backend
   * for reuse. Below common server idle timeouts (lighttpd 5 s, Tomcat 20 s) so the connector
   * closes first. `0`: a new connection per request. @default 4000
   */
  backendKeepAliveMs: number;
  /** Verify the backend's TLS certificate. @default true */
  validateBackendTls: boolean;
  /** Answer every request with the maintenance page. @default false */
  maintenanceMode: boolean;
  /**
   * `Upgrade` protocols forwarded to the app, lower-case; any other upgrade is refused at the
   * relay (`h2c` cannot be listed: it would let clients tunnel requests past it).
   * @default ['websocket']
   */
  upgrades: string[];
  /**
   * Accept the RPC-over-HTTP methods (`RPC_IN_DATA`, `RPC_OUT_DATA` of Outlook Anywhere and
   * legacy RD Gateway, `RDG_IN_DATA`, `RDG_OUT_DATA` of RD Gateway's HTTP transport) over
   * HTTP/1.1: the connection is then streamed raw to the backend, as after an upgrade. Other
   * apps refuse them with 405 `RPC_METHOD_REFUSED`. @default false
   */
  rpcMethods: boolean;
  /**
   * Session persistence across the group's connectors, for backend farms that need it:
   * `session` keeps each browser session on one connector (a relay cookie), `clientAddress`
   * each client IP. Unset: every request goes to the least busy connector.
   */
  sticky?: 'session' | 'clientAddress';
  /** `http://[user:pass@]host:port` forward proxy the connector uses to reach this app. */
  backendProxy?: string;
  /** Who may use an oidc app (Entra's "assignment required"). @default { required: false, users: [], groups: [] } */
  assignment: { required: boolean; users: string[]; groups: string[] };
  /** Conditions on the sign-in: client IP ranges, required `amr` values. @default none */
  rules: { clientIpRanges: string[]; requiredAmr: string[] };
  /** Overrides the identity provider's session lifetimes for this app. */
  session?: { lifetimeMs?: number; idleTimeoutMs?: number };
  /** Overrides the identity provider's `bearerAudiences` for this app. */
  bearerAudiences?: string[];
  /** Single sign-on to the backend (oidc apps). Absent: `mode: none`. */
  sso?: SsoConfig;
  /** Request rate limits of this app (token buckets; 429 `THROTTLED` beyond). Absent: none. */
  limits?: AppLimits;
  /** `Strict-Transport-Security` on every response for this app. Absent: the backend's own. */
  hsts?: HstsConfig;
  /**
   * From `homePage`: where a GET or HEAD of exactly the external path is redirected (302),
   * and where sign-in returns by default; a path under the external path, query allowed.
   */
  homePage?: string;
  /**
   * TLS towards an `https` backend: a private CA to trust, a client certificate to present
   * (mTLS), the name to send as SNI and verify. Paths absolute; the relay reads them.
   */
  backendTls?: BackendTlsConfig;
  /** Shown on the My Apps portal: an image URL. */
  icon?: string;
  /** Shown on the My Apps portal. */
  description?: string;
}

/** `apps[].backendTls`, paths absolute. `cert` and `key` come together. */
export interface BackendTlsConfig {
  /** PEM CA certificates the backend's chain must lead to (instead of the connector's). */
  ca?: string;
  /** PEM client certificate chain presented to the backend. */
  cert?: string;
  /** PEM private key of `cert`. */
  key?: string;
  /** SNI and the name the backend certificate must carry. @default the internal URL's host */
  serverName?: string;
}

/** `portal`: the My Apps page. */
export interface PortalConfig {
  /** Where users open the portal (https, normalised to end with `/`). */
  externalUrl: string;
  /** List passthrough apps too, for everyone. @default false */
  showPassthrough: boolean;
}

/** `apps[].hsts`, resolved. */
export interface HstsConfig {
  /** From `maxAge`. @default 31536000 (one year) */
  maxAgeSeconds: number;
  /** @default false */
  includeSubDomains: boolean;
  /** Needs `includeSubDomains` and at least a year. @default false */
  preload: boolean;
}

/**
 * `apps[].limits`, resolved: token buckets in front of one app. Each is absent when not set
 * (no limit).
 */
export interface AppLimits {
  /** Requests per second the app takes from everyone together. */
  requestsPerSecond?: number;
  /** Requests above the rate taken at once. @default ceil(requestsPerSecond) */
  burst?: number;
  /**
   * Requests per second one user takes: the signed-in user of an oidc app, else the client
   * address. Its burst is ceil(perUserRequestsPerSecond).
   */
  perUserRequestsPerSecond?: number;
}

/**
 * `apps[].sso`, resolved: what the backend is told about the signed-in user. `mode: none` is
 * the absence of this object.
 */
export interface SsoConfig {
  mode: 'headers' | 'jwt' | 'kerberos';
  /**
   * Entra's "delegated login identity": `upn`, `email`, `preferredUsername`, `sub`,
   * `localPart`, `samAccountName` or `claim:<dotted.path>`. @default 'upn'
   */
  loginIdentity: string;
  /** Mode headers: header name → template over the identity (`{loginIdentity}`, `{email}`, …). */
  headers: Record<string, string>;
  /** Mode jwt: where the signed assertion goes, for whom, for how long. */
  jwt?: {
    /** Lower-case header name; `authorization` sends `Bearer <jwt>`. @default 'x-appproxy-assertion' */
    header: string;
    /** @default the origin of the app's internal URL */
    audience: string;
    /** @default 60000 */
    lifetimeMs: number;
  };
  /** Mode kerberos: the backend's service principal name. */
  kerberos?: {
    /** @default `HTTP/<host of internalUrl>` */
    spn: string;
  };
}

/** Where the provider puts each part of the identity (dotted paths allowed). */
export interface ClaimNamesConfig {
  name?: string;
  email?: string;
  preferredUsername?: string;
  upn?: string;
  /** The on-premises sAMAccountName (e.g. `onprem_sam`); no default. */
  samAccountName?: string;
  groups?: string;
  roles?: string;
}

/** The OpenID Connect provider users sign in with. */
export interface IdentityProviderConfig {
  issuer: string;
  clientId: string;
  /** Absent for a public client (PKCE only). */
  clientSecret?: string;
  /** @default ['openid', 'profile', 'email'] */
  scopes: string[];
  /** Claim names, where they differ from the standard ones. @default {} */
  claims: ClaimNamesConfig;
  /** Also read the userinfo endpoint at sign-in. @default false */
  userinfo: boolean;
  /** Audiences of access tokens accepted as `Authorization: Bearer` (native/API clients). @default [] */
  bearerAudiences: string[];
  /** Issuers accepted in those access tokens (Entra v1 tokens name another). @default [issuer] */
  bearerIssuers: string[];
  /** From `session.lifetime`. @default 28800000 (8 h) */
  sessionLifetimeMs: number;
  /** From `session.idleTimeout`. @default 3600000 (1 h) */
  sessionIdleTimeoutMs: number;
}

/**
 * `relay.limits`: what one client may hold on the public listener, so that a flood of
 * connections or reset streams cannot starve the relay (or its tunnels) of memory, file
 * descriptors or event-loop time.
 */
export interface RelayLimits {
  /** Connections open on the public listener; more are closed at once. @default 10000 */
  maxConnections: number;
  /**
   * Connections from one client IP address (`trustedProxies` exempt); more are closed at
   * once. @default 256
   */
  maxConnectionsPerClient: number;
  /**
   * HTTP/2 streams one connection may have open (SETTINGS_MAX_CONCURRENT_STREAMS), and
   * tunnel streams one connection may have in flight. @default 128
   */
  maxStreamsPerConnection: number;
  /**
   * Streams one HTTP/2 connection may reset within `resetWindowMs` before it is closed with
   * GOAWAY `ENHANCE_YOUR_CALM` (HTTP/2 rapid reset). @default 100
   */
  maxResetsPerConnection: number;
  /** From `resetWindow`. @default 10000 */
  resetWindowMs: number;
  /**
   * From `headersTimeout`: an HTTP/1.1 request's headers, or an HTTP/2 connection's first
   * stream, must arrive within this time. @default 10000
   */
  headersTimeoutMs: number;
  /**
   * From `idleTimeout`: an HTTP/1.1 keep-alive connection or an HTTP/2 connection with no
   * request open is closed after this long. @default 60000
   */
  idleTimeoutMs: number;
  /** Requests per second the relay takes for all apps together (429 `THROTTLED` beyond). @default none */
  requestsPerSecond?: number;
  /** Requests above that rate taken at once. @default ceil(requestsPerSecond) */
  burst?: number;
}

/** `relay.acme`, resolved. */
export interface AcmeConfig {
  /** The ACME directory, e.g. Let's Encrypt's `https://acme-v02.api.letsencrypt.org/directory`. */
  directoryUrl: string;
  /** The account's contact address. */
  email: string;
  /** `http-01` on `redirectHttp` (port 80), `tls-alpn-01` on `listen` (port 443). @default 'http-01' */
  challenge: 'http-01' | 'tls-alpn-01';
  /** Absolute path of a PEM bundle of the CAs trusted for `directoryUrl` (a private ACME server). */
  caBundle?: string;
}

/** `relay.instance`. */
export interface RelayInstanceConfig {
  /** Unique among the instances sharing the store. @default the host name */
  name?: string;
  /** `https://host:port` of this instance's tunnel listener, as connectors reach it. */
  tunnelUrl?: string;
}

/** `telemetry`: span export over OTLP/HTTP (docs/tracing.md). */
export interface TelemetryConfig {
  otlp?: {
    /** The collector's base URL (spans go to `/v1/traces`) or its full traces URL. */
    endpoint: string;
    /** Extra request headers (an API key). */
    headers?: Record<string, string>;
    /** From `timeout`: per export request. @default 10000 */
    timeoutMs: number;
  };
}

/** `appproxy.yaml`, resolved: every default applied, every path absolute. */
/** One entry of `relay.certificates`: a PEM pair or a PKCS#12 file. */
export type CertificateSource =
  { cert: string; key: string } | { pfx: string; passphrase?: string };

export interface RelayConfig {
  relay: {
    /** Public HTTPS for external URLs. */
    listen: HostPort;
    /** Optional plain HTTP listener that redirects to HTTPS. */
    redirectHttp?: HostPort;
    /** Where connectors dial in. */
    tunnelListen: HostPort;
    /** `/metrics`, `/healthz`, `/readyz`, admin API. */
    adminListen?: HostPort;
    /**
     * Who may use the admin API and console with an OIDC sign-in (matched as app assignment
     * is: users by sub, email, preferred_username or upn; groups and roles). Unset: admin
     * tokens only.
     */
    admins?: { users: string[]; groups: string[] };
    /**
     * The admin listener's external origin (`/console/callback` is the admin sign-in's
     * redirect URI). @default `http://<adminListen>`, a wildcard address as loopback
     */
    adminUrl?: string;
    /** Absolute. @default '<config folder>/var/relay' */
    stateDir: string;
    /** At least one; picked by SNI (exact names before wildcards). Paths absolute. */
    certificates: CertificateSource[];
    /** Names connectors use to reach `tunnelListen`. @default ['localhost', '127.0.0.1'] */
    tunnelHosts: string[];
    /** IPs or CIDRs of front proxies whose `X-Forwarded-*` are kept. @default [] */
    trustedProxies: string[];
    /** From `pingInterval`: a quiet tunnel is PINGed this often. @default 500 */
    pingIntervalMs: number;
    /** From `pingTimeout`: a connector silent this long is dead. @default 3 × pingIntervalMs */
    pingTimeoutMs: number;
    /** From `drainTimeout`. @default 30000 */
    drainTimeoutMs: number;
    /**
     * Relay processes on this host (`auto`: one per core, `os.availableParallelism()`), each
     * a relay instance sharing the public listeners. Restart-only. @default 1
     */
    workers: number;
    /**
     * This relay among the instances that share `relay.store` (and the workers of one host):
     * its name and how connectors reach its tunnel port. Unset: named after the host, reached
     * through the URL connectors registered with.
     */
    instance?: RelayInstanceConfig;
    /**
     * From `shutdownDelay`: after SIGTERM, `/readyz` answers 503 this long while everything
     * is still served, so a load balancer moves new clients away before the drain. @default 0
     */
    shutdownDelayMs: number;
    /** From `connectorCertValidity`: lifetime of connector certificates (renewed at ⅔). @default 90 days */
    connectorCertValidityMs: number;
    /** From `inactiveConnectorRetention`: connectors unseen this long are removed. @default 10 days */
    inactiveConnectorRetentionMs: number;
    /** `relay.audit`: audit events in the state store. */
    audit: {
      /** From `retention`: events older than this are pruned hourly. @default 90 days, at least 1 h */
      retentionMs: number;
    };
    /**
     * Secrets that seal session cookies; the first seals, all open (rotation). Every relay
     * serving the same apps needs the same list. Unset: one is generated in `stateDir`.
     */
    sessionSecrets?: { id: string; secret: string }[];
    /** A state store shared by several relay instances. Unset: SQLite in `stateDir`. */
    store?: { postgres: { url: string } };
    /** Seals the materials (CA key, secrets) in a PostgreSQL store; required with it. ≥ 32 chars. */
    storeKey?: string;
    /** Public listener limits. @default see {@link RelayLimits} */
    limits: RelayLimits;
    /**
     * Request headers removed from every client request before routing (identity and client
     * address headers a client could spoof); names, any case, `prefix*` for a family. The SSO
     * headers of every app are removed too, whatever this says. Unset: `@appproxy/sso`'s
     * `DEFAULT_STRIP_REQUEST_HEADERS`.
     */
    stripRequestHeaders?: string[];
    /** Branded pages: HTML templates read from `dir` at start and reload. Absent: built-in. */
    pages?: PagesConfig;
    /**
     * Automatic certificates (ACME, RFC 8555) for every external host no configured
     * certificate covers; account key and certificates kept in `stateDir/acme`. Unset: off.
     */
    acme?: AcmeConfig;
  };
  identityProvider?: IdentityProviderConfig;
  /** The My Apps portal (oidc). Absent: none. */
  portal?: PortalConfig;
  /** Traces, metrics and logs beyond the defaults. Absent: no span export. */
  telemetry?: TelemetryConfig;
  /** @default [{ name: 'Default' }] */
  connectorGroups: { name: string }[];
  /** May be empty: the relay runs and answers `APP_NOT_FOUND`. */
  apps: PublishedAppConfig[];
}

// --- building blocks -------------------------------------------------------------------

/** `3600000` → `1h`: the largest unit that divides it (d, h, m, s), else milliseconds. */
function humanDuration(ms: number): string {
  for (const [unit, size] of [
    ['d', DAY_MS],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const)
    if (ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

const text = (what = 'must not be empty') => z.string().min(1, { error: what });

/** A header name (RFC 9110 token), optionally a `prefix*`. */
const HEADER_PATTERN = /^[A-Za-z0-9!#$%&'+.^_`|~-]+\*?$/;
/** A header name, no wildcard. */
const HEADER_NAME = /^[A-Za-z0-9!#$%&'+.^_`|~-]+$/;

/** A map of header names (checked, by key) to non-empty values. */
const headerMap = () =>
  z
    .record(z.string(), z.string().min(1, { error: 'must not be empty' }))
    .superRefine((headers, ctx) => {
      for (const name of Object.keys(headers))
        if (!HEADER_NAME.test(name))
          ctx.addIssue({ code: 'custom', path: [name], message: 'must be a header name' });
    });
/** What `sso.loginIdentity` takes. */
const LOGIN_IDENTITY =
  /^(?:upn|email|preferredUsername|sub|localPart|samAccountName|claim:[^\s{}]+)$/;

function bool(defaultValue: boolean, description: string) {
  // "true"/"false" strings come from `${VAR}` substitution, which always yields text.
  return z
    .union([z.boolean(), z.enum(['true', 'false'])], { error: 'must be true or false' })
    .meta({ description })
    .transform((v) => v === true || v === 'true')
    .prefault(defaultValue);
}

/** `relay.instance.tunnelUrl`: an https origin (`https://host:port`), nothing after it. */
function tunnelOrigin(v: string, ctx: z.RefinementCtx): string {
  let url: URL | undefined;
  try {
    url = new URL(v);
  } catch {
    url = undefined;
  }
  if (
    !url ||
    url.protocol !== 'https:' ||
    url.username ||
    url.password ||
    url.search ||
    url.hash ||
    url.pathname !== '/'
  ) {
    ctx.addIssue({ code: 'custom', message: 'must be https://host[:port] with nothing after it' });
    return z.NEVER;
  }
  return url.origin;
}

function fromCheck(check: (v: string) => UrlCheck) {
  return (v: string, ctx: z.RefinementCtx): string => {
    const r = check(v);
    if (r.ok) return r.url;
    ctx.addIssue({ code: 'custom', message: r.message });
    return z.NEVER;
  };
}

const DURATION_MESSAGE =
  'must be a duration such as 500ms, 5s, 2m, 1h30m, or a number of milliseconds';

function durationMs(
  v: string | number,
  ctx: z.RefinementCtx,
  min: number,
  max = MAX_TIMER_MS,
): number {
  let ms: number;
  try {
    ms = parseDuration(v);
  } catch {
    ctx.addIssue({ code: 'custom', message: DURATION_MESSAGE });
    return z.NEVER;
  }
  if (ms < min)
    ctx.addIssue({
      code: 'custom',
      message:
        min === 1
          ? 'must be longer than 0'
          : `must be at least ${min >= 60_000 ? humanDuration(min) : `${min}ms`}`,
    });
  else if (ms > max)
    ctx.addIssue({
      code: 'custom',
      message: `must be at most ${max === MAX_TIMER_MS ? '24d' : humanDuration(max)}`,
    });
  return ms;
}

const durationInput = () =>
  z.union(
    [
      z.string().regex(DURATION_PATTERN, { error: DURATION_MESSAGE }),
      z.number().min(0, { error: DURATION_MESSAGE }),
    ],
    {
      error: DURATION_MESSAGE,
    },
  );

function duration(opts: { default: string; min: number; max?: number; description: string }) {
  return durationInput()
    .meta({ description: opts.description, examples: ['500ms', '5s', '2m'] })
    .transform((v, ctx) => durationMs(v, ctx, opts.min, opts.max))
    .prefault(opts.default);
}

const RATE_MESSAGE = 'must be a number of requests per second above 0, at most 1000000';

/** A request rate (per second, fractions allowed); absent means no limit. */
function rate(description: string) {
  return z
    .union([z.number(), z.string().regex(/^\d+(\.\d+)?$/, { error: RATE_MESSAGE })], {
      error: RATE_MESSAGE,
    })
    .meta({ description, examples: [50, 0.5] })
    .transform(Number)
    .pipe(z.number().gt(0, { error: RATE_MESSAGE }).max(1_000_000, { error: RATE_MESSAGE }))
    .optional();
}

const BURST_MESSAGE = 'must be a whole number from 1 to 10000000';

/** A token bucket's size; optional, it defaults to the rate rounded up. */
function burst(description: string) {
  return z
    .union([z.number(), z.string().regex(/^\d+$/, { error: BURST_MESSAGE })], {
      error: BURST_MESSAGE,
    })
    .meta({ description })
    .transform(Number)
    .pipe(
      z
        .number()
        .int({ error: BURST_MESSAGE })
        .min(1, { error: BURST_MESSAGE })
        .max(10_000_000, { error: BURST_MESSAGE }),
    )
    .optional();
}

/** `burst` without `requestsPerSecond` would be a bucket that never refills. */
function burstNeedsRate(v: { requestsPerSecond?: number; burst?: number }, ctx: z.RefinementCtx) {
  if (v.burst !== undefined && v.requestsPerSecond === undefined)
    ctx.addIssue({ code: 'custom', path: ['burst'], message: 'needs requestsPerSecond' });
}

/** The bucket size: `burst`, else the rate rounded up. */
function withBurst(rps: number | undefined, b: number | undefined) {
  return rps === undefined ? {} : { requestsPerSecond: rps, burst: b ?? Math.ceil(rps) };
}

function count(opts: { default: number; min: number; max: number; description: string }) {
  const message = `must be a whole number from ${opts.min} to ${opts.max}`;
  // Numeric strings come from `${VAR}` substitution, which always yields text.
  return z
    .union([z.number(), z.string().regex(/^\d+$/, { error: message })], { error: message })
    .meta({ description: opts.description })
    .transform(Number)
    .pipe(
      z
        .number()
        .int({ error: message })
        .min(opts.min, { error: message })
        .max(opts.max, { error: message }),
    )
    .prefault(opts.default);
}

const HOST_PORT_MESSAGE = 'must be host:port, [ipv6]:port, :port or a port number';

function hostPort(description: string) {
  return z
    .union([z.string(), z.number()], { error: HOST_PORT_MESSAGE })
    .meta({ description, examples: ['0.0.0.0:443', '127.0.0.1:9090', '[::]:8443', ':8443', 443] })
    .transform((v, ctx): HostPort => {
      try {
        return parseHostPort(v);
      } catch (err) {
        const why = (err as RangeError).message;
        ctx.addIssue({
          code: 'custom',
          message: why === HOST_PORT_EXPECTED ? HOST_PORT_MESSAGE : `${HOST_PORT_MESSAGE} (${why})`,
        });
        return z.NEVER;
      }
    });
}

// --- sections --------------------------------------------------------------------------

const certificatePair = z
  .strictObject({
    cert: text()
      .optional()
      .meta({ description: 'PEM certificate chain; relative to the config file.' }),
    key: text().optional().meta({ description: 'PEM private key; relative to the config file.' }),
    pfx: text()
      .optional()
      .meta({ description: 'PKCS#12 (.pfx/.p12) file instead of cert and key; relative.' }),
    passphrase: z
      .string()
      .optional()
      .meta({ description: 'Passphrase of the pfx file; use ${ENV}.' }),
  })
  .superRefine(certificateShape)
  .meta({
    description:
      'A certificate for the public listener: cert + key (PEM) or pfx (+ passphrase); chosen by SNI, exact names before wildcards.',
  })
  .transform(({ cert, key, pfx, passphrase }): CertificateSource =>
    pfx !== undefined
      ? { pfx, ...(passphrase !== undefined && { passphrase }) }
      : { cert: cert!, key: key! },
  );

const ACME_CHALLENGE_MESSAGE = 'must be http-01 or tls-alpn-01';

const acmeSection = z
  .strictObject({
    directoryUrl: z
      .string()
      .refine(
        (v) => {
          try {
            return new URL(v).protocol === 'https:';
          } catch {
            return false;
          }
        },
        { error: 'must be an https:// URL' },
      )
      .meta({
        description: 'The ACME directory URL.',
        examples: ['https://acme-v02.api.letsencrypt.org/directory'],
      }),
    email: z
      .string()
      .regex(/^[^\s@]+@[^\s@]+$/, { error: 'must be an email address' })
      .meta({ description: 'Contact address of the ACME account.' }),
    challenge: z
      .enum(['http-01', 'tls-alpn-01'], { error: ACME_CHALLENGE_MESSAGE })
      .default('http-01')
      .meta({
        description:
          'http-01: answered on redirectHttp (must be port 80 from the internet); tls-alpn-01: answered on listen (port 443).',
      }),
    caBundle: text().optional().meta({
      description:
        'PEM bundle of the CAs to trust for directoryUrl (a private ACME server); relative to the config file.',
    }),
  })
  .meta({
    description:
      'Automatic certificates (ACME) for every external host no configured certificate covers.',
  });

const limitsSection = z
  .strictObject({
    maxConnections: count({
      default: 10_000,
      min: 1,
      max: 10_000_000,
      description: 'Connections open on the public listener; more are closed at once.',
    }),
    maxConnectionsPerClient: count({
      default: 256,
      min: 1,
      max: 10_000_000,
      description:
        'Connections from one client IP address (trustedProxies exempt); more are closed at once.',
    }),
    maxStreamsPerConnection: count({
      default: 128,
      min: 1,
      max: 10_000,
      description:
        'HTTP/2 streams (requests) one connection may have open and in flight through the tunnels.',
    }),
    maxResetsPerConnection: count({
      default: 100,
      min: 1,
      max: 1_000_000,
      description:
        'Streams one HTTP/2 connection may reset within resetWindow before it is closed with GOAWAY ENHANCE_YOUR_CALM.',
    }),
    resetWindow: duration({
      default: '10s',
      min: 1,
      description: 'The window in which maxResetsPerConnection is counted.',
    }),
    headersTimeout: duration({
      default: '10s',
      min: 1,
      description:
        "An HTTP/1.1 request's headers, or an HTTP/2 connection's first request, must arrive within this time.",
    }),
    idleTimeout: duration({
      default: '60s',
      min: 1,
      description:
        'An HTTP/1.1 keep-alive connection, or an HTTP/2 connection with no request open, is closed after this long.',
    }),
    requestsPerSecond: rate(
      'Requests per second the relay takes for all apps together (a token bucket); beyond: 429 THROTTLED with Retry-After. Unset: no limit.',
    ),
    burst: burst(
      'Requests above requestsPerSecond taken at once. Default: requestsPerSecond rounded up.',
    ),
  })
  .superRefine(burstNeedsRate)
  .prefault({})
  .meta({
    description:
      'Public listener limits against floods of connections and resets, and the overall request rate.',
  })
  .transform(
    ({ resetWindow, headersTimeout, idleTimeout, requestsPerSecond, burst: b, ...rest }) => ({
      ...rest,
      resetWindowMs: resetWindow,
      headersTimeoutMs: headersTimeout,
      idleTimeoutMs: idleTimeout,
      ...withBurst(requestsPerSecond, b),
    }),
  );

const appLimits = z
  .strictObject({
    requestsPerSecond: rate(
      'Requests per second this app takes from all clients together; beyond: 429 THROTTLED with Retry-After.',
    ),
    burst: burst(
      'Requests above requestsPerSecond taken at once. Default: requestsPerSecond rounded up.',
    ),
    perUserRequestsPerSecond: rate(
      'Requests per second one user takes (the signed-in user of an oidc app, else the client address); burst: the rate rounded up.',
    ),
  })
  .superRefine(burstNeedsRate)
  .meta({ description: 'Request rate limits of this app (token buckets). Unset: none.' })
  .transform(({ requestsPerSecond, burst: b, perUserRequestsPerSecond }): AppLimits => ({
    ...withBurst(requestsPerSecond, b),
    ...(perUserRequestsPerSecond !== undefined && { perUserRequestsPerSecond }),
  }));

/** Upper bound of `relay.workers`. */
const MAX_WORKERS = 64;
const WORKERS = `must be a number of processes from 1 to ${MAX_WORKERS}, or auto`;

const relaySection = z
  .strictObject({
    listen: hostPort('Public HTTPS listener for the external URLs.'),
    redirectHttp: hostPort('Optional plain HTTP listener that redirects to HTTPS.').optional(),
    tunnelListen: hostPort('Where connectors dial in (mutual TLS).'),
    adminListen: hostPort(
      '/metrics, /healthz, /readyz and the admin API; keep it private.',
    ).optional(),
    admins: z
      .strictObject({
        users: z.array(text()).default([]).meta({
          description:
            'Matched, case-insensitively, against sub, email, preferred_username and upn.',
        }),
        groups: z.array(text()).default([]).meta({
          description: 'Matched, case-insensitively, against the groups and roles claims.',
        }),
      })
      .optional()
      .meta({
        description:
          'Who may use the admin API and console with an OIDC sign-in (needs identityProvider and adminListen). Unset: admin tokens only.',
        examples: [{ users: ['alice@example.com'], groups: ['AppProxy Admins'] }],
      }),
    adminUrl: z
      .string()
      .meta({
        description:
          'External URL of the admin listener; register <adminUrl>/console/callback at the provider. Default: http://<adminListen> (a wildcard address as 127.0.0.1 or [::1]).',
        examples: ['https://relay-admin.corp.example.com'],
      })
      .transform(fromCheck(checkAdminUrl))
      .optional(),
    stateDir: text()
      .default('./var/relay')
      .meta({ description: 'Embedded database and connector CA; relative to the config file.' }),
    certificates: z.array(certificatePair).min(1, { error: 'must list at least one certificate' }),
    tunnelHosts: z
      .array(text().refine(isHostnameOrIp, { error: 'must be a host name or IP address' }))
      .min(1, { error: 'must list at least one host' })
      .default(['localhost', '127.0.0.1'])
      .meta({
        description:
          'Names and IPs connectors use to reach tunnelListen; put in the tunnel certificate.',
      }),
    trustedProxies: z
      .array(
        z
          .string()
          .refine(isIpOrCidr, { error: 'must be an IP address or a CIDR block, e.g. 10.0.0.0/8' }),
      )
      .default([])
      .meta({ description: 'Front proxies (IPs or CIDRs) whose X-Forwarded-* headers are kept.' }),
    pingInterval: duration({
      default: '500ms',
      min: 1,
      description: 'How often a quiet tunnel is PINGed.',
    }),
    pingTimeout: durationInput()
      .meta({
        description:
          'A connector from which nothing arrived for this long is dead (default: 3 × pingInterval).',
        examples: ['2s', '30s'],
      })
      .transform((v, ctx) => durationMs(v, ctx, 1))
      .optional(),
    drainTimeout: duration({
      default: '30s',
      min: 0,
      description: 'How long a stopping relay waits for requests in flight.',
    }),
    workers: z
      .union(
        [
          z.literal('auto'),
          z.number().int({ error: WORKERS }).min(1, { error: WORKERS }).max(MAX_WORKERS, {
            error: WORKERS,
          }),
        ],
        { error: WORKERS },
      )
      .default(1)
      .meta({
        description:
          'Relay processes on this host sharing the public listeners (auto: one per core); each is a relay instance with its own tunnel port (tunnelListen.port + its index). Restart-only.',
        examples: [1, 4, 'auto'],
      })
      .transform((w) => (w === 'auto' ? Math.min(MAX_WORKERS, availableParallelism()) : w)),
    instance: z
      .strictObject({
        name: z
          .string()
          .regex(/^[A-Za-z0-9._-]{1,64}$/, { error: 'must be 1–64 of A–Z a–z 0–9 . _ -' })
          .optional()
          .meta({
            description: 'Unique among the instances sharing the store. Default: the host name.',
          }),
        tunnelUrl: z
          .string()
          .meta({
            description:
              'https://host:port of this instance’s tunnel listener as connectors reach it (not a load balancer). With workers, worker i is reached on its port + i.',
            examples: ['https://relay1.example.com:8443'],
          })
          .transform(tunnelOrigin)
          .optional(),
      })
      .optional()
      .meta({
        description:
          'This relay among the instances sharing relay.store: connectors keep tunnels to every live instance.',
      }),
    shutdownDelay: duration({
      default: '0s',
      min: 0,
      description:
        'After SIGTERM, /readyz answers 503 this long while everything is still served (a load balancer moves new clients away), then the drain starts. Behind a load balancer: at least its health-check interval × fall count.',
    }),
    connectorCertValidity: duration({
      default: '90d',
      min: 1000,
      max: 3650 * DAY_MS,
      description:
        'Lifetime of connector certificates; connectors renew over the tunnel when a third is left.',
    }),
    sessionSecrets: z
      .array(
        z.strictObject({
          id: z
            .string()
            .regex(/^[A-Za-z0-9._-]{1,64}$/, { error: 'must be 1–64 of A–Z a–z 0–9 . _ -' }),
          secret: z.string().min(32, { error: 'must be at least 32 characters (use ${ENV})' }),
        }),
      )
      .min(1, { error: 'must list at least one secret' })
      .optional()
      .meta({
        description:
          'Secrets sealing session cookies ({ id, secret ≥ 32 chars }); the first seals. Same list on every relay. Unset: generated in stateDir.',
      }),
    store: z
      .strictObject({
        postgres: z
          .strictObject({
            url: z.string().regex(/^postgres(ql)?:\/\/\S+$/, {
              error: 'must be a postgres:// URL (the password via ${ENV})',
            }),
          })
          .meta({ description: 'PostgreSQL shared by every relay instance.' }),
      })
      .optional()
      .meta({
        description:
          'Where several relay instances share their state (connectors, tokens, CA, session secret). Unset: SQLite in stateDir.',
        examples: [{ postgres: { url: 'postgres://appproxy:${PGPASSWORD}@db.internal/appproxy' } }],
      }),
    storeKey: z
      .string()
      .min(32, { error: 'must be at least 32 characters (use ${ENV})' })
      .optional()
      .meta({
        description:
          'Seals the materials in the PostgreSQL store (AES-256-GCM); required with store.postgres, the same on every instance. Use ${ENV}.',
      }),
    inactiveConnectorRetention: duration({
      default: '10d',
      min: 1000,
      max: 3650 * DAY_MS,
      description: 'Connectors not seen (or revoked) for this long are removed.',
    }),
    limits: limitsSection,
    audit: z
      .strictObject({
        retention: duration({
          default: '90d',
          min: 3_600_000,
          max: 3650 * DAY_MS,
          description: 'Audit events older than this are removed (hourly).',
        }),
      })
      .prefault({})
      .meta({
        description:
          'The audit log: sign-ins, refusals, connector and admin events, kept in the state store.',
      })
      .transform(({ retention }) => ({ retentionMs: retention })),
    stripRequestHeaders: z
      .array(
        z.string().regex(HEADER_PATTERN, {
          error: 'must be a header name, or a prefix ending in * (e.g. X-Auth-Request-*)',
        }),
      )
      .optional()
      .meta({
        description:
          'Headers removed from every client request (identity and client-address headers a client could spoof); prefix* matches a family. Unset: the built-in list (X-Remote-User, Remote-User, X-Forwarded-User, X-Auth-Request-*, X-MS-CLIENT-PRINCIPAL*, X-Real-IP, …). Every app’s SSO headers are always removed.',
        examples: [['X-Remote-User', 'X-Auth-Request-*']],
      }),
    pages: z
      .strictObject({
        dir: text().meta({
          description:
            'Folder of HTML templates (error.html, forbidden.html, maintenance.html, signin.html) with {{code}}, {{correlationId}}, {{app}}, {{user}}, {{time}}, {{title}}, {{hint}}; relative to the config file. Missing templates: the built-in pages.',
        }),
      })
      .optional()
      .meta({ description: 'Branded pages, read at start and on reload.' })
      .transform((p): PagesConfig | undefined => p && { dir: p.dir, templates: {} }),
    acme: acmeSection.optional(),
  })
  .meta({ description: 'The public edge: listeners, certificates, state.' })
  .superRefine((r, ctx) => {
    if (r.store?.postgres && r.storeKey === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['storeKey'],
        // Reported as "is required" (the loader's word for an absent value).
        message: 'is required with relay.store.postgres',
      });
    if (r.acme?.challenge === 'http-01' && !r.redirectHttp)
      ctx.addIssue({
        code: 'custom',
        path: ['acme'],
        message:
          'challenge http-01 (the default) is answered on relay.redirectHttp: set it (port 80 from the internet), or use challenge: tls-alpn-01',
      });
    if (r.admins && !r.adminListen)
      ctx.addIssue({ code: 'custom', path: ['admins'], message: 'needs relay.adminListen' });
    if (r.workers > 1 && !r.instance?.tunnelUrl)
      ctx.addIssue({
        code: 'custom',
        path: ['workers'],
        message:
          'more than 1 needs relay.instance.tunnelUrl: how connectors reach worker 0’s tunnel port (worker i is reached on that port + i)',
      });
  })
  .transform(
    ({
      pingInterval,
      pingTimeout,
      drainTimeout,
      shutdownDelay,
      connectorCertValidity,
      inactiveConnectorRetention,
      redirectHttp,
      adminListen,
      admins,
      adminUrl,
      pages,
      ...rest
    }) => ({
      ...rest,
      ...(admins && { admins }),
      ...(adminUrl && { adminUrl }),
      ...(pages && { pages }),
      ...(redirectHttp && { redirectHttp }),
      ...(adminListen && { adminListen }),
      pingIntervalMs: pingInterval,
      pingTimeoutMs: pingTimeout ?? 3 * pingInterval,
      drainTimeoutMs: drainTimeout,
      shutdownDelayMs: shutdownDelay,
      connectorCertValidityMs: connectorCertValidity,
      inactiveConnectorRetentionMs: inactiveConnectorRetention,
    }),
  );

const identityProviderSection = z
  .strictObject({
    issuer: z
      .string()
      .meta({
        description: 'OIDC issuer URL, exactly as in the provider’s discovery document.',
        examples: ['https://login.microsoftonline.com/<tenant>/v2.0'],
      })
      .transform(fromCheck(checkIssuer)),
    clientId: text(),
    clientSecret: text()
      .optional()
      .meta({ description: 'Use ${ENV_VAR} rather than writing the secret in the file.' }),
    scopes: z
      .array(
        text().regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, {
          error: 'must be a single scope (no spaces or quotes)',
        }),
      )
      .refine((s) => s.includes('openid'), { error: 'must include "openid"' })
      .default(['openid', 'profile', 'email']),
    claims: z
      .strictObject({
        name: text().optional(),
        email: text().optional(),
        preferredUsername: text().optional(),
        upn: text().optional(),
        samAccountName: text().optional().meta({
          description:
            'Claim carrying the on-premises sAMAccountName (sso.loginIdentity: samAccountName); unset: the UPN’s local part.',
        }),
        groups: text().optional(),
        roles: text().optional(),
      })
      .default({})
      .meta({
        description:
          'Claim names where they differ (dotted paths allowed, e.g. realm_access.roles for Keycloak).',
      }),
    userinfo: bool(false, 'Also read the userinfo endpoint at sign-in.'),
    bearerAudiences: z.array(text()).default([]).meta({
      description:
        'Access token audiences accepted as Authorization: Bearer from native and API clients; empty: none.',
    }),
    bearerIssuers: z.array(text()).default([]).meta({
      description:
        'Issuers accepted in bearer access tokens; empty: the issuer above (Entra v1 tokens need https://sts.windows.net/<tenant>/ too).',
    }),
    session: z
      .strictObject({
        lifetime: duration({
          default: '8h',
          min: 1000,
          max: 365 * DAY_MS,
          description: 'Sign in again after this long, whatever happens.',
        }),
        idleTimeout: duration({
          default: '1h',
          min: 1000,
          max: 365 * DAY_MS,
          description: 'Sign in again after this long without a request.',
        }),
      })
      .prefault({}),
  })
  .meta({ description: 'Any OpenID Connect provider: Entra ID, Keycloak, Okta, Dex, …' })
  .transform(({ clientSecret, session, ...rest }): IdentityProviderConfig => ({
    ...rest,
    ...(clientSecret !== undefined && { clientSecret }),
    sessionLifetimeMs: session.lifetime,
    sessionIdleTimeoutMs: session.idleTimeout,
  }));

const cookiePolicy = z
  .strictObject({
    httpOnly: bool(true, 'Hide cookies from scripts.'),
    secure: bool(true, 'Send cookies over HTTPS only.'),
    persistent: bool(false, 'Keep cookies across browser restarts.'),
    sameSite: z
      .enum(['Strict', 'Lax', 'None'], { error: 'must be one of: Strict, Lax, None' })
      .optional()
      .meta({ description: 'Unset keeps what the app sends.' }),
  })
  .superRefine((c, ctx) => {
    if (c.sameSite === 'None' && !c.secure)
      ctx.addIssue({ code: 'custom', path: ['sameSite'], message: 'None requires secure: true' });
  })
  .meta({ description: 'Cookie attributes the relay enforces on the app’s cookies and its own.' })
  .transform(({ sameSite, ...rest }): CookiePolicy => ({ ...rest, ...(sameSite && { sameSite }) }))
  .prefault({});

const BACKEND_TIMEOUT_MESSAGE = `must be default (85s), long (180s), a duration such as 30s, or a number of milliseconds`;

const backendTimeout = z
  .union(
    [
      z.enum(['default', 'long'], { error: BACKEND_TIMEOUT_MESSAGE }),
      z.string().regex(DURATION_PATTERN, { error: BACKEND_TIMEOUT_MESSAGE }),
      z.number().min(0, { error: BACKEND_TIMEOUT_MESSAGE }),
    ],
    { error: BACKEND_TIMEOUT_MESSAGE },
  )
  .meta({
    description:
      'How long the connector waits for the backend: default = 85s, long = 180s, or a duration.',
    examples: ['default', 'long', '30s'],
  })
  .transform((v, ctx) => {
    if (v === 'default') return BACKEND_TIMEOUT_DEFAULT_MS;
    if (v === 'long') return BACKEND_TIMEOUT_LONG_MS;
    return durationMs(v, ctx, 1);
  })
  .prefault('default');

/** `service/host` with an optional `@REALM`: what a Kerberos SPN looks like (no spaces). */
const KERBEROS_SPN = /^[A-Za-z0-9._-]+\/[A-Za-z0-9._:-]+(?:@[A-Za-z0-9._-]+)?$/;

const ssoSection = z
  .strictObject({
    mode: z
      .enum(['none', 'headers', 'jwt', 'kerberos'], {
        error: 'must be one of: none, headers, jwt, kerberos',
      })
      .default('none')
      .meta({
        description:
          'none: the backend sees no identity; headers: identity headers from templates; jwt: a signed assertion (keys at /.appproxy/jwks.json); kerberos: the connector gets a Kerberos ticket for the user by constrained delegation (docs/kerberos.md).',
      }),
    loginIdentity: z
      .string()
      .regex(LOGIN_IDENTITY, {
        error:
          'must be one of: upn, email, preferredUsername, sub, localPart, samAccountName, claim:<dotted.path>',
      })
      .default('upn')
      .meta({
        description:
          'The delegated login identity: upn (else preferred_username), email, preferredUsername, sub, localPart (before @), samAccountName, claim:<dotted.path>.',
      }),
    headers: headerMap()
      .optional()
      .meta({
        description:
          'Mode headers: header name → template, e.g. X-Remote-User: "{loginIdentity}". Placeholders: loginIdentity, sub, issuer, name, email, preferredUsername, upn, samAccountName, groups, roles (lists joined with ", "), claim:<path>.',
        examples: [{ 'X-Remote-User': '{loginIdentity}', 'X-Remote-Email': '{email}' }],
      }),
    jwt: z
      .strictObject({
        header: z
          .string()
          .regex(HEADER_NAME, { error: 'must be a header name' })
          .default('X-AppProxy-Assertion')
          .meta({
            description: 'Header carrying the assertion; Authorization sends "Bearer <jwt>".',
          }),
        audience: text()
          .optional()
          .meta({ description: 'The aud claim; default: the origin of the app’s internalUrl.' }),
        lifetime: duration({
          default: '60s',
          min: 5000,
          max: 3_600_000,
          description: 'How long each assertion is valid (5s–1h).',
        }),
      })
      .optional()
      .meta({ description: 'Mode jwt: the signed assertion.' }),
    kerberos: z
      .strictObject({
        spn: z
          .string()
          .regex(KERBEROS_SPN, {
            error: 'must be a service principal name like HTTP/intranet.corp.example',
          })
          .optional()
          .meta({
            description:
              'The backend’s service principal name; default HTTP/<host of internalUrl>.',
            examples: ['HTTP/intranet.corp.example'],
          }),
      })
      .optional()
      .meta({ description: 'Mode kerberos: the delegation target.' }),
  })
  .superRefine((s, ctx) => {
    if (s.mode === 'headers' && (!s.headers || Object.keys(s.headers).length === 0))
      ctx.addIssue({
        code: 'custom',
        path: ['headers'],
        message: 'mode headers needs at least one header, e.g. X-Remote-User: "{loginIdentity}"',
        // (reported as "is required" when sso.headers is absent altogether)
      });
    if (s.mode !== 'headers' && s.headers !== undefined)
      ctx.addIssue({ code: 'custom', path: ['headers'], message: 'applies only to mode: headers' });
    if (s.mode !== 'jwt' && s.jwt !== undefined)
      ctx.addIssue({ code: 'custom', path: ['jwt'], message: 'applies only to mode: jwt' });
    if (s.mode !== 'kerberos' && s.kerberos !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['kerberos'],
        message: 'applies only to mode: kerberos',
      });
  })
  .meta({ description: 'Single sign-on to the backend (oidc apps only).' });

/** One year in seconds: `hsts: true`, and the least `preload` accepts. */
export const HSTS_ONE_YEAR_SECONDS = 31_536_000;

const HSTS_MAX_AGE_MESSAGE = 'must be a duration with a unit, e.g. 365d (HSTS max-age)';

const hstsSection = z
  .union(
    [
      z.boolean(),
      z.enum(['true', 'false']),
      z.strictObject({
        // Checked below: a bare number is refused rather than read as milliseconds (HSTS
        // speaks seconds), and an issue inside a union option would be reported as the union's.
        maxAge: z
          .union([z.string(), z.number()])
          .prefault('365d')
          .meta({ description: 'max-age as a duration (365d).', examples: ['365d', '730d'] }),
        includeSubDomains: bool(false, 'Also every subdomain of the external host.'),
        preload: bool(
          false,
          'Ask for the browsers’ preload list (needs includeSubDomains and ≥ 365d).',
        ),
      }),
    ],
    { error: 'must be true, false or { maxAge, includeSubDomains, preload }' },
  )
  .transform((v, ctx): HstsConfig | undefined => {
    if (v === false || v === 'false') return undefined;
    if (v === true || v === 'true')
      return { maxAgeSeconds: HSTS_ONE_YEAR_SECONDS, includeSubDomains: false, preload: false };
    const { maxAge, includeSubDomains, preload } = v;
    if (
      typeof maxAge !== 'string' ||
      !DURATION_PATTERN.test(maxAge) ||
      /^\s*\d+\s*$/.test(maxAge)
    ) {
      ctx.addIssue({ code: 'custom', path: ['maxAge'], message: HSTS_MAX_AGE_MESSAGE });
      return z.NEVER;
    }
    const maxAgeSeconds = Math.floor(parseDuration(maxAge) / 1000);
    if (preload && !includeSubDomains)
      ctx.addIssue({
        code: 'custom',
        path: ['preload'],
        message: 'preload requires includeSubDomains: true',
      });
    if (preload && maxAgeSeconds < HSTS_ONE_YEAR_SECONDS)
      ctx.addIssue({
        code: 'custom',
        path: ['preload'],
        message: 'preload requires maxAge of at least 365d',
      });
    return { maxAgeSeconds, includeSubDomains, preload };
  })
  .meta({
    description:
      'Strict-Transport-Security on every response of this app (true: max-age one year); replaces the backend’s own. Off by default.',
  });

const HOME_PAGE = /^\/[^\s#\\]*$/;

/** `homePage` as written: a path with an optional query, checked against the external URL later. */
const homePageInput = z
  .string()
  .regex(HOME_PAGE, { error: 'must be a path such as /portal/start.aspx (query allowed)' })
  .meta({
    description:
      'Where a GET of exactly the external URL is redirected (302), and where sign-in returns by default: a path under the external URL’s path.',
    examples: ['/portal/start.aspx'],
  });

/** Why `homePage` cannot be used with `externalUrl`, or undefined. */
function homePageProblem(homePage: string, externalUrl: string): string | undefined {
  // Either already reported by the fields' own checks.
  if (!HOME_PAGE.test(homePage) || !URL.canParse(externalUrl)) return undefined;
  const base = new URL(externalUrl).pathname;
  const path = homePage.split('?', 1)[0]!;
  if (path.startsWith('//') || /(^|\/)\.\.?(\/|$)/.test(path))
    return 'must be a plain path (no // or dot segments)';
  if (!path.startsWith(base)) return `must be under the external URL’s path ${base}`;
  if (homePage === base)
    return 'must not be the external URL’s path itself (it would redirect to itself)';
  if (path.startsWith('/.appproxy/')) return 'must not be under /.appproxy/ (reserved)';
  return undefined;
}

/** An `Upgrade` protocol: `token[/token]` (RFC 9110 §7.8). */
const UPGRADE_TOKEN = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+(?:\/[A-Za-z0-9!#$%&'*+.^_`|~-]+)?$/;

const publishedApp = z
  .strictObject({
    name: text()
      .max(200, { error: 'must be at most 200 characters' })
      .meta({ description: 'Unique; shown on error pages and in logs.' }),
    internalUrl: z
      .string()
      .meta({
        description: 'Where the app is on the internal network, as the connector reaches it.',
        examples: ['http://expenses.corp.local:8080/'],
      })
      .transform(fromCheck((v) => checkAppUrl(v, 'internal'))),
    externalUrl: z
      .string()
      .meta({
        description: 'Where users open the app (https); host plus path prefix, unique among apps.',
        examples: ['https://expenses.example.com/'],
      })
      .transform(fromCheck((v) => checkAppUrl(v, 'external'))),
    connectorGroup: text()
      .default('Default')
      .meta({ description: 'Name of an entry of connectorGroups.' }),
    preAuthentication: z
      .enum(['oidc', 'passthrough'], { error: 'must be one of: oidc, passthrough' })
      .default('oidc')
      .meta({
        description:
          'oidc signs users in at the relay (needs identityProvider); passthrough forwards anonymous requests.',
      }),
    backendTimeout,
    cookies: cookiePolicy,
    translateHeaders: bool(
      true,
      'Rewrite internal URLs in response headers (Location, Set-Cookie, …).',
    ),
    translateBody: bool(false, 'Rewrite internal URLs in HTML and CSS bodies.'),
    translateScripts: bool(
      false,
      'With translateBody: also absolute internal URLs in inline scripts and JavaScript responses.',
    ),
    translateJson: bool(
      false,
      'With translateBody: also absolute internal URLs in JSON responses (careful: apps that save their JSON back would store external URLs).',
    ),
    translateRootRelative: bool(
      false,
      'With translateBody: string literals in inline scripts and JavaScript that start with the internal path prefix get the external one (/dokuwiki/… → /…).',
    ),
    backendKeepAlive: duration({
      default: '4s',
      min: 0,
      max: 600_000,
      description:
        'How long the connector keeps an idle backend connection for reuse; keep it below the backend’s own idle timeout. 0: a new connection per request.',
    }),
    validateBackendTls: bool(true, 'Verify the backend’s TLS certificate.'),
    maintenanceMode: bool(false, 'Answer every request with the maintenance page.'),
    upgrades: z
      .array(
        z
          .string()
          .regex(UPGRADE_TOKEN, { error: 'must be an Upgrade protocol token, e.g. websocket' })
          .refine((v) => !/^h2c(\/|$)/i.test(v), {
            error:
              'h2c cannot be forwarded: an h2c upgrade would carry requests past the relay unchecked',
          }),
      )
      .meta({
        description:
          'Upgrade protocols forwarded to the app (any case); others are refused with UPGRADE_REFUSED. [] allows none.',
        examples: [['websocket']],
      })
      .transform((list) => [...new Set(list.map((v) => v.toLowerCase()))])
      .prefault(['websocket']),
    rpcMethods: bool(
      false,
      'Accept RPC_IN_DATA, RPC_OUT_DATA, RDG_IN_DATA and RDG_OUT_DATA (Outlook Anywhere, RD Gateway) over HTTP/1.1; the connection is then streamed raw to the backend, as after an upgrade. Others refuse them with RPC_METHOD_REFUSED.',
    ),
    sticky: z
      .enum(['none', 'session', 'clientAddress'], {
        error: 'must be one of: none, session, clientAddress',
      })
      .default('none')
      .meta({
        description:
          'Session persistence across connectors for backend farms: session (a relay cookie per browser session) or clientAddress.',
      }),
    backendProxy: z
      .string()
      .meta({
        description:
          'Forward proxy the connector uses to reach this app (http://[user:pass@]host:port).',
        examples: ['http://proxy.corp.local:3128'],
      })
      .transform(fromCheck(checkProxyUrl))
      .optional(),
    assignment: z
      .strictObject({
        required: bool(false, 'Only the users and groups listed may use the app.'),
        users: z.array(text()).default([]).meta({
          description: 'Matched (any case) against sub, email, preferred_username and upn.',
        }),
        groups: z
          .array(text())
          .default([])
          .meta({ description: 'Matched (any case) against the groups and roles claims.' }),
      })
      .prefault({})
      .meta({ description: 'Who may use an oidc app.' }),
    rules: z
      .strictObject({
        clientIpRanges: z
          .array(
            z.string().refine(isIpOrCidr, {
              error: 'must be an IP address or a CIDR block, e.g. 10.0.0.0/8',
            }),
          )
          .default([])
          .meta({ description: 'Client addresses allowed (IPs, CIDRs); empty allows any.' }),
        requiredAmr: z
          .array(text())
          .default([])
          .meta({ description: 'amr values the sign-in must carry, e.g. [mfa].' }),
      })
      .prefault({})
      .meta({ description: 'Conditions on the sign-in of an oidc app.' }),
    session: z
      .strictObject({
        lifetime: durationInput()
          .transform((v, ctx) => durationMs(v, ctx, 1000, 365 * DAY_MS))
          .optional(),
        idleTimeout: durationInput()
          .transform((v, ctx) => durationMs(v, ctx, 1000, 365 * DAY_MS))
          .optional(),
      })
      .optional()
      .meta({ description: 'Overrides identityProvider.session for this app.' }),
    bearerAudiences: z
      .array(text())
      .optional()
      .meta({ description: 'Overrides identityProvider.bearerAudiences for this app.' }),
    sso: ssoSection.optional(),
    limits: appLimits.optional(),
    backendTls: z
      .strictObject({
        ca: text().optional().meta({
          description: 'PEM CA certificates to trust for the backend; relative to the config file.',
        }),
        cert: text().optional().meta({
          description: 'PEM client certificate presented to the backend (mTLS); with key.',
        }),
        key: text().optional().meta({ description: 'PEM private key of cert.' }),
        serverName: text()
          .optional()
          .meta({ description: 'SNI and the name verified; default: the internal URL’s host.' }),
      })
      .refine((t) => (t.cert === undefined) === (t.key === undefined), {
        error: 'cert and key go together',
      })
      .optional()
      .meta({ description: 'TLS towards an https backend: private CA, client certificate.' }),
    icon: z
      .string()
      .refine((v) => /^https:\/\/[^/]|^\/[^/]/.test(v) && !/[\s"'<>]/.test(v), {
        error: 'must be an https URL or a path starting with /',
      })
      .optional()
      .meta({ description: 'Image shown for the app on the My Apps portal.' }),
    description: text()
      .max(500, { error: 'must be at most 500 characters' })
      .optional()
      .meta({ description: 'Shown for the app on the My Apps portal.' }),
    hsts: hstsSection.optional(),
    homePage: homePageInput.optional(),
  })
  .superRefine((app, ctx) => {
    if (app.homePage === undefined) return;
    const problem = homePageProblem(app.homePage, app.externalUrl);
    if (problem) ctx.addIssue({ code: 'custom', path: ['homePage'], message: problem });
  })
  .meta({
    description:
      'A published app: an external URL served from an internal URL through a connector group.',
  })
  .transform(
    ({
      backendTimeout: backendTimeoutMs,
      backendKeepAlive: backendKeepAliveMs,
      sticky,
      backendProxy,
      session,
      bearerAudiences,
      sso,
      limits,
      hsts,
      homePage,
      ...rest
    }): PublishedAppConfig => ({
      ...rest,
      ...(hsts && { hsts }),
      ...(homePage !== undefined && { homePage }),
      backendTimeoutMs,
      backendKeepAliveMs,
      ...(sticky !== 'none' && { sticky }),
      ...(backendProxy !== undefined && { backendProxy }),
      ...(session && {
        session: {
          ...(session.lifetime !== undefined && { lifetimeMs: session.lifetime }),
          ...(session.idleTimeout !== undefined && { idleTimeoutMs: session.idleTimeout }),
        },
      }),
      ...(bearerAudiences !== undefined && { bearerAudiences }),
      ...(sso && sso.mode !== 'none' && { sso: resolveSso(sso, rest.internalUrl) }),
      ...(limits && Object.keys(limits).length > 0 && { limits }),
    }),
  );

/** `apps[].sso` as written → {@link SsoConfig}; header names lower-case. */
function resolveSso(
  sso: {
    mode: 'none' | 'headers' | 'jwt' | 'kerberos';
    loginIdentity: string;
    headers?: Record<string, string>;
    jwt?: { header: string; audience?: string; lifetime: number };
    kerberos?: { spn?: string };
  },
  internalUrl: string,
): SsoConfig {
  const headers: Record<string, string> = {};
  for (const [name, template] of Object.entries(sso.headers ?? {}))
    headers[name.toLowerCase()] = template;
  const jwt = sso.jwt ?? { header: 'X-AppProxy-Assertion', lifetime: 60_000 };
  return {
    mode: sso.mode as SsoConfig['mode'],
    loginIdentity: sso.loginIdentity,
    headers,
    ...(sso.mode === 'jwt' && {
      jwt: {
        header: jwt.header.toLowerCase(),
        audience: jwt.audience ?? new URL(internalUrl).origin,
        lifetimeMs: jwt.lifetime,
      },
    }),
    ...(sso.mode === 'kerberos' && {
      kerberos: { spn: sso.kerberos?.spn ?? `HTTP/${new URL(internalUrl).hostname}` },
    }),
  };
}

const connectorGroup = z.strictObject({ name: text() });

/** `telemetry.otlp.endpoint`: an http(s) URL without credentials or fragment. */
function otlpEndpoint(v: string, ctx: z.RefinementCtx): string {
  let url: URL | undefined;
  try {
    url = new URL(v);
  } catch {
    url = undefined;
  }
  if (!url || !/^https?:$/.test(url.protocol) || url.username || url.password || url.hash) {
    ctx.addIssue({
      code: 'custom',
      message: 'must be an http(s) URL such as http://collector:4318 (no credentials)',
    });
    return z.NEVER;
  }
  return url.href;
}

const telemetrySection = z
  .strictObject({
    otlp: z
      .strictObject({
        endpoint: z
          .string()
          .meta({
            description:
              'OTLP/HTTP collector: its base URL (spans are posted to /v1/traces) or the full traces URL.',
            examples: ['http://127.0.0.1:4318', 'https://otlp.example.com/v1/traces'],
          })
          .transform(otlpEndpoint),
        headers: headerMap().optional().meta({
          description: 'Extra request headers, e.g. an API key (use ${ENV_VAR}).',
        }),
        timeout: duration({
          default: '10s',
          min: 1,
          max: 300_000,
          description: 'Per export request.',
        }),
      })
      .optional()
      .meta({
        description:
          'Export spans (W3C trace context) over OTLP/HTTP JSON with the OpenTelemetry SDK; unset: no export.',
      }),
  })
  .meta({ description: 'Traces (docs/tracing.md).' })
  .transform(({ otlp }): TelemetryConfig =>
    otlp
      ? {
          otlp: {
            endpoint: otlp.endpoint,
            ...(otlp.headers && { headers: otlp.headers }),
            timeoutMs: otlp.timeout,
          },
        }
      : {},
  );

/**
 * The zod schema of `appproxy.yaml` after `${VAR}` substitution, producing the resolved shape
 * except for paths, which {@link parseConfig} makes absolute. Cross-entry rules (unique names,
 * group references, files that must exist) are checked by `parseConfig`, not here.
 */
export const relayConfigSchema = z
  .strictObject({
    relay: relaySection,
    identityProvider: identityProviderSection.optional(),
    connectorGroups: z
      .array(connectorGroup)
      .min(1, { error: 'must list at least one group' })
      .default([{ name: 'Default' }])
      .meta({
        description: 'Connectors join a group; apps are served by the connectors of their group.',
      }),
    apps: z.array(publishedApp).meta({ description: 'Published apps. May be empty.' }).prefault([]),
    portal: z
      .strictObject({
        externalUrl: z
          .string()
          .meta({
            description: 'Where users open the My Apps page (https); needs identityProvider.',
            examples: ['https://myapps.example.com/'],
          })
          .transform(fromCheck((v) => checkAppUrl(v, 'external'))),
        showPassthrough: bool(false, 'List passthrough apps too, for everyone.'),
      })
      .optional()
      .meta({ description: 'My Apps: a page listing the apps the signed-in user may use.' }),
    telemetry: telemetrySection.optional(),
  })
  .meta({ title: 'appproxy.yaml', description: 'AppProxy relay configuration.' })
  .transform(({ identityProvider, portal, telemetry, ...rest }): RelayConfig => ({
    ...rest,
    ...(identityProvider && { identityProvider }),
    ...(portal && { portal }),
    ...(telemetry?.otlp && { telemetry }),
  }));

/**
 * JSON Schema (draft 2020-12) of `appproxy.yaml` as people write it, for editors (e.g. the
 * YAML language server: `# yaml-language-server: $schema=./appproxy.schema.json`).
 *
 * @example
 * import { writeFileSync } from 'node:fs';
 * writeFileSync('appproxy.schema.json', JSON.stringify(configJsonSchema(), null, 2));
 */
export function configJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(relayConfigSchema, { io: 'input', target: 'draft-2020-12' }) as Record<
    string,
    unknown
  >;
}
