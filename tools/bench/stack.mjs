// What `npm run bench` and its soak mode share: the child processes they start (the origin,
// the real relay and connector CLIs), free loopback ports, readiness checks and /proc reads.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, release, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
/** The Node running this script (Node 24 under `npm run`), for every child. */
export const node = process.execPath;
/** Every child process started through this module, for {@link stopChildren}. */
export const children = [];

/** The machine a run's figures belong to (written into each results file). */
export function machineInfo() {
  return {
    cores: cpus().length,
    cpu: cpus()[0]?.model,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    kernel: release(),
    date: new Date().toISOString(),
  };
}

export async function freePort() {
  const s = createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/** A free port followed by `count - 1` free ones (the tunnel ports of relay workers). */
async function freePortRun(count) {
  const bindable = (port) =>
    new Promise((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
  for (;;) {
    const first = await freePort();
    let ok = true;
    for (let i = 1; i < count && ok; i++) ok = await bindable(first + i);
    if (ok) return first;
  }
}

export function which(cmd) {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin'])) {
    if (existsSync(join(dir, cmd))) return join(dir, cmd);
  }
  return undefined;
}

/** Spawns a process and resolves when `ready(line)` is true for a stdout/stderr line. */
/** A `ready` test for the connector: a tunnel up to each of `instances` relay instances. */
function tunnelsToEvery(instances) {
  const reached = new Set();
  return jsonLine((l) => {
    if (l.msg === 'tunnel connected') reached.add(l.instance ?? l.relay);
    return reached.size >= instances;
  });
}

export function start(name, cmd, args, ready, opts = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    children.push(child);
    let out = '';
    const timer = setTimeout(
      () => reject(new Error(`${name} not ready in 30 s: ${out.slice(-500)}`)),
      30_000,
    );
    const onData = (c) => {
      out += c;
      for (const line of out.split('\n')) {
        if (ready(line)) {
          clearTimeout(timer);
          child.stdout.off('data', onData);
          child.stderr.off('data', onData);
          child.stdout.resume();
          child.stderr.resume();
          return resolve(child);
        }
      }
    };
    child.stdout.setEncoding('utf8').on('data', onData);
    child.stderr.setEncoding('utf8').on('data', onData);
    child.once('exit', (code) => reject(new Error(`${name} exited (${code}): ${out.slice(-500)}`)));
  });
}

/** A `ready` test for {@link start}: `test` on each stdout/stderr line that is JSON. */
export const jsonLine = (test) => (line) => {
  try {
    return test(JSON.parse(line));
  } catch {
    return false;
  }
};

export async function waitForPort(port, timeoutMs = 15_000) {
  const { connect } = await import('node:net');
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const ok = await new Promise((r) => {
      const s = connect(port, '127.0.0.1', () => (s.destroy(), r(true)));
      s.on('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listens on ${port} after ${timeoutMs} ms`);
}

/** A field of /proc/<pid>/status in KiB (`VmRSS`, `VmHWM`), 0 once the process is gone. */
export function procStatusKiB(pid, field = 'VmRSS') {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** The benchmark origin (`origin.mjs`) on a free loopback port. */
export async function startOrigin() {
  const port = await freePort();
  const child = await start(
    'origin',
    node,
    [join(root, 'tools/bench/origin.mjs'), String(port)],
    jsonLine((l) => l.port),
  );
  return { child, port, origin: `http://127.0.0.1:${port}` };
}

/**
 * An app with `preAuthentication: oidc` on `host`, and the relay's `identityProvider:`
 * section for the development provider `idp` (client `bench`, see {@link benchIdpClient}).
 */
export const oidcAppYaml = ({ name, origin, host }) => `  - name: ${name}
    internalUrl: ${origin}/
    externalUrl: https://${host}/
    preAuthentication: oidc
`;
export const idpRelayYaml = (idp) => `identityProvider:
  issuer: ${idp.issuer}
  clientId: bench
  clientSecret: bench-secret
  scopes: [openid, profile, email, groups]
`;
/** The development provider's client for the relay, redirecting to each of `hosts`. */
export const benchIdpClient = (...hosts) => ({
  clientId: 'bench',
  clientSecret: 'bench-secret',
  redirectUris: hosts.map((host) => `https://${host}/.appproxy/callback`),
});

/**
 * The real CLIs: a relay with the bench app (passthrough on any host not named by `appYaml`)
 * on its own ports and state under `work`, and a registered connector. `relayArgs` and
 * `connectorArgs` go to Node before the script (e.g. `--cpu-prof`); `connectorCliArgs` after
 * `start` (e.g. `--kerberos-keytab …`). `metrics`: the relay's
 * admin listener and the connector's metrics listener on loopback ports, their `/metrics`
 * URLs returned as `metricsUrls`.
 */
export async function startAppProxy({
  work,
  name,
  certs,
  origin,
  appYaml,
  relayYaml,
  relayArgs = [],
  connectorArgs = [],
  connectorCliArgs = [],
  metrics = false,
  workers = 1,
  relayStdout,
}) {
  const dir = join(work, `appproxy-${name}`);
  mkdirSync(dir);
  const ports = { public: await freePort(), tunnel: await freePortRun(workers) };
  if (metrics)
    Object.assign(ports, { admin: await freePort(), connectorMetrics: await freePort() });
  const config = join(dir, 'appproxy.yaml');
  writeFileSync(
    config,
    `relay:
  listen: 127.0.0.1:${ports.public}
  tunnelListen: 127.0.0.1:${ports.tunnel}
${metrics ? `  adminListen: 127.0.0.1:${ports.admin}\n` : ''}  stateDir: ${join(dir, 'relay')}
  certificates: [{ cert: ${certs.certPath}, key: ${certs.keyPath} }]
  # Every bench client is 127.0.0.1: the per-client cap (256 by default) would refuse the
  # idle-WebSocket phase's thousands of sockets.
  limits: { maxConnections: 50000, maxConnectionsPerClient: 50000 }
${workers > 1 ? `  workers: ${workers}\n  instance: { tunnelUrl: 'https://127.0.0.1:${ports.tunnel}' }\n` : ''}apps:
  - name: Bench
    internalUrl: ${origin}/
    externalUrl: https://127.0.0.1/
    preAuthentication: passthrough
${appYaml}${relayYaml}`,
  );
  // Default logging (one JSON line per request), as ops run it.
  const relayBin = join(root, 'apps/relay/dist/bin.js');
  const connectorBin = join(root, 'apps/connector/dist/bin.js');
  const relay = spawn(node, [...relayArgs, relayBin, 'start', '--config', config], {
    // relayStdout: a file descriptor for the relay's output (e.g. `--trace-gc` lines).
    stdio: ['ignore', relayStdout ?? 'ignore', 'ignore'],
  });
  children.push(relay);
  // relay.workers: worker i's tunnel port is tunnelListen's + i; the last listens last.
  await waitForPort(ports.tunnel + workers - 1);
  await waitForPort(ports.public);
  const token = execFileSync(node, [relayBin, 'token', 'create', '--config', config], {
    encoding: 'utf8',
  }).trim();
  const state = join(dir, 'connector');
  execFileSync(node, [
    connectorBin,
    'register',
    '--relay',
    `https://127.0.0.1:${ports.tunnel}`,
    '--token',
    token,
    '--state-dir',
    state,
  ]);
  const connector = await start(
    'connector',
    node,
    [
      ...connectorArgs,
      connectorBin,
      'start',
      '--state-dir',
      state,
      ...(metrics ? ['--metrics-listen', `127.0.0.1:${ports.connectorMetrics}`] : []),
      ...connectorCliArgs,
    ],
    // Ready once it has a tunnel to every worker (each is a relay instance of its own).
    tunnelsToEvery(workers),
  );
  await new Promise((r) => setTimeout(r, 500));
  const idleConnectorMiB = Math.round(procStatusKiB(connector.pid) / 1024);
  const stop = () =>
    Promise.all(
      [connector, relay].map(
        (c) =>
          new Promise((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            c.once('exit', resolve);
            c.kill('SIGTERM');
          }),
      ),
    );
  return {
    base: `https://127.0.0.1:${ports.public}`,
    config,
    relay,
    connector,
    idleConnectorMiB,
    stop,
    ...(metrics && {
      metricsUrls: {
        relay: `http://127.0.0.1:${ports.admin}/metrics`,
        connector: `http://127.0.0.1:${ports.connectorMetrics}/metrics`,
      },
    }),
  };
}

/** SIGTERM to every child still running; waits for them (at most `timeoutMs`). */
export async function stopChildren(timeoutMs = 10_000) {
  const exits = children
    .filter((c) => c.exitCode === null && c.signalCode === null)
    .map((c) => new Promise((resolve) => (c.once('exit', resolve), c.kill('SIGTERM'))));
  await Promise.race([Promise.all(exits), new Promise((r) => setTimeout(r, timeoutMs))]);
}
