import type { Logger } from '@appproxy/telemetry';
import {
  FORWARD_BUFFER_BYTES,
  TunnelError,
  decodeRequestMeta,
  endToEndHeaders,
  forwardBody,
  resetStream,
  type BackendTlsMeta,
  type RequestMeta,
} from '@appproxy/tunnel';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { ServerHttp2Stream } from 'node:http2';
import { PassThrough } from 'node:stream';
import type { Dispatcher } from 'undici';
import { PinnedConnections, type PinnedConnectionsOptions } from './affinity.js';
import { BackendTlsCache, type BackendTlsOptions } from './backend-tls.js';
import { classifyBackendError } from './errors.js';
import { delegatedAuthorization, rejectsTicket, type TicketSource } from './kerberos.js';
import type { AppSeries, ConnectorMetrics } from './metrics.js';
import { respondError } from './respond.js';
import { Agent, proxyAgent } from './undici.js';
import { forwardRpc, RPC_TUNNEL_PROTOCOL } from './rpc-over-http.js';
import { forwardUpgrade, type UpgradeContext } from './upgrade.js';

const NO_BODY_STATUS = new Set([204, 205, 304]);

export interface ForwarderOptions {
  log: Logger;
  metrics: ConnectorMetrics;
  /** Connections per backend origin. @default 256 */
  connections?: number;
  /** Dedicated connections of affinity ids (NTLM/Negotiate): `max`, `idleMs`. */
  pinned?: Pick<PinnedConnectionsOptions, 'max' | 'idleMs'>;
  /**
   * Kerberos single sign-on (`--kerberos-keytab`, `--kerberos-principal`); without it a
   * request of a `sso.mode: kerberos` app is answered `SSO_NOT_CONFIGURED`.
   */
  kerberos?: TicketSource;
}

/**
 * How long an idle backend connection is kept when the relay does not say (the app's
 * `backendKeepAlive`): below common server idle timeouts (lighttpd 5 s, nginx and Apache
 * 5–75 s, Tomcat 20 s), so the connector closes an idle connection before the server does
 * and never sends a request down one the server is closing.
 */
export const DEFAULT_BACKEND_KEEP_ALIVE_MS = 4_000;

/** Methods a server may receive twice with the effect of once (RFC 9110 §9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);

/**
 * Failures of a connection that was fine when picked: the server closed it (an idle
 * keep-alive connection it timed out) as the request went out.
 */
const STALE_CONNECTION = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE']);

/**
 * Characters the URL parser would change in a path (percent-encoding, `#`, backslashes) or
 * dot segments: only such paths go through `new URL` (see {@link originFormPath}).
 */
const NEEDS_URL_PARSER = /[^\x21-\x7e]|["#<>`{}\\'^|]|\/\.|%2e/i;

/**
 * Serves tunnel streams by forwarding them to the internal URL the relay named, with undici
 * (pooled keep-alive connections per backend). Bodies stream both ways with backpressure.
 */
export class BackendForwarder {
  readonly #log: Logger;
  readonly #metrics: ConnectorMetrics;
  readonly #connections: number;
  readonly #kerberos: TicketSource | undefined;
  /** Pools by backend TLS validation, keep-alive, freshness and forward proxy. */
  readonly #dispatchers = new Map<string, Dispatcher>();
  /** Requests with an affinity id: one dedicated connection per id, never the pools. */
  readonly #pinned: PinnedConnections;
  /** Apps' `backendTls` material as the relay sent it, by id. */
  readonly #backendTls = new BackendTlsCache();

  constructor(opts: ForwarderOptions) {
    this.#log = opts.log;
    this.#metrics = opts.metrics;
    this.#connections = opts.connections ?? 256;
    this.#kerberos = opts.kerberos;
    this.#pinned = new PinnedConnections({
      gauge: opts.metrics.pinnedConnections.labels(),
      log: opts.log,
      ...opts.pinned,
    });
  }

  /** `release` control stream (§3.4): the relay's client connection of an affinity id closed. */
  get release(): (body: unknown) => Promise<undefined> {
    return this.#pinned.release;
  }

  /**
   * For diagnostics (`diagnose.ts`): the TLS options a request of an app with these settings
   * gets (the app's `backendTls` through the same cache), and a fresh-connection pool of the
   * traffic's own kind (never an idle connection, closed after the response).
   */
  backendClient(
    verifyTls: boolean,
    backendTls: BackendTlsMeta | undefined,
    proxy: string | undefined,
  ): { tls: BackendTlsOptions; dispatcher: Dispatcher } | undefined {
    const tls = this.#backendTls.options(verifyTls, backendTls);
    if (!tls) return undefined;
    return { tls, dispatcher: this.#dispatcher(tls, backendTls?.id ?? '', proxy, 0, true) };
  }

  async close(): Promise<void> {
    await Promise.all([
      ...[...this.#dispatchers.values()].map((d) => d.close()),
      this.#pinned.close(),
    ]);
  }

  /**
   * The pool for a backend: direct, or through the app's forward proxy — plain HTTP
   * backends as absolute-form requests (what any forward proxy allows), HTTPS ones through
   * a CONNECT tunnel.
   */
  #dispatcher(
    tls: BackendTlsOptions,
    tlsId: string,
    proxy: string | undefined,
    keepAliveMs: number,
    fresh: boolean,
  ): Dispatcher {
    // A fresh pool only ever carries `reset` requests: it never has an idle connection.
    const keepAlive = fresh ? 0 : keepAliveMs;
    // The backend TLS id names the CA, client certificate and server name: never share a
    // connection made with one app's client certificate with another app's requests.
    const key = `${tls.rejectUnauthorized ? 1 : 0}|${tlsId}|${keepAlive}|${proxy ?? ''}`;
    let d = this.#dispatchers.get(key);
    if (!d) {
      // A server's `Keep-Alive: timeout=N` may shorten the time, never lengthen it.
      const pool = {
        pipelining: 1,
        keepAliveTimeout: Math.max(1, keepAlive),
        keepAliveMaxTimeout: Math.max(1, keepAlive),
      };
      d = proxy
        ? new (proxyAgent())({
            uri: proxy,
            proxyTunnel: false,
            requestTls: tls,
            connections: this.#connections,
            ...pool,
          })
        : new Agent({ connections: this.#connections, connect: tls, ...pool });
      this.#dispatchers.set(key, d);
    }
    return d;
  }

  /** `onStream` for the TunnelDialer. */
  handle = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void => {
    let meta: RequestMeta;
    try {
      meta = decodeRequestMeta(headers);
    } catch (err) {
      if (!(err instanceof TunnelError)) throw err;
      this.#log.warn('relay sent bad metadata', { error: err });
      return respondError(stream, 'BACKEND_UNREACHABLE', 502, err.message);
    }
    const { requestId, app, target, timeoutMs, verifyTls, backendProxy: proxy } = meta;
    const keepAliveMs = meta.keepAliveMs ?? DEFAULT_BACKEND_KEEP_ALIVE_MS;
    // Made only when a line is written: most requests log nothing here.
    let log: Logger | undefined;
    const logger = () => (log ??= this.#log.child({ requestId, app }));
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
    const tls = this.#backendTls.options(verifyTls, meta.backendTls);
    if (!tls) {
      this.#metrics.backendErrors.labels(app, 'BACKEND_TLS_INVALID').inc();
      return respondError(
        stream,
        'BACKEND_TLS_INVALID',
        502,
        'backend TLS material unknown to this connector; the relay sends it again',
      );
    }
    const tlsId = meta.backendTls?.id ?? '';
    const { kerberos } = meta;
    if (kerberos && !this.#kerberos) {
      this.#metrics.backendErrors.labels(app, 'SSO_NOT_CONFIGURED').inc();
      logger().warn(
        'kerberos single sign-on requested, but this connector has no Kerberos settings',
        {
          spn: kerberos.spn,
        },
      );
      return respondError(
        stream,
        'SSO_NOT_CONFIGURED',
        502,
        'this connector has no Kerberos settings (--kerberos-keytab, --kerberos-principal)',
      );
    }
    /**
     * Kerberos single sign-on: a fresh `Authorization: Negotiate` (a new authenticator, the
     * ticket cached) for each request sent, then `then`; a failure is the user's page.
     */
    const delegated = (then: (authorization?: string) => void): void => {
      if (!kerberos) return then();
      delegatedAuthorization(this.#kerberos!, kerberos.user, kerberos.spn, logger()).then(
        (outcome) => {
          if (stream.destroyed || stream.closed) return;
          if ('value' in outcome) return then(outcome.value);
          const { code, status, detail } = outcome.failure;
          this.#metrics.backendErrors.labels(app, code).inc();
          respondError(stream, code, status, detail);
        },
        // delegatedAuthorization never rejects; an exception in `then` must not vanish.
        (err: unknown) => {
          logger().error('kerberos single sign-on failed', { error: err });
          respondError(stream, 'SSO_KERBEROS_FAILED', 502, (err as Error).message);
        },
      );
    };
    if (method === 'CONNECT') {
      // An extended CONNECT: a WebSocket-style upgrade, or an RPC-over-HTTP channel.
      const rpc = headers[':protocol'] === RPC_TUNNEL_PROTOCOL;
      delegated((authorization) => {
        const ctx: UpgradeContext = {
          stream,
          headers: authorization ? { ...headers, authorization } : headers,
          target,
          protocol: rpc ? '' : (meta.upgrade ?? String(headers[':protocol'] ?? 'websocket')),
          authority,
          path,
          timeoutMs,
          tls,
          proxy,
          log: logger(),
          metrics: this.#metrics,
          app,
        };
        if (rpc) forwardRpc({ ...ctx, method: meta.upgrade ?? '' });
        else forwardUpgrade(ctx);
      });
      return;
    }
    const series = this.#metrics.forApp(app);
    const exchange = new BackendExchange(
      stream,
      method,
      series,
      target.origin,
      proxy,
      logger,
      this.#log.enabled('debug'),
      kerberos !== undefined,
    );
    series.inFlight.inc();
    stream.once('close', exchange.onStreamClose);
    const outHeaders = endToEndHeaders(headers);
    outHeaders.host = authority;
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
        exchange.bytesOut += chunk.length;
      });
      body = upload;
    }
    // Connection affinity: the id's own connection, kept alive whatever the app's keep-alive
    // (NTLM authenticates the connection); a retry reconnects it.
    const pinned =
      meta.affinity === undefined
        ? undefined
        : this.#pinned.acquire(meta.affinity, tls, proxy, tlsId);
    if (pinned) stream.once('close', pinned.done);
    const send = (fresh: boolean): void =>
      delegated((authorization) => {
        if (authorization) outHeaders.authorization = authorization;
        (pinned?.dispatcher ?? this.#dispatcher(tls, tlsId, proxy, keepAliveMs, fresh)).dispatch(
          {
            origin: target.origin,
            // undici's SNI would be the Host header's name; serverName is the app's choice.
            ...(tls.servername !== undefined && { servername: tls.servername }),
            path: originFormPath(target.origin, path),
            method: method as Dispatcher.HttpMethod,
            headers: outHeaders as Record<string, string | string[]>,
            body,
            headersTimeout: timeoutMs,
            bodyTimeout: timeoutMs,
            // Close after the response: keep-alive off for the app, or a fresh connection.
            ...(!pinned && (fresh || keepAliveMs === 0) && { reset: true }),
          },
          exchange,
        );
      });
    // A kept-alive connection the server closed as the request went out: once more on a
    // new connection — only when that cannot do anything twice (an idempotent method, no
    // body: a streamed body cannot be sent again).
    if (!body && IDEMPOTENT.has(method))
      exchange.retry = () => {
        series.backendRetries.inc();
        logger().info('backend connection closed before the response; retrying on a new one', {
          target: target.origin,
          method,
        });
        send(true);
      };
    send(false);
  };
}

/** Whether `err` (or a cause) is a connection the server closed under the request. */
function isStaleConnection(err: unknown): boolean {
  let e = err as (Error & { code?: string; cause?: unknown }) | undefined;
  for (let depth = 0; e && depth < 4; depth++) {
    if (e.code && STALE_CONNECTION.has(e.code)) return true;
    e = e.cause as typeof e;
  }
  return false;
}

/**
 * The path undici sends: as the relay gave it, except where the URL parser would have
 * changed it (the relay's paths are normalised already, so this is the rare case). Always
 * concatenated onto the origin, never resolved: `new URL('//other-host/x', origin)` would
 * leave the backend.
 */
function originFormPath(origin: string, path: string): string {
  if (!NEEDS_URL_PARSER.test(path)) return path;
  const url = new URL(`${origin}${path}`);
  return `${url.pathname}${url.search}`;
}

/**
 * One backend request, as an undici dispatch handler: the response head becomes the tunnel
 * stream's HEADERS, each body chunk is written straight into the stream (undici is paused
 * while the stream's window is full), and a failure before the response becomes an error
 * answer, after it a reset. No intermediate response stream, no AbortController.
 */
class BackendExchange implements Dispatcher.DispatchHandler {
  bytesOut = 0;
  /** Sends the request once more on a new connection; taken (cleared) by the first use. */
  retry: (() => void) | undefined;
  #bytesIn = 0;
  #status = 0;
  #settled = false;
  #empty = false;
  #aborted = false;
  #waitingForDrain = false;
  #controller: Dispatcher.DispatchController | undefined;
  readonly #started = process.hrtime.bigint();

  constructor(
    readonly stream: ServerHttp2Stream,
    readonly method: string,
    readonly series: AppSeries,
    readonly origin: string,
    readonly proxy: string | undefined,
    readonly log: () => Logger,
    readonly debug: boolean,
    /** The request carries a delegated Kerberos ticket: a 401 Negotiate refuses it. */
    readonly delegated: boolean,
  ) {}

  /** The tunnel stream closed: account for it, and stop the backend request if it still runs. */
  onStreamClose = (): void => {
    const { series } = this;
    series.inFlight.dec();
    series.requests(this.#status || 'aborted').inc();
    series.duration.observe(Number(process.hrtime.bigint() - this.#started) / 1e9);
    series.bytesToBackend.inc(this.bytesOut);
    series.bytesFromBackend.inc(this.#bytesIn);
    if (this.#settled) return;
    this.#aborted = true;
    this.#controller?.abort(new Error('tunnel stream closed'));
  };

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    // Closed while the request waited for a pooled connection.
    if (this.#aborted) controller.abort(new Error('tunnel stream closed'));
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
  ): void {
    // 1xx (103 Early Hints, …) are informational; the final answer follows.
    if (statusCode < 200) return;
    const { stream } = this;
    if (stream.destroyed || stream.closed) {
      this.#aborted = true;
      return controller.abort(new Error('tunnel stream closed'));
    }
    if (this.delegated && rejectsTicket(statusCode, headers['www-authenticate'])) {
      // The user would see the backend's login prompt for a sign-on that failed: the admin's
      // page instead, and the backend's challenge in the log.
      this.#aborted = true;
      this.#status = 502;
      controller.abort(new Error('backend refused the delegated Kerberos ticket'));
      this.series.backendErrors('SSO_BACKEND_REJECTED').inc();
      this.log().warn('backend refused the delegated Kerberos ticket', {
        code: 'SSO_BACKEND_REJECTED',
        status: statusCode,
        wwwAuthenticate: headers['www-authenticate'],
        target: this.origin,
      });
      return respondError(
        stream,
        'SSO_BACKEND_REJECTED',
        502,
        `backend answered ${statusCode} Negotiate to the delegated ticket`,
      );
    }
    const responseHeaders: OutgoingHttpHeaders = endToEndHeaders(headers);
    responseHeaders[':status'] = statusCode;
    this.#status = statusCode;
    if (this.debug)
      this.log().debug('backend answered', {
        status: statusCode,
        ms: Number(process.hrtime.bigint() - this.#started) / 1e6,
      });
    this.#empty = this.method === 'HEAD' || NO_BODY_STATUS.has(statusCode);
    if (this.#empty) {
      this.#settled = true;
      stream.respond(responseHeaders, { endStream: true });
      return;
    }
    stream.respond(responseHeaders);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#empty) return;
    const { stream } = this;
    if (stream.destroyed) return;
    this.#bytesIn += chunk.length;
    // Paused past a budget rather than at the stream's high-water mark (one 64 KiB chunk):
    // that made a pause/resume round trip per chunk in bulk downloads.
    if (!stream.write(chunk) && stream.writableLength >= FORWARD_BUFFER_BYTES) {
      controller.pause();
      if (!this.#waitingForDrain) {
        this.#waitingForDrain = true;
        stream.once('drain', this.#onDrain);
      }
    }
  }

  #onDrain = (): void => {
    this.#waitingForDrain = false;
    this.#controller?.resume();
  };

  onResponseEnd(): void {
    this.#settled = true;
    if (!this.#empty && !this.stream.destroyed) this.stream.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.#aborted) {
      this.#settled = true;
      return;
    }
    const { retry } = this;
    this.retry = undefined;
    if (retry && this.#status === 0 && !this.stream.destroyed && isStaleConnection(err)) {
      this.#controller = undefined;
      return retry();
    }
    this.#settled = true;
    const { stream } = this;
    if (this.#status !== 0) {
      if (stream.destroyed) return;
      this.log().warn('backend response interrupted', { error: err, target: this.origin });
      // RST so the relay cuts the client's response instead of ending it as if complete.
      resetStream(stream, 'backend response interrupted');
      return;
    }
    const failure = classifyBackendError(err);
    this.#status = failure.status;
    this.series.backendErrors(failure.code).inc();
    this.log().warn('backend request failed', {
      code: failure.code,
      detail: failure.detail,
      target: this.origin,
      method: this.method,
      proxy: this.proxy,
    });
    respondError(stream, failure.code, failure.status, failure.detail);
  }
}
