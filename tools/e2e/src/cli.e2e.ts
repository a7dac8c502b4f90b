import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONNECTOR_BIN, RELAY_BIN, Stack, runCli } from './harness.js';

let stack: Stack;
const scratch = mkdtempSync(join(tmpdir(), 'appproxy-cli-'));

beforeAll(async () => {
  stack = await new Stack({
    apps: [
      {
        name: 'Cli',
        internalUrl: 'http://127.0.0.1:9/',
        externalUrl: 'https://cli.apps.localhost/',
      },
    ],
    startConnector: false,
  }).start();
});

afterAll(async () => {
  await stack?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

describe('CLIs', () => {
  it.each([
    [RELAY_BIN, []],
    [RELAY_BIN, ['start']],
    [RELAY_BIN, ['token', 'create']],
    [RELAY_BIN, ['connectors', 'list']],
    [CONNECTOR_BIN, []],
    [CONNECTOR_BIN, ['register']],
    [CONNECTOR_BIN, ['start']],
  ])('%s %j --help exits 0 with usage', async (bin, args) => {
    const res = await runCli(bin, [...args, '--help']);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/^Usage: /m);
  });

  it('refuses to start on a bad appproxy.yaml with the precise path and reason', async () => {
    const bad = join(scratch, 'bad.yaml');
    writeFileSync(
      bad,
      `relay:
  listen: 127.0.0.1:0
  tunnelListen: 127.0.0.1:0
  certificates: [{ cert: ${join(stack.dir, 'tls/site.pem')}, key: ${join(stack.dir, 'tls/site-key.pem')} }]
apps:
  - name: A
    internalUrl: http://a.corp/
    externalUrl: https://a.example.com/
    preAuthentication: passthrough
  - name: B
    internalUrl: http://b.corp/
    externalUrl: https://b.example.com/
    preAuthentication: passthrough
  - name: C
    internalUrl: not-a-url
    externalUrl: https://c.example.com/
    preAuthentication: passthrough
`,
    );
    const res = await runCli(RELAY_BIN, ['start', '--config', bad]);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain('apps[2].internalUrl');
    expect(res.stderr).toMatch(/absolute http\(s\) URL/);
  });

  it('a missing config file is a one-line error, not a stack trace', async () => {
    const res = await runCli(RELAY_BIN, ['start', '--config', join(scratch, 'nope.yaml')]);
    expect(res.code).not.toBe(0);
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
    expect(res.stderr).not.toMatch(/\n\s+at /);
  });

  it('token create prints the token alone; a token works once', async () => {
    const token = await stack.createToken(['--group', 'Default', '--ttl', '10m']);
    expect(token).toMatch(/^ap1\.[^.\s]+\.[^.\s]+\.[^.\s]+$/);
    const dir1 = join(scratch, 'c1');
    const first = await runCli(CONNECTOR_BIN, [
      'register',
      '--relay',
      stack.relayUrl,
      '--token',
      token,
      '--state-dir',
      dir1,
    ]);
    expect(first.code).toBe(0);
    expect(statSync(join(dir1, 'connector-key.pem')).mode & 0o777).toBe(0o600);
    const second = await runCli(CONNECTOR_BIN, [
      'register',
      '--relay',
      stack.relayUrl,
      '--token',
      token,
      '--state-dir',
      join(scratch, 'c2'),
    ]);
    expect(second.code).not.toBe(0);
    expect(second.stderr).toContain('APPPROXY_TOKEN_USED');
    // The secret half of the token never reaches the relay's logs.
    expect(JSON.stringify(stack.relay!.lines)).not.toContain(token.split('.')[2]);
  });

  it('an expired token is refused', async () => {
    const token = await stack.createToken(['--ttl', '1s']);
    await new Promise((r) => setTimeout(r, 1500));
    const res = await runCli(CONNECTOR_BIN, [
      'register',
      '--relay',
      stack.relayUrl,
      '--token',
      token,
      '--state-dir',
      join(scratch, 'c3'),
    ]);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain('APPPROXY_TOKEN_EXPIRED');
  });

  it('token create refuses an unknown group', async () => {
    const res = await runCli(RELAY_BIN, [
      'token',
      'create',
      '--config',
      stack.configPath,
      '--group',
      'Nope',
    ]);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('Nope');
  });

  it('register refuses a relay whose CA does not match the token', async () => {
    const token = await stack.createToken();
    const parts = token.split('.');
    const forged = [...parts.slice(0, 3), Buffer.alloc(32, 7).toString('base64url')].join('.');
    const res = await runCli(CONNECTOR_BIN, [
      'register',
      '--relay',
      stack.relayUrl,
      '--token',
      forged,
      '--state-dir',
      join(scratch, 'c4'),
    ]);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain('APPPROXY_TUNNEL_RELAY_UNTRUSTED');
  });
});
