import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
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
