import type { Logger } from '@appproxy/telemetry';
import { META, endToEndHeaders, forwardBody, resetStream } from '@appproxy/tunnel';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { ServerHttp2Stream } from 'node:http2';
import { PassThrough } from 'node:stream';
import { Agent, ProxyAgent, request, type Dispatcher } from 'undici';
import { classifyBackendError } from './errors.js';
import type { ConnectorMetrics } from './metrics.js';
import { respondError } from './respond.js';
import { forwardUpgrade } from './upgrade.js';

const NO_BODY_STATUS = new Set([204, 205, 304]);
/** Used when the relay sends no timeout (it always does). */
const DEFAULT_TIMEOUT_MS = 85_000;

export interface ForwarderOptions {
  log: Logger;
  metrics: ConnectorMetrics;
  /** Connections per backend origin. @default 256 */
  connections?: number;
}

const POOL = { keepAliveTimeout: 30_000, pipelining: 1 } as const;

/**
 * Serves tunnel streams by forwarding them to the internal URL the relay named, with undici
 * (pooled keep-alive connections per backend). Bodies stream both ways with backpressure.
 */
export class BackendForwarder {
  readonly #log: Logger;
  readonly #metrics: ConnectorMetrics;
  readonly #connections: number;
  /** Pools by backend TLS validation and forward proxy (`verify|proxy`). */
  readonly #dispatchers = new Map<string, Dispatcher>();

  constructor(opts: ForwarderOptions) {
    this.#log = opts.log;
    this.#metrics = opts.metrics;
    this.#connections = opts.connections ?? 256;
  }

  async close(): Promise<void> {
    await Promise.all([...this.#dispatchers.values()].map((d) => d.close()));
  }

  /**
   * The pool for a backend: direct, or through the app's forward proxy — plain HTTP
   * backends as absolute-form requests (what any forward proxy allows), HTTPS ones through
   * a CONNECT tunnel.
   */
  #dispatcher(verifyTls: boolean, proxy: string | undefined): Dispatcher {
    const key = `${verifyTls ? 1 : 0}|${proxy ?? ''}`;
    let d = this.#dispatchers.get(key);
    if (!d) {
      const tls = { rejectUnauthorized: verifyTls };
      d = proxy
        ? new ProxyAgent({
            uri: proxy,
            proxyTunnel: false,
            requestTls: tls,
            connections: this.#connections,
            ...POOL,
          })
        : new Agent({ connections: this.#connections, connect: tls, ...POOL });
      this.#dispatchers.set(key, d);
    }
    return d;
  }

  /** `onStream` for the TunnelDialer. */
  handle = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void => {
    const requestId = String(headers[META.requestId] ?? '');
    const app = String(headers[META.app] ?? '-');
    const log = this.#log.child({ requestId, app });
    const metrics = this.#metrics;
    let target: URL;
    try {
      target = new URL(String(headers[META.target]));
      if (target.protocol !== 'http:' && target.protocol !== 'https:') throw new Error('scheme');
    } catch {
      return respondError(stream, 'BACKEND_UNREACHABLE', 502, 'relay sent no valid target');
    }
    const timeoutMs = Number(headers[META.timeout]) || DEFAULT_TIMEOUT_MS;
    const verifyTls = headers[META.tlsVerify] !== '0';
    const proxy = headers[META.backendProxy] as string | undefined;
    const authority = String(headers[':authority'] ?? target.host);
    const path = String(headers[':path'] ?? '/');
    const method = String(headers[':method']);
    if (!path.startsWith('/'))
      return respondError(
        stream,
        'BACKEND_UNREACHABLE',
        502,
        'relay sent a path that is not origin-form',
      );
    if (method === 'CONNECT') {
      forwardUpgrade({
        stream,
        headers,
        target,
        authority,
        path,
        timeoutMs,
        verifyTls,
        proxy,
        log,
        metrics,
        app,
      });
      return;
    }
    const started = process.hrtime.bigint();
    metrics.inFlight.labels(app).inc();
    let status = 0;
    let bytesOut = 0;
    let bytesIn = 0;
    stream.once('close', () => {
      metrics.inFlight.labels(app).dec();
      metrics.requests.labels(app, String(status || 'aborted')).inc();
      metrics.duration.labels(app).observe(Number(process.hrtime.bigint() - started) / 1e9);
      metrics.bytesToBackend.labels(app).inc(bytesOut);
      metrics.bytesFromBackend.labels(app).inc(bytesIn);
    });
    const abort = new AbortController();
    // Abort only what is still running: abort() allocates a DOMException with a stack,
    // which showed up at ~4% of connector CPU when done for every finished request.
    let settled = false;
    stream.once('close', () => {
      if (!settled) abort.abort();
    });
    const outHeaders: OutgoingHttpHeaders = { ...endToEndHeaders(headers), host: authority };
    // undici destroys a body stream once it has sent it, which would close the tunnel
    // stream before the response; so undici reads a PassThrough. A request body reset by the
    // relay (client gone mid-upload) fails the backend request instead of looking complete.
    let body: PassThrough | undefined;
    if (!stream.endAfterHeaders) {
      const upload = new PassThrough();
      forwardBody(stream, upload, (rst) =>
        upload.destroy(new Error(`request body reset by the relay (RST ${rst})`)),
      );
      // After the pipe: a 'data' listener added first would let chunks flow past it.
      stream.on('data', (chunk: Buffer) => {
        bytesOut += chunk.length;
      });
      body = upload;
    }
    // Concatenate, never resolve: `new URL('//other-host/x', origin)` would leave the backend.
    request(`${target.origin}${path}`, {
      method,
      headers: outHeaders as Record<string, string | string[]>,
      body,
      dispatcher: this.#dispatcher(verifyTls, proxy),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      signal: abort.signal,
    }).then(
      (res) => {
        if (stream.destroyed || stream.closed) {
          res.body.destroy();
          return;
        }
        const responseHeaders: OutgoingHttpHeaders = {
          ...endToEndHeaders(res.headers as IncomingHttpHeaders),
          ':status': res.statusCode,
        };
        status = res.statusCode;
        const empty = method === 'HEAD' || NO_BODY_STATUS.has(res.statusCode);
        log.debug('backend answered', {
          status: res.statusCode,
          ms: Number(process.hrtime.bigint() - started) / 1e6,
        });
        if (empty) {
          settled = true;
          stream.respond(responseHeaders, { endStream: true });
          res.body.resume();
          return;
        }
        stream.respond(responseHeaders);
        // pipe(), not pipeline(): see the relay's proxy.ts (an AbortController per call).
        res.body.pipe(stream);
        res.body.on('data', (chunk: Buffer) => {
          bytesIn += chunk.length;
        });
        res.body.once('end', () => {
          settled = true;
        });
        res.body.once('error', (err) => {
          settled = true;
          if (stream.destroyed) return;
          log.warn('backend response interrupted', { error: err, target: target.origin });
          // RST so the relay cuts the client's response instead of ending it as if complete.
          resetStream(stream, 'backend response interrupted');
        });
      },
      (err: unknown) => {
        settled = true;
        if (abort.signal.aborted) return;
        const failure = classifyBackendError(err);
        status = failure.status;
        metrics.backendErrors.labels(app, failure.code).inc();
        log.warn('backend request failed', {
          code: failure.code,
          detail: failure.detail,
          target: target.origin,
          method,
          proxy,
        });
        respondError(stream, failure.code, failure.status, failure.detail);
      },
    );
  };
}
