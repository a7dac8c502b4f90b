import { KerberosDelegator, SsoError } from '@appproxy/sso';
import { METRICS_CONTENT_TYPE, createLogger } from '@appproxy/telemetry';
import {
  CAPABILITY,
  CONTROL,
  DEFAULT_PING_INTERVAL_MS,
  RelayFleet,
  TunnelError,
  registerWithRelay,
} from '@appproxy/tunnel';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { X509Certificate } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { CliError, EXIT_REVOKED, tunnelAdvice } from './errors.js';
import { diagnoseControl } from './diagnose.js';
import { BackendForwarder } from './forward.js';
import { ConnectorMetrics } from './metrics.js';
import { CertificateRenewal } from './renewal.js';
import { checkWritable, instancesFile, isRegistered, loadState, saveState } from './state.js';
import { CONNECTOR_VERSION, CONNECTOR_VERSION_LINE } from './version.js';
import { LOG_FORMAT_HELP, applyLogSettings } from './log-settings.js';

const positiveInt = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a whole number ≥ 1');
  return n;
};
interface HostPort {
  host: string;
  port: number;
}
/** `host:port` or `[v6]:port`, read by the URL parser (no config package in the connector). */
const listenAddress = (v: string): HostPort => {
  let url: URL | undefined;
  try {
    url = new URL(`http://${v}`);
  } catch {
    // reported below
  }
  // The URL parser drops a default port (":80"), so the port is read from the text.
  const port = /:(\d{1,5})$/.exec(v)?.[1];
  if (!url || port === undefined || Number(port) > 65535 || url.pathname !== '/' || url.username)
    throw new InvalidArgumentError('must be host:port, e.g. 127.0.0.1:9091 or [::1]:9091');
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(port) };
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
    .version(CONNECTOR_VERSION_LINE)
    .showHelpAfterError()
    .exitOverride()
    .option('--log-format <format>', LOG_FORMAT_HELP)
    .addHelpText(
      'after',
      '\nExit codes: 0 ok; 2 usage or an unusable --state-dir; 3 the relay revoked this connector (register again); 1 anything else.',
    )
    .hook('preAction', (self) => applyLogSettings(self));

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
      // Before the token is spent: a registration that cannot be saved is a lost token.
      checkWritable(dir);
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
      let result: Awaited<ReturnType<typeof registerWithRelay>>;
      try {
        result = await registerWithRelay({
          relayUrl: relayUrl.origin,
          token: opts.token,
          csrPem,
          hostname: hostname(),
          version: CONNECTOR_VERSION,
        });
      } catch (err) {
        const { advice } = tunnelAdvice(err, relayUrl.origin);
        if (!advice) throw err;
        const e = err as Error & { code?: string };
        throw new CliError(`${e.code ? `${e.code}: ` : ''}${e.message} — ${advice}`, 1);
      }
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
    .option('--tunnels <n>', 'parallel tunnel connections to each relay instance', positiveInt, 2)
    .option(
      '--ping-interval <duration>',
      'PING a quiet tunnel this often',
      milliseconds,
      DEFAULT_PING_INTERVAL_MS,
    )
    .option(
      '--ping-timeout <duration>',
      'a relay silent this long is dead (default: 3 × ping interval)',
      milliseconds,
    )
    .option(
      '--drain-timeout <duration>',
      'how long SIGTERM waits for in-flight requests',
      milliseconds,
      30_000,
    )
    .option('--no-websocket', 'do not serve WebSocket (HTTP upgrade) requests')
    .option(
      '--kerberos-keytab <file>',
      'Kerberos single sign-on: keytab of the connector’s service account (default: $APPPROXY_KERBEROS_KEYTAB)',
    )
    .option(
      '--kerberos-principal <name>',
      "the service account in that keytab, e.g. 'appproxy$@CORP.EXAMPLE' (default: $APPPROXY_KERBEROS_PRINCIPAL)",
    )
    .option(
      '--kerberos-kdc <host[:port]>',
      'a KDC to use instead of krb5.conf’s; repeatable (default: $APPPROXY_KERBEROS_KDC, comma-separated)',
      (v: string, all: string[] = []) => [...all, ...v.split(',').map((k) => k.trim())],
    )
    .option(
      '--metrics-listen <host:port>',
      'serve Prometheus /metrics (and /healthz) here, e.g. 127.0.0.1:9091',
      listenAddress,
    )
    .action(
      async (opts: {
        stateDir: string;
        outboundProxy?: string;
        tunnels: number;
        pingInterval: number;
        pingTimeout?: number;
        drainTimeout: number;
        websocket: boolean;
        metricsListen?: HostPort;
        kerberosKeytab?: string;
        kerberosPrincipal?: string;
        kerberosKdc?: string[];
      }) => {
        // Flags first: a usage mistake is told before anything is read or started.
        const kerberos = kerberosDelegator(opts);
        const stateDir = resolve(opts.stateDir);
        const state = loadState(stateDir);
        const log = createLogger({ name: 'connector' }).child({ connectorId: state.connectorId });
        const outboundProxy =
          opts.outboundProxy ?? process.env.HTTPS_PROXY ?? process.env.https_proxy;
        const metrics = new ConnectorMetrics();
        if (kerberos) metrics.watchKerberos(kerberos.delegator.stats);
        const forwarder = new BackendForwarder({
          log,
          metrics,
          ...(kerberos && { kerberos: kerberos.delegator }),
        });
        const renewal = new CertificateRenewal({
          stateDir,
          state,
          log,
          metrics,
          onRenewed: (credentials) => {
            dialer
              ?.updateCredentials(credentials)
              .catch((err: unknown) => log.warn('tunnel rotation failed', { error: err }));
          },
        });
        // One dialer per relay instance, following the list the relays send (§3.6).
        const dialer: RelayFleet = new RelayFleet({
          bootstrapUrl: state.relayUrl,
          instancesFile: instancesFile(stateDir),
          removalDrainTimeoutMs: opts.drainTimeout,
          cert: state.certPem,
          key: state.keyPem,
          ca: state.relayCaPem,
          hello: {
            connectorId: state.connectorId,
            version: CONNECTOR_VERSION,
            hostname: hostname(),
            capabilities: [
              ...(opts.websocket ? [CAPABILITY.websocket] : []),
              CAPABILITY.backendTls,
              CAPABILITY.diagnose,
              ...(kerberos ? [CAPABILITY.kerberos] : []),
            ],
          },
          onStream: forwarder.handle,
          onControl: (name, body) =>
            name === CONTROL.release
              ? forwarder.release(body)
              : name === CONTROL.diagnose
                ? diagnoseControl(body, {
                    backendClient: (...a) => forwarder.backendClient(...a),
                    ...(kerberos && { kerberos: kerberos.delegator }),
                    log,
                  })
                : renewal.handle(name, body),
          tunnels: opts.tunnels,
          pingIntervalMs: opts.pingInterval,
          pingTimeoutMs: opts.pingTimeout,
          outboundProxy,
          rotationDrainTimeoutMs: opts.drainTimeout,
        });
        metrics.watchInstances(() => dialer.tunnelsByInstance());
        dialer.on('instancesChanged', (e) =>
          log.info('relay instances changed', {
            added: e.added,
            removed: e.removed,
            from: e.from,
            instances: e.instances.map((i) => i.name),
          }),
        );
        dialer.on('warning', (w) => log.warn(w.message, { ...w }));
        dialer.on('connected', (e) => {
          metrics.tunnels.labels().set(dialer.connectedCount);
          if (!e.rotated) metrics.tunnelConnects.labels().inc();
          log.info('tunnel connected', { ...e });
        });
        dialer.on('disconnected', (e) => {
          metrics.tunnels.labels().set(dialer.connectedCount);
          metrics.tunnelDisconnects.labels().inc();
          log.warn('tunnel disconnected', { ...e });
        });
        let revoked: string | undefined;
        let stopNow: ((why: string) => void) | undefined;
        dialer.on('connectFailed', (e) => {
          metrics.tunnelConnectFailures.labels().inc();
          const code = (e.error as TunnelError).code;
          if (code === 'APPPROXY_TUNNEL_REVOKED') {
            // Retrying cannot help: stop (exit 3) rather than knock on the relay forever.
            if (revoked === undefined) {
              revoked = e.reason;
              log.error('revoked: register again', { reason: e.reason, code });
              stopNow?.('revoked');
            }
            return;
          }
          log.warn('tunnel connect failed', {
            tunnel: e.tunnel,
            instance: e.instance,
            relay: e.relayUrl,
            reason: e.reason,
            retryInMs: e.retryInMs,
            code,
            ...tunnelAdvice(e.error, e.relayUrl),
            ...certificateAdvice(state.certPem),
          });
        });
        let metricsServer: ReturnType<typeof createServer> | undefined;
        if (opts.metricsListen) {
          metricsServer = createServer((req, res) => {
            const path = (req.url ?? '/').split('?')[0];
            if (path === '/metrics') {
              res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE });
              return void res.end(metrics.registry.render());
            }
            if (path === '/healthz') {
              const up = dialer.connectedCount > 0;
              res.writeHead(up ? 200 : 503, { 'content-type': 'application/json' });
              return void res.end(
                JSON.stringify({
                  tunnels: dialer.connectedCount,
                  instances: Object.fromEntries(dialer.tunnelsByInstance()),
                }),
              );
            }
            res.writeHead(404).end();
          });
          const at = opts.metricsListen;
          const address = await new Promise<AddressInfo>((done, fail) => {
            metricsServer!.once('error', (err) =>
              fail(new CliError(`--metrics-listen ${at.host}:${at.port}: ${err.message}`, 2)),
            );
            metricsServer!.listen(at.port, at.host, () =>
              done(metricsServer!.address() as AddressInfo),
            );
          });
          log.info('metrics listening', { address: `${address.address}:${address.port}` });
        }
        log.info('connector starting', {
          relay: state.relayUrl,
          group: state.group,
          tunnels: opts.tunnels,
          outboundProxy,
          websocket: opts.websocket,
          ...(kerberos && { kerberos: kerberos.settings }),
          version: CONNECTOR_VERSION,
          ...certificateAdvice(state.certPem),
        });
        dialer.start();
        await new Promise<void>((done) => {
          const stop = (signal: string) => {
            log.info('connector draining', { signal, drainTimeoutMs: opts.drainTimeout });
            dialer
              .stop({ drainTimeoutMs: opts.drainTimeout })
              .then(() => forwarder.close())
              .then(() => kerberos?.delegator.close())
              .then(() => metricsServer?.close())
              .then(() => done(), done);
          };
          process.once('SIGTERM', () => stop('SIGTERM'));
          process.once('SIGINT', () => stop('SIGINT'));
          stopNow = stop;
        });
        log.info('connector stopped');
        if (revoked !== undefined)
          throw new CliError(
            `revoked: register again (appproxy-connector register --force): ${revoked}`,
            EXIT_REVOKED,
          );
      },
    );

  return program;
}

/**
 * Kerberos single sign-on from the flags, else `APPPROXY_KERBEROS_*` (the password only from
 * the environment, never a flag: flags show in `ps`); undefined when none is set. The keytab
 * and krb5.conf are read now, so a bad path or file stops `start` (exit 2) with its reason.
 */
function kerberosDelegator(opts: {
  kerberosKeytab?: string;
  kerberosPrincipal?: string;
  kerberosKdc?: string[];
}): { delegator: KerberosDelegator; settings: Record<string, unknown> } | undefined {
  const env = process.env;
  const keytab = opts.kerberosKeytab ?? (env.APPPROXY_KERBEROS_KEYTAB || undefined);
  const password = env.APPPROXY_KERBEROS_PASSWORD || undefined;
  const principal = opts.kerberosPrincipal ?? (env.APPPROXY_KERBEROS_PRINCIPAL || undefined);
  const kdc =
    opts.kerberosKdc ??
    env.APPPROXY_KERBEROS_KDC?.split(',')
      .map((k) => k.trim())
      .filter(Boolean);
  if (keytab === undefined && password === undefined && principal === undefined) {
    if (kdc?.length)
      throw new CliError('--kerberos-kdc needs --kerberos-keytab and --kerberos-principal', 2);
    return undefined;
  }
  if (principal === undefined)
    throw new CliError(
      'Kerberos single sign-on needs --kerberos-principal (or APPPROXY_KERBEROS_PRINCIPAL)',
      2,
    );
  if (keytab === undefined && password === undefined)
    throw new CliError(
      'Kerberos single sign-on needs --kerberos-keytab (or APPPROXY_KERBEROS_KEYTAB, or APPPROXY_KERBEROS_PASSWORD)',
      2,
    );
  try {
    const delegator = new KerberosDelegator({
      principal,
      ...(keytab !== undefined ? { keytab: resolve(keytab) } : { password: password! }),
      ...(kdc?.length && { kdc }),
    });
    return {
      delegator,
      settings: {
        principal,
        realm: delegator.realm,
        credentials: keytab !== undefined ? resolve(keytab) : 'password',
        ...(kdc?.length && { kdc }),
      },
    };
  } catch (err) {
    if (err instanceof SsoError) throw new CliError(`Kerberos single sign-on: ${err.message}`, 2);
    throw err;
  }
}

/**
 * The certificate's expiry for logs; past it, what to do (a connector offline for longer
 * than its certificate's lifetime cannot renew and must register again).
 */
function certificateAdvice(certPem: string): Record<string, string> {
  try {
    const validTo = new Date(new X509Certificate(certPem).validTo);
    if (validTo.getTime() > Date.now()) return { certificateExpires: validTo.toISOString() };
    return {
      certificateExpired: validTo.toISOString(),
      advice: 'the certificate expired: register again with a new token (register --force)',
    };
  } catch {
    return { advice: 'the stored certificate is unreadable: register again (register --force)' };
  }
}

/** Runs the CLI; returns the exit code instead of exiting, so tests can call it. */
export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version exit 0; usage errors (already printed by commander) exit 2.
      return err.exitCode === 0 ? 0 : 2;
    }
    if (err instanceof CliError) {
      process.stderr.write(`appproxy-connector: ${err.message}\n`);
      return err.exitCode;
    }
    const e = err as Error & { code?: string };
    process.stderr.write(`appproxy-connector: ${e.code ? `${e.code}: ` : ''}${e.message}\n`);
    return 1;
  }
}
