// The "Contoso intranet" sample app: what the demo publishes and the e2e tests proxy.
// Plain node:http (no framework) so what the proxy sends is exactly what is recorded.
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { Readable } from 'node:stream';
import { WebSocketServer } from 'ws';

const MIB = 1024 * 1024;
const MAX_DOWNLOAD_MIB = 4096;

/** The fixed 1 MiB block that /download repeats: a SHA-256 counter chain from a fixed seed. */
const BLOCK = (() => {
  const out = Buffer.allocUnsafe(MIB);
  let prev = createHash('sha256').update('appproxy-sample-download').digest();
  for (let off = 0; off < MIB; off += 32) {
    prev = createHash('sha256').update(prev).digest();
    prev.copy(out, off);
  }
  return out;
})();

/**
 * The deterministic bytes of `/download?mib=N`, as 1 MiB chunks.
 * @param {number} mib
 */
export function* downloadChunks(mib) {
  for (let i = 0; i < mib; i++) yield BLOCK;
}

const shaCache = new Map();
/**
 * Hex SHA-256 of the bytes `/download?mib=N` sends.
 * @param {number} mib
 */
export function expectedDownloadSha256(mib) {
  if (!shaCache.has(mib)) {
    const hash = createHash('sha256');
    for (const chunk of downloadChunks(mib)) hash.update(chunk);
    shaCache.set(mib, hash.digest('hex'));
  }
  return shaCache.get(mib);
}

const escapeHtml = (s) =>
  String(s).replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c],
  );

/** Reads a request body through SHA-256 without keeping it. */
function hashBody(req) {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    let bytes = 0;
    req.on('data', (c) => {
      hash.update(c);
      bytes += c.length;
    });
    req.on('end', () => resolve({ bytes, sha256: hash.digest('hex') }));
    req.on('error', reject);
    req.on('aborted', () => reject(new Error('request aborted')));
  });
}

function readSmallBody(req, limit = 1024 * 1024) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > limit) return req.destroy(new Error('body too large'));
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

const json = (res, status, body, headers = {}) => {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
};

const html = (res, body, headers = {}) => {
  res.writeHead(200, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    ...headers,
  });
  res.end(body);
};

// A 1×1 transparent PNG.
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==',
  'base64',
);

/**
 * Starts the sample app.
 * @param {{ host?: string, port?: number, basePath?: string }} [opts]
 */
export async function startSampleApp({ host = '127.0.0.1', port = 0, basePath = '/' } = {}) {
  const base = `/${basePath.replace(/^\/+|\/+$/g, '')}/`.replace('//', '/');
  /** @type {Array<{ method: string, rawUrl: string, headers: object }>} */
  const requests = [];
  /** Uploads whose body arrived complete: { id (x-upload-id header), bytes }. */
  const uploads = [];
  const timers = new Set();

  const server = createServer(async (req, res) => {
    requests.push({ method: req.method, rawUrl: req.url, headers: req.headers });
    try {
      await route(req, res);
    } catch (err) {
      if (!res.headersSent) json(res, 500, { error: String(err?.message ?? err) });
      else res.destroy();
    }
  });

  async function route(req, res) {
    const url = new URL(req.url, 'http://sample.invalid');
    const path = url.pathname;
    if (path === '/admin' || path.startsWith('/admin/')) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      return res.end('ADMIN SECRET');
    }
    if (!path.startsWith(base) && `${path}/` !== base) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      return res.end('not found');
    }
    const sub = `/${path.slice(base.length)}`;
    const self = `http://${req.headers.host ?? `${host}:${port}`}${base}`;
    switch (true) {
      case sub === '/' && req.method === 'GET':
        return html(
          res,
          `<!doctype html>
<html><head><meta charset="utf-8"><title>Contoso Intranet</title>
<link rel="stylesheet" href="${self}style.css"></head>
<body><h1>Contoso Intranet</h1>
<p>Welcome. This page links with hard-coded internal URLs, as legacy intranet apps do.</p>
<ul>
  <li><a href="${self}page2">Page 2</a></li>
  <li><a href="http://expenses/">Expenses (NetBIOS name)</a></li>
  <li><a href="${self}sse?count=5">Live events</a></li>
</ul>
<img src="${self}logo.png" alt="logo">
<form method="post" action="${self}form"><input name="q" value="hello"><button>Send</button></form>
</body></html>
`,
          {
            'set-cookie': [
              `sample_session=${randomBytes(8).toString('hex')}; Path=${base}; HttpOnly`,
              `sample_pref=dark; Path=${base}`,
            ],
          },
        );
      case sub === '/page2':
        return html(
          res,
          `<!doctype html><html><head><title>Page 2</title></head><body><h1>Page 2</h1><a href="${self}">Home</a></body></html>\n`,
        );
      case sub === '/style.css':
        res.writeHead(200, { 'content-type': 'text/css' });
        return res.end(
          `body { font-family: sans-serif; background: url(${self}logo.png) no-repeat; }\n`,
        );
      case sub === '/logo.png':
        res.writeHead(200, { 'content-type': 'image/png', 'content-length': PNG.length });
        return res.end(PNG);
      case sub === '/form' && req.method === 'GET':
        return html(
          res,
          `<!doctype html><form method="post" action="${self}form"><input name="name"><button>Send</button></form>\n`,
        );
      case sub === '/form' && req.method === 'POST': {
        const fields = Object.fromEntries(new URLSearchParams(await readSmallBody(req)));
        return json(res, 200, { fields });
      }
      case sub === '/upload' && (req.method === 'POST' || req.method === 'PUT'): {
        const result = await hashBody(req);
        uploads.push({ id: req.headers['x-upload-id'], bytes: result.bytes });
        return json(res, 200, result);
      }
      case sub === '/download' && (req.method === 'GET' || req.method === 'HEAD'): {
        const mib = Math.min(
          MAX_DOWNLOAD_MIB,
          Math.max(0, Number(url.searchParams.get('mib') ?? 1) | 0),
        );
        const headers = { 'content-type': 'application/octet-stream', 'content-length': mib * MIB };
        if (shaCache.has(mib)) headers['x-download-sha256'] = shaCache.get(mib);
        res.writeHead(200, headers);
        if (req.method === 'HEAD') return res.end();
        // Readable.from + pipe honour backpressure: at most a few blocks are queued.
        return Readable.from(downloadChunks(mib), { objectMode: false }).pipe(res);
      }
      case sub === '/slow': {
        const ms = Number(url.searchParams.get('ms') ?? 5000);
        const timer = setTimeout(() => {
          timers.delete(timer);
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.end('slow done');
        }, ms);
        timers.add(timer);
        res.on('close', () => {
          clearTimeout(timer);
          timers.delete(timer);
        });
        return;
      }
      case sub === '/sse': {
        const count = Number(url.searchParams.get('count') ?? 5);
        const interval = Number(url.searchParams.get('intervalMs') ?? 200);
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        res.flushHeaders();
        let i = 0;
        const send = () => {
          res.write(`id: ${i}\ndata: ${JSON.stringify({ i, t: Date.now() })}\n\n`);
          i++;
          if (i >= count) {
            clearInterval(timer);
            timers.delete(timer);
            res.end();
          }
        };
        const timer = setInterval(send, interval);
        timers.add(timer);
        send();
        res.on('close', () => {
          clearInterval(timer);
          timers.delete(timer);
        });
        return;
      }
      case sub === '/echo': {
        const { bytes, sha256 } = await hashBody(req);
        const headers = {
          'x-sample-echo': '1',
          'set-cookie': ['a=1; Path=/', 'b=2; Path=/', 'c=3; Path=/; HttpOnly'],
        };
        if (req.method === 'OPTIONS')
          headers.allow = 'GET, HEAD, POST, PUT, DELETE, OPTIONS, PROPFIND';
        // PROPFIND answers 207 Multi-Status (WebDAV) with the same JSON body.
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
      case sub === '/headers':
        return json(res, 200, { headers: req.headers, rawHeaders: req.rawHeaders });
      case sub === '/hop':
        res.writeHead(200, {
          connection: 'close, X-Hop-Secret',
          'x-hop-secret': 'must-not-pass',
          'keep-alive': 'timeout=5',
          'proxy-connection': 'keep-alive',
          'x-end-to-end': 'kept',
          'content-type': 'text/plain',
        });
        return res.end('hop');
      case sub === '/broken': {
        // Chunked (no Content-Length), then the connection dies mid-body: a proxy that ends
        // its own response normally here would hand the client a silently truncated body.
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        res.write(Buffer.alloc(64 * 1024, 'x'));
        setTimeout(() => res.socket?.destroy(), 50);
        return;
      }
      case sub === '/redirect':
        res.writeHead(302, { location: `${self}page2` });
        return res.end();
      case sub.startsWith('/status/'): {
        const code = Number(sub.slice('/status/'.length));
        if (!(code >= 200 && code <= 599)) return json(res, 400, { error: 'bad status' });
        res.writeHead(code, { 'content-type': 'text/plain' });
        return res.end(`status ${code}\n`);
      }
      default:
        res.writeHead(404, { 'content-type': 'text/plain' });
        return res.end(`no page ${escapeHtml(sub)}\n`);
    }
  }

  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * MIB });
  wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    ws.on('error', () => {});
  });
  server.on('upgrade', (req, socket, head) => {
    requests.push({ method: req.method, rawUrl: req.url, headers: req.headers });
    socket.on('error', () => {});
    const path = new URL(req.url, 'http://sample.invalid').pathname;
    if (path !== `${base}ws`) {
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const actualPort = server.address().port;
  port = actualPort;
  const origin = `http://${host.includes(':') ? `[${host}]` : host}:${actualPort}`;
  return {
    url: `${origin}${base}`,
    origin,
    port: actualPort,
    requests,
    uploads,
    async close() {
      for (const t of timers) clearTimeout(t);
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(() => r()));
    },
  };
}
