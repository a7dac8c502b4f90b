import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { request as httpRequest } from 'node:http';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { downloadChunks, expectedDownloadSha256, startSampleApp } from './server.mjs';

const MIB = 1024 * 1024;
const sha256 = (/** @type {Buffer | string} */ b) => createHash('sha256').update(b).digest('hex');

/**
 * A real HTTP/1.1 request with node:http (repeated Set-Cookie stays an array).
 * @param {string} url
 * @param {{ method?: string, headers?: Record<string, string>,
 *   body?: Buffer | string | Iterable<Buffer> | AsyncIterable<Buffer> }} [opts]
 * @returns {Promise<{ status: number, headers: import('node:http').IncomingHttpHeaders, body: Buffer }>}
 */
async function req(url, { method = 'GET', headers = {}, body } = {}) {
  // The path goes out verbatim (a URL object would resolve `./` and `../` away).
  const { hostname, port, origin } = new URL(url);
  const path = url.slice(origin.length) || '/';
  const r = httpRequest({ hostname, port, path, method, headers, agent: false });
  const response = once(r, 'response');
  if (body === undefined || typeof body === 'string' || Buffer.isBuffer(body)) r.end(body);
  else {
    for await (const chunk of body) if (!r.write(chunk)) await once(r, 'drain');
    r.end();
  }
  const [res] = /** @type {[import('node:http').IncomingMessage]} */ (await response);
  const chunks = [];
  for await (const c of res) chunks.push(c);
  return { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) };
}
const getJson = async (/** @type {Parameters<typeof req>} */ ...args) => {
  const res = await req(...args);
  return { ...res, json: JSON.parse(res.body.toString()) };
};

describe('base path', () => {
  /** @type {import('./server.mjs').SampleApp} */
  let app;
  beforeAll(async () => {
    app = await startSampleApp({ basePath: 'app' }); // normalised to /app/
  });
  afterAll(() => app.close());

  it('mounts under its base path; /admin stands outside it for traversal tests', async () => {
    expect(app.url).toBe(`http://127.0.0.1:${app.port}/app/`);
    expect(app.origin).toBe(`http://127.0.0.1:${app.port}`);
    const admin = await req(`${app.origin}/admin`);
    expect(admin.status).toBe(200);
    expect(admin.body.toString()).toBe('ADMIN SECRET');
    expect((await req(`${app.origin}/admin/users?x=1`)).body.toString()).toBe('ADMIN SECRET');
    expect((await req(`${app.origin}/app/../admin`)).body.toString()).toBe('ADMIN SECRET');
    const other = await req(`${app.origin}/other`);
    expect(other.status).toBe(404);
    expect(other.body.toString()).toBe('not found');
    expect((await req(`${app.origin}/`)).status).toBe(404);
    expect((await req(`${app.origin}/application/echo`)).status).toBe(404);
    expect((await req(`${app.origin}/app/echo`)).status).toBe(200);
    expect((await req(`${app.origin}/app`)).status).toBe(200); // the home page
    expect((await req(`${app.url}no-such-page`)).status).toBe(404);
  });

  it('records every request with its raw URL, exactly as received', async () => {
    const before = app.requests.length;
    await req(`${app.origin}/app/echo?a=%2F&b=%2e%2e`);
    await req(`${app.origin}/outside//x`);
    await req(`${app.origin}/app/./echo`, { method: 'POST', body: 'x' });
    expect(app.requests.slice(before).map((r) => [r.method, r.rawUrl])).toEqual([
      ['GET', '/app/echo?a=%2F&b=%2e%2e'],
      ['GET', '/outside//x'],
      ['POST', '/app/./echo'],
    ]);
    expect(app.requests.at(-1)?.headers.host).toBe(`127.0.0.1:${app.port}`);
  });

  it('WebSocket upgrades elsewhere than <base>ws are refused with 404', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${app.port}/ws`);
    ws.on('error', () => {});
    const [, res] = await once(ws, 'unexpected-response');
    expect(res.statusCode).toBe(404);
    ws.terminate();
    expect(app.requests.at(-1)?.rawUrl).toBe('/ws');
  });
});

describe('endpoints', () => {
  /** @type {import('./server.mjs').SampleApp} */
  let app;
  /** @type {string} */
  let base;
  beforeAll(async () => {
    app = await startSampleApp({ basePath: '/app/' });
    base = app.url;
  });
  afterAll(() => app.close());

  it('home page: hard-coded internal links from the Host header, and two cookies', async () => {
    const res = await req(base, { headers: { host: 'intranet.contoso.local:8080' } });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    const html = res.body.toString();
    const self = 'http://intranet.contoso.local:8080/app/';
    expect(html).toContain('<title>Contoso Intranet</title>');
    expect(html).toContain(`<a href="${self}page2"`);
    expect(html).toContain(`<img src="${self}logo.png"`);
    expect(html).toContain(`action="${self}form"`);
    expect(html).toContain(`<link rel="stylesheet" href="${self}style.css"`);
    expect(html).toContain('href="http://expenses/"');
    const cookies = res.headers['set-cookie'] ?? [];
    expect(cookies).toHaveLength(2);
    expect(cookies[0]).toMatch(/^sample_session=[0-9a-f]{32}; Path=\/app\/; HttpOnly$/);
    expect(cookies[1]).toBe('sample_pref=dark; Path=/app/');
    const again = await req(base);
    expect(again.headers['set-cookie']?.[0]).not.toBe(cookies[0]);
    expect(again.body.toString()).toContain(`href="${base}page2"`);
  });

  it('page2, style.css (absolute url()) and logo.png', async () => {
    const page2 = await req(`${base}page2`);
    expect(page2.status).toBe(200);
    expect(page2.body.toString()).toContain('<h1>Page 2</h1>');
    const css = await req(`${base}style.css`, { headers: { host: 'intranet:81' } });
    expect(css.headers['content-type']).toMatch(/^text\/css/);
    expect(css.body.toString()).toContain('url(http://intranet:81/app/logo.png)');
    const png = await req(`${base}logo.png`);
    expect(png.headers['content-type']).toBe('image/png');
    expect(png.body.subarray(0, 8)).toEqual(Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]));
    expect(Number(png.headers['content-length'])).toBe(png.body.length);
  });

  it('form: GET shows a urlencoded POST form, POST answers the parsed fields', async () => {
    const form = (await req(`${base}form`)).body.toString();
    expect(form).toMatch(/<form method="post" action="http:\/\/127\.0\.0\.1:\d+\/app\/form"/);
    const res = await getJson(`${base}form`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ name: 'Ada Lovelace', comment: 'a&b=c ✓' }).toString(),
    });
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ fields: { name: 'Ada Lovelace', comment: 'a&b=c ✓' } });
  });

  it('upload streams any size through SHA-256 (64 MiB, chunked, POST and PUT)', async () => {
    const block = randomBytes(MIB);
    const hash = createHash('sha256');
    for (let i = 0; i < 64; i++) hash.update(block);
    async function* body() {
      for (let i = 0; i < 64; i++) yield block;
    }
    const big = await getJson(`${base}upload`, {
      method: 'POST',
      headers: { 'x-upload-id': 'big' },
      body: body(),
    });
    expect(big.json).toEqual({ bytes: 64 * MIB, sha256: hash.digest('hex') });
    const small = Buffer.from('hello');
    const put = await getJson(`${base}upload`, { method: 'PUT', body: small });
    expect(put.json).toEqual({ bytes: 5, sha256: sha256(small) });
    expect(app.uploads.find((u) => u.id === 'big')).toEqual({ id: 'big', bytes: 64 * MIB });
    expect((await req(`${base}upload`)).status).toBe(405);
  });

  it('an upload cut off mid-body is never recorded as complete', async () => {
    const r = httpRequest(`${base}upload`, {
      method: 'PUT',
      headers: { 'x-upload-id': 'cut', 'content-length': String(MIB) },
      agent: false,
    });
    r.on('error', () => {});
    r.write(Buffer.alloc(1000));
    await new Promise((resolve) => setTimeout(resolve, 100));
    r.destroy();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(app.uploads.filter((u) => u.id === 'cut')).toEqual([]);
  });

  it('download: N MiB of deterministic bytes with Content-Length, matching expectedDownloadSha256', async () => {
    const r = httpRequest(`${base}download?mib=20`, { agent: false }).end();
    const [res] = /** @type {[import('node:http').IncomingMessage]} */ (await once(r, 'response'));
    expect(res.headers['content-length']).toBe(String(20 * MIB));
    expect(res.headers['content-type']).toBe('application/octet-stream');
    const hash = createHash('sha256');
    let bytes = 0;
    for await (const c of res) {
      hash.update(c);
      bytes += c.length;
    }
    expect(bytes).toBe(20 * MIB);
    expect(hash.digest('hex')).toBe(expectedDownloadSha256(20));

    // The helpers agree with each other, whichever order they are asked in.
    const h = createHash('sha256');
    for await (const c of downloadChunks(3)) h.update(c);
    expect(expectedDownloadSha256(3)).toBe(h.digest('hex'));
    expect(expectedDownloadSha256(0)).toBe(sha256(''));
    expect(new Set([1, 2, 3].map(expectedDownloadSha256)).size).toBe(3);
    const one = Buffer.concat([...downloadChunks(1)]);
    expect(one.length).toBe(MIB);
    expect(new Set(one.subarray(0, 4096)).size).toBeGreaterThan(200); // not a constant fill

    // Default 1 MiB; the cached SHA-256 is advertised; HEAD has the length but no body.
    const dflt = await req(`${base}download`);
    expect(dflt.body.length).toBe(MIB);
    expect(dflt.headers['x-download-sha256']).toBe(expectedDownloadSha256(1));
    const head = await req(`${base}download?mib=4096`, { method: 'HEAD' });
    expect(head.headers['content-length']).toBe(String(4096 * MIB));
    expect(head.body.length).toBe(0);
    expect((await req(`${base}download?mib=0`)).body.length).toBe(0);
    for (const bad of ['4097', '-1', '1.5', 'x']) {
      expect((await req(`${base}download?mib=${bad}`)).status, bad).toBe(400);
    }
  });

  it('download: a client that stalls then resumes still gets every byte', async () => {
    // Backpressure is by construction (stream.pipeline from a lazy generator); here: a stalled
    // client does not stall the server, and the download resumes intact.
    const r = httpRequest(`${base}download?mib=64`, { agent: false }).end();
    const [res] = /** @type {[import('node:http').IncomingMessage]} */ (await once(r, 'response'));
    res.pause();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await req(`${base}echo`)).status).toBe(200);
    const hash = createHash('sha256');
    for await (const c of res) hash.update(c);
    expect(hash.digest('hex')).toBe(expectedDownloadSha256(64));
  });

  it('slow: answers after ms; a client that leaves does not break the server', async () => {
    const started = Date.now();
    const res = await req(`${base}slow?ms=300`);
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('slow done');
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);

    const r = httpRequest(`${base}slow?ms=60000`, { agent: false }).end();
    r.on('error', () => {});
    await new Promise((resolve) => setTimeout(resolve, 50));
    r.destroy();
    expect((await req(`${base}slow?ms=0`)).body.toString()).toBe('slow done');
    const posted = await req(`${base}slow?ms=10`, { method: 'POST', body: 'x'.repeat(1000) });
    expect(posted.body.toString()).toBe('slow done (1000 bytes)');
    expect((await req(`${base}slow`, { method: 'DELETE' })).status).toBe(405);
  });

  it('sse: events arrive one by one, spread in time', async () => {
    const started = Date.now();
    const r = httpRequest(`${base}sse?count=4&intervalMs=250`, { agent: false }).end();
    const [res] = /** @type {[import('node:http').IncomingMessage]} */ (await once(r, 'response'));
    const headersAt = Date.now() - started;
    expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(res.headers['cache-control']).toBe('no-cache');
    /** @type {number[]} */
    const arrivals = [];
    let text = '';
    for await (const c of res) {
      const s = c.toString();
      for (const _ of s.matchAll(/^data: /gm)) arrivals.push(Date.now() - started);
      text += s;
    }
    const events = text
      .trim()
      .split('\n\n')
      .map((e) => e.split('\n'));
    expect(events.map((e) => e[0])).toEqual(['id: 0', 'id: 1', 'id: 2', 'id: 3']);
    const data = events.map((e) => JSON.parse(e[1].slice('data: '.length)));
    expect(data.map((d) => d.i)).toEqual([0, 1, 2, 3]);
    expect(typeof data[0].t).toBe('number');
    expect(headersAt).toBeLessThan(200);
    expect(arrivals).toHaveLength(4);
    // The first event is received long before the stream ends.
    expect(arrivals[3] - arrivals[0]).toBeGreaterThanOrEqual(600);
    expect(arrivals[0]).toBeLessThan(200);
  });

  it('ws: echoes text as text and binary as binary, 1 MiB included', async () => {
    const ws = new WebSocket(`${base.replace('http:', 'ws:')}ws`);
    await once(ws, 'open');
    /** @type {Array<{ data: Buffer, isBinary: boolean }>} */
    const got = [];
    ws.on('message', (data, isBinary) =>
      got.push({ data: /** @type {Buffer} */ (data), isBinary }),
    );
    const big = randomBytes(MIB);
    ws.send('hello ✓');
    ws.send(big);
    ws.send('x'.repeat(MIB));
    while (got.length < 3) await once(ws, 'message');
    expect(got[0]).toEqual({ data: Buffer.from('hello ✓'), isBinary: false });
    expect(got[1].isBinary).toBe(true);
    expect(sha256(got[1].data)).toBe(sha256(big));
    expect(got[2].isBinary).toBe(false);
    expect(got[2].data.length).toBe(MIB);
    ws.close();
    await once(ws, 'close');
    expect(app.requests.some((r) => r.rawUrl === '/app/ws')).toBe(true);
  });

  it.each(['GET', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'PROPFIND'])(
    'echo %s: method, url, headers, body hash, three Set-Cookie headers',
    async (method) => {
      const body = method === 'GET' ? undefined : randomBytes(100_000);
      const res = await getJson(`${base}echo?q=1&r=%2F`, {
        method,
        headers: {
          'x-custom': 'yes',
          ...(body ? { 'content-length': String(body.length) } : {}),
        },
        body,
      });
      expect(res.status).toBe(method === 'PROPFIND' ? 207 : 200);
      expect(res.headers['x-sample-echo']).toBe('1');
      expect(res.headers['set-cookie']).toEqual([
        'a=1; Path=/',
        'b=2; Path=/',
        'c=3; Path=/; HttpOnly',
      ]);
      if (method === 'OPTIONS') {
        expect(res.headers.allow).toBe('GET, HEAD, POST, PUT, DELETE, OPTIONS, PROPFIND');
      }
      expect(res.json.method).toBe(method);
      expect(res.json.url).toBe('/app/echo?q=1&r=%2F');
      expect(res.json.headers['x-custom']).toBe('yes');
      expect(res.json.bodyLength).toBe(body?.length ?? 0);
      expect(res.json.bodySha256).toBe(sha256(body ?? ''));
    },
  );

  it('echo HEAD: same headers, no body', async () => {
    const res = await req(`${base}echo`, { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.headers['x-sample-echo']).toBe('1');
    expect(res.headers['set-cookie']).toHaveLength(3);
    expect(Number(res.headers['content-length'])).toBeGreaterThan(0);
    expect(res.body.length).toBe(0);
  });

  it('headers: request headers parsed and raw', async () => {
    const res = await getJson(`${base}headers`, { headers: { 'X-Mixed-Case': 'v' } });
    expect(res.json.headers['x-mixed-case']).toBe('v');
    expect(res.json.rawHeaders).toContain('X-Mixed-Case');
  });

  it('hop: carries hop-by-hop headers for the proxy to strip', async () => {
    const res = await req(`${base}hop`);
    expect(res.headers.connection).toBe('close, X-Hop-Secret');
    expect(res.headers['x-hop-secret']).toBe('must-not-pass');
    expect(res.headers['keep-alive']).toBe('timeout=5');
    expect(res.headers['proxy-connection']).toBe('keep-alive');
    expect(res.headers['x-end-to-end']).toBe('kept');
  });

  it('redirect: 302 to an absolute internal URL', async () => {
    const res = await req(`${base}redirect`, { headers: { host: 'intranet:8080' } });
    expect(res.status).toBe(302);
    expect(res.headers.location).toBe('http://intranet:8080/app/page2');
  });

  it('status/<code>: answers that code', async () => {
    for (const code of [200, 201, 404, 418, 500, 503]) {
      const res = await req(`${base}status/${code}`);
      expect(res.status).toBe(code);
      expect(res.body.toString()).toBe(`status ${code}\n`);
    }
    expect((await req(`${base}status/204`)).status).toBe(204);
    expect((await req(`${base}status/99`)).status).toBe(400);
    expect((await req(`${base}status/abc`)).status).toBe(400);
  });

  it('broken: the connection dies mid-body (chunked, no terminating chunk)', async () => {
    const r = httpRequest(`${base}broken`, { agent: false }).end();
    const [res] = /** @type {[import('node:http').IncomingMessage]} */ (await once(r, 'response'));
    expect(res.headers['transfer-encoding']).toBe('chunked');
    await expect(
      (async () => {
        for await (const _ of res);
      })(),
    ).rejects.toThrow();
  });
});

describe('close()', () => {
  it('ends open SSE streams, slow requests and WebSockets at once', async () => {
    const app = await startSampleApp();
    expect(app.url).toBe(`http://127.0.0.1:${app.port}/`);
    const ws = new WebSocket(`ws://127.0.0.1:${app.port}/ws`);
    await once(ws, 'open');
    const sse = httpRequest(`${app.url}sse?count=1000&intervalMs=1000`, { agent: false }).end();
    const [sseRes] = await once(sse, 'response');
    sseRes.on('error', () => {});
    const slow = httpRequest(`${app.url}slow?ms=60000`, { agent: false }).end();
    slow.on('error', () => {});
    await new Promise((resolve) => setTimeout(resolve, 50));
    const started = Date.now();
    const closed = (/** @type {import('node:events').EventEmitter} */ e) =>
      new Promise((resolve) => e.once('close', resolve));
    await Promise.all([app.close(), closed(ws), closed(sseRes), closed(slow)]);
    expect(Date.now() - started).toBeLessThan(1000);
    await app.close(); // idempotent
  });
});

describe('cli', () => {
  it('prints one JSON line with the url, serves, and exits 0 on SIGTERM', async () => {
    const cli = fileURLToPath(new URL('./cli.mjs', import.meta.url));
    const child = spawn(process.execPath, [cli, '--port', '0', '--base', '/intranet'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (c) => (stderr += c));
    const [line] = await new Promise((resolve, reject) => {
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (c) => {
        out += c;
        if (out.includes('\n')) resolve(out.split('\n'));
      });
      child.once('exit', (code) => reject(new Error(`exited ${code}: ${stderr}`)));
    });
    const { url } = JSON.parse(line);
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/intranet\/$/);
    expect((await getJson(`${url}echo`)).json.url).toBe('/intranet/echo');
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const [code] = await exited;
    expect(code).toBe(0);
    expect(stderr).toContain('GET /intranet/echo');
  });
});
