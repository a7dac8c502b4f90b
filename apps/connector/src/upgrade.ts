import type { Logger } from '@appproxy/telemetry';
import { connectThroughProxy, endToEndHeaders } from '@appproxy/tunnel';
import {
  request as httpRequest,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
} from 'node:http';
import type { ServerHttp2Stream } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { BackendTlsOptions } from './backend-tls.js';
import { classifyBackendError } from './errors.js';
import type { ConnectorMetrics } from './metrics.js';
import { respondError } from './respond.js';

const NO_BODY: ReadonlySet<string> = new Set(['content-length', 'transfer-encoding']);

export interface UpgradeContext {
  stream: ServerHttp2Stream;
  headers: IncomingHttpHeaders;
  target: URL;
  /** The client's `Upgrade` protocol (`appproxy-upgrade`). */
  protocol: string;
  authority: string;
  path: string;
  timeoutMs: number;
  /** Validation, private CA, client certificate and server name (the app's `backendTls`). */
  tls: BackendTlsOptions;
  /** The app's forward proxy: upgrades go through a CONNECT tunnel to the backend. */
  proxy?: string;
  log: Logger;
  metrics: ConnectorMetrics;
  app: string;
}

/**
 * An extended CONNECT stream (RFC 8441) becomes an HTTP/1.1 upgrade to the backend; after
 * the backend's 101 the stream carries raw bytes both ways. node:http is used here because
 * it hands back non-101 answers (401, 404, …) intact, which the user must see.
 */
export function forwardUpgrade(ctx: UpgradeContext): void {
  if (!ctx.proxy) return upgradeOver(ctx, undefined);
  const { hostname, protocol, port } = ctx.target;
  const host = hostname.replace(/^\[|\]$/g, '');
  connectThroughProxy(
    ctx.proxy,
    host,
    Number(port || (protocol === 'https:' ? 443 : 80)),
    ctx.timeoutMs,
  ).then(
    (socket) => {
      if (protocol !== 'https:') return upgradeOver(ctx, socket);
      const secure = tlsConnect({
        socket,
        servername: host,
        ...ctx.tls,
        ALPNProtocols: ['http/1.1'],
      });
      secure.once('secureConnect', () => upgradeOver(ctx, secure));
      secure.once('error', (err) => failUpgrade(ctx, err));
    },
    (err: unknown) => failUpgrade(ctx, err),
  );
}

function failUpgrade(ctx: UpgradeContext, err: unknown): void {
  const { code, status, detail } = classifyBackendError(err);
  ctx.metrics.backendErrors.labels(ctx.app, code).inc();
  ctx.log.warn('backend upgrade failed', { code, detail, target: ctx.target.origin });
  respondError(ctx.stream, code, status, detail);
}

/** The HTTP/1.1 upgrade request, on `socket` when a proxy tunnel was opened, else directly. */
function upgradeOver(ctx: UpgradeContext, via: Socket | undefined): void {
  const { stream, headers, target, log, metrics, app } = ctx;
  const protocol = ctx.protocol;
  // The relay refuses h2c (it would tunnel requests past it); a connector never sends one.
  if (/^h2c(\/|$)/i.test(protocol.trim()))
    return respondError(stream, 'UPGRADE_REFUSED', 400, 'h2c upgrades are never forwarded');
  const outHeaders: OutgoingHttpHeaders = {
    // No body on an upgrade: what follows the head is the upgraded protocol's.
    ...endToEndHeaders(headers, { drop: NO_BODY }),
    host: ctx.authority,
    connection: 'Upgrade',
    upgrade: protocol,
  };
  const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
  const req = send({
    host: target.hostname.replace(/^\[|\]$/g, ''),
    port: Number(target.port || (target.protocol === 'https:' ? 443 : 80)),
    method: 'GET',
    path: ctx.path,
    headers: outHeaders,
    agent: false,
    servername: target.hostname,
    ...ctx.tls,
    ...(via && { createConnection: () => via }),
  });
  const timer = setTimeout(
    () =>
      req.destroy(
        Object.assign(new Error('no upgrade answer in time'), { code: 'UND_ERR_HEADERS_TIMEOUT' }),
      ),
    ctx.timeoutMs,
  );
  stream.once('close', () => {
    clearTimeout(timer);
    req.destroy();
  });
  req.on('upgrade', (res, socket, head) => {
    clearTimeout(timer);
    socket.on('error', () => stream.destroy());
    if (stream.destroyed) return socket.destroy();
    stream.respond({ ':status': 200, ...endToEndHeaders(res.headers) });
    if (head.length > 0) stream.write(head);
    socket.pipe(stream);
    stream.pipe(socket);
    stream.once('close', () => socket.destroy());
    socket.once('close', () => stream.end());
    metrics.upgrades.labels(app).inc();
    stream.once('close', () => metrics.upgrades.labels(app).dec());
    log.info('upgraded', { protocol, target: target.origin });
  });
  req.on('response', (res) => {
    clearTimeout(timer);
    if (res.statusCode && res.statusCode >= 200 && res.statusCode < 300) {
      res.resume();
      return respondError(
        stream,
        'BACKEND_UPGRADE_REFUSED',
        502,
        `backend answered ${res.statusCode} without upgrading`,
      );
    }
    stream.respond({ ':status': res.statusCode ?? 502, ...endToEndHeaders(res.headers) });
    res.pipe(stream);
  });
  req.on('error', (err) => {
    clearTimeout(timer);
    failUpgrade(ctx, err);
  });
  req.end();
}
