import { once } from 'node:events';
import { createSecureServer } from 'node:http2';
import { connect, type TLSSocket } from 'node:tls';
import { createDevCertificates } from '@appproxy/pki';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  MAX_RPC_HEAD_BYTES,
  divertRpcConnections,
  parseRpcHead,
  rpcPrefix,
  type RpcRequestHead,
} from './rpc-over-http.js';

const crlf = (s: string) => Buffer.from(s.replaceAll('\n', '\r\n'), 'latin1');

describe('rpcPrefix', () => {
  it('tells RPC methods from others on the first bytes, asking for more when unsure', () => {
    expect(rpcPrefix(Buffer.from('RPC_IN_DATA /x HTTP/1.1'))).toBe('rpc');
    expect(rpcPrefix(Buffer.from('RDG_OUT_DATA '))).toBe('rpc');
    expect(rpcPrefix(Buffer.from('RDG_OUT_DAT'))).toBe('more');
    expect(rpcPrefix(Buffer.from('R'))).toBe('more');
    expect(rpcPrefix(Buffer.from('RPC_IN_DATAX /'))).toBe('other');
    expect(rpcPrefix(Buffer.from('GET / HTTP/1.1'))).toBe('other');
    expect(rpcPrefix(Buffer.from('PRI * HTTP/2.0'))).toBe('other');
  });
});

describe('parseRpcHead', () => {
  const good = crlf(`RPC_IN_DATA /rpc/rpcproxy.dll?host:6001 HTTP/1.1
Host: mail.example.com
Content-Length: 1073741824
Authorization: Basic eA==

`);

  it('a head, and the bytes after it; the same fed byte by byte', () => {
    const body = Buffer.from([0, 1, 2, 3]);
    const whole = parseRpcHead(Buffer.concat([good, body]));
    expect(whole).toStrictEqual({
      head: {
        method: 'RPC_IN_DATA',
        target: '/rpc/rpcproxy.dll?host:6001',
        minor: 1,
        rawHeaders: [
          'Host',
          'mail.example.com',
          'Content-Length',
          '1073741824',
          'Authorization',
          'Basic eA==',
        ],
      } satisfies RpcRequestHead,
      rest: body,
    });
    for (let i = 1; i < good.length; i++)
      expect(parseRpcHead(good.subarray(0, i))).toBe('incomplete');
  });

  it.each([
    ['Transfer-Encoding', 'RDG_IN_DATA / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n'],
    ['two Content-Length', 'RDG_IN_DATA / HTTP/1.1\nContent-Length: 1\nContent-Length: 2\n\n'],
    ['two Host', 'RDG_IN_DATA / HTTP/1.1\nHost: a\nHost: b\n\n'],
    ['bad Content-Length', 'RDG_IN_DATA / HTTP/1.1\nContent-Length: -1\n\n'],
    ['obsolete folding', 'RDG_IN_DATA / HTTP/1.1\nX-A: 1\n  2\n\n'],
    ['bare LF', 'RDG_IN_DATA / HTTP/1.1\r\nX-A: 1\nX-B: 2\r\n\r\n'],
    ['space before colon', 'RDG_IN_DATA / HTTP/1.1\nHost : a\n\n'],
    ['not an RPC method', 'GET / HTTP/1.1\n\n'],
    ['HTTP/2.0', 'RDG_IN_DATA / HTTP/2.0\n\n'],
    ['spaces in the target', 'RDG_IN_DATA /a b HTTP/1.1\n\n'],
  ])('%s: MALFORMED_REQUEST', (_, head) => {
    const bytes = head.includes('\r') ? Buffer.from(head, 'latin1') : crlf(head);
    expect(parseRpcHead(bytes)).toMatchObject({ refused: 'MALFORMED_REQUEST' });
  });

  it('a head over 16 KiB: REQUEST_HEADERS_TOO_LARGE, complete or not', () => {
    const big = `RDG_IN_DATA / HTTP/1.1\r\nX-Big: ${'a'.repeat(MAX_RPC_HEAD_BYTES)}`;
    expect(parseRpcHead(Buffer.from(big))).toMatchObject({ refused: 'REQUEST_HEADERS_TOO_LARGE' });
    expect(parseRpcHead(Buffer.from(`${big}\r\n\r\n`))).toMatchObject({
      refused: 'REQUEST_HEADERS_TOO_LARGE',
    });
  });
});

describe('divertRpcConnections', () => {
  const dir = mkdtempSync(join(tmpdir(), 'appproxy-rpc-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('RPC connections are diverted, split anywhere; others reach Node untouched', async () => {
    const certs = await createDevCertificates({ dir, hosts: ['localhost'] });
    const server = createSecureServer(
      {
        cert: readFileSync(certs.certPath),
        key: readFileSync(certs.keyPath),
        allowHTTP1: true,
      },
      (req, res) => {
        let n = 0;
        req.on('data', (c: Buffer) => (n += c.length));
        req.on('end', () => res.end(`${req.method} ${req.url} ${n}`));
      },
    );
    divertRpcConnections(server, {
      // The body: what came with the head, then the socket's own bytes.
      onRequest: (socket, head, rest) => {
        let body = rest.toString();
        const done = () => socket.end(`diverted ${head.method} ${head.target} ${body}`);
        if (body.length >= 3) return done();
        socket.on('data', (c: Buffer) => {
          body += c.toString();
          if (body.length >= 3) done();
        });
      },
      onRefused: (socket, code) => socket.end(`refused ${code}`),
      headersTimeoutMs: () => 5_000,
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    const ca = readFileSync(certs.caCertPath);
    /** Sends `text` in pieces of `split` bytes and reads until the server closes. */
    const exchange = async (text: string, split: number) => {
      const socket: TLSSocket = connect({
        host: '127.0.0.1',
        port,
        servername: 'localhost',
        ca,
        ALPNProtocols: ['http/1.1'],
      });
      await once(socket, 'secureConnect');
      const bytes = crlf(text);
      for (let i = 0; i < bytes.length; i += split) {
        socket.write(bytes.subarray(i, i + split));
        await new Promise((r) => setTimeout(r, 1));
      }
      let out = '';
      for await (const chunk of socket) out += (chunk as Buffer).toString('latin1');
      return out;
    };
    try {
      for (const split of [1, 3, 1000]) {
        expect(await exchange('RDG_OUT_DATA /gw HTTP/1.1\nHost: x\n\nabc', split)).toBe(
          'diverted RDG_OUT_DATA /gw abc',
        );
        expect(
          await exchange(
            'POST /p HTTP/1.1\nHost: x\nContent-Length: 3\nConnection: close\n\nxyz',
            split,
          ),
        ).toMatch(/^HTTP\/1\.1 200[^]*POST \/p 3$/);
        expect(
          await exchange('RPC_IN_DATA / HTTP/1.1\nTransfer-Encoding: chunked\n\n', split),
        ).toBe('refused MALFORMED_REQUEST');
      }
    } finally {
      server.close();
    }
  });
});
