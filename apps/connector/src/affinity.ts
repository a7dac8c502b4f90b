import type { GaugeChild, Logger } from '@appproxy/telemetry';
import { AFFINITY_ID, TunnelError } from '@appproxy/tunnel';
import type { Dispatcher } from 'undici';
import type { BackendTlsOptions } from './backend-tls.js';
import { Agent, proxyAgent } from './undici.js';

/** Affinity ids (client connections) with a dedicated backend connection, at most. */
export const DEFAULT_MAX_PINNED = 10_000;
/**
 * How long a pinned backend connection may sit idle: IIS's default connection timeout
 * (120 s). Closing it earlier only costs a new handshake (the backend's 401 on the new
 * connection), which browsers do by themselves.
 */
export const DEFAULT_PINNED_IDLE_MS = 120_000;

export interface PinnedConnectionsOptions {
  /** Set to the number of affinity ids held. */
  gauge: GaugeChild;
  log: Logger;
  /** @default DEFAULT_MAX_PINNED — beyond it the least recently used id is closed. */
  max?: number;
  /** @default DEFAULT_PINNED_IDLE_MS */
  idleMs?: number;
}

/** A request's use of a pinned connection: its dispatcher, and `done` when the stream closed. */
export interface PinnedLease {
  dispatcher: Dispatcher;
  done: () => void;
}

interface Pinned {
  /** By backend TLS validation and forward proxy: one single-connection pool each. */
  dispatchers: Map<string, Dispatcher>;
  active: number;
  idle: NodeJS.Timeout | undefined;
}

/**
 * Dedicated backend connections for connection-bound authentication (NTLM, Negotiate):
 * requests with the same affinity id go through one single-connection dispatcher (per
 * backend origin), never the shared pools, so the handshake and what follows ride one TCP
 * connection. If the backend closes it, the next request opens a new one. An id is closed
 * when the relay releases it (the client connection closed), after `idleMs` without
 * requests, or when `max` newer ids push it out.
 */
export class PinnedConnections {
  readonly #pinned = new Map<string, Pinned>();
  readonly #gauge: GaugeChild;
  readonly #log: Logger;
  readonly #max: number;
  readonly #idleMs: number;

  constructor(opts: PinnedConnectionsOptions) {
    this.#gauge = opts.gauge;
    this.#log = opts.log;
    this.#max = opts.max ?? DEFAULT_MAX_PINNED;
    this.#idleMs = opts.idleMs ?? DEFAULT_PINNED_IDLE_MS;
  }

  /** Affinity ids held now. */
  get size(): number {
    return this.#pinned.size;
  }

  /** The id's dispatcher for these backend settings; call `done` when the request ended. */
  acquire(
    id: string,
    tls: boolean | BackendTlsOptions,
    proxy: string | undefined,
    /** The app's backend TLS id: part of the connection's key. */
    tlsId = '',
  ): PinnedLease {
    const options = typeof tls === 'boolean' ? { rejectUnauthorized: tls } : tls;
    let pinned = this.#pinned.get(id);
    if (pinned) {
      // Most recently used last: the first entry is the one to close when full.
      this.#pinned.delete(id);
      clearTimeout(pinned.idle);
      pinned.idle = undefined;
    } else {
      pinned = { dispatchers: new Map(), active: 0, idle: undefined };
      if (this.#pinned.size >= this.#max) {
        const oldest = this.#pinned.keys().next().value!;
        this.#log.info('pinned backend connection closed: too many', { max: this.#max });
        this.#close(oldest);
      }
    }
    this.#pinned.set(id, pinned);
    this.#gauge.set(this.#pinned.size);
    const key = `${options.rejectUnauthorized ? 1 : 0}|${tlsId}|${proxy ?? ''}`;
    let dispatcher = pinned.dispatchers.get(key);
    if (!dispatcher) {
      dispatcher = this.#dispatcher(options, proxy);
      pinned.dispatchers.set(key, dispatcher);
    }
    pinned.active++;
    const entry = pinned;
    let done = false;
    return {
      dispatcher,
      done: () => {
        if (done) return;
        done = true;
        if (--entry.active > 0 || this.#pinned.get(id) !== entry) return;
        entry.idle = setTimeout(() => this.#close(id), this.#idleMs);
        entry.idle.unref();
      },
    };
  }

  /**
   * `release` control stream (body `{ affinity }`): the client connection closed, so its
   * backend connection is closed too. Unknown ids are fine (already idle-closed).
   */
  release = (body: unknown): Promise<undefined> => {
    const id = (body as { affinity?: unknown } | undefined)?.affinity;
    if (typeof id !== 'string' || !AFFINITY_ID.test(id))
      return Promise.reject(
        new TunnelError('APPPROXY_TUNNEL_META_INVALID', 'release: expected { affinity: <id> }'),
      );
    this.#close(id);
    return Promise.resolve(undefined);
  };

  async close(): Promise<void> {
    const all = [...this.#pinned.values()].flatMap((p) => [...p.dispatchers.values()]);
    for (const p of this.#pinned.values()) clearTimeout(p.idle);
    this.#pinned.clear();
    this.#gauge.set(0);
    await Promise.all(all.map((d) => d.close()));
  }

  #close(id: string): void {
    const pinned = this.#pinned.get(id);
    if (!pinned) return;
    this.#pinned.delete(id);
    clearTimeout(pinned.idle);
    this.#gauge.set(this.#pinned.size);
    // destroy, not close: nobody waits for what is still in flight on it.
    for (const d of pinned.dispatchers.values()) d.destroy().catch(() => {});
  }

  /** One connection per origin, kept alive while idle up to `idleMs` (the server may say less). */
  #dispatcher(tls: BackendTlsOptions, proxy: string | undefined): Dispatcher {
    const single = {
      connections: 1,
      pipelining: 1,
      keepAliveTimeout: this.#idleMs,
      keepAliveMaxTimeout: this.#idleMs,
    };
    return proxy
      ? new (proxyAgent())({ uri: proxy, proxyTunnel: false, requestTls: tls, ...single })
      : new Agent({ connect: tls, ...single });
  }
}
