import { createLogger } from '@appproxy/telemetry';
import { META } from '@appproxy/tunnel';
import { once } from 'node:events';
import { connect as h2connect, createServer as createH2Server } from 'node:http2';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { classifyBackendError } from './errors.js';
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
        verifyTls: true,
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
