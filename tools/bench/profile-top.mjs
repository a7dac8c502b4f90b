#!/usr/bin/env node
// Top functions by self time in a V8 .cpuprofile (what `npm run bench -- --profile` writes):
//   node tools/bench/profile-top.mjs bench/profiles/relay.cpuprofile [count]
// For flame graphs, open the same file in Chrome DevTools (Performance → Load profile) or speedscope.
import { readFileSync } from 'node:fs';
const p = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const self = new Map();
const dt = p.timeDeltas;
let total = 0;
p.samples.forEach((id, i) => {
  const d = dt[i] ?? 0;
  total += d;
  self.set(id, (self.get(id) ?? 0) + d);
});
const agg = new Map();
for (const [id, t] of self) {
  const n = byId.get(id);
  const cf = n.callFrame;
  const key = `${cf.functionName || '(anon)'} ${cf.url.split('/').slice(-2).join('/')}:${cf.lineNumber}`;
  agg.set(key, (agg.get(key) ?? 0) + t);
}
const top = [...agg].sort((a, b) => b[1] - a[1]).slice(0, Number(process.argv[3] ?? 20));
for (const [k, t] of top) console.log(((t / total) * 100).toFixed(1).padStart(5) + '%  ' + k);
