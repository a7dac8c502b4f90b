import { describe, expect, it } from 'vitest';
import { AccessPolicy, PreauthError, type Identity } from './index.js';

const alice: Identity = {
  sub: 'u-1',
  issuer: 'https://idp.example.com',
  email: 'Alice@Example.com',
  preferredUsername: 'alice',
  upn: 'alice@corp.example.com',
  groups: ['Staff', 'Finance'],
  roles: ['Expenses.Approver'],
  amr: ['pwd', 'mfa'],
};
const bob: Identity = {
  sub: 'u-2',
  issuer: alice.issuer,
  email: 'bob@example.com',
  groups: ['Staff'],
  roles: [],
  amr: ['pwd'],
};

describe('AccessPolicy: assignment', () => {
  it('lets anyone in when assignment is not required', () => {
    expect(new AccessPolicy().check(bob)).toEqual({ ok: true });
    expect(
      new AccessPolicy({ assignment: { required: false, users: ['nobody'] } }).check(bob),
    ).toEqual({ ok: true });
  });

  it('matches users case-insensitively by sub, email, preferred_username or upn', () => {
    for (const user of ['u-1', 'alice@example.COM', 'ALICE', 'alice@corp.example.com']) {
      expect(
        new AccessPolicy({ assignment: { required: true, users: [user] } }).check(alice),
      ).toEqual({ ok: true });
    }
    expect(
      new AccessPolicy({ assignment: { required: true, users: ['alice'] } }).check(bob),
    ).toMatchObject({
      ok: false,
      code: 'NOT_ASSIGNED',
    });
  });

  it('matches groups and roles', () => {
    const finance = new AccessPolicy({ assignment: { required: true, groups: ['finance'] } });
    expect(finance.check(alice)).toEqual({ ok: true });
    expect(finance.check(bob)).toMatchObject({ ok: false, code: 'NOT_ASSIGNED' });
    const approvers = new AccessPolicy({
      assignment: { required: true, groups: ['Expenses.Approver'] },
    });
    expect(approvers.check(alice)).toEqual({ ok: true });
  });

  it('assigns nobody when required with empty lists', () => {
    expect(new AccessPolicy({ assignment: { required: true } }).check(alice)).toMatchObject({
      code: 'NOT_ASSIGNED',
    });
  });

  it('explains Entra groups overage instead of failing silently', () => {
    const overage: Identity = { ...bob, groups: [], groupsOverage: true };
    const d = new AccessPolicy({ assignment: { required: true, groups: ['Finance'] } }).check(
      overage,
    );
    expect(d).toMatchObject({ ok: false, code: 'NOT_ASSIGNED' });
    expect(d.ok || d.reason).toMatch(/more groups/);
    // A user-listed account still gets in.
    expect(
      new AccessPolicy({
        assignment: { required: true, users: ['bob@example.com'], groups: ['Finance'] },
      }).check(overage),
    ).toEqual({
      ok: true,
    });
  });
});

describe('AccessPolicy: rules', () => {
  const ranges = new AccessPolicy({
    rules: { clientIpRanges: ['10.0.0.0/8', '192.0.2.7', '2001:db8::/32'] },
  });

  it.each([
    ['10.20.30.40', true],
    ['11.0.0.1', false],
    ['192.0.2.7', true],
    ['192.0.2.8', false],
    ['::ffff:10.1.1.1', true],
    ['::FFFF:11.1.1.1', false],
    ['2001:db8:1::5', true],
    ['[2001:db8::1]', true],
    ['2001:db9::1', false],
    ['not-an-ip', false],
    [undefined, false],
  ])('client IP %s allowed: %s', (ip, allowed) => {
    const d = ranges.check(alice, ip === undefined ? {} : { clientIp: ip });
    expect(d.ok).toBe(allowed);
    if (!d.ok) expect(d.code).toBe('POLICY_DENIED');
  });

  it('requires every listed amr value', () => {
    const mfa = new AccessPolicy({ rules: { requiredAmr: ['mfa'] } });
    expect(mfa.check(alice)).toEqual({ ok: true });
    const d = mfa.check(bob);
    expect(d).toMatchObject({ ok: false, code: 'POLICY_DENIED' });
    expect(d.ok || d.reason).toMatch(/multi-factor/);
    expect(new AccessPolicy({ rules: { requiredAmr: ['hwk'] } }).check(alice)).toMatchObject({
      code: 'POLICY_DENIED',
    });
  });

  it('checks assignment before rules', () => {
    const p = new AccessPolicy({
      assignment: { required: true, users: ['nobody'] },
      rules: { requiredAmr: ['mfa'] },
    });
    expect(p.check(bob)).toMatchObject({ code: 'NOT_ASSIGNED' });
  });

  it.each(['10.0.0.0/33', '10.0.0/8', '::1/129', '10.0.0.0/8/1', 'example.com', '', '10.0.0.0/-1'])(
    'refuses the range %j at construction',
    (range) => {
      expect(() => new AccessPolicy({ rules: { clientIpRanges: [range] } })).toThrow(PreauthError);
      try {
        new AccessPolicy({ rules: { clientIpRanges: [range] } });
      } catch (err) {
        expect((err as PreauthError).code).toBe('APPPROXY_PREAUTH_CONFIG_INVALID');
      }
    },
  );
});
