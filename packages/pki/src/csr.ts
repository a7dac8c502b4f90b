import { EC_SIGN, exportKeyPem, generateKeyPair, x509 } from './crypto.js';

/**
 * Connector side of registration: a new P-256 key pair and a PKCS#10 CSR signed with it.
 * The key stays with the caller; only the CSR travels.
 *
 * @example
 * const { keyPem, csrPem } = await createKeyAndCsr({ commonName: 'conn-01' });
 */
export async function createKeyAndCsr(opts: {
  commonName: string;
}): Promise<{ keyPem: string; csrPem: string }> {
  const keys = await generateKeyPair();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: [{ CN: [opts.commonName] }],
    keys,
    signingAlgorithm: EC_SIGN,
  });
  return { keyPem: await exportKeyPem(keys.privateKey), csrPem: csr.toString('pem') };
}
