import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { Stack, json, request, type StackApp } from './harness.js';

/**
 * Item 7 of issue 12: `backendTls` — a private CA, a client certificate (mTLS) and the
 * server name, over the connector's pool and for WebSocket upgrades; and
 * `validateBackendTls` against an HTTPS backend.
 */
const dir = mkdtempSync(join(tmpdir(), 'appproxy-backend-tls-'));
const file = (name: string) => join(dir, name);
const BACKEND_NAME = 'payroll.backend.test';
let stack: Stack;
let mtls: Server;
let selfSigned: Server;

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

/** A private CA, the backend's certificate for BACKEND_NAME and two client certificates. */
function makeCertificates(): void {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl(
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'ca-key.pem',
    '-out',
    'ca.pem',
    '-days',
    '2',
    '-subj',
    '/CN=Corp Private CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign',
  );
  const leaf = (name: string, subject: string, ext: string) => {
    openssl('req', ...ec, '-keyout', `${name}-key.pem`, '-out', `${name}.csr`, '-subj', subject);
    writeFileSync(file(`${name}.ext`), ext);
    openssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca-key.pem',
      '-CAcreateserial',
      '-out',
      `${name}.pem`,
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
    );
  };
  leaf(
    'server',
    `/CN=${BACKEND_NAME}`,
    `subjectAltName=DNS:${BACKEND_NAME}\nextendedKeyUsage=serverAuth\n`,
  );
  leaf('client', '/CN=appproxy-connector', 'extendedKeyUsage=clientAuth\n');
  leaf('client2', '/CN=appproxy-connector-2', 'extendedKeyUsage=clientAuth\n');
  openssl(
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'self-key.pem',
    '-out',
    'self.pem',
    '-days',
    '2',
    '-subj',
    '/CN=127.0.0.1',
    '-addext',
    'subjectAltName=IP:127.0.0.1',
  );
}

/** What the backend saw: the client certificate's CN and the SNI. */
function seen(socket: TLSSocket): { cn: unknown; sni: unknown } {
  return { cn: socket.getPeerCertificate().subject?.CN ?? null, sni: socket.servername };
}

async function listen(server: Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as { port: number }).port;
}

const app = (name: string, port: number, extra: string): StackApp => ({
  name,
  internalUrl: `https://127.0.0.1:${port}/`,
  externalUrl: `https://${name.toLowerCase()}.apps.localhost:{port}/`,
  extra,
});
const tls = (more: string) => `    backendTls: { ca: ${file('ca.pem')}, ${more} }\n`;
const get = (name: string, path = '/', accept = 'application/json') =>
  request(stack, `${name}.apps.localhost`, path, {
    headers: { host: `${name}.apps.localhost:${stack.ports.public}`, accept },
  });

beforeAll(async () => {
  makeCertificates();
  mtls = createServer(
    {
      cert: readFileSync(file('server.pem')),
      key: readFileSync(file('server-key.pem')),
      ca: readFileSync(file('ca.pem')),
      requestCert: true,
      rejectUnauthorized: true,
    },
    (req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(seen(req.socket as TLSSocket)));
    },
  );
  const wss = new WebSocketServer({ server: mtls });
  wss.on('connection', (ws, req) => {
    ws.on('message', (m) =>
      ws.send(`${String(m)} from ${String(seen(req.socket as TLSSocket).cn)}`),
    );
  });
  selfSigned = createServer(
    { cert: readFileSync(file('self.pem')), key: readFileSync(file('self-key.pem')) },
    (_req, res) => res.end('self-signed backend'),
  );
  const port = await listen(mtls);
  const selfPort = await listen(selfSigned);
  const client = `cert: ${file('client.pem')}, key: ${file('client-key.pem')}`;
  stack = new Stack({
    apps: [
      app('Plain', port, ''),
      app('Mtls', port, tls(`${client}, serverName: ${BACKEND_NAME}`)),
      app('NoName', port, tls(client)),
      app('NoClient', port, tls(`serverName: ${BACKEND_NAME}`)),
      app('Lax', selfPort, '    validateBackendTls: false\n'),
      app('Strict', selfPort, ''),
    ],
  });
  await stack.start();
});

afterAll(async () => {
  await stack?.stop();
  mtls?.close();
  selfSigned?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('backend TLS', () => {
  it('refuses a backend signed by a private CA without backendTls: BACKEND_TLS_INVALID', async () => {
    const res = await get('plain');
    expect(res.status).toBe(502);
    expect(json(res)).toMatchObject({ error: { code: 'BACKEND_TLS_INVALID' } });
  });

  it('trusts the CA, presents the client certificate and sends serverName as SNI', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await get('mtls');
      expect(res.status).toBe(200);
      expect(json(res)).toStrictEqual({ cn: 'appproxy-connector', sni: BACKEND_NAME });
    }
  });

  it('verifies the internal host when serverName is not set', async () => {
    const res = await get('noname');
    expect(json(res)).toMatchObject({ error: { code: 'BACKEND_TLS_INVALID' } });
  });

  it('a backend that requires a client certificate refuses a connector without one', async () => {
    // TLS 1.3: the client's handshake completes before the server checks for a certificate,
    // so the connector sees the connection closed — not a TLS error of its own.
    const res = await get('noclient');
    expect(res.status).toBe(502);
    expect(json(res)).toMatchObject({ error: { code: 'BACKEND_UNREACHABLE' } });
  });

  it('carries a WebSocket over the same mTLS settings', async () => {
    const ws = new WebSocket(`wss://127.0.0.1:${stack.ports.public}/ws`, {
      headers: { host: `mtls.apps.localhost:${stack.ports.public}` },
      servername: 'mtls.apps.localhost',
      ca: stack.ca,
    });
    await once(ws, 'open');
    ws.send('ping');
    const [msg] = (await once(ws, 'message')) as [Buffer];
    expect(String(msg)).toBe('ping from appproxy-connector');
    ws.close();
  });

  it('validateBackendTls: false accepts a self-signed backend, true refuses it', async () => {
    const lax = await get('lax');
    expect(lax.status).toBe(200);
    expect(String(lax.body)).toBe('self-signed backend');
    const strict = await get('strict');
    expect(strict.status).toBe(502);
    expect(json(strict)).toMatchObject({ error: { code: 'BACKEND_TLS_INVALID' } });
  });

  it('a reload with another client certificate uses it for new requests', async () => {
    const port = (mtls.address() as { port: number }).port;
    const client2 = `cert: ${file('client2.pem')}, key: ${file('client2-key.pem')}`;
    stack.configure({
      apps: [app('Mtls', port, tls(`${client2}, serverName: ${BACKEND_NAME}`))],
    });
    const line = await stack.reload();
    expect(line.msg).toMatch(/reloaded/);
    const res = await get('mtls');
    expect(json(res)).toStrictEqual({ cn: 'appproxy-connector-2', sni: BACKEND_NAME });
  });
});
