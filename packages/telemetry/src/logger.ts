import { redact } from './redact.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line (e.g. `{ requestId }`). */
  child(fields: LogFields): Logger;
  /** Whether lines of `level` are written: skip building costly fields when they are not. */
  enabled(level: LogLevel): boolean;
}

export interface LoggerOptions {
  /** Component name on every line, e.g. `relay`. */
  name: string;
  /** @default 'info' (or $APPPROXY_LOG_LEVEL) */
  level?: LogLevel;
  /** @default process.stdout */
  write?: (line: string) => void;
}

/**
 * One JSON object per line (`ts`, `level`, `name`, `msg`, fields). Secrets are redacted by
 * the logger itself, whatever the caller passes (see `redact`).
 *
 * @example
 * const log = createLogger({ name: 'relay' });
 * log.info('request', { app: 'Expenses', status: 200, headers: { authorization: 'Bearer x' } });
 * // {"ts":"…","level":"info","name":"relay","msg":"request","app":"Expenses","status":200,"headers":{"authorization":"[redacted]"}}
 */
export function createLogger(opts: LoggerOptions, bound: LogFields = {}): Logger {
  const envLevel = process.env.APPPROXY_LOG_LEVEL as LogLevel | undefined;
  const min = RANK[opts.level ?? (envLevel && envLevel in RANK ? envLevel : 'info')];
  const write = opts.write ?? ((line: string) => process.stdout.write(line));
  const emit = (level: LogLevel, msg: string, fields?: LogFields) => {
    if (RANK[level] < min) return;
    const entry = {
      ts: new Date().toISOString(),
      level,
      name: opts.name,
      msg,
      ...bound,
      ...fields,
    };
    write(`${JSON.stringify(redact(entry))}\n`);
  };
  return {
    debug: (msg, fields) => emit('debug', msg, fields),
    info: (msg, fields) => emit('info', msg, fields),
    warn: (msg, fields) => emit('warn', msg, fields),
    error: (msg, fields) => emit('error', msg, fields),
    child: (fields) => createLogger(opts, { ...bound, ...fields }),
    enabled: (level) => RANK[level] >= min,
  };
}
