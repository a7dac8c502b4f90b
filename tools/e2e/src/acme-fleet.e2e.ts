/**
 * `relay.acme` with two relay instances (the real CLI, two processes) sharing a real
 * PostgreSQL, against Pebble with real validation: one instance orders, the CA's validation
 * is sent to the OTHER one (Pebble's HTTP-01 / TLS-ALPN-01 ports are instance B's), which
 * answers from the store, and both serve the certificate issued once.
 */
import { startSampleApp } from '@appproxy/sample-app';
import { cpSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { Stack, freePort } from './harness.js';
import {
  CHALLTESTSRV,
  PEBBLE,
  servedCertificate,
  startDns,
  startPebble,
  type Cleanups,
} from './pebble.js';
import { postgresAvailable, startPostgres } from './postgres.js';

const HOST = 'fleet.acme.test';
const STORE_KEY = 'e2e-acme-fleet-store-key-0123456789abcdef';
const runnable = Boolean(PEBBLE && CHALLTESTSRV) && postgresAvailable();

const cleanups: Cleanups = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

const ordered = (l: Record<string, unknown>) =>
  l.msg === 'acme certificate requested' && l.host === HOST;

async function fleet(challenge: 'http-01' | 'tls-alpn-01') {
  const sample = await startSampleApp({ basePath: '/' });
  cleanups.push(() => sample.close());
  const pg = await startPostgres();
  cleanups.push(() => pg.stop());
  const env = {
    APPPROXY_E2E_STORE_URL: await pg.createDatabase('acme'),
    APPPROXY_E2E_STORE_KEY: STORE_KEY,
  };
  const apps = [
    {
      name: 'Fleet',
      internalUrl: `http://127.0.0.1:${sample.port}/`,
      externalUrl: `https://${HOST}/`,
    },
  ];
  const relays = {} as Record<'a' | 'b', Stack>;
  const redirect = { a: await freePort(), b: await freePort() };
  const base = (n: 'a' | 'b') =>
    [
      `  store: { postgres: { url: '\${APPPROXY_E2E_STORE_URL}' } }`,
      '  storeKey: ${APPPROXY_E2E_STORE_KEY}',
      `  instance: { name: ${n} }`,
      `  redirectHttp: 127.0.0.1:${redirect[n]}`,
    ].join('\n');
  for (const n of ['a', 'b'] as const) {
    const stack = new Stack({ startConnector: false, env, apps, relayExtra: base(n) });
    await stack.writeConfig();
    relays[n] = stack;
    cleanups.push(() => stack.stop());
  }
  cpSync(relays.a.tlsDir, relays.b.tlsDir, { recursive: true });
  // Pebble validates at instance B only: A, the one that orders ('a' sorts first), is never asked.
  const dnsPort = await startDns(cleanups, 'unreachable.acme.test');
  const pebble = await startPebble(cleanups, {
    httpPort: redirect.b,
    tlsPort: relays.b.ports.public,
    dnsPort,
    validitySeconds: 3600,
  });
  await relays.a.startRelay();
  await relays.b.startRelay();
  // Both know each other (heartbeats every second) before either is told of relay.acme; B
  // first, so it answers when A's order starts.
  for (const n of ['a', 'b'] as const)
    await relays[n].relay!.waitFor(
      (l) =>
        l.msg === 'relay instances changed' &&
        JSON.stringify(l.instances) === JSON.stringify(n === 'a' ? ['a', 'b'] : ['b', 'a']),
      10_000,
      `${n} sees both instances`,
    );
  for (const n of ['b', 'a'] as const) {
    relays[n].configure({
      relayExtra: `${base(n)}
  acme:
    directoryUrl: ${pebble.directoryUrl}
    email: ops@example.com
    challenge: ${challenge}
    caBundle: ${pebble.caBundle}
`,
    });
    expect(await relays[n].reload()).toMatchObject({ msg: 'configuration reloaded' });
  }
  return { relays, pebble };
}

describe.skipIf(!runnable)('relay.acme with two instances on PostgreSQL', () => {
  it.each(['http-01', 'tls-alpn-01'] as const)(
    '%s: one instance orders, the other answers the validation, both serve it',
    async (challenge) => {
      const { relays, pebble } = await fleet(challenge);
      const a = relays.a.relay!;
      const b = relays.b.relay!;
      const issued = await a.waitFor(
        (l) => l.msg === 'acme certificate issued' && l.host === HOST,
        30_000,
        'the certificate issued at A',
      );
      // B was asked by Pebble (its ports are B's) and answered from the store.
      await b.waitFor(
        (l) => l.msg === 'acme certificate loaded' && l.host === HOST,
        10_000,
        'the certificate loaded at B',
      );
      expect(a.count(ordered)).toBe(1);
      expect(b.count(ordered)).toBe(0);
      expect(b.count((l) => l.msg === 'acme certificate issued')).toBe(0);
      expect(a.count((l) => l.msg === 'acme certificate failed')).toBe(0);

      const root = await pebble.root();
      for (const stack of [relays.a, relays.b]) {
        const served = await servedCertificate(stack.ports.public, HOST, root);
        expect(served).toMatchObject({ authorized: true });
        expect(served.cert.serialNumber).toBe(issued.serial);
      }

      // A leaves: B takes over, from the certificate in the store (nothing ordered again).
      expect(await a.stop()).toBe(0);
      await b.waitFor((l) => l.msg === 'acme ordering here', 10_000, 'B taking over');
      await new Promise((r) => setTimeout(r, 500));
      expect(b.count(ordered)).toBe(0);
      expect((await servedCertificate(relays.b.ports.public, HOST, root)).cert.serialNumber).toBe(
        issued.serial,
      );
    },
    90_000,
  );
});
