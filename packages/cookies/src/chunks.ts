import {
  getCookie,
  isPairs,
  parseCookieHeader,
  type CookieHeader,
  type CookiePair,
} from './cookie-header.js';
import { CookieError } from './errors.js';

/** Browsers keep at least 4096 bytes of name + value per cookie; leave room for safety. */
export const DEFAULT_MAX_COOKIE_BYTES = 4000;
/** More chunks than this is refused: Node's default 16 KiB header limit would reject the request. */
export const DEFAULT_MAX_CHUNKS = 3;

const CHUNKS_PREFIX = 'chunks-';
/** @internal cookie-octets of RFC 6265: what a cookie value may hold unquoted. */
export const COOKIE_OCTETS = /^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*$/;

/**
 * Name of chunk `i` (1-based) of the split cookie `name`.
 *
 * @example
 * chunkName('__Host-appproxy', 2); // '__Host-appproxyC2'
 */
export function chunkName(name: string, i: number): string {
  return `${name}C${i}`;
}

/** Options of {@link splitCookieValue}. */
export interface SplitOptions {
  /** Bytes of name + value per cookie. @default 4000 */
  maxBytesPerCookie?: number;
  /** Refuse values that need more chunks. @default 3 */
  maxChunks?: number;
}

/**
 * Splits a value too large for one cookie into chunks, the way ASP.NET Core's
 * `ChunkingCookieManager` does: the cookie `name` holds `chunks-N`, and `nameC1` … `nameCN`
 * hold the parts. A value that fits stays one cookie named `name`. The value must be
 * cookie-octets (a sealed JWE or base64url is); each `name + value` stays within
 * `maxBytesPerCookie`.
 *
 * @example
 * splitCookieValue('s', 'abcdefghijklmnopqrst', 10);
 * // [{ name: 's', value: 'chunks-3' }, { name: 'sC1', value: 'abcdefg' }, { name: 'sC2', value: 'hijklmn' }, { name: 'sC3', value: 'opqrst' }]
 */
export function splitCookieValue(
  name: string,
  value: string,
  maxBytesOrOptions: number | SplitOptions = {},
): CookiePair[] {
  const options =
    typeof maxBytesOrOptions === 'number'
      ? { maxBytesPerCookie: maxBytesOrOptions }
      : maxBytesOrOptions;
  const max = options.maxBytesPerCookie ?? DEFAULT_MAX_COOKIE_BYTES;
  const maxChunks = options.maxChunks ?? DEFAULT_MAX_CHUNKS;
  if (!Number.isInteger(max) || max < 1)
    throw new CookieError(
      'APPPROXY_COOKIE_INVALID_OPTION',
      'maxBytesPerCookie must be a positive integer',
    );
  if (!COOKIE_OCTETS.test(value))
    throw new CookieError(
      'APPPROXY_COOKIE_INVALID_VALUE',
      `cookie ${JSON.stringify(name)}: value is not made of cookie-octets`,
    );
  if (name.length + value.length <= max && !value.startsWith(CHUNKS_PREFIX))
    return [{ name, value }];
  const chunks: CookiePair[] = [];
  let offset = 0;
  for (let i = 1; offset < value.length; i++) {
    const room = max - chunkName(name, i).length;
    if (room < 1 || i > maxChunks)
      throw new CookieError(
        'APPPROXY_COOKIE_TOO_LARGE',
        `cookie ${JSON.stringify(name)}: ${value.length} bytes do not fit in ${maxChunks} cookies of ${max} bytes`,
      );
    chunks.push({ name: chunkName(name, i), value: value.slice(offset, offset + room) });
    offset += room;
  }
  const head = { name, value: `${CHUNKS_PREFIX}${chunks.length}` };
  if (name.length + head.value.length > max)
    throw new CookieError(
      'APPPROXY_COOKIE_TOO_LARGE',
      `cookie ${JSON.stringify(name)}: name too long for ${max} bytes`,
    );
  return [head, ...chunks];
}

/**
 * Joins a value written by {@link splitCookieValue} from a request's cookies, in any order.
 * Returns `undefined` when the cookie is absent or any chunk is missing — never part of a
 * value.
 *
 * @example
 * joinCookieValue('sC2=def; s=chunks-2; sC1=abc', 's'); // 'abcdef'
 * joinCookieValue('s=chunks-2; sC1=abc', 's'); // undefined
 */
export function joinCookieValue(
  cookies: CookieHeader | readonly CookiePair[],
  name: string,
): string | undefined {
  const pairs = isPairs(cookies) ? cookies : parseCookieHeader(cookies);
  const head = getCookie(pairs, name);
  if (head === undefined) return undefined;
  const m = /^chunks-(\d{1,4})$/.exec(head);
  if (!m) return head;
  const n = Number(m[1]);
  if (n < 1) return undefined;
  const byName = new Map<string, string>();
  for (const p of pairs) if (!byName.has(p.name)) byName.set(p.name, p.value);
  let out = '';
  for (let i = 1; i <= n; i++) {
    const part = byName.get(chunkName(name, i));
    if (part === undefined) return undefined;
    out += part;
  }
  return out;
}

/**
 * A request's cookies by name (the first of a repeated name wins), with each split value
 * joined again. Only a cookie whose value is a `chunks-N` head and that `isSplit` accepts is
 * joined — never one merely named like a chunk (`txnC7` is a name of its own). A split cookie
 * missing a chunk is left out, never passed on in part. The chunks themselves stay in the
 * result under their own names.
 *
 * @example
 * joinCookies('sC2=def; s=chunks-2; sC1=abc; appC7=x', () => true).s; // 'abcdef'
 */
export function joinCookies(
  cookies: CookieHeader | readonly CookiePair[],
  isSplit: (name: string) => boolean = () => true,
): Record<string, string> {
  const pairs = isPairs(cookies) ? cookies : parseCookieHeader(cookies);
  const out: Record<string, string> = {};
  for (const { name, value } of pairs) if (!Object.hasOwn(out, name)) out[name] = value;
  for (const name of Object.keys(out)) {
    if (!out[name]!.startsWith(CHUNKS_PREFIX) || !isSplit(name)) continue;
    const joined = joinCookieValue(pairs, name);
    if (joined === undefined) delete out[name];
    else out[name] = joined;
  }
  return out;
}

/**
 * Names of the cookies in a request that belong to the (possibly split) cookie `name`: the
 * cookie itself and every `nameC<n>` — what to strip before forwarding, or to expire.
 *
 * @example
 * chunkCookieNames('s=chunks-2; sC1=a; sC2=b; other=1', 's'); // ['s', 'sC1', 'sC2']
 */
export function chunkCookieNames(
  cookies: CookieHeader | readonly CookiePair[],
  name: string,
): string[] {
  const pairs = isPairs(cookies) ? cookies : parseCookieHeader(cookies);
  const out = new Set<string>();
  for (const p of pairs) if (isChunkOf(p.name, name)) out.add(p.name);
  return [...out];
}

/**
 * Whether `cookieName` is `name` or one of its chunks (`nameC1`, `nameC2`, …).
 *
 * @example
 * isChunkOf('sessC12', 'sess'); // true
 */
export function isChunkOf(cookieName: string, name: string): boolean {
  if (cookieName === name) return true;
  if (!cookieName.startsWith(name) || cookieName.charCodeAt(name.length) !== 0x43 /* C */)
    return false;
  const digits = cookieName.slice(name.length + 1);
  return /^[1-9]\d{0,3}$/.test(digits);
}
