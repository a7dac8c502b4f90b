import { describe, expect, it } from 'vitest';
import { SsoError } from './errors.js';
import { DEFAULT_STRIP_REQUEST_HEADERS, HeaderStripper } from './strip.js';

const stripper = new HeaderStripper(DEFAULT_STRIP_REQUEST_HEADERS);

describe('DEFAULT_STRIP_REQUEST_HEADERS', () => {
  it.each([
    'x-remote-user',
    'X-Remote-User',
    'REMOTE-USER',
    'remote_user',
    'X_Remote_User',
    'x-remote-email',
    'x-remote-groups',
    'x-remote-name',
    'x-forwarded-user',
    'x-forwarded-email',
    'x-forwarded-preferred-username',
    'x-forwarded-groups',
    'x-forwarded-access-token',
    'x-auth-request-user',
    'X-Auth-Request-Access-Token',
    'x-ms-client-principal',
    'x-ms-client-principal-name',
    'x-ms-token-aad-id-token',
    'x-real-ip',
    'x-webauth-user',
    'X_WEBAUTH_USER',
    'x-pomerium-jwt-assertion',
    'x-appproxy-assertion',
    'x-appproxy-anything',
    'x-client-ip',
    'true-client-ip',
    'cf-connecting-ip',
    'cf-access-authenticated-user-email',
    'x-goog-authenticated-user-email',
    'x-amzn-oidc-identity',
    'x-original-forwarded-for',
  ])('strips %s', (name) => {
    expect(stripper.matches(name)).toBe(true);
  });

  it.each([
    'x-remote-user-agent',
    'user-agent',
    'x-remote-username',
    'x-forwarded-for',
    'x-forwarded-host',
    'x-forwarded-proto',
    'forwarded',
    'authorization',
    'cookie',
    'x-request-id',
    'x-ms-request-id',
    'x-real-ipv6',
    'x-webauth',
  ])('keeps %s', (name) => {
    expect(stripper.matches(name)).toBe(false);
  });

  it('is lower-case', () => {
    for (const p of DEFAULT_STRIP_REQUEST_HEADERS) expect(p).toBe(p.toLowerCase());
  });
});

describe('HeaderStripper', () => {
  it('matches exact names and prefixes in any case', () => {
    const s = new HeaderStripper(['X-User', 'X-Corp-*']);
    expect(s.matches('x-user')).toBe(true);
    expect(s.matches('X-USER')).toBe(true);
    expect(s.matches('x-user-id')).toBe(false);
    expect(s.matches('x-corp-')).toBe(true);
    expect(s.matches('X-Corp-Dept')).toBe(true);
    expect(s.matches('x-corporate')).toBe(false);
  });

  it('strips in place and says what it removed', () => {
    const headers: Record<string, unknown> = {
      host: 'wiki.example.com',
      'x-remote-user': 'admin',
      x_remote_user: 'admin',
      'x-remote-user-agent': 'ok',
      'x-auth-request-email': ['a@b', 'c@d'],
      accept: '*/*',
    };
    expect(stripper.strip(headers)).toEqual([
      'x-remote-user',
      'x_remote_user',
      'x-auth-request-email',
    ]);
    expect(headers).toEqual({
      host: 'wiki.example.com',
      'x-remote-user-agent': 'ok',
      accept: '*/*',
    });
  });

  it('returns one shared empty array when nothing matched', () => {
    const a = stripper.strip({ accept: '*/*' });
    expect(a).toEqual([]);
    expect(stripper.strip({ host: 'h' })).toBe(a);
  });

  it.each(['', '*', 'x remote', 'x-a*b', '*-user', 'x:y', 'é'])('refuses pattern %j', (p) => {
    try {
      new HeaderStripper([p]);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(SsoError);
      expect((err as SsoError).code).toBe('APPPROXY_SSO_STRIP_INVALID');
    }
  });
});
