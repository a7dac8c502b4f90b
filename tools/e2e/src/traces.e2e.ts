// Traces (issue 15 part 5): W3C traceparent from the client through relay, tunnel and
// connector to the backend; spans exported over OTLP/HTTP to a local receiver; the
// correlation id of error pages is the trace id; without an endpoint nothing of
// OpenTelemetry is loaded.
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack, devIdpFor, json, request } from './harness.js';
import { freePort, until } from './wait.js';

interface Span {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  status: { code?: number };
  attributes: Record<string, unknown>;
}

/** An OTLP/HTTP receiver (JSON encoding) on 127.0.0.1 recording every span it is sent. */
async function otlpReceiver(): Promise<{ url: string; spans: Span[]; server: Server }> {
  const spans: Span[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url !== '/v1/traces' || !/json/.test(req.headers['content-type'] ?? '')) {
        res.writeHead(415).end();
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        resourceSpans: {
          resource: { attributes: { key: string; value: { stringValue?: string } }[] };
          scopeSpans: {
            spans: (Omit<Span, 'service' | 'attributes'> & {
              attributes?: { key: string; value: Record<string, unknown> }[];
            })[];
          }[];
        }[];
      };
      for (const rs of body.resourceSpans) {
        const service = rs.resource.attributes.find((a) => a.key === 'service.name')?.value
          .stringValue;
        for (const ss of rs.scopeSpans)
          for (const s of ss.spans)
            spans.push({
              service: service ?? '',
              traceId: s.traceId,
              spanId: s.spanId,
              parentSpanId: s.parentSpanId ?? '',
              name: s.name,
              kind: s.kind,
              status: s.status ?? {},
              attributes: Object.fromEntries(
                (s.attributes ?? []).map((a) => [a.key, Object.values(a.value)[0]]),
              ),
            });
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, spans, server };
}

/** A backend that answers 200 and records the `traceparent` and `tracestate` of each request. */
async function recordingBackend(): Promise<{
  port: number;
  seen: string[];
  states: string[];
  server: Server;
}> {
  const seen: string[] = [];
  const states: string[] = [];
  const server = createServer((req, res) => {
    seen.push(String(req.headers.traceparent ?? ''));
    states.push(String(req.headers.tracestate ?? ''));
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, seen, states, server };
}

const close = (s: Server | undefined) =>
  new Promise<void>((resolve) => (s ? s.close(() => resolve()) : resolve()));

/**
 * Node's module hooks (`--import`): every module loaded from `@opentelemetry/` is written to
 * stderr, so a test can see whether a process loaded the SDK at all.
 */
function otelLoadProbe(dir: string): NodeJS.ProcessEnv {
  const file = join(dir, 'otel-probe.mjs');
  writeFileSync(
    file,
    `import { registerHooks } from 'node:module';
registerHooks({
  load(url, context, next) {
    if (url.includes('/@opentelemetry/')) process.stderr.write('otel-module-loaded ' + url + '\\n');
    return next(url, context);
  },
});
`,
  );
  return { NODE_OPTIONS: `--import ${file}` };
}

const TRACED = 'traced.apps.localhost';
const DEAD = 'dead.apps.localhost';
const PRIVATE = 'private.apps.localhost';
const CLIENT_TRACE = '0af7651916cd43dd8448eb211c80319c';
const CLIENT_SPAN = 'b7ad6b7169203331';

let otlp: Awaited<ReturnType<typeof otlpReceiver>>;
let backend: Awaited<ReturnType<typeof recordingBackend>>;
let traced: Stack;
let plain: Stack;
let idp: Awaited<ReturnType<typeof devIdpFor>>;

beforeAll(async () => {
  otlp = await otlpReceiver();
  backend = await recordingBackend();
  const deadPort = await freePort();
  const apps = [
    {
      name: 'Traced',
      internalUrl: `http://127.0.0.1:${backend.port}/`,
      externalUrl: `https://${TRACED}/`,
    },
    { name: 'Dead', internalUrl: `http://127.0.0.1:${deadPort}/`, externalUrl: `https://${DEAD}/` },
  ];
  traced = new Stack({
    apps: [
      ...apps,
      {
        name: 'Private',
        internalUrl: `http://127.0.0.1:${backend.port}/`,
        externalUrl: `https://${PRIVATE}:{port}/`,
        preAuthentication: 'oidc',
      },
    ],
    topExtra: `telemetry:\n  otlp:\n    endpoint: ${otlp.url}\n    timeout: 5s\n`,
    connectorArgs: ['--otlp-endpoint', otlp.url],
  });
  traced.configure({ env: otelLoadProbe(traced.dir) });
  idp = await devIdpFor(traced, [PRIVATE]);
  await traced.start();
  plain = new Stack({ apps });
  plain.configure({ env: otelLoadProbe(plain.dir) });
  await plain.start();
});

afterAll(async () => {
  await traced?.stop();
  await plain?.stop();
  await idp?.close();
  await close(backend?.server);
  await close(otlp?.server);
});

/** Waits (the batch processor exports every 5 s) until the receiver has these spans of a trace. */
async function spansOf(traceId: string, names: string[]): Promise<Map<string, Span>> {
  const found = () =>
    new Map(otlp.spans.filter((s) => s.traceId === traceId).map((s) => [s.name, s]));
  await until(
    () => names.every((n) => found().has(n)),
    `spans ${names.join(', ')} of ${traceId}`,
    30_000,
  );
  return found();
}

describe('traces with telemetry.otlp and --otlp-endpoint', () => {
  it('one request: relay, tunnel, connector and backend spans form a chain in the client’s trace', async () => {
    const before = backend.seen.length;
    const res = await request(traced, TRACED, '/page', {
      headers: { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`, tracestate: 'vendor=x1' },
    });
    expect(res.status).toBe(200);
    // The correlation id is the trace id.
    expect(res.headers['x-appproxy-correlation-id']).toBe(CLIENT_TRACE);

    const spans = await spansOf(CLIENT_TRACE, [
      'relay.request',
      'tunnel',
      'connector.request',
      'backend.request',
    ]);
    const relay = spans.get('relay.request')!;
    const tunnel = spans.get('tunnel')!;
    const connector = spans.get('connector.request')!;
    const backendSpan = spans.get('backend.request')!;
    expect(relay.parentSpanId).toBe(CLIENT_SPAN);
    expect(tunnel.parentSpanId).toBe(relay.spanId);
    expect(connector.parentSpanId).toBe(tunnel.spanId);
    expect(backendSpan.parentSpanId).toBe(connector.spanId);
    expect([relay.service, tunnel.service]).toEqual(['appproxy-relay', 'appproxy-relay']);
    expect([connector.service, backendSpan.service]).toEqual([
      'appproxy-connector',
      'appproxy-connector',
    ]);
    // Kinds: SERVER 2, CLIENT 3.
    expect([relay.kind, tunnel.kind, connector.kind, backendSpan.kind]).toEqual([2, 3, 2, 3]);
    expect(relay.attributes).toMatchObject({
      'http.request.method': 'GET',
      'http.response.status_code': 200,
      'appproxy.app': 'Traced',
      'client.address': '127.0.0.1',
    });
    expect(tunnel.attributes['appproxy.connector.id']).toBeTruthy();
    expect(backendSpan.attributes).toMatchObject({
      'url.full': `http://127.0.0.1:${backend.port}/page`,
      'http.response.status_code': 200,
    });

    // The backend's parent is the connector's backend.request span.
    expect(backend.seen.slice(before)).toEqual([`00-${CLIENT_TRACE}-${backendSpan.spanId}-01`]);
    // The client's tracestate goes along with its trace.
    expect(backend.states.slice(before)).toEqual(['vendor=x1']);
  });

  it('a dead backend: the error page’s correlation id is the trace id of its spans', async () => {
    const res = await request(traced, DEAD, '/', { headers: { accept: 'application/json' } });
    expect(res.status).toBe(502);
    const { error } = json(res) as { error: { code: string; correlationId: string } };
    expect(error.correlationId).toMatch(/^[0-9a-f]{32}$/);
    expect(res.headers['x-appproxy-correlation-id']).toBe(error.correlationId);

    const spans = await spansOf(error.correlationId, [
      'relay.request',
      'tunnel',
      'connector.request',
      'backend.request',
    ]);
    const relay = spans.get('relay.request')!;
    const backendSpan = spans.get('backend.request')!;
    expect(relay.parentSpanId).toBe('');
    expect(relay.attributes['http.response.status_code']).toBe(502);
    expect(relay.attributes['appproxy.error.code']).toBe(error.code);
    expect(relay.status.code).toBe(2); // ERROR
    expect(backendSpan.status.code).toBe(2);
    expect(backendSpan.attributes['appproxy.error.code']).toBe(error.code);
    // The same id in both processes' logs.
    await traced.relay!.waitFor((l) => l.msg === 'request' && l.requestId === error.correlationId);
    await traced.connector!.waitFor(
      (l) => l.msg === 'backend request failed' && l.requestId === error.correlationId,
    );
  });

  it('an invalid traceparent (uppercase hex) starts a new trace', async () => {
    const before = backend.seen.length;
    const bad = `00-${CLIENT_TRACE.toUpperCase()}-${CLIENT_SPAN}-01`;
    const res = await request(traced, TRACED, '/', { headers: { traceparent: bad } });
    expect(res.status).toBe(200);
    const id = String(res.headers['x-appproxy-correlation-id']);
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect(id).not.toBe(CLIENT_TRACE);
    const seen = backend.seen.slice(before);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatch(new RegExp(`^00-${id}-[0-9a-f]{16}-01$`));
    const spans = await spansOf(id, ['relay.request']);
    expect(spans.get('relay.request')!.parentSpanId).toBe('');
  });

  it('sign-in: the gate and the callback are relay.signin spans under relay.request', async () => {
    const host = `${PRIVATE}:${traced.ports.public}`;
    const anonymous = await request(traced, host, '/', { headers: { accept: 'text/html' } });
    // The sign-in page (or the redirect to the provider): the gate answered, nothing forwarded.
    expect(anonymous.status).toBeGreaterThanOrEqual(300);
    expect(anonymous.status).toBeLessThan(500);
    const gateTrace = String(anonymous.headers['x-appproxy-correlation-id']);
    const gate = await spansOf(gateTrace, ['relay.request', 'relay.signin']);
    expect(gate.get('relay.signin')!.parentSpanId).toBe(gate.get('relay.request')!.spanId);
    expect(gate.get('relay.signin')!.attributes['appproxy.signin.step']).toBe('gate');
    expect(gate.has('tunnel')).toBe(false);
    expect(gate.get('relay.request')!.attributes['http.response.status_code']).toBe(
      anonymous.status,
    );

    // A callback that belongs to no sign-in of this browser.
    const callback = await request(traced, host, '/.appproxy/callback?code=x&state=y', {
      headers: { accept: 'application/json' },
    });
    expect(callback.status).toBe(400);
    const { error } = json(callback) as { error: { code: string; correlationId: string } };
    expect(error.code).toBe('SIGN_IN_FAILED');
    const spans = await spansOf(error.correlationId, ['relay.request', 'relay.signin']);
    expect(spans.get('relay.signin')!.attributes['appproxy.signin.step']).toBe('callback');
    expect(spans.get('relay.request')!.attributes['http.response.status_code']).toBe(400);
  });

  it('the SDK is loaded by both processes', () => {
    expect(traced.relay!.stderr.join('')).toContain('otel-module-loaded');
    expect(traced.connector!.stderr.join('')).toContain('otel-module-loaded');
  });
});

describe('traces without an endpoint', () => {
  it('propagates a traceparent to the backend; nothing of OpenTelemetry is loaded', async () => {
    const before = backend.seen.length;
    const res = await request(plain, TRACED, '/', {
      headers: { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01` },
    });
    expect(res.status).toBe(200);
    expect(res.headers['x-appproxy-correlation-id']).toBe(CLIENT_TRACE);
    const seen = backend.seen.slice(before);
    expect(seen).toHaveLength(1);
    const [, trace, parent] = seen[0]!.split('-');
    expect(trace).toBe(CLIENT_TRACE);
    expect(parent).toMatch(/^[0-9a-f]{16}$/);
    expect(parent).not.toBe(CLIENT_SPAN);

    // A request without one: the relay's trace, and its id is the correlation id.
    const fresh = await request(plain, TRACED, '/');
    const id = String(fresh.headers['x-appproxy-correlation-id']);
    expect(backend.seen.at(-1)).toMatch(new RegExp(`^00-${id}-[0-9a-f]{16}-01$`));

    expect(plain.relay!.stderr.join('')).not.toContain('otel-module-loaded');
    expect(plain.connector!.stderr.join('')).not.toContain('otel-module-loaded');
    expect(plain.relay!.count((l) => l.msg === 'traces exported over OTLP/HTTP')).toBe(0);
    expect(traced.relay!.count((l) => l.msg === 'traces exported over OTLP/HTTP')).toBe(1);
  });
});
