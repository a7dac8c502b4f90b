/**
 * Real third-party apps for the end-to-end suite (realapps.e2e.ts), each started on a free
 * 127.0.0.1 port in its own temporary directory and stopped by the test: Node-RED (npm, a
 * root dev dependency), Jupyter Notebook 6 and DokuWiki on lighttpd + php-cgi (Debian
 * packages that `.ci/run` installs).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './harness.js';

/** A started app: where it listens (its internal URL), its files, and how to stop it. */
export interface RealApp {
  /** The app's internal URL, path ending with `/`. */
  internalUrl: string;
  port: number;
  dir: string;
  /** Output of the app's processes, for failure messages. */
  output: string[];
  stop(): Promise<void>;
}

/** Spawns `cmd` as the leader of its own process group, so stop() also ends its children. */
function startGroup(
  cmd: string,
  args: string[],
  opts: { cwd: string; env?: NodeJS.ProcessEnv },
): { child: ChildProcess; output: string[]; stop: () => Promise<void> } {
  const child = spawn(cmd, args, {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const output: string[] = [];
  child.stdout!.setEncoding('utf8').on('data', (c: string) => output.push(c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => output.push(c));
  const exited = new Promise<void>((r) => {
    if (child.exitCode !== null || child.signalCode !== null) r();
    else child.once('exit', () => r());
  });
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      // The group is gone already.
    }
  };
  return {
    child,
    output,
    async stop() {
      signalGroup('SIGTERM');
      const timer = setTimeout(() => signalGroup('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
      // Children that outlived the leader (kernels, php-cgi workers).
      signalGroup('SIGKILL');
    },
  };
}

/** Resolves once `url` answers with `ready(status)`; rejects when the process exits first. */
async function untilServing(
  url: string,
  child: ChildProcess,
  output: string[],
  ready: (status: number) => boolean = (s) => s < 500,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`${url}: the app exited before serving: ${output.join('')}`);
    const status = await new Promise<number>((resolve) => {
      const req = httpRequest(url, { agent: false, timeout: 2_000 }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', () => resolve(0));
      req.on('timeout', () => req.destroy());
      req.end();
    });
    if (status && ready(status)) return;
    if (Date.now() > deadline)
      throw new Error(`${url} not serving after ${timeoutMs} ms: ${output.join('')}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

/**
 * The app once `probe` answers 200: its stop() ends the process group and removes `tmp`.
 * If it never does (or exits), it is stopped and `tmp` removed before the error is thrown.
 */
async function serving(
  proc: ReturnType<typeof startGroup>,
  tmp: string,
  probe: string,
  app: Pick<RealApp, 'internalUrl' | 'port' | 'dir'>,
): Promise<RealApp> {
  const stop = async () => {
    await proc.stop();
    rmSync(tmp, { recursive: true, force: true });
  };
  try {
    await untilServing(probe, proc.child, proc.output, (s) => s === 200);
  } catch (err) {
    await stop();
    throw err;
  }
  return { ...app, output: proc.output, stop };
}

function tempDir(name: string): string {
  return mkdtempSync(join(tmpdir(), `appproxy-realapp-${name}-`));
}

/**
 * Node-RED 4 with its editor at `/red/` (and HTTP-in nodes under `/red-api/`), its user
 * directory (flows.json) in a temp dir. `flows` seeds flows.json before the start.
 */
export async function startNodeRed(flows: (internalUrl: string) => unknown[]): Promise<RealApp> {
  const dir = tempDir('node-red');
  const port = await freePort();
  const internalUrl = `http://127.0.0.1:${port}/red/`;
  writeFileSync(join(dir, 'flows.json'), JSON.stringify(flows(internalUrl), null, 2));
  writeFileSync(
    join(dir, 'settings.js'),
    `module.exports = {
  uiHost: '127.0.0.1',
  uiPort: ${port},
  httpAdminRoot: '/red/',
  httpNodeRoot: '/red-api/',
  flowFile: 'flows.json',
  flowFilePretty: true,
  credentialSecret: false,
  diagnostics: { enabled: false },
  telemetry: { enabled: false },
  externalModules: { autoInstall: false, palette: { allowInstall: false } },
  editorTheme: { tours: false, projects: { enabled: false } },
  logging: { console: { level: 'info', metrics: false, audit: false } },
};
`,
  );
  const red = createRequire(import.meta.url).resolve('node-red/red.js');
  const proc = startGroup(
    process.execPath,
    [red, '--userDir', dir, '--settings', join(dir, 'settings.js')],
    { cwd: dir },
  );
  return serving(proc, dir, `${internalUrl}settings`, { internalUrl, port, dir });
}

/** Jupyter Notebook 6 at `/jupyter/`, no token, its notebook directory a temp dir. */
export async function startJupyter(bin: string): Promise<RealApp> {
  const dir = tempDir('jupyter');
  const notebooks = join(dir, 'notebooks');
  mkdirSync(notebooks);
  const port = await freePort();
  const internalUrl = `http://127.0.0.1:${port}/jupyter/`;
  const proc = startGroup(
    bin,
    [
      '--no-browser',
      '--ip=127.0.0.1',
      `--port=${port}`,
      '--port-retries=0',
      '--NotebookApp.base_url=/jupyter/',
      // No shell: the empty value is what `--NotebookApp.token=''` gives in one.
      '--NotebookApp.token=',
      '--NotebookApp.password=',
      `--notebook-dir=${notebooks}`,
      // CI runs as root, where Jupyter refuses to start without it.
      ...(process.getuid?.() === 0 ? ['--allow-root'] : []),
    ],
    {
      cwd: dir,
      // Its own config, runtime and data dirs: nothing from the user's home.
      env: {
        HOME: dir,
        JUPYTER_CONFIG_DIR: join(dir, 'config'),
        JUPYTER_RUNTIME_DIR: join(dir, 'runtime'),
        JUPYTER_DATA_DIR: join(dir, 'data'),
        IPYTHONDIR: join(dir, 'ipython'),
      },
    },
  );
  return serving(proc, dir, `${internalUrl}api`, { internalUrl, port, dir: notebooks });
}

/** Debian's DokuWiki: code in /usr/share/dokuwiki, its conf and data copied from here. */
const DOKUWIKI = '/usr/share/dokuwiki';
const DOKUWIKI_CONF = '/etc/dokuwiki';
const DOKUWIKI_DATA = '/var/lib/dokuwiki/data';

export const DOKUWIKI_ADMIN = { user: 'admin', password: 'wiki-admin-password' };

/**
 * DokuWiki at `/dokuwiki/` on lighttpd + php-cgi (FastCGI). Debian's package is set up for
 * Apache with /etc/dokuwiki and /var/lib/dokuwiki; here a writable copy of both lives in a
 * temp dir, found through `DOKU_CONF` (defined by a PHP `auto_prepend_file`) and `savedir`.
 * lighttpd keeps its default idle keep-alive timeout (5 s, no `Keep-Alive` header).
 */
export async function startDokuWiki(lighttpd: string, phpCgi: string): Promise<RealApp> {
  const dir = tempDir('dokuwiki');
  const conf = join(dir, 'conf');
  const data = join(dir, 'data');
  cpSync(DOKUWIKI_CONF, conf, { recursive: true, dereference: true });
  cpSync(DOKUWIKI_DATA, data, { recursive: true, dereference: true });
  for (const sub of [
    'attic',
    'cache',
    'index',
    'locks',
    'media_attic',
    'media_meta',
    'meta',
    'tmp',
  ])
    mkdirSync(join(data, sub), { recursive: true });
  // Debian's conf points at its own paths and farm setup; these files replace that.
  for (const name of readdirSync(conf))
    if (/^(local|users\.auth|acl\.auth)\.php$/.test(name)) rmSync(join(conf, name));
  writeFileSync(
    join(conf, 'local.php'),
    `<?php
$conf['savedir'] = '${data}';
$conf['title'] = 'AppProxy real-app wiki';
$conf['useacl'] = 1;
$conf['authtype'] = 'authplain';
$conf['superuser'] = '@admin';
$conf['userewrite'] = 0;
$conf['updatecheck'] = 0;
$conf['disableactions'] = 'register';
`,
  );
  const md5 = createHash('md5').update(DOKUWIKI_ADMIN.password).digest('hex');
  writeFileSync(
    join(conf, 'users.auth.php'),
    `# login:passwordhash:Real Name:email:groups,comma,separated\n${DOKUWIKI_ADMIN.user}:${md5}:Wiki Admin:admin@example.com:admin,user\n`,
  );
  writeFileSync(join(conf, 'acl.auth.php'), `# acl.auth.php\n*\t@ALL\t1\n*\t@user\t8\n`);
  writeFileSync(
    join(dir, 'prepend.php'),
    // Debian's inc/preload.php reads DOKU_MAIN_CONF (its farm setup) and DOKU_CONF.
    `<?php define('DOKU_MAIN_CONF', '${conf}/'); define('DOKU_CONF', '${conf}/');\n`,
  );
  writeFileSync(
    join(dir, 'php.ini'),
    `auto_prepend_file = ${join(dir, 'prepend.php')}
display_errors = Off
log_errors = On
error_log = ${join(dir, 'php-errors.log')}
cgi.fix_pathinfo = 1
session.save_path = ${join(dir, 'sessions')}
`,
  );
  mkdirSync(join(dir, 'sessions'));
  mkdirSync(join(dir, 'www'));
  const port = await freePort();
  writeFileSync(
    join(dir, 'lighttpd.conf'),
    `server.modules = ("mod_access", "mod_alias", "mod_fastcgi")
server.bind = "127.0.0.1"
server.port = ${port}
server.document-root = "${join(dir, 'www')}"
server.pid-file = "${join(dir, 'lighttpd.pid')}"
server.errorlog = "${join(dir, 'lighttpd-error.log')}"
index-file.names = ("doku.php", "index.php")
mimetype.assign = (
  ".css" => "text/css", ".js" => "text/javascript", ".png" => "image/png",
  ".gif" => "image/gif", ".svg" => "image/svg+xml", ".ico" => "image/vnd.microsoft.icon",
  ".html" => "text/html", ".txt" => "text/plain"
)
alias.url = ("/dokuwiki/" => "${DOKUWIKI}/")
# What DokuWiki's .htaccess files deny under Apache.
$HTTP["url"] =~ "^/dokuwiki/(data|conf|bin|inc|vendor)/" { url.access-deny = ("") }
fastcgi.server = (".php" => ((
  "bin-path" => "${phpCgi}",
  "socket" => "${join(dir, 'php.socket')}",
  "max-procs" => 1,
  "bin-environment" => ("PHPRC" => "${dir}", "PHP_FCGI_CHILDREN" => "2", "PHP_FCGI_MAX_REQUESTS" => "1000"),
  "broken-scriptfilename" => "enable"
)))
`,
  );
  const proc = startGroup(lighttpd, ['-D', '-f', join(dir, 'lighttpd.conf')], { cwd: dir });
  const internalUrl = `http://127.0.0.1:${port}/dokuwiki/`;
  return serving(proc, dir, `${internalUrl}doku.php`, { internalUrl, port, dir: data });
}
