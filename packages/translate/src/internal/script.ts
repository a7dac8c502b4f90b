import type { ScanContext, TextScanner } from './context.js';
import { NEED_MORE } from './matcher.js';

// `http://`, `http:\/\/` (JSON), `http:\u002f\u002f` (SharePoint, ASP.NET JSON).
const CANDIDATE = /https?:(?:\/\/|\\\/\\\/|\\u002[fF]\\u002[fF])/gi;
const LONGEST = 'https:\\u002f\\u002f'.length;

/**
 * Finds absolute URLs inside scripts and JSON (`"http://…"`, `http:\/\/…`,
 * `http:\u002f\u002f…`) and records replacements for the ones the map translates, keeping
 * the escaping they were written with. Best effort, as any text scan of code is: it does not
 * parse JavaScript, so a URL in a comment is translated too.
 */
export class ScriptScanner implements TextScanner {
  hold = Infinity;
  readonly #ctx: ScanContext;
  /** A quote followed by the internal path prefix (`translateRootRelative`). */
  readonly #rooted: RegExp | undefined;
  /** Characters at the end that may begin a match not whole yet. */
  readonly #tail: number;
  #text = '';
  #abs = 0;
  #pos = 0;

  constructor(ctx: ScanContext) {
    this.#ctx = ctx;
    const from = ctx.rootRelative?.from;
    this.#rooted = from === undefined ? undefined : quotedPrefix(from);
    this.#tail = Math.max(LONGEST, from === undefined ? 0 : from.length + 1);
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
    if (this.#pos > 0) {
      this.#text = this.#text.slice(this.#pos);
      this.#abs += this.#pos;
      this.#pos = 0;
    }
    this.hold = this.#text.length === 0 ? Infinity : this.#abs;
  }

  end(): void {
    this.#scan(true);
    this.#text = '';
    this.#pos = 0;
    this.hold = Infinity;
  }

  abandon(): void {
    // Give up on the pending tail: it passes untouched.
    this.#abs += this.#text.length;
    this.#text = '';
    this.#pos = 0;
    this.hold = Infinity;
  }

  #scan(final: boolean): void {
    const text = this.#text;
    const len = text.length;
    const ctx = this.#ctx;
    const window = ctx.matcher.window * 6;
    // A candidate starting in the last few characters may not be whole yet.
    const limit = final ? len : len - this.#tail;
    const rooted = this.#rooted;
    const absolute = ctx.absoluteInScripts;
    let pos = this.#pos;
    while (pos < limit) {
      let m: RegExpExecArray | null = null;
      if (absolute) {
        CANDIDATE.lastIndex = pos;
        m = CANDIDATE.exec(text);
        if (m && m.index >= limit) m = null;
      }
      if (rooted) {
        rooted.lastIndex = pos;
        const q = rooted.exec(text);
        if (q && q.index < limit && (!m || q.index < m.index)) {
          // '/dokuwiki/lib/…' → '/lib/…': the quote stays, the prefix is replaced.
          const { from, to } = ctx.rootRelative!;
          const start = q.index + 1;
          ctx.replace(this.#abs + start, this.#abs + start + from.length, to);
          pos = start + from.length;
          continue;
        }
      }
      if (!m) {
        pos = Math.max(pos, limit);
        break;
      }
      const i = m.index;
      const form = slashForm(m[0]);
      const wEnd = Math.min(len, i + window);
      let raw = text.slice(i, wEnd);
      if (form !== '/' && wEnd === len && !final) {
        // Do not let a half-arrived escape (`\u00`) end the URL early.
        const b = raw.lastIndexOf('\\');
        if (b > raw.length - form.length && form.startsWith(raw.slice(b).toLowerCase()))
          raw = raw.slice(0, b);
      }
      const { plain, rawIndex } = unescape(raw, form);
      const complete = final && wEnd === len;
      const r = ctx.matcher.match(plain, 0, plain.length, complete, ctx.decodeHost, ctx.prefer);
      if (r === NEED_MORE) {
        if (!final && wEnd === len) break;
        pos = i + m[0].length;
        continue;
      }
      if (!r) {
        pos = i + m[0].length;
        continue;
      }
      const rawLength = r.end < plain.length ? rawIndex[r.end]! : raw.length;
      const original = text.slice(i, i + rawLength);
      if (
        form !== '/' &&
        original.replace(form === '\\/' ? /\\\//g : /\\u002f/gi, '').includes('/')
      ) {
        // Escaped and plain slashes mixed in one URL: leave it.
        pos = i + m[0].length;
        continue;
      }
      const escaped = form === '/' ? r.text : r.text.replaceAll('/', escapeLike(original, form));
      ctx.replace(this.#abs + i, this.#abs + i + rawLength, escaped);
      pos = i + rawLength;
    }
    this.#pos = Math.min(pos, len);
  }
}

/** `'/prefix/`, `"/prefix/` or `` `/prefix/ ``: a string literal that starts with the prefix. */
function quotedPrefix(prefix: string): RegExp {
  return new RegExp(`['"\`]${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`, 'g');
}

/** `raw` with `form` (`\/`, `\u002f`) read as `/`, and where each plain character came from. */
function unescape(raw: string, form: string): { plain: string; rawIndex: number[] } {
  const rawIndex: number[] = [];
  if (form === '/') {
    for (let k = 0; k <= raw.length; k++) rawIndex.push(k);
    return { plain: raw, rawIndex };
  }
  let plain = '';
  let k = 0;
  while (k < raw.length) {
    rawIndex.push(k);
    if (raw.charCodeAt(k) === 0x5c && raw.slice(k, k + form.length).toLowerCase() === form) {
      plain += '/';
      k += form.length;
    } else {
      plain += raw[k];
      k++;
    }
  }
  rawIndex.push(k);
  return { plain, rawIndex };
}

function slashForm(candidate: string): string {
  const afterColon = candidate.slice(candidate.indexOf(':') + 1);
  if (afterColon.startsWith('//')) return '/';
  if (afterColon.startsWith('\\/')) return '\\/';
  return '\\u002f';
}

/** The `\u002f` spelling (case of the hex digit) used in the original. */
function escapeLike(original: string, form: string): string {
  if (form !== '\\u002f') return form;
  const m = /\\u002[fF]/.exec(original);
  return m ? m[0] : form;
}
