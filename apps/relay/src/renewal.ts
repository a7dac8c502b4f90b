import type { StateStore } from '@appproxy/config';
import type { ConnectorCA } from '@appproxy/pki';
import type { Logger } from '@appproxy/telemetry';
import { CONTROL, type TunnelSession } from '@appproxy/tunnel';
import type { RelayMetrics } from './metrics.js';

/**
 * Renews a connector's certificate over one of its tunnels (docs/tunnel-protocol.md §6): the
 * connector makes a new key and sends a CSR (`renew`); the relay signs it, records it (the
 * certificate the connector used stays accepted until it expires) and hands it over
 * (`certificate`). The connector then replaces its tunnels one at a time. Nothing in flight
 * is touched.
 */
export async function renewCertificate(
  session: TunnelSession,
  deps: {
    store: StateStore;
    ca: ConnectorCA;
    log: Logger;
    metrics: RelayMetrics;
    certValidityMs: number;
  },
): Promise<void> {
  const { store, ca, log, metrics } = deps;
  const connectorId = session.connectorId;
  try {
    const asked = await session.control(CONTROL.renew);
    const csr = (asked.body as { csr?: unknown } | undefined)?.csr;
    if (asked.status !== 200 || typeof csr !== 'string')
      throw new Error(`renew answered ${asked.status} without a CSR`);
    const issued = await ca.issueFromCsr(csr, {
      commonName: connectorId,
      validityMs: deps.certValidityMs,
    });
    await store.renewConnectorCertificate(
      connectorId,
      { serial: issued.serialNumber, fingerprint: issued.fingerprint, notAfter: issued.notAfter },
      { fingerprint: session.peer.fingerprint, notAfter: session.peer.validTo },
    );
    const handed = await session.control(CONTROL.certificate, { certificate: issued.certPem });
    if (handed.status !== 204 && handed.status !== 200)
      throw new Error(`the connector refused its certificate (${handed.status})`);
    metrics.renewals.labels('ok').inc();
    log.info('connector certificate renewed', {
      connectorId,
      tunnel: session.id,
      notAfter: issued.notAfter.toISOString(),
      previousNotAfter: session.peer.validTo.toISOString(),
    });
  } catch (err) {
    metrics.renewals.labels('failed').inc();
    log.warn('connector certificate renewal failed', {
      connectorId,
      tunnel: session.id,
      error: err,
      certificateExpires: session.peer.validTo.toISOString(),
    });
    throw err;
  }
}
