import {
  TRACEPARENT,
  parseTraceparent,
  type OtlpSettings,
  type TraceSpan,
  type Tracer,
} from '@appproxy/telemetry';
import { META } from '@appproxy/tunnel';
import type { IncomingHttpHeaders } from 'node:http';
import type { ServerHttp2Stream } from 'node:http2';

/**
 * The connector's part of a request's trace (docs/tracing.md): `connector.request`, the
 * server span of the tunnel stream, child of the relay's `tunnel` span (the `traceparent`
 * the relay sent); `backend.request`, the client span of the request to the internal URL,
 * whose `traceparent` the backend gets. Both end when the tunnel stream closes, with the
 * status (and error code) the connector answered.
 */
export class StreamTrace {
  readonly server: TraceSpan;
  readonly backend: TraceSpan;
  #retries = 0;

  constructor(
    readonly tracer: Tracer,
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    info: { app: string; method: string; url: string },
  ) {
    // A relay without tracing (an older one) sends none: the trace starts here.
    const parent = parseTraceparent(headers[TRACEPARENT]);
    this.server = tracer.startSpan('connector.request', {
      kind: 'server',
      parent,
      attributes: { 'appproxy.app': info.app, 'http.request.method': info.method },
    });
    this.backend = tracer.startSpan('backend.request', {
      kind: 'client',
      parent: this.server,
      attributes: { 'http.request.method': info.method, 'url.full': info.url },
    });
    // Without an exporter the spans are ids only: nothing to end.
    if (tracer.exporting) stream.once('close', () => this.#end(stream));
  }

  /** The `traceparent` for the backend: `backend.request` is its parent. */
  get traceparent(): string {
    return this.backend.traceparent;
  }

  /** The request went once more on a new connection. */
  retried(): void {
    this.#retries++;
  }

  #end(stream: ServerHttp2Stream): void {
    const sent = stream.sentHeaders as IncomingHttpHeaders | undefined;
    const status = Number(sent?.[':status'] ?? 0);
    const code = sent?.[META.error] as string | undefined;
    const attributes = {
      ...(status > 0 && { 'http.response.status_code': status }),
      'appproxy.error.code': code,
    };
    this.server.set(attributes);
    this.backend.set({ ...attributes, 'http.request.resend_count': this.#retries || undefined });
    if (!sent) this.server.set({ 'appproxy.aborted': true });
    if (code) {
      this.backend.fail(code);
      this.server.fail(code);
    } else if (status >= 500) this.server.fail(String(status));
    this.backend.end();
    this.server.end();
  }
}

/**
 * `--otlp-endpoint`, else `$OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
 * `$OTEL_EXPORTER_OTLP_ENDPOINT` (the OpenTelemetry SDK's own variables), with
 * `--otlp-header name=value` and `--otlp-timeout`.
 * @returns the settings, `undefined` when no endpoint is set, or the usage error's message.
 */
export function otlpSettings(
  opts: { otlpEndpoint?: string; otlpHeader?: string[]; otlpTimeout?: number },
  env: NodeJS.ProcessEnv = process.env,
): OtlpSettings | undefined | { error: string } {
  // The error names where the value came from.
  const [from, endpoint] =
    opts.otlpEndpoint !== undefined
      ? ['--otlp-endpoint', opts.otlpEndpoint]
      : env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
        ? ['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT]
        : ['OTEL_EXPORTER_OTLP_ENDPOINT', env.OTEL_EXPORTER_OTLP_ENDPOINT || undefined];
  if (endpoint === undefined) {
    if (opts.otlpHeader?.length || opts.otlpTimeout !== undefined)
      return { error: '--otlp-header and --otlp-timeout need --otlp-endpoint' };
    return undefined;
  }
  let url: URL | undefined;
  try {
    url = new URL(endpoint);
  } catch {
    url = undefined;
  }
  if (!url || !/^https?:$/.test(url.protocol) || url.username || url.password || url.hash)
    return {
      error: `${from} must be an http(s) URL such as http://collector:4318 (no credentials)`,
    };
  const headers: Record<string, string> = {};
  for (const h of opts.otlpHeader ?? []) {
    const eq = h.indexOf('=');
    const name = h.slice(0, eq).trim();
    if (eq <= 0 || !/^[A-Za-z0-9!#$%&'+.^_`|~-]+$/.test(name))
      return { error: '--otlp-header must be name=value' };
    headers[name] = h.slice(eq + 1).trim();
  }
  return {
    endpoint: url.href,
    ...(Object.keys(headers).length > 0 && { headers }),
    ...(opts.otlpTimeout !== undefined && { timeoutMs: opts.otlpTimeout }),
  };
}
