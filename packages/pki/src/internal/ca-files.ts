import { X509Certificate } from 'node:crypto';
import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PkiError } from '../errors.js';
import { createCaCertificate, type Issuer } from './issue.js';
import { certToPem, importCaKey, x509 } from './x509.js';

/** A CA read from disk: what signs, plus its certificate as one canonical PEM. */
export interface LoadedCa extends Issuer {
  certPem: string;
}

/**
 * Loads the CA in `<dir>/<base>.pem` + `<dir>/<base>-key.pem`, creating both when neither
 * exists. Half a CA is an error, never a reason to make a new key: connectors trust the old one.
 */
export async function loadOrCreateCa(
  dir: string,
  base: string,
  create: { commonName: string; validityMs: number },
): Promise<LoadedCa> {
  const certPath = join(dir, `${base}.pem`);
  const keyPath = join(dir, `${base}-key.pem`);
  const [hasCert, hasKey] = await Promise.all([exists(certPath), exists(keyPath)]);
  if (hasCert !== hasKey) {
    const [present, missing] = hasCert ? [certPath, keyPath] : [keyPath, certPath];
    throw new PkiError(
      'APPPROXY_PKI_CA_CORRUPT',
      `${present} exists but ${missing} does not; restore it (or remove both to start a new CA)`,
    );
  }
  if (!hasCert) await createCaFiles(dir, certPath, keyPath, create);
  return loadCa(certPath, keyPath);
}

async function createCaFiles(
  dir: string,
  certPath: string,
  keyPath: string,
  create: { commonName: string; validityMs: number },
): Promise<void> {
  // 0700 applies to directories we create; an existing one keeps the owner's choice.
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const ca = await createCaCertificate(create.commonName, create.validityMs);
  try {
    // 'wx': never overwrite a CA key, even one a concurrent process has just written.
    await writeFile(keyPath, ca.keyPem, { mode: 0o600, flag: 'wx' });
    await writeFile(certPath, ca.certPem, { mode: 0o644, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return;
    throw new PkiError('APPPROXY_PKI_CA_CORRUPT', `cannot write a new CA into ${dir}`, {
      cause: err,
    });
  }
}

async function loadCa(certPath: string, keyPath: string): Promise<LoadedCa> {
  let certText: string;
  let keyText: string;
  try {
    [certText, keyText] = await Promise.all([
      readFile(certPath, 'utf8'),
      readFile(keyPath, 'utf8'),
    ]);
  } catch (err) {
    throw new PkiError('APPPROXY_PKI_CA_CORRUPT', `cannot read the CA: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return parseCa(certText, keyText, { cert: certPath, key: keyPath });
}

/**
 * A CA from its certificate and key PEMs (files or a store); `names` say where each came
 * from in error messages.
 */
export async function parseCa(
  certText: string,
  keyText: string,
  names: { cert: string; key: string },
): Promise<LoadedCa> {
  const corrupt = (message: string, cause?: unknown) =>
    new PkiError('APPPROXY_PKI_CA_CORRUPT', message, { cause });
  let nodeCert: X509Certificate;
  let cert: x509.X509Certificate;
  try {
    nodeCert = new X509Certificate(certText);
    cert = new x509.X509Certificate(nodeCert.raw);
  } catch (err) {
    throw corrupt(`${names.cert} is not a PEM certificate`, err);
  }
  // A leaf here would sign certificates that every TLS stack rejects; say so at startup.
  if (!nodeCert.ca) throw corrupt(`${names.cert} is not a CA certificate (CA:FALSE)`);
  let signer: Awaited<ReturnType<typeof importCaKey>>;
  try {
    signer = await importCaKey(keyText);
  } catch (err) {
    throw corrupt(`${names.key} is not a usable private key: ${(err as Error).message}`, err);
  }
  const certKey = nodeCert.publicKey.export({ type: 'spki', format: 'der' });
  if (!certKey.equals(signer.publicKeyDer)) {
    throw corrupt(`${names.key} is not the key of ${names.cert}`);
  }
  return { cert, signer, certPem: certToPem(cert) };
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}
