import { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders } from 'node:http';
import {
  performServerHandshake,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { Backoff, type BackoffOptions } from './backoff.js';
import { TunnelError } from './errors.js';
import { connectThroughProxy } from './outbound-proxy.js';
import { connectToRelay, relayAddress } from './relay-address.js';
import { startPings } from './ping.js';
import {
  ALPN_TUNNEL,
  CONTROL_HELLO,
  META,
  SESSION_WINDOW,
  TUNNEL_PROTOCOL_VERSION,
  TUNNEL_SETTINGS,
  type ConnectorHello,
} from './protocol.js';

export interface TunnelDialerOptions {
  /** The relay's tunnel endpoint, `https://relay.example.com:8443`. */
  relayUrl: string;
  /** This connector's certificate and key (issued by the relay's CA at registration). */
  cert: string;
  key: string;
  /** The relay CA pinned at registration: the only CA trusted for the relay's certificate. */
  ca: string;
  hello: Omit<ConnectorHello, 'protocol'>;
  /** Serves one proxied request (a normal stream, or an extended CONNECT for upgrades). */
  onStream: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => void;
  /** Parallel tunnel connections, so one broken TCP connection never takes the connector out. @default 1 */
  tunnels?: number;
  /** @default 15000 */
  pingIntervalMs?: number;
  /** @default pingIntervalMs, at least 1000 */
  pingTimeoutMs?: number;
  /** `http://[user:pass@]proxy:port` to reach the relay through a CONNECT proxy. */
  outboundProxy?: string;
  backoff?: BackoffOptions;
  /** @default 10000 */
  connectTimeoutMs?: number;
}

export interface TunnelUp {
  tunnel: number;
  relay: string;
}
export interface TunnelDown {
  tunnel: number;
  reason: string;
  retryInMs?: number;
}

interface TunnelDialerEvents {
  connected: [TunnelUp];
  disconnected: [TunnelDown];
  connectFailed: [TunnelDown & { error: Error }];
}

/**
 * The connector's side of the tunnel: dials the relay over mutual TLS, then acts as the
 * HTTP/2 *server* on that connection. Reconnects by itself with capped exponential backoff
 * and jitter until `stop()`.
 *
 * @example
 * const dialer = new TunnelDialer({ relayUrl, cert, key, ca, hello, onStream: serve });
 * dialer.start();
 * process.once('SIGTERM', () => dialer.stop({ drainTimeoutMs: 30_000 }));
 */
export class TunnelDialer extends EventEmitter<TunnelDialerEvents> {
  readonly #opts: TunnelDialerOptions;
  readonly #sessions = new Set<ServerHttp2Session>();
  readonly #sockets = new WeakMap<ServerHttp2Session, TLSSocket>();
  readonly #wakers = new Set<() => void>();
  #running: Promise<void>[] = [];
  #stopping = false;

  constructor(opts: TunnelDialerOptions) {
    super();
    this.#opts = opts;
  }

  /** Tunnels currently connected. */
  get connectedCount(): number {
    return this.#sessions.size;
  }

  start(): void {
    if (this.#running.length > 0) return;
    const count = Math.max(1, this.#opts.tunnels ?? 1);
    for (let i = 0; i < count; i++) this.#running.push(this.#loop(i));
  }

  /** Resolves once at least `count` tunnels are connected. */
  waitConnected(count = 1): Promise<void> {
    if (this.#sessions.size >= count) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (this.#sessions.size >= count) {
          this.off('connected', check);
          resolve();
        }
      };
      this.on('connected', check);
    });
  }

  /**
   * GOAWAY on every tunnel (the relay sends no new streams), lets in-flight streams and
   * upgrades finish for up to `drainTimeoutMs`, then closes what is left.
   */
  async stop(opts: { drainTimeoutMs?: number } = {}): Promise<void> {
    this.#stopping = true;
    for (const wake of this.#wakers) wake();
    const drainTimeoutMs = opts.drainTimeoutMs ?? 0;
    await Promise.all(
      [...this.#sessions].map(
        (session) =>
          new Promise<void>((resolve) => {
            if (session.destroyed) return resolve();
            session.once('close', () => resolve());
            // A graceful close waits for the peer to close its side too; a frozen relay
            // never does, so the deadline destroys the socket itself.
            const timer = setTimeout(() => {
              session.destroy();
              this.#sockets.get(session)?.destroy();
            }, drainTimeoutMs);
            timer.unref();
            session.once('close', () => clearTimeout(timer));
            session.close();
          }),
      ),
    );
    await Promise.all(this.#running);
  }

  async #loop(tunnel: number): Promise<void> {
    const backoff = new Backoff(this.#opts.backoff);
    while (!this.#stopping) {
      let reason: string;
      try {
        const session = await this.#connect();
        backoff.reset();
        this.emit('connected', { tunnel, relay: this.#opts.relayUrl });
        reason = await this.#untilClosed(session);
      } catch (err) {
        if (this.#stopping) break;
        const retryInMs = backoff.next();
        this.emit('connectFailed', {
          tunnel,
          reason: (err as Error).message,
          retryInMs,
          error: err as Error,
        });
        await this.#sleep(retryInMs);
        continue;
      }
      if (this.#stopping) break;
      const retryInMs = backoff.next();
      this.emit('disconnected', { tunnel, reason, retryInMs });
      await this.#sleep(retryInMs);
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.#wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#wakers.add(wake);
    });
  }

  #untilClosed(session: ServerHttp2Session): Promise<string> {
    const { pingIntervalMs = 15_000 } = this.#opts;
    const pingTimeoutMs = this.#opts.pingTimeoutMs ?? Math.max(1000, pingIntervalMs);
    let reason = 'relay closed the tunnel';
    const stopPings = startPings(session, pingIntervalMs, pingTimeoutMs, (why) => {
      reason = why;
      session.destroy();
      this.#sockets.get(session)?.destroy();
    });
    return new Promise((resolve) => {
      session.on('goaway', () => {
        reason = 'relay sent GOAWAY';
      });
      session.on('error', (err) => {
        reason = `tunnel error: ${err.message}`;
      });
      session.once('close', () => {
        stopPings();
        this.#sessions.delete(session);
        resolve(reason);
      });
    });
  }

  async #connect(): Promise<ServerHttp2Session> {
    const { host, port } = relayAddress(this.#opts.relayUrl);
    const timeoutMs = this.#opts.connectTimeoutMs ?? 10_000;
    let raw: Socket | undefined;
    if (this.#opts.outboundProxy)
      raw = await connectThroughProxy(this.#opts.outboundProxy, host, port, timeoutMs);
    const socket = await connectToRelay(
      host,
      port,
      {
        socket: raw,
        cert: this.#opts.cert,
        key: this.#opts.key,
        ca: this.#opts.ca,
        ALPNProtocols: [ALPN_TUNNEL],
      },
      timeoutMs,
    );
    if (socket.alpnProtocol !== ALPN_TUNNEL) {
      socket.destroy();
      throw new TunnelError(
        'APPPROXY_TUNNEL_HANDSHAKE_FAILED',
        `relay did not accept ${ALPN_TUNNEL}`,
      );
    }
    socket.on('error', () => {});
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    if (this.#stopping) {
      socket.destroy();
      throw new TunnelError('APPPROXY_TUNNEL_CLOSED', 'stopping');
    }
    const session = performServerHandshake(socket, {
      settings: { ...TUNNEL_SETTINGS, enableConnectProtocol: true },
      maxSessionMemory: 64,
      maxOutstandingPings: 2,
    });
    this.#sockets.set(session, socket);
    session.on('error', () => {});
    session.on('connect', () => session.setLocalWindowSize(SESSION_WINDOW));
    // The relay speaks first (hello) once it has accepted our certificate; until then the
    // tunnel does not count as connected.
    return new Promise<ServerHttp2Session>((resolve, reject) => {
      const fail = (why: string) => {
        clearTimeout(timer);
        session.destroy();
        reject(new TunnelError('APPPROXY_TUNNEL_HANDSHAKE_FAILED', why));
      };
      const timer = setTimeout(() => fail(`relay sent no hello within ${timeoutMs} ms`), timeoutMs);
      const onEarlyClose = () =>
        fail('relay closed the connection before the hello (certificate refused?)');
      session.once('close', onEarlyClose);
      session.on('stream', (stream, headers) => {
        stream.on('error', () => {});
        if (headers[META.control] === CONTROL_HELLO) {
          const hello: ConnectorHello = { protocol: TUNNEL_PROTOCOL_VERSION, ...this.#opts.hello };
          stream.respond({ ':status': 200, 'content-type': 'application/json' });
          stream.end(JSON.stringify(hello));
          clearTimeout(timer);
          session.off('close', onEarlyClose);
          this.#sessions.add(session);
          resolve(session);
          return;
        }
        this.#opts.onStream(stream, headers);
      });
    });
  }
}
