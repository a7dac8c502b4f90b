import { createPrivateKey, createPublicKey } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createKeyAndCsr } from './index.js';
import { x509 } from './internal/x509.js';

describe('createKeyAndCsr', () => {
  it('makes a PKCS#8 P-256 key and a CSR for it, signed with it', async () => {
    const { keyPem, csrPem } = await createKeyAndCsr({ commonName: 'build-agent-3' });
    expect(keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n[\s\S]+\n-----END PRIVATE KEY-----\n$/);
    const key = createPrivateKey(keyPem);
    expect(key.asymmetricKeyType).toBe('ec');
    expect(key.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');

    expect(csrPem).toMatch(/^-----BEGIN CERTIFICATE REQUEST-----\n/);
    const csr = new x509.Pkcs10CertificateRequest(csrPem);
    expect(await csr.verify()).toBe(true);
    expect(csr.subject).toBe('CN=build-agent-3');
    const csrKey = Buffer.from(csr.publicKey.rawData);
    expect(csrKey.equals(createPublicKey(key).export({ type: 'spki', format: 'der' }))).toBe(true);
  });

  it('makes a new key every time', async () => {
    const a = await createKeyAndCsr({ commonName: 'c' });
    const b = await createKeyAndCsr({ commonName: 'c' });
    expect(a.keyPem).not.toBe(b.keyPem);
  });

  it('refuses an empty name', async () => {
    for (const commonName of ['', '   ', undefined as unknown as string]) {
      await expect(createKeyAndCsr({ commonName })).rejects.toMatchObject({
        name: 'PkiError',
        code: 'APPPROXY_PKI_NAME_INVALID',
      });
    }
  });
});
