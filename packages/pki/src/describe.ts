import { X509Certificate, createHash } from 'node:crypto';
import { PkiError } from './errors.js';

/** What {@link describeCertificate} reads from a certificate. */
export interface CertificateDescription {
  /** Subject CN; `''` when the subject has none. */
  commonName: string;
  /** Issuer CN; `''` when the issuer has none. */
  issuer: string;
  /** Lowercase hex as Node and OpenSSL print it, without colons. */
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
  /** SHA-256 of the DER, lowercase hex, no colons. */
  fingerprint: string;
}

/** Node's parser: the one the TLS stack uses, so both agree on what a certificate says. */
export function parseCertificate(certPem: string): X509Certificate {
  try {
    return new X509Certificate(certPem);
  } catch (err) {
    throw new PkiError('APPPROXY_PKI_CERT_INVALID', undefined, { cause: err });
  }
}

// The legacy object holds unescaped values (the `subject` string escapes `,` `+` `\`);
// a repeated attribute is an array, of which the first counts.
function cnOf(name: NodeJS.Dict<string | string[]> | undefined): string {
  const cn = name?.CN;
  return (Array.isArray(cn) ? cn[0] : cn) ?? '';
}

/**
 * SHA-256 of a PEM certificate's DER, lowercase hex without colons: the form registration
 * tokens pin and the relay compares with a peer's certificate.
 *
 * @example
 * certificateFingerprint(ca.certPem); // '3f1c…' (64 hex digits)
 */
export function certificateFingerprint(certPem: string): string {
  return createHash('sha256').update(parseCertificate(certPem).raw).digest('hex');
}

/**
 * Subject and issuer CN, serial, validity and fingerprint of a PEM certificate (the first
 * one, if `certPem` is a chain). Throws `PkiError` `APPPROXY_PKI_CERT_INVALID` if unparsable.
 *
 * @example
 * const { commonName, notAfter } = describeCertificate(readFileSync('tunnel.pem', 'utf8'));
 */
export function describeCertificate(certPem: string): CertificateDescription {
  return describeParsed(parseCertificate(certPem));
}

/** {@link describeCertificate} of an already parsed certificate. */
export function describeParsed(cert: X509Certificate): CertificateDescription {
  const legacy = cert.toLegacyObject();
  return {
    commonName: cnOf(legacy.subject),
    issuer: cnOf(legacy.issuer),
    serialNumber: cert.serialNumber.toLowerCase(),
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    fingerprint: createHash('sha256').update(cert.raw).digest('hex'),
  };
}
