import { startSampleApp } from '@appproxy/sample-app';
import { connect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack, freePort, request } from './harness.js';

type SampleApp = Awaited<ReturnType<typeof startSampleApp>>;
let sample: SampleApp;
let stack: Stack;
let connectorMetricsPort: number;
const HOST = 'metrics.apps.localhost';

beforeAll(async () => {
  sample = await startSampleApp({ basePath: '/' });
  connectorMetricsPort = await freePort();
  stack = await new Stack({
    connectorArgs: ['--metrics-listen', `127.0.0.1:${connectorMetricsPort}`],
    apps: [
      {
        name: 'Metered',
        internalUrl: `http://127.0.0.1:${sample.port}/`,
        externalUrl: `https://${HOST}/`,
      },
      {
        name: 'Down',
        internalUrl: `http://127.0.0.1:${await freePort()}/`,
        externalUrl: 'https://down.apps.localhost/',
      },
    ],
  }).start();
});

afterAll(async () => {
  await stack?.stop();
  await sample?.close();
});

/** Parses Prometheus text into `name{labels}` → value. */
async function scrape(url: string): Promise<{
  text: string;
  value: (series: string) => number;
  sum: (prefix: string) => number;
}> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/plain; version=0.0.4');
  const text = await res.text();
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    values.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return {
    text,
    value: (series) => values.get(series) ?? Number.NaN,
    sum: (prefix) =>
      [...values].filter(([k]) => k.startsWith(prefix)).reduce((n, [, v]) => n + v, 0),
  };
}

describe('/metrics', () => {
  it('the relay counts requests by app and status, errors by code, bytes, latency and tunnels', async () => {
    for (let i = 0; i < 5; i++) expect((await request(stack, HOST, '/echo')).status).toBe(200);
    const body = Buffer.alloc(10_000, 1);
    await request(stack, HOST, '/upload', {
      method: 'POST',
      body,
      headers: { 'content-length': String(body.length) },
    });
    expect((await request(stack, 'down.apps.localhost', '/')).status).toBe(502);
    const { text, value } = await scrape(`http://127.0.0.1:${stack.ports.admin}/metrics`);
    expect(value('appproxy_requests_total{app="Metered",status="200"}')).toBe(6);
    expect(value('appproxy_requests_total{app="Down",status="502"}')).toBe(1);
    expect(value('appproxy_request_errors_total{app="Down",code="BACKEND_UNREACHABLE"}')).toBe(1);
    expect(value('appproxy_request_bytes_total{app="Metered"}')).toBe(10_000);
    expect(value('appproxy_response_bytes_total{app="Metered"}')).toBeGreaterThan(1000);
    expect(value('appproxy_request_duration_seconds_count{app="Metered"}')).toBe(6);
    expect(value('appproxy_request_duration_seconds_bucket{app="Metered",le="+Inf"}')).toBe(6);
    expect(value('appproxy_requests_in_flight{app="Metered"}')).toBe(0);
    expect(value('appproxy_tunnel_connects_total{group="Default"}')).toBe(2);
    expect(value('appproxy_tunnels_open{group="Default"}')).toBe(2);
    expect(value('appproxy_connectors{group="Default",state="active"}')).toBe(1);
    expect(value('appproxy_connectors{group="Default",state="inactive"}')).toBe(0);
    expect(value('process_resident_memory_bytes')).toBeGreaterThan(10 * 2 ** 20);
    expect(text).toContain('# TYPE appproxy_request_duration_seconds histogram');
  });

  it('the relay exports when the certificate it serves expires', async () => {
    const served = await new Promise<string>((resolve, reject) => {
      const socket = connect(
        { host: '127.0.0.1', port: stack.ports.public, servername: HOST, ca: stack.ca },
        () => {
          resolve(socket.getPeerCertificate().valid_to);
          socket.destroy();
        },
      );
      socket.once('error', reject);
    });
    const { text } = await scrape(`http://127.0.0.1:${stack.ports.admin}/metrics`);
    const series = [
      ...text.matchAll(
        /^appproxy_certificate_expiry_timestamp_seconds\{certificate="([^"]+)",source="configured"\} (\S+)$/gm,
      ),
    ];
    expect(series.length).toBe(1);
    expect(Number(series[0]![2])).toBe(new Date(served).getTime() / 1000);
  });

  it('the connector serves its own counters on --metrics-listen', async () => {
    const { value } = await scrape(`http://127.0.0.1:${connectorMetricsPort}/metrics`);
    expect(value('appproxy_connector_requests_total{app="Metered",status="200"}')).toBe(6);
    expect(
      value('appproxy_connector_backend_errors_total{app="Down",code="BACKEND_UNREACHABLE"}'),
    ).toBe(1);
    expect(value('appproxy_connector_request_bytes_total{app="Metered"}')).toBe(10_000);
    expect(value('appproxy_connector_tunnels_connected')).toBe(2);
    expect(value('appproxy_connector_tunnel_connects_total')).toBe(2);
    expect(value('appproxy_connector_certificate_expiry_timestamp_seconds')).toBeGreaterThan(
      Date.now() / 1000 + 86_400,
    );
    const health = await fetch(`http://127.0.0.1:${connectorMetricsPort}/healthz`);
    expect(health.status).toBe(200);
    // A relay without instances: one entry, named by the relay's address.
    const body = (await health.json()) as { tunnels: number; instances: Record<string, number> };
    expect(body.tunnels).toBe(2);
    expect(Object.values(body.instances)).toEqual([2]);
  });

  it('a lost connector shows in the relay’s tunnel series', async () => {
    await stack.connector!.stop('SIGKILL');
    await stack.relay!.waitFor(
      (l) => l.msg === 'connector disconnected' && l.tunnelsLeft === 0,
      5000,
      'disconnect',
    );
    const { value, sum } = await scrape(`http://127.0.0.1:${stack.ports.admin}/metrics`);
    expect(value('appproxy_tunnels_open{group="Default"}')).toBe(0);
    expect(sum('appproxy_tunnel_disconnects_total{group="Default",')).toBe(2);
  });
});
