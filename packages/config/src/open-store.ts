import { hostname } from 'node:os';
import { StateStoreError } from './errors.js';
import { ensureStateDir } from './state-dir.js';
import { openPostgresStore } from './postgres-store.js';
import { openSqliteStore } from './sqlite-store.js';
import { MaterialSealer, type StateStore, type StateStoreOptions } from './state-store.js';

/**
 * Opens (creating or migrating if needed) the relay's state: PostgreSQL when
 * `opts.postgres` is set, else embedded SQLite in `<stateDir>/state.db` (WAL, 0600, a 5 s
 * busy timeout so the relay and the CLI can use it at the same time).
 *
 * @throws {StateStoreError} `APPPROXY_STATE_INCOMPATIBLE`, `APPPROXY_STATE_DIR_UNUSABLE`,
 *   `APPPROXY_STORE_UNAVAILABLE`, `APPPROXY_STORE_KEY_MISSING`, `APPPROXY_STORE_KEY_WRONG`
 * @example
 * import { openStateStore } from '@appproxy/config';
 *
 * const store = await openStateStore({ stateDir: './var/relay' });
 * try {
 *   const { id, secret } = await store.createRegistrationToken({ group: 'Default', ttlMs: 3_600_000 });
 *   const { group } = await store.redeemRegistrationToken(id, secret); // 'Default'; again: APPPROXY_TOKEN_USED
 * } finally {
 *   await store.close();
 * }
 */
export async function openStateStore(opts: StateStoreOptions | string): Promise<StateStore> {
  const o = typeof opts === 'string' ? { stateDir: opts } : opts;
  const instance = o.instance ?? hostname();
  const sealer = o.storeKey === undefined ? undefined : new MaterialSealer(o.storeKey);
  if (o.postgres) {
    // Still the instance's working directory (its tunnel certificate): usable or a clear error.
    ensureStateDir(o.stateDir);
    if (!sealer)
      throw new StateStoreError(
        'APPPROXY_STORE_KEY_MISSING',
        'relay.storeKey is required with relay.store.postgres',
      );
    return openPostgresStore({ url: o.postgres.url, sealer, instance });
  }
  return openSqliteStore({ stateDir: o.stateDir, sealer, instance });
}
