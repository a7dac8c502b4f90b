import { request } from 'node:http';
import type { Socket } from 'node:net';
import { TunnelError } from './errors.js';

/**
 * Opens a TCP path to host:port through an HTTP forward proxy (CONNECT), as corporate
 * networks require. Credentials in the proxy URL go in Proxy-Authorization, never in logs.
 *
 * @example
 * const socket = await connectThroughProxy('http://proxy.corp:3128', 'relay.example.com', 8443);
 */
export function connectThroughProxy(
  proxyUrl: string,
  host: string,
  port: number,
  timeoutMs = 10_000,
): Promise<Socket> {
  const proxy = new URL(proxyUrl);
  if (proxy.protocol !== 'http:') {
    return Promise.reject(
      new TunnelError(
        'APPPROXY_TUNNEL_PROXY_FAILED',
        `outbound proxy must be http://, got ${proxy.protocol}`,
      ),
    );
  }
  const authority = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  const headers: Record<string, string> = { host: authority };
  if (proxy.username) {
    const user = decodeURIComponent(proxy.username);
    const pass = decodeURIComponent(proxy.password);
    headers['proxy-authorization'] = `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
  }
  return new Promise((resolve, reject) => {
    const req = request({
      host: proxy.hostname.replace(/^\[|\]$/g, ''),
      port: Number(proxy.port || 80),
      method: 'CONNECT',
      path: authority,
      headers,
      timeout: timeoutMs,
    });
    const where = `${proxy.hostname}:${proxy.port || 80}`;
    req.once('connect', (res, socket, head) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        reject(
          new TunnelError(
            'APPPROXY_TUNNEL_PROXY_FAILED',
            `outbound proxy ${where} answered ${res.statusCode} to CONNECT ${authority}`,
          ),
        );
        return;
      }
      if (head.length > 0) socket.unshift(head);
      resolve(socket);
    });
    req.once('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.once('error', (err) =>
      reject(
        new TunnelError(
          'APPPROXY_TUNNEL_PROXY_FAILED',
          `outbound proxy ${where} failed: ${err.message}`,
          { cause: err },
        ),
      ),
    );
    req.end();
  });
}
