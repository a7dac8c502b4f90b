import { MetricsRegistry, registerProcessMetrics } from '@appproxy/telemetry';

/**
 * The relay's Prometheus series (docs/operations.md lists what each means). One instance per
 * relay; the request pump and the connector registry update them in place.
 */
export class RelayMetrics {
  readonly registry = new MetricsRegistry();
  readonly requests = this.registry.counter(
    'appproxy_requests_total',
    'Requests answered, by app and HTTP status (errors included).',
    ['app', 'status'],
  );
  readonly aborted = this.registry.counter(
    'appproxy_requests_aborted_total',
    'Requests the client reset or left before the response ended, by app (also in requests_total as status 499).',
    ['app'],
  );
  readonly errors = this.registry.counter(
    'appproxy_request_errors_total',
    'Requests refused or failed by the relay, by app and error code.',
    ['app', 'code'],
  );
  readonly throttled = this.registry.counter(
    'appproxy_requests_throttled_total',
    'Requests refused with 429 THROTTLED, by app and the limit that refused them (relay, app, user).',
    ['app', 'scope'],
  );
  readonly inFlight = this.registry.gauge(
    'appproxy_requests_in_flight',
    'Requests being proxied now, by app.',
    ['app'],
  );
  readonly duration = this.registry.histogram(
    'appproxy_request_duration_seconds',
    'Time from request to the end of the response, by app.',
    ['app'],
  );
  readonly bytesIn = this.registry.counter(
    'appproxy_request_bytes_total',
    'Request body bytes received from clients, by app.',
    ['app'],
  );
  readonly bytesOut = this.registry.counter(
    'appproxy_response_bytes_total',
    'Response body bytes sent to clients, by app.',
    ['app'],
  );
  readonly retries = this.registry.counter(
    'appproxy_connector_retries_total',
    'Requests sent again to another connector after a safe failure, by app.',
    ['app'],
  );
  readonly upgrades = this.registry.gauge(
    'appproxy_upgrades_open',
    'Upgraded connections (WebSocket) open now, by app.',
    ['app'],
  );
  readonly tunnelConnects = this.registry.counter(
    'appproxy_tunnel_connects_total',
    'Tunnels opened by connectors, by connector group.',
    ['group'],
  );
  readonly tunnelDisconnects = this.registry.counter(
    'appproxy_tunnel_disconnects_total',
    'Tunnels closed, by connector group and reason (closed, ping_timeout, revoked, error).',
    ['group', 'reason'],
  );
  readonly tunnelsOpen = this.registry.gauge(
    'appproxy_tunnels_open',
    'Tunnels open now, by connector group.',
    ['group'],
  );
  readonly connectors = this.registry.gauge(
    'appproxy_connectors',
    'Registered connectors by group and state (active, inactive, revoked).',
    ['group', 'state'],
  );
  readonly renewals = this.registry.counter(
    'appproxy_connector_certificate_renewals_total',
    'Connector certificate renewals, by result (ok, failed).',
    ['result'],
  );

  readonly connectionsOpen = this.registry.gauge(
    'appproxy_connections_open',
    'Client connections open on the public listener now.',
  );
  readonly connectionsPinned = this.registry.gauge(
    'appproxy_connections_pinned',
    'HTTP/1.1 client connections pinned to a connector for NTLM/Negotiate passthrough now.',
  );
  readonly connectionsRefused = this.registry.counter(
    'appproxy_connections_refused_total',
    'Client connections closed on arrival, by limit (max_connections, max_connections_per_client).',
    ['reason'],
  );
  readonly connectionsClosed = this.registry.counter(
    'appproxy_connections_closed_total',
    'HTTP/2 client connections the relay closed, by reason (headers_timeout, idle, too_many_resets).',
    ['reason'],
  );
  readonly certificateExpiry = this.registry.gauge(
    'appproxy_certificate_expiry_timestamp_seconds',
    'When each certificate of the public listener expires (Unix seconds), by certificate name and source (configured, acme).',
    ['certificate', 'source'],
  );
  readonly audit = registerAuditMetrics(this.registry);
  constructor() {
    registerProcessMetrics(this.registry);
  }
}

/**
 * The audit log's counters: on a relay's registry, and on the workers primary's (which has
 * an audit log of its own for the admin API and console).
 */
export function registerAuditMetrics(registry: MetricsRegistry) {
  return {
    events: registry.counter(
      'appproxy_audit_events_total',
      'Audit events recorded (each also a log line), by type.',
      ['type'],
    ),
    dropped: registry.counter(
      'appproxy_audit_events_dropped_total',
      'Audit events logged but not stored, by reason (queue_full, store_failed, stopped).',
      ['reason'],
    ),
  };
}

/** What the audit log counts into. */
export type AuditMetrics = ReturnType<typeof registerAuditMetrics>;

/**
 * How the workers primary merges its workers' series (`mergeMetrics`): every worker
 * counts the same connectors from the shared store and serves the same certificates, so those
 * families are not summed.
 */
export const WORKER_METRICS_COMBINE = {
  appproxy_connectors: 'max',
  appproxy_certificate_expiry_timestamp_seconds: 'min',
} as const;
