import type { NewAuditEvent, PublishedAppConfig, RelayConfig, StateStore } from '@appproxy/config';
import { createKeyAndCsr, type ConnectorCA } from '@appproxy/pki';
import { ConnectorGroups } from '@appproxy/routing';
import { createLogger } from '@appproxy/telemetry';
import {
  CAPABILITY,
  CONTROL,
  TunnelDialer,
  TunnelListener,
  type DiagnoseRequest,
  type TunnelSession,
} from '@appproxy/tunnel';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appTestOptions, appTestRoute } from './admin/app-tests.js';
import { openApiDocument } from './admin/openapi.js';
import { formatAppTest } from './apps-test-cli.js';
import { diagnoseRequest, testApp, type AppTestDeps } from './diagnostics.js';
import { loadConnectorCa, openRelayStore } from './relay-store.js';
import { SingleSignOn } from './single-sign-on.js';

const dir = mkdtempSync(join(tmpdir(), 'appproxy-relay-diag-'));
const log = createLogger({ name: 'relay', level: 'error', write: () => {} });
const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  rmSync(dir, { recursive: true, force: true });
});

function app(name: string, extra: Partial<PublishedAppConfig> = {}): PublishedAppConfig {
  return {
    name,
    internalUrl: `https://${name.toLowerCase()}.corp:8443/start/`,
    externalUrl: `https://${name.toLowerCase()}.example.com/`,
    connectorGroup: 'Default',
    preAuthentication: 'oidc',
    backendTimeoutMs: 85_000,
    cookies: { httpOnly: true, secure: true, persistent: false },
    translateHeaders: true,
    translateBody: false,
    translateScripts: false,
    translateJson: false,
    translateRootRelative: false,
    backendKeepAliveMs: 4000,
    validateBackendTls: true,
    maintenanceMode: false,
    upgrades: ['websocket'],
    rpcMethods: false,
    assignment: { required: false, users: [], groups: [] },
    rules: { clientIpRanges: [], requiredAmr: [] },
    ...extra,
  } as PublishedAppConfig;
}

const apps = [
  app('Wiki', {
    sso: {
      mode: 'kerberos',
      loginIdentity: 'upn',
      headers: {},
      kerberos: { spn: 'HTTP/wiki.corp' },
    },
  }),
  app('Mail', {
    translateHeaders: false,
    sso: {
      mode: 'headers',
      loginIdentity: 'email',
      headers: { 'X-Remote-User': '{loginIdentity}' },
    },
  }),
  app('Lonely', { connectorGroup: 'Empty' }),
];
const config = {
  relay: { stateDir: join(dir, 'state') },
  connectorGroups: [{ name: 'Default' }, { name: 'Empty' }],
  apps,
} as unknown as RelayConfig;

let store: StateStore;
let ca: ConnectorCA;
const groups = new ConnectorGroups<TunnelSession>();
const audited: NewAuditEvent[] = [];
const seen: DiagnoseRequest[] = [];
let deps: AppTestDeps;

async function dialer(relayUrl: string, id: string, capabilities: string[]) {
  const { keyPem, csrPem } = await createKeyAndCsr({ commonName: id });
  const { certPem } = await ca.issueFromCsr(csrPem, { commonName: id });
  const d = new TunnelDialer({
    relayUrl,
    cert: certPem,
    key: keyPem,
    ca: ca.certPem,
    hello: { connectorId: id, version: '0.0.1', hostname: `${id}-host`, capabilities },
    onStream: (stream) => stream.respond({ ':status': 404 }, { endStream: true }),
    // The connector's side is its own suite (apps/connector/src/diagnose.spec.ts): here it
    // answers with what it was asked.
    onControl: async (name, body) => {
      if (name !== CONTROL.diagnose) throw new Error('unexpected control');
      const req = body as DiagnoseRequest;
      seen.push(req);
      return {
        checks: [
          { name: 'resolve', ok: true, ms: 1, detail: `resolved ${new URL(req.url).hostname}` },
          { name: 'http', ok: req.app !== 'Mail', detail: 'GET' },
        ],
      };
    },
  });
  d.start();
  cleanups.push(() => d.stop({ drainTimeoutMs: 100 }));
  return d;
}

beforeAll(async () => {
  store = await openRelayStore({ stateDir: join(dir, 'state') });
  cleanups.push(() => store.close());
  ca = await loadConnectorCa(store, join(dir, 'state'));
  const server = await ca.issueServerCertificate({ hosts: ['127.0.0.1'] });
  const listener = new TunnelListener({
    host: '127.0.0.1',
    port: 0,
    cert: server.certPem + ca.certPem,
    key: server.keyPem,
    ca: ca.certPem,
    pingIntervalMs: 200,
    authorize: () => undefined,
  });
  listener.on('session', (s) => {
    groups.add('Default', s);
    s.once('closed', () => groups.remove(s));
  });
  const { port } = await listener.listen();
  cleanups.push(() => listener.close({ drainTimeoutMs: 100 }));
  const url = `https://127.0.0.1:${port}`;
  await dialer(url, 'new-1', [CAPABILITY.websocket, CAPABILITY.diagnose]);
  await dialer(url, 'old-1', [CAPABILITY.websocket]);
  for (let i = 0; groups.connectors().length < 2; i++) {
    if (i > 200) throw new Error('the connectors did not connect');
    await new Promise((r) => setTimeout(r, 50));
  }
  deps = {
    edge: { config, sso: new SingleSignOn(config, log), backendTls: new Map() },
    groups,
    store,
    audit: { record: (e) => audited.push(e) },
    log,
  };
});

describe('testApp', () => {
  it('runs through every live connector; an old one is CONNECTOR_TOO_OLD', async () => {
    const result = await testApp(deps, 'Wiki', { user: 'alice@corp.example', actor: 'token:ops' });
    expect(result).toMatchObject({ app: 'Wiki', ok: false, user: 'alice@corp.example' });
    const byId = Object.fromEntries(result.connectors.map((c) => [c.id, c]));
    expect(byId['new-1']).toMatchObject({ ok: true, hostname: 'new-1-host' });
    expect(byId['new-1']!.checks.map((c) => c.name)).toEqual(['resolve', 'http']);
    expect(byId['old-1']).toMatchObject({ ok: false, error: { code: 'CONNECTOR_TOO_OLD' } });
    expect(byId['old-1']!.error!.message).toMatch(/upgrade the connector/);
    expect(audited.at(-1)).toMatchObject({
      type: 'admin.app.tested',
      actor: 'token:ops',
      app: 'Wiki',
      user: 'alice@corp.example',
      detail: { ok: false },
    });
  });

  it('sends the internal URL, the Host, TLS settings and the SSO dry run', async () => {
    const result = await testApp(deps, 'Wiki', { connector: 'new-1', user: 'alice@corp.example' });
    expect(result.ok).toBe(true);
    expect(result.connectors.map((c) => c.id)).toEqual(['new-1']);
    expect(seen.at(-1)).toMatchObject({
      app: 'Wiki',
      url: 'https://wiki.corp:8443/start/',
      host: 'wiki.corp:8443',
      verifyTls: true,
      sso: {
        mode: 'kerberos',
        user: 'alice@corp.example',
        loginIdentity: 'alice@corp.example',
        loginIdentityKind: 'upn',
        spn: 'HTTP/wiki.corp',
      },
    });
    expect(audited.at(-1)).toMatchObject({ detail: { ok: true }, connector: 'new-1' });
  });

  it('an unknown app or connector is NOT_FOUND; an empty group CONNECTOR_UNAVAILABLE', async () => {
    await expect(testApp(deps, 'Nope')).rejects.toMatchObject({ code: 'NOT_FOUND', status: 404 });
    await expect(testApp(deps, 'Wiki', { connector: 'ghost' })).rejects.toMatchObject({
      code: 'NOT_FOUND',
      status: 404,
    });
    const lonely = await testApp(deps, 'Lonely');
    expect(lonely).toMatchObject({
      ok: false,
      connectors: [],
      error: { code: 'CONNECTOR_UNAVAILABLE' },
    });
    expect(lonely.error!.fix).toContain('group Empty');
  });
});

describe('diagnoseRequest', () => {
  const edge = () => ({ sso: new SingleSignOn(config, log), backendTls: new Map() });

  it('headers mode: the mapped identity, its headers for the GET, the external Host', () => {
    const req = diagnoseRequest(edge(), apps[1]!, 'alice@corp.example');
    expect(req.host).toBe('mail.example.com');
    expect(req.sso).toMatchObject({ mode: 'headers', loginIdentity: 'alice@corp.example' });
    expect(Object.values(req.headers ?? {})).toContain('alice@corp.example');
  });

  it('a mapping that needs a claim the name cannot give is refused with a fix', () => {
    const req = diagnoseRequest(edge(), apps[1]!, 'alice');
    expect(req.sso?.refused).toMatchObject({ code: 'SSO_IDENTITY_MISSING' });
    expect(req.sso?.refused?.message).toContain('email');
  });

  it('no user: the dry run is skipped, the SPN still said', () => {
    const req = diagnoseRequest(edge(), apps[0]!, undefined);
    expect(req.sso).toMatchObject({ mode: 'kerberos', spn: 'HTTP/wiki.corp' });
    expect(req.sso?.skip).toMatch(/no user/);
    expect(diagnoseRequest(edge(), apps[2]!, 'alice').sso).toEqual({ mode: 'none' });
  });
});

describe('the API body and the CLI table', () => {
  it('appTestOptions takes { connector?, user? } and refuses anything else', () => {
    expect(appTestOptions(undefined)).toEqual({});
    expect(appTestOptions({ connector: 'c1', user: ' alice ' })).toEqual({
      connector: 'c1',
      user: 'alice',
    });
    expect(() => appTestOptions({ users: 'x' })).toThrow(/unknown field users/);
    expect(() => appTestOptions({ user: 3 })).toThrow(/user must be/);
    expect(() => appTestOptions([1])).toThrow(expect.objectContaining({ code: 'BAD_REQUEST' }));
  });

  it('the route passes the body and the actor on, and is in the OpenAPI document', async () => {
    const calls: unknown[] = [];
    const route = appTestRoute({
      testApp: async (name, o) => {
        calls.push([name, o]);
        return { app: name, ok: true, at: 'now', connectors: [] };
      },
    });
    const answer = await route.handler({
      params: { name: 'Wiki' },
      query: new URLSearchParams(),
      body: { user: 'alice' },
      actor: 'token:ops',
    } as unknown as Parameters<typeof route.handler>[0]);
    expect(answer.status).toBe(200);
    expect(calls).toEqual([['Wiki', { user: 'alice', actor: 'token:ops' }]]);
    const doc = openApiDocument([route]) as {
      paths: Record<string, Record<string, { operationId: string; responses: object }>>;
    };
    const op = doc.paths['/api/v1/apps/{name}/tests']!.post!;
    expect(op.operationId).toBe('testApp');
    expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(['200', '400', '404']));
  });

  it('formatAppTest: a table per connector and FIX lines for failures and warnings', () => {
    const text = formatAppTest({
      app: 'Wiki',
      ok: false,
      at: '2026-11-30T12:00:00.000Z',
      connectors: [
        {
          id: 'c1',
          hostname: 'h1',
          ok: false,
          checks: [
            { name: 'resolve', ok: true, ms: 1.5, detail: 'wiki → 10.0.0.1' },
            { name: 'connect', ok: false, ms: 3, detail: 'refused', fix: 'start it' },
            { name: 'tls', ok: true, skipped: true, detail: 'http' },
            { name: 'http', ok: true, warn: true, detail: '404', fix: 'check the path' },
          ],
        },
        { id: 'c2', ok: false, checks: [], error: { code: 'CONNECTOR_TOO_OLD', message: 'old' } },
      ],
    });
    expect(text).toContain('App Wiki: FAIL');
    expect(text).toMatch(/^CHECK\s+RESULT\s+TIME\s+DETAIL$/m);
    expect(text).toMatch(/^resolve\s+pass\s+1\.5 ms\s+wiki → 10\.0\.0\.1$/m);
    expect(text).toMatch(/^connect\s+fail\s+3 ms\s+refused$/m);
    expect(text).toMatch(/^tls\s+skip\s+-\s+http$/m);
    expect(text).toMatch(/^http\s+warn/m);
    expect(text).toMatch(/^FIX connect: start it$/m);
    expect(text).toMatch(/^FIX http: check the path$/m);
    expect(text).toContain('CONNECTOR_TOO_OLD: old');
  });
});
