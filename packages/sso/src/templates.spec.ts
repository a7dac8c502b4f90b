import { describe, expect, it } from 'vitest';
import { SsoError } from './errors.js';
import type { SsoIdentity } from './identity.js';
import { HeaderTemplates } from './templates.js';

const alice: SsoIdentity = {
  sub: 'sub-1',
  issuer: 'https://login.example.com/tenant/v2.0',
  name: 'Alice Liddell',
  email: 'alice@corp.example',
  preferredUsername: 'alice.p@corp.example',
  upn: 'alice@corp.example',
  samAccountName: 'ALICE',
  groups: ['eng', 'ops'],
  roles: ['Admin'],
  claims: { 'ext.dept': 'R&D', tier: 3, tags: ['x', 'y'], nested: { a: 1 } },
};

const one = (template: string, identity: SsoIdentity = alice, login = 'LOGIN') =>
  new HeaderTemplates({ 'X-Test': template }).render(identity, login)['x-test'];

function refused(templates: Record<string, string>): SsoError {
  try {
    new HeaderTemplates(templates);
  } catch (err) {
    expect(err).toBeInstanceOf(SsoError);
    return err as SsoError;
  }
  throw new Error('accepted');
}

describe('HeaderTemplates placeholders', () => {
  it.each([
    ['{loginIdentity}', 'LOGIN'],
    ['{sub}', 'sub-1'],
    ['{issuer}', 'https://login.example.com/tenant/v2.0'],
    ['{name}', 'Alice Liddell'],
    ['{email}', 'alice@corp.example'],
    ['{preferredUsername}', 'alice.p@corp.example'],
    ['{upn}', 'alice@corp.example'],
    ['{samAccountName}', 'ALICE'],
    ['{groups}', 'eng, ops'],
    ['{roles}', 'Admin'],
    ['{claim:ext.dept}', 'R&D'],
    ['{claim:tier}', '3'],
    ['{claim:tags}', 'x, y'],
    ['CORP\\{samAccountName}', 'CORP\\ALICE'],
    ['{name} <{email}>', 'Alice Liddell <alice@corp.example>'],
  ])('%s → %s', (template, expected) => {
    expect(one(template)).toBe(expected);
  });

  it('{{ and }} are literal braces', () => {
    expect(one('{{user}}={loginIdentity}}}')).toBe('{user}=LOGIN}');
  });

  it('gives lower-case names and the claim paths used', () => {
    const t = new HeaderTemplates({
      'X-Remote-User': '{loginIdentity}',
      'X-Dept': '{claim:ext.dept} {claim:tier} {claim:ext.dept}',
    });
    expect(t.names).toEqual(['x-remote-user', 'x-dept']);
    expect(t.claimPaths).toEqual(['ext.dept', 'tier']);
    expect(t.render(alice, 'a')).toEqual({ 'x-remote-user': 'a', 'x-dept': 'R&D 3 R&D' });
  });
});

describe('HeaderTemplates missing values', () => {
  it.each([
    ['{email}', { sub: 's' }],
    ['{email}', { sub: 's', email: '' }],
    ['{email}', { sub: 's', email: ' \r\n ' }],
    ['{groups}', { sub: 's', groups: [] }],
    ['{groups}', { sub: 's', groups: ['', ' '] }],
    ['{roles}', { sub: 's' }],
    ['{claim:nested}', alice],
    ['{claim:absent}', alice],
    ['user={name} mail={email}', { sub: 's', name: 'N' }],
  ] as const)('%s over %j → header left out', (template, identity) => {
    const t = new HeaderTemplates({ 'X-Test': template, 'X-Sub': '{sub}' });
    expect(t.render(identity, 'l')).toEqual({ 'x-sub': identity.sub });
  });
});

describe('HeaderTemplates value safety', () => {
  it('removes CR, LF, NUL and other controls, keeps TAB, trims', () => {
    const identity = { sub: 's', name: '  Eve\r\nX-Admin: yes\x00\x1b\x7f\tB  ' };
    expect(one('[{name}]', identity)).toBe('[EveX-Admin: yes\tB]');
  });

  it('sends non-ASCII as its UTF-8 bytes, which Node accepts and a UTF-8 reader decodes', () => {
    const value = one('{name}', { sub: 's', name: 'Zoë 日本 😀' })!;
    expect(value).toBe(Buffer.from('Zoë 日本 😀', 'utf8').toString('latin1'));
    expect(Buffer.from(value, 'latin1').toString('utf8')).toBe('Zoë 日本 😀');
    expect(() => new Headers({ 'x-test': value })).not.toThrow();
  });

  it('encodes non-ASCII template text the same way', () => {
    const value = one('Grüße {sub}', { sub: 'é' })!;
    expect(Buffer.from(value, 'latin1').toString('utf8')).toBe('Grüße é');
  });

  it('cuts a list at an item boundary to stay within 8 KiB', () => {
    const groups = Array.from({ length: 1000 }, (_, i) => `group-${String(i).padStart(4, '0')}`);
    const value = one('g={groups}', { sub: 's', groups })!;
    expect(value.length).toBeLessThanOrEqual(8192);
    expect(value.length).toBeGreaterThan(8192 - 'group-0000, '.length);
    const items = value.slice(2).split(', ');
    expect(items).toEqual(groups.slice(0, items.length));
  });

  it('counts UTF-8 bytes against the cap', () => {
    // 'é' is 2 bytes: n items take 4n - 2 bytes, so 2048 fit.
    const groups = Array.from({ length: 3000 }, () => 'é');
    const value = one('{groups}', { sub: 's', groups })!;
    expect(value.length).toBe(8190);
    expect(Buffer.from(value, 'latin1').toString('utf8').split(', ')).toHaveLength(2048);
  });

  it('leaves out a header whose single value is over 8 KiB', () => {
    expect(one('{name}', { sub: 's', name: 'n'.repeat(8193) })).toBeUndefined();
    expect(one('{name}', { sub: 's', name: 'n'.repeat(8192) })).toHaveLength(8192);
    expect(one('{groups}', { sub: 's', groups: ['g'.repeat(9000), 'small'] })).toBeUndefined();
  });
});

describe('HeaderTemplates refuses', () => {
  it.each([
    [{ 'X Bad': '{sub}' }, 'X Bad'],
    [{ 'X-Bad:': '{sub}' }, 'X-Bad:'],
    [{ '': '{sub}' }, '""'],
    [{ ':authority': '{sub}' }, 'pseudo'],
    [{ Host: '{sub}' }, 'Host'],
    [{ Connection: '{sub}' }, 'Connection'],
    [{ 'Content-Length': '{sub}' }, 'Content-Length'],
    [{ 'Transfer-Encoding': '{sub}' }, 'Transfer-Encoding'],
    [{ TE: '{sub}' }, 'TE'],
    [{ Upgrade: '{sub}' }, 'Upgrade'],
    [{ Cookie: '{sub}' }, 'Cookie'],
    [{ 'AppProxy-Session': '{sub}' }, 'AppProxy-Session'],
    [{ 'X-A': '{password}' }, 'unknown placeholder "{password}"'],
    [{ 'X-A': '{Sub}' }, '{Sub}'],
    [{ 'X-A': '{claim:}' }, 'claim path'],
    [{ 'X-A': 'user={sub' }, 'unclosed'],
    [{ 'X-A': 'a { b {sub}' }, 'unclosed'],
    [{ 'X-A': 'a } b' }, 'unmatched'],
    [{ 'X-A': 'a\r\nb' }, 'control'],
    [{ 'X-A': '{sub}', 'x-a': '{email}' }, 'twice'],
  ])('%j (%s)', (templates, hint) => {
    const err = refused(templates);
    expect(err.code).toBe('APPPROXY_SSO_TEMPLATE_INVALID');
    if (!hint.startsWith('"')) expect(err.message).toContain(hint);
  });
});
