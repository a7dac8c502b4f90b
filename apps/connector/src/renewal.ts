import type { Logger } from '@appproxy/telemetry';
import { CONTROL } from '@appproxy/tunnel';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { RenewalError } from './errors.js';
import type { ConnectorMetrics } from './metrics.js';
import { saveState, type ConnectorState } from './state.js';

export interface RenewalDeps {
  stateDir: string;
  /** The state as loaded; updated in place when a renewal lands. */
  state: ConnectorState;
  log: Logger;
  metrics: ConnectorMetrics;
  /** Called with the new credentials once they are saved (the dialer rotates its tunnels). */
  onRenewed: (credentials: { cert: string; key: string }) => void;
}

/**
 * The connector's half of certificate renewal over the tunnel (docs/tunnel-protocol.md §6):
 * `renew` makes a new P-256 key (it never leaves this machine) and answers with its CSR;
 * `certificate` checks what the relay signed — our pending key, our id, the pinned relay CA,
 * valid now — saves key and certificate atomically, then hands them to the dialer.
 */
export class CertificateRenewal {
  readonly #deps: RenewalDeps;
  #pendingKey: string | undefined;

  constructor(deps: RenewalDeps) {
    this.#deps = deps;
    this.#exposeExpiry(deps.state.certPem);
  }

  /** `onControl` for the TunnelDialer. */
  handle = async (name: string, body: unknown): Promise<unknown> => {
    if (name === CONTROL.renew) return this.#renew();
    if (name === CONTROL.certificate) return this.#install(body);
    throw new RenewalError('APPPROXY_RENEWAL_MALFORMED', `unknown control ${name}`);
  };

  async #renew(): Promise<{ csr: string }> {
    // Loaded here only: the X.509 stack costs memory that a connector rarely needs.
    const { createKeyAndCsr } = await import('@appproxy/pki');
    const { keyPem, csrPem } = await createKeyAndCsr({
      commonName: this.#deps.state.connectorId,
    });
    this.#pendingKey = keyPem;
    this.#deps.log.info('certificate renewal requested by the relay');
    return { csr: csrPem };
  }

  #install(body: unknown): undefined {
    const { state, stateDir, log } = this.#deps;
    const certPem = (body as { certificate?: unknown } | undefined)?.certificate;
    if (typeof certPem !== 'string')
      throw new RenewalError('APPPROXY_RENEWAL_MALFORMED', 'expected { certificate }');
    const keyPem = this.#pendingKey;
    if (!keyPem)
      throw new RenewalError('APPPROXY_RENEWAL_NOT_REQUESTED', 'no renewal is pending here');
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(certPem);
    } catch (err) {
      throw new RenewalError('APPPROXY_RENEWAL_CERT_INVALID', 'not a PEM certificate', {
        cause: err,
      });
    }
    const ca = new X509Certificate(state.relayCaPem);
    const cn = /(?:^|\n)CN=([^\n]*)/.exec(cert.subject)?.[1];
    const now = Date.now();
    const problem = !cert.checkPrivateKey(createPrivateKey(keyPem))
      ? 'it is not for the key this connector made'
      : cn !== state.connectorId
        ? `it names ${cn}, not this connector`
        : !cert.checkIssued(ca) || !cert.verify(ca.publicKey)
          ? 'it is not signed by the relay CA pinned at registration'
          : now < Date.parse(cert.validFrom) || now > Date.parse(cert.validTo)
            ? 'it is not valid now'
            : undefined;
    if (problem) throw new RenewalError('APPPROXY_RENEWAL_CERT_INVALID', `refused: ${problem}`);
    this.#pendingKey = undefined;
    state.keyPem = keyPem;
    state.certPem = certPem;
    saveState(stateDir, state);
    this.#exposeExpiry(certPem);
    log.info('certificate renewed', { notAfter: new Date(cert.validTo).toISOString() });
    this.#deps.onRenewed({ cert: certPem, key: keyPem });
    return undefined;
  }

  #exposeExpiry(certPem: string): void {
    try {
      const validTo = Date.parse(new X509Certificate(certPem).validTo);
      this.#deps.metrics.certificateExpiry.labels().set(Math.round(validTo / 1000));
    } catch {
      // A broken certificate shows up as a failed tunnel; the metric just stays unset.
    }
  }
}
