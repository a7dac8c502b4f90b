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

  it.each([
    [['--kerberos-keytab', '/k.keytab'], {}, /needs --kerberos-principal/],
    [['--kerberos-principal', 'appproxy@CORP.TEST'], {}, /needs --kerberos-keytab/],
    [['--kerberos-kdc', 'dc1'], {}, /--kerberos-kdc needs --kerberos-keytab/],
    [[], { APPPROXY_KERBEROS_PRINCIPAL: 'appproxy@CORP.TEST' }, /needs --kerberos-keytab/],
    [
      ['--kerberos-keytab', '/nonexistent.keytab', '--kerberos-principal', 'appproxy@CORP.TEST'],
      { KRB5_CONFIG: '/nonexistent-krb5.conf' },
      /^appproxy-connector: Kerberos single sign-on: .*cannot read krb5\.conf \/nonexistent-krb5\.conf/,
    ],
    [
      ['--kerberos-keytab', '/nonexistent.keytab', '--kerberos-principal', 'appproxy@CORP.TEST'],
      { APPPROXY_KERBEROS_KDC: 'dc1.corp.test' },
      /^appproxy-connector: Kerberos single sign-on: .*\/nonexistent\.keytab/,
    ],
  ])('Kerberos settings %j %j that cannot work exit 2, named', async (args, env, message) => {
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    for (const [k, v] of Object.entries(env)) vi.stubEnv(k, v);
    expect(await main(['start', '--state-dir', '/nonexistent', ...args])).toBe(2);
    expect(String(spy.mock.calls.at(-1)![0])).toMatch(message);
  });

  it.each([
    [['--otlp-endpoint', 'ftp://collector'], {}, /--otlp-endpoint must be an http\(s\) URL/],
    [[], { OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' }, /OTEL_EXPORTER_OTLP_ENDPOINT must be/],
    [['--otlp-header', 'x=1'], {}, /--otlp-header and --otlp-timeout need --otlp-endpoint/],
    [['--otlp-endpoint', 'http://c:4318', '--otlp-timeout', 'soon'], {}, /--otlp-timeout/],
  ])('OTLP settings %j %j that cannot work exit 2, named', async (args, env, message) => {
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    for (const [k, v] of Object.entries(env)) vi.stubEnv(k, v);
    expect(await main(['start', '--state-dir', '/nonexistent', ...args])).toBe(2);
    expect(String(spy.mock.calls.at(-1)![0])).toMatch(message);
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
