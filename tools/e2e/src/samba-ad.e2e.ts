import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemTool } from './harness.js';
import {
  type ApacheGssapi,
  type SambaDc,
  TARGET_SPN,
  kerberosTools,
  startApacheGssapi,
  startSambaDc,
} from './samba-ad.js';

/**
 * The Kerberos fixtures proved with MIT's tools as the oracle: a Samba AD domain controller
 * grants `appproxy` constrained delegation with protocol transition (kvno -U -P), and Apache
 * with mod_auth_gssapi accepts a real Kerberos ticket for HTTP/intranet.corp.test.
 */
const TOOLS = kerberosTools();
const { samba: SAMBA, sambaTool: SAMBA_TOOL, kinit: KINIT, kvno: KVNO, apache: APACHE } = TOOLS;
const CURL = systemTool('curl');
const tools = TOOLS.ready && CURL;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function exec(file: string, args: string[], env: NodeJS.ProcessEnv, input?: string) {
  return new Promise<Result>((resolve) => {
    const child = execFile(file, args, { env: { ...process.env, ...env } }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin!.end(input);
  });
}

let dc: SambaDc | undefined;
let web: ApacheGssapi | undefined;
const work = mkdtempSync(join(tmpdir(), 'appproxy-krb5-'));
afterAll(async () => {
  await Promise.all([web?.stop(), dc?.stop()]);
  rmSync(work, { recursive: true, force: true });
});

let cache = 0;
/** The MIT tools' environment: the fixture's krb5.conf and a fresh credentials cache. */
const krbEnv = () => ({
  KRB5_CONFIG: dc!.krb5Conf,
  KRB5CCNAME: `FILE:${join(work, `cc${++cache}`)}`,
});

/** kinit as the service from its keytab, then S4U2Self + S4U2Proxy for `user` to the SPN. */
async function delegate(user: string): Promise<Result> {
  const env = krbEnv();
  const kinit = await exec(
    KINIT!,
    ['-k', '-t', dc!.serviceKeytab, '-f', dc!.servicePrincipal],
    env,
  );
  expect(kinit, kinit.stderr).toMatchObject({ code: 0 });
  return exec(KVNO!, ['-U', user, '-P', TARGET_SPN], env);
}

describe.skipIf(!tools)('Samba AD and Apache mod_auth_gssapi fixtures', () => {
  beforeAll(async () => {
    dc = await startSambaDc({ sambaBin: SAMBA, sambaToolBin: SAMBA_TOOL });
    web = await startApacheGssapi({
      keytab: dc.httpKeytab,
      realm: dc.realm,
      krb5Conf: dc.krb5Conf,
      apacheBin: APACHE,
    });
  }, 300_000);

  it('delegates alice to HTTP/intranet.corp.test (S4U2Self + S4U2Proxy)', async () => {
    const res = await delegate('alice');
    expect(res, res.stderr).toMatchObject({ code: 0 });
    expect(res.stdout).toContain(`${TARGET_SPN}@CORP.TEST: kvno =`);
  });

  it('refuses a user AD does not know', async () => {
    const res = await delegate('bob');
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain("Client 'bob@CORP.TEST' not found in Kerberos database");
  });

  it('refuses delegation once it is switched off, and grants it again when on', async () => {
    await dc!.setDelegation(false);
    const off = await delegate('alice');
    expect(off.code).not.toBe(0);
    expect(off.stderr).toContain("KDC can't fulfill requested option");
    await dc!.setDelegation(true);
    const on = await delegate('alice');
    expect(on, on.stderr).toMatchObject({ code: 0 });
  });

  it('Apache: 401 Negotiate without a ticket, public page without, alice with one', async () => {
    const host = `intranet.corp.test:${web!.port}`;
    const resolve = ['--resolve', `${host}:127.0.0.1`];
    const anonymous = await exec(CURL!, ['-si', ...resolve, `http://${host}/whoami`], {});
    expect(anonymous.stdout).toMatch(/^HTTP\/1\.1 401/);
    expect(anonymous.stdout).toMatch(/^WWW-Authenticate: Negotiate\r?$/m);
    const open = await exec(CURL!, ['-sf', `${web!.url}/public`], {});
    expect(open.stdout).toBe('public\n');

    const env = krbEnv();
    const kinit = await exec(
      KINIT!,
      [dc!.users.alice.principal],
      env,
      `${dc!.users.alice.password}\n`,
    );
    expect(kinit, kinit.stderr).toMatchObject({ code: 0 });
    const res = await exec(
      CURL!,
      ['-sf', '--negotiate', '-u', ':', ...resolve, `http://${host}/whoami`],
      env,
    );
    expect(res, `${res.stderr}\n${web!.errorLog()}`).toMatchObject({ code: 0 });
    expect(res.stdout).toBe('REMOTE_USER=alice@CORP.TEST\n');
  });

  it('the KDC can be stopped and started again on the same files', async () => {
    await dc!.stopKdc();
    const args = ['-k', '-t', dc!.serviceKeytab, dc!.servicePrincipal];
    const down = await exec(KINIT!, args, krbEnv());
    expect(down.code).not.toBe(0);
    expect(down.stderr).toContain('Cannot contact any KDC');
    await dc!.start();
    const up = await delegate('alice');
    expect(up, up.stderr).toMatchObject({ code: 0 });
  });
});
