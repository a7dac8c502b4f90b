import { createDevCertificates } from '@appproxy/pki';
import { startSampleApp } from '@appproxy/sample-app';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RELAY_BIN, Stack, request, runCli, systemTool, type StackOptions } from './harness.js';

/**
 * `relay.certificates` with several certificates through the real CLIs: PEM pairs and
 * PKCS#12 files side by side, each chosen by SNI (exact names before the stack's
 * `*.apps.localhost` wildcard), a passphrase from the environment, and a wrong one refused
 * by its path in `config check`, at `start` and at reload.
 */
type SampleApp = Awaited<ReturnType<typeof startSampleApp>>;
let sample: SampleApp;
const stacks: Stack[] = [];
const openssl = systemTool('openssl');

const ONE = 'one.certs.localhost'; // a PEM pair of its own
const TWO = 'two.certs.localhost'; // a pfx, passphrase from ${PFX_PASS}
const EXACT = 'exact.apps.localhost'; // a pfx beside the stack's *.apps.localhost
const OTHER = 'other.apps.localhost'; // the wildcard
const PASS = 'correct horse battery staple';

beforeAll(async () => {
  sample = await startSampleApp({ basePath: '/' });
});
afterAll(async () => {
  await Promise.all(stacks.map((s) => s.stop()));
  await sample?.close();
});

/** A certificate of the stack's dev CA for `host`, as PEM files and as a pfx. */
async function certificateFor(stack: Stack, host: string, name: string, passphrase = PASS) {
  const pem = await createDevCertificates({ dir: stack.tlsDir, hosts: [host], name });
  const pfx = join(stack.tlsDir, `${name}.pfx`);
  execFileSync(openssl!, [
    'pkcs12',
    '-export',
    '-in',
    pem.certPath,
    '-inkey',
    pem.keyPath,
    '-out',
    pfx,
    '-passout',
    `pass:${passphrase}`,
  ]);
  return {
    ...pem,
    pfx,
    fingerprint: new X509Certificate(readFileSync(pem.certPath)).fingerprint256,
  };
}

/** The fingerprint of the certificate the relay presents for `servername` (none: no SNI). */
async function served(stack: Stack, servername?: string): Promise<string> {
  const socket = connect({
    host: '127.0.0.1',
    port: stack.ports.public,
    rejectUnauthorized: false,
    ALPNProtocols: ['http/1.1'],
    ...(servername ? { servername } : {}),
  });
  await once(socket, 'secureConnect');
  const fp = socket.getPeerX509Certificate()!.fingerprint256;
  socket.destroy();
  return fp;
}

const app = (name: string, host: string) => ({
  name,
  internalUrl: `http://127.0.0.1:${sample.port}/`,
  externalUrl: `https://${host}:{port}/`,
});

async function newStack(opts: Partial<StackOptions> = {}): Promise<Stack> {
  const stack = new Stack({ apps: [], startConnector: false, ...opts });
  stacks.push(stack);
  await stack.allocatePorts();
  return stack;
}

describe.skipIf(!openssl)('relay.certificates: PEM pairs and PKCS#12 files, chosen by SNI', () => {
  it('two certificates on two hosts, an exact pfx beside the wildcard: each host gets its own', async () => {
    const stack = await newStack({ env: { PFX_PASS: PASS } });
    const one = await certificateFor(stack, ONE, 'one');
    const two = await certificateFor(stack, TWO, 'two');
    const exact = await certificateFor(stack, EXACT, 'exact');
    stack.configure({
      startConnector: true,
      apps: [app('One', ONE), app('Two', TWO), app('Exact', EXACT), app('Other', OTHER)],
      certificates: [
        { cert: one.certPath, key: one.keyPath },
        { pfx: two.pfx, passphrase: '${PFX_PASS}' },
        { pfx: exact.pfx, passphrase: '${PFX_PASS}' },
      ],
    });
    await stack.start();
    const wildcard = new X509Certificate(readFileSync(join(stack.tlsDir, 'site.pem')))
      .fingerprint256;

    expect(await served(stack, ONE)).toBe(one.fingerprint);
    expect(await served(stack, TWO)).toBe(two.fingerprint);
    // The exact name wins over *.apps.localhost, which still serves its other names.
    expect(await served(stack, EXACT)).toBe(exact.fingerprint);
    expect(await served(stack, OTHER)).toBe(wildcard);
    // No SNI: the first certificate listed (the stack's own).
    expect(await served(stack)).toBe(wildcard);
    // And requests verify against the CA and host name, end to end to the app.
    for (const host of [ONE, TWO, EXACT, OTHER]) {
      const res = await request(stack, host, '/echo', {
        headers: { host: `${host}:${stack.ports.public}` },
      });
      expect(res.status, host).toBe(200);
    }
  });

  it('a wrong passphrase is refused by its path: config check, start, reload', async () => {
    const stack = await newStack({ env: { PFX_PASS: 'not it' } });
    const two = await certificateFor(stack, TWO, 'two');
    stack.configure({
      apps: [app('Two', TWO)],
      certificates: [{ pfx: two.pfx, passphrase: '${PFX_PASS}' }],
    });
    await stack.writeConfig();
    const line = `relay.certificates[1].passphrase: does not open ${two.pfx} (wrong passphrase)`;

    const check = await runCli(
      RELAY_BIN,
      ['config', 'check', '--config', stack.configPath, '--offline'],
      { PFX_PASS: 'not it' },
    );
    expect(check.code).toBe(2);
    expect(check.stderr).toContain(`error: ${line}`);
    expect(check.stderr).not.toContain('not it');
    const json = await runCli(
      RELAY_BIN,
      ['config', 'check', '--config', stack.configPath, '--offline', '--json'],
      { PFX_PASS: 'not it' },
    );
    expect(JSON.parse(json.stdout)).toMatchObject({
      ok: false,
      problems: [{ severity: 'error', path: 'relay.certificates[1].passphrase' }],
    });

    const start = await runCli(RELAY_BIN, ['start', '--config', stack.configPath], {
      PFX_PASS: 'not it',
    });
    expect(start.code).toBe(2);
    expect(start.stderr).toContain(line);

    // Started with the right passphrase; a reload to a pfx with a wrong one is refused and
    // the running certificates keep serving.
    stack.configure({ env: { PFX_PASS: PASS } });
    await stack.start();
    expect(await served(stack, TWO)).toBe(two.fingerprint);
    const three = await certificateFor(stack, 'three.certs.localhost', 'three', 'other secret');
    stack.configure({
      apps: [app('Two', TWO), app('Three', 'three.certs.localhost')],
      certificates: [
        { pfx: two.pfx, passphrase: '${PFX_PASS}' },
        { pfx: three.pfx, passphrase: 'wrong' },
      ],
    });
    const refused = await stack.reload();
    expect(refused.msg).toBe(
      'configuration reload refused; the running configuration keeps serving',
    );
    expect(refused.errors).toEqual([
      `relay.certificates[2].passphrase: does not open ${three.pfx} (wrong passphrase)`,
    ]);
    expect(JSON.stringify(stack.relay!.lines)).not.toContain('"wrong"');
    expect(await served(stack, TWO)).toBe(two.fingerprint);

    // A file that is not PKCS#12 is refused at the pfx.
    writeFileSync(three.pfx.replace(/\.pfx$/, '-junk.pfx'), 'junk');
    stack.configure({
      certificates: [
        { pfx: two.pfx, passphrase: '${PFX_PASS}' },
        { pfx: three.pfx.replace(/\.pfx$/, '-junk.pfx'), passphrase: 'x' },
      ],
    });
    const junk = await stack.reload();
    expect((junk.errors as string[])[0]).toMatch(
      /^relay\.certificates\[2\]\.pfx: not a PKCS#12 file/,
    );

    // The right passphrase: the new host gets its certificate on the next handshake.
    stack.configure({
      certificates: [
        { pfx: two.pfx, passphrase: '${PFX_PASS}' },
        { pfx: three.pfx, passphrase: 'other secret' },
      ],
    });
    expect((await stack.reload()).msg).toBe('configuration reloaded');
    expect(await served(stack, 'three.certs.localhost')).toBe(three.fingerprint);
    expect(await served(stack, TWO)).toBe(two.fingerprint);
  });
});
