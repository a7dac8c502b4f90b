import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { main } from './cli.js';

function stderr() {
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  return () => spy.mock.calls.map((c) => String(c[0])).join('');
}

afterEach(() => {
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
});

describe('relay CLI exit codes', () => {
  it('usage errors exit 2: unknown option, missing argument, unknown command', async () => {
    const err = stderr();
    expect(await main(['start', '--config', 'x.yaml', '--nope'])).toBe(2);
    expect(await main(['start'])).toBe(2);
    expect(await main(['connectors', 'delete', '--config', 'x.yaml'])).toBe(2);
    expect(await main(['frobnicate'])).toBe(2);
    expect(err()).toMatch(/unknown option '--nope'/);
  });

  it('refuses an unknown APPPROXY_LOG_LEVEL or --log-format with exit 2 and one line', async () => {
    const err = stderr();
    vi.stubEnv('APPPROXY_LOG_LEVEL', 'loud');
    expect(await main(['start', '--config', 'x.yaml'])).toBe(2);
    expect(err()).toBe(
      'appproxy-relay: APPPROXY_LOG_LEVEL: unknown log level "loud" (expected debug, info, warn, error)\n',
    );
    vi.stubEnv('APPPROXY_LOG_LEVEL', '');
    expect(await main(['--log-format', 'xml', 'start', '--config', 'x.yaml'])).toBe(2);
    expect(err()).toContain('--log-format: unknown log format "xml"');
  });
});

describe('config check', () => {
  it('a file that fails the schema: exit 2; --json lists each problem by path', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'relay-cli-'));
    try {
      const file = join(dir, 'appproxy.yaml');
      writeFileSync(file, 'relay:\n  listen: nope\n');
      const err = stderr();
      const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
      expect(await main(['config', 'check', '--config', file, '--offline', '--json'])).toBe(2);
      const report = JSON.parse(out.mock.calls.map((c) => String(c[0])).join('')) as {
        ok: boolean;
        problems: Array<{ severity: string; path: string }>;
      };
      expect(report.ok).toBe(false);
      expect(report.problems).toContainEqual(
        expect.objectContaining({ severity: 'error', path: 'relay.listen' }),
      );
      expect(await main(['config', 'check', '--config', file, '--offline'])).toBe(2);
      expect(err()).toMatch(/relay\.listen: /);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('admin-token, token list|revoke, audit', () => {
  const dir = mkdtempSync(join(tmpdir(), 'relay-cli-admin-'));
  const file = join(dir, 'appproxy.yaml');
  writeFileSync(
    file,
    `relay:
  listen: 127.0.0.1:0
  tunnelListen: 127.0.0.1:0
  stateDir: ${join(dir, 'state')}
  certificates: [{ cert: ${import.meta.filename}, key: ${import.meta.filename} }]
connectorGroups: [{ name: Default }, { name: Berlin }]
apps: []
`,
  );
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Runs the CLI; its exit code, stdout and stderr. */
  async function run(...argv: string[]) {
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const code = await main([...argv, '--config', file]);
      const text = (s: typeof out) => s.mock.calls.map((c) => String(c[0])).join('');
      return { code, stdout: text(out), stderr: text(err) };
    } finally {
      out.mockRestore();
      err.mockRestore();
    }
  }

  it('admin-token create prints the token alone; list shows it (no secret); revoke by name', async () => {
    const created = await run('admin-token', 'create', '--name', 'ops', '--ttl', '90d');
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/^apx_[a-z2-7]{8}_[A-Za-z0-9_-]{43}\n$/);
    const secret = created.stdout.trim().slice(13);
    const listed = await run('admin-token', 'list', '--json');
    const rows = JSON.parse(listed.stdout) as Array<{ name: string; createdBy: string }>;
    expect(rows.map((r) => [r.name, r.createdBy])).toStrictEqual([['ops', 'cli']]);
    expect(listed.stdout).not.toContain(secret);
    const table = await run('admin-token', 'list');
    expect(table.stdout.split('\n')[0]).toMatch(
      /^ID\s+NAME\s+CREATED\s+EXPIRES\s+LAST USED\s+CREATED BY$/,
    );
    expect((await run('admin-token', 'create', '--name', 'ops')).stderr).toBe(
      'appproxy-relay: an admin token named "ops" exists; revoke it first or choose another name\n',
    );
    expect(await run('admin-token', 'revoke', 'ops')).toMatchObject({
      code: 0,
      stdout: 'admin token ops revoked\n',
    });
    expect(await run('admin-token', 'revoke', 'ops')).toMatchObject({
      code: 2,
      stderr: 'appproxy-relay: no admin token with id or name ops\n',
    });
  });

  it('admin-token: a bad name or ttl, or no name, is a usage error (2)', async () => {
    expect((await run('admin-token', 'create', '--name', 'a b')).code).toBe(2);
    expect((await run('admin-token', 'create', '--name', 'x', '--ttl', 'soon')).stderr).toBe(
      'appproxy-relay: --ttl: not a duration: soon\n',
    );
    expect((await run('admin-token', 'create')).code).toBe(2);
  });

  it('token list and revoke: a revoked token is gone from the list; revoking again is 2', async () => {
    expect((await run('token', 'create', '--group', 'Berlin')).code).toBe(0);
    const [row] = JSON.parse((await run('token', 'list', '--json')).stdout) as Array<{
      id: string;
      group: string;
    }>;
    expect(row!.group).toBe('Berlin');
    expect((await run('token', 'list')).stdout).toMatch(
      new RegExp(`^ID\\s+GROUP\\s+CREATED\\s+EXPIRES\\n${row!.id}\\s+Berlin\\s`),
    );
    expect(await run('token', 'revoke', row!.id)).toMatchObject({
      code: 0,
      stdout: `registration token ${row!.id} revoked\n`,
    });
    expect(JSON.parse((await run('token', 'list', '--json')).stdout)).toStrictEqual([]);
    expect((await run('token', 'revoke', row!.id)).code).toBe(2);
  });

  it('audit shows what the CLI did, as cli, filtered and newest first', async () => {
    const res = await run('audit', '--since', '10m', '--type', 'admin.', '--json');
    expect(res.code).toBe(0);
    const events = JSON.parse(res.stdout) as Array<{ type: string; actor: string }>;
    expect(events.length).toBeGreaterThanOrEqual(4);
    expect(events.every((e) => e.actor === 'cli')).toBe(true);
    expect(events.map((e) => e.type)).toContain('admin.admin-token.revoked');
    expect(events.map((e) => e.type)).toContain('admin.registration-token.created');
    const limited = await run('audit', '--type', 'admin.admin-token', '--limit', '1');
    const lines = limited.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^TIME\s+TYPE\s+USER\s+APP\s+CLIENT\s+CODE\s+ACTOR$/);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(/admin\.admin-token\.revoked\s+-\s+-\s+-\s+-\s+cli$/);
    expect(JSON.parse((await run('audit', '--until', '1h', '--json')).stdout)).toStrictEqual([]);
  });

  it('audit: a bad --since, --until or --limit is a usage error (2) with one line', async () => {
    expect((await run('audit', '--since', 'yesterday')).stderr).toBe(
      'appproxy-relay: --since: not a duration (1h, 7d) or an ISO time: yesterday\n',
    );
    expect((await run('audit', '--until', '2026-13-45T00:00:00Z')).code).toBe(2);
    expect((await run('audit', '--limit', 'ten')).code).toBe(2);
    expect((await run('audit', '--limit', '5000')).stderr).toBe(
      'appproxy-relay: limit must be a whole number from 1 to 1000\n',
    );
    expect((await run('audit', '--type', 'Bad Type')).code).toBe(2);
  });
});
