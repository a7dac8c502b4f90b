import { describe, expect, it } from 'vitest';
import { analyseRun, tailReport } from '../tail-report.mjs';

const MS = 1e6;

/**
 * A synthetic AppProxy run of 200 requests, 1 ms apart: every request spends 0.1 ms in each
 * stage, except the two slowest, which wait `stallMs` before the relay reads them, during a
 * relay GC pause.
 */
function run({ stallMs = 20, slowIds = ['7', '8'] } = {}) {
  const generator = [];
  const relay = {};
  const connector = {};
  const origin = {};
  for (let i = 0; i < 200; i++) {
    const id = String(i);
    const sched = i * MS;
    let t = sched + 0.1 * MS;
    const sent = t;
    t += (slowIds.includes(id) ? stallMs : 0.1) * MS;
    relay[id] = { recv: t };
    relay[id].open = t += 0.1 * MS;
    connector[id] = { recv: (t += 0.1 * MS) };
    connector[id].fetch = t += 0.1 * MS;
    origin[id] = { recv: (t += 0.1 * MS) };
    origin[id].done = t += 0.1 * MS;
    connector[id].hdrs = t += 0.1 * MS;
    relay[id].resp = t += 0.1 * MS;
    const hdrs = (t += 0.1 * MS);
    generator.push([id, sched, sent, hdrs, hdrs + 0.01 * MS]);
  }
  // perf_hooks kinds: 1 a scavenge, 4 a mark-compact.
  const gc = (at, ms, kind = 1) => [{ at, ms, kind, newUsed: 9 }];
  return {
    path: 'appproxy',
    run: 1,
    loadavg: '0.50 0.40 0.30 1/100 1',
    summary: { failed: {} },
    generator: { eld: { p50: 0, p99: 1, max: 2 }, reqs: generator },
    probed: {
      relay: {
        eld: { p50: 0, p99: 1, max: 2 },
        gc: gc(7.5 * MS, 15),
        newSpaceMiB: 128,
        reqs: relay,
      },
      connector: { eld: { p50: 0, p99: 1, max: 2 }, gc: gc(150 * MS, 5, 4), reqs: connector },
      origin: { eld: { p50: 0, p99: 1, max: 2 }, gc: [], reqs: origin },
    },
  };
}

describe('tail report', () => {
  it('finds the stage the slowest 1 % waited in, and the GC pauses they overlapped', () => {
    const r = analyseRun(run());
    expect(r.count).toBe(200);
    expect(r.slowCount).toBe(2);
    expect(r.dominant).toEqual({ '→ relay (TLS, parse, wait)': 2 });
    const wait = r.breakdown.find((b) => b.stage === '→ relay (TLS, parse, wait)');
    expect(wait.middle).toBeCloseTo(0.1, 5);
    expect(wait.slow).toBeCloseTo(20, 5);
    expect(r.gc.relay).toMatchObject({ count: 1, major: 0, maxMs: 15, overSlow: 2 });
    expect(r.gc.relay).toMatchObject({ newSpaceMiB: 128, survivorsMiB: 9 });
    expect(r.gc.connector).toMatchObject({ count: 1, major: 1, majorMaxMs: 5, overSlow: 0 });
    expect(r.p50).toBeCloseTo(1.01, 5);
    expect(r.max).toBeCloseTo(20.91, 5);
  });

  it('reports the added latency against direct as medians of the runs', () => {
    const direct = (id, p) => ({
      ...run({ stallMs: 0.1 }),
      path: 'direct',
      run: id,
      probed: { origin: { ...run().probed.origin, eld: { p50: 0, p99: 0, max: 0 } } },
      generator: {
        eld: { p50: 0, p99: 0, max: 0 },
        reqs: Array.from({ length: 100 }, (_, i) => [String(i), 0, 0, p * MS, p * MS]),
      },
    });
    const { json, text } = tailReport({
      rate: 1000,
      seconds: 1,
      connections: 50,
      pin: {},
      runs: [direct(1, 1), run(), direct(2, 2), run(), direct(3, 3), run()],
    });
    expect(json.summary.direct.p50).toBe(2);
    expect(json.summary.direct.p50Range).toEqual([1, 3]);
    expect(json.summary.appproxy.p99).toBeCloseTo(20.91, 5);
    expect(text).toContain('appproxy adds: p50 +-0.99 ms');
  });
});
