// Loaded only by `createTracer` when an OTLP endpoint is set: everything OpenTelemetry is
// imported here and nowhere else, so a relay or connector without an endpoint never loads it.
import {
  ROOT_CONTEXT,
  SpanKind as OtelSpanKind,
  SpanStatusCode,
  trace,
  type Span as OtelSpan,
} from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, TracerProvider, type SpanExporter } from '@opentelemetry/sdk-trace';
import { formatTraceparent } from './trace-context.js';
import {
  FAILURE_LOG_INTERVAL_MS,
  OTLP_DEFAULT_TIMEOUT_MS,
  tracesUrl,
  type OtlpSettings,
  type SpanAttributes,
  type SpanKind,
  type SpanOptions,
  type TraceSpan,
  type Tracer,
  type TracerOptions,
} from './tracing.js';

const KINDS: Record<SpanKind, OtelSpanKind> = {
  server: OtelSpanKind.SERVER,
  client: OtelSpanKind.CLIENT,
  internal: OtelSpanKind.INTERNAL,
};

class OtlpSpan implements TraceSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly flags: number;
  #ended = false;
  constructor(readonly span: OtelSpan) {
    const ctx = span.spanContext();
    this.traceId = ctx.traceId;
    this.spanId = ctx.spanId;
    this.flags = ctx.traceFlags;
  }
  get traceparent(): string {
    return formatTraceparent(this);
  }
  set(attributes: SpanAttributes): void {
    for (const [key, value] of Object.entries(attributes))
      if (value !== undefined) this.span.setAttribute(key, value);
  }
  fail(code: string, message?: string): void {
    this.span.setAttribute('error.type', code);
    this.span.setStatus({ code: SpanStatusCode.ERROR, message: message ?? code });
  }
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.span.end();
  }
}

/** Wraps the exporter to log failed exports (a collector that is down), at most once a minute. */
function loggingExporter(inner: SpanExporter, opts: TracerOptions, url: string): SpanExporter {
  let lastLogged = 0;
  return {
    export(spans, done) {
      inner.export(spans, (result) => {
        const now = Date.now();
        if (result.code !== 0 && now - lastLogged >= FAILURE_LOG_INTERVAL_MS) {
          lastLogged = now;
          opts.log?.warn('span export failed', {
            code: 'OTLP_EXPORT_FAILED',
            endpoint: url,
            spans: spans.length,
            error: result.error,
          });
        }
        done(result);
      });
    },
    shutdown: () => inner.shutdown(),
    forceFlush: () => inner.forceFlush?.() ?? Promise.resolve(),
  };
}

/** The OpenTelemetry SDK behind {@link Tracer}: a `BatchSpanProcessor` and the OTLP/HTTP exporter. */
export function createOtlpTracer(opts: TracerOptions & { otlp: OtlpSettings }): Tracer {
  const url = tracesUrl(opts.otlp.endpoint);
  const timeoutMs = opts.otlp.timeoutMs ?? OTLP_DEFAULT_TIMEOUT_MS;
  const exporter = new OTLPTraceExporter({
    url,
    timeoutMillis: timeoutMs,
    ...(opts.otlp.headers && { headers: { ...opts.otlp.headers } }),
  });
  const provider = new TracerProvider({
    resource: resourceFromAttributes({
      'service.name': opts.serviceName,
      ...(opts.instanceId !== undefined && { 'service.instance.id': opts.instanceId }),
      ...(opts.version !== undefined && { 'service.version': opts.version }),
    }),
    spanProcessors: [
      new BatchSpanProcessor({
        exporter: loggingExporter(exporter, opts, url),
        exportTimeoutMillis: timeoutMs,
      }),
    ],
  });
  const tracer = provider.getTracer('appproxy');
  let stopped: Promise<void> | undefined;
  return {
    exporting: true,
    startSpan(name: string, options: SpanOptions = {}): TraceSpan {
      const parent = options.parent;
      const context = parent
        ? trace.setSpanContext(ROOT_CONTEXT, {
            traceId: parent.traceId,
            spanId: parent.spanId,
            traceFlags: parent.flags,
            isRemote: !(parent instanceof OtlpSpan),
          })
        : ROOT_CONTEXT;
      const span = new OtlpSpan(
        tracer.startSpan(name, { kind: KINDS[options.kind ?? 'internal'] }, context),
      );
      if (options.attributes) span.set(options.attributes);
      return span;
    },
    shutdown() {
      // Bounded: a collector that does not answer must not hold the process's exit.
      stopped ??= Promise.race([
        // A failed last export was logged by the exporter wrapper already.
        provider.shutdown().catch(() => {}),
        new Promise<void>((resolve) => setTimeout(resolve, timeoutMs + 1_000).unref()),
      ]);
      return stopped;
    },
  };
}
