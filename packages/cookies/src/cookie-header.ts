/** One `name=value` of a request `Cookie` header. */
export interface CookiePair {
  name: string;
  value: string;
}

/** A `Cookie` header as Node gives it: one string, or several fields (HTTP/2 may split). */
export type CookieHeader = string | readonly string[] | undefined;

function segments(header: CookieHeader): string[] {
  if (header === undefined) return [];
  if (typeof header === 'string') return header.split(';');
  return header.flatMap((h) => h.split(';'));
}

function pairOf(segment: string): CookiePair | undefined {
  const eq = segment.indexOf('=');
  const name = (eq === -1 ? '' : segment.slice(0, eq)).trim();
  const value = (eq === -1 ? segment : segment.slice(eq + 1)).trim();
  if (name === '' && value === '') return undefined;
  return { name, value };
}

/**
 * Parses a request `Cookie` header into its pairs, in order, duplicates kept (a browser
 * sends the most specific path first). A segment without `=` is a nameless cookie.
 *
 * @example
 * parseCookieHeader('a=1; b=x=y;  c=3'); // [{ name: 'a', value: '1' }, { name: 'b', value: 'x=y' }, { name: 'c', value: '3' }]
 */
export function parseCookieHeader(header: CookieHeader): CookiePair[] {
  const out: CookiePair[] = [];
  for (const segment of segments(header)) {
    const pair = pairOf(segment);
    if (pair) out.push(pair);
  }
  return out;
}

/**
 * Serializes pairs as a `Cookie` header (`a=1; b=2`).
 *
 * @example
 * serializeCookieHeader([{ name: 'a', value: '1' }, { name: 'b', value: '2' }]); // 'a=1; b=2'
 */
export function serializeCookieHeader(pairs: readonly CookiePair[]): string {
  return pairs.map((p) => (p.name === '' ? p.value : `${p.name}=${p.value}`)).join('; ');
}

/**
 * The value of the first cookie named `name` in a `Cookie` header (or parsed pairs).
 *
 * @example
 * getCookie('a=1; b=2; a=3', 'a'); // '1'
 */
export function getCookie(
  cookies: CookieHeader | readonly CookiePair[],
  name: string,
): string | undefined {
  const pairs = isPairs(cookies) ? cookies : parseCookieHeader(cookies);
  for (const p of pairs) if (p.name === name) return p.value;
  return undefined;
}

/** @internal */
export function isPairs(x: CookieHeader | readonly CookiePair[]): x is readonly CookiePair[] {
  return Array.isArray(x) && (x.length === 0 || typeof x[0] !== 'string');
}

/**
 * Removes the cookies named in `names` (or matched by a predicate) from a request `Cookie`
 * header — the relay drops its own cookies before forwarding. The other cookies are kept
 * byte for byte, in order. Returns `undefined` when no cookie remains (drop the header).
 * Several header fields (HTTP/2) are joined with `; `.
 *
 * @example
 * stripCookies('theme=dark; appproxy_session=abc;lang=de', ['appproxy_session']); // 'theme=dark;lang=de'
 * stripCookies('appproxy_session=abc', ['appproxy_session']); // undefined
 */
export function stripCookies(
  header: CookieHeader,
  names: Iterable<string> | ((name: string) => boolean),
): string | undefined {
  if (header === undefined) return undefined;
  const drop =
    typeof names === 'function'
      ? names
      : (
          (set: Set<string>) => (name: string) =>
            set.has(name)
        )(new Set(names));
  const kept: string[] = [];
  for (const field of typeof header === 'string' ? [header] : header) {
    const fieldKept: string[] = [];
    let removed = false;
    for (const segment of field.split(';')) {
      const pair = pairOf(segment);
      if (pair && drop(pair.name)) {
        removed = true;
        continue;
      }
      fieldKept.push(segment);
    }
    if (!removed) {
      kept.push(field);
      continue;
    }
    // The first kept segment loses the space that separated it from a dropped one.
    const joined = fieldKept.join(';').replace(/^[ \t]+/, '');
    if (joined.trim() !== '') kept.push(joined);
  }
  return kept.length === 0 ? undefined : kept.join('; ');
}
