import type { BackendTlsMaterial } from './backend-tls.js';

/**
 * The single sign-on part of a `diagnose` control (docs/tunnel-protocol.md §3.7): what the
 * relay worked out for the named user with the app's identity mapping.
 */
export interface DiagnoseSso {
  /** The app's `sso.mode`. */
  mode: string;
  /** The user the admin named (`--user`). */
  user?: string;
  /** The mapped login identity (the app's `sso.loginIdentity` applied to the user). */
  loginIdentity?: string;
  /** Which rule made it (`upn`, `samAccountName`, `claim:<path>`, …). */
  loginIdentityKind?: string;
  /** Kerberos apps: the backend's service principal name. */
  spn?: string;
  /** Header names the relay adds for this app (`headers` / `jwt` modes). */
  headers?: string[];
  /** Why no dry run is made (no user named, a passthrough app); the check is skipped. */
  skip?: string;
  /** The relay could not map the user (a claim missing): the check fails with this. */
  refused?: { code: string; message: string; fix: string };
}

/** Body of the relay's `diagnose` control stream. */
export interface DiagnoseRequest {
  /** The app's name (logs). */
  app: string;
  /** The app's internal URL, `http(s)://host[:port]/path`. */
  url: string;
  /** The `Host` the GET sends: as a proxied request's `:authority` would be. */
  host?: string;
  /** Time limit of each check. @default 10000 */
  checkTimeoutMs?: number;
  /** Time limit of all checks together. @default 30000 */
  totalTimeoutMs?: number;
  /** `false`: the app's `validateBackendTls: false`. */
  verifyTls: boolean;
  /** The app's `backendProxy`. */
  backendProxy?: string;
  /** The app's `backendTls`: its id, and its material (the connector caches it as for requests). */
  backendTls?: { id: string; material?: BackendTlsMaterial };
  /** Extra request headers of the GET (the app's SSO headers for the named user). */
  headers?: Record<string, string>;
  sso?: DiagnoseSso;
}

/** One check's outcome, as the connector reports it. */
export interface DiagnoseCheck {
  /** `resolve`, `connect`, `tls`, `http`, `sso`. */
  name: string;
  ok: boolean;
  /** Not run (nothing to check, or an earlier check failed). */
  skipped?: boolean;
  /** Passed, with something to look at (a certificate near its end, a 4xx answer). */
  warn?: boolean;
  /** How long it took. */
  ms?: number;
  /** One line for people. */
  detail: string;
  /** What to do, for a failure or a warning. */
  fix?: string;
  /** Machine-readable facts (addresses, status, certificate fields, ticket end). */
  data?: Record<string, string | number | boolean | null | string[]>;
}

/** The connector's answer to `diagnose`. */
export interface DiagnoseAnswer {
  checks: DiagnoseCheck[];
}

/** Default time limits of the checks (§3.7). */
export const DIAGNOSE_CHECK_TIMEOUT_MS = 10_000;
export const DIAGNOSE_TOTAL_TIMEOUT_MS = 30_000;

/**
 * Reads a `diagnose` body: undefined when it lacks what the checks need (the connector
 * answers 400).
 *
 * @example
 * parseDiagnoseRequest({ app: 'Wiki', url: 'http://wiki.corp/', verifyTls: true })?.app; // 'Wiki'
 */
export function parseDiagnoseRequest(body: unknown): DiagnoseRequest | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const r = body as Partial<DiagnoseRequest>;
  if (typeof r.app !== 'string' || typeof r.url !== 'string' || typeof r.verifyTls !== 'boolean')
    return undefined;
  try {
    const u = new URL(r.url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return undefined;
  } catch {
    return undefined;
  }
  const ms = (v: unknown, max: number) =>
    typeof v === 'number' && Number.isFinite(v) && v > 0 ? Math.min(v, max) : undefined;
  const check = ms(r.checkTimeoutMs, DIAGNOSE_TOTAL_TIMEOUT_MS);
  const total = ms(r.totalTimeoutMs, DIAGNOSE_TOTAL_TIMEOUT_MS);
  const headers =
    typeof r.headers === 'object' && r.headers !== null
      ? Object.fromEntries(
          Object.entries(r.headers).filter((e): e is [string, string] => typeof e[1] === 'string'),
        )
      : undefined;
  return {
    app: r.app,
    url: r.url,
    verifyTls: r.verifyTls,
    ...(typeof r.host === 'string' && { host: r.host }),
    // Capped here; when absent, `diagnose` takes the defaults.
    ...(check !== undefined && { checkTimeoutMs: check }),
    ...(total !== undefined && { totalTimeoutMs: total }),
    ...(typeof r.backendProxy === 'string' && { backendProxy: r.backendProxy }),
    ...(typeof r.backendTls?.id === 'string' && { backendTls: r.backendTls }),
    ...(headers && { headers }),
    ...(typeof r.sso?.mode === 'string' && { sso: r.sso }),
  };
}
