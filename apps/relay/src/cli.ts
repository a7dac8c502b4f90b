import {
  ConfigError,
  StateStoreError,
  loadConfig,
  type NewAuditEvent,
  type RelayConfig,
} from '@appproxy/config';
import { createLogger, parseLogFormat, type Logger } from '@appproxy/telemetry';
import * as ops from './admin/operations.js';
import { AdminError, type AdminContext } from './admin/operations.js';
import { openRelayStore } from './relay-store.js';
import { Command, CommanderError } from 'commander';
import { checkConfig, formatProblem, type ConfigProblem } from './config-check.js';
import { ListenError, Relay } from './relay.js';
import {
  runPrimary,
  sharedStdoutSink,
  tellPrimary,
  workerChannel,
  workerFromEnv,
} from './workers.js';
import { RELAY_VERSION_LINE } from './version.js';
import { addAppsCommands } from './apps-test-cli.js';
import { durationOf, timeOf } from './admin/routes.js';
import { LOG_FORMAT_HELP, applyLogSettings } from './log-settings.js';

/** A failure the CLI reports as one line on stderr with a non-zero exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

async function readConfig(file: string): Promise<RelayConfig> {
  try {
    return await loadConfig(file);
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.message, 2);
    throw err;
  }
}

/**
 * One hot reload: the file is read and checked as `start` would; a file that fails is refused
 * with its errors logged, and the running configuration keeps serving.
 */
const RELOAD_REFUSED = 'configuration reload refused; the running configuration keeps serving';

/**
 * Resolves true when the file was applied, false when it was refused; either is audited
 * (`admin.config.reloaded`, detail `ok`) as `actor`.
 */
async function reloadFrom(
  file: string,
  relay: Relay,
  log: Logger,
  actor = 'signal:SIGHUP',
): Promise<boolean> {
  log.info('configuration reload', { file });
  const refused = (errors: number) =>
    relay.audit.record({
      type: 'admin.config.reloaded',
      actor,
      code: 'CONFIG_INVALID',
      detail: { ok: false, file, errors },
    });
  try {
    const config = await loadConfig(file);
    // What `start` refuses, a reload refuses too, with the same lines.
    const errors = await configErrors(config, log);
    if (errors.length > 0) {
      log.error(RELOAD_REFUSED, { file, errors });
      refused(errors.length);
      return false;
    }
    const before = relay.config;
    const { needRestart } = relay.reload(config);
    const names = (c: RelayConfig) => new Set(c.apps.map((a) => a.name));
    const [was, now] = [names(before), names(config)];
    log.info('configuration reloaded', {
      apps: config.apps.length,
      added: [...now].filter((n) => !was.has(n)),
      removed: [...was].filter((n) => !now.has(n)),
      ...(needRestart.length > 0 && { needRestart }),
    });
    if (needRestart.length > 0)
      log.warn('configuration reload: these settings apply after a restart', {
        settings: needRestart,
      });
    relay.audit.record({
      type: 'admin.config.reloaded',
      actor,
      detail: {
        ok: true,
        file,
        apps: config.apps.length,
        added: [...now].filter((n) => !was.has(n)).join(',') || null,
        removed: [...was].filter((n) => !now.has(n)).join(',') || null,
        needRestart: needRestart.join(',') || null,
      },
    });
    return true;
  } catch (err) {
    log.error(RELOAD_REFUSED, {
      file,
      ...(err instanceof ConfigError
        ? { errors: err.issues.map((i) => `${i.path}: ${i.message}`) }
        : { error: err }),
    });
    refused(err instanceof ConfigError ? err.issues.length : 1);
    return false;
  }
}

export function buildProgram(): Command {
  const program = new Command('appproxy-relay')
    .description(
      'The public edge of AppProxy: pre-authenticates users and forwards requests through connectors.',
    )
    .version(RELAY_VERSION_LINE)
    .showHelpAfterError()
    .exitOverride()
    .option('--log-format <format>', LOG_FORMAT_HELP)
    .addHelpText(
      'after',
      '\nExit codes: 0 ok; 2 bad configuration or usage (one line per problem on stderr); 1 anything else.',
    )
    .hook('preAction', (self) => applyLogSettings(self));

  program
    .command('start')
    .description('Start the relay (public HTTPS, tunnel and admin listeners).')
    .requiredOption('--config <file>', 'path to appproxy.yaml')
    .action(async (opts: { config: string }) => {
      const config = await readConfig(opts.config);
      const worker = workerFromEnv();
      const primaryLog = createLogger({ name: 'relay' });
      // The primary checks the file once; its workers take it as checked.
      if (!worker) await refuseBrokenConfig(config, primaryLog);
      if (!worker && config.relay.workers > 1) {
        const code = await runPrimary(config, primaryLog, {
          rereadConfig: () => loadConfig(opts.config),
        });
        if (code !== 0) throw new CliError('', code);
        return;
      }
      const log = worker
        ? createLogger({
            name: 'relay',
            write: sharedStdoutSink(),
            // As the primary's: text on a terminal, unless the environment says otherwise.
            format:
              parseLogFormat(process.env.APPPROXY_LOG_FORMAT, 'APPPROXY_LOG_FORMAT') ??
              (process.stdout.isTTY ? 'text' : 'json'),
          }).child({ worker: worker.index })
        : primaryLog;
      const relay = new Relay(config, log, worker ? { worker } : {});
      const primary = worker && workerChannel(relay);
      // SIGHUP (systemctl reload): re-read the file; until the relay listens, it waits.
      let started = false;
      let reloading: Promise<void> | undefined;
      let again = false;
      const reload = (): void => {
        if (!started || reloading) {
          again = true;
          return;
        }
        reloading = reloadFrom(opts.config, relay, log)
          .then((ok) => tellPrimary({ t: 'reloaded', ok }))
          .finally(() => {
            reloading = undefined;
            if (again) {
              again = false;
              reload();
            }
          });
      };
      process.on('SIGHUP', reload);
      const addresses = await relay.start();
      started = true;
      const port = (address?: string) => Number(/\d+$/.exec(address ?? '')?.[0]);
      tellPrimary({
        t: 'listening',
        tunnel: addresses.tunnel,
        listenPort: port(addresses.public),
        ...(addresses.redirect && { redirectPort: port(addresses.redirect) }),
      });
      if (again) {
        again = false;
        reload();
      }
      await new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          log.info('relay stopping', { signal, drainTimeoutMs: config.relay.drainTimeoutMs });
          relay.stop().then(resolve, resolve);
        };
        if (primary) return void primary.onStop(stop);
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
      log.info('relay stopped');
    });

  const token = program.command('token').description('Registration tokens for connectors.');
  token
    .command('create')
    .description('Create a one-time registration token; prints the token alone on stdout.')
    .requiredOption('--config <file>', 'path to appproxy.yaml')
    .option('--group <name>', 'connector group the new connector joins', 'Default')
    .option('--ttl <duration>', 'how long the token stays valid (e.g. 30m, 1h, 24h)', '1h')
    .action(async (opts: { config: string; group: string; ttl: string }) => {
      const config = await readConfig(opts.config);
      if (!config.connectorGroups.some((g) => g.name === opts.group)) {
        throw new CliError(`no connector group named "${opts.group}" in ${opts.config}`, 2);
      }
      const ttlMs = durationOption('--ttl', opts.ttl);
      // The store first: it creates stateDir, or says why it cannot.
      await withAdmin(config, async (ctx) => {
        const created = await ops.createRegistrationToken(ctx, { group: opts.group, ttlMs });
        process.stdout.write(`${created.token}\n`);
      });
    });

  token
    .command('list')
    .description(
      'List registration tokens that can still be used (no secrets): id, group, created, expires.',
    )
    .requiredOption('--config <file>', 'path to appproxy.yaml')
    .option('--json', 'print JSON')
    .action(async (opts: { config: string; json?: boolean }) => {
      const config = await readConfig(opts.config);
      const rows = await withAdmin(config, (ctx) => ops.listRegistrationTokens(ctx));
      if (opts.json) return void process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
      printTable(
        ['ID', 'GROUP', 'CREATED', 'EXPIRES'],
        rows.map((r) => [r.id, r.group, r.createdAt, r.expiresAt]),
      );
    });

  token
    .command('revoke')
    .description('Revoke a registration token that was not used yet: it is refused from now on.')
    .argument('<id>', 'token id (from `token list`)')
    .requiredOption('--config <file>', 'path to appproxy.yaml')
    .action(async (id: string, opts: { config: string }) => {
      const config = await readConfig(opts.config);
      await withAdmin(config, (ctx) => ops.revokeRegistrationToken(ctx, id));
      process.stdout.write(`registration token ${id} revoked\n`);
    });

  const adminToken = program
    .command('admin-token')
    .description('Bearer tokens of the admin API (relay.adminListen).');
  adminToken
    .command('create')
    .description('Create an admin API token; prints the token alone on stdout (shown once).')
    .requiredOption('--config <file>', 'path to appproxy.yaml')
    .requiredOption('--name <name>', 'what the token is for (audited as token:<name>)')
    .option('--ttl <duration>', 'how long the token stays valid (e.g. 90d); default: until revoked')
    .action(async (opts: { config: string; name: string; ttl?: string }) => {
      const config = await readConfig(opts.config);
      const ttlMs = opts.ttl === undefined ? undefined : durationOption('--ttl', opts.ttl);
      const created = await withAdmin(config, (ctx) =>
        ops.createAdminToken(ctx, { name: opts.name, ...(ttlMs !== undefined && { ttlMs }) }),
      );
      process.stdout.write(`${created.token}\n`);
    });

  adminToken
    .command('list')
    .description('List admin tokens neither revoked nor expired (no secrets).')
    .requiredOption('--config <file>', 'path to appproxy.yaml')
    .option('--json', 'print JSON')
    .action(async (opts: { config: string; json?: boolean }) => {
      const config = await readConfig(opts.config);
      const rows = await withAdmin(config, (ctx) => ops.listAdminTokens(ctx));
      if (opts.json) return void process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
      printTable(
        ['ID', 'NAME', 'CREATED', 'EXPIRES', 'LAST USED', 'CREATED BY'],
        rows.map((r) => [
          r.id,
          r.name,
          r.createdAt,
          r.expiresAt ?? 'never',
          r.lastUsedAt ?? '-',
          r.createdBy ?? '-',
        ]),
      );
    });

  adminToken
    .command('revoke')
    .description('Revoke an admin token by id or name: it is refused from now on.')
    .argument('<id-or-name>', 'token id or name (from `admin-token list`)')
    .requiredOption('--config <file>', 'path to appproxy.yaml')
    .action(async (idOrName: string, opts: { config: string }) => {
      const config = await readConfig(opts.config);
      await withAdmin(config, (ctx) => ops.revokeAdminToken(ctx, idOrName));
      process.stdout.write(`admin token ${idOrName} revoked\n`);
    });

  program
    .command('audit')
    .description('Show audit events, newest first: sign-ins, refusals, connector and admin events.')
    .requiredOption('--config <file>', 'path to appproxy.yaml')
    .option('--since <when>', 'a duration back from now (1h, 7d) or an ISO time', '24h')
    .option('--until <when>', 'a duration back from now or an ISO time')
    .option('--user <user>', 'only events of this user')
    .option('--app <name>', 'only events of this app')
    .option('--type <type>', 'an event type, or a prefix: signin, admin., access.refused')
    .option('--limit <n>', 'at most this many events (1-1000)', '200')
    .option('--json', 'print JSON')
    .action(
      async (opts: {
        config: string;
        since: string;
        until?: string;
        user?: string;
        app?: string;
        type?: string;
        limit: string;
        json?: boolean;
      }) => {
        const now = Date.now();
        const since = timeOption('--since', opts.since, now);
        const until = opts.until === undefined ? undefined : timeOption('--until', opts.until, now);
        if (!/^\d+$/.test(opts.limit))
          throw new CliError(`--limit: not a whole number: ${opts.limit}`, 2);
        const config = await readConfig(opts.config);
        const events = await withAdmin(config, (ctx) =>
          ops.queryAudit(ctx, {
            since,
            ...(until && { until }),
            ...(opts.user !== undefined && { user: opts.user }),
            ...(opts.app !== undefined && { app: opts.app }),
            ...(opts.type !== undefined && { type: opts.type }),
            limit: Number(opts.limit),
          }),
        );
        if (opts.json) return void process.stdout.write(`${JSON.stringify(events, null, 2)}\n`);
        printTable(
          ['TIME', 'TYPE', 'USER', 'APP', 'CLIENT', 'CODE', 'ACTOR'],
          events.map((e) => [
            e.at,
            e.type,
            e.user ?? '-',
            e.app ?? '-',
            e.clientAddress ?? '-',
            e.code ?? '-',
            e.actor ?? '-',
          ]),
        );
      },
    );

  const connectors = program.command('connectors').description('Registered connectors.');
  connectors
    .command('list')
    .description(
      'List registered connectors: group, host, version, state, last seen, open tunnels, requests in flight, Kerberos single sign-on, missing capabilities.',
    )
    .requiredOption('--config <file>', 'path to appproxy.yaml')
    .option('--json', 'print JSON')
    .action(async (opts: { config: string; json?: boolean }) => {
      const config = await readConfig(opts.config);
      const rows = await withAdmin(config, (ctx) => ops.listConnectors(ctx));
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        return;
      }
      printTable(
        [
          'ID',
          'GROUP',
          'HOST',
          'VERSION',
          'STATE',
          'LAST SEEN',
          'TUNNELS',
          'IN-FLIGHT',
          'INSTANCES',
          'KERBEROS',
          'LACKS',
        ],
        rows.map((r) => [
          r.id,
          r.group,
          r.hostname || '-',
          r.version || '-',
          r.state,
          r.lastSeen ?? '-',
          String(r.tunnels),
          String(r.inFlight),
          r.instances
            .filter((i) => i.tunnels > 0)
            .map((i) => `${i.name}(${i.tunnels})`)
            .join(',') || '-',
          r.kerberos ? 'yes' : '-',
          r.missingCapabilities.join(',') || '-',
        ]),
      );
    });

  connectors
    .command('delete')
    .description(
      'Delete a connector: its certificate is revoked, its tunnels close at once and it can never connect again.',
    )
    .argument('<id>', 'connector id (from `connectors list`)')
    .requiredOption('--config <file>', 'path to appproxy.yaml')
    .action(async (id: string, opts: { config: string }) => {
      const config = await readConfig(opts.config);
      await withAdmin(config, (ctx) => ops.deleteConnector(ctx, id));
      process.stdout.write(`connector ${id} deleted; its certificate is revoked\n`);
    });

  program
    .command('config')
    .description('Configuration.')
    .command('check')
    .description(
      'Check appproxy.yaml without starting: schema, certificates and keys, listeners, stateDir (errors, exit 2); uncovered external hosts, identity provider discovery (warnings, exit 0).',
    )
    .requiredOption('--config <file>', 'path to appproxy.yaml')
    .option('--offline', 'do not fetch the identity provider discovery document')
    .option('--json', 'print { ok, problems: [{ severity, path, message }] } on stdout')
    .action(async (opts: { config: string; offline?: boolean; json?: boolean }) => {
      let problems: ConfigProblem[];
      try {
        problems = await checkConfig(await loadConfig(opts.config), {
          discovery: !opts.offline,
        });
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        problems = err.issues.map((i) => ({
          severity: 'error' as const,
          path: i.path,
          message: i.line === undefined ? i.message : `${i.message} (line ${i.line})`,
        }));
        if (!opts.json) throw new CliError(err.message, 2);
      }
      const ok = !problems.some((p) => p.severity === 'error');
      if (opts.json) {
        process.stdout.write(`${JSON.stringify({ ok, problems }, null, 2)}\n`);
      } else {
        for (const p of problems) process.stderr.write(`${p.severity}: ${formatProblem(p)}\n`);
        const warnings = problems.filter((p) => p.severity === 'warning').length;
        if (ok)
          process.stdout.write(
            `${opts.config}: ok${warnings ? ` (${warnings} warning${warnings > 1 ? 's' : ''})` : ''}\n`,
          );
      }
      if (!ok) throw new CliError('', 2);
    });

  addAppsCommands(program, {
    readConfig,
    fail: (message, code) => new CliError(message, code),
    withAdmin,
  });
  return program;
}

/**
 * What `config check` calls an error stops `start` with the same lines (exit 2); its
 * warnings are logged. Discovery is left to the relay (it logs and retries).
 */
async function refuseBrokenConfig(config: RelayConfig, log: Logger): Promise<void> {
  const errors = await configErrors(config, log);
  if (errors.length) throw new CliError(errors.join('\n'), 2);
}

/**
 * `config check` without discovery (the relay logs and retries that itself): its warnings
 * logged, its errors returned as `path: message` lines.
 */
async function configErrors(config: RelayConfig, log: Logger): Promise<string[]> {
  const problems = await checkConfig(config, { discovery: false });
  for (const p of problems)
    if (p.severity === 'warning') log.warn('configuration', { path: p.path, problem: p.message });
  return problems.filter((p) => p.severity === 'error').map(formatProblem);
}

/** `--since 1h` (that long ago) or `--since 2026-11-30T08:00:00Z`; a usage error otherwise. */
function timeOption(flag: string, value: string, now: number): Date {
  try {
    return timeOf(flag, value, now);
  } catch {
    throw new CliError(`${flag}: not a duration (1h, 7d) or an ISO time: ${value}`, 2);
  }
}

/** `--ttl 90d` in milliseconds; a usage error (exit 2) when it is not a duration. */
function durationOption(flag: string, value: string): number {
  try {
    return durationOf(flag, value);
  } catch {
    throw new CliError(`${flag}: not a duration: ${value}`, 2);
  }
}

/**
 * Runs admin operations as `cli` on the configured store; what they audit is stored before
 * the store closes. An AdminError is a one-line CLI error: exit 1 when the store is
 * unavailable, else 2.
 */
async function withAdmin<T>(
  config: RelayConfig,
  fn: (ctx: AdminContext) => Promise<T>,
): Promise<T> {
  const store = await openRelayStore(config.relay);
  const audited: NewAuditEvent[] = [];
  try {
    return await fn({ config, store, actor: 'cli', audit: { record: (e) => audited.push(e) } });
  } catch (err) {
    if (err instanceof AdminError) throw new CliError(err.message, err.status === 503 ? 1 : 2);
    throw err;
  } finally {
    if (audited.length > 0)
      await store.appendAudit(audited).catch((err: Error) => {
        process.stderr.write(`appproxy-relay: warning: audit events not stored: ${err.message}\n`);
      });
    await store.close();
  }
}

/** Columns padded to their widest cell, two spaces apart. */
function printTable(header: string[], rows: string[][]): void {
  const table = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  for (const row of table)
    process.stdout.write(
      `${row
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd()}\n`,
    );
}

/** Runs the CLI; returns the exit code instead of exiting, so tests can call it. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version exit 0; usage errors (already printed by commander) exit 2.
      return err.exitCode === 0 ? 0 : 2;
    }
    if (err instanceof CliError) {
      // Several problems: one line each, every line prefixed.
      if (err.message)
        for (const line of err.message.split('\n'))
          process.stderr.write(`appproxy-relay: ${line}\n`);
      return err.exitCode;
    }
    if (err instanceof StateStoreError && err.code === 'APPPROXY_STATE_DIR_UNUSABLE') {
      process.stderr.write(`appproxy-relay: relay.stateDir: ${err.message}\n`);
      return 2;
    }
    if (err instanceof ListenError) {
      process.stderr.write(`appproxy-relay: ${err.message}\n`);
      return 1;
    }
    const e = err as Error & { code?: string };
    process.stderr.write(`appproxy-relay: ${e.code ? `${e.code}: ` : ''}${e.message}\n`);
    return 1;
  }
}
