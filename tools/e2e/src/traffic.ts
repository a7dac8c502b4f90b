/**
 * Traffic for end-to-end tests: a bounded load generator that records every outcome, and an
 * HTTP CONNECT proxy whose connections a test can cut (a network element, outside the system).
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import { connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import type { Stack } from './harness.js';

export interface Outcome {
  method: string;
  path: string;
  status: number;
  /** Set when the request failed below HTTP (reset, refused). */
  error?: string;
  errorCode?: string;
  correlationId?: string;
  startedAt: number;
  endedAt: number;
}

export interface LoadOptions {
  host: string;
  /** Requests in flight at once. @default 8 */
  concurrency?: number;
  /** What each request is; called with a running index. @default GET /echo */
  next?: (i: number) => { method: string; path: string; body?: Buffer };
  /** Stop by itself after this many requests (bounded in any case). @default 100000 */
  maxRequests?: number;
  /** Pause between a worker's requests. @default 0 */
  pauseMs?: number;
  /** Where to connect, e.g. a load balancer in front of the relay. @default the stack's public port */
  port?: number;
  /**
   * Reuse connections. Off: every request opens a new one, so a load balancer places each
   * request anew (and a request never meets a connection its server is closing). @default true
   */
  keepAlive?: boolean;
}

/**
 * Keeps `concurrency` requests in flight against the relay (keep-alive HTTPS) until
 * `stop()`, then resolves with every outcome.
 */
export class LoadGenerator {
  readonly outcomes: Outcome[] = [];
  readonly #stack: Stack;
  readonly #opts: Required<Omit<LoadOptions, 'next' | 'port'>> & Pick<LoadOptions, 'next' | 'port'>;
  readonly #agent: Agent;
  #stopping = false;
  #issued = 0;
  #workers: Promise<void>[] = [];

  constructor(stack: Stack, opts: LoadOptions) {
    this.#stack = stack;
    this.#opts = { concurrency: 8, maxRequests: 100_000, pauseMs: 0, keepAlive: true, ...opts };
    this.#agent = new Agent({
      keepAlive: this.#opts.keepAlive,
      maxSockets: this.#opts.concurrency,
      ca: stack.ca,
    });
  }

  start(): this {
    for (let w = 0; w < this.#opts.concurrency; w++) this.#workers.push(this.#work());
    return this;
  }

  /** Runs until `maxRequests` requests completed; resolves with every outcome. */
  async run(): Promise<Outcome[]> {
    if (this.#workers.length === 0) this.start();
    await Promise.all(this.#workers);
    this.#agent.destroy();
    return this.outcomes;
  }

  /** Resolves once `count` more requests have completed. */
  async completed(count: number): Promise<void> {
    const target = this.outcomes.length + count;
    while (this.outcomes.length < target && !this.#stopping) {
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async stop(): Promise<Outcome[]> {
    this.#stopping = true;
    await Promise.all(this.#workers);
    this.#agent.destroy();
    return this.outcomes;
  }

  failures(): Outcome[] {
    return this.outcomes.filter((o) => o.error !== undefined || o.status >= 500);
  }

  async #work(): Promise<void> {
    while (!this.#stopping && this.#issued < this.#opts.maxRequests) {
      const i = this.#issued++;
      const { method, path, body } = this.#opts.next?.(i) ?? { method: 'GET', path: '/echo' };
      this.outcomes.push(await this.#send(method, path, body));
      if (this.#opts.pauseMs > 0) await new Promise((r) => setTimeout(r, this.#opts.pauseMs));
    }
  }

  #send(method: string, path: string, body?: Buffer): Promise<Outcome> {
    const startedAt = Date.now();
    return new Promise((resolve) => {
      const req = httpsRequest({
        host: '127.0.0.1',
        port: this.#opts.port ?? this.#stack.ports.public,
        // The Host may carry a port (an external URL on a load balancer's port); SNI never does.
        servername: this.#opts.host.replace(/:\d+$/, ''),
        agent: this.#agent,
        method,
        path,
        headers: {
          host: this.#opts.host,
          accept: 'application/json',
          ...(!this.#opts.keepAlive && { connection: 'close' }),
          ...(body && { 'content-length': String(body.length) }),
        },
        timeout: 60_000,
      });
      const done = (o: Partial<Outcome>) =>
        resolve({ method, path, status: 0, startedAt, endedAt: Date.now(), ...o });
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          let errorCode: string | undefined;
          if ((res.statusCode ?? 0) >= 400) {
            try {
              errorCode = (
                JSON.parse(Buffer.concat(chunks).toString()) as { error?: { code?: string } }
              ).error?.code;
            } catch {
              errorCode = undefined;
            }
          }
          done({
            status: res.statusCode ?? 0,
            errorCode,
            correlationId: res.headers['x-appproxy-correlation-id'] as string | undefined,
          });
        });
        res.on('error', (err) => done({ status: res.statusCode ?? 0, error: err.message }));
      });
      req.on('timeout', () => req.destroy(new Error('client timeout')));
      req.on('error', (err) => done({ error: err.message }));
      req.end(body);
    });
  }
}

/**
 * An HTTP CONNECT proxy on 127.0.0.1 that records what was asked and can cut every tunnel
 * it carries (or one), as a failing network path would.
 */
export class CuttableConnectProxy {
  readonly connects: string[] = [];
  readonly tunnels = new Set<{ client: Socket; upstream: Socket }>();
  readonly #server: Server = createServer();
  port = 0;

  async start(): Promise<this> {
    this.#server.on('connect', (req, client: Socket, head: Buffer) => {
      this.connects.push(req.url ?? '');
      const [host, port] = splitHostPort(req.url ?? '');
      const upstream = netConnect(port, host, () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        if (head.length > 0) upstream.write(head);
        upstream.pipe(client).pipe(upstream);
      });
      const pair = { client, upstream };
      this.tunnels.add(pair);
      const drop = () => {
        this.tunnels.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
    });
    this.#server.listen(0, '127.0.0.1');
    await once(this.#server, 'listening');
    this.port = (this.#server.address() as AddressInfo).port;
    return this;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Cuts one tunnel (a TCP reset both ways). */
  cutOne(): void {
    const first = this.tunnels.values().next().value;
    if (!first) throw new Error('no tunnel to cut');
    first.client.resetAndDestroy();
    first.upstream.resetAndDestroy();
  }

  async stop(): Promise<void> {
    for (const { client, upstream } of this.tunnels) {
      client.destroy();
      upstream.destroy();
    }
    await new Promise<void>((r) => this.#server.close(() => r()));
  }
}

function splitHostPort(authority: string): [string, number] {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(authority);
  if (!m) throw new Error(`bad CONNECT target ${authority}`);
  return [m[1]!, Number(m[2])];
}
