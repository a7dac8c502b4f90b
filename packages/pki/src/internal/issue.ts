import type { IssuedCertificate } from '../ca.js';
import { describeCertificate } from '../describe.js';
import type { HostSan } from './names.js';
import {
  P256_SIGN,
  certToPem,
  generateP256,
  exportKeyPem,
  randomSerial,
  x509,
  type CaSigner,
  type CryptoKey,
} from './x509.js';

export const DAY_MS = 24 * 3600 * 1000;

/** Tolerated clock skew between the CA and whoever checks its certificates. */
export const CLOCK_SKEW_MS = 5 * 60 * 1000;

/** A CA as the issuing functions need it: its certificate and its signing key. */
export interface Issuer {
  cert: x509.X509Certificate;
  signer: CaSigner;
}

/** Signs `publicKey` into an end-entity certificate with `extensions` added. */
export async function signLeaf(
  issuer: Issuer,
  opts: {
    publicKey: x509.PublicKey | CryptoKey;
    commonName: string;
    validityMs: number;
    now?: Date;
    extensions: x509.Extension[];
  },
): Promise<IssuedCertificate> {
  const now = (opts.now ?? new Date()).getTime();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: [{ CN: [opts.commonName] }],
    issuer: issuer.cert.subjectName,
    notBefore: new Date(now - CLOCK_SKEW_MS),
    notAfter: new Date(now + opts.validityMs),
    publicKey: opts.publicKey,
    signingKey: issuer.signer.key,
    signingAlgorithm: issuer.signer.algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      ...opts.extensions,
      await x509.SubjectKeyIdentifierExtension.create(opts.publicKey),
      await authorityKeyIdentifier(issuer.cert),
    ],
  });
  const certPem = certToPem(cert);
  const { issuer: _issuer, ...described } = describeCertificate(certPem);
  return { certPem, ...described };
}

/** A server certificate with a new P-256 key, for `sans`. */
export async function signServerCertificate(
  issuer: Issuer,
  opts: { sans: HostSan[]; commonName: string; validityMs: number; now?: Date },
): Promise<IssuedCertificate & { keyPem: string }> {
  const keys = await generateP256();
  const issued = await signLeaf(issuer, {
    publicKey: keys.publicKey,
    commonName: opts.commonName,
    validityMs: opts.validityMs,
    ...(opts.now && { now: opts.now }),
    extensions: [
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(opts.sans),
    ],
  });
  return { ...issued, keyPem: await exportKeyPem(keys.privateKey) };
}

/**
 * The AKI must equal the CA's own SKI for OpenSSL to chain; a CA made elsewhere may have
 * derived its SKI differently, so copy it rather than recompute it.
 */
async function authorityKeyIdentifier(
  caCert: x509.X509Certificate,
): Promise<x509.AuthorityKeyIdentifierExtension> {
  const ski = caCert.getExtension(x509.SubjectKeyIdentifierExtension);
  return ski
    ? new x509.AuthorityKeyIdentifierExtension(ski.keyId)
    : x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey);
}

/** A new self-signed P-256 CA that may sign end-entity certificates only (pathLen 0). */
export async function createCaCertificate(
  commonName: string,
  validityMs: number,
): Promise<{ certPem: string; keyPem: string }> {
  const keys = await generateP256();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: [commonName] }],
    notBefore: new Date(now - CLOCK_SKEW_MS),
    notAfter: new Date(now + validityMs),
    keys,
    signingAlgorithm: P256_SIGN,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign |
          x509.KeyUsageFlags.cRLSign |
          x509.KeyUsageFlags.digitalSignature,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: certToPem(cert), keyPem: await exportKeyPem(keys.privateKey) };
}
