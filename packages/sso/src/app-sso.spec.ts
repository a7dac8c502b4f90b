import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { describe, expect, it } from 'vitest';
import { AppSso, type SsoSettings } from './app-sso.js';
import { AssertionSigner } from './assertion.js';
import { SsoError } from './errors.js';
import type { SsoIdentity } from './identity.js';

const issuer = 'https://wiki.example.com';
const alice: SsoIdentity = {
  sub: 'sub-1',
  upn: 'alice@corp.example',
  email: 'alice@mail.example',
  groups: ['eng'],
  claims: { employee_id: 'E42' },
};

function refused(settings: SsoSettings, signer?: AssertionSigner): SsoError {
  try {
    new AppSso(settings, { issuer, signer });
  } catch (err) {
    expect(err).toBeInstanceOf(SsoError);
    return err as SsoError;
  }
  throw new Error('accepted');
}

describe('AppSso mode none', () => {
  it('sets nothing and resolves nothing', () => {
    const sso = new AppSso({ mode: 'none', loginIdentity: 'upn' }, { issuer });
    const headers = { 'x-remote-user': 'kept' };
    expect(sso.apply({ sub: '' }, headers)).toBeUndefined();
    expect(headers).toEqual({ 'x-remote-user': 'kept' });
    expect(sso.headerNames).toEqual([]);
    expect(sso.claimPaths).toEqual([]);
  });
});

describe('AppSso mode headers', () => {
  const sso = new AppSso(
    {
      mode: 'headers',
      loginIdentity: 'claim:employee_id',
      headers: {
        'X-Remote-User': '{loginIdentity}',
        'X-Remote-Email': '{email}',
        'X-Remote-Groups': '{groups}',
        'X-Dept': '{claim:org.dept}',
      },
    },
    { issuer },
  );

  it('knows its header names and claim paths', () => {
    expect(sso.mode).toBe('headers');
    expect(sso.headerNames).toEqual([
      'x-remote-user',
      'x-remote-email',
      'x-remote-groups',
      'x-dept',
    ]);
    expect(sso.claimPaths).toEqual(['employee_id', 'org.dept']);
  });

  it('overwrites client values and deletes the headers this user has no value for', () => {
    const headers: Record<string, unknown> = {
      accept: '*/*',
      'x-remote-user': 'admin',
      'x-remote-groups': 'admins',
      'x-dept': 'Finance',
    };
    expect(sso.apply(alice, headers)).toBe('E42');
    expect(headers).toEqual({
      accept: '*/*',
      'x-remote-user': 'E42',
      'x-remote-email': 'alice@mail.example',
      'x-remote-groups': 'eng',
    });
  });

  it('throws SSO_IDENTITY_MISSING with the claim when the login identity is missing', () => {
    const headers = { 'x-remote-user': 'admin' };
    expect(() => sso.apply({ sub: 's' }, headers)).toThrow(
      expect.objectContaining({ code: 'SSO_IDENTITY_MISSING', claim: 'employee_id' }),
    );
  });
});

describe('AppSso mode jwt', () => {
  const signer = new AssertionSigner();

  it('sends Authorization: Bearer <jwt> that verifies for the app', async () => {
    const sso = new AppSso(
      {
        mode: 'jwt',
        loginIdentity: 'email',
        jwt: { header: 'Authorization', audience: 'wiki', lifetimeMs: 60_000 },
      },
      { issuer, signer },
    );
    expect(sso.headerNames).toEqual(['authorization']);
    const headers: Record<string, unknown> = { authorization: 'Basic YWRtaW46YWRtaW4=' };
    expect(sso.apply(alice, headers)).toBe('alice@mail.example');
    const value = headers.authorization as string;
    expect(value).toMatch(/^Bearer [\w-]+\.[\w-]+\.[\w-]+$/);
    const { payload } = await jwtVerify(
      value.slice('Bearer '.length),
      createLocalJWKSet(signer.jwks() as JSONWebKeySet),
      { issuer, audience: 'wiki' },
    );
    expect(payload).toMatchObject({ sub: 'sub-1', login_identity: 'alice@mail.example' });
    expect(payload.exp! - payload.iat!).toBe(60);

    // Same identity object, same token.
    const again: Record<string, unknown> = {};
    sso.apply(alice, again);
    expect(again.authorization).toBe(value);
  });

  it('sends the bare token in another header', async () => {
    const sso = new AppSso(
      {
        mode: 'jwt',
        loginIdentity: 'upn',
        jwt: { header: 'X-AppProxy-Assertion', audience: 'crm', lifetimeMs: 60_000 },
      },
      { issuer, signer },
    );
    const headers: Record<string, unknown> = {};
    sso.apply(alice, headers);
    const { payload } = await jwtVerify(
      headers['x-appproxy-assertion'] as string,
      createLocalJWKSet(signer.jwks() as JSONWebKeySet),
      { issuer, audience: 'crm' },
    );
    expect(payload.login_identity).toBe('alice@corp.example');
  });
});

describe('AppSso mode kerberos', () => {
  it('only resolves the login identity', () => {
    const sso = new AppSso({ mode: 'kerberos', loginIdentity: 'samAccountName' }, { issuer });
    const headers = {};
    expect(sso.apply(alice, headers)).toBe('alice');
    expect(headers).toEqual({});
    expect(sso.headerNames).toEqual([]);
  });
});

describe('AppSso refuses', () => {
  const signer = new AssertionSigner();
  const jwt = { header: 'authorization', audience: 'wiki', lifetimeMs: 60_000 };
  it.each<[string, SsoSettings, AssertionSigner | undefined, string]>([
    ['an unknown mode', { mode: 'saml' as 'none', loginIdentity: 'upn' }, undefined, 'CONFIG'],
    [
      'an unknown login identity',
      { mode: 'kerberos', loginIdentity: 'mail' as 'upn' },
      undefined,
      'CONFIG',
    ],
    [
      'headers mode without headers',
      { mode: 'headers', loginIdentity: 'upn' },
      undefined,
      'CONFIG',
    ],
    [
      'headers mode with a bad template',
      { mode: 'headers', loginIdentity: 'upn', headers: { Host: '{sub}' } },
      undefined,
      'TEMPLATE',
    ],
    ['jwt mode without a signer', { mode: 'jwt', loginIdentity: 'upn', jwt }, undefined, 'CONFIG'],
    ['jwt mode without jwt', { mode: 'jwt', loginIdentity: 'upn' }, signer, 'CONFIG'],
    [
      'a bad jwt header',
      { mode: 'jwt', loginIdentity: 'upn', jwt: { ...jwt, header: 'X Bad' } },
      signer,
      'CONFIG',
    ],
    [
      'a reserved jwt header',
      { mode: 'jwt', loginIdentity: 'upn', jwt: { ...jwt, header: 'Cookie' } },
      signer,
      'CONFIG',
    ],
    [
      'an empty audience',
      { mode: 'jwt', loginIdentity: 'upn', jwt: { ...jwt, audience: '' } },
      signer,
      'CONFIG',
    ],
    [
      'a lifetime over the signer maximum',
      { mode: 'jwt', loginIdentity: 'upn', jwt: { ...jwt, lifetimeMs: 2 * 3_600_000 } },
      signer,
      'CONFIG',
    ],
  ])('%s', (_, settings, s, kind) => {
    expect(refused(settings, s).code).toBe(`APPPROXY_SSO_${kind}_INVALID`);
  });
});
