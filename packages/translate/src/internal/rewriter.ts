import type { ScanContext } from './context.js';
import type { HostDecoder, Matcher, Page } from './matcher.js';

/** Options every body rewriter takes. */
export interface RewriterOptions {
  matcher: Matcher;
  /** App whose response this is (preferred when several apps share an internal URL). */
  prefer?: string;
  /** That app's internal origin, for root-relative links. */
  page?: Page;
  /** Translate absolute URLs in scripts (inline, event handlers, `javascript:`) too. */
  scripts: boolean;
  /** String literals in scripts that start with the app's internal path: `from` → `to`. */
  rootRelative?: { from: string; to: string };
  /** Bound on input held back while a URL is undecided; past it, flush untouched. */
  maxPending: number;
  /** Charset label from `Content-Type`, lower case, if any. */
  charset?: string;
}

const utf8Fatal = new TextDecoder('utf-8', { fatal: true });
const windows1252 = new TextDecoder('windows-1252');

/**
 * Decodes a host's raw bytes (a latin1 string) with the body's charset; without one, UTF-8
 * if the bytes are valid UTF-8, else windows-1252 (what browsers assume).
 */
export function decodeHostWith(charset: () => string | undefined): HostDecoder {
  return (raw) => {
    const bytes = Buffer.from(raw, 'latin1');
    const label = charset();
    if (label !== undefined) {
      try {
        return new TextDecoder(label).decode(bytes);
      } catch {
        // Unknown label: guess below.
      }
    }
    try {
      return utf8Fatal.decode(bytes);
    } catch {
      return windows1252.decode(bytes);
    }
  };
}

/**
 * The part every streaming rewriter shares: input is a latin1 string (one char per byte, so
 * every byte that is not replaced goes out exactly as it came in, whatever the charset);
 * scanners record replacements at absolute offsets and say how far the output is final;
 * `write` returns everything up to there. Memory is bounded by `maxPending`: past it, what
 * is pending is given up and flushed untouched.
 */
export abstract class Rewriter {
  protected buf = '';
  /** Absolute offset of `buf[0]`: everything before it has been returned. */
  protected base = 0;
  /** Absolute offset of the end of the input so far. */
  protected total = 0;
  protected readonly options: RewriterOptions;
  protected readonly ctx: ScanContext;
  #starts: number[] = [];
  #ends: number[] = [];
  #texts: string[] = [];
  #head = 0;
  /** Largest amount of input ever held back (for tests and metrics). */
  maxHeld = 0;

  constructor(options: RewriterOptions) {
    this.options = options;
    this.ctx = {
      matcher: options.matcher,
      prefer: options.prefer,
      page: options.page,
      absoluteInScripts: options.scripts,
      rootRelative: options.rootRelative,
      decodeHost: decodeHostWith(() => this.charset()),
      replace: (start, end, text) => this.#replace(start, end, text),
    };
  }

  /** The charset to decode non-ASCII hosts with. */
  protected charset(): string | undefined {
    return this.options.charset;
  }

  /** Rewrites the next chunk (latin1); returns the output that is final so far. */
  write(chunk: string): string {
    this.buf += chunk;
    this.total += chunk.length;
    this.process(chunk);
    return this.#emit(false);
  }

  /** Ends the input; returns the rest of the output. */
  end(): string {
    this.finish();
    return this.#emit(true);
  }

  /** Scans a chunk that has been appended to `buf`. */
  protected abstract process(chunk: string): void;
  /** Input is over: decide what can be decided. */
  protected abstract finish(): void;
  /** Absolute offset before which the output is final. */
  protected abstract holdPoint(): number;
  /** Give up on everything pending (memory bound). */
  protected abstract abandon(): void;

  /** Input `[start, end)` by absolute offsets; '' for input already returned (after an overflow). */
  protected slice(start: number, end: number): string {
    if (start < this.base) start = this.base;
    if (end <= start) return '';
    return this.buf.slice(start - this.base, end - this.base);
  }

  #replace(start: number, end: number, text: string): void {
    if (start < this.base) return;
    let i = this.#starts.length;
    if (i === this.#head || this.#starts[i - 1]! <= start) {
      this.#starts.push(start);
      this.#ends.push(end);
      this.#texts.push(text);
      return;
    }
    // Nearly always appended in order; keep the list sorted anyway.
    while (i > this.#head && this.#starts[i - 1]! > start) i--;
    this.#starts.splice(i, 0, start);
    this.#ends.splice(i, 0, end);
    this.#texts.splice(i, 0, text);
  }

  #emit(final: boolean): string {
    let safe = final ? this.total : Math.min(this.holdPoint(), this.total);
    if (!final && this.total - safe > this.options.maxPending) {
      this.abandon();
      safe = Math.min(this.holdPoint(), this.total);
      if (this.total - safe > this.options.maxPending) safe = this.total;
    }
    if (safe <= this.base) {
      this.maxHeld = Math.max(this.maxHeld, this.total - this.base);
      return '';
    }
    let out = '';
    let pos = this.base;
    const buf = this.buf;
    const base = this.base;
    while (this.#head < this.#starts.length) {
      const start = this.#starts[this.#head]!;
      if (start >= safe) break;
      const end = this.#ends[this.#head]!;
      if (end > safe) {
        safe = start;
        break;
      }
      if (start >= pos) {
        out += buf.slice(pos - base, start - base) + this.#texts[this.#head];
        pos = end;
      }
      this.#head++;
    }
    if (this.#head === this.#starts.length && this.#head > 0) {
      this.#starts = [];
      this.#ends = [];
      this.#texts = [];
      this.#head = 0;
    }
    out += buf.slice(pos - base, safe - base);
    this.buf = buf.slice(safe - base);
    this.base = safe;
    this.maxHeld = Math.max(this.maxHeld, this.total - this.base);
    return out;
  }
}
