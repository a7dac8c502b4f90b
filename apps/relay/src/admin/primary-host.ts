import type { RelayConfig, StateStore } from '@appproxy/config';
import type { Logger } from '@appproxy/telemetry';
import { hostname } from 'node:os';
import { AuditLog } from '../audit.js';
import type { AuditMetrics } from '../metrics.js';
import { openRelayStore, sharedSessionSecret, withSessionSecret } from '../relay-store.js';
import { SignIn } from '../sign-in.js';
import type { AdminHost } from './server.js';

/**
 * The admin server's host in the primary of `relay.workers`: the primary opens the state
 * store itself (the API reads and writes it as any instance does), has its own audit log and,
 * for admins' console sessions, a relying party with the same session secrets as the
 * workers'. Health, metrics and app tests come from the workers (`workers.ts`).
 */
export async function primaryAdminHost(o: {
  config: RelayConfig;
  log: Logger;
  health: AdminHost['health'];
  metrics: AdminHost['metrics'];
  testApp: AdminHost['testApp'];
  /** The primary's own audit counters (summed with the workers' by `mergeMetrics`). */
  auditMetrics: AuditMetrics;
}): Promise<{ host: AdminHost; reconfigure(config: RelayConfig): void; close(): Promise<void> }> {
  const { relay } = o.config;
  const store: StateStore = await openRelayStore(relay, {
    instance: relay.instance?.name ?? hostname(),
  });
  // PostgreSQL without relay.sessionSecrets: the store's shared secret, as the workers use.
  const shared = await sharedSessionSecret(store);
  const audit = new AuditLog({
    store,
    log: o.log,
    retentionMs: relay.audit.retentionMs,
    metrics: o.auditMetrics,
  });
  let config = o.config;
  let signIn = new SignIn(withSessionSecret(config, shared), o.log);
  const host: AdminHost = {
    config: () => config,
    store,
    audit,
    log: o.log,
    health: o.health,
    metrics: o.metrics,
    testApp: o.testApp,
    relyingParty: () => signIn.rp,
  };
  return {
    host,
    reconfigure(next) {
      config = next;
      signIn = new SignIn(withSessionSecret(next, shared), o.log, { previous: signIn });
    },
    async close() {
      await audit.stop();
      await store.close();
    },
  };
}
