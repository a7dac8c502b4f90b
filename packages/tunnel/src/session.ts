import { EventEmitter } from 'node:events';
import type { OutgoingHttpHeaders } from 'node:http';
import type { ClientHttp2Session, ClientHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import { TunnelError } from './errors.js';
import type { PeerIdentity } from './peer.js';
import { startPings } from './ping.js';
import { CONTROL_HELLO, META, TUNNEL_PROTOCOL_VERSION, type ConnectorHello } from './protocol.js';

export type TunnelSessionState = 'handshaking' | 'ready' | 'draining' | 'closed';

export interface TunnelSessionOptions {
  pingIntervalMs: number;
  pingTimeoutMs: number;
  helloTimeoutMs: number;
}

interface TunnelSessionEvents {
  ready: [];
  draining: [];
  closed: [reason: TunnelError | undefined];
}

const MAX_HELLO_BYTES = 64 * 1024;
let nextSessionNumber = 1;

/**
 * The relay's side of one tunnel connection: the relay is the HTTP/2 client and opens one
 * stream per proxied request toward the connector.
 */
export class TunnelSession extends EventEmitter<TunnelSessionEvents> {
  readonly id = `t${nextSessionNumber++}`;
  readonly peer: PeerIdentity;
  readonly remoteAddress: string;
  readonly openedAt = new Date();
  #state: TunnelSessionState = 'handshaking';
  #hello: ConnectorHello | undefined;
  #inFlight = 0;
  #closeReason: TunnelError | undefined;
  #stopPings: () => void = () => {};
  readonly #h2: ClientHttp2Session;
  readonly #socket: Duplex;
  readonly #opts: TunnelSessionOptions;

  constructor(
    h2: ClientHttp2Session,
    socket: Duplex,
    peer: PeerIdentity,
    remoteAddress: string,
    opts: TunnelSessionOptions,
  ) {
    super();
    this.#h2 = h2;
    this.#socket = socket;
    this.peer = peer;
    this.remoteAddress = remoteAddress;
    this.#opts = opts;
    h2.on('goaway', () => this.#setDraining());
    h2.on('error', (err) => {
      this.#closeReason ??= new TunnelError(
        'APPPROXY_TUNNEL_CLOSED',
        `tunnel error: ${err.message}`,
        { cause: err },
      );
    });
    h2.on('close', () => this.#onClosed());
  }

  get state(): TunnelSessionState {
    return this.#state;
  }
  get hello(): ConnectorHello | undefined {
    return this.#hello;
  }
  get connectorId(): string {
    return this.peer.commonName;
  }
  /** Streams opened and not yet closed. */
  get inFlight(): number {
    return this.#inFlight;
  }
  hasCapability(name: string): boolean {
    return this.#hello?.capabilities.includes(name) ?? false;
  }

  /** Asks the connector who it is; resolves once the session can carry requests. */
  async handshake(): Promise<ConnectorHello> {
    const hello = await this.#requestHello();
    if (hello.connectorId !== this.peer.commonName) {
      throw new TunnelError(
        'APPPROXY_TUNNEL_HANDSHAKE_FAILED',
        `hello names connector ${hello.connectorId} but the certificate is ${this.peer.commonName}`,
      );
    }
    if (hello.protocol !== TUNNEL_PROTOCOL_VERSION) {
      throw new TunnelError(
        'APPPROXY_TUNNEL_HANDSHAKE_FAILED',
        `unsupported tunnel protocol ${hello.protocol}`,
      );
    }
    this.#hello = hello;
    if (this.#state === 'handshaking') this.#state = 'ready';
    this.#startPings();
    this.emit('ready');
    return hello;
  }

  /**
   * Opens a stream carrying one proxied request. The caller writes the body (or passes
   * `endStream`) and reads the response from the returned stream.
   */
  request(headers: OutgoingHttpHeaders, opts: { endStream?: boolean } = {}): ClientHttp2Stream {
    if (this.#state !== 'ready') {
      throw new TunnelError('APPPROXY_TUNNEL_CLOSED', `tunnel ${this.id} is ${this.#state}`);
    }
    const stream = this.#h2.request(headers, { endStream: opts.endStream ?? false });
    this.#inFlight++;
    stream.once('close', () => {
      this.#inFlight--;
    });
    return stream;
  }

  /** GOAWAY: no new streams; open ones finish. Resolves when the session is closed. */
  drain(timeoutMs: number): Promise<void> {
    if (this.#state === 'closed') return Promise.resolve();
    const closed = new Promise<void>((resolve) => this.once('closed', () => resolve()));
    this.#setDraining();
    this.#h2.close();
    const timer = setTimeout(() => this.destroy('drain timeout'), timeoutMs);
    timer.unref();
    return closed.finally(() => clearTimeout(timer));
  }

  destroy(reason: string, code: TunnelError['code'] = 'APPPROXY_TUNNEL_CLOSED'): void {
    this.#closeReason ??= new TunnelError(code, reason);
    this.#h2.destroy();
    // After a graceful close the session waits for the peer's FIN; a dead peer never sends it.
    this.#socket.destroy();
  }

  #setDraining(): void {
    if (this.#state === 'closed' || this.#state === 'draining') return;
    this.#state = 'draining';
    this.emit('draining');
  }

  #onClosed(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#stopPings();
    this.emit('closed', this.#closeReason);
  }

  #startPings(): void {
    const { pingIntervalMs, pingTimeoutMs } = this.#opts;
    this.#stopPings = startPings(this.#h2, pingIntervalMs, pingTimeoutMs, (reason) =>
      this.destroy(reason, 'APPPROXY_TUNNEL_PING_TIMEOUT'),
    );
  }

  #requestHello(): Promise<ConnectorHello> {
    return new Promise((resolve, reject) => {
      const fail = (message: string, cause?: unknown) => {
        clearTimeout(timer);
        stream.destroy();
        reject(new TunnelError('APPPROXY_TUNNEL_HANDSHAKE_FAILED', message, { cause }));
      };
      const stream = this.#h2.request(
        { ':method': 'GET', ':path': '/', [META.control]: CONTROL_HELLO },
        { endStream: true },
      );
      const timer = setTimeout(
        () => fail(`no hello within ${this.#opts.helloTimeoutMs} ms`),
        this.#opts.helloTimeoutMs,
      );
      const chunks: Buffer[] = [];
      let size = 0;
      stream.on('response', (headers) => {
        if (headers[':status'] !== 200) fail(`hello answered ${headers[':status']}`);
      });
      stream.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_HELLO_BYTES) return fail('hello too large');
        chunks.push(chunk);
      });
      stream.on('error', (err) => fail(`hello stream failed: ${err.message}`, err));
      stream.on('end', () => {
        clearTimeout(timer);
        try {
          const hello = JSON.parse(Buffer.concat(chunks).toString('utf8')) as ConnectorHello;
          if (typeof hello.connectorId !== 'string' || !Array.isArray(hello.capabilities)) {
            throw new Error('missing fields');
          }
          resolve(hello);
        } catch (err) {
          reject(
            new TunnelError('APPPROXY_TUNNEL_HANDSHAKE_FAILED', 'hello is not valid JSON', {
              cause: err,
            }),
          );
        }
      });
    });
  }
}
