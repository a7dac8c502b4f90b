import { EventEmitter } from 'node:events';
import type { OutgoingHttpHeaders } from 'node:http';
import type { ClientHttp2Session, ClientHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import { TunnelError } from './errors.js';
import { watchLiveness } from './liveness.js';
import type { PeerIdentity } from './peer.js';
import {
  CONTROL,
  DRAIN_NOTICE,
  META,
  TUNNEL_PROTOCOL_VERSION,
  type ConnectorHello,
  type ControlName,
} from './protocol.js';

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

/** Largest control answer read (hello, CSR). */
const MAX_CONTROL_BYTES = 64 * 1024;
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
  #stopLiveness: () => void = () => {};
  readonly #h2: ClientHttp2Session;
  readonly #socket: Duplex & { readonly bytesRead: number };
  readonly #opts: TunnelSessionOptions;

  constructor(
    h2: ClientHttp2Session,
    socket: Duplex & { readonly bytesRead: number },
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
    // A draining connector announces it with a PING and waits for our ACK before its
    // GOAWAY, so streams are (almost) never in flight toward a closing connector.
    h2.on('ping', (payload: Buffer) => {
      if (DRAIN_NOTICE.equals(payload)) this.#setDraining();
    });
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
  /** True while new streams may be opened (ready, not draining). */
  get accepting(): boolean {
    return this.#state === 'ready';
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

  /**
   * Asks the connector who it is; resolves once the session can carry requests. `body` (the
   * relay's instance list, §3.6) makes the hello a POST; an older connector ignores it.
   */
  async handshake(body?: unknown): Promise<ConnectorHello> {
    const answer = await this.control(CONTROL.hello, body, this.#opts.helloTimeoutMs).catch(
      (err: TunnelError) => {
        throw new TunnelError('APPPROXY_TUNNEL_HANDSHAKE_FAILED', `hello: ${err.message}`, {
          cause: err,
        });
      },
    );
    const hello = answer.body as ConnectorHello | undefined;
    if (
      answer.status !== 200 ||
      typeof hello?.connectorId !== 'string' ||
      !Array.isArray(hello.capabilities)
    ) {
      throw new TunnelError(
        'APPPROXY_TUNNEL_HANDSHAKE_FAILED',
        `hello answered ${answer.status} without the expected fields`,
      );
    }
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
    this.#stopLiveness = watchLiveness(
      this.#h2,
      this.#socket,
      { intervalMs: this.#opts.pingIntervalMs, timeoutMs: this.#opts.pingTimeoutMs },
      (reason) => this.destroy(reason, 'APPPROXY_TUNNEL_PING_TIMEOUT'),
    );
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

  /**
   * A control exchange (§3.1, §6): opens a `appproxy-control: <name>` stream with an optional
   * JSON body and resolves with the status and the parsed JSON answer (if any). Fails with
   * `APPPROXY_TUNNEL_CONTROL_FAILED` on a reset, a timeout or an answer that is not JSON.
   */
  control(
    name: ControlName,
    body?: unknown,
    timeoutMs = 10_000,
  ): Promise<{ status: number; body: unknown }> {
    return new Promise((resolve, reject) => {
      if (this.#h2.destroyed || this.#h2.closed) {
        reject(new TunnelError('APPPROXY_TUNNEL_CLOSED', `tunnel ${this.id} is closed`));
        return;
      }
      const fail = (message: string, cause?: unknown) => {
        clearTimeout(timer);
        stream.destroy();
        reject(new TunnelError('APPPROXY_TUNNEL_CONTROL_FAILED', message, { cause }));
      };
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const stream = this.#h2.request(
        {
          ':method': payload ? 'POST' : 'GET',
          ':path': '/',
          [META.control]: name,
          ...(payload && { 'content-type': 'application/json' }),
        },
        { endStream: !payload },
      );
      if (payload) stream.end(payload);
      const timer = setTimeout(() => fail(`no ${name} answer within ${timeoutMs} ms`), timeoutMs);
      let status = 0;
      const chunks: Buffer[] = [];
      let size = 0;
      stream.on('response', (headers) => {
        status = Number(headers[':status']);
      });
      stream.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_CONTROL_BYTES) return fail(`${name} answer too large`);
        chunks.push(chunk);
      });
      stream.on('error', (err) => fail(`${name} stream failed: ${err.message}`, err));
      stream.on('end', () => {
        clearTimeout(timer);
        const text = Buffer.concat(chunks).toString('utf8');
        if (text === '') return resolve({ status, body: undefined });
        try {
          resolve({ status, body: JSON.parse(text) as unknown });
        } catch (err) {
          reject(
            new TunnelError('APPPROXY_TUNNEL_CONTROL_FAILED', `${name} answer is not JSON`, {
              cause: err,
            }),
          );
        }
      });
    });
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
    this.#stopLiveness();
    this.emit('closed', this.#closeReason);
  }
}
