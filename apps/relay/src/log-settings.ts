import { LogSettingError, parseLogFormat, parseLogLevel } from '@appproxy/telemetry';
import type { Command } from 'commander';
import { CliError } from './cli.js';

export const LOG_FORMAT_HELP =
  'log lines as json or text (default: $APPPROXY_LOG_FORMAT, else text on a terminal, json otherwise)';

/**
 * Checks the log settings before any command runs, so that a typo in APPPROXY_LOG_LEVEL or
 * --log-format is a usage error (exit 2), not a silently different log. The format chosen
 * reaches every logger through APPPROXY_LOG_FORMAT.
 */
export function applyLogSettings(program: Command): void {
  try {
    parseLogLevel(process.env.APPPROXY_LOG_LEVEL);
    const flag = program.opts<{ logFormat?: string }>().logFormat;
    const format =
      parseLogFormat(flag) ??
      parseLogFormat(process.env.APPPROXY_LOG_FORMAT, 'APPPROXY_LOG_FORMAT');
    if (format) process.env.APPPROXY_LOG_FORMAT = format;
  } catch (err) {
    if (err instanceof LogSettingError) throw new CliError(err.message, 2);
    throw err;
  }
}
