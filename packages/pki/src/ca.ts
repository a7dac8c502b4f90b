import { X509Certificate as NodeX509 } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import {
  EC_SIGN,
  exportKeyPem,
  generateKeyPair,
  importKeyPem,
  randomSerial,
  x509,
  type CryptoKey,
} from './crypto.js';
import { certificateFingerprint, describeCertificate } from './describe.js';
import { PkiError } from './errors.js';

const DAY = 24 * 3600 * 1000;
/** Tolerated clock skew between relay and connectors. */
const SKEW_MS = 5 * 60 * 1000;

export interface IssuedCertificate {
  certPem: string;
  /** Lowercase hex, no leading zeros. */
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
  /** SHA-256 of the DER, lowercase hex. */
  fingerprint: string;
  commonName: string;
}

export type CertificateCheck =
  | { ok: true; commonName: string; serialNumber: string; notAfter: Date; fingerprint: string }
  | {
      ok: false;
      code:
        | 'APPPROXY_PKI_CERT_INVALID'
        | 'APPPROXY_PKI_CERT_EXPIRED'
        | 'APPPROXY_PKI_CERT_NOT_YET_VALID'
        | 'APPPROXY_PKI_CERT_UNTRUSTED';
      reason: string;
    };

/** A SAN entry for a host name or an IP literal. */
export function hostSan(host: string): { type: 'dns' | 'ip'; value: string } {
  const bare = host.replace(/^\[|\]$/g, '');
  return isIP(bare) ? { type: 'ip', value: bare } : { type: 'dns', value: bare.toLowerCase() };
}

/** Signs `publicKey` into a certificate with the given name, extensions and validity. */
export async function signCertificate(opts: {
  issuerCert: x509.X509Certificate;
  issuerKey: CryptoKey;
  publicKey: x509.PublicKey | CryptoKey;
  commonName: string;
  validityMs: number;
  now?: Date;
  extensions: x509.Extension[];
}): Promise<IssuedCertificate> {
  const now = opts.now ?? new Date();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: [{ CN: [opts.commonName] }],
    issuer: opts.issuerCert.subjectName,
    notBefore: new Date(now.getTime() - SKEW_MS),
    notAfter: new Date(now.getTime() + opts.validityMs),
    publicKey: opts.publicKey,
    signingKey: opts.issuerKey,
    signingAlgorithm: EC_SIGN,
    extensions: [
      ...opts.extensions,
      await x509.SubjectKeyIdentifierExtension.create(opts.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(opts.issuerCert.publicKey),
    ],
  });
  const certPem = cert.toString('pem') + '\n';
  const d = describeCertificate(certPem);
  return {
    certPem,
    serialNumber: d.serialNumber,
    notBefore: d.notBefore,
    notAfter: d.notAfter,
    fingerprint: d.fingerprint,
    commonName: d.commonName,
  };
}

/** Creates a self-signed CA certificate and key. */
export async function createCaCertificate(
  commonName: string,
  validityMs: number,
): Promise<{ certPem: string; keyPem: string }> {
  const keys = await generateKeyPair();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: [commonName] }],
    notBefore: new Date(now - SKEW_MS),
    notAfter: new Date(now + validityMs),
    keys,
    signingAlgorithm: EC_SIGN,
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
  return { certPem: cert.toString('pem') + '\n', keyPem: await exportKeyPem(keys.privateKey) };
}

/** Loads a CA from `<dir>/<base>.pem` and `<dir>/<base>-key.pem`, or creates it (dir 0700, key 0600). */
export async function loadOrCreateCaFiles(
  dir: string,
  base: string,
  commonName: string,
  validityMs: number,
): Promise<{ certPem: string; key: CryptoKey; cert: x509.X509Certificate; created: boolean }> {
  const certPath = join(dir, `${base}.pem`);
  const keyPath = join(dir, `${base}-key.pem`);
  let created = false;
  if (!existsSync(certPath) || !existsSync(keyPath)) {
    if (existsSync(certPath) !== existsSync(keyPath)) {
      throw new PkiError(
        'APPPROXY_PKI_CA_CORRUPT',
        `${dir} holds only half of the CA (${base}.pem / ${base}-key.pem); restore the missing file`,
      );
    }
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
    const ca = await createCaCertificate(commonName, validityMs);
    writeFileSync(keyPath, ca.keyPem, { mode: 0o600 });
    writeFileSync(certPath, ca.certPem, { mode: 0o644 });
    created = true;
  }
  try {
    const certPem = readFileSync(certPath, 'utf8');
    const keyPem = readFileSync(keyPath, 'utf8');
    const cert = new x509.X509Certificate(certPem);
    const key = await importKeyPem(keyPem);
    // The key must belong to the certificate: sign and verify a probe.
    const probe = await x509.X509CertificateGenerator.create({
      subject: 'CN=probe',
      issuer: cert.subjectName,
      publicKey: cert.publicKey,
      signingKey: key,
      signingAlgorithm: EC_SIGN,
    });
    if (!(await probe.verify({ publicKey: cert.publicKey, signatureOnly: true }))) {
      throw new Error('the key does not match the certificate');
    }
    return { certPem, key, cert, created };
  } catch (err) {
    throw new PkiError(
      'APPPROXY_PKI_CA_CORRUPT',
      `CA in ${dir} is unusable: ${(err as Error).message}`,
      { cause: err },
    );
  }
}

/**
 * The relay's connector CA: it issues every connector's client certificate and the relay's
 * tunnel server certificate, and is the only CA the tunnel listener trusts.
 *
 * @example
 * const ca = await ConnectorCA.loadOrCreate('./var/relay');
 * const { certPem } = await ca.issueFromCsr(csrPem, { commonName: connectorId });
 */
export class ConnectorCA {
  readonly certPem: string;
  readonly fingerprint: string;
  readonly #key: CryptoKey;
  readonly #cert: x509.X509Certificate;
  readonly #nodeCert: NodeX509;

  private constructor(certPem: string, key: CryptoKey, cert: x509.X509Certificate) {
    this.certPem = certPem;
    this.#key = key;
    this.#cert = cert;
    this.#nodeCert = new NodeX509(certPem);
    this.fingerprint = certificateFingerprint(certPem);
  }

  /** Loads `<dir>/connector-ca.pem` + `<dir>/connector-ca-key.pem`, or creates them (dir 0700, key 0600). */
  static async loadOrCreate(dir: string, opts: { commonName?: string } = {}): Promise<ConnectorCA> {
    const { certPem, key, cert } = await loadOrCreateCaFiles(
      dir,
      'connector-ca',
      opts.commonName ?? 'AppProxy Connector CA',
      20 * 365 * DAY,
    );
    return new ConnectorCA(certPem, key, cert);
  }

  /**
   * Verifies the CSR's self-signature, ignores its subject, and issues a client certificate:
   * CN = commonName, SAN URI `urn:appproxy:connector:<commonName>`, EKU clientAuth.
   * @param opts.validityMs @default 365 days
   */
  async issueFromCsr(
    csrPem: string,
    opts: { commonName: string; validityMs?: number; now?: Date },
  ): Promise<IssuedCertificate> {
    let csr: x509.Pkcs10CertificateRequest;
    let valid = false;
    try {
      csr = new x509.Pkcs10CertificateRequest(csrPem);
      valid = await csr.verify();
    } catch (err) {
      throw new PkiError('APPPROXY_PKI_CSR_INVALID', 'not a PKCS#10 certificate request', {
        cause: err,
      });
    }
    if (!valid)
      throw new PkiError(
        'APPPROXY_PKI_CSR_INVALID',
        'the certificate request signature does not verify',
      );
    return signCertificate({
      issuerCert: this.#cert,
      issuerKey: this.#key,
      publicKey: csr.publicKey,
      commonName: opts.commonName,
      validityMs: opts.validityMs ?? 365 * DAY,
      now: opts.now,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
        new x509.SubjectAlternativeNameExtension([
          { type: 'url', value: `urn:appproxy:connector:${opts.commonName}` },
        ]),
      ],
    });
  }

  /** A server certificate (new P-256 key) for the relay's tunnel listener, naming `hosts`. */
  async issueServerCertificate(opts: {
    hosts: string[];
    validityMs?: number;
  }): Promise<IssuedCertificate & { keyPem: string }> {
    const keys = await generateKeyPair();
    const issued = await signCertificate({
      issuerCert: this.#cert,
      issuerKey: this.#key,
      publicKey: keys.publicKey,
      commonName: opts.hosts[0] ?? 'appproxy-relay',
      validityMs: opts.validityMs ?? 365 * DAY,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension(opts.hosts.map(hostSan)),
      ],
    });
    return { ...issued, keyPem: await exportKeyPem(keys.privateKey) };
  }

  /** Whether `certPem` was signed by this CA and is valid at `now`. Never throws. */
  verify(certPem: string, opts: { now?: Date } = {}): CertificateCheck {
    let cert: NodeX509;
    try {
      cert = new NodeX509(certPem);
    } catch {
      return { ok: false, code: 'APPPROXY_PKI_CERT_INVALID', reason: 'not a PEM certificate' };
    }
    if (!cert.checkIssued(this.#nodeCert) || !cert.verify(this.#nodeCert.publicKey)) {
      return { ok: false, code: 'APPPROXY_PKI_CERT_UNTRUSTED', reason: 'not issued by this CA' };
    }
    const now = (opts.now ?? new Date()).getTime();
    const d = describeCertificate(certPem);
    if (now < d.notBefore.getTime())
      return {
        ok: false,
        code: 'APPPROXY_PKI_CERT_NOT_YET_VALID',
        reason: `valid from ${d.notBefore.toISOString()}`,
      };
    if (now > d.notAfter.getTime())
      return {
        ok: false,
        code: 'APPPROXY_PKI_CERT_EXPIRED',
        reason: `expired ${d.notAfter.toISOString()}`,
      };
    return {
      ok: true,
      commonName: d.commonName,
      serialNumber: d.serialNumber,
      notAfter: d.notAfter,
      fingerprint: d.fingerprint,
    };
  }
}
