import type { PublishedAppConfig } from '@appproxy/config';
import { getCookie, stripCookies } from '@appproxy/cookies';
import { isRelayCookie, signedInAs, type Identity } from '@appproxy/preauth';
import { parseRequestHost, type ConnectorGroups, type RouteMatch } from '@appproxy/routing';
import { ID_ONLY_TRACER, newTraceId, type Logger, type Tracer } from '@appproxy/telemetry';
import {
  CAPABILITY,
  encodeRequestMeta,
  endToEndHeaders,
  forwardBody,
  resetStream,
  type RequestMetaInit,
  type TunnelSession,
} from '@appproxy/tunnel';
import { randomBytes } from 'node:crypto';
import {
  IncomingMessage,
  STATUS_CODES,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type ServerResponse,
} from 'node:http';
import {
  constants as h2constants,
  type ClientHttp2Stream,
  type Http2ServerRequest,
  type Http2ServerResponse,
} from 'node:http2';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ConnectionAffinity, challengesConnectionAuth, isConnectionAuth } from './affinity.js';
import { renderError, type RelayErrorCode, type RenderedError } from './error-pages.js';
import { Dispatch } from './dispatch.js';
import { forwardedHeaders } from './forwarded.js';
import type { RelayMetrics } from './metrics.js';
import { RequestBody } from './request-body.js';
import type { PublicConnections } from './public-connections.js';
import type { Edge } from './edge.js';
import { PORTAL, type GateRequest } from './sign-in.js';
import type { Throttled } from './throttle.js';
import type { AuditSink } from './audit.js';
import { RequestTrace } from './tracing.js';
import {
  RPC_CONTENT_LENGTH,
  RPC_METHODS,
  RPC_TUNNEL_PROTOCOL,
  type RpcRequestHead,
} from './rpc-over-http.js';

type AnyRequest = IncomingMessage | Http2ServerRequest;
type AnyResponse = ServerResponse | Http2ServerResponse;

export interface ProxyDeps {
  /**
   * What the configuration says (apps, sign-in, SSO, link translation, trusted proxies):
   * read once per request, so a reload never changes a request half-way.
   */
  edge: () => Edge;
  groups: ConnectorGroups<TunnelSession>;
  metrics: RelayMetrics;
  log: Logger;
  /** Per-connection tunnel-stream slots (`relay.limits.maxStreamsPerConnection`). */
  connections?: Pick<PublicConnections, 'tunnelStream'>;
  /** Refusals of signed-in users and THROTTLED (coalesced per user or client and app). */
  audit?: AuditSink;
  /** Spans of each request (docs/tracing.md). @default ids only, nothing exported */
  tracer?: Tracer;
  /** This relay instance's name, on its spans. */
  instance?: string;
}

const RESERVED_PREFIX = '/.appproxy/';
/** The public keys of the SSO assertion, on every app's host. */
const JWKS_PATH = '/.appproxy/jwks.json';
/** `sticky: session`: which connector this browser session stays on (a relay cookie). */
const AFFINITY_COOKIE = '__Host-appproxy_affinity';

interface Routed {
  match: RouteMatch<PublishedAppConfig>;
  headers: OutgoingHttpHeaders;
  /** For the connector; written into `headers` when the stream is opened. */
  meta: RequestMetaInit;
  /** What the sign-in gate needs: the external request and the client's address. */
  gate: GateRequest;
  /** `sticky`: the key that keeps this client on one connector. */
  affinityKey?: string;
  /** `Set-Cookie` lines the relay adds to the response (affinity, a refreshed session). */
  setCookie: string[];
}

type Refusal =
  | RelayErrorCode
  | { code: RelayErrorCode; app: string; detail?: string }
  /** An app's prefix without its slash: answered with this redirect (see `RouteRedirect`). */
  | { redirect: string; app: string };

/**
 * The relay's request pump: route by host and path, pick a connector of the app's group,
 * open one tunnel stream and stream both bodies through it with backpressure. A failure
 * before the response began goes to another connector of the group when that is safe.
 */
export class RelayProxy {
  readonly #deps: ProxyDeps;
  /** NTLM/Negotiate passthrough: HTTP/1.1 client connections pinned to a connector. */
  readonly #affinity: ConnectionAffinity<TunnelSession>;
  #inFlight = 0;
  #draining = false;
  readonly #idleWaiters = new Set<() => void>();

  constructor(deps: ProxyDeps) {
    this.#deps = deps;
    this.#affinity = new ConnectionAffinity({ groups: deps.groups, log: deps.log });
    const pinned = deps.metrics.connectionsPinned.labels();
    deps.metrics.registry.onCollect(() => pinned.set(this.#affinity.pinned));
  }

  /** Requests and upgrades being proxied now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * Relay shutdown: HTTP/1.1 responses from now on close their connection; resolves once no
   * request is in flight.
   */
  drain(): Promise<void> {
    this.#draining = true;
    if (this.#inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.add(resolve));
  }

  #track(): () => void {
    this.#inFlight++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      if (--this.#inFlight === 0) {
        for (const resolve of this.#idleWaiters) resolve();
        this.#idleWaiters.clear();
      }
    };
  }

  /** `request` handler of the public server (HTTP/1.1 and HTTP/2 alike). */
  handle = (req: AnyRequest, anyRes: AnyResponse): void => {
    // Http2ServerResponse mirrors ServerResponse for everything used here.
    const res = anyRes as ServerResponse;
    const { metrics } = this.#deps;
    // Read now: an HTTP/2 request's socket is unbound (undefined) once its stream closes.
    const client = req.socket?.remoteAddress;
    const trace = this.#trace(req, client);
    const correlationId = trace.correlationId;
    const edge = this.#deps.edge();
    const started = process.hrtime.bigint();
    const log = this.#deps.log.child({ requestId: correlationId });
    const host = requestHost(req);
    const target = req.url ?? '/';
    const untrack = this.#track();
    if (this.#draining && req.httpVersionMajor === 1) res.shouldKeepAlive = false;
    let appName: string | undefined;
    let connector: string | undefined;
    let user: string | undefined;
    let forwarding = false;
    let bytesOut = 0;
    let closed = false;
    /** The relay's error code, when the response is its page. */
    let errorCode: RelayErrorCode | undefined;
    /** An HTTP/2 stream reset with HTTP_1_1_REQUIRED (NTLM/Negotiate): not a client abort. */
    let http11Required = false;
    res.on('close', () => {
      closed = true;
      untrack();
      const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
      const app = appName ?? '-';
      const aborted = !http11Required && clientAborted(req, res);
      // nginx's 499: the client left before any response; statusCode would still say 200.
      // 505 stands for the HTTP_1_1_REQUIRED reset in logs and metrics.
      const status = http11Required ? 505 : aborted && !res.headersSent ? 499 : res.statusCode;
      metrics.requests.labels(app, String(status)).inc();
      if (aborted) metrics.aborted.labels(app).inc();
      if (forwarding) metrics.inFlight.labels(appName!).dec();
      if (appName) {
        metrics.duration.labels(appName).observe(durationMs / 1000);
        metrics.bytesOut.labels(appName).inc(bytesOut);
      }
      trace.end({
        status,
        app: appName,
        connector,
        code: http11Required ? 'HTTP_1_1_REQUIRED' : errorCode,
      });
      log.info('request', {
        app: appName,
        method: req.method,
        host,
        path: target.split('?')[0],
        status,
        bytesOut,
        durationMs,
        aborted,
        client,
        connector,
        user,
      });
    });
    const fail = (code: RelayErrorCode, detail?: string) => {
      errorCode = code;
      if (detail) log.warn('request failed', { code, app: appName, detail });
      metrics.errors.labels(appName ?? '-', code).inc();
      if (res.headersSent) {
        breakOff(res, code);
        return;
      }
      const page = edge.pages.finish(
        renderError(code, { app: appName, correlationId, accept: header(req.headers.accept) }),
        host,
        appName,
      );
      res.writeHead(page.status, page.headers);
      if (req.method === 'HEAD') res.end();
      else res.end(page.body);
    };
    const send = (built: RenderedError) => {
      const page = edge.pages.finish(built, host, appName);
      res.writeHead(page.status, page.headers);
      res.end(req.method === 'HEAD' ? undefined : page.body);
    };

    const refused = refuseEarly(req, host);
    if (refused) return fail(refused);

    if (edge.portal?.serves(host)) {
      appName = PORTAL;
      const gateReq: GateRequest = {
        method: req.method ?? 'GET',
        url: target,
        headers: req.headers,
        clientIp: firstAddress(this.#forwarded(edge, req, host)),
      };
      edge.portal
        .handle(edge.signIn, gateReq, correlationId)
        .then(send, (err: unknown) => fail('INTERNAL_ERROR', `portal: ${(err as Error).message}`));
      return;
    }
    if (isReserved(target)) {
      if (target.split('?', 1)[0] === JWKS_PATH) return this.#jwks(edge, req, res, host, fail);
      const gateReq: GateRequest = {
        method: req.method ?? 'GET',
        url: target,
        headers: req.headers,
        clientIp: firstAddress(this.#forwarded(edge, req, host)),
      };
      const step = trace.signIn(target.split('?', 1)[0]!.slice(RESERVED_PREFIX.length));
      edge.signIn.handleReserved(edge.apps.onHost(host), gateReq, correlationId).then(
        (answer) => {
          step.end();
          if (!answer) return fail('RESERVED_PATH');
          appName = answer.app;
          send(answer.page);
        },
        (err: unknown) => {
          step.fail('INTERNAL_ERROR');
          step.end();
          fail('INTERNAL_ERROR', `sign-in: ${(err as Error).message}`);
        },
      );
      return;
    }
    /**
     * NTLM/Negotiate over HTTP/2 cannot be bound to a connection: RST_STREAM
     * HTTP_1_1_REQUIRED, as IIS does, and the browser retries over HTTP/1.1.
     */
    const requireHttp11 = (why: string): void => {
      http11Required = true;
      log.info('HTTP/1.1 required for connection-bound authentication', { app: appName, why });
      metrics.errors.labels(appName ?? '-', 'HTTP_1_1_REQUIRED').inc();
      (req as Http2ServerRequest).stream.close(h2constants.NGHTTP2_HTTP_1_1_REQUIRED);
    };
    const forward = (routed: Routed): void => {
      const { app } = routed.match;
      // Every app whose backend sees the client's own Authorization (all but Kerberos SSO,
      // where the connector sends its own per request): on an oidc app too, an NTLM-
      // authenticated backend connection in the shared pool would serve other users.
      const clientAuth = routed.meta.kerberos === undefined;
      const h2 = req.httpVersionMajor === 2;
      // RPC over HTTP is streamed raw over HTTP/1.1 only (`handleRpc`).
      if (h2 && RPC_METHODS.has(req.method ?? '')) return requireHttp11('RPC over HTTP');
      const authorization = header(req.headers.authorization);
      if (clientAuth && h2 && isConnectionAuth(authorization))
        return requireHttp11('Authorization: NTLM/Negotiate');
      const pin =
        clientAuth && !h2
          ? this.#affinity.forRequest(req.socket, app.connectorGroup, authorization)
          : undefined;
      if (pin) routed.meta.affinity = pin.id;
      forwarding = true;
      metrics.inFlight.labels(app.name).inc();
      const method = req.method ?? 'GET';
      const body = hasNoBody(req) ? undefined : new RequestBody(req);
      if (body) res.once('close', () => metrics.bytesIn.labels(app.name).inc(body.received));
      req.on('error', (err) => log.debug('request body not fully sent', { error: err }));
      const { connections } = this.#deps;
      trace.tunnel(routed.headers, app.name);
      const dispatch = new Dispatch(
        this.#deps.groups,
        {
          group: app.connectorGroup,
          affinityKey: routed.affinityKey,
          connectorId: pin?.connectorId,
          // Kerberos single sign-on: only connectors with a keytab can get the ticket;
          // backendTls: only connectors that read it.
          ...(needs(routed.meta).length > 0 && { capability: needs(routed.meta) }),
          headers: encodeRequestMeta(routed.meta, routed.headers),
          method,
          body,
          timeoutMs: app.backendTimeoutMs,
          ...(connections && { slot: () => connections.tunnelStream(req) }),
        },
        {
          onAttempt: (tunnel) => {
            connector = tunnel.connectorId;
            trace.attempt(tunnel);
            if (pin) pin.connectorId = tunnel.connectorId;
          },
          onRetry: (tunnel, detail) => {
            metrics.retries.labels(app.name).inc();
            log.info('retrying on another connector', {
              app: app.name,
              connector: tunnel.connectorId,
              detail,
            });
          },
          onError: fail,
          onResponse: (headers, s, tunnel) => {
            if (clientAuth && challengesConnectionAuth(Number(headers[':status']), headers)) {
              if (h2) {
                // The 401's body is read and dropped: the client never sees this response.
                s.resume();
                return requireHttp11('backend challenged with NTLM/Negotiate');
              }
              if (!pin)
                this.#affinity.pinChallenged(req.socket, app.connectorGroup, tunnel.connectorId);
            }
            this.#respond(res, s, headers, {
              edge,
              app,
              method,
              origin: header(req.headers.origin),
              correlationId,
              setCookie: routed.setCookie,
              sent: (n) => {
                if (!closed) bytesOut += n;
              },
              interrupted: (why) => {
                log.warn('response interrupted', {
                  app: app.name,
                  connector: tunnel.connectorId,
                  why,
                });
                breakOff(res, why);
              },
            });
          },
        },
      );
      // The client went away: the stream is reset so the connector aborts the backend request.
      res.on('close', () => dispatch.cancel('client went away', clientAborted(req, res)));
      // Node's HTTP/2 server emits a request while it parses a batch of frames, before an
      // RST_STREAM later in the same batch: open the tunnel stream once the batch is done,
      // and never for a stream the client already reset (HTTP/2 rapid reset).
      setImmediate(() => {
        if (!closed) dispatch.start();
      });
    };
    this.#admit(edge, req, host, target, correlationId, {
      trace,
      gone: () => closed,
      app: (name) => {
        appName = name;
      },
      refuse: fail,
      page: send,
      forward: (routed, signedIn) => {
        user = signedIn;
        forward(routed);
      },
    });
  };

  /**
   * Streams the connector's response to the client: response header passes (link
   * translation, the relay's own cookies), then the body as it is or through the app's body
   * translation. A response cut off upstream is broken off for the client too.
   */
  #respond(
    res: ServerResponse,
    s: ClientHttp2Stream,
    headers: IncomingHttpHeaders,
    ctx: {
      edge: Edge;
      app: PublishedAppConfig;
      method: string;
      origin: string | undefined;
      correlationId: string;
      setCookie: string[];
      /** Body bytes handed to the client (after translation, before framing). */
      sent: (bytes: number) => void;
      interrupted: (why: string) => void;
    },
  ): void {
    const status = Number(headers[':status']);
    const { links } = ctx.edge;
    let out = endToEndHeaders(headers);
    links.response(out, ctx.app, ctx.origin);
    const translation = links.body(status, out, ctx.app, ctx.method);
    if (translation) out = translation.headers as OutgoingHttpHeaders;
    out['x-appproxy-correlation-id'] = ctx.correlationId;
    for (const line of ctx.setCookie) appendHeader(out, 'set-cookie', line);
    ctx.edge.pages.backendHeaders(out, ctx.app);
    res.writeHead(status, out);
    const sent = (chunk: Buffer) => ctx.sent(chunk.length);
    if (!translation) {
      s.on('data', sent);
      forwardBody(s, res, (rst) => ctx.interrupted(`RST ${rst}`));
      return;
    }
    const { transform } = translation;
    transform.on('error', (err: Error & { code?: string }) => {
      resetStream(s, 'body translation failed');
      ctx.interrupted(`${err.code ?? 'error'}: ${err.message}`);
    });
    forwardBody(s, transform, (rst) => {
      transform.destroy();
      ctx.interrupted(`RST ${rst}`);
    });
    transform.on('data', sent);
    transform.pipe(res);
  }

  /** `upgrade` handler of the public server (HTTP/1.1 `Upgrade`, e.g. WebSocket). */
  handleUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const { metrics } = this.#deps;
    const trace = this.#trace(req, req.socket?.remoteAddress);
    const correlationId = trace.correlationId;
    const edge = this.#deps.edge();
    const log = this.#deps.log.child({ requestId: correlationId });
    const untrack = this.#track();
    socket.on('error', () => {});
    let appName: string | undefined;
    let outcome: { status: number; code?: RelayErrorCode; connector?: string } = { status: 499 };
    socket.once('close', () => {
      untrack();
      trace.end({ ...outcome, app: appName });
    });
    const host = requestHost(req);
    const target = req.url ?? '/';
    const fail = (code: RelayErrorCode, detail?: string) => {
      log.warn('upgrade failed', { code, app: appName, detail, path: target.split('?')[0] });
      metrics.errors.labels(appName ?? '-', code).inc();
      const page = edge.pages.finish(
        renderError(code, { app: appName, correlationId, accept: header(req.headers.accept) }),
        host,
        appName,
      );
      outcome = { status: page.status, code };
      writeRawResponse(socket, page.status, page.headers, page.body);
    };
    const protocol = String(req.headers.upgrade ?? '')
      .trim()
      .toLowerCase();
    const refused = refuseEarly(req, host);
    if (refused) return fail(refused);
    if (isReserved(target)) return fail('RESERVED_PATH');
    const proceed = (routed: Routed): void => {
      const { match } = routed;
      trace.tunnel(routed.headers, match.app.name);
      const dispatch = new Dispatch(
        this.#deps.groups,
        {
          group: match.app.connectorGroup,
          affinityKey: routed.affinityKey,
          capability: [CAPABILITY.websocket, ...needs(routed.meta)],
          headers: encodeRequestMeta(
            { ...routed.meta, upgrade: protocol },
            {
              ...routed.headers,
              ':method': 'CONNECT',
              ':protocol': protocol,
              ':scheme': match.internalOrigin.slice(0, match.internalOrigin.indexOf(':')),
            },
          ),
          method: 'CONNECT',
          body: undefined,
          endStream: false,
          timeoutMs: match.app.backendTimeoutMs,
        },
        {
          onError: fail,
          onAttempt: (tunnel) => trace.attempt(tunnel),
          onResponse: (resHeaders, stream, tunnel) => {
            const status = Number(resHeaders[':status']);
            outcome = { status: status === 200 ? 101 : status, connector: tunnel.connectorId };
            const out = endToEndHeaders(resHeaders);
            edge.links.response(out, match.app, header(req.headers.origin));
            for (const line of routed.setCookie) appendHeader(out, 'set-cookie', line);
            edge.pages.backendHeaders(out, match.app);
            stream.once('close', () => socket.destroy());
            if (status === 200) {
              // RFC 8441: 200 on the CONNECT stream is the backend's 101.
              writeHead(socket, 101, { connection: 'Upgrade', upgrade: protocol, ...out });
              if (head.length > 0) stream.write(head);
              socket.pipe(stream);
              stream.pipe(socket);
              const appLabel = match.app.name;
              metrics.upgrades.labels(appLabel).inc();
              socket.once('close', () => metrics.upgrades.labels(appLabel).dec());
              log.info('upgraded', { app: appName, protocol, connector: tunnel.connectorId });
              return;
            }
            // Refused upgrade: relay the backend's answer as a plain HTTP/1.1 response.
            writeHead(socket, status, { ...out, connection: 'close' });
            stream.pipe(socket);
          },
        },
      );
      socket.on('close', () => dispatch.cancel('client went away'));
      dispatch.start();
    };
    this.#admit(edge, req, host, target, correlationId, {
      trace,
      gone: () => socket.destroyed,
      app: (name) => {
        appName = name;
      },
      check: (routed) => {
        // Only the app's listed protocols (websocket by default): after a 101 the relay pipes
        // raw bytes, so an h2c (or any unchecked) upgrade would carry requests past every
        // check here.
        if (!routed.match.app.upgrades.includes(protocol))
          return {
            code: 'UPGRADE_REFUSED',
            detail: `Upgrade: ${protocol.slice(0, 64)} is not allowed`,
          };
        // An upgrade request has no body: bytes after its head belong to the upgraded
        // protocol, and a framed body the backend might read as a second request is refused.
        if (
          req.headers['transfer-encoding'] !== undefined ||
          !isZero(req.headers['content-length'])
        )
          return { code: 'UPGRADE_REFUSED', detail: 'upgrade request with a body' };
        routed.headers['content-length'] = undefined;
        return undefined;
      },
      refuse: fail,
      page: (built) => {
        const { status, headers, body } = edge.pages.finish(built, host, appName);
        outcome = { status };
        writeRawResponse(socket, status, headers, body);
      },
      forward: proceed,
    });
  };

  /**
   * An HTTP/1.1 connection that opened with an RPC-over-HTTP method (`RPC_IN_DATA`, …),
   * whose head `divertRpcConnections` read because Node's parser refuses these methods.
   * Routed, signed in and throttled like any request; then, on an app with `rpcMethods`,
   * the request head and the rest of the connection go raw both ways through an extended
   * CONNECT stream (`:protocol: appproxy-rpc-over-http`), as after an upgrade: the backend's
   * response, head included, is what the client reads (docs/tunnel-protocol.md §3.5).
   */
  handleRpc = (socket: Socket, head: RpcRequestHead, rest: Buffer): void => {
    const req = new IncomingMessage(socket);
    req.method = head.method;
    req.url = head.target;
    req.httpVersionMajor = 1;
    req.httpVersionMinor = head.minor;
    req.httpVersion = `1.${head.minor}`;
    req.rawHeaders = head.rawHeaders;
    const headers: IncomingHttpHeaders = {};
    for (let i = 0; i < head.rawHeaders.length; i += 2) {
      const name = head.rawHeaders[i]!.toLowerCase();
      const value = head.rawHeaders[i + 1]!;
      const prior = headers[name];
      headers[name] = prior === undefined ? value : `${String(prior)}, ${value}`;
    }
    req.headers = headers;
    const { metrics } = this.#deps;
    const trace = this.#trace(req, socket.remoteAddress);
    const correlationId = trace.correlationId;
    const edge = this.#deps.edge();
    const log = this.#deps.log.child({ requestId: correlationId });
    const untrack = this.#track();
    socket.on('error', () => {});
    let appName: string | undefined;
    let outcome: { status: number; code?: RelayErrorCode; connector?: string } = { status: 499 };
    socket.once('close', () => {
      untrack();
      trace.end({ ...outcome, app: appName });
    });
    const host = requestHost(req);
    const fail = (code: RelayErrorCode, detail?: string) => {
      log.warn('RPC over HTTP failed', { code, app: appName, detail, method: head.method });
      metrics.errors.labels(appName ?? '-', code).inc();
      const page = renderError(code, {
        app: appName,
        correlationId,
        accept: header(req.headers.accept),
      });
      outcome = { status: page.status, code };
      writeRawResponse(socket, page.status, page.headers, page.body);
    };
    const refused = refuseEarly(req, host);
    if (refused) return fail(refused);
    if (isReserved(head.target)) return fail('RESERVED_PATH');
    const proceed = (routed: Routed): void => {
      const { match } = routed;
      // HTTP/2 checks Content-Length against DATA, and a CONNECT stream has none: the
      // client's figure (often 1 GiB, never reached) travels beside it for the backend.
      const length = routed.headers['content-length'];
      routed.headers['content-length'] = undefined;
      if (length !== undefined) routed.headers[RPC_CONTENT_LENGTH] = length;
      trace.tunnel(routed.headers, match.app.name);
      const dispatch = new Dispatch(
        this.#deps.groups,
        {
          group: match.app.connectorGroup,
          affinityKey: routed.affinityKey,
          capability: routed.meta.kerberos
            ? [CAPABILITY.websocket, CAPABILITY.kerberos]
            : CAPABILITY.websocket,
          headers: encodeRequestMeta(
            { ...routed.meta, upgrade: head.method },
            {
              ...routed.headers,
              ':method': 'CONNECT',
              ':protocol': RPC_TUNNEL_PROTOCOL,
              ':scheme': match.internalOrigin.slice(0, match.internalOrigin.indexOf(':')),
            },
          ),
          method: 'CONNECT',
          body: undefined,
          endStream: false,
          timeoutMs: match.app.backendTimeoutMs,
        },
        {
          onError: fail,
          onAttempt: (tunnel) => trace.attempt(tunnel),
          onResponse: (resHeaders, stream, tunnel) => {
            const status = Number(resHeaders[':status']);
            outcome = { status, connector: tunnel.connectorId };
            stream.once('close', () => socket.destroy());
            if (status !== 200) {
              writeHead(socket, status, { ...endToEndHeaders(resHeaders), connection: 'close' });
              stream.pipe(socket);
              return;
            }
            // From here on the bytes are the backend's own HTTP/1.1, both ways.
            if (rest.length > 0) stream.write(rest);
            socket.pipe(stream);
            stream.pipe(socket);
            const appLabel = match.app.name;
            metrics.upgrades.labels(appLabel).inc();
            socket.once('close', () => metrics.upgrades.labels(appLabel).dec());
            log.info('RPC over HTTP opened', {
              app: appName,
              method: head.method,
              path: head.target.split('?')[0],
              connector: tunnel.connectorId,
            });
          },
        },
      );
      socket.on('close', () => dispatch.cancel('client went away'));
      dispatch.start();
    };
    this.#admit(edge, req, host, head.target, correlationId, {
      trace,
      gone: () => socket.destroyed,
      app: (name) => {
        appName = name;
      },
      refuse: fail,
      page: ({ status, headers: h, body }) => {
        outcome = { status };
        writeRawResponse(socket, status, h, body);
      },
      forward: proceed,
    });
  };

  /** An RPC method's request head that `parseRpcHead` refused, or that came too slowly. */
  refuseRpcHead = (
    socket: Socket,
    code: 'MALFORMED_REQUEST' | 'REQUEST_HEADERS_TOO_LARGE' | 'REQUEST_TIMEOUT',
    detail: string,
  ): void => {
    socket.on('error', () => {});
    // Nothing of the request was read: a trace of its own.
    const correlationId = newTraceId();
    this.#deps.log.warn('RPC over HTTP request head refused', {
      requestId: correlationId,
      code,
      detail,
      client: socket.remoteAddress,
    });
    this.#deps.metrics.errors.labels('-', code).inc();
    const page = renderError(code, { correlationId });
    writeRawResponse(socket, page.status, page.headers, page.body);
    socket.once('finish', () => socket.destroy());
  };

  /**
   * `clientError` of the public server: an HTTP/1.1 request Node's parser refused (malformed
   * framing, smuggling attempts, an oversized head, a timeout). The answer is the relay's
   * error page with a code and a correlation id, then the connection closes; nothing of the
   * request has been routed.
   */
  handleClientError = (
    err: Error & { code?: string; rawPacket?: Buffer },
    socket: Duplex,
  ): void => {
    socket.on('error', () => {});
    // Mid-response (Node's own handler checks the same): a page now would corrupt the body.
    const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
      socket.destroy();
      return;
    }
    const code: RelayErrorCode =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? 'REQUEST_HEADERS_TOO_LARGE'
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? 'REQUEST_TIMEOUT'
          : 'MALFORMED_REQUEST';
    // The head did not parse, so no traceparent: a trace of its own.
    const correlationId = newTraceId();
    this.#deps.log.warn('request refused by the HTTP parser', {
      requestId: correlationId,
      code,
      parserError: err.code,
      client: (socket as Duplex & { remoteAddress?: string }).remoteAddress,
    });
    this.#deps.metrics.errors.labels('-', code).inc();
    // The head did not parse, so Accept is looked for in the raw bytes.
    const raw = err.rawPacket?.toString('latin1') ?? '';
    const page = this.#deps.edge().pages.finish(
      renderError(code, {
        correlationId,
        accept: /\naccept:[^\r\n]*application\/json/i.test(raw) ? 'application/json' : undefined,
      }),
      '',
      undefined,
    );
    writeRawResponse(socket, page.status, page.headers, page.body);
    socket.once('finish', () => socket.destroy());
  };

  /**
   * What requests and upgrades share before a tunnel stream is opened: routing and its
   * refusals, `check` (an upgrade's own), and for oidc apps the sign-in gate — its pages, or
   * on the way through the identity and the refreshed cookies. Calls `refuse`, `page` or
   * `forward` once; nothing when the client left while the gate decided.
   */
  #admit(
    edge: Edge,
    req: AnyRequest,
    host: string,
    target: string,
    correlationId: string,
    on: {
      trace: RequestTrace;
      gone: () => boolean;
      app: (name: string) => void;
      check?: (routed: Routed) => { code: RelayErrorCode; detail: string } | undefined;
      refuse: (code: RelayErrorCode, detail?: string) => void;
      page: (page: RenderedError) => void;
      forward: (routed: Routed, user?: string) => void;
    },
  ): void {
    const routed = this.#route(edge, req, host, target, correlationId);
    if (typeof routed === 'string') return on.refuse(routed);
    if ('code' in routed) {
      on.app(routed.app);
      return on.refuse(routed.code, routed.detail);
    }
    if ('redirect' in routed) {
      on.app(routed.app);
      // As nginx does for a directory: 301 for GET and HEAD, 308 (method and body kept)
      // for the rest.
      const method = req.method ?? 'GET';
      return on.page({
        status: method === 'GET' || method === 'HEAD' ? 301 : 308,
        headers: { location: routed.redirect, 'content-length': 0, 'cache-control': 'no-store' },
        body: '',
      });
    }
    const { app } = routed.match;
    on.app(app.name);
    const refused = refuseRpc(req.method, app) ?? on.check?.(routed);
    if (refused) return on.refuse(refused.code, refused.detail);
    const { throttle } = edge;
    const throttled = (t: Throttled, user?: string) =>
      on.page(
        this.#throttled(app.name, t, req, correlationId, {
          ...(user !== undefined && { user }),
          ...(routed.gate.clientIp !== undefined && { clientAddress: routed.gate.clientIp }),
        }),
      );
    const overLimit = throttle.admit(app);
    if (overLimit) return throttled(overLimit);
    // The app's home page for its external root (never for an upgrade, which `check` marks).
    const home = on.check ? undefined : edge.pages.homeRedirect(app, req.method ?? 'GET', target);
    if (home) return on.page(home);
    if (!edge.signIn.protects(app)) {
      const overUser =
        throttle.perUser(app) && throttle.admitUser(app, routed.gate.clientIp ?? '-');
      return overUser ? throttled(overUser) : on.forward(routed);
    }
    const step = on.trace.signIn('gate');
    edge.signIn.gate(app, routed.gate, correlationId).then(
      (outcome) => {
        step.end();
        if (on.gone()) return;
        if (!outcome.forward) return on.page(outcome.page);
        // Per user: the signed-in user, so that users behind one NAT do not share a bucket.
        const overUser =
          throttle.perUser(app) &&
          throttle.admitUser(app, `user:${outcome.identity.sub}@${outcome.identity.issuer}`);
        if (overUser) return throttled(overUser, signedInAs(outcome.identity));
        withIdentity(routed, outcome.identity, outcome.stripAuthorization);
        routed.setCookie.push(...outcome.setCookie);
        const who = signedInAs(outcome.identity);
        const missing = edge.sso.apply(app, outcome.identity, routed.headers, routed.meta);
        if (missing) {
          // Never a request with an empty or someone else's user: the person is told which
          // claim their account lacks, ops see it in the log.
          this.#deps.log.warn('single sign-on refused', {
            requestId: correlationId,
            app: app.name,
            code: missing.code,
            claim: missing.claim,
            user: who,
          });
          this.#deps.metrics.errors.labels(app.name, missing.code).inc();
          this.#deps.audit?.recordCoalesced({
            type: 'access.refused',
            user: who,
            app: app.name,
            ...(routed.gate.clientIp !== undefined && { clientAddress: routed.gate.clientIp }),
            code: missing.code,
            correlationId,
            detail: { claim: missing.claim },
          });
          return on.page(
            renderError(missing.code, {
              app: app.name,
              correlationId,
              accept: header(req.headers.accept),
              hint: `Your account has no “${missing.claim}” claim, which this application’s single sign-on needs to tell it who you are. Ask your administrator to add it at the identity provider, or sign in with another account.`,
              reason: `claim:${missing.claim}`,
              signedInAs: who,
              signOutHref: '/.appproxy/signout',
              ...(routed.setCookie.length > 0 && { headers: { 'set-cookie': routed.setCookie } }),
            }),
          );
        }
        on.forward(routed, who);
      },
      (err: unknown) => {
        step.fail('INTERNAL_ERROR');
        step.end();
        on.refuse('INTERNAL_ERROR', `sign-in: ${(err as Error).message}`);
      },
    );
  }

  /** The request's trace: the client's `traceparent` continued, or a new trace. */
  #trace(req: AnyRequest, client: string | undefined): RequestTrace {
    return new RequestTrace(this.#deps.tracer ?? ID_ONLY_TRACER, req.headers, {
      method: req.method,
      client,
      instance: this.#deps.instance,
    });
  }

  /**
   * 429 `THROTTLED` with `Retry-After`, counted by app and the limit that refused it, and
   * audited at most once a minute per user (else client address) and app.
   */
  #throttled(
    app: string,
    t: Throttled,
    req: AnyRequest,
    correlationId: string,
    who: { user?: string; clientAddress?: string },
  ): RenderedError {
    const { metrics } = this.#deps;
    metrics.throttled.labels(app, t.scope).inc();
    metrics.errors.labels(app, 'THROTTLED').inc();
    this.#deps.audit?.recordCoalesced({
      type: 'access.refused',
      ...who,
      app,
      code: 'THROTTLED',
      correlationId,
      detail: { scope: t.scope },
    });
    return renderError('THROTTLED', {
      app,
      correlationId,
      accept: header(req.headers.accept),
      reason: `limit:${t.scope}`,
      headers: { 'retry-after': String(t.retryAfterSeconds) },
    });
  }

  /**
   * `/.appproxy/jwks.json`: the public keys of the SSO assertion on every app's host, for
   * backends that verify it; no sign-in, cacheable for 5 minutes (retired keys stay published
   * longer than any assertion they signed lives).
   */
  #jwks(
    edge: Edge,
    req: AnyRequest,
    res: ServerResponse,
    host: string,
    fail: (code: RelayErrorCode) => void,
  ): void {
    const jwks = edge.sso.jwks();
    if (jwks === undefined || edge.apps.onHost(host).length === 0) return fail('RESERVED_PATH');
    if (req.method !== 'GET' && req.method !== 'HEAD') return fail('METHOD_NOT_ALLOWED');
    const hsts = edge.pages.hstsFor(host, undefined);
    res.writeHead(200, {
      'content-type': 'application/jwk-set+json',
      'cache-control': 'public, max-age=300',
      'content-length': Buffer.byteLength(jwks),
      ...(hsts !== undefined && { 'strict-transport-security': hsts }),
    });
    res.end(req.method === 'HEAD' ? undefined : jwks);
  }

  /** X-Forwarded-* for the backend: the client's own, or a trusted front proxy's extended. */
  #forwarded(edge: Edge, req: AnyRequest, externalHost: string): Record<string, string> {
    return forwardedHeaders({
      clientAddress: req.socket?.remoteAddress,
      externalHost,
      trusted: edge.trustedProxies.has(req.socket?.remoteAddress),
      existing: {
        for: req.headers['x-forwarded-for'],
        proto: req.headers['x-forwarded-proto'],
        host: req.headers['x-forwarded-host'],
      },
    });
  }

  #route(
    edge: Edge,
    req: AnyRequest,
    host: string,
    target: string,
    correlationId: string,
  ): Routed | Refusal {
    const match = edge.apps.route(host, target);
    if (match === undefined) return 'APP_NOT_FOUND';
    if (typeof match === 'object' && 'location' in match)
      return { redirect: match.location, app: match.app.name };
    if (match === 'INVALID_HOST') return 'BAD_REQUEST_HOST';
    if (
      match === 'ENCODED_SEPARATOR' ||
      match === 'INVALID_PATH' ||
      match === 'DOT_SEGMENT_PARAMETERS'
    )
      return 'BAD_REQUEST_PATH';
    const app = match.app;
    if (app.maintenanceMode) return { code: 'MAINTENANCE', app: app.name };
    // One pass, no `delete` (which turns the object into a slow dictionary); the identity
    // and address headers are the relay's to set, whatever the client sent.
    const headers = endToEndHeaders(req.headers, { drop: edge.requestDrop });
    const cookie = header(req.headers.cookie, '; ');
    const ownCookies = stripCookies(cookie, isRelayCookie);
    if (ownCookies === undefined) headers.cookie = undefined;
    else if (ownCookies !== cookie) headers.cookie = ownCookies;
    // The app's own host and port, never the client's text (which routing only read up to
    // the port): a backend building URLs from Host or X-Forwarded-Host gets what we routed on.
    const externalHost = match.externalHost;
    const forwarded = this.#forwarded(edge, req, externalHost);
    headers['x-forwarded-for'] = forwarded['x-forwarded-for'];
    headers['x-forwarded-proto'] = forwarded['x-forwarded-proto'];
    headers['x-forwarded-host'] = forwarded['x-forwarded-host'];
    headers[':method'] = req.method ?? 'GET';
    headers[':path'] = match.internalPath;
    headers[':authority'] = app.translateHeaders ? match.internalHost : externalHost;
    edge.links.request(headers, app);
    const clientIp = firstAddress(forwarded);
    const routed: Routed = {
      match,
      headers,
      meta: {
        target: match.internalOrigin,
        requestId: correlationId,
        app: app.name,
        timeoutMs: app.backendTimeoutMs,
        verifyTls: app.validateBackendTls,
        keepAliveMs: app.backendKeepAliveMs,
        ...(app.backendProxy !== undefined && { backendProxy: app.backendProxy }),
        ...(app.backendTls && { backendTls: edge.backendTls.get(app.name) }),
      },
      setCookie: [],
      gate: { method: req.method ?? 'GET', url: target, headers: req.headers, clientIp },
    };
    if (app.sticky === 'clientAddress') {
      routed.affinityKey = clientIp;
    } else if (app.sticky === 'session') {
      const existing = getCookie(cookie, AFFINITY_COOKIE);
      if (existing && /^[A-Za-z0-9_-]{16,64}$/.test(existing)) routed.affinityKey = existing;
      else {
        routed.affinityKey = randomBytes(16).toString('base64url');
        routed.setCookie.push(
          `${AFFINITY_COOKIE}=${routed.affinityKey}; Path=/; Secure; HttpOnly; SameSite=Lax`,
        );
      }
    }
    return routed;
  }
}

/**
 * Breaks a response off so that the client cannot take it for whole: an HTTP/1.1 connection
 * is closed (no terminating chunk, a short Content-Length); an HTTP/2 stream is reset with
 * INTERNAL_ERROR — `destroy()` without an error resets with NO_ERROR, which a client reads
 * as the clean end of a short body.
 */
function breakOff(res: ServerResponse, why: string): void {
  if (res.req.httpVersionMajor === 2) res.destroy(new Error(`response broken off: ${why}`));
  else res.destroy();
}

/** Connector capabilities a request of this app needs beyond plain forwarding. */
function needs(meta: RequestMetaInit): string[] {
  return [
    ...(meta.kerberos ? [CAPABILITY.kerberos] : []),
    ...(meta.backendTls ? [CAPABILITY.backendTls] : []),
  ];
}

/** The original client: the first X-Forwarded-For entry (a trusted proxy's, or the peer). */
function firstAddress(forwarded: Record<string, string>): string {
  return forwarded['x-forwarded-for']!.split(',')[0]!.trim();
}

function isReserved(target: string): boolean {
  const path = target.split('?', 1)[0]!;
  return path.startsWith(RESERVED_PREFIX) || path === RESERVED_PREFIX.slice(0, -1);
}

/**
 * The signed-in identity travels to the connector as tunnel metadata only (the connector
 * never forwards `appproxy-*` headers); the relay's bearer token does not.
 */
function withIdentity(routed: Routed, identity: Identity, stripAuthorization: boolean): void {
  if (stripAuthorization) routed.headers.authorization = undefined;
  routed.meta.identity = identity;
}

function header(v: string | string[] | undefined, separator = ', '): string | undefined {
  return Array.isArray(v) ? v.join(separator) : v;
}

function appendHeader(out: OutgoingHttpHeaders, name: string, value: string): void {
  const prior = out[name];
  out[name] =
    prior === undefined
      ? [value]
      : Array.isArray(prior)
        ? [...prior, value]
        : [String(prior), value];
}

function isZero(contentLength: string | undefined): boolean {
  return contentLength === undefined || /^0+$/.test(contentLength.trim());
}

/**
 * True when the response did not end as sent: the client reset the stream or closed the
 * connection, or the relay cut it. An HTTP/2 response reset by the client reports
 * `writableFinished` (its stream is finished, destroyed), so its RST code decides.
 */
function clientAborted(req: AnyRequest, res: ServerResponse): boolean {
  if (req.httpVersionMajor !== 2) return !res.writableFinished;
  const rstCode = (req as Http2ServerRequest).stream.rstCode;
  return !res.writableEnded || (rstCode !== undefined && rstCode !== h2constants.NGHTTP2_NO_ERROR);
}

/** True when the request has no body, known from its headers alone (most GETs). */
function hasNoBody(req: AnyRequest): boolean {
  if (req.httpVersionMajor === 2) return (req as Http2ServerRequest).stream.endAfterHeaders;
  const h = req.headers;
  return h['transfer-encoding'] === undefined && isZero(h['content-length']);
}

/** An RPC-over-HTTP method on an app that does not accept them (`rpcMethods: false`). */
function refuseRpc(
  method: string | undefined,
  app: PublishedAppConfig,
): { code: RelayErrorCode; detail: string } | undefined {
  if (method === undefined || app.rpcMethods || !RPC_METHODS.has(method)) return undefined;
  return { code: 'RPC_METHOD_REFUSED', detail: `${method} on an app without rpcMethods` };
}

/**
 * Requests refused before routing: TRACE (it would echo the relay's added headers back to a
 * script, and no backend needs it), and a Host that is not `host[:port]`, that was sent
 * twice, or that contradicts HTTP/2's `:authority` — each a way to make the relay and the
 * backend disagree about which host was asked for.
 */
function refuseEarly(req: AnyRequest, host: string): RelayErrorCode | undefined {
  if (req.method === 'TRACE') return 'METHOD_NOT_ALLOWED';
  if (parseRequestHost(host) === undefined) return 'BAD_REQUEST_HOST';
  let hosts = 0;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 4 && raw[i]!.toLowerCase() === 'host') hosts++;
  }
  if (hosts > 1) return 'BAD_REQUEST_HOST';
  const authority = req.headers[':authority'];
  if (hosts === 1 && req.httpVersionMajor === 2 && authority !== undefined) {
    // The same entity (RFC 9113 §8.3.1): same name, same port (443 when absent).
    const a = parseRequestHost(String(authority));
    const h = parseRequestHost(String(req.headers.host));
    if (!a || !h || a.hostname !== h.hostname || (a.port ?? 443) !== (h.port ?? 443))
      return 'BAD_REQUEST_HOST';
  }
  return undefined;
}

function requestHost(req: AnyRequest): string {
  return header(req.headers[':authority'] as string | undefined) ?? header(req.headers.host) ?? '';
}

function writeHead(socket: Duplex, status: number, headers: OutgoingHttpHeaders): void {
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value])
      head += `${name}: ${String(v).replace(/[\r\n]/g, ' ')}\r\n`;
  }
  socket.write(`${head}\r\n`);
}

function writeRawResponse(
  socket: Duplex,
  status: number,
  headers: OutgoingHttpHeaders,
  body: string,
): void {
  if (socket.destroyed) return;
  writeHead(socket, status, {
    ...headers,
    'content-length': Buffer.byteLength(body),
    connection: 'close',
  });
  socket.end(body);
}
