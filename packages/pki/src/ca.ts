import { X509Certificate } from 'node:crypto';
import { describeParsed } from './describe.js';
import { PkiError, type CertificateCheckCode } from './errors.js';
import { loadOrCreateCa, parseCa } from './internal/ca-files.js';
import {
  DAY_MS,
  createCaCertificate,
  signLeaf,
  signServerCertificate,
  type Issuer,
} from './internal/issue.js';
import { connectorName, hostSans, serverCommonName, subjectName } from './internal/names.js';
import { isAcceptablePublicKey, x509 } from './internal/x509.js';

// A CA that expires strands every connector at once; make that a distant problem.
const CA_VALIDITY_MS = 20 * 365 * DAY_MS;
const LEAF_VALIDITY_MS = 365 * DAY_MS;

/** A certificate this package has just signed. */
export interface IssuedCertificate {
  certPem: string;
  /** Lowercase hex, 32 digits, as Node's `X509Certificate#serialNumber` lower-cased. */
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
  /** SHA-256 of the DER, lowercase hex, no colons. */
  fingerprint: string;
  commonName: string;
}

/** The outcome of {@link ConnectorCA.verify}: the identity, or why there is none. */
export type CertificateCheck =
  | { ok: true; commonName: string; serialNumber: string; notAfter: Date; fingerprint: string }
  | { ok: false; code: CertificateCheckCode; reason: string };

/**
 * The relay's connector CA: it issues every connector's client certificate and the relay's
 * tunnel server certificate, and is the only CA the tunnel listener trusts. New CAs are
 * ECDSA P-256, valid 20 years; an existing CA with a P-384/P-521 or RSA key loads too.
 *
 * @example
 * const ca = await ConnectorCA.loadOrCreate('./var/relay');
 * const { certPem } = await ca.issueFromCsr(csrPem, { commonName: connectorId });
 * tls.createServer({ ...tunnelCert, ca: [ca.certPem], requestCert: true, rejectUnauthorized: true });
 */
export class ConnectorCA {
  /** The CA certificate, PEM; what connectors and the tunnel listener trust. */
  readonly certPem: string;
  /** SHA-256 of the CA certificate's DER, lowercase hex, no colons. */
  readonly fingerprint: string;
  readonly #issuer: Issuer;
  readonly #nodeCert: X509Certificate;

  private constructor(certPem: string, issuer: Issuer) {
    this.certPem = certPem;
    this.#issuer = issuer;
    this.#nodeCert = new X509Certificate(certPem);
    this.fingerprint = describeParsed(this.#nodeCert).fingerprint;
  }

  /**
   * Loads `<dir>/connector-ca.pem` + `<dir>/connector-ca-key.pem`, or creates both (a
   * missing `dir` is created 0700, the key file 0600). Throws `PkiError`
   * `APPPROXY_PKI_CA_CORRUPT` when a file is unreadable, only one exists, the certificate
   * is not a CA, or the key does not match it.
   *
   * @param opts.commonName the CA's CN, used only when creating @default 'AppProxy Connector CA'
   * @example
   * const ca = await ConnectorCA.loadOrCreate('/var/lib/appproxy');
   * console.log(ca.fingerprint); // pinned by registration tokens
   */
  static async loadOrCreate(dir: string, opts?: { commonName?: string }): Promise<ConnectorCA> {
    const loaded = await loadOrCreateCa(dir, 'connector-ca', {
      commonName: subjectName(opts?.commonName ?? 'AppProxy Connector CA'),
      validityMs: CA_VALIDITY_MS,
    });
    return new ConnectorCA(loaded.certPem, loaded);
  }

  /**
   * A new CA in memory (nothing written): the CA and its PEMs, for a caller that keeps them
   * elsewhere (the relay's PostgreSQL store, sealed). Same key and lifetime as `loadOrCreate`.
   *
   * @param opts.commonName @default 'AppProxy Connector CA'
   * @example
   * const { certPem, keyPem } = await ConnectorCA.create();
   * const stored = JSON.parse(await store.putMaterialIfAbsent('connector-ca', JSON.stringify({ certPem, keyPem })));
   * const ca = await ConnectorCA.fromPem(stored.certPem, stored.keyPem);
   */
  static async create(opts?: {
    commonName?: string;
  }): Promise<{ ca: ConnectorCA; certPem: string; keyPem: string }> {
    const { certPem, keyPem } = await createCaCertificate(
      subjectName(opts?.commonName ?? 'AppProxy Connector CA'),
      CA_VALIDITY_MS,
    );
    return { ca: await ConnectorCA.fromPem(certPem, keyPem), certPem, keyPem };
  }

  /**
   * The CA of these PEMs. Throws `PkiError` `APPPROXY_PKI_CA_CORRUPT` as `loadOrCreate`
   * does (not a CA certificate, an unusable key, a key that is not the certificate's).
   *
   * @param source how errors name where the PEMs came from @default 'the connector CA'
   * @example
   * const ca = await ConnectorCA.fromPem(certPem, keyPem, 'connector-ca in the state store');
   */
  static async fromPem(
    certPem: string,
    keyPem: string,
    source = 'the connector CA',
  ): Promise<ConnectorCA> {
    const loaded = await parseCa(certPem, keyPem, {
      cert: `${source} certificate`,
      key: `${source} key`,
    });
    return new ConnectorCA(loaded.certPem, loaded);
  }

  /**
   * Issues a connector's client certificate for the key in `csrPem`. The CSR must verify
   * with its own key (`PkiError` `APPPROXY_PKI_CSR_INVALID` otherwise, also for keys weaker
   * than P-256 / RSA-2048); its subject is ignored, as the relay names connectors. The
   * certificate has CN = `commonName`, SAN URI `urn:appproxy:connector:<commonName>`, EKU
   * clientAuth, keyUsage digitalSignature, a random 16-byte serial, and is valid from
   * `now` − 5 minutes (clock skew) to `now` + `validityMs`.
   *
   * @param opts.commonName the connector id: 1–64 of `A–Z a–z 0–9 . _ ~ : -`
   *   (`PkiError` `APPPROXY_PKI_NAME_INVALID` otherwise)
   * @param opts.validityMs @default 365 days
   * @param opts.now @default new Date()
   * @example
   * const issued = await ca.issueFromCsr(csrPem, { commonName: randomUUID() });
   * store.save(issued.commonName, issued.fingerprint, issued.notAfter);
   */
  async issueFromCsr(
    csrPem: string,
    opts: { commonName: string; validityMs?: number; now?: Date },
  ): Promise<IssuedCertificate> {
    const commonName = connectorName(opts.commonName);
    const validityMs = checkValidity(opts.validityMs);
    const csr = await verifiedCsr(csrPem);
    return signLeaf(this.#issuer, {
      publicKey: csr.publicKey,
      commonName,
      validityMs,
      now: opts.now,
      extensions: [
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
        new x509.SubjectAlternativeNameExtension([
          { type: 'url', value: `urn:appproxy:connector:${commonName}` },
        ]),
      ],
    });
  }

  /**
   * A server certificate for the relay's tunnel listener, with a new P-256 key: SAN DNS
   * entries for names (wildcards allowed) and IP entries for IPv4/IPv6 literals, EKU
   * serverAuth. Serve it followed by `certPem` so clients that pin the CA can build the chain.
   *
   * @param opts.hosts at least one (`PkiError` `APPPROXY_PKI_NAME_INVALID` otherwise)
   * @param opts.validityMs @default 365 days
   * @param opts.now start of the validity (less 5 minutes of clock skew) @default new Date()
   * @example
   * const server = await ca.issueServerCertificate({ hosts: ['relay.example.com', '203.0.113.7'] });
   * tls.createServer({ cert: server.certPem + ca.certPem, key: server.keyPem, … });
   */
  async issueServerCertificate(opts: {
    hosts: string[];
    validityMs?: number;
    now?: Date;
  }): Promise<IssuedCertificate & { keyPem: string }> {
    const sans = hostSans(opts.hosts);
    return signServerCertificate(this.#issuer, {
      sans,
      commonName: serverCommonName(sans, 'AppProxy relay'),
      validityMs: checkValidity(opts.validityMs),
      ...(opts.now && { now: opts.now }),
    });
  }

  /**
   * Checks that `certPem` was signed by this CA and that `now` lies within its validity
   * window (bounds included). Never throws: bad input is `{ ok: false, code }`.
   *
   * @param opts.now @default new Date()
   * @example
   * const check = ca.verify(pem, { now: new Date(Date.now() + 30 * 86400_000) });
   * if (!check.ok && check.code === 'APPPROXY_PKI_CERT_EXPIRED') renew();
   */
  verify(certPem: string, opts?: { now?: Date }): CertificateCheck {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(certPem);
    } catch {
      return { ok: false, code: 'APPPROXY_PKI_CERT_INVALID', reason: 'not a PEM certificate' };
    }
    let issuedHere = false;
    try {
      issuedHere = cert.checkIssued(this.#nodeCert) && cert.verify(this.#nodeCert.publicKey);
    } catch {
      // The signature is of a kind this CA's key cannot check: not ours either.
    }
    const d = describeParsed(cert);
    if (!issuedHere) {
      return {
        ok: false,
        code: 'APPPROXY_PKI_CERT_UNTRUSTED',
        reason: `issued by "${d.issuer}", not signed by this CA`,
      };
    }
    const now = (opts?.now ?? new Date()).getTime();
    if (now < d.notBefore.getTime()) {
      return {
        ok: false,
        code: 'APPPROXY_PKI_CERT_NOT_YET_VALID',
        reason: `valid from ${d.notBefore.toISOString()}`,
      };
    }
    if (now > d.notAfter.getTime()) {
      return {
        ok: false,
        code: 'APPPROXY_PKI_CERT_EXPIRED',
        reason: `expired ${d.notAfter.toISOString()}`,
      };
    }
    const { commonName, serialNumber, notAfter, fingerprint } = d;
    return { ok: true, commonName, serialNumber, notAfter, fingerprint };
  }
}

async function verifiedCsr(csrPem: string): Promise<x509.Pkcs10CertificateRequest> {
  let csr: x509.Pkcs10CertificateRequest;
  let signed: boolean;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
    signed = await csr.verify();
  } catch (err) {
    throw new PkiError('APPPROXY_PKI_CSR_INVALID', 'not a PEM PKCS#10 certificate request', {
      cause: err,
    });
  }
  // Proof of possession: only the holder of the private key can have signed the request.
  if (!signed) {
    throw new PkiError(
      'APPPROXY_PKI_CSR_INVALID',
      'the certificate request was not signed by its own key (altered in transit?)',
    );
  }
  if (!isAcceptablePublicKey(csr.publicKey.rawData)) {
    throw new PkiError(
      'APPPROXY_PKI_CSR_INVALID',
      'the certificate request key is not accepted: use P-256, P-384, P-521, Ed25519 or RSA ≥ 2048',
    );
  }
  return csr;
}

function checkValidity(validityMs: number | undefined): number {
  if (validityMs === undefined) return LEAF_VALIDITY_MS;
  if (!Number.isFinite(validityMs) || validityMs <= 0) {
    throw new RangeError(`validityMs must be a positive number of milliseconds, got ${validityMs}`);
  }
  return validityMs;
}
