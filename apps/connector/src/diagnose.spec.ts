import { ConnectorCA } from '@appproxy/pki';
import { SsoError } from '@appproxy/sso';
import { createLogger } from '@appproxy/telemetry';
import { backendTlsId, type DiagnoseCheck, type DiagnoseRequest } from '@appproxy/tunnel';
import { once } from 'node:events';
import { createServer as createHttp, type IncomingHttpHeaders, type Server } from 'node:http';
import { createServer as createHttps } from 'node:https';
import { createServer as createTcp, type AddressInfo, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { diagnose, diagnoseControl, type DiagnoseContext } from './diagnose.js';
import { BackendForwarder } from './forward.js';
import { ConnectorMetrics } from './metrics.js';

const log = createLogger({ name: 'test', write: () => {} });
const forwarder = new BackendForwarder({ log, metrics: new ConnectorMetrics() });
const closers: (() => Promise<unknown>)[] = [() => forwarder.close()];
afterAll(async () => {
  await Promise.all(closers.map((c) => c()));
});

const ctx = (extra: Partial<DiagnoseContext> = {}): DiagnoseContext => ({
  backendClient: (...a) => forwarder.backendClient(...a),
  log,
  ...extra,
});

async function listen(server: Server | ReturnType<typeof createTcp>): Promise<number> {
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  closers.push(
    () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(r);
      }),
  );
  return (server.address() as AddressInfo).port;
}

/** Requests the backends saw, for the header checks. */
const seen: IncomingHttpHeaders[] = [];
const answer = (status: number, headers: Record<string, string> = {}) =>
  createHttp((req, res) => {
    seen.push(req.headers);
    res.writeHead(status, headers).end('x'.repeat(10_000));
  });

const byName = (checks: DiagnoseCheck[]) => Object.fromEntries(checks.map((c) => [c.name, c]));
const run = async (req: Partial<DiagnoseRequest> & { url: string }, c = ctx()) =>
  byName((await diagnose({ app: 'Test', verifyTls: true, ...req }, c)).checks);

let ca: ConnectorCA;
let otherCa: ConnectorCA;
beforeAll(async () => {
  ca = (await ConnectorCA.create({ commonName: 'Test Backend CA' })).ca;
  otherCa = (await ConnectorCA.create({ commonName: 'Unknown CA' })).ca;
});

async function httpsBackend(opts: {
  issuer?: ConnectorCA;
  hosts?: string[];
  validityMs?: number;
  now?: Date;
}): Promise<number> {
  const issued = await (opts.issuer ?? ca).issueServerCertificate({
    hosts: opts.hosts ?? ['localhost'],
    ...(opts.validityMs && { validityMs: opts.validityMs }),
    ...(opts.now && { now: opts.now }),
  });
  return listen(
    createHttps({ cert: issued.certPem, key: issued.keyPem }, (_req, res) =>
      res.writeHead(200).end('ok'),
    ),
  );
}
const caTls = () => {
  const material = { ca: ca.certPem };
  return { id: backendTlsId(material), material };
};

describe('diagnose: resolve, connect and the GET', () => {
  it('a healthy http backend passes every check; the GET reads the status and lets go', async () => {
    const port = await listen(answer(200));
    const c = await run({ url: `http://localhost:${port}/start?x=1`, host: 'wiki.corp' });
    expect(c.resolve).toMatchObject({ ok: true });
    expect(c.resolve!.data!.addresses).toContain('127.0.0.1');
    expect(c.connect).toMatchObject({ ok: true, data: { address: '127.0.0.1', port } });
    expect(c.tls).toMatchObject({ ok: true, skipped: true });
    expect(c.sso).toMatchObject({ ok: true, skipped: true });
    expect(c.http).toMatchObject({ ok: true, data: { status: 200 } });
    expect(c.http!.warn).toBeUndefined();
    expect(seen.at(-1)).toMatchObject({ host: 'wiki.corp' });
  });

  it('an unresolvable name fails resolve with the DNS fix; connect and GET do not run', async () => {
    const c = await run({ url: 'http://nowhere.invalid/' });
    expect(c.resolve).toMatchObject({ ok: false, data: { code: 'ENOTFOUND' } });
    expect(c.resolve!.fix).toMatch(
      /the connector host cannot resolve nowhere\.invalid: check its DNS/,
    );
    expect(c.connect).toMatchObject({ ok: false, skipped: true });
    expect(c.http).toMatchObject({ ok: false, skipped: true });
  });

  it('a refused port fails connect with a fix naming host and port', async () => {
    const server = createTcp();
    const port = await listen(server);
    await new Promise((r) => server.close(r));
    const c = await run({ url: `http://127.0.0.1:${port}/` });
    expect(c.resolve).toMatchObject({ ok: true, skipped: true });
    expect(c.connect).toMatchObject({ ok: false, data: { code: 'ECONNREFUSED' } });
    expect(c.connect!.fix).toContain(`nothing listens on 127.0.0.1:${port}`);
    expect(c.http).toMatchObject({ ok: false, skipped: true });
  });

  it('a backend that never answers fails the GET within the check timeout', async () => {
    const port = await listen(createTcp(() => {}));
    const started = Date.now();
    const c = await run({ url: `http://127.0.0.1:${port}/`, checkTimeoutMs: 300 });
    expect(c.connect).toMatchObject({ ok: true });
    expect(c.http).toMatchObject({ ok: false, data: { code: 'BACKEND_TIMEOUT' } });
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('5xx fails, 4xx warns, 3xx passes with its Location', async () => {
    const c500 = await run({ url: `http://127.0.0.1:${await listen(answer(503))}/` });
    expect(c500.http).toMatchObject({ ok: false, data: { status: 503 } });
    expect(c500.http!.fix).toMatch(/logs/);
    const c404 = await run({ url: `http://127.0.0.1:${await listen(answer(404))}/nothing` });
    expect(c404.http).toMatchObject({ ok: true, warn: true, data: { status: 404 } });
    expect(c404.http!.fix).toContain('/nothing');
    const c302 = await run({
      url: `http://127.0.0.1:${await listen(answer(302, { location: '/login' }))}/`,
    });
    expect(c302.http).toMatchObject({ ok: true, data: { status: 302, location: '/login' } });
  });

  it('the checks run out of time together: later ones are not run', async () => {
    const port = await listen(createTcp(() => {}));
    const c = await run({
      url: `http://127.0.0.1:${port}/`,
      checkTimeoutMs: 400,
      totalTimeoutMs: 400,
    });
    expect(c.http).toMatchObject({ ok: false });
  });

  it('through a backendProxy: resolve and connect reach the proxy, the GET goes through it', async () => {
    const asked: string[] = [];
    const proxy = createHttp((req, res) => {
      asked.push(req.url ?? '');
      res.writeHead(200).end('via proxy');
    });
    const port = await listen(proxy);
    const c = await run({
      url: 'http://intranet.invalid/app/',
      backendProxy: `http://127.0.0.1:${port}`,
    });
    expect(c.resolve).toMatchObject({ ok: true, skipped: true });
    expect(c.connect).toMatchObject({ ok: true, data: { port } });
    expect(c.connect!.detail).toContain('backendProxy');
    expect(c.http).toMatchObject({ ok: true, data: { status: 200 } });
    expect(asked).toEqual(['http://intranet.invalid/app/']);
  });

  it('an unusable backendProxy fails the GET with a fix instead of throwing', async () => {
    const port = await listen(answer(200));
    const c = await run({ url: `http://127.0.0.1:${port}/`, backendProxy: 'not a proxy url' });
    expect(c.http).toMatchObject({ ok: false });
    expect(c.http!.fix).toMatch(/backendProxy/);
  });

  it('a malformed control body is refused with a code', async () => {
    await expect(diagnoseControl({ app: 'x' }, ctx())).rejects.toMatchObject({
      code: 'APPPROXY_TUNNEL_CONTROL_MALFORMED',
    });
  });
});

describe('diagnose: TLS as the backend hop checks it', () => {
  it('a valid certificate: subject, issuer, days left, name match, chain ok; the GET passes', async () => {
    const port = await httpsBackend({});
    const c = await run({ url: `https://localhost:${port}/`, backendTls: caTls() });
    expect(c.tls).toMatchObject({
      ok: true,
      data: { issuer: 'Test Backend CA', nameMatch: true, chain: 'ok', name: 'localhost' },
    });
    expect(c.tls!.data!.daysLeft).toBeGreaterThan(300);
    expect(c.tls!.warn).toBeUndefined();
    expect(c.http).toMatchObject({ ok: true, data: { status: 200 } });
  });

  it('an expired certificate fails with CERT_HAS_EXPIRED and a renew fix', async () => {
    const port = await httpsBackend({
      now: new Date(Date.now() - 10 * 86_400_000),
      validityMs: 86_400_000,
    });
    const c = await run({ url: `https://localhost:${port}/`, backendTls: caTls() });
    expect(c.tls).toMatchObject({ ok: false, data: { chain: 'CERT_HAS_EXPIRED' } });
    expect(c.tls!.data!.daysLeft).toBeLessThan(0);
    expect(c.tls!.fix).toMatch(/expired on .*renew it/);
    expect(c.http).toMatchObject({ ok: false, data: { code: 'BACKEND_TLS_INVALID' } });
  });

  it('a certificate for another name fails the name check', async () => {
    const port = await httpsBackend({ hosts: ['other.example'] });
    const c = await run({ url: `https://localhost:${port}/`, backendTls: caTls() });
    expect(c.tls).toMatchObject({ ok: false, data: { nameMatch: false, chain: 'ok' } });
    expect(c.tls!.fix).toMatch(/does not name localhost \(it names DNS:other\.example\)/);
  });

  it('a certificate of an unknown CA fails the chain with the verify code', async () => {
    const port = await httpsBackend({ issuer: otherCa });
    const c = await run({ url: `https://localhost:${port}/` });
    expect(c.tls).toMatchObject({ ok: false, data: { nameMatch: true, issuer: 'Unknown CA' } });
    expect(c.tls!.data!.chain).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|ISSUER/);
    expect(c.tls!.fix).toContain('backendTls.ca');
  });

  it('validateBackendTls off: the findings are reported, the check warns', async () => {
    const port = await httpsBackend({ hosts: ['other.example'] });
    const c = await run({ url: `https://localhost:${port}/`, verifyTls: false });
    expect(c.tls).toMatchObject({ ok: true, warn: true, data: { nameMatch: false } });
    expect(c.http).toMatchObject({ ok: true, data: { status: 200 } });
  });

  it('a certificate that ends within 30 days passes with a warning', async () => {
    const port = await httpsBackend({ validityMs: 5 * 86_400_000 });
    const c = await run({ url: `https://localhost:${port}/`, backendTls: caTls() });
    expect(c.tls).toMatchObject({ ok: true, warn: true });
    expect(c.tls!.fix).toMatch(/renew/);
  });

  it('backendTls.serverName is the name checked, as for traffic', async () => {
    const port = await httpsBackend({ hosts: ['pay.corp'] });
    const material = { ca: ca.certPem, serverName: 'pay.corp' };
    const c = await run({
      url: `https://127.0.0.1:${port}/`,
      backendTls: { id: backendTlsId(material), material },
    });
    expect(c.tls).toMatchObject({ ok: true, data: { name: 'pay.corp', nameMatch: true } });
    expect(c.http).toMatchObject({ ok: true });
  });

  it('a plain http port behind an https URL fails the handshake with a fix', async () => {
    const port = await listen(answer(200));
    const c = await run({ url: `https://127.0.0.1:${port}/` });
    expect(c.tls).toMatchObject({ ok: false });
    expect(c.tls!.fix).toMatch(/https port/);
  });
});

describe('diagnose: the SSO dry run', () => {
  const sso = {
    mode: 'kerberos',
    user: 'alice',
    loginIdentity: 'alice@CORP.TEST',
    loginIdentityKind: 'upn',
    spn: 'HTTP/intranet.corp.test',
  };
  const endsAt = new Date(Date.now() + 10 * 3600_000);

  it('kerberos: a ticket for the mapped identity, its end time; the GET carries Negotiate', async () => {
    const port = await listen(answer(200));
    const asked: string[] = [];
    const kerberos = {
      ticket: async (user: string, spn: string) => {
        asked.push(`${user} ${spn}`);
        return { endsAt, cached: false };
      },
      authorization: async () => 'Negotiate dGVzdA==',
    };
    const c = await run({ url: `http://127.0.0.1:${port}/`, sso }, ctx({ kerberos }));
    expect(asked).toEqual(['alice@CORP.TEST HTTP/intranet.corp.test']);
    expect(c.sso).toMatchObject({
      ok: true,
      data: { spn: sso.spn, loginIdentity: 'alice@CORP.TEST', ticketEndsAt: endsAt.toISOString() },
    });
    expect(seen.at(-1)!.authorization).toBe('Negotiate dGVzdA==');
    expect(c.http).toMatchObject({ ok: true });
  });

  it('kerberos: the KDC error is the check’s, with the fix', async () => {
    const kerberos = {
      ticket: async () => {
        throw new SsoError('SSO_USER_UNKNOWN', 'no such user', {
          kdcError: { code: 6, name: 'KDC_ERR_C_PRINCIPAL_UNKNOWN' },
        });
      },
      authorization: async () => 'never',
    };
    const port = await listen(answer(200));
    const c = await run({ url: `http://127.0.0.1:${port}/`, sso }, ctx({ kerberos }));
    expect(c.sso).toMatchObject({ ok: false, data: { code: 'SSO_USER_UNKNOWN' } });
    expect(c.sso!.detail).toContain('KDC_ERR_C_PRINCIPAL_UNKNOWN');
    expect(c.sso!.fix).toMatch(/no account alice@CORP\.TEST/);
    expect(c.http).toMatchObject({ ok: true });
  });

  it('kerberos on a connector without Kerberos settings: SSO_NOT_CONFIGURED', async () => {
    const port = await listen(answer(200));
    const c = await run({ url: `http://127.0.0.1:${port}/`, sso });
    expect(c.sso).toMatchObject({ ok: false });
    expect(c.sso!.detail).toContain('SSO_NOT_CONFIGURED');
    expect(c.sso!.fix).toContain('--kerberos-keytab');
  });

  it('a backend that refuses the delegated ticket fails the GET', async () => {
    const port = await listen(answer(401, { 'www-authenticate': 'Negotiate' }));
    const kerberos = { authorization: async () => 'Negotiate dGVzdA==' };
    const c = await run({ url: `http://127.0.0.1:${port}/`, sso }, ctx({ kerberos }));
    expect(c.sso).toMatchObject({ ok: true });
    expect(c.http).toMatchObject({ ok: false, data: { status: 401 } });
    expect(c.http!.detail).toContain('SSO_BACKEND_REJECTED');
  });

  it('headers mode: the mapped identity, and the headers go with the GET', async () => {
    const port = await listen(answer(200));
    const c = await run({
      url: `http://127.0.0.1:${port}/`,
      headers: { 'x-remote-user': 'alice' },
      sso: { mode: 'headers', user: 'alice', loginIdentity: 'alice', headers: ['X-Remote-User'] },
    });
    expect(c.sso).toMatchObject({ ok: true, data: { loginIdentity: 'alice' } });
    expect(c.sso!.detail).toContain('X-Remote-User');
    expect(seen.at(-1)!['x-remote-user']).toBe('alice');
  });

  it('a mapping the relay refused fails with its fix; no user named skips', async () => {
    const port = await listen(answer(200));
    const refused = await run({
      url: `http://127.0.0.1:${port}/`,
      sso: {
        mode: 'headers',
        user: 'alice',
        refused: { code: 'SSO_IDENTITY_MISSING', message: 'no upn', fix: 'map another claim' },
      },
    });
    expect(refused.sso).toMatchObject({ ok: false, fix: 'map another claim' });
    const skip = await run({
      url: `http://127.0.0.1:${port}/`,
      sso: { mode: 'kerberos', skip: 'no user named (--user)' },
    });
    expect(skip.sso).toMatchObject({ ok: true, skipped: true });
  });
});
