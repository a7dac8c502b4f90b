import { createLogger } from '@appproxy/telemetry';
import { META, encodeRequestMeta } from '@appproxy/tunnel';
import { once } from 'node:events';
import { connect as h2connect, createServer as createH2Server } from 'node:http2';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { classifyBackendError } from './errors.js';
import { BackendForwarder } from './forward.js';
import { ConnectorMetrics } from './metrics.js';
import { forwardUpgrade } from './upgrade.js';

describe('classifyBackendError', () => {
  const withCause = (code: string) =>
    Object.assign(new Error('fetch failed'), { cause: Object.assign(new Error(code), { code }) });
  it.each([
    ['ECONNREFUSED', 'BACKEND_UNREACHABLE', 502],
    ['ENOTFOUND', 'BACKEND_UNREACHABLE', 502],
    ['UND_ERR_HEADERS_TIMEOUT', 'BACKEND_TIMEOUT', 504],
    ['DEPTH_ZERO_SELF_SIGNED_CERT', 'BACKEND_TLS_INVALID', 502],
    ['ERR_TLS_CERT_ALTNAME_INVALID', 'BACKEND_TLS_INVALID', 502],
  ])('%s → %s', (code, expected, status) => {
    expect(classifyBackendError(withCause(code))).toMatchObject({ code: expected, status });
    expect(classifyBackendError(Object.assign(new Error('x'), { code }))).toMatchObject({
      code: expected,
    });
  });
});

describe('undici, loaded by its dispatcher modules', () => {
  it('gives the very classes undici exports', async () => {
    const undici = await import('undici');
    const { Agent, proxyAgent } = await import('./undici.js');
    expect(Agent).toBe(undici.Agent);
    expect(proxyAgent()).toBe(undici.ProxyAgent);
  });
});

describe('forwardUpgrade', () => {
  /** An h2 stream pair (the tunnel's shape) whose server side goes to forwardUpgrade. */
  async function upgradeThrough(protocol: string, extra: Record<string, string> = {}) {
    const received: Buffer[] = [];
    let connections = 0;
    const backend = createNetServer((socket) => {
      connections++;
      socket.on('data', (d: Buffer) => {
        received.push(d);
        if (Buffer.concat(received).includes('\r\n\r\n'))
          socket.write(
            `HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${protocol}\r\n\r\n`,
          );
      });
      socket.on('error', () => {});
    });
    backend.listen(0, '127.0.0.1');
    await once(backend, 'listening');
    const { port } = backend.address() as AddressInfo;
    const tunnel = createH2Server();
    tunnel.on('stream', (stream, headers) =>
      forwardUpgrade({
        stream,
        headers,
        target: new URL(`http://127.0.0.1:${port}/`),
        protocol: String(headers[META.upgrade]),
        authority: 'app.example.com',
        path: '/ws',
        timeoutMs: 2000,
        tls: { rejectUnauthorized: true },
        log: createLogger({ name: 'test', write: () => {} }),
        metrics: new ConnectorMetrics(),
        app: 'App',
      }),
    );
    tunnel.listen(0, '127.0.0.1');
    await once(tunnel, 'listening');
    const client = h2connect(`http://127.0.0.1:${(tunnel.address() as AddressInfo).port}`);
    try {
      const s = client.request({ ':path': '/ws', [META.upgrade]: protocol, ...extra });
      const [headers] = (await once(s, 'response')) as [Record<string, string | number>];
      s.destroy();
      await new Promise((r) => setTimeout(r, 100));
      return { headers, connections, head: Buffer.concat(received).toString('latin1') };
    } finally {
      client.destroy();
      tunnel.close();
      backend.close();
    }
  }

  it.each(['h2c', 'H2C'])('never sends an %s upgrade to the backend', async (protocol) => {
    const { headers, connections } = await upgradeThrough(protocol);
    expect(headers[':status']).toBe(400);
    expect(headers[META.error]).toBe('UPGRADE_REFUSED');
    expect(connections).toBe(0);
  });

  it('sends a WebSocket upgrade without Content-Length', async () => {
    const { headers, head } = await upgradeThrough('websocket', { 'content-length': '0' });
    expect(headers[':status']).toBe(200);
    expect(head).toMatch(/^GET \/ws HTTP\/1\.1\r\n/);
    expect(head).toMatch(/\r\nupgrade: websocket\r\n/i);
    expect(head).not.toMatch(/content-length|transfer-encoding/i);
  });
});

describe('BackendForwarder: kept-alive backend connections', () => {
  /**
   * A backend that answers the first request of each connection with keep-alive and closes
   * the connection when a second request arrives on it, unanswered: the race of a server
   * timing out an idle connection as the connector sends on it (lighttpd after 5 s).
   */
  async function closingBackend() {
    let connections = 0;
    const closedByClient: number[] = [];
    const server = createNetServer((socket) => {
      const n = ++connections;
      let requests = 0;
      let buffered = '';
      socket.on('data', (d: Buffer) => {
        buffered += d.toString('latin1');
        while (buffered.includes('\r\n\r\n')) {
          const head = buffered.slice(0, buffered.indexOf('\r\n\r\n'));
          buffered = buffered.slice(buffered.indexOf('\r\n\r\n') + 4);
          const length = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
          buffered = buffered.slice(length);
          if (++requests > 1) return void socket.destroy();
          const body = `connection ${n}`;
          socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
        }
      });
      socket.on('end', () => closedByClient.push(n));
      socket.on('error', () => {});
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return {
      server,
      port: (server.address() as AddressInfo).port,
      connections: () => connections,
      closedByClient,
    };
  }

  /** The forwarder behind an h2 server (the tunnel's shape) and a client to send through it. */
  async function through(backendPort: number, keepAliveMs: number) {
    const metrics = new ConnectorMetrics();
    const forwarder = new BackendForwarder({
      log: createLogger({ name: 'test', write: () => {} }),
      metrics,
    });
    const tunnel = createH2Server();
    tunnel.on('stream', forwarder.handle);
    tunnel.listen(0, '127.0.0.1');
    await once(tunnel, 'listening');
    const client = h2connect(`http://127.0.0.1:${(tunnel.address() as AddressInfo).port}`);
    const send = async (method: string, body?: string) => {
      const s = client.request({
        ':method': method,
        ':path': '/x',
        ...encodeRequestMeta(
          {
            target: `http://127.0.0.1:${backendPort}`,
            requestId: 'r',
            app: 'App',
            timeoutMs: 5000,
            verifyTls: true,
            keepAliveMs,
          },
          {},
        ),
      });
      s.end(body);
      const [headers] = (await once(s, 'response')) as [Record<string, string | number>];
      let text = '';
      for await (const chunk of s) text += String(chunk);
      return { status: headers[':status'], error: headers[META.error], text };
    };
    onTestFinished(async () => {
      client.destroy();
      tunnel.close();
      await forwarder.close();
    });
    return { send, metrics };
  }

  it('sends a GET again on a new connection when the kept-alive one was closed under it', async () => {
    const backend = await closingBackend();
    onTestFinished(() => void backend.server.close());
    const { send, metrics } = await through(backend.port, 60_000);
    expect(await send('GET')).toMatchObject({ status: 200, text: 'connection 1' });
    // The pool reuses connection 1; the backend closes it: a retry on connection 2.
    expect(await send('GET')).toMatchObject({ status: 200, text: 'connection 2' });
    expect(backend.connections()).toBe(2);
    expect(metrics.registry.render()).toMatch(
      /appproxy_connector_backend_retries_total\{app="App"\} 1/,
    );
  });

  it('never sends a body or a non-idempotent request twice: 502 instead', async () => {
    const backend = await closingBackend();
    onTestFinished(() => void backend.server.close());
    const { send } = await through(backend.port, 60_000);
    expect((await send('GET')).status).toBe(200);
    expect(await send('POST', 'amount=100')).toMatchObject({
      status: 502,
      error: 'BACKEND_UNREACHABLE',
    });
    expect((await send('GET')).status).toBe(200);
    expect(await send('DELETE')).toMatchObject({ status: 200 }); // idempotent, no body: retried
    expect(backend.connections()).toBe(3);
  });

  it('closes an idle connection after backendKeepAlive, before the server would', async () => {
    const backend = await closingBackend();
    onTestFinished(() => void backend.server.close());
    const { send } = await through(backend.port, 150);
    expect((await send('GET')).text).toBe('connection 1');
    await expect.poll(() => backend.closedByClient, { timeout: 3000 }).toEqual([1]);
    // The next request goes on a new connection, no retry needed.
    expect((await send('GET')).text).toBe('connection 2');
  });
});
