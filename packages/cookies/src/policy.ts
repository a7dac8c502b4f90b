import {
  COOKIE_OCTETS,
  chunkCookieNames,
  chunkName,
  splitCookieValue,
  type SplitOptions,
} from './chunks.js';
import {
  getCookie,
  isPairs,
  parseCookieHeader,
  type CookieHeader,
  type CookiePair,
} from './cookie-header.js';
import { CookieError } from './errors.js';
import { getAttribute, setAttribute, type SameSite, type SetCookie } from './set-cookie.js';

/**
 * An app's cookie settings, as `appproxy.yaml` `apps[].cookies` has them (the reference's
 * "Use HTTP-Only Cookie", "Use Secure Cookie", "Use Persistent Cookie"; `sameSite` is ours —
 * the reference is silent on it).
 */
export interface CookiePolicy {
  /** `HttpOnly` on the relay's cookies: scripts cannot read them (XSS). @default true */
  httpOnly?: boolean;
  /** `Secure` on the relay's cookies and added to the app's: sent over HTTPS only. @default true */
  secure?: boolean;
  /**
   * The relay's session cookie outlives the browser (`Max-Age` = the session lifetime);
   * otherwise a session cookie. The reference: only for apps that cannot share cookies
   * between processes. @default false
   */
  persistent?: boolean;
  /**
   * `SameSite` of the relay's cookies, and set on the app's cookies when given.
   * @default 'Lax' for the relay's cookies; unset keeps what the app sends
   */
  sameSite?: SameSite;
}

/** The defaults of {@link CookiePolicy}, for the relay's own cookies. */
export const DEFAULT_COOKIE_POLICY: Readonly<Required<CookiePolicy>> = Object.freeze({
  httpOnly: true,
  secure: true,
  persistent: false,
  sameSite: 'Lax',
});

/** Where and how long a relay cookie lives. */
export interface RelayCookieOptions {
  /** Session lifetime in seconds: `Max-Age` (and `Expires`) of a persistent cookie. Required when `persistent`. */
  lifetimeSeconds?: number;
  /** @default '/' */
  path?: string;
  /** Unset: a host-only cookie (the safest, and required for `__Host-` names). */
  domain?: string;
  /** Clock for `Expires`, in ms since the epoch. @default Date.now() */
  now?: number;
}

// RFC 9110 token: what a cookie name may be.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

// eslint-disable-next-line no-control-regex
const ATTRIBUTE_VALUE = /^[^\x00-\x1f\x7f;]*$/;
const EPOCH = 'Thu, 01 Jan 1970 00:00:00 GMT';

interface Resolved {
  httpOnly: boolean;
  secure: boolean;
  persistent: boolean;
  sameSite: SameSite;
}

function resolve(policy: CookiePolicy): Resolved {
  return {
    httpOnly: policy.httpOnly ?? DEFAULT_COOKIE_POLICY.httpOnly,
    secure: policy.secure ?? DEFAULT_COOKIE_POLICY.secure,
    persistent: policy.persistent ?? DEFAULT_COOKIE_POLICY.persistent,
    sameSite: policy.sameSite ?? DEFAULT_COOKIE_POLICY.sameSite,
  };
}

function checkRelayCookie(name: string, p: Resolved, path: string, domain: string | undefined) {
  if (!TOKEN.test(name))
    throw new CookieError(
      'APPPROXY_COOKIE_INVALID_NAME',
      `cookie name ${JSON.stringify(name)} is not an RFC 9110 token`,
    );
  if (!path.startsWith('/') || !ATTRIBUTE_VALUE.test(path))
    throw new CookieError(
      'APPPROXY_COOKIE_INVALID_ATTRIBUTE',
      `cookie ${name}: path must start with '/' and hold no ';' or control character`,
    );
  if (domain !== undefined && (domain === '' || !ATTRIBUTE_VALUE.test(domain)))
    throw new CookieError(
      'APPPROXY_COOKIE_INVALID_ATTRIBUTE',
      `cookie ${name}: domain is empty or holds ';' or a control character`,
    );
  if (p.sameSite === 'None' && !p.secure)
    throw new CookieError(
      'APPPROXY_COOKIE_SAMESITE_NONE_INSECURE',
      `cookie ${name}: SameSite=None requires secure`,
    );
  const lower = name.toLowerCase();
  if ((lower.startsWith('__secure-') || lower.startsWith('__host-')) && !p.secure)
    throw new CookieError(
      'APPPROXY_COOKIE_PREFIX_VIOLATION',
      `cookie ${name}: the __Secure-/__Host- prefix requires secure`,
    );
  if (lower.startsWith('__host-') && (path !== '/' || domain !== undefined))
    throw new CookieError(
      'APPPROXY_COOKIE_PREFIX_VIOLATION',
      `cookie ${name}: the __Host- prefix requires path '/' and no domain`,
    );
}

function attributes(
  p: Resolved,
  path: string,
  domain: string | undefined,
  expiry: { maxAge: number; expires: string } | undefined,
): string {
  let out = `; Path=${path}`;
  if (domain !== undefined) out += `; Domain=${domain}`;
  if (expiry) out += `; Max-Age=${expiry.maxAge}; Expires=${expiry.expires}`;
  if (p.secure) out += '; Secure';
  if (p.httpOnly) out += '; HttpOnly';
  out += `; SameSite=${p.sameSite}`;
  return out;
}

function expiryOf(p: Resolved, name: string, options: RelayCookieOptions) {
  if (!p.persistent) return undefined;
  const life = options.lifetimeSeconds;
  if (life === undefined || !Number.isInteger(life) || life <= 0)
    throw new CookieError(
      'APPPROXY_COOKIE_INVALID_OPTION',
      `cookie ${name}: a persistent cookie needs lifetimeSeconds, a positive integer`,
    );
  const now = options.now ?? Date.now();
  return { maxAge: life, expires: new Date(now + life * 1000).toUTCString() };
}

/**
 * The `Set-Cookie` line of one of the relay's own cookies under an app's policy:
 * `Path`, `Domain` if given, `Max-Age` + `Expires` when persistent (otherwise a session
 * cookie that ends with the browser), `Secure`, `HttpOnly`, `SameSite` (default `Lax`: sent on
 * top-level navigations such as the OpenID Connect callback, not on cross-site sub-requests).
 * Throws `APPPROXY_COOKIE_*` for a name that is not a token, a value that is not
 * cookie-octets, `SameSite=None` without `Secure`, or a broken `__Host-`/`__Secure-` prefix rule.
 *
 * @example
 * relaySetCookie('__Host-appproxy', 'v1', { persistent: true }, { lifetimeSeconds: 3600, now: 0 });
 * // '__Host-appproxy=v1; Path=/; Max-Age=3600; Expires=Thu, 01 Jan 1970 01:00:00 GMT; Secure; HttpOnly; SameSite=Lax'
 */
export function relaySetCookie(
  name: string,
  value: string,
  policy: CookiePolicy,
  options: RelayCookieOptions = {},
): string {
  const p = resolve(policy);
  const path = options.path ?? '/';
  checkRelayCookie(name, p, path, options.domain);
  if (!COOKIE_OCTETS.test(value))
    throw new CookieError(
      'APPPROXY_COOKIE_INVALID_VALUE',
      `cookie ${name}: value is not made of cookie-octets`,
    );
  return `${name}=${value}${attributes(p, path, options.domain, expiryOf(p, name, options))}`;
}

/**
 * A `Set-Cookie` line that deletes one of the relay's cookies (same `Path`/`Domain`/prefix
 * rules as when it was set: `Max-Age=0` and an `Expires` in 1970).
 *
 * @example
 * relayExpireCookie('__Host-appproxy', {});
 * // '__Host-appproxy=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Secure; HttpOnly; SameSite=Lax'
 */
export function relayExpireCookie(
  name: string,
  policy: CookiePolicy,
  options: Pick<RelayCookieOptions, 'path' | 'domain'> = {},
): string {
  const p = resolve(policy);
  const path = options.path ?? '/';
  checkRelayCookie(name, p, path, options.domain);
  return `${name}=${attributes(p, path, options.domain, { maxAge: 0, expires: EPOCH })}`;
}

/** Options of {@link relaySetCookies}. */
export interface RelayCookiesOptions extends RelayCookieOptions, SplitOptions {
  /** The request's `Cookie` header: chunks of an earlier, longer value that are now stale get expired. */
  requestCookies?: CookieHeader | readonly CookiePair[];
}

/**
 * The `Set-Cookie` lines for a relay cookie whose value may exceed one cookie (a sealed
 * session): split with {@link splitCookieValue}, each part under the policy, plus deletions
 * of chunks the browser still holds from an earlier, longer value.
 *
 * @example
 * // The head, sC1, sC2, and the expiry of sC3 and sC4 that the browser still holds:
 * relaySetCookies('s', 'a'.repeat(18), {}, { maxBytesPerCookie: 12, requestCookies: 's=chunks-4' }).length; // 5
 */
export function relaySetCookies(
  name: string,
  value: string,
  policy: CookiePolicy,
  options: RelayCookiesOptions = {},
): string[] {
  const pairs = splitCookieValue(name, value, options);
  const lines = pairs.map((p) => relaySetCookie(p.name, p.value, policy, options));
  if (options.requestCookies !== undefined) {
    const written = new Set(pairs.map((p) => p.name));
    for (const stale of staleChunkNames(options.requestCookies, name))
      if (!written.has(stale)) lines.push(relayExpireCookie(stale, policy, options));
  }
  return lines;
}

/**
 * The `Set-Cookie` lines that delete a (possibly split) relay cookie: the cookie itself
 * and every chunk the request carries or announces (sign-out).
 *
 * @example
 * relayExpireCookies('s', {}, { requestCookies: 's=chunks-2; sC1=a; sC2=b' }).length; // 3
 */
export function relayExpireCookies(
  name: string,
  policy: CookiePolicy,
  options: Pick<RelayCookiesOptions, 'path' | 'domain' | 'requestCookies'> = {},
): string[] {
  const names = new Set([name, ...staleChunkNames(options.requestCookies, name)]);
  return [...names].map((n) => relayExpireCookie(n, policy, options));
}

/** A relay cookie to set or expire (what `@appproxy/preauth` answers as `CookieToSet`). */
export interface RelayCookie {
  name: string;
  value: string;
  /** Seconds: `0` expires the cookie (and its chunks); absent makes a browser-session cookie. */
  maxAge?: number;
  /** @default '/' */
  path?: string;
  httpOnly?: boolean;
  secure?: boolean;
  sameSite?: SameSite;
}

/**
 * The `Set-Cookie` lines for a list of relay cookies: each long value split
 * ({@link relaySetCookies}), a `maxAge` of 0 expiring the cookie and its chunks
 * ({@link relayExpireCookies}), chunks the request still carries from a longer value expired.
 *
 * @example
 * relayCookieLines([{ name: 's', value: 'v', maxAge: 0 }], 's=chunks-2').length; // 3
 */
export function relayCookieLines(
  cookies: readonly RelayCookie[],
  requestCookies?: CookieHeader | readonly CookiePair[],
): string[] {
  return cookies.flatMap((c) => {
    const policy: CookiePolicy = {
      ...(c.httpOnly !== undefined && { httpOnly: c.httpOnly }),
      ...(c.secure !== undefined && { secure: c.secure }),
      ...(c.sameSite !== undefined && { sameSite: c.sameSite }),
      persistent: c.maxAge !== undefined && c.maxAge > 0,
    };
    const options = {
      ...(c.path !== undefined && { path: c.path }),
      ...(requestCookies !== undefined && { requestCookies }),
    };
    if (c.maxAge === 0) return relayExpireCookies(c.name, policy, options);
    return relaySetCookies(c.name, c.value, policy, {
      ...options,
      ...(c.maxAge !== undefined && { lifetimeSeconds: c.maxAge }),
    });
  });
}

// A forged head such as `chunks-9999` must not make the relay write thousands of lines.
const MAX_ANNOUNCED_CHUNKS = 50;

function staleChunkNames(cookies: CookieHeader | readonly CookiePair[], name: string): string[] {
  if (cookies === undefined) return [];
  const pairs = isPairs(cookies) ? cookies : parseCookieHeader(cookies);
  const out = new Set(chunkCookieNames(pairs, name));
  out.delete(name);
  // A head announcing N chunks names chunks the browser may hold even if this request lacks some.
  const head = /^chunks-(\d{1,4})$/.exec(getCookie(pairs, name) ?? '');
  const announced = Math.min(head ? Number(head[1]) : 0, MAX_ANNOUNCED_CHUNKS);
  for (let i = 1; i <= announced; i++) out.add(chunkName(name, i));
  return [...out];
}

/** Options of {@link applyCookiePolicy}. */
export interface BackendCookieOptions {
  /**
   * Also add `HttpOnly` to the app's cookies. Off by default: the reference's flag is about
   * the proxy's own cookies, and forcing it breaks apps whose scripts read their cookies
   * (`XSRF-TOKEN` double-submit and the like). @default false
   */
  forceHttpOnly?: boolean;
}

/**
 * Applies an app's policy to a cookie the app (backend) sets: `secure` adds `Secure`
 * (never removes it), `sameSite` when given replaces the app's `SameSite` (`None` also adds
 * `Secure`, which browsers require), `HttpOnly` only with `forceHttpOnly`. `persistent` is
 * about the relay's session cookie and leaves the app's cookie lifetimes alone. Returns the
 * same object when nothing changes.
 *
 * @example
 * serializeSetCookie(applyCookiePolicy(parseSetCookie('id=1; Path=/')!, { secure: true, sameSite: 'Lax' }));
 * // 'id=1; Path=/; Secure; SameSite=Lax'
 */
export function applyCookiePolicy(
  cookie: SetCookie,
  policy: CookiePolicy,
  options: BackendCookieOptions = {},
): SetCookie {
  let out = cookie;
  if ((policy.secure ?? DEFAULT_COOKIE_POLICY.secure) || policy.sameSite === 'None') {
    if (getAttribute(out, 'Secure') === undefined) out = setAttribute(out, 'Secure', true);
  }
  if (options.forceHttpOnly && getAttribute(out, 'HttpOnly') === undefined)
    out = setAttribute(out, 'HttpOnly', true);
  if (policy.sameSite !== undefined) {
    const current = getAttribute(out, 'SameSite');
    if (typeof current !== 'string' || current.toLowerCase() !== policy.sameSite.toLowerCase())
      out = setAttribute(out, 'SameSite', policy.sameSite);
  }
  return out;
}
