import type { PublishedAppConfig } from '@appproxy/config';
import type { AppTable, RouteMatch } from '@appproxy/routing';
import type { Logger } from '@appproxy/telemetry';
import {
  CAPABILITY,
  META,
  endToEndHeaders,
  forwardBody,
  resetStream,
  type TunnelSession,
} from '@appproxy/tunnel';
import { randomUUID } from 'node:crypto';
import {
  STATUS_CODES,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ServerResponse,
} from 'node:http';
import {
  type ClientHttp2Stream,
  type Http2ServerRequest,
  type Http2ServerResponse,
} from 'node:http2';
import type { Duplex } from 'node:stream';
import type { ConnectorPool } from './connector-pool.js';
import { isRelayErrorCode, renderError, type RelayErrorCode } from './error-pages.js';
import { forwardedHeaders, type TrustedProxies } from './forwarded.js';

type AnyRequest = IncomingMessage | Http2ServerRequest;
type AnyResponse = ServerResponse | Http2ServerResponse;

export interface ProxyDeps {
  apps: () => AppTable<PublishedAppConfig>;
  pool: ConnectorPool;
  trustedProxies: TrustedProxies;
  log: Logger;
}

/** Extra time the relay waits beyond the app's backend timeout before it gives up itself. */
const RELAY_GRACE_MS = 5_000;
const RESERVED_PREFIX = '/.appproxy/';

interface Routed {
  match: RouteMatch<PublishedAppConfig>;
  session: TunnelSession;
  headers: OutgoingHttpHeaders;
}

/**
 * The relay's request pump: route by host and path, pick a connector of the app's group,
 * open one tunnel stream and stream both bodies through it with backpressure.
 */
export class RelayProxy {
  readonly #deps: ProxyDeps;
  constructor(deps: ProxyDeps) {
    this.#deps = deps;
  }

  /** `request` handler of the public server (HTTP/1.1 and HTTP/2 alike). */
  handle = (req: AnyRequest, anyRes: AnyResponse): void => {
    // Http2ServerResponse mirrors ServerResponse for everything used here.
    const res = anyRes as ServerResponse;
    const correlationId = randomUUID();
    const started = process.hrtime.bigint();
    const log = this.#deps.log.child({ requestId: correlationId });
    const host = requestHost(req);
    const target = req.url ?? '/';
    let appName: string | undefined;
    let bytesOut = 0;
    res.on('close', () => {
      log.info('request', {
        app: appName,
        method: req.method,
        host,
        path: target.split('?')[0],
        status: res.statusCode,
        bytesOut,
        durationMs: Number(process.hrtime.bigint() - started) / 1e6,
        aborted: !res.writableFinished,
        client: req.socket?.remoteAddress,
      });
    });
    const fail = (code: RelayErrorCode, detail?: string) => {
      if (detail) log.warn('request failed', { code, app: appName, detail });
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const page = renderError(code, {
        app: appName,
        correlationId,
        accept: header(req.headers.accept),
      });
      res.writeHead(page.status, page.headers);
      if (req.method === 'HEAD') res.end();
      else res.end(page.body);
    };

    const routed = this.#route(req, host, target, correlationId);
    if (typeof routed === 'string') return fail(routed);
    if ('code' in routed) {
      appName = routed.app;
      return fail(routed.code, routed.detail);
    }
    const { match, session } = routed;
    appName = match.app.name;
    let stream: ClientHttp2Stream;
    try {
      stream = session.request(routed.headers);
    } catch (err) {
      return fail('CONNECTOR_UNAVAILABLE', (err as Error).message);
    }
    let responded = false;
    const guard = setTimeout(() => {
      resetStream(stream, 'backend timeout at the relay');
      fail('BACKEND_TIMEOUT', 'no response from the connector within the backend timeout');
    }, match.app.backendTimeoutMs + RELAY_GRACE_MS);
    guard.unref();

    // The client went away: cancel the stream so the connector aborts the backend request.
    res.on('close', () => {
      clearTimeout(guard);
      if (!res.writableFinished) resetStream(stream, 'client went away');
    });
    // pipe(), not pipeline(): pipeline allocates and aborts an AbortController (a
    // DOMException with a stack) per call, ~5 % of relay CPU at 1 KiB responses. Errors are
    // handled by hand: a failed client request cancels the stream via res 'close'.
    req.pipe(stream);
    req.on('error', (err) => {
      log.debug('request body not fully sent', { error: err });
      resetStream(stream, 'client went away');
    });

    stream.on('response', (headers) => {
      responded = true;
      clearTimeout(guard);
      const status = Number(headers[':status']);
      const connectorError = headers[META.error];
      if (connectorError) {
        stream.resume();
        const code = isRelayErrorCode(connectorError) ? connectorError : 'BACKEND_UNREACHABLE';
        return fail(
          code,
          `connector ${session.connectorId}: ${String(headers[META.errorDetail] ?? connectorError)}`,
        );
      }
      const out = endToEndHeaders(headers as IncomingHttpHeaders);
      out['x-appproxy-correlation-id'] = correlationId;
      res.writeHead(status, out);
      stream.on('data', (chunk: Buffer) => {
        bytesOut += chunk.length;
      });
      forwardBody(stream, res, (rst) => {
        // Reset mid-response (connector lost, backend failed): the client must see a broken
        // response, never a truncated body that looks whole.
        log.warn('response interrupted', { app: appName, connector: session.connectorId, rst });
        res.destroy();
      });
    });
    stream.on('close', () => {
      if (responded) return;
      clearTimeout(guard);
      if (!res.headersSent && !res.destroyed) {
        fail(
          'CONNECTOR_LOST',
          `tunnel stream closed before a response (rst ${stream.rstCode}, tunnel ${session.state})`,
        );
      }
    });
    stream.on('error', () => {});
  };

  /** `upgrade` handler of the public server (HTTP/1.1 `Upgrade`, e.g. WebSocket). */
  handleUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const correlationId = randomUUID();
    const log = this.#deps.log.child({ requestId: correlationId });
    socket.on('error', () => {});
    const host = requestHost(req);
    const target = req.url ?? '/';
    let appName: string | undefined;
    const fail = (code: RelayErrorCode, detail?: string) => {
      log.warn('upgrade failed', { code, app: appName, detail, path: target.split('?')[0] });
      const page = renderError(code, {
        app: appName,
        correlationId,
        accept: header(req.headers.accept),
      });
      writeRawResponse(socket, page.status, page.headers, page.body);
    };
    const protocol = String(req.headers.upgrade ?? '').toLowerCase();
    const routed = this.#route(req, host, target, correlationId, CAPABILITY.websocket);
    if (typeof routed === 'string') return fail(routed);
    if ('code' in routed) {
      appName = routed.app;
      return fail(routed.code, routed.detail);
    }
    const { match, session } = routed;
    appName = match.app.name;
    const headers: OutgoingHttpHeaders = {
      ...routed.headers,
      ':method': 'CONNECT',
      ':protocol': protocol,
      ':scheme': new URL(match.internalOrigin).protocol.slice(0, -1),
      [META.upgrade]: String(req.headers.upgrade),
    };
    let stream: ClientHttp2Stream;
    try {
      stream = session.request(headers);
    } catch (err) {
      return fail('CONNECTOR_UNAVAILABLE', (err as Error).message);
    }
    stream.on('error', () => {});
    socket.on('close', () => {
      resetStream(stream, 'client went away');
    });
    let responded = false;
    stream.on('response', (resHeaders) => {
      responded = true;
      const status = Number(resHeaders[':status']);
      const connectorError = resHeaders[META.error];
      if (connectorError) {
        return fail(
          isRelayErrorCode(connectorError) ? connectorError : 'BACKEND_UNREACHABLE',
          `connector ${session.connectorId}: ${String(connectorError)}`,
        );
      }
      const out = endToEndHeaders(resHeaders as IncomingHttpHeaders);
      if (status === 200) {
        // RFC 8441: 200 on the CONNECT stream is the backend's 101.
        writeHead(socket, 101, {
          connection: 'Upgrade',
          upgrade: String(req.headers.upgrade),
          ...out,
        });
        if (head.length > 0) stream.write(head);
        socket.pipe(stream);
        stream.pipe(socket);
        log.info('upgraded', { app: appName, protocol, connector: session.connectorId });
        return;
      }
      // Refused upgrade: relay the backend's answer as a plain HTTP/1.1 response.
      writeHead(socket, status, { ...out, connection: 'close' });
      stream.pipe(socket);
    });
    stream.once('close', () => {
      if (!responded) fail('CONNECTOR_LOST', 'tunnel stream closed before the upgrade');
      else socket.destroy();
    });
  };

  #route(
    req: AnyRequest,
    host: string,
    target: string,
    correlationId: string,
    capability?: string,
  ): Routed | RelayErrorCode | { code: RelayErrorCode; app: string; detail?: string } {
    const pathOnly = target.split('?')[0]!;
    if (pathOnly.startsWith(RESERVED_PREFIX) || pathOnly === RESERVED_PREFIX.slice(0, -1))
      return 'RESERVED_PATH';
    const match = this.#deps.apps().route(host, target);
    if (match === undefined) return 'APP_NOT_FOUND';
    if (match === 'ENCODED_SEPARATOR' || match === 'INVALID_PATH') return 'BAD_REQUEST_PATH';
    const app = match.app;
    if (app.maintenanceMode) return { code: 'MAINTENANCE', app: app.name };
    const session = this.#deps.pool.pick(app.connectorGroup, capability);
    if (!session) {
      const code =
        capability && this.#deps.pool.hasReady(app.connectorGroup)
          ? 'UPGRADE_UNSUPPORTED'
          : 'CONNECTOR_UNAVAILABLE';
      return { code, app: app.name, detail: `no ready connector in group ${app.connectorGroup}` };
    }
    const e2e = endToEndHeaders(req.headers);
    delete e2e.host;
    // undici cannot do `Expect: 100-continue`; the relay's own server already answered it.
    delete e2e.expect;
    delete e2e.forwarded;
    delete e2e['x-forwarded-for'];
    delete e2e['x-forwarded-proto'];
    delete e2e['x-forwarded-host'];
    const externalHost = host;
    const trusted = this.#deps.trustedProxies.has(req.socket?.remoteAddress);
    const headers: OutgoingHttpHeaders = {
      ...e2e,
      ...forwardedHeaders({
        clientAddress: req.socket?.remoteAddress,
        externalHost,
        trusted,
        existing: {
          for: req.headers['x-forwarded-for'],
          proto: req.headers['x-forwarded-proto'],
          host: req.headers['x-forwarded-host'],
        },
      }),
      ':method': req.method ?? 'GET',
      ':path': match.internalPath,
      ':authority': app.translateHeaders ? match.internalHost : externalHost,
      [META.target]: match.internalOrigin,
      [META.requestId]: correlationId,
      [META.app]: app.name,
      [META.timeout]: String(app.backendTimeoutMs),
      [META.tlsVerify]: app.validateBackendTls ? '1' : '0',
    };
    return { match, session, headers };
  }
}

function header(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(', ') : v;
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
