import { startDevIdp } from '@appproxy/dev-idp';
/**
 * End-to-end harness: the real `appproxy-relay` and `appproxy-connector` CLIs as separate
 * processes (built into apps/*\/dist by `npm test`), the sample app, dev certificates, and
 * an HTTPS client that talks to the relay by external host name over 127.0.0.1.
 */
import { createDevCertificates } from '@appproxy/pki';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { freePort, freePortRun, missingTool } from './wait.js';

export { freePort, freePortRun, until } from './wait.js';

const execFileP = promisify(execFile);
export const ROOT = resolve(import.meta.dirname, '../../..');
export const RELAY_BIN = join(ROOT, 'apps/relay/dist/bin.js');
export const CONNECTOR_BIN = join(ROOT, 'apps/connector/dist/bin.js');

for (const bin of [RELAY_BIN, CONNECTOR_BIN]) {
  if (!existsSync(bin))
    throw new Error(
      `${bin} is missing: run \`npm run build\` (npm test does it) before the e2e tests`,
    );
}

/**
 * The path of a system tool (from Debian packages `.ci/run` installs), or undefined. A test
 * that needs it skips locally with a loud message; in CI (APPPROXY_REQUIRE_ALL=1) a missing
 * tool is an error, so nothing is silently skipped there.
 */
export function systemTool(name: string, debianPackage = name): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/bin'])) {
    const file = join(dir, name);
    if (dir && existsSync(file)) return file;
  }
  missingTool(
    `${name} is not installed (apt-get install -y ${debianPackage}): tests that need it are SKIPPED`,
  );
  return undefined;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * How to start a CLI: a built `.js` file runs on the workspace's pinned Node (the one running
 * the tests); anything else is an executable of its own (the single-file executables).
 */
export function cliCommand(bin: string): [string, string[]] {
  return /\.[cm]?js$/.test(bin) ? [process.execPath, [bin]] : [bin, []];
}

/** Runs a CLI to completion. */
export async function runCli(
  bin: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<CliResult> {
  try {
    const [file, prefix] = cliCommand(bin);
    const { stdout, stderr } = await execFileP(file, [...prefix, ...args], {
      env: { ...process.env, ...env },
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof e.code === 'number' ? e.code : 1,
      stdout: e.stdout ?? '',
      stderr: e.stderr ?? '',
    };
  }
}

/** A long-running CLI process whose JSON log lines are collected and can be awaited. */
export class LoggedProcess {
  readonly lines: Array<Record<string, unknown>> = [];
  readonly stderr: string[] = [];
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  #waiters: Array<{
    test: (l: Record<string, unknown>) => boolean;
    resolve: (l: Record<string, unknown>) => void;
  }> = [];

  constructor(bin: string, args: string[], env: NodeJS.ProcessEnv = {}) {
    const [file, prefix] = cliCommand(bin);
    this.child = spawn(file, [...prefix, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buf = '';
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) !== -1) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let parsed: Record<string, unknown>;
        try {
          parsed = JSON.parse(line) as Record<string, unknown>;
        } catch {
          parsed = { msg: line };
        }
        this.lines.push(parsed);
        this.#waiters = this.#waiters.filter((w) =>
          w.test(parsed) ? (w.resolve(parsed), false) : true,
        );
      }
    });
    this.child.stderr!.setEncoding('utf8').on('data', (c: string) => this.stderr.push(c));
    this.exited = new Promise((r) => this.child.once('exit', (code) => r(code)));
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Resolves with the first log line (past or future) that passes `test`. */
  waitFor(
    test: (l: Record<string, unknown>) => boolean,
    timeoutMs = 20_000,
    what = 'log line',
  ): Promise<Record<string, unknown>> {
    const seen = this.lines.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `timed out waiting for ${what}; stderr: ${this.stderr.join('')}; last lines: ${JSON.stringify(this.lines.slice(-5))}`,
            ),
          ),
        timeoutMs,
      );
      this.#waiters.push({ test, resolve: (l) => (clearTimeout(timer), resolve(l)) });
    });
  }

  count(test: (l: Record<string, unknown>) => boolean): number {
    return this.lines.filter(test).length;
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exited;
  }

  /** Resident set size in bytes, from /proc. */
  rss(): number {
    const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
    const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    return kb * 1024;
  }
}

export interface StackApp {
  name: string;
  internalUrl: string;
  /** `{port}` is replaced by the relay's public port. */
  externalUrl: string;
  /** @default 'passthrough' */
  preAuthentication?: 'oidc' | 'passthrough';
  /** More YAML lines of the app (indented 4 spaces). */
  extra?: string;
}

export interface StackOptions {
  apps: StackApp[];
  /** Extra YAML under `relay:`. */
  relayExtra?: string;
  connectorArgs?: string[];
  startConnector?: boolean;
  /** Names under `connectorGroups`. @default ['Default'] */
  groups?: string[];
  /** Top-level YAML sections after `apps:` (e.g. `portal:`). */
  topExtra?: string;
  /** YAML lines under `identityProvider:` (indented 2 spaces). */
  identityProvider?: string;
  /**
   * Certificates served beside the stack's own (`*.apps.localhost`); a `passphrase` is
   * written as given (e.g. `${PFX_PASS}`, quoted).
   */
  certificates?: Array<{ cert: string; key: string } | { pfx: string; passphrase?: string }>;
  /** Other builds of the CLIs, e.g. the single-file executables. @default the apps' dist/bin.js */
  bins?: { relay: string; connector: string };
  /** Environment of every CLI process, over the tests' own. */
  env?: NodeJS.ProcessEnv;
  /** `relay.workers`: worker i's tunnel port is `ports.tunnel + i` (all picked free). @default 1 */
  workers?: number;
}

/** A relay (and optionally a registered, started connector) in a fresh temp directory. */
export class Stack {
  readonly dir = mkdtempSync(join(tmpdir(), 'appproxy-e2e-'));
  readonly configPath = join(this.dir, 'appproxy.yaml');
  readonly connectorState = join(this.dir, 'connector');
  ca = '';
  ports = { public: 0, tunnel: 0, admin: 0 };
  relay: LoggedProcess | undefined;
  /** The connector started last. */
  connector: LoggedProcess | undefined;
  /** Every connector process started, running or not. */
  readonly connectors: LoggedProcess[] = [];
  readonly #opts: StackOptions;
  #certs: Awaited<ReturnType<typeof createDevCertificates>> | undefined;

  constructor(opts: StackOptions) {
    this.#opts = opts;
  }

  get #relayBin(): string {
    return this.#opts.bins?.relay ?? RELAY_BIN;
  }

  get #connectorBin(): string {
    return this.#opts.bins?.connector ?? CONNECTOR_BIN;
  }

  get relayUrl(): string {
    return `https://127.0.0.1:${this.ports.tunnel}`;
  }

  /** Changes options before `start` (e.g. the identity provider, once it runs). */
  configure(more: Partial<StackOptions>): this {
    Object.assign(this.#opts, more);
    return this;
  }

  /** Picks the ports now (before `start`), e.g. to register redirect URIs at an IdP first. */
  async allocatePorts(): Promise<this['ports']> {
    if (this.ports.public === 0)
      this.ports = {
        public: await freePort(),
        tunnel: await freePortRun(this.#opts.workers ?? 1),
        admin: await freePort(),
      };
    return this.ports;
  }

  /** An app's external URL with the public port filled in. */
  external(url: string): string {
    return url.replaceAll('{port}', String(this.ports.public));
  }

  async start(): Promise<this> {
    await this.writeConfig();
    await this.startRelay();
    if (this.#opts.startConnector !== false) {
      await this.registerConnector();
      await this.startConnector();
    }
    return this;
  }

  /** The dev CA (first call) and `appproxy.yaml` from the options as they are now. */
  async writeConfig(): Promise<void> {
    this.#certs ??= await createDevCertificates({
      dir: join(this.dir, 'tls'),
      hosts: ['localhost', '127.0.0.1', '*.apps.localhost'],
    });
    const certs = this.#certs;
    this.ca = readFileSync(certs.caCertPath, 'utf8');
    await this.allocatePorts();
    const apps = this.#opts.apps
      .map(
        (a) => `  - name: ${a.name}
    internalUrl: ${a.internalUrl}
    externalUrl: ${this.external(a.externalUrl)}
    preAuthentication: ${a.preAuthentication ?? 'passthrough'}
${a.extra ?? ''}`,
      )
      .join('\n');
    const pairs = [
      { cert: certs.certPath, key: certs.keyPath },
      ...(this.#opts.certificates ?? []),
    ];
    writeFileSync(
      this.configPath,
      `relay:
  listen: 127.0.0.1:${this.ports.public}
  tunnelListen: 127.0.0.1:${this.ports.tunnel}
  adminListen: 127.0.0.1:${this.ports.admin}
  stateDir: ./var/relay
  certificates:
${pairs.map(certificateYaml).join('\n')}
  drainTimeout: 3s
${this.#opts.workers ? `  workers: ${this.#opts.workers}\n  instance: { tunnelUrl: 'https://127.0.0.1:${this.ports.tunnel}' }\n` : ''}${this.#opts.relayExtra ?? ''}
${this.#opts.identityProvider ? `identityProvider:\n${this.#opts.identityProvider}\n` : ''}connectorGroups:
${(this.#opts.groups ?? ['Default']).map((g) => `  - name: ${g}`).join('\n')}
apps:
${apps}
${this.#opts.topExtra ?? ''}
`,
    );
  }

  /** The dev CA's folder: more certificates signed by the same CA go here. */
  get tlsDir(): string {
    return join(this.dir, 'tls');
  }

  /**
   * Rewrites `appproxy.yaml` from the options and sends the relay SIGHUP; resolves with the
   * relay's log line about this reload (reloaded or refused).
   */
  async reload(): Promise<Record<string, unknown>> {
    await this.writeConfig();
    return this.signalReload();
  }

  /** SIGHUP to the relay as the file is now; the log line that answers it. */
  async signalReload(): Promise<Record<string, unknown>> {
    const relay = this.relay!;
    const answered = (l: Record<string, unknown>) =>
      l.msg === 'configuration reloaded' ||
      l.msg === 'configuration reload refused; the running configuration keeps serving';
    const before = relay.count(answered);
    relay.child.kill('SIGHUP');
    await relay.waitFor(() => relay.count(answered) > before, 20_000, 'the reload answered');
    return relay.lines.filter(answered).at(-1)!;
  }

  async startRelay(): Promise<LoggedProcess> {
    this.relay = new LoggedProcess(
      this.#relayBin,
      ['start', '--config', this.configPath],
      this.#opts.env,
    );
    const relay = this.relay;
    // A relay that refuses its configuration exits at once: say so, instead of waiting 20 s.
    await Promise.race([
      relay.waitFor((l) => l.msg === 'relay listening', 20_000, 'relay listening'),
      relay.exited.then((code) => {
        throw new Error(`the relay exited (${code}) before listening: ${relay.stderr.join('')}`);
      }),
    ]);
    return relay;
  }

  async createToken(args: string[] = []): Promise<string> {
    const res = await runCli(
      this.#relayBin,
      ['token', 'create', '--config', this.configPath, ...args],
      this.#opts.env,
    );
    if (res.code !== 0) throw new Error(`token create failed: ${res.stderr}`);
    return res.stdout.trim();
  }

  async registerConnector(stateDir = this.connectorState, group?: string): Promise<CliResult> {
    const token = await this.createToken(group ? ['--group', group] : []);
    const res = await runCli(
      this.#connectorBin,
      ['register', '--relay', this.relayUrl, '--token', token, '--state-dir', stateDir],
      this.#opts.env,
    );
    if (res.code !== 0) throw new Error(`register failed: ${res.stderr}`);
    return res;
  }

  async startConnector(
    stateDir = this.connectorState,
    tunnels = 2,
    extraArgs: string[] = [],
    env: NodeJS.ProcessEnv = {},
  ): Promise<LoggedProcess> {
    const id = connectorId(stateDir);
    const tunnelsOf = () =>
      this.relay!.count((l) => l.msg === 'connector connected' && l.connectorId === id);
    const before = tunnelsOf();
    const connector = new LoggedProcess(
      this.#connectorBin,
      [
        'start',
        '--state-dir',
        stateDir,
        '--tunnels',
        String(tunnels),
        '--drain-timeout',
        '3s',
        ...(this.#opts.connectorArgs ?? []),
        ...extraArgs,
      ],
      { ...this.#opts.env, ...env },
    );
    this.connector = connector;
    this.connectors.push(connector);
    await this.relay!.waitFor(
      () => tunnelsOf() >= before + tunnels,
      20_000,
      `${tunnels} tunnels of ${id} connected`,
    );
    return connector;
  }

  async stop(): Promise<void> {
    await Promise.all([...this.connectors.map((c) => c.stop('SIGKILL')), this.relay?.stop()]);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function certificateYaml(
  p: { cert: string; key: string } | { pfx: string; passphrase?: string },
): string {
  if ('cert' in p) return `    - cert: ${p.cert}\n      key: ${p.key}`;
  const pass =
    p.passphrase === undefined ? '' : `\n      passphrase: ${JSON.stringify(p.passphrase)}`;
  return `    - pfx: ${p.pfx}${pass}`;
}

/** The id `register` stored in a connector's state directory. */
export function connectorId(stateDir: string): string {
  return (
    JSON.parse(readFileSync(join(stateDir, 'connector.json'), 'utf8')) as { connectorId: string }
  ).connectorId;
}

export interface ClientResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** An HTTPS/1.1 request to the relay for `host` (SNI and Host), connecting to 127.0.0.1. */
export function request(
  stack: Stack,
  host: string,
  path: string,
  opts: {
    method?: string;
    headers?: Record<string, string>;
    body?: Buffer | string | NodeJS.ReadableStream;
    extra?: RequestOptions;
  } = {},
): Promise<ClientResponse> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({
      host: '127.0.0.1',
      port: stack.ports.public,
      // A Host with a port (an external URL on another port) never puts the port in SNI.
      servername: host.replace(/:\d+$/, ''),
      ca: stack.ca,
      method: opts.method ?? 'GET',
      path,
      headers: { host, ...opts.headers },
      agent: false,
      ...opts.extra,
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    const body = opts.body;
    if (body && typeof body === 'object' && 'pipe' in body)
      (body as NodeJS.ReadableStream).pipe(req);
    else req.end(body);
  });
}

export function json(res: ClientResponse): Record<string, unknown> {
  return JSON.parse(res.body.toString('utf8')) as Record<string, unknown>;
}

/**
 * The development provider for a stack's oidc apps: client `appproxy` (secret
 * `e2e-client-secret`) with the callback and signed-out URLs of each of `hosts` on the
 * stack's public port and of the admin console (`http://127.0.0.1:<admin>/console/…`), and the stack's `identityProvider:` section pointing at it
 * (`more`: further lines of that section, indented 2 spaces). Close it after the stack.
 */
export async function devIdpFor(
  stack: Stack,
  hosts: string[],
  opts: {
    scopes?: string;
    /** Further lines of the section, or a function of the provider that makes them. */
    more?: string[] | ((idp: Awaited<ReturnType<typeof startDevIdp>>) => string[]);
    clients?: Parameters<typeof startDevIdp>[0] extends infer O
      ? O extends { clients?: infer C }
        ? C
        : never
      : never;
  } = {},
): Promise<Awaited<ReturnType<typeof startDevIdp>>> {
  const { public: port, admin } = await stack.allocatePorts();
  const origins = hosts.map((h) => `https://${h}:${port}`);
  // The admin console's sign-in (relay.admins) on the admin listener.
  const adminOrigin = `http://127.0.0.1:${admin}`;
  const idp = await startDevIdp({
    port: 0,
    clients: [
      {
        clientId: 'appproxy',
        clientSecret: 'e2e-client-secret',
        redirectUris: [
          ...origins.map((o) => `${o}/.appproxy/callback`),
          `${adminOrigin}/console/callback`,
        ],
        postLogoutRedirectUris: [
          ...origins.map((o) => `${o}/.appproxy/signed-out`),
          `${adminOrigin}/console/signed-out`,
        ],
      },
      ...(opts.clients ?? []),
    ],
  });
  stack.configure({
    identityProvider: [
      `  issuer: ${idp.issuer}`,
      '  clientId: appproxy',
      '  clientSecret: e2e-client-secret',
      `  scopes: ${opts.scopes ?? '[openid, profile, email, groups]'}`,
      ...(typeof opts.more === 'function' ? opts.more(idp) : (opts.more ?? [])),
    ].join('\n'),
  });
  return idp;
}
