/**
 * `npm run release` and what it makes (dist/release/): the single-file executables through a
 * full publish with no Node on PATH, the .deb packages as dpkg and systemd see them, the npm
 * tarballs installed alone and together. Nothing is installed system-wide.
 */
import { ConfigError, parseConfig } from '@appproxy/config';
import { execFile, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, Stack, freePort, request, runCli, systemTool } from './harness.js';

const execFileP = promisify(execFile);
const RELEASE = join(ROOT, 'dist/release');
const VERSION = (
  JSON.parse(readFileSync(join(ROOT, 'apps/relay/package.json'), 'utf8')) as { version: string }
).version;
const PINNED_NODE = `v${(JSON.parse(readFileSync(join(ROOT, 'node_modules/node/package.json'), 'utf8')) as { version: string }).version}`;
const LIBRARIES = readdirSync(join(ROOT, 'packages')).sort();
const APPS = ['relay', 'connector'] as const;
const executable = (app: string) => join(RELEASE, `appproxy-${app}-${VERSION}-linux-x64`);
const deb = (app: string) => join(RELEASE, `appproxy-${app}_${VERSION}_amd64.deb`);
const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

const scratch = mkdtempSync(join(tmpdir(), 'appproxy-release-'));

const containerfile = (app: string) =>
  readFileSync(join(ROOT, 'packaging', app, 'Containerfile'), 'utf8').replace(/\\\n/g, ' ');

/** Runs a Containerfile's HEALTHCHECK command here, against `port` on 127.0.0.1. */
function healthcheck(app: string, port: number): number | null {
  const json = /^HEALTHCHECK .*?CMD (\[.*\])$/m.exec(containerfile(app))![1];
  const [file, ...args] = JSON.parse(json) as string[];
  return spawnSync(file, args, {
    env: { PATH: '/usr/bin:/bin', APPPROXY_HEALTHZ_PORT: String(port) },
    timeout: 10_000,
  }).status;
}
let buildSeconds = 0;

async function run(
  file: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
) {
  try {
    const { stdout, stderr } = await execFileP(file, args, {
      ...opts,
      timeout: 180_000,
      maxBuffer: 64 * 1024 * 1024,
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

beforeAll(async () => {
  const started = performance.now();
  const res = await run(process.execPath, [join(ROOT, 'tools/release/release.mjs')], {
    cwd: ROOT,
  });
  buildSeconds = (performance.now() - started) / 1000;
  if (res.code !== 0) throw new Error(`npm run release failed:\n${res.stderr}\n${res.stdout}`);
  console.log(`npm run release took ${buildSeconds.toFixed(1)} s\n${res.stdout}`);
}, 600_000);

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('npm run release', () => {
  it('makes every artifact, with SHA256SUMS that match', () => {
    const expected = [
      ...APPS.flatMap((app) => [
        `appproxy-${app}-${VERSION}-linux-x64`,
        `appproxy-${app}_${VERSION}_amd64.deb`,
        `appproxy-${app}-${VERSION}.tgz`,
      ]),
      ...LIBRARIES.map((lib) => `appproxy-${lib}-${VERSION}.tgz`),
    ].sort();
    const files = readdirSync(RELEASE).filter((f) => f !== 'SHA256SUMS');
    expect(files.sort()).toEqual(expected);
    const sums = readFileSync(join(RELEASE, 'SHA256SUMS'), 'utf8').trim().split('\n');
    expect(sums).toHaveLength(expected.length);
    for (const line of sums) {
      const [sum, file] = line.split(/\s+/);
      expect(sha256(join(RELEASE, file)), file).toBe(sum);
    }
  });
});

describe('single-file executables', () => {
  // A directory standing in for a host without Node: the executables copied there, a PATH
  // with a shell and nothing else (this machine has a Node 20 in /usr/bin, so not that).
  const host = join(scratch, 'no-node');
  const bin = join(host, 'bin');
  const env: NodeJS.ProcessEnv = { PATH: bin, NODE_OPTIONS: '', NODE_PATH: '' };
  let backend: Server;

  beforeAll(async () => {
    mkdirSync(bin, { recursive: true });
    for (const tool of ['sh', 'cat', 'ls']) symlinkSync(`/bin/${tool}`, join(bin, tool));
    for (const app of APPS) copyFileSync(executable(app), join(host, `appproxy-${app}`));
    backend = createServer((req, res) => res.end(`backend saw ${req.method} ${req.url}`));
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  });

  afterAll(() => backend?.close());

  it('no node is resolvable on that PATH', () => {
    const res = spawnSync('/bin/sh', ['-c', 'command -v node'], { env });
    expect(res.status).not.toBe(0);
    expect(res.stdout.toString()).toBe('');
  });

  it.each(APPS)(
    '%s: executable bit set; --version names the app and the embedded Node',
    async (app) => {
      expect(statSync(executable(app)).mode & 0o111).toBe(0o111);
      const res = await runCli(join(host, `appproxy-${app}`), ['--version'], env);
      expect(res.code).toBe(0);
      expect(res.stdout.trim()).toBe(`appproxy-${app} ${VERSION} (node ${PINNED_NODE})`);
      // No "single executable applications are experimental" warning either.
      expect(res.stderr).toBe('');
    },
  );

  it('publish an app: relay start, token create, connector register + start, a request through', async () => {
    const port = (backend.address() as AddressInfo).port;
    const metricsPort = await freePort();
    const stack = new Stack({
      apps: [
        {
          name: 'Sea',
          internalUrl: `http://127.0.0.1:${port}/`,
          externalUrl: 'https://sea.apps.localhost:{port}/',
        },
      ],
      bins: { relay: join(host, 'appproxy-relay'), connector: join(host, 'appproxy-connector') },
      env,
      connectorArgs: ['--metrics-listen', `127.0.0.1:${metricsPort}`],
    });
    try {
      await stack.start();
      const res = await request(stack, 'sea.apps.localhost', '/hello?x=1');
      expect(res.status).toBe(200);
      expect(res.body.toString()).toBe('backend saw GET /hello?x=1');
      // The processes serving it are the executables themselves, not a node.
      for (const proc of [stack.relay!, stack.connector!]) {
        const exe = readFileSync(`/proc/${proc.pid}/cmdline`, 'utf8').split('\0')[0];
        expect(exe.startsWith(host)).toBe(true);
      }
      // The images' HEALTHCHECK commands, run here against these very processes.
      expect(healthcheck('relay', stack.ports.admin)).toBe(0);
      expect(healthcheck('connector', metricsPort)).toBe(0);
      expect(healthcheck('relay', await freePort())).not.toBe(0);
      expect(healthcheck('connector', stack.ports.public)).not.toBe(0);
    } finally {
      await stack.stop();
    }
  });
});

describe('.deb packages', () => {
  const field = async (file: string, name: string) =>
    (await run('dpkg-deb', ['-f', file, name])).stdout.trim();
  const unpacked = (app: string) => join(scratch, `deb-${app}`);

  beforeAll(async () => {
    for (const app of APPS) {
      const dir = unpacked(app);
      const x = await run('dpkg-deb', ['-x', deb(app), dir]);
      const e = await run('dpkg-deb', ['-e', deb(app), join(dir, 'DEBIAN')]);
      if (x.code || e.code) throw new Error(`dpkg-deb -x/-e failed: ${x.stderr}${e.stderr}`);
    }
  });

  it.each(APPS)('appproxy-%s: control fields', async (app) => {
    expect(await field(deb(app), 'Package')).toBe(`appproxy-${app}`);
    expect(await field(deb(app), 'Version')).toBe(VERSION);
    expect(await field(deb(app), 'Architecture')).toBe('amd64');
    expect(await field(deb(app), 'Depends')).toBe(
      'adduser, libc6 (>= 2.28), libgcc-s1, libstdc++6',
    );
    expect(await field(deb(app), 'Maintainer')).toMatch(/^.+ <.+@.+>$/);
    const installed = Number(await field(deb(app), 'Installed-Size'));
    // In KiB, at least the executable.
    expect(installed).toBeGreaterThanOrEqual(Math.floor(statSync(executable(app)).size / 1024));
    expect(await field(deb(app), 'Description')).toMatch(/^self-hosted application proxy: .+\n .+/);
  });

  it.each(APPS)('appproxy-%s: files, owners and modes (dpkg-deb -c)', async (app) => {
    const listing = (await run('dpkg-deb', ['-c', deb(app)])).stdout;
    const entries = new Map(
      listing
        .trim()
        .split('\n')
        .map((line) => {
          const [mode, owner, , , , path] = line.split(/\s+/);
          return [path.replace(/^\.\//, '/'), { mode, owner }] as const;
        }),
    );
    for (const { owner } of entries.values()) expect(owner).toBe('root/root');
    const name = `appproxy-${app}`;
    const want: Record<string, string> = {
      [`/usr/bin/${name}`]: '-rwxr-xr-x',
      [`/usr/lib/systemd/system/${name}.service`]: '-rw-r--r--',
      [`/etc/default/${name}`]: '-rw-r--r--',
      [`/usr/share/doc/${name}/copyright`]: '-rw-r--r--',
      [`/usr/share/doc/${name}/changelog.gz`]: '-rw-r--r--',
      ...(app === 'relay' && { '/etc/appproxy/appproxy.yaml': '-rw-r--r--' }),
    };
    for (const [path, mode] of Object.entries(want))
      expect(entries.get(path)?.mode, path).toBe(mode);
    const files = [...entries].filter(([, e]) => !e.mode.startsWith('d')).map(([p]) => p);
    expect(files.sort()).toEqual(
      [
        ...Object.keys(want),
        `/usr/share/doc/${name}/README`,
        `/usr/share/lintian/overrides/${name}`,
      ].sort(),
    );
    // The packaged executable is the release's, and it runs.
    const packaged = join(unpacked(app), 'usr/bin', name);
    expect(sha256(packaged)).toBe(sha256(executable(app)));
    expect((await runCli(packaged, ['--version'])).stdout).toContain(`${name} ${VERSION}`);
  });

  it.each(APPS)('appproxy-%s: conffiles and maintainer scripts', async (app) => {
    const name = `appproxy-${app}`;
    const control = join(unpacked(app), 'DEBIAN');
    expect(readFileSync(join(control, 'conffiles'), 'utf8').trim().split('\n').sort()).toEqual(
      [`/etc/default/${name}`, ...(app === 'relay' ? ['/etc/appproxy/appproxy.yaml'] : [])].sort(),
    );
    for (const script of ['postinst', 'prerm', 'postrm']) {
      const file = join(control, script);
      expect(statSync(file).mode & 0o777, script).toBe(0o755);
      expect(spawnSync('/bin/sh', ['-n', file]).status, `sh -n ${script}`).toBe(0);
      expect(readFileSync(file, 'utf8')).not.toContain('@');
    }
    const postinst = readFileSync(join(control, 'postinst'), 'utf8');
    expect(postinst).toContain(
      `adduser --quiet --system --group --no-create-home --home /var/lib/${name} ${name}`,
    );
    expect(postinst).toMatch(
      new RegExp(`install -d -o ${name} -g ${name} -m 07[05]0 /var/lib/${name}`),
    );
    expect(postinst).toContain(`deb-systemd-invoke try-restart ${name}.service`);
    expect(readFileSync(join(control, 'prerm'), 'utf8')).toContain(
      `deb-systemd-invoke stop ${name}.service`,
    );
    const postrm = readFileSync(join(control, 'postrm'), 'utf8');
    expect(postrm).toMatch(/if \[ "\$1" = purge \]; then\n\s+rm -rf \/var\/lib\/appproxy-/);
    expect(postrm).toContain(`deluser --quiet --system ${name}`);
    const copyright = readFileSync(join(unpacked(app), 'usr/share/doc', name, 'copyright'), 'utf8');
    expect(copyright).toContain('License: Apache-2.0');
    expect(copyright).toContain(`Node.js ${PINNED_NODE}`);
    expect(copyright).toMatch(/^ commander \d/m);
  });

  it('the relay unit: runs start --config on the conffile, reloads with SIGHUP, may bind :443', () => {
    const unit = readFileSync(
      join(unpacked('relay'), 'usr/lib/systemd/system/appproxy-relay.service'),
      'utf8',
    );
    const lines = new Set(unit.split('\n'));
    for (const line of [
      'User=appproxy-relay',
      'ExecStart=/usr/bin/appproxy-relay start --config /etc/appproxy/appproxy.yaml',
      'ExecReload=/bin/kill -HUP $MAINPID',
      'Restart=on-failure',
      'StateDirectory=appproxy-relay',
      'ConfigurationDirectory=appproxy',
      'EnvironmentFile=-/etc/default/appproxy-relay',
      'NoNewPrivileges=yes',
      'ProtectSystem=strict',
      'ProtectHome=yes',
      'PrivateTmp=yes',
      'CapabilityBoundingSet=CAP_NET_BIND_SERVICE',
      'AmbientCapabilities=CAP_NET_BIND_SERVICE',
      'WantedBy=multi-user.target',
    ])
      expect(lines.has(line), line).toBe(true);
  });

  it('the relay example appproxy.yaml passes the schema; only its certificates are missing here', () => {
    const text = readFileSync(join(unpacked('relay'), 'etc/appproxy/appproxy.yaml'), 'utf8');
    let error: unknown;
    try {
      parseConfig(text, { env: { APPPROXY_CLIENT_SECRET: 'x'.repeat(32) } });
    } catch (err) {
      error = err;
    }
    // The example points at /etc/appproxy/tls/, which the operator fills: every other
    // setting (listeners, stateDir, identity provider, apps) is valid as shipped.
    expect(text).toMatch(/^ {2}stateDir: \/var\/lib\/appproxy-relay /m);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).issues.map((i) => `${i.path}: ${i.message}`)).toEqual([
      'relay.certificates[0].cert: file not found: /etc/appproxy/tls/site.pem',
      'relay.certificates[0].key: file not found: /etc/appproxy/tls/site-key.pem',
    ]);
  });

  it('the connector unit: start --state-dir from its environment file, no capabilities', async () => {
    const dir = unpacked('connector');
    const unit = readFileSync(
      join(dir, 'usr/lib/systemd/system/appproxy-connector.service'),
      'utf8',
    );
    const lines = new Set(unit.split('\n'));
    for (const line of [
      'User=appproxy-connector',
      'Environment=APPPROXY_CONNECTOR_STATE_DIR=/var/lib/appproxy-connector',
      'EnvironmentFile=-/etc/default/appproxy-connector',
      'ExecStart=/usr/bin/appproxy-connector start --state-dir ${APPPROXY_CONNECTOR_STATE_DIR} $APPPROXY_CONNECTOR_ARGS',
      'Restart=on-failure',
      'StateDirectory=appproxy-connector',
      'ConfigurationDirectory=appproxy',
      'NoNewPrivileges=yes',
      'ProtectSystem=strict',
      'ProtectHome=yes',
      'PrivateTmp=yes',
      'CapabilityBoundingSet=',
      'AmbientCapabilities=',
    ])
      expect(lines.has(line), line).toBe(true);
    expect(unit).not.toContain('CAP_NET_BIND_SERVICE');
    // The flags the environment file sets are ones `start` accepts: with them and an empty
    // state directory it stops at the missing registration, not at an unknown option.
    const defaults = readFileSync(join(dir, 'etc/default/appproxy-connector'), 'utf8');
    const args = /^APPPROXY_CONNECTOR_ARGS=(.*)$/m.exec(defaults)![1].split(/\s+/).filter(Boolean);
    expect(/^APPPROXY_CONNECTOR_STATE_DIR=(.*)$/m.exec(defaults)![1]).toBe(
      '/var/lib/appproxy-connector',
    );
    const empty = mkdtempSync(join(scratch, 'state-'));
    const res = await runCli(join(dir, 'usr/bin/appproxy-connector'), [
      'start',
      '--state-dir',
      empty,
      ...args,
    ]);
    expect(res.code).not.toBe(0);
    expect(res.stderr).not.toMatch(/unknown option|error: option/i);
    expect(res.stderr).toMatch(/regist/i);
  });

  it('systemd-analyze verify passes on both units as installed', async () => {
    const analyze = systemTool('systemd-analyze', 'systemd');
    if (!analyze) return;
    // Both packages unpacked over a copy of this system's own units (targets the units name)
    // and /bin/kill (ExecReload), so verify checks the real paths the units run.
    const root = join(scratch, 'systemd-root');
    for (const app of APPS) cpSync(unpacked(app), root, { recursive: true });
    cpSync('/usr/lib/systemd/system', join(root, 'usr/lib/systemd/system'), {
      recursive: true,
      force: false,
      dereference: true,
    });
    mkdirSync(join(root, 'bin'), { recursive: true });
    copyFileSync('/bin/kill', join(root, 'bin/kill'));
    chmodSync(join(root, 'bin/kill'), 0o755);
    const res = await run(analyze, [
      'verify',
      `--root=${root}`,
      'appproxy-relay.service',
      'appproxy-connector.service',
    ]);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
  });
});

describe('npm tarballs', () => {
  const npm = (prefix: string, args: string[]) =>
    run('npm', ['install', '--prefix', prefix, '--no-audit', '--no-fund', ...args], {
      cwd: prefix,
    });

  it.each(APPS)('appproxy-%s installs alone and offline; its bin runs', async (app) => {
    const prefix = mkdtempSync(join(scratch, `npm-${app}-`));
    const tgz = join(RELEASE, `appproxy-${app}-${VERSION}.tgz`);
    const res = await npm(prefix, ['--offline', tgz]);
    expect(res.code, res.stderr).toBe(0);
    // Self-contained: the package and nothing else.
    expect(readdirSync(join(prefix, 'node_modules')).filter((f) => !f.startsWith('.'))).toEqual([
      '@appproxy',
    ]);
    expect(readdirSync(join(prefix, 'node_modules/@appproxy'))).toEqual([app]);
    const bin = join(prefix, 'node_modules/.bin', `appproxy-${app}`);
    expect(existsSync(bin)).toBe(true);
    const version = await run(bin, ['--version'], {
      env: { ...process.env, PATH: `${join(ROOT, 'node_modules/node/bin')}:/usr/bin:/bin` },
    });
    expect(version.stdout.trim()).toBe(`appproxy-${app} ${VERSION} (node ${PINNED_NODE})`);
    expect((await runCli(bin, ['start', '--help'])).stdout).toMatch(/^Usage: appproxy-/m);
  });

  it('the library tarballs installed together resolve @appproxy/* among themselves', async () => {
    const prefix = mkdtempSync(join(scratch, 'npm-libs-'));
    const tarballs = LIBRARIES.map((lib) => join(RELEASE, `appproxy-${lib}-${VERSION}.tgz`));
    // Third-party dependencies (jose, yaml, …) come from npm's cache or the registry.
    const res = await npm(prefix, ['--prefer-offline', ...tarballs]);
    expect(res.code, res.stderr).toBe(0);
    const lock = JSON.parse(readFileSync(join(prefix, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { resolved?: string; version?: string }>;
    };
    const ours = Object.entries(lock.packages).filter(([path]) => path.includes('@appproxy/'));
    // One copy each, every one from the tarballs: none fetched from the registry, none nested.
    expect(ours.map(([path]) => path).sort()).toEqual(
      LIBRARIES.map((lib) => `node_modules/@appproxy/${lib}`).sort(),
    );
    for (const [path, entry] of ours) expect(entry.resolved, path).toMatch(/^file:.*\.tgz$/);
    const script = `const names = ${JSON.stringify(LIBRARIES)};
for (const n of names) {
  const m = await import('@appproxy/' + n);
  if (Object.keys(m).length === 0) throw new Error(n + ' exports nothing');
}
const { UrlMap } = await import('@appproxy/translate');
console.log(typeof UrlMap, names.length);`;
    const imported = await run(process.execPath, ['--input-type=module', '-e', script], {
      cwd: prefix,
    });
    expect(
      imported.stderr.replace(
        /^.*ExperimentalWarning.*\n?|^\(Use `node --trace-warnings.*\n?/gm,
        '',
      ),
    ).toBe('');
    expect(imported.stdout.trim()).toBe(`function ${LIBRARIES.length}`);
  });
});

describe('Containerfiles', () => {
  it.each(APPS)(
    '%s: the release executable on debian-slim, non-root, state and config volumes',
    (app) => {
      const text = containerfile(app);
      const name = `appproxy-${app}`;
      expect(text).toMatch(/^FROM docker\.io\/library\/debian:bookworm-slim$/m);
      // The file the release names, so `podman build … dist/release` finds it.
      const copy = /^COPY (\S+) (\S+)$/m.exec(text)!;
      expect(copy[1].replace('${VERSION}', VERSION)).toBe(`${name}-${VERSION}-linux-x64`);
      expect(existsSync(join(RELEASE, copy[1].replace('${VERSION}', VERSION)))).toBe(true);
      expect(copy[2]).toBe(`/usr/bin/${name}`);
      expect(/^USER (\S+)$/m.exec(text)?.[1]).toBe(name);
      expect(JSON.parse(/^VOLUME (.*)$/m.exec(text)![1])).toEqual([
        `/var/lib/${name}`,
        '/etc/appproxy',
      ]);
      expect(JSON.parse(/^ENTRYPOINT (.*)$/m.exec(text)![1])).toEqual([`/usr/bin/${name}`]);
      // The same start command as the systemd unit.
      const cmd = (JSON.parse(/^CMD (.*)$/m.exec(text)![1]) as string[]).join(' ');
      expect(cmd).toBe(
        app === 'relay'
          ? 'start --config /etc/appproxy/appproxy.yaml'
          : 'start --state-dir /var/lib/appproxy-connector --metrics-listen 127.0.0.1:9091',
      );
    },
  );
});
