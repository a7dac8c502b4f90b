import type { ConnectorRecord, ConnectorSeen, StateStore } from '@appproxy/config';
import type { ConnectorCA } from '@appproxy/pki';
import { ConnectorGroups } from '@appproxy/routing';
import type { Logger } from '@appproxy/telemetry';
import type { PeerIdentity, TunnelError, TunnelSession } from '@appproxy/tunnel';
import type { RelayMetrics } from './metrics.js';
import { renewCertificate } from './renewal.js';
import type { AuditSink } from './audit.js';

/** Connectors seen within this long are `active`; the relay notes them every STATUS_INTERVAL. */
export const ACTIVE_WINDOW_MS = 15_000;
const STATUS_INTERVAL_MS = 5_000;

export interface ConnectorRegistryOptions {
  store: StateStore;
  ca: ConnectorCA;
  log: Logger;
  metrics: RelayMetrics;
  /** Names of the configured connector groups now (a reload may change them). */
  groups: () => ReadonlySet<string>;
  /** Lifetime of a connector certificate; renewal starts when a third is left. */
  certValidityMs: number;
  /** Connectors unseen (or revoked) this long are removed. */
  inactiveRetentionMs: number;
  /** Connected (first tunnel here), disconnected (last tunnel gone), revoked. */
  audit?: AuditSink;
}

/** `reason` label of appproxy_tunnel_disconnects_total. */
const DISCONNECT_REASON: Record<string, string> = {
  '': 'closed',
  APPPROXY_TUNNEL_PING_TIMEOUT: 'ping_timeout',
  APPPROXY_TUNNEL_UNAUTHORIZED: 'revoked',
};

/** A connector's state for people: `connectors list` and metrics use the same words. */
export type ConnectorState = 'active' | 'inactive' | 'revoked';

export function connectorState(c: ConnectorRecord, now = Date.now()): ConnectorState {
  if (c.revokedAt) return 'revoked';
  return c.lastSeenAt && now - c.lastSeenAt.getTime() < ACTIVE_WINDOW_MS ? 'active' : 'inactive';
}

/**
 * Why a connector certificate may not open a tunnel, or undefined when it may: the record
 * must exist, not be revoked, and name this certificate (or the one a renewal replaced,
 * until it expires).
 */
export function certificateRefusal(
  record: ConnectorRecord | undefined,
  peer: Pick<PeerIdentity, 'fingerprint'>,
  groups: ReadonlySet<string>,
  now = new Date(),
): string | undefined {
  if (!record) return 'unknown connector (deleted or never registered)';
  if (record.revokedAt) return 'connector deleted (certificate revoked)';
  const previous = record.previousCert;
  const current = record.certFingerprint === peer.fingerprint;
  const replaced = previous?.fingerprint === peer.fingerprint && previous.notAfter > now;
  if (!current && !replaced) return 'certificate replaced or revoked';
  if (!groups.has(record.group)) return `connector group ${record.group} is not configured`;
  return undefined;
}

/**
 * The relay's connectors: who is connected (by group, for routing), what the state store
 * says about them (revocation by `connectors delete`, removal after inactivity), and the
 * renewal of their certificates over the tunnel.
 */
export class ConnectorRegistry {
  readonly groups = new ConnectorGroups<TunnelSession>();
  readonly #o: ConnectorRegistryOptions;
  readonly #timers: NodeJS.Timeout[] = [];
  /** Connector id → when its certificate was last renewed (or tried). */
  readonly #renewedAt = new Map<string, number>();
  /**
   * What the store says about every connector, so `authorize` needs no query for the
   * tunnels of known connectors: filled at start, refreshed when the store changes.
   */
  #records = new Map<string, ConnectorRecord>();
  #unwatch: (() => void) | undefined;
  /** One refresh at a time; a change during one asks for another after it. */
  #refreshing: Promise<void> | undefined;
  #refreshAgain = false;

  constructor(opts: ConnectorRegistryOptions) {
    this.#o = opts;
    const metrics = opts.metrics;
    metrics.registry.onCollect(() => this.#collectMetrics());
  }

  /**
   * For the tunnel listener: a reason to refuse this certificate, or undefined. The cached
   * record answers when it accepts; otherwise (unknown here, a renewed certificate) the
   * store is asked, so a connector registered or renewed at another instance a moment ago
   * is accepted.
   */
  authorize = (
    peer: PeerIdentity,
  ):
    | { reason: string; revoked: boolean }
    | undefined
    | Promise<{ reason: string; revoked: boolean } | undefined> => {
    const cached = this.#verdict(this.#records.get(peer.commonName), peer);
    if (!cached) return undefined;
    return this.#o.store.getConnector(peer.commonName).then((record) => {
      if (record) this.#records.set(record.id, record);
      return this.#verdict(record, peer);
    });
  };

  #verdict(record: ConnectorRecord | undefined, peer: PeerIdentity) {
    const reason = certificateRefusal(record, peer, this.#o.groups());
    if (!reason) return undefined;
    // Deleted or unknown: only a new registration helps. A replaced certificate is not
    // final (a renewal may be under way) and a missing group can be configured again.
    return { reason, revoked: !record || record.revokedAt !== undefined };
  }

  /** Fills the cache and starts the timers and the store watch. */
  async start(): Promise<void> {
    await this.#refresh();
    const every = (ms: number, fn: () => void) => {
      const t = setInterval(fn, ms);
      t.unref();
      this.#timers.push(t);
    };
    every(STATUS_INTERVAL_MS, () => void this.#recordStatus());
    // Renewal checks: often enough to act early in a third of the shortest lifetime.
    every(Math.min(60_000, Math.max(250, this.#o.certValidityMs / 20)), () => {
      for (const session of this.groups.tunnels()) this.#maybeRenew(session);
    });
    // A revocation by the CLI or another instance closes the tunnels here at once.
    this.#unwatch = this.#o.store.watch(() => void this.#syncRevocations());
    // Removal is coarse: every hour, or every tenth of a short retention (tests).
    every(
      Math.min(3_600_000, Math.max(1000, this.#o.inactiveRetentionMs / 10)),
      () => void this.#prune(),
    );
    void this.#prune();
  }

  /**
   * Waits (at most `timeoutMs`) until every connector that has tunnels to another instance of
   * the fleet now (per the store; not revoked, of a configured group) has one here too: an
   * instance that joins or restarts takes public traffic only once it reaches the connectors
   * its siblings reach. Resolves with the ids still missing at the deadline (logged).
   */
  async awaitFleetConnectors(self: string, timeoutMs: number): Promise<string[]> {
    // The cache `start` filled a moment ago says who is attached where.
    const groups = this.#o.groups();
    const expected = [...this.#records.values()]
      .filter(
        (r) =>
          !r.revokedAt &&
          groups.has(r.group) &&
          (r.instances ?? []).some((i) => i.name !== self && i.tunnels > 0),
      )
      .map((r) => r.id);
    const missing = () => {
      const here = new Set(
        this.groups
          .connectors()
          .filter((c) => c.accepting > 0)
          .map((c) => c.connectorId),
      );
      return expected.filter((id) => !here.has(id));
    };
    if (missing().length === 0) return [];
    this.#o.log.info('waiting for the fleet’s connectors before serving', {
      connectors: expected.length,
      timeoutMs,
    });
    const deadline = Date.now() + timeoutMs;
    while (missing().length > 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    const left = missing();
    if (left.length > 0)
      this.#o.log.warn('serving without every connector of the fleet', { missing: left });
    return left;
  }

  /** Stops the timers and notes every connected connector as having no tunnel here any more. */
  async stop(): Promise<void> {
    for (const t of this.#timers) clearInterval(t);
    this.#unwatch?.();
    const at = new Date();
    await Promise.all(
      this.groups
        .connectors()
        .map((c) => this.#seen(c.connectorId, { at, tunnels: 0, inFlight: 0 })),
    );
  }

  /**
   * Notes a connector in the store, and in the cache at once (states in metrics); a failure
   * is logged, never thrown at the caller.
   */
  #seen(connectorId: string, seen: ConnectorSeen): Promise<void> {
    const cached = this.#records.get(connectorId);
    if (cached)
      this.#records.set(connectorId, {
        ...cached,
        lastSeenAt: seen.at,
        ...(seen.hostname !== undefined && { hostname: seen.hostname }),
        ...(seen.version !== undefined && { version: seen.version }),
        ...(seen.capabilities !== undefined && { capabilities: seen.capabilities }),
      });
    return this.#o.store
      .recordConnectorSeen(connectorId, seen)
      .catch((err: unknown) =>
        this.#o.log.warn('state store write failed', { connectorId, error: err }),
      );
  }

  /** Reads every record into the cache (one at a time; a change meanwhile reads again). */
  #refresh(): Promise<void> {
    if (this.#refreshing) {
      this.#refreshAgain = true;
      return this.#refreshing;
    }
    const run = async (): Promise<void> => {
      try {
        do {
          this.#refreshAgain = false;
          const records = await this.#o.store.listConnectors();
          this.#records = new Map(records.map((r) => [r.id, r]));
        } while (this.#refreshAgain);
      } finally {
        this.#refreshing = undefined;
      }
    };
    this.#refreshing = run();
    return this.#refreshing;
  }

  /** A tunnel finished its hello: it joins its connector's group. */
  add(session: TunnelSession): void {
    const { log, metrics } = this.#o;
    const record = this.#records.get(session.connectorId);
    if (!record) return session.destroy('connector record vanished');
    const group = record.group;
    this.groups.add(group, session);
    metrics.tunnelConnects.labels(group).inc();
    metrics.tunnelsOpen.labels(group).inc();
    session.once('closed', (reason) => this.#removed(session, group, reason));
    const connector = this.#summary(session.connectorId);
    void this.#seen(session.connectorId, {
      at: new Date(),
      hostname: session.hello?.hostname,
      version: session.hello?.version,
      capabilities: session.hello?.capabilities,
      tunnels: connector?.tunnels,
      inFlight: connector?.inFlight,
    });
    log.info('connector connected', {
      connectorId: session.connectorId,
      group,
      tunnel: session.id,
      remote: session.remoteAddress,
      version: session.hello?.version,
      hostname: session.hello?.hostname,
      capabilities: session.hello?.capabilities,
      certificateExpires: session.peer.validTo.toISOString(),
    });
    if (connector?.tunnels === 1)
      this.#o.audit?.record({
        type: 'connector.connected',
        actor: `connector:${session.connectorId}`,
        connector: session.connectorId,
        group,
        clientAddress: session.remoteAddress,
        detail: {
          hostname: session.hello?.hostname ?? null,
          version: session.hello?.version ?? null,
        },
      });
    this.#maybeRenew(session);
  }

  #removed(session: TunnelSession, group: string, reason: TunnelError | undefined): void {
    const { log, metrics } = this.#o;
    this.groups.remove(session);
    metrics.tunnelsOpen.labels(group).dec();
    metrics.tunnelDisconnects.labels(group, DISCONNECT_REASON[reason?.code ?? ''] ?? 'error').inc();
    const connector = this.#summary(session.connectorId);
    void this.#seen(session.connectorId, {
      at: new Date(),
      tunnels: connector?.tunnels ?? 0,
      inFlight: connector?.inFlight ?? 0,
    });
    log.info('connector disconnected', {
      connectorId: session.connectorId,
      group,
      tunnel: session.id,
      reason: reason?.message,
      code: reason?.code,
      tunnelsLeft: connector?.tunnels ?? 0,
    });
    if (!connector || connector.tunnels === 0)
      this.#o.audit?.record({
        type: 'connector.disconnected',
        connector: session.connectorId,
        group,
        ...(reason?.code !== undefined && { code: reason.code }),
        detail: { reason: DISCONNECT_REASON[reason?.code ?? ''] ?? 'error' },
      });
  }

  #summary(connectorId: string) {
    return this.groups.connectors().find((c) => c.connectorId === connectorId);
  }

  /**
   * Every STATUS_INTERVAL: last seen, tunnels and in-flight of connected connectors; then the
   * cache is read again (states and counts for metrics; other instances' attachments).
   */
  async #recordStatus(): Promise<void> {
    const at = new Date();
    await Promise.all(
      this.groups
        .connectors()
        .map((c) => this.#seen(c.connectorId, { at, tunnels: c.tunnels, inFlight: c.inFlight })),
    );
    await this.#refresh().catch((err: unknown) =>
      this.#o.log.warn('state store read failed', { error: err }),
    );
  }

  /** Closes the tunnels of connectors revoked (or deleted) anywhere: the store's watch says when. */
  async #syncRevocations(): Promise<void> {
    const { log, groups } = this.#o;
    try {
      await this.#refresh();
    } catch (err) {
      return log.warn('state store read failed', { error: err });
    }
    const revoked = new Set<string>();
    for (const session of this.groups.tunnels()) {
      const record = this.#records.get(session.connectorId);
      const refusal = certificateRefusal(record, session.peer, groups());
      if (!refusal) continue;
      // Deleted (revoked or gone), not a group taken out of the configuration.
      if ((!record || record.revokedAt) && !revoked.has(session.connectorId)) {
        revoked.add(session.connectorId);
        this.#o.audit?.record({
          type: 'connector.revoked',
          connector: session.connectorId,
          ...(record && { group: record.group }),
          // A code, as other events carry: its certificate revoked, or its record gone.
          detail: { reason: record ? 'revoked' : 'deleted' },
        });
      }
      log.warn('connector tunnel closed', {
        connectorId: session.connectorId,
        tunnel: session.id,
        reason: refusal,
      });
      session.destroy(refusal, 'APPPROXY_TUNNEL_UNAUTHORIZED');
    }
  }

  async #prune(): Promise<void> {
    const { store, log, inactiveRetentionMs } = this.#o;
    let removed: string[];
    try {
      removed = await store.pruneConnectors(new Date(Date.now() - inactiveRetentionMs));
    } catch (err) {
      return log.warn('state store write failed', { error: err });
    }
    for (const id of removed) {
      this.#renewedAt.delete(id);
      this.#records.delete(id);
      log.info('connector removed', {
        connectorId: id,
        reason: `inactive or revoked for ${Math.round(inactiveRetentionMs / 1000)} s`,
      });
    }
  }

  /**
   * Renews over this tunnel when its certificate has less than a third of its lifetime
   * left. One renewal per connector at a time; a failed one is tried again after a tenth of
   * the lifetime (at most a minute), so a connector stuck on the old certificate recovers.
   */
  #maybeRenew(session: TunnelSession): void {
    const { certValidityMs } = this.#o;
    if (!session.accepting) return;
    const left = session.peer.validTo.getTime() - Date.now();
    if (left > certValidityMs / 3) return;
    const last = this.#renewedAt.get(session.connectorId);
    if (last !== undefined && Date.now() - last < Math.min(60_000, certValidityMs / 10)) return;
    this.#renewedAt.set(session.connectorId, Date.now());
    void renewCertificate(session, this.#o).catch(() => {
      // renewCertificate logs and counts its own failures.
    });
  }

  #collectMetrics(): void {
    const { metrics } = this.#o;
    metrics.connectors.reset();
    for (const group of this.#o.groups())
      for (const state of ['active', 'inactive', 'revoked'] as const)
        metrics.connectors.labels(group, state).set(0);
    const now = Date.now();
    for (const c of this.#records.values())
      metrics.connectors.labels(c.group, connectorState(c, now)).inc();
  }
}
