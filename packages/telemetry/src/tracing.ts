import type { Logger } from './logger.js';
import { formatTraceparent, newSpanId, newTraceId, type TraceParent } from './trace-context.js';

/** OTLP/HTTP export of spans (`telemetry.otlp`, `--otlp-endpoint`). */
export interface OtlpSettings {
  /**
   * The collector: its base URL (`http://collector:4318`, spans go to `/v1/traces`) or the
   * full traces URL (ending in `/v1/traces`).
   */
  endpoint: string;
  /** Extra request headers (an API key). */
  headers?: Record<string, string>;
  /** Per export request. @default 10000 */
  timeoutMs?: number;
}

export type SpanKind = 'server' | 'client' | 'internal';
export type SpanAttributes = Record<string, string | number | boolean | undefined>;

export interface SpanOptions {
  /** @default 'internal' */
  kind?: SpanKind;
  /** A span of this process, or the caller's `traceparent` (a new trace when absent). */
  parent?: TraceSpan | TraceParent;
  attributes?: SpanAttributes;
}

/** One unit of work of a trace; its ids exist whether or not spans are exported. */
export interface TraceSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly flags: number;
  /** The `traceparent` that makes this span the parent of the next hop. */
  readonly traceparent: string;
  /** Adds attributes (`undefined` values are skipped). */
  set(attributes: SpanAttributes): void;
  /** Marks the span failed with a stable code (e.g. `BACKEND_UNREACHABLE`). */
  fail(code: string, message?: string): void;
  /** Ends the span; later calls do nothing. */
  end(): void;
}

/** Starts spans; `exporting` says whether they leave the process. */
export interface Tracer {
  readonly exporting: boolean;
  startSpan(name: string, options?: SpanOptions): TraceSpan;
  /** Exports what is batched and stops (bounded: gives up after the export timeout). */
  shutdown(): Promise<void>;
}

export interface TracerOptions {
  /** Without it nothing of OpenTelemetry is loaded: spans are ids only. */
  otlp?: OtlpSettings;
  /** `service.name`: `appproxy-relay`, `appproxy-connector`. */
  serviceName: string;
  /** `service.instance.id`: the relay instance or the connector's id. */
  instanceId?: string;
  /** `service.version`. */
  version?: string;
  log?: Logger;
}

const DEFAULT_TIMEOUT_MS = 10_000;
/** At most one export failure line per this interval: a down collector must not flood logs. */
const FAILURE_LOG_INTERVAL_MS = 60_000;

/** A span that is only its ids: what tracing costs when spans are not exported. */
class IdSpan implements TraceSpan {
  readonly traceId: string;
  readonly spanId = newSpanId();
  readonly flags: number;
  constructor(parent: TraceSpan | TraceParent | undefined) {
    this.traceId = parent?.traceId ?? newTraceId();
    // A trace started here is sampled: a connector that exports records its part of it.
    this.flags = parent?.flags ?? 1;
  }
  get traceparent(): string {
    return formatTraceparent(this);
  }
  set(): void {}
  fail(): void {}
  end(): void {}
}

/** Spans as ids only: propagation and correlation ids without an exporter. */
export const ID_ONLY_TRACER: Tracer = {
  exporting: false,
  startSpan: (_name, options) => new IdSpan(options?.parent),
  shutdown: () => Promise.resolve(),
};

/**
 * The tracer for a CLI: {@link ID_ONLY_TRACER} without `otlp`; with it, the OpenTelemetry
 * JS SDK, imported only now (a relay without an endpoint never loads it), exporting
 * batches of spans as OTLP/HTTP JSON.
 * @example
 * const tracer = await createTracer({ serviceName: 'appproxy-relay' });
 * const span = tracer.startSpan('relay.request', { kind: 'server' });
 * span.traceparent; // '00-<trace id>-<span id>-01'
 * span.end();
 */
export async function createTracer(opts: TracerOptions): Promise<Tracer> {
  if (!opts.otlp) return ID_ONLY_TRACER;
  const { createOtlpTracer } = await import('./otlp.js');
  const tracer = await createOtlpTracer({ ...opts, otlp: opts.otlp });
  opts.log?.info('traces exported over OTLP/HTTP', {
    endpoint: tracesUrl(opts.otlp.endpoint),
    service: opts.serviceName,
  });
  return tracer;
}

/** The URL spans are posted to: the endpoint as given when it names `/v1/traces`. */
export function tracesUrl(endpoint: string): string {
  const url = new URL(endpoint);
  if (!url.pathname.endsWith('/v1/traces'))
    url.pathname = `${url.pathname.replace(/\/+$/, '')}/v1/traces`;
  return url.href;
}

export { DEFAULT_TIMEOUT_MS as OTLP_DEFAULT_TIMEOUT_MS, FAILURE_LOG_INTERVAL_MS };
