import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ConfigError,
  loadConfig,
  parseConfig,
  type ConfigIssue,
  type RelayConfig,
} from './index.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'appproxy-config-'));
  mkdirSync(join(dir, 'tls'));
  writeFileSync(join(dir, 'tls/site.pem'), 'cert');
  writeFileSync(join(dir, 'tls/site-key.pem'), 'key');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The `appproxy.yaml` of DESIGN.md, verbatim but for the tenant. */
const DESIGN_EXAMPLE = `relay:
  listen: 0.0.0.0:443            # public HTTPS for external URLs
  redirectHttp: 0.0.0.0:80        # optional 80 → 443
  tunnelListen: 0.0.0.0:8443     # connectors dial here
  adminListen: 127.0.0.1:9090    # /metrics, /healthz, /readyz, admin API
  stateDir: ./var/relay          # embedded SQLite, connector CA
  certificates: [{ cert: ./tls/site.pem, key: ./tls/site-key.pem }]   # SNI; wildcard/SAN ok
identityProvider:                # any OIDC provider: Entra ID, Keycloak, Okta, Dex, …
  issuer: https://login.microsoftonline.com/contoso/v2.0
  clientId: 0f3c9a1e
  clientSecret: \${APPPROXY_CLIENT_SECRET}
connectorGroups: [{ name: Default }]
apps:
  - name: Expenses
    internalUrl: http://expenses.corp.local:8080/
    externalUrl: https://expenses.example.com/
    connectorGroup: Default
    preAuthentication: oidc            # or passthrough
    backendTimeout: default            # 85 s; long = 180 s
    cookies: { httpOnly: true, secure: true, persistent: false }
    translateHeaders: true
    translateBody: false
    validateBackendTls: true
    maintenanceMode: false
`;

const SECRET = 'hunter2-Zq8x!very-secret';

/** A minimal valid relay section; apps are appended by the tests. */
const RELAY = `relay:
  listen: 0.0.0.0:443
  tunnelListen: :8443
  certificates:
    - cert: ./tls/site.pem
      key: ./tls/site-key.pem
`;

const parse = (yaml: string, env: NodeJS.ProcessEnv = {}) =>
  parseConfig(yaml, { baseDir: dir, env });

function configError(yaml: string, env: NodeJS.ProcessEnv = {}): ConfigError {
  try {
    parse(yaml, env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

/** The issues as `path: message` (and `@line:col` when `where`), for exact comparisons. */
const issuesOf = (yaml: string, env: NodeJS.ProcessEnv = {}) => configError(yaml, env).issues;
const summary = (issues: ConfigIssue[]) => issues.map((i) => `${i.path}: ${i.message}`);

describe('parseConfig: the DESIGN.md example', () => {
  it('resolves to the documented shape with every default', async () => {
    const file = join(dir, 'appproxy.yaml');
    writeFileSync(file, DESIGN_EXAMPLE);
    const config = await loadConfig(file, { env: { APPPROXY_CLIENT_SECRET: SECRET } });
    expect(config).toStrictEqual<RelayConfig>({
      relay: {
        listen: { host: '0.0.0.0', port: 443 },
        redirectHttp: { host: '0.0.0.0', port: 80 },
        tunnelListen: { host: '0.0.0.0', port: 8443 },
        adminListen: { host: '127.0.0.1', port: 9090 },
        stateDir: join(dir, 'var/relay'),
        certificates: [{ cert: join(dir, 'tls/site.pem'), key: join(dir, 'tls/site-key.pem') }],
        tunnelHosts: ['localhost', '127.0.0.1'],
        trustedProxies: [],
        pingIntervalMs: 500,
        pingTimeoutMs: 1_500,
        drainTimeoutMs: 30_000,
        workers: 1,
        shutdownDelayMs: 0,
        connectorCertValidityMs: 90 * 86_400_000,
        inactiveConnectorRetentionMs: 10 * 86_400_000,
        audit: { retentionMs: 90 * 86_400_000 },
        limits: {
          maxConnections: 10_000,
          maxConnectionsPerClient: 256,
          maxStreamsPerConnection: 128,
          maxResetsPerConnection: 100,
          resetWindowMs: 10_000,
          headersTimeoutMs: 10_000,
          idleTimeoutMs: 60_000,
        },
      },
      identityProvider: {
        issuer: 'https://login.microsoftonline.com/contoso/v2.0',
        clientId: '0f3c9a1e',
        clientSecret: SECRET,
        scopes: ['openid', 'profile', 'email'],
        claims: {},
        userinfo: false,
        bearerAudiences: [],
        bearerIssuers: [],
        sessionLifetimeMs: 8 * 3_600_000,
        sessionIdleTimeoutMs: 3_600_000,
      },
      connectorGroups: [{ name: 'Default' }],
      apps: [
        {
          name: 'Expenses',
          internalUrl: 'http://expenses.corp.local:8080/',
          externalUrl: 'https://expenses.example.com/',
          connectorGroup: 'Default',
          preAuthentication: 'oidc',
          backendTimeoutMs: 85_000,
          cookies: { httpOnly: true, secure: true, persistent: false },
          translateHeaders: true,
          translateBody: false,
          translateScripts: false,
          translateJson: false,
          translateRootRelative: false,
          backendKeepAliveMs: 4_000,
          validateBackendTls: true,
          maintenanceMode: false,
          upgrades: ['websocket'],
          rpcMethods: false,
          assignment: { required: false, users: [], groups: [] },
          rules: { clientIpRanges: [], requiredAmr: [] },
        },
      ],
    });
  });

  it('pre-authentication settings: claims, bearer audiences, sessions, assignment and rules', () => {
    const config = parse(`relay:
  listen: 443
  tunnelListen: 8443
  certificates: [{ cert: tls/site.pem, key: tls/site-key.pem }]
  sessionSecrets:
    - { id: '2026-11', secret: '${'s'.repeat(32)}' }
identityProvider:
  issuer: https://idp.example.com/realms/corp
  clientId: appproxy
  claims: { roles: realm_access.roles, preferredUsername: username }
  userinfo: true
  bearerAudiences: [api://appproxy]
  session: { lifetime: 12h, idleTimeout: 30m }
apps:
  - name: Payroll
    internalUrl: http://payroll.corp/
    externalUrl: https://payroll.example.com/
    assignment: { required: true, users: [alice@example.com], groups: [Finance] }
    rules: { clientIpRanges: [10.0.0.0/8, '2001:db8::/32'], requiredAmr: [mfa] }
    session: { idleTimeout: 5m }
    bearerAudiences: [api://payroll]
`);
    expect(config.relay.sessionSecrets).toEqual([{ id: '2026-11', secret: 's'.repeat(32) }]);
    expect(config.identityProvider).toMatchObject({
      claims: { roles: 'realm_access.roles', preferredUsername: 'username' },
      userinfo: true,
      bearerAudiences: ['api://appproxy'],
      sessionLifetimeMs: 12 * 3_600_000,
      sessionIdleTimeoutMs: 30 * 60_000,
    });
    expect(config.apps[0]).toMatchObject({
      assignment: { required: true, users: ['alice@example.com'], groups: ['Finance'] },
      rules: { clientIpRanges: ['10.0.0.0/8', '2001:db8::/32'], requiredAmr: ['mfa'] },
      session: { idleTimeoutMs: 300_000 },
      bearerAudiences: ['api://payroll'],
    });
  });

  it('fills in every default of a minimal file', () => {
    const config = parse(`${RELAY}apps:
  - name: Wiki
    internalUrl: HTTP://Wiki.Corp.Local:80/docs
    externalUrl: https://wiki.example.com:443/team
    preAuthentication: passthrough
`);
    expect(config.relay).toStrictEqual({
      listen: { host: '0.0.0.0', port: 443 },
      tunnelListen: { host: '0.0.0.0', port: 8443 },
      stateDir: join(dir, 'var/relay'),
      certificates: [{ cert: join(dir, 'tls/site.pem'), key: join(dir, 'tls/site-key.pem') }],
      tunnelHosts: ['localhost', '127.0.0.1'],
      trustedProxies: [],
      pingIntervalMs: 500,
      pingTimeoutMs: 1_500,
      drainTimeoutMs: 30_000,
      workers: 1,
      shutdownDelayMs: 0,
      connectorCertValidityMs: 90 * 86_400_000,
      inactiveConnectorRetentionMs: 10 * 86_400_000,
      audit: { retentionMs: 90 * 86_400_000 },
      limits: {
        maxConnections: 10_000,
        maxConnectionsPerClient: 256,
        maxStreamsPerConnection: 128,
        maxResetsPerConnection: 100,
        resetWindowMs: 10_000,
        headersTimeoutMs: 10_000,
        idleTimeoutMs: 60_000,
      },
    });
    expect(config.identityProvider).toBeUndefined();
    expect(config.connectorGroups).toStrictEqual([{ name: 'Default' }]);
    expect(config.apps).toStrictEqual([
      {
        name: 'Wiki',
        internalUrl: 'http://wiki.corp.local/docs/',
        externalUrl: 'https://wiki.example.com/team/',
        connectorGroup: 'Default',
        preAuthentication: 'passthrough',
        backendTimeoutMs: 85_000,
        cookies: { httpOnly: true, secure: true, persistent: false },
        translateHeaders: true,
        translateBody: false,
        translateScripts: false,
        translateJson: false,
        translateRootRelative: false,
        backendKeepAliveMs: 4_000,
        validateBackendTls: true,
        maintenanceMode: false,
        upgrades: ['websocket'],
        rpcMethods: false,
        assignment: { required: false, users: [], groups: [] },
        rules: { clientIpRanges: [], requiredAmr: [] },
      },
    ]);
  });

  it('supports anchors and merge keys', () => {
    const config = parse(`${RELAY}apps:
  - &base
    name: A
    internalUrl: http://a.corp/
    externalUrl: https://a.example.com/
    preAuthentication: passthrough
    backendTimeout: long
  - <<: *base
    name: B
    externalUrl: https://b.example.com/
`);
    expect(
      config.apps.map((a) => [a.name, a.internalUrl, a.externalUrl, a.backendTimeoutMs]),
    ).toStrictEqual([
      ['A', 'http://a.corp/', 'https://a.example.com/', 180_000],
      ['B', 'http://a.corp/', 'https://b.example.com/', 180_000],
    ]);
  });

  it('allows zero apps', () => {
    expect(parse(RELAY).apps).toStrictEqual([]);
  });

  it('converts durations, listen addresses and the long timeout', () => {
    const config = parse(`relay:
  listen: 443
  redirectHttp: "[::]:80"
  tunnelListen: relay.example.com:8443
  adminListen: '[::1]:9090'
  stateDir: /srv/appproxy
  certificates: [{ cert: tls/site.pem, key: ${join(dir, 'tls/site-key.pem')} }]
  tunnelHosts: [relay.example.com, 203.0.113.7]
  trustedProxies: [10.0.0.0/8, 192.0.2.1, '2001:db8::/32']
  pingInterval: 5s
  drainTimeout: 1m30s
connectorGroups: [{ name: Default }, { name: Berlin }]
apps:
  - { name: A, internalUrl: http://a/, externalUrl: https://a.example.com/, preAuthentication: passthrough, backendTimeout: long, connectorGroup: Berlin }
  - { name: B, internalUrl: http://b/, externalUrl: https://b.example.com/, preAuthentication: passthrough, backendTimeout: 500ms }
  - { name: C, internalUrl: http://c/, externalUrl: https://c.example.com/, preAuthentication: passthrough, backendTimeout: 2000,
      cookies: { persistent: true, sameSite: Lax }, translateBody: true, maintenanceMode: true }
`);
    expect(config.relay.listen).toStrictEqual({ host: '0.0.0.0', port: 443 });
    expect(config.relay.redirectHttp).toStrictEqual({ host: '::', port: 80 });
    expect(config.relay.tunnelListen).toStrictEqual({ host: 'relay.example.com', port: 8443 });
    expect(config.relay.adminListen).toStrictEqual({ host: '::1', port: 9090 });
    expect(config.relay.stateDir).toBe('/srv/appproxy');
    expect(config.relay.certificates).toStrictEqual([
      { cert: join(dir, 'tls/site.pem'), key: join(dir, 'tls/site-key.pem') },
    ]);
    expect(config.relay.tunnelHosts).toStrictEqual(['relay.example.com', '203.0.113.7']);
    expect(config.relay.trustedProxies).toStrictEqual(['10.0.0.0/8', '192.0.2.1', '2001:db8::/32']);
    expect(config.relay.pingIntervalMs).toBe(5_000);
    expect(config.relay.drainTimeoutMs).toBe(90_000);
    expect(config.apps.map((a) => a.backendTimeoutMs)).toStrictEqual([180_000, 500, 2_000]);
    expect(config.apps[0]!.connectorGroup).toBe('Berlin');
    expect(config.apps[2]!.cookies).toStrictEqual({
      httpOnly: true,
      secure: true,
      persistent: true,
      sameSite: 'Lax',
    });
    expect(config.apps[2]!.translateBody).toBe(true);
    expect(config.apps[2]!.maintenanceMode).toBe(true);
    expect(config.relay.pingTimeoutMs).toBe(15_000);
  });

  it('public listener limits, also from ${ENV} text', () => {
    const config = parse(
      `${RELAY}  limits:
    maxConnections: 500
    maxConnectionsPerClient: \${PER_CLIENT}
    maxStreamsPerConnection: 10
    maxResetsPerConnection: 5
    resetWindow: 1s
    headersTimeout: 2s
    idleTimeout: 1m
apps: []
`,
      { PER_CLIENT: '20' },
    );
    expect(config.relay.limits).toStrictEqual({
      maxConnections: 500,
      maxConnectionsPerClient: 20,
      maxStreamsPerConnection: 10,
      maxResetsPerConnection: 5,
      resetWindowMs: 1_000,
      headersTimeoutMs: 2_000,
      idleTimeoutMs: 60_000,
    });
  });

  it('connector lifecycle settings, sticky routing and backend proxies', () => {
    const config = parse(`relay:
  listen: 443
  tunnelListen: 8443
  certificates: [{ cert: tls/site.pem, key: tls/site-key.pem }]
  pingInterval: 500ms
  pingTimeout: 3s
  connectorCertValidity: 365d
  inactiveConnectorRetention: 2d
  audit: { retention: 30d }
apps:
  - { name: A, internalUrl: http://a/, externalUrl: https://a.example.com/, preAuthentication: passthrough, sticky: session }
  - { name: B, internalUrl: http://b/, externalUrl: https://b.example.com/, preAuthentication: passthrough, sticky: clientAddress,
      backendProxy: 'http://u:p@proxy.corp:3128/' }
  - { name: C, internalUrl: http://c/, externalUrl: https://c.example.com/, preAuthentication: passthrough, sticky: none }
`);
    expect(config.relay.pingIntervalMs).toBe(500);
    expect(config.relay.pingTimeoutMs).toBe(3_000);
    expect(config.relay.connectorCertValidityMs).toBe(365 * 86_400_000);
    expect(config.relay.inactiveConnectorRetentionMs).toBe(2 * 86_400_000);
    expect(config.relay.audit).toStrictEqual({ retentionMs: 30 * 86_400_000 });
    expect(config.apps.map((a) => a.sticky)).toStrictEqual(['session', 'clientAddress', undefined]);
    expect(config.apps[1]!.backendProxy).toBe('http://u:p@proxy.corp:3128');
    expect(config.apps[0]).not.toHaveProperty('backendProxy');
  });

  it('upgrades: websocket by default, listed protocols lower-cased, [] for none', () => {
    const config = parse(`${RELAY}apps:
  - { name: A, internalUrl: http://a/, externalUrl: https://a.example.com/, preAuthentication: passthrough }
  - { name: B, internalUrl: http://b/, externalUrl: https://b.example.com/, preAuthentication: passthrough,
      upgrades: [WebSocket, TLS/1.3, websocket] }
  - { name: C, internalUrl: http://c/, externalUrl: https://c.example.com/, preAuthentication: passthrough, upgrades: [] }
`);
    expect(config.apps.map((a) => a.upgrades)).toStrictEqual([
      ['websocket'],
      ['websocket', 'tls/1.3'],
      [],
    ]);
  });

  it('upgrades: refuses h2c and anything that is not a protocol token', () => {
    const yaml = `${RELAY}apps:
  - { name: A, internalUrl: http://a/, externalUrl: https://a.example.com/, preAuthentication: passthrough,
      upgrades: [H2C, 'websocket, h2c', '', websocket] }
`;
    expect(summary(issuesOf(yaml))).toStrictEqual([
      'apps[0].upgrades[0]: h2c cannot be forwarded: an h2c upgrade would carry requests past the relay unchecked',
      'apps[0].upgrades[1]: must be an Upgrade protocol token, e.g. websocket',
      'apps[0].upgrades[2]: must be an Upgrade protocol token, e.g. websocket',
    ]);
  });
});

describe('parseConfig: relay.acme', () => {
  it('resolves with http-01 by default and caBundle relative to the config file', () => {
    const config = parse(`${RELAY}  redirectHttp: 0.0.0.0:80
  acme:
    directoryUrl: https://acme.example.com/dir
    email: ops@example.com
    caBundle: ./tls/site.pem
apps: []
`);
    expect(config.relay.acme).toStrictEqual({
      directoryUrl: 'https://acme.example.com/dir',
      email: 'ops@example.com',
      challenge: 'http-01',
      caBundle: join(dir, 'tls/site.pem'),
    });
    expect(parse(`${RELAY}apps: []\n`).relay.acme).toBeUndefined();
  });

  it('tls-alpn-01 needs no redirectHttp', () => {
    const config =
      parse(`${RELAY}  acme: { directoryUrl: 'https://a.example/dir', email: a@b.c, challenge: tls-alpn-01 }
apps: []
`);
    expect(config.relay.acme?.challenge).toBe('tls-alpn-01');
  });

  it('refuses bad settings, each at its path', () => {
    const yaml = `${RELAY}  acme:
    directoryUrl: http://acme.example.com/dir
    email: ops
    challenge: dns-01
    caBundle: ./tls/missing.pem
apps: []
`;
    expect(summary(issuesOf(yaml))).toStrictEqual([
      'relay.acme.directoryUrl: must be an https:// URL',
      'relay.acme.email: must be an email address',
      'relay.acme.challenge: must be http-01 or tls-alpn-01',
      `relay.acme.caBundle: file not found: ${join(dir, 'tls/missing.pem')}`,
    ]);
    expect(
      summary(
        issuesOf(`${RELAY}  acme: { directoryUrl: 'https://a.example/dir', email: a@b.c }
apps: []
`),
      ),
    ).toStrictEqual([
      'relay.acme: challenge http-01 (the default) is answered on relay.redirectHttp: set it (port 80 from the internet), or use challenge: tls-alpn-01',
    ]);
  });
});

describe('parseConfig: relay.store and relay.storeKey', () => {
  const KEY = 'k'.repeat(40);
  it('takes a PostgreSQL URL and the key from ${ENV}', () => {
    const config = parse(
      `${RELAY}  store: { postgres: { url: 'postgres://appproxy:\${PGPASSWORD}@db.internal:5432/appproxy' } }
  storeKey: \${APPPROXY_STORE_KEY}
apps: []
`,
      { PGPASSWORD: 'pw', APPPROXY_STORE_KEY: KEY },
    );
    expect(config.relay.store).toStrictEqual({
      postgres: { url: 'postgres://appproxy:pw@db.internal:5432/appproxy' },
    });
    expect(config.relay.storeKey).toBe(KEY);
    expect(parse(`${RELAY}apps: []\n`).relay.store).toBeUndefined();
  });

  it('refuses a store without its key, a short key and a URL that is not postgres://', () => {
    expect(
      summary(
        issuesOf(`${RELAY}  store: { postgres: { url: 'postgres://db.internal/appproxy' } }
apps: []
`),
      ),
    ).toStrictEqual(['relay.storeKey: is required']);
    expect(
      summary(
        issuesOf(`${RELAY}  store: { postgres: { url: 'mysql://db/appproxy' } }
  storeKey: short
apps: []
`),
      ),
    ).toStrictEqual([
      'relay.store.postgres.url: must be a postgres:// URL (the password via ${ENV})',
      'relay.storeKey: must be at least 32 characters (use ${ENV})',
    ]);
  });
});

describe('parseConfig: apps[].sso and relay.stripRequestHeaders', () => {
  const IDP = `identityProvider: { issuer: https://idp.example.com, clientId: c }
`;
  it('resolves headers and jwt modes with their defaults; none is no sso at all', () => {
    const config = parse(`${RELAY}  stripRequestHeaders: [X-Remote-User, X-Auth-Request-*]
${IDP}apps:
  - name: Wiki
    internalUrl: http://wiki.corp:8080/
    externalUrl: https://wiki.example.com/
    sso: { mode: headers, headers: { X-Remote-User: "{loginIdentity}", x-remote-groups: "{groups}" } }
  - name: Api
    internalUrl: https://api.corp/base/
    externalUrl: https://api.example.com/
    sso: { mode: jwt, loginIdentity: "claim:employee.id" }
  - name: Grafana
    internalUrl: http://grafana.corp/
    externalUrl: https://grafana.example.com/
    sso: { mode: jwt, loginIdentity: email, jwt: { header: Authorization, audience: grafana, lifetime: 5m } }
  - { name: Plain, internalUrl: http://plain/, externalUrl: https://plain.example.com/, sso: { mode: none } }
`);
    expect(config.relay.stripRequestHeaders).toStrictEqual(['X-Remote-User', 'X-Auth-Request-*']);
    expect(config.apps.map((a) => a.sso)).toStrictEqual([
      {
        mode: 'headers',
        loginIdentity: 'upn',
        headers: { 'x-remote-user': '{loginIdentity}', 'x-remote-groups': '{groups}' },
      },
      {
        mode: 'jwt',
        loginIdentity: 'claim:employee.id',
        headers: {},
        jwt: { header: 'x-appproxy-assertion', audience: 'https://api.corp', lifetimeMs: 60_000 },
      },
      {
        mode: 'jwt',
        loginIdentity: 'email',
        headers: {},
        jwt: { header: 'authorization', audience: 'grafana', lifetimeMs: 300_000 },
      },
      undefined,
    ]);
  });

  it('resolves kerberos mode: the SPN given, or HTTP/<internal host>', () => {
    const config = parse(`${RELAY}${IDP}apps:
  - { name: Intranet, internalUrl: http://intranet.corp.test:8080/, externalUrl: https://intranet.example.com/,
      sso: { mode: kerberos } }
  - { name: Hr, internalUrl: https://10.1.2.3/, externalUrl: https://hr.example.com/,
      sso: { mode: kerberos, loginIdentity: samAccountName, kerberos: { spn: HTTP/hr.corp.test@CORP.TEST } } }
`);
    expect(config.apps.map((a) => a.sso)).toStrictEqual([
      {
        mode: 'kerberos',
        loginIdentity: 'upn',
        headers: {},
        kerberos: { spn: 'HTTP/intranet.corp.test' },
      },
      {
        mode: 'kerberos',
        loginIdentity: 'samAccountName',
        headers: {},
        kerberos: { spn: 'HTTP/hr.corp.test@CORP.TEST' },
      },
    ]);
  });

  it('refuses sso on passthrough apps, kerberos settings elsewhere and malformed settings', () => {
    const yaml = `${RELAY}  stripRequestHeaders: ['X Remote', '*']
${IDP}apps:
  - { name: A, internalUrl: http://a/, externalUrl: https://a.example.com/, preAuthentication: passthrough,
      sso: { mode: headers, headers: { X-Remote-User: "{loginIdentity}" } } }
  - { name: B, internalUrl: http://b/, externalUrl: https://b.example.com/,
      sso: { mode: jwt, kerberos: { spn: "HTTP b" } } }
  - { name: C, internalUrl: http://c/, externalUrl: https://c.example.com/, sso: { mode: headers } }
  - { name: D, internalUrl: http://d/, externalUrl: https://d.example.com/,
      sso: { mode: headers, loginIdentity: samaccountname, headers: { "Bad Name": x } } }
  - { name: E, internalUrl: http://e/, externalUrl: https://e.example.com/,
      sso: { mode: jwt, headers: { X-A: b } } }
  - { name: G, internalUrl: http://g/, externalUrl: https://g.example.com/, sso: { mode: jwt, jwt: { lifetime: 2h } } }
`;
    expect(summary(issuesOf(yaml)).sort()).toStrictEqual(
      [
        'relay.stripRequestHeaders[0]: must be a header name, or a prefix ending in * (e.g. X-Auth-Request-*)',
        'relay.stripRequestHeaders[1]: must be a header name, or a prefix ending in * (e.g. X-Auth-Request-*)',
        'apps[1].sso.kerberos: applies only to mode: kerberos',
        'apps[1].sso.kerberos.spn: must be a service principal name like HTTP/intranet.corp.example',
        'apps[2].sso.headers: is required',
        'apps[3].sso.loginIdentity: must be one of: upn, email, preferredUsername, sub, localPart, samAccountName, claim:<dotted.path>',
        'apps[3].sso.headers["Bad Name"]: must be a header name',
        'apps[4].sso.headers: applies only to mode: headers',
        'apps[5].sso.jwt.lifetime: must be at most 1h',
        'apps[0].sso: applies only to preAuthentication: oidc',
      ].sort(),
    );
    expect(
      summary(
        issuesOf(`${RELAY}${IDP}apps:
  - { name: F, internalUrl: http://f/, externalUrl: https://f.example.com/, sso: { mode: headers, headers: {} } }
`),
      ),
    ).toStrictEqual([
      'apps[0].sso.headers: mode headers needs at least one header, e.g. X-Remote-User: "{loginIdentity}"',
    ]);
  });
});

describe('parseConfig: each kind of mistake has its exact path and message', () => {
  const app = (fields: string) => `${RELAY}apps:
  - name: Expenses
    internalUrl: http://expenses.corp.local/
    externalUrl: https://expenses.example.com/
    preAuthentication: passthrough
${fields}`;

  it('relative internalUrl, with line and column of the value', () => {
    const yaml = `${RELAY}apps:
  - name: A
    internalUrl: http://a.corp/
    externalUrl: https://a.example.com/
    preAuthentication: passthrough
  - name: B
    internalUrl: http://b.corp/
    externalUrl: https://b.example.com/
    preAuthentication: passthrough
  - name: C
    internalUrl: /c/relative
    externalUrl: https://c.example.com/
    preAuthentication: passthrough
`;
    const err = configError(yaml);
    expect(err.code).toBe('APPPROXY_CONFIG_INVALID');
    expect(err.issues).toStrictEqual([
      {
        path: 'apps[2].internalUrl',
        message: 'must be an absolute http(s) URL',
        line: 17,
        column: 18,
      },
    ]);
    expect(err.message).toBe(
      'appproxy.yaml:17:18 apps[2].internalUrl: must be an absolute http(s) URL',
    );
  });

  it.each([
    ['ftp://files.corp/', 'must be an absolute http(s) URL'],
    ['expenses.corp.local', 'must be an absolute http(s) URL'],
    ['http://user:pw@expenses.corp.local/', 'must not contain credentials'],
    ['http://expenses.corp.local/?a=1', 'must not have a query or fragment'],
    ['http://expenses.corp.local/#top', 'must not have a query or fragment'],
  ])('internalUrl %s', (url, message) => {
    const yaml = `${RELAY}apps:
  - { name: A, internalUrl: "${url}", externalUrl: https://a.example.com/, preAuthentication: passthrough }
`;
    expect(summary(issuesOf(yaml))).toStrictEqual([`apps[0].internalUrl: ${message}`]);
  });

  it('http externalUrl', () => {
    const yaml = `${RELAY}apps:
  - { name: A, internalUrl: http://a.corp/, externalUrl: http://a.example.com/, preAuthentication: passthrough }
`;
    expect(issuesOf(yaml)).toStrictEqual([
      {
        path: 'apps[0].externalUrl',
        message: 'must be an absolute https URL',
        line: 8,
        column: 58,
      },
    ]);
  });

  it('unknown key, at the key, with a suggestion', () => {
    const err = configError(app('    translateHeader: true\n'));
    expect(err.issues).toStrictEqual([
      {
        path: 'apps[0].translateHeader',
        message: 'unknown key (did you mean "translateHeaders"?)',
        line: 12,
        column: 5,
      },
    ]);
    expect(err.message).toBe(
      'appproxy.yaml:12:5 apps[0].translateHeader: unknown key (did you mean "translateHeaders"?)',
    );
  });

  it('unknown keys at every level, each on its own line', () => {
    const yaml = `relay:
  listen: 443
  tunnelListen: 8443
  certificates: [{ cert: ./tls/site.pem, key: ./tls/site-key.pem, chain: x }]
  colour: blue
aps: []
`;
    expect(summary(issuesOf(yaml))).toStrictEqual([
      'relay.certificates[0].chain: unknown key',
      'relay.colour: unknown key',
      'aps: unknown key (did you mean "apps"?)',
    ]);
  });

  it('duplicate app name', () => {
    const yaml = `${RELAY}apps:
  - { name: Expenses, internalUrl: http://a/, externalUrl: https://a.example.com/, preAuthentication: passthrough }
  - { name: Expenses, internalUrl: http://b/, externalUrl: https://b.example.com/, preAuthentication: passthrough }
`;
    expect(issuesOf(yaml)).toStrictEqual([
      {
        path: 'apps[1].name',
        message: 'duplicate app name "Expenses" (also apps[0])',
        line: 9,
        column: 13,
      },
    ]);
  });

  it('same external URL (host + path) twice', () => {
    const yaml = `${RELAY}apps:
  - { name: A, internalUrl: http://a/, externalUrl: https://apps.example.com/a, preAuthentication: passthrough }
  - { name: B, internalUrl: http://b/, externalUrl: https://apps.example.com/b/, preAuthentication: passthrough }
  - { name: C, internalUrl: http://c/, externalUrl: "https://APPS.example.com:443/a/", preAuthentication: passthrough }
`;
    expect(summary(issuesOf(yaml))).toStrictEqual([
      'apps[2].externalUrl: same external URL as apps[0]',
    ]);
  });

  it('unknown connectorGroup', () => {
    expect(issuesOf(app('    connectorGroup: Berlin\n'))).toStrictEqual([
      {
        path: 'apps[0].connectorGroup',
        message: 'no connector group named "Berlin"',
        line: 12,
        column: 21,
      },
    ]);
  });

  it('the default connector group must exist too', () => {
    const yaml = `${RELAY}connectorGroups: [{ name: Berlin }]
apps:
  - { name: A, internalUrl: http://a/, externalUrl: https://a.example.com/, preAuthentication: passthrough }
`;
    expect(summary(issuesOf(yaml))).toStrictEqual([
      'apps[0].connectorGroup: no connector group named "Default" (set connectorGroup, or add it to connectorGroups)',
    ]);
  });

  it('duplicate connector group', () => {
    const yaml = `${RELAY}connectorGroups: [{ name: Default }, { name: Default }]\n`;
    expect(summary(issuesOf(yaml))).toStrictEqual([
      'connectorGroups[1].name: duplicate connector group name "Default" (also connectorGroups[0])',
    ]);
  });

  it.each([
    [
      'backendTimeout: 5x',
      'apps[0].backendTimeout: must be default (85s), long (180s), a duration such as 30s, or a number of milliseconds',
    ],
    [
      'backendTimeout: forever',
      'apps[0].backendTimeout: must be default (85s), long (180s), a duration such as 30s, or a number of milliseconds',
    ],
    [
      'backendTimeout: -5',
      'apps[0].backendTimeout: must be default (85s), long (180s), a duration such as 30s, or a number of milliseconds',
    ],
    ['backendTimeout: 0s', 'apps[0].backendTimeout: must be longer than 0'],
    ['backendTimeout: 30d', 'apps[0].backendTimeout: must be at most 24d'],
  ])('bad duration %s', (field, expected) => {
    expect(summary(issuesOf(app(`    ${field}\n`)))).toStrictEqual([expected]);
  });

  it('bad relay durations and addresses', () => {
    const yaml = `relay:
  listen: 0.0.0.0:99999
  tunnelListen: ::1:8443
  adminListen: true
  certificates: [{ cert: ./tls/site.pem, key: ./tls/site-key.pem }]
  pingInterval: often
  trustedProxies: [10.0.0.0/33, proxy.corp]
  tunnelHosts: ["not a host"]
  connectorCertValidity: 20y
  inactiveConnectorRetention: 0s
  audit: { retention: 30m, keep: forever }
apps:
  - { name: A, internalUrl: http://a/, externalUrl: https://a.example.com/, preAuthentication: passthrough,
      sticky: cookie, backendProxy: 'https://proxy.corp:3128' }
  - { name: B, internalUrl: http://b/, externalUrl: https://b.example.com/, preAuthentication: passthrough,
      backendProxy: 'http://proxy.corp:3128/path' }
`;
    expect(summary(issuesOf(yaml))).toStrictEqual([
      'relay.listen: must be host:port, [ipv6]:port, :port or a port number (the port must be a number from 0 to 65535)',
      'relay.tunnelListen: must be host:port, [ipv6]:port, :port or a port number (put an IPv6 address in brackets, e.g. [::1]:443)',
      'relay.adminListen: must be host:port, [ipv6]:port, :port or a port number',
      'relay.pingInterval: must be a duration such as 500ms, 5s, 2m, 1h30m, or a number of milliseconds',
      'relay.trustedProxies[0]: must be an IP address or a CIDR block, e.g. 10.0.0.0/8',
      'relay.trustedProxies[1]: must be an IP address or a CIDR block, e.g. 10.0.0.0/8',
      'relay.tunnelHosts[0]: must be a host name or IP address',
      'relay.connectorCertValidity: must be a duration such as 500ms, 5s, 2m, 1h30m, or a number of milliseconds',
      'relay.inactiveConnectorRetention: must be at least 1000ms',
      'relay.audit.retention: must be at least 1h',
      'relay.audit.keep: unknown key',
      'apps[0].sticky: must be one of: none, session, clientAddress',
      'apps[0].backendProxy: must be an http:// proxy URL (http://host:port)',
      'apps[1].backendProxy: must be http://host:port with no path, query or fragment',
    ]);
  });

  it('bad limits', () => {
    const yaml = `${RELAY}  limits: { maxConnections: 0, maxConnectionsPerClient: 1.5, maxStreamsPerConnection: many,
    resetWindow: 0s, idleTimeout: soon, bursts: 3 }
apps: []
`;
    expect(summary(issuesOf(yaml))).toStrictEqual([
      'relay.limits.maxConnections: must be a whole number from 1 to 10000000',
      'relay.limits.maxConnectionsPerClient: must be a whole number from 1 to 10000000',
      'relay.limits.maxStreamsPerConnection: must be a whole number from 1 to 10000',
      'relay.limits.resetWindow: must be longer than 0',
      'relay.limits.idleTimeout: must be a duration such as 500ms, 5s, 2m, 1h30m, or a number of milliseconds',
      'relay.limits.bursts: unknown key (did you mean "burst"?)',
    ]);
  });

  it('request rate limits: relay and per app, burst defaulting to the rate rounded up', () => {
    const config = parse(
      `${RELAY}  limits:
    requestsPerSecond: \${RPS}
apps:
  - name: A
    internalUrl: http://a.corp/
    externalUrl: https://a.example.com/
    preAuthentication: passthrough
    limits: { requestsPerSecond: 2.5, burst: 10, perUserRequestsPerSecond: 0.5 }
  - name: B
    internalUrl: http://b.corp/
    externalUrl: https://b.example.com/
    preAuthentication: passthrough
    limits: { perUserRequestsPerSecond: 3 }
  - name: C
    internalUrl: http://c.corp/
    externalUrl: https://c.example.com/
    preAuthentication: passthrough
    limits: {}
  - name: D
    internalUrl: http://d.corp/
    externalUrl: https://d.example.com/
    preAuthentication: passthrough
`,
      { RPS: '750' },
    );
    expect(config.relay.limits).toMatchObject({ requestsPerSecond: 750, burst: 750 });
    expect(config.apps.map((a) => a.limits)).toStrictEqual([
      { requestsPerSecond: 2.5, burst: 10, perUserRequestsPerSecond: 0.5 },
      { perUserRequestsPerSecond: 3 },
      undefined,
      undefined,
    ]);
    // Defaults none.
    expect(parse(`${RELAY}apps: []\n`).relay.limits).not.toHaveProperty('requestsPerSecond');
  });

  it('rpcMethods: off by default, true or false only', () => {
    const app = (extra: string) => `${RELAY}apps:
  - name: A
    internalUrl: http://a.corp/
    externalUrl: https://a.example.com/
    preAuthentication: passthrough
${extra}`;
    expect(parse(app('')).apps[0]!.rpcMethods).toBe(false);
    expect(parse(app('    rpcMethods: true\n')).apps[0]!.rpcMethods).toBe(true);
    expect(summary(issuesOf(app('    rpcMethods: RDG_IN_DATA\n')))).toStrictEqual([
      'apps[0].rpcMethods: must be true or false',
    ]);
  });

  it('bad request rate limits', () => {
    const yaml = `${RELAY}  limits: { burst: 5 }
apps:
  - name: A
    internalUrl: http://a.corp/
    externalUrl: https://a.example.com/
    preAuthentication: passthrough
    limits: { requestsPerSecond: 0, burst: 1.5, perUserRequestsPerSecond: lots, perIp: 3 }
  - name: B
    internalUrl: http://b.corp/
    externalUrl: https://b.example.com/
    preAuthentication: passthrough
    limits: { burst: 5 }
`;
    expect(summary(issuesOf(yaml))).toStrictEqual([
      'relay.limits.burst: needs requestsPerSecond',
      'apps[0].limits.requestsPerSecond: must be a number of requests per second above 0, at most 1000000',
      'apps[0].limits.burst: must be a whole number from 1 to 10000000',
      'apps[0].limits.perUserRequestsPerSecond: must be a number of requests per second above 0, at most 1000000',
      'apps[0].limits.perIp: unknown key',
      'apps[1].limits.burst: needs requestsPerSecond',
    ]);
  });

  it('pre-authentication settings on a passthrough app, and bad values', () => {
    const yaml = `${RELAY}identityProvider:
  issuer: https://idp.example.com
  clientId: x
  session: { lifetime: forever }
apps:
  - name: Open
    internalUrl: http://open.corp/
    externalUrl: https://open.example.com/
    preAuthentication: passthrough
    assignment: { required: true }
  - name: Closed
    internalUrl: http://closed.corp/
    externalUrl: https://closed.example.com/
    rules: { clientIpRanges: [10.0.0.0/99], requiredAmr: [''] }
    assignment: { required: maybe }
`;
    expect(summary(issuesOf(yaml))).toStrictEqual([
      'identityProvider.session.lifetime: must be a duration such as 500ms, 5s, 2m, 1h30m, or a number of milliseconds',
      'apps[0].assignment: applies only to preAuthentication: oidc',
      'apps[1].rules.clientIpRanges[0]: must be an IP address or a CIDR block, e.g. 10.0.0.0/8',
      'apps[1].rules.requiredAmr[0]: must not be empty',
      'apps[1].assignment.required: must be true or false',
    ]);
  });

  it('oidc without identityProvider, also when oidc is the default', () => {
    const yaml = `${RELAY}apps:
  - name: A
    internalUrl: http://a/
    externalUrl: https://a.example.com/
    preAuthentication: oidc
  - name: B
    internalUrl: http://b/
    externalUrl: https://b.example.com/
`;
    expect(issuesOf(yaml)).toStrictEqual([
      {
        path: 'apps[0].preAuthentication',
        message:
          'oidc requires an identityProvider section (or set preAuthentication: passthrough)',
        line: 11,
        column: 24,
      },
      // Not written: located at the app.
      {
        path: 'apps[1].preAuthentication',
        message:
          'oidc requires an identityProvider section (or set preAuthentication: passthrough)',
        line: 12,
        column: 5,
      },
    ]);
  });

  it('missing certificate file, with the absolute path', () => {
    const yaml = RELAY.replace('./tls/site-key.pem', './tls/missing-key.pem');
    expect(issuesOf(yaml)).toStrictEqual([
      {
        path: 'relay.certificates[0].key',
        message: `file not found: ${join(dir, 'tls/missing-key.pem')}`,
        line: 6,
        column: 12,
      },
    ]);
  });

  it('relay.certificates: pfx with a passphrase from ${ENV}, relative, beside a PEM pair', () => {
    writeFileSync(join(dir, 'tls/site.pfx'), 'pfx');
    const config = parse(
      `relay:
  listen: 443
  tunnelListen: 8443
  certificates:
    - { cert: ./tls/site.pem, key: ./tls/site-key.pem }
    - { pfx: ./tls/site.pfx, passphrase: "\${PFX_PASS}" }
    - { pfx: ./tls/site.pfx }
`,
      { PFX_PASS: 'open sesame' },
    );
    expect(config.relay.certificates).toStrictEqual([
      { cert: join(dir, 'tls/site.pem'), key: join(dir, 'tls/site-key.pem') },
      { pfx: join(dir, 'tls/site.pfx'), passphrase: 'open sesame' },
      { pfx: join(dir, 'tls/site.pfx') },
    ]);
  });

  it('relay.certificates: a pair or a pfx, never a mix, and the pfx file must exist', () => {
    writeFileSync(join(dir, 'tls/site.pfx'), 'pfx');
    const yaml = `relay:
  listen: 443
  tunnelListen: 8443
  certificates:
    - { pfx: ./tls/site.pfx, cert: ./tls/site.pem }
    - { cert: ./tls/site.pem, passphrase: x }
    - { cert: ./tls/site.pem }
    - { key: ./tls/site-key.pem }
    - { passphrase: x }
    - {}
    - { pfx: ./tls/nope.pfx, passphrase: x }
`;
    expect(summary(issuesOf(yaml))).toStrictEqual([
      'relay.certificates[0].cert: use either pfx or cert and key, not both',
      'relay.certificates[1].key: is required',
      'relay.certificates[1].passphrase: applies only to pfx',
      'relay.certificates[2].key: is required',
      'relay.certificates[3].cert: is required',
      'relay.certificates[4]: needs cert and key (PEM files) or pfx (a PKCS#12 file)',
      'relay.certificates[4].passphrase: applies only to pfx',
      'relay.certificates[5]: needs cert and key (PEM files) or pfx (a PKCS#12 file)',
      `relay.certificates[6].pfx: file not found: ${join(dir, 'tls/nope.pfx')}`,
    ]);
  });

  it('wildcard apps: * as the whole first label of both URLs, passthrough', () => {
    const config = parse(`${RELAY}apps:
  - name: Team sites
    internalUrl: http://*.Corp.Local:8080/
    externalUrl: https://*.apps.example.com/
    preAuthentication: passthrough
  - name: Exact
    internalUrl: http://wiki.corp.local/
    externalUrl: https://wiki.apps.example.com/
    preAuthentication: passthrough
`);
    expect(config.apps.map((a) => [a.internalUrl, a.externalUrl])).toEqual([
      ['http://*.corp.local:8080/', 'https://*.apps.example.com/'],
      ['http://wiki.corp.local/', 'https://wiki.apps.example.com/'],
    ]);
  });

  it('wildcard apps: what could never match is refused', () => {
    const app = (name: string, internal: string, external: string, pre = 'passthrough') =>
      `  - { name: ${name}, internalUrl: '${internal}', externalUrl: '${external}', preAuthentication: ${pre} }\n`;
    const yaml = `${RELAY}identityProvider: { issuer: https://idp.example.com, clientId: c }
apps:
${app('A', 'http://*.corp.local/', 'https://a*.apps.example.com/')}${app('B', 'http://x.*.corp.local/', 'https://*.b.example.com/')}${app('C', 'http://*.corp.local/', 'https://c.example.com/')}${app('D', 'http://d.corp.local/', 'https://*.d.example.com/')}${app('E', 'http://*.corp.local/', 'https://*.e.example.com/', 'oidc')}${app('F', 'http://*.corp.local/', 'https://*/')}${app('G', 'http://*.corp.local/', 'https://*.*.g.example.com/')}`;
    expect(summary(issuesOf(yaml))).toStrictEqual([
      'apps[0].externalUrl: * must be the whole first label of the host, as in https://*.apps.example.com/',
      'apps[1].internalUrl: * must be the whole first label of the host, as in http://*.corp.local/',
      'apps[2].internalUrl: a wildcard internalUrl needs a wildcard externalUrl (https://*.apps.example.com/): no external host says which label to use',
      'apps[3].internalUrl: a wildcard externalUrl needs a wildcard internalUrl (http://*.corp.local/): the label * matches goes into the internal host',
      'apps[4].preAuthentication: a wildcard app needs preAuthentication: passthrough (sign-in needs a redirect URI registered per host)',
      'apps[5].externalUrl: * must be the whole first label of the host, as in https://*.apps.example.com/',
      'apps[6].externalUrl: * must be the whole first label of the host, as in https://*.apps.example.com/',
    ]);
  });

  it('required fields and wrong types', () => {
    const yaml = `relay:
  listen: 443
  certificates: []
identityProvider:
  issuer: http://idp.example.com
  scopes: [profile]
connectorGroups: {}
apps:
  - name: A
    internalUrl: 8080
    translateBody: maybe
    cookies: { sameSite: None, secure: false }
`;
    expect(summary(issuesOf(yaml))).toStrictEqual([
      'relay.tunnelListen: is required',
      'relay.certificates: must list at least one certificate',
      'identityProvider.clientId: is required',
      'identityProvider.issuer: must be an absolute https URL (http only for localhost)',
      'identityProvider.scopes: must include "openid"',
      'connectorGroups: must be a list, got a mapping',
      'apps[0].externalUrl: is required',
      'apps[0].internalUrl: must be a string, got a number',
      'apps[0].translateBody: must be true or false',
      'apps[0].cookies.sameSite: None requires secure: true',
    ]);
  });

  it('an empty file says what is required', () => {
    expect(issuesOf('')).toStrictEqual([{ path: 'relay', message: 'is required' }]);
    expect(configError('').message).toBe('appproxy.yaml relay: is required');
  });

  it('a document that is not a mapping', () => {
    expect(summary(issuesOf('- a\n- b\n'))).toStrictEqual([
      ': must be a mapping with relay, identityProvider, connectorGroups and apps',
    ]);
  });
});

describe('parseConfig: YAML syntax errors', () => {
  it('are ConfigErrors with the line', () => {
    const err = configError(`${RELAY}apps:
  - name: A
    internalUrl: http://a/: x
    externalUrl: https://a.example.com/
`);
    expect(err.code).toBe('APPPROXY_CONFIG_INVALID');
    expect(err.issues.length).toBeGreaterThan(0);
    expect(err.issues[0]).toMatchObject({ path: '', line: 9 });
    expect(err.message).toMatch(/^appproxy\.yaml:9:\d+: /);
    // An unterminated quote is found where the input ends.
    expect(issuesOf(`${RELAY}apps:\n  - name: "A\n`)[0]).toMatchObject({ path: '', line: 9 });
  });

  it('bad indentation and duplicate keys', () => {
    const dup = configError(`relay:
  listen: 443
  listen: 444
`);
    expect(dup.issues).toMatchObject([{ path: '', line: 3, column: 3 }]);
    expect(dup.issues[0]!.message).toMatch(/unique/);
    const indent = configError('relay:\n  listen: 443\n tunnelListen: 8443\n');
    expect(indent.issues[0]).toMatchObject({ line: 3 });
  });

  it('use the sourceName given', () => {
    try {
      parseConfig('a: [', { sourceName: '/etc/appproxy/appproxy.yaml' });
      expect.unreachable();
    } catch (err) {
      expect((err as ConfigError).message).toMatch(/^\/etc\/appproxy\/appproxy\.yaml:1:\d+: /);
    }
  });
});

describe('parseConfig: every issue at once', () => {
  it('reports schema, reference and file issues together, in source order', () => {
    const yaml = `relay:
  listen: 443
  tunnelListen: 8443
  certificates: [{ cert: ./nope.pem, key: ./tls/site-key.pem }]
  drainTimeout: soon
apps:
  - name: A
    internalUrl: a.corp
    externalUrl: https://a.example.com/
    connectorGroup: Nowhere
    preAuthentication: passthrough
    translateHeader: true
  - name: A
    internalUrl: http://b/
    externalUrl: http://b.example.com/
`;
    const err = configError(yaml);
    expect(summary(err.issues)).toStrictEqual([
      `relay.certificates[0].cert: file not found: ${join(dir, 'nope.pem')}`,
      'relay.drainTimeout: must be a duration such as 500ms, 5s, 2m, 1h30m, or a number of milliseconds',
      'apps[0].internalUrl: must be an absolute http(s) URL',
      'apps[0].connectorGroup: no connector group named "Nowhere"',
      'apps[0].translateHeader: unknown key (did you mean "translateHeaders"?)',
      'apps[1].preAuthentication: oidc requires an identityProvider section (or set preAuthentication: passthrough)',
      'apps[1].name: duplicate app name "A" (also apps[0])',
      'apps[1].externalUrl: must be an absolute https URL',
    ]);
    expect(err.message.split('\n')).toHaveLength(8);
    expect(err.message.split('\n')[2]).toBe(
      'appproxy.yaml:8:18 apps[0].internalUrl: must be an absolute http(s) URL',
    );
  });
});

describe('parseConfig: environment variables', () => {
  const withIdp = (secretLine: string) => `${RELAY}identityProvider:
  issuer: https://idp.example.com
  clientId: relay
${secretLine}
`;

  it('substitutes ${NAME}, ${NAME:-default} and keeps $${ literal', () => {
    const config = parse(
      `relay:
  listen: \${LISTEN:-0.0.0.0:443}
  tunnelListen: \${TUNNEL_HOST}:\${TUNNEL_PORT}
  certificates:
    - cert: \${TLS_DIR}/site.pem
      key: ./tls/site-key.pem
  pingInterval: \${PING:-2s}
apps:
  - name: Price $\${AMOUNT} and $5
    internalUrl: http://\${BACKEND}/
    externalUrl: https://a.example.com/
    preAuthentication: passthrough
    translateBody: \${TRANSLATE_BODY}
    backendTimeout: \${EMPTY:-long}
`,
      {
        TUNNEL_HOST: '127.0.0.1',
        TUNNEL_PORT: '8443',
        TLS_DIR: join(dir, 'tls'),
        BACKEND: 'b.corp:8080',
        TRANSLATE_BODY: 'true',
        EMPTY: '',
      },
    );
    expect(config.relay.listen).toStrictEqual({ host: '0.0.0.0', port: 443 });
    expect(config.relay.tunnelListen).toStrictEqual({ host: '127.0.0.1', port: 8443 });
    expect(config.relay.certificates[0]).toMatchObject({ cert: join(dir, 'tls/site.pem') });
    expect(config.relay.pingIntervalMs).toBe(2_000);
    expect(config.apps[0]!.name).toBe('Price ${AMOUNT} and $5');
    expect(config.apps[0]!.internalUrl).toBe('http://b.corp:8080/');
    expect(config.apps[0]!.translateBody).toBe(true);
    expect(config.apps[0]!.backendTimeoutMs).toBe(180_000);
  });

  it('defaults to process.env', () => {
    process.env.APPPROXY_CONFIG_SPEC_SECRET = SECRET;
    try {
      const config = parseConfig(withIdp('  clientSecret: ${APPPROXY_CONFIG_SPEC_SECRET}'), {
        baseDir: dir,
      });
      expect(config.identityProvider?.clientSecret).toBe(SECRET);
    } finally {
      delete process.env.APPPROXY_CONFIG_SPEC_SECRET;
    }
  });

  it('a missing variable is an issue at its path, reported once', () => {
    const err = configError(withIdp('  clientSecret: ${APPPROXY_CLIENT_SECRET}'));
    expect(err.issues).toStrictEqual([
      {
        path: 'identityProvider.clientSecret',
        message: 'environment variable APPPROXY_CLIENT_SECRET is not set',
        line: 10,
        column: 17,
      },
    ]);
    expect(
      summary(
        issuesOf(`${RELAY}apps:
  - { name: A, internalUrl: "\${BACKEND}", externalUrl: https://a.example.com/, preAuthentication: passthrough }
`),
      ),
    ).toStrictEqual(['apps[0].internalUrl: environment variable BACKEND is not set']);
  });

  it('a malformed reference is an issue', () => {
    expect(summary(issuesOf(withIdp('  clientSecret: ${APPPROXY_CLIENT_SECRET')))).toStrictEqual([
      'identityProvider.clientSecret: unterminated ${ (write $${ for a literal ${)',
    ]);
  });

  it('never puts the value of a variable in a message', () => {
    // The secret lands in places where it is invalid, duplicated, or a missing file.
    const yaml = `relay:
  listen: \${S}
  tunnelListen: 8443
  certificates: [{ cert: "./tls/\${S}.pem", key: ./tls/site-key.pem }]
  pingInterval: \${S}
  tunnelHosts: ["\${S}"]
  trustedProxies: ["\${S}"]
identityProvider:
  issuer: \${S}
  clientId: \${S}
  scopes: [openid, "\${S}"]
connectorGroups: [{ name: "\${S}" }, { name: "\${S}" }]
apps:
  - name: \${S}
    internalUrl: \${S}
    externalUrl: https://\${S}/
    connectorGroup: x\${S}
    backendTimeout: \${S}
    translateBody: \${S}
    cookies:
      sameSite: \${S}
    preAuthentication: \${S}
  - name: \${S}
    internalUrl: http://\${S}.corp/
    externalUrl: https://\${S}/
`;
    const err = configError(yaml, { S: SECRET });
    expect(err.issues.length).toBeGreaterThanOrEqual(15);
    expect(err.message).not.toContain(SECRET);
    expect(err.message).not.toContain('hunter2');
    expect(JSON.stringify(err.issues)).not.toContain('hunter2');
    expect(summary(err.issues)).toContain(
      'relay.certificates[0].cert: file not found: ./tls/${S}.pem',
    );
    expect(summary(err.issues)).toContain('apps[1].name: duplicate app name (also apps[0])');
    expect(summary(err.issues)).toContain(
      'apps[0].connectorGroup: no connector group by that name',
    );
  });
});

describe('loadConfig', () => {
  it('resolves relative paths against the file, not the working directory', async () => {
    const sub = join(dir, 'etc');
    mkdirSync(join(sub, 'tls'), { recursive: true });
    writeFileSync(join(sub, 'tls/site.pem'), 'cert');
    writeFileSync(join(sub, 'tls/site-key.pem'), 'key');
    writeFileSync(join(sub, 'appproxy.yaml'), `${RELAY}  stateDir: state\n`);
    const config = await loadConfig(join(sub, 'appproxy.yaml'), { env: {} });
    expect(config.relay.stateDir).toBe(join(sub, 'state'));
    expect(config.relay.certificates[0]).toMatchObject({ cert: join(sub, 'tls/site.pem') });
  });

  it('names the file in messages', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, `${RELAY}  colour: blue\n`);
    await expect(loadConfig(file)).rejects.toMatchObject({
      code: 'APPPROXY_CONFIG_INVALID',
      message: `${file}:7:3 relay.colour: unknown key`,
    });
  });

  it('an unreadable file is APPPROXY_CONFIG_UNREADABLE, one line', async () => {
    const file = join(dir, 'nope.yaml');
    const err = await loadConfig(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err).toMatchObject({ code: 'APPPROXY_CONFIG_UNREADABLE', issues: [{ path: '' }] });
    expect((err as ConfigError).message).toBe(
      `${file}: cannot read the configuration (no such file)`,
    );
    await expect(loadConfig(dir)).rejects.toMatchObject({ code: 'APPPROXY_CONFIG_UNREADABLE' });
  });
});

describe('parseConfig: hsts, homePage and relay.pages (issue 12 items 4, 5, 9)', () => {
  const APP = `apps:
  - name: A
    internalUrl: http://a.corp.local/
    externalUrl: https://a.example.com/portal/
    preAuthentication: passthrough
`;

  it('hsts: off by default, true is one year, an object with defaults', () => {
    const app = (extra: string) => parse(`${RELAY}${APP}${extra}`).apps[0]!;
    expect(app('').hsts).toBeUndefined();
    expect(app('    hsts: false\n').hsts).toBeUndefined();
    expect(app('    hsts: true\n').hsts).toStrictEqual({
      maxAgeSeconds: 31_536_000,
      includeSubDomains: false,
      preload: false,
    });
    expect(app('    hsts: { includeSubDomains: true }\n').hsts).toStrictEqual({
      maxAgeSeconds: 31_536_000,
      includeSubDomains: true,
      preload: false,
    });
    expect(
      app('    hsts: { maxAge: 730d, includeSubDomains: true, preload: true }\n').hsts,
    ).toStrictEqual({ maxAgeSeconds: 63_072_000, includeSubDomains: true, preload: true });
    expect(app('    hsts: { maxAge: 0s }\n').hsts?.maxAgeSeconds).toBe(0);
  });

  it('hsts: preload needs includeSubDomains and a year; maxAge needs a unit', () => {
    expect(
      summary(issuesOf(`${RELAY}${APP}    hsts: { preload: true, maxAge: 30d }\n`)),
    ).toStrictEqual([
      'apps[0].hsts.preload: preload requires includeSubDomains: true',
      'apps[0].hsts.preload: preload requires maxAge of at least 365d',
    ]);
    expect(summary(issuesOf(`${RELAY}${APP}    hsts: { maxAge: 31536000 }\n`))).toStrictEqual([
      'apps[0].hsts.maxAge: must be a duration with a unit, e.g. 365d (HSTS max-age)',
    ]);
    expect(summary(issuesOf(`${RELAY}${APP}    hsts: yes\n`))).toStrictEqual([
      'apps[0].hsts: must be true, false or { maxAge, includeSubDomains, preload }',
    ]);
  });

  it('homePage: a path under the external path, query allowed', () => {
    expect(parse(`${RELAY}${APP}    homePage: /portal/start.aspx?tab=1\n`).apps[0]!.homePage).toBe(
      '/portal/start.aspx?tab=1',
    );
    const problems = (v: string) => summary(issuesOf(`${RELAY}${APP}    homePage: "${v}"\n`));
    expect(problems('start.aspx')).toStrictEqual([
      'apps[0].homePage: must be a path such as /portal/start.aspx (query allowed)',
    ]);
    expect(problems('/other/start.aspx')).toStrictEqual([
      'apps[0].homePage: must be under the external URL’s path /portal/',
    ]);
    expect(problems('/portal/')).toStrictEqual([
      'apps[0].homePage: must not be the external URL’s path itself (it would redirect to itself)',
    ]);
    expect(problems('/portal/../x')).toStrictEqual([
      'apps[0].homePage: must be a plain path (no // or dot segments)',
    ]);
    expect(problems('https://evil.example/')).toStrictEqual([
      'apps[0].homePage: must be a path such as /portal/start.aspx (query allowed)',
    ]);
  });

  it('relay.pages: templates read and compiled, problems at relay.pages.dir', () => {
    const pages = join(dir, 'pages');
    mkdirSync(pages, { recursive: true });
    writeFileSync(
      join(pages, 'error.html'),
      '<html><head><style>h1{color:red}</style></head><body><h1>{{title}}</h1>{{ app }}</body></html>',
    );
    const withPages = `${RELAY}  pages: { dir: ./pages }\n`;
    const config = parse(withPages);
    expect(config.relay.pages?.dir).toBe(pages);
    expect(config.relay.pages?.templates.error?.parts).toStrictEqual([
      '<html><head><style>h1{color:red}</style></head><body><h1>',
      { v: 'title' },
      '</h1>',
      { v: 'app' },
      '</body></html>',
    ]);
    expect(config.relay.pages?.templates.error?.styleHashes).toHaveLength(1);
    expect(config.relay.pages?.templates.signin).toBeUndefined();

    writeFileSync(join(pages, 'forbidden.html'), '<p>{{who}}</p>');
    writeFileSync(join(pages, 'signin.html'), '<p>no head</p>');
    writeFileSync(join(pages, 'maintenance.html'), '<script>alert(1)</script>');
    writeFileSync(join(pages, 'eror.html'), 'typo');
    expect(summary(issuesOf(withPages))).toStrictEqual([
      'relay.pages.dir: eror.html: not a page template (known: error.html, forbidden.html, maintenance.html, signin.html)',
      'relay.pages.dir: forbidden.html: unknown variable {{who}} (known: {{code}}, {{correlationId}}, {{app}}, {{user}}, {{time}}, {{title}}, {{hint}})',
      'relay.pages.dir: maintenance.html: must not contain <script> (the pages’ Content-Security-Policy allows no inline script)',
      'relay.pages.dir: signin.html: must have a </head>: the relay puts its sign-in script before it',
    ]);
    expect(summary(issuesOf(`${RELAY}  pages: { dir: ./nope }\n`))).toStrictEqual([
      `relay.pages.dir: directory not found: ${join(dir, 'nope')}`,
    ]);
    rmSync(pages, { recursive: true });
  });
});

describe('backendTls, icon, description and portal', () => {
  const IDP = `identityProvider:
  issuer: https://idp.example.com
  clientId: x
`;
  it('resolves backendTls paths and keeps the portal settings', () => {
    const config = parse(`${RELAY}${IDP}portal:
  externalUrl: https://myapps.example.com
apps:
  - name: Payroll
    internalUrl: https://payroll.corp:8443/
    externalUrl: https://payroll.example.com/
    icon: https://cdn.example.com/payroll.png
    description: Pay slips
    backendTls: { ca: ./tls/site.pem, cert: ./tls/site.pem, key: ./tls/site-key.pem, serverName: payroll.internal }
`);
    expect(config.portal).toStrictEqual({
      externalUrl: 'https://myapps.example.com/',
      showPassthrough: false,
    });
    expect(config.apps[0]).toMatchObject({
      icon: 'https://cdn.example.com/payroll.png',
      description: 'Pay slips',
      backendTls: {
        ca: join(dir, 'tls/site.pem'),
        cert: join(dir, 'tls/site.pem'),
        key: join(dir, 'tls/site-key.pem'),
        serverName: 'payroll.internal',
      },
    });
  });

  it('refuses missing files, a lone cert, a bad icon, a portal without a provider or on an app host', () => {
    const yaml = `${RELAY}portal:
  externalUrl: https://a.example.com/
apps:
  - name: A
    internalUrl: https://a/
    externalUrl: https://a.example.com/
    preAuthentication: passthrough
    backendTls: { ca: ./tls/nope.pem }
    icon: 'javascript:alert(1)'
  - name: B
    internalUrl: https://b/
    externalUrl: https://b.example.com/
    preAuthentication: passthrough
    backendTls: { cert: ./tls/site.pem }
`;
    expect(summary(issuesOf(yaml))).toStrictEqual([
      'portal.externalUrl: the portal requires an identityProvider section',
      'portal.externalUrl: same host as apps[0].externalUrl',
      `apps[0].backendTls.ca: file not found: ${join(dir, 'tls/nope.pem')}`,
      'apps[0].icon: must be an https URL or a path starting with /',
      'apps[1].backendTls: cert and key go together',
    ]);
  });
});

describe('relay.workers', () => {
  const relayWith = (workers: string) => `relay:
  listen: 443
  tunnelListen: 8443
  certificates: [{ cert: tls/site.pem, key: tls/site-key.pem }]
  instance: { tunnelUrl: 'https://relay1.example.com:8443' }
  workers: ${workers}
`;

  it('takes a number of processes, or auto: one per core', () => {
    expect(parse(relayWith('4')).relay.workers).toBe(4);
    expect(parse(relayWith('auto')).relay.workers).toBe(Math.min(64, availableParallelism()));
  });

  it.each(['0', '65', '1.5', 'many', '"2"'])('refuses %s by its path', (workers) => {
    expect(summary(configError(relayWith(workers)).issues)).toStrictEqual([
      'relay.workers: must be a number of processes from 1 to 64, or auto',
    ]);
  });

  it('needs the tunnel URL of worker 0 when there are several', () => {
    const yaml = relayWith('2').replace(/ {2}instance: .*\n/, '');
    expect(summary(configError(yaml).issues)).toStrictEqual([
      'relay.workers: more than 1 needs relay.instance.tunnelUrl: how connectors reach worker 0’s tunnel port (worker i is reached on that port + i)',
    ]);
    expect(parse(relayWith('1').replace(/ {2}instance: .*\n/, '')).relay.workers).toBe(1);
  });
});

describe('relay.instance and relay.shutdownDelay', () => {
  const relayWith = (more: string) => `relay:
  listen: 443
  tunnelListen: 8443
  certificates: [{ cert: tls/site.pem, key: tls/site-key.pem }]
${more}
`;

  it('takes a name and the https origin of the tunnel port', () => {
    const { relay } = parse(
      relayWith(`  instance: { name: edge-1, tunnelUrl: 'https://Relay1.example.com:8443/' }
  shutdownDelay: 2s`),
    );
    expect(relay.instance).toStrictEqual({
      name: 'edge-1',
      tunnelUrl: 'https://relay1.example.com:8443',
    });
    expect(relay.shutdownDelayMs).toBe(2000);
  });

  it.each([
    [
      'http://relay1.example.com:8443',
      'relay.instance.tunnelUrl: must be https://host[:port] with nothing after it',
    ],
    [
      'https://relay1.example.com:8443/tunnel',
      'relay.instance.tunnelUrl: must be https://host[:port] with nothing after it',
    ],
    ['not a url', 'relay.instance.tunnelUrl: must be https://host[:port] with nothing after it'],
  ])('refuses tunnelUrl %s by its path', (url, message) => {
    expect(
      summary(configError(relayWith(`  instance: { tunnelUrl: '${url}' }`)).issues),
    ).toStrictEqual([message]);
  });

  it('refuses a name that is not a plain token', () => {
    expect(summary(configError(relayWith('  instance: { name: "a b" }')).issues)).toStrictEqual([
      'relay.instance.name: must be 1–64 of A–Z a–z 0–9 . _ -',
    ]);
  });
});

describe('relay.admins and relay.adminUrl', () => {
  const IDP = `identityProvider:
  issuer: https://idp.example.com
  clientId: x
`;
  const relay = (more: string) =>
    RELAY.replace('relay:\n', `relay:\n  adminListen: 127.0.0.1:9090\n${more}`);

  it('keeps the admins and the admin origin', () => {
    const config = parse(
      `${relay("  admins: { groups: ['AppProxy Admins'] }\n  adminUrl: https://admin.example.com:9443/\n")}${IDP}`,
    );
    expect(config.relay.admins).toStrictEqual({ users: [], groups: ['AppProxy Admins'] });
    expect(config.relay.adminUrl).toBe('https://admin.example.com:9443');
  });

  it('refuses admins without a provider or admin listener, and an adminUrl with a path', () => {
    const yaml = `${RELAY.replace('relay:\n', 'relay:\n  admins: { users: [alice] }\n  adminUrl: https://a.example.com/console\n')}`;
    expect(summary(issuesOf(yaml))).toStrictEqual([
      'relay.admins: the admin sign-in requires an identityProvider section',
      'relay.adminUrl: must be an origin (scheme, host, port) without a path or query',
    ]);
    const noListener = `${RELAY.replace('relay:\n', 'relay:\n  admins: { users: [alice] }\n')}${IDP}`;
    expect(summary(issuesOf(noListener))).toStrictEqual(['relay.admins: needs relay.adminListen']);
  });
});
