import type { RelayConfig } from '@appproxy/config';
import type { Command } from 'commander';
import { randomBytes } from 'node:crypto';
import * as ops from './admin/operations.js';
import { listenerUrl } from './admin/session.js';
import type { AppTestCheck, AppTestResult } from './diagnostics.js';

/** What the command needs from cli.ts (kept there: its error class, config reading, admin runs). */
export interface AppsCliDeps {
  readConfig(file: string): Promise<RelayConfig>;
  fail(message: string, exitCode: number): Error;
  /** Runs admin operations as `cli` on the configured store (audited). */
  withAdmin<T>(config: RelayConfig, fn: (ctx: ops.AdminContext) => Promise<T>): Promise<T>;
}

/** The short-lived admin token `apps test` makes itself when none is given: this, a suffix. */
const CLI_TOKEN_NAME = 'cli-apps-test';
const CLI_TOKEN_TTL_MS = 2 * 60_000;
/** The relay answers within its checks' bound (30 s) and the connectors' slack. */
const REQUEST_TIMEOUT_MS = 60_000;

/**
 * `appproxy-relay apps test <name>`: asks the running relay's admin API
 * (`relay.adminListen`) to test an app through its connectors and prints a table per
 * connector; exit 0 when every check passed, 1 when one failed, 2 for usage/configuration.
 */
export function addAppsCommands(program: Command, deps: AppsCliDeps): void {
  const apps = program.command('apps').description('Published apps.');
  apps
    .command('test')
    .description(
      "Test an app through each connector of its group: resolve, connect, TLS, a GET of the internal URL, the SSO dry run (asks the running relay's admin API).",
    )
    .argument('<name>', 'the app’s name in appproxy.yaml')
    .requiredOption('--config <file>', 'path to appproxy.yaml')
    .option('--connector <id>', 'only this connector of the app’s group')
    .option('--user <name>', 'dry-run single sign-on for this user (e.g. alice@corp.example)')
    .option(
      '--token <token>',
      'admin API token (default: $APPPROXY_ADMIN_TOKEN, else a 2-minute token made through the state store)',
    )
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      '\nExit codes: 0 every check passed; 1 a check failed; 2 usage or configuration.',
    )
    .action(
      async (
        name: string,
        opts: { config: string; connector?: string; user?: string; token?: string; json?: boolean },
      ) => {
        const config = await deps.readConfig(opts.config);
        const at = config.relay.adminListen;
        if (!at)
          throw deps.fail(
            `relay.adminListen is not set in ${opts.config}: apps test asks the running relay's admin API there`,
            2,
          );
        const base = listenerUrl(at);
        const given = opts.token ?? (process.env.APPPROXY_ADMIN_TOKEN || undefined);
        const made = given ? undefined : await makeToken(config, deps);
        try {
          const result = await post(
            `${base}/api/v1/apps/${encodeURIComponent(name)}/tests`,
            given ?? made!.token,
            {
              ...(opts.connector !== undefined && { connector: opts.connector }),
              ...(opts.user !== undefined && { user: opts.user }),
            },
            deps,
          );
          process.stdout.write(
            opts.json ? `${JSON.stringify(result, null, 2)}\n` : formatAppTest(result),
          );
          if (!result.ok) throw deps.fail('', 1);
        } finally {
          if (made) await made.revoke();
        }
      },
    );
}

/**
 * A 2-minute admin token, made and revoked through the admin operations (both audited, actor
 * `cli`); its name is unique so that two runs at once do not clash.
 */
async function makeToken(
  config: RelayConfig,
  deps: AppsCliDeps,
): Promise<{ token: string; revoke: () => Promise<void> }> {
  const name = `${CLI_TOKEN_NAME}-${randomBytes(3).toString('hex')}`;
  const made = await deps.withAdmin(config, (ctx) =>
    ops.createAdminToken(ctx, { name, ttlMs: CLI_TOKEN_TTL_MS }),
  );
  return {
    token: made.token,
    revoke: () => deps.withAdmin(config, (ctx) => ops.revokeAdminToken(ctx, made.id)),
  };
}

async function post(
  url: string,
  token: string,
  body: object,
  deps: AppsCliDeps,
): Promise<AppTestResult> {
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
    throw deps.fail(
      `the relay's admin API at ${new URL(url).origin} does not answer (${cause}): is the relay running?`,
      1,
    );
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw deps.fail(`the admin API answered ${res.status} without JSON`, 1);
  }
  if (res.status === 200) return json as AppTestResult;
  const error = (json as { error?: { code?: string; message?: string } }).error;
  const line = `${error?.code ?? res.status}: ${error?.message ?? 'no message'}`;
  // A name that is not an app (or a connector of its group) is a usage mistake.
  throw deps.fail(line, res.status === 404 || res.status === 400 ? 2 : 1);
}

function result(c: AppTestCheck): string {
  if (c.skipped) return 'skip';
  if (!c.ok) return 'fail';
  return c.warn ? 'warn' : 'pass';
}

/**
 * The result as people read it: a table per connector (CHECK, RESULT, TIME, DETAIL), then
 * a FIX line for each failure and warning.
 *
 * @example
 * process.stdout.write(formatAppTest(result));
 */
export function formatAppTest(r: AppTestResult): string {
  const out: string[] = [
    `App ${r.app}: ${r.ok ? 'PASS' : 'FAIL'} (${r.at}${r.user !== undefined ? `, user ${r.user}` : ''})`,
  ];
  if (r.error) {
    out.push(`${r.error.code}: ${r.error.message}`);
    if (r.error.fix) out.push(`FIX: ${r.error.fix}`);
  }
  for (const c of r.connectors) {
    out.push(
      '',
      `Connector ${c.id}${c.hostname ? ` (${c.hostname})` : ''}: ${c.ok ? 'pass' : 'fail'}`,
    );
    if (c.error) {
      out.push(`${c.error.code}: ${c.error.message}`);
      if (c.error.fix) out.push(`FIX: ${c.error.fix}`);
      continue;
    }
    const rows = [
      ['CHECK', 'RESULT', 'TIME', 'DETAIL'],
      ...c.checks.map((k) => [
        k.name,
        result(k),
        k.ms === undefined ? '-' : `${k.ms} ms`,
        k.detail,
      ]),
    ];
    const widths = [0, 1, 2].map((i) => Math.max(...rows.map((row) => row[i]!.length)));
    for (const row of rows)
      out.push(row.map((cell, i) => (i < 3 ? cell.padEnd(widths[i]!) : cell)).join('  '));
    for (const k of c.checks)
      if (k.fix && (!k.ok || k.warn) && !k.skipped) out.push(`FIX ${k.name}: ${k.fix}`);
  }
  return `${out.join('\n')}\n`;
}
