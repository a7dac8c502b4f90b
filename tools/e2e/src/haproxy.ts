/**
 * A real HAProxy (Debian `haproxy`) in TCP mode in front of relay instances, as ops run it:
 * TLS passes through untouched, and each server is health-checked with an HTTP GET of the
 * relay's `/readyz` on its admin port, so an instance that drains (503) or dies leaves the
 * rotation. The runtime API (a unix socket) tells the tests what HAProxy thinks of each server.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, systemTool } from './harness.js';

export interface HaproxyServer {
  name: string;
  /** Where client connections go (the relay's public listener). */
  port: number;
  /** Where `GET /readyz` is checked (the relay's admin listener). */
  checkPort: number;
}

export interface Haproxy {
  /** The port clients connect to. */
  port: number;
  /** `UP`, `DOWN`, `MAINT`, … per server name, as HAProxy's runtime API says now. */
  states(): Promise<Record<string, string>>;
  /** Resolves once `name` is in `state` (polling the runtime API), or rejects after `timeoutMs`. */
  waitFor(name: string, state: 'UP' | 'DOWN', timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** The haproxy binary, or undefined (the test skips loudly; in CI a missing tool fails). */
export const HAPROXY_BIN = systemTool('haproxy');

/**
 * Starts HAProxy on a free 127.0.0.1 port balancing `servers` round-robin. Health checks
 * every 200 ms; two failures take a server out, two successes bring it back. Connections to
 * a server that refuses them are retried on another one (`option redispatch`).
 */
export async function startHaproxy(
  servers: HaproxyServer[],
  opts: { /** @default a free port */ port?: number } = {},
): Promise<Haproxy> {
  if (!HAPROXY_BIN) throw new Error('haproxy is not installed');
  const dir = mkdtempSync(join(tmpdir(), 'appproxy-haproxy-'));
  const port = opts.port ?? (await freePort());
  const socket = join(dir, 'admin.sock');
  const config = join(dir, 'haproxy.cfg');
  writeFileSync(
    config,
    `global
  stats socket ${socket} mode 600 level admin
  maxconn 4096

defaults
  mode tcp
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  retries 2
  option redispatch

frontend relays
  bind 127.0.0.1:${port}
  default_backend relays

backend relays
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
  default-server inter 200ms fall 2 rise 2
${servers.map((s) => `  server ${s.name} 127.0.0.1:${s.port} check port ${s.checkPort}`).join('\n')}
`,
  );
  // -db: stay in the foreground, log to stderr; -W would fork a master we do not need.
  const child: ChildProcess = spawn(HAPROXY_BIN, ['-db', '-f', config], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const stderr: string[] = [];
  child.stderr!.setEncoding('utf8').on('data', (c: string) => stderr.push(c));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const runtime = (command: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const s = connect(socket);
      let out = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => (out += d));
      s.on('end', () => resolve(out));
      s.on('error', reject);
      s.setTimeout(2000, () => s.destroy(new Error(`haproxy runtime API: ${command} timed out`)));
      s.end(`${command}\n`);
    });

  const states = async (): Promise<Record<string, string>> => {
    // `show stat` is CSV: # pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,…
    const csv = await runtime('show stat');
    const lines = csv.split('\n').filter((l) => l && !l.startsWith('#'));
    const header = csv.split('\n')[0]!.replace(/^# /, '').split(',');
    const col = (name: string) => header.indexOf(name);
    const result: Record<string, string> = {};
    for (const line of lines) {
      const f = line.split(',');
      if (f[col('pxname')] !== 'relays' || ['FRONTEND', 'BACKEND'].includes(f[col('svname')]!))
        continue;
      // "UP 1/2" while rising, "DOWN 1/2" while falling: the first word is the state.
      result[f[col('svname')]!] = f[col('status')]!.split(' ')[0]!;
    }
    return result;
  };

  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
    rmSync(dir, { recursive: true, force: true });
  };

  // Ready when the runtime API answers (bind and checks are set up by then).
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`haproxy exited (${child.exitCode}): ${stderr.join('')}`);
    }
    try {
      await states();
      break;
    } catch (err) {
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`haproxy did not start: ${(err as Error).message} ${stderr.join('')}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  return {
    port,
    states,
    async waitFor(name, state, timeoutMs = 10_000) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const now = (await states())[name];
        if (now === state) return;
        if (Date.now() > end)
          throw new Error(`haproxy server ${name} is ${now ?? 'unknown'}, not ${state}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    stop,
  };
}
