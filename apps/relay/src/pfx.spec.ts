import { parseConfig } from '@appproxy/config';
import { createDevCertificates } from '@appproxy/pki';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, type Server } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkConfig, formatProblem } from './config-check.js';
import { PfxError, openPfx } from './pfx.js';
import { SniCertificates } from './tls-contexts.js';

const dir = mkdtempSync(join(tmpdir(), 'pfx-'));
let wildcard: { certPath: string; keyPath: string };
let exactPfx: string;
let exactCert: string;
const servers: Server[] = [];

/** PKCS#12 from a PEM pair, as Windows and IIS export them (openssl, AES-256). */
function toPfx(cert: string, key: string, out: string, passphrase: string): string {
  execFileSync('openssl', [
    'pkcs12',
    '-export',
    '-in',
    cert,
    '-inkey',
    key,
    '-out',
    out,
    '-passout',
    `pass:${passphrase}`,
  ]);
  return out;
}

beforeAll(async () => {
  wildcard = await createDevCertificates({
    dir: join(dir, 'tls'),
    hosts: ['*.apps.example.com'],
    name: 'wild',
  });
  const exact = await createDevCertificates({
    dir: join(dir, 'tls'),
    hosts: ['exact.apps.example.com'],
    name: 'exact',
  });
  exactCert = exact.certPath;
  exactPfx = toPfx(exact.certPath, exact.keyPath, join(dir, 'exact.pfx'), 'open sesame');
});
afterAll(() => {
  for (const s of servers) s.close();
  rmSync(dir, { recursive: true, force: true });
});

const fingerprint = (pem: string) => new X509Certificate(readFileSync(pem)).fingerprint256;

/** The certificate a TLS client sees for `servername` from a server using `sni`. */
async function served(sni: SniCertificates, servername?: string): Promise<string> {
  const server = createServer({ ...sni.defaults, SNICallback: sni.select }, (s) => s.end());
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    const socket = connect(
      { host: '127.0.0.1', port, rejectUnauthorized: false, ...(servername && { servername }) },
      () => {
        resolve(socket.getPeerX509Certificate()!.fingerprint256);
        socket.end();
      },
    );
    socket.on('error', reject);
  });
}

describe('openPfx', () => {
  it('opens a PKCS#12 file with its passphrase and finds the leaf', () => {
    const opened = openPfx({ pfx: exactPfx, passphrase: 'open sesame' });
    expect(opened.certificate.fingerprint256).toBe(fingerprint(exactCert));
    expect(opened.certificate.subjectAltName).toBe('DNS:exact.apps.example.com');
  });

  it('blames the passphrase when it is wrong, the file when it is missing or not PKCS#12', () => {
    const failure = (source: { pfx: string; passphrase?: string }) => {
      try {
        openPfx(source);
      } catch (err) {
        if (err instanceof PfxError) return `${err.field}: ${err.message}`;
        throw err;
      }
      throw new Error('expected a PfxError');
    };
    expect(failure({ pfx: exactPfx, passphrase: 'wrong' })).toBe(
      `passphrase: does not open ${exactPfx} (wrong passphrase)`,
    );
    expect(failure({ pfx: exactPfx })).toBe(
      `pfx: is protected by a passphrase; set passphrase (${exactPfx})`,
    );
    expect(failure({ pfx: join(dir, 'nope.pfx') })).toBe(
      `pfx: no such file (${join(dir, 'nope.pfx')})`,
    );
    expect(failure({ pfx: exactCert, passphrase: 'x' })).toMatch(
      /^pfx: not a PKCS#12 file with a certificate and key: .+ \(.+exact\.pem\)$/,
    );
  });
});

describe('SniCertificates with a pfx beside a PEM pair', () => {
  it('serves the exact name before the wildcard, the wildcard for other names, the first without SNI', async () => {
    const sni = new SniCertificates([
      { cert: wildcard.certPath, key: wildcard.keyPath },
      { pfx: exactPfx, passphrase: 'open sesame' },
    ]);
    expect(await served(sni, 'exact.apps.example.com')).toBe(fingerprint(exactCert));
    expect(await served(sni, 'other.apps.example.com')).toBe(fingerprint(wildcard.certPath));
    // One label only: a.b.apps.example.com is not under *.apps.example.com.
    expect(await served(sni, 'a.exact.apps.example.com')).toBe(fingerprint(wildcard.certPath));
    expect(await served(sni)).toBe(fingerprint(wildcard.certPath));
    // The pfx first: it is the default.
    const pfxFirst = new SniCertificates([
      { pfx: exactPfx, passphrase: 'open sesame' },
      { cert: wildcard.certPath, key: wildcard.keyPath },
    ]);
    expect(await served(pfxFirst)).toBe(fingerprint(exactCert));
    expect(await served(pfxFirst, 'x.apps.example.com')).toBe(fingerprint(wildcard.certPath));
  });
});

describe('checkConfig with a pfx', () => {
  const config = (entry: string) =>
    parseConfig(
      `relay:
  listen: 127.0.0.1:0
  tunnelListen: 127.0.0.1:0
  stateDir: ${join(dir, 'state')}
  certificates:
    - ${entry}
apps:
  - name: A
    internalUrl: http://a.corp/
    externalUrl: https://exact.apps.example.com/
    preAuthentication: passthrough
`,
      { baseDir: dir, env: { PFX_PASS: 'open sesame', BAD: 'nope' } },
    );

  it('a good pfx (passphrase from the environment) covers its host', async () => {
    expect(
      await checkConfig(config('{ pfx: exact.pfx, passphrase: "${PFX_PASS}" }'), {
        discovery: false,
      }),
    ).toEqual([]);
  });

  it('a wrong passphrase is an error at the passphrase, never showing it', async () => {
    const problems = await checkConfig(config('{ pfx: exact.pfx, passphrase: "${BAD}" }'), {
      discovery: false,
    });
    expect(problems.map(formatProblem)).toEqual([
      `relay.certificates[0].passphrase: does not open ${exactPfx} (wrong passphrase)`,
    ]);
    expect(problems[0]!.severity).toBe('error');
  });

  it('a file that is not PKCS#12 is an error at the pfx', async () => {
    const junk = join(dir, 'junk.pfx');
    writeFileSync(junk, 'not pkcs12');
    const problems = await checkConfig(config('{ pfx: junk.pfx, passphrase: x }'), {
      discovery: false,
    });
    expect(problems.map((p) => p.path)).toEqual(['relay.certificates[0].pfx']);
    expect(problems[0]!.message).toContain(`(${junk})`);
  });
});
