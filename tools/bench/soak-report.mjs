// The soak's arithmetic, kept apart from the processes so that it can be tested: durations,
// the warm-up, RSS growth, failures, the verdict and the table.

/** Relay and connector RSS may grow by less than this after warm-up (per cent). */
export const MAX_RSS_GROWTH_PCT = 10;

/** `10m`, `90s`, `1h`, `1m30s` or plain seconds → seconds; `undefined` if not a duration. */
export function parseDuration(text) {
  if (typeof text !== 'string') return undefined;
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text);
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(text);
  if (!m || text === '') return undefined;
  return Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0) || undefined;
}

/**
 * The warm-up: the first 10 % of the run, at least 90 s — in the soaks measured, the relay's
 * RSS was still rising at 60 s and settled by 90 s (18 transfers each way, ~200 WebSockets).
 * A run shorter than 3 minutes (a smoke test) gets half its length instead, so that something
 * is left to compare.
 */
export function warmupSeconds(durationS) {
  const w = Math.max(90, durationS / 10);
  return w > durationS / 2 ? durationS / 2 : w;
}

/**
 * RSS figures of one process from samples `{ t, kib }` (t in s from the start of the load):
 * at the end of warm-up (the first sample at or after it), at the end (the last sample), the
 * growth between them in per cent, the maximum, and the least-squares slope after warm-up
 * in MiB per minute (a trend, for reading; the verdict uses the growth).
 */
export function rssFigures(samples, warmupS) {
  const after = samples.filter((s) => s.t >= warmupS);
  if (after.length === 0 || samples.length === 0) return undefined;
  const start = after[0];
  const end = samples[samples.length - 1];
  const max = samples.reduce((m, s) => Math.max(m, s.kib), 0);
  let slope = null;
  if (after.length >= 2) {
    const n = after.length;
    const mt = after.reduce((a, s) => a + s.t, 0) / n;
    const mk = after.reduce((a, s) => a + s.kib, 0) / n;
    const num = after.reduce((a, s) => a + (s.t - mt) * (s.kib - mk), 0);
    const den = after.reduce((a, s) => a + (s.t - mt) ** 2, 0);
    slope = den ? ((num / den) * 60) / 1024 : 0;
  }
  return {
    warmupEndMiB: round(start.kib / 1024, 1),
    warmupEndAtS: round(start.t, 1),
    endMiB: round(end.kib / 1024, 1),
    endAtS: round(end.t, 1),
    growthPct: round(((end.kib - start.kib) / start.kib) * 100, 1),
    maxMiB: round(max / 1024, 1),
    slopeMiBPerMin: slope === null ? null : round(slope, 2),
  };
}

const round = (x, d) => Math.round(x * 10 ** d) / 10 ** d;

/**
 * Failures of every kind in one list, `{ kind, count }`, from `{ [stream]: { [kind]: n } }`,
 * e.g. `{ 'GET passthrough': { 'status 502': 3 } }` → `GET passthrough: status 502`.
 */
export function failureList(byStream) {
  const out = [];
  for (const [stream, kinds] of Object.entries(byStream))
    for (const [kind, count] of Object.entries(kinds ?? {}))
      if (count > 0) out.push({ kind: `${stream}: ${kind}`, count });
  return out.sort((a, b) => b.count - a.count);
}

/**
 * PASS when the RSS of each process grew by less than {@link MAX_RSS_GROWTH_PCT} after
 * warm-up, nothing failed, and every kind of load actually ran (a soak that did nothing does
 * not pass). Returns `{ pass, reasons }`.
 */
export function verdict({ rss, failures, counts }) {
  const reasons = [];
  for (const [name, r] of Object.entries(rss)) {
    if (!r) reasons.push(`${name}: no RSS samples after warm-up`);
    else if (!(r.growthPct < MAX_RSS_GROWTH_PCT))
      reasons.push(
        `${name} RSS grew ${r.growthPct} % after warm-up (limit < ${MAX_RSS_GROWTH_PCT} %)`,
      );
  }
  const failed = failures.reduce((a, f) => a + f.count, 0);
  if (failed > 0) reasons.push(`${failed} failed requests/exchanges`);
  for (const [kind, n] of Object.entries(counts))
    if (!(n > 0)) reasons.push(`no ${kind} completed`);
  return { pass: reasons.length === 0, reasons };
}

/** The result as Markdown tables and a PASS/FAIL line. */
export function report({ durationS, warmupS, rss, counts, failures, latency, verdict: v }) {
  const fmt = (x, d = 1) => (x === null || x === undefined ? '—' : Number(x).toFixed(d));
  const lines = [
    `| process | RSS at end of warm-up (${fmt(warmupS, 0)} s) MiB | RSS at end (${fmt(durationS, 0)} s) MiB | growth | max MiB | trend after warm-up MiB/min |`,
    '|---|---:|---:|---:|---:|---:|',
  ];
  for (const [name, r] of Object.entries(rss))
    lines.push(
      r
        ? `| ${name} | ${fmt(r.warmupEndMiB)} | ${fmt(r.endMiB)} | ${r.growthPct >= 0 ? '+' : ''}${fmt(r.growthPct)} % | ${fmt(r.maxMiB)} | ${fmt(r.slopeMiBPerMin, 2)} |`
        : `| ${name} | — | — | — | — | — |`,
    );
  lines.push('', '| load | completed | failed |', '|---|---:|---:|');
  for (const [kind, n] of Object.entries(counts)) {
    const failed = failures
      .filter((f) => f.kind.startsWith(`${kind}:`))
      .reduce((a, f) => a + f.count, 0);
    const lat = latency?.[kind];
    lines.push(
      `| ${kind}${lat ? ` (p50 ${fmt(lat.p50, 2)} ms, p99 ${fmt(lat.p99, 2)} ms)` : ''} | ${n} | ${failed} |`,
    );
  }
  lines.push('');
  if (failures.length) {
    lines.push('Failures by kind:', '');
    for (const f of failures) lines.push(`- ${f.kind}: ${f.count}`);
    lines.push('');
  }
  lines.push(
    v.pass
      ? `PASS: relay and connector RSS growth < ${MAX_RSS_GROWTH_PCT} % after warm-up, zero failed requests`
      : `FAIL: ${v.reasons.join('; ')}`,
  );
  return lines.join('\n');
}

/** Parts of memory sampled besides RSS (KiB), in the order the report shows them. */
export const MEMORY_PARTS = [
  'rssAnon',
  'rssFile',
  'heapTotal',
  'heapUsed',
  'newSpace',
  'external',
  'arrayBuffers',
  'otherAnon',
];

/**
 * {@link rssFigures} of each memory part of each process, from samples
 * `{ [process]: [{ t, rssAnon, heapUsed, … }] }` (KiB); a part never read is `undefined`.
 */
export function memoryPartFigures(samples, warmupS) {
  return Object.fromEntries(
    Object.entries(samples).map(([name, m]) => [
      name,
      Object.fromEntries(
        MEMORY_PARTS.map((part) => [
          part,
          rssFigures(
            m.filter((x) => Number.isFinite(x[part])).map((x) => ({ t: x.t, kib: x[part] })),
            warmupS,
          ),
        ]),
      ),
    ]),
  );
}

/** A table of each memory part: end of warm-up → end (max), MiB. */
export function memoryReport(figures) {
  const names = Object.keys(figures);
  const lines = [
    `| memory part, MiB: end of warm-up → end (max) | ${names.join(' | ')} |`,
    `|---|${names.map(() => '---:').join('|')}|`,
  ];
  for (const part of MEMORY_PARTS)
    lines.push(
      `| ${part} | ${names
        .map((n) => {
          const f = figures[n][part];
          return f ? `${f.warmupEndMiB} → ${f.endMiB} (${f.maxMiB})` : '—';
        })
        .join(' | ')} |`,
    );
  return lines.join('\n');
}

/**
 * Sums the samples of one Prometheus series by one of its labels (`undefined` label: the
 * total), from the text exposition format: `{ '200': 9, '302': 1 }`.
 */
export function sumBy(text, metric, label) {
  const out = {};
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== metric) continue;
    const labels = Object.fromEntries(
      [...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]),
    );
    const key = label ? (labels[label] ?? '') : 'total';
    out[key] = (out[key] ?? 0) + Number(m[3]);
  }
  return out;
}
