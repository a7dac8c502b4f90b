// The report of `npm run bench -- --tail` (tail.mjs): per run, latency from the scheduled
// time, and for the slowest 1 % against the middle (45th–55th percentile) the median time in
// each stage of a request, the GC pauses and event-loop delay of each process.

import { constants } from 'node:perf_hooks';

const { NODE_PERFORMANCE_GC_MAJOR: GC_MAJOR, NODE_PERFORMANCE_GC_MINOR: GC_MINOR } = constants;

/** Stages of one request, in order: [name, from, to] over the joined timestamps. */
const STAGES = {
  appproxy: [
    ['generator late', 'g.sched', 'g.sent'],
    ['→ relay (TLS, parse, wait)', 'g.sent', 'relay.recv'],
    ['relay: request → stream', 'relay.recv', 'relay.open'],
    ['tunnel → connector', 'relay.open', 'connector.recv'],
    ['connector → undici', 'connector.recv', 'connector.fetch'],
    ['undici → origin', 'connector.fetch', 'origin.recv'],
    ['origin', 'origin.recv', 'origin.done'],
    ['origin → connector', 'origin.done', 'connector.hdrs'],
    ['connector → relay', 'connector.hdrs', 'relay.resp'],
    // (The response's 'finish' comes after the bytes left: relay.done is not a stage end.)
    ['relay → generator', 'relay.resp', 'g.hdrs'],
    ['body read', 'g.hdrs', 'g.done'],
  ],
  direct: [
    ['generator late', 'g.sched', 'g.sent'],
    ['→ origin', 'g.sent', 'origin.recv'],
    ['origin', 'origin.recv', 'origin.done'],
    ['→ generator', 'origin.done', 'g.hdrs'],
    ['body read', 'g.hdrs', 'g.done'],
  ],
};

/** `appproxy-b` (tail.mjs --tail-node-args) has AppProxy's stages. */
const stagesOf = (path) => STAGES[path.startsWith('appproxy') ? 'appproxy' : path];
const median = (xs) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};
const q = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
const f = (v, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : '—');

/** One run: joined requests, percentiles, slow-vs-middle stage medians, GC and loop delay. */
export function analyseRun(run) {
  const stages = stagesOf(run.path);
  const joined = [];
  for (const [id, sched, sent, hdrs, done] of run.generator.reqs) {
    const t = { 'g.sched': sched, 'g.sent': sent, 'g.hdrs': hdrs, 'g.done': done };
    for (const [role, data] of Object.entries(run.probed)) {
      const r = data.reqs[id];
      if (r) for (const [k, v] of Object.entries(r)) t[`${role}.${k}`] = v;
    }
    joined.push({ id, total: (done - sched) / 1e6, t });
  }
  joined.sort((a, b) => a.total - b.total);
  const totals = joined.map((r) => r.total);
  const slow = joined.slice(Math.floor(joined.length * 0.99));
  const middle = joined.slice(Math.floor(joined.length * 0.45), Math.ceil(joined.length * 0.55));
  const stageMs = (r, [, a, b]) =>
    r.t[a] !== undefined && r.t[b] !== undefined ? (r.t[b] - r.t[a]) / 1e6 : NaN;
  const breakdown = stages.map((s) => ({
    stage: s[0],
    middle: median(middle.map((r) => stageMs(r, s)).filter(Number.isFinite)),
    slow: median(slow.map((r) => stageMs(r, s)).filter(Number.isFinite)),
    slowMax: Math.max(...slow.map((r) => stageMs(r, s)).filter(Number.isFinite)),
  }));
  // For each slow request: the stage that took longest.
  const dominant = {};
  for (const r of slow) {
    let best;
    for (const s of stages) {
      const ms = stageMs(r, s);
      if (Number.isFinite(ms) && (!best || ms > best.ms)) best = { stage: s[0], ms };
    }
    if (best) dominant[best.stage] = (dominant[best.stage] ?? 0) + 1;
  }
  // GC pauses overlapping a slow request's lifetime, per process.
  const gc = {};
  for (const [role, data] of Object.entries(run.probed)) {
    const pauses = data.gc;
    let overlapped = 0;
    for (const r of slow) {
      const a = r.t['g.sched'];
      const b = r.t['g.done'];
      if (pauses.some((p) => p.at < b && p.at + p.ms * 1e6 > a)) overlapped++;
    }
    const ms = pauses.map((p) => p.ms).sort((x, y) => x - y);
    gc[role] = {
      count: pauses.length,
      // perf_hooks kinds: NODE_PERFORMANCE_GC_MINOR (scavenge), _MAJOR (mark-compact), …
      major: pauses.filter((p) => p.kind === GC_MAJOR).length,
      majorMaxMs: Math.max(0, ...pauses.filter((p) => p.kind === GC_MAJOR).map((p) => p.ms)),
      totalMs: ms.reduce((x, y) => x + y, 0),
      maxMs: ms.at(-1) ?? 0,
      overSlow: overlapped,
      newSpaceMiB: data.newSpaceMiB,
      // Young generation in use just after each scavenge (median, MiB): what it copied.
      survivorsMiB: median(pauses.filter((p) => p.kind === GC_MINOR).map((p) => p.newUsed)),
    };
  }
  // Are the slow requests one stall (bunched in time) or spread out?
  const windows = new Set(slow.map((r) => Math.floor(r.t['g.sched'] / 10e6)));
  return {
    path: run.path,
    run: run.run,
    loadavg: run.loadavg,
    count: joined.length,
    failed: run.summary.failed,
    p50: q(totals, 0.5),
    p99: q(totals, 0.99),
    max: totals.at(-1),
    breakdown,
    dominant,
    gc,
    slowWindows10ms: windows.size,
    slowCount: slow.length,
    eld: {
      generator: run.generator.eld,
      ...Object.fromEntries(Object.entries(run.probed).map(([k, v]) => [k, v.eld])),
    },
  };
}

/** Text report and JSON of every run (medians over runs per path, with the spread). */
export function tailReport(results) {
  const runs = results.runs.map(analyseRun);
  const lines = [
    `Latency tail at ${results.rate} req/s (${results.seconds} s per run, ${results.connections} connections${Object.keys(results.pin).length ? `, pinned ${JSON.stringify(results.pin)}` : ''}${results.autogroup ? `, ${results.autogroup}` : ''}); ms from the scheduled time`,
    '',
    '| path | run | load avg | p50 | p99 | max | slow 1 % in 10-ms windows | GC (count, total, max ms; mark-compacts, max ms; overlapping slow) | loop delay p99 / max ms |',
    '|---|---:|---|---:|---:|---:|---:|---|---|',
  ];
  for (const r of runs) {
    const gc = Object.entries(r.gc)
      .map(
        ([k, g]) =>
          `${k} ${g.count}, ${f(g.totalMs, 1)}, ${f(g.maxMs, 1)}; ${g.major}, ${f(g.majorMaxMs, 1)}; ${g.overSlow}${g.newSpaceMiB ? ` (new space ${f(g.newSpaceMiB, 0)} MiB, ${f(g.survivorsMiB, 1)} MiB after a scavenge)` : ''}`,
      )
      .join(' · ');
    const eld = Object.entries(r.eld)
      .map(([k, e]) => `${k} ${f(e.p99, 1)}/${f(e.max, 1)}`)
      .join(' · ');
    lines.push(
      `| ${r.path} | ${r.run} | ${r.loadavg.split(' ').slice(0, 3).join(' ')} | ${f(r.p50)} | ${f(r.p99)} | ${f(r.max)} | ${r.slowWindows10ms} of ${r.slowCount} | ${gc} | ${eld} |`,
    );
  }
  const byPath = {};
  for (const r of runs) (byPath[r.path] ??= []).push(r);
  const summary = {};
  for (const [path, rs] of Object.entries(byPath)) {
    const p50s = rs.map((r) => r.p50);
    const p99s = rs.map((r) => r.p99);
    summary[path] = {
      p50: median(p50s),
      p99: median(p99s),
      p50Range: [Math.min(...p50s), Math.max(...p50s)],
      p99Range: [Math.min(...p99s), Math.max(...p99s)],
    };
  }
  lines.push('');
  for (const [path, s] of Object.entries(summary))
    lines.push(
      `${path}: median p50 ${f(s.p50)} (${f(s.p50Range[0])}–${f(s.p50Range[1])}), p99 ${f(s.p99)} (${f(s.p99Range[0])}–${f(s.p99Range[1])})`,
    );
  for (const path of Object.keys(summary).filter((p) => p.startsWith('appproxy')))
    if (summary.direct)
      lines.push(
        `${path}${path === 'appproxy-b' ? ` (${results.nodeArgsB})` : ''} adds: p50 +${f(summary[path].p50 - summary.direct.p50)} ms, p99 +${f(summary[path].p99 - summary.direct.p99)} ms (medians of runs)`,
      );
  for (const path of Object.keys(byPath)) {
    lines.push('', `${path}: median ms per stage, middle (p45–p55) vs slowest 1 % (per run)`);
    lines.push(`| stage | ${byPath[path].map((r) => `run ${r.run} mid / slow`).join(' | ')} |`);
    lines.push(`|---|${byPath[path].map(() => '---:').join('|')}|`);
    for (const [i, [stage]] of stagesOf(path).entries())
      lines.push(
        `| ${stage} | ${byPath[path].map((r) => `${f(r.breakdown[i].middle)} / ${f(r.breakdown[i].slow)}`).join(' | ')} |`,
      );
    lines.push(
      `longest stage of each slow request: ${byPath[path].map((r) => JSON.stringify(r.dominant)).join(' · ')}`,
    );
  }
  return { text: lines.join('\n'), json: { summary, runs } };
}
