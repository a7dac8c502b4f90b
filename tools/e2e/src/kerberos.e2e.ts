import { startDevIdp } from '@appproxy/dev-idp';
import { startSampleApp } from '@appproxy/sample-app';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM, launchChromium, logInAtDevIdp, newContext } from './browser.js';
import {
  RELAY_BIN,
  Stack,
  connectorId,
  devIdpFor,
  request,
  runCli,
  type LoggedProcess,
} from './harness.js';
import {
  TARGET_SPN,
  kerberosTools,
  startApacheGssapi,
  startSambaDc,
  type ApacheGssapi,
  type SambaDc,
} from './samba-ad.js';

/**
 * Kerberos single sign-on end to end: the real relay and connector CLIs, the dev OpenID
 * provider, Chromium, a Samba Active Directory domain controller and Apache with
 * mod_auth_gssapi. The user signs in at the provider; the connector gets a service ticket for
 * them by constrained delegation (S4U2Self + S4U2Proxy, in TypeScript) and Apache sees a
 * Kerberos sign-on.
 */
const TOOLS = kerberosTools();
const READY = CHROMIUM !== undefined && TOOLS.ready;

const HOSTS = {
  intranet: 'intranet.apps.localhost',
  other: 'other.apps.localhost',
  stale: 'stale.apps.localhost',
  plain: 'plain.apps.localhost',
};

let dc: SambaDc;
let apache: ApacheGssapi;
/** An Apache whose keytab lacks the SPN's key (a stale or wrong keytab on the app's server). */
let staleApache: ApacheGssapi;
let sample: Awaited<ReturnType<typeof startSampleApp>>;
let idp: Awaited<ReturnType<typeof startDevIdp>>;
let stack: Stack;
/** The connector with Kerberos settings (group Default); group Plain's has none. */
let krb: LoggedProcess;
let browser: Browser;
const contexts: BrowserContext[] = [];

const origin = (host: string) => `https://${host}:${stack.ports.public}`;

describe.skipIf(!READY)('Kerberos constrained delegation through relay and connector', () => {
  beforeAll(async () => {
    dc = await startSambaDc({ sambaBin: TOOLS.samba!, sambaToolBin: TOOLS.sambaTool! });
    apache = await startApacheGssapi({
      keytab: dc.httpKeytab,
      realm: dc.realm,
      krb5Conf: dc.krb5Conf,
      apacheBin: TOOLS.apache!,
    });
    staleApache = await startApacheGssapi({
      keytab: dc.serviceKeytab,
      realm: dc.realm,
      krb5Conf: dc.krb5Conf,
      apacheBin: TOOLS.apache!,
    });
    sample = await startSampleApp({ basePath: '/' });
    stack = new Stack({
      apps: [
        {
          name: 'Intranet',
          internalUrl: `${apache.url}/`,
          externalUrl: `https://${HOSTS.intranet}:{port}/`,
          preAuthentication: 'oidc',
          extra: `    sso: { mode: kerberos, loginIdentity: localPart, kerberos: { spn: ${TARGET_SPN} } }\n`,
        },
        {
          name: 'Stale',
          internalUrl: `${staleApache.url}/`,
          externalUrl: `https://${HOSTS.stale}:{port}/`,
          preAuthentication: 'oidc',
          extra: `    sso: { mode: kerberos, loginIdentity: localPart, kerberos: { spn: ${TARGET_SPN} } }\n`,
        },
        {
          name: 'NoKeytab',
          internalUrl: `${apache.url}/`,
          externalUrl: `https://${HOSTS.plain}:{port}/`,
          preAuthentication: 'oidc',
          extra: `    connectorGroup: Plain\n    sso: { mode: kerberos, loginIdentity: localPart, kerberos: { spn: ${TARGET_SPN} } }\n`,
        },
        {
          name: 'Other',
          internalUrl: `http://127.0.0.1:${sample.port}/`,
          externalUrl: `https://${HOSTS.other}:{port}/`,
        },
      ],
      groups: ['Default', 'Plain'],
      startConnector: false,
    });
    idp = await devIdpFor(stack, Object.values(HOSTS));
    await stack.start();
    await stack.registerConnector();
    krb = await stack.startConnector(stack.connectorState, 2, [
      '--kerberos-keytab',
      dc.serviceKeytab,
      '--kerberos-principal',
      dc.servicePrincipal,
      '--kerberos-kdc',
      dc.kdc,
    ]);
    const plain = join(stack.dir, 'plain-connector');
    await stack.registerConnector(plain, 'Plain');
    await stack.startConnector(plain);
    browser = await launchChromium();
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
    await idp?.close();
    await sample?.close();
    await apache?.stop();
    await staleApache?.stop();
    await dc?.stop();
  });

  afterEach(async () => {
    await Promise.all(contexts.splice(0).map((c) => c.close()));
  });

  /** Signs `user` in at the provider on the way to `url`; the page where the relay lands them. */
  async function signedIn(url: string, user: string): Promise<Page> {
    const ctx = await newContext(browser);
    contexts.push(ctx);
    const p = await ctx.newPage();
    await p.goto(url);
    await logInAtDevIdp(p, idp.issuer, user);
    await p.waitForURL(url, { timeout: 15_000 });
    return p;
  }

  const connectorSaid = (code: string) =>
    krb.waitFor(
      (l) => l.msg === 'kerberos single sign-on failed' && l.code === code,
      10_000,
      `the connector's log line for ${code}`,
    );

  it('connectors list says which connector can do Kerberos', async () => {
    const listed = await runCli(RELAY_BIN, [
      'connectors',
      'list',
      '--config',
      stack.configPath,
      '--json',
    ]);
    const rows = JSON.parse(listed.stdout) as Array<{
      id: string;
      group: string;
      kerberos: boolean;
      capabilities: string[];
    }>;
    const krbId = connectorId(stack.connectorState);
    expect(
      rows
        .map((r) => [r.id === krbId, r.group, r.kerberos, r.capabilities.includes('kerberos')])
        .sort(),
    ).toStrictEqual([
      [false, 'Plain', false, false],
      [true, 'Default', true, true],
    ]);
    const table = await runCli(RELAY_BIN, ['connectors', 'list', '--config', stack.configPath]);
    expect(table.stdout).toMatch(/\sKERBEROS\s/);
    expect(table.stdout).toMatch(new RegExp(`^${krbId}\\s.*\\syes\\s`, 'm'));
  });

  it('a group without a Kerberos connector: SSO_NOT_CONFIGURED from the relay', async () => {
    const p = await signedIn(`${origin(HOSTS.plain)}/whoami`, 'alice');
    const body = await p.textContent('body');
    expect(body).toContain('SSO_NOT_CONFIGURED');
    expect(body).not.toContain('REMOTE_USER');
  });

  it('delegation removed in the domain: SSO_DELEGATION_DENIED, and back once it is allowed', async () => {
    await dc.setDelegation(false);
    try {
      const p = await signedIn(`${origin(HOSTS.intranet)}/whoami`, 'alice');
      expect(await p.textContent('body')).toContain('SSO_DELEGATION_DENIED');
      const line = await connectorSaid('SSO_DELEGATION_DENIED');
      expect(line).toMatchObject({ user: 'alice', spn: TARGET_SPN });
      expect(String(line.detail)).toMatch(/KDC_ERR_BADOPTION|KDC_ERR_POLICY/);
    } finally {
      await dc.setDelegation(true);
    }
  });

  it('alice signs in at the OpenID provider; Apache sees her Kerberos sign-on', async () => {
    const p = await signedIn(`${origin(HOSTS.intranet)}/whoami`, 'alice');
    expect(await p.textContent('body')).toContain(`REMOTE_USER=alice@${dc.realm}`);
    // Again on the same session: the cached ticket with a fresh authenticator (Apache's
    // replay cache would refuse the same one twice).
    await p.reload();
    expect(await p.textContent('body')).toContain(`REMOTE_USER=alice@${dc.realm}`);
    await p.goto(`${origin(HOSTS.intranet)}/whoami?again=1`);
    expect(await p.textContent('body')).toContain(`REMOTE_USER=alice@${dc.realm}`);
  });

  it('bob, whom the domain does not know: SSO_USER_UNKNOWN (403), with the KDC’s error logged', async () => {
    const p = await signedIn(`${origin(HOSTS.intranet)}/whoami`, 'bob');
    const body = await p.textContent('body');
    expect(body).toContain('SSO_USER_UNKNOWN');
    expect(body).not.toContain('REMOTE_USER');
    const line = await connectorSaid('SSO_USER_UNKNOWN');
    expect(String(line.detail)).toMatch(/KDC_ERR_C_PRINCIPAL_UNKNOWN|KDC_ERR_S_PRINCIPAL_UNKNOWN/);
  });

  it('an app whose keytab cannot read the ticket: SSO_BACKEND_REJECTED, not its login prompt', async () => {
    const p = await signedIn(`${origin(HOSTS.stale)}/whoami`, 'alice');
    const body = await p.textContent('body');
    expect(body).toContain('SSO_BACKEND_REJECTED');
    expect(body).not.toContain('REMOTE_USER');
    await krb.waitFor(
      (l) => l.msg === 'backend refused the delegated Kerberos ticket' && l.app === 'Stale',
      10_000,
      'the connector names the refusal',
    );
  });

  it('KDC stopped: SSO_KDC_UNREACHABLE for a new user; cached tickets and other apps keep working', async () => {
    const alice = await signedIn(`${origin(HOSTS.intranet)}/whoami`, 'alice');
    expect(await alice.textContent('body')).toContain(`REMOTE_USER=alice@${dc.realm}`);
    await dc.stopKdc();
    try {
      const carol = await signedIn(`${origin(HOSTS.intranet)}/whoami`, 'carol');
      expect(await carol.textContent('body')).toContain('SSO_KDC_UNREACHABLE');
      await connectorSaid('SSO_KDC_UNREACHABLE');
      // alice's ticket is cached: she still gets in.
      await alice.reload();
      expect(await alice.textContent('body')).toContain(`REMOTE_USER=alice@${dc.realm}`);
      // Another app through the same connector is untouched.
      const res = await request(stack, HOSTS.other, '/headers', {
        headers: { host: `${HOSTS.other}:${stack.ports.public}` },
      });
      expect(res.status).toBe(200);
      expect(krb.child.exitCode).toBeNull();
    } finally {
      await dc.start();
    }
    const carol = await signedIn(`${origin(HOSTS.intranet)}/whoami`, 'carol');
    // carol is not in the domain either: the KDC answers again, with its own refusal.
    expect(await carol.textContent('body')).toContain('SSO_USER_UNKNOWN');
  });

  // Last: the test caches alice's ticket, which the delegation test above must not find.
  it('apps test --user: a service ticket for alice; the KDC’s error for bob', async () => {
    const test = (user: string) =>
      runCli(RELAY_BIN, ['apps', 'test', 'Intranet', '--user', user, '--config', stack.configPath]);
    const alice = await runCli(RELAY_BIN, [
      'apps',
      'test',
      'Intranet',
      '--user',
      'alice',
      '--json',
      '--connector',
      connectorId(stack.connectorState),
      '--config',
      stack.configPath,
    ]);
    expect(alice.code, alice.stderr).toBe(0);
    const checks = (
      JSON.parse(alice.stdout) as {
        connectors: Array<{
          checks: Array<{ name: string; ok: boolean; data?: Record<string, unknown> }>;
        }>;
      }
    ).connectors[0]!.checks;
    const sso = checks.find((c) => c.name === 'sso')!;
    expect(sso).toMatchObject({ ok: true, data: { spn: TARGET_SPN, loginIdentity: 'alice' } });
    expect(Date.parse(String(sso.data!.ticketEndsAt))).toBeGreaterThan(Date.now());
    // The GET carried the delegated ticket and Apache took it.
    expect(checks.find((c) => c.name === 'http')).toMatchObject({ ok: true });
    const bob = await test('bob');
    expect(bob.code).toBe(1);
    expect(bob.stdout).toMatch(/^sso\s+fail\s.*SSO_USER_UNKNOWN/m);
    expect(bob.stdout).toMatch(/^FIX sso: the domain has no account bob/m);
  });
});
