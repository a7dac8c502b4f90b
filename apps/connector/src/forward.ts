import type { Logger } from '@appproxy/telemetry';
import { META, endToEndHeaders, forwardBody, resetStream } from '@appproxy/tunnel';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { ServerHttp2Stream } from 'node:http2';
import { PassThrough } from 'node:stream';
import { Agent, request } from 'undici';
import { classifyBackendError } from './errors.js';
import { respondError } from './respond.js';
import { forwardUpgrade } from './upgrade.js';

const NO_BODY_STATUS = new Set([204, 205, 304]);
/** Used when the relay sends no timeout (it always does). */
const DEFAULT_TIMEOUT_MS = 85_000;

export interface ForwarderOptions {
  log: Logger;
  /** Connections per backend origin. @default 256 */
  connections?: number;
}

/**
 * Serves tunnel streams by forwarding them to the internal URL the relay named, with undici
 * (pooled keep-alive connections per backend). Bodies stream both ways with backpressure.
 */
export class BackendForwarder {
  readonly #log: Logger;
  readonly #verify: Agent;
  readonly #noVerify: Agent;

  constructor(opts: ForwarderOptions) {
    this.#log = opts.log;
    const common = {
      connections: opts.connections ?? 256,
      keepAliveTimeout: 30_000,
      pipelining: 1,
    };
    this.#verify = new Agent({ ...common, connect: { rejectUnauthorized: true } });
    this.#noVerify = new Agent({ ...common, connect: { rejectUnauthorized: false } });
  }

  async close(): Promise<void> {
    await Promise.all([this.#verify.close(), this.#noVerify.close()]);
  }

  /** `onStream` for the TunnelDialer. */
  handle = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void => {
    const requestId = String(headers[META.requestId] ?? '');
    const log = this.#log.child({ requestId, app: headers[META.app] });
    let target: URL;
    try {
      target = new URL(String(headers[META.target]));
      if (target.protocol !== 'http:' && target.protocol !== 'https:') throw new Error('scheme');
    } catch {
      return respondError(stream, 'BACKEND_UNREACHABLE', 502, 'relay sent no valid target');
    }
    const timeoutMs = Number(headers[META.timeout]) || DEFAULT_TIMEOUT_MS;
    const verifyTls = headers[META.tlsVerify] !== '0';
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
      forwardUpgrade({ stream, headers, target, authority, path, timeoutMs, verifyTls, log });
      return;
    }
    const started = process.hrtime.bigint();
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
      body = upload;
    }
    // Concatenate, never resolve: `new URL('//other-host/x', origin)` would leave the backend.
    request(`${target.origin}${path}`, {
      method,
      headers: outHeaders as Record<string, string | string[]>,
      body,
      dispatcher: verifyTls ? this.#verify : this.#noVerify,
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
        const { code, status, detail } = classifyBackendError(err);
        log.warn('backend request failed', { code, detail, target: target.origin, method });
        respondError(stream, code, status, detail);
      },
    );
  };
}
