import type { RelayLimits } from '@appproxy/config';
import type { Logger } from '@appproxy/telemetry';
import {
  constants as h2constants,
  type Http2SecureServer,
  type Http2ServerRequest,
  type ServerHttp2Session,
} from 'node:http2';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { RelayMetrics } from './metrics.js';

/** Refused connections are logged at most this often (with how many since the last line). */
const REFUSAL_LOG_INTERVAL_MS = 1_000;

/** Per HTTP/2 client connection: its timers, its reset count, its tunnel streams. */
interface SessionState {
  client: string;
  openStreams: number;
  tunnelStreams: number;
  resets: number;
  resetWindowStart: number;
  timer: NodeJS.Timeout | undefined;
  closing: boolean;
}

/**
 * The public listener's connections, kept within `relay.limits`: a cap on connections in
 * total and per client address (over it: closed at once), the HTTP/1.1 header and keep-alive
 * timeouts, and for HTTP/2 a first-request timeout, an idle timeout, a stream cap and a
 * rapid-reset guard (GOAWAY `ENHANCE_YOUR_CALM` past `maxResetsPerConnection` resets in
 * `resetWindow`).
 */
export class PublicConnections {
  readonly #limits: RelayLimits;
  readonly #log: Logger;
  readonly #metrics: RelayMetrics;
  #open = 0;
  readonly #perClient = new Map<string, number>();
  /** Keyed by the HTTP/2 session (`req.stream.session`). */
  readonly #sessions = new WeakMap<object, SessionState>();
  #lastRefusalLog = 0;
  #refusedSinceLog = 0;

  readonly #exempt: (address: string | undefined) => boolean;

  /**
   * `exemptFromPerClientCap`: addresses that carry many users' connections (the front
   * proxies of `relay.trustedProxies`); `maxConnections` still applies to them.
   */
  constructor(
    limits: RelayLimits,
    log: Logger,
    metrics: RelayMetrics,
    exemptFromPerClientCap: (address: string | undefined) => boolean = () => false,
  ) {
    this.#limits = limits;
    this.#log = log;
    this.#metrics = metrics;
    this.#exempt = exemptFromPerClientCap;
  }

  /** Connections open now. */
  get open(): number {
    return this.#open;
  }

  /** Options of the public server that come from the limits (merge into its own). */
  serverOptions(): {
    handshakeTimeout: number;
    connectionsCheckingInterval: number;
    settings: { maxConcurrentStreams: number };
  } {
    return {
      // A connection that never finishes its handshake holds a slot no longer than this.
      handshakeTimeout: this.#limits.headersTimeoutMs,
      // How often HTTP/1.1 headersTimeout is checked (Node's default, 30 s, would let a
      // slow client hold its connection three times longer than a 10 s headersTimeout).
      connectionsCheckingInterval: Math.min(1_000, this.#limits.headersTimeoutMs),
      settings: { maxConcurrentStreams: this.#limits.maxStreamsPerConnection },
    };
  }

  /** Sets the server's timeouts and watches its connections and HTTP/2 sessions. */
  attach(server: Http2SecureServer): void {
    const http1 = server as unknown as {
      headersTimeout: number;
      requestTimeout: number;
      keepAliveTimeout: number;
    };
    http1.headersTimeout = this.#limits.headersTimeoutMs;
    // The whole request, body included, is bounded by the app's backend timeout instead.
    http1.requestTimeout = 0;
    http1.keepAliveTimeout = this.#limits.idleTimeoutMs;
    // Before TLS: a connection over the cap costs no handshake.
    server.prependListener('connection', (socket: Socket) => this.#onConnection(socket));
    server.on('session', (session) => this.#onSession(session));
  }

  /**
   * Takes one of the connection's `maxStreamsPerConnection` tunnel-stream slots for an
   * HTTP/2 request; returns the function that gives it back, or undefined when none is free.
   * HTTP/1.1 requests always get one (one request at a time per connection).
   */
  tunnelStream(req: IncomingMessage | Http2ServerRequest): (() => void) | undefined {
    if (req.httpVersionMajor !== 2) return () => {};
    const state = this.#sessions.get((req as Http2ServerRequest).stream.session!);
    if (!state) return () => {};
    if (state.tunnelStreams >= this.#limits.maxStreamsPerConnection) return undefined;
    state.tunnelStreams++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      state.tunnelStreams--;
    };
  }

  #onConnection(socket: Socket): void {
    const client = socket.remoteAddress ?? '?';
    const fromClient = this.#perClient.get(client) ?? 0;
    const reason =
      this.#open >= this.#limits.maxConnections
        ? 'max_connections'
        : fromClient >= this.#limits.maxConnectionsPerClient && !this.#exempt(client)
          ? 'max_connections_per_client'
          : undefined;
    if (reason) {
      this.#metrics.connectionsRefused.labels(reason).inc();
      this.#refused(client, reason);
      socket.destroy();
      return;
    }
    this.#open++;
    this.#perClient.set(client, fromClient + 1);
    this.#metrics.connectionsOpen.labels().set(this.#open);
    socket.once('close', () => {
      this.#open--;
      const left = (this.#perClient.get(client) ?? 1) - 1;
      if (left === 0) this.#perClient.delete(client);
      else this.#perClient.set(client, left);
      this.#metrics.connectionsOpen.labels().set(this.#open);
    });
  }

  #refused(client: string, reason: string): void {
    this.#refusedSinceLog++;
    const now = Date.now();
    if (now - this.#lastRefusalLog < REFUSAL_LOG_INTERVAL_MS) return;
    this.#log.warn('connection refused', {
      client,
      reason,
      refused: this.#refusedSinceLog,
      open: this.#open,
    });
    this.#lastRefusalLog = now;
    this.#refusedSinceLog = 0;
  }

  #onSession(session: ServerHttp2Session): void {
    const state: SessionState = {
      client: session.socket?.remoteAddress ?? '?',
      openStreams: 0,
      tunnelStreams: 0,
      resets: 0,
      resetWindowStart: Date.now(),
      timer: undefined,
      closing: false,
    };
    this.#sessions.set(session, state);
    const closeAfter = (ms: number, reason: 'headers_timeout' | 'idle') => {
      clearTimeout(state.timer);
      state.timer = setTimeout(() => {
        if (state.closing || session.closed || session.destroyed) return;
        state.closing = true;
        this.#metrics.connectionsClosed.labels(reason).inc();
        this.#log.debug('client connection closed', { client: state.client, reason });
        session.close();
        // A client that never closes its side is cut off once GOAWAY had time to arrive.
        setTimeout(() => session.destroy(), 1_000).unref();
      }, ms);
      state.timer.unref();
    };
    closeAfter(this.#limits.headersTimeoutMs, 'headers_timeout');
    session.on('stream', (stream) => {
      state.openStreams++;
      clearTimeout(state.timer);
      stream.once('close', () => {
        if (--state.openStreams === 0 && !state.closing)
          closeAfter(this.#limits.idleTimeoutMs, 'idle');
        // The relay's own resets close with NO_ERROR; anything else came from the client.
        if (stream.rstCode !== h2constants.NGHTTP2_NO_ERROR) this.#onReset(session, state);
      });
    });
    session.once('close', () => clearTimeout(state.timer));
  }

  #onReset(session: ServerHttp2Session, state: SessionState): void {
    if (state.closing) return;
    const now = Date.now();
    if (now - state.resetWindowStart > this.#limits.resetWindowMs) {
      state.resetWindowStart = now;
      state.resets = 0;
    }
    if (++state.resets <= this.#limits.maxResetsPerConnection) return;
    state.closing = true;
    this.#metrics.connectionsClosed.labels('too_many_resets').inc();
    this.#log.warn('client connection closed: too many stream resets', {
      client: state.client,
      resets: state.resets,
      windowMs: this.#limits.resetWindowMs,
    });
    session.goaway(h2constants.NGHTTP2_ENHANCE_YOUR_CALM);
    session.destroy();
  }
}
