/**
 * NTLM passthrough (issue 10): a connection-bound NTLM handshake through the real relay and
 * two connectors (so a request on the wrong connector or backend connection would show),
 * with curl --ntlm as the client; HTTP/2 clients get RST_STREAM HTTP_1_1_REQUIRED.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { connect as h2connect, constants as h2constants } from 'node:http2';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// A sign-in without a browser (the bench's too): the oidc app's session for curl.
import { signIn } from '@appproxy/dev-idp/sign-in';
import { Stack, connectorId, devIdpFor, freePort, request } from './harness.js';
import {
  authenticateMessage,
  negotiateMessage,
  startNtlmBackend,
  type NtlmBackend,
} from './ntlm-backend.js';

const HOST = 'ntlm.apps.localhost';
/** The same backend behind an oidc app (no SSO): the browser's NTLM reaches it too. */
const PORTAL = 'portal.apps.localhost';
let idp: Awaited<ReturnType<typeof devIdpFor>>;
const execFileP = promisify(execFile);
let backend: NtlmBackend;
let stack: Stack;
let caFile: string;
const metricsPorts: number[] = [];
const ids: string[] = [];

beforeAll(async () => {
  backend = await startNtlmBackend({ users: { alice: 'Secret-1' } });
  stack = new Stack({
    startConnector: false,
    apps: [
      {
        name: 'Intranet',
        internalUrl: `http://127.0.0.1:${backend.port}/`,
        externalUrl: `https://${HOST}:{port}/`,
      },
      {
        name: 'Portal',
        internalUrl: `http://127.0.0.1:${backend.port}/`,
        externalUrl: `https://${PORTAL}:{port}/`,
        preAuthentication: 'oidc',
      },
    ],
  });
  idp = await devIdpFor(stack, [PORTAL]);
  await stack.start();
  for (const name of ['c1', 'c2']) {
    const dir = join(stack.dir, name);
    const port = await freePort();
    await stack.registerConnector(dir);
    await stack.startConnector(dir, 2, ['--metrics-listen', `127.0.0.1:${port}`]);
    metricsPorts.push(port);
    ids.push(connectorId(dir));
  }
  caFile = join(stack.dir, 'ca.pem');
  writeFileSync(caFile, stack.ca);
});

afterAll(async () => {
  await stack?.stop();
  await idp?.close();
  await backend?.close();
});

const url = () => `https://${HOST}:${stack.ports.public}/`;

/**
 * curl through the relay, one connection for all `urls`: per transfer, its body, final
 * status and new connections made (`body|status|connects`).
 */
async function curl(args: string[], urls: string[]): Promise<string[]> {
  const { stdout } = await execFileP('curl', [
    '-s',
    '--cacert',
    caFile,
    '--resolve',
    `${HOST}:${stack.ports.public}:127.0.0.1`,
    '-w',
    '|%{http_code}|%{num_connects}\\n',
    ...args,
    ...urls,
  ]);
  return [...stdout.matchAll(/([^|]*?)\n?\|(\d+)\|(\d+)\n/g)].map(
    ([, body, status, connects]) => `${body}|${status}|${connects}`,
  );
}

/** A stream's close, whatever error came first (`once` would reject on it). */
const closed = (stream: NodeJS.EventEmitter) =>
  new Promise<void>((resolve) => stream.once('close', () => resolve()));

/** An HTTP/1.1 client on one kept-alive connection, and an NTLM handshake on it. */
function keptAlive() {
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: stack.ca, servername: HOST });
  const get = (authorization?: string) =>
    request(stack, HOST, '/', {
      headers: authorization ? { authorization } : {},
      extra: { agent },
    });
  const handshake = async (password: string) => {
    const challenge = await get(`NTLM ${negotiateMessage().toString('base64')}`);
    const type2 = Buffer.from(String(challenge.headers['www-authenticate']).slice(5), 'base64');
    return get(`NTLM ${authenticateMessage(type2, 'alice', 'CORP', password).toString('base64')}`);
  };
  return { get, handshake, close: () => agent.destroy() };
}

async function pinnedGauges(): Promise<number[]> {
  return Promise.all(
    metricsPorts.map(async (port) => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return Number(/^appproxy_connector_pinned_connections (\d+)/m.exec(text)?.[1] ?? NaN);
    }),
  );
}

describe('NTLM passthrough', () => {
  it('curl --ntlm over HTTP/1.1: authenticated, and stays so on the same connection', async () => {
    // A few clients: each must land its whole handshake on one backend connection, though
    // four tunnels of two connectors could carry its requests.
    const backendConnections = new Set<string>();
    for (let run = 0; run < 3; run++) {
      const lines = await curl(
        ['--http1.1', '--ntlm', '-u', 'CORP\\alice:Secret-1'],
        [url(), url(), url(), url()],
      );
      expect(lines).toHaveLength(4);
      const [first] = lines;
      expect(first).toMatch(/^authenticated as CORP\\alice on connection \d+\|200\|1$/);
      const text = first!.split('|')[0];
      // Later transfers reuse curl's connection (0 new connects) and the backend's.
      for (const line of lines.slice(1)) expect(line).toBe(`${text}|200|0`);
      backendConnections.add(text!);
    }
    // Each client connection had its own backend connection.
    expect(backendConnections.size).toBe(3);
  });

  it('an authenticated backend connection never serves another client', async () => {
    // Without credentials, many times over (every connector, every pooled connection): the
    // backend must challenge each time, never answer as alice.
    for (let i = 0; i < 8; i++) {
      const res = await request(stack, HOST, '/');
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toBe('NTLM');
    }
    const lines = await curl(['--http1.1'], [url(), url(), url()]);
    expect(lines.map((l) => l.split('|')[1])).toEqual(['401', '401', '401']);
  });

  it('an oidc app without SSO pins the same way: its NTLM connection serves no other user', async () => {
    const cookie = await signIn({
      base: `https://127.0.0.1:${stack.ports.public}`,
      host: `${PORTAL}:${stack.ports.public}`,
      username: 'alice',
      password: 'alice-password',
    });
    const portal = `https://${PORTAL}:${stack.ports.public}/`;
    const lines = await curl(
      [
        '--resolve',
        `${PORTAL}:${stack.ports.public}:127.0.0.1`,
        '--http1.1',
        '--ntlm',
        '-u',
        'CORP\\alice:Secret-1',
        '-H',
        `Cookie: ${cookie}`,
      ],
      [portal, portal, portal],
    );
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^authenticated as CORP\\alice on connection \d+\|200\|1$/);
    const text = lines[0]!.split('|')[0];
    for (const line of lines.slice(1)) expect(line).toBe(`${text}|200|0`);
    // Signed in at the provider, but without NTLM of one's own: never alice's connection.
    for (let i = 0; i < 6; i++) {
      const res = await request(stack, PORTAL, '/', {
        headers: { host: `${PORTAL}:${stack.ports.public}`, cookie },
      });
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toBe('NTLM');
    }
  });

  it('a wrong password: the backend’s 401 passes through', async () => {
    const [line] = await curl(['--http1.1', '--ntlm', '-u', 'CORP\\alice:wrong'], [url()]);
    expect(line).toMatch(/\|401\|1$/);
  });

  it('the connector closes the pinned backend connection when the client connection closes', async () => {
    const client = keptAlive();
    try {
      expect((await client.handshake('Secret-1')).status).toBe(200);
      expect((await pinnedGauges()).reduce((a, b) => a + b)).toBe(1);
    } finally {
      client.close();
    }
    let gauges: number[] = [];
    for (let i = 0; i < 50; i++) {
      gauges = await pinnedGauges();
      if (gauges.every((g) => g === 0)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(gauges).toEqual([0, 0]);
  });

  it('HTTP/2: Authorization NTLM is reset with HTTP_1_1_REQUIRED, never sent to the backend', async () => {
    const client = h2connect(`https://127.0.0.1:${stack.ports.public}`, {
      ca: stack.ca,
      servername: HOST,
    });
    try {
      const before = backend.requests;
      const stream = client.request({
        ':path': '/',
        ':authority': HOST,
        authorization: `NTLM ${negotiateMessage().toString('base64')}`,
      });
      stream.on('error', () => {});
      stream.resume();
      await closed(stream);
      expect(stream.rstCode).toBe(h2constants.NGHTTP2_HTTP_1_1_REQUIRED);
      expect(backend.requests).toBe(before);
    } finally {
      client.close();
    }
  });

  it('HTTP/2: a backend 401 with an NTLM challenge is reset with HTTP_1_1_REQUIRED', async () => {
    const client = h2connect(`https://127.0.0.1:${stack.ports.public}`, {
      ca: stack.ca,
      servername: HOST,
    });
    try {
      const before = backend.requests;
      const stream = client.request({ ':path': '/', ':authority': HOST });
      let responded = false;
      stream.on('response', () => (responded = true));
      stream.on('error', () => {});
      stream.resume();
      await closed(stream);
      expect(stream.rstCode).toBe(h2constants.NGHTTP2_HTTP_1_1_REQUIRED);
      expect(responded).toBe(false);
      expect(backend.requests).toBe(before + 1);
      const logged = await stack.relay!.waitFor(
        (l) => l.msg === 'HTTP/1.1 required for connection-bound authentication',
        5_000,
        'the HTTP_1_1_REQUIRED log line',
      );
      expect(logged.requestId).toEqual(expect.any(String));
    } finally {
      client.close();
    }
  });

  it('curl --http2 --ntlm falls back to HTTP/1.1 and authenticates', async () => {
    const { stdout } = await execFileP('curl', [
      '-s',
      '--http2',
      '--ntlm',
      '-u',
      'CORP\\alice:Secret-1',
      '--cacert',
      caFile,
      '--resolve',
      `${HOST}:${stack.ports.public}:127.0.0.1`,
      '-w',
      '|%{http_code}',
      url(),
    ]);
    // curl (7.88 here) says "HTTP/2 stream 1 was not closed cleanly: HTTP_1_1_REQUIRED",
    // downgrades and runs the handshake over HTTP/1.1.
    expect(stdout).toMatch(/^authenticated as CORP\\alice on connection \d+\n\|200$/);
  });

  it('its connector gone mid-handshake: the client gets the backend’s 401, then authenticates anew', async () => {
    const { get, close } = keptAlive();
    try {
      const challenge = await get(`NTLM ${negotiateMessage().toString('base64')}`);
      expect(challenge.status).toBe(401);
      const type2 = Buffer.from(String(challenge.headers['www-authenticate']).slice(5), 'base64');
      const requestId = String(challenge.headers['x-appproxy-correlation-id']);
      const line = await stack.relay!.waitFor(
        (l) => l.msg === 'request' && l.requestId === requestId,
        5_000,
        'the request log line',
      );
      const pinned = ids.indexOf(String(line.connector));
      expect(pinned).toBeGreaterThanOrEqual(0);
      await stack.connectors[pinned]!.stop('SIGKILL');
      await stack.relay!.waitFor(
        (l) =>
          l.msg === 'connector disconnected' &&
          l.connectorId === ids[pinned] &&
          l.tunnelsLeft === 0,
        10_000,
        'the connector’s tunnels gone',
      );
      const type3 = authenticateMessage(type2, 'alice', 'CORP', 'Secret-1');
      const refused = await get(`NTLM ${type3.toString('base64')}`);
      expect(refused.status).toBe(401);
      expect(refused.headers['www-authenticate']).toBe('NTLM');
      // The same client connection, a new handshake: on the other connector now.
      const again = await get(`NTLM ${negotiateMessage().toString('base64')}`);
      const type2b = Buffer.from(String(again.headers['www-authenticate']).slice(5), 'base64');
      const ok = await get(
        `NTLM ${authenticateMessage(type2b, 'alice', 'CORP', 'Secret-1').toString('base64')}`,
      );
      expect(ok.status).toBe(200);
      expect(ok.body.toString()).toMatch(/^authenticated as CORP\\alice/);
    } finally {
      close();
    }
  });
});
