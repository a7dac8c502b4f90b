import { openStateStore, type RelayConfig, type StateStore } from '@appproxy/config';
import { ConnectorCA, describeCertificate } from '@appproxy/pki';
import { AppTable } from '@appproxy/routing';
import type { Logger } from '@appproxy/telemetry';
import { TunnelListener, type TunnelSession } from '@appproxy/tunnel';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createSecureServer, type Http2SecureServer } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { ConnectorPool } from './connector-pool.js';
import { TrustedProxies } from './forwarded.js';
import { RelayProxy } from './proxy.js';
import { registrationHandler } from './registration.js';
import { SniCertificates } from './tls-contexts.js';

export interface RelayAddresses {
  public: string;
  tunnel: string;
  admin?: string;
  redirect?: string;
}

/** How often the relay records "last seen" for connected connectors. */
const SEEN_INTERVAL_MS = 30_000;
/** Reissue the tunnel certificate when it expires within this window. */
const RENEW_WINDOW_MS = 30 * 24 * 3600 * 1000;

/**
 * The public edge, assembled: HTTPS listener (h2 + HTTP/1.1 via ALPN, SNI), tunnel listener
 * (mTLS, registration), optional admin and 80→443 redirect listeners.
 */
export class Relay {
  readonly #config: RelayConfig;
  readonly #log: Logger;
  readonly #pool = new ConnectorPool();
  #store: StateStore | undefined;
  #tunnel: TunnelListener | undefined;
  #public: Http2SecureServer | undefined;
  #admin: HttpServer | undefined;
  #redirect: HttpServer | undefined;
  #seenTimer: NodeJS.Timeout | undefined;
  #ready = false;

  constructor(config: RelayConfig, log: Logger) {
    this.#config = config;
    this.#log = log;
  }

  async start(): Promise<RelayAddresses> {
    const { relay } = this.#config;
    const store = openStateStore(relay.stateDir);
    this.#store = store;
    const ca = await ConnectorCA.loadOrCreate(relay.stateDir);
    const tunnelCert = await this.#tunnelCertificate(ca);
    const groups = new Set(this.#config.connectorGroups.map((g) => g.name));

    this.#tunnel = new TunnelListener({
      host: relay.tunnelListen.host,
      port: relay.tunnelListen.port,
      cert: tunnelCert.cert + ca.certPem,
      key: tunnelCert.key,
      ca: ca.certPem,
      pingIntervalMs: relay.pingIntervalMs,
      authorize: (peer) => {
        const record = store.getConnector(peer.commonName);
        if (!record) return 'unknown connector (deleted or never registered)';
        if (record.revokedAt) return 'certificate revoked';
        if (record.certFingerprint !== peer.fingerprint) return 'certificate replaced or revoked';
        if (!groups.has(record.group)) return `connector group ${record.group} is not configured`;
        return undefined;
      },
      onRegistration: registrationHandler({ ca, store, log: this.#log, knownGroups: () => groups }),
    });
    this.#tunnel.on('session', (session) => this.#onSession(session));
    this.#tunnel.on('refused', (r) => this.#log.warn('tunnel refused', { ...r }));
    this.#tunnel.on('sessionClosed', (session, reason) => {
      if (session.hello) {
        this.#log.info('connector disconnected', {
          connectorId: session.connectorId,
          tunnel: session.id,
          reason: reason?.message,
          code: reason?.code,
        });
      }
    });

    const apps = new AppTable(this.#config.apps);
    const proxy = new RelayProxy({
      apps: () => apps,
      pool: this.#pool,
      trustedProxies: new TrustedProxies(relay.trustedProxies),
      log: this.#log,
    });
    const sni = new SniCertificates(relay.certificates);
    this.#public = createSecureServer(
      {
        ...sni.defaults,
        SNICallback: sni.select,
        allowHTTP1: true,
        minVersion: 'TLSv1.2',
        // Unlike http.createServer, a TLS server leaves Nagle on; a proxy wants each small
        // write on the wire at once.
        noDelay: true,
        settings: { initialWindowSize: 1024 * 1024, maxConcurrentStreams: 250 },
      },
      proxy.handle,
    );
    this.#public.on('upgrade', proxy.handleUpgrade);
    this.#public.on('sessionError', () => {});
    this.#public.on('tlsClientError', (err) =>
      this.#log.debug('public TLS handshake failed', { error: err }),
    );
    // Long-lived responses (SSE, downloads) are bounded by the backend timeout, not here.
    this.#public.setTimeout(0);

    const addresses: RelayAddresses = {
      tunnel: fmt(await this.#tunnel.listen()),
      public: fmt(await listen(this.#public, relay.listen)),
    };
    const publicPort = (this.#public.address() as AddressInfo).port;
    if (relay.redirectHttp) {
      this.#redirect = createHttpServer((req, res) => {
        const host = (req.headers.host ?? '').replace(/:\d+$/, '');
        if (!host) return void res.writeHead(400).end('Host header required\n');
        const port = publicPort === 443 ? '' : `:${publicPort}`;
        res
          .writeHead(301, {
            location: `https://${host}${port}${req.url ?? '/'}`,
            'content-length': 0,
          })
          .end();
      });
      addresses.redirect = fmt(await listen(this.#redirect, relay.redirectHttp));
    }
    if (relay.adminListen) {
      this.#admin = createHttpServer((req, res) => this.#onAdmin(req.url ?? '/', res));
      addresses.admin = fmt(await listen(this.#admin, relay.adminListen));
    }
    this.#seenTimer = setInterval(() => this.#recordSeen(), SEEN_INTERVAL_MS);
    this.#seenTimer.unref();
    this.#ready = true;
    this.#log.info('relay listening', {
      ...addresses,
      apps: apps.size,
      caFingerprint: ca.fingerprint,
    });
    return addresses;
  }

  /** Stops accepting, sends GOAWAY on every tunnel and lets open requests finish (bounded). */
  async stop(): Promise<void> {
    this.#ready = false;
    clearInterval(this.#seenTimer);
    const timeout = this.#config.relay.drainTimeoutMs;
    const closing = [
      this.#tunnel?.close({ drainTimeoutMs: timeout }),
      closeServer(this.#public, timeout),
      closeServer(this.#redirect, 0),
    ];
    await Promise.all(closing);
    await closeServer(this.#admin, 0);
    this.#store?.close();
  }

  #onSession(session: TunnelSession): void {
    const record = this.#store?.getConnector(session.connectorId);
    if (!record) return session.destroy('connector record vanished');
    this.#pool.add(record.group, session);
    this.#store?.recordConnectorSeen(session.connectorId, {
      at: new Date(),
      hostname: session.hello?.hostname,
      version: session.hello?.version,
      capabilities: session.hello?.capabilities,
    });
    this.#log.info('connector connected', {
      connectorId: session.connectorId,
      group: record.group,
      tunnel: session.id,
      remote: session.remoteAddress,
      version: session.hello?.version,
      hostname: session.hello?.hostname,
      capabilities: session.hello?.capabilities,
    });
  }

  #recordSeen(): void {
    const now = new Date();
    const seen = new Set(
      this.#pool
        .all()
        .filter((s) => s.state === 'ready')
        .map((s) => s.connectorId),
    );
    for (const id of seen) this.#store?.recordConnectorSeen(id, { at: now });
  }

  #onAdmin(url: string, res: import('node:http').ServerResponse): void {
    const path = url.split('?')[0];
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(body));
    };
    if (path === '/healthz') return json(200, { status: 'ok' });
    if (path === '/readyz') {
      const tunnels = this.#pool.all().filter((s) => s.state === 'ready');
      const body = {
        status: this.#ready ? 'ready' : 'not ready',
        tunnels: tunnels.length,
        connectors: new Set(tunnels.map((s) => s.connectorId)).size,
      };
      return json(this.#ready ? 200 : 503, body);
    }
    json(404, { error: { code: 'NOT_FOUND' } });
  }

  /** The tunnel listener's server certificate (signed by the connector CA), kept in stateDir. */
  async #tunnelCertificate(ca: ConnectorCA): Promise<{ cert: string; key: string }> {
    const { stateDir, tunnelHosts } = this.#config.relay;
    const certPath = join(stateDir, 'tunnel.pem');
    const keyPath = join(stateDir, 'tunnel-key.pem');
    const hostsPath = join(stateDir, 'tunnel-hosts.json');
    const wanted = JSON.stringify([...tunnelHosts].sort());
    if (
      existsSync(certPath) &&
      existsSync(keyPath) &&
      existsSync(hostsPath) &&
      readFileSync(hostsPath, 'utf8') === wanted
    ) {
      const cert = readFileSync(certPath, 'utf8');
      const check = ca.verify(cert, { now: new Date(Date.now() + RENEW_WINDOW_MS) });
      if (check.ok) return { cert, key: readFileSync(keyPath, 'utf8') };
    }
    const issued = await ca.issueServerCertificate({ hosts: tunnelHosts });
    writeFileSync(keyPath, issued.keyPem, { mode: 0o600 });
    writeFileSync(certPath, issued.certPem);
    writeFileSync(hostsPath, wanted);
    this.#log.info('tunnel certificate issued', {
      hosts: tunnelHosts,
      notAfter: describeCertificate(issued.certPem).notAfter,
    });
    return { cert: issued.certPem, key: issued.keyPem };
  }
}

function fmt(a: AddressInfo): string {
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

function listen(
  server: HttpServer | Http2SecureServer,
  at: { host: string; port: number },
): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

function closeServer(
  server: HttpServer | Http2SecureServer | undefined,
  graceMs: number,
): Promise<void> {
  if (!server) return Promise.resolve();
  return new Promise((resolve) => {
    server.close(() => resolve());
    const http1 = server as HttpServer;
    http1.closeIdleConnections?.();
    const timer = setTimeout(() => {
      http1.closeAllConnections?.();
      resolve();
    }, graceMs);
    timer.unref();
  });
}
