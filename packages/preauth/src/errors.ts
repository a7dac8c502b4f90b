/**
 * Every refusal and failure of this package: a stable code, the HTTP status the relay answers
 * with, and a description a person may read. Descriptions and messages never contain tokens,
 * authorization codes, secrets or cookie values.
 */
const PREAUTH_ERRORS = {
  APPPROXY_PREAUTH_CONFIG_INVALID: {
    status: 500,
    description: 'The sign-in settings of this app are not valid.',
  },
  APPPROXY_PREAUTH_DISCOVERY_FAILED: {
    status: 502,
    description: 'The identity provider could not be reached or sent an unusable configuration.',
  },
  APPPROXY_PREAUTH_JWKS_FAILED: {
    status: 502,
    description: 'The identity provider’s signing keys could not be fetched.',
  },
  APPPROXY_PREAUTH_TOKEN_EXCHANGE_FAILED: {
    status: 502,
    description: 'The identity provider did not complete the sign-in.',
  },
  APPPROXY_PREAUTH_USERINFO_FAILED: {
    status: 502,
    description: 'The identity provider did not return the user’s profile.',
  },
  APPPROXY_PREAUTH_IDP_ERROR: {
    status: 403,
    description: 'The identity provider refused the sign-in.',
  },
  APPPROXY_PREAUTH_TRANSACTION_MISSING: {
    status: 400,
    description:
      'This sign-in was not started in this browser, or it took too long. Open the app again to sign in.',
  },
  APPPROXY_PREAUTH_STATE_MISMATCH: {
    status: 400,
    description: 'This sign-in response does not belong to this browser. Open the app again.',
  },
  APPPROXY_PREAUTH_STATE_REUSED: {
    status: 400,
    description: 'This sign-in response was already used. Open the app again.',
  },
  APPPROXY_PREAUTH_ISSUER_MISMATCH: {
    status: 400,
    description: 'This sign-in response came from another identity provider.',
  },
  APPPROXY_PREAUTH_NONCE_MISMATCH: {
    status: 400,
    description: 'The identity provider’s answer does not belong to this sign-in.',
  },
  APPPROXY_PREAUTH_ID_TOKEN_INVALID: {
    status: 502,
    description: 'The identity provider sent an identity that could not be verified.',
  },
  APPPROXY_PREAUTH_SESSION_INVALID: {
    status: 401,
    description: 'Your session is not valid. Sign in again.',
  },
  APPPROXY_PREAUTH_SESSION_EXPIRED: {
    status: 401,
    description: 'Your session has expired. Sign in again.',
  },
  APPPROXY_PREAUTH_SIGN_IN_REQUIRED: {
    status: 401,
    description: 'Sign-in is required to use this app.',
  },
  APPPROXY_PREAUTH_BEARER_INVALID: {
    status: 401,
    description: 'The access token is not valid for this app.',
  },
  APPPROXY_PREAUTH_SIGN_OUT_REFUSED: {
    status: 403,
    description: 'Sign-out must be started from this app.',
  },
} as const satisfies Record<string, { status: number; description: string }>;

/** Stable codes of {@link PreauthError}. */
export type PreauthErrorCode = keyof typeof PREAUTH_ERRORS;

/**
 * A machine-readable sub-reason of a token refusal, for logs and tests (`alg_not_allowed`,
 * `iss_mismatch`, `aud_mismatch`, `azp_mismatch`, `expired`, `not_yet_valid`,
 * `signature_invalid`, `unknown_key`, `malformed`, `claim_missing`, `wrong_type`, …).
 */
export type PreauthErrorReason = string;

/**
 * A refusal or failure with a stable `code`, the HTTP `status` to answer with, and a
 * `description` safe to show to the person at the browser. `message` adds internal detail
 * for logs (never a token, code, secret or cookie value); `cause` keeps the original error.
 *
 * @example
 * const res = await app.handle(request);
 * if (res?.error) {
 *   // e.g. APPPROXY_PREAUTH_STATE_MISMATCH 400 "This sign-in response does not belong to this browser. …"
 *   renderErrorPage(res.status, res.error.code, res.error.description);
 * }
 */
export class PreauthError extends Error {
  readonly code: PreauthErrorCode;
  readonly status: number;
  /** For the person at the browser; fixed per code. */
  readonly description: string;
  /** Sub-reason for token refusals, e.g. `iss_mismatch`. */
  readonly reason: PreauthErrorReason | undefined;

  constructor(
    code: PreauthErrorCode,
    message?: string,
    options?: { cause?: unknown; reason?: PreauthErrorReason },
  ) {
    const entry = PREAUTH_ERRORS[code];
    super(
      message ?? entry.description,
      options?.cause === undefined ? {} : { cause: options.cause },
    );
    this.name = 'PreauthError';
    this.code = code;
    this.status = entry.status;
    this.description = entry.description;
    this.reason = options?.reason;
  }
}

/**
 * Normalises anything thrown at a boundary into a {@link PreauthError} with `code`, keeping
 * the original as `cause`.
 */
export function asPreauthError(
  err: unknown,
  code: PreauthErrorCode,
  message?: string,
): PreauthError {
  if (err instanceof PreauthError) return err;
  return new PreauthError(code, message, { cause: err });
}
