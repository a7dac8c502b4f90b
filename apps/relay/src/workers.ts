import type { AppTestOptions } from './diagnostics.js';
import type { RelayConfig } from '@appproxy/config';
import {
  MetricsRegistry,
  mergeMetrics,
  registerProcessMetrics,
  type Logger,
} from '@appproxy/telemetry';
import { spawn, type ChildProcess } from 'node:child_process';
import type { Server } from 'node:http';
import { isSea } from 'node:sea';
import { adminExtensions } from './admin/extensions.js';
import { AdminError } from './admin/operations.js';
import { primaryAdminHost } from './admin/primary-host.js';
import { createAdminServer } from './admin/server.js';
import { fmt, listen, type RelayWorker } from './relay.js';
import { WORKER_METRICS_COMBINE, registerAuditMetrics } from './metrics.js';

/**
 * `relay.workers`: a primary process forks N relay processes (workers), each a relay
 * instance of its own that shares the public and redirect listeners (SO_REUSEPORT) and has
 * its own tunnel listener. The primary serves the admin listener only (readiness of all,
 * metrics of all), restarts a worker that dies, forwards SIGHUP, and drains all on SIGTERM.
 */

/** Set in a worker's environment: JSON {@link RelayWorker}. */
export const WORKER_ENV = 'APPPROXY_RELAY_WORKER';

/** Messages between the primary and a worker (IPC). */
export type ToWorker =
  | { t: 'metrics'; id: number }
  | { t: 'stop' }
  /** The admin API's app test, run by a worker (the primary has no tunnels). */
  | {
      t: 'testApp';
      id: number;
      name: string;
      o: AppTestOptions;
    };
export type FromWorker =
  | { t: 'listening'; tunnel: string; listenPort: number; redirectPort?: number }
  | { t: 'metrics'; id: number; text: string }
  | { t: 'reloaded'; ok: boolean }
  | { t: 'testApp'; id: number; result: unknown }
  | { t: 'testApp'; id: number; error: { code: string; message: string; status: number } };

/** The worker this process is, when the primary started it. */
export function workerFromEnv(env: NodeJS.ProcessEnv = process.env): RelayWorker | undefined {
  const raw = env[WORKER_ENV];
  return raw ? (JSON.parse(raw) as RelayWorker) : undefined;
}

/** Linux's PIPE_BUF: a write of at most this many bytes to a pipe is never split. */
const PIPE_BUF = 4096;

/**
 * A worker's log sink. Workers share the primary's stdout (a pipe to journald or a
 * container runtime): like the default sink, the lines of one event-loop turn are written
 * together, but in writes of at most PIPE_BUF bytes cut at line ends, so that the lines of
 * two workers never interleave within a line (a longer single line is written alone).
 */
export function sharedStdoutSink(
  write: (text: string) => void = (text) => void process.stdout.write(text),
): (line: string) => void {
  let pending: string[] = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    let chunk = '';
    let bytes = 0;
    for (const line of pending) {
      const size = Buffer.byteLength(line);
      if (bytes > 0 && bytes + size > PIPE_BUF) {
        write(chunk);
        chunk = '';
        bytes = 0;
      }
      chunk += line;
      bytes += size;
    }
    pending = [];
    if (bytes > 0) write(chunk);
  };
  process.on('exit', flush);
  return (line) => {
    pending.push(line);
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  };
}

/** To the primary, when this process is a worker; nothing otherwise. */
export function tellPrimary(message: FromWorker): void {
  if (workerFromEnv() && process.send && process.connected) process.send(message);
}

/**
 * A worker's side of the IPC channel, set up before its relay starts: metrics on request,
 * and the stop (from the primary, a signal to the worker itself — systemd signals the whole
 * unit — or the primary gone) handed to `onStop` once, whichever comes first.
 */
export function workerChannel(relay: {
  metrics: { registry: MetricsRegistry };
  testApp?(name: string, o: AppTestOptions): Promise<unknown>;
}): {
  onStop(stop: (why: string) => void): void;
} {
  let requested: string | undefined;
  let handler: ((why: string) => void) | undefined;
  const request = (why: string) => {
    if (requested !== undefined) return;
    requested = why;
    handler?.(why);
  };
  process.on('message', (m: ToWorker) => {
    if (m.t === 'metrics')
      tellPrimary({ t: 'metrics', id: m.id, text: relay.metrics.registry.render() });
    else if (m.t === 'stop') request('primary');
    else if (m.t === 'testApp') void answerTestApp(relay, m);
  });
  // Repeated signals are ignored: a drain in progress is not cut short.
  process.on('SIGTERM', () => request('SIGTERM'));
  process.on('SIGINT', () => request('SIGINT'));
  process.on('disconnect', () => request('primary gone'));
  return {
    onStop(stop) {
      handler = stop;
      if (requested !== undefined) stop(requested);
    },
  };
}

/** Runs the primary's app test here and answers it; errors keep their code and status. */
async function answerTestApp(
  relay: {
    testApp?(name: string, o: AppTestOptions): Promise<unknown>;
  },
  m: Extract<ToWorker, { t: 'testApp' }>,
): Promise<void> {
  try {
    if (!relay.testApp)
      throw new AdminError(
        'DIAGNOSTICS_UNAVAILABLE',
        'app tests are not available in this relay',
        503,
      );
    tellPrimary({ t: 'testApp', id: m.id, result: await relay.testApp(m.name, m.o) });
  } catch (err) {
    const e = err as Error & { code?: unknown; status?: unknown };
    const coded = typeof e.code === 'string' && typeof e.status === 'number';
    tellPrimary({
      t: 'testApp',
      id: m.id,
      error: coded
        ? { code: e.code as string, message: e.message, status: e.status as number }
        : { code: 'INTERNAL_ERROR', message: 'the app test failed in the worker', status: 500 },
    });
  }
}

/**
 * When a worker that died is started again: 1 s, doubling up to 30 s while it keeps dying;
 * a worker that ran a minute starts again after 1 s.
 */
export class RestartBackoff {
  static readonly MIN_MS = 1_000;
  static readonly MAX_MS = 30_000;
  static readonly STABLE_MS = 60_000;
  #next = RestartBackoff.MIN_MS;

  /** The delay before the next start of a worker that ran `ranMs` before it died. */
  delay(ranMs: number): number {
    if (ranMs >= RestartBackoff.STABLE_MS) this.#next = RestartBackoff.MIN_MS;
    const delay = this.#next;
    this.#next = Math.min(RestartBackoff.MAX_MS, delay * 2);
    return delay;
  }
}

export type WorkerState = 'starting' | 'ready' | 'restarting' | 'draining' | 'stopped';
const STATES: readonly WorkerState[] = ['starting', 'ready', 'restarting', 'draining', 'stopped'];

interface Slot {
  index: number;
  state: WorkerState;
  child?: ChildProcess;
  startedAt: number;
  tunnel?: string;
  /** Of the process that exited last (a signal counts as 1). */
  exitCode?: number;
  backoff: RestartBackoff;
  timer?: NodeJS.Timeout;
}

/** A worker that failed its first start: the whole start fails with its exit code. */
class StartFailed extends Error {
  constructor(
    readonly index: number,
    readonly exitCode: number,
  ) {
    super(`relay worker ${index} did not start (exit code ${exitCode})`);
  }
}

/** How long a scrape waits for the workers' metrics; a worker that is late is left out. */
const SCRAPE_TIMEOUT_MS = 2_000;
/** How long the primary waits for a worker's answer to an app test. */
const TEST_APP_TIMEOUT_MS = 120_000;
/** How long SIGHUP waits for every worker's outcome before it logs what it has. */
const RELOAD_TIMEOUT_MS = 20_000;
/** How long a worker may take from its spawn to listening. */
const START_TIMEOUT_MS = 120_000;
/** Past drainTimeout, how long the primary waits before it kills the workers left. */
const KILL_GRACE_MS = 5_000;

/**
 * The primary of `relay.workers` > 1. Resolves with the exit code: 0 after a drain, the
 * failing worker's code when a worker cannot start, 1 when the admin listener cannot bind
 * (the error on stderr, as `start` says it).
 */
export async function runPrimary(
  config: RelayConfig,
  log: Logger,
  opts: { rereadConfig?: () => Promise<RelayConfig> } = {},
): Promise<number> {
  const { relay } = config;
  const count = relay.workers;
  const slots: Slot[] = Array.from({ length: count }, (_, index) => ({
    index,
    state: 'starting',
    startedAt: 0,
    backoff: new RestartBackoff(),
  }));
  const shared: { listenPort?: number; redirectPort?: number } = {};
  let stopping = false;
  let started = false;

  const metrics = new MetricsRegistry();
  registerProcessMetrics(metrics);
  const workersGauge = metrics.gauge('appproxy_relay_workers', 'Relay worker processes by state.', [
    'state',
  ]);
  const auditMetrics = registerAuditMetrics(metrics);
  const restarts = metrics.counter(
    'appproxy_relay_worker_restarts_total',
    'Relay workers started again after they died.',
  );
  metrics.onCollect(() => {
    for (const state of STATES)
      workersGauge.labels(state).set(slots.filter((s) => s.state === state).length);
  });

  let nextId = 0;
  /** Answers awaited from the workers, by message id; settled with none when the worker exits. */
  const awaiting = new Map<
    number,
    { slot: number; done: (m: Extract<FromWorker, { id: number }> | undefined) => void }
  >();
  /** Sends `message(id)` to a worker and resolves with its answer, or none (timeout, exit). */
  const ask = (
    slot: Slot,
    message: (id: number) => ToWorker,
    timeoutMs: number,
  ): Promise<Extract<FromWorker, { id: number }> | undefined> => {
    const id = nextId++;
    return new Promise((resolve) => {
      const done = (m: Extract<FromWorker, { id: number }> | undefined) => {
        clearTimeout(timer);
        awaiting.delete(id);
        resolve(m);
      };
      const timer = setTimeout(() => done(undefined), timeoutMs);
      awaiting.set(id, { slot: slot.index, done });
      slot.child!.send(message(id), (err) => err && done(undefined));
    });
  };
  const reloads: Array<(index: number, ok: boolean) => void> = [];

  // The same program with the same arguments; a single-file executable is its own script.
  const command = [
    ...process.execArgv,
    ...(isSea() ? [] : [process.argv[1]!]),
    ...process.argv.slice(2),
  ];

  const fork = (slot: Slot): Promise<void> =>
    new Promise((resolve, reject) => {
      const worker: RelayWorker = { index: slot.index, count, ...shared };
      const child = spawn(process.execPath, command, {
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        env: { ...process.env, [WORKER_ENV]: JSON.stringify(worker) },
      });
      slot.child = child;
      slot.startedAt = Date.now();
      let listening = false;
      // A worker that neither listens nor exits (a stuck store, …) is killed: an exit.
      const stuck = setTimeout(() => {
        log.error('relay worker did not start in time; killed', {
          worker: slot.index,
          pid: child.pid,
          startTimeoutMs: START_TIMEOUT_MS,
        });
        child.kill('SIGKILL');
      }, START_TIMEOUT_MS);
      child.on('message', (m: FromWorker) => {
        if (m.t === 'listening') {
          listening = true;
          clearTimeout(stuck);
          slot.tunnel = m.tunnel;
          if (slot.index === 0) {
            shared.listenPort = m.listenPort;
            if (m.redirectPort !== undefined) shared.redirectPort = m.redirectPort;
          }
          if (!stopping) slot.state = 'ready';
          resolve();
        } else if (m.t === 'metrics' || m.t === 'testApp') awaiting.get(m.id)?.done(m);
        else if (m.t === 'reloaded') for (const r of reloads) r(slot.index, m.ok);
      });
      child.on('exit', (code, signal) => {
        clearTimeout(stuck);
        if (slot.child !== child) return;
        // What it was asked and will never answer: answered now (an app test fails at once).
        for (const a of [...awaiting.values()]) if (a.slot === slot.index) a.done(undefined);
        slot.child = undefined;
        slot.exitCode = code ?? 1;
        if (!listening) reject(new StartFailed(slot.index, code ?? 1));
        if (stopping || !started) {
          slot.state = 'stopped';
          return;
        }
        const ranMs = Date.now() - slot.startedAt;
        const inMs = slot.backoff.delay(ranMs);
        slot.state = 'restarting';
        log.error('relay worker exited; restarting it', {
          worker: slot.index,
          pid: child.pid,
          ...(code !== null && { exitCode: code }),
          ...(signal && { signal }),
          ...(!listening && { beforeListening: true }),
          restartInMs: inMs,
        });
        slot.timer = setTimeout(() => {
          if (stopping) return;
          slot.state = 'starting';
          restarts.labels().inc();
          fork(slot).then(
            () => log.info('relay worker restarted', { worker: slot.index, pid: slot.child?.pid }),
            () => {},
          );
        }, inMs);
      });
    });

  let stopped!: () => void;
  const stopSignal = new Promise<void>((resolve) => (stopped = resolve));
  const stopAll = (signal: string) => {
    if (stopping) return;
    stopping = true;
    stopped();
    log.info('relay stopping', { signal, drainTimeoutMs: relay.drainTimeoutMs, workers: count });
    for (const slot of slots) {
      clearTimeout(slot.timer);
      if (slot.child?.connected) {
        slot.state = 'draining';
        slot.child.send({ t: 'stop' } satisfies ToWorker);
      } else if (!slot.child) slot.state = 'stopped';
    }
  };

  // The admin server, as a relay serves it, over the store the primary opens itself. Bound
  // first: a busy admin port stops the start before any worker runs.
  let admin: Server | undefined;
  let adminAddress: string | undefined;
  let adminHost: Awaited<ReturnType<typeof primaryAdminHost>> | undefined;
  if (relay.adminListen) {
    const at = relay.adminListen;
    adminHost = await primaryAdminHost({
      config,
      log,
      auditMetrics,
      health: () => {
        const ready = !stopping && slots.every((s) => s.state === 'ready');
        return {
          ready,
          body: {
            status: ready ? 'ready' : 'not ready',
            workers: slots.map((s) => ({ worker: s.index, state: s.state, pid: s.child?.pid })),
          },
        };
      },
      metrics: async () => {
        const texts = await Promise.all(slots.map((s) => scrape(s)));
        return mergeMetrics([...texts, metrics.render()], WORKER_METRICS_COMBINE);
      },
      testApp: (name, o) => testApp(name, o),
    });
    admin = createAdminServer(adminHost.host, adminExtensions(adminHost.host));
    try {
      adminAddress = fmt(await listen(admin, at, 'adminListen'));
    } catch (err) {
      await adminHost.close();
      throw err;
    }
  }

  /** An app test, run by the first ready worker (its answer, or 503 when none answers). */
  const testApp = (name: string, o: AppTestOptions): Promise<unknown> => {
    const slot = slots.find((s) => s.state === 'ready' && s.child?.connected);
    if (!slot)
      return Promise.reject(
        new AdminError('DIAGNOSTICS_UNAVAILABLE', 'no relay worker is ready to test apps', 503),
      );
    return ask(slot, (id) => ({ t: 'testApp', id, name, o }), TEST_APP_TIMEOUT_MS).then((m) => {
      if (m?.t !== 'testApp')
        throw new AdminError(
          'DIAGNOSTICS_UNAVAILABLE',
          `relay worker ${slot.index} did not answer the app test`,
          503,
        );
      if ('error' in m)
        throw Object.assign(new Error(m.error.message), {
          code: m.error.code,
          status: m.error.status,
        });
      return m.result;
    });
  };

  const scrape = async (slot: Slot): Promise<string> => {
    if (!slot.child?.connected || (slot.state !== 'ready' && slot.state !== 'draining')) return '';
    const m = await ask(slot, (id) => ({ t: 'metrics', id }), SCRAPE_TIMEOUT_MS);
    return m?.t === 'metrics' ? m.text : '';
  };

  const reloadAll = () => {
    const live = slots.filter((s) => s.child?.connected && s.state === 'ready');
    const outcome = new Map<number, boolean>();
    const finish = () => {
      reloads.splice(reloads.indexOf(onReloaded), 1);
      clearTimeout(timer);
      const byIndex = [...outcome].sort(([a], [b]) => a - b);
      const reloaded = byIndex.filter(([, ok]) => ok).map(([i]) => i);
      const refused = byIndex.filter(([, ok]) => !ok).map(([i]) => i);
      const missing = live.map((s) => s.index).filter((i) => !outcome.has(i));
      (refused.length || missing.length ? log.warn : log.info).call(
        log,
        'configuration reload by the workers',
        { workers: count, reloaded, refused, noAnswer: missing },
      );
    };
    const onReloaded = (index: number, ok: boolean) => {
      outcome.set(index, ok);
      if (outcome.size >= live.length) finish();
    };
    const timer = setTimeout(finish, RELOAD_TIMEOUT_MS);
    reloads.push(onReloaded);
    for (const s of live) s.child!.kill('SIGHUP');
    // The admin API answers from the file the workers now serve (a bad one changes nothing).
    if (adminHost && opts.rereadConfig)
      opts.rereadConfig().then(
        (next) => adminHost!.reconfigure(next),
        () => {},
      );
  };

  const onTerm = () => stopAll('SIGTERM');
  const onInt = () => stopAll('SIGINT');
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onInt);
  process.on('SIGHUP', reloadAll);
  const cleanup = () => {
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onInt);
    process.off('SIGHUP', reloadAll);
  };

  const exited = (slot: Slot) =>
    new Promise<number>((resolve) => {
      const child = slot.child;
      if (!child) return resolve(slot.exitCode ?? 0);
      child.once('exit', (code) => resolve(code ?? 1));
    });

  try {
    // Worker 0 first: it creates the CA, tunnel certificate and session secret in stateDir,
    // and binds port 0 for the others.
    await fork(slots[0]!);
    await Promise.all(slots.slice(1).map(fork));
    started = true;
  } catch (err) {
    stopAll('start failed');
    await Promise.all(slots.map(exited));
    await closeAdmin(admin);
    await adminHost?.close();
    cleanup();
    if (err instanceof StartFailed) return err.exitCode;
    throw err;
  }
  if (!stopping)
    log.info('relay listening', {
      public: `${relay.listen.host}:${shared.listenPort}`,
      tunnel: slots[0]!.tunnel,
      ...(adminAddress && { admin: adminAddress }),
      ...(shared.redirectPort !== undefined && {
        redirect: `${relay.redirectHttp!.host}:${shared.redirectPort}`,
      }),
      workers: slots.map((s) => ({ worker: s.index, pid: s.child?.pid, tunnel: s.tunnel })),
    });

  // Until a signal; then every worker drains, and is killed past the deadline.
  await stopSignal;
  const codes = Promise.all(slots.map(exited));
  const deadline = new Promise<'late'>((r) =>
    setTimeout(() => r('late'), relay.drainTimeoutMs + KILL_GRACE_MS).unref(),
  );
  let code = 0;
  if ((await Promise.race([codes, deadline])) === 'late') {
    for (const s of slots) {
      if (!s.child) continue;
      log.error('relay worker did not drain in time; killed', {
        worker: s.index,
        pid: s.child.pid,
      });
      s.child.kill('SIGKILL');
    }
    code = 1;
  }
  if ((await codes).some((c) => c !== 0)) code = 1;
  await closeAdmin(admin);
  await adminHost?.close();
  cleanup();
  log.info('relay stopped', { workers: count });
  return code;
}

function closeAdmin(admin: Server | undefined): Promise<void> {
  if (!admin) return Promise.resolve();
  return new Promise((resolve) => {
    admin.close(() => resolve());
    admin.closeAllConnections();
  });
}
