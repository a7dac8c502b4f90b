import { startDevIdp } from '@appproxy/dev-idp';
import { createDevCertificates } from '@appproxy/pki';
import { startSampleApp } from '@appproxy/sample-app';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { connect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Stack, json, request, type StackApp } from './harness.js';

/**
 * Hot reload through the real CLIs: SIGHUP re-reads appproxy.yaml; apps, certificates,
 * connector groups and the identity provider change for new requests while a WebSocket and
 * a request in flight go on untouched; a broken file is refused and the old one keeps
 * serving.
 */
type SampleApp = Awaited<ReturnType<typeof startSampleApp>>;
let sample: SampleApp;
let idp: Awaited<ReturnType<typeof startDevIdp>>;
let stack: Stack;

const A = 'a.apps.localhost';
const B = 'b.apps.localhost';
const OTHER = 'shop.other.localhost';
const hostHeader = (h: string) => `${h}:${stack.ports.public}`;
const get = (host: string, path: string, headers: Record<string, string> = {}) =>
  request(stack, host, path, { headers: { host: hostHeader(host), ...headers } });

/** The names in the certificate the relay presents for `servername`. */
async function servedNames(servername: string): Promise<string> {
  const socket = connect({
    host: '127.0.0.1',
    port: stack.ports.public,
    servername,
    rejectUnauthorized: false,
    ALPNProtocols: ['http/1.1'],
  });
  await once(socket, 'secureConnect');
  const names = socket.getPeerCertificate().subjectaltname ?? '';
  socket.destroy();
  return names;
}

describe('hot reload (SIGHUP)', () => {
  let appA: StackApp;
  beforeAll(async () => {
    sample = await startSampleApp({ basePath: '/' });
    idp = await startDevIdp({ port: 0 });
    appA = {
      name: 'A',
      internalUrl: `http://127.0.0.1:${sample.port}/`,
      externalUrl: `https://${A}:{port}/`,
    };
    stack = new Stack({ apps: [appA] });
    await stack.start();
  });

  afterAll(async () => {
    await stack?.stop();
    await idp?.close();
    await sample?.close();
  });

  it('new apps, certificates, groups and provider for new requests; what is open goes on', async () => {
    expect((await get(A, '/echo')).status).toBe(200);
    expect(json(await get(B, '/echo', { accept: 'application/json' })).error).toMatchObject({
      code: 'APP_NOT_FOUND',
    });
    expect(await servedNames(OTHER)).not.toContain('other.localhost');

    // Open across the reload: a WebSocket, a slow response and a download being read.
    const ws = new WebSocket(`wss://127.0.0.1:${stack.ports.public}/ws`, {
      ca: stack.ca,
      servername: A,
      headers: { host: hostHeader(A) },
    });
    await once(ws, 'open');
    const slow = get(A, '/slow?ms=2500');
    const download = get(A, '/download?mib=8');

    const other = await createDevCertificates({
      dir: stack.tlsDir,
      hosts: ['*.other.localhost'],
      name: 'other',
    });
    stack.configure({
      groups: ['Default', 'Second'],
      certificates: [{ cert: other.certPath, key: other.keyPath }],
      identityProvider: [`  issuer: ${idp.issuer}`, '  clientId: appproxy'].join('\n'),
      apps: [
        { ...appA, extra: '    maintenanceMode: true\n' },
        {
          name: 'B',
          internalUrl: `http://127.0.0.1:${sample.port}/`,
          externalUrl: `https://${B}:{port}/`,
          extra: '    connectorGroup: Second\n',
        },
        {
          name: 'Shop',
          internalUrl: `http://127.0.0.1:${sample.port}/`,
          externalUrl: `https://${OTHER}:{port}/`,
          preAuthentication: 'oidc',
        },
      ],
    });
    const answer = await stack.reload();
    expect(answer).toMatchObject({
      msg: 'configuration reloaded',
      apps: 3,
      added: ['B', 'Shop'],
      removed: [],
    });
    expect(answer).not.toHaveProperty('needRestart');

    // New requests see the new configuration.
    expect(json(await get(A, '/echo', { accept: 'application/json' })).error).toMatchObject({
      code: 'MAINTENANCE',
    });
    expect(await servedNames(OTHER)).toContain('DNS:*.other.localhost');
    // The new oidc app signs in at the provider the reload configured.
    const signIn = await get(OTHER, '/.appproxy/signin?rd=%2F');
    expect(signIn.status).toBe(302);
    expect(String(signIn.headers.location)).toMatch(new RegExp(`^${idp.issuer}/`));
    // B's group is new: no connector yet, then one registered into it serves B.
    expect(json(await get(B, '/echo', { accept: 'application/json' })).error).toMatchObject({
      code: 'CONNECTOR_UNAVAILABLE',
    });
    const second = `${stack.dir}/connector-second`;
    await stack.registerConnector(second, 'Second');
    await stack.startConnector(second, 1);
    expect(json(await get(B, '/echo')).method).toBe('GET');

    // What was open before the reload finished whole.
    const reply = once(ws, 'message') as Promise<[Buffer]>;
    ws.send('still here');
    expect((await reply)[0].toString()).toBe('still here');
    ws.close();
    const slowRes = await slow;
    expect([slowRes.status, slowRes.body.toString()]).toStrictEqual([200, 'slow done']);
    const dl = await download;
    expect(dl.status).toBe(200);
    expect(dl.body.length).toBe(8 * 1024 * 1024);
    const direct = Buffer.from(await (await fetch(`${sample.url}download?mib=8`)).arrayBuffer());
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    expect(sha(dl.body)).toBe(sha(direct));
  });

  it('a file that does not check out is refused, logged, and the running configuration keeps serving', async () => {
    const before = await get(B, '/echo');
    expect(before.status).toBe(200);
    stack.configure({
      apps: [
        {
          name: 'B',
          internalUrl: 'not a url',
          externalUrl: `https://${B}:{port}/`,
          extra: '    connectorGroup: Second\n',
        },
      ],
    });
    const answer = await stack.reload();
    expect(answer.msg).toBe(
      'configuration reload refused; the running configuration keeps serving',
    );
    expect(answer.errors).toStrictEqual(['apps[0].internalUrl: must be an absolute http(s) URL']);
    expect((await get(B, '/echo')).status).toBe(200);
    expect(stack.relay!.child.exitCode).toBeNull();

    // SSO settings only @appproxy/sso can judge (a placeholder it does not know): by path.
    stack.configure({
      apps: [
        {
          ...appA,
          preAuthentication: 'oidc',
          extra: '    sso: { mode: headers, headers: { X-User: "{nope}" } }\n',
        },
      ],
    });
    const badSso = await stack.reload();
    expect(badSso.msg).toBe(
      'configuration reload refused; the running configuration keeps serving',
    );
    expect(String(badSso.errors)).toMatch(/^apps\[0\]\.sso: APPPROXY_SSO_TEMPLATE_INVALID: /);
    expect((await get(B, '/echo')).status).toBe(200);

    // A certificate file that is not one: refused the same way.
    stack.configure({
      apps: [{ ...appA }],
      certificates: [{ cert: stack.configPath, key: stack.configPath }],
    });
    const badCert = await stack.reload();
    expect(badCert.msg).toBe(
      'configuration reload refused; the running configuration keeps serving',
    );
    // Named by setting, as `start` and `config check` name it.
    expect(String(badCert.errors)).toMatch(/^relay\.certificates\[1\]\.cert: /);
    expect((await get(B, '/echo')).status).toBe(200);
  });

  it('settings only a restart applies are named, the rest applies', async () => {
    stack.configure({
      certificates: [],
      apps: [{ ...appA }],
      relayExtra: '  pingInterval: 750ms\n',
      topExtra: 'telemetry: { otlp: { endpoint: "http://127.0.0.1:9" } }\n',
    });
    const answer = await stack.reload();
    expect(answer).toMatchObject({
      msg: 'configuration reloaded',
      removed: ['B', 'Shop'],
      needRestart: ['relay.pingIntervalMs', 'relay.pingTimeoutMs', 'telemetry'],
    });
    expect(json(await get(A, '/echo')).method).toBe('GET');
    expect((await get(B, '/echo')).status).toBe(404);
  });
});
