import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { hostSan, loadOrCreateCaFiles, signCertificate } from './ca.js';
import { exportKeyPem, generateKeyPair, x509 } from './crypto.js';

const DAY = 24 * 3600 * 1000;

/**
 * Like mkcert: a local dev CA in `dir` (`dev-ca.pem`, `dev-ca-key.pem`; reused when
 * present) and a leaf for `hosts` (DNS names, wildcards, IP literals) in
 * `dir/<name>.pem` + `dir/<name>-key.pem` (0600). Trust `dev-ca.pem` in the client.
 *
 * @example
 * const { caCertPath, certPath, keyPath } = await createDevCertificates({ dir: './var/tls', hosts: ['localhost', '*.apps.localhost'] });
 */
export async function createDevCertificates(opts: {
  dir: string;
  hosts: string[];
  name?: string;
}): Promise<{ caCertPath: string; certPath: string; keyPath: string }> {
  const dir = resolve(opts.dir);
  const name = opts.name ?? 'site';
  const ca = await loadOrCreateCaFiles(dir, 'dev-ca', 'AppProxy Development CA', 10 * 365 * DAY);
  const keys = await generateKeyPair();
  const leaf = await signCertificate({
    issuerCert: ca.cert,
    issuerKey: ca.key,
    publicKey: keys.publicKey,
    commonName: opts.hosts[0] ?? 'localhost',
    validityMs: 365 * DAY,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(opts.hosts.map(hostSan)),
    ],
  });
  const certPath = join(dir, `${name}.pem`);
  const keyPath = join(dir, `${name}-key.pem`);
  writeFileSync(keyPath, await exportKeyPem(keys.privateKey), { mode: 0o600 });
  writeFileSync(certPath, leaf.certPem);
  return { caCertPath: join(dir, 'dev-ca.pem'), certPath, keyPath };
}
