import { SsoError } from '@appproxy/sso';
import type { Logger } from '@appproxy/telemetry';
import type { ConnectorErrorCode } from '@appproxy/tunnel';

/** What the forwarder needs of `@appproxy/sso`'s `KerberosDelegator`. */
export interface TicketSource {
  /** `Negotiate <base64>` for `user` towards `spn`; rejects with an `SsoError`. */
  authorization(user: string, spn: string): Promise<string>;
}

/** A Kerberos single sign-on failure as the user's page and the relay's logs get it. */
export interface KerberosFailure {
  code: ConnectorErrorCode;
  status: number;
  /** For the relay's log and the connector's: the KDC's error when it gave one. */
  detail: string;
}

/** The `@appproxy/sso` codes that pass through to the page unchanged. */
const PAGE_CODES: ReadonlySet<string> = new Set([
  'SSO_KDC_UNREACHABLE',
  'SSO_DELEGATION_DENIED',
  'SSO_USER_UNKNOWN',
  'SSO_CLOCK_SKEW',
  'SSO_SPN_UNKNOWN',
  'SSO_SERVICE_LOGIN_FAILED',
  'SSO_KERBEROS_FAILED',
] satisfies ConnectorErrorCode[]);

/**
 * Maps what `KerberosDelegator.authorization` threw to the user's error: the library's
 * codes as they are (an unknown user is the user's 403, the rest the admin's 502), anything
 * else `SSO_KERBEROS_FAILED`. Key material never reaches an error message.
 */
export function kerberosFailure(err: unknown): KerberosFailure {
  const e = err as (Error & { code?: string; kdcError?: { name?: string } }) | undefined;
  const code = (
    err instanceof SsoError && PAGE_CODES.has(err.code) ? err.code : 'SSO_KERBEROS_FAILED'
  ) as ConnectorErrorCode;
  const kdc = e?.kdcError?.name ? ` (${e.kdcError.name})` : '';
  return {
    code,
    status: code === 'SSO_USER_UNKNOWN' ? 403 : 502,
    detail: `${e?.code ?? 'ERROR'}${kdc}: ${e?.message ?? String(err)}`,
  };
}

/**
 * Whether a backend's answer to a request that carried a delegated ticket refuses it: 401
 * with a `Negotiate` challenge (a 401 for other reasons is the app's own business).
 */
export function rejectsTicket(status: number, wwwAuthenticate: unknown): boolean {
  if (status !== 401 || wwwAuthenticate === undefined) return false;
  const values = Array.isArray(wwwAuthenticate) ? wwwAuthenticate : [wwwAuthenticate];
  return values.some((v) => /^\s*negotiate\b/i.test(String(v)));
}

/**
 * `Authorization: Negotiate …` for the login identity and SPN the relay named, from the
 * delegator (constrained delegation with protocol transition); or the failure to answer
 * with, logged with the KDC's error. Never throws.
 */
export async function delegatedAuthorization(
  source: TicketSource,
  user: string,
  spn: string,
  log: Logger,
): Promise<{ value: string } | { failure: KerberosFailure }> {
  try {
    return { value: await source.authorization(user, spn) };
  } catch (err) {
    const failure = kerberosFailure(err);
    log.warn('kerberos single sign-on failed', {
      code: failure.code,
      user,
      spn,
      detail: failure.detail,
    });
    return { failure };
  }
}
