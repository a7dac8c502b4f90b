import {
  ID_ONLY_TRACER,
  type SpanAttributes,
  type SpanOptions,
  type TraceSpan,
  type Tracer,
} from '@appproxy/telemetry';
import type { TunnelSession } from '@appproxy/tunnel';
import type { OutgoingHttpHeaders } from 'node:http';
import { describe, expect, it } from 'vitest';
import { RequestTrace } from './tracing.js';

const TRACE = '0af7651916cd43dd8448eb211c80319c';
const SPAN = 'b7ad6b7169203331';

interface Recorded {
  name: string;
  options: SpanOptions;
  span: TraceSpan;
  attributes: SpanAttributes;
  failed?: string;
  ended: number;
}

/** A tracer that records its spans (ids from the id-only tracer). */
function recordingTracer(): Tracer & { spans: Recorded[] } {
  const spans: Recorded[] = [];
  return {
    exporting: true,
    spans,
    startSpan(name, options = {}) {
      const ids = ID_ONLY_TRACER.startSpan(name, options);
      const rec: Recorded = { name, options, span: ids, attributes: {}, ended: 0 };
      const span: TraceSpan = {
        traceId: ids.traceId,
        spanId: ids.spanId,
        flags: ids.flags,
        traceparent: ids.traceparent,
        set: (a) => Object.assign(rec.attributes, a),
        fail: (code) => {
          rec.failed = code;
        },
        end: () => {
          rec.ended++;
        },
      };
      rec.span = span;
      Object.assign(rec.attributes, options.attributes);
      spans.push(rec);
      return span;
    },
    shutdown: () => Promise.resolve(),
  };
}

const tunnel = { connectorId: 'c-1', id: 't7', hello: { hostname: 'conn-host' } } as TunnelSession;

describe('RequestTrace', () => {
  it('continues the client’s trace: correlation id, tunnel traceparent, tracestate', () => {
    const tracer = recordingTracer();
    const trace = new RequestTrace(
      tracer,
      { traceparent: `00-${TRACE}-${SPAN}-01`, tracestate: 'vendor=x' },
      { method: 'GET', client: '192.0.2.1', instance: 'relay-a' },
    );
    expect(trace.correlationId).toBe(TRACE);
    // What the tunnel request carried before: the trace's values must replace them.
    const headers: OutgoingHttpHeaders = { traceparent: 'client value', tracestate: 'stale=1' };
    trace.tunnel(headers, 'Wiki');
    trace.attempt(tunnel);
    trace.attempt(tunnel);
    const [request, tunnelSpan] = tracer.spans;
    expect(request!.options.parent).toEqual({ traceId: TRACE, spanId: SPAN, flags: 1 });
    expect(tunnelSpan!.name).toBe('tunnel');
    expect(tunnelSpan!.options.parent).toBe(request!.span);
    expect(headers.traceparent).toBe(`00-${TRACE}-${tunnelSpan!.span.spanId}-01`);
    expect(headers.tracestate).toBe('vendor=x');
    expect(tunnelSpan!.attributes).toMatchObject({
      'appproxy.connector.id': 'c-1',
      'appproxy.connector.host': 'conn-host',
      'appproxy.tunnel.attempts': 2,
    });
    trace.end({ status: 200, app: 'Wiki', connector: 'c-1' });
    expect(request!.attributes).toMatchObject({
      'http.request.method': 'GET',
      'client.address': '192.0.2.1',
      'appproxy.relay.instance': 'relay-a',
      'http.response.status_code': 200,
    });
    expect([request!.ended, tunnelSpan!.ended]).toEqual([1, 1]);
    expect(request!.failed).toBeUndefined();
  });

  it('an invalid traceparent: a new trace, and the client’s tracestate is not forwarded', () => {
    const tracer = recordingTracer();
    const trace = new RequestTrace(
      tracer,
      { traceparent: `00-${TRACE.toUpperCase()}-${SPAN}-01`, tracestate: 'vendor=x' },
      {},
    );
    expect(trace.correlationId).not.toBe(TRACE);
    expect(tracer.spans[0]!.options.parent).toBeUndefined();
    const headers: OutgoingHttpHeaders = { tracestate: 'vendor=x' };
    trace.tunnel(headers, 'Wiki');
    expect(headers.tracestate).toBeUndefined();
  });

  it('relay.signin spans are children of relay.request; 5xx fails the spans, 4xx does not', () => {
    const tracer = recordingTracer();
    const trace = new RequestTrace(tracer, {}, {});
    const step = trace.signIn('callback');
    step.end();
    const signIn = tracer.spans[1]!;
    expect(signIn.name).toBe('relay.signin');
    expect(signIn.options.parent).toBe(tracer.spans[0]!.span);
    expect(signIn.attributes['appproxy.signin.step']).toBe('callback');
    trace.end({ status: 403, code: 'NOT_ASSIGNED' });
    expect(tracer.spans[0]!.failed).toBeUndefined();
    expect(tracer.spans[0]!.attributes['appproxy.error.code']).toBe('NOT_ASSIGNED');

    const failing = recordingTracer();
    const t2 = new RequestTrace(failing, {}, {});
    t2.tunnel({}, 'Wiki');
    t2.end({ status: 502, code: 'BACKEND_UNREACHABLE' });
    expect(failing.spans.map((s) => s.failed)).toEqual([
      'BACKEND_UNREACHABLE',
      'BACKEND_UNREACHABLE',
    ]);
    // The stand-in 505 of an HTTP/2 stream reset to HTTP/1.1 (NTLM) is not a failure.
    const ntlm = recordingTracer();
    const t3 = new RequestTrace(ntlm, {}, {});
    t3.tunnel({}, 'Exchange');
    t3.end({ status: 505, code: 'HTTP_1_1_REQUIRED' });
    expect(ntlm.spans.map((s) => s.failed)).toEqual([undefined, undefined]);
    expect(ntlm.spans[0]!.attributes['appproxy.error.code']).toBe('HTTP_1_1_REQUIRED');
  });
});
