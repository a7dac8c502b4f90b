import type { StateStore } from '@appproxy/config';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
// The PostgreSQL fixture lives with the other system fixtures; it imports nothing of ours.
// eslint-disable-next-line @nx/enforce-module-boundaries
import {
  postgresAvailable,
  startPostgres,
  type PostgresServer,
} from '../../../tools/e2e/src/postgres.js';
import { loadConnectorCa, openRelayStore, sharedSessionSecret } from './relay-store.js';

const STORE_KEY = 'relay-store-spec-key-0123456789abcdefghij';
const havePostgres = postgresAvailable();
let server: PostgresServer | undefined;
const root = mkdtempSync(join(tmpdir(), 'appproxy-relay-store-'));
const opened: StateStore[] = [];

beforeAll(async () => {
  if (havePostgres) server = await startPostgres();
}, 60_000);
afterAll(async () => {
  await server?.stop();
  rmSync(root, { recursive: true, force: true });
});
afterEach(async () => {
  for (const s of opened.splice(0)) await s.close();
});

describe('with SQLite', () => {
  it('keeps the CA in stateDir files and leaves the session secret to sign-in', async () => {
    const stateDir = join(root, 'sqlite');
    const store = await openRelayStore({ stateDir });
    opened.push(store);
    const ca = await loadConnectorCa(store, stateDir);
    expect(existsSync(join(stateDir, 'connector-ca-key.pem'))).toBe(true);
    expect((await loadConnectorCa(store, stateDir)).fingerprint).toBe(ca.fingerprint);
    expect(await store.getMaterial('connector-ca')).toBeUndefined();
    expect(await sharedSessionSecret(store)).toBeUndefined();
  });
});

describe.skipIf(!havePostgres)('with PostgreSQL', () => {
  it('two instances starting at once end with one CA and one session secret', async () => {
    const url = await server!.createDatabase();
    const open = async (name: string) => {
      const store = await openRelayStore(
        { stateDir: join(root, name), store: { postgres: { url } }, storeKey: STORE_KEY },
        { instance: name },
      );
      opened.push(store);
      return store;
    };
    const [a, b] = await Promise.all([open('a'), open('b')]);
    const [caA, caB] = await Promise.all([
      loadConnectorCa(a, join(root, 'a')),
      loadConnectorCa(b, join(root, 'b')),
    ]);
    expect(caB.fingerprint).toBe(caA.fingerprint);
    // Nothing of the CA in either stateDir.
    expect(existsSync(join(root, 'a', 'connector-ca-key.pem'))).toBe(false);
    expect(existsSync(join(root, 'b', 'connector-ca-key.pem'))).toBe(false);
    const [sa, sb] = await Promise.all([sharedSessionSecret(a), sharedSessionSecret(b)]);
    expect(sa).toStrictEqual(sb);
    expect(sa?.secret.length).toBeGreaterThanOrEqual(32);
    // A later start reads the same.
    const c = await open('c');
    expect((await loadConnectorCa(c, join(root, 'c'))).fingerprint).toBe(caA.fingerprint);
  });
});
