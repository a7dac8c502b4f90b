import { describe, expect, it } from 'vitest';
import { MetricsRegistry, mergeMetrics, registerProcessMetrics } from './index.js';

describe('MetricsRegistry', () => {
  it('renders counters and gauges with labels in the text exposition format', () => {
    const m = new MetricsRegistry();
    const requests = m.counter('appproxy_requests_total', 'Requests answered.', ['app', 'status']);
    const inFlight = m.gauge('appproxy_requests_in_flight', 'Requests in flight.', ['app']);
    requests.labels('Expenses', '200').inc();
    requests.labels('Expenses', '200').inc(2);
    requests.labels('Wiki "main"\\\n', '502').inc();
    inFlight.labels('Expenses').inc(3);
    inFlight.labels('Expenses').dec();
    expect(m.render()).toBe(
      [
        '# HELP appproxy_requests_total Requests answered.',
        '# TYPE appproxy_requests_total counter',
        'appproxy_requests_total{app="Expenses",status="200"} 3',
        'appproxy_requests_total{app="Wiki \\"main\\"\\\\\\n",status="502"} 1',
        '# HELP appproxy_requests_in_flight Requests in flight.',
        '# TYPE appproxy_requests_in_flight gauge',
        'appproxy_requests_in_flight{app="Expenses"} 2',
        '',
      ].join('\n'),
    );
  });

  it('renders histograms with cumulative buckets, +Inf, sum and count', () => {
    const m = new MetricsRegistry();
    const h = m.histogram('d_seconds', 'Durations.', ['app'], [0.1, 1]);
    for (const v of [0.05, 0.1, 0.5, 3]) h.labels('A').observe(v);
    expect(m.render().split('\n')).toEqual([
      '# HELP d_seconds Durations.',
      '# TYPE d_seconds histogram',
      'd_seconds_bucket{app="A",le="0.1"} 2',
      'd_seconds_bucket{app="A",le="1"} 3',
      'd_seconds_bucket{app="A",le="+Inf"} 4',
      'd_seconds_sum{app="A"} 3.65',
      'd_seconds_count{app="A"} 4',
      '',
    ]);
  });

  it('series without labels and collect hooks', () => {
    const m = new MetricsRegistry();
    const g = m.gauge('connected', 'Connected.');
    let n = 0;
    m.onCollect(() => g.labels().set(++n));
    expect(m.render()).toContain('\nconnected 1\n');
    expect(m.render()).toContain('\nconnected 2\n');
  });

  it('refuses bad names, duplicate families, wrong label counts and negative increments', () => {
    const m = new MetricsRegistry();
    expect(() => m.counter('bad-name', 'x')).toThrow(TypeError);
    expect(() => m.counter('ok', 'x', ['le'])).toThrow(TypeError);
    expect(() => m.counter('ok2', 'x', ['__x'])).toThrow(TypeError);
    const c = m.counter('c_total', 'x', ['a']);
    expect(() => m.gauge('c_total', 'x')).toThrow(TypeError);
    expect(() => c.labels()).toThrow(TypeError);
    expect(() => c.labels('a').inc(-1)).toThrow(RangeError);
    expect(() => m.histogram('h', 'x', [], [1, 1])).toThrow(TypeError);
  });

  it('process metrics report this process', () => {
    const m = new MetricsRegistry();
    registerProcessMetrics(m);
    const text = m.render();
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
    expect(value('process_resident_memory_bytes')).toBeGreaterThan(10 * 2 ** 20);
    expect(value('process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(value('process_open_fds')).toBeGreaterThan(2);
    expect(value('process_start_time_seconds')).toBeLessThanOrEqual(Date.now() / 1000);
    expect(value('nodejs_eventloop_delay_p99_seconds')).toBeGreaterThanOrEqual(0);
    const mem = process.memoryUsage();
    expect(value('nodejs_heap_size_total_bytes')).toBeGreaterThanOrEqual(
      value('nodejs_heap_used_bytes'),
    );
    expect(value('nodejs_external_memory_bytes')).toBeGreaterThanOrEqual(
      value('nodejs_array_buffers_bytes'),
    );
    expect(value('nodejs_array_buffers_bytes')).toBeGreaterThan(0);
    // The young generation, committed, is what heapUsed does not show.
    const newSpace = Number(
      /^nodejs_heap_space_size_total_bytes\{space="new"\} (\S+)$/m.exec(text)?.[1],
    );
    expect(newSpace).toBeGreaterThan(0);
    expect(newSpace).toBeLessThanOrEqual(mem.heapTotal);
  });

  it('the longest event loop stall since the last scrape shows, then resets', async () => {
    const m = new MetricsRegistry();
    registerProcessMetrics(m);
    const value = (name: string) =>
      Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(m.render())?.[1]);
    await new Promise((r) => setTimeout(r, 50));
    const stall = Date.now() + 300;
    while (Date.now() < stall);
    await new Promise((r) => setTimeout(r, 50));
    expect(value('nodejs_eventloop_delay_max_seconds')).toBeGreaterThan(0.25);
    await new Promise((r) => setTimeout(r, 50));
    expect(value('nodejs_eventloop_delay_max_seconds')).toBeLessThan(0.25);
  });
});

describe('mergeMetrics', () => {
  /** The same families in each process, as workers of one server have them. */
  const registry = () => {
    const m = new MetricsRegistry();
    return {
      m,
      requests: m.counter('appproxy_requests_total', 'Requests.', ['app', 'status']),
      open: m.gauge('appproxy_connections', 'Open connections.'),
      latency: m.histogram('appproxy_latency_seconds', 'Latency.', ['app'], [0.5, 1, 2]),
    };
  };

  it('equals one registry that saw everything: counters, gauges, histograms by bucket', () => {
    const [a, b, all] = [registry(), registry(), registry()];
    const events: Array<[typeof a, string, string, number]> = [
      [a, 'My App', '200', 0.25],
      [a, 'My App', '200', 1.5],
      [b, 'My App', '200', 4],
      [b, 'My App', '502', 0.5],
      [b, 'Wiki "x" y', '200', 1],
    ];
    for (const [r, app, status, seconds] of events) {
      for (const t of [r, all]) {
        t.requests.labels(app, status).inc();
        t.open.labels().inc();
        t.latency.labels(app).observe(seconds);
      }
    }
    expect(mergeMetrics([a.m.render(), b.m.render()])).toBe(all.m.render());
  });

  it('a series only one process has is kept; a process with nothing adds nothing', () => {
    const [a, b] = [registry(), registry()];
    a.requests.labels('A', '200').inc(3);
    b.requests.labels('B', '404').inc(2);
    const merged = mergeMetrics([a.m.render(), '', b.m.render()]);
    expect(merged).toContain('appproxy_requests_total{app="A",status="200"} 3\n');
    expect(merged).toContain('appproxy_requests_total{app="B",status="404"} 2\n');
    expect(merged.match(/# TYPE appproxy_requests_total counter/g)).toHaveLength(1);
    expect(mergeMetrics([])).toBe('');
  });

  it('process start time: the oldest; event-loop delays: the worst; others by `combine`', () => {
    const text = (start: number, lag: number, peak: number) =>
      `# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds ${start}\n` +
      `# TYPE nodejs_eventloop_delay_max_seconds gauge\nnodejs_eventloop_delay_max_seconds ${lag}\n` +
      `# TYPE peak gauge\npeak ${peak}\n`;
    expect(mergeMetrics([text(200, 0.5, 3), text(100, 0.25, 7)], { peak: 'max' })).toBe(
      text(100, 0.5, 7),
    );
  });
});
