import { openStateStore, type RelayConfig, type StateStore } from '@appproxy/config';
import { ConnectorCA, describeCertificate } from '@appproxy/pki';
import { AppTable, parseRequestHost } from '@appproxy/routing';
import type { Logger } from '@appproxy/telemetry';
import { TunnelListener } from '@appproxy/tunnel';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createSecureServer, type Http2SecureServer } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { ConnectorRegistry } from './connector-registry.js';
import { renderError } from './error-pages.js';
import { TrustedProxies } from './forwarded.js';
import { RelayMetrics } from './metrics.js';
import { METRICS_CONTENT_TYPE } from '@appproxy/telemetry';
import type { ServerHttp2Session } from 'node:http2';
import { RelayProxy } from './proxy.js';
import { PublicConnections } from './public-connections.js';
import { registrationHandler } from './registration.js';
import { LinkTranslation } from './link-translation.js';
import { SignIn } from './sign-in.js';
import { SingleSignOn } from './single-sign-on.js';
import { SniCertificates } from './tls-contexts.js';

export interface RelayAddresses {
  public: string;
  tunnel: string;
  admin?: string;
  redirect?: string;
}

/** Reissue the tunnel certificate when it expires within this window. */
const RENEW_WINDOW_MS = 30 * 24 * 3600 * 1000;

/**
 * The public edge, assembled: HTTPS listener (h2 + HTTP/1.1 via ALPN, SNI), tunnel listener
 * (mTLS, registration), optional admin and 80→443 redirect listeners.
 */
export class Relay {
  readonly #config: RelayConfig;
  readonly #log: Logger;
  readonly metrics = new RelayMetrics();
  #store: StateStore | undefined;
  #connectors: ConnectorRegistry | undefined;
  #proxy: RelayProxy | undefined;
  #tunnel: TunnelListener | undefined;
  #public: Http2SecureServer | undefined;
  /** HTTP/2 client sessions of the public listener, to send them GOAWAY on shutdown. */
  readonly #clientSessions = new Set<ServerHttp2Session>();
  #admin: HttpServer | undefined;
  #redirect: HttpServer | undefined;
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
    const connectors = new ConnectorRegistry({
      store,
      ca,
      log: this.#log,
      metrics: this.metrics,
      groups,
      certValidityMs: relay.connectorCertValidityMs,
      inactiveRetentionMs: relay.inactiveConnectorRetentionMs,
    });
    this.#connectors = connectors;

    this.#tunnel = new TunnelListener({
      host: relay.tunnelListen.host,
      port: relay.tunnelListen.port,
      cert: tunnelCert.cert + ca.certPem,
      key: tunnelCert.key,
      ca: ca.certPem,
      pingIntervalMs: relay.pingIntervalMs,
      pingTimeoutMs: relay.pingTimeoutMs,
      authorize: connectors.authorize,
      onRegistration: registrationHandler({
        ca,
        store,
        log: this.#log,
        knownGroups: () => groups,
        certValidityMs: relay.connectorCertValidityMs,
      }),
    });
    this.#tunnel.on('session', (session) => connectors.add(session));
    this.#tunnel.on('refused', (r) => this.#log.warn('tunnel refused', { ...r }));

    const apps = new AppTable(this.#config.apps);
    const sso = new SingleSignOn(this.#config, this.#log);
    const signIn = new SignIn(this.#config, this.#log, { keepClaims: sso.claimPaths });
    if (signIn.rp) {
      this.#log.info('pre-authentication', {
        issuer: signIn.rp.provider.issuer,
        redirectUris: signIn.redirectUris(),
      });
      // Discovery and keys now, so a misconfigured provider shows in the log at start.
      signIn.rp.ready().catch((err: Error & { code?: string }) =>
        this.#log.warn('identity provider not reachable yet', {
          code: err.code,
          detail: err.message,
        }),
      );
    }
    const trustedProxies = new TrustedProxies(relay.trustedProxies);
    const connections = new PublicConnections(relay.limits, this.#log, this.metrics, (address) =>
      trustedProxies.has(address),
    );
    const proxy = new RelayProxy({
      apps: () => apps,
      connections,
      groups: connectors.groups,
      trustedProxies,
      metrics: this.metrics,
      signIn,
      sso,
      links: new LinkTranslation(this.#config.apps),
      log: this.#log,
    });
    this.#proxy = proxy;
    const sni = new SniCertificates(relay.certificates);
    const limited = connections.serverOptions();
    this.#public = createSecureServer(
      {
        ...limited,
        ...sni.defaults,
        SNICallback: sni.select,
        allowHTTP1: true,
        minVersion: 'TLSv1.2',
        // Unlike http.createServer, a TLS server leaves Nagle on; a proxy wants each small
        // write on the wire at once.
        noDelay: true,
        settings: { initialWindowSize: 1024 * 1024, ...limited.settings },
      },
      proxy.handle,
    );
    connections.attach(this.#public);
    this.#public.on('upgrade', proxy.handleUpgrade);
    this.#public.on('clientError', proxy.handleClientError);
    this.#public.on('session', (session) => {
      this.#clientSessions.add(session);
      session.once('close', () => this.#clientSessions.delete(session));
    });
    this.#public.on('sessionError', () => {});
    this.#public.on('tlsClientError', (err) =>
      this.#log.debug('public TLS handshake failed', { error: err }),
    );
    // No socket inactivity timeout: long-lived responses (SSE, downloads) are bounded by the
    // backend timeout; idle and header timeouts are relay.limits' (PublicConnections).
    this.#public.setTimeout(0);

    const addresses: RelayAddresses = {
      tunnel: fmt(await this.#tunnel.listen()),
      public: fmt(await listen(this.#public, relay.listen)),
    };
    const publicPort = (this.#public.address() as AddressInfo).port;
    if (relay.redirectHttp) {
      this.#redirect = createHttpServer((req, res) => {
        // Only `host[:port]`: the Location must not point anywhere the client's text says.
        const host = parseRequestHost(req.headers.host ?? '')?.hostname;
        if (host === undefined) {
          const page = renderError('BAD_REQUEST_HOST', {
            correlationId: randomUUID(),
            accept: req.headers.accept,
          });
          return void res.writeHead(page.status, page.headers).end(page.body);
        }
        const port = publicPort === 443 ? '' : `:${publicPort}`;
        const path = req.url?.startsWith('/') ? req.url : '/';
        res
          .writeHead(301, {
            location: `https://${host.includes(':') ? `[${host}]` : host}${port}${path}`,
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
    connectors.start();
    this.#ready = true;
    this.#log.info('relay listening', {
      ...addresses,
      apps: apps.size,
      caFingerprint: ca.fingerprint,
    });
    return addresses;
  }

  /**
   * Graceful shutdown, bounded by `drainTimeout`: stop accepting clients (GOAWAY to HTTP/2
   * clients, `Connection: close` to HTTP/1.1 ones), let requests in flight finish through
   * the tunnels, then GOAWAY the tunnels and close.
   */
  async stop(): Promise<void> {
    this.#ready = false;
    const timeout = this.#config.relay.drainTimeoutMs;
    const deadline = Date.now() + timeout;
    const publicClosed = closeServer(this.#public, timeout);
    for (const session of this.#clientSessions) session.close();
    const redirectClosed = closeServer(this.#redirect, 0);
    await Promise.race([this.#proxy?.drain(), sleep(timeout)]);
    this.#connectors?.stop();
    await Promise.all([
      this.#tunnel?.close({ drainTimeoutMs: Math.max(0, deadline - Date.now()) }),
      publicClosed,
      redirectClosed,
    ]);
    await closeServer(this.#admin, 0);
    this.#store?.close();
  }

  #onAdmin(url: string, res: import('node:http').ServerResponse): void {
    const path = url.split('?')[0];
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(body));
    };
    if (path === '/healthz') return json(200, { status: 'ok' });
    if (path === '/readyz') {
      const connectors = this.#connectors?.groups.connectors() ?? [];
      const body = {
        status: this.#ready ? 'ready' : 'not ready',
        tunnels: connectors.reduce((n, c) => n + c.accepting, 0),
        connectors: connectors.filter((c) => c.accepting > 0).length,
      };
      return json(this.#ready ? 200 : 503, body);
    }
    if (path === '/metrics') {
      res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE, 'cache-control': 'no-store' });
      return void res.end(this.metrics.registry.render());
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

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

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
