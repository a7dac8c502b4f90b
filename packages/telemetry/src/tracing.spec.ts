import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { parseTraceparent } from './trace-context.js';
import { ID_ONLY_TRACER, createTracer, tracesUrl } from './tracing.js';

// Records which OpenTelemetry modules were imported: a tracer without an endpoint must
// load none of them.
const loaded = vi.hoisted(() => new Set<string>());
vi.mock('@opentelemetry/api', async (original) => {
  loaded.add('api');
  return original();
});
vi.mock('@opentelemetry/sdk-trace', async (original) => {
  loaded.add('sdk-trace');
  return original();
});
vi.mock('@opentelemetry/exporter-trace-otlp-http', async (original) => {
  loaded.add('exporter-trace-otlp-http');
  return original();
});

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: { key: string; value: Record<string, unknown> }[];
  status?: { code?: number; message?: string };
}

interface OtlpBody {
  resourceSpans: {
    resource: { attributes: OtlpSpan['attributes'] };
    scopeSpans: { spans: OtlpSpan[] }[];
  }[];
}
interface Received {
  path: string;
  headers: Record<string, unknown>;
  body: OtlpBody;
}

/** A local OTLP/HTTP JSON receiver that records what it was sent. */
async function receiver(): Promise<{
  url: string;
  requests: Received[];
  server: Server;
}> {
  const requests: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push({
        path: req.url ?? '',
        headers: req.headers,
        body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as OtlpBody,
      });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests, server };
}

const servers: Server[] = [];
afterAll(async () => {
  for (const s of servers) await new Promise((resolve) => s.close(resolve));
});

describe('createTracer', () => {
  it('without an endpoint: ids only, nothing of OpenTelemetry loaded', async () => {
    const tracer = await createTracer({ serviceName: 'appproxy-relay' });
    expect(tracer).toBe(ID_ONLY_TRACER);
    expect(tracer.exporting).toBe(false);
    const root = tracer.startSpan('relay.request', { kind: 'server' });
    const child = tracer.startSpan('tunnel', { kind: 'client', parent: root });
    expect(child.traceId).toBe(root.traceId);
    expect(child.spanId).not.toBe(root.spanId);
    expect(parseTraceparent(child.traceparent)).toEqual({
      traceId: root.traceId,
      spanId: child.spanId,
      flags: 1,
    });
    // The caller's trace and sampling decision are kept.
    const remote = { traceId: 'a'.repeat(32), spanId: 'b'.repeat(16), flags: 0 };
    const cont = tracer.startSpan('relay.request', { parent: remote });
    expect(cont.traceparent).toMatch(/^00-a{32}-[0-9a-f]{16}-00$/);
    expect(loaded.size).toBe(0);
  });

  it('with an endpoint: exports a parent chain over OTLP/HTTP JSON, flushed on shutdown', async () => {
    const otlp = await receiver();
    const tracer = await createTracer({
      serviceName: 'appproxy-connector',
      instanceId: 'c-1',
      otlp: { endpoint: otlp.url, headers: { 'x-api-key': 'k1' }, timeoutMs: 5000 },
    });
    expect(loaded.has('sdk-trace')).toBe(true);
    expect(tracer.exporting).toBe(true);
    const client = parseTraceparent(`00-${'4'.repeat(32)}-${'5'.repeat(16)}-01`)!;
    const server = tracer.startSpan('connector.request', {
      kind: 'server',
      parent: client,
      attributes: { 'appproxy.app': 'Wiki', skipped: undefined },
    });
    const backend = tracer.startSpan('backend.request', { kind: 'client', parent: server });
    backend.set({ 'http.response.status_code': 502 });
    backend.fail('BACKEND_UNREACHABLE', 'connect ECONNREFUSED');
    backend.end();
    backend.end();
    server.end();
    expect(parseTraceparent(backend.traceparent)?.traceId).toBe('4'.repeat(32));
    await tracer.shutdown();

    expect(otlp.requests.length).toBeGreaterThan(0);
    expect(otlp.requests[0]!.path).toBe('/v1/traces');
    expect(otlp.requests[0]!.headers['x-api-key']).toBe('k1');
    expect(otlp.requests[0]!.headers['content-type']).toMatch(/application\/json/);
    const resourceSpans = otlp.requests.flatMap((r) => r.body.resourceSpans);
    const attrs = Object.fromEntries(
      resourceSpans[0]!.resource.attributes.map((a) => [a.key, a.value.stringValue]),
    );
    expect(attrs['service.name']).toBe('appproxy-connector');
    expect(attrs['service.instance.id']).toBe('c-1');
    const spans = resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans));
    expect(spans.map((s) => s.name).sort()).toEqual(['backend.request', 'connector.request']);
    const byName = Object.fromEntries(spans.map((s) => [s.name, s]));
    const srv = byName['connector.request']!;
    const be = byName['backend.request']!;
    expect(srv.traceId).toBe('4'.repeat(32));
    expect(srv.parentSpanId).toBe('5'.repeat(16));
    expect(srv.kind).toBe(2); // SPAN_KIND_SERVER
    expect(srv.attributes).toContainEqual({ key: 'appproxy.app', value: { stringValue: 'Wiki' } });
    expect(srv.attributes.some((a) => a.key === 'skipped')).toBe(false);
    expect(be.traceId).toBe('4'.repeat(32));
    expect(be.parentSpanId).toBe(srv.spanId);
    expect(be.kind).toBe(3); // SPAN_KIND_CLIENT
    expect(be.status?.code).toBe(2); // STATUS_CODE_ERROR
    expect(be.attributes).toContainEqual({
      key: 'error.type',
      value: { stringValue: 'BACKEND_UNREACHABLE' },
    });
  });

  it('a collector that is down: shutdown still ends, and the failure is logged once', async () => {
    const otlp = await receiver();
    await new Promise((resolve) => otlp.server.close(resolve));
    const lines: { msg: string; fields: Record<string, unknown> }[] = [];
    const log = {
      warn: (msg: string, fields: Record<string, unknown>) => lines.push({ msg, fields }),
      info: () => {},
    } as never;
    const tracer = await createTracer({
      serviceName: 'appproxy-relay',
      otlp: { endpoint: otlp.url, timeoutMs: 1000 },
      log,
    });
    tracer.startSpan('relay.request').end();
    await tracer.shutdown();
    expect(lines.map((l) => l.fields.code)).toEqual(['OTLP_EXPORT_FAILED']);
  });
});

describe('tracesUrl', () => {
  it('appends /v1/traces to a base URL and keeps a full one', () => {
    expect(tracesUrl('http://c:4318')).toBe('http://c:4318/v1/traces');
    expect(tracesUrl('http://c:4318/')).toBe('http://c:4318/v1/traces');
    expect(tracesUrl('https://o.example/otlp')).toBe('https://o.example/otlp/v1/traces');
    expect(tracesUrl('https://o.example/v1/traces')).toBe('https://o.example/v1/traces');
  });
});
