/** Stable codes of everything `@appproxy/sso` refuses. */
export type SsoErrorCode =
  | 'SSO_IDENTITY_MISSING'
  | 'APPPROXY_SSO_TEMPLATE_INVALID'
  | 'APPPROXY_SSO_CONFIG_INVALID'
  | 'APPPROXY_SSO_STRIP_INVALID'
  | 'APPPROXY_SSO_KEYSTORE_INVALID'
  | 'APPPROXY_SSO_KERBEROS_CONFIG_INVALID'
  | 'SSO_KDC_UNREACHABLE'
  | 'SSO_DELEGATION_DENIED'
  | 'SSO_USER_UNKNOWN'
  | 'SSO_CLOCK_SKEW'
  | 'SSO_SPN_UNKNOWN'
  | 'SSO_SERVICE_LOGIN_FAILED'
  | 'SSO_KERBEROS_FAILED';

/** What the KDC said, with a Kerberos error: its code, RFC 4120 name and e-text. */
export interface KdcErrorInfo {
  code: number;
  /** e.g. `KDC_ERR_BADOPTION`. */
  name: string;
  text?: string;
}

/**
 * A refusal with a stable `code`. `SSO_IDENTITY_MISSING` happens per request (the signed-in
 * user lacks what the app's SSO needs) and names the needed claim in `claim`; the others are
 * configuration errors found at start-up. The Kerberos codes (`SSO_KDC_UNREACHABLE`,
 * `SSO_DELEGATION_DENIED`, `SSO_USER_UNKNOWN`, `SSO_CLOCK_SKEW`, `SSO_SPN_UNKNOWN`,
 * `SSO_SERVICE_LOGIN_FAILED`, `SSO_KERBEROS_FAILED`) happen per request and carry
 * `kdcError` when a KDC said why. Messages never contain keys, passwords or tokens.
 *
 * @example
 * try {
 *   resolveLoginIdentity({ sub: 'x' }, 'email');
 * } catch (err) {
 *   if (err instanceof SsoError) console.log(err.code, err.claim); // SSO_IDENTITY_MISSING email
 * }
 */
export class SsoError extends Error {
  readonly code: SsoErrorCode;
  /** With `SSO_IDENTITY_MISSING`: the identity field or claim path that was needed. */
  readonly claim?: string;
  /** With the Kerberos `SSO_*` codes: the KDC's error, when a KDC answered with one. */
  readonly kdcError?: KdcErrorInfo;

  constructor(
    code: SsoErrorCode,
    message: string,
    options?: { cause?: unknown; claim?: string; kdcError?: KdcErrorInfo },
  ) {
    super(message, options?.cause === undefined ? {} : { cause: options.cause });
    this.name = 'SsoError';
    this.code = code;
    if (options?.claim !== undefined) this.claim = options.claim;
    if (options?.kdcError !== undefined) this.kdcError = options.kdcError;
  }
}

/** The user's identity lacks `claim`, which this app's SSO needs. */
export function identityMissing(claim: string): SsoError {
  return new SsoError('SSO_IDENTITY_MISSING', `The identity has no ${claim} for single sign-on`, {
    claim,
  });
}
