import { readdirSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { getHeapSpaceStatistics } from 'node:v8';

/** `Content-Type` of {@link MetricsRegistry.render}: Prometheus text exposition 0.0.4. */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Latency buckets in seconds: 1 ms to 2 min, for request durations through a proxy. */
export const DURATION_BUCKETS: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120,
];

type Kind = 'counter' | 'gauge' | 'histogram';

interface Family {
  readonly name: string;
  readonly help: string;
  readonly kind: Kind;
  render(out: string[]): void;
}

const escapeLabel = (v: string) =>
  v.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n');
const escapeHelp = (v: string) => v.replaceAll('\\', '\\\\').replaceAll('\n', '\\n');
const formatNumber = (v: number) =>
  Number.isNaN(v) ? 'NaN' : v === Infinity ? '+Inf' : v === -Infinity ? '-Inf' : String(v);

function labelText(names: readonly string[], values: readonly string[], extra = ''): string {
  if (names.length === 0 && extra === '') return '';
  const parts = names.map((n, i) => `${n}="${escapeLabel(values[i]!)}"`);
  if (extra) parts.push(extra);
  return `{${parts.join(',')}}`;
}

/** Children by label values; the key joins them with a byte that never occurs in names. */
abstract class Labelled<C> implements Family {
  readonly #children = new Map<string, { values: string[]; child: C }>();
  abstract readonly kind: Kind;
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
  ) {
    if (!NAME.test(name)) throw new TypeError(`invalid metric name: ${name}`);
    for (const l of labelNames) {
      if (!LABEL.test(l) || l.startsWith('__') || l === 'le')
        throw new TypeError(`invalid label name for ${name}: ${l}`);
    }
  }

  /** The series with these label values (in `labelNames` order); created on first use. */
  labels(...values: string[]): C {
    if (values.length !== this.labelNames.length)
      throw new TypeError(`${this.name} takes ${this.labelNames.length} label values`);
    const key = values.join('\u0001');
    let entry = this.#children.get(key);
    if (!entry) {
      entry = { values: values.map(String), child: this.create() };
      this.#children.set(key, entry);
    }
    return entry.child;
  }

  /** Drops every series (for gauges recomputed at each scrape). */
  reset(): void {
    this.#children.clear();
  }

  protected abstract create(): C;
  protected abstract renderChild(out: string[], labels: string[], child: C): void;

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.kind}`);
    for (const { values, child } of this.#children.values()) this.renderChild(out, values, child);
  }
}

/** A value that only goes up (requests, bytes). */
export interface CounterChild {
  inc(by?: number): void;
  readonly value: number;
}

export class Counter extends Labelled<CounterChild> {
  readonly kind = 'counter';
  protected create(): CounterChild {
    let value = 0;
    return {
      inc(by = 1) {
        if (by < 0) throw new RangeError('a counter only goes up');
        value += by;
      },
      get value() {
        return value;
      },
    };
  }
  protected renderChild(out: string[], values: string[], child: CounterChild): void {
    out.push(`${this.name}${labelText(this.labelNames, values)} ${formatNumber(child.value)}`);
  }
}

/** A value that goes up and down (in flight, connected). */
export interface GaugeChild {
  set(value: number): void;
  inc(by?: number): void;
  dec(by?: number): void;
  readonly value: number;
}

export class Gauge extends Labelled<GaugeChild> {
  readonly kind = 'gauge';
  protected create(): GaugeChild {
    let value = 0;
    return {
      set(v) {
        value = v;
      },
      inc(by = 1) {
        value += by;
      },
      dec(by = 1) {
        value -= by;
      },
      get value() {
        return value;
      },
    };
  }
  protected renderChild(out: string[], values: string[], child: GaugeChild): void {
    out.push(`${this.name}${labelText(this.labelNames, values)} ${formatNumber(child.value)}`);
  }
}

/** A distribution (durations): cumulative buckets, sum and count. */
export interface HistogramChild {
  observe(value: number): void;
}

export class Histogram extends Labelled<HistogramChild & { counts: number[]; sum: number }> {
  readonly kind = 'histogram';
  readonly buckets: readonly number[];
  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    buckets: readonly number[],
  ) {
    super(name, help, labelNames);
    if (buckets.length === 0 || buckets.some((b, i) => i > 0 && b <= buckets[i - 1]!))
      throw new TypeError(`${name}: buckets must be increasing`);
    this.buckets = buckets;
  }
  protected create() {
    const buckets = this.buckets;
    const child = {
      // One count per bucket (not cumulative) plus the +Inf overflow.
      counts: new Array<number>(buckets.length + 1).fill(0),
      sum: 0,
      observe(v: number) {
        let i = 0;
        while (i < buckets.length && v > buckets[i]!) i++;
        child.counts[i]!++;
        child.sum += v;
      },
    };
    return child;
  }
  protected renderChild(
    out: string[],
    values: string[],
    child: { counts: number[]; sum: number },
  ): void {
    let cumulative = 0;
    this.buckets.forEach((b, i) => {
      cumulative += child.counts[i]!;
      out.push(
        `${this.name}_bucket${labelText(this.labelNames, values, `le="${formatNumber(b)}"`)} ${cumulative}`,
      );
    });
    cumulative += child.counts[this.buckets.length]!;
    out.push(
      `${this.name}_bucket${labelText(this.labelNames, values, 'le="+Inf"')} ${cumulative}`,
      `${this.name}_sum${labelText(this.labelNames, values)} ${formatNumber(child.sum)}`,
      `${this.name}_count${labelText(this.labelNames, values)} ${cumulative}`,
    );
  }
}

/**
 * A small Prometheus registry: counters, gauges and histograms with labels, rendered in the
 * text exposition format. Series are plain numbers updated in place (no allocation on the
 * hot path once a label set exists); `onCollect` hooks refresh gauges at scrape time.
 *
 * @example
 * const metrics = new MetricsRegistry();
 * const requests = metrics.counter('appproxy_requests_total', 'Requests.', ['app', 'status']);
 * requests.labels('Expenses', '200').inc();
 * res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE }).end(metrics.render());
 */
export class MetricsRegistry {
  readonly #families = new Map<string, Family>();
  readonly #collectors: Array<() => void> = [];

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.#add(new Counter(name, help, labelNames));
  }

  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.#add(new Gauge(name, help, labelNames));
  }

  histogram(
    name: string,
    help: string,
    labelNames: readonly string[] = [],
    buckets: readonly number[] = DURATION_BUCKETS,
  ): Histogram {
    return this.#add(new Histogram(name, help, labelNames, buckets));
  }

  /** Runs before every render: set gauges whose value is read, not tracked. */
  onCollect(collect: () => void): void {
    this.#collectors.push(collect);
  }

  /** Every family in the text exposition format, ending with a newline. */
  render(): string {
    for (const collect of this.#collectors) collect();
    const out: string[] = [];
    for (const family of this.#families.values()) family.render(out);
    return `${out.join('\n')}\n`;
  }

  #add<F extends Family>(family: F): F {
    if (this.#families.has(family.name))
      throw new TypeError(`metric ${family.name} is already registered`);
    this.#families.set(family.name, family);
    return family;
  }
}

/**
 * The process's own series, with the names Prometheus client libraries use:
 * `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_open_fds`,
 * `process_start_time_seconds`, `nodejs_heap_used_bytes`, `nodejs_heap_size_total_bytes`,
 * `nodejs_heap_space_size_total_bytes{space}`, `nodejs_external_memory_bytes`,
 * `nodejs_array_buffers_bytes`, `nodejs_eventloop_delay_p99_seconds` and
 * `nodejs_eventloop_delay_max_seconds` (over the last scrape interval).
 */
export function registerProcessMetrics(metrics: MetricsRegistry): void {
  const cpu = metrics.counter('process_cpu_seconds_total', 'User and system CPU time spent.');
  const rss = metrics.gauge('process_resident_memory_bytes', 'Resident memory size in bytes.');
  const fds = metrics.gauge('process_open_fds', 'Open file descriptors.');
  const start = metrics.gauge('process_start_time_seconds', 'Start time since the Unix epoch.');
  const heap = metrics.gauge('nodejs_heap_used_bytes', 'V8 heap in use, in bytes.');
  // What RSS holds beyond the heap in use: V8's committed spaces (the young generation grows
  // under load and is not in heapUsed), and memory outside the heap held by JS objects.
  const heapTotal = metrics.gauge(
    'nodejs_heap_size_total_bytes',
    'V8 heap committed (all spaces), in bytes.',
  );
  const heapSpace = metrics.gauge(
    'nodejs_heap_space_size_total_bytes',
    'V8 heap committed, by space (new, old, code, large_object, …), in bytes.',
    ['space'],
  );
  const external = metrics.gauge(
    'nodejs_external_memory_bytes',
    'Memory outside the V8 heap held by JS objects (Buffers included), in bytes.',
  );
  const arrayBuffers = metrics.gauge(
    'nodejs_array_buffers_bytes',
    'ArrayBuffers and Buffers (part of the external memory), in bytes.',
  );
  const lag = metrics.gauge(
    'nodejs_eventloop_delay_p99_seconds',
    'Event loop delay, 99th percentile since the previous scrape.',
  );
  // A single long stall (thousands of sockets closed at once) hides below the p99.
  const lagMax = metrics.gauge(
    'nodejs_eventloop_delay_max_seconds',
    'Longest event loop delay since the previous scrape.',
  );
  // Floored: a start time rounded up would lie in the future for a process just started.
  start.labels().set(Math.floor(Date.now() / 1000 - process.uptime()));
  const loop = monitorEventLoopDelay({ resolution: 20 });
  loop.enable();
  let lastCpu = 0;
  metrics.onCollect(() => {
    const usage = process.cpuUsage();
    const seconds = (usage.user + usage.system) / 1e6;
    cpu.labels().inc(Math.max(0, seconds - lastCpu));
    lastCpu = seconds;
    const mem = process.memoryUsage();
    rss.labels().set(mem.rss);
    heap.labels().set(mem.heapUsed);
    heapTotal.labels().set(mem.heapTotal);
    external.labels().set(mem.external);
    arrayBuffers.labels().set(mem.arrayBuffers);
    for (const space of getHeapSpaceStatistics())
      heapSpace.labels(space.space_name.replace(/_space$/, '')).set(space.space_size);
    try {
      fds.labels().set(readdirSync('/proc/self/fd').length);
    } catch {
      // Not Linux: leave the series out rather than report a wrong number.
    }
    lag.labels().set(loop.percentile(99) / 1e9);
    lagMax.labels().set(loop.max / 1e9);
    loop.reset();
  });
}

/** How {@link mergeMetrics} combines one family's samples from several processes. */
export type MetricsCombine = 'sum' | 'max' | 'min';

/** Process series that a sum would make meaningless: the oldest start, the worst delay. */
const PROCESS_COMBINE: Readonly<Record<string, MetricsCombine>> = {
  process_start_time_seconds: 'min',
  nodejs_eventloop_delay_p99_seconds: 'max',
  nodejs_eventloop_delay_max_seconds: 'max',
};

interface MergedFamily {
  help?: string;
  type?: string;
  samples: Map<string, number>;
}

/**
 * Merges the text expositions of several processes that run the same registry (workers of
 * one server) into one: counters and gauges are summed per label set, histograms bucket by
 * bucket (cumulative counts, `_sum` and `_count` add up the same way). The process series
 * keep their meaning (`process_start_time_seconds` the oldest, event-loop delays the worst);
 * `combine` names other families that take `max` or `min`. Families and series keep the
 * order of their first appearance.
 *
 * @example
 * mergeMetrics(['# TYPE x counter\nx{a="1"} 2\n', '# TYPE x counter\nx{a="1"} 3\n']);
 * // '# TYPE x counter\nx{a="1"} 5\n'
 */
export function mergeMetrics(
  texts: readonly string[],
  combine: Readonly<Record<string, MetricsCombine>> = {},
): string {
  const families = new Map<string, MergedFamily>();
  const rules = { ...PROCESS_COMBINE, ...combine };
  const family = (name: string) => {
    let f = families.get(name);
    if (!f) families.set(name, (f = { samples: new Map() }));
    return f;
  };
  for (const text of texts) {
    let current: { name: string; family: MergedFamily } | undefined;
    for (const line of text.split('\n')) {
      if (line === '') continue;
      const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (meta) {
        const [, what, name, rest] = meta as unknown as [string, string, string, string];
        current = { name, family: family(name) };
        if (what === 'HELP') current.family.help ??= rest;
        else current.family.type ??= rest;
        continue;
      }
      if (line.startsWith('#')) continue;
      // `name{labels} value`: label values may hold spaces, the value never does.
      const space = line.lastIndexOf(' ');
      if (space <= 0) continue;
      const series = line.slice(0, space);
      const value = Number(line.slice(space + 1).replace(/^\+Inf$/, 'Infinity'));
      const sampleName = /^[^{ ]+/.exec(series)![0];
      const owner =
        current && (sampleName === current.name || sampleName.startsWith(`${current.name}_`))
          ? current
          : { name: sampleName, family: family(sampleName) };
      const rule = rules[owner.name] ?? 'sum';
      const before = owner.family.samples.get(series);
      owner.family.samples.set(
        series,
        before === undefined
          ? value
          : rule === 'max'
            ? Math.max(before, value)
            : rule === 'min'
              ? Math.min(before, value)
              : before + value,
      );
    }
  }
  const out: string[] = [];
  for (const [name, f] of families) {
    if (f.help !== undefined) out.push(`# HELP ${name} ${f.help}`);
    if (f.type !== undefined) out.push(`# TYPE ${name} ${f.type}`);
    for (const [series, value] of f.samples) out.push(`${series} ${formatNumber(value)}`);
  }
  return out.length ? `${out.join('\n')}\n` : '';
}
