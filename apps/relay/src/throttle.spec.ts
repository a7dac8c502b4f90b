import { parseConfig, type RelayConfig } from '@appproxy/config';
import { describe, expect, it } from 'vitest';
import { Throttle, TokenBucket } from './throttle.js';

/** A clock the test moves by hand. */
function fakeClock(start = 1_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

type Limits = { requestsPerSecond?: number; burst?: number; perUserRequestsPerSecond?: number };

function config(relay: Limits, apps: Record<string, Limits | undefined>): RelayConfig {
  return {
    relay: { limits: relay },
    apps: Object.entries(apps).map(([name, limits]) => ({ name, ...(limits && { limits }) })),
  } as unknown as RelayConfig;
}

const app = (name: string) => ({ name }) as RelayConfig['apps'][number];

describe('TokenBucket', () => {
  it('takes burst tokens at once, then refills at the rate', () => {
    const b = new TokenBucket(2, 3, 0);
    expect([b.take(0), b.take(0), b.take(0), b.take(0)]).toStrictEqual([true, true, true, false]);
    // One token every 500 ms.
    expect(b.waitSeconds(0)).toBe(1);
    expect(b.take(499)).toBe(false);
    expect(b.take(500)).toBe(true);
    expect(b.take(500)).toBe(false);
    // Never more than burst, however long idle.
    expect(b.full(3_600_000)).toBe(true);
    expect([1, 2, 3, 4].map(() => b.take(3_600_000))).toStrictEqual([true, true, true, false]);
  });

  it('Retry-After is whole seconds until the next token, at least 1', () => {
    const slow = new TokenBucket(0.1, 1, 0);
    expect(slow.take(0)).toBe(true);
    expect(slow.waitSeconds(0)).toBe(10);
    expect(slow.waitSeconds(5_500)).toBe(5);
    expect(slow.waitSeconds(9_999)).toBe(1);
    expect(slow.waitSeconds(10_000)).toBe(0);
  });
});

describe('Throttle', () => {
  it('no limits configured: everything passes', () => {
    const t = new Throttle(config({}, { A: undefined }));
    for (let i = 0; i < 10_000; i++) expect(t.admit(app('A'))).toBeUndefined();
    expect(t.perUser(app('A'))).toBe(false);
  });

  it('an app over its limit is refused; another app is not', () => {
    const clock = fakeClock();
    const t = new Throttle(
      config({}, { Slow: { requestsPerSecond: 1, burst: 2 }, Fast: undefined }),
      {
        clock: clock.now,
      },
    );
    expect(t.admit(app('Slow'))).toBeUndefined();
    expect(t.admit(app('Slow'))).toBeUndefined();
    expect(t.admit(app('Slow'))).toStrictEqual({ scope: 'app', retryAfterSeconds: 1 });
    expect(t.admit(app('Fast'))).toBeUndefined();
    clock.advance(1_000);
    expect(t.admit(app('Slow'))).toBeUndefined();
  });

  it('share N: each process gets 1/N of every rate and burst, at least one token', () => {
    const clock = fakeClock();
    const t = new Throttle(
      config(
        { requestsPerSecond: 40, burst: 40 },
        { A: { requestsPerSecond: 8, burst: 4 }, B: { perUserRequestsPerSecond: 2 } },
      ),
      { clock: clock.now, share: 4 },
    );
    // App A: burst 4 / 4 = 1, rate 8 / 4 = 2 per second.
    expect(t.admit(app('A'))).toBeUndefined();
    expect(t.admit(app('A'))).toStrictEqual({ scope: 'app', retryAfterSeconds: 1 });
    clock.advance(500);
    expect(t.admit(app('A'))).toBeUndefined();
    // Relay: burst 40 / 4 = 10, refilled to full in the half second; A took one since.
    for (let i = 0; i < 9; i++) expect(t.admit(app('B'))).toBeUndefined();
    expect(t.admit(app('B'))).toStrictEqual({ scope: 'relay', retryAfterSeconds: 1 });
    // Per user: 2 / 4 = 0.5 per second, burst one.
    expect(t.admitUser(app('B'), 'ann')).toBeUndefined();
    expect(t.admitUser(app('B'), 'ann')).toStrictEqual({ scope: 'user', retryAfterSeconds: 2 });
  });

  it('the relay-wide bucket counts every app; a refusal takes no token from either', () => {
    const clock = fakeClock();
    const t = new Throttle(
      config(
        { requestsPerSecond: 1, burst: 3 },
        { A: { requestsPerSecond: 1, burst: 1 }, B: undefined },
      ),
      { clock: clock.now },
    );
    expect(t.admit(app('A'))).toBeUndefined();
    // A's own bucket is empty: refused by the app, the relay's token stays.
    expect(t.admit(app('A'))).toMatchObject({ scope: 'app' });
    expect(t.admit(app('B'))).toBeUndefined();
    expect(t.admit(app('B'))).toBeUndefined();
    expect(t.admit(app('B'))).toStrictEqual({ scope: 'relay', retryAfterSeconds: 1 });
  });

  it('per user: each user has a bucket of their own', () => {
    const clock = fakeClock();
    const t = new Throttle(config({}, { A: { perUserRequestsPerSecond: 0.5 } }), {
      clock: clock.now,
    });
    expect(t.perUser(app('A'))).toBe(true);
    expect(t.admit(app('A'))).toBeUndefined();
    expect(t.admitUser(app('A'), 'alice')).toBeUndefined();
    expect(t.admitUser(app('A'), 'alice')).toStrictEqual({ scope: 'user', retryAfterSeconds: 2 });
    expect(t.admitUser(app('A'), 'bob')).toBeUndefined();
    clock.advance(2_000);
    expect(t.admitUser(app('A'), 'alice')).toBeUndefined();
  });

  it('per-user buckets are bounded: refilled ones and then the least recently used go', () => {
    const clock = fakeClock();
    const t = new Throttle(config({}, { A: { perUserRequestsPerSecond: 1 } }), {
      clock: clock.now,
      maxUsers: 100,
    });
    for (let i = 0; i < 100; i++) t.admitUser(app('A'), `u${i}`);
    expect(t.usersHeld('A')).toBe(100);
    // All still empty: the least recently used (u0) goes for the newcomer.
    expect(t.admitUser(app('A'), 'u100')).toBeUndefined();
    expect(t.usersHeld('A')).toBe(100);
    expect(t.admitUser(app('A'), 'u1')).toMatchObject({ scope: 'user' });
    // u0 was forgotten: a fresh bucket.
    expect(t.admitUser(app('A'), 'u0')).toBeUndefined();
    // Once idle (refilled), they are all dropped at the next newcomer.
    clock.advance(1_000);
    t.admitUser(app('A'), 'late');
    expect(t.usersHeld('A')).toBe(1);
    for (let i = 0; i < 100_000; i++) t.admitUser(app('A'), `flood${i}`);
    expect(t.usersHeld('A')).toBeLessThanOrEqual(100);
  });

  it('built from a parsed appproxy.yaml', () => {
    const parsed = parseConfig(
      `relay:
  listen: 443
  tunnelListen: 8443
  certificates: [{ cert: ./throttle.spec.ts, key: ./throttle.spec.ts }] # files that exist
  limits: { requestsPerSecond: 500, burst: 2 }
apps:
  - name: A
    internalUrl: http://a.corp/
    externalUrl: https://a.example.com/
    preAuthentication: passthrough
    limits: { requestsPerSecond: 100 }
`,
      { baseDir: import.meta.dirname, env: {} },
    );
    const clock = fakeClock();
    const t = new Throttle(parsed, { clock: clock.now });
    const a = parsed.apps[0]!;
    expect([t.admit(a), t.admit(a), t.admit(a)?.scope]).toStrictEqual([
      undefined,
      undefined,
      'relay',
    ]);
  });
});
