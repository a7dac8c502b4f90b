/**
 * Pebble (Debian `pebble`, Let's Encrypt's ACME test server) and `pebble-challtestsrv`'s DNS,
 * started on free ports for the ACME e2e tests; each stops when its `cleanups` run.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { freePort, systemTool } from './harness.js';

export const PEBBLE = systemTool('pebble');
export const CHALLTESTSRV = systemTool('pebble-challtestsrv', 'pebble');

/** What stops the processes and removes the files started here (run them in reverse). */
export type Cleanups = Array<() => Promise<unknown> | unknown>;

export interface Pebble {
  directoryUrl: string;
  caBundle: string;
  /** Pebble's root (from its management port): what ACME certificates chain to. */
  root(): Promise<string>;
}

/** Kills `child` when the tests end; rejects if it exits before `ready` is printed. */
function spawnLogged(
  cleanups: Cleanups,
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  ready: RegExp,
) {
  const child: ChildProcess = spawn(file, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  cleanups.push(() => child.kill('SIGKILL'));
  let out = '';
  return new Promise<ChildProcess>((resolve, reject) => {
    const onData = (c: Buffer) => {
      out += c.toString();
      if (ready.test(out)) resolve(child);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${file} exited (${code}): ${out}`)));
  });
}

/** challtestsrv's DNS on a free port: 127.0.0.1 for every name but `unreachable`. */
export async function startDns(cleanups: Cleanups, unreachable: string): Promise<number> {
  const dns = await freePort();
  const management = await freePort();
  await spawnLogged(
    cleanups,
    CHALLTESTSRV!,
    [
      '-dns01',
      `127.0.0.1:${dns}`,
      '-management',
      `127.0.0.1:${management}`,
      '-http01',
      '',
      '-https01',
      '',
      '-tlsalpn01',
      '',
      '-defaultIPv4',
      '127.0.0.1',
      '-defaultIPv6',
      '',
    ],
    {},
    /Starting management server/,
  );
  await waitForHttp(`http://127.0.0.1:${management}/add-a`, {
    host: `${unreachable}.`,
    addresses: ['127.0.0.2'],
  });
  return dns;
}

async function waitForHttp(url: string, body: unknown): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      const res = await fetch(url, { method: 'POST', body: JSON.stringify(body) });
      if (res.ok) return;
      throw new Error(`${url}: ${res.status}`);
    } catch (err) {
      if (i > 100) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Pebble validating against the relay's ports; certificates live `validitySeconds`. */
export async function startPebble(
  cleanups: Cleanups,
  opts: {
    httpPort: number;
    tlsPort: number;
    dnsPort: number;
    validitySeconds: number;
  },
): Promise<Pebble> {
  const dir = mkdtempSync(join(tmpdir(), 'appproxy-pebble-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '2',
      '-subj',
      '/CN=pebble',
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
    ],
    { stdio: 'pipe' },
  );
  const [port, management] = [await freePort(), await freePort()];
  writeFileSync(
    join(dir, 'pebble.json'),
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${port}`,
        managementListenAddress: `127.0.0.1:${management}`,
        certificate: cert,
        privateKey: key,
        httpPort: opts.httpPort,
        tlsPort: opts.tlsPort,
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
        certificateValidityPeriod: opts.validitySeconds,
      },
    }),
  );
  await spawnLogged(
    cleanups,
    PEBBLE!,
    ['-config', join(dir, 'pebble.json'), '-dnsserver', `127.0.0.1:${opts.dnsPort}`],
    { PEBBLE_VA_NOSLEEP: '1', PEBBLE_VA_ALWAYS_VALID: '', PEBBLE_AUTHZREUSE: '0' },
    /Listening on/,
  );
  const caBundle = readFileSync(cert, 'utf8');
  return {
    directoryUrl: `https://127.0.0.1:${port}/dir`,
    caBundle: cert,
    root: () =>
      new Promise((resolve, reject) => {
        httpsRequest(`https://127.0.0.1:${management}/roots/0`, { ca: caBundle }, (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (c: string) => (body += c));
          res.on('end', () => resolve(body));
        })
          .on('error', reject)
          .end();
      }),
  };
}

/** The certificate the relay's public listener presents for `servername`, verified by `ca`. */
export function servedCertificate(
  port: number,
  servername: string,
  ca: string,
): Promise<{ authorized: boolean; error?: string; cert: X509Certificate }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername, ca, rejectUnauthorized: false });
    socket.once('secureConnect', () => {
      const cert = new X509Certificate(socket.getPeerCertificate().raw);
      resolve({
        authorized: socket.authorized,
        ...(socket.authorizationError && { error: String(socket.authorizationError) }),
        cert,
      });
      socket.end();
    });
    socket.once('error', reject);
  });
}
