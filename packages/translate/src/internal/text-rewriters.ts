import type { ScanContext, TextScanner } from './context.js';
import { CssScanner } from './css.js';
import { Rewriter, type RewriterOptions } from './rewriter.js';
import { ScriptScanner } from './script.js';

/** A whole body that is one scanner's text: a style sheet, a script, a JSON document. */
class ScannerRewriter extends Rewriter {
  readonly #scanner: TextScanner;
  /** The first bytes, for a `@charset` rule. */
  #head = '';

  constructor(options: RewriterOptions, make: (ctx: ScanContext) => TextScanner) {
    super(options);
    this.#scanner = make(this.ctx);
  }

  protected override charset(): string | undefined {
    if (this.options.charset !== undefined) return this.options.charset;
    // A style sheet's own `@charset "…";` (only at the very start) when the header has none.
    const m = /^(?:\xef\xbb\xbf)?@charset "([^"]{1,40})";/.exec(this.#head);
    return m ? m[1]!.toLowerCase() : undefined;
  }

  protected process(chunk: string): void {
    if (this.#head.length < 64) this.#head += chunk.slice(0, 64 - this.#head.length);
    this.#scanner.feed(chunk, this.total - chunk.length);
  }

  protected finish(): void {
    this.#scanner.end();
  }

  protected holdPoint(): number {
    return this.#scanner.hold;
  }

  protected abandon(): void {
    this.#scanner.abandon();
  }
}

/** Rewrites a CSS body: `url(…)` and `@import`. */
export class CssRewriter extends ScannerRewriter {
  constructor(options: RewriterOptions) {
    super(options, (ctx) => new CssScanner(ctx));
  }
}

/** Rewrites a script or JSON body: absolute URLs in it. */
export class ScriptRewriter extends ScannerRewriter {
  constructor(options: RewriterOptions) {
    super(options, (ctx) => new ScriptScanner(ctx));
  }
}
