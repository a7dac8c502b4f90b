import { createLogger } from '@appproxy/telemetry';
import { CAPABILITY, TunnelDialer, TunnelError, registerWithRelay } from '@appproxy/tunnel';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { CliError } from './errors.js';
import { BackendForwarder } from './forward.js';
import { isRegistered, loadState, saveState } from './state.js';
import { CONNECTOR_VERSION } from './version.js';

const positiveInt = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a whole number ≥ 1');
  return n;
};
const milliseconds = (v: string) => {
  const m = /^(\d+)(ms|s|m)?$/.exec(v.trim());
  if (!m) throw new InvalidArgumentError('must be a duration like 500ms, 15s or 1m');
  return (
    Number(m[1]) * ({ ms: 1, s: 1000, m: 60_000 } as const)[(m[2] ?? 'ms') as 'ms' | 's' | 'm']
  );
};

export function buildProgram(): Command {
  const program = new Command('appproxy-connector')
    .description(
      'The AppProxy connector: dials out to the relay and forwards requests to internal apps.',
    )
    .version(CONNECTOR_VERSION)
    .showHelpAfterError()
    .exitOverride();

  program
    .command('register')
    .description(
      'Register with a relay using a one-time token; stores key and certificate in --state-dir.',
    )
    .requiredOption(
      '--relay <url>',
      "the relay's tunnel endpoint, e.g. https://relay.example.com:8443",
    )
    .requiredOption(
      '--token <token>',
      'one-time registration token from `appproxy-relay token create`',
    )
    .requiredOption('--state-dir <dir>', 'where the connector keeps its key and certificate')
    .option('--force', 'replace an existing registration in --state-dir')
    .action(async (opts: { relay: string; token: string; stateDir: string; force?: boolean }) => {
      const dir = resolve(opts.stateDir);
      if (isRegistered(dir) && !opts.force) {
        throw new CliError(`${dir} already holds a registration (use --force to replace it)`, 2);
      }
      let relayUrl: URL;
      try {
        relayUrl = new URL(opts.relay);
        if (relayUrl.protocol !== 'https:') throw new Error();
      } catch {
        throw new CliError(`--relay must be an https:// URL, got ${opts.relay}`, 2);
      }
      // Loaded here only: the X.509 stack costs ~MBs of resident memory that `start` never needs.
      const { createKeyAndCsr } = await import('@appproxy/pki');
      const { keyPem, csrPem } = await createKeyAndCsr({ commonName: hostname() });
      const result = await registerWithRelay({
        relayUrl: relayUrl.origin,
        token: opts.token,
        csrPem,
        hostname: hostname(),
        version: CONNECTOR_VERSION,
      });
      saveState(dir, {
        relayUrl: relayUrl.origin,
        connectorId: result.connectorId,
        group: result.group,
        registeredAt: new Date().toISOString(),
        keyPem,
        certPem: result.certificate,
        relayCaPem: result.caCertificate,
      });
      process.stdout.write(`registered connector ${result.connectorId} in group ${result.group}\n`);
    });

  program
    .command('start')
    .description('Connect to the relay and serve requests until SIGTERM (which drains first).')
    .requiredOption('--state-dir <dir>', 'the directory given to `register`')
    .option(
      '--outbound-proxy <url>',
      'reach the relay through this HTTP CONNECT proxy (default: $HTTPS_PROXY)',
    )
    .option('--tunnels <n>', 'parallel tunnel connections to the relay', positiveInt, 2)
    .option('--ping-interval <duration>', 'tunnel liveness PING interval', milliseconds, 15_000)
    .option(
      '--drain-timeout <duration>',
      'how long SIGTERM waits for in-flight requests',
      milliseconds,
      30_000,
    )
    .action(
      async (opts: {
        stateDir: string;
        outboundProxy?: string;
        tunnels: number;
        pingInterval: number;
        drainTimeout: number;
      }) => {
        const state = loadState(resolve(opts.stateDir));
        const log = createLogger({ name: 'connector' }).child({ connectorId: state.connectorId });
        const outboundProxy =
          opts.outboundProxy ?? process.env.HTTPS_PROXY ?? process.env.https_proxy;
        const forwarder = new BackendForwarder({ log });
        const dialer = new TunnelDialer({
          relayUrl: state.relayUrl,
          cert: state.certPem,
          key: state.keyPem,
          ca: state.relayCaPem,
          hello: {
            connectorId: state.connectorId,
            version: CONNECTOR_VERSION,
            hostname: hostname(),
            capabilities: [CAPABILITY.websocket],
          },
          onStream: forwarder.handle,
          tunnels: opts.tunnels,
          pingIntervalMs: opts.pingInterval,
          outboundProxy,
        });
        dialer.on('connected', (e) => log.info('tunnel connected', { ...e }));
        dialer.on('disconnected', (e) => log.warn('tunnel disconnected', { ...e }));
        dialer.on('connectFailed', (e) =>
          log.warn('tunnel connect failed', {
            tunnel: e.tunnel,
            reason: e.reason,
            retryInMs: e.retryInMs,
            code: (e.error as TunnelError).code,
          }),
        );
        log.info('connector starting', {
          relay: state.relayUrl,
          group: state.group,
          tunnels: opts.tunnels,
          outboundProxy,
          version: CONNECTOR_VERSION,
        });
        dialer.start();
        await new Promise<void>((done) => {
          const stop = (signal: string) => {
            log.info('connector draining', { signal, drainTimeoutMs: opts.drainTimeout });
            dialer
              .stop({ drainTimeoutMs: opts.drainTimeout })
              .then(() => forwarder.close())
              .then(done, done);
          };
          process.once('SIGTERM', () => stop('SIGTERM'));
          process.once('SIGINT', () => stop('SIGINT'));
        });
        log.info('connector stopped');
      },
    );

  return program;
}

/** Runs the CLI; returns the exit code instead of exiting, so tests can call it. */
export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    if (err instanceof CliError) {
      process.stderr.write(`appproxy-connector: ${err.message}\n`);
      return err.exitCode;
    }
    const e = err as Error & { code?: string };
    process.stderr.write(`appproxy-connector: ${e.code ? `${e.code}: ` : ''}${e.message}\n`);
    return 1;
  }
}
