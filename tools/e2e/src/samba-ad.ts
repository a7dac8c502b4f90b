/**
 * Test fixtures for Kerberos single sign-on: a real Active Directory domain controller
 * (Samba's, with its Heimdal KDC) and a real Kerberos-protected web app (Apache httpd with
 * mod_auth_gssapi). The Debian packages come from `.ci/run`; tests find the binaries with
 * `systemTool` and skip locally when they are missing.
 *
 * Domain `CORP.TEST`: user `alice` (no `bob`: an unknown user), service account `appproxy`
 * allowed constrained delegation with protocol transition (S4U2Self + S4U2Proxy) to
 * `HTTP/intranet.corp.test`, an SPN of the account `intranet` (Apache's keytab).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, systemTool } from './harness.js';

/**
 * The system tools the Kerberos tests use, looked up once per file with `systemTool` (a
 * missing one skips locally with a loud message and fails in CI); `ready` when all are there.
 */
export function kerberosTools() {
  const tools = {
    samba: systemTool('samba', 'samba-ad-dc'),
    sambaTool: systemTool('samba-tool', 'samba-ad-provision'),
    kinit: systemTool('kinit', 'krb5-user'),
    kvno: systemTool('kvno', 'krb5-user'),
    apache: systemTool('apache2', 'libapache2-mod-auth-gssapi'),
  };
  return { ...tools, ready: Object.values(tools).every(Boolean) };
}

const execFileP = promisify(execFile);

export const REALM = 'CORP.TEST';
const DOMAIN = 'CORP';
const ADMIN_PASSWORD = 'Admin-Pass-1';
const SERVICE_ACCOUNT = 'appproxy';
const SERVICE_PASSWORD = 'Appproxy-Pass-1';
const TARGET_ACCOUNT = 'intranet';
const TARGET_PASSWORD = 'Intranet-Pass-1';
export const TARGET_SPN = 'HTTP/intranet.corp.test';
const USERS = { alice: { password: 'Alice-Pass-1' } } as const;
/** AES128 + AES256 (msDS-SupportedEncryptionTypes): no RC4 tickets for our accounts. */
const AES_ONLY = 24;

export interface SambaDcUser {
  /** `alice@CORP.TEST` */
  principal: string;
  password: string;
}

export interface SambaDc {
  realm: string;
  /** `host:port` of the KDC (TCP and UDP). */
  kdc: string;
  kdcHost: string;
  kdcPort: number;
  /** A krb5.conf for this realm only (KRB5_CONFIG for MIT tools; TCP preferred). */
  krb5Conf: string;
  /** Keytab of the service account `appproxy@CORP.TEST` (AES256, AES128, RC4 keys). */
  serviceKeytab: string;
  /** `appproxy@CORP.TEST` */
  servicePrincipal: string;
  servicePassword: string;
  /** Keytab of `HTTP/intranet.corp.test@CORP.TEST` (account `intranet`), for Apache. */
  httpKeytab: string;
  /** `HTTP/intranet.corp.test@CORP.TEST` */
  httpPrincipal: string;
  /** Users known to AD. `bob` is deliberately not one of them. */
  users: { alice: SambaDcUser };
  /** The domain controller's files; removed by `stop`. */
  dir: string;
  /**
   * Constrained delegation of `appproxy` to HTTP/intranet.corp.test, with protocol
   * transition (`for-any-protocol`): on at start. Takes effect at the KDC at once.
   */
  setDelegation(on: boolean): Promise<void>;
  /** Stops the KDC, keeping its files (for "KDC unreachable"); `start` brings it back. */
  stopKdc(): Promise<void>;
  /** Starts the KDC again on the same files and address; resolves once it answers. */
  start(): Promise<void>;
  /** Stops the KDC and removes `dir`. */
  stop(): Promise<void>;
}

export interface SambaDcOptions {
  /** Path of `samba` (from `systemTool`). @default 'samba' */
  sambaBin?: string;
  /** Path of `samba-tool`. @default 'samba-tool' */
  sambaToolBin?: string;
  /** How long to wait for the KDC to answer on TCP. @default 60_000 */
  startTimeoutMs?: number;
}

/** The template's own path, written when it was provisioned (rewritten in every copy). */
const TEMPLATE_ROOT_FILE = 'template-root';

async function run(file: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  try {
    const { stdout } = await execFileP(file, args, {
      env: { ...process.env, ...env },
      timeout: 300_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    return stdout;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${file} ${args.join(' ')} failed: ${e.message}\n${e.stdout}\n${e.stderr}`, {
      cause: err,
    });
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function sambaVersion(samba: string): Promise<string> {
  return (await run(samba, ['--version'])).trim().replace(/^Version\s+/, '');
}

/**
 * Provisions the domain once per Samba version into `os.tmpdir()`, with its users, SPNs,
 * delegation and keytabs (about a minute); concurrent callers wait on a lock directory.
 */
async function ensureTemplate(samba: string, sambaTool: string): Promise<string> {
  const version = (await sambaVersion(samba)).replace(/[^\w.-]/g, '_');
  const template = join(tmpdir(), `appproxy-samba-template-${version}`);
  const lock = `${template}.lock`;
  for (;;) {
    if (existsSync(join(template, TEMPLATE_ROOT_FILE))) return template;
    try {
      mkdirSync(lock);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // A builder that died leaves its lock: provisioning never takes 10 minutes.
      if (Date.now() - statSync(lock, { throwIfNoEntry: false })!.mtimeMs > 600_000)
        rmSync(lock, { recursive: true, force: true });
      await sleep(500);
    }
  }
  try {
    if (existsSync(join(template, TEMPLATE_ROOT_FILE))) return template;
    rmSync(template, { recursive: true, force: true });
    const build = `${template}.build-${process.pid}`;
    rmSync(build, { recursive: true, force: true });
    await provision(sambaTool, build);
    writeFileSync(join(build, TEMPLATE_ROOT_FILE), build);
    renameSync(build, template);
    return template;
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

async function provision(sambaTool: string, root: string): Promise<void> {
  const options = [
    // Only the KDC runs; samba-tool works on the database files directly.
    'server services = kdc',
    'interfaces = 127.0.0.1',
    'bind interfaces only = yes',
    `pid directory = ${root}/run`,
    `ncalrpc dir = ${root}/ncalrpc`,
    `log file = ${root}/log.%m`,
    'krb5 port = 88',
    'kpasswd port = 464',
  ];
  await run(sambaTool, [
    'domain',
    'provision',
    `--realm=${REALM}`,
    `--domain=${DOMAIN}`,
    '--server-role=dc',
    '--dns-backend=NONE',
    '--host-name=dc',
    '--host-ip=127.0.0.1',
    `--adminpass=${ADMIN_PASSWORD}`,
    `--targetdir=${root}`,
    ...options.map((o) => `--option=${o}`),
  ]);
  const conf = ['-s', join(root, 'etc/smb.conf')];
  const tool = (...args: string[]) => run(sambaTool, [...args, ...conf]);
  // Test passwords, never expiring.
  await tool(
    'domain',
    'passwordsettings',
    'set',
    '--complexity=off',
    '--history-length=0',
    '--min-pwd-length=0',
    '--min-pwd-age=0',
    '--max-pwd-age=0',
  );
  const accounts: Array<[string, string]> = [
    ...Object.entries(USERS).map(([name, u]): [string, string] => [name, u.password]),
    [SERVICE_ACCOUNT, SERVICE_PASSWORD],
    [TARGET_ACCOUNT, TARGET_PASSWORD],
  ];
  for (const [name, password] of accounts) {
    await tool('user', 'create', name, password);
    await tool('user', 'setexpiry', '--noexpiry', name);
  }
  await tool('spn', 'add', TARGET_SPN, TARGET_ACCOUNT);
  await tool('spn', 'add', 'HTTP/appproxy.corp.test', SERVICE_ACCOUNT);
  // User accounts get RC4 service tickets unless they say otherwise.
  const editor = join(root, 'set-enctypes.sh');
  writeFileSync(
    editor,
    `#!/bin/sh\nsed -i '1a msDS-SupportedEncryptionTypes: ${AES_ONLY}' "$1"\n`,
    {
      mode: 0o755,
    },
  );
  for (const name of [SERVICE_ACCOUNT, TARGET_ACCOUNT])
    await run(sambaTool, ['user', 'edit', name, ...conf], { EDITOR: editor });
  rmSync(editor);
  await tool('delegation', 'for-any-protocol', SERVICE_ACCOUNT, 'on');
  await tool('delegation', 'add-service', SERVICE_ACCOUNT, TARGET_SPN);
  mkdirSync(join(root, 'keytabs'));
  await tool(
    'domain',
    'exportkeytab',
    join(root, 'keytabs/service.keytab'),
    `--principal=${SERVICE_ACCOUNT}`,
  );
  await tool(
    'domain',
    'exportkeytab',
    join(root, 'keytabs/http.keytab'),
    `--principal=${TARGET_SPN}`,
  );
}

/** Resolves once something accepts TCP connections on host:port. */
async function waitForTcp(
  host: string,
  port: number,
  timeoutMs: number,
  failed: () => string | undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, host);
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    const why = failed();
    if (why) throw new Error(why);
    if (Date.now() > deadline) throw new Error(`nothing answers on ${host}:${port}`);
    await sleep(100);
  }
}

/** Sends SIGTERM (then SIGKILL) to a detached child's whole process group; waits for exit. */
async function stopGroup(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const kill = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      child.kill(signal);
    }
  };
  kill('SIGTERM');
  const timer = setTimeout(() => kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

/**
 * Starts a Samba AD domain controller (KDC only) on 127.0.0.1 and a port of its own, from a
 * copy of the provisioned template.
 *
 * @example
 * const dc = await startSambaDc({ sambaBin: SAMBA, sambaToolBin: SAMBA_TOOL });
 * // KRB5_CONFIG=dc.krb5Conf kinit -k -t dc.serviceKeytab dc.servicePrincipal
 * await dc.stop();
 */
export async function startSambaDc(opts: SambaDcOptions = {}): Promise<SambaDc> {
  const samba = opts.sambaBin ?? 'samba';
  const sambaTool = opts.sambaToolBin ?? 'samba-tool';
  const template = await ensureTemplate(samba, sambaTool);
  const dir = mkdtempSync(join(tmpdir(), 'appproxy-samba-'));
  await run('cp', ['-a', `${template}/.`, dir]);
  const from = readFileSync(join(template, TEMPLATE_ROOT_FILE), 'utf8');
  const smbConf = join(dir, 'etc/smb.conf');
  const kdcHost = '127.0.0.1';
  const kdcPort = await freePort();
  const kpasswdPort = await freePort();
  writeFileSync(
    smbConf,
    readFileSync(smbConf, 'utf8')
      .replaceAll(from, dir)
      .replace(/^(\s*krb5 port\s*=).*$/m, `$1 ${kdcPort}`)
      .replace(/^(\s*kpasswd port\s*=).*$/m, `$1 ${kpasswdPort}`),
  );
  for (const sub of ['run', 'ncalrpc']) mkdirSync(join(dir, sub), { recursive: true });
  const krb5Conf = join(dir, 'krb5.conf');
  writeFileSync(
    krb5Conf,
    `[libdefaults]
	default_realm = ${REALM}
	dns_lookup_realm = false
	dns_lookup_kdc = false
	rdns = false
	forwardable = true
	udp_preference_limit = 1

[realms]
	${REALM} = {
		kdc = ${kdcHost}:${kdcPort}
		kpasswd_server = ${kdcHost}:${kpasswdPort}
	}

[domain_realm]
	.corp.test = ${REALM}
	corp.test = ${REALM}
`,
  );

  let child: ChildProcess | undefined;
  let output = '';
  const startKdc = async () => {
    if (child && child.exitCode === null && child.signalCode === null) return;
    output = '';
    // -i: foreground, logs to stdout, and exits when its stdin closes (if we die, so does it).
    const c = spawn(samba, ['-i', '-M', 'single', '-s', smbConf, '-d', '1'], {
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    child = c;
    c.stdout!.setEncoding('utf8').on('data', (s: string) => (output += s));
    c.stderr!.setEncoding('utf8').on('data', (s: string) => (output += s));
    await waitForTcp(kdcHost, kdcPort, opts.startTimeoutMs ?? 60_000, () =>
      c.exitCode !== null || c.signalCode !== null
        ? `samba exited (${c.exitCode ?? c.signalCode}) before its KDC answered: ${output}`
        : undefined,
    );
  };
  const stopKdc = async () => {
    if (child) await stopGroup(child);
  };

  const tool = (...args: string[]) => run(sambaTool, [...args, '-s', smbConf]);
  let delegation = true;
  try {
    await startKdc();
  } catch (err) {
    await stopKdc();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    realm: REALM,
    kdc: `${kdcHost}:${kdcPort}`,
    kdcHost,
    kdcPort,
    krb5Conf,
    serviceKeytab: join(dir, 'keytabs/service.keytab'),
    servicePrincipal: `${SERVICE_ACCOUNT}@${REALM}`,
    servicePassword: SERVICE_PASSWORD,
    httpKeytab: join(dir, 'keytabs/http.keytab'),
    httpPrincipal: `${TARGET_SPN}@${REALM}`,
    users: { alice: { principal: `alice@${REALM}`, password: USERS.alice.password } },
    dir,
    async setDelegation(on) {
      if (on === delegation) return;
      await tool('delegation', 'for-any-protocol', SERVICE_ACCOUNT, on ? 'on' : 'off');
      await tool('delegation', on ? 'add-service' : 'del-service', SERVICE_ACCOUNT, TARGET_SPN);
      delegation = on;
    },
    stopKdc,
    start: startKdc,
    async stop() {
      await stopKdc();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface ApacheGssapi {
  port: number;
  /** `http://127.0.0.1:<port>`; Kerberos clients should use `intranet.corp.test:<port>`. */
  url: string;
  dir: string;
  /** Apache's error log so far. */
  errorLog(): string;
  stop(): Promise<void>;
}

export interface ApacheGssapiOptions {
  keytab: string;
  realm: string;
  krb5Conf: string;
  /** @default 'apache2' */
  apacheBin?: string;
  /**
   * Server processes: 1 runs `apache2 -X` (one process, tests); more, a prefork pool of that
   * many in the foreground (the benchmark, where one process would be the bottleneck).
   * @default 1
   */
  processes?: number;
}

/**
 * Apache httpd with mod_auth_gssapi on 127.0.0.1: `/whoami` requires Kerberos (Negotiate)
 * and answers `REMOTE_USER=<principal>`; `/krb/1k.html` is a 1 KiB page behind Kerberos too;
 * `/public` and `/static/1k.html` need nothing. Replay cache on (an authenticator works once).
 *
 * @example
 * const web = await startApacheGssapi({ keytab: dc.httpKeytab, realm: dc.realm, krb5Conf: dc.krb5Conf });
 * // curl --negotiate -u : --resolve intranet.corp.test:<port>:127.0.0.1 http://intranet.corp.test:<port>/whoami
 * await web.stop();
 */
export async function startApacheGssapi(opts: ApacheGssapiOptions): Promise<ApacheGssapi> {
  const apache = opts.apacheBin ?? 'apache2';
  const dir = mkdtempSync(join(tmpdir(), 'appproxy-apache-'));
  // As root, Apache serves as another user (`nobody`), who must read the keytab and scripts.
  chmodSync(dir, 0o755);
  const keytab = join(dir, 'http.keytab');
  copyFileSync(opts.keytab, keytab);
  chmodSync(keytab, 0o644);
  mkdirSync(join(dir, 'htdocs'));
  mkdirSync(join(dir, 'cgi'));
  writeFileSync(join(dir, 'htdocs/public'), 'public\n');
  // The same 1 KiB page behind Kerberos (/krb/) and open (/static/): the benchmark's pair.
  const page = `<!doctype html><title>bench</title>${'x'.repeat(1024 - 35)}\n`;
  for (const sub of ['krb', 'static']) {
    mkdirSync(join(dir, 'htdocs', sub));
    writeFileSync(join(dir, 'htdocs', sub, '1k.html'), page);
  }
  // MIT's replay cache, writable by the user Apache serves as: an authenticator sent twice
  // is refused, as on a production server.
  const rcache = join(dir, 'rcache');
  mkdirSync(rcache, { mode: 0o777 });
  chmodSync(rcache, 0o777);
  writeFileSync(
    join(dir, 'cgi/whoami'),
    '#!/bin/sh\nprintf "Content-Type: text/plain\\n\\nREMOTE_USER=%s\\n" "$REMOTE_USER"\n',
    { mode: 0o755 },
  );
  const port = await freePort();
  const modules = '/usr/lib/apache2/modules';
  const isRoot = process.getuid?.() === 0;
  const conf = join(dir, 'httpd.conf');
  writeFileSync(
    conf,
    `ServerRoot "${dir}"
ServerName intranet.corp.test
Listen 127.0.0.1:${port}
PidFile "${dir}/httpd.pid"
ErrorLog "${dir}/error.log"
StartServers ${opts.processes ?? 1}
MinSpareServers ${opts.processes ?? 1}
MaxSpareServers ${opts.processes ?? 1}
MaxRequestWorkers ${opts.processes ?? 1}
LogLevel info auth_gssapi:debug
LoadModule mpm_prefork_module ${modules}/mod_mpm_prefork.so
LoadModule authn_core_module ${modules}/mod_authn_core.so
LoadModule authz_core_module ${modules}/mod_authz_core.so
LoadModule authz_user_module ${modules}/mod_authz_user.so
LoadModule mime_module ${modules}/mod_mime.so
LoadModule alias_module ${modules}/mod_alias.so
LoadModule cgi_module ${modules}/mod_cgi.so
LoadModule auth_gssapi_module ${modules}/mod_auth_gssapi.so
${isRoot ? 'User nobody\nGroup nogroup\n' : ''}TypesConfig /dev/null
AddType text/html .html
DocumentRoot "${dir}/htdocs"
<Directory />
  Require all granted
</Directory>
ScriptAlias /whoami "${dir}/cgi/whoami"
<LocationMatch "^/(whoami|krb/)">
  AuthType GSSAPI
  AuthName "${opts.realm}"
  GssapiCredStore keytab:${keytab}
  GssapiAllowedMech krb5
  GssapiBasicAuth Off
  GssapiConnectionBound Off
  Require valid-user
</LocationMatch>
`,
  );
  const processes = opts.processes ?? 1;
  const child = spawn(apache, [processes > 1 ? '-DFOREGROUND' : '-X', '-f', conf], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      KRB5_CONFIG: opts.krb5Conf,
      KRB5_KTNAME: `FILE:${keytab}`,
      KRB5RCACHEDIR: rcache,
    },
  });
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (output += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (output += s));
  const errorLog = () => {
    try {
      return readFileSync(join(dir, 'error.log'), 'utf8');
    } catch {
      return '';
    }
  };
  const stop = async () => {
    await stopGroup(child);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitForTcp('127.0.0.1', port, 20_000, () =>
      child.exitCode !== null || child.signalCode !== null
        ? `apache2 exited (${child.exitCode ?? child.signalCode}): ${output}${errorLog()}`
        : undefined,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { port, url: `http://127.0.0.1:${port}`, dir, errorLog, stop };
}
