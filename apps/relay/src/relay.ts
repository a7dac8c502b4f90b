import type { RelayConfig, StateStore } from '@appproxy/config';
import { describeCertificate, type ConnectorCA } from '@appproxy/pki';
import { parseRequestHost } from '@appproxy/routing';
import type { Logger } from '@appproxy/telemetry';
import { TunnelListener } from '@appproxy/tunnel';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createSecureServer, type Http2SecureServer } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ConnectorRegistry } from './connector-registry.js';
import { InstanceDirectory, instanceName, instanceTunnelUrl } from './instances.js';
import { RELAY_VERSION } from './version.js';
import { renderError } from './error-pages.js';
import { RelayMetrics } from './metrics.js';
import { createTracer, newTraceId, type Tracer } from '@appproxy/telemetry';
import type { ServerHttp2Session } from 'node:http2';
import { divertRpcConnections } from './rpc-over-http.js';
import { RelayProxy } from './proxy.js';
import { PublicConnections } from './public-connections.js';
import { registrationHandler } from './registration.js';
import { Edge } from './edge.js';
import { ACME_TLS_ALPN, AcmeCertificates, fleetLeader } from './acme.js';
import {
  loadConnectorCa,
  openRelayStore,
  sharedSessionSecret,
  withSessionSecret,
} from './relay-store.js';
import { testApp, type AppTestOptions, type AppTestResult } from './diagnostics.js';
import { createAdminServer, type AdminHost } from './admin/server.js';
import { adminExtensions } from './admin/extensions.js';
import { AuditLog, forwardingSink, type AuditSink } from './audit.js';

export interface RelayAddresses {
  public: string;
  tunnel: string;
  admin?: string;
  redirect?: string;
}

/**
 * One worker of `relay.workers` (a relay instance of its own): the public and redirect
 * listeners are shared with the other workers (SO_REUSEPORT), the tunnel listener is its own
 * (`tunnelListen.port + index`, or an ephemeral port when that is 0), the admin listener is
 * the primary's.
 */
export interface RelayWorker {
  index: number;
  count: number;
  /** The public port worker 0 bound (when `listen.port` is 0); the others bind the same. */
  listenPort?: number;
  /** Likewise for `redirectHttp`. */
  redirectPort?: number;
}

/** How long a starting instance waits for the fleet's connectors before serving anyway. */
const FLEET_WARMUP_MS = 10_000;

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
  /** What request handling reads from the configuration now; replaced whole by `reload`. */
  #edge: Edge | undefined;
  #acme: AcmeCertificates | undefined;
  /** The session secret shared through a PostgreSQL store, when none is configured. */
  #sharedSecret: { id: string; secret: string } | undefined;
  /** Set when this relay is one of `relay.workers`. */
  readonly worker: RelayWorker | undefined;
  #tunnelPort: number | undefined;
  /** This instance among those sharing the store: heartbeat, the live list for connectors. */
  #instances: InstanceDirectory | undefined;
  #audit: AuditLog | undefined;
  /** What the relay's components record into: the AuditLog once started. */
  readonly #auditSink: AuditSink = forwardingSink(() => this.#audit);
  #tracer: Tracer | undefined;

  constructor(config: RelayConfig, log: Logger, opts: { worker?: RelayWorker } = {}) {
    this.#config = config;
    this.#log = log;
    this.worker = opts.worker;
  }

  /**
   * The audit log (`relay.audit`): a log line per event, stored in the state store.
   * @throws before `start` opened the store
   */
  get audit(): AuditLog {
    if (!this.#audit) throw new Error('the relay is not started');
    return this.#audit;
  }

  /** The port the tunnel listener bound (once started): each worker has its own. */
  get tunnelPort(): number | undefined {
    return this.#tunnelPort;
  }

  async start(): Promise<RelayAddresses> {
    const { relay } = this.#config;
    const store = await openRelayStore(relay, {
      instance: instanceName(relay.instance?.name ?? hostname(), this.worker),
    });
    this.#store = store;
    this.#audit = new AuditLog({
      store,
      log: this.#log,
      retentionMs: relay.audit.retentionMs,
      metrics: this.metrics.audit,
    });
    const ca = await loadConnectorCa(store, relay.stateDir);
    this.#sharedSecret = await sharedSessionSecret(store);
    const tunnelCert = await this.#tunnelCertificate(ca);
    // Built first: a configuration that cannot serve (a bad certificate, an SSO template)
    // stops the start here, before any listener opens.
    const edge = new Edge(
      withSessionSecret(this.#config, this.#sharedSecret),
      this.#log,
      undefined,
      this.#auditSink,
    );
    this.#edge = edge;
    // Workers: worker 0 orders and renews, the others serve what it writes in stateDir.
    // PostgreSQL: the material is in the store; the fleet's first live instance orders.
    const acme = new AcmeCertificates(
      relay.stateDir,
      this.#log,
      !this.worker ? 'alone' : this.worker.index === 0 ? 'leader' : 'follower',
      store.kind === 'postgres'
        ? {
            store,
            isLeader: () => {
              const list = this.#instances?.list();
              return (
                !!list && fleetLeader(list.instances.map((i) => i.name)) === list.instance.name
              );
            },
          }
        : undefined,
    );
    this.#acme = acme;
    // Certificate expiry at scrape time: the configuration serving now, and ACME's.
    this.metrics.registry.onCollect(() => {
      const gauge = this.metrics.certificateExpiry;
      gauge.reset();
      for (const [source, list] of [
        ['configured', this.#edge!.certificates.expiries()],
        ['acme', acme.expiries()],
      ] as const)
        for (const c of list) gauge.labels(c.name, source).set(c.notAfter.getTime() / 1000);
    });
    // The registry and registration read the group names of the edge serving now.
    const groups = () => this.#edge!.groups;
    const connectors = new ConnectorRegistry({
      store,
      ca,
      log: this.#log,
      metrics: this.metrics,
      groups,
      certValidityMs: relay.connectorCertValidityMs,
      inactiveRetentionMs: relay.inactiveConnectorRetentionMs,
      audit: this.#auditSink,
    });
    this.#connectors = connectors;

    const worker = this.worker;
    const tunnelListen = {
      host: relay.tunnelListen.host,
      port: relay.tunnelListen.port === 0 ? 0 : relay.tunnelListen.port + (worker?.index ?? 0),
    };
    this.#tunnel = new TunnelListener({
      ...tunnelListen,
      cert: tunnelCert.cert + ca.certPem,
      key: tunnelCert.key,
      ca: ca.certPem,
      pingIntervalMs: relay.pingIntervalMs,
      pingTimeoutMs: relay.pingTimeoutMs,
      authorize: connectors.authorize,
      // This instance and every live one of the fleet, in each tunnel's hello (§3.6).
      instances: () => this.#instances?.list(),
      onRegistration: registrationHandler({
        ca,
        store,
        log: this.#log,
        knownGroups: groups,
        certValidityMs: relay.connectorCertValidityMs,
        audit: this.#auditSink,
      }),
    });
    this.#tunnel.on('session', (session) => connectors.add(session));
    this.#tunnel.on('refused', (r) => this.#log.warn('tunnel refused', { ...r }));

    const { signIn } = edge;
    if (signIn.rp) {
      this.#log.info('pre-authentication', {
        issuer: signIn.rp.provider.issuer,
        redirectUris: signIn.redirectUris(),
      });
      // Discovery and keys now, so a misconfigured provider shows in the log at start.
      this.#providerCheck(signIn);
    }
    const connections = new PublicConnections(relay.limits, this.#log, this.metrics, (address) =>
      this.#edge!.trustedProxies.has(address),
    );
    // telemetry.otlp: the OpenTelemetry SDK is loaded only then (restart-only setting).
    this.#tracer = await createTracer({
      ...(this.#config.telemetry?.otlp && { otlp: this.#config.telemetry.otlp }),
      serviceName: 'appproxy-relay',
      instanceId: store.instance,
      version: RELAY_VERSION,
      log: this.#log,
    });
    const proxy = new RelayProxy({
      edge: () => this.#edge!,
      connections,
      groups: connectors.groups,
      metrics: this.metrics,
      log: this.#log,
      audit: this.#auditSink,
      tracer: this.#tracer,
      instance: store.instance,
    });
    this.#proxy = proxy;
    const limited = connections.serverOptions();
    this.#public = createSecureServer(
      {
        ...limited,
        ...edge.certificates.defaults,
        // The current configuration's certificates (a reload swaps them for new handshakes).
        SNICallback: (servername, cb) => {
          const { certificates } = this.#edge!;
          // Configured certificates first; ACME ones for the hosts they do not cover.
          if (certificates.covers(servername)) return certificates.select(servername, cb);
          const pick = () => cb(null, acme.context(servername) ?? certificates.find(servername));
          // PostgreSQL: a TLS-ALPN-01 challenge another instance stored is read first.
          const reading = acme.sharedChallenge(servername);
          if (reading) void reading.then(pick);
          else pick();
        },
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
    divertRpcConnections(this.#public, {
      onRequest: proxy.handleRpc,
      onRefused: proxy.refuseRpcHead,
      headersTimeoutMs: () => this.#edge!.config.relay.limits.headersTimeoutMs,
    });
    // TLS-ALPN-01 (RFC 8737): the CA offers only acme-tls/1; it is last so clients offering
    // h2 or http/1.1 get those. Such a connection ends after its handshake (unknownProtocol).
    (this.#public as unknown as { ALPNProtocols: Buffer }).ALPNProtocols = alpnWire([
      'h2',
      'http/1.1',
      ACME_TLS_ALPN,
    ]);
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

    // The registry's cache is filled before the first tunnel can arrive.
    await connectors.start();
    const tunnelAt = await this.#tunnel
      .listen()
      .catch((err: Error) => Promise.reject(listenError('tunnelListen', tunnelListen, err)));
    this.#tunnelPort = tunnelAt.port;
    this.#instances = new InstanceDirectory({
      store,
      self: {
        name: store.instance,
        version: RELAY_VERSION,
        ...(relay.instance?.tunnelUrl && {
          tunnelUrl: instanceTunnelUrl(
            relay.instance.tunnelUrl,
            worker,
            relay.tunnelListen.port === 0 ? this.#tunnelPort : undefined,
          ),
        }),
      },
      log: this.#log,
      onChange: (list) => {
        this.#edge?.throttle.setShare(list.instances.length);
        this.#acme?.fleetChanged();
        void this.#tunnel?.announceInstances(list);
      },
    });
    await this.#instances.start();
    this.#edge?.throttle.setShare(this.#instances.liveCount);
    // Joining a fleet (or a worker restarting): public traffic only once the connectors the
    // other instances reach have tunnels here too, or FLEET_WARMUP_MS passed.
    await connectors.awaitFleetConnectors(store.instance, FLEET_WARMUP_MS);
    const addresses: RelayAddresses = {
      tunnel: fmt(tunnelAt),
      public: fmt(
        await listen(this.#public, shared(relay.listen, worker?.listenPort), 'listen', !!worker),
      ),
    };
    const publicPort = (this.#public.address() as AddressInfo).port;
    if (relay.redirectHttp) {
      this.#redirect = createHttpServer((req, res) => {
        if (acme.answerHttp01(req, res)) return;
        // Only `host[:port]`: the Location must not point anywhere the client's text says.
        const host = parseRequestHost(req.headers.host ?? '')?.hostname;
        if (host === undefined) {
          const page = renderError('BAD_REQUEST_HOST', {
            correlationId: newTraceId(),
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
      addresses.redirect = fmt(
        await listen(
          this.#redirect,
          shared(relay.redirectHttp, worker?.redirectPort),
          'redirectHttp',
          !!worker,
        ),
      );
    }
    if (relay.adminListen && !worker) {
      const host = this.#adminHost();
      this.#admin = createAdminServer(host, adminExtensions(host));
      addresses.admin = fmt(await listen(this.#admin, relay.adminListen, 'adminListen'));
    }
    acme.configure(this.#config, (host) => edge.certificates.covers(host));
    acme.fleetChanged();
    this.#ready = true;
    this.#log.info(this.worker ? 'relay worker listening' : 'relay listening', {
      ...addresses,
      apps: edge.apps.size,
      caFingerprint: ca.fingerprint,
    });
    return addresses;
  }

  /**
   * "Test application": the app's checks through each connector of its group with a tunnel
   * here, or the one named (`diagnostics.ts`); audited as `admin.app.tested`.
   */
  testApp(name: string, o: AppTestOptions = {}): Promise<AppTestResult> {
    if (!this.#edge || !this.#connectors || !this.#store)
      return Promise.reject(new Error('the relay is not started'));
    return testApp(
      {
        edge: this.#edge,
        groups: this.#connectors.groups,
        store: this.#store,
        log: this.#log,
        audit: this.#auditSink,
      },
      name,
      o,
    );
  }

  /** The configuration serving now. */
  get config(): RelayConfig {
    return this.#edge?.config ?? this.#config;
  }

  /**
   * Hot reload (SIGHUP): builds everything request handling reads from `config` — apps,
   * certificates, connector groups, identity provider and session settings, single sign-on,
   * trusted proxies — and swaps it in for new requests. Requests in flight, open connections,
   * WebSockets and tunnels go on untouched. Settings a running relay cannot change
   * (listeners, stateDir, tunnel and limit settings) are reported in `needRestart` and keep
   * their running values. Throws, changing nothing, when the new configuration cannot serve.
   */
  reload(config: RelayConfig): { needRestart: string[] } {
    const previous = this.#edge;
    if (!previous) throw new Error('the relay is not started');
    const edge = new Edge(
      withSessionSecret(config, this.#sharedSecret),
      this.#log,
      previous,
      this.#auditSink,
    );
    this.#edge = edge;
    // The default certificate of clients that send no SNI.
    this.#public?.setSecureContext({ ...edge.certificates.defaults, minVersion: 'TLSv1.2' });
    if (edge.signIn.rp && edge.signIn.rp !== previous.signIn.rp) this.#providerCheck(edge.signIn);
    this.#acme?.configure(config, (host) => edge.certificates.covers(host));
    return { needRestart: restartOnly(previous.config, config) };
  }

  /** Discovery and keys of the identity provider now, logged when they fail. */
  #providerCheck(signIn: Edge['signIn']): void {
    signIn.rp?.ready().catch((err: Error & { code?: string }) =>
      this.#log.warn('identity provider not reachable yet', {
        code: err.code,
        detail: err.message,
      }),
    );
  }

  /**
   * Graceful shutdown, bounded by `drainTimeout`: stop accepting clients (GOAWAY to HTTP/2
   * clients, `Connection: close` to HTTP/1.1 ones), let requests in flight finish through
   * the tunnels, then GOAWAY the tunnels and close.
   */
  async stop(): Promise<void> {
    this.#ready = false;
    // Behind a load balancer: /readyz says 503 while everything is still served, so new
    // clients are sent elsewhere before this relay stops accepting any.
    const delay = this.#config.relay.shutdownDelayMs;
    if (delay > 0) {
      this.#log.info('relay not ready; serving on for the shutdown delay', {
        shutdownDelayMs: delay,
      });
      await sleep(delay);
    }
    this.#acme?.stop();
    const timeout = this.#config.relay.drainTimeoutMs;
    const deadline = Date.now() + timeout;
    const publicClosed = closeServer(this.#public, timeout);
    for (const session of this.#clientSessions) session.close();
    const redirectClosed = closeServer(this.#redirect, 0);
    await Promise.race([this.#proxy?.drain(), sleep(timeout)]);
    await this.#connectors?.stop();
    await Promise.all([
      this.#tunnel?.close({ drainTimeoutMs: Math.max(0, deadline - Date.now()) }),
      publicClosed,
      redirectClosed,
    ]);
    // Drained: the instance leaves the fleet's list (its heartbeat stops), so connectors and
    // the other instances are told now, not when the heartbeat expires.
    await this.#instances?.stop();
    await closeServer(this.#admin, 0);
    // After the tunnels closed: their disconnections are in the last batch.
    await this.#audit?.stop();
    await this.#store?.close();
    // The spans of the last requests are exported before the process ends.
    await this.#tracer?.shutdown();
  }

  /** The admin server's view of this relay. */
  #adminHost(): AdminHost {
    const log = this.#log;
    return {
      config: () => this.config,
      store: this.#store!,
      audit: this.#auditSink,
      log,
      health: () => {
        const connectors = this.#connectors?.groups.connectors() ?? [];
        return {
          ready: this.#ready,
          body: {
            status: this.#ready ? 'ready' : 'not ready',
            tunnels: connectors.reduce((n, c) => n + c.accepting, 0),
            connectors: connectors.filter((c) => c.accepting > 0).length,
          },
        };
      },
      metrics: () => this.metrics.registry.render(),
      testApp: (name, o) => this.testApp(name, o),
      relyingParty: () => this.#edge?.signIn.rp,
    };
  }

  /** The tunnel listener's server certificate (signed by the connector CA), kept in stateDir. */
  async #tunnelCertificate(ca: ConnectorCA): Promise<{ cert: string; key: string }> {
    const { stateDir, instance } = this.#config.relay;
    // The certificate names the host connectors dial (relay.instance.tunnelUrl) too.
    const tunnelHosts = [...this.#config.relay.tunnelHosts];
    const advertised =
      instance?.tunnelUrl && new URL(instance.tunnelUrl).hostname.replace(/^\[|\]$/g, '');
    if (advertised && !tunnelHosts.includes(advertised)) tunnelHosts.push(advertised);
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

/**
 * `relay.*` settings a reload cannot apply: listeners, state, the tunnel and limits are
 * bound when the relay starts; `telemetry` too.
 */
function restartOnly(before: RelayConfig, after: RelayConfig): string[] {
  const live = new Set([
    'certificates',
    'trustedProxies',
    'stripRequestHeaders',
    'sessionSecrets',
    'pages',
    'acme',
  ]);
  const keys = new Set([...Object.keys(before.relay), ...Object.keys(after.relay)]);
  const changed: string[] = [];
  for (const key of keys) {
    if (live.has(key)) continue;
    const a = (before.relay as Record<string, unknown>)[key];
    const b = (after.relay as Record<string, unknown>)[key];
    if (JSON.stringify(a) !== JSON.stringify(b)) changed.push(`relay.${key}`);
  }
  // The tracer (and its exporter) is made once at start.
  if (JSON.stringify(before.telemetry) !== JSON.stringify(after.telemetry))
    changed.push('telemetry');
  return changed;
}

/** ALPN protocol names in their wire form (length-prefixed), as tls.Server keeps them. */
function alpnWire(names: string[]): Buffer {
  return Buffer.concat(names.map((n) => Buffer.concat([Buffer.from([n.length]), Buffer.from(n)])));
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

/** `host:port` of a bound listener (`[v6]:port`). */
export function fmt(a: AddressInfo): string {
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

/** A listener of workers: the port worker 0 bound when the configuration says 0. */
const shared = (at: { host: string; port: number }, port: number | undefined) =>
  port === undefined ? at : { host: at.host, port };

/** Binds `server` at `at`; a failure is a ListenError named by its setting. */
export function listen(
  server: HttpServer | Http2SecureServer,
  at: { host: string; port: number },
  setting: ListenSetting,
  reusePort = false,
): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const fail = (err: Error) => reject(listenError(setting, at, err));
    server.once('error', fail);
    // Workers share the port: the kernel spreads new connections over them (SO_REUSEPORT).
    server.listen({ port: at.port, host: at.host, ...(reusePort && { reusePort }) }, () => {
      server.off('error', fail);
      resolve(server.address() as AddressInfo);
    });
  });
}

type ListenSetting = 'listen' | 'tunnelListen' | 'adminListen' | 'redirectHttp';

/** A listener that could not bind, named by its setting: `relay.tunnelListen 0.0.0.0:8443 is already in use`. */
export class ListenError extends Error {
  readonly code = 'APPPROXY_LISTEN_FAILED';
  constructor(message: string, options: { cause: unknown }) {
    super(message, options);
    this.name = 'ListenError';
  }
}

function listenError(
  setting: ListenSetting,
  at: { host: string; port: number },
  err: Error & { code?: string },
): ListenError {
  const where = `relay.${setting} ${at.host.includes(':') ? `[${at.host}]` : at.host}:${at.port}`;
  const why =
    err.code === 'EADDRINUSE'
      ? 'is already in use'
      : err.code === 'EACCES'
        ? 'needs privileges to bind (ports below 1024: CAP_NET_BIND_SERVICE)'
        : err.code === 'EADDRNOTAVAIL'
          ? 'is not an address of this host'
          : `cannot be bound: ${err.code ?? err.message}`;
  return new ListenError(`${where} ${why}`, { cause: err });
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
