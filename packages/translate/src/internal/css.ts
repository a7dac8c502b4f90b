import { isWhitespace, type ScanContext, type TextScanner } from './context.js';
import { NEED_MORE } from './matcher.js';

const enum State {
  Normal,
  Comment,
  String,
  UrlPre,
  ImportPre,
  UrlValue,
}

const NORMAL_STOPS = /[/"'uU@\\]/g;
const STRING_STOPS = /["'\\\n]/g;

function isIdentChar(c: number): boolean {
  return (
    (c >= 0x61 && c <= 0x7a) ||
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x30 && c <= 0x39) ||
    c === 0x2d ||
    c === 0x5f ||
    c >= 0x80
  );
}

/**
 * Finds the URLs of `url(…)` and `@import "…"` in CSS, streaming, and records replacements
 * for the ones the map translates. Comments and other strings are skipped; everything is
 * left byte for byte except the matched URL prefixes. Holds at most a URL's decision
 * window plus a few characters of a split token.
 */
export class CssScanner implements TextScanner {
  hold = Infinity;
  readonly #ctx: ScanContext;
  #text = '';
  #abs = 0;
  #pos = 0;
  #state = State.Normal;
  #quote = 0;
  #closer = 0;
  #candidate = -1;
  #decided = true;

  constructor(ctx: ScanContext) {
    this.#ctx = ctx;
  }

  feed(piece: string, abs: number): void {
    if (this.#text.length > 0 && abs !== this.#abs + this.#text.length) {
      // Not contiguous (CDATA markers skipped, or input given up): decide what is pending.
      this.#scan(true);
      this.#text = '';
      this.#pos = 0;
    }
    if (this.#text.length === 0) this.#abs = abs;
    this.#text += piece;
    this.#scan(false);
    this.#trim();
  }

  end(): void {
    this.#scan(true);
    this.#text = '';
    this.#pos = 0;
    this.#state = State.Normal;
    this.#decided = true;
    this.hold = Infinity;
  }

  abandon(): void {
    this.#decided = true;
    this.hold = Infinity;
    this.#trim();
  }

  #trim(): void {
    // Keep one character before the scan position (to see what precedes `url(`), and an
    // undecided candidate.
    let keep = Math.max(0, this.#pos - 1);
    if (!this.#decided) keep = Math.min(keep, this.#candidate);
    if (keep === 0) return;
    this.#text = this.#text.slice(keep);
    this.#abs += keep;
    this.#pos -= keep;
    this.#candidate -= keep;
  }

  #scan(final: boolean): void {
    const text = this.#text;
    const len = text.length;
    let pos = this.#pos;
    scan: while (pos < len) {
      switch (this.#state) {
        case State.Normal: {
          NORMAL_STOPS.lastIndex = pos;
          const m = NORMAL_STOPS.exec(text);
          if (!m) {
            pos = len;
            break scan;
          }
          const i = m.index;
          const c = text.charCodeAt(i);
          if (c === 0x2f) {
            if (i + 1 >= len && !final) {
              pos = i;
              break scan;
            }
            if (text.charCodeAt(i + 1) === 0x2a) {
              this.#state = State.Comment;
              pos = i + 2;
            } else pos = i + 1;
          } else if (c === 0x22 || c === 0x27) {
            this.#state = State.String;
            this.#quote = c;
            pos = i + 1;
          } else if (c === 0x5c) {
            if (i + 1 >= len && !final) {
              pos = i;
              break scan;
            }
            pos = i + 2;
          } else if (c === 0x40) {
            if (i + 8 > len && !final) {
              pos = i;
              break scan;
            }
            if (
              text.slice(i + 1, i + 7).toLowerCase() === 'import' &&
              !isIdentChar(text.charCodeAt(i + 7))
            ) {
              this.#state = State.ImportPre;
              pos = i + 7;
            } else pos = i + 1;
          } else {
            if (i + 4 > len && !final) {
              pos = i;
              break scan;
            }
            if (
              text.slice(i + 1, i + 4).toLowerCase() === 'rl(' &&
              (i === 0 || !isIdentChar(text.charCodeAt(i - 1)))
            ) {
              this.#state = State.UrlPre;
              pos = i + 4;
            } else pos = i + 1;
          }
          break;
        }
        case State.Comment: {
          const j = text.indexOf('*/', pos);
          if (j === -1) {
            pos = Math.max(pos, len - 1);
            break scan;
          }
          pos = j + 2;
          this.#state = State.Normal;
          break;
        }
        case State.String: {
          STRING_STOPS.lastIndex = pos;
          let m: RegExpExecArray | null;
          while ((m = STRING_STOPS.exec(text)) !== null) {
            const c = text.charCodeAt(m.index);
            if (c === 0x5c) {
              STRING_STOPS.lastIndex = m.index + 2;
              continue;
            }
            if (c === this.#quote || c === 0x0a) break;
          }
          if (!m) {
            pos = text.charCodeAt(len - 1) === 0x5c ? len - 1 : len;
            break scan;
          }
          pos = m.index + 1;
          this.#state = State.Normal;
          break;
        }
        case State.UrlPre:
        case State.ImportPre: {
          while (pos < len && isWhitespace(text.charCodeAt(pos))) pos++;
          if (pos >= len) break scan;
          const c = text.charCodeAt(pos);
          if (c === 0x22 || c === 0x27) {
            this.#closer = c;
            this.#candidate = pos + 1;
            pos++;
          } else if (this.#state === State.UrlPre) {
            this.#closer = 0x29;
            this.#candidate = pos;
          } else {
            // `@import url(…)` or something else: the normal state finds it.
            this.#state = State.Normal;
            break;
          }
          this.#state = State.UrlValue;
          this.#decided = false;
          break;
        }
        case State.UrlValue: {
          const closer = this.#closer;
          if (!this.#decided) {
            let end = this.#candidate;
            while (end < len) {
              const c = text.charCodeAt(end);
              if (c === closer || (closer === 0x29 && isWhitespace(c)) || c === 0x0a) break;
              end++;
            }
            const complete = end < len || final;
            const ctx = this.#ctx;
            const r = ctx.matcher.match(
              text,
              this.#candidate,
              end,
              complete,
              ctx.decodeHost,
              ctx.prefer,
              ctx.page,
            );
            if (r === NEED_MORE) {
              this.hold = this.#abs + this.#candidate;
              pos = len;
              break scan;
            }
            this.#decided = true;
            this.hold = Infinity;
            if (r) ctx.replace(this.#abs + this.#candidate, this.#abs + r.end, r.text);
            pos = Math.max(pos, this.#candidate);
          }
          let j = pos;
          while (j < len) {
            const c = text.charCodeAt(j);
            if (c === 0x5c && closer !== 0x29) {
              j += 2;
              continue;
            }
            if (c === closer || c === 0x0a) break;
            j++;
          }
          if (j >= len) {
            pos = len;
            break scan;
          }
          pos = j + 1;
          this.#state = State.Normal;
          break;
        }
      }
    }
    this.#pos = Math.min(pos, len);
  }
}
