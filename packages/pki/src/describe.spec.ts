import { X509Certificate, webcrypto } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { useCleanup } from './__fixtures__/cleanup.js';
import {
  ConnectorCA,
  PkiError,
  certificateFingerprint,
  createKeyAndCsr,
  describeCertificate,
} from './index.js';
import { x509 } from './internal/x509.js';

const { tempDir } = useCleanup();

describe('describeCertificate', () => {
  it('reads names, serial, validity and fingerprint as Node and the TLS peer see them', async () => {
    const ca = await ConnectorCA.loadOrCreate(await tempDir(), { commonName: 'Test CA' });
    const { csrPem } = await createKeyAndCsr({ commonName: 'c' });
    const issued = await ca.issueFromCsr(csrPem, { commonName: 'conn-9' });
    const node = new X509Certificate(issued.certPem);

    const described = describeCertificate(issued.certPem);
    expect(described).toEqual({
      commonName: 'conn-9',
      issuer: 'Test CA',
      serialNumber: node.serialNumber.toLowerCase(),
      notBefore: node.validFromDate,
      notAfter: node.validToDate,
      fingerprint: node.fingerprint256.replaceAll(':', '').toLowerCase(),
    });
    expect(described.serialNumber).toBe(issued.serialNumber);
    // A chain describes its first certificate.
    expect(describeCertificate(issued.certPem + ca.certPem).commonName).toBe('conn-9');
    expect(certificateFingerprint(issued.certPem)).toBe(issued.fingerprint);
    expect(certificateFingerprint(ca.certPem)).toBe(ca.fingerprint);
  });

  it('returns names unescaped', async () => {
    const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
    const keys = await webcrypto.subtle.generateKey(alg, false, ['sign', 'verify']);
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      name: 'CN=Contoso\\, Ltd+O=Contoso',
      keys: keys as never,
      signingAlgorithm: alg,
    });
    expect(describeCertificate(cert.toString('pem'))).toMatchObject({
      commonName: 'Contoso, Ltd',
      issuer: 'Contoso, Ltd',
    });
  });

  it('throws APPPROXY_PKI_CERT_INVALID for anything but a certificate', async () => {
    const { csrPem } = await createKeyAndCsr({ commonName: 'c' });
    for (const bad of [
      '',
      'garbage',
      csrPem,
      '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----',
    ]) {
      for (const read of [describeCertificate, certificateFingerprint]) {
        let thrown: unknown;
        try {
          read(bad);
        } catch (err) {
          thrown = err;
        }
        expect(thrown).toBeInstanceOf(PkiError);
        expect(thrown).toMatchObject({ code: 'APPPROXY_PKI_CERT_INVALID' });
      }
    }
  });
});
