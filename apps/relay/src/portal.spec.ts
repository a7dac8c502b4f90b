import { parseConfig } from '@appproxy/config';
import type { Identity } from '@appproxy/preauth';
import { describe, expect, it } from 'vitest';
import { Portal, renderPortal } from './portal.js';

const config = (showPassthrough: boolean) =>
  parseConfig(
    `relay:
  listen: 127.0.0.1:8443
  tunnelListen: 127.0.0.1:9443
  certificates: [{ cert: ${import.meta.filename}, key: ${import.meta.filename} }]
identityProvider: { issuer: https://idp.example.com, clientId: x }
portal: { externalUrl: https://myapps.example.com/, showPassthrough: ${showPassthrough} }
apps:
  - { name: Payroll, internalUrl: http://p/, externalUrl: https://pay.example.com/, assignment: { required: true, groups: [Finance] }, description: Pay }
  - { name: Board, internalUrl: http://b/, externalUrl: https://board.example.com/, assignment: { required: true, users: [bob@example.com] } }
  - { name: Wiki, internalUrl: http://w/, externalUrl: https://wiki.example.com/, rules: { requiredAmr: [mfa] } }
  - { name: Open, internalUrl: http://o/, externalUrl: https://open.example.com/, preAuthentication: passthrough }
`,
    { baseDir: '/' },
  );

const who = (email: string, groups: string[]): Identity =>
  ({ sub: email, issuer: 'https://idp.example.com', email, groups, roles: [], amr: [] }) as never;

describe('Portal', () => {
  it('lists the apps the assignment lets in (rules are for opening them), by name', () => {
    const portal = Portal.of(config(false))!;
    const names = (i: Identity) => portal.entries(i).map((e) => e.name);
    expect(names(who('alice@example.com', ['Finance']))).toStrictEqual(['Payroll', 'Wiki']);
    expect(names(who('bob@example.com', []))).toStrictEqual(['Board', 'Wiki']);
    expect(portal.entries(who('alice@example.com', ['finance']))[0]).toStrictEqual({
      name: 'Payroll',
      url: 'https://pay.example.com/',
      description: 'Pay',
    });
  });

  it('adds the passthrough apps for everyone with showPassthrough', () => {
    const portal = Portal.of(config(true))!;
    expect(portal.entries(who('carol@example.com', [])).map((e) => e.name)).toStrictEqual([
      'Open',
      'Wiki',
    ]);
  });

  it('serves its host, any port, any case, and no other', () => {
    const portal = Portal.of(config(false))!;
    expect(portal.serves('MyApps.example.com:8443')).toBe(true);
    expect(portal.serves('pay.example.com')).toBe(false);
  });

  it('escapes every value', () => {
    const html = renderPortal('<u>"eve"</u>', [
      {
        name: '<script>x</script>',
        url: 'https://a.example.com/"><script>',
        icon: 'https://i.example.com/a.png"onerror="x',
        description: "it's & <b>",
      },
    ]);
    expect(html).not.toMatch(/<script|<u>|<b>|"onerror|"><script/);
    expect(html).toContain('&lt;script&gt;x&lt;/script&gt;');
    expect(html).toContain('&lt;u&gt;&quot;eve&quot;&lt;/u&gt;');
    expect(html).toContain('it&#39;s &amp; &lt;b&gt;');
  });
});
