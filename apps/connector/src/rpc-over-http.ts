import { connectThroughProxy, endToEndHeaders } from '@appproxy/tunnel';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { classifyBackendError } from './errors.js';
import { respondError } from './respond.js';
import type { UpgradeContext } from './upgrade.js';

/** The extended CONNECT `:protocol` of an RPC-over-HTTP request (docs/tunnel-protocol.md §3.5). */
export const RPC_TUNNEL_PROTOCOL = 'appproxy-rpc-over-http';

/** The client's `Content-Length`, beside the CONNECT stream (which can carry none). */
const RPC_CONTENT_LENGTH = 'appproxy-rpc-content-length';

/** The methods the relay sends this way; anything else is refused here too. */
const RPC_METHODS: ReadonlySet<string> = new Set([
  'RPC_IN_DATA',
  'RPC_OUT_DATA',
  'RDG_IN_DATA',
  'RDG_OUT_DATA',
]);

/** What is not written into the request head from the stream's headers. */
const NOT_FORWARDED: ReadonlySet<string> = new Set(['content-length', 'transfer-encoding', 'host']);

/**
 * An RPC-over-HTTP request (`RPC_IN_DATA`, `RDG_OUT_DATA`, …): a connection of its own to
 * the backend (directly or through the app's forward proxy), the request head written as
 * the relay sent it, then raw bytes both ways for as long as either side keeps it open — no
 * timeout once connected, since these channels live for hours. The stream answers 200 once
 * the backend connection is open; the backend's own response follows as bytes.
 */
export function forwardRpc(ctx: UpgradeContext & { method: string }): void {
  const { stream, target } = ctx;
  if (!RPC_METHODS.has(ctx.method))
    return respondError(stream, 'BACKEND_UNREACHABLE', 502, 'not an RPC-over-HTTP method');
  const host = target.hostname.replace(/^\[|\]$/g, '');
  const https = target.protocol === 'https:';
  const port = Number(target.port || (https ? 443 : 80));
  const fail = (err: unknown) => {
    const { code, status, detail } = classifyBackendError(err);
    ctx.metrics.backendErrors.labels(ctx.app, code).inc();
    ctx.log.warn('backend RPC over HTTP failed', { code, detail, target: target.origin });
    if (!stream.headersSent) respondError(stream, code, status, detail);
    else stream.destroy();
  };
  const timer = setTimeout(
    () =>
      fail(
        Object.assign(new Error('backend did not connect in time'), { code: 'ETIMEDOUT_BACKEND' }),
      ),
    ctx.timeoutMs,
  );
  const open = (socket: Socket) => {
    const ready = () => {
      clearTimeout(timer);
      socket.off('error', fail);
      if (stream.destroyed) return socket.destroy();
      splice(ctx, socket);
    };
    socket.once('error', (err) => {
      clearTimeout(timer);
      fail(err);
    });
    stream.once('close', () => socket.destroy());
    if (!https) return socket.connecting ? socket.once('connect', ready) : ready();
    const secure = tlsConnect({
      socket,
      servername: host,
      // The app's backendTls: validation, private CA, client certificate, server name.
      ...ctx.tls,
      ALPNProtocols: ['http/1.1'],
    });
    secure.once('secureConnect', () => {
      clearTimeout(timer);
      if (stream.destroyed) return secure.destroy();
      splice(ctx, secure);
    });
    secure.once('error', (err) => {
      clearTimeout(timer);
      fail(err);
    });
  };
  if (ctx.proxy)
    connectThroughProxy(ctx.proxy, host, port, ctx.timeoutMs).then(open, (err: unknown) => {
      clearTimeout(timer);
      fail(err);
    });
  else open(netConnect({ host, port }));
}

/** The request head to the backend, then the stream and the socket piped both ways. */
function splice(ctx: UpgradeContext & { method: string }, socket: Socket): void {
  const { stream, headers, log, metrics, app } = ctx;
  let head = `${ctx.method} ${ctx.path} HTTP/1.1\r\nHost: ${ctx.authority}\r\n`;
  for (const [name, value] of Object.entries(endToEndHeaders(headers))) {
    if (value === undefined || NOT_FORWARDED.has(name)) continue;
    for (const v of Array.isArray(value) ? value : [value])
      head += `${name}: ${String(v).replace(/[\r\n]/g, ' ')}\r\n`;
  }
  const length = headers[RPC_CONTENT_LENGTH];
  if (typeof length === 'string' && /^\d{1,15}$/.test(length))
    head += `Content-Length: ${length}\r\n`;
  socket.write(`${head}\r\n`);
  socket.setNoDelay(true);
  socket.on('error', () => stream.destroy());
  stream.respond({ ':status': 200 });
  socket.pipe(stream);
  stream.pipe(socket);
  stream.once('close', () => socket.destroy());
  socket.once('close', () => stream.end());
  metrics.upgrades.labels(app).inc();
  stream.once('close', () => metrics.upgrades.labels(app).dec());
  log.info('RPC over HTTP opened', { method: ctx.method, target: ctx.target.origin });
}
