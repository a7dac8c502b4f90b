import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer, get as httpsGet } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, createServer as createTlsServer } from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ConnectorCA,
  PkiError,
  createDevCertificates,
  createKeyAndCsr,
  describeCertificate,
} from './index.js';

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'pki-spec-'));
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('ConnectorCA', () => {
  it('issues a client certificate from a CSR: CN, SAN URI, EKU, chain, validity', async () => {
    const ca = await ConnectorCA.loadOrCreate(tmp());
    const { csrPem } = await createKeyAndCsr({ commonName: 'ignored-by-ca' });
    const issued = await ca.issueFromCsr(csrPem, { commonName: 'conn-42', validityMs: 3600_000 });
    const cert = new X509Certificate(issued.certPem);
    const caCert = new X509Certificate(ca.certPem);
    expect(cert.checkIssued(caCert)).toBe(true);
    expect(cert.verify(caCert.publicKey)).toBe(true);
    expect(cert.subject).toBe('CN=conn-42');
    expect(cert.subjectAltName).toContain('urn:appproxy:connector:conn-42');
    expect(cert.keyUsage).toContain('1.3.6.1.5.5.7.3.2');
    expect(cert.ca).toBe(false);
    expect(caCert.ca).toBe(true);
    expect(issued.notAfter.getTime() - Date.now()).toBeLessThanOrEqual(3600_000 + 1000);
    expect(issued.commonName).toBe('conn-42');
    expect(describeCertificate(issued.certPem).fingerprint).toBe(issued.fingerprint);
  });

  it('refuses a tampered or garbage CSR with APPPROXY_PKI_CSR_INVALID', async () => {
    const ca = await ConnectorCA.loadOrCreate(tmp());
    const { csrPem: a } = await createKeyAndCsr({ commonName: 'a' });
    const { csrPem: b } = await createKeyAndCsr({ commonName: 'b' });
    // Splice: a's body with b's signature → signature does not verify.
    const body = (pem: string) => Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    const da = body(a);
    const db = body(b);
    const tampered = Buffer.concat([da.subarray(0, da.length - 72), db.subarray(db.length - 72)]);
    const tamperedPem = `-----BEGIN CERTIFICATE REQUEST-----\n${tampered.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    await expect(ca.issueFromCsr(tamperedPem, { commonName: 'x' })).rejects.toMatchObject({
      code: 'APPPROXY_PKI_CSR_INVALID',
    });
    await expect(ca.issueFromCsr('garbage', { commonName: 'x' })).rejects.toBeInstanceOf(PkiError);
  });

  it('verify: ok, untrusted, expired, garbage', async () => {
    const ca = await ConnectorCA.loadOrCreate(tmp());
    const other = await ConnectorCA.loadOrCreate(tmp());
    const { csrPem } = await createKeyAndCsr({ commonName: 'c' });
    const good = await ca.issueFromCsr(csrPem, { commonName: 'c' });
    expect(ca.verify(good.certPem)).toMatchObject({
      ok: true,
      commonName: 'c',
      serialNumber: good.serialNumber,
    });
    const foreign = await other.issueFromCsr(csrPem, { commonName: 'c' });
    expect(ca.verify(foreign.certPem)).toMatchObject({
      ok: false,
      code: 'APPPROXY_PKI_CERT_UNTRUSTED',
    });
    const old = await ca.issueFromCsr(csrPem, {
      commonName: 'c',
      now: new Date(Date.now() - 10 * 86400_000),
      validityMs: 86400_000,
    });
    expect(ca.verify(old.certPem)).toMatchObject({ ok: false, code: 'APPPROXY_PKI_CERT_EXPIRED' });
    expect(ca.verify('nope')).toMatchObject({ ok: false, code: 'APPPROXY_PKI_CERT_INVALID' });
  });

  it('loadOrCreate reuses the CA, keeps the key 0600, and refuses a corrupt key', async () => {
    const dir = tmp();
    const a = await ConnectorCA.loadOrCreate(dir);
    const b = await ConnectorCA.loadOrCreate(dir);
    expect(b.fingerprint).toBe(a.fingerprint);
    expect(a.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(statSync(join(dir, 'connector-ca-key.pem')).mode & 0o777).toBe(0o600);
    writeFileSync(
      join(dir, 'connector-ca-key.pem'),
      '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n',
    );
    await expect(ConnectorCA.loadOrCreate(dir)).rejects.toMatchObject({
      code: 'APPPROXY_PKI_CA_CORRUPT',
    });
  });

  it('a real mutual-TLS handshake accepts its own connectors and refuses others', async () => {
    const ca = await ConnectorCA.loadOrCreate(tmp());
    const other = await ConnectorCA.loadOrCreate(tmp());
    const server = await ca.issueServerCertificate({ hosts: ['127.0.0.1', 'localhost'] });
    const mk = async (issuer: ConnectorCA) => {
      const { keyPem, csrPem } = await createKeyAndCsr({ commonName: 'c' });
      return {
        key: keyPem,
        cert: (await issuer.issueFromCsr(csrPem, { commonName: 'c' })).certPem,
      };
    };
    const tls = createTlsServer(
      {
        cert: server.certPem,
        key: server.keyPem,
        ca: ca.certPem,
        requestCert: true,
        rejectUnauthorized: true,
        minVersion: 'TLSv1.2',
      },
      (s) => s.end('hi'),
    );
    tls.on('tlsClientError', () => {});
    await new Promise<void>((r) => tls.listen(0, '127.0.0.1', r));
    const port = (tls.address() as AddressInfo).port;
    const attempt = (creds: { key?: string; cert?: string }) =>
      new Promise<string>((resolve) => {
        const s = tlsConnect({ host: '127.0.0.1', port, ca: ca.certPem, ...creds });
        let data = '';
        s.on('data', (c: Buffer) => (data += c.toString()));
        s.on('error', () => resolve('refused'));
        s.on('close', () => resolve(data || 'refused'));
      });
    try {
      expect(await attempt(await mk(ca))).toBe('hi');
      expect(await attempt(await mk(other))).toBe('refused');
      expect(await attempt({})).toBe('refused');
    } finally {
      await new Promise<void>((r) => tls.close(() => r()));
    }
  });
});

describe('createDevCertificates', () => {
  it('makes a leaf for names and wildcards that a client trusting only the dev CA accepts', async () => {
    const dir = tmp();
    const first = await createDevCertificates({
      dir,
      hosts: ['localhost', '127.0.0.1', '*.apps.localhost'],
    });
    const again = await createDevCertificates({ dir, hosts: ['localhost'], name: 'other' });
    expect(again.caCertPath).toBe(first.caCertPath);
    expect(statSync(first.keyPath).mode & 0o777).toBe(0o600);
    const { readFileSync } = await import('node:fs');
    const server = createHttpsServer(
      { cert: readFileSync(first.certPath), key: readFileSync(first.keyPath) },
      (_q, res) => res.end('ok'),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      const res = await new Promise<string>((resolve, reject) => {
        const req = httpsGet(
          {
            host: '127.0.0.1',
            port,
            servername: 'expenses.apps.localhost',
            ca: readFileSync(first.caCertPath),
            headers: { host: 'expenses.apps.localhost' },
          },
          (r) => {
            let t = '';
            r.on('data', (c: Buffer) => (t += c.toString()));
            r.on('end', () => resolve(t));
          },
        );
        req.on('error', reject);
      });
      expect(res).toBe('ok');
      const wrong = httpsGet({
        host: '127.0.0.1',
        port,
        servername: 'evil.example.com',
        ca: readFileSync(first.caCertPath),
      });
      const [err] = await once(wrong, 'error');
      expect((err as NodeJS.ErrnoException).code).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
