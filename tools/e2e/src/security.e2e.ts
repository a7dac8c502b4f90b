/**
 * Hardening regressions (issue #13): every test sends what an attacker would through the real
 * relay and connector, and asserts both the client's answer and the exact bytes a recording
 * backend received.
 */
import { once } from 'node:events';
import { connect as h2connect } from 'node:http2';
import {
  createConnection,
  createServer,
  type AddressInfo,
  type Server,
  type Socket,
} from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack, freePort, request } from './harness.js';

/** A position in a {@link RecordingBackend}'s logs. */
interface Mark {
  chunks: number;
  requests: number;
}

/**
 * An origin that keeps every byte it receives, per connection, and answers each request with
 * a canned response (101 for an Upgrade, cookies and `X-Appproxy-*` for `/cookies`, else 200).
 * It frames requests by Content-Length and chunked bodies like a real server, so a request
 * smuggled inside another would show up as a second request head.
 */
class RecordingBackend {
  readonly server: Server;
  /** Every chunk received, in order, with its connection number. */
  readonly chunks: Array<{ conn: number; data: Buffer }> = [];
  /** The head of every request the backend framed completely (head and body), in order. */
  readonly requests: string[] = [];
  #conns = 0;
  readonly #sockets = new Set<Socket>();

  constructor() {
    this.server = createServer((socket) => {
      const conn = ++this.#conns;
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
      socket.on('error', () => {});
      let buf = Buffer.alloc(0);
      let upgraded = false;
      socket.on('data', (data: Buffer) => {
        this.chunks.push({ conn, data });
        if (upgraded) return;
        buf = Buffer.concat([buf, data]);
        for (;;) {
          const end = buf.indexOf('\r\n\r\n');
          if (end === -1) return;
          const head = buf.subarray(0, end).toString('latin1');
          let bodyEnd = end + 4;
          const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
          if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
            const last = buf.indexOf('0\r\n\r\n', bodyEnd);
            if (last === -1) return;
            bodyEnd = last + 5;
          } else if (cl) {
            bodyEnd += Number(cl[1]);
            if (buf.length < bodyEnd) return;
          }
          buf = buf.subarray(bodyEnd);
          this.requests.push(head);
          if (/\r\nupgrade:/i.test(head)) {
            upgraded = true;
            const protocol = /\r\nupgrade:\s*([^\r]*)/i.exec(head)![1];
            socket.write(
              `HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${protocol}\r\n` +
                'Set-Cookie: __Host-appproxy_session=fixated; Path=/; Secure\r\n' +
                'X-Appproxy-Identity: forged\r\n\r\n',
            );
            return;
          }
          const extra = /^\S+ \/cookies/.test(head)
            ? 'Set-Cookie: __Host-appproxy_session=fixated; Path=/; Secure; HttpOnly\r\n' +
              'Set-Cookie: appproxy_txn_x=1; Path=/\r\n' +
              'Set-Cookie: app_session=kept; Path=/\r\n' +
              'X-Appproxy-Error: FORGED\r\nX-Appproxy-Correlation-Id: forged\r\n' +
              'Appproxy-Identity: forged\r\nX-App: kept\r\n'
            : '';
          socket.write(`HTTP/1.1 200 OK\r\n${extra}Content-Length: 2\r\n\r\nok`);
        }
      });
    });
  }

  async listen(): Promise<number> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return (this.server.address() as AddressInfo).port;
  }

  /** A position in the log: `since(mark)` and `heads(mark)` give what arrived after it. */
  mark(): Mark {
    return { chunks: this.chunks.length, requests: this.requests.length };
  }

  /** The bytes that arrived after `mark`, as text per connection. */
  since(mark: Mark): string[] {
    const per = new Map<number, Buffer[]>();
    for (const { conn, data } of this.chunks.slice(mark.chunks)) {
      per.set(conn, [...(per.get(conn) ?? []), data]);
    }
    return [...per.values()].map((parts) => Buffer.concat(parts).toString('latin1'));
  }

  /** Heads of the requests framed after `mark` (by Content-Length/chunked, as servers do). */
  heads(mark: Mark): string[] {
    return this.requests.slice(mark.requests);
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

let backend: RecordingBackend;
let stack: Stack;
let redirectPort: number;
const PUBLIC = 'public.apps.localhost';
const SECURE = 'secure.apps.localhost';
const NEST = 'nest.apps.localhost';
const NOUP = 'noup.apps.localhost';

beforeAll(async () => {
  backend = new RecordingBackend();
  const port = await backend.listen();
  const closed = await freePort();
  redirectPort = await freePort();
  stack = await new Stack({
    relayExtra: `  redirectHttp: 127.0.0.1:${redirectPort}\n`,
    identityProvider: [
      `  issuer: http://127.0.0.1:${closed}`,
      '  clientId: appproxy',
      '  clientSecret: e2e-client-secret',
    ].join('\n'),
    apps: [
      {
        name: 'Public',
        internalUrl: `http://127.0.0.1:${port}/`,
        externalUrl: `https://${PUBLIC}/`,
      },
      {
        name: 'Secure',
        internalUrl: `http://127.0.0.1:${port}/`,
        externalUrl: `https://${SECURE}/`,
        extra: '    translateHeaders: false\n',
      },
      {
        name: 'NoUpgrades',
        internalUrl: `http://127.0.0.1:${port}/`,
        externalUrl: `https://${NOUP}/`,
        extra: '    upgrades: []\n',
      },
      {
        name: 'Nest',
        internalUrl: `http://127.0.0.1:${port}/`,
        externalUrl: `https://${NEST}/`,
        preAuthentication: 'oidc',
      },
      {
        name: 'NestPublic',
        internalUrl: `http://127.0.0.1:${port}/pub/`,
        externalUrl: `https://${NEST}/pub/`,
      },
    ],
  }).start();
});

afterAll(async () => {
  await stack?.stop();
  await backend?.close();
});

interface RawAnswer {
  status: number;
  text: string;
  /** The relay's error code (`X-AppProxy-Error`), when the answer is one of its error pages. */
  code?: string;
  /** From the JSON error body. */
  correlationId?: string;
}

/** Writes `raw` as is over TLS (HTTP/1.1) and reads until the relay closes or `waitMs`. */
async function raw(raw: string | Buffer, waitMs = 3000): Promise<RawAnswer> {
  const socket = tlsConnect({
    host: '127.0.0.1',
    port: stack.ports.public,
    servername: PUBLIC,
    ca: stack.ca,
    ALPNProtocols: ['http/1.1'],
  });
  socket.on('error', () => {});
  await once(socket, 'secureConnect');
  socket.write(raw);
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  await Promise.race([once(socket, 'close'), new Promise((r) => setTimeout(r, waitMs))]);
  socket.destroy();
  const text = Buffer.concat(chunks).toString('latin1');
  const answer: RawAnswer = {
    status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0),
    text,
  };
  const body = text.slice(text.indexOf('\r\n\r\n') + 4);
  const start = body.indexOf('{"error"');
  const headerCode = /\r\nx-appproxy-error: ([A-Z_]+)\r\n/i.exec(text)?.[1];
  if (headerCode) answer.code = headerCode;
  if (start !== -1) {
    const { error } = JSON.parse(body.slice(start, body.lastIndexOf('}') + 1)) as {
      error: { code: string; correlationId: string };
    };
    answer.code = error.code;
    answer.correlationId = error.correlationId;
  }
  return answer;
}

/** Lets in-flight bytes reach the backend before asserting what it did not get. */
const settle = () => new Promise((r) => setTimeout(r, 300));

describe('Host header', () => {
  it.each([
    `${PUBLIC}:@evil.example`,
    `${SECURE}:443,evil.example`,
    `${PUBLIC}:80@evil.example`,
    `${PUBLIC}/evil`,
    `${PUBLIC}:`,
    `${PUBLIC}:12a`,
    `${PUBLIC} evil.example`,
  ])('Host: %s → 400 BAD_REQUEST_HOST, nothing reaches the backend', async (host) => {
    const mark = backend.mark();
    const res = await raw(
      `GET /x HTTP/1.1\r\nHost: ${host}\r\nAccept: application/json\r\nConnection: close\r\n\r\n`,
    );
    expect(res.status).toBe(400);
    expect(res.code).toBe('BAD_REQUEST_HOST');
    expect(res.correlationId).toMatch(/^[0-9a-f]{32}$/);
    await settle();
    expect(backend.since(mark)).toEqual([]);
  });

  it('the backend gets the configured external host, never the client’s port text', async () => {
    const mark = backend.mark();
    const a = await raw(
      `GET /a HTTP/1.1\r\nHost: ${PUBLIC}:8443\r\nX-Forwarded-Host: evil.example\r\nConnection: close\r\n\r\n`,
    );
    const b = await raw(
      `GET /b HTTP/1.1\r\nHost: ${SECURE.toUpperCase()}:443\r\nConnection: close\r\n\r\n`,
    );
    expect([a.status, b.status]).toEqual([200, 200]);
    const heads = backend.heads(mark);
    expect(heads).toHaveLength(2);
    const [toPublic, toSecure] = heads.sort();
    expect(toPublic).toMatch(/^GET \/a HTTP\/1\.1\r\n/);
    expect(toPublic).toMatch(new RegExp(`\r\nx-forwarded-host: ${PUBLIC}(\r\n|$)`, 'i'));
    expect(toPublic).toMatch(new RegExp(`\r\nhost: 127\\.0\\.0\\.1:\\d+(\r\n|$)`, 'i'));
    expect(toSecure).toMatch(new RegExp(`\r\nhost: ${SECURE}(\r\n|$)`, 'i'));
    expect(toSecure).toMatch(new RegExp(`\r\nx-forwarded-host: ${SECURE}(\r\n|$)`, 'i'));
    expect(heads.join('\n')).not.toContain('evil');
    expect(heads.join('\n')).not.toContain(':8443');
  });

  it('HTTP/2 :authority follows the same rule', async () => {
    const client = h2connect(`https://127.0.0.1:${stack.ports.public}`, {
      ca: stack.ca,
      servername: SECURE,
    });
    client.on('error', () => {});
    try {
      const ask = async (authority: string) => {
        const s = client.request({
          ':path': '/h2',
          ':authority': authority,
          accept: 'application/json',
        });
        s.on('error', () => {});
        const [headers] = (await once(s, 'response')) as [Record<string, string | number>];
        const chunks: Buffer[] = [];
        for await (const c of s) chunks.push(c as Buffer);
        return { status: headers[':status'], body: Buffer.concat(chunks).toString() };
      };
      const mark = backend.mark();
      const bad = await ask(`${SECURE}:443,evil.example`);
      expect(bad.status).toBe(400);
      expect((JSON.parse(bad.body) as { error: { code: string } }).error.code).toBe(
        'BAD_REQUEST_HOST',
      );
      const good = await ask(`${SECURE}:443`);
      expect(good.status).toBe(200);
      const heads = backend.heads(mark);
      expect(heads).toHaveLength(1);
      expect(heads[0]).toMatch(new RegExp(`\r\nhost: ${SECURE}(\r\n|$)`, 'i'));
      expect(heads[0]).not.toContain('evil');
    } finally {
      client.close();
    }
  });

  it('the port 80 redirect refuses such a Host instead of redirecting there', async () => {
    const ask = async (host: string) => {
      const socket = createConnection({ host: '127.0.0.1', port: redirectPort });
      socket.on('error', () => {});
      await once(socket, 'connect');
      socket.write(
        `GET /x?y=1 HTTP/1.1\r\nHost: ${host}\r\nAccept: application/json\r\nConnection: close\r\n\r\n`,
      );
      const chunks: Buffer[] = [];
      for await (const c of socket) chunks.push(c as Buffer);
      return Buffer.concat(chunks).toString('latin1');
    };
    const bad = await ask(`${PUBLIC}@evil.example`);
    expect(bad).toMatch(/^HTTP\/1\.1 400 /);
    expect(bad).toMatch(/\r\nx-appproxy-error: BAD_REQUEST_HOST\r\n/i);
    expect(bad).not.toMatch(/\r\nlocation:/i);
    const good = await ask(`${PUBLIC.toUpperCase()}:80`);
    expect(good).toMatch(/^HTTP\/1\.1 301 /);
    expect(good).toMatch(
      new RegExp(`\r\nlocation: https://${PUBLIC}:${stack.ports.public}/x\\?y=1\r\n`, 'i'),
    );
  });

  it('plain requests still work (the checks above can fail)', async () => {
    const res = await request(stack, PUBLIC, '/plain', { headers: { accept: 'application/json' } });
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('ok');
  });
});

describe('TRACE and duplicate Host', () => {
  it('TRACE → 405 METHOD_NOT_ALLOWED and never reaches the backend', async () => {
    const mark = backend.mark();
    const res = await raw(
      `TRACE /x HTTP/1.1\r\nHost: ${PUBLIC}\r\nAccept: application/json\r\nCookie: a=b\r\nConnection: close\r\n\r\n`,
    );
    expect(res.status).toBe(405);
    expect(res.code).toBe('METHOD_NOT_ALLOWED');
    expect(res.correlationId).toMatch(/^[0-9a-f]{32}$/);
    expect(res.text).not.toContain('a=b');
    // As an upgrade too (Node hands `Upgrade` requests of any method to the upgrade handler).
    const upgrade = await raw(
      `TRACE /x HTTP/1.1\r\nHost: ${PUBLIC}\r\nAccept: application/json\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`,
    );
    expect(upgrade.status).toBe(405);
    expect(upgrade.code).toBe('METHOD_NOT_ALLOWED');
    await settle();
    expect(backend.since(mark)).toEqual([]);
  });

  it.each([
    [PUBLIC, 'evil.example'],
    [PUBLIC, PUBLIC],
    [SECURE, PUBLIC],
  ])('Host: %s + Host: %s → 400 BAD_REQUEST_HOST', async (first, second) => {
    const mark = backend.mark();
    const res = await raw(
      `GET /x HTTP/1.1\r\nHost: ${first}\r\nAccept: application/json\r\nHost: ${second}\r\nConnection: close\r\n\r\n`,
    );
    expect(res.status).toBe(400);
    expect(res.code).toBe('BAD_REQUEST_HOST');
    await settle();
    expect(backend.since(mark)).toEqual([]);
  });

  it('HTTP/2: TRACE → 405, and a Host differing from :authority → 400', async () => {
    const client = h2connect(`https://127.0.0.1:${stack.ports.public}`, {
      ca: stack.ca,
      servername: PUBLIC,
    });
    client.on('error', () => {});
    try {
      const ask = async (headers: Record<string, string>) => {
        const s = client.request(
          { ':path': '/h2', accept: 'application/json', ...headers },
          { endStream: true },
        );
        s.on('error', () => {});
        const [h] = (await once(s, 'response')) as [Record<string, string | number>];
        const chunks: Buffer[] = [];
        for await (const c of s) chunks.push(c as Buffer);
        const body = Buffer.concat(chunks).toString();
        return { status: h[':status'], code: body.startsWith('{') ? json(body) : undefined };
      };
      const json = (b: string) => (JSON.parse(b) as { error: { code: string } }).error.code;
      const mark = backend.mark();
      expect(await ask({ ':method': 'TRACE', ':authority': PUBLIC })).toEqual({
        status: 405,
        code: 'METHOD_NOT_ALLOWED',
      });
      expect(await ask({ ':authority': PUBLIC, host: 'evil.example' })).toEqual({
        status: 400,
        code: 'BAD_REQUEST_HOST',
      });
      await settle();
      expect(backend.since(mark)).toEqual([]);
      expect(await ask({ ':authority': PUBLIC, host: `${PUBLIC}:8443` })).toEqual({
        status: 400,
        code: 'BAD_REQUEST_HOST',
      });
      await settle();
      expect(backend.since(mark)).toEqual([]);
      expect((await ask({ ':authority': PUBLIC, host: PUBLIC.toUpperCase() })).status).toBe(200);
      expect((await ask({ ':authority': `${PUBLIC}:443`, host: PUBLIC })).status).toBe(200);
    } finally {
      client.close();
    }
  });
});

describe('Upgrade', () => {
  const upgradeHead = (protocol: string, extra = '', host = PUBLIC) =>
    `GET /ws HTTP/1.1\r\nHost: ${host}\r\nAccept: application/json\r\nConnection: Upgrade\r\n` +
    `Upgrade: ${protocol}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${extra}\r\n`;

  it.each([
    ['h2c', 'HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n'],
    ['H2C', ''],
    ['websocket, h2c', ''],
    ['h2c, websocket', ''],
    ['tls/1.3', ''],
  ])('Upgrade: %s → 400 UPGRADE_REFUSED, nothing reaches the backend', async (protocol, extra) => {
    const mark = backend.mark();
    const res = await raw(
      upgradeHead(protocol, extra) + `GET /smuggled HTTP/1.1\r\nHost: ${PUBLIC}\r\n\r\n`,
    );
    expect(res.status).toBe(400);
    expect(res.code).toBe('UPGRADE_REFUSED');
    expect(res.correlationId).toMatch(/^[0-9a-f]{32}$/);
    await settle();
    expect(backend.since(mark)).toEqual([]);
  });

  it('an app with `upgrades: []` refuses WebSocket too', async () => {
    const mark = backend.mark();
    const res = await raw(upgradeHead('websocket', '', NOUP));
    expect(res.status).toBe(400);
    expect(res.code).toBe('UPGRADE_REFUSED');
    await settle();
    expect(backend.since(mark)).toEqual([]);
  });

  it.each([
    ['Content-Length', `Content-Length: 39\r\n`],
    ['Transfer-Encoding', 'Transfer-Encoding: chunked\r\n'],
  ])('a WebSocket upgrade with a %s body → 400 UPGRADE_REFUSED', async (_, framing) => {
    const mark = backend.mark();
    const smuggled = `GET /smuggled HTTP/1.1\r\nHost: ${PUBLIC}\r\n\r\n`;
    const body = framing.startsWith('Transfer')
      ? `${smuggled.length.toString(16)}\r\n${smuggled}\r\n0\r\n\r\n`
      : smuggled;
    const res = await raw(upgradeHead('websocket', framing) + body);
    expect(res.status).toBe(400);
    expect(res.code).toBe('UPGRADE_REFUSED');
    await settle();
    expect(backend.since(mark)).toEqual([]);
  });

  it('WebSocket (any case) is forwarded without Content-Length, then bytes flow raw', async () => {
    const mark = backend.mark();
    const socket = tlsConnect({
      host: '127.0.0.1',
      port: stack.ports.public,
      servername: PUBLIC,
      ca: stack.ca,
      ALPNProtocols: ['http/1.1'],
    });
    socket.on('error', () => {});
    await once(socket, 'secureConnect');
    try {
      let text = '';
      socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
      socket.write(upgradeHead('WebSocket', 'Content-Length: 0\r\n'));
      await expect.poll(() => text, { timeout: 5000 }).toContain('\r\n\r\n');
      expect(text).toMatch(/^HTTP\/1\.1 101 /);
      expect(text).toMatch(/\r\nupgrade: websocket\r\n/i);
      socket.write('after-the-upgrade');
      await expect
        .poll(() => backend.since(mark).join(''), { timeout: 5000 })
        .toContain('after-the-upgrade');
      const [conn] = backend.since(mark);
      const head = conn!.slice(0, conn!.indexOf('\r\n\r\n'));
      expect(head).toMatch(/^GET \/ws HTTP\/1\.1\r\n/);
      expect(head).toMatch(/\r\nupgrade: websocket(\r\n|$)/i);
      expect(head).toMatch(/\r\nconnection: upgrade(\r\n|$)/i);
      expect(head).not.toMatch(/content-length|transfer-encoding/i);
      expect(conn!.slice(head.length)).toBe('\r\n\r\nafter-the-upgrade');
    } finally {
      socket.destroy();
    }
  });
});

describe('response headers only the relay may set', () => {
  it.each([PUBLIC, SECURE])(
    '%s: backend Set-Cookie of a relay cookie and X-Appproxy-* never reach the client',
    async (host) => {
      const res = await request(stack, host, '/cookies');
      expect(res.status).toBe(200);
      const cookies = res.headers['set-cookie'] ?? [];
      expect(cookies).toHaveLength(1);
      expect(cookies[0]).toMatch(/^app_session=kept; /);
      expect(res.headers['x-app']).toBe('kept');
      expect(res.headers['x-appproxy-error']).toBeUndefined();
      expect(res.headers['appproxy-identity']).toBeUndefined();
      expect(res.headers['x-appproxy-correlation-id']).toMatch(/^[0-9a-f]{32}$/);
    },
  );

  it('nor in the 101 of an upgrade', async () => {
    const socket = tlsConnect({
      host: '127.0.0.1',
      port: stack.ports.public,
      servername: PUBLIC,
      ca: stack.ca,
      ALPNProtocols: ['http/1.1'],
    });
    socket.on('error', () => {});
    await once(socket, 'secureConnect');
    try {
      let text = '';
      socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
      socket.write(
        `GET /ws HTTP/1.1\r\nHost: ${PUBLIC}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
          'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      );
      await expect.poll(() => text, { timeout: 5000 }).toContain('\r\n\r\n');
      const head = text.slice(0, text.indexOf('\r\n\r\n'));
      expect(head).toMatch(/^HTTP\/1\.1 101 /);
      expect(head).not.toMatch(/appproxy_session|x-appproxy-identity/i);
    } finally {
      socket.destroy();
    }
  });
});

describe('dot segments with path parameters', () => {
  const get = (path: string) =>
    raw(
      `GET ${path} HTTP/1.1\r\nHost: ${NEST}\r\nAccept: application/json\r\nConnection: close\r\n\r\n`,
    );

  it.each([
    '/pub/..;/admin',
    '/pub/..;jsessionid=x/admin',
    '/pub/%2e%2e;/admin',
    '/pub/..%3B/admin',
    '/pub/.;/../admin',
  ])('%s → 400 BAD_REQUEST_PATH, never forwarded by the passthrough app', async (path) => {
    const mark = backend.mark();
    const res = await get(path);
    expect(res.status).toBe(400);
    expect(res.code).toBe('BAD_REQUEST_PATH');
    expect(res.correlationId).toMatch(/^[0-9a-f]{32}$/);
    await settle();
    expect(backend.since(mark)).toEqual([]);
  });

  it('the oidc app still guards /admin, and parameters elsewhere pass as they are', async () => {
    const mark = backend.mark();
    const guarded = await get('/admin');
    expect(guarded.status).not.toBe(200);
    expect(guarded.code).toBeDefined();
    const ok = await get('/pub/a;jsessionid=1/b');
    expect(ok.status).toBe(200);
    await settle();
    const heads = backend.heads(mark);
    expect(heads).toHaveLength(1);
    expect(heads[0]).toMatch(/^GET \/pub\/a;jsessionid=1\/b HTTP\/1\.1\r\n/);
  });
});

describe('request smuggling corpus (HTTP/1.1, raw bytes over TLS)', () => {
  const SMUGGLED = `GET /smuggled HTTP/1.1\r\nHost: ${PUBLIC}\r\n\r\n`;
  const head = (lines: string, nl = '\r\n') =>
    `POST /desync HTTP/1.1${nl}Host: ${PUBLIC}${nl}Accept: application/json${nl}${lines}`;
  const chunk = (s: string) => `${s.length.toString(16)}\r\n${s}\r\n`;
  const cases: Array<[string, string]> = [
    [
      'CL.TE',
      head(`Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n`) + `0\r\n\r\n${SMUGGLED}`,
    ],
    [
      'TE.CL',
      head(`Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n`) +
        chunk(SMUGGLED) +
        '0\r\n\r\n',
    ],
    [
      'Transfer-Encoding: xchunked',
      head(`Transfer-Encoding: xchunked\r\n\r\n`) + `0\r\n\r\n${SMUGGLED}`,
    ],
    [
      'Transfer-Encoding: xchunked + Content-Length',
      head(`Content-Length: 5\r\nTransfer-Encoding: xchunked\r\n\r\n`) + `0\r\n\r\n${SMUGGLED}`,
    ],
    [
      'Transfer-Encoding: chunked, identity',
      head(`Transfer-Encoding: chunked, identity\r\n\r\n`) + `0\r\n\r\n${SMUGGLED}`,
    ],
    [
      'space before the colon',
      head(`Content-Length: 5\r\nTransfer-Encoding : chunked\r\n\r\n`) + `0\r\n\r\n${SMUGGLED}`,
    ],
    [
      'leading space (obs-fold)',
      head(`Content-Length: 5\r\n Transfer-Encoding: chunked\r\n\r\n`) + `0\r\n\r\n${SMUGGLED}`,
    ],
    ['folded value', head(`Transfer-Encoding: x\r\n chunked\r\n\r\n`) + `0\r\n\r\n${SMUGGLED}`],
    [
      'tab in the name',
      head(`Content-Length: 5\r\nTransfer-Encoding\t: chunked\r\n\r\n`) + `0\r\n\r\n${SMUGGLED}`,
    ],
    [
      'tab + Content-Length',
      head(`Content-Length: 5\r\nTransfer-Encoding:\tchunked\r\n\r\n`) + `0\r\n\r\n${SMUGGLED}`,
    ],
    [
      'duplicate Content-Length (different)',
      head(`Content-Length: 0\r\nContent-Length: ${SMUGGLED.length}\r\n\r\n`) + SMUGGLED,
    ],
    [
      'duplicate Content-Length (same)',
      head(`Content-Length: ${SMUGGLED.length}\r\nContent-Length: ${SMUGGLED.length}\r\n\r\n`) +
        SMUGGLED,
    ],
    ['Content-Length list', head(`Content-Length: 0, 40\r\n\r\n`) + SMUGGLED],
    ['Content-Length +0', head(`Content-Length: +0\r\n\r\n`) + SMUGGLED],
    ['bare LF line endings', head(`Content-Length: 0\n\n`, '\n') + SMUGGLED],
    [
      'bare LF before Transfer-Encoding',
      head(`Content-Length: 0\nTransfer-Encoding: chunked\r\n\r\n`) + `0\r\n\r\n${SMUGGLED}`,
    ],
    [
      'negative chunk size',
      head(`Transfer-Encoding: chunked\r\n\r\n`) + `-1\r\n${SMUGGLED}\r\n0\r\n\r\n`,
    ],
    [
      'overflowing chunk size',
      head(`Transfer-Encoding: chunked\r\n\r\n`) + `10000000000000001\r\nx\r\n0\r\n\r\n${SMUGGLED}`,
    ],
    [
      '0x chunk size',
      head(`Transfer-Encoding: chunked\r\n\r\n`) + `0x5\r\nhello\r\n0\r\n\r\n${SMUGGLED}`,
    ],
    [
      'chunk data longer than its size',
      head(`Transfer-Encoding: chunked\r\n\r\n`) + `3\r\nabc${SMUGGLED}\r\n0\r\n\r\n`,
    ],
    [
      'bare LF after the chunk size',
      head(`Transfer-Encoding: chunked\r\n\r\n`) + `5\nhello\r\n0\r\n\r\n${SMUGGLED}`,
    ],
  ];

  it.each(cases)('%s → 400, and the backend never sees a second request', async (_, bytes) => {
    const mark = backend.mark();
    const res = await raw(bytes);
    expect(res.status).toBe(400);
    expect(res.code).toBe('MALFORMED_REQUEST');
    expect(res.correlationId).toMatch(/^[0-9a-f]{32}$/);
    await stack.relay!.waitFor(
      (l) => l.requestId === res.correlationId && l.code === 'MALFORMED_REQUEST',
      5000,
      'the refusal in the relay log',
    );
    await settle();
    const got = backend.since(mark).join('');
    expect(got).not.toContain('smuggled');
    expect(backend.heads(mark).length).toBeLessThanOrEqual(1);
  });

  it('an oversized head → 431 REQUEST_HEADERS_TOO_LARGE, nothing reaches the backend', async () => {
    const mark = backend.mark();
    const res = await raw(
      `GET /big HTTP/1.1\r\nHost: ${PUBLIC}\r\nAccept: application/json\r\nCookie: a=${'x'.repeat(20_000)}\r\n\r\n`,
    );
    expect(res.status).toBe(431);
    expect(res.code).toBe('REQUEST_HEADERS_TOO_LARGE');
    await settle();
    expect(backend.since(mark)).toEqual([]);
  });

  it('a well-formed chunked POST followed by a pipelined GET is two requests (the checks can fail)', async () => {
    const mark = backend.mark();
    const res = await raw(
      head(`Transfer-Encoding: chunked\r\n\r\n`) +
        chunk('hello') +
        '0\r\n\r\n' +
        `GET /second HTTP/1.1\r\nHost: ${PUBLIC}\r\nConnection: close\r\n\r\n`,
    );
    expect(res.status).toBe(200);
    expect(res.text.match(/HTTP\/1\.1 200/g)).toHaveLength(2);
    await settle();
    const heads = backend.heads(mark).sort();
    expect(heads).toHaveLength(2);
    expect(heads[0]).toMatch(/^GET \/second HTTP\/1\.1\r\n/);
    expect(heads[1]).toMatch(/^POST \/desync HTTP\/1\.1\r\n/);
  });
});

/** One HTTP/2 frame. */
interface H2Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

const h2Frame = (type: number, flags: number, stream: number, payload = Buffer.alloc(0)) => {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(stream, 5);
  return Buffer.concat([header, payload]);
};

/** HPACK integer with an n-bit prefix (RFC 7541 §5.1). */
const hpackInt = (value: number, bits: number, first = 0): number[] => {
  const max = (1 << bits) - 1;
  if (value < max) return [first | value];
  const out = [first | max];
  let rest = value - max;
  while (rest >= 128) {
    out.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  return [...out, rest];
};

/**
 * A header block of literal fields without indexing and without Huffman coding, so names and
 * values go on the wire exactly as given — duplicates, upper case, CR LF and all, which
 * node:http2's client refuses to send.
 */
const hpackBlock = (fields: Array<[string, string]>) =>
  Buffer.concat(
    fields.flatMap(([name, value]) => {
      const n = Buffer.from(name, 'latin1');
      const v = Buffer.from(value, 'latin1');
      return [Buffer.from([0, ...hpackInt(n.length, 7)]), n, Buffer.from(hpackInt(v.length, 7)), v];
    }),
  );

/**
 * Speaks HTTP/2 to the relay frame by frame: the preface, empty SETTINGS, then `frames`
 * (stream 1); acknowledges the relay's SETTINGS and collects its frames until stream 1 ends
 * or is reset, the relay goes away, or `waitMs` pass.
 */
async function rawH2(frames: Buffer[], waitMs = 1500): Promise<H2Frame[]> {
  const socket = tlsConnect({
    host: '127.0.0.1',
    port: stack.ports.public,
    servername: PUBLIC,
    ca: stack.ca,
    ALPNProtocols: ['h2'],
  });
  socket.on('error', () => {});
  await once(socket, 'secureConnect');
  expect(socket.alpnProtocol).toBe('h2');
  const received: H2Frame[] = [];
  let buf = Buffer.alloc(0);
  let finished = () => {};
  const streamDone = new Promise<void>((r) => (finished = r));
  socket.on('data', (data: Buffer) => {
    buf = Buffer.concat([buf, data]);
    while (buf.length >= 9) {
      const length = buf.readUIntBE(0, 3);
      if (buf.length < 9 + length) break;
      const f = {
        type: buf[3]!,
        flags: buf[4]!,
        stream: buf.readUInt32BE(5) & 0x7fffffff,
        payload: buf.subarray(9, 9 + length),
      };
      buf = buf.subarray(9 + length);
      received.push(f);
      if (f.type === 4 && !(f.flags & 1)) socket.write(h2Frame(4, 1, 0));
      const ended =
        f.stream === 1 && (f.type === 3 || ((f.type === 0 || f.type === 1) && f.flags & 1));
      if (ended || f.type === 7) finished();
    }
  });
  socket.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), h2Frame(4, 0, 0)]));
  for (const f of frames) socket.write(f);
  await Promise.race([
    streamDone,
    once(socket, 'close'),
    new Promise((r) => setTimeout(r, waitMs)),
  ]);
  socket.destroy();
  return received;
}

/** What stream 1 got: reset (RST_STREAM or GOAWAY), a 400, another status, or nothing. */
function outcomeOf(frames: H2Frame[]): 'reset' | 400 | 'other' | 'none' {
  for (const f of frames) {
    if (f.type === 3 && f.stream === 1) return 'reset';
    if (f.type === 7) return 'reset';
    // :status 400 is static-table entry 12, sent indexed (0x8c).
    if (f.type === 1 && f.stream === 1) return f.payload[0] === 0x8c ? 400 : 'other';
  }
  return 'none';
}

describe('request smuggling corpus (HTTP/2 frames)', () => {
  const SMUGGLED = `GET /smuggled HTTP/1.1\r\nHost: ${PUBLIC}\r\n\r\n`;
  const base: Array<[string, string]> = [
    [':method', 'POST'],
    [':scheme', 'https'],
    [':authority', PUBLIC],
    [':path', '/desync'],
  ];
  const END_STREAM = 0x1;
  const END_HEADERS = 0x4;
  const headers = (fields: Array<[string, string]>, flags = END_HEADERS | END_STREAM) =>
    h2Frame(1, flags, 1, hpackBlock(fields));
  const withBody = (fields: Array<[string, string]>, body: string) => [
    headers(fields, END_HEADERS),
    h2Frame(0, END_STREAM, 1, Buffer.from(body, 'latin1')),
  ];

  const cases: Array<[string, Buffer[]]> = [
    [
      'content-length smaller than the body',
      withBody([...base, ['content-length', '5']], `hello${SMUGGLED}`),
    ],
    ['duplicate :path', [headers([...base, [':path', '/smuggled']])]],
    [
      'pseudo-header after a regular header',
      [headers([...base.slice(0, 3), ['x-a', '1'], [':path', '/desync']])],
    ],
    ['unknown pseudo-header', [headers([...base, [':smuggle', '/smuggled']])]],
    ['upper-case header name', [headers([...base, ['X-Smuggle', '1']])]],
    ['connection', [headers([...base, ['connection', 'keep-alive']])]],
    [
      'transfer-encoding',
      withBody([...base, ['transfer-encoding', 'chunked']], `0\r\n\r\n${SMUGGLED}`),
    ],
    ['keep-alive', [headers([...base, ['keep-alive', 'timeout=5']])]],
    ['upgrade', [headers([...base, ['upgrade', 'h2c']])]],
    ['te other than trailers', [headers([...base, ['te', 'chunked']])]],
    [
      'space in :path',
      [headers([...base.slice(0, 3), [':path', `/desync HTTP/1.1\r\n\r\n${SMUGGLED}`]])],
    ],
  ];

  it.each(cases)(
    '%s → stream reset or 400, the backend never sees a second request',
    async (_, frames) => {
      const mark = backend.mark();
      const outcome = outcomeOf(await rawH2(frames));
      expect([400, 'reset']).toContain(outcome);
      await settle();
      expect(backend.since(mark).join('')).not.toContain('smuggled');
      expect(backend.heads(mark).length).toBeLessThanOrEqual(1);
    },
  );

  // The h2 → HTTP/1.1 desync: a backend still waiting for the declared body would take the
  // next request on its connection as body. The relay resets the stream, the connector drops
  // that backend connection, and the next request arrives as a request of its own.
  it('content-length larger than the body → reset, and the next request is not swallowed', async () => {
    const mark = backend.mark();
    const outcome = outcomeOf(await rawH2(withBody([...base, ['content-length', '100']], 'hello')));
    expect([400, 'reset']).toContain(outcome);
    for (let i = 0; i < 3; i++) {
      const next = await request(stack, PUBLIC, `/after-${i}`);
      expect(next.status).toBe(200);
    }
    await settle();
    const heads = backend.heads(mark);
    expect(heads.map((h) => h.split(' ')[1])).toEqual(['/after-0', '/after-1', '/after-2']);
  });

  // RFC 9113 §8.2.1 calls these malformed; nghttp2 (Node's HTTP/2) drops such a field and
  // serves the rest of the request. Pinned: the field never reaches the backend.
  it.each([
    ['value', ['x-a', `1\r\n\r\n${SMUGGLED}`]],
    ['name', [`x-a\r\n\r\n${SMUGGLED}`, '1']],
  ] as Array<[string, [string, string]]>)(
    'CR LF in a header %s: the field is dropped, the backend sees one request without it',
    async (_, field) => {
      const mark = backend.mark();
      const outcome = outcomeOf(await rawH2([headers([...base, field, ['x-ok', '1']])]));
      expect([400, 'reset', 'other']).toContain(outcome);
      await settle();
      expect(backend.since(mark).join('')).not.toContain('smuggled');
      const heads = backend.heads(mark);
      expect(heads.length).toBeLessThanOrEqual(1);
      if (outcome === 'other') {
        expect(heads).toHaveLength(1);
        expect(heads[0]).toMatch(/\r\nx-ok: 1(\r\n|$)/);
        expect(heads[0]).not.toMatch(/\r\nx-a/);
      }
    },
  );

  it('a well-formed request over the same raw frames reaches the backend (the checks can fail)', async () => {
    const mark = backend.mark();
    const frames = await rawH2(
      withBody([...base, ['content-length', '5'], ['x-ok', '1']], 'hello'),
    );
    expect(outcomeOf(frames)).toBe('other');
    await settle();
    const heads = backend.heads(mark);
    expect(heads).toHaveLength(1);
    expect(heads[0]).toMatch(/^POST \/desync HTTP\/1\.1\r\n/);
    expect(heads[0]).toMatch(/\r\nx-ok: 1(\r\n|$)/);
  });
});
