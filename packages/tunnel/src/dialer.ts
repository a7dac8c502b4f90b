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
import { watchLiveness } from './liveness.js';
import { connectThroughProxy } from './outbound-proxy.js';
import { connectToRelay, relayAddress } from './relay-address.js';
import {
  ALPN_TUNNEL,
  CONTROL,
  DEFAULT_PING_INTERVAL_MS,
  PING_TIMEOUT_INTERVALS,
  DRAIN_NOTICE,
  META,
  SESSION_WINDOW,
  TUNNEL_PROTOCOL_VERSION,
  TUNNEL_SETTINGS,
  parseInstanceList,
  type ConnectorHello,
  type InstanceList,
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
  /**
   * Answers a control stream other than the hello (certificate renewal, §6): gets the
   * control name and the parsed JSON body (if any); resolves with the JSON answer, or
   * `undefined` for an empty 204. A rejection answers 500 `{ error: { code, message } }`.
   */
  onControl?: (name: string, body: unknown) => Promise<unknown>;
  /**
   * The relay's instance list (§3.6), from a hello or an `instances` control. Without it the
   * hello body is not read and `instances` goes to `onControl`, as in a connector without
   * instances.
   */
  onInstances?: (list: InstanceList) => void;
  /** Parallel tunnel connections, so one broken TCP connection never takes the connector out. @default 1 */
  tunnels?: number;
  /** PING a quiet tunnel this often. @default 500 */
  pingIntervalMs?: number;
  /** A relay from which nothing arrived for this long is dead. @default 3 × pingIntervalMs */
  pingTimeoutMs?: number;
  /** `http://[user:pass@]proxy:port` to reach the relay through a CONNECT proxy. */
  outboundProxy?: string;
  backoff?: BackoffOptions;
  /** @default 10000 */
  connectTimeoutMs?: number;
  /** How long a tunnel replaced by {@link TunnelDialer.updateCredentials} may finish its streams. @default 60000 */
  rotationDrainTimeoutMs?: number;
}

export interface TunnelUp {
  tunnel: number;
  relay: string;
  /** Replaces a tunnel of the same slot after a credential update. */
  rotated?: boolean;
  /** The relay instance that answered, as its hello named it (absent: a relay without instances). */
  instance?: string;
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

/** One connected tunnel: its h2 session (we are the server), socket and end. */
interface Tunnel {
  session: ServerHttp2Session;
  socket: TLSSocket;
  /** Resolves with why the tunnel ended. */
  closed: Promise<string>;
  /** The instance the relay's hello named, if any. */
  instance?: string;
}

/** Largest control request body read (a certificate). */
const MAX_CONTROL_BYTES = 64 * 1024;
/** How long a drain waits for the relay to acknowledge its drain notice before the GOAWAY. */
const DRAIN_ACK_TIMEOUT_MS = 5000;

/**
 * The connector's side of the tunnel: dials the relay over mutual TLS, then acts as the
 * HTTP/2 *server* on that connection. Keeps `tunnels` connections, each reconnecting by
 * itself with capped exponential backoff and jitter, until `stop()`.
 *
 * @example
 * const dialer = new TunnelDialer({ relayUrl, cert, key, ca, hello, onStream: serve });
 * dialer.start();
 * process.once('SIGTERM', () => dialer.stop({ drainTimeoutMs: 30_000 }));
 */
export class TunnelDialer extends EventEmitter<TunnelDialerEvents> {
  readonly #opts: TunnelDialerOptions;
  /** One entry per tunnel slot: the tunnel it holds now, if any. */
  readonly #slots: Array<{ tunnel?: Tunnel }> = [];
  readonly #wakers = new Set<() => void>();
  #credentials: { cert: string; key: string };
  #running: Promise<void>[] = [];
  #stopping = false;

  constructor(opts: TunnelDialerOptions) {
    super();
    this.#opts = opts;
    this.#credentials = { cert: opts.cert, key: opts.key };
  }

  /** Tunnels currently connected. */
  get connectedCount(): number {
    return this.#slots.filter((s) => s.tunnel).length;
  }

  /** The relay URL this dialer dials. */
  get relayUrl(): string {
    return this.#opts.relayUrl;
  }

  /** For each connected tunnel, the instance its hello named (undefined: none named). */
  connectedInstances(): Array<string | undefined> {
    return this.#slots.flatMap((s) => (s.tunnel ? [s.tunnel.instance] : []));
  }

  start(): void {
    if (this.#running.length > 0) return;
    const count = Math.max(1, this.#opts.tunnels ?? 1);
    for (let i = 0; i < count; i++) {
      const slot = {};
      this.#slots.push(slot);
      this.#running.push(this.#loop(slot, i));
    }
  }

  /** Resolves once at least `count` tunnels are connected. */
  waitConnected(count = 1): Promise<void> {
    if (this.connectedCount >= count) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (this.connectedCount >= count) {
          this.off('connected', check);
          resolve();
        }
      };
      this.on('connected', check);
    });
  }

  /**
   * Drains every tunnel (the relay opens no new streams; in-flight streams and upgrades
   * finish for up to `drainTimeoutMs`), then closes what is left.
   */
  async stop(opts: { drainTimeoutMs?: number } = {}): Promise<void> {
    this.#stopping = true;
    for (const wake of this.#wakers) wake();
    const drainTimeoutMs = opts.drainTimeoutMs ?? 0;
    await Promise.all(
      this.#slots.map((slot) => slot.tunnel && this.#drain(slot.tunnel, drainTimeoutMs)),
    );
    await Promise.all(this.#running);
  }

  /**
   * New credentials (a renewed certificate): every tunnel is replaced, one slot at a time —
   * a new tunnel with the new certificate connects first, then the old one drains — so no
   * request is dropped and the connector never has fewer tunnels than before.
   */
  async updateCredentials(credentials: { cert: string; key: string }): Promise<void> {
    this.#credentials = credentials;
    for (const [index, slot] of this.#slots.entries()) {
      const old = slot.tunnel;
      // An empty slot reconnects with the new credentials by itself.
      if (!old || this.#stopping) continue;
      let fresh: Tunnel;
      try {
        fresh = await this.#connect();
      } catch (err) {
        // The old tunnel keeps serving; its slot picks the new credentials up on reconnect.
        this.emit('connectFailed', {
          tunnel: index,
          reason: `rotation: ${(err as Error).message}`,
          error: err as Error,
        });
        continue;
      }
      if (this.#stopping || slot.tunnel !== old) {
        void this.#drain(fresh, 0);
        continue;
      }
      slot.tunnel = fresh;
      this.emit('connected', {
        tunnel: index,
        relay: this.#opts.relayUrl,
        rotated: true,
        ...(fresh.instance !== undefined && { instance: fresh.instance }),
      });
      void this.#drain(old, this.#opts.rotationDrainTimeoutMs ?? 60_000);
    }
  }

  async #loop(slot: { tunnel?: Tunnel }, index: number): Promise<void> {
    const backoff = new Backoff(this.#opts.backoff);
    while (!this.#stopping) {
      try {
        slot.tunnel = await this.#connect();
      } catch (err) {
        if (this.#stopping) break;
        const retryInMs = backoff.next();
        this.emit('connectFailed', {
          tunnel: index,
          reason: (err as Error).message,
          retryInMs,
          error: err as Error,
        });
        await this.#sleep(retryInMs);
        continue;
      }
      if (this.#stopping) {
        // stop() began during the handshake: it did not see this tunnel.
        await this.#drain(slot.tunnel, 0);
        slot.tunnel = undefined;
        break;
      }
      backoff.reset();
      const instance = slot.tunnel.instance;
      this.emit('connected', {
        tunnel: index,
        relay: this.#opts.relayUrl,
        ...(instance !== undefined && { instance }),
      });
      // A rotation swaps a new tunnel into the slot before the old one ends: keep waiting
      // on whatever the slot holds until the tunnel that ends is the current one.
      let reason: string;
      for (;;) {
        const current: Tunnel = slot.tunnel!;
        reason = await current.closed;
        if (slot.tunnel === current) break;
      }
      slot.tunnel = undefined;
      if (this.#stopping) break;
      const retryInMs = backoff.next();
      this.emit('disconnected', { tunnel: index, reason, retryInMs });
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

  /**
   * Graceful end of one tunnel, free of races: a drain-notice PING first — the relay opens
   * no stream once it sees it — then a second PING: by its ACK, every stream the relay opened
   * before the notice has arrived here (the first ACK can overtake HEADERS still queued at
   * the relay; the second cannot, as the relay queues nothing new). Then GOAWAY; open
   * streams finish, and at `timeoutMs` whatever is left is cut.
   */
  async #drain(tunnel: Tunnel, timeoutMs: number): Promise<void> {
    const { session, socket } = tunnel;
    if (session.destroyed || session.closed) return void (await tunnel.closed);
    const cut = setTimeout(() => {
      // A frozen relay never closes its side; the deadline ends it here.
      session.destroy();
      socket.destroy();
    }, timeoutMs);
    cut.unref();
    const deadline = Date.now() + Math.min(timeoutMs, DRAIN_ACK_TIMEOUT_MS);
    try {
      await pingRoundTrip(session, DRAIN_NOTICE, deadline);
      await pingRoundTrip(session, undefined, deadline);
      if (!session.destroyed && !session.closed) session.close();
      await tunnel.closed;
    } finally {
      clearTimeout(cut);
    }
  }

  async #connect(): Promise<Tunnel> {
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
        cert: this.#credentials.cert,
        key: this.#credentials.key,
        ca: this.#opts.ca,
        ALPNProtocols: [ALPN_TUNNEL],
      },
      timeoutMs,
    );
    if (socket.alpnProtocol !== ALPN_TUNNEL) {
      socket.destroy();
      throw new TunnelError(
        'APPPROXY_TUNNEL_WRONG_PORT',
        `${host}:${port} did not accept ${ALPN_TUNNEL}: not a relay's tunnel port`,
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
    session.on('connect', () => session.setLocalWindowSize(SESSION_WINDOW));
    const pingIntervalMs = this.#opts.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS;
    let reason = 'relay closed the tunnel';
    let refusal: { code: TunnelError['code']; reason: string } | undefined;
    session.on('goaway', (_code, _lastStreamId, debug?: Buffer) => {
      refusal = refusalOf(debug);
      reason = refusal ? `relay refused the tunnel: ${refusal.reason}` : 'relay sent GOAWAY';
    });
    session.on('error', (err) => {
      reason = `tunnel error: ${err.message}`;
    });
    const stopLiveness = watchLiveness(
      session,
      socket,
      {
        intervalMs: pingIntervalMs,
        timeoutMs: this.#opts.pingTimeoutMs ?? PING_TIMEOUT_INTERVALS * pingIntervalMs,
      },
      (why) => {
        reason = why;
        session.destroy();
        socket.destroy();
      },
    );
    const closed = new Promise<string>((resolve) =>
      session.once('close', () => {
        stopLiveness();
        resolve(reason);
      }),
    );
    const tunnel: Tunnel = { session, socket, closed };
    // The relay speaks first (hello) once it has accepted our certificate; until then the
    // tunnel does not count as connected.
    return new Promise<Tunnel>((resolve, reject) => {
      let helloed = false;
      const fail = (
        why: string,
        code: TunnelError['code'] = 'APPPROXY_TUNNEL_HANDSHAKE_FAILED',
      ) => {
        clearTimeout(timer);
        session.destroy();
        socket.destroy();
        reject(new TunnelError(code, why));
      };
      const timer = setTimeout(() => fail(`relay sent no hello within ${timeoutMs} ms`), timeoutMs);
      void closed.then(() => {
        if (helloed) return;
        if (refusal) fail(`relay refused the tunnel: ${refusal.reason}`, refusal.code);
        else fail('relay closed the connection before the hello (certificate refused?)');
      });
      session.on('stream', (stream, headers) => {
        stream.on('error', () => {});
        const control = headers[META.control];
        if (control === undefined) return this.#opts.onStream(stream, headers);
        if (control === CONTROL.hello) {
          const answer = () => {
            const hello: ConnectorHello = {
              protocol: TUNNEL_PROTOCOL_VERSION,
              ...this.#opts.hello,
            };
            if (!stream.destroyed && !stream.closed) {
              stream.respond({ ':status': 200, 'content-type': 'application/json' });
              stream.end(JSON.stringify(hello));
            }
            if (helloed) return;
            helloed = true;
            clearTimeout(timer);
            resolve(tunnel);
          };
          const onInstances = this.#opts.onInstances;
          if (!onInstances) return answer();
          // The list rides in the hello's body (§3.6); an older relay sends none.
          readJson(stream, (body) => {
            const list = body instanceof Error ? undefined : parseInstanceList(body);
            if (list) {
              tunnel.instance = list.instance.name;
              onInstances(list);
            }
            answer();
          });
          return;
        }
        if (control === CONTROL.instances && this.#opts.onInstances) {
          const onInstances = this.#opts.onInstances;
          readJson(stream, (body) => {
            const list = body instanceof Error ? undefined : parseInstanceList(body);
            if (stream.destroyed || stream.closed) return;
            if (!list) {
              stream.respond({ ':status': 400, 'content-type': 'application/json' });
              stream.end(
                JSON.stringify({
                  error: { code: 'APPPROXY_TUNNEL_CONTROL_MALFORMED', message: 'instances' },
                }),
              );
              return;
            }
            tunnel.instance = list.instance.name;
            stream.respond({ ':status': 204 }, { endStream: true });
            onInstances(list);
          });
          return;
        }
        this.#answerControl(String(control), stream);
      });
    });
  }

  #answerControl(name: string, stream: ServerHttp2Stream): void {
    const reply = (status: number, body?: unknown) => {
      if (stream.destroyed || stream.closed) return;
      if (body === undefined)
        return void stream.respond({ ':status': status }, { endStream: true });
      stream.respond({ ':status': status, 'content-type': 'application/json' });
      stream.end(JSON.stringify(body));
    };
    const handler = this.#opts.onControl;
    if (!handler) {
      stream.resume();
      return reply(404, { error: { code: 'APPPROXY_TUNNEL_CONTROL_UNKNOWN', message: name } });
    }
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_CONTROL_BYTES) {
        reply(413, { error: { code: 'APPPROXY_TUNNEL_CONTROL_TOO_LARGE', message: name } });
        stream.destroy();
        return;
      }
      chunks.push(chunk);
    });
    stream.on('end', () => {
      let body: unknown;
      try {
        const text = Buffer.concat(chunks).toString('utf8');
        body = text === '' ? undefined : JSON.parse(text);
      } catch {
        return reply(400, { error: { code: 'APPPROXY_TUNNEL_CONTROL_MALFORMED', message: name } });
      }
      handler(name, body).then(
        (answer) => reply(answer === undefined ? 204 : 200, answer),
        // A body the handler finds malformed is the sender's mistake (400, as a body that is
        // not JSON); any other refusal is the connector's (500).
        (err: Error & { code?: string }) =>
          reply(err.code === 'APPPROXY_TUNNEL_CONTROL_MALFORMED' ? 400 : 500, {
            error: { code: err.code ?? 'APPPROXY_TUNNEL_CONTROL_FAILED', message: err.message },
          }),
      );
    });
  }
}

/**
 * Reads a control stream's JSON body (at most 64 KiB) and calls `done` once with it:
 * undefined when empty, an Error when too large or not JSON.
 */
function readJson(stream: ServerHttp2Stream, done: (body: unknown) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let called = false;
  const finish = (body: unknown) => {
    if (called) return;
    called = true;
    done(body);
  };
  stream.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > MAX_CONTROL_BYTES) {
      stream.pause();
      return finish(new Error('control body too large'));
    }
    chunks.push(chunk);
  });
  stream.on('end', () => {
    const text = Buffer.concat(chunks).toString('utf8');
    if (text === '') return finish(undefined);
    try {
      finish(JSON.parse(text));
    } catch (err) {
      finish(err as Error);
    }
  });
  stream.on('close', () => finish(new Error('control stream closed')));
}

/** Resolves when the peer ACKs a PING (or at `deadline`, or at once if it cannot be sent). */
function pingRoundTrip(
  session: ServerHttp2Session,
  payload: Buffer | undefined,
  deadline: number,
): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
    timer.unref();
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    try {
      const sent = payload ? session.ping(payload, done) : session.ping(done);
      if (!sent) done();
    } catch {
      done();
    }
  });
}

/** The relay's reason in a GOAWAY's debug data (`{ code, reason }`), if it gave one. */
function refusalOf(
  debug: Buffer | undefined,
): { code: TunnelError['code']; reason: string } | undefined {
  if (!debug?.length) return undefined;
  try {
    const body = JSON.parse(debug.toString('utf8')) as { code?: unknown; reason?: unknown };
    if (
      (body.code === 'APPPROXY_TUNNEL_REVOKED' || body.code === 'APPPROXY_TUNNEL_UNAUTHORIZED') &&
      typeof body.reason === 'string'
    )
      return { code: body.code, reason: body.reason.slice(0, 500) };
  } catch {
    // not ours
  }
  return undefined;
}
