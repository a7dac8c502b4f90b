import type { RelayLimits } from '@appproxy/config';
import { createDevCertificates } from '@appproxy/pki';
import { createLogger } from '@appproxy/telemetry';
import { once } from 'node:events';
import { readFileSync, rmSync, mkdtempSync } from 'node:fs';
import {
  connect as h2connect,
  createSecureServer,
  type Http2SecureServer,
  type Http2ServerRequest,
} from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { RelayMetrics } from './metrics.js';
import { PublicConnections } from './public-connections.js';

const LIMITS: RelayLimits = {
  maxConnections: 10_000,
  maxConnectionsPerClient: 256,
  maxStreamsPerConnection: 128,
  maxResetsPerConnection: 100,
  resetWindowMs: 10_000,
  headersTimeoutMs: 10_000,
  idleTimeoutMs: 60_000,
};

const dir = mkdtempSync(join(tmpdir(), 'appproxy-public-'));
let tls: { cert: string; key: string; ca: string };
beforeAll(async () => {
  const certs = await createDevCertificates({ dir, hosts: ['localhost', '127.0.0.1'] });
  tls = {
    cert: readFileSync(certs.certPath, 'utf8'),
    key: readFileSync(certs.keyPath, 'utf8'),
    ca: readFileSync(certs.caCertPath, 'utf8'),
  };
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A public-listener-like server on 127.0.0.1:0 with `limits`; closed after the test. */
async function serve(
  limits: Partial<RelayLimits>,
  onRequest: (
    req: Http2ServerRequest,
    connections: PublicConnections,
    res: { end(): void },
  ) => void = (_req, _connections, res) => res.end(),
) {
  const metrics = new RelayMetrics();
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({
    name: 'test',
    level: 'debug',
    write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>),
  });
  const connections = new PublicConnections(
    { ...LIMITS, ...limits },
    log,
    metrics,
    (address) => address === '127.0.0.9',
  );
  const server: Http2SecureServer = createSecureServer({
    ...tls,
    allowHTTP1: true,
    ...connections.serverOptions(),
  });
  connections.attach(server);
  server.on('request', (req, res) => onRequest(req as Http2ServerRequest, connections, res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  onTestFinished(() => {
    server.close();
    (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
  });
  const port = (server.address() as AddressInfo).port;
  const value = (series: string) =>
    Number(
      new RegExp(`^${series.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(
        metrics.registry.render(),
      )?.[1] ?? 0,
    );
  return { port, connections, lines, value };
}

function client(port: number, localAddress = '127.0.0.1') {
  const session = h2connect(`https://localhost:${port}`, {
    ca: tls.ca,
    localAddress,
  } as Parameters<typeof h2connect>[1]);
  session.on('error', () => {});
  onTestFinished(() => void session.destroy());
  return session;
}

/** The error the session closed with (once closed). */
function closed(session: ReturnType<typeof client>): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    let error: NodeJS.ErrnoException | undefined;
    session.on('error', (err: NodeJS.ErrnoException) => (error = err));
    session.once('close', () => resolve(error));
  });
}

describe('PublicConnections', () => {
  it('closes connections over maxConnectionsPerClient at once, counts and logs them', async () => {
    const { port, connections, lines, value } = await serve({ maxConnectionsPerClient: 3 });
    const sessions = [1, 2, 3].map(() => client(port));
    await Promise.all(sessions.map((s) => once(s, 'connect')));
    expect(connections.open).toBe(3);
    const over = client(port);
    const error = await closed(over);
    expect(error?.code).toBe('ECONNRESET');
    // Another client address is not affected.
    const other = client(port, '127.0.0.2');
    await once(other, 'connect');
    expect(value('appproxy_connections_refused_total{reason="max_connections_per_client"}')).toBe(
      1,
    );
    expect(lines.find((l) => l.msg === 'connection refused')).toMatchObject({
      client: '127.0.0.1',
      reason: 'max_connections_per_client',
    });
    // A burst of refusals is one line a second, not one per connection.
    await Promise.all([1, 2, 3].map(() => closed(client(port))));
    expect(value('appproxy_connections_refused_total{reason="max_connections_per_client"}')).toBe(
      4,
    );
    expect(lines.filter((l) => l.msg === 'connection refused')).toHaveLength(1);
  });

  it('a trusted front proxy is exempt from maxConnectionsPerClient, not from maxConnections', async () => {
    const { port, value } = await serve({ maxConnectionsPerClient: 1, maxConnections: 3 });
    const proxied = [1, 2, 3].map(() => client(port, '127.0.0.9'));
    await Promise.all(proxied.map((s) => once(s, 'connect')));
    expect((await closed(client(port, '127.0.0.9')))?.code).toBe('ECONNRESET');
    expect(value('appproxy_connections_refused_total{reason="max_connections"}')).toBe(1);
    expect(value('appproxy_connections_refused_total{reason="max_connections_per_client"}')).toBe(
      0,
    );
  });

  it('closes connections over maxConnections at once', async () => {
    const { port, value } = await serve({ maxConnections: 2 });
    await Promise.all([client(port), client(port, '127.0.0.2')].map((s) => once(s, 'connect')));
    expect((await closed(client(port, '127.0.0.3')))?.code).toBe('ECONNRESET');
    expect(value('appproxy_connections_refused_total{reason="max_connections"}')).toBe(1);
    expect(value('appproxy_connections_open')).toBe(2);
  });

  it('an HTTP/2 connection that opens no stream within headersTimeout is closed', async () => {
    const { port, value } = await serve({ headersTimeoutMs: 200 });
    const socket = tlsConnect({
      host: '127.0.0.1',
      port,
      ca: tls.ca,
      servername: 'localhost',
      ALPNProtocols: ['h2'],
    });
    socket.on('error', () => {});
    onTestFinished(() => void socket.destroy());
    await once(socket, 'secureConnect');
    socket.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0');
    socket.resume();
    await once(socket, 'close');
    expect(value('appproxy_connections_closed_total{reason="headers_timeout"}')).toBe(1);
  });

  it('an HTTP/1.1 client that does not finish its headers within headersTimeout gets 408', async () => {
    const { port } = await serve({ headersTimeoutMs: 200 });
    const socket = tlsConnect({
      host: '127.0.0.1',
      port,
      ca: tls.ca,
      servername: 'localhost',
      ALPNProtocols: ['http/1.1'],
    });
    socket.on('error', () => {});
    onTestFinished(() => void socket.destroy());
    await once(socket, 'secureConnect');
    socket.write('GET / HTTP/1.1\r\nHost: localhost\r\n');
    let answer = '';
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
    // Node checks every connectionsCheckingInterval (30 s unless set): 5 s tells them apart.
    await Promise.race([once(socket, 'close'), sleep(5_000)]);
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(socket.destroyed).toBe(true);
  });

  it('an idle HTTP/1.1 keep-alive connection is closed after idleTimeout', async () => {
    const { port } = await serve({ idleTimeoutMs: 200 });
    const socket = tlsConnect({
      host: '127.0.0.1',
      port,
      ca: tls.ca,
      servername: 'localhost',
      ALPNProtocols: ['http/1.1'],
    });
    socket.on('error', () => {});
    onTestFinished(() => void socket.destroy());
    await once(socket, 'secureConnect');
    socket.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n');
    let answer = '';
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
    // Node adds 1 s to keepAliveTimeout; its default (5 s) would outlast the 4 s here.
    await Promise.race([once(socket, 'close'), sleep(4_000)]);
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(answer).toMatch(/keep-alive/i);
    expect(socket.destroyed).toBe(true);
  });

  it('an HTTP/2 connection with no stream open for idleTimeout is closed', async () => {
    const { port, value } = await serve({ idleTimeoutMs: 200 });
    const session = client(port);
    const stream = session.request({ ':path': '/' });
    stream.resume();
    await once(stream, 'close');
    const [code] = (await once(session, 'goaway')) as [number];
    expect(code).toBe(0);
    expect(value('appproxy_connections_closed_total{reason="idle"}')).toBe(1);
  });

  it('gives each HTTP/2 connection maxStreamsPerConnection tunnel-stream slots', async () => {
    const taken: Array<(() => void) | undefined> = [];
    const { port } = await serve({ maxStreamsPerConnection: 2 }, (req, connections) => {
      taken.push(connections.tunnelStream(req));
      req.stream.respond({ ':status': 200 }, { endStream: true });
    });
    const get = async (session: ReturnType<typeof client>) => {
      const s = session.request({ ':path': '/' });
      s.resume();
      await once(s, 'close');
    };
    const one = client(port);
    await get(one);
    await get(one);
    await get(one);
    expect(taken.map((r) => typeof r)).toStrictEqual(['function', 'function', 'undefined']);
    taken[0]!();
    taken[0]!(); // released once only
    await get(one);
    expect(typeof taken[3]).toBe('function');
    await get(one);
    expect(taken[4]).toBeUndefined();
    // Slots are per connection.
    await get(client(port));
    expect(typeof taken[5]).toBe('function');
  });
});
