import type { Tokenizer, TokenizerCallbacks } from 'htmlparser2';
import { AttrKind, classifyAttributeAt, interestingTag } from './attributes.js';
import { isWhitespace, type TextScanner } from './context.js';
import { CssScanner } from './css.js';
import { FastTokenizer } from './fast-tokenizer.js';
import { lowerAscii, NEED_MORE } from './matcher.js';
import { Rewriter, type RewriterOptions } from './rewriter.js';
import { ScriptScanner } from './script.js';

const QUOTE_NONE = 0;
// An unfinished `<name` or `</name` at the end of the input: its name arrives later.
const TAIL_TAG = /<\/?(?:[A-Za-z][^\s/>]*)?$/y;
const FOREIGN_ROOTS = new Set(['svg', 'math']);
const INTEGRATION_POINTS = new Set([
  'foreignobject',
  'desc',
  'title',
  'mi',
  'mo',
  'mn',
  'ms',
  'mtext',
  'annotation-xml',
]);

interface MetaInfo {
  httpEquiv?: string;
  charset?: string;
  content?: [number, number];
}

interface Foreign {
  name: string;
  foreign: boolean;
}

/**
 * Streaming HTML rewriter on htmlparser2's `Tokenizer` (byte offsets, no entity decoding):
 * only the values of URL-bearing attributes, `<style>` blocks and `style` attributes (and,
 * with `scripts`, inline scripts and event handlers) are looked at; every other byte —
 * comments, whitespace, quoting, entities, malformed markup — passes through as it came.
 * Input is a latin1 string, so any ASCII-compatible charset passes byte for byte.
 */
export class HtmlRewriter extends Rewriter implements TokenizerCallbacks {
  readonly #tokenizer: Tokenizer;
  readonly #scripts: boolean;
  #charset: string | undefined;
  #sniffed = false;
  #passthrough = false;
  #fed = 0;

  // The open tag being read.
  #inTag = false;
  #tag = '';
  #tagStart = 0;
  #tagEventEnd = 0;
  // The attribute being read.
  #kind = AttrKind.None;
  #valueStart = -1;
  #valueEnd = -1;
  #decided = true;
  #abandoned = false;
  #attrScanner: TextScanner | undefined;
  // <meta>: held whole until its end, since http-equiv may follow content.
  #meta: MetaInfo | undefined;
  #metaAbandoned = false;
  // Raw text of <style> / <script>.
  #raw: 'style' | 'script' | undefined;
  #rawScanner: TextScanner | undefined;
  #rawReported = 0;
  #foreign: Foreign[] = [];
  #inForeign = false;

  constructor(options: RewriterOptions) {
    super(options);
    this.#scripts = options.scripts;
    this.#charset = options.charset;
    this.#tokenizer = new FastTokenizer({ decodeEntities: false }, this);
  }

  protected override charset(): string | undefined {
    return this.#charset;
  }

  protected process(): void {
    if (this.#passthrough) return;
    if (!this.#sniffed) {
      if (this.total < 2) return;
      this.#sniff();
      if (this.#passthrough) return;
    }
    const pending = this.slice(this.#fed, this.total);
    this.#fed = this.total;
    this.#tokenizer.write(pending);
  }

  protected finish(): void {
    if (this.#passthrough) return;
    if (!this.#sniffed) this.#sniff();
    if (this.#passthrough) return;
    if (this.#fed < this.total) {
      this.#tokenizer.write(this.slice(this.#fed, this.total));
      this.#fed = this.total;
    }
    this.#tokenizer.end();
  }

  #sniff(): void {
    this.#sniffed = true;
    const b0 = this.buf.charCodeAt(0);
    const b1 = this.buf.charCodeAt(1);
    // UTF-16 (by BOM) is not ASCII-compatible: pass the body through untouched.
    if ((b0 === 0xfe && b1 === 0xff) || (b0 === 0xff && b1 === 0xfe)) this.#passthrough = true;
    else if (b0 === 0xef && b1 === 0xbb) this.#charset = 'utf-8';
  }

  protected holdPoint(): number {
    if (this.#passthrough) return Infinity;
    if (!this.#sniffed) return this.base;
    let hold = Infinity;
    if (this.#inTag) {
      hold = this.#tagEventEnd;
      if (this.#meta && !this.#metaAbandoned) hold = Math.min(hold, this.#tagStart);
      if (!this.#abandoned) {
        if (this.#attrScanner) hold = Math.min(hold, this.#attrScanner.hold);
        else if (!this.#decided && this.#valueStart >= 0) hold = Math.min(hold, this.#valueStart);
      }
    } else {
      const lt = this.buf.lastIndexOf('<');
      if (lt >= 0) {
        TAIL_TAG.lastIndex = lt;
        if (TAIL_TAG.test(this.buf)) hold = this.base + lt;
      }
    }
    if (this.#rawScanner) hold = Math.min(hold, this.#rawReported, this.#rawScanner.hold);
    return hold;
  }

  protected abandon(): void {
    this.#metaAbandoned = true;
    this.#abandoned = true;
    this.#decided = true;
    this.#attrScanner?.abandon();
    this.#rawScanner?.abandon();
    this.#rawReported = this.total;
  }

  // --- Tokenizer callbacks -------------------------------------------------------------

  isInForeignContext(): boolean {
    return this.#inForeign;
  }

  #foreignChanged(): void {
    const top = this.#foreign[this.#foreign.length - 1];
    this.#inForeign = top !== undefined && top.foreign;
  }

  onopentagname(start: number, end: number): void {
    this.#inTag = true;
    this.#tag =
      start >= this.base ? interestingTag(this.buf, start - this.base, end - this.base) : '';
    this.#tagStart = start - 1;
    this.#tagEventEnd = end;
    this.#meta = this.#tag === 'meta' ? {} : undefined;
    this.#metaAbandoned = false;
    this.#kind = AttrKind.None;
  }

  onattribname(start: number, end: number): void {
    this.#kind =
      start >= this.base
        ? classifyAttributeAt(
            this.#tag,
            this.buf,
            start - this.base,
            end - this.base,
            this.#scripts,
          )
        : AttrKind.None;
    this.#valueStart = -1;
    this.#valueEnd = -1;
    this.#decided = this.#kind === AttrKind.None;
    this.#abandoned = false;
    this.#attrScanner = undefined;
    this.#tagEventEnd = end;
  }

  onattribdata(start: number, end: number): void {
    if (this.#valueStart < 0) this.#valueStart = start;
    this.#valueEnd = end;
    if (this.#abandoned) {
      this.#tagEventEnd = end;
      return;
    }
    switch (this.#kind) {
      case AttrKind.Url:
        if (!this.#decided) this.#decideUrl(false);
        break;
      case AttrKind.Css:
      case AttrKind.Script:
        if (!this.#attrScanner)
          this.#attrScanner =
            this.#kind === AttrKind.Css ? new CssScanner(this.ctx) : new ScriptScanner(this.ctx);
        this.#attrScanner.feed(this.slice(start, end), start);
        break;
      default:
        break;
    }
    if (this.#decided || this.#attrScanner) this.#tagEventEnd = end;
  }

  onattribend(quote: number, end: number): void {
    if (!this.#abandoned && quote !== QUOTE_NONE && this.#valueStart >= 0) {
      const vs = this.#valueStart;
      const ve = this.#valueEnd;
      switch (this.#kind) {
        case AttrKind.Url:
          if (!this.#decided) this.#decideUrl(true);
          break;
        case AttrKind.Css:
        case AttrKind.Script:
          this.#attrScanner?.end();
          break;
        case AttrKind.Srcset:
          this.#srcset(vs, ve);
          break;
        case AttrKind.UrlList:
          this.#urlList(vs, ve);
          break;
        case AttrKind.MetaContent:
          if (this.#meta) this.#meta.content = [vs, ve];
          break;
        case AttrKind.MetaHttpEquiv:
          if (this.#meta) this.#meta.httpEquiv = lowerAscii(this.slice(vs, ve).trim());
          break;
        case AttrKind.MetaCharset:
          if (this.#meta) this.#meta.charset = lowerAscii(this.slice(vs, ve).trim());
          break;
        default:
          break;
      }
    }
    this.#kind = AttrKind.None;
    this.#decided = true;
    this.#attrScanner = undefined;
    this.#tagEventEnd = end;
  }

  onopentagend(end: number): void {
    this.#endOpenTag(false, end);
  }

  onselfclosingtag(end: number): void {
    this.#endOpenTag(true, end);
  }

  #endOpenTag(selfClosing: boolean, end: number): void {
    const tag = this.#tag;
    if (this.#meta && !this.#metaAbandoned) this.#endMeta(this.#meta);
    this.#meta = undefined;
    this.#inTag = false;
    const foreign = this.isInForeignContext();
    if (!selfClosing || !foreign) {
      // Raw text: HTML <style>/<script> even when written `<style/>`; SVG ones when not self-closing.
      if (tag === 'style' || (tag === 'script' && (this.#scripts || this.ctx.rootRelative))) {
        if (!(selfClosing && foreign)) {
          this.#raw = tag;
          this.#rawScanner =
            tag === 'style' ? new CssScanner(this.ctx) : new ScriptScanner(this.ctx);
          this.#rawReported = end + 1;
        }
      } else if (tag === 'script') this.#raw = 'script';
    }
    if (!selfClosing) {
      if (FOREIGN_ROOTS.has(tag)) this.#foreign.push({ name: tag, foreign: true });
      else if (foreign && INTEGRATION_POINTS.has(tag))
        this.#foreign.push({ name: tag, foreign: false });
      else return;
      this.#foreignChanged();
    }
  }

  onclosetag(start: number, end: number): void {
    if (this.#raw === undefined && this.#foreign.length === 0) return;
    const name =
      start >= this.base ? interestingTag(this.buf, start - this.base, end - this.base) : '';
    if (name === '') return;
    if (this.#raw !== undefined && name === this.#raw) {
      this.#rawScanner?.end();
      this.#rawScanner = undefined;
      this.#raw = undefined;
    }
    for (let i = this.#foreign.length - 1; i >= 0; i--) {
      if (this.#foreign[i]!.name === name) {
        this.#foreign.length = i;
        this.#foreignChanged();
        break;
      }
    }
  }

  ontext(start: number, end: number): void {
    if (this.#rawScanner) {
      if (start < this.base) start = this.base;
      if (end > start) this.#rawScanner.feed(this.slice(start, end), start);
      this.#rawReported = Math.max(this.#rawReported, end);
    }
  }

  oncdata(start: number, end: number, endOffset: number): void {
    // CDATA in SVG <script>/<style>: its content is the script or style sheet.
    if (this.#rawScanner) {
      const contentEnd = end - endOffset;
      if (start < this.base) start = this.base;
      if (contentEnd > start) this.#rawScanner.feed(this.slice(start, contentEnd), start);
      this.#rawReported = Math.max(this.#rawReported, end + 1);
    }
  }

  onattribentity(): void {}
  ontextentity(): void {}
  oncomment(): void {}
  ondeclaration(): void {}
  onprocessinginstruction(): void {}
  onend(): void {
    this.#rawScanner?.end();
  }

  // --- URL attributes --------------------------------------------------------------------

  #decideUrl(complete: boolean): void {
    let p = this.#valueStart;
    const end = this.#valueEnd;
    while (p < end && isWhitespace(this.#charAt(p))) p++;
    if (p >= end) {
      if (complete) this.#decided = true;
      return;
    }
    const rel = p - this.base;
    const js = this.#scripts ? javascriptUrl(this.buf, rel, end - this.base) : 'no';
    if (js === 'maybe' && !complete) return;
    if (js === 'yes') {
      // `javascript:` URL: scan it as a script, streaming.
      this.#kind = AttrKind.Script;
      this.#attrScanner = new ScriptScanner(this.ctx);
      this.#attrScanner.feed(this.slice(p, end), p);
      if (complete) this.#attrScanner.end();
      return;
    }
    const ctx = this.ctx;
    const r = ctx.matcher.match(
      this.buf,
      rel,
      end - this.base,
      complete,
      ctx.decodeHost,
      ctx.prefer,
      ctx.page,
    );
    if (r === NEED_MORE) return;
    this.#decided = true;
    if (r) ctx.replace(p, r.end + this.base, r.text);
  }

  #charAt(abs: number): number {
    return this.buf.charCodeAt(abs - this.base);
  }

  #matchWhole(start: number, end: number): void {
    const ctx = this.ctx;
    const r = ctx.matcher.match(
      this.buf,
      start - this.base,
      end - this.base,
      true,
      ctx.decodeHost,
      ctx.prefer,
      ctx.page,
    );
    if (r) ctx.replace(start, r.end + this.base, r.text);
  }

  /** `srcset`: image candidate strings as the HTML standard splits them. */
  #srcset(start: number, end: number): void {
    let p = start;
    while (p < end) {
      while (p < end && (isWhitespace(this.#charAt(p)) || this.#charAt(p) === 0x2c)) p++;
      if (p >= end) break;
      const urlStart = p;
      while (p < end && !isWhitespace(this.#charAt(p))) p++;
      let urlEnd = p;
      if (this.#charAt(urlEnd - 1) === 0x2c) {
        while (urlEnd > urlStart && this.#charAt(urlEnd - 1) === 0x2c) urlEnd--;
      } else {
        // Descriptors up to a comma outside parentheses.
        let depth = 0;
        while (p < end) {
          const c = this.#charAt(p);
          if (c === 0x28) depth++;
          else if (c === 0x29 && depth > 0) depth--;
          else if (c === 0x2c && depth === 0) break;
          p++;
        }
      }
      if (urlEnd > urlStart) this.#matchWhole(urlStart, urlEnd);
    }
  }

  /** `ping`, `archive`: URLs separated by whitespace (or commas). */
  #urlList(start: number, end: number): void {
    let p = start;
    while (p < end) {
      while (p < end && (isWhitespace(this.#charAt(p)) || this.#charAt(p) === 0x2c)) p++;
      const urlStart = p;
      while (p < end && !isWhitespace(this.#charAt(p)) && this.#charAt(p) !== 0x2c) p++;
      if (p > urlStart) this.#matchWhole(urlStart, p);
    }
  }

  #endMeta(meta: MetaInfo): void {
    if (meta.charset && this.options.charset === undefined && this.#charset === undefined)
      this.#charset = meta.charset;
    if (!meta.content) return;
    const [vs, ve] = meta.content;
    if (meta.httpEquiv === 'content-type') {
      const m = /charset\s*=\s*["']?([^\s"';]+)/i.exec(this.slice(vs, ve));
      if (m && this.options.charset === undefined && this.#charset === undefined)
        this.#charset = m[1]!.toLowerCase();
      return;
    }
    if (meta.httpEquiv === 'refresh') {
      // `5; url=http://…`, `0;URL='http://…'`
      const text = this.slice(vs, ve);
      const m = /^\s*[\d.]*\s*[;,]?\s*(?:url\s*=\s*)?(["']?)/i.exec(text);
      if (!m) return;
      const urlStart = vs + m[0].length;
      let urlEnd = ve;
      if (m[1]) {
        const close = text.indexOf(m[1], m[0].length);
        if (close !== -1) urlEnd = vs + close;
      }
      while (urlEnd > urlStart && isWhitespace(this.#charAt(urlEnd - 1))) urlEnd--;
      this.#matchWhole(urlStart, urlEnd);
      return;
    }
    // og:image, og:url, msapplication-*: content that starts with a mapped URL.
    let p = vs;
    while (p < ve && isWhitespace(this.#charAt(p))) p++;
    this.#matchWhole(p, ve);
  }
}

/** Whether `s[i, end)` is a `javascript:` URL, or may still become one. */
function javascriptUrl(s: string, i: number, end: number): 'yes' | 'no' | 'maybe' {
  const want = 'javascript:';
  const n = Math.min(want.length, end - i);
  if (lowerAscii(s.slice(i, i + n)) !== want.slice(0, n)) return 'no';
  return n === want.length ? 'yes' : 'maybe';
}
