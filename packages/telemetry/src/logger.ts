import { redact } from './redact.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
export const LOG_LEVELS = Object.keys(RANK) as LogLevel[];

/** `json`: one JSON object per line; `text`: `time LEVEL message key=value …` for people. */
export type LogFormat = 'json' | 'text';
export const LOG_FORMATS: readonly LogFormat[] = ['json', 'text'];

/** A log level or format the logger does not know (e.g. a typo in `APPPROXY_LOG_LEVEL`). */
export class LogSettingError extends Error {
  readonly code = 'APPPROXY_LOG_SETTING_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'LogSettingError';
  }
}

/**
 * `value` as a log level; undefined or empty gives undefined.
 * @throws {LogSettingError} for anything but debug, info, warn, error (`setting` names it)
 */
export function parseLogLevel(
  value: string | undefined,
  setting = 'APPPROXY_LOG_LEVEL',
): LogLevel | undefined {
  if (value === undefined || value === '') return undefined;
  const level = value.toLowerCase();
  if ((LOG_LEVELS as string[]).includes(level)) return level as LogLevel;
  throw new LogSettingError(
    `${setting}: unknown log level ${JSON.stringify(value)} (expected ${LOG_LEVELS.join(', ')})`,
  );
}

/**
 * `value` as a log format; undefined gives undefined.
 * @throws {LogSettingError} for anything but json and text
 */
export function parseLogFormat(
  value: string | undefined,
  setting = '--log-format',
): LogFormat | undefined {
  if (value === undefined || value === '') return undefined;
  if ((LOG_FORMATS as string[]).includes(value)) return value as LogFormat;
  throw new LogSettingError(
    `${setting}: unknown log format ${JSON.stringify(value)} (expected json or text)`,
  );
}

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
  /** @default $APPPROXY_LOG_LEVEL, else 'info' (an unknown value there throws LogSettingError) */
  level?: LogLevel;
  /**
   * @default $APPPROXY_LOG_FORMAT, else 'text' when writing to stdout and stdout is a
   * terminal, else 'json'. Redaction is the same in both.
   */
  format?: LogFormat;
  /**
   * Where each line goes. @default process.stdout, the lines of one event-loop turn in one
   * write (flushed at the end of the turn and when the process exits)
   */
  write?: (line: string) => void;
}

/**
 * One JSON object per line (`ts`, `level`, `name`, `msg`, fields), or in `text` format one
 * line `ts LEVEL msg key=value …`. Secrets are redacted by the logger itself, whatever the
 * caller passes (see `redact`), before either format is made.
 *
 * @example
 * const log = createLogger({ name: 'relay' });
 * log.info('request', { app: 'Expenses', status: 200, headers: { authorization: 'Bearer x' } });
 * // {"ts":"…","level":"info","name":"relay","msg":"request","app":"Expenses","status":200,"headers":{"authorization":"[redacted]"}}
 */
export function createLogger(opts: LoggerOptions, bound: LogFields = {}): Logger {
  const min = RANK[opts.level ?? parseLogLevel(process.env.APPPROXY_LOG_LEVEL) ?? 'info'];
  const format =
    opts.format ??
    parseLogFormat(process.env.APPPROXY_LOG_FORMAT, 'APPPROXY_LOG_FORMAT') ??
    (!opts.write && process.stdout.isTTY ? 'text' : 'json');
  return new LineLogger(opts.name, min, opts.write ?? writeStdout, bound, format);
}

/**
 * One log line (with its newline) in `format`, from an entry already redacted.
 *
 * @example
 * formatLogLine({ ts: '2026-01-01T00:00:00.000Z', level: 'info', name: 'relay', msg: 'relay listening', apps: 2 }, 'text')
 * // '2026-01-01T00:00:00.000Z INFO  relay listening name=relay apps=2\n'
 */
export function formatLogLine(entry: Record<string, unknown>, format: LogFormat): string {
  if (format === 'json') return `${JSON.stringify(entry)}\n`;
  const { ts, level, msg, ...fields } = entry;
  let line = `${String(ts)} ${String(level).toUpperCase().padEnd(5)} ${String(msg)}`;
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    line += ` ${k}=${textValue(v)}`;
  }
  return `${line}\n`;
}

/** Bare when unambiguous, else JSON (quoted strings, objects): a line stays one line. */
function textValue(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=\\]+$/.test(v) ? v : JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v);
  return JSON.stringify(v) ?? String(v);
}

/** A class, not closures: `child()` runs once per request on the relay's hot path. */
class LineLogger implements Logger {
  constructor(
    readonly name: string,
    readonly min: number,
    readonly write: (line: string) => void,
    readonly bound: LogFields,
    readonly format: LogFormat,
  ) {}

  debug(msg: string, fields?: LogFields): void {
    if (this.min <= RANK.debug) this.#emit('debug', msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    if (this.min <= RANK.info) this.#emit('info', msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    if (this.min <= RANK.warn) this.#emit('warn', msg, fields);
  }
  error(msg: string, fields?: LogFields): void {
    if (this.min <= RANK.error) this.#emit('error', msg, fields);
  }
  child(fields: LogFields): Logger {
    return new LineLogger(
      this.name,
      this.min,
      this.write,
      { ...this.bound, ...fields },
      this.format,
    );
  }
  enabled(level: LogLevel): boolean {
    return RANK[level] >= this.min;
  }

  #emit(level: LogLevel, msg: string, fields: LogFields | undefined): void {
    const entry = {
      ts: new Date().toISOString(),
      level,
      name: this.name,
      msg,
      ...this.bound,
      ...fields,
    };
    this.write(formatLogLine(redact(entry) as Record<string, unknown>, this.format));
  }
}

// The default sink: every line of one event-loop turn in one write to stdout (the relay
// logs a line per request; a write per line was a system call per request).
let pending: string[] = [];
let flushScheduled = false;
let exitHooked = false;
function flushStdout(): void {
  flushScheduled = false;
  if (pending.length === 0) return;
  const text = pending.length === 1 ? pending[0]! : pending.join('');
  pending = [];
  process.stdout.write(text);
}
function writeStdout(line: string): void {
  pending.push(line);
  if (!exitHooked) {
    exitHooked = true;
    // Whatever is still pending when the process exits (process.exit, a crash) is written.
    process.on('exit', flushStdout);
  }
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flushStdout);
  }
}
