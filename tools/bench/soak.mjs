// `npm run bench -- --soak <duration>` (e.g. `10m`, `90s`): the bench's AppProxy stack (real
// relay and connector CLIs, TLS, the tunnel, the development OpenID provider) under a steady,
// bounded mixed load on 127.0.0.1 for the duration, sampling relay and connector RSS.
// PASS when both grew by less than 10 % after warm-up and no request or exchange failed.
// Prints tables and a PASS/FAIL line, writes bench/soak-results.json, exits 0 on PASS.
import { startDevIdp } from '@appproxy/dev-idp';
import { createDevCertificates } from '@appproxy/pki';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { WebSocket } from 'ws';
import { signIn } from '@appproxy/dev-idp/sign-in';
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
} from './soak-report.mjs';
import {
  benchIdpClient,
  children,
  idpRelayYaml,
  machineInfo,
  node,
  oidcAppYaml,
  procStatusKiB,
  root,
  startAppProxy,
  startOrigin,
  stopChildren,
} from './stack.mjs';

/** The load mix: steady and bounded, a small share of a 2-core machine. */
const MIX = {
  /** 1 KiB GETs per second through each of the passthrough and the oidc app. */
  getRate: 150,
  /** Connections of each fixed-rate client. */
  getConnections: 16,
  /** A fresh sign-in (the real OIDC flow at the development provider) this often. */
  signInEveryMs: 3000,
  /** WebSockets open at any time; each sends `wsMessages` echoes, closes, and starts over. */
  wsLanes: 8,
  wsMessages: 20,
  /** One download and one upload of 1–6 MiB (random bytes, SHA-256 checked) this often. */
  transferEveryMs: 5000,
  transferMaxBytes: 6 * 2 ** 20,
  /** RSS (and open file descriptors) of relay and connector this often. */
  sampleEveryMs: 5000,
};
const OIDC_HOST = 'oidc.soak.test';
const USERS = ['alice', 'bob', 'carol'];
/** Any single exchange (WebSocket open, echo, close; a transfer) must finish within this. */
const STEP_TIMEOUT_MS = 30_000;

const log = (line) => process.stderr.write(`soak: ${line}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sha256 = (buf) => createHash('sha256').update(buf).digest('hex');
const ONE_KIB_SHA256 = sha256(Buffer.alloc(1024, 'a'));
/**
 * Relay and connector run with V8's young generation fixed at 2 × 16 MiB. Left to itself,
 * Node 24 grows it under load up to 2 × 64 MiB, and the pages of each larger size become
 * resident only when allocation first reaches them, at no predictable time — a step of up to
 * ~30 MiB long after warm-up, which the gate would read as a leak (docs/performance.md,
 * "Soak"). `SOAK_NODE_ARGS` replaces these flags (`SOAK_NODE_ARGS=` runs Node's defaults).
 */
const DEFAULT_NODE_ARGS = '--min-semi-space-size=16 --max-semi-space-size=16';
const nodeArgs = (process.env.SOAK_NODE_ARGS ?? DEFAULT_NODE_ARGS).split(/\s+/).filter(Boolean);
/**
 * `SOAK_LEAK_KIB=100`: the connector keeps that much per backend request (`leak.mjs`), to
 * prove the gate fails on a leak. The result says so; such a run never counts as a soak.
 */
const leakKiB = Number(process.env.SOAK_LEAK_KIB) || 0;
const leakArgs =
  leakKiB > 0 ? ['--import', pathToFileURL(join(root, 'tools/bench/leak.mjs')).href] : [];

/** Failures by load and kind, `{ 'WebSocket': { 'echo mismatch': 1 } }`; nothing is dropped. */
const failures = {};
const fail = (stream, kind, n = 1) => {
  failures[stream] ??= {};
  failures[stream][kind] = (failures[stream][kind] ?? 0) + n;
};
/** Completed requests/exchanges by load. */
const counts = {
  'GET passthrough': 0,
  'GET oidc': 0,
  'sign-in': 0,
  WebSocket: 0,
  download: 0,
  upload: 0,
};
const failedCount = () =>
  Object.values(failures).reduce(
    (a, kinds) => a + Object.values(kinds).reduce((b, n) => b + n, 0),
    0,
  );

/**
 * Runs the soak; resolves to the exit code (0 PASS, 1 FAIL, 2 bad arguments). Everything it
 * starts is stopped at the end, and on Ctrl-C.
 */
export async function soak(durationArg) {
  const durationS = parseDuration(durationArg);
  if (!durationS) {
    log(`--soak needs a duration (e.g. 10m, 90s), not ${durationArg ?? 'nothing'}`);
    return 2;
  }
  const warmupS = warmupSeconds(durationS);
  const work = mkdtempSync(join(tmpdir(), 'appproxy-soak-'));
  let idp;
  let stopped = false;
  const cleanup = async () => {
    if (stopped) return;
    stopped = true;
    await idp?.close();
    await stopChildren();
    rmSync(work, { recursive: true, force: true });
  };
  const onSigint = () => {
    log('interrupted: stopping everything');
    cleanup().then(() => process.exit(130));
  };
  process.once('SIGINT', onSigint);
  try {
    log(`setting up in ${work}`);
    const certs = await createDevCertificates({
      dir: join(work, 'tls'),
      hosts: ['localhost', '127.0.0.1'],
    });
    const { origin } = await startOrigin();
    idp = await startDevIdp({ port: 0, clients: [benchIdpClient(OIDC_HOST)] });
    const stack = await startAppProxy({
      work,
      name: 'soak',
      certs,
      origin,
      appYaml: oidcAppYaml({ name: 'SoakOidc', origin, host: OIDC_HOST }),
      relayYaml: idpRelayYaml(idp),
      metrics: true,
      // Node/V8 flags for relay and connector alone (an experiment, e.g. fixed semi-spaces).
      relayArgs: nodeArgs,
      connectorArgs: [...nodeArgs, ...leakArgs],
    });
    const result = await run({ stack, durationS, warmupS });
    mkdirSync(join(root, 'bench'), { recursive: true });
    // `SOAK_RESULTS=bench/other.json`: another file, for runs side by side.
    const file = process.env.SOAK_RESULTS || 'bench/soak-results.json';
    writeFileSync(join(root, file), `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(`\nwrote ${file}\n`);
    return result.verdict.pass ? 0 : 1;
  } catch (err) {
    log(err.stack ?? String(err));
    return 1;
  } finally {
    process.off('SIGINT', onSigint);
    await cleanup();
  }
}

async function run({ stack, durationS, warmupS }) {
  const { base, relay, connector, metricsUrls } = stack;
  const user = (i) => ({ username: USERS[i % 3], password: `${USERS[i % 3]}-password` });
  // The oidc app's fixed-rate load keeps the session of a first sign-in (sessions last 8 h,
  // 1 h idle); the sign-in loop below makes fresh ones and uses each right away.
  let cookie = await signIn({ base, host: OIDC_HOST, ...user(0) });
  const startedAt = performance.now();
  const elapsed = () => (performance.now() - startedAt) / 1000;
  const until = startedAt + durationS * 1000;
  const running = () => performance.now() < until;
  log(
    `${durationS} s of load (warm-up ${warmupS} s): ${MIX.getRate} GET/s through each of the passthrough and the oidc app, a sign-in every ${MIX.signInEveryMs / 1000} s, ${MIX.wsLanes} WebSockets, a download and an upload every ${MIX.transferEveryMs / 1000} s`,
  );

  const samples = { relay: [], connector: [] };
  const fds = { relay: [], connector: [] };
  /**
   * The parts of each process's memory, every sample, in KiB: from /proc (RSS anonymous and
   * file-backed) and from its /metrics (`process.memoryUsage()` and V8's committed new space),
   * to tell a leak (heap in use, external, or native memory that keeps climbing) from V8 or
   * the allocator settling at a high-water mark.
   */
  const memory = { relay: [], connector: [] };
  /** The largest mappings (/proc/<pid>/smaps) at the end of warm-up and at the end. */
  const mappings = { relay: {}, connector: {} };
  let warmupMapped = false;
  const pids = { relay: relay.pid, connector: connector.pid };
  const sample = () => {
    const t = elapsed();
    const takeMappings = !warmupMapped && t >= warmupS;
    if (takeMappings) warmupMapped = true;
    for (const [name, pid] of Object.entries(pids)) {
      samples[name].push({ t, kib: procStatusKiB(pid) });
      fds[name].push({ t, n: openFds(pid) });
      if (takeMappings) mappings[name].warmupEnd = largestMappings(pid);
      const proc = {
        rssAnon: procStatusKiB(pid, 'RssAnon'),
        rssFile: procStatusKiB(pid, 'RssFile'),
      };
      memoryParts(metricsUrls[name]).then((parts) =>
        memory[name].push({
          t,
          ...proc,
          ...parts,
          // Anonymous memory that is neither V8's heap nor memory held by JS objects: the
          // allocator's arenas, TLS, nghttp2, V8's code and metadata.
          otherAnon: proc.rssAnon - parts.heapTotal - parts.external,
        }),
      );
    }
  };
  sample();
  const sampler = setInterval(sample, MIX.sampleEveryMs);
  const progress = setInterval(() => {
    const rss = Object.entries(samples)
      .map(([name, s]) => `${name} ${Math.round(s[s.length - 1].kib / 1024)} MiB`)
      .join(', ');
    const done = Object.entries(counts)
      .map(([k, n]) => `${k} ${n}`)
      .join(', ');
    log(`${Math.round(elapsed())} s: RSS ${rss}; ${done}; failed ${failedCount()}`);
  }, 30_000);

  // HTTP/1.1 through the passthrough app, HTTP/2 (as browsers) through the oidc app.
  const gets = [
    fixedRate('GET passthrough', `${base}/1k`, {}, durationS),
    fixedRate('GET oidc', `${base}/1k`, { host: OIDC_HOST, cookie }, durationS, { h2: true }),
  ];
  const loops = [
    (async () => {
      for (let i = 1; running(); i++) {
        const t0 = performance.now();
        const fresh = await signInOnce(base, user(i));
        if (fresh) cookie = fresh;
        await sleep(Math.max(0, MIX.signInEveryMs - (performance.now() - t0)));
      }
    })(),
    ...Array.from({ length: MIX.wsLanes }, async (_, lane) => {
      for (let i = 0; running(); i++) {
        // Alternately through the passthrough and the oidc app (with the newest session).
        const oidc = (lane + i) % 2 === 1;
        await webSocketOnce(base, oidc ? { host: OIDC_HOST, cookie } : undefined);
        await sleep(Math.random() * 500);
      }
    }),
    (async () => {
      for (let i = 0; running(); i++) {
        const t0 = performance.now();
        const headers = i % 2 ? { host: OIDC_HOST, cookie } : {};
        await downloadOnce(base, headers);
        await uploadOnce(base, headers);
        await sleep(Math.max(0, MIX.transferEveryMs - (performance.now() - t0)));
      }
    })(),
  ];
  // The end of the run: the last sample is taken when the duration is over, under load.
  await sleep(Math.max(0, until - performance.now()));
  clearInterval(sampler);
  sample();
  for (const [name, pid] of Object.entries(pids)) mappings[name].end = largestMappings(pid);
  clearInterval(progress);
  log('duration over: letting the exchanges in flight finish');
  await Promise.all(loops);
  const latency = {};
  for (const [name, r] of await Promise.all(gets)) if (r) latency[name] = r;
  // The relay's own view of the run, for cross-checking (not part of the verdict).
  let relayView;
  try {
    const text = await (await fetch(metricsUrls.relay)).text();
    relayView = {
      requestsByStatus: sumBy(text, 'appproxy_requests_total', 'status'),
      errorsByCode: sumBy(text, 'appproxy_request_errors_total', 'code'),
      aborted: sumBy(text, 'appproxy_requests_aborted_total').total ?? 0,
      retries: sumBy(text, 'appproxy_connector_retries_total').total ?? 0,
      tunnelDisconnects: sumBy(text, 'appproxy_tunnel_disconnects_total', 'reason'),
      connectionsRefused: sumBy(text, 'appproxy_connections_refused_total', 'reason'),
      connectionsClosed: sumBy(text, 'appproxy_connections_closed_total', 'reason'),
    };
  } catch (err) {
    log(`the relay's /metrics could not be read: ${err.message}`);
  }
  for (const [name, c] of Object.entries({ relay, connector }))
    if (c.exitCode !== null || c.signalCode !== null)
      fail('processes', `${name} exited (${c.exitCode ?? c.signalCode})`);

  const rss = {
    relay: rssFigures(samples.relay, warmupS),
    connector: rssFigures(samples.connector, warmupS),
  };
  // Scrapes answer in any order.
  for (const m of Object.values(memory)) m.sort((a, b) => a.t - b.t);
  const memoryFigures = memoryPartFigures(memory, warmupS);
  const failureKinds = failureList(failures);
  const v = verdict({ rss, failures: failureKinds, counts });
  const machine = {
    ...machineInfo(),
  };
  const result = {
    machine,
    durationS,
    warmupS,
    nodeArgs,
    leakKiB,
    mix: MIX,
    rss,
    counts,
    failures: failureKinds,
    latency,
    memory: memoryFigures,
    relayView,
    openFds: Object.fromEntries(
      Object.entries(fds).map(([k, s]) => {
        const after = s.filter((x) => x.t >= warmupS);
        return [k, { warmupEnd: after[0]?.n, end: s[s.length - 1]?.n }];
      }),
    ),
    verdict: v,
    samples,
    memorySamples: memory,
    mappings,
  };
  process.stdout.write(
    `\nAppProxy soak — ${machine.cores} cores (${machine.cpu}), Node ${machine.node}, ${durationS} s, warm-up ${warmupS} s; ${MIX.getRate} GET/s through each of two apps, a sign-in every ${MIX.signInEveryMs / 1000} s, ${MIX.wsLanes} WebSockets × ${MIX.wsMessages} echoes, a 1–${MIX.transferMaxBytes / 2 ** 20} MiB download and upload every ${MIX.transferEveryMs / 1000} s; relay and connector flags: ${nodeArgs.join(' ') || 'none'}${leakKiB ? `; LEAK INJECTED: the connector keeps ${leakKiB} KiB per backend request` : ''}\n\n`,
  );
  process.stdout.write(
    `${report({ durationS, warmupS, rss, counts, failures: failureKinds, latency, verdict: v })}\n`,
  );
  process.stdout.write(`\n${memoryReport(memoryFigures)}\n\n`);
  if (relayView) {
    const kv = (o) =>
      Object.entries(o)
        .map(([k, n]) => `${k} ${n}`)
        .join(', ') || 'none';
    process.stdout.write(
      `the relay's /metrics: requests by status ${kv(relayView.requestsByStatus)}; errors ${kv(relayView.errorsByCode)}; aborted ${relayView.aborted}; retries ${relayView.retries}; tunnel disconnects ${kv(relayView.tunnelDisconnects)}; connections refused ${kv(relayView.connectionsRefused)}, closed by the relay ${kv(relayView.connectionsClosed)}\n`,
    );
  }
  process.stdout.write(
    `open file descriptors (end of warm-up → end): ${Object.entries(result.openFds)
      .map(([k, f]) => `${k} ${f.warmupEnd} → ${f.end}`)
      .join(', ')}\n`,
  );
  return result;
}

/**
 * `process.memoryUsage()` parts and V8's committed new space from a /metrics page, in KiB;
 * `{}` if it cannot be read.
 */
async function memoryParts(url) {
  try {
    const text = await (await fetch(url)).text();
    const kib = (series) => {
      const bytes = Number(
        new RegExp(`^${series.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1],
      );
      return Number.isFinite(bytes) ? bytes / 1024 : undefined;
    };
    return {
      heapUsed: kib('nodejs_heap_used_bytes'),
      heapTotal: kib('nodejs_heap_size_total_bytes'),
      newSpace: kib('nodejs_heap_space_size_total_bytes{space="new"}'),
      external: kib('nodejs_external_memory_bytes'),
      arrayBuffers: kib('nodejs_array_buffers_bytes'),
    };
  } catch {
    return {};
  }
}

/**
 * The 8 largest mappings of a process by resident size (/proc/<pid>/smaps): address range,
 * size and RSS in KiB, name (`[heap]` is glibc's main arena; unnamed 64 MiB-aligned regions
 * its other arenas or V8's pages).
 */
function largestMappings(pid) {
  try {
    const out = [];
    let cur;
    for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
      const head = /^([0-9a-f]+-[0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
      if (head) out.push((cur = { range: head[1], name: head[2] || '', sizeKiB: 0, rssKiB: 0 }));
      else if (cur && line.startsWith('Size:')) cur.sizeKiB = Number(/\d+/.exec(line)[0]);
      else if (cur && line.startsWith('Rss:')) cur.rssKiB = Number(/\d+/.exec(line)[0]);
    }
    return out.sort((a, b) => b.rssKiB - a.rssKiB).slice(0, 8);
  } catch {
    return [];
  }
}

function openFds(pid) {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return null;
  }
}

/**
 * `fixed-rate.mjs` for the whole run, in a process of its own (its timers stay on time
 * whatever this process does); resolves to `[name, { p50, p99 }]` and counts into `counts`
 * and `failures` (bodies checked against the 1 KiB the origin sends).
 */
function fixedRate(name, url, headers, durationS, options = {}) {
  return new Promise((resolve) => {
    const child = spawn(
      node,
      [
        join(root, 'tools/bench/fixed-rate.mjs'),
        url,
        String(MIX.getRate),
        String(Math.max(1, durationS - 1)),
        JSON.stringify(headers),
        JSON.stringify({
          connections: MIX.getConnections,
          warmupSeconds: 1,
          expectSha256: ONE_KIB_SHA256,
          progressSeconds: 10,
          ...options,
        }),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    children.push(child);
    let partial = '';
    let r;
    child.stdout.setEncoding('utf8').on('data', (c) => {
      const lines = (partial + c).split('\n');
      partial = lines.pop();
      for (const line of lines) {
        try {
          const parsed = JSON.parse(line);
          // Progress lines keep the completed count live; the last line is the result.
          if (parsed.progress) counts[name] = parsed.sent - parsed.failed;
          else r = parsed;
        } catch {
          /* not JSON */
        }
      }
    });
    // 'close', not 'exit': the result line is read once stdout has ended.
    child.once('close', (code, signal) => {
      if (!r || typeof r.total !== 'number') {
        fail(name, `load process ended (${code ?? signal}) without a result`);
        return resolve([name, undefined]);
      }
      let failed = 0;
      for (const [kind, n] of Object.entries(r.failed)) {
        fail(name, kind, n);
        failed += n;
      }
      counts[name] = r.total - failed;
      resolve([name, { p50: r.p50, p99: r.p99, max: r.max }]);
    });
  });
}

/** One sign-in (a fresh user session); then a GET with it. Returns the cookie, or undefined. */
async function signInOnce(base, user) {
  let cookie;
  try {
    cookie = await withTimeout(signIn({ base, host: OIDC_HOST, ...user }), 'sign-in');
  } catch (err) {
    fail('sign-in', `flow: ${err.message}`);
    return undefined;
  }
  try {
    const { status, body } = await get(base, '/1k', { host: OIDC_HOST, cookie });
    if (status !== 200) return void fail('sign-in', `GET with the new session: status ${status}`);
    if (sha256(body) !== ONE_KIB_SHA256) return void fail('sign-in', 'GET body mismatch');
  } catch (err) {
    return void fail('sign-in', `GET with the new session: error ${err.code ?? err.message}`);
  }
  counts['sign-in']++;
  return cookie;
}

/** A WebSocket: open, `MIX.wsMessages` echoes of random text and binary, a clean close. */
async function webSocketOnce(base, oidc) {
  const stream = 'WebSocket';
  const ws = new WebSocket(`${base.replace(/^https/, 'wss')}/ws`, {
    rejectUnauthorized: false,
    ...(oidc && { headers: { host: oidc.host, cookie: oidc.cookie }, servername: oidc.host }),
  });
  let step = 'open';
  const closed = new Promise((resolve) => ws.once('close', (code) => resolve(code)));
  const errored = new Promise((resolve) =>
    ws
      .once('error', (err) => resolve(err))
      .once('unexpected-response', (_req, res) => {
        resolve(new Error(`status ${res.statusCode}`));
        res.resume();
        ws.terminate();
      }),
  );
  const messages = [];
  let waiting;
  ws.on('message', (data, isBinary) => {
    messages.push({ data, isBinary });
    waiting?.();
  });
  const outcome = await withTimeout(
    Promise.race([
      errored.then((err) => `${step}: error ${err.code ?? err.message}`),
      closed.then((code) => (step === 'close' ? undefined : `${step}: closed early (${code})`)),
      (async () => {
        await new Promise((resolve) => ws.once('open', resolve));
        for (let i = 0; i < MIX.wsMessages; i++) {
          step = 'echo';
          const binary = i % 2 === 1;
          const size = 1 + Math.floor(Math.random() * 16 * 1024);
          const payload = binary ? randomBytes(size) : randomBytes(size).toString('base64');
          const echoed = new Promise((resolve) => (waiting = resolve));
          ws.send(payload, { binary });
          if (messages.length === 0) await echoed;
          const { data, isBinary } = messages.shift();
          if (isBinary !== binary || !Buffer.from(data).equals(Buffer.from(payload)))
            return 'echo mismatch';
        }
        step = 'close';
        ws.close(1000);
        const code = await closed;
        return code === 1000 ? undefined : `close: code ${code}`;
      })(),
    ]),
    'WebSocket',
  ).catch((err) => `${step}: ${err.message}`);
  if (ws.readyState !== WebSocket.CLOSED) ws.terminate();
  if (outcome) fail(stream, outcome);
  else counts[stream]++;
}

/** GET `path`; the status and the whole body. */
function get(base, path, headers = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(base);
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        path,
        headers,
        rejectUnauthorized: false,
        ...(headers.host && { servername: headers.host }),
        agent: false,
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () =>
          res.complete
            ? resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) })
            : reject(new Error('response cut off')),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const transferSize = () => 2 ** 20 + Math.floor(Math.random() * (MIX.transferMaxBytes - 2 ** 20));

/** A random download (1–6 MiB) whose SHA-256 must match the one the origin computed. */
async function downloadOnce(base, headers) {
  try {
    const res = await withTimeout(get(base, `/blob?bytes=${transferSize()}`, headers), 'download');
    if (res.status !== 200) return void fail('download', `status ${res.status}`);
    if (sha256(res.body) !== res.headers['x-body-sha256'])
      return void fail('download', 'SHA-256 mismatch');
    counts.download++;
  } catch (err) {
    fail('download', `error ${err.code ?? err.message}`);
  }
}

/** A random upload (1–6 MiB) whose SHA-256 the origin must report back. */
async function uploadOnce(base, headers) {
  const body = randomBytes(transferSize());
  const u = new URL(base);
  try {
    const res = await withTimeout(
      new Promise((resolve, reject) => {
        const req = request(
          {
            host: u.hostname,
            port: u.port,
            method: 'PUT',
            path: '/upload?sha256',
            headers: { ...headers, 'content-length': String(body.length) },
            rejectUnauthorized: false,
            ...(headers.host && { servername: headers.host }),
            agent: false,
          },
          (r) => {
            let text = '';
            r.setEncoding('utf8').on('data', (c) => (text += c));
            r.on('error', reject);
            r.on('end', () => resolve({ status: r.statusCode, text }));
          },
        );
        req.on('error', reject);
        // In pieces of 64 KiB, as a client streams a file.
        let at = 0;
        const pump = () => {
          while (at < body.length) {
            const piece = body.subarray(at, (at += 64 * 1024));
            if (!req.write(piece)) return void req.once('drain', pump);
          }
          req.end();
        };
        pump();
      }),
      'upload',
    );
    if (res.status !== 200) return void fail('upload', `status ${res.status}`);
    let answer;
    try {
      answer = JSON.parse(res.text);
    } catch {
      return void fail('upload', 'answer not JSON');
    }
    if (answer.bytes !== body.length || answer.sha256 !== sha256(body))
      return void fail('upload', 'SHA-256 mismatch');
    counts.upload++;
  } catch (err) {
    fail('upload', `error ${err.code ?? err.message}`);
  }
}

function withTimeout(promise, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${what} timed out after ${STEP_TIMEOUT_MS / 1000} s`)),
        STEP_TIMEOUT_MS,
      );
    }),
  ]).finally(() => clearTimeout(timer));
}
