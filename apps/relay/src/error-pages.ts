import { createHash } from 'node:crypto';
import type { OutgoingHttpHeaders } from 'node:http';
import type { PageBrand } from './edge-pages.js';

/** Every refusal a person or an API client can get from the relay, with its stable code. */
export const RELAY_ERRORS = {
  APP_NOT_FOUND: {
    status: 404,
    title: 'Application not found',
    hint: 'No application is published at this address. Check the URL, or ask your administrator for the right one.',
  },
  BAD_REQUEST_PATH: {
    status: 400,
    title: 'Bad request path',
    hint: 'The request path contains encoded separators or dot segments with parameters (..;), or is not a valid path, so it cannot be routed safely.',
  },
  MALFORMED_REQUEST: {
    status: 400,
    title: 'Malformed request',
    hint: 'The request is not valid HTTP (for example conflicting Content-Length and Transfer-Encoding, or bad chunk framing), so it was refused before it reached any application.',
  },
  REQUEST_HEADERS_TOO_LARGE: {
    status: 431,
    title: 'Request headers too large',
    hint: 'The request headers (often cookies) are larger than the relay accepts. Clearing this site’s cookies usually helps.',
  },
  REQUEST_TIMEOUT: {
    status: 408,
    title: 'Request timeout',
    hint: 'The request did not arrive in time.',
  },
  BAD_REQUEST_HOST: {
    status: 400,
    title: 'Bad Host header',
    hint: 'The request’s Host is not a plain host name with an optional port (or was sent twice), so it cannot be routed safely.',
  },
  METHOD_NOT_ALLOWED: {
    status: 405,
    title: 'Method not allowed',
    hint: 'The application proxy does not accept this request method here (TRACE is never forwarded).',
  },
  RPC_METHOD_REFUSED: {
    status: 405,
    title: 'RPC over HTTP not allowed',
    hint: 'This application does not accept RPC over HTTP (RPC_IN_DATA, RPC_OUT_DATA, RDG_IN_DATA, RDG_OUT_DATA: Outlook Anywhere, Remote Desktop Gateway). Your administrator can allow them with rpcMethods: true.',
  },
  RESERVED_PATH: {
    status: 404,
    title: 'Not found',
    hint: 'This path is reserved for the application proxy itself.',
  },
  MAINTENANCE: {
    status: 503,
    title: 'Down for maintenance',
    hint: 'This application is in maintenance mode. Try again later.',
  },
  TOO_MANY_STREAMS: {
    status: 429,
    title: 'Too many requests at once',
    hint: 'This connection has too many requests in flight to the application. Retry when some have finished.',
  },
  THROTTLED: {
    status: 429,
    title: 'Too many requests',
    hint: 'This application is receiving more requests than its configured limit allows. Wait the number of seconds in Retry-After and try again.',
  },
  CONNECTOR_UNAVAILABLE: {
    status: 502,
    title: 'No connector available',
    hint: 'No connector for this application is connected to the relay right now. Your administrator can check `appproxy-relay connectors list`.',
  },
  CONNECTOR_LOST: {
    status: 502,
    title: 'Connector lost',
    hint: 'The connector serving this request went away before it finished. Retry the request.',
  },
  UPGRADE_REFUSED: {
    status: 400,
    title: 'Upgrade not allowed',
    hint: 'This application accepts only the connection upgrades its configuration lists (WebSocket by default), and never with a request body.',
  },
  UPGRADE_UNSUPPORTED: {
    status: 502,
    title: 'Upgrade not supported',
    hint: 'No connector for this application supports this kind of connection upgrade (WebSocket).',
  },
  BACKEND_UNREACHABLE: {
    status: 502,
    title: 'Application unreachable',
    hint: 'The connector could not reach the application on the internal network.',
  },
  BACKEND_TLS_INVALID: {
    status: 502,
    title: 'Application certificate not trusted',
    hint: "The application's TLS certificate failed validation at the connector.",
  },
  BACKEND_TIMEOUT: {
    status: 504,
    title: 'Application timed out',
    hint: 'The application did not answer within the configured backend timeout.',
  },
  BACKEND_UPGRADE_REFUSED: {
    status: 502,
    title: 'Upgrade refused',
    hint: 'The application did not accept the connection upgrade.',
  },
  SIGN_IN_REQUIRED: {
    status: 401,
    title: 'Sign-in required',
    hint: 'Sign in to use this application (API clients: send an access token as Authorization: Bearer).',
  },
  SIGN_IN_FAILED: {
    status: 400,
    title: 'Sign-in failed',
    hint: 'The sign-in could not be completed. Open the application again to sign in.',
  },
  IDENTITY_PROVIDER_UNAVAILABLE: {
    status: 502,
    title: 'Sign-in service unavailable',
    hint: 'The identity provider could not be reached or did not complete the sign-in. Try again later.',
  },
  NOT_ASSIGNED: {
    status: 403,
    title: 'Not assigned to this application',
    hint: 'You are signed in, but your account is not assigned to this application. Ask your administrator for access, or sign in with another account.',
  },
  POLICY_DENIED: {
    status: 403,
    title: 'Access denied by policy',
    hint: 'Your sign-in does not meet this application’s conditions. Sign in again, or ask your administrator.',
  },
  NOT_AN_ADMIN: {
    status: 403,
    title: 'Not an administrator',
    hint: 'You are signed in, but your account is not one of the relay’s administrators (relay.admins). Sign in with another account, or ask an administrator.',
  },
  SSO_IDENTITY_MISSING: {
    status: 403,
    title: 'Your account cannot be passed on to this application',
    hint: 'You are signed in, but your account lacks what this application’s single sign-on needs to tell it who you are. Ask your administrator, or sign in with another account.',
  },
  // Kerberos single sign-on (docs/kerberos.md): the connector answers these.
  SSO_NOT_CONFIGURED: {
    status: 502,
    title: 'Single sign-on is not set up',
    hint: 'This application signs you in with Kerberos, and no connector of its group is set up for it. Administrator: start its connectors with --kerberos-keytab and --kerberos-principal.',
  },
  SSO_KDC_UNREACHABLE: {
    status: 502,
    title: 'Domain controller unreachable',
    hint: 'The connector could not reach a Kerberos domain controller to sign you in to this application. Administrator: check the KDCs the connector uses (krb5.conf or --kerberos-kdc) and the network between them.',
  },
  SSO_DELEGATION_DENIED: {
    status: 502,
    title: 'Delegation not allowed',
    hint: 'The domain refused to let the connector sign you in to this application. Administrator: allow the connector’s account to delegate to this application’s SPN with any protocol (constrained delegation with protocol transition).',
  },
  SSO_USER_UNKNOWN: {
    status: 403,
    title: 'Your account is not known to the application’s domain',
    hint: 'You are signed in, but the domain has no account that matches yours, so this application cannot know who you are. Ask your administrator (the login identity mapping or your on-premises account).',
  },
  SSO_CLOCK_SKEW: {
    status: 502,
    title: 'Clocks out of step',
    hint: 'The connector’s clock and the domain controller’s differ by more than Kerberos allows. Administrator: synchronise the connector host’s time (NTP) with the domain.',
  },
  SSO_SPN_UNKNOWN: {
    status: 502,
    title: 'Application not known to the domain',
    hint: 'The domain has no service principal name for this application. Administrator: register the SPN (setspn / samba-tool spn add) on the application’s service account, or fix sso.kerberos.spn.',
  },
  SSO_SERVICE_LOGIN_FAILED: {
    status: 502,
    title: 'Connector cannot sign in to the domain',
    hint: 'The connector’s own account could not sign in to the domain. Administrator: check its keytab or password, and that the account is enabled.',
  },
  SSO_KERBEROS_FAILED: {
    status: 502,
    title: 'Kerberos sign-in failed',
    hint: 'The connector could not get a Kerberos ticket for you. The correlation id below lets your administrator find the domain controller’s error in the connector’s log.',
  },
  SSO_BACKEND_REJECTED: {
    status: 502,
    title: 'Application refused the sign-in',
    hint: 'The application did not accept the Kerberos ticket the connector obtained for you. Administrator: check the application’s keytab and SPN, and that it accepts Negotiate (Kerberos).',
  },
  INTERNAL_ERROR: {
    status: 500,
    title: 'Internal error',
    hint: 'The relay failed to handle this request. The correlation id below lets your administrator find the cause in the logs.',
  },
} as const;

export type RelayErrorCode = keyof typeof RELAY_ERRORS;

export interface ErrorContext {
  app?: string;
  correlationId: string;
  /** The request's Accept header: JSON for API clients that ask for it, HTML otherwise. */
  accept?: string;
  /** Replaces the code's standard hint (a more precise sentence for the person). */
  hint?: string;
  /** A finer, stable sub-code (e.g. `APPPROXY_PREAUTH_STATE_MISMATCH`). */
  reason?: string;
  /** Who the person is signed in as (refusals after sign-in), with a way to switch account. */
  signedInAs?: string;
  signOutHref?: string;
  /** Extra response headers (e.g. `WWW-Authenticate`, `Set-Cookie`). */
  headers?: OutgoingHttpHeaders;
}

export interface RenderedError {
  status: number;
  headers: OutgoingHttpHeaders;
  body: string;
  /** An HTML page `relay.pages` may replace: which template, and its variables. */
  brand?: PageBrand;
}

/** Text for HTML content and quoted attribute values. */
export const escapeHtml = (s: string) =>
  s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );

/** The built-in page's only style; the page allows nothing else (no script, no form, no frame). */
const PAGE_STYLE = `body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}
h1{font-size:1.5rem}dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;background:#f5f5f5;padding:1rem;border-radius:6px}
dt{font-weight:600}dd{margin:0;font-family:ui-monospace,monospace}`;
const ERROR_PAGE_CSP = [
  "default-src 'none'",
  `style-src 'sha256-${createHash('sha256').update(PAGE_STYLE).digest('base64')}'`,
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** The error as a page a person can act on, or JSON for API clients. Never internal detail. */
export function renderError(code: RelayErrorCode, ctx: ErrorContext): RenderedError {
  const entry = RELAY_ERRORS[code];
  const timestamp = new Date().toISOString();
  const hint = ctx.hint ?? entry.hint;
  const headers: OutgoingHttpHeaders = {
    ...ctx.headers,
    'cache-control': 'no-store',
    'x-appproxy-error': code,
    'x-appproxy-correlation-id': ctx.correlationId,
  };
  if (ctx.accept?.includes('application/json')) {
    headers['content-type'] = 'application/json; charset=utf-8';
    const body = JSON.stringify({
      error: {
        code,
        status: entry.status,
        message: entry.title,
        hint,
        app: ctx.app ?? null,
        ...(ctx.reason && { reason: ctx.reason }),
        ...(ctx.signedInAs && { signedInAs: ctx.signedInAs }),
        correlationId: ctx.correlationId,
        timestamp,
      },
    });
    return { status: entry.status, headers, body };
  }
  headers['content-type'] = 'text/html; charset=utf-8';
  // A caller's own policy (a page with a script) wins.
  headers['content-security-policy'] ??= ERROR_PAGE_CSP;
  headers['x-content-type-options'] ??= 'nosniff';
  const rows: Array<[string, string]> = [
    ['Error code', code],
    ...(ctx.reason ? ([['Reason', ctx.reason]] as Array<[string, string]>) : []),
    ...(ctx.app ? ([['Application', ctx.app]] as Array<[string, string]>) : []),
    ...(ctx.signedInAs ? ([['Signed in as', ctx.signedInAs]] as Array<[string, string]>) : []),
    ['Correlation id', ctx.correlationId],
    ['Time (UTC)', timestamp],
  ];
  const body = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(entry.title)}</title>
<style>${PAGE_STYLE}</style></head>
<body><h1>${escapeHtml(entry.title)}</h1><p>${escapeHtml(hint)}</p>
${ctx.signOutHref ? `<p><a href="${escapeHtml(ctx.signOutHref)}">Sign out and use another account</a></p>` : ''}
<dl>${rows.map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd>`).join('')}</dl>
</body></html>
`;
  const brand: PageBrand = {
    template: code === 'MAINTENANCE' ? 'maintenance' : entry.status === 403 ? 'forbidden' : 'error',
    vars: {
      code,
      correlationId: ctx.correlationId,
      app: ctx.app ?? '',
      user: ctx.signedInAs ?? '',
      time: timestamp,
      title: entry.title,
      hint,
    },
  };
  return { status: entry.status, headers, body, brand };
}
