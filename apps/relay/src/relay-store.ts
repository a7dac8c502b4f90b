import { openStateStore, type RelayConfig, type StateStore } from '@appproxy/config';
import { ConnectorCA } from '@appproxy/pki';
import { randomBytes } from 'node:crypto';

/** Material names in a shared (PostgreSQL) store. */
export const MATERIAL = {
  connectorCa: 'connector-ca',
  sessionSecret: 'session-secret',
} as const;

/**
 * The relay's state store as its configuration says: PostgreSQL (`relay.store.postgres`,
 * sealed with `relay.storeKey`) or SQLite in `relay.stateDir`; it speaks for
 * `opts.instance`, else `relay.instance.name`, else the host name.
 */
export function openRelayStore(
  relay: Pick<RelayConfig['relay'], 'stateDir' | 'store' | 'storeKey' | 'instance'>,
  opts: { instance?: string } = {},
): Promise<StateStore> {
  const instance = opts.instance ?? relay.instance?.name;
  return openStateStore({
    stateDir: relay.stateDir,
    ...(relay.store?.postgres && { postgres: relay.store.postgres }),
    ...(relay.storeKey !== undefined && { storeKey: relay.storeKey }),
    ...(instance !== undefined && { instance }),
  });
}

/**
 * The connector CA: in the shared store when there is one (created by whichever instance
 * comes first), else the files in `stateDir` as always (existing deployments keep theirs).
 */
export async function loadConnectorCa(store: StateStore, stateDir: string): Promise<ConnectorCA> {
  if (store.kind !== 'postgres') return ConnectorCA.loadOrCreate(stateDir);
  let stored = await store.getMaterial(MATERIAL.connectorCa);
  if (stored === undefined) {
    const created = await ConnectorCA.create();
    stored = await store.putMaterialIfAbsent(
      MATERIAL.connectorCa,
      JSON.stringify({ certPem: created.certPem, keyPem: created.keyPem }),
    );
  }
  const { certPem, keyPem } = JSON.parse(stored) as { certPem: string; keyPem: string };
  return ConnectorCA.fromPem(certPem, keyPem, 'connector-ca in the state store');
}

/**
 * The session secret every instance shares when `relay.sessionSecrets` is not configured
 * and the store is PostgreSQL (a session sealed by one instance opens at the others);
 * undefined with SQLite, where sign-in keeps its file in `stateDir`.
 */
export async function sharedSessionSecret(
  store: StateStore,
): Promise<{ id: string; secret: string } | undefined> {
  if (store.kind !== 'postgres') return undefined;
  const secret = await store.putMaterialIfAbsent(
    MATERIAL.sessionSecret,
    randomBytes(48).toString('base64url'),
  );
  return { id: 'store', secret };
}

/** `config` with the store's shared session secret when it configures none (PostgreSQL only). */
export function withSessionSecret(
  config: RelayConfig,
  shared: { id: string; secret: string } | undefined,
): RelayConfig {
  if (!shared || config.relay.sessionSecrets) return config;
  return { ...config, relay: { ...config.relay, sessionSecrets: [shared] } };
}
