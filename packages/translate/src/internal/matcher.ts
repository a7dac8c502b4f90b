import { domainToASCII } from 'node:url';

/** One side (internal or external) of a published app that URLs are matched against. */
export interface Target {
  /** Name of the app (for preferring one of several apps with the same URL). */
  app: string;
  scheme: 'http' | 'https';
  port: number;
  /** Path prefix, ending in `/`. */
  prefix: string;
  prefixLower: string;
  /** Replacement when the whole prefix matched: the other side's origin + prefix. */
  base: string;
  /** Origin of the replacement side. */
  origin: string;
  /** Path prefix of the replacement side (what `base` is without the origin). */
  basePath: string;
  /** Other apps published from exactly the same scheme, host, port and prefix. */
  same: Target[];
}

export interface MatchResult {
  /** End (exclusive) of the matched scheme + authority + path prefix in the input. */
  end: number;
  /** What replaces `[start, end)`. */
  text: string;
  target: Target;
}

/**
 * The app a page belongs to: its root-relative links (`/app/x`) are URLs on this origin and
 * are translated like absolute ones — to a path again when they stay on the page's origin.
 */
export interface Page {
  host: string;
  scheme: 'http' | 'https';
  port: number;
  /** The page's origin on the replacement side (its external origin). */
  origin: string;
}

/** Not enough input yet to decide (streaming). */
export const NEED_MORE = 0;

/** Turns the raw bytes (latin1 string) of a non-ASCII host into Unicode. */
export type HostDecoder = (raw: string) => string;

const C_SLASH = 0x2f;
const C_BACKSLASH = 0x5c;
const C_COLON = 0x3a;
const C_QUESTION = 0x3f;
const C_HASH = 0x23;
const C_AT = 0x40;
const C_PERCENT = 0x25;
const C_LBRACKET = 0x5b;

function isHostChar(c: number): boolean {
  return (
    (c >= 0x61 && c <= 0x7a) ||
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x30 && c <= 0x39) ||
    c === 0x2d ||
    c === 0x2e ||
    c === 0x5f ||
    c >= 0x80
  );
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

/** Lower-cases ASCII letters only. */
export function lowerAscii(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) return s.toLowerCase();
  }
  return s;
}

function startsWithAt(s: string, i: number, prefix: string, ignoreCase: boolean): boolean {
  if (!ignoreCase) return s.startsWith(prefix, i);
  if (i + prefix.length > s.length) return false;
  for (let k = 0; k < prefix.length; k++) {
    let c = s.charCodeAt(i + k);
    if (c >= 0x41 && c <= 0x5a) c |= 0x20;
    if (c !== prefix.charCodeAt(k)) return false;
  }
  return true;
}

/**
 * Finds the published app whose scheme, host, port and path prefix an absolute or
 * scheme-relative URL starts with, and says what to replace that part with. Works on any
 * string: a latin1 view of an ASCII-compatible body (hosts with non-ASCII bytes are decoded
 * with the page's charset) or ordinary Unicode text. Only the matched part is replaced, so
 * the rest of the URL keeps its exact bytes.
 */
export class Matcher {
  readonly #byHost = new Map<string, Target[]>();
  readonly #ignorePathCase: boolean;
  /** Input length after which a match or a miss is always decided. */
  window = 16;

  constructor(ignorePathCase: boolean) {
    this.#ignorePathCase = ignorePathCase;
  }

  get hostKeys(): IterableIterator<string> {
    return this.#byHost.keys();
  }

  add(hostKey: string, target: Target): void {
    const list = this.#byHost.get(hostKey) ?? [];
    const twin = list.find(
      (t) => t.scheme === target.scheme && t.port === target.port && t.prefix === target.prefix,
    );
    if (twin) twin.same.push(target);
    else list.push(target);
    list.sort((a, b) => b.prefix.length - a.prefix.length);
    this.#byHost.set(hostKey, list);
    // scheme + '//' + host + ':65535' + prefix + one more character to see what follows.
    this.window = Math.max(this.window, 8 + hostKey.length * 3 + 6 + target.prefix.length + 2);
  }

  has(hostKey: string): boolean {
    return this.#byHost.has(hostKey);
  }

  /** Whether an app is published from exactly this scheme, host, port and prefix. */
  hasExact(hostKey: string, scheme: 'http' | 'https', port: number, prefix: string): boolean {
    return (
      this.#byHost
        .get(hostKey)
        ?.some((t) => t.scheme === scheme && t.port === port && t.prefix === prefix) ?? false
    );
  }

  /**
   * Matches `s[i, end)`. `complete` says whether `end` is the end of the URL; when it is
   * not, `NEED_MORE` asks for more input (never once `end - i >= window`).
   */
  match(
    s: string,
    i: number,
    end: number,
    complete: boolean,
    decodeHost?: HostDecoder,
    prefer?: string,
    page?: Page,
  ): MatchResult | undefined | typeof NEED_MORE {
    const more = complete ? undefined : NEED_MORE;
    let p = i;
    let scheme: 'http' | 'https' | undefined;
    // Scheme: "http:" or "https:" (any case), or none for "//host".
    if (p >= end) return more;
    let c = s.charCodeAt(p);
    if (c === C_SLASH && page !== undefined) {
      if (p + 1 >= end)
        return complete ? this.#matchRooted(s, i, end, complete, prefer, page) : NEED_MORE;
      const c1 = s.charCodeAt(p + 1);
      if (c1 !== C_SLASH && c1 !== C_BACKSLASH)
        return this.#matchRooted(s, i, end, complete, prefer, page);
    }
    if (c !== C_SLASH) {
      if ((c | 0x20) !== 0x68) return undefined;
      for (const expect of [0x74, 0x74, 0x70]) {
        if (++p >= end) return more;
        if ((s.charCodeAt(p) | 0x20) !== expect) return undefined;
      }
      if (++p >= end) return more;
      c = s.charCodeAt(p);
      if ((c | 0x20) === 0x73) {
        scheme = 'https';
        if (++p >= end) return more;
        c = s.charCodeAt(p);
      } else scheme = 'http';
      if (c !== C_COLON) return undefined;
      p++;
    }
    for (let k = 0; k < 2; k++) {
      if (p >= end) return more;
      if (s.charCodeAt(p) !== C_SLASH) return undefined;
      p++;
    }
    // Host.
    const hostStart = p;
    let nonAscii = false;
    if (p < end && s.charCodeAt(p) === C_LBRACKET) {
      const close = s.indexOf(']', p);
      if (close === -1 || close >= end) return complete ? undefined : NEED_MORE;
      p = close + 1;
    } else {
      while (p < end) {
        c = s.charCodeAt(p);
        if (!isHostChar(c)) break;
        if (c >= 0x80) nonAscii = true;
        p++;
      }
    }
    const hostEnd = p;
    if (hostEnd === hostStart) return p >= end && !complete ? NEED_MORE : undefined;
    if (p >= end && !complete) return NEED_MORE;
    let port = -1;
    if (p < end) {
      c = s.charCodeAt(p);
      if (c === C_AT || c === C_PERCENT) return undefined;
      if (c === C_COLON) {
        p++;
        const portStart = p;
        while (p < end && isDigit(s.charCodeAt(p))) p++;
        if (p >= end && !complete) return NEED_MORE;
        if (p - portStart > 5) return undefined;
        if (p > portStart) port = Number(s.slice(portStart, p));
        if (port > 65535) return undefined;
        if (p < end) {
          c = s.charCodeAt(p);
          if (c === C_AT || c === C_COLON || isHostChar(c)) return undefined;
        }
      }
    }
    let host = s.slice(hostStart, hostEnd);
    if (nonAscii) {
      host = domainToASCII(decodeHost ? decodeHost(host) : host);
      if (host === '') return undefined;
    } else host = lowerAscii(host);
    if (host.endsWith('.')) host = host.slice(0, -1);
    const list = this.#byHost.get(host);
    if (!list) return undefined;
    return this.#matchPath(list, scheme, port, s, p, end, complete, prefer, undefined);
  }

  /** A root-relative path (`/x`, not `//host`) on `page`'s origin. */
  #matchRooted(
    s: string,
    i: number,
    end: number,
    complete: boolean,
    prefer: string | undefined,
    page: Page,
  ): MatchResult | undefined | typeof NEED_MORE {
    const list = this.#byHost.get(page.host);
    if (!list) return undefined;
    const r = this.#matchPath(list, page.scheme, page.port, s, i, end, complete, prefer, page);
    if (!r) return r;
    // Unchanged (the app has the same path inside and out): nothing to replace.
    return s.startsWith(r.text, i) && r.end - i === r.text.length ? undefined : r;
  }

  #matchPath(
    list: Target[],
    scheme: 'http' | 'https' | undefined,
    port: number,
    s: string,
    pathStart: number,
    end: number,
    complete: boolean,
    prefer: string | undefined,
    page: Page | undefined,
  ): MatchResult | undefined | typeof NEED_MORE {
    // Path prefix, longest first.
    const next = pathStart < end ? s.charCodeAt(pathStart) : -1;
    for (const target of list) {
      if (scheme !== undefined && target.scheme !== scheme) continue;
      const defaultPort = target.scheme === 'https' ? 443 : 80;
      if ((port === -1 ? defaultPort : port) !== target.port) continue;
      const chosen = prefer ? pick(target, prefer) : target;
      // On the page's own origin a root-relative link stays root-relative.
      const local = page !== undefined && chosen.origin === page.origin;
      const base = local ? chosen.basePath : chosen.base;
      const stem = base.slice(0, -1);
      const prefix = this.#ignorePathCase ? target.prefixLower : target.prefix;
      if (prefix.length === 1) {
        if (next === C_SLASH) return { end: pathStart + 1, text: base, target: chosen };
        if (next === C_BACKSLASH) return undefined;
        return { end: pathStart, text: stem, target: chosen };
      }
      if (
        startsWithAt(s, pathStart, prefix, this.#ignorePathCase) &&
        pathStart + prefix.length <= end
      )
        return { end: pathStart + prefix.length, text: base, target: chosen };
      const stemLength = prefix.length - 1;
      const available = end - pathStart;
      if (!complete && available <= stemLength) {
        // The input so far could still become this prefix.
        const partial = this.#ignorePathCase
          ? lowerAscii(s.slice(pathStart, end))
          : s.slice(pathStart, end);
        if (prefix.startsWith(partial)) return NEED_MORE;
        continue;
      }
      if (startsWithAt(s, pathStart, prefix.slice(0, stemLength), this.#ignorePathCase)) {
        const after = pathStart + stemLength < end ? s.charCodeAt(pathStart + stemLength) : -1;
        if (after === -1 || after === C_QUESTION || after === C_HASH || !isPathChar(after))
          return { end: pathStart + stemLength, text: stem || '/', target: chosen };
      }
    }
    return undefined;
  }
}

function pick(target: Target, prefer: string): Target {
  if (target.app === prefer) return target;
  for (const t of target.same) if (t.app === prefer) return t;
  return target;
}

// Characters that continue a path segment, so "/app" is not "/apple". Quotes, brackets,
// ',' and ';' are legal in paths but far more often end a URL inside CSS or a script.
function isPathChar(c: number): boolean {
  return (
    isHostChar(c) ||
    c === C_SLASH ||
    c === C_PERCENT ||
    c === 0x7e ||
    c === 0x21 ||
    c === 0x24 ||
    c === 0x26 ||
    c === 0x2a ||
    c === 0x2b ||
    c === 0x3d ||
    c === C_COLON ||
    c === C_AT ||
    c === C_BACKSLASH
  );
}
