import { once } from 'node:events';
import { createServer, request } from 'node:http';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTranslatingProxy, VISITOR_COOKIE } from './proxy.mjs';

const PNG = Buffer.from('89504e470d0a1a0a0000000d4948445200000001000000010806000000', 'hex');
let backend;
let proxy;
let internal; // http://127.0.0.1:<port>
let external; // http://localhost:<port>
const seen = [];

// A legacy intranet app at http://127.0.0.1:<port>/app/ that knows only its internal URL.
function backendHandler(req, res) {
  seen.push({ url: req.url, headers: req.headers });
  const gzip = /\bgzip\b/.test(req.headers['accept-encoding'] ?? '');
  const br = /\bbr\b/.test(req.headers['accept-encoding'] ?? '');
  switch (req.url) {
    case '/app/': {
      const page = `<!doctype html><html><head><link rel="stylesheet" href="/app/style.css"></head><body>
<!-- internal: ${internal}/app/ -->
<a id="reports" href="${internal}/app/reports?year=2024">Reports</a>
<a id="travel" href="http://travel.corp.local/book">Travel</a>
<a id="feedback" href="http://feedback.corp.local/">Feedback</a>
<form action="${internal}/app/submit"><img src="/app/logo.png" srcset="${internal}/app/logo.png 2x"></form>
</body></html>`;
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        etag: '"v1"',
        'set-cookie': ['sid=abc; Domain=127.0.0.1; Path=/app/; HttpOnly', 'theme=dark; Path=/'],
        ...(gzip && { 'content-encoding': 'gzip' }),
        vary: 'Accept-Encoding',
      });
      res.end(gzip ? zlib.gzipSync(page) : page);
      return;
    }
    case '/app/style.css': {
      const css = `body { background: url(${internal}/app/logo.png) } /* ${internal} */`;
      res.writeHead(200, { 'content-type': 'text/css', ...(br && { 'content-encoding': 'br' }) });
      res.end(br ? zlib.brotliCompressSync(css) : css);
      return;
    }
    case '/app/logo.png':
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': PNG.length });
      res.end(PNG);
      return;
    case '/app/login':
      res.writeHead(302, { location: `${internal}/app/home`, 'set-cookie': 'auth=1; Path=/app' });
      res.end();
      return;
    case '/app/relative-redirect':
      res.writeHead(302, { location: '/app/home' });
      res.end();
      return;
    case '/app/echo':
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ url: req.url, headers: req.headers }));
      return;
    default:
      res.writeHead(404).end('not found');
  }
}

function get(path, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: proxy.address().port,
        path,
        headers: { host: new URL(external).host, ...headers },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  backend = createServer(backendHandler).listen(0, '127.0.0.1');
  proxy = createServer().listen(0, '127.0.0.1');
  await Promise.all([once(backend, 'listening'), once(proxy, 'listening')]);
  internal = `http://127.0.0.1:${backend.address().port}`;
  external = `http://localhost:${proxy.address().port}`;
  // Published under another host (localhost), port and path (/expenses/ instead of /app/).
  proxy.on(
    'request',
    createTranslatingProxy({
      apps: [
        { name: 'Expenses', internalUrl: `${internal}/app/`, externalUrl: `${external}/expenses/` },
        {
          name: 'Travel',
          internalUrl: 'http://travel.corp.local/',
          externalUrl: 'https://travel.example.com/',
        },
      ],
      app: 'Expenses',
      cookies: { secure: false, sameSite: 'Lax' },
    }),
  );
});

afterAll(async () => {
  for (const server of [proxy, backend]) {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});

describe('http-proxy with @appproxy/translate and @appproxy/cookies', () => {
  it('translates page links (gzip in, gzip out) and leaves unpublished ones', async () => {
    const res = await get('/expenses/', { 'accept-encoding': 'gzip' });
    expect(res.status).toBe(200);
    expect(res.headers['content-encoding']).toBe('gzip');
    expect(res.headers['content-length']).toBeUndefined();
    expect(res.headers['transfer-encoding']).toBe('chunked');
    expect(res.headers.etag).toBe('W/"v1"');
    const html = zlib.gunzipSync(res.body).toString();
    expect(html).toContain(`<a id="reports" href="${external}/expenses/reports?year=2024">`);
    expect(html).toContain('<a id="travel" href="https://travel.example.com/book">');
    expect(html).toContain('<a id="feedback" href="http://feedback.corp.local/">');
    expect(html).toContain(`<link rel="stylesheet" href="/expenses/style.css">`);
    expect(html).toContain(
      `<form action="${external}/expenses/submit"><img src="/expenses/logo.png" srcset="${external}/expenses/logo.png 2x">`,
    );
    expect(html).toContain(`<!-- internal: ${internal}/app/ -->`);
  });

  it('rewrites the app’s cookies to the external host and path, and adds its own', async () => {
    const res = await get('/expenses/');
    const cookies = res.headers['set-cookie'];
    expect(cookies[0]).toBe('sid=abc; Domain=localhost; Path=/expenses/; HttpOnly; SameSite=Lax');
    expect(cookies[1]).toBe('theme=dark; Path=/expenses; SameSite=Lax');
    expect(cookies[2]).toMatch(
      new RegExp(`^${VISITOR_COOKIE}=[\\w-]+; Path=/expenses/; HttpOnly; SameSite=Lax$`),
    );
  });

  it('translates redirects, absolute and root-relative', async () => {
    const abs = await get('/expenses/login');
    expect(abs.status).toBe(302);
    expect(abs.headers.location).toBe(`${external}/expenses/home`);
    expect(abs.headers['set-cookie']).toContain('auth=1; Path=/expenses; SameSite=Lax');
    const rel = await get('/expenses/relative-redirect');
    expect(rel.headers.location).toBe('/expenses/home');
  });

  it('sends the backend its internal Host, Origin and Referer, without the proxy’s cookie', async () => {
    const res = await get('/expenses/echo', {
      cookie: `${VISITOR_COOKIE}=v; theme=dark`,
      referer: `${external}/expenses/page?x=1`,
      origin: external,
    });
    const echo = JSON.parse(res.body.toString());
    expect(echo.url).toBe('/app/echo');
    expect(echo.headers.host).toBe(new URL(internal).host);
    expect(echo.headers.cookie).toBe('theme=dark');
    expect(echo.headers.referer).toBe(`${internal}/app/page?x=1`);
    expect(echo.headers.origin).toBe(internal);
    expect(res.headers['set-cookie']).toBeUndefined();
  });

  it('translates CSS (br in, br out) and passes images through untouched with their length', async () => {
    const css = await get('/expenses/style.css', { 'accept-encoding': 'br' });
    expect(css.headers['content-encoding']).toBe('br');
    expect(zlib.brotliDecompressSync(css.body).toString()).toBe(
      `body { background: url(${external}/expenses/logo.png) } /* ${internal} */`,
    );
    const png = await get('/expenses/logo.png');
    expect(png.headers['content-length']).toBe(String(PNG.length));
    expect(png.body.equals(PNG)).toBe(true);
  });

  it('answers 404 outside the app’s external path', async () => {
    expect((await get('/app/')).status).toBe(404);
    expect(seen.some((r) => r.url === '/app/app/')).toBe(false);
  });
});
