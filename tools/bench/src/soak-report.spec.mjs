import { describe, expect, it } from 'vitest';
import {
  failureList,
  memoryPartFigures,
  memoryReport,
  parseDuration,
  report,
  rssFigures,
  sumBy,
  verdict,
  warmupSeconds,
} from '../soak-report.mjs';

describe('soak arithmetic', () => {
  it('parses durations', () => {
    expect(parseDuration('10m')).toBe(600);
    expect(parseDuration('90s')).toBe(90);
    expect(parseDuration('1h')).toBe(3600);
    expect(parseDuration('1m30s')).toBe(90);
    expect(parseDuration('45')).toBe(45);
    for (const bad of [undefined, '', 'm', '10x', '0s', '-5', '--quick']) {
      expect(parseDuration(bad)).toBeUndefined();
    }
  });

  it('warms up for 10 % of the run, at least 90 s, at most half of it', () => {
    expect(warmupSeconds(600)).toBe(90);
    expect(warmupSeconds(1800)).toBe(180);
    expect(warmupSeconds(240)).toBe(90);
    expect(warmupSeconds(120)).toBe(60);
    expect(warmupSeconds(30)).toBe(15);
  });

  it('measures growth from the first sample at or after warm-up to the last', () => {
    const samples = [
      { t: 0, kib: 50 * 1024 },
      { t: 30, kib: 110 * 1024 },
      { t: 60, kib: 100 * 1024 },
      { t: 90, kib: 104 * 1024 },
      { t: 120, kib: 105 * 1024 },
    ];
    const r = rssFigures(samples, 60);
    expect(r).toMatchObject({
      warmupEndMiB: 100,
      warmupEndAtS: 60,
      endMiB: 105,
      growthPct: 5,
      maxMiB: 110,
    });
    expect(r.slopeMiBPerMin).toBeCloseTo(5, 1);
    expect(rssFigures(samples.slice(0, 2), 60)).toBeUndefined();
  });

  it('lists failures by load and kind, most first', () => {
    expect(
      failureList({
        'GET oidc': { 'status 302': 2, 'error ECONNRESET': 0 },
        WebSocket: { 'echo mismatch': 5 },
      }),
    ).toEqual([
      { kind: 'WebSocket: echo mismatch', count: 5 },
      { kind: 'GET oidc: status 302', count: 2 },
    ]);
  });

  it('passes only with growth under 10 %, no failure and every load done', () => {
    const rss = { relay: { growthPct: 9.9 }, connector: { growthPct: -3 } };
    const counts = { 'GET passthrough': 10, upload: 1 };
    expect(verdict({ rss, failures: [], counts })).toEqual({ pass: true, reasons: [] });
    const grown = verdict({
      rss: { ...rss, relay: { growthPct: 10 } },
      failures: [{ kind: 'upload: SHA-256 mismatch', count: 1 }],
      counts: { ...counts, upload: 0 },
    });
    expect(grown.pass).toBe(false);
    expect(grown.reasons).toEqual([
      'relay RSS grew 10 % after warm-up (limit < 10 %)',
      '1 failed requests/exchanges',
      'no upload completed',
    ]);
    expect(verdict({ rss: { relay: undefined }, failures: [], counts }).pass).toBe(false);
  });

  it('prints the tables, the failures and the verdict line', () => {
    const rss = {
      relay: { warmupEndMiB: 100, endMiB: 105, growthPct: 5, maxMiB: 110, slopeMiBPerMin: 0.5 },
    };
    const counts = { 'GET oidc': 9, WebSocket: 3 };
    const failures = [{ kind: 'WebSocket: echo: closed early (1006)', count: 1 }];
    const text = report({
      durationS: 600,
      warmupS: 60,
      rss,
      counts,
      failures,
      latency: { 'GET oidc': { p50: 1.5, p99: 20 } },
      verdict: verdict({ rss, failures, counts }),
    });
    expect(text).toContain('| relay | 100.0 | 105.0 | +5.0 % | 110.0 | 0.50 |');
    expect(text).toContain('| GET oidc (p50 1.50 ms, p99 20.00 ms) | 9 | 0 |');
    expect(text).toContain('| WebSocket | 3 | 1 |');
    expect(text).toContain('- WebSocket: echo: closed early (1006): 1');
    expect(text.split('\n').pop()).toBe('FAIL: 1 failed requests/exchanges');
  });

  it('figures and tabulates each memory part, leaving out samples a scrape missed', () => {
    const MiB = 1024;
    const figures = memoryPartFigures(
      {
        connector: [
          { t: 0, rssAnon: 50 * MiB, newSpace: 16 * MiB, otherAnon: NaN },
          { t: 60, rssAnon: 100 * MiB, newSpace: 32 * MiB, external: 8 * MiB },
          { t: 90, rssAnon: 120 * MiB, newSpace: 64 * MiB },
          { t: 120, rssAnon: 110 * MiB, newSpace: 64 * MiB, external: 12 * MiB },
        ],
      },
      60,
    );
    expect(figures.connector.rssAnon).toMatchObject({
      warmupEndMiB: 100,
      endMiB: 110,
      maxMiB: 120,
    });
    expect(figures.connector.newSpace).toMatchObject({
      warmupEndMiB: 32,
      endMiB: 64,
      growthPct: 100,
    });
    expect(figures.connector.external).toMatchObject({ warmupEndMiB: 8, endMiB: 12 });
    expect(figures.connector.otherAnon).toBeUndefined();
    const text = memoryReport(figures);
    expect(text).toContain('| rssAnon | 100 → 110 (120) |');
    expect(text).toContain('| newSpace | 32 → 64 (64) |');
    expect(text).toContain('| otherAnon | — |');
  });

  it('sums a Prometheus series by a label', () => {
    const text = [
      '# HELP appproxy_requests_total Requests answered.',
      'appproxy_requests_total{app="Bench",status="200"} 10',
      'appproxy_requests_total{app="Oidc",status="200"} 5',
      'appproxy_requests_total{app="Oidc",status="302"} 2',
      'appproxy_requests_aborted_total{app="Oidc"} 1',
      'appproxy_connections_open 4',
    ].join('\n');
    expect(sumBy(text, 'appproxy_requests_total', 'status')).toEqual({ 200: 15, 302: 2 });
    expect(sumBy(text, 'appproxy_requests_aborted_total')).toEqual({ total: 1 });
    expect(sumBy(text, 'appproxy_connections_open')).toEqual({ total: 4 });
    expect(sumBy(text, 'nothing', 'x')).toEqual({});
  });
});
