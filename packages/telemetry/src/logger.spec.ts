import { describe, expect, it, vi } from 'vitest';
import { LogSettingError, createLogger, parseLogFormat, parseLogLevel, redact } from './index.js';

function capture(level?: 'debug' | 'info') {
  const lines: string[] = [];
  const log = createLogger({ name: 'test', level, write: (l) => lines.push(l) });
  return { log, lines, parsed: () => lines.map((l) => JSON.parse(l)) };
}

describe('logger', () => {
  it('writes one JSON object per line with bound fields', () => {
    const { log, lines, parsed } = capture();
    log.child({ requestId: 'r1' }).info('request', { status: 200 });
    log.debug('hidden');
    expect(lines).toHaveLength(1);
    expect(lines[0]!.endsWith('\n')).toBe(true);
    expect(parsed()[0]).toMatchObject({
      level: 'info',
      name: 'test',
      msg: 'request',
      requestId: 'r1',
      status: 200,
    });
  });

  it('never writes secrets, whatever the caller passes', () => {
    const { log, lines } = capture('debug');
    const secrets = {
      headers: {
        Authorization: 'Bearer eyJhbGciOi.abc.def',
        cookie: 'sid=s3cr3t',
        'set-cookie': ['a=s3cr3t2'],
      },
      clientSecret: 'hunter2',
      storeKey: 'sealing-key-of-the-state-store-xyzzy',
      token: 'ap1.abcd1234.c2VjcmV0.QUJD',
      note: 'used token ap1.abcd1234.c2VjcmV0.QUJD and Bearer zzz.yyy',
      admin: 'curl -H "x: apx_k3x7a2b7_Zm9vYmFyYmF6cXV4_-1"',
      proxy: 'http://user:pa55@proxy:3128',
      key: '-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----',
      err: new Error('login failed with password hunter3 and Bearer q.w.e'),
    };
    log.error('oops', secrets);
    const out = lines.join('');
    for (const s of [
      'eyJhbGciOi',
      's3cr3t',
      'hunter2',
      'c2VjcmV0',
      'zzz.yyy',
      'pa55',
      'MIIB',
      'q.w.e',
      'xyzzy',
      'Zm9vYmFyYmF6cXV4',
    ]) {
      expect(out).not.toContain(s);
    }
    expect(out).toContain('[redacted]');
    expect(out).toContain('proxy:3128');
    // An admin token's id names it; only its secret goes.
    expect(out).toContain('apx_k3x7a2b7_[redacted]');
  });

  it('redact keeps non-secret structure', () => {
    expect(redact({ a: [1, { b: 'x', password: 'p' }] })).toEqual({
      a: [1, { b: 'x', password: '[redacted]' }],
    });
  });
});

describe('logger.enabled', () => {
  it('says which levels are written, children alike', () => {
    const { log } = capture('info');
    expect(log.enabled('debug')).toBe(false);
    expect(log.enabled('info')).toBe(true);
    expect(log.child({ a: 1 }).enabled('error')).toBe(true);
    expect(capture('debug').log.enabled('debug')).toBe(true);
  });
});

describe('redact without copies', () => {
  it('returns what needs no change as it is, and never modifies its input', () => {
    const clean = { a: 1, b: ['x', { c: 'y' }], d: undefined };
    expect(redact(clean)).toBe(clean);
    const dirty = { a: 1, nested: { password: 'p', keep: 'k' }, list: ['Bearer abc.def'] };
    const copy = structuredClone(dirty);
    const out = redact(dirty) as typeof dirty;
    expect(dirty).toEqual(copy);
    expect(out).toEqual({
      a: 1,
      nested: { password: '[redacted]', keep: 'k' },
      list: ['Bearer [redacted]'],
    });
  });

  it('copies objects that are not plain, so their toJSON never prints a secret', () => {
    const url = new URL('http://user:pa55@proxy:3128/');
    expect(JSON.stringify(redact({ url }))).not.toContain('pa55');
    expect(redact({ when: new Date(0) })).toEqual({ when: '1970-01-01T00:00:00.000Z' });
  });

  it('keeps the stack and the cause of an error, redacted', () => {
    const cause = Object.assign(new Error('connect refused to http://u:pa55@db/'), {
      code: 'ECONNREFUSED',
    });
    const err = new Error('sign-in failed with Bearer q.w.e', { cause });
    const out = redact({ error: err }) as {
      error: { stack: string; cause: { code: string; stack: string; message: string } };
    };
    expect(out.error.stack).toContain('logger.spec.ts');
    expect(out.error.stack).not.toContain('q.w.e');
    expect(out.error.cause.code).toBe('ECONNREFUSED');
    expect(out.error.cause.message).toBe('connect refused to http://[redacted]@db/');
    expect(out.error.cause.stack).not.toContain('pa55');
  });
});

describe('default sink', () => {
  it('writes the lines of one event-loop turn to stdout in one write, in order', async () => {
    const writes: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      writes.push(String(chunk));
      return true;
    });
    try {
      const log = createLogger({ name: 'batch', level: 'info' });
      log.info('one');
      log.child({ requestId: 'r' }).warn('two');
      expect(writes).toHaveLength(0);
      await new Promise((resolve) => setImmediate(resolve));
      expect(writes).toHaveLength(1);
      expect(
        writes[0]!
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l).msg),
      ).toEqual(['one', 'two']);
    } finally {
      spy.mockRestore();
    }
  });
});

describe('log formats', () => {
  const at = new Date('2026-03-04T05:06:07.000Z');
  function lines(format: 'json' | 'text') {
    const out: string[] = [];
    const log = createLogger({ name: 'relay', format, write: (l) => out.push(l) });
    log.info('tunnel certificate issued', {
      notAfter: at,
      nested: { when: [at] },
      hosts: ['a.example.com'],
      note: 'two words',
      token: 'ap1.abcd1234.c2VjcmV0.QUJD',
      headers: { authorization: 'Bearer zzz.yyy' },
    });
    return out;
  }

  it('json: dates are ISO strings wherever they are', () => {
    const entry = JSON.parse(lines('json')[0]!) as Record<string, unknown>;
    expect(entry.notAfter).toBe('2026-03-04T05:06:07.000Z');
    expect(entry.nested).toEqual({ when: ['2026-03-04T05:06:07.000Z'] });
    expect(lines('json')[0]).not.toContain('{}');
  });

  it('text: time LEVEL message key=value, one line, redacted the same', () => {
    const [line] = lines('text');
    expect(line!.endsWith('\n')).toBe(true);
    expect(line!.slice(0, -1)).not.toContain('\n');
    expect(line).toMatch(
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO {2}tunnel certificate issued name=relay notAfter=2026-03-04T05:06:07\.000Z /,
    );
    expect(line).toContain('hosts=["a.example.com"]');
    expect(line).toContain('note="two words"');
    expect(line).toContain('token=[redacted]');
    expect(line).not.toContain('c2VjcmV0');
    expect(line).not.toContain('zzz.yyy');
  });

  it('defaults to json when the lines do not go to a terminal', () => {
    const out: string[] = [];
    createLogger({ name: 't', write: (l) => out.push(l) }).info('x');
    expect(JSON.parse(out[0]!)).toMatchObject({ msg: 'x' });
  });
});

describe('log settings', () => {
  it('refuses an unknown APPPROXY_LOG_LEVEL instead of ignoring it', () => {
    vi.stubEnv('APPPROXY_LOG_LEVEL', 'verbose');
    try {
      expect(() => createLogger({ name: 't', write: () => {} })).toThrow(LogSettingError);
      expect(() => createLogger({ name: 't', write: () => {} })).toThrow(
        /APPPROXY_LOG_LEVEL: unknown log level "verbose" \(expected debug, info, warn, error\)/,
      );
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it('takes a known level from the environment, any case', () => {
    expect(parseLogLevel('DEBUG')).toBe('debug');
    expect(parseLogLevel(undefined)).toBeUndefined();
    expect(parseLogFormat('text')).toBe('text');
    expect(() => parseLogFormat('yaml')).toThrow(/--log-format: unknown log format "yaml"/);
  });
});

it('APPPROXY_LOG_FORMAT chooses the format; an unknown one is refused', () => {
  const out: string[] = [];
  vi.stubEnv('APPPROXY_LOG_FORMAT', 'text');
  try {
    createLogger({ name: 't', write: (l) => out.push(l) }).warn('careful', { n: 1 });
    expect(out[0]).toMatch(/^\S+ WARN {2}careful name=t n=1\n$/);
    vi.stubEnv('APPPROXY_LOG_FORMAT', 'xml');
    expect(() => createLogger({ name: 't', write: () => {} })).toThrow(/APPPROXY_LOG_FORMAT/);
  } finally {
    vi.unstubAllEnvs();
  }
});
