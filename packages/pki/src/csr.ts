import { subjectName } from './internal/names.js';
import { P256_SIGN, exportKeyPem, generateP256, x509 } from './internal/x509.js';

/**
 * Connector side of registration: a new P-256 key pair and a PKCS#10 CSR signed with it.
 * Only the CSR travels; the key stays with the caller. The CA ignores the CSR's subject
 * (it names the connector itself), so `commonName` is informational, e.g. the host name.
 * Throws `PkiError` `APPPROXY_PKI_NAME_INVALID` for an empty name.
 *
 * @example
 * const { keyPem, csrPem } = await createKeyAndCsr({ commonName: os.hostname() });
 * // send csrPem to the relay; keep keyPem (PKCS#8 PEM) for tls.connect({ key: keyPem, … })
 */
export async function createKeyAndCsr(opts: {
  commonName: string;
}): Promise<{ keyPem: string; csrPem: string }> {
  const commonName = subjectName(opts.commonName);
  const keys = await generateP256();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: [{ CN: [commonName] }],
    keys,
    signingAlgorithm: P256_SIGN,
  });
  return { keyPem: await exportKeyPem(keys.privateKey), csrPem: csr.toString('pem') + '\n' };
}
