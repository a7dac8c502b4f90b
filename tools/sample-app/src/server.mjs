// The "Contoso Intranet" sample app: what the demo publishes and the e2e tests proxy.
// Plain node:http (no framework) so what the proxy sends is exactly what is recorded, and
// every response is exactly what a test asks for (hop-by-hop headers, repeated Set-Cookie,
// hard-coded internal URLs, slow and streaming bodies, a connection dying mid-body…).
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { Readable, pipeline } from 'node:stream';
import { WebSocketServer } from 'ws';

/**
 * @typedef {import('node:http').IncomingMessage} IncomingMessage
 * @typedef {import('node:http').ServerResponse} ServerResponse
 * @typedef {import('node:http').OutgoingHttpHeaders} OutgoingHttpHeaders
 */

/**
 * One request as the app received it (upgrade requests included).
 * @typedef {object} RecordedRequest
 * @property {string} method
 * @property {string} rawUrl exactly `req.url` as received (no normalisation)
 * @property {import('node:http').IncomingHttpHeaders} headers
 */

/**
 * A running sample app.
 * @typedef {object} SampleApp
 * @property {string} url origin + basePath, e.g. `http://127.0.0.1:41234/app/`
 * @property {string} origin e.g. `http://127.0.0.1:41234`
 * @property {number} port the port actually listened on
 * @property {RecordedRequest[]} requests every request ever received, any path, in arrival order
 * @property {Array<{ id: string, bytes: number }>} uploads uploads whose body arrived complete:
 *   `id` is the request's `X-Upload-Id` header (undefined when absent)
 * @property {() => Promise<void>} close closes the server, every socket and every WebSocket
 */

/**
 * @typedef {object} SampleAppOptions
 * @property {string} [host] listen address (default 127.0.0.1)
 * @property {number} [port] listen port (default 0: any free port)
 * @property {string} [basePath] where the app is mounted (default `/`); normalised to `/x/`
 * @property {(entry: RecordedRequest) => void} [onRequest] called for every request (the CLI logs)
 */

export const MIB = 1024 * 1024;
export const MAX_DOWNLOAD_MIB = 4096;
const WS_MAX_PAYLOAD = 64 * MIB;

/** The fixed 1 MiB block that /download repeats: a SHA-256 counter chain from a fixed seed. */
const BLOCK = (() => {
  const out = Buffer.allocUnsafe(MIB);
  const seed = Buffer.from('appproxy-sample-download');
  for (let i = 0, off = 0; off < MIB; i++, off += 32) {
    const counter = Buffer.alloc(4);
    counter.writeUInt32BE(i);
    createHash('sha256').update(seed).update(counter).digest().copy(out, off);
  }
  return out;
})();

/**
 * The deterministic bytes of `/download?mib=N`: N chunks of 1 MiB. Every chunk is the same
 * (shared, read-only) Buffer, so generating is free. Works with `for`, `for await` and
 * `Readable.from`.
 * @param {number} mib
 * @returns {Generator<Buffer, void, void>}
 */
export function* downloadChunks(mib) {
  for (let i = 0; i < mib; i++) yield BLOCK;
}

/** Hex SHA-256 of the first N blocks, for every N hashed so far. */
const shaCache = new Map([[0, createHash('sha256').digest('hex')]]);
/** A running hash over the first `blocks` blocks: asking for more continues from it. */
const running = { hash: createHash('sha256'), blocks: 0 };

/**
 * Hex SHA-256 of the bytes `/download?mib=N` sends. Computed by hashing them once; every
 * prefix length hashed on the way is cached too, so asking for 1024 then 3 is one pass.
 * @param {number} mib
 * @returns {string}
 */
export function expectedDownloadSha256(mib) {
  if (!Number.isInteger(mib) || mib < 0) throw new RangeError(`bad mib: ${mib}`);
  const cached = shaCache.get(mib);
  if (cached) return cached;
  // Every count up to running.blocks is cached, so here mib > running.blocks.
  while (running.blocks < mib) {
    running.hash.update(BLOCK);
    running.blocks++;
    shaCache.set(running.blocks, running.hash.copy().digest('hex'));
  }
  return /** @type {string} */ (shaCache.get(mib));
}

/** @param {unknown} s */
const escapeHtml = (s) =>
  String(s).replace(
    /[&<>"']/g,
    (c) =>
      /** @type {Record<string, string>} */ ({
        '&': '&amp;',
        '<': '&lt;',
        '>': '&gt;',
        '"': '&quot;',
        "'": '&#39;',
      })[c],
  );

/**
 * Reads a request body through SHA-256 without keeping it (for-await honours backpressure).
 * Rejects when the client goes away before the body is complete.
 * @param {IncomingMessage} req
 */
async function hashBody(req) {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of req) {
    hash.update(chunk);
    bytes += chunk.length;
  }
  if (!req.complete) throw new Error('request body incomplete');
  return { bytes, sha256: hash.digest('hex') };
}

/**
 * @param {IncomingMessage} req
 * @param {number} [limit]
 */
async function readSmallBody(req, limit = MIB) {
  /** @type {Buffer[]} */
  const chunks = [];
  let size = 0;
  // Keeps reading past the limit (discarding) so the 413 can still be answered.
  for await (const chunk of req) {
    size += chunk.length;
    if (size <= limit) chunks.push(chunk);
  }
  if (size > limit) throw Object.assign(new Error('body too large'), { status: 413 });
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * @param {ServerResponse} res
 * @param {number} status
 * @param {unknown} body
 * @param {OutgoingHttpHeaders} [headers]
 */
function json(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/**
 * @param {ServerResponse} res
 * @param {number} status
 * @param {string} contentType
 * @param {string | Buffer} body
 * @param {OutgoingHttpHeaders} [headers]
 */
function send(res, status, contentType, body, headers = {}) {
  res.writeHead(status, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(body),
    ...headers,
  });
  res.end(body);
}

/** @param {ServerResponse} res @param {string} body @param {OutgoingHttpHeaders} [headers] */
const html = (res, body, headers) => send(res, 200, 'text/html; charset=utf-8', body, headers);
/** @param {ServerResponse} res @param {number} status @param {string} body */
const text = (res, status, body) => send(res, status, 'text/plain; charset=utf-8', body);

/**
 * An integer query parameter within [min, max], its default when absent, NaN when invalid.
 * @param {URLSearchParams} params
 * @param {string} name
 * @param {number} dflt
 * @param {number} min
 * @param {number} max
 */
function intParam(params, name, dflt, min, max) {
  const raw = params.get(name);
  if (raw === null || raw === '') return dflt;
  const n = Number(raw);
  return Number.isInteger(n) && n >= min && n <= max ? n : NaN;
}

// A 1×1 transparent PNG.
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==',
  'base64',
);

const ECHO_ALLOW = 'GET, HEAD, POST, PUT, DELETE, OPTIONS, PROPFIND';

/**
 * The pathname of a request target, without normalising `//` runs away (`new URL('//x', b)`
 * would read `x` as a host). Dot segments and `%2e%2e` ARE resolved, as a naive backend would:
 * that is what lets `/admin` prove a traversal escaped. Null for targets that are no URL (`*`).
 * @param {string} rawUrl
 */
function parseTarget(rawUrl) {
  try {
    return rawUrl.startsWith('/') ? new URL(`http://sample.invalid${rawUrl}`) : new URL(rawUrl); // absolute-form
  } catch {
    return null;
  }
}

/** @param {string} basePath */
export function normalizeBasePath(basePath) {
  const trimmed = String(basePath).replace(/^\/+|\/+$/g, '');
  return trimmed ? `/${trimmed}/` : '/';
}

/**
 * Starts the sample app.
 * @param {SampleAppOptions} [opts]
 * @returns {Promise<SampleApp>}
 */
export async function startSampleApp({
  host = '127.0.0.1',
  port = 0,
  basePath = '/',
  onRequest,
} = {}) {
  const base = normalizeBasePath(basePath);
  /** @type {RecordedRequest[]} */
  const requests = [];
  /** @type {Array<{ id: string, bytes: number }>} */
  const uploads = [];
  /** @type {Set<NodeJS.Timeout>} */
  const timers = new Set();
  /** Sockets handed to 'upgrade' (no longer tracked by the HTTP server). */
  /** @type {Set<import('node:stream').Duplex>} */
  const upgraded = new Set();
  let origin = '';

  /** @param {IncomingMessage} req */
  const record = (req) => {
    const entry = { method: req.method ?? '', rawUrl: req.url ?? '', headers: req.headers };
    requests.push(entry);
    try {
      onRequest?.(entry);
    } catch {
      // A logger never breaks a request.
    }
  };

  // requestTimeout 0: uploads and downloads of any size, at any speed, through any proxy.
  const server = createServer({ requestTimeout: 0 }, async (req, res) => {
    record(req);
    try {
      await route(req, res);
    } catch (err) {
      const e = /** @type {{ message?: string, status?: number }} */ (err);
      if (!res.headersSent && !req.destroyed) json(res, e.status ?? 500, { error: e.message });
      else res.destroy();
    }
  });

  /** Like `setTimeout`, but `close()` clears it. */
  /** @param {() => void} fn @param {number} ms */
  const later = (fn, ms) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
    return () => {
      clearTimeout(t);
      timers.delete(t);
    };
  };

  /**
   * @param {IncomingMessage} req
   * @param {ServerResponse} res
   * @param {string[]} methods
   */
  const allow = (req, res, methods) => {
    if (methods.includes(req.method ?? '')) return true;
    req.resume();
    res.writeHead(405, { allow: methods.join(', '), 'content-type': 'text/plain' });
    res.end('method not allowed\n');
    return false;
  };
  const GET = ['GET', 'HEAD'];

  /**
   * @param {IncomingMessage} req
   * @param {ServerResponse} res
   */
  async function route(req, res) {
    const url = parseTarget(req.url ?? '');
    if (!url) return text(res, 400, 'bad request target\n');
    const path = url.pathname;
    // Outside the published path on purpose: the proxy's traversal tests look for this text.
    if (path === '/admin' || path.startsWith('/admin/')) {
      req.resume();
      return text(res, 200, 'ADMIN SECRET');
    }
    if (!path.startsWith(base) && `${path}/` !== base) {
      req.resume();
      return text(res, 404, 'not found');
    }
    const sub = `/${path.slice(base.length)}`;
    // Hard-coded internal URLs, as legacy intranet apps write them: the proxy must rewrite them.
    const self = `${req.headers.host ? `http://${req.headers.host}` : origin}${base}`;
    const selfHtml = escapeHtml(self);
    const q = url.searchParams;

    switch (sub) {
      case '/': {
        if (!allow(req, res, GET)) return;
        return html(
          res,
          `<!doctype html>
<html><head><meta charset="utf-8"><title>Contoso Intranet</title>
<link rel="stylesheet" href="${selfHtml}style.css"></head>
<body><h1>Contoso Intranet</h1>
<p>Welcome. This page links with hard-coded internal URLs, as legacy intranet apps do.</p>
<ul>
  <li><a href="${selfHtml}page2">Page 2</a></li>
  <li><a href="http://expenses/">Expenses (NetBIOS name)</a></li>
  <li><a href="${selfHtml}sse?count=5">Live events</a></li>
</ul>
<img src="${selfHtml}logo.png" alt="Contoso logo">
<form method="post" action="${selfHtml}form"><input name="q" value="hello"><button>Send</button></form>
</body></html>
`,
          {
            'set-cookie': [
              `sample_session=${randomBytes(16).toString('hex')}; Path=${base}; HttpOnly`,
              `sample_pref=dark; Path=${base}`,
            ],
          },
        );
      }
      case '/page2':
        if (!allow(req, res, GET)) return;
        return html(
          res,
          `<!doctype html><html><head><meta charset="utf-8"><title>Page 2</title></head>` +
            `<body><h1>Page 2</h1><a href="${selfHtml}">Home</a></body></html>\n`,
        );
      case '/style.css':
        if (!allow(req, res, GET)) return;
        return send(
          res,
          200,
          'text/css; charset=utf-8',
          `body { font-family: sans-serif; background: url(${self}logo.png) no-repeat; }\n`,
        );
      case '/logo.png':
        if (!allow(req, res, GET)) return;
        return send(res, 200, 'image/png', PNG);
      case '/form': {
        if (!allow(req, res, ['GET', 'HEAD', 'POST'])) return;
        if (req.method !== 'POST') {
          return html(
            res,
            `<!doctype html><html><head><meta charset="utf-8"><title>Form</title></head><body>` +
              `<form method="post" action="${selfHtml}form" enctype="application/x-www-form-urlencoded">` +
              `<input name="name"><input name="comment"><button>Send</button></form></body></html>\n`,
          );
        }
        const fields = Object.fromEntries(new URLSearchParams(await readSmallBody(req)));
        return json(res, 200, { fields });
      }
      case '/upload': {
        if (!allow(req, res, ['POST', 'PUT'])) return;
        const result = await hashBody(req);
        uploads.push({
          id: /** @type {string} */ (req.headers['x-upload-id']),
          bytes: result.bytes,
        });
        return json(res, 200, result);
      }
      case '/download': {
        if (!allow(req, res, GET)) return;
        const mib = intParam(q, 'mib', 1, 0, MAX_DOWNLOAD_MIB);
        if (Number.isNaN(mib)) return text(res, 400, `mib: an integer 0..${MAX_DOWNLOAD_MIB}\n`);
        /** @type {OutgoingHttpHeaders} */
        const headers = {
          'content-type': 'application/octet-stream',
          'content-length': mib * MIB,
        };
        const sha = shaCache.get(mib);
        if (sha) headers['x-download-sha256'] = sha;
        res.writeHead(200, headers);
        if (req.method === 'HEAD') return void res.end();
        // pipeline honours backpressure (one block in flight) and stops on a client abort.
        pipeline(Readable.from(downloadChunks(mib), { objectMode: false }), res, () => {});
        return;
      }
      case '/slow': {
        if (!allow(req, res, [...GET, 'POST', 'PUT'])) return;
        const ms = intParam(q, 'ms', 5000, 0, 24 * 3600 * 1000);
        if (Number.isNaN(ms)) return text(res, 400, 'ms: an integer >= 0\n');
        // POST/PUT: the body is read to the end first (its size is in the answer).
        const { bytes } =
          req.method === 'POST' || req.method === 'PUT' ? await hashBody(req) : { bytes: 0 };
        if (res.destroyed) return;
        const cancel = later(
          () => text(res, 200, bytes ? `slow done (${bytes} bytes)` : 'slow done'),
          ms,
        );
        res.on('close', cancel);
        return;
      }
      case '/sse': {
        if (!allow(req, res, GET)) return;
        const count = intParam(q, 'count', 5, 0, 1_000_000);
        const interval = intParam(q, 'intervalMs', 200, 0, 3600 * 1000);
        if (Number.isNaN(count) || Number.isNaN(interval)) {
          return text(res, 400, 'count and intervalMs: integers >= 0\n');
        }
        res.writeHead(200, {
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-cache',
          'x-accel-buffering': 'no',
        });
        res.flushHeaders();
        let i = 0;
        let cancel = () => {};
        const tick = () => {
          if (i >= count) return void res.end();
          res.write(`id: ${i}\ndata: ${JSON.stringify({ i, t: Date.now() })}\n\n`);
          i++;
          if (i >= count) return void res.end();
          cancel = later(tick, interval);
        };
        res.on('close', () => cancel());
        tick();
        return;
      }
      case '/echo': {
        const { bytes, sha256 } = await hashBody(req);
        /** @type {OutgoingHttpHeaders} */
        const headers = {
          'x-sample-echo': '1',
          'set-cookie': ['a=1; Path=/', 'b=2; Path=/', 'c=3; Path=/; HttpOnly'],
        };
        if (req.method === 'OPTIONS') headers.allow = ECHO_ALLOW;
        // PROPFIND answers 207 Multi-Status (as WebDAV does) with the same JSON body.
        // HEAD: node:http sends the headers (Content-Length included) and drops the body.
        return json(
          res,
          req.method === 'PROPFIND' ? 207 : 200,
          {
            method: req.method,
            url: req.url,
            headers: req.headers,
            bodyLength: bytes,
            bodySha256: sha256,
          },
          headers,
        );
      }
      case '/headers':
        if (!allow(req, res, GET)) return;
        return json(res, 200, { headers: req.headers, rawHeaders: req.rawHeaders });
      case '/hop':
        if (!allow(req, res, GET)) return;
        // Hop-by-hop headers a proxy must strip: the first four (X-Hop-Secret via Connection).
        return send(res, 200, 'text/plain; charset=utf-8', 'hop\n', {
          connection: 'close, X-Hop-Secret',
          'x-hop-secret': 'must-not-pass',
          'keep-alive': 'timeout=5',
          'proxy-connection': 'keep-alive',
          'x-end-to-end': 'kept',
        });
      case '/broken': {
        // Chunked (no Content-Length), then the connection dies mid-body: a proxy that ends
        // its own response normally here would hand the client a silently truncated body.
        req.resume();
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        res.write(Buffer.alloc(64 * 1024, 'x'));
        later(() => res.socket?.destroy(), 50);
        return;
      }
      case '/redirect': {
        req.resume();
        // `?scheme=https`: as apps told X-Forwarded-Proto: https answer (DokuWiki, Django).
        const location = q.get('scheme') === 'https' ? self.replace(/^http:/, 'https:') : self;
        res.writeHead(302, { location: `${location}page2`, 'content-length': 0 });
        return void res.end();
      }
      default: {
        if (sub.startsWith('/status/')) {
          req.resume();
          const code = Number(sub.slice('/status/'.length));
          if (!(Number.isInteger(code) && code >= 200 && code <= 599)) {
            return text(res, 400, 'status: an integer 200..599\n');
          }
          // 204 and 304 never carry a body.
          if (code === 204 || code === 304) return void res.writeHead(code).end();
          return text(res, code, `status ${code}\n`);
        }
        req.resume();
        return text(res, 404, `no page ${sub}\n`);
      }
    }
  }

  const wss = new WebSocketServer({ noServer: true, maxPayload: WS_MAX_PAYLOAD });
  wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    ws.on('error', () => {});
  });
  server.on('upgrade', (req, socket, head) => {
    record(req);
    upgraded.add(socket);
    socket.on('close', () => upgraded.delete(socket));
    socket.on('error', () => {});
    const path = parseTarget(req.url ?? '')?.pathname;
    if (path !== `${base}ws`) {
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(undefined);
    });
  });
  const address = /** @type {import('node:net').AddressInfo} */ (server.address());
  origin = `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`;

  /** @type {Promise<void> | undefined} */
  let closing;
  return {
    url: `${origin}${base}`,
    origin,
    port: address.port,
    requests,
    uploads,
    close() {
      closing ??= new Promise((resolve) => {
        for (const t of timers) clearTimeout(t);
        timers.clear();
        for (const ws of wss.clients) ws.terminate();
        wss.close();
        for (const s of upgraded) s.destroy();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
