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
  /**
   * Where each line goes. @default process.stdout, the lines of one event-loop turn in one
   * write (flushed at the end of the turn and when the process exits)
   */
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
  return new JsonLogger(opts.name, min, opts.write ?? writeStdout, bound);
}

/** A class, not closures: `child()` runs once per request on the relay's hot path. */
class JsonLogger implements Logger {
  constructor(
    readonly name: string,
    readonly min: number,
    readonly write: (line: string) => void,
    readonly bound: LogFields,
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
    return new JsonLogger(this.name, this.min, this.write, { ...this.bound, ...fields });
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
    this.write(`${JSON.stringify(redact(entry))}\n`);
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
