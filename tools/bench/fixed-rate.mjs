// Open-loop load at a fixed rate: requests are scheduled every 1/rate s whatever the
// answers do, and latency counts from the *scheduled* time, so a stall cannot hide itself
// (no coordinated omission). Prints one JSON line: { sent, ok, p50, p90, p99, max } in ms.
import { Pool } from 'undici';

const [base, rateArg, secondsArg, headersArg] = process.argv.slice(2);
/** Extra request headers (JSON), e.g. the Host of an AppProxy variant or a session cookie. */
const headers = JSON.parse(headersArg ?? '{}');
const rate = Number(rateArg ?? 1000);
const seconds = Number(secondsArg ?? 5);
// The first second opens the pool's connections (TLS handshakes); its samples are dropped.
const WARMUP_S = 1;
const url = new URL(base);
const pool = new Pool(url.origin, { connections: 50, connect: { rejectUnauthorized: false } });
const latencies = [];
let ok = 0;
let sent = 0;
const total = rate * (seconds + WARMUP_S);
const warmup = rate * WARMUP_S;
const start = performance.now();
const inflight = new Set();

function fire(scheduledAt) {
  const measured = sent >= warmup;
  sent++;
  const p = pool
    .request({ path: `${url.pathname}${url.search}`, method: 'GET', headers })
    .then(async (res) => {
      await res.body.dump();
      if (!measured) return;
      if (res.statusCode === 200) ok++;
      latencies.push(performance.now() - scheduledAt);
    })
    .catch(() => {
      if (measured) latencies.push(performance.now() - scheduledAt);
    });
  inflight.add(p);
  p.finally(() => inflight.delete(p));
}

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
await pool.close();
latencies.sort((a, b) => a - b);
const q = (p) =>
  Number(
    latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))].toFixed(3),
  );
process.stdout.write(
  `${JSON.stringify({ sent: sent - warmup, ok, p50: q(50), p90: q(90), p99: q(99), max: q(100) })}\n`,
);
