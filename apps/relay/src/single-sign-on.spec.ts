import type { PublishedAppConfig, RelayConfig } from '@appproxy/config';
import { createLogger } from '@appproxy/telemetry';
import { endToEndHeaders, type RequestMetaInit } from '@appproxy/tunnel';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SSO_KEYS_FILE, SingleSignOn, ssoProblems } from './single-sign-on.js';

const dir = mkdtempSync(join(tmpdir(), 'appproxy-relay-sso-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const log = createLogger({ name: 'relay', level: 'error', write: () => {} });

function app(name: string, extra: Partial<PublishedAppConfig> = {}): PublishedAppConfig {
  return {
    name,
    internalUrl: `http://${name.toLowerCase()}.corp:8080/`,
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
  };
}

function config(apps: PublishedAppConfig[], stripRequestHeaders?: string[]): RelayConfig {
  const stateDir = mkdtempSync(join(dir, 'state-'));
  return {
    relay: { stateDir, ...(stripRequestHeaders && { stripRequestHeaders }) },
    connectorGroups: [{ name: 'Default' }],
    apps,
  } as unknown as RelayConfig;
}

/** The connector metadata of one request. */
const meta = (): RequestMetaInit => ({
  target: 'http://x',
  requestId: 'r',
  app: 'A',
  timeoutMs: 1,
  verifyTls: true,
});

const alice = {
  sub: 's-1',
  issuer: 'https://idp.example.com',
  email: 'alice@example.com',
  upn: 'alice@corp.example.com',
  groups: ['Staff', 'Finance'],
  roles: [],
  amr: [],
};

describe('SingleSignOn (the relay side of @appproxy/sso)', () => {
  const wiki = app('Wiki', {
    sso: {
      mode: 'headers',
      loginIdentity: 'upn',
      headers: { 'x-wiki-user': '{loginIdentity}', 'x-wiki-groups': '{groups}' },
    },
  });
  const reports = app('Reports', {
    sso: {
      mode: 'jwt',
      loginIdentity: 'claim:employee_id',
      headers: {},
      jwt: { header: 'authorization', audience: 'reports', lifetimeMs: 120_000 },
    },
  });
  const open = app('Open', { preAuthentication: 'passthrough' });

  it('strips the configured list, every app’s SSO header, but Authorization only where SSO sets it', () => {
    const sso = new SingleSignOn(config([wiki, reports, open], ['X-Custom-User', 'X-Team-*']), log);
    const headers: Record<string, string> = {
      'x-custom-user': 'admin',
      'x-team-lead': 'admin',
      'x-wiki-user': 'admin',
      'x-wiki-groups': 'Admins',
      authorization: 'Basic Zm9vOmJhcg==',
      // Replaced the default list: this one is now the app's business.
      'x-remote-user': 'kept',
      accept: 'text/html',
    };
    expect(Object.keys(headers).filter((name) => !sso.strips(name))).toStrictEqual([
      'authorization',
      'x-remote-user',
      'accept',
    ]);
    // As the relay uses it: dropped in endToEndHeaders' one pass.
    expect(
      Object.entries(endToEndHeaders(headers, { drop: { has: (n) => sso.strips(n) } })),
    ).toStrictEqual([
      ['authorization', 'Basic Zm9vOmJhcg=='],
      ['x-remote-user', 'kept'],
      ['accept', 'text/html'],
    ]);
    const defaults = new SingleSignOn(config([open]), log);
    const spoofed: Record<string, string> = { 'x-remote-user': 'admin', 'x-real-ip': '1.2.3.4' };
    expect(Object.keys(spoofed).filter((name) => !defaults.strips(name))).toStrictEqual([]);
  });

  it('adds the headers of a headers app and refuses an identity without the claim', async () => {
    const sso = new SingleSignOn(config([wiki, reports, open]), log);
    expect(sso.claimPaths).toStrictEqual(['employee_id']);
    const headers: Record<string, unknown> = {};
    expect(sso.apply(wiki, alice, headers, meta())).toBeUndefined();
    expect(headers).toMatchObject({
      'x-wiki-user': 'alice@corp.example.com',
      'x-wiki-groups': 'Staff, Finance',
    });
    expect(sso.apply(reports, alice, {}, meta())).toStrictEqual({
      code: 'SSO_IDENTITY_MISSING',
      claim: 'employee_id',
    });
    // An app without SSO gets nothing added.
    const none: Record<string, unknown> = {};
    expect(sso.apply(open, alice, none, meta())).toBeUndefined();
    expect(none).toStrictEqual({});

    const withClaim = { ...alice, claims: { employee_id: 'E-7' } };
    const out: Record<string, unknown> = {};
    expect(sso.apply(reports, withClaim, out, meta())).toBeUndefined();
    const [scheme, token] = String(out.authorization).split(' ');
    expect(scheme).toBe('Bearer');
    const { payload } = await jwtVerify(token!, createLocalJWKSet(JSON.parse(sso.jwks()!)), {
      issuer: 'https://reports.example.com',
      audience: 'reports',
    });
    expect(payload).toMatchObject({ sub: 's-1', login_identity: 'E-7' });
    expect(payload.exp! - payload.iat!).toBe(120);
  });

  it('tells the connector the login identity and SPN of a kerberos app, and sets no header', () => {
    const intranet = app('Intranet', {
      sso: {
        mode: 'kerberos',
        loginIdentity: 'localPart',
        headers: {},
        kerberos: { spn: 'HTTP/intranet.corp.test' },
      },
    });
    const sso = new SingleSignOn(config([intranet, wiki]), log);
    const headers: Record<string, unknown> = { authorization: 'Basic Zm9vOmJhcg==' };
    const m = meta();
    expect(sso.apply(intranet, alice, headers, m)).toBeUndefined();
    expect(m.kerberos).toStrictEqual({ user: 'alice', spn: 'HTTP/intranet.corp.test' });
    expect(headers).toStrictEqual({ authorization: 'Basic Zm9vOmJhcg==' });
    // Other apps' metadata gets no Kerberos request.
    const other = meta();
    sso.apply(wiki, alice, {}, other);
    expect(other.kerberos).toBeUndefined();
    // No local part, no ticket: refused like any missing login identity.
    const refused = meta();
    expect(sso.apply(intranet, { sub: 's-2' }, {}, refused)).toMatchObject({
      code: 'SSO_IDENTITY_MISSING',
    });
    expect(refused.kerberos).toBeUndefined();
  });

  it('keeps its keys in stateDir (0600) across restarts; no keys without a jwt app', () => {
    const cfg = config([reports]);
    const first = new SingleSignOn(cfg, log).jwks();
    expect(statSync(join(cfg.relay.stateDir, SSO_KEYS_FILE)).mode & 0o777).toBe(0o600);
    expect(new SingleSignOn(cfg, log).jwks()).toBe(first);
    expect(new SingleSignOn(config([wiki]), log).jwks()).toBeUndefined();
  });

  it('names the app when its settings cannot be used', () => {
    const bad = app('Bad', {
      sso: { mode: 'headers', loginIdentity: 'upn', headers: { 'x-user': '{nope}' } },
    });
    const cfg = config([app('Fine'), bad]);
    expect(ssoProblems(cfg)).toStrictEqual([
      {
        path: 'apps[1].sso',
        message: expect.stringMatching(/^APPPROXY_SSO_TEMPLATE_INVALID: .*nope/) as string,
      },
    ]);
    expect(() => new SingleSignOn(cfg, log)).toThrow(
      expect.objectContaining({ code: 'APPPROXY_SSO_TEMPLATE_INVALID' }),
    );
  });
});
