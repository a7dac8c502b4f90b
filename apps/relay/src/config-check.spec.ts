import { parseConfig } from '@appproxy/config';
import { createDevCertificates } from '@appproxy/pki';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkConfig, formatProblem } from './config-check.js';

const dir = mkdtempSync(join(tmpdir(), 'config-check-'));
let certs: { certPath: string; keyPath: string; caCertPath: string };
let otherKey: string;
let idp: Server;
let issuer = '';

beforeAll(async () => {
  certs = await createDevCertificates({ dir: join(dir, 'tls'), hosts: ['*.apps.example.com'] });
  otherKey = (await createDevCertificates({ dir: join(dir, 'tls2'), hosts: ['x.example.com'] }))
    .keyPath;
  idp = createServer((req, res) => {
    if (req.url === '/good/.well-known/openid-configuration')
      return void res.end(JSON.stringify({ issuer: `${issuer}/good` }));
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => idp.listen(0, '127.0.0.1', r));
  issuer = `http://127.0.0.1:${(idp.address() as AddressInfo).port}`;
});
afterAll(() => {
  idp?.close();
  rmSync(dir, { recursive: true, force: true });
});

function config(opts: { relay?: string; key?: string; app?: string; issuer?: string } = {}) {
  return parseConfig(
    `relay:
  listen: 127.0.0.1:0
  tunnelListen: 127.0.0.1:0
  stateDir: ${join(dir, 'state')}
  certificates: [{ cert: ${certs.certPath}, key: ${opts.key ?? certs.keyPath} }]
${opts.relay ?? ''}
${opts.issuer ? `identityProvider: { issuer: '${opts.issuer}', clientId: c }\n` : ''}apps:
  - name: A
    internalUrl: http://a.corp/
    externalUrl: https://${opts.app ?? 'a.apps.example.com'}/
    preAuthentication: passthrough
`,
    { baseDir: dir },
  );
}

describe('checkConfig', () => {
  it('finds nothing wrong in a good configuration', async () => {
    expect(await checkConfig(config(), { discovery: false })).toEqual([]);
  });

  it('a key that does not belong to the certificate is an error naming both', async () => {
    const problems = await checkConfig(config({ key: otherKey }), { discovery: false });
    expect(problems.map(formatProblem)).toEqual([
      `relay.certificates[0].key: does not match relay.certificates[0].cert (${otherKey})`,
    ]);
    expect(problems[0]!.severity).toBe('error');
  });

  it('unparseable certificate and key files are errors with the file', async () => {
    const junk = join(dir, 'junk.pem');
    writeFileSync(junk, 'not pem');
    const problems = await checkConfig(config({ key: junk }), { discovery: false });
    expect(problems.map(formatProblem)).toEqual([
      `relay.certificates[0].key: not a PEM private key (${junk})`,
    ]);
  });

  it('listeners on one port collide, a wildcard address with a specific one too', async () => {
    const problems = await checkConfig(
      config({
        relay: '  adminListen: 127.0.0.1:0\n  redirectHttp: 0.0.0.0:9443',
      }),
      { discovery: false },
    );
    expect(problems).toEqual([]);
    const c = config({ relay: '  adminListen: 127.0.0.2:9443\n  redirectHttp: 0.0.0.0:9443' });
    c.relay.tunnelListen = { host: '127.0.0.2', port: 9443 };
    expect((await checkConfig(c, { discovery: false })).map(formatProblem)).toEqual([
      'relay.adminListen: 127.0.0.2:9443 collides with relay.tunnelListen 127.0.0.2:9443',
      'relay.redirectHttp: 0.0.0.0:9443 collides with relay.tunnelListen 127.0.0.2:9443',
    ]);
    c.relay.adminListen = { host: '127.0.0.1', port: 9444 };
    c.relay.redirectHttp = undefined;
    expect(await checkConfig(c, { discovery: false })).toEqual([]);
  });

  it("relay.workers: the workers' tunnel ports (tunnelListen + i) collide too", async () => {
    const c = config({ relay: '  adminListen: 127.0.0.2:9446\n  redirectHttp: 0.0.0.0:9448' });
    c.relay.tunnelListen = { host: '127.0.0.2', port: 9443 };
    c.relay.workers = 3;
    expect(await checkConfig(c, { discovery: false })).toEqual([]);
    c.relay.workers = 6;
    expect((await checkConfig(c, { discovery: false })).map(formatProblem)).toEqual([
      "relay.workers: worker 3's tunnel port 127.0.0.2:9446 (tunnelListen + 3) collides with relay.adminListen 127.0.0.2:9446",
      "relay.workers: worker 5's tunnel port 127.0.0.2:9448 (tunnelListen + 5) collides with relay.redirectHttp 0.0.0.0:9448",
    ]);
    c.relay.tunnelListen = { host: '127.0.0.2', port: 65_533 };
    expect((await checkConfig(c, { discovery: false })).map(formatProblem)).toEqual([
      'relay.workers: 6 workers need tunnel ports 65533–65538: beyond 65535',
    ]);
  });

  it('an external host no certificate covers is a warning', async () => {
    const problems = await checkConfig(config({ app: 'a.other.example.com' }), {
      discovery: false,
    });
    expect(problems).toEqual([
      {
        severity: 'warning',
        path: 'apps[0].externalUrl',
        message: expect.stringContaining('covers a.other.example.com') as string,
      },
    ]);
    // One label under the wildcard only.
    expect(
      await checkConfig(config({ app: 'a.b.apps.example.com' }), { discovery: false }),
    ).toHaveLength(1);
    // relay.acme orders one for an exact name.
    const acme = `  redirectHttp: 127.0.0.1:0
  acme: { directoryUrl: 'https://acme.example/dir', email: ops@example.com }`;
    expect(
      await checkConfig(config({ app: 'a.other.example.com', relay: acme }), { discovery: false }),
    ).toEqual([]);
  });

  it('a portal host no certificate covers is a warning too', async () => {
    const c = config();
    c.portal = { externalUrl: 'https://myapps.other.example.com/', showPassthrough: false };
    expect(await checkConfig(c, { discovery: false })).toEqual([
      {
        severity: 'warning',
        path: 'portal.externalUrl',
        message: expect.stringContaining('covers myapps.other.example.com') as string,
      },
    ]);
  });

  it('a stateDir that cannot be created is an error', async () => {
    const file = join(dir, 'file');
    writeFileSync(file, '');
    const c = config();
    c.relay.stateDir = join(file, 'state');
    expect((await checkConfig(c, { discovery: false })).map(formatProblem)).toEqual([
      `relay.stateDir: ${file} exists and is not a directory`,
    ]);
  });

  it('identity provider discovery: reachable is fine, unreachable a warning', async () => {
    expect(await checkConfig(config({ issuer: `${issuer}/good` }))).toEqual([]);
    const missing = await checkConfig(config({ issuer: `${issuer}/missing` }));
    expect(missing.map(formatProblem)).toEqual([
      `identityProvider.issuer: discovery ${issuer}/missing/.well-known/openid-configuration answered HTTP 404`,
    ]);
    expect(missing[0]!.severity).toBe('warning');
    // --offline: not fetched at all.
    expect(
      await checkConfig(config({ issuer: `${issuer}/missing` }), { discovery: false }),
    ).toEqual([]);
  });
});
