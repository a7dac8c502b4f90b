import { randomBytes } from 'node:crypto';
import { rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { loadOrCreateCa } from './internal/ca-files.js';
import { DAY_MS, signServerCertificate } from './internal/issue.js';
import { hostSans, serverCommonName } from './internal/names.js';

// Long enough that a developer trusts it once.
const DEV_CA_VALIDITY_MS = 10 * 365 * DAY_MS;
// Within the 398 days browsers accept for a leaf.
const DEV_LEAF_VALIDITY_MS = 365 * DAY_MS;

/**
 * Like mkcert: a local development CA in `dir` (`dev-ca.pem`, `dev-ca-key.pem` 0600; reused
 * when present, so it is trusted once) and a leaf for `hosts` — DNS names, wildcards such as
 * `*.apps.localhost`, IPv4/IPv6 literals — written to `dir/<name>.pem` and
 * `dir/<name>-key.pem` (0600), replacing earlier ones. Leaf valid 365 days, CA 10 years.
 * Throws `PkiError` `APPPROXY_PKI_NAME_INVALID` for an empty or malformed host list.
 *
 * @param opts.dir where the CA and the leaf live; created (0700) if missing
 * @param opts.hosts the names the leaf is valid for; the first that fits is also its CN
 * @param opts.name base name of the leaf's files @default 'site'
 * @returns absolute paths; give `caCertPath` to clients (`ca:` option, `NODE_EXTRA_CA_CERTS`)
 * @example
 * const { caCertPath, certPath, keyPath } = await createDevCertificates({
 *   dir: './var/tls',
 *   hosts: ['localhost', '127.0.0.1', '*.apps.localhost'],
 * });
 * https.createServer({ cert: readFileSync(certPath), key: readFileSync(keyPath) }, handler);
 */
export async function createDevCertificates(opts: {
  dir: string;
  hosts: string[];
  name?: string;
}): Promise<{ caCertPath: string; certPath: string; keyPath: string }> {
  const sans = hostSans(opts.hosts);
  const dir = resolve(opts.dir);
  const name = opts.name ?? 'site';
  const ca = await loadOrCreateCa(dir, 'dev-ca', {
    commonName: 'AppProxy Development CA',
    validityMs: DEV_CA_VALIDITY_MS,
  });
  const leaf = await signServerCertificate(ca, {
    sans,
    commonName: serverCommonName(sans, 'localhost'),
    validityMs: DEV_LEAF_VALIDITY_MS,
  });
  const certPath = join(dir, `${name}.pem`);
  const keyPath = join(dir, `${name}-key.pem`);
  await replaceFile(keyPath, leaf.keyPem, 0o600);
  await replaceFile(certPath, leaf.certPem, 0o644);
  return { caCertPath: join(dir, 'dev-ca.pem'), certPath, keyPath };
}

/**
 * Writes beside and renames over: a running server never reads half a file, and the mode
 * is that of the new file (writeFile keeps an existing file's mode, e.g. a key left at 0644).
 */
async function replaceFile(path: string, data: string, mode: number): Promise<void> {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, data, { mode, flag: 'wx' });
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
