import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { connect as h2connect, constants as h2constants } from 'node:http2';
import { createServer, type Server, type Socket } from 'node:net';
import { connect, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack, request, type StackApp } from './harness.js';
import { random, randomBytesOf, writeRandomly } from './random-streams.js';

/**
 * RPC over HTTP through the real CLIs (issue 12 item 8): `RPC_IN_DATA`, `RPC_OUT_DATA`,
 * `RDG_IN_DATA`, `RDG_OUT_DATA` with a huge or absent Content-Length, streamed both ways to
 * a backend that speaks them over a raw socket, checked byte for byte with random chunks;
 * a stream far longer than the app's backend timeout (the "15-minute stream", bounded here by
 * a 1 s backendTimeout); an app without `rpcMethods` refusing them with RPC_METHOD_REFUSED.
 */

interface Seen {
  method: string;
  path: string;
  headers: Record<string, string>;
  /** sha256 of the request body bytes received, once `x-test-length` of them arrived. */
  bodyHash: Promise<string>;
}

/**
 * A backend that reads one request head by hand (Node's own parser would refuse these
 * methods), answers 200 with `Content-Length: 1073741824` (or none for RDG_*), then sends
 * `x-test-reply` seeded random bytes in random chunks, with `x-test-pause` ms between
 * chunks when set, and hashes what it receives.
 */
class RawRpcBackend {
  readonly seen: Seen[] = [];
  readonly server: Server;
  constructor() {
    this.server = createServer((socket) => this.#serve(socket));
  }

  get port(): number {
    return (this.server.address() as { port: number }).port;
  }

  #serve(socket: Socket): void {
    socket.on('error', () => {});
    let buffered = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      const [line, ...fields] = buffered.subarray(0, end).toString('latin1').split('\r\n');
      const [method, path] = line!.split(' ');
      const headers: Record<string, string> = {};
      for (const f of fields) {
        const colon = f.indexOf(':');
        headers[f.slice(0, colon).toLowerCase()] = f.slice(colon + 1).trim();
      }
      if (method === 'GET') return void socket.end('HTTP/1.1 204 No Content\r\n\r\n');
      const rest = buffered.subarray(end + 4);
      const expected = Number(headers['x-test-length'] ?? 0);
      const hash = createHash('sha256');
      let received = 0;
      const bodyHash = new Promise<string>((resolve) => {
        const take = (c: Buffer) => {
          hash.update(c);
          received += c.length;
          if (received >= expected) {
            socket.off('data', take);
            resolve(hash.digest('hex'));
          }
        };
        socket.on('data', take);
        if (rest.length > 0 || expected === 0) take(rest);
      });
      this.seen.push({ method: method!, path: path!, headers, bodyHash });
      const rdg = method!.startsWith('RDG_');
      socket.write(
        `HTTP/1.1 200 Success\r\nContent-Type: application/rpc\r\n${rdg ? '' : 'Content-Length: 1073741824\r\n'}\r\n`,
      );
      const reply = randomBytesOf(
        Number(headers['x-test-seed'] ?? 1),
        Number(headers['x-test-reply'] ?? 0),
      );
      const gap = Number(headers['x-test-pause'] ?? 0);
      void (async () => {
        if (gap > 0) {
          // Few chunks, long silences: longer than the app's backend timeout each.
          for (let i = 0; i < 3; i++) {
            socket.write(reply.subarray((i * reply.length) / 3, ((i + 1) * reply.length) / 3));
            await new Promise((r) => setTimeout(r, gap));
          }
        } else await writeRandomly(socket, reply, random(Number(headers['x-test-seed'] ?? 1) + 7));
      })();
    };
    socket.on('data', onData);
  }
}

let backend: RawRpcBackend;
let stack: Stack;
let rdg: StackApp;
let plain: StackApp;
const RDG = 'rdg.apps.localhost';
const PLAIN = 'plain.apps.localhost';

/** One RPC request on a fresh TLS connection to the relay, HTTP/1.1 only. */
async function open(host: string, head: string): Promise<TLSSocket> {
  const socket = connect({
    host: '127.0.0.1',
    port: stack.ports.public,
    servername: host,
    ca: stack.ca,
    ALPNProtocols: ['http/1.1'],
  });
  await once(socket, 'secureConnect');
  socket.write(head.replaceAll('\n', '\r\n'));
  return socket;
}

/**
 * Reads until `bytes` of body followed the response head; head and body. A `data` listener,
 * not `for await`: leaving that loop would destroy the socket while the request body is
 * still being sent.
 */
function readResponse(socket: TLSSocket, bytes: number): Promise<{ head: string; body: Buffer }> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const split = () => {
      const end = buffered.indexOf('\r\n\r\n');
      if (end < 0) return { head: buffered.toString('latin1'), body: Buffer.alloc(0) };
      return {
        head: buffered.subarray(0, end).toString('latin1'),
        body: buffered.subarray(end + 4),
      };
    };
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf('\r\n\r\n');
      if (end >= 0 && buffered.length - end - 4 >= bytes) done();
    };
    const done = () => {
      socket.off('data', onData);
      socket.off('close', done);
      socket.pause();
      resolve(split());
    };
    socket.on('data', onData);
    socket.once('close', done);
    socket.once('error', reject);
  });
}

/** Everything the relay sends until it closes the connection. */
async function readAll(socket: TLSSocket): Promise<string> {
  let out = '';
  for await (const chunk of socket) out += (chunk as Buffer).toString('latin1');
  return out;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

beforeAll(async () => {
  backend = new RawRpcBackend();
  backend.server.listen(0, '127.0.0.1');
  await once(backend.server, 'listening');
  const internalUrl = `http://127.0.0.1:${backend.port}/`;
  rdg = {
    name: 'Gateway',
    internalUrl,
    externalUrl: `https://${RDG}:{port}/`,
    extra: '    rpcMethods: true\n    backendTimeout: 1s\n',
  };
  plain = { name: 'Plain', internalUrl, externalUrl: `https://${PLAIN}:{port}/` };
  stack = new Stack({ apps: [rdg, plain] });
  await stack.start();
});

afterAll(async () => {
  await stack?.stop();
  backend?.server.close();
});

describe('RPC over HTTP', () => {
  const cases = [
    { method: 'RPC_IN_DATA', length: '1073741824', seed: 11 },
    { method: 'RPC_OUT_DATA', length: '76', seed: 12 },
    { method: 'RDG_IN_DATA', length: undefined, seed: 13 },
    { method: 'RDG_OUT_DATA', length: undefined, seed: 14 },
  ];
  for (const { method, length, seed } of cases)
    it(`${method}: both bodies streamed byte for byte (Content-Length ${length ?? 'absent'})`, async () => {
      const up = randomBytesOf(seed, 300_000);
      const down = 400_000;
      const socket = await open(
        RDG,
        `${method} /rpc/rpcproxy.dll?mail.corp:6001 HTTP/1.1
Host: ${RDG}:${stack.ports.public}
User-Agent: MSRPC
${length ? `Content-Length: ${length}\n` : ''}X-Test-Length: ${up.length}
X-Test-Reply: ${down}
X-Test-Seed: ${seed}

`,
      );
      const reading = readResponse(socket, down);
      await writeRandomly(socket, up, random(seed + 100));
      const { head, body } = await reading;
      expect(head.split('\r\n')[0]).toBe('HTTP/1.1 200 Success');
      expect(head.includes('Content-Length: 1073741824')).toBe(!method.startsWith('RDG_'));
      expect(body.length).toBe(down);
      expect(sha256(body)).toBe(sha256(randomBytesOf(seed, down)));
      const seen = backend.seen.at(-1)!;
      expect(seen).toMatchObject({ method, path: '/rpc/rpcproxy.dll?mail.corp:6001' });
      expect(seen.headers['content-length']).toBe(length);
      expect(seen.headers['x-forwarded-proto']).toBe('https');
      expect(await seen.bodyHash).toBe(sha256(up));
      socket.destroy();
    });

  it('a stream far longer than the backend timeout goes on (bounded here by a 1 s one)', async () => {
    const before = backend.seen.length;
    const socket = await open(
      RDG,
      `RDG_OUT_DATA /remoteDesktopGateway/ HTTP/1.1
Host: ${RDG}
X-Test-Length: 3
X-Test-Reply: 3000
X-Test-Pause: 1500
X-Test-Seed: 21

`,
    );
    const reading = readResponse(socket, 3000);
    // Upstream too: silent for longer than the backend timeout between bytes.
    for (const byte of [1, 2, 3]) {
      socket.write(Buffer.of(byte));
      await new Promise((r) => setTimeout(r, 1500));
    }
    const { head, body } = await reading;
    expect(head.split('\r\n')[0]).toBe('HTTP/1.1 200 Success');
    expect(body.equals(randomBytesOf(21, 3000))).toBe(true);
    expect(await backend.seen[before]!.bodyHash).toBe(sha256(Buffer.of(1, 2, 3)));
    // The client closing ends it at the backend too.
    socket.destroy();
  }, 30_000);

  it('an app without rpcMethods refuses them with RPC_METHOD_REFUSED; its other requests go on', async () => {
    const before = backend.seen.length;
    const socket = await open(
      PLAIN,
      `RPC_IN_DATA /rpc/rpcproxy.dll HTTP/1.1
Host: ${PLAIN}
Accept: application/json
Content-Length: 1073741824

`,
    );
    // The relay closes after its answer: read it whole.
    const answer = await readAll(socket);
    const split = answer.indexOf('\r\n\r\n');
    expect(answer.split('\r\n')[0]).toBe('HTTP/1.1 405 Method Not Allowed');
    const rest = answer.slice(split + 4);
    expect(JSON.parse(rest.toString()).error).toMatchObject({
      code: 'RPC_METHOD_REFUSED',
      status: 405,
      app: 'Plain',
    });
    expect(backend.seen.length).toBe(before);
    // Plain requests on both apps are Node's as before.
    for (const host of [PLAIN, RDG])
      expect((await request(stack, host, '/nothing', { headers: { host } })).status).toBe(204);
    // Over HTTP/1.1 an RPC method after another request on one connection is still Node's
    // parser's to refuse (only a connection's first request is looked at).
    const again = await open(PLAIN, `GET / HTTP/1.1\nHost: ${PLAIN}\n\n`);
    let answers = '';
    again.on('data', (c: Buffer) => (answers += c.toString('latin1')));
    await expect.poll(() => answers).toContain('204 No Content');
    again.write(`RPC_IN_DATA / HTTP/1.1\r\nHost: ${PLAIN}\r\n\r\n`);
    await once(again, 'close');
    expect(answers.match(/^HTTP\/1\.1 \d+/gm)).toStrictEqual(['HTTP/1.1 204', 'HTTP/1.1 400']);
    expect(answers).toContain('MALFORMED_REQUEST');
  });

  it('HTTP/2: refused on a plain app, HTTP_1_1_REQUIRED on an app that takes them', async () => {
    const before = backend.seen.length;
    const client = h2connect(`https://127.0.0.1:${stack.ports.public}`, {
      ca: stack.ca,
      servername: RDG,
    });
    try {
      const ask = async (host: string) => {
        const stream = client.request({
          ':method': 'RDG_OUT_DATA',
          ':path': '/remoteDesktopGateway/',
          ':authority': host,
          accept: 'application/json',
        });
        stream.on('error', () => {});
        let status = 0;
        let body = '';
        stream.on('response', (h) => (status = Number(h[':status'])));
        stream.on('data', (c: Buffer) => (body += c.toString()));
        stream.end();
        // Not `once`: it rejects on the reset's 'error'.
        await new Promise((resolve) => stream.once('close', resolve));
        return { status, body, rstCode: stream.rstCode };
      };
      const plain = await ask(PLAIN);
      expect(plain.status).toBe(405);
      expect(JSON.parse(plain.body).error).toMatchObject({ code: 'RPC_METHOD_REFUSED' });
      expect((await ask(RDG)).rstCode).toBe(h2constants.NGHTTP2_HTTP_1_1_REQUIRED);
      expect(backend.seen.length).toBe(before);
    } finally {
      client.close();
    }
  });

  it('a malformed RPC request head is refused with MALFORMED_REQUEST', async () => {
    const socket = await open(
      RDG,
      `RDG_IN_DATA / HTTP/1.1
Host: ${RDG}
Transfer-Encoding: chunked
Content-Length: 5

`,
    );
    const { head } = await readResponse(socket, 0);
    expect(head.split('\r\n')[0]).toBe('HTTP/1.1 400 Bad Request');
    expect(head.toLowerCase()).toContain('x-appproxy-error: malformed_request');
    socket.destroy();
  });

  it('a reload turns rpcMethods on for an app', async () => {
    plain.extra = '    rpcMethods: true\n';
    expect((await stack.reload()).msg).toBe('configuration reloaded');
    const socket = await open(
      PLAIN,
      `RPC_OUT_DATA /rpc/rpcproxy.dll HTTP/1.1\nHost: ${PLAIN}\nContent-Length: 0\nX-Test-Reply: 1000\nX-Test-Seed: 31\n\n`,
    );
    const { head, body } = await readResponse(socket, 1000);
    expect(head.split('\r\n')[0]).toBe('HTTP/1.1 200 Success');
    expect(body.equals(randomBytesOf(31, 1000))).toBe(true);
    socket.destroy();
  });
});
