/** Stable codes of everything this package refuses, with their default messages. */
const PKI_MESSAGES = {
  APPPROXY_PKI_CSR_INVALID: 'the certificate request is not a valid, self-signed PKCS#10 CSR',
  APPPROXY_PKI_CERT_INVALID: 'not a PEM X.509 certificate',
  APPPROXY_PKI_CERT_EXPIRED: 'the certificate has expired',
  APPPROXY_PKI_CERT_NOT_YET_VALID: 'the certificate is not valid yet',
  APPPROXY_PKI_CERT_UNTRUSTED: 'the certificate was not issued by this CA',
  APPPROXY_PKI_CA_CORRUPT: 'the CA files are unreadable or the key does not match the certificate',
  APPPROXY_PKI_NAME_INVALID: 'a certificate name (common name or host) is empty or malformed',
} as const;

export type PkiErrorCode = keyof typeof PKI_MESSAGES;

/** The codes a {@link CertificateCheck} can fail with. */
export type CertificateCheckCode = Extract<
  PkiErrorCode,
  | 'APPPROXY_PKI_CERT_INVALID'
  | 'APPPROXY_PKI_CERT_EXPIRED'
  | 'APPPROXY_PKI_CERT_NOT_YET_VALID'
  | 'APPPROXY_PKI_CERT_UNTRUSTED'
>;

/**
 * Every failure this package throws, with a stable `code` and the underlying `cause`.
 * Messages never contain key material, so they may be shown to a registering connector.
 *
 * @example
 * try {
 *   await ca.issueFromCsr(csrPem, { commonName: connectorId });
 * } catch (err) {
 *   if (err instanceof PkiError && err.code === 'APPPROXY_PKI_CSR_INVALID') reply(400, err.message);
 * }
 */
export class PkiError extends Error {
  readonly code: PkiErrorCode;
  constructor(
    code: PkiErrorCode,
    message: string = PKI_MESSAGES[code],
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'PkiError';
    this.code = code;
  }
}
