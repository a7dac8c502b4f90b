import type { HostDecoder, Matcher, Page } from './matcher.js';

/** What a scanner needs: the URL matcher and a place to record replacements. */
export interface ScanContext {
  matcher: Matcher;
  /** App to prefer when several are published from the same URL. */
  prefer: string | undefined;
  /** The page's app, for root-relative links (HTML and CSS only). */
  page: Page | undefined;
  /** Scripts: translate absolute internal URLs (`scripts`). */
  absoluteInScripts: boolean;
  /**
   * Scripts: string literals that start with the app's internal path prefix (`'/dokuwiki/…'`)
   * get its external one (`translateRootRelative`); undefined when off or the same path.
   */
  rootRelative: { from: string; to: string } | undefined;
  /** Decodes the raw bytes of a non-ASCII host with the body's charset. */
  decodeHost: HostDecoder;
  /** Records that `[start, end)` (absolute offsets, in order) becomes `text`. */
  replace(start: number, end: number, text: string): void;
}

/** A streaming scanner over a run of text (a `<style>`, an attribute value, a script, …). */
export interface TextScanner {
  /** Absolute offset of the first character that may still be replaced; `Infinity` if none. */
  readonly hold: number;
  /** Feeds the next piece; `abs` is its absolute offset (pieces are contiguous). */
  feed(piece: string, abs: number): void;
  /** The run is over: decide what is pending with what has been seen. */
  end(): void;
  /** Memory bound reached: give up on what is pending, leave it untouched. */
  abandon(): void;
}

export function isWhitespace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0c || c === 0x0d;
}
