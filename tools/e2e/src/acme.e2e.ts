/**
 * `relay.acme` against Pebble (Debian `pebble`, Let's Encrypt's ACME test server), started
 * here on free ports with real validation (PEBBLE_VA_ALWAYS_VALID unset). Pebble resolves
 * every name through `pebble-challtestsrv`'s DNS (127.0.0.1 by default, 127.0.0.2 — where
 * nothing listens — for the host it must fail) and connects to the relay's redirectHttp
 * (HTTP-01) or listen (TLS-ALPN-01) port.
 */
import { startSampleApp } from '@appproxy/sample-app';
import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Stack, freePort, request } from './harness.js';
import {
  CHALLTESTSRV,
  PEBBLE,
  servedCertificate,
  startDns,
  startPebble,
  type Cleanups,
} from './pebble.js';

const cleanups: Cleanups = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

const ONE = 'one.acme.test';
const TWO = 'two.acme.test';
const BAD = 'bad.acme.test';
const THREE = 'three.acme.test';
const COVERED = 'covered.apps.localhost';

async function acmeStack(challenge: 'http-01' | 'tls-alpn-01', validitySeconds: number) {
  const sample = await startSampleApp({ basePath: '/' });
  cleanups.push(() => sample.close());
  const app = (name: string, host: string) => ({
    name,
    internalUrl: `http://127.0.0.1:${sample.port}/`,
    externalUrl: `https://${host}/`,
  });
  const apps = [app('One', ONE), app('Two', TWO), app('Bad', BAD), app('Covered', COVERED)];
  const stack = new Stack({ apps });
  cleanups.push(() => stack.stop());
  const ports = await stack.allocatePorts();
  const redirect = await freePort();
  const dnsPort = await startDns(cleanups, BAD);
  const pebble = await startPebble(cleanups, {
    httpPort: redirect,
    tlsPort: ports.public,
    dnsPort,
    validitySeconds,
  });
  stack.configure({
    relayExtra: `  redirectHttp: 127.0.0.1:${redirect}
  acme:
    directoryUrl: ${pebble.directoryUrl}
    email: ops@example.com
    challenge: ${challenge}
    caBundle: ${pebble.caBundle}
`,
  });
  await stack.start();
  return { stack, pebble, apps, app };
}

const issued =
  (host: string, msg = 'acme certificate issued') =>
  (l: Record<string, unknown>) =>
    l.msg === msg && l.host === host;

describe.skipIf(!PEBBLE || !CHALLTESTSRV)('relay.acme against Pebble', () => {
  it('http-01: issues for two hosts, renews at two thirds, logs a failed challenge', async () => {
    const { stack, pebble } = await acmeStack('http-01', 30);
    const relay = stack.relay!;
    await relay.waitFor(issued(ONE), 30_000, `${ONE} issued`);
    await relay.waitFor(issued(TWO), 30_000, `${TWO} issued`);
    const failed = await relay.waitFor(
      (l) => l.msg === 'acme certificate failed' && l.host === BAD,
      30_000,
      `${BAD} failed`,
    );
    // Pebble's reason: it could not connect to 127.0.0.2 (nothing listens there).
    expect(String(failed.reason)).toMatch(/127\.0\.0\.2|connection refused/i);
    expect(failed.retryInMs).toBeGreaterThan(0);
    // The host the stack's own certificate covers is never ordered.
    expect(relay.count((l) => String(l.msg).startsWith('acme') && l.host === COVERED)).toBe(0);

    const root = await pebble.root();
    const first = new Map<string, string>();
    for (const host of [ONE, TWO]) {
      const served = await servedCertificate(stack.ports.public, host, root);
      expect(served).toMatchObject({ authorized: true });
      expect(served.cert.checkHost(host)).toBe(host);
      first.set(host, served.cert.serialNumber);
      // Through the relay to the app, trusting only Pebble's root.
      const res = await request(stack, host, '/echo', { extra: { ca: root } });
      expect(res.status).toBe(200);
    }
    // The failing host gets the default certificate; the other hosts go on serving.
    const bad = await servedCertificate(stack.ports.public, BAD, root);
    expect(bad.authorized).toBe(false);

    // Kept in stateDir: account key and certificates, 0600.
    const dir = join(stack.dir, 'var/relay/acme');
    for (const file of ['account-key.pem', `${ONE}.pem`, `${ONE}-key.pem`, `${TWO}.pem`])
      expect(statSync(join(dir, file)).mode & 0o777).toBe(0o600);

    // 30 s certificates are renewed after 20 s, and the new one is served without restart.
    const renewed = await relay.waitFor(
      issued(ONE, 'acme certificate renewed'),
      40_000,
      `${ONE} renewed`,
    );
    const was = new X509Certificate(readFileSync(join(dir, `${ONE}.pem`)));
    expect(renewed.serial).toBe(was.serialNumber);
    const now = await servedCertificate(stack.ports.public, ONE, root);
    expect(now.authorized).toBe(true);
    expect(now.cert.serialNumber).not.toBe(first.get(ONE));
    expect(now.cert.serialNumber).toBe(was.serialNumber);
    expect((await request(stack, ONE, '/echo', { extra: { ca: root } })).status).toBe(200);
  }, 120_000);

  it('tls-alpn-01: answered on the public listener (acme-tls/1)', async () => {
    const { stack, pebble, apps, app } = await acmeStack('tls-alpn-01', 3600);
    await stack.relay!.waitFor(issued(ONE), 30_000, `${ONE} issued`);
    const failed = await stack.relay!.waitFor(
      (l) => l.msg === 'acme certificate failed' && l.host === BAD,
      30_000,
      `${BAD} failed`,
    );
    expect(String(failed.reason)).toMatch(/127\.0\.0\.2|connection refused/i);
    const root = await pebble.root();
    const served = await servedCertificate(stack.ports.public, ONE, root);
    expect(served).toMatchObject({ authorized: true });
    expect((await request(stack, ONE, '/echo', { extra: { ca: root } })).status).toBe(200);

    // A reload that adds an app: its host is ordered and served, no restart.
    stack.configure({ apps: [...apps, app('Three', THREE)] });
    expect(await stack.reload()).toMatchObject({ msg: 'configuration reloaded' });
    await stack.relay!.waitFor(issued(THREE), 30_000, `${THREE} issued`);
    expect(await servedCertificate(stack.ports.public, THREE, root)).toMatchObject({
      authorized: true,
    });
    expect(stack.relay!.count(issued(ONE))).toBe(1);

    // A restart serves the certificates kept in stateDir without ordering again.
    expect(await stack.relay!.stop()).toBe(0);
    await stack.startRelay();
    await stack.relay!.waitFor(
      (l) => l.msg === 'acme certificate loaded' && l.host === THREE,
      10_000,
      `${THREE} loaded`,
    );
    expect((await servedCertificate(stack.ports.public, ONE, root)).cert.serialNumber).toBe(
      served.cert.serialNumber,
    );
    expect(
      stack.relay!.count((l) => l.msg === 'acme certificate requested' && l.host !== BAD),
    ).toBe(0);
  }, 90_000);
});
