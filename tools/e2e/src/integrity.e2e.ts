import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { request as httpsRequest } from 'node:https';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { connect as h2connect, constants, type ClientHttp2Session } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { Stack } from './harness.js';
import { IncompleteResponseError, RawHttp1Connection } from './raw-http1.js';
import {
  htmlOf,
  logUniform,
  random,
  randomBytesOf,
  writeRandomly,
  type Random,
} from './random-streams.js';

/**
 * Byte integrity through the real relay and connector: bodies streamed in random chunk sizes
 * (1 byte to 64 KiB) with random pauses, from fixed seeds, every one compared byte for byte.
 * Responses: chunked and Content-Length, gzip and identity, HTML (with links to translate)
 * and binary, passthrough and translated apps, over HTTP/1.1 (fresh connections, and
 * keep-alive read by a strict client that sees a stray byte), and HTTP/2. Request bodies and
 * full-duplex echoes the same way; WebSocket messages of random sizes. A response the relay
 * cannot complete must reach the client broken, never ended cleanly.
 *
 * Regression for "HTTP/1.1 responses cut short with a clean end": on Node 24 a corked
 * chunked ServerResponse that was ended sent its terminating chunk before the corked data.
 */

const PLAIN = 'plain.apps.localhost';
const TRANSLATED = 'translated.apps.localhost';

type App = 'plain' | 'translated';
type Client = 'h1' | 'h1-keepalive' | 'h2';
type Framing = 'chunked' | 'length';
type Coding = 'identity' | 'gzip';
type Kind = 'html' | 'bin';

interface Download {
  id: string;
  seed: number;
  size: number;
  app: App;
  client: Client;
  framing: Framing;
  coding: Coding;
  kind: Kind;
  /** The backend breaks its response off halfway. */
  truncate: boolean;
}

let origin: Server;
let originPort = 0;
let stack: Stack;
/** Truncation cases: resolved when the client saw the first body bytes (then the backend breaks off). */
const firstBytes = new Map<string, () => void>();
/** What the backend saw of each upload: its length and hash, or that it broke off. */
const uploads = new Map<string, { length: number; sha256: string } | 'aborted'>();
/** Upload bytes the backend has read so far, by case. */
const uploadProgress = new Map<string, number>();
/** Correlation id → body bytes the client received, for the relay's `bytesOut`. */
const received = new Map<string, { bytes: number; complete: boolean }>();

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const internalBase = (app: App) => `http://127.0.0.1:${originPort}/${app}/`;
const hostOf = (app: App) => (app === 'plain' ? PLAIN : TRANSLATED);
const externalBase = (app: App) => `https://${hostOf(app)}:${stack.ports.public}/`;

/** The body the backend sends, before content coding. */
function bodyOf(d: Pick<Download, 'seed' | 'size' | 'kind' | 'app'>): Buffer {
  return d.kind === 'html'
    ? htmlOf(d.seed, d.size, internalBase(d.app))
    : randomBytesOf(d.seed, d.size);
}

/** What the client must read after content decoding: links translated for the translated app. */
function expectedOf(d: Download): Buffer {
  const body = bodyOf(d);
  if (d.app !== 'translated' || d.kind !== 'html') return body;
  return Buffer.from(
    body.toString('latin1').replaceAll(internalBase(d.app), externalBase(d.app)),
    'latin1',
  );
}

function query(d: Download): string {
  const q = new URLSearchParams({
    id: d.id,
    seed: String(d.seed),
    size: String(d.size),
    kind: d.kind,
    coding: d.coding,
    framing: d.framing,
    truncate: d.truncate ? '1' : '0',
  });
  return `/dl?${q}`;
}

// ---- the backend ---------------------------------------------------------------------------

async function serveDownload(req: IncomingMessage, res: ServerResponse, app: App, url: URL) {
  const p = url.searchParams;
  const d = {
    seed: Number(p.get('seed')),
    size: Number(p.get('size')),
    kind: p.get('kind') as Kind,
    app,
  };
  const id = p.get('id')!;
  let body = bodyOf(d);
  const headers: Record<string, string | number> = {
    'content-type': d.kind === 'html' ? 'text/html; charset=utf-8' : 'application/octet-stream',
  };
  if (p.get('coding') === 'gzip') {
    body = gzipSync(body);
    headers['content-encoding'] = 'gzip';
  }
  if (p.get('framing') === 'length') headers['content-length'] = body.length;
  res.writeHead(200, headers);
  const rand = random(d.seed ^ 0x5eed);
  if (p.get('truncate') !== '1') {
    await writeRandomly(res, body, rand);
    res.end();
    return;
  }
  // Half the body, then wait until the client has bytes (so its response has begun), then
  // break the connection: the relay must pass the break on, never end the response.
  const seen = new Promise<void>((resolve) => firstBytes.set(id, resolve));
  await writeRandomly(res, body, rand, { stopAt: Math.max(1, body.length >> 1) });
  await seen;
  req.socket.destroy();
}

async function serveUpload(req: IncomingMessage, res: ServerResponse, url: URL) {
  const id = url.searchParams.get('id')!;
  const rand = random(Number(url.searchParams.get('seed')) ^ 0xbac);
  const hash = createHash('sha256');
  let length = 0;
  let complete = false;
  req.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    length += chunk.length;
    uploadProgress.set(id, length);
    // A slow reader now and then: backpressure all the way to the client.
    if (rand() < 0.2) {
      req.pause();
      setTimeout(() => req.resume(), Math.floor(rand() * 3));
    }
  });
  req.on('end', () => {
    complete = true;
    const result = { length, sha256: hash.digest('hex') };
    uploads.set(id, result);
    const json = JSON.stringify(result);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': json.length });
    res.end(json);
  });
  req.on('close', () => {
    if (!complete) uploads.set(id, 'aborted');
  });
}

function serveEcho(req: IncomingMessage, res: ServerResponse) {
  res.writeHead(200, { 'content-type': 'application/octet-stream' });
  req.pipe(res);
}

beforeAll(async () => {
  origin = createHttpServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://origin');
    const [, app, route] = url.pathname.split('/') as [string, App, string];
    req.on('error', () => {});
    res.on('error', () => {});
    if (route === 'dl') void serveDownload(req, res, app, url);
    else if (route === 'up') void serveUpload(req, res, url);
    else if (route === 'echo') serveEcho(req, res);
    else res.writeHead(404).end();
  });
  const wss = new WebSocketServer({ noServer: true, maxPayload: 16 * 1024 * 1024 });
  origin.on('upgrade', (req, socket, head) => {
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('message', (data: Buffer, isBinary) => ws.send(data, { binary: isBinary }));
    });
  });
  origin.keepAliveTimeout = 60_000;
  origin.listen(0, '127.0.0.1');
  await once(origin, 'listening');
  originPort = (origin.address() as AddressInfo).port;
  stack = await new Stack({
    apps: [
      {
        name: 'Plain',
        internalUrl: `http://127.0.0.1:${originPort}/plain/`,
        externalUrl: `https://${PLAIN}:{port}/`,
      },
      {
        name: 'Translated',
        internalUrl: `http://127.0.0.1:${originPort}/translated/`,
        externalUrl: `https://${TRANSLATED}:{port}/`,
        extra: '    translateBody: true\n',
      },
    ],
  }).start();
});

afterAll(async () => {
  await stack?.stop();
  origin?.closeAllConnections();
  origin?.close();
});

// ---- clients -------------------------------------------------------------------------------

interface Got {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** The response ended as the protocol says a whole response ends. */
  complete: boolean;
  /** HTTP/2: the RST_STREAM code (0 when none). */
  rstCode?: number;
}

const header = (h: Got['headers'], name: string) => {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
};

function h1Fresh(
  app: App,
  method: string,
  path: string,
  opts: { id?: string; upload?: Upload } = {},
) {
  return new Promise<Got>((resolve, reject) => {
    const headers: Record<string, string> = { host: `${hostOf(app)}:${stack.ports.public}` };
    if (opts.upload?.framing === 'length')
      headers['content-length'] = String(opts.upload.body.length);
    const req = httpsRequest({
      host: '127.0.0.1',
      port: stack.ports.public,
      servername: hostOf(app),
      ca: stack.ca,
      method,
      path,
      headers,
      agent: false,
    });
    req.on('error', reject);
    req.on('response', (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => {
        if (chunks.length === 0 && opts.id) firstBytes.get(opts.id)?.();
        chunks.push(c);
      });
      const done = () =>
        resolve({
          status: res.statusCode!,
          headers: res.headers,
          body: Buffer.concat(chunks),
          complete: res.complete,
        });
      res.on('end', done);
      res.on('aborted', done);
      res.on('error', done);
      res.on('close', done);
    });
    if (opts.upload)
      void writeRandomly(req, opts.upload.body, opts.upload.rand).then(() => req.end());
    else req.end();
  });
}

async function h2Request(
  session: ClientHttp2Session,
  app: App,
  method: string,
  path: string,
  opts: { id?: string; upload?: Upload } = {},
): Promise<Got> {
  const headers: Record<string, string | number> = {
    ':method': method,
    ':path': path,
    ':authority': `${hostOf(app)}:${stack.ports.public}`,
  };
  if (opts.upload?.framing === 'length') headers['content-length'] = opts.upload.body.length;
  const stream = session.request(headers, { endStream: !opts.upload });
  stream.on('error', () => {});
  if (opts.upload)
    void writeRandomly(stream, opts.upload.body, opts.upload.rand).then(() => stream.end());
  // Every listener before the first await: a response without a body can have its
  // headers, its end and its close emitted in one tick (process.nextTick runs before the
  // await continues), and a listener added after that waits forever. A stream reset before
  // its response is a result too (status 0, incomplete).
  let resHeaders: Record<string, string> = { ':status': '0' };
  const chunks: Buffer[] = [];
  let ended = false;
  stream.once('response', (h: Record<string, string>) => (resHeaders = h));
  stream.on('data', (c: Buffer) => {
    if (chunks.length === 0 && opts.id) firstBytes.get(opts.id)?.();
    chunks.push(c);
  });
  stream.on('end', () => (ended = true));
  // Not events.once: it rejects on the 'error' that comes with a reset.
  await new Promise<void>((resolve) => stream.once('close', () => resolve()));
  return {
    status: Number(resHeaders[':status']),
    headers: resHeaders,
    body: Buffer.concat(chunks),
    complete: ended && stream.rstCode === constants.NGHTTP2_NO_ERROR,
    rstCode: stream.rstCode,
  };
}

async function rawRequest(
  conn: RawHttp1Connection,
  app: App,
  method: string,
  path: string,
  upload?: Upload,
) {
  const headers: Record<string, string> = { host: `${hostOf(app)}:${stack.ports.public}` };
  if (upload) {
    if (upload.framing === 'length') headers['content-length'] = String(upload.body.length);
    else headers['transfer-encoding'] = 'chunked';
  }
  conn.sendHead(method, path, headers);
  const responding = conn.readResponse(method);
  if (upload) {
    const socket = conn.socket;
    const frame =
      upload.framing === 'chunked'
        ? (chunk: Buffer) => {
            socket.write(`${chunk.length.toString(16)}\r\n`);
            socket.write(chunk);
            return socket.write('\r\n');
          }
        : undefined;
    await writeRandomly(socket, upload.body, upload.rand, frame ? { writeChunk: frame } : {});
    if (upload.framing === 'chunked') socket.write('0\r\n\r\n');
  }
  const res = await responding;
  return {
    status: res.status,
    headers: res.headers as Got['headers'],
    body: res.body,
    complete: true,
  } satisfies Got;
}

interface Upload {
  body: Buffer;
  framing: Framing;
  rand: Random;
}

function connectH2(app: App): ClientHttp2Session {
  const session = h2connect(`https://127.0.0.1:${stack.ports.public}`, {
    ca: stack.ca,
    servername: hostOf(app),
  });
  session.on('error', () => {});
  return session;
}

/**
 * Fails naming `what` when `p` has not settled after `ms`: a hung case says which it is
 * (the suite's own timeout would only say that the test took too long).
 */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no end after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `tasks` with at most `limit` at once. */
async function pool<T>(items: T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await task(items[next++]!);
    }),
  );
}

/** Body size for a seed: some empty and tiny, most up to 256 KiB, a few up to 1 MiB. */
function sizeOf(seed: number): number {
  const rand = random(seed ^ 0x512e);
  const r = rand();
  if (r < 0.05) return 0;
  if (r < 0.2) return logUniform(rand, 64);
  if (r < 0.93) return logUniform(rand, 256 * 1024);
  return logUniform(rand, 1024 * 1024);
}

function downloads(): Download[] {
  const out: Download[] = [];
  let seed = 1;
  for (const client of ['h1', 'h1-keepalive', 'h2'] as const)
    for (const app of ['plain', 'translated'] as const)
      for (const framing of ['chunked', 'length'] as const)
        for (const coding of ['identity', 'gzip'] as const)
          for (const kind of ['html', 'bin'] as const)
            for (let i = 0; i < 4; i++, seed++)
              out.push({
                id: `d${seed}`,
                seed,
                size: sizeOf(seed),
                app,
                client,
                framing,
                coding,
                kind,
                truncate: false,
              });
  return out;
}

/** One download at most this long: all of them take about 2 s together. */
const CASE_MS = 30_000;

const describeCase = (d: Download) =>
  `${d.id} ${d.client} ${d.app} ${d.framing} ${d.coding} ${d.kind} ${d.size} B`;

function check(d: Download, got: Got): void {
  const what = describeCase(d);
  expect(got.status, what).toBe(200);
  expect(got.complete, `${what}: complete`).toBe(true);
  const encoding = header(got.headers, 'content-encoding');
  expect(encoding, what).toBe(d.coding === 'gzip' ? 'gzip' : undefined);
  let body = got.body;
  try {
    if (encoding === 'gzip') body = gunzipSync(got.body);
  } catch (err) {
    throw new Error(`${what}: ${(err as Error).message} (${got.body.length} bytes)`);
  }
  const expected = expectedOf(d);
  expect({ length: body.length, sha256: sha256(body) }, what).toEqual({
    length: expected.length,
    sha256: sha256(expected),
  });
  const lengthHeader = header(got.headers, 'content-length');
  if (lengthHeader !== undefined) expect(Number(lengthHeader), what).toBe(got.body.length);
  const correlation = header(got.headers, 'x-appproxy-correlation-id');
  expect(correlation, what).toBeDefined();
  received.set(correlation!, { bytes: got.body.length, complete: true });
}

describe('byte integrity through relay and connector', () => {
  it('downloads: random chunks and pauses, chunked and Content-Length, gzip and identity, HTTP/1.1 (fresh, keep-alive) and HTTP/2, passthrough and translated', async () => {
    const all = downloads();
    expect(all.length).toBeGreaterThanOrEqual(190);
    const by = (c: Client) => all.filter((d) => d.client === c);

    const fresh = pool(by('h1'), 8, async (d) =>
      check(d, await within(h1Fresh(d.app, 'GET', query(d)), CASE_MS, describeCase(d))),
    );

    // Keep-alive: four connections, each taking its share in turn on one socket.
    const keepAlive = by('h1-keepalive');
    const lanes = [0, 1, 2, 3].map((lane) => keepAlive.filter((_, i) => i % 4 === lane));
    const kept = Promise.all(
      lanes.map(async (lane) => {
        const conns = new Map<App, RawHttp1Connection>();
        try {
          for (const d of lane) {
            let conn = conns.get(d.app);
            if (!conn) {
              conn = await RawHttp1Connection.open(stack.ports.public, hostOf(d.app), stack.ca);
              conns.set(d.app, conn);
            }
            expect(conn.pending, `${d.id}: bytes left over before the request`).toBe(0);
            const got = rawRequest(conn, d.app, 'GET', query(d));
            check(d, await within(got, CASE_MS, describeCase(d)));
          }
          // Nothing may trail the last response either.
          await new Promise((r) => setTimeout(r, 50));
          for (const conn of conns.values()) expect(conn.pending).toBe(0);
        } finally {
          for (const conn of conns.values()) conn.close();
        }
      }),
    );

    const sessions = new Map<App, ClientHttp2Session>();
    const h2 = pool(by('h2'), 16, async (d) => {
      let session = sessions.get(d.app);
      if (!session) {
        session = connectH2(d.app);
        sessions.set(d.app, session);
      }
      const got = h2Request(session, d.app, 'GET', query(d));
      check(d, await within(got, CASE_MS, describeCase(d)));
    });
    try {
      await Promise.all([fresh, kept, h2]);
    } finally {
      for (const s of sessions.values()) s.close();
    }
  });

  it('a response the backend breaks off reaches the client broken: no terminating chunk, a short Content-Length, RST_STREAM', async () => {
    const cases: Download[] = [];
    let seed = 1000;
    for (const client of ['h1', 'h2'] as const)
      for (const app of ['plain', 'translated'] as const)
        for (const framing of ['chunked', 'length'] as const)
          for (const kind of ['html', 'bin'] as const) {
            seed++;
            const size = 20_000 + (seed % 7) * 9_000;
            const coding = 'identity';
            cases.push({
              id: `t${seed}`,
              seed,
              size,
              app,
              client,
              framing,
              coding,
              kind,
              truncate: true,
            });
          }
    await pool(cases, 4, async (d) => {
      let got: Got;
      if (d.client === 'h1') got = await h1Fresh(d.app, 'GET', query(d), { id: d.id });
      else {
        const session = connectH2(d.app);
        try {
          got = await h2Request(session, d.app, 'GET', query(d), { id: d.id });
        } finally {
          session.close();
        }
      }
      const what = `${d.id} ${d.client} ${d.app} ${d.framing} ${d.kind}`;
      expect(got.status, what).toBe(200);
      expect(got.complete, `${what}: must not look complete`).toBe(false);
      if (d.client === 'h2') expect(got.rstCode, what).not.toBe(constants.NGHTTP2_NO_ERROR);
      expect(got.body.length, what).toBeLessThan(expectedOf(d).length);
      const correlation = header(got.headers, 'x-appproxy-correlation-id')!;
      received.set(correlation, { bytes: got.body.length, complete: false });
    });
    // The keep-alive flavour: the strict client sees the connection end mid-body.
    const d: Download = {
      id: 'tka',
      seed: 1999,
      size: 50_000,
      app: 'plain',
      client: 'h1-keepalive',
      framing: 'chunked',
      coding: 'identity',
      kind: 'bin',
      truncate: true,
    };
    const conn = await RawHttp1Connection.open(stack.ports.public, PLAIN, stack.ca);
    try {
      conn.sendHead('GET', query(d), { host: `${PLAIN}:${stack.ports.public}` });
      conn.socket.once('data', () => firstBytes.get(d.id)?.());
      await expect(conn.readResponse()).rejects.toBeInstanceOf(IncompleteResponseError);
    } finally {
      conn.close();
    }
  });

  it('uploads: random chunks and pauses, chunked and Content-Length, over HTTP/1.1 (fresh, keep-alive) and HTTP/2, reach the backend whole', async () => {
    const cases: Array<{ id: string; seed: number; app: App; client: Client; framing: Framing }> =
      [];
    let seed = 2000;
    for (const client of ['h1', 'h1-keepalive', 'h2'] as const)
      for (const app of ['plain', 'translated'] as const)
        for (const framing of ['chunked', 'length'] as const)
          for (let i = 0; i < 4; i++, seed++)
            cases.push({ id: `u${seed}`, seed, app, client, framing });
    const h2sessions = new Map<App, ClientHttp2Session>();
    const send = async (c: (typeof cases)[number], conn?: RawHttp1Connection) => {
      const body = randomBytesOf(c.seed, sizeOf(c.seed));
      const upload: Upload = { body, framing: c.framing, rand: random(c.seed ^ 0xf00d) };
      const path = `/up?id=${c.id}&seed=${c.seed}`;
      let got: Got;
      if (conn) got = await rawRequest(conn, c.app, 'POST', path, upload);
      else if (c.client === 'h1') got = await h1Fresh(c.app, 'POST', path, { upload });
      else {
        let session = h2sessions.get(c.app);
        if (!session) {
          session = connectH2(c.app);
          h2sessions.set(c.app, session);
        }
        got = await h2Request(session, c.app, 'POST', path, { upload });
      }
      const what = `${c.id} ${c.client} ${c.app} ${c.framing} ${body.length} B`;
      expect(got.status, what).toBe(200);
      expect(JSON.parse(got.body.toString()), what).toEqual({
        length: body.length,
        sha256: sha256(body),
      });
    };
    // Keep-alive: one connection per app and framing, its uploads one after another.
    const lanes = new Map<string, typeof cases>();
    for (const c of cases.filter((c) => c.client === 'h1-keepalive'))
      lanes.set(`${c.app}/${c.framing}`, [...(lanes.get(`${c.app}/${c.framing}`) ?? []), c]);
    try {
      await Promise.all([
        pool(
          cases.filter((c) => c.client !== 'h1-keepalive'),
          6,
          (c) => send(c),
        ),
        ...[...lanes.values()].map(async (lane) => {
          const conn = await RawHttp1Connection.open(
            stack.ports.public,
            hostOf(lane[0]!.app),
            stack.ca,
          );
          try {
            for (const c of lane) await send(c, conn);
          } finally {
            conn.close();
          }
        }),
      ]);
    } finally {
      for (const s of h2sessions.values()) s.close();
    }
  });

  it('full-duplex echoes: the body streams back while it is still being sent, HTTP/1.1 and HTTP/2', async () => {
    const cases: Array<{ seed: number; app: App; client: 'h1' | 'h2' }> = [];
    let seed = 3000;
    for (const client of ['h1', 'h2'] as const)
      for (const app of ['plain', 'translated'] as const)
        for (let i = 0; i < 4; i++, seed++) cases.push({ seed, app, client });
    await pool(cases, 4, async (c) => {
      const body = randomBytesOf(c.seed, sizeOf(c.seed));
      const upload: Upload = { body, framing: 'chunked', rand: random(c.seed ^ 0xec0) };
      let got: Got;
      if (c.client === 'h1') got = await h1Fresh(c.app, 'POST', '/echo', { upload });
      else {
        const session = connectH2(c.app);
        try {
          got = await h2Request(session, c.app, 'POST', '/echo', { upload });
        } finally {
          session.close();
        }
      }
      const what = `echo ${c.seed} ${c.client} ${c.app} ${body.length} B`;
      expect(got.status, what).toBe(200);
      expect(got.complete, what).toBe(true);
      expect({ length: got.body.length, sha256: sha256(got.body) }, what).toEqual({
        length: body.length,
        sha256: sha256(body),
      });
    });
  });

  it('a client that breaks off an upload never makes the backend see a complete body', async () => {
    const cases: Array<{
      id: string;
      seed: number;
      app: App;
      framing: Framing;
      client: 'h1' | 'h2';
    }> = [];
    let seed = 4000;
    for (const client of ['h1', 'h2'] as const)
      for (const app of ['plain', 'translated'] as const)
        for (const framing of ['chunked', 'length'] as const)
          cases.push({ id: `ua${seed}`, seed: seed++, app, framing, client });
    for (const c of cases) {
      const body = randomBytesOf(c.seed, 200_000);
      const half = body.subarray(0, 100_000);
      const path = `/up?id=${c.id}&seed=${c.seed}`;
      const authority = `${hostOf(c.app)}:${stack.ports.public}`;
      if (c.client === 'h1') {
        const conn = await RawHttp1Connection.open(stack.ports.public, hostOf(c.app), stack.ca);
        conn.sendHead('POST', path, {
          host: authority,
          ...(c.framing === 'length'
            ? { 'content-length': String(body.length) }
            : { 'transfer-encoding': 'chunked' }),
        });
        conn.socket.write(
          c.framing === 'length'
            ? half
            : Buffer.concat([
                Buffer.from(`${half.length.toString(16)}\r\n`),
                half,
                Buffer.from('\r\n'),
              ]),
        );
        await waitFor(() => (uploadProgress.get(c.id) ?? 0) > 0 || uploads.has(c.id));
        conn.close();
      } else {
        const session = connectH2(c.app);
        const stream = session.request({
          ':method': 'POST',
          ':path': path,
          ':authority': authority,
          ...(c.framing === 'length' && { 'content-length': body.length }),
        });
        stream.on('error', () => {});
        stream.write(half);
        await waitFor(() => (uploadProgress.get(c.id) ?? 0) > 0 || uploads.has(c.id));
        // RST_STREAM without END_STREAM (`close()` would end the stream first).
        stream.destroy(new Error('client gave up'));
        session.close();
      }
      await waitFor(() => uploads.has(c.id));
      expect(uploads.get(c.id), `${c.id} ${c.client} ${c.app} ${c.framing}`).toBe('aborted');
    }
  });

  it('WebSocket messages of random sizes echo whole, through passthrough and translated apps', async () => {
    for (const app of ['plain', 'translated'] as const) {
      const ws = new WebSocket(`wss://127.0.0.1:${stack.ports.public}/ws`, {
        ca: stack.ca,
        servername: hostOf(app),
        headers: { host: `${hostOf(app)}:${stack.ports.public}` },
        maxPayload: 16 * 1024 * 1024,
      });
      ws.on('error', () => {});
      await once(ws, 'open');
      const rand = random(app === 'plain' ? 5000 : 6000);
      const sent: string[] = [];
      const got: string[] = [];
      const all = new Promise<void>((resolve) =>
        ws.on('message', (data: Buffer) => {
          got.push(sha256(data));
          if (got.length === 60) resolve();
        }),
      );
      for (let i = 0; i < 60; i++) {
        const size = rand() < 0.1 ? 0 : logUniform(rand, 512 * 1024);
        const seed = i * 7919 + (app === 'plain' ? 1 : 2);
        // Text frames must be UTF-8: HTML text for those, random bytes for binary ones.
        const binary = rand() < 0.7;
        const data = binary ? randomBytesOf(seed, size) : htmlOf(seed, size, 'http://x/');
        sent.push(sha256(data));
        ws.send(data, { binary });
        if (rand() < 0.4) await new Promise((r) => setTimeout(r, Math.floor(rand() * 3)));
      }
      await all;
      expect(got).toEqual(sent);
      ws.close();
    }
  });

  it("the relay's request log counts the body bytes the client was sent (bytesOut), and marks broken responses aborted", async () => {
    const relay = stack.relay!;
    expect(received.size).toBeGreaterThan(150);
    await relay.waitFor(
      () =>
        relay.count((l) => l.msg === 'request' && received.has(String(l.requestId))) >=
        received.size,
      10_000,
      'request lines of every download',
    );
    const mismatches: string[] = [];
    for (const line of relay.lines) {
      if (line.msg !== 'request') continue;
      const r = received.get(String(line.requestId));
      if (!r) continue;
      if (r.complete && line.bytesOut !== r.bytes)
        mismatches.push(
          `${String(line.requestId)}: logged ${String(line.bytesOut)}, client got ${r.bytes}`,
        );
      if (line.aborted !== !r.complete)
        mismatches.push(`${String(line.requestId)}: aborted ${String(line.aborted)}`);
    }
    expect(mismatches).toEqual([]);
  });
});

async function waitFor(test: () => boolean, timeoutMs = 5_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > until) return;
    await new Promise((r) => setTimeout(r, 10));
  }
}
