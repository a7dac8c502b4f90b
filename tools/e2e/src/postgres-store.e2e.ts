/**
 * The relay on a PostgreSQL state store (relay.store.postgres, relay.storeKey from ${ENV}):
 * registration, a request through a connector, the CA and session secret in the store
 * (sealed), and the CLIs (`token create`, `connectors list`, `connectors delete`) run with
 * another configuration (another stateDir, as on another host) against the same store.
 */
import { startSampleApp } from '@appproxy/sample-app';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RELAY_BIN, Stack, connectorId, json, request, runCli } from './harness.js';
import { postgresAvailable, startPostgres, type PostgresServer } from './postgres.js';

const HOST = 'shared.apps.localhost';
const STORE_KEY = 'e2e-store-key-0123456789abcdefghijklmnopq';
const havePostgres = postgresAvailable();

let server: PostgresServer | undefined;
let sample: Awaited<ReturnType<typeof startSampleApp>> | undefined;
let stack: Stack | undefined;
let url = '';
/** The same store from another stateDir: the CLI of another instance. */
let otherConfig = '';
let env: NodeJS.ProcessEnv = {};

beforeAll(async () => {
  if (!havePostgres) return;
  server = await startPostgres();
  url = await server.createDatabase('appproxy');
  env = { APPPROXY_TEST_PG_URL: url, APPPROXY_TEST_STORE_KEY: STORE_KEY };
  sample = await startSampleApp({ basePath: '/' });
  stack = new Stack({
    apps: [
      {
        name: 'Shared',
        internalUrl: `http://127.0.0.1:${sample.port}/`,
        externalUrl: `https://${HOST}/`,
      },
    ],
    relayExtra: `  store: { postgres: { url: '\${APPPROXY_TEST_PG_URL}' } }
  storeKey: \${APPPROXY_TEST_STORE_KEY}
  instance: { name: edge-1 }
`,
    env,
  });
  await stack.start();
  otherConfig = join(stack.dir, 'other.yaml');
  writeFileSync(
    otherConfig,
    readFileSync(stack.configPath, 'utf8').replace(
      'stateDir: ./var/relay',
      'stateDir: ./var/other',
    ),
  );
});

afterAll(async () => {
  await stack?.stop();
  await sample?.close();
  await server?.stop();
});

async function rows<T extends pg.QueryResultRow>(sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

describe.skipIf(!havePostgres)('relay on a PostgreSQL store', () => {
  it('registers a connector and serves a request through it', async () => {
    const res = await request(stack!, HOST, '/echo', { headers: { accept: 'application/json' } });
    expect(res.status).toBe(200);
    expect(json(res)).toMatchObject({ method: 'GET' });
  });

  it('keeps the CA and the session secret in the store, sealed, not in stateDir', async () => {
    const stateDir = join(stack!.dir, 'var/relay');
    expect(existsSync(join(stateDir, 'connector-ca-key.pem'))).toBe(false);
    expect(existsSync(join(stateDir, 'session-secret'))).toBe(false);
    // The tunnel certificate stays per instance.
    expect(existsSync(join(stateDir, 'tunnel.pem'))).toBe(true);
    const materials = await rows<{ name: string; value: Buffer }>(
      'SELECT name, value FROM materials ORDER BY name',
    );
    expect(materials.map((m) => m.name)).toStrictEqual(['connector-ca', 'session-secret']);
    for (const m of materials) expect(m.value.includes(Buffer.from('BEGIN'))).toBe(false);
  });

  it('the CLIs of another stateDir work on the same store: token create, connectors list', async () => {
    const created = await runCli(RELAY_BIN, ['token', 'create', '--config', otherConfig], env);
    expect(created.code).toBe(0);
    // The token pins the CA the relay serves: the one in the store.
    const id = connectorId(stack!.connectorState);
    // The relay notes each tunnel in the store as it connects: the second note may land a
    // moment after the harness saw both tunnels in the log.
    let row: Record<string, unknown> | undefined;
    for (const end = Date.now() + 10_000; Date.now() < end;) {
      const listed = await runCli(
        RELAY_BIN,
        ['connectors', 'list', '--json', '--config', otherConfig],
        env,
      );
      expect(listed.code).toBe(0);
      const all = JSON.parse(listed.stdout) as Array<Record<string, unknown>>;
      row = all.find((c) => c.id === id);
      if (row?.tunnels === 2) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(row).toMatchObject({
      state: 'active',
      tunnels: 2,
      // Attached to this instance, by its relay.instance.name.
      instances: [expect.objectContaining({ name: 'edge-1', tunnels: 2 })],
    });
    const second = join(stack!.dir, 'second');
    await stack!.registerConnector(second);
    await stack!.startConnector(second);
    const table = await runCli(RELAY_BIN, ['connectors', 'list', '--config', otherConfig], env);
    expect(table.stdout.split('\n')[0]).toMatch(/\sIN-FLIGHT\s+INSTANCES\s/);
    expect(table.stdout).toContain(connectorId(second));
  });

  it('connectors delete from the other stateDir closes the tunnels at once', async () => {
    const id = connectorId(join(stack!.dir, 'second'));
    const closed = () =>
      stack!.relay!.count((l) => l.msg === 'connector tunnel closed' && l.connectorId === id);
    const deleted = await runCli(
      RELAY_BIN,
      ['connectors', 'delete', id, '--config', otherConfig],
      env,
    );
    expect(deleted.code).toBe(0);
    await stack!.relay!.waitFor(
      () => closed() >= 2,
      5_000,
      'both tunnels of the deleted connector closed',
    );
    const unknown = await runCli(
      RELAY_BIN,
      ['connectors', 'delete', 'no-such-connector', '--config', otherConfig],
      env,
    );
    expect(unknown.code).toBe(2);
  });

  it('a wrong storeKey or password is refused by name, without the secret', async () => {
    const wrongKey = 'another-e2e-store-key-0123456789abcdefghij';
    const res = await runCli(RELAY_BIN, ['connectors', 'list', '--config', otherConfig], {
      ...env,
      APPPROXY_TEST_STORE_KEY: wrongKey,
    });
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('APPPROXY_STORE_KEY_WRONG');
    expect(res.stderr).toContain('relay.storeKey');
    expect(res.stderr).not.toContain(wrongKey);
    const bad = new URL(url);
    bad.password = 'Wr0ng-passw0rd-e2e';
    const refused = await runCli(RELAY_BIN, ['connectors', 'list', '--config', otherConfig], {
      ...env,
      APPPROXY_TEST_PG_URL: bad.toString(),
    });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('APPPROXY_STORE_UNAVAILABLE');
    expect(refused.stderr).not.toContain('Wr0ng-passw0rd-e2e');
    expect(refused.stderr).not.toContain(server!.password);
  });
});
