// Loaded with `node --import …/tail-probe.mjs` into relay, connector and origin by `npm run
// bench -- --tail` (tail.mjs). It changes nothing in the process: it subscribes to Node's
// and undici's diagnostics channels and records, per request carrying `x-tail-id`, when each
// stage happened (process.hrtime, CLOCK_MONOTONIC: one clock for every process on the
// machine), and beside that the event-loop delay and every GC pause. On SIGUSR2 it writes
// what it has to $TAIL_PROBE_DIR/<role>.json (relay, connector or origin, from the script it
// runs) and starts over.
import { subscribe } from 'node:diagnostics_channel';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getHeapSpaceStatistics, writeHeapSnapshot } from 'node:v8';
import { monitorEventLoopDelay, performance, PerformanceObserver } from 'node:perf_hooks';

const script = process.argv[1] ?? '';
const role = /relay/.test(script) ? 'relay' : /connector/.test(script) ? 'connector' : 'origin';
const out = process.env.TAIL_PROBE_DIR && join(process.env.TAIL_PROBE_DIR, `${role}.json`);
const ID = 'x-tail-id';
const hr = () => Number(process.hrtime.bigint());
// performance.now() (ms) → hrtime (ns), for GC entries.
const hr0 = hr();
const p0 = performance.now();
const toHr = (ms) => hr0 + (ms - p0) * 1e6;

let reqs = new Map();
let gc = [];
// A coarse resolution: a 1 ms timer would itself wake the process 1,000 times a second.
const ELD_MS = Number(process.env.TAIL_PROBE_ELD_MS ?? 10);
const eld = monitorEventLoopDelay({ resolution: ELD_MS });
eld.enable();

// TAIL_PROBE_SNAPSHOT_AFTER=n (diagnosis): one heap snapshot after n tagged requests, under
// load, to see what outlives a scavenge (into $TAIL_PROBE_SNAPSHOT_DIR, `<role>.heapsnapshot`).
const snapshotAfter = Number(process.env.TAIL_PROBE_SNAPSHOT_AFTER ?? 0);
let seen = 0;
const mark = (id, stage) => {
  if (id === undefined) return;
  let r = reqs.get(id);
  if (!r) {
    reqs.set(id, (r = {}));
    if (++seen === snapshotAfter)
      writeHeapSnapshot(join(process.env.TAIL_PROBE_SNAPSHOT_DIR ?? '.', `${role}.heapsnapshot`));
  }
  r[stage] ??= hr();
};
/** `x-tail-id` from Node's header object, undici's flat array or its string form. */
function idOf(headers) {
  if (!headers) return undefined;
  if (Array.isArray(headers)) {
    for (let i = 0; i < headers.length - 1; i += 2)
      if (String(headers[i]).toLowerCase() === ID) return String(headers[i + 1]);
    return undefined;
  }
  if (typeof headers === 'string') return /x-tail-id: *([^\r\n]+)/i.exec(headers)?.[1];
  const v = headers[ID];
  return v === undefined ? undefined : String(v);
}

// Public side (relay) and the origin: HTTP/1.1 servers.
subscribe('http.server.request.start', ({ request, response }) => {
  const id = idOf(request.headers);
  mark(id, 'recv');
  response.once('finish', () => mark(id, 'done'));
});
// Relay → tunnel: the HTTP/2 client stream.
subscribe('http2.client.stream.created', ({ stream, headers }) => {
  const id = idOf(headers);
  mark(id, 'open');
  stream.once('response', () => mark(id, 'resp'));
});
// Connector: the tunnel stream arrives.
subscribe('http2.server.stream.start', ({ stream, headers }) => {
  const id = idOf(headers);
  mark(id, 'recv');
  stream.once('close', () => mark(id, 'done'));
});
// Connector → origin (undici).
const undiciIds = new WeakMap();
subscribe('undici:request:create', ({ request }) => {
  const id = idOf(request.headers);
  if (id === undefined) return;
  undiciIds.set(request, id);
  mark(id, 'fetch');
});
subscribe('undici:request:headers', ({ request }) => mark(undiciIds.get(request), 'hdrs'));

const spaceUsedMiB = (name) =>
  (getHeapSpaceStatistics().find((x) => x.space_name === name)?.space_used_size ?? 0) / 2 ** 20;
new PerformanceObserver((list) => {
  // Young generation in use soon after the pause (the survivors, plus what was allocated
  // since): what a scavenge had to copy.
  const newUsed = spaceUsedMiB('new_space');
  for (const e of list.getEntries())
    gc.push({ at: toHr(e.startTime), ms: e.duration, kind: e.detail?.kind ?? e.kind, newUsed });
}).observe({ entryTypes: ['gc'] });

process.on('SIGUSR2', () => {
  // The histogram holds whole timer intervals: the delay is what exceeds the resolution.
  const pct = (p) => Math.max(0, eld.percentile(p) / 1e6 - ELD_MS);
  const data = {
    pid: process.pid,
    eld: { p50: pct(50), p99: pct(99), max: Math.max(0, eld.max / 1e6 - ELD_MS) },
    gc,
    // V8's young generation when asked (it grows under load; see docs/performance.md).
    newSpaceMiB:
      (getHeapSpaceStatistics().find((x) => x.space_name === 'new_space')?.space_size ?? 0) /
      2 ** 20,
    reqs: Object.fromEntries(reqs),
  };
  if (out) writeFileSync(out, JSON.stringify(data));
  reqs = new Map();
  gc = [];
  eld.reset();
});
