import {
  TRACEPARENT,
  TRACESTATE,
  parseTraceparent,
  parseTracestate,
  type TraceSpan,
  type Tracer,
} from '@appproxy/telemetry';
import type { TunnelSession } from '@appproxy/tunnel';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

/**
 * The trace of one client request at the relay (docs/tracing.md): the client's W3C
 * `traceparent` is accepted, as Envoy and nginx's OpenTelemetry module do, else the relay
 * starts a trace; its trace id is the request's correlation id.
 */
export class RequestTrace {
  /** `relay.request`: the server span of the whole exchange with the client. */
  readonly span: TraceSpan;
  /** The client's `tracestate`, forwarded untouched when valid and the trace is the client's. */
  readonly tracestate: string | undefined;
  #tunnel: TraceSpan | undefined;
  #attempts = 0;

  constructor(
    readonly tracer: Tracer,
    headers: IncomingHttpHeaders,
    attributes: { method?: string; client?: string; instance?: string },
  ) {
    const parent = parseTraceparent(headers[TRACEPARENT]);
    this.tracestate = parent ? parseTracestate(headers[TRACESTATE]) : undefined;
    this.span = tracer.startSpan('relay.request', {
      kind: 'server',
      parent,
      ...(tracer.exporting && {
        attributes: {
          'http.request.method': attributes.method,
          'client.address': attributes.client,
          'appproxy.relay.instance': attributes.instance,
        },
      }),
    });
  }

  /** The correlation id of error pages and logs: the trace id. */
  get correlationId(): string {
    return this.span.traceId;
  }

  /**
   * `relay.signin` around a sign-in step (the gate of an oidc app, a reserved path such as
   * the callback); ended by the caller.
   */
  signIn(step: string): TraceSpan {
    return this.tracer.startSpan('relay.signin', {
      kind: 'internal',
      parent: this.span,
      attributes: { 'appproxy.signin.step': step },
    });
  }

  /**
   * `tunnel`: the client span around the tunnel stream(s) of this request. Its
   * `traceparent` (and the client's `tracestate`) replace the client's in the headers the
   * connector gets.
   */
  tunnel(headers: OutgoingHttpHeaders, app: string): void {
    const span = this.tracer.startSpan('tunnel', {
      kind: 'client',
      parent: this.span,
      attributes: { 'appproxy.app': app },
    });
    this.#tunnel = span;
    headers[TRACEPARENT] = span.traceparent;
    headers[TRACESTATE] = this.tracestate;
  }

  /** A tunnel stream was opened on `tunnel` (once per attempt). */
  attempt(tunnel: TunnelSession): void {
    this.#attempts++;
    if (!this.tracer.exporting) return;
    this.#tunnel?.set({
      'appproxy.connector.id': tunnel.connectorId,
      'appproxy.connector.host': tunnel.hello?.hostname,
      'appproxy.tunnel.id': tunnel.id,
      'appproxy.tunnel.attempts': this.#attempts,
    });
  }

  /** Ends both spans with the response's outcome. */
  end(outcome: { status: number; app?: string; connector?: string; code?: string }): void {
    const { span } = this;
    if (this.tracer.exporting) {
      span.set({
        'http.response.status_code': outcome.status,
        'appproxy.app': outcome.app,
        'appproxy.connector.id': outcome.connector,
        'appproxy.error.code': outcome.code,
      });
      if (this.#tunnel) this.#tunnel.set({ 'http.response.status_code': outcome.status });
    }
    // Server spans: only 5xx are failures (OpenTelemetry HTTP semantic conventions). The
    // HTTP_1_1_REQUIRED reset (NTLM/Negotiate over h2, counted as 505) is the expected way.
    if (outcome.status >= 500 && outcome.code !== 'HTTP_1_1_REQUIRED') {
      span.fail(outcome.code ?? String(outcome.status));
      this.#tunnel?.fail(outcome.code ?? String(outcome.status));
    }
    this.#tunnel?.end();
    span.end();
  }
}
