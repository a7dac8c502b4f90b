/** Stable codes of everything `@appproxy/sso` refuses. */
export type SsoErrorCode =
  | 'SSO_IDENTITY_MISSING'
  | 'APPPROXY_SSO_TEMPLATE_INVALID'
  | 'APPPROXY_SSO_CONFIG_INVALID'
  | 'APPPROXY_SSO_STRIP_INVALID'
  | 'APPPROXY_SSO_KEYSTORE_INVALID';

/**
 * A refusal with a stable `code`. `SSO_IDENTITY_MISSING` happens per request (the signed-in
 * user lacks what the app's SSO needs) and names the needed claim in `claim`; the others are
 * configuration errors found at start-up. Messages never contain keys or tokens.
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

  constructor(code: SsoErrorCode, message: string, options?: { cause?: unknown; claim?: string }) {
    super(message, options?.cause === undefined ? {} : { cause: options.cause });
    this.name = 'SsoError';
    this.code = code;
    if (options?.claim !== undefined) this.claim = options.claim;
  }
}

/** The user's identity lacks `claim`, which this app's SSO needs. */
export function identityMissing(claim: string): SsoError {
  return new SsoError('SSO_IDENTITY_MISSING', `The identity has no ${claim} for single sign-on`, {
    claim,
  });
}
