import { X509Certificate, createHash } from 'node:crypto';
import { PkiError } from './errors.js';

export interface CertificateDescription {
  commonName: string;
  issuer: string;
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
  fingerprint: string;
}

function parse(certPem: string): X509Certificate {
  try {
    return new X509Certificate(certPem);
  } catch (err) {
    throw new PkiError('APPPROXY_PKI_CERT_INVALID', 'not a PEM certificate', { cause: err });
  }
}

const cnOf = (dn: string) => /(?:^|\n)CN=([^\n]*)/.exec(dn)?.[1] ?? '';

/**
 * SHA-256 of a PEM certificate's DER, lowercase hex (no colons).
 *
 * @example
 * certificateFingerprint(ca.certPem) // '3f1c…'
 */
export function certificateFingerprint(certPem: string): string {
  return createHash('sha256').update(parse(certPem).raw).digest('hex');
}

/**
 * Subject and issuer CN, serial, validity and fingerprint of a PEM certificate.
 *
 * @example
 * describeCertificate(pem).notAfter // Date
 */
export function describeCertificate(certPem: string): CertificateDescription {
  const cert = parse(certPem);
  return {
    commonName: cnOf(cert.subject),
    issuer: cnOf(cert.issuer),
    serialNumber: cert.serialNumber.toLowerCase().replace(/^0+(?=.)/, ''),
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    fingerprint: createHash('sha256').update(cert.raw).digest('hex'),
  };
}
