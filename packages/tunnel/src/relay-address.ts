import { isIP } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { TunnelError } from './errors.js';

/** Host and port of a relay URL (`https://relay.example.com:8443`; default port 443). */
export function relayAddress(relayUrl: string): { host: string; port: number } {
  const url = new URL(relayUrl);
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 443) };
}

/**
 * TLS (≥ 1.2) to the relay, resolved after the handshake; SNI unless the host is an IP.
 * Failures and timeouts are `APPPROXY_TUNNEL_HANDSHAKE_FAILED`.
 */
export function connectToRelay(
  host: string,
  port: number,
  options: ConnectionOptions,
  timeoutMs: number,
): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({
      host,
      port,
      servername: isIP(host) ? undefined : host,
      minVersion: 'TLSv1.2',
      ...options,
    });
    const fail = (err: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(
        new TunnelError(
          'APPPROXY_TUNNEL_HANDSHAKE_FAILED',
          `cannot reach relay ${host}:${port}: ${err.message}`,
          {
            cause: err,
          },
        ),
      );
    };
    const timer = setTimeout(
      () => fail(new Error(`TLS handshake timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.once('error', fail);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      socket.off('error', fail);
      resolve(socket);
    });
  });
}
