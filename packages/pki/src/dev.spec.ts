import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, get, type RequestOptions } from 'node:https';
import { isAbsolute, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { useCleanup } from './__fixtures__/cleanup.js';
import { certificateFingerprint, createDevCertificates } from './index.js';

const { tempDir, listen } = useCleanup();
const HOSTS = ['localhost', '127.0.0.1', '*.apps.localhost'];

/** GET / with a client that trusts only `ca`; resolves the body or rejects with the TLS error. */
function fetchTrusting(ca: Buffer, port: number, options: RequestOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, ca: [ca], agent: false, ...options }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
  });
}

describe('createDevCertificates', () => {
  it('makes a leaf that a client trusting only dev-ca.pem accepts, for names, wildcards and IPs', async () => {
    const dir = await tempDir();
    const paths = await createDevCertificates({ dir, hosts: HOSTS });
    expect(paths).toEqual({
      caCertPath: join(dir, 'dev-ca.pem'),
      certPath: join(dir, 'site.pem'),
      keyPath: join(dir, 'site-key.pem'),
    });
    const server = createServer(
      { cert: readFileSync(paths.certPath), key: readFileSync(paths.keyPath) },
      (req, res) => res.end(`hello ${req.headers.host}`),
    );
    const port = await listen(server);
    const ca = readFileSync(paths.caCertPath);

    await expect(
      fetchTrusting(ca, port, {
        servername: 'expenses.apps.localhost',
        headers: { host: 'expenses.apps.localhost' },
      }),
    ).resolves.toBe('hello expenses.apps.localhost');
    await expect(fetchTrusting(ca, port)).resolves.toBe(`hello 127.0.0.1:${port}`);
    await expect(fetchTrusting(ca, port, { servername: 'localhost' })).resolves.toMatch(/^hello/);

    for (const servername of ['evil.example.com', 'a.b.apps.localhost', 'apps.localhost']) {
      await expect(fetchTrusting(ca, port, { servername })).rejects.toMatchObject({
        code: 'ERR_TLS_CERT_ALTNAME_INVALID',
      });
    }
    // Only the dev CA vouches for it: a client with the default roots refuses.
    const untrusted = get({ host: '127.0.0.1', port, agent: false });
    const [error] = (await once(untrusted, 'error')) as [NodeJS.ErrnoException];
    expect(error.code).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  });

  it('reuses the dev CA and writes keys 0600', async () => {
    const dir = await tempDir();
    const first = await createDevCertificates({ dir, hosts: ['localhost'] });
    const caPem = readFileSync(first.caCertPath, 'utf8');
    const second = await createDevCertificates({ dir, hosts: ['127.0.0.1'], name: 'api' });
    expect(certificateFingerprint(readFileSync(second.caCertPath, 'utf8'))).toBe(
      certificateFingerprint(caPem),
    );
    expect(second.certPath).toBe(join(dir, 'api.pem'));
    const leaf = new X509Certificate(readFileSync(second.certPath));
    expect(leaf.checkIssued(new X509Certificate(caPem))).toBe(true);
    expect(leaf.checkIP('127.0.0.1')).toBe('127.0.0.1');
    for (const key of ['dev-ca-key.pem', 'site-key.pem', 'api-key.pem']) {
      expect(statSync(join(dir, key)).mode & 0o777).toBe(0o600);
    }
    const ca = new X509Certificate(caPem);
    expect(ca.ca).toBe(true);
    const years = (ca.validToDate.getTime() - Date.now()) / (365 * 86400_000);
    expect(years).toBeGreaterThan(9.9);
    expect(years).toBeLessThanOrEqual(10);
    const days = (leaf.validToDate.getTime() - Date.now()) / 86400_000;
    expect(days).toBeGreaterThan(364.9);
    expect(days).toBeLessThanOrEqual(365);
  });

  it('replaces an earlier leaf, tightening a key file left world-readable', async () => {
    const dir = await tempDir();
    const first = await createDevCertificates({ dir, hosts: ['localhost'] });
    const oldCert = readFileSync(first.certPath, 'utf8');
    chmodSync(first.keyPath, 0o644);
    writeFileSync(first.keyPath, 'stale');
    const second = await createDevCertificates({ dir, hosts: ['localhost', 'dev.test'] });
    expect(readFileSync(second.keyPath, 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(statSync(second.keyPath).mode & 0o777).toBe(0o600);
    expect(readFileSync(second.certPath, 'utf8')).not.toBe(oldCert);
    expect(new X509Certificate(readFileSync(second.certPath)).checkHost('dev.test')).toBe(
      'dev.test',
    );
  });

  it('returns absolute paths for a relative dir', async () => {
    const dir = await tempDir();
    const paths = await createDevCertificates({ dir: relative(process.cwd(), dir), hosts: HOSTS });
    expect(Object.values(paths).every(isAbsolute)).toBe(true);
    expect(paths.caCertPath).toBe(join(dir, 'dev-ca.pem'));
  });

  it('refuses bad hosts before touching the disk', async () => {
    const dir = join(await tempDir(), 'tls');
    for (const hosts of [[], ['localhost', 'not a host'], ['*']]) {
      await expect(createDevCertificates({ dir, hosts })).rejects.toMatchObject({
        name: 'PkiError',
        code: 'APPPROXY_PKI_NAME_INVALID',
      });
    }
    expect(existsSync(dir)).toBe(false);
  });
});
