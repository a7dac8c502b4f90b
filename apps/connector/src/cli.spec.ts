import { afterEach, describe, expect, it, vi } from 'vitest';
import { main } from './cli.js';

afterEach(() => {
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
});

describe('connector CLI exit codes', () => {
  it('usage errors exit 2', async () => {
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    expect(await main(['start', '--state-dir', '/tmp/x', '--tunnels', 'zero'])).toBe(2);
    expect(await main(['register', '--relay', 'https://r:8443'])).toBe(2);
    expect(await main(['start', '--bogus'])).toBe(2);
  });

  it('refuses an unknown APPPROXY_LOG_LEVEL with exit 2', async () => {
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    vi.stubEnv('APPPROXY_LOG_LEVEL', 'trace');
    expect(await main(['start', '--state-dir', '/nonexistent'])).toBe(2);
    expect(String(spy.mock.calls.at(-1)![0])).toMatch(
      /^appproxy-connector: APPPROXY_LOG_LEVEL: unknown log level "trace"/,
    );
  });
});
