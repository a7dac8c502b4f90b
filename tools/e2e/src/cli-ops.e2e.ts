/**
 * The CLIs as infrastructure tools: Node guard, `config check`, errors that name the
 * setting, log format, and the connector's lifecycle (registration that never burns a
 * token for nothing, revocation, wrong port, wrong name).
 */
import { registerWithRelay } from '@appproxy/tunnel';
import { execFileSync, spawn } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { connect as h2connect } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CONNECTOR_BIN,
  LoggedProcess,
  RELAY_BIN,
  Stack,
  connectorId,
  freePort,
  runCli,
  type CliResult,
} from './harness.js';

const scratch = mkdtempSync(join(tmpdir(), 'appproxy-cli-ops-'));
chmodSync(scratch, 0o755);
let stack: Stack;

beforeAll(async () => {
  stack = await new Stack({
    apps: [
      {
        name: 'Ops',
        internalUrl: 'http://127.0.0.1:9/',
        externalUrl: 'https://ops.apps.localhost/',
      },
    ],
    startConnector: false,
  }).start();
});

afterAll(async () => {
  await stack?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

/** A Node older than the CLIs need (the distribution's), or undefined. */
function oldNode(): string | undefined {
  for (const file of ['/usr/bin/node', '/usr/local/bin/node']) {
    try {
      const v = execFileSync(file, ['--version'], { encoding: 'utf8' }).trim();
      const [major, minor] = v.slice(1).split('.').map(Number);
      if (major! >= 18 && (major! < 22 || (major === 22 && minor! < 13))) return file;
    } catch {
      // not there
    }
  }
  const message = 'no Node 18–22.12 at /usr/bin/node: the Node guard test is SKIPPED';
  if (process.env.APPPROXY_REQUIRE_ALL === '1') throw new Error(message);
  console.warn(`\n!!! ${message} !!!\n`);
  return undefined;
}

/** Runs `node bin args` as an unprivileged user when we are root (permissions must bite). */
function runUnprivileged(bin: string, args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    const root = process.getuid?.() === 0;
    const child = spawn(process.execPath, [bin, ...args], {
      ...(root && { uid: 65534, gid: 65534 }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('exit', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

/** A directory the unprivileged user cannot enter. */
function lockedDir(name: string): string {
  const dir = join(scratch, name);
  mkdirSync(dir, { mode: 0o700 });
  chmodSync(dir, process.getuid?.() === 0 ? 0o700 : 0o000);
  return dir;
}

function relayConfig(name: string, relay: string): string {
  const file = join(scratch, `${name}.yaml`);
  writeFileSync(
    file,
    `relay:
${relay}
connectorGroups: [{ name: Default }]
apps:
  - name: A
    internalUrl: http://a.corp/
    externalUrl: https://a.apps.localhost/
    preAuthentication: passthrough
`,
  );
  return file;
}

const tls = () => ({
  cert: join(stack.dir, 'tls/site.pem'),
  key: join(stack.dir, 'tls/site-key.pem'),
});

describe('Node guard', () => {
  const node = oldNode();
  it.runIf(node)('an old Node gets one line and exit 2; --version and --help still work', () => {
    for (const [bin, name] of [
      [RELAY_BIN, 'appproxy-relay'],
      [CONNECTOR_BIN, 'appproxy-connector'],
    ] as const) {
      const run = (args: string[]) => {
        try {
          return {
            code: 0,
            out: execFileSync(node!, [bin, ...args], { encoding: 'utf8', stdio: 'pipe' }),
          };
        } catch (err) {
          const e = err as { status: number; stderr: string };
          return { code: e.status, out: e.stderr };
        }
      };
      const version = execFileSync(node!, ['--version'], { encoding: 'utf8' }).trim().slice(1);
      const start = run(['start', '--config', 'x.yaml', '--state-dir', 'x']);
      expect(start.code).toBe(2);
      expect(start.out).toMatch(
        new RegExp(
          `^${name} needs Node ≥ 22(\\.13)?; this is ${version.replaceAll('.', '\\.')} — use the single-file executable or a newer Node\\n$`,
        ),
      );
      expect(run(['--version'])).toMatchObject({
        code: 0,
        out: expect.stringMatching(/\b\d+\.\d+\.\d+\b/) as string,
      });
      expect(run(['start', '--help'])).toMatchObject({
        code: 0,
        out: expect.stringMatching(/^Usage: /) as string,
      });
    }
  });
});

describe('config check and start refuse the same, naming the setting', () => {
  it('a good file: exit 0, ok', async () => {
    const res = await runCli(RELAY_BIN, [
      'config',
      'check',
      '--config',
      stack.configPath,
      '--offline',
    ]);
    expect(res).toMatchObject({ code: 0, stdout: `${stack.configPath}: ok\n` });
  });

  it('a wrong key and colliding listeners: every problem by path, exit 2, start says the same', async () => {
    const port = await freePort();
    const file = relayConfig(
      'broken',
      `  listen: 127.0.0.1:${port}
  tunnelListen: 0.0.0.0:${port}
  stateDir: ${join(scratch, 'broken-state')}
  certificates: [{ cert: ${tls().cert}, key: ${join(stack.dir, 'tls/dev-ca-key.pem')} }]`,
    );
    const expected = [
      `relay.certificates[0].key: does not match relay.certificates[0].cert (${join(stack.dir, 'tls/dev-ca-key.pem')})`,
      `relay.tunnelListen: 0.0.0.0:${port} collides with relay.listen 127.0.0.1:${port}`,
    ];
    const check = await runCli(RELAY_BIN, ['config', 'check', '--config', file, '--offline']);
    expect(check.code).toBe(2);
    expect(check.stderr).toBe(expected.map((l) => `error: ${l}\n`).join(''));
    const json = await runCli(RELAY_BIN, [
      'config',
      'check',
      '--config',
      file,
      '--offline',
      '--json',
    ]);
    expect(json.code).toBe(2);
    expect(JSON.parse(json.stdout)).toMatchObject({
      ok: false,
      problems: [
        { severity: 'error', path: 'relay.certificates[0].key' },
        { path: 'relay.tunnelListen' },
      ],
    });
    const start = await runCli(RELAY_BIN, ['start', '--config', file]);
    expect(start.code).toBe(2);
    expect(start.stderr).toBe(expected.map((l) => `appproxy-relay: ${l}\n`).join(''));
  });

  it('an impossible stateDir is named and never hangs', async () => {
    const file = relayConfig(
      'proc',
      `  listen: 127.0.0.1:0
  tunnelListen: 127.0.0.1:0
  stateDir: /proc/nope
  certificates: [{ cert: ${tls().cert}, key: ${tls().key} }]`,
    );
    const started = Date.now();
    for (const args of [['start'], ['token', 'create'], ['config', 'check', '--offline']]) {
      const res = await runCli(RELAY_BIN, [...args, '--config', file]);
      expect(res.code).toBe(2);
      expect(res.stderr).toMatch(/relay\.stateDir: cannot create \/proc\/nope/);
    }
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it('a port in use names the listener', async () => {
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const port = (busy.address() as { port: number }).port;
    try {
      const file = relayConfig(
        'busy',
        `  listen: 127.0.0.1:0
  tunnelListen: 127.0.0.1:${port}
  stateDir: ${join(scratch, 'busy-state')}
  certificates: [{ cert: ${tls().cert}, key: ${tls().key} }]`,
      );
      const res = await runCli(RELAY_BIN, ['start', '--config', file]);
      expect(res.code).toBe(1);
      expect(res.stderr).toBe(
        `appproxy-relay: relay.tunnelListen 127.0.0.1:${port} is already in use\n`,
      );
    } finally {
      busy.close();
    }
  });

  it('usage errors exit 2', async () => {
    expect((await runCli(RELAY_BIN, ['start', '--config', stack.configPath, '--bogus'])).code).toBe(
      2,
    );
    expect((await runCli(CONNECTOR_BIN, ['register'])).code).toBe(2);
    const level = await runCli(RELAY_BIN, ['connectors', 'list', '--config', stack.configPath], {
      APPPROXY_LOG_LEVEL: 'chatty',
    });
    expect(level.code).toBe(2);
    expect(level.stderr).toContain('APPPROXY_LOG_LEVEL: unknown log level "chatty"');
  });

  it('--log-format text: time LEVEL message key=value', async () => {
    const file = relayConfig(
      'text',
      `  listen: 127.0.0.1:0
  tunnelListen: 127.0.0.1:0
  stateDir: ${join(scratch, 'text-state')}
  certificates: [{ cert: ${tls().cert}, key: ${tls().key} }]`,
    );
    const relay = new LoggedProcess(RELAY_BIN, ['start', '--config', file, '--log-format', 'text']);
    try {
      const line = await relay.waitFor((l) => String(l.msg).includes('relay listening'));
      expect(String(line.msg)).toMatch(
        /^\d{4}-\d\d-\d\dT\S+Z INFO {2}relay listening name=relay tunnel=127\.0\.0\.1:\d+ public=127\.0\.0\.1:\d+ /,
      );
    } finally {
      await relay.stop();
    }
  });
});

describe('request log', () => {
  it('HTTP/2 request lines carry client like HTTP/1.1 ones', async () => {
    for (const h2 of [true, false]) {
      const path = `/h2-${h2}-${Date.now()}`;
      await new Promise<void>((resolve, reject) => {
        if (h2) {
          const session = h2connect(`https://127.0.0.1:${stack.ports.public}`, {
            ca: stack.ca,
            servername: 'ops.apps.localhost',
          });
          session.on('error', reject);
          const req = session.request({ ':path': path, ':authority': 'ops.apps.localhost' });
          req.on('error', reject);
          req.resume();
          req.on('end', () => session.close(() => resolve()));
        } else {
          const req = httpsRequest(
            {
              host: '127.0.0.1',
              port: stack.ports.public,
              path,
              servername: 'ops.apps.localhost',
              headers: { host: 'ops.apps.localhost' },
              ca: stack.ca,
            },
            (res) => res.resume().on('end', resolve),
          );
          req.on('error', reject);
          req.end();
        }
      });
      const line = await stack.relay!.waitFor((l) => l.msg === 'request' && l.path === path);
      expect(line.client).toBe('127.0.0.1');
    }
  });
});

describe('connector lifecycle', () => {
  it('register into a state dir it cannot write: exit 2 before the token is spent', async () => {
    const token = await stack.createToken();
    const locked = lockedDir('locked-register');
    const res = await runUnprivileged(CONNECTOR_BIN, [
      'register',
      '--relay',
      stack.relayUrl,
      '--token',
      token,
      '--state-dir',
      join(locked, 'c'),
    ]);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/permission denied/);
    const again = await runCli(CONNECTOR_BIN, [
      'register',
      '--relay',
      stack.relayUrl,
      '--token',
      token,
      '--state-dir',
      join(scratch, 'c-ok'),
    ]);
    expect(again.code).toBe(0);
  });

  it('a malformed CSR is refused without spending the token or recording a connector', async () => {
    const token = await stack.createToken();
    const before = JSON.parse(
      (await runCli(RELAY_BIN, ['connectors', 'list', '--config', stack.configPath, '--json']))
        .stdout,
    ) as unknown[];
    await expect(
      registerWithRelay({
        relayUrl: stack.relayUrl,
        token,
        csrPem: 'not a csr',
        hostname: 'h',
        version: '0',
      }),
    ).rejects.toThrow(/CSR|csr/);
    const after = JSON.parse(
      (await runCli(RELAY_BIN, ['connectors', 'list', '--config', stack.configPath, '--json']))
        .stdout,
    ) as unknown[];
    expect(after).toHaveLength(before.length);
    const res = await runCli(CONNECTOR_BIN, [
      'register',
      '--relay',
      stack.relayUrl,
      '--token',
      token,
      '--state-dir',
      join(scratch, 'c-csr'),
    ]);
    expect(res.code).toBe(0);
  });

  it('an unreadable state dir says permission denied, not "no registration"', async () => {
    const locked = lockedDir('locked-start');
    const res = await runUnprivileged(CONNECTOR_BIN, ['start', '--state-dir', join(locked, 'c')]);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/permission denied/);
    expect(res.stderr).not.toMatch(/no registration/);
  });

  it('a deleted connector stops with exit 3 and "revoked: register again"', async () => {
    const dir = join(scratch, 'c-revoked');
    await stack.registerConnector(dir);
    const connector = await stack.startConnector(dir, 1);
    const id = connectorId(dir);
    const del = await runCli(RELAY_BIN, ['connectors', 'delete', id, '--config', stack.configPath]);
    expect(del.code).toBe(0);
    // Its tunnel is closed by the relay; the next attempt is refused as revoked.
    expect(await connector.exited).toBe(3);
    expect(connector.stderr.join('')).toMatch(/^appproxy-connector: revoked: register again/m);
    expect(connector.lines.some((l) => l.msg === 'revoked: register again')).toBe(true);
    // Started again later: the same, at once.
    const again = await runCli(CONNECTOR_BIN, ['start', '--state-dir', dir]);
    expect(again.code).toBe(3);
  });

  it('dialling the public port says it is not the tunnel port', async () => {
    const dir = join(scratch, 'c-public');
    await stack.registerConnector(dir);
    const wrong = join(scratch, 'c-public-wrong');
    cpSync(dir, wrong, { recursive: true });
    const metaFile = join(wrong, 'connector.json');
    const meta = JSON.parse(readFileSync(metaFile, 'utf8')) as { relayUrl: string };
    meta.relayUrl = `https://127.0.0.1:${stack.ports.public}`;
    writeFileSync(metaFile, JSON.stringify(meta));
    const connector = new LoggedProcess(CONNECTOR_BIN, [
      'start',
      '--state-dir',
      wrong,
      '--tunnels',
      '1',
    ]);
    try {
      const line = await connector.waitFor((l) => l.msg === 'tunnel connect failed');
      expect(line.advice).toMatch(
        /is not the relay's tunnel port: use the address of relay\.tunnelListen/,
      );
    } finally {
      await connector.stop('SIGKILL');
    }
    const token = await stack.createToken();
    const res = await runCli(CONNECTOR_BIN, [
      'register',
      '--relay',
      `https://127.0.0.1:${stack.ports.public}`,
      '--token',
      token,
      '--state-dir',
      join(scratch, 'c-public-reg'),
    ]);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/not the relay's tunnel port/);
  });
});

describe('tunnel certificate without the dialled name', () => {
  let other: Stack;
  beforeAll(async () => {
    other = await new Stack({
      apps: [
        { name: 'N', internalUrl: 'http://127.0.0.1:9/', externalUrl: 'https://n.apps.localhost/' },
      ],
      relayExtra: '  tunnelHosts: [127.0.0.1]',
      startConnector: false,
    }).start();
  });
  afterAll(() => other?.stop());

  it('points at relay.tunnelHosts, from register and from start', async () => {
    const byName = `https://localhost:${other.ports.tunnel}`;
    const reg = await runCli(CONNECTOR_BIN, [
      'register',
      '--relay',
      byName,
      '--token',
      await other.createToken(),
      '--state-dir',
      join(scratch, 'n-reg'),
    ]);
    expect(reg.code).not.toBe(0);
    expect(reg.stderr).toMatch(/does not name localhost: add localhost to relay\.tunnelHosts/);
    await other.registerConnector();
    const metaFile = join(other.connectorState, 'connector.json');
    const meta = JSON.parse(readFileSync(metaFile, 'utf8')) as { relayUrl: string };
    writeFileSync(metaFile, JSON.stringify({ ...meta, relayUrl: byName }));
    const connector = new LoggedProcess(CONNECTOR_BIN, [
      'start',
      '--state-dir',
      other.connectorState,
      '--tunnels',
      '1',
    ]);
    try {
      const line = await connector.waitFor((l) => l.msg === 'tunnel connect failed');
      expect(line.advice).toMatch(/does not name localhost: add localhost to relay\.tunnelHosts/);
    } finally {
      await connector.stop('SIGKILL');
    }
  });
});
