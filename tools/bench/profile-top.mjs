#!/usr/bin/env node
// Where a V8 .cpuprofile (what `npm run bench -- --profile` writes) spent its busy time:
//   node tools/bench/profile-top.mjs bench/profiles/relay.cpuprofile [count]
// Prints the busy share of the run, then self time by area (GC, native writes, http2, TLS,
// HTTP/1, streams, undici, our code, …) and the top functions, as shares of *busy* time
// (idle excluded). For flame graphs, open the same file in Chrome DevTools (Performance →
// Load profile) or speedscope. `--phases load` in the bench gives a profile of the load alone.
import { readFileSync } from 'node:fs';

const p = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const count = Number(process.argv[3] ?? 25);
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const self = new Map();
let total = 0;
p.samples.forEach((id, i) => {
  const d = p.timeDeltas[i] ?? 0;
  total += d;
  self.set(id, (self.get(id) ?? 0) + d);
});

/** The area a function belongs to, from its script URL and name. */
function area(cf) {
  const url = cf.url;
  const name = cf.functionName;
  if (name === '(idle)') return '(idle)';
  if (name === '(garbage collector)') return 'GC';
  if (name === '(program)') return '(program: native, unattributed)';
  if (!url) return `native: ${name || '(anon)'}`;
  if (url.includes('/undici/')) return 'undici';
  if (/node_modules\/(?!undici)/.test(url)) return 'other dependencies';
  if (url.includes('dist/') || url.includes('/src/')) return 'AppProxy code';
  if (/internal\/http2|node:http2/.test(url)) return 'node http2';
  if (/tls|_tls_|crypto/.test(url)) return 'node TLS';
  if (/_http_|node:http$|internal\/http/.test(url)) return 'node HTTP/1';
  if (/streams|stream_base|node:stream/.test(url)) return 'node streams';
  if (/node:net|internal\/net/.test(url)) return 'node net';
  if (/events|task_queues|timers|async_hooks|process/.test(url))
    return 'node events, ticks, timers';
  return 'node other';
}

const busy =
  total -
  [...self].reduce(
    (s, [id, t]) => (byId.get(id).callFrame.functionName === '(idle)' ? s + t : s),
    0,
  );
const pct = (t) => `${((t / busy) * 100).toFixed(1).padStart(5)}%`;
console.log(
  `${process.argv[2]}: ${(total / 1e6).toFixed(1)} s profiled, ${((busy / total) * 100).toFixed(0)} % busy; shares below are of busy time`,
);

const areas = new Map();
const fns = new Map();
for (const [id, t] of self) {
  const cf = byId.get(id).callFrame;
  if (cf.functionName === '(idle)') continue;
  const a = area(cf);
  areas.set(a, (areas.get(a) ?? 0) + t);
  const key = `${cf.functionName || '(anon)'} ${cf.url.split('/').slice(-2).join('/')}:${cf.lineNumber}`;
  fns.set(key, (fns.get(key) ?? 0) + t);
}
console.log('\nby area (self time):');
for (const [k, t] of [...areas].sort((a, b) => b[1] - a[1])) console.log(`${pct(t)}  ${k}`);
console.log('\ntop functions (self time):');
for (const [k, t] of [...fns].sort((a, b) => b[1] - a[1]).slice(0, count))
  console.log(`${pct(t)}  ${k}`);
