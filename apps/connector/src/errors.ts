/** Codes the connector reports to the relay on a response it made itself (META.error). */
export type BackendErrorCode =
  | 'BACKEND_UNREACHABLE'
  | 'BACKEND_TIMEOUT'
  | 'BACKEND_TLS_INVALID'
  | 'BACKEND_UPGRADE_REFUSED'
  /** An upgrade the connector never forwards (h2c), whatever the relay asked. */
  | 'UPGRADE_REFUSED';

const TLS_CODES = new Set([
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_REVOKED',
]);

/** Maps a backend-hop failure (undici or node:http) to the code the user will see. */
export function classifyBackendError(err: unknown): {
  code: BackendErrorCode;
  status: number;
  detail: string;
} {
  let e = err as (Error & { code?: string; cause?: unknown }) | undefined;
  const codes: string[] = [];
  for (let depth = 0; e && depth < 4; depth++) {
    if (e.code) codes.push(e.code);
    e = e.cause as typeof e;
  }
  const detail = `${codes[0] ?? 'ERROR'}: ${(err as Error)?.message ?? String(err)}`;
  if (codes.some((c) => c === 'UND_ERR_HEADERS_TIMEOUT' || c === 'ETIMEDOUT_BACKEND')) {
    return { code: 'BACKEND_TIMEOUT', status: 504, detail };
  }
  if (codes.some((c) => TLS_CODES.has(c)))
    return { code: 'BACKEND_TLS_INVALID', status: 502, detail };
  return { code: 'BACKEND_UNREACHABLE', status: 502, detail };
}

/** The connector CLI's failures: one line on stderr, non-zero exit. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** A certificate renewal the connector refused (answered to the relay with this code). */
export class RenewalError extends Error {
  readonly code:
    | 'APPPROXY_RENEWAL_NOT_REQUESTED'
    | 'APPPROXY_RENEWAL_CERT_INVALID'
    | 'APPPROXY_RENEWAL_MALFORMED';
  constructor(code: RenewalError['code'], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RenewalError';
    this.code = code;
  }
}
