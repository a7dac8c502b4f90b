import type { Logger } from '@appproxy/telemetry';
import { META, endToEndHeaders } from '@appproxy/tunnel';
import {
  request as httpRequest,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
} from 'node:http';
import type { ServerHttp2Stream } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { classifyBackendError } from './errors.js';
import { respondError } from './respond.js';

export interface UpgradeContext {
  stream: ServerHttp2Stream;
  headers: IncomingHttpHeaders;
  target: URL;
  authority: string;
  path: string;
  timeoutMs: number;
  verifyTls: boolean;
  log: Logger;
}

/**
 * An extended CONNECT stream (RFC 8441) becomes an HTTP/1.1 upgrade to the backend; after
 * the backend's 101 the stream carries raw bytes both ways. node:http is used here because
 * it hands back non-101 answers (401, 404, …) intact, which the user must see.
 */
export function forwardUpgrade(ctx: UpgradeContext): void {
  const { stream, headers, target, log } = ctx;
  const protocol = String(headers[META.upgrade] ?? headers[':protocol'] ?? 'websocket');
  const outHeaders: OutgoingHttpHeaders = {
    ...endToEndHeaders(headers),
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
    rejectUnauthorized: ctx.verifyTls,
    servername: target.hostname,
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
    const { code, status, detail } = classifyBackendError(err);
    log.warn('backend upgrade failed', { code, detail, target: target.origin });
    respondError(stream, code, status, detail);
  });
  req.end();
}
