import {
  MetricsRegistry,
  registerProcessMetrics,
  type CounterChild,
  type GaugeChild,
  type HistogramChild,
} from '@appproxy/telemetry';

/** One app's series, looked up once per app instead of once per request and series. */
export interface AppSeries {
  inFlight: GaugeChild;
  duration: HistogramChild;
  bytesToBackend: CounterChild;
  bytesFromBackend: CounterChild;
  requests(status: number | 'aborted'): CounterChild;
  backendErrors(code: string): CounterChild;
  /** A request sent again on a fresh connection after a reused one failed. */
  backendRetries: CounterChild;
}
/** Apps whose series are kept at hand (the relay names a handful; bounded regardless). */
const MAX_CACHED_APPS = 1000;

/**
 * The connector's Prometheus series — its "performance counters" (docs/operations.md lists
 * what each means), served on `--metrics-listen`.
 */
export class ConnectorMetrics {
  readonly registry = new MetricsRegistry();
  readonly requests = this.registry.counter(
    'appproxy_connector_requests_total',
    'Requests forwarded to backends, by app and status (the backend’s, or the error page’s).',
    ['app', 'status'],
  );
  readonly backendErrors = this.registry.counter(
    'appproxy_connector_backend_errors_total',
    'Backend requests that failed, by app and code (BACKEND_UNREACHABLE, BACKEND_TIMEOUT, …).',
    ['app', 'code'],
  );
  readonly backendRetries = this.registry.counter(
    'appproxy_connector_backend_retries_total',
    'Requests sent again on a fresh connection after a kept-alive one failed before any response, by app.',
    ['app'],
  );
  readonly inFlight = this.registry.gauge(
    'appproxy_connector_requests_in_flight',
    'Requests being forwarded now, by app.',
    ['app'],
  );
  readonly duration = this.registry.histogram(
    'appproxy_connector_backend_duration_seconds',
    'Time from the tunnel stream to the end of the backend’s response, by app.',
    ['app'],
  );
  readonly bytesToBackend = this.registry.counter(
    'appproxy_connector_request_bytes_total',
    'Request body bytes sent to backends, by app.',
    ['app'],
  );
  readonly bytesFromBackend = this.registry.counter(
    'appproxy_connector_response_bytes_total',
    'Response body bytes received from backends, by app.',
    ['app'],
  );
  readonly upgrades = this.registry.gauge(
    'appproxy_connector_upgrades_open',
    'Upgraded connections (WebSocket) open now, by app.',
    ['app'],
  );
  readonly pinnedConnections = this.registry.gauge(
    'appproxy_connector_pinned_connections',
    'Client connections (affinity ids) holding a dedicated backend connection for NTLM/Negotiate now.',
  );
  readonly tunnels = this.registry.gauge(
    'appproxy_connector_tunnels_connected',
    'Tunnels to the relay connected now.',
  );
  readonly instanceTunnels = this.registry.gauge(
    'appproxy_connector_tunnels',
    'Tunnels connected now, by relay instance (its name, or its address for a relay without instances).',
    ['instance'],
  );
  readonly tunnelConnects = this.registry.counter(
    'appproxy_connector_tunnel_connects_total',
    'Tunnels opened to the relay.',
  );
  readonly tunnelDisconnects = this.registry.counter(
    'appproxy_connector_tunnel_disconnects_total',
    'Tunnels lost or closed.',
  );
  readonly tunnelConnectFailures = this.registry.counter(
    'appproxy_connector_tunnel_connect_failures_total',
    'Attempts to open a tunnel that failed.',
  );
  readonly certificateExpiry = this.registry.gauge(
    'appproxy_connector_certificate_expiry_timestamp_seconds',
    'When the connector’s certificate expires (renewed automatically when a third is left).',
  );

  readonly kerberosKdcExchanges = this.registry.counter(
    'appproxy_connector_kerberos_kdc_exchanges_total',
    'Round trips to a Kerberos KDC (service login, S4U2Self, S4U2Proxy).',
  );
  readonly kerberosTicketCacheHits = this.registry.counter(
    'appproxy_connector_kerberos_ticket_cache_hits_total',
    'Kerberos single sign-on requests served from the ticket cache (no KDC round trip).',
  );

  readonly #apps = new Map<string, AppSeries>();

  constructor() {
    registerProcessMetrics(this.registry);
  }

  /** Counts a Kerberos delegator's KDC round trips and cache hits at each scrape. */
  watchKerberos(stats: { readonly kdcExchanges: number; readonly ticketCacheHits: number }): void {
    const seen = { kdcExchanges: 0, ticketCacheHits: 0 };
    const exchanges = this.kerberosKdcExchanges.labels();
    const hits = this.kerberosTicketCacheHits.labels();
    this.registry.onCollect(() => {
      exchanges.inc(stats.kdcExchanges - seen.kdcExchanges);
      hits.inc(stats.ticketCacheHits - seen.ticketCacheHits);
      seen.kdcExchanges = stats.kdcExchanges;
      seen.ticketCacheHits = stats.ticketCacheHits;
    });
  }

  /** Recomputes the per-instance tunnel gauge at each scrape (instances come and go). */
  watchInstances(counts: () => ReadonlyMap<string, number>): void {
    this.registry.onCollect(() => {
      this.instanceTunnels.reset();
      for (const [instance, n] of counts()) this.instanceTunnels.labels(instance).set(n);
    });
  }

  /** The per-app series of the request path, cached. */
  forApp(app: string): AppSeries {
    let series = this.#apps.get(app);
    if (series) return series;
    const byStatus = new Map<number | 'aborted', CounterChild>();
    series = {
      inFlight: this.inFlight.labels(app),
      duration: this.duration.labels(app),
      bytesToBackend: this.bytesToBackend.labels(app),
      bytesFromBackend: this.bytesFromBackend.labels(app),
      requests: (status) => {
        let child = byStatus.get(status);
        if (!child) {
          child = this.requests.labels(app, String(status));
          byStatus.set(status, child);
        }
        return child;
      },
      backendErrors: (code) => this.backendErrors.labels(app, code),
      backendRetries: this.backendRetries.labels(app),
    };
    if (this.#apps.size >= MAX_CACHED_APPS) this.#apps.clear();
    this.#apps.set(app, series);
    return series;
  }
}
