/**
 * Scale-out, end to end, as ops run it: two relay instances (the real CLI, two processes,
 * their own stateDir and ports) sharing a real PostgreSQL, one connector attached to both,
 * and HAProxy in TCP mode in front of their public listeners with `/readyz` health checks.
 */
import { startDevIdp } from '@appproxy/dev-idp';
import { signIn } from '@appproxy/dev-idp/sign-in';
import { startSampleApp } from '@appproxy/sample-app';
import { cpSync } from 'node:fs';
import pg from 'pg';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HAPROXY_BIN, startHaproxy, type Haproxy } from './haproxy.js';
import {
  CONNECTOR_BIN,
  RELAY_BIN,
  Stack,
  connectorId,
  freePort,
  json,
  request,
  runCli,
  until,
  type LoggedProcess,
} from './harness.js';
import { postgresAvailable, startPostgres } from './postgres.js';
import { LoadGenerator, type Outcome } from './traffic.js';

const HOST = 'fleet.apps.localhost';
const OPEN = 'open.apps.localhost';
const LIMITED = 'limited.apps.localhost';
const STORE_KEY = 'e2e-fleet-store-key-0123456789abcdefghij';
const runnable = Boolean(HAPROXY_BIN) && postgresAvailable();

const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

type Name = 'a' | 'b';
const relays = {} as Record<Name, Stack>;
let haproxy: Haproxy;
let lbPort = 0;
let connector: LoggedProcess;
let id = '';
/** The store's URL and key, as every CLI of the fleet reads them from the environment. */
let env: NodeJS.ProcessEnv = {};

const relay = (n: Name) => relays[n].relay!;
/** Tunnels of the connector open at instance `n` now, by its log. */
const tunnelsAt = (n: Name) =>
  relay(n).count((l) => l.msg === 'connector connected' && l.connectorId === id) -
  relay(n).count((l) => l.msg === 'connector disconnected' && l.connectorId === id);

/** A load through HAProxy, one new connection per request (each is placed anew). */
function loadThroughBalancer(): LoadGenerator {
  return new LoadGenerator(relays.a, {
    host: `${OPEN}:${lbPort}`,
    port: lbPort,
    keepAlive: false,
    concurrency: 4,
  }).start();
}

const failedOf = (outcomes: Outcome[]) =>
  outcomes.filter((o) => o.error !== undefined || o.status !== 200);

describe.skipIf(!runnable)('relay instances on PostgreSQL behind HAProxy', () => {
  let idp: Awaited<ReturnType<typeof startDevIdp>>;

  beforeAll(async () => {
    const sample = await startSampleApp({ basePath: '/' });
    cleanups.push(() => sample.close());
    const pg = await startPostgres();
    cleanups.push(() => pg.stop());
    const url = await pg.createDatabase('fleet');
    env = { APPPROXY_E2E_STORE_URL: url, APPPROXY_E2E_STORE_KEY: STORE_KEY };
    lbPort = await freePort();
    const origin = `https://${HOST}:${lbPort}`;
    idp = await startDevIdp({
      port: 0,
      clients: [
        {
          clientId: 'appproxy',
          clientSecret: 'e2e-client-secret',
          redirectUris: [`${origin}/.appproxy/callback`],
          postLogoutRedirectUris: [`${origin}/.appproxy/signed-out`],
        },
      ],
    });
    cleanups.push(() => idp.close());
    for (const n of ['a', 'b'] as const) {
      const stack = new Stack({
        startConnector: false,
        env,
        apps: [
          {
            name: 'Fleet',
            internalUrl: `http://127.0.0.1:${sample.port}/`,
            externalUrl: `https://${HOST}:${lbPort}/`,
            preAuthentication: 'oidc',
          },
          {
            name: 'Open',
            internalUrl: `http://127.0.0.1:${sample.port}/`,
            externalUrl: `https://${OPEN}:${lbPort}/`,
          },
          {
            name: 'Limited',
            internalUrl: `http://127.0.0.1:${sample.port}/`,
            externalUrl: `https://${LIMITED}:${lbPort}/`,
            // A burst of 4 for the fleet; refilled so slowly that none comes back in the test.
            extra: '    limits: { requestsPerSecond: 0.05, burst: 4 }\n',
          },
        ],
        identityProvider: [
          `  issuer: ${idp.issuer}`,
          '  clientId: appproxy',
          '  clientSecret: e2e-client-secret',
        ].join('\n'),
      });
      const ports = await stack.allocatePorts();
      stack.configure({
        relayExtra: [
          `  store: { postgres: { url: '\${APPPROXY_E2E_STORE_URL}' } }`,
          '  storeKey: ${APPPROXY_E2E_STORE_KEY}',
          `  instance: { name: ${n}, tunnelUrl: 'https://127.0.0.1:${ports.tunnel}' }`,
          '  shutdownDelay: 1500ms',
        ].join('\n'),
      });
      await stack.writeConfig();
      relays[n] = stack;
      cleanups.push(() => stack.stop());
    }
    // One public certificate for the fleet (the balancer passes TLS through): B serves A's.
    cpSync(relays.a.tlsDir, relays.b.tlsDir, { recursive: true });
    relays.b.ca = relays.a.ca;
    // Both at once: the first to get the store's advisory lock migrates it and makes the CA;
    // the other finds both there.
    await Promise.all([relays.a.startRelay(), relays.b.startRelay()]);
    haproxy = await startHaproxy(
      (['a', 'b'] as const).map((n) => ({
        name: n,
        port: relays[n].ports.public,
        checkPort: relays[n].ports.admin,
      })),
      { port: lbPort },
    );
    cleanups.push(() => haproxy.stop());
    await haproxy.waitFor('a', 'UP');
    await haproxy.waitFor('b', 'UP');
  });

  it('a token made at A is spent at B; the connector attaches to both instances', async () => {
    const dir = join(relays.a.dir, 'connector');
    const token = await relays.a.createToken();
    const register = (at: Name, stateDir: string) =>
      runCli(CONNECTOR_BIN, [
        'register',
        '--relay',
        relays[at].relayUrl,
        '--token',
        token,
        '--state-dir',
        stateDir,
      ]);
    const first = await register('b', dir);
    expect(first.code, first.stderr).toBe(0);
    // Spent in the shared store: A refuses it too.
    const again = await register('a', join(relays.a.dir, 'connector-2'));
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/APPPROXY_TOKEN_USED|already/i);

    id = connectorId(dir);
    connector = await relays.b.startConnector(dir, 2);
    cleanups.push(() => connector.stop('SIGKILL'));
    await until(() => tunnelsAt('a') >= 2 && tunnelsAt('b') >= 2, 'two tunnels at each instance');

    // `connectors list` at A names both instances the connector is attached to.
    const instancesOf = async () => {
      const list = await runCli(
        RELAY_BIN,
        ['connectors', 'list', '--config', relays.a.configPath, '--json'],
        env,
      );
      expect(list.code, list.stderr).toBe(0);
      const row = (
        JSON.parse(list.stdout) as Array<{ id: string; instances: Array<{ name: string }> }>
      ).find((c) => c.id === id);
      return (row?.instances ?? []).map((i) => i.name).sort();
    };
    await until(async () => (await instancesOf()).join() === 'a,b', 'both instances listed');
  });

  it('a browser signed in through A keeps its session on B', async () => {
    const host = `${HOST}:${lbPort}`;
    const cookie = await signIn({
      base: `https://127.0.0.1:${relays.a.ports.public}`,
      host,
      username: 'alice',
      password: 'alice-password',
    });
    // Without the cookie, B asks the browser to sign in; with it, B serves the app.
    const anonymous = await request(relays.b, host, '/echo', { headers: { accept: 'text/html' } });
    expect(anonymous.status).toBe(401);
    const signedIn = await request(relays.b, host, '/echo', {
      headers: { cookie, accept: 'application/json' },
    });
    expect(signedIn.status).toBe(200);
    // And through the balancer, whichever instance each new connection lands on.
    const load = new LoadGenerator(relays.a, {
      host: `${OPEN}:${lbPort}`,
      port: lbPort,
      keepAlive: false,
      concurrency: 2,
      maxRequests: 20,
    });
    expect(failedOf(await load.run())).toStrictEqual([]);
  });

  it('rate limits count for the fleet: each of the two instances takes half', async () => {
    const admitted = async (n: Name) => {
      let ok = 0;
      for (let i = 0; i < 6; i++) {
        const res = await request(relays[n], `${LIMITED}:${lbPort}`, '/echo', {
          headers: { accept: 'application/json' },
        });
        if (res.status === 200) ok += 1;
        else expect(json(res)).toMatchObject({ error: { code: 'THROTTLED' } });
      }
      return ok;
    };
    // Burst 4 for the fleet: 2 at A and 2 at B (one instance alone would admit all 4).
    expect(await admitted('a')).toBe(2);
    expect(await admitted('b')).toBe(2);
  });

  it('SIGTERM on B: /readyz 503 first, the balancer moves away, no request fails', async () => {
    const load = loadThroughBalancer();
    await load.completed(20);
    const stopped = relays.b.relay!.stop('SIGTERM');
    await haproxy.waitFor('b', 'DOWN');
    expect(await stopped).toBe(0);
    // Drained, B took itself off the list before exiting (not left to expire).
    const db = new pg.Client({ connectionString: env.APPPROXY_E2E_STORE_URL });
    await db.connect();
    try {
      const { rows } = await db.query('SELECT name FROM instances ORDER BY name');
      expect(rows.map((r: { name: string }) => r.name)).toStrictEqual(['a']);
    } finally {
      await db.end();
    }
    await load.completed(20);
    const outcomes = await load.stop();
    expect(failedOf(outcomes)).toStrictEqual([]);
    // B left the fleet: A tells the connector, which drains its tunnels to B.
    await connector.waitFor(
      (l) =>
        l.msg === 'relay instances changed' &&
        Array.isArray(l.removed) &&
        (l.removed as string[]).includes('b'),
      10_000,
      'the connector told B is gone',
    );
    // Back: listed again, dialled again, healthy again.
    await relays.b.startRelay();
    await until(() => tunnelsAt('b') >= 2, 'tunnels to B again');
    await haproxy.waitFor('b', 'UP');
  });

  it('kill -9 of A under load: only its requests in flight fail; tunnels come back with it', async () => {
    const load = loadThroughBalancer();
    await load.completed(20);
    relays.a.relay!.child.kill('SIGKILL');
    await relays.a.relay!.exited;
    // Requests sent until A was gone may have been in flight on it.
    const killedAt = Date.now();
    await load.completed(40);
    const outcomes = await load.stop();
    // Requests started after the kill all succeed: HAProxy redispatches refused connections
    // to B until its checks take A out.
    expect(failedOf(outcomes.filter((o) => o.startedAt > killedAt))).toStrictEqual([]);
    // At most the requests in flight at the kill failed.
    expect(failedOf(outcomes).length).toBeLessThanOrEqual(4);
    await haproxy.waitFor('a', 'DOWN');
    // The connector's tunnels to A dropped …
    await connector.waitFor(
      (l) => l.msg === 'tunnel disconnected' && l.instance === 'a',
      10_000,
      'tunnel to A dropped',
    );
    // … and are made again when A returns.
    const before = relay('b').count((l) => l.msg === 'connector connected');
    await relays.a.startRelay();
    await until(() => tunnelsAt('a') >= 2, 'tunnels to A again');
    await haproxy.waitFor('a', 'UP');
    expect(relay('b').count((l) => l.msg === 'connector connected')).toBe(before);
    const after = new LoadGenerator(relays.a, {
      host: `${OPEN}:${lbPort}`,
      port: lbPort,
      keepAlive: false,
      concurrency: 2,
      maxRequests: 20,
    });
    expect(failedOf(await after.run())).toStrictEqual([]);
  });

  it('connectors delete at B closes the tunnels at A too, within a second', async () => {
    const res = await runCli(
      RELAY_BIN,
      ['connectors', 'delete', id, '--config', relays.b.configPath],
      env,
    );
    expect(res.code, res.stderr).toBe(0);
    const deletedAt = Date.now();
    const closed = await relay('a').waitFor(
      (l) => l.msg === 'connector tunnel closed' && l.connectorId === id,
      5_000,
      'A closing the revoked connector’s tunnels',
    );
    expect(Date.parse(closed.ts as string) - deletedAt).toBeLessThan(1000);
    await until(() => tunnelsAt('a') === 0 && tunnelsAt('b') === 0, 'no tunnel left');
    // And the connector, refused everywhere, says so and stops.
    expect(await connector.exited).toBe(3);
  });
});
