/**
 * Hardening regressions (issue #13): every test sends what an attacker would through the real
 * relay and connector, and asserts both the client's answer and the exact bytes a recording
 * backend received.
 */
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack, freePort, request } from './harness.js';

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

  /** A position in the log: `since(mark)` gives what arrived after it. */
  mark(): number {
    return this.chunks.length;
  }

  /** What arrived after `mark`, as text per connection. */
  since(mark: number): string[] {
    const per = new Map<number, Buffer[]>();
    for (const { conn, data } of this.chunks.slice(mark)) {
      per.set(conn, [...(per.get(conn) ?? []), data]);
    }
    return [...per.values()].map((parts) => Buffer.concat(parts).toString('latin1'));
  }

  /** Request heads (up to the blank line) that arrived after `mark`. */
  heads(mark: number): string[] {
    return this.since(mark).flatMap((text) =>
      [...text.matchAll(/(?:^|\r\n\r\n)([A-Z]+ \S+ HTTP\/1\.1\r\n[\s\S]*?)(?=\r\n\r\n)/g)].map(
        (m) => m[1]!,
      ),
    );
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

let backend: RecordingBackend;
let stack: Stack;
const PUBLIC = 'public.apps.localhost';
const SECURE = 'secure.apps.localhost';
const NEST = 'nest.apps.localhost';
const NOUP = 'noup.apps.localhost';

beforeAll(async () => {
  backend = new RecordingBackend();
  const port = await backend.listen();
  const closed = await freePort();
  stack = await new Stack({
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
  /** The JSON error body's code, when the answer is one of the relay's error pages. */
  code?: string;
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
    expect(res.correlationId).toMatch(/^[0-9a-f-]{36}$/);
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
    const { connect } = await import('node:http2');
    const client = connect(`https://127.0.0.1:${stack.ports.public}`, {
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
    expect(res.correlationId).toMatch(/^[0-9a-f-]{36}$/);
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
    const { connect } = await import('node:http2');
    const client = connect(`https://127.0.0.1:${stack.ports.public}`, {
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
      expect((await ask({ ':authority': PUBLIC, host: PUBLIC })).status).toBe(200);
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
    expect(res.correlationId).toMatch(/^[0-9a-f-]{36}$/);
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
      expect(res.headers['x-appproxy-correlation-id']).toMatch(/^[0-9a-f-]{36}$/);
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
    expect(res.correlationId).toMatch(/^[0-9a-f-]{36}$/);
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
