import { once } from 'node:events';
import {
  connect,
  constants,
  createServer,
  type ClientHttp2Session,
  type Http2Server,
} from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { RequestBody } from './request-body.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

async function listen(server: Http2Server): Promise<string> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(() => server.close());
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function dial(url: string): ClientHttp2Session {
  const session = connect(url);
  session.on('error', () => {});
  cleanups.push(() => session.destroy());
  return session;
}

/**
 * A client → relay (RequestBody) → "connector" chain over real HTTP/2 sockets; resolves with
 * how the connector saw the request body end: `ended <bytes>` or `reset <code>`.
 */
async function relayUpload(client: (session: ClientHttp2Session) => void): Promise<string> {
  let seen!: (outcome: string) => void;
  const outcome = new Promise<string>((resolve) => (seen = resolve));
  const connector = createServer();
  connector.on('stream', (stream) => {
    let bytes = 0;
    stream.on('data', (c: Buffer) => (bytes += c.length));
    stream.on('error', () => {});
    stream.on('end', () => setImmediate(() => !stream.aborted && seen(`ended ${bytes}`)));
    stream.on('aborted', () => seen(`reset ${stream.rstCode}`));
  });
  const tunnel = dial(await listen(connector));
  const relay = createServer();
  relay.on('request', (req) => {
    req.on('error', () => {});
    const stream = tunnel.request({ ':method': 'POST', ':path': '/' });
    stream.on('error', () => {});
    new RequestBody(req).into(stream);
  });
  client(dial(await listen(relay)));
  return outcome;
}

describe('RequestBody', () => {
  it('passes a whole body on with its end', async () => {
    const outcome = await relayUpload((session) => {
      const s = session.request({ ':method': 'POST', ':path': '/' });
      s.on('error', () => {});
      s.end(Buffer.alloc(1000));
    });
    expect(outcome).toBe('ended 1000');
  });

  it('passes a client reset on as a reset, even when Node emits the end after the abort', async () => {
    // close() ends the stream and resets it in one go: the relay's request sees 'aborted'
    // and then 'end' — a body cut short must not reach the connector as complete.
    const outcome = await relayUpload((session) => {
      const s = session.request({ ':method': 'POST', ':path': '/' });
      s.on('error', () => {});
      s.write(Buffer.alloc(1000));
      s.close(constants.NGHTTP2_CANCEL);
    });
    expect(outcome).toMatch(/^reset [1-9]/);
  });
});
