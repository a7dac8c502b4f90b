// `npm run bench -- --tail`: where the latency tail at a fixed 1,000 req/s goes. The origin,
// relay and connector run with tail-probe.mjs, the fixed-rate generator tags each request
// (`x-tail-id`); every request's stages are joined on one clock (CLOCK_MONOTONIC), and the
// slowest 1 % are compared with the middle of the distribution, stage by stage, beside each
// process's GC pauses and event-loop delay. Runs alternate direct / AppProxy (A/B). Prints
// a report; writes bench/tail-results.json. A measurement, nothing passes or fails.
//
// Options (after --tail): --tail-runs N (default 3 of each), --tail-seconds S (default 5),
// --tail-rate R (default 1000), --tail-connections C (the generator's pool, default 50),
// --tail-pin relay=0,connector=1,origin=1,generator=0 (taskset -a each process to CPUs),
// --tail-node-args '<flags>' (a second relay and connector with these Node flags, measured
// alternately with the first: `appproxy-b`, for A/B of e.g. GC flags; --tail-relay-args
// '<flags>' adds flags to its relay alone), --tail-nice N (as
// root: the nice value of this run's scheduler autogroup — every process of the run is in
// it — so that on a machine shared with other work the run gets the CPU it would have on a
// quiet one; Linux with sched_autogroup_enabled, see sched(7)).
import { createDevCertificates } from '@appproxy/pki';
import { execFileSync, spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  children,
  freePort,
  jsonLine,
  node,
  root,
  start,
  startAppProxy,
  stopChildren,
} from './stack.mjs';
import { tailReport } from './tail-report.mjs';

const arg = (name, dflt) => {
  const v = process.argv.find((a, i) => process.argv[i - 1] === `--tail-${name}`);
  return v ?? dflt;
};
const RUNS = Number(arg('runs', 3));
const SECONDS = Number(arg('seconds', 5));
const RATE = Number(arg('rate', 1000));
const CONNECTIONS = Number(arg('connections', 50));
const PIN = Object.fromEntries(
  (arg('pin', '') || '')
    .split(',')
    .filter(Boolean)
    .map((kv) => kv.split('=')),
);
const NODE_ARGS_B = arg('node-args', undefined);
/** More Node flags for the second stack's relay alone (e.g. a preload for an experiment). */
const RELAY_ARGS_B = (arg('relay-args', '') ?? '').split(' ').filter(Boolean);
const NICE = arg('nice', undefined);
const probe = join(root, 'tools/bench/tail-probe.mjs');
const log = (line) => process.stderr.write(`tail: ${line}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function pin(role, pid) {
  if (PIN[role] === undefined) return;
  execFileSync('taskset', ['-a', '-pc', PIN[role], String(pid)], { stdio: 'ignore' });
}

/** Asks each probed process for its records (SIGUSR2) and reads them. */
async function collect(procs, dir, tag) {
  const files = {};
  for (const [role, child] of Object.entries(procs)) {
    const file = join(dir, `${role}.json`);
    rmSync(file, { force: true });
    child.kill('SIGUSR2');
    files[role] = file;
  }
  const until = Date.now() + 15_000;
  while (Object.values(files).some((f) => !existsSync(f)) && Date.now() < until) await sleep(50);
  await sleep(200); // writeFileSync of a large file: let it finish
  const data = {};
  for (const [role, file] of Object.entries(files)) {
    data[role] = JSON.parse(readFileSync(file, 'utf8'));
    rmSync(file);
  }
  log(`collected ${tag}`);
  return data;
}

function generate(url, headers, tailOut, seconds = SECONDS) {
  const child = spawn(
    node,
    [
      join(root, 'tools/bench/fixed-rate.mjs'),
      url,
      String(RATE),
      String(seconds),
      JSON.stringify(headers),
      JSON.stringify({ connections: CONNECTIONS, ...(tailOut && { tailOut }) }),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  children.push(child);
  // Pinned as soon as it runs (its warm-up second is not measured).
  child.once('spawn', () => pin('generator', child.pid));
  let out = '';
  child.stdout.on('data', (c) => (out += c));
  return new Promise((resolve, reject) =>
    child.once('exit', (code) =>
      code === 0
        ? resolve(JSON.parse(out.trim().split('\n').pop()))
        : reject(new Error(`fixed-rate exited ${code}`)),
    ),
  );
}

export async function tail() {
  const work = mkdtempSync(join(tmpdir(), 'appproxy-tail-'));
  const probeDir = join(work, 'probe');
  mkdirSync(probeDir);
  const results = {
    nodeArgsB: NODE_ARGS_B,
    rate: RATE,
    seconds: SECONDS,
    connections: CONNECTIONS,
    pin: PIN,
    runs: [],
  };
  if (NICE !== undefined) {
    try {
      writeFileSync('/proc/self/autogroup', String(NICE));
      results.autogroup = readFileSync('/proc/self/autogroup', 'utf8').trim();
    } catch (err) {
      log(`--tail-nice ${NICE} not applied: ${err.message}`);
    }
  }
  try {
    const certs = await createDevCertificates({
      dir: join(work, 'tls'),
      hosts: ['localhost', '127.0.0.1'],
    });
    // Every probed child writes $TAIL_PROBE_DIR/<role>.json (tail-probe.mjs).
    process.env.TAIL_PROBE_DIR = probeDir;
    const port = await freePort();
    const origin = await start(
      'origin',
      node,
      ['--import', probe, join(root, 'tools/bench/origin.mjs'), String(port)],
      jsonLine((l) => l.port),
    );
    const originUrl = `http://127.0.0.1:${port}`;
    const app = await startAppProxy({
      work,
      name: 'tail',
      certs,
      origin: originUrl,
      appYaml: '',
      relayYaml: '',
      relayArgs: ['--import', probe],
      connectorArgs: ['--import', probe],
    });
    const appB =
      NODE_ARGS_B === undefined
        ? undefined
        : await startAppProxy({
            work,
            name: 'tail-b',
            certs,
            origin: originUrl,
            appYaml: '',
            relayYaml: '',
            relayArgs: [
              ...NODE_ARGS_B.split(' ').filter(Boolean),
              ...RELAY_ARGS_B,
              '--import',
              probe,
            ],
            // Its output (log lines, and `--trace-gc` if asked for) kept for reading.
            relayStdout: openSync(join(root, 'bench/tail-relay-b.log'), 'w'),
            connectorArgs: [...NODE_ARGS_B.split(' ').filter(Boolean), '--import', probe],
          });
    pin('origin', origin.pid);
    for (const a of [app, appB].filter(Boolean)) {
      pin('relay', a.relay.pid);
      pin('connector', a.connector.pid);
    }
    const paths = {
      direct: { url: `${originUrl}/1k`, procs: { origin } },
      appproxy: {
        url: `${app.base}/1k`,
        procs: { relay: app.relay, connector: app.connector, origin },
      },
      ...(appB && {
        'appproxy-b': {
          url: `${appB.base}/1k`,
          procs: { relay: appB.relay, connector: appB.connector, origin },
        },
      }),
    };
    log(`warming up (${RATE} req/s, 3 s each)`);
    for (const p of Object.values(paths)) {
      await generate(p.url, {}, undefined, 3);
      await collect(p.procs, probeDir, 'warm-up (discarded)');
    }
    for (let i = 0; i < RUNS; i++) {
      for (const [name, p] of Object.entries(paths)) {
        const load = execFileSync('cat', ['/proc/loadavg'], { encoding: 'utf8' }).trim();
        const genFile = join(probeDir, 'generator.json');
        const summary = await generate(p.url, {}, genFile);
        const probed = await collect(p.procs, probeDir, `${name} run ${i + 1}`);
        const generator = JSON.parse(readFileSync(genFile, 'utf8'));
        results.runs.push({ path: name, run: i + 1, loadavg: load, summary, generator, probed });
      }
    }
  } finally {
    delete process.env.TAIL_PROBE_DIR;
    await stopChildren();
    rmSync(work, { recursive: true, force: true });
  }
  const report = tailReport(results);
  process.stdout.write(`${report.text}\n`);
  mkdirSync(join(root, 'bench'), { recursive: true });
  writeFileSync(
    join(root, 'bench/tail-results.json'),
    JSON.stringify({ ...report.json, options: { RUNS, SECONDS, RATE, CONNECTIONS, PIN } }, null, 1),
  );
  return 0;
}
