import { startSampleApp } from '@appproxy/sample-app';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { request as httpRequest } from 'node:http';
import { connect as h2connect } from 'node:http2';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Stack, freePort, json, request } from './harness.js';

type SampleApp = Awaited<ReturnType<typeof startSampleApp>>;
let sample: SampleApp;
let stack: Stack;
let redirectPort: number;
const SAMPLE = 'sample.apps.localhost';

beforeAll(async () => {
  sample = await startSampleApp({ basePath: '/app/' });
  const closedPort = await freePort();
  redirectPort = await freePort();
  stack = await new Stack({
    relayExtra: `  redirectHttp: 127.0.0.1:${redirectPort}\n`,
    apps: [
      {
        name: 'Sample',
        internalUrl: `http://127.0.0.1:${sample.port}/app/`,
        externalUrl: `https://${SAMPLE}/app/`,
        extra: '    backendTimeout: 2s\n',
      },
      {
        name: 'Rooted',
        internalUrl: `http://127.0.0.1:${sample.port}/app/`,
        externalUrl: 'https://rooted.apps.localhost/',
      },
      {
        name: 'Down',
        internalUrl: `http://127.0.0.1:${closedPort}/`,
        externalUrl: 'https://down.apps.localhost/',
      },
      {
        name: 'Closed',
        internalUrl: `http://127.0.0.1:${sample.port}/app/`,
        externalUrl: 'https://maint.apps.localhost/',
        extra: '    maintenanceMode: true\n',
      },
    ],
  }).start();
});

afterAll(async () => {
  await stack?.stop();
  await sample?.close();
});

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

describe('requests through relay and connector', () => {
  it.each(['GET', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'PROPFIND'])(
    '%s round-trips status, headers and body',
    async (method) => {
      const body = method === 'GET' ? undefined : randomBytes(100_000);
      const res = await request(stack, SAMPLE, '/app/echo?q=1', {
        method,
        body,
        // Node's client frames DELETE/OPTIONS bodies only with an explicit Content-Length.
        headers: body
          ? {
              'content-type': 'application/octet-stream',
              'content-length': String(body.length),
              'x-custom': 'yes',
            }
          : { 'x-custom': 'yes' },
      });
      expect(res.status).toBe(method === 'PROPFIND' ? 207 : 200);
      expect(res.headers['x-sample-echo']).toBe('1');
      expect(res.headers['set-cookie']).toHaveLength(3);
      expect(res.headers['x-appproxy-correlation-id']).toMatch(/^[0-9a-f]{32}$/);
      const echo = json(res);
      expect(echo.method).toBe(method);
      expect(echo.url).toBe('/app/echo?q=1');
      expect((echo.headers as Record<string, string>)['x-custom']).toBe('yes');
      expect(echo.bodyLength).toBe(body?.length ?? 0);
      if (body) expect(echo.bodySha256).toBe(sha256(body));
    },
  );

  it('HEAD keeps the headers and sends no body', async () => {
    const res = await request(stack, SAMPLE, '/app/echo', { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.headers['x-sample-echo']).toBe('1');
    expect(res.body.length).toBe(0);
  });

  it('serves HTTP/2 clients (ALPN h2) with repeated Set-Cookie intact', async () => {
    const client = h2connect(`https://127.0.0.1:${stack.ports.public}`, {
      ca: stack.ca,
      servername: SAMPLE,
    });
    try {
      const stream = client.request({ ':path': '/app/echo', ':authority': SAMPLE });
      const [headers] = await once(stream, 'response');
      const chunks: Buffer[] = [];
      for await (const c of stream) chunks.push(c as Buffer);
      expect(headers[':status']).toBe(200);
      expect(headers['set-cookie']).toHaveLength(3);
      expect(JSON.parse(Buffer.concat(chunks).toString()).method).toBe('GET');
    } finally {
      client.close();
    }
  });

  it('maps the external root to the internal prefix', async () => {
    const res = await request(stack, 'rooted.apps.localhost', '/echo');
    expect(res.status).toBe(200);
    expect(json(res).url).toBe('/app/echo');
  });

  it('streams server-sent events event by event', async () => {
    const arrivals: number[] = [];
    const start = Date.now();
    await new Promise<void>((resolve, reject) => {
      const req = tlsRequest('/app/sse?count=4&intervalMs=400', 'text/event-stream');
      req.on('data', (c: Buffer) => {
        for (const _ of c.toString().matchAll(/^data: /gm)) arrivals.push(Date.now() - start);
      });
      req.on('end', resolve);
      req.on('error', reject);
    });
    expect(arrivals).toHaveLength(4);
    // The first event arrives long before the last one: nothing buffered the stream.
    expect(arrivals[3]! - arrivals[0]!).toBeGreaterThan(800);
  });

  it('echoes WebSocket text and binary messages, including 1 MiB', async () => {
    const ws = new WebSocket(`wss://127.0.0.1:${stack.ports.public}/app/ws`, {
      ca: stack.ca,
      servername: SAMPLE,
      headers: { host: SAMPLE },
      maxPayload: 64 * 1024 * 1024,
    });
    await once(ws, 'open');
    const next = () => once(ws, 'message') as Promise<[Buffer, boolean]>;
    let reply = next();
    ws.send('hello through the tunnel');
    let [data, isBinary] = await reply;
    expect(isBinary).toBe(false);
    expect(data.toString()).toBe('hello through the tunnel');
    const big = randomBytes(1024 * 1024);
    reply = next();
    ws.send(big);
    [data, isBinary] = await reply;
    expect(isBinary).toBe(true);
    expect(sha256(data)).toBe(sha256(big));
    const bigText = 'x'.repeat(1024 * 1024);
    reply = next();
    ws.send(bigText);
    [data] = await reply;
    expect(data.toString()).toBe(bigText);
    ws.close();
    await once(ws, 'close');
  });

  it('never lets a request escape the published path', async () => {
    const before = sample.requests.length;
    for (const path of [
      '/app/../admin',
      '/app/%2e%2e/admin',
      '/app/%2F..%2Fadmin',
      '/app/%2e%2e%2fadmin',
      '/app/..%5cadmin',
      '/app/./../admin/',
      '//admin',
    ]) {
      const res = await rawRequest(
        `GET ${path} HTTP/1.1\r\nHost: ${SAMPLE}\r\nAccept: application/json\r\nConnection: close\r\n\r\n`,
      );
      expect(res.status, path).not.toBe(200);
      expect(res.text).not.toContain('ADMIN SECRET');
    }
    const reached = sample.requests.slice(before).map((r: { rawUrl: string }) => r.rawUrl);
    for (const url of reached) expect(url.startsWith('/app/')).toBe(true);
  });

  it('answers an app path without its trailing slash with a redirect, never the root app', async () => {
    const before = sample.requests.length;
    const get = await request(stack, SAMPLE, '/app?tab=2');
    expect([get.status, get.headers.location]).toStrictEqual([301, '/app/?tab=2']);
    const post = await request(stack, SAMPLE, '/app', { method: 'POST', body: 'x=1' });
    expect([post.status, post.headers.location]).toStrictEqual([308, '/app/']);
    expect(sample.requests.length).toBe(before);
    expect((await request(stack, SAMPLE, '/app/echo')).status).toBe(200);
  });

  it('translates a redirect to the internal host in either scheme', async () => {
    for (const scheme of ['http', 'https']) {
      const res = await request(stack, SAMPLE, `/app/redirect?scheme=${scheme}`);
      expect([scheme, res.status, res.headers.location]).toStrictEqual([
        scheme,
        302,
        `https://${SAMPLE}/app/page2`,
      ]);
    }
  });

  it('strips hop-by-hop headers both ways', async () => {
    const res = await request(stack, SAMPLE, '/app/headers', {
      headers: {
        connection: 'keep-alive, x-client-hop',
        'x-client-hop': 'secret',
        'keep-alive': 'timeout=5',
        'x-e2e': 'kept',
      },
    });
    const seen = (json(res).headers ?? {}) as Record<string, string>;
    expect(seen['x-client-hop']).toBeUndefined();
    expect(seen['keep-alive']).toBeUndefined();
    expect(seen['x-e2e']).toBe('kept');
    const hop = await request(stack, SAMPLE, '/app/hop');
    expect(hop.headers['x-hop-secret']).toBeUndefined();
    expect(hop.headers['keep-alive']).toBeUndefined();
    expect(hop.headers['proxy-connection']).toBeUndefined();
    expect(hop.headers['x-end-to-end']).toBe('kept');
  });

  it('sets X-Forwarded-* and replaces client-supplied ones', async () => {
    const res = await request(stack, SAMPLE, '/app/headers', {
      headers: {
        'x-forwarded-for': '6.6.6.6',
        'x-forwarded-host': 'evil.example',
        'x-forwarded-proto': 'http',
        forwarded: 'for=6.6.6.6',
      },
    });
    const seen = json(res).headers as Record<string, string>;
    expect(seen['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen['x-forwarded-host']).toBe(SAMPLE);
    expect(seen['x-forwarded-proto']).toBe('https');
    expect(seen.forwarded).toBeUndefined();
    expect(seen.host).toBe(`127.0.0.1:${sample.port}`);
    for (const name of Object.keys(seen)) expect(name.startsWith('appproxy-')).toBe(false);
  });
});

describe('failures mid-response', () => {
  it('a backend dying mid-body aborts the client response instead of ending it cleanly', async () => {
    const outcome = await new Promise<string>((resolve) => {
      const req = tlsConnect({
        host: '127.0.0.1',
        port: stack.ports.public,
        servername: SAMPLE,
        ca: stack.ca,
        ALPNProtocols: ['http/1.1'],
      });
      let text = '';
      req.on('secureConnect', () =>
        req.write(`GET /app/broken HTTP/1.1\r\nHost: ${SAMPLE}\r\nConnection: close\r\n\r\n`),
      );
      req.on('data', (c: Buffer) => (text += c.toString('latin1')));
      req.on('error', () => {});
      req.on('close', () => resolve(text));
    });
    expect(outcome).toMatch(/^HTTP\/1\.1 200/);
    expect(outcome).toMatch(/transfer-encoding: chunked/i);
    // No terminating zero-length chunk: the client can tell the body is incomplete.
    expect(outcome.endsWith('\r\n0\r\n\r\n')).toBe(false);
    await stack.relay!.waitFor(
      (l) => l.msg === 'response interrupted',
      5000,
      'relay logs the interruption',
    );
  });
});

describe('failures mid-request', () => {
  it('a client dying mid-upload never reaches the backend as a complete body', async () => {
    const id = `abort-${Date.now()}`;
    const socket = tlsConnect({
      host: '127.0.0.1',
      port: stack.ports.public,
      servername: SAMPLE,
      ca: stack.ca,
      ALPNProtocols: ['http/1.1'],
    });
    socket.on('error', () => {});
    await once(socket, 'secureConnect');
    // Chunked: nothing but the terminating chunk says where the body ends.
    socket.write(
      `PUT /app/upload HTTP/1.1\r\nHost: ${SAMPLE}\r\nX-Upload-Id: ${id}\r\nTransfer-Encoding: chunked\r\n\r\n`,
    );
    const chunk = Buffer.alloc(256 * 1024, 'z');
    socket.write(`${chunk.length.toString(16)}\r\n`);
    socket.write(chunk);
    socket.write('\r\n');
    await new Promise((r) => setTimeout(r, 300));
    socket.destroy();
    await new Promise((r) => setTimeout(r, 1000));
    expect(sample.uploads.filter((u: { id: string }) => u.id === id)).toEqual([]);
    // …while a complete chunked upload does arrive (the check above can fail).
    const ok = await request(stack, SAMPLE, '/app/upload', {
      method: 'PUT',
      headers: { 'x-upload-id': `${id}-ok`, 'transfer-encoding': 'chunked' },
      body: chunk,
    });
    expect(ok.status).toBe(200);
    expect(sample.uploads.filter((u: { id: string }) => u.id === `${id}-ok`)).toEqual([
      { id: `${id}-ok`, bytes: chunk.length },
    ]);
  });
});

describe('plain HTTP', () => {
  it('redirects port 80 traffic to the HTTPS listener, keeping host, path and query', async () => {
    const req = httpRequest({
      host: '127.0.0.1',
      port: redirectPort,
      path: '/app/echo?x=1',
      headers: { host: SAMPLE },
    });
    req.end();
    const [res] = (await once(req, 'response')) as [import('node:http').IncomingMessage];
    res.resume();
    expect(res.statusCode).toBe(301);
    expect(res.headers.location).toBe(`https://${SAMPLE}:${stack.ports.public}/app/echo?x=1`);
  });
});

describe('errors people see', () => {
  it('unknown host → 404 APP_NOT_FOUND with correlation id and timestamp (JSON)', async () => {
    const res = await request(stack, 'nowhere.apps.localhost', '/', {
      headers: { accept: 'application/json' },
    });
    expect(res.status).toBe(404);
    const { error } = json(res) as { error: Record<string, string> };
    expect(error.code).toBe('APP_NOT_FOUND');
    expect(error.correlationId).toMatch(/^[0-9a-f]{32}$/);
    expect(new Date(error.timestamp).getTime()).toBeGreaterThan(Date.now() - 60_000);
  });

  it('renders an HTML page by default with code, app and correlation id', async () => {
    const res = await request(stack, 'maint.apps.localhost', '/', {
      headers: { accept: 'text/html' },
    });
    expect(res.status).toBe(503);
    expect(res.headers['content-type']).toContain('text/html');
    const html = res.body.toString();
    expect(html).toContain('MAINTENANCE');
    expect(html).toContain('Closed');
    expect(html).toContain(String(res.headers['x-appproxy-correlation-id']));
  });

  it('backend refusing connections → 502 BACKEND_UNREACHABLE, logged with the same correlation id', async () => {
    const res = await request(stack, 'down.apps.localhost', '/', {
      headers: { accept: 'application/json' },
    });
    expect(res.status).toBe(502);
    const { error } = json(res) as { error: Record<string, string> };
    expect(error.code).toBe('BACKEND_UNREACHABLE');
    expect(error.app).toBe('Down');
    const id = error.correlationId;
    await stack.connector!.waitFor(
      (l) => l.requestId === id && l.code === 'BACKEND_UNREACHABLE',
      5000,
      'connector log',
    );
    await stack.relay!.waitFor((l) => l.requestId === id && l.msg === 'request', 5000, 'relay log');
  });

  it('slow backend → 504 BACKEND_TIMEOUT after the app backend timeout', async () => {
    const started = Date.now();
    const res = await request(stack, SAMPLE, '/app/slow?ms=6000', {
      headers: { accept: 'application/json' },
    });
    expect(res.status).toBe(504);
    expect((json(res) as { error: { code: string } }).error.code).toBe('BACKEND_TIMEOUT');
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
  });

  it('encoded separators → 400 BAD_REQUEST_PATH', async () => {
    const res = await request(stack, SAMPLE, '/app/a%2Fb', {
      headers: { accept: 'application/json' },
    });
    expect(res.status).toBe(400);
    expect((json(res) as { error: { code: string } }).error.code).toBe('BAD_REQUEST_PATH');
  });

  it('the public listener refuses TLS below 1.2', async () => {
    const socket = tlsConnect({
      host: '127.0.0.1',
      port: stack.ports.public,
      servername: SAMPLE,
      ca: stack.ca,
      minVersion: 'TLSv1',
      maxVersion: 'TLSv1.1',
    });
    const [err] = await once(socket, 'error');
    expect(String((err as Error).message)).toMatch(/version|protocol|alert/i);
  });

  it('the tunnel port gives no tunnel to a client without a connector certificate', async () => {
    const socket = tlsConnect({
      host: '127.0.0.1',
      port: stack.ports.tunnel,
      rejectUnauthorized: false,
      ALPNProtocols: ['appproxy-tunnel/1'],
    });
    socket.on('error', () => {});
    await once(socket, 'close');
    await stack.relay!.waitFor(
      (l) => l.msg === 'tunnel refused' && l.code === 'APPPROXY_TUNNEL_UNAUTHORIZED',
      5000,
      'tunnel refused',
    );
  });

  it('relay logs never contain the registration token or cookies', () => {
    const all = JSON.stringify(stack.relay!.lines) + JSON.stringify(stack.connector!.lines);
    expect(all).not.toMatch(/ap1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{20,}/);
    expect(all).not.toContain('sample_session=');
  });
});

function tlsRequest(path: string, accept: string) {
  const socket = tlsConnect({
    host: '127.0.0.1',
    port: stack.ports.public,
    servername: SAMPLE,
    ca: stack.ca,
  });
  socket.write(
    `GET ${path} HTTP/1.1\r\nHost: ${SAMPLE}\r\nAccept: ${accept}\r\nConnection: close\r\n\r\n`,
  );
  return socket;
}

/** Sends bytes as written (no client-side path normalisation) and reads the whole answer. */
async function rawRequest(raw: string): Promise<{ status: number; text: string }> {
  const socket = tlsConnect({
    host: '127.0.0.1',
    port: stack.ports.public,
    servername: SAMPLE,
    ca: stack.ca,
    ALPNProtocols: ['http/1.1'],
  });
  await once(socket, 'secureConnect');
  socket.write(raw);
  const chunks: Buffer[] = [];
  for await (const c of socket) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString();
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), text };
}
