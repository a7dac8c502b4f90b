// Open-loop load at a fixed rate: requests are scheduled every 1/rate s whatever the
// answers do, and latency counts from the *scheduled* time, so a stall cannot hide itself
// (no coordinated omission). Prints one JSON line: { sent, ok, p50, p90, p99, max } in ms,
// and what failed (non-200 by status, errors by code, bodies that did not match).
//
// Options (a 5th argument, JSON): `connections` (default 50), `warmupSeconds` (default 1;
// the warm-up's requests count as failures all the same), `expectSha256` (hex: every body is
// read and hashed; default: bodies are discarded unread), `progressSeconds` (a JSON line
// `{ progress: true, … }` that often), `h2` (HTTP/2 where the server offers it; default
// HTTP/1.1), `tailOut` (a file: every measured request gets an `x-tail-id` header, and its
// scheduled, sent and answered times (process.hrtime, ns) go to that file as JSON, with the
// generator's own event-loop delay — `npm run bench -- --tail`, tail.mjs).
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Pool } from 'undici';

const [base, rateArg, secondsArg, headersArg, optionsArg] = process.argv.slice(2);
/** Extra request headers (JSON), e.g. the Host of an AppProxy variant or a session cookie. */
const headers = JSON.parse(headersArg ?? '{}');
const options = JSON.parse(optionsArg ?? '{}');
const rate = Number(rateArg ?? 1000);
const seconds = Number(secondsArg ?? 5);
// The first second opens the pool's connections (TLS handshakes); its samples are dropped.
const WARMUP_S = options.warmupSeconds ?? 1;
const url = new URL(base);
const pool = new Pool(url.origin, {
  connections: options.connections ?? 50,
  connect: { rejectUnauthorized: false },
  ...(options.h2 && { allowH2: true }),
});
const latencies = [];
let ok = 0;
let sent = 0;
/** Every request that failed, warm-up included: `status <code>`, `error <code>`, `body`. */
const failed = {};
const fail = (kind) => (failed[kind] = (failed[kind] ?? 0) + 1);
const total = rate * (seconds + WARMUP_S);
const warmup = rate * WARMUP_S;
const start = performance.now();
const inflight = new Set();
/** `tailOut`: per measured request [id, scheduled, sent, headers, done] in hrtime ns. */
const tail = options.tailOut ? [] : undefined;
const hrAt = (ms) => Number(process.hrtime.bigint()) + (ms - performance.now()) * 1e6;
const eld = tail && monitorEventLoopDelay({ resolution: 10 });
eld?.enable();

async function check(res) {
  if (!options.expectSha256) {
    await res.body.dump();
    return true;
  }
  const hash = createHash('sha256');
  for await (const chunk of res.body) hash.update(chunk);
  if (res.statusCode === 200 && hash.digest('hex') !== options.expectSha256) {
    fail('body');
    return false;
  }
  return true;
}

function fire(scheduledAt) {
  const measured = sent >= warmup;
  sent++;
  const t =
    tail && measured ? [String(sent), hrAt(scheduledAt), hrAt(performance.now())] : undefined;
  const p = pool
    .request({
      path: `${url.pathname}${url.search}`,
      method: 'GET',
      headers: t ? { ...headers, 'x-tail-id': t[0] } : headers,
    })
    .then(async (res) => {
      if (t) t.push(Number(process.hrtime.bigint()));
      const bodyOk = await check(res);
      if (t) {
        t.push(Number(process.hrtime.bigint()));
        tail.push(t);
      }
      if (res.statusCode !== 200) fail(`status ${res.statusCode}`);
      if (!measured) return;
      if (res.statusCode === 200 && bodyOk) ok++;
      latencies.push(performance.now() - scheduledAt);
    })
    .catch((err) => {
      fail(`error ${err.code ?? err.name}`);
      if (measured) latencies.push(performance.now() - scheduledAt);
    });
  inflight.add(p);
  p.finally(() => inflight.delete(p));
}

const progress =
  options.progressSeconds &&
  setInterval(() => {
    const failures = Object.values(failed).reduce((a, b) => a + b, 0);
    process.stdout.write(`${JSON.stringify({ progress: true, sent, failed: failures })}\n`);
  }, options.progressSeconds * 1000);

await new Promise((resolve) => {
  const tick = () => {
    const now = performance.now();
    // Everything due up to now, each stamped with its own scheduled time.
    while (sent < total && start + (sent * 1000) / rate <= now) fire(start + (sent * 1000) / rate);
    if (sent >= total) return resolve();
    setTimeout(tick, 1);
  };
  tick();
});
await Promise.all(inflight);
if (progress) clearInterval(progress);
await pool.close();
if (tail) {
  // The histogram holds whole 10 ms timer intervals: the delay is what exceeds them.
  const ms = (ns) => Math.max(0, ns / 1e6 - 10);
  writeFileSync(
    options.tailOut,
    JSON.stringify({
      eld: { p50: ms(eld.percentile(50)), p99: ms(eld.percentile(99)), max: ms(eld.max) },
      reqs: tail,
    }),
  );
}
latencies.sort((a, b) => a - b);
const q = (p) =>
  Number(
    latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))].toFixed(3),
  );
process.stdout.write(
  `${JSON.stringify({ sent: sent - warmup, ok, p50: q(50), p90: q(90), p99: q(99), max: q(100), total: sent, failed })}\n`,
);
