export type PkiErrorCode =
  'APPPROXY_PKI_CSR_INVALID' | 'APPPROXY_PKI_CERT_INVALID' | 'APPPROXY_PKI_CA_CORRUPT';

/** Every failure of this package, with a stable `code`. */
export class PkiError extends Error {
  readonly code: PkiErrorCode;
  constructor(code: PkiErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PkiError';
    this.code = code;
  }
}
