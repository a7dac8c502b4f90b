import { SsoError } from '@appproxy/sso';
import { createLogger } from '@appproxy/telemetry';
import { META, encodeRequestMeta } from '@appproxy/tunnel';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { connect as h2connect, createServer as createH2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { BackendForwarder } from './forward.js';
import { kerberosFailure, rejectsTicket, type TicketSource } from './kerberos.js';
import { ConnectorMetrics } from './metrics.js';

describe('kerberosFailure and rejectsTicket', () => {
  it.each([
    ['SSO_USER_UNKNOWN', 403],
    ['SSO_DELEGATION_DENIED', 502],
    ['SSO_KDC_UNREACHABLE', 502],
    ['SSO_CLOCK_SKEW', 502],
  ] as const)('%s passes through with status %i', (code, status) => {
    const err = new SsoError(code, 'said the KDC', {
      kdcError: { code: 13, name: 'KDC_ERR_BADOPTION' },
    });
    expect(kerberosFailure(err)).toStrictEqual({
      code,
      status,
      detail: `${code} (KDC_ERR_BADOPTION): said the KDC`,
    });
  });

  it('anything else is SSO_KERBEROS_FAILED (502)', () => {
    expect(kerberosFailure(new Error('boom'))).toMatchObject({
      code: 'SSO_KERBEROS_FAILED',
      status: 502,
    });
    expect(kerberosFailure(new SsoError('SSO_IDENTITY_MISSING', 'x'))).toMatchObject({
      code: 'SSO_KERBEROS_FAILED',
    });
  });

  it('a 401 with a Negotiate challenge refuses the ticket; other 401s are the app’s', () => {
    expect(rejectsTicket(401, 'Negotiate')).toBe(true);
    expect(rejectsTicket(401, ['Basic realm="x"', 'negotiate oYG3MIG0'])).toBe(true);
    expect(rejectsTicket(401, 'Basic realm="Negotiate"')).toBe(false);
    expect(rejectsTicket(401, undefined)).toBe(false);
    expect(rejectsTicket(403, 'Negotiate')).toBe(false);
  });
});

describe('ConnectorMetrics.watchKerberos', () => {
  it('counts the delegator’s KDC round trips and cache hits at each scrape', () => {
    const metrics = new ConnectorMetrics();
    const stats = { kdcExchanges: 4, ticketCacheHits: 0 };
    metrics.watchKerberos(stats);
    expect(metrics.registry.render()).toMatch(
      /^appproxy_connector_kerberos_kdc_exchanges_total 4$/m,
    );
    stats.kdcExchanges = 6;
    stats.ticketCacheHits = 10;
    const text = metrics.registry.render();
    expect(text).toMatch(/^appproxy_connector_kerberos_kdc_exchanges_total 6$/m);
    expect(text).toMatch(/^appproxy_connector_kerberos_ticket_cache_hits_total 10$/m);
  });
});

describe('BackendForwarder with Kerberos single sign-on', () => {
  /** A backend that records each request's Authorization and answers as `answer` says. */
  async function setUp(
    kerberos: TicketSource | undefined,
    answer: (auth: string | undefined) => [number, Record<string, string>] = () => [200, {}],
  ) {
    const seen: IncomingHttpHeaders[] = [];
    const backend = createServer((req, res) => {
      seen.push(req.headers);
      const [status, headers] = answer(req.headers.authorization);
      res.writeHead(status, headers).end(`status ${status}`);
    });
    backend.listen(0, '127.0.0.1');
    await once(backend, 'listening');
    const metrics = new ConnectorMetrics();
    const forwarder = new BackendForwarder({
      log: createLogger({ name: 'test', write: () => {} }),
      metrics,
      ...(kerberos && { kerberos }),
    });
    const tunnel = createH2Server();
    tunnel.on('stream', forwarder.handle);
    tunnel.listen(0, '127.0.0.1');
    await once(tunnel, 'listening');
    const client = h2connect(`http://127.0.0.1:${(tunnel.address() as AddressInfo).port}`);
    onTestFinished(async () => {
      client.close();
      tunnel.close();
      backend.close();
      backend.closeAllConnections();
      await forwarder.close();
    });
    const send = async (user?: string) => {
      const s = client.request({
        ':method': 'GET',
        ':path': '/whoami',
        authorization: 'Basic Y2xpZW50OnNlbnQ=',
        ...encodeRequestMeta(
          {
            target: `http://127.0.0.1:${(backend.address() as AddressInfo).port}`,
            requestId: 'r',
            app: 'Intranet',
            timeoutMs: 5000,
            verifyTls: true,
            ...(user !== undefined && { kerberos: { user, spn: 'HTTP/intranet.corp.test' } }),
          },
          {},
        ),
      });
      s.end();
      const [headers] = (await once(s, 'response')) as [Record<string, string | number>];
      let text = '';
      for await (const chunk of s) text += String(chunk);
      return { status: headers[':status'], error: headers[META.error], text };
    };
    return { send, seen, metrics };
  }

  it('sends a fresh Negotiate header per request in place of the client’s Authorization', async () => {
    const calls: string[] = [];
    const source: TicketSource = {
      authorization: (user, spn) => {
        calls.push(`${user} ${spn}`);
        return Promise.resolve(`Negotiate token-${calls.length}`);
      },
    };
    const { send, seen } = await setUp(source);
    expect(await send('alice')).toMatchObject({ status: 200, error: undefined });
    expect(await send('alice')).toMatchObject({ status: 200 });
    expect(seen.map((h) => h.authorization)).toStrictEqual([
      'Negotiate token-1',
      'Negotiate token-2',
    ]);
    expect(calls).toStrictEqual(['alice HTTP/intranet.corp.test', 'alice HTTP/intranet.corp.test']);
    // An app without Kerberos: the source is not asked, the client's header goes through.
    expect(await send()).toMatchObject({ status: 200 });
    expect(seen[2]!.authorization).toBe('Basic Y2xpZW50OnNlbnQ=');
    expect(calls).toHaveLength(2);
  });

  it('answers SSO_NOT_CONFIGURED without Kerberos settings, and never calls the backend', async () => {
    const { send, seen, metrics } = await setUp(undefined);
    expect(await send('alice')).toMatchObject({ status: 502, error: 'SSO_NOT_CONFIGURED' });
    expect(seen).toHaveLength(0);
    expect(metrics.registry.render()).toMatch(
      /appproxy_connector_backend_errors_total\{app="Intranet",code="SSO_NOT_CONFIGURED"\} 1/,
    );
  });

  it('a KDC refusal is the user’s page, with the code; the backend is never called', async () => {
    const { send, seen } = await setUp({
      authorization: () => Promise.reject(new SsoError('SSO_USER_UNKNOWN', 'no such user bob')),
    });
    expect(await send('bob')).toMatchObject({ status: 403, error: 'SSO_USER_UNKNOWN' });
    expect(seen).toHaveLength(0);
  });

  it('a backend that still answers 401 Negotiate is SSO_BACKEND_REJECTED; a Basic 401 passes', async () => {
    let challenge = 'Negotiate';
    const { send } = await setUp({ authorization: () => Promise.resolve('Negotiate bad') }, () => [
      401,
      { 'www-authenticate': challenge },
    ]);
    expect(await send('alice')).toMatchObject({ status: 502, error: 'SSO_BACKEND_REJECTED' });
    challenge = 'Basic realm="app"';
    expect(await send('alice')).toMatchObject({
      status: 401,
      error: undefined,
      text: 'status 401',
    });
  });
});
