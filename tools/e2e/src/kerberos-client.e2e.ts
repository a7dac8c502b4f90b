import { execFile } from 'node:child_process';
import { request } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KerberosDelegator, SsoError, type KerberosDelegatorOptions } from '@appproxy/sso';
import {
  type ApacheGssapi,
  type SambaDc,
  TARGET_SPN,
  kerberosTools,
  startApacheGssapi,
  startSambaDc,
} from './samba-ad.js';

/**
 * `@appproxy/sso`'s Kerberos client against a real Active Directory KDC (Samba's) and a
 * real Kerberos-protected page (Apache mod_auth_gssapi): log in from keytab and password,
 * S4U2Self + S4U2Proxy for alice, `Authorization: Negotiate` accepted; each failure the
 * admin must be told about gets its code. MIT's kvno is the oracle for the same delegation.
 */
const TOOLS = kerberosTools();
const { samba: SAMBA, sambaTool: SAMBA_TOOL, kinit: KINIT, kvno: KVNO, apache: APACHE } = TOOLS;

let dc: SambaDc | undefined;
let web: ApacheGssapi | undefined;
const open: KerberosDelegator[] = [];
const work = mkdtempSync(join(tmpdir(), 'appproxy-krb-client-'));
afterAll(async () => {
  for (const k of open) k.close();
  await Promise.all([web?.stop(), dc?.stop()]);
  rmSync(work, { recursive: true, force: true });
});

function delegator(extra: Partial<KerberosDelegatorOptions> = {}): KerberosDelegator {
  const k = new KerberosDelegator({
    principal: dc!.servicePrincipal,
    keytab: dc!.serviceKeytab,
    kdc: [dc!.kdc],
    ...extra,
  } as KerberosDelegatorOptions);
  open.push(k);
  return k;
}

/** GET /whoami on the Apache page with an Authorization header, as intranet.corp.test. */
function whoami(authorization: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: web!.port,
        path: '/whoami',
        headers: { host: `intranet.corp.test:${web!.port}`, authorization },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

async function failure(p: Promise<unknown>): Promise<SsoError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SsoError);
  return err as SsoError;
}

describe.skipIf(!TOOLS.ready)('Kerberos client against Samba AD and Apache mod_auth_gssapi', () => {
  beforeAll(async () => {
    dc = await startSambaDc({ sambaBin: SAMBA, sambaToolBin: SAMBA_TOOL });
    web = await startApacheGssapi({
      keytab: dc.httpKeytab,
      realm: dc.realm,
      krb5Conf: dc.krb5Conf,
      apacheBin: APACHE,
    });
  }, 300_000);

  it('keytab login: alice gets the page as alice@CORP.TEST; the second call hits the cache', async () => {
    const k = delegator();
    const first = await k.authorization('alice', TARGET_SPN);
    expect(first).toMatch(/^Negotiate [A-Za-z0-9+/]+=*$/);
    // AS without and with pre-authentication, S4U2Self, S4U2Proxy.
    expect(k.stats).toEqual({ kdcExchanges: 4, ticketCacheHits: 0 });
    expect(await whoami(first)).toEqual({ status: 200, body: 'REMOTE_USER=alice@CORP.TEST\n' });

    const second = await k.authorization('alice', TARGET_SPN);
    expect(k.stats).toEqual({ kdcExchanges: 4, ticketCacheHits: 1 });
    expect(second).not.toBe(first); // a fresh authenticator: Apache's replay cache takes it
    expect(await whoami(second)).toEqual({ status: 200, body: 'REMOTE_USER=alice@CORP.TEST\n' });
    // The same authenticator again is a replay, and Apache's replay cache refuses it: why
    // each request needs its own.
    expect((await whoami(second)).status).toBe(401);
  });

  it('password login (salt from ETYPE-INFO2) works the same', async () => {
    const k = delegator({ keytab: undefined, password: dc!.servicePassword });
    const header = await k.authorization('alice', TARGET_SPN);
    expect(await whoami(header)).toEqual({ status: 200, body: 'REMOTE_USER=alice@CORP.TEST\n' });
  });

  it('concurrent calls for one (user, SPN) share one exchange', async () => {
    const k = delegator();
    const headers = await Promise.all([1, 2, 3, 4].map(() => k.authorization('alice', TARGET_SPN)));
    expect(new Set(headers).size).toBe(4);
    expect(k.stats.kdcExchanges).toBe(4);
    for (const h of headers) expect((await whoami(h)).status).toBe(200);
  });

  it('an enterprise name (UPN) is delegated too', async () => {
    const k = delegator();
    const res = await whoami(await k.authorization('alice@CORP.TEST', TARGET_SPN));
    expect(res.status).toBe(200);
    // Samba 4.17 keeps the enterprise name as the ticket's client, alice\@CORP.TEST@CORP.TEST;
    // MIT's `kvno -U alice@CORP.TEST -P` (with PA-S4U-X509-USER) gets the same ticket.
    expect(res.body).toMatch(/^REMOTE_USER=alice(\\@CORP\.TEST)?@CORP\.TEST\n$/);
  });

  it('bob (unknown to AD) → SSO_USER_UNKNOWN', async () => {
    const err = await failure(delegator().authorization('bob', TARGET_SPN));
    expect(err.code).toBe('SSO_USER_UNKNOWN');
    expect(err.kdcError?.name).toBe('KDC_ERR_C_PRINCIPAL_UNKNOWN');
  });

  it('an SPN no account has → SSO_SPN_UNKNOWN', async () => {
    const err = await failure(delegator().authorization('alice', 'HTTP/nowhere.corp.test'));
    expect(['SSO_SPN_UNKNOWN', 'SSO_DELEGATION_DENIED']).toContain(err.code);
  });

  it('delegation switched off → SSO_DELEGATION_DENIED (not cached), and back on works', async () => {
    const k = delegator();
    await dc!.setDelegation(false);
    try {
      const err = await failure(k.authorization('alice', TARGET_SPN));
      expect(err.code).toBe('SSO_DELEGATION_DENIED');
      expect(err.kdcError?.name).toBe('KDC_ERR_BADOPTION');
      expect(err.message).toContain(
        `allow appproxy to delegate to ${TARGET_SPN} with any protocol`,
      );
    } finally {
      await dc!.setDelegation(true);
    }
    expect((await whoami(await k.authorization('alice', TARGET_SPN))).status).toBe(200);
  });

  it('clock 1 h ahead → SSO_CLOCK_SKEW with both times', async () => {
    const k = delegator({ now: () => Date.now() + 3600_000 });
    const err = await failure(k.authorization('alice', TARGET_SPN));
    expect(err.code).toBe('SSO_CLOCK_SKEW');
    expect(err.kdcError?.name).toBe('KRB_AP_ERR_SKEW');
    expect(err.message).toMatch(/KDC's time is \d{4}-.*, ours \d{4}-/);
  });

  it('wrong password → SSO_SERVICE_LOGIN_FAILED, with no password in the message', async () => {
    const k = delegator({ keytab: undefined, password: 'Wrong-Pass-1' });
    const err = await failure(k.authorization('alice', TARGET_SPN));
    expect(err.code).toBe('SSO_SERVICE_LOGIN_FAILED');
    expect(err.message).not.toContain('Wrong-Pass-1');
  });

  it('MIT kvno as oracle: the same delegation works with the reference implementation', async () => {
    const env = {
      ...process.env,
      KRB5_CONFIG: dc!.krb5Conf,
      KRB5CCNAME: `FILE:${join(work, 'cc')}`,
    };
    const run = (file: string, args: string[]) =>
      new Promise<{ code: number; out: string }>((resolve) =>
        execFile(file, args, { env }, (err, stdout, stderr) =>
          resolve({ code: err ? 1 : 0, out: stdout + stderr }),
        ),
      );
    const kinit = await run(KINIT!, ['-f', '-k', '-t', dc!.serviceKeytab, dc!.servicePrincipal]);
    expect(kinit.code, kinit.out).toBe(0);
    const kvno = await run(KVNO!, ['-U', 'alice', '-P', TARGET_SPN]);
    expect(kvno.code, kvno.out).toBe(0);
    expect(kvno.out).toContain(`${TARGET_SPN}@CORP.TEST: kvno =`);
    // …and ours, on the same KDC at the same moment.
    expect((await whoami(await delegator().authorization('alice', TARGET_SPN))).status).toBe(200);
  });

  it('KDC stopped → SSO_KDC_UNREACHABLE at once, naming the address; cached tickets still work', async () => {
    const k = delegator();
    await k.authorization('alice', TARGET_SPN);
    await dc!.stopKdc();
    try {
      const started = Date.now();
      const err = await failure(delegator({ timeoutMs: 2000 }).authorization('alice', TARGET_SPN));
      expect(err.code).toBe('SSO_KDC_UNREACHABLE');
      expect(err.message).toContain(dc!.kdc);
      expect(Date.now() - started).toBeLessThan(1500); // refused, not timed out
      expect((await whoami(await k.authorization('alice', TARGET_SPN))).status).toBe(200);
    } finally {
      await dc!.start();
    }
  });
});
