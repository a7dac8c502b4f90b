import { ConnectorCA, createKeyAndCsr } from '@appproxy/pki';
import { readdirSync, readFileSync } from 'node:fs';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack, request } from './harness.js';
import { random, randomBytesOf, type Random } from './random-streams.js';

/**
 * A bounded fuzzer against the relay's tunnel port (fixed seeds): random HTTP/2 frames from a
 * "connector" with a valid client certificate, the same with a certificate of another CA, and
 * random registration requests without one. The relay must neither crash nor leak (file
 * descriptors back to where they were, memory bounded), and the real connector's tunnels
 * must carry requests throughout.
 */

const SAMPLE = 'fuzz.apps.localhost';
let backend: Server;
let stack: Stack;
let valid: { cert: string; key: string };
let foreign: { cert: string; key: string };

beforeAll(async () => {
  backend = createServer((_req, res) => res.end('alive'));
  backend.listen(0, '127.0.0.1');
  await once(backend, 'listening');
  stack = await new Stack({
    apps: [
      {
        name: 'Fuzz',
        internalUrl: `http://127.0.0.1:${(backend.address() as AddressInfo).port}/`,
        externalUrl: `https://${SAMPLE}/`,
      },
    ],
  }).start();
  valid = {
    cert: readFileSync(join(stack.connectorState, 'connector.pem'), 'utf8'),
    key: readFileSync(join(stack.connectorState, 'connector-key.pem'), 'utf8'),
  };
  const otherCa = await ConnectorCA.loadOrCreate(join(stack.dir, 'other-ca'));
  const { keyPem, csrPem } = await createKeyAndCsr({ commonName: 'intruder' });
  foreign = {
    cert: (await otherCa.issueFromCsr(csrPem, { commonName: 'intruder' })).certPem,
    key: keyPem,
  };
});

afterAll(async () => {
  await stack?.stop();
  backend?.close();
});

const PREFACE_TYPES = [0x0, 0x1, 0x2, 0x3, 0x4, 0x5, 0x6, 0x7, 0x8, 0x9];

/** One HTTP/2 frame: mostly known types with plausible ids, sometimes anything at all. */
function frame(rand: Random): Buffer {
  const type =
    rand() < 0.9
      ? PREFACE_TYPES[Math.floor(rand() * PREFACE_TYPES.length)]!
      : Math.floor(rand() * 256);
  const flags = Math.floor(rand() * 256);
  const stream =
    rand() < 0.3 ? 0 : rand() < 0.8 ? 1 + Math.floor(rand() * 8) : Math.floor(rand() * 2 ** 31);
  const size = rand() < 0.5 ? Math.floor(rand() * 16) : Math.floor(rand() * 4000);
  const payload = randomBytesOf(Math.floor(rand() * 2 ** 31), size);
  const head = Buffer.alloc(9);
  // A declared length that lies now and then.
  const declared = rand() < 0.05 ? Math.floor(rand() * 2 ** 24) : size;
  head.writeUIntBE(declared, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

const EMPTY_SETTINGS = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);

function dialTunnel(identity: { cert: string; key: string } | undefined, alpn: string): TLSSocket {
  const socket = connect({
    host: '127.0.0.1',
    port: stack.ports.tunnel,
    rejectUnauthorized: false,
    ALPNProtocols: [alpn],
    ...(identity && { cert: identity.cert, key: identity.key }),
  });
  socket.on('error', () => {});
  return socket;
}

/**
 * Sends `chunks` with short random pauses, then closes; resolves with what the relay sent
 * back once the socket is gone.
 */
async function play(socket: TLSSocket, chunks: Buffer[], rand: Random): Promise<string> {
  const got: Buffer[] = [];
  socket.on('data', (c: Buffer) => got.push(c));
  const closed = new Promise((resolve) => socket.once('close', resolve));
  const ready = await Promise.race([
    once(socket, 'secureConnect').then(() => true),
    closed.then(() => false),
  ]);
  if (ready) {
    for (const chunk of chunks) {
      if (socket.destroyed) break;
      socket.write(chunk);
      if (rand() < 0.3) await new Promise((r) => setTimeout(r, Math.floor(rand() * 5)));
    }
    if (rand() < 0.5) socket.end();
    else {
      // Give the relay a moment to answer before breaking the connection.
      await new Promise((r) => setTimeout(r, 20));
      socket.destroy();
    }
  }
  // The relay may keep a half-open socket briefly; never wait long for it.
  await Promise.race([closed, new Promise((r) => setTimeout(r, 1000))]);
  socket.destroy();
  return Buffer.concat(got).toString('latin1');
}

function registrationRequest(rand: Random): Buffer {
  const bodies: Array<() => string | Buffer> = [
    () => randomBytesOf(Math.floor(rand() * 1e9), Math.floor(rand() * 5000)),
    () => JSON.stringify({ tokenId: 'x'.repeat(Math.floor(rand() * 100)), secret: 1, csr: null }),
    () =>
      JSON.stringify({
        tokenId: 'abc',
        secret: 'def',
        csr: '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----',
        hostname: 'h',
        version: 'v',
      }),
    () => JSON.stringify([1, 2, { a: [] }]),
    () => '{"tokenId":',
    () =>
      JSON.stringify({
        tokenId: 'a'.repeat(100_000),
        secret: 'b',
        csr: 'c',
        hostname: '\u0000',
        version: {},
      }),
    () => 'null',
  ];
  const body = bodies[Math.floor(rand() * bodies.length)]!();
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body);
  const paths = [
    '/v1/connectors/register',
    '/',
    '/v1/connectors/register?x=%00',
    '/../../etc/passwd',
  ];
  const path = paths[Math.floor(rand() * paths.length)]!;
  const method = rand() < 0.8 ? 'POST' : 'GET';
  const length = rand() < 0.9 ? bytes.length : Math.floor(rand() * 10_000);
  const head = `${method} ${path} HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`;
  return Buffer.concat([Buffer.from(head), bytes]);
}

function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

async function served(): Promise<boolean> {
  const res = await request(stack, SAMPLE, '/');
  return res.status === 200 && res.body.toString() === 'alive';
}

describe('tunnel port fuzzing', () => {
  it('random frames, foreign certificates and registration garbage: the relay neither crashes nor leaks, and keeps serving', async () => {
    const relay = stack.relay!;
    const pid = relay.pid;
    expect(await served()).toBe(true);
    const fdsBefore = fdCount(pid);
    const rssBefore = relay.rss();
    const connectorId = JSON.parse(
      readFileSync(join(stack.connectorState, 'connector.json'), 'utf8'),
    ).connectorId as string;
    const realDisconnects = () =>
      relay.count((l) => l.msg === 'connector disconnected' && l.connectorId === connectorId);
    const disconnectsBefore = realDisconnects();

    const kinds = [
      'valid-cert frames',
      'valid-cert bytes',
      'foreign-cert frames',
      'no-cert tunnel',
      'registration',
    ] as const;
    // Bounded twice: a count, and a time budget (about a minute in CI with everything else).
    const runs = 1500;
    const budgetEnds = Date.now() + 45_000;
    const statuses: number[] = [];
    let next = 0;
    const worker = async () => {
      while (next < runs && Date.now() < budgetEnds) {
        const i = next++;
        const rand = random(0xf022 + i);
        const kind = kinds[i % kinds.length]!;
        let socket: TLSSocket;
        const chunks: Buffer[] = [];
        if (kind === 'registration') {
          socket = dialTunnel(undefined, 'http/1.1');
          for (let k = 0; k < 1 + Math.floor(rand() * 3); k++)
            chunks.push(registrationRequest(rand));
        } else {
          const identity =
            kind === 'foreign-cert frames'
              ? foreign
              : kind === 'no-cert tunnel'
                ? undefined
                : valid;
          socket = dialTunnel(identity, 'appproxy-tunnel/1');
          if (kind === 'valid-cert bytes')
            chunks.push(randomBytesOf(i, Math.floor(rand() * 20_000)));
          else {
            if (rand() < 0.7) chunks.push(EMPTY_SETTINGS);
            for (let k = 0; k < 1 + Math.floor(rand() * 40); k++) chunks.push(frame(rand));
          }
        }
        const answer = await play(socket, chunks, rand);
        if (kind === 'registration')
          for (const [, status] of answer.matchAll(/HTTP\/1\.1 (\d{3}) /g))
            statuses.push(Number(status));
        // The real connector keeps serving while the port is being fuzzed.
        if (i % 100 === 0) expect(await served(), `request after fuzz run ${i}`).toBe(true);
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));

    expect(relay.child.exitCode, 'the relay is still running').toBeNull();
    expect(await served()).toBe(true);
    // Sockets the fuzzer opened are all gone from the relay.
    let fdsAfter = fdCount(pid);
    for (let t = 0; t < 50 && fdsAfter > fdsBefore + 4; t++) {
      await new Promise((r) => setTimeout(r, 100));
      fdsAfter = fdCount(pid);
    }
    expect(fdsAfter).toBeLessThanOrEqual(fdsBefore + 4);
    expect(relay.rss() - rssBefore).toBeLessThan(150 * 1024 * 1024);
    expect(realDisconnects(), "the real connector's tunnels stayed up").toBe(disconnectsBefore);
    // Registration garbage is answered with refusals, never a server error.
    expect(statuses.length).toBeGreaterThan(20);
    expect(statuses.filter((s) => s < 400 || s >= 500)).toEqual([]);
    // Every intruder on the tunnel ALPN was refused at the handshake or the certificate.
    const refused = relay.count((l) => l.msg === 'tunnel refused');
    expect(refused).toBeGreaterThanOrEqual(200);
    // What the relay said about the intruders: refusals, never an uncaught error.
    expect(
      relay.lines.filter((l) => l.level === 'fatal' || /uncaught/i.test(String(l.msg))),
    ).toEqual([]);
  });
});
