import { describe, expect, it } from 'vitest';
import { identityFromClaims, MAX_GROUPS, signedInAs } from './index.js';

const ISS = 'https://idp.example.com';

describe('identityFromClaims', () => {
  it('reads the standard claims', () => {
    expect(
      identityFromClaims(
        {
          sub: 's1',
          name: 'Alice',
          email: 'alice@example.com',
          preferred_username: 'alice',
          upn: 'alice@corp',
          groups: ['A', 'B'],
          roles: 'Admin',
          amr: ['pwd', 'mfa'],
          auth_time: 1700000000,
        },
        ISS,
      ),
    ).toEqual({
      sub: 's1',
      issuer: ISS,
      name: 'Alice',
      email: 'alice@example.com',
      preferredUsername: 'alice',
      upn: 'alice@corp',
      groups: ['A', 'B'],
      roles: ['Admin'],
      amr: ['pwd', 'mfa'],
      authTime: 1700000000,
    });
  });

  it('follows configured names: dotted paths (Keycloak) and URL-named claims (Okta, Auth0)', () => {
    const id = identityFromClaims(
      {
        sub: 's1',
        realm_access: { roles: ['offline_access', 'approver'] },
        'https://example.com/groups': ['G1'],
        unique_name: 'alice@corp',
      },
      ISS,
      { roles: 'realm_access.roles', groups: 'https://example.com/groups', upn: 'unique_name' },
    );
    expect(id).toMatchObject({
      roles: ['offline_access', 'approver'],
      groups: ['G1'],
      upn: 'alice@corp',
    });
  });

  it('reads samAccountName from its configured claim, and keeps the claims SSO names', () => {
    const claims = {
      sub: 's1',
      onprem_sam: 'ALICE',
      employee_id: 'E-1',
      hr: { grade: 7, manager: true, teams: ['a', 2, 'b'], blob: { x: 1 } },
      empty: '',
    };
    const id = identityFromClaims(claims, ISS, { samAccountName: 'onprem_sam' }, [
      'employee_id',
      'hr.grade',
      'hr.manager',
      'hr.teams',
      'hr.blob',
      'empty',
      'absent',
    ]);
    expect(id.samAccountName).toBe('ALICE');
    expect(id.claims).toStrictEqual({
      employee_id: 'E-1',
      'hr.grade': 7,
      'hr.manager': true,
      'hr.teams': ['a', 'b'],
    });
    // Without a configured claim name there is no samAccountName, and nothing is kept unasked.
    const plain = identityFromClaims(claims, ISS);
    expect(plain).not.toHaveProperty('samAccountName');
    expect(plain).not.toHaveProperty('claims');
  });

  it('drops what is not a string and caps huge lists', () => {
    const id = identityFromClaims(
      { sub: 's1', email: 42, groups: [1, null, 'ok', { a: 1 }, 'x'.repeat(600)], amr: 'pwd' },
      ISS,
    );
    expect(id).toEqual({ sub: 's1', issuer: ISS, groups: ['ok'], roles: [], amr: ['pwd'] });
    const many = identityFromClaims(
      { sub: 's', groups: Array.from({ length: MAX_GROUPS + 10 }, (_, i) => `g${i}`) },
      ISS,
    );
    expect(many.groups).toHaveLength(MAX_GROUPS);
  });

  it('flags Entra groups overage (_claim_names and hasgroups)', () => {
    const overage = identityFromClaims(
      {
        sub: 's',
        _claim_names: { groups: 'src1' },
        _claim_sources: { src1: { endpoint: 'https://graph' } },
      },
      ISS,
    );
    expect(overage).toMatchObject({ groups: [], groupsOverage: true });
    expect(identityFromClaims({ sub: 's', hasgroups: true }, ISS).groupsOverage).toBe(true);
    expect(identityFromClaims({ sub: 's', groups: [] }, ISS).groupsOverage).toBeUndefined();
  });

  it('signedInAs picks the most recognisable name', () => {
    const base = { sub: 's', issuer: ISS, groups: [], roles: [], amr: [] };
    expect(signedInAs({ ...base, preferredUsername: 'alice', email: 'a@x' })).toBe('alice');
    expect(signedInAs({ ...base, email: 'a@x', name: 'A' })).toBe('a@x');
    expect(signedInAs(base)).toBe('s');
  });
});
