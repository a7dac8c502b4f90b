import { describe, expect, it } from 'vitest';
import { SsoError } from './errors.js';
import {
  isLoginIdentityKind,
  LOGIN_IDENTITY_KINDS,
  resolveLoginIdentity,
  type LoginIdentityKind,
  type SsoIdentity,
} from './identity.js';

const full: SsoIdentity = {
  sub: 'sub-123',
  upn: 'alice.upn@corp.example',
  email: 'alice@mail.example',
  preferredUsername: 'alice.pref@corp.example',
  samAccountName: 'ALICE01',
  claims: {
    employee_id: 'E42',
    'ext.level': 7,
    'ext.admin': false,
    list: ['a'],
    obj: { a: 1 },
    empty: '',
  },
};

function missing(identity: SsoIdentity, kind: LoginIdentityKind): SsoError {
  try {
    resolveLoginIdentity(identity, kind);
  } catch (err) {
    expect(err).toBeInstanceOf(SsoError);
    return err as SsoError;
  }
  throw new Error(`resolved ${kind}`);
}

describe('resolveLoginIdentity', () => {
  it.each([
    ['upn', 'alice.upn@corp.example'],
    ['email', 'alice@mail.example'],
    ['preferredUsername', 'alice.pref@corp.example'],
    ['sub', 'sub-123'],
    ['localPart', 'alice.upn'],
    ['samAccountName', 'ALICE01'],
    ['claim:employee_id', 'E42'],
    ['claim:ext.level', '7'],
    ['claim:ext.admin', 'false'],
  ] as const)('%s → %s', (kind, expected) => {
    expect(resolveLoginIdentity(full, kind)).toBe(expected);
  });

  it('upn falls back to the preferred username; localPart and samAccountName follow it', () => {
    const id: SsoIdentity = { sub: 's', upn: '', preferredUsername: 'bob@x.example' };
    expect(resolveLoginIdentity(id, 'upn')).toBe('bob@x.example');
    expect(resolveLoginIdentity(id, 'localPart')).toBe('bob');
    expect(resolveLoginIdentity(id, 'samAccountName')).toBe('bob');
  });

  it('localPart cuts at the last @ and keeps a value without @ whole', () => {
    expect(resolveLoginIdentity({ sub: 's', upn: 'a@b@c.example' }, 'localPart')).toBe('a@b');
    expect(resolveLoginIdentity({ sub: 's', upn: 'CORP\\carol' }, 'localPart')).toBe('CORP\\carol');
  });

  it.each([
    [{ sub: 's' }, 'upn', 'upn'],
    [{ sub: 's', upn: '' }, 'email', 'email'],
    [{ sub: 's' }, 'preferredUsername', 'preferredUsername'],
    [{ sub: '' }, 'sub', 'sub'],
    [{ sub: 's' }, 'localPart', 'upn'],
    [{ sub: 's', upn: '@corp.example' }, 'localPart', 'upn'],
    [{ sub: 's', samAccountName: '' }, 'samAccountName', 'samAccountName'],
    [full, 'claim:nope', 'nope'],
    [full, 'claim:list', 'list'],
    [full, 'claim:obj', 'obj'],
    [full, 'claim:empty', 'empty'],
    [{ sub: 's' }, 'claim:employee_id', 'employee_id'],
  ] as const)('%j %s → SSO_IDENTITY_MISSING claim %s', (id, kind, claim) => {
    const err = missing(id, kind);
    expect(err.code).toBe('SSO_IDENTITY_MISSING');
    expect(err.claim).toBe(claim);
  });

  it('an unknown kind is a configuration error, not a missing claim', () => {
    const err = missing(full, 'nonsense' as LoginIdentityKind);
    expect(err.code).toBe('APPPROXY_SSO_CONFIG_INVALID');
  });
});

describe('isLoginIdentityKind', () => {
  it('accepts the fixed kinds and claim:<path>', () => {
    for (const k of LOGIN_IDENTITY_KINDS) expect(isLoginIdentityKind(k)).toBe(true);
    expect(isLoginIdentityKind('claim:ext.employee_id')).toBe(true);
  });
  it('refuses the rest', () => {
    for (const k of ['', 'UPN', 'claim:', 'claim: x', 'mail', 'loginIdentity']) {
      expect(isLoginIdentityKind(k)).toBe(false);
    }
  });
});
