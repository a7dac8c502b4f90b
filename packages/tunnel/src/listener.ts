import { EventEmitter } from 'node:events';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import { constants, connect as h2connect } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { TunnelError } from './errors.js';
import { peerIdentity, type PeerIdentity } from './peer.js';
import {
  ALPN_REGISTRATION,
  ALPN_TUNNEL,
  DEFAULT_PING_INTERVAL_MS,
  PING_TIMEOUT_INTERVALS,
  CONTROL,
  SESSION_WINDOW,
  TUNNEL_SETTINGS,
  type InstanceList,
} from './protocol.js';
import { TunnelSession } from './session.js';

/** What `authorize` says: undefined to accept, else why not. */
export type TunnelVerdict = string | { reason: string; revoked: boolean } | undefined;

export interface TunnelListenerOptions {
  host: string;
  port: number;
  /** Server certificate chain (leaf first, then the CA so that connectors can pin it). */
  cert: string;
  key: string;
  /** The connector CA: only certificates it issued open a tunnel. */
  ca: string;
  /**
   * Returns a reason to refuse a verified peer, or undefined. `revoked: true` tells the
   * connector that retrying cannot help (deleted or unknown): it stops and says so. May
   * answer with a Promise (a lookup in a shared store); a rejected one refuses the tunnel.
   */
  authorize?: (peer: PeerIdentity) => TunnelVerdict | Promise<TunnelVerdict>;
  /** Handles registration requests (HTTP/1.1 over TLS, no client certificate needed). */
  onRegistration?: (req: IncomingMessage, res: ServerResponse) => void;
  /** PING a quiet tunnel this often. @default 500 */
  pingIntervalMs?: number;
  /** A connector from which nothing arrived for this long is dead. @default 3 × pingIntervalMs */
  pingTimeoutMs?: number;
  /** @default 10000 */
  helloTimeoutMs?: number;
  /**
   * This instance and the live instances of its fleet, sent in each tunnel's hello (§3.6);
   * undefined (or no option): a hello without a body, as a relay without instances.
   */
  instances?: () => InstanceList | undefined;
}

/** What {@link TunnelListener.announceInstances} achieved. */
export interface InstancesAnnounced {
  /** Sessions that answered 2xx. */
  delivered: number;
  /** Sessions of connectors that do not know the control (404: older connectors). */
  unsupported: number;
  /** Sessions that failed or closed meanwhile (each one alone; never thrown). */
  failed: number;
}

export interface TunnelRefusal {
  remoteAddress: string;
  reason: string;
  code: TunnelError['code'];
}

interface TunnelListenerEvents {
  session: [TunnelSession];
  sessionClosed: [TunnelSession, TunnelError | undefined];
  refused: [TunnelRefusal];
}

/**
 * The relay's tunnel port. Connectors dial it over mutual TLS; once the connector's
 * certificate is verified the relay becomes the HTTP/2 *client* on that connection.
 *
 * @example
 * const listener = new TunnelListener({ host: '127.0.0.1', port: 0, cert, key, ca });
 * listener.on('session', (s) => console.log('connector up', s.connectorId));
 * await listener.listen();
 */
export class TunnelListener extends EventEmitter<TunnelListenerEvents> {
  readonly #opts: TunnelListenerOptions;
  readonly #sessions = new Set<TunnelSession>();
  readonly #tls;
  readonly #registration;
  #closing = false;

  constructor(opts: TunnelListenerOptions) {
    super();
    this.#opts = opts;
    this.#registration = createHttpServer(
      opts.onRegistration ?? ((_req, res) => res.writeHead(404).end()),
    );
    this.#registration.headersTimeout = 10_000;
    this.#registration.requestTimeout = 30_000;
    this.#tls = createTlsServer({
      cert: opts.cert,
      key: opts.key,
      ca: opts.ca,
      requestCert: true,
      // Registration connections have no certificate yet; tunnels are checked below.
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
      ALPNProtocols: [ALPN_TUNNEL, ALPN_REGISTRATION],
    });
    this.#tls.on('secureConnection', (socket) => this.#onConnection(socket));
    this.#tls.on('tlsClientError', (err, socket) => {
      this.#refuse(
        socket.remoteAddress ?? '?',
        `TLS handshake failed: ${err.message}`,
        'APPPROXY_TUNNEL_UNAUTHORIZED',
      );
    });
  }

  /** Open tunnels, ready or not. */
  get sessions(): ReadonlySet<TunnelSession> {
    return this.#sessions;
  }

  listen(): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.#tls.once('error', reject);
      this.#tls.listen(this.#opts.port, this.#opts.host, () => {
        this.#tls.off('error', reject);
        resolve(this.#tls.address() as AddressInfo);
      });
    });
  }

  /**
   * Sends the `instances` control (§3.6) with `list` on every open tunnel: ready ones now,
   * those still in their hello once it is done. One tunnel's failure never affects another's;
   * nothing is thrown.
   */
  async announceInstances(list: InstanceList, timeoutMs = 10_000): Promise<InstancesAnnounced> {
    const result: InstancesAnnounced = { delivered: 0, unsupported: 0, failed: 0 };
    const send = async (session: TunnelSession): Promise<void> => {
      try {
        if (session.state === 'handshaking') {
          const ready = await new Promise<boolean>((resolve) => {
            session.once('ready', () => resolve(true));
            session.once('closed', () => resolve(false));
          });
          if (!ready) return void result.failed++;
        }
        const { status } = await session.control(CONTROL.instances, list, timeoutMs);
        if (status >= 200 && status < 300) result.delivered++;
        else if (status === 404) result.unsupported++;
        else result.failed++;
      } catch {
        result.failed++;
      }
    };
    const open = [...this.#sessions].filter(
      (s) => s.state === 'handshaking' || s.state === 'ready',
    );
    await Promise.all(open.map(send));
    return result;
  }

  /** Stops accepting, sends GOAWAY on every tunnel and waits for open streams (bounded). */
  async close(opts: { drainTimeoutMs?: number } = {}): Promise<void> {
    this.#closing = true;
    const closed = new Promise<void>((resolve) => this.#tls.close(() => resolve()));
    await Promise.all([...this.#sessions].map((s) => s.drain(opts.drainTimeoutMs ?? 0)));
    this.#registration.closeAllConnections();
    await closed;
  }

  #refuse(remoteAddress: string, reason: string, code: TunnelError['code']): void {
    this.emit('refused', { remoteAddress, reason, code });
  }

  #onConnection(socket: TLSSocket): void {
    socket.on('error', () => {});
    const remoteAddress = socket.remoteAddress ?? '?';
    if (socket.alpnProtocol === ALPN_REGISTRATION && !this.#closing) {
      this.#registration.emit('connection', socket);
      return;
    }
    if (socket.alpnProtocol !== ALPN_TUNNEL || this.#closing) {
      this.#refuse(
        remoteAddress,
        `unexpected ALPN ${String(socket.alpnProtocol)}`,
        'APPPROXY_TUNNEL_HANDSHAKE_FAILED',
      );
      socket.destroy();
      return;
    }
    const peer = peerIdentity(socket);
    if (!socket.authorized || !peer) {
      const why = socket.authorizationError
        ? String(socket.authorizationError)
        : 'no client certificate';
      this.#refuse(remoteAddress, `tunnel refused: ${why}`, 'APPPROXY_TUNNEL_UNAUTHORIZED');
      // A certificate this CA did not issue: the relay's state was replaced (or it is
      // another relay); only a new registration helps.
      if (peer)
        tellRefused(
          socket,
          'APPPROXY_TUNNEL_REVOKED',
          `certificate not issued by this relay (${why})`,
        );
      else socket.destroy();
      return;
    }
    const verdict = this.#opts.authorize?.(peer);
    if (verdict instanceof Promise) {
      verdict.then(
        (v) => this.#authorized(socket, peer, remoteAddress, v),
        (err: Error) =>
          this.#authorized(socket, peer, remoteAddress, {
            reason: `authorization failed: ${err.message}`,
            revoked: false,
          }),
      );
    } else this.#authorized(socket, peer, remoteAddress, verdict);
  }

  #authorized(
    socket: TLSSocket,
    peer: PeerIdentity,
    remoteAddress: string,
    verdict: TunnelVerdict,
  ): void {
    if (socket.destroyed || this.#closing) return void socket.destroy();
    const refusal = typeof verdict === 'string' ? { reason: verdict, revoked: false } : verdict;
    if (refusal) {
      this.#refuse(
        remoteAddress,
        `tunnel refused for ${peer.commonName}: ${refusal.reason}`,
        'APPPROXY_TUNNEL_UNAUTHORIZED',
      );
      tellRefused(
        socket,
        refusal.revoked ? 'APPPROXY_TUNNEL_REVOKED' : 'APPPROXY_TUNNEL_UNAUTHORIZED',
        refusal.reason,
      );
      return;
    }
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    const h2 = h2connect(`https://${peer.commonName}.connector.invalid`, {
      createConnection: () => socket,
      settings: TUNNEL_SETTINGS,
      maxSessionMemory: 64,
      maxOutstandingPings: 2,
    });
    h2.on('connect', () => h2.setLocalWindowSize(SESSION_WINDOW));
    const pingIntervalMs = this.#opts.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS;
    const session = new TunnelSession(h2, socket, peer, remoteAddress, {
      pingIntervalMs,
      pingTimeoutMs: this.#opts.pingTimeoutMs ?? PING_TIMEOUT_INTERVALS * pingIntervalMs,
      helloTimeoutMs: this.#opts.helloTimeoutMs ?? 10_000,
    });
    this.#sessions.add(session);
    session.once('closed', (reason) => {
      this.#sessions.delete(session);
      this.emit('sessionClosed', session, reason);
    });
    let helloBody: InstanceList | undefined;
    try {
      helloBody = this.#opts.instances?.();
    } catch {
      // A list that cannot be had now: the hello goes without one, as from an older relay.
    }
    session.handshake(helloBody).then(
      () => this.emit('session', session),
      (err: TunnelError) => {
        this.#refuse(remoteAddress, err.message, err.code);
        session.destroy(err.message, err.code);
      },
    );
  }
}

/**
 * Says why in a GOAWAY (its debug data: `{ code, reason }`) before closing, so that the
 * connector can tell a refusal from a network failure: the relay is the HTTP/2 client of
 * a tunnel, so it speaks first.
 */
function tellRefused(socket: TLSSocket, code: TunnelError['code'], reason: string): void {
  const h2 = h2connect('https://refused.connector.invalid', { createConnection: () => socket });
  h2.on('error', () => {});
  const done = setTimeout(() => {
    h2.destroy();
    socket.destroy();
  }, 2000);
  done.unref();
  h2.once('connect', () => {
    h2.goaway(constants.NGHTTP2_REFUSED_STREAM, 0, Buffer.from(JSON.stringify({ code, reason })));
    h2.close(() => {
      clearTimeout(done);
      socket.destroy();
    });
  });
}
