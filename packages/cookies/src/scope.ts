import { isIP } from 'node:net';
import { applyCookiePolicy, type BackendCookieOptions, type CookiePolicy } from './policy.js';
import {
  getAttribute,
  parseSetCookie,
  serializeSetCookie,
  setAttribute,
  type SetCookie,
} from './set-cookie.js';

/**
 * Where an app lives inside and outside, for rewriting the `Domain` and `Path` of the
 * cookies it sets.
 */
export interface CookieScope {
  /** Names the backend is reached by, lower case: its FQDN, and its NetBIOS short name if any. */
  internalHosts: readonly string[];
  /** The external host name, lower case, no port. */
  externalHost: string;
  /** Internal path prefix, ending in `/`. @default '/' */
  internalPath?: string;
  /** External path prefix, ending in `/`. @default '/' */
  externalPath?: string;
  /**
   * Domain to use outside for cookies the app sets on a parent domain of its internal host
   * (`Domain=corp.local` → `Domain=example.com`), when apps share cookies on purpose. Unset:
   * such cookies become host-only cookies of the external host — always valid, never wider.
   */
  externalParentDomain?: string;
}

function stripSlash(p: string): string {
  return p.endsWith('/') ? p.slice(0, -1) : p;
}

/**
 * Maps a cookie `Path` from the internal prefix to the external one: under the prefix it
 * moves with it (`/app/x` → `/ext/x`); a path that contains the whole app (`/` for an app at
 * `/app/`) becomes the external prefix; any other path is left alone.
 *
 * @example
 * rewriteCookiePath('/app/reports', '/app/', '/expenses/'); // '/expenses/reports'
 * rewriteCookiePath('/', '/app/', '/expenses/'); // '/expenses'
 */
export function rewriteCookiePath(
  path: string,
  internalPath: string,
  externalPath: string,
): string | undefined {
  const ip = stripSlash(internalPath);
  const ep = stripSlash(externalPath);
  if (ip === ep) return undefined;
  let out: string | undefined;
  if (path === '/') out = ep;
  else if (path === ip || path.startsWith(`${ip}/`)) out = ep + path.slice(ip.length);
  else if (ip.startsWith(path.endsWith('/') ? path : `${path}/`)) out = ep;
  if (out === undefined) return undefined;
  if (out === '') out = '/';
  return out === path ? undefined : out;
}

/**
 * Rewrites a backend cookie's `Domain` and `Path` from the app's internal URL to its
 * external one: `Domain` equal to the internal host (or its short name) becomes the external
 * host (dropped for an IP address); a parent domain of the internal host becomes
 * `externalParentDomain` or, unset, is dropped (host-only); a domain the app already gives
 * externally, or one that matches neither (the browser will refuse it anyway), is kept.
 * `Path` follows {@link rewriteCookiePath}, except on `__Host-` cookies (they must keep `/`).
 * Returns the same object when nothing changes.
 *
 * @example
 * const scope = { internalHosts: ['exp.corp.local', 'exp'], externalHost: 'exp.example.com', internalPath: '/app/', externalPath: '/' };
 * serializeSetCookie(rewriteCookieScope(parseSetCookie('id=1; Domain=exp.corp.local; Path=/app/')!, scope));
 * // 'id=1; Domain=exp.example.com; Path=/'
 */
export function rewriteCookieScope(cookie: SetCookie, scope: CookieScope): SetCookie {
  let out = cookie;
  const domain = getAttribute(cookie, 'Domain');
  if (typeof domain === 'string' && domain !== '') {
    const d = (domain.startsWith('.') ? domain.slice(1) : domain).toLowerCase().replace(/\.$/, '');
    const ext = scope.externalHost.toLowerCase();
    if (scope.internalHosts.includes(d)) {
      out = setAttribute(out, 'Domain', isIP(ext) ? undefined : ext);
    } else if (scope.internalHosts.some((h) => h.endsWith(`.${d}`))) {
      const parent = scope.externalParentDomain?.toLowerCase();
      const usable = parent !== undefined && (ext === parent || ext.endsWith(`.${parent}`));
      out = setAttribute(out, 'Domain', usable ? parent : undefined);
    }
  }
  const path = getAttribute(cookie, 'Path');
  if (typeof path === 'string' && path.startsWith('/') && !/^__host-/i.test(cookie.name)) {
    const next = rewriteCookiePath(path, scope.internalPath ?? '/', scope.externalPath ?? '/');
    if (next !== undefined) out = setAttribute(out, 'Path', next);
  }
  return out;
}

/** Options of {@link rewriteBackendSetCookie}. */
export interface BackendSetCookieOptions extends BackendCookieOptions {
  /** Rewrite `Domain`/`Path` from inside to outside. Unset: leave them. */
  scope?: CookieScope;
  /** Apply the app's cookie policy. Unset: leave the flags. */
  policy?: CookiePolicy;
}

/**
 * One backend `Set-Cookie` line as the browser should get it through the relay: scope
 * rewritten, policy applied. A line that needs no change — or that a browser would ignore
 * anyway — comes back as the same string, byte for byte.
 *
 * @example
 * rewriteBackendSetCookie('sid=1; Path=/app; Domain=.exp.corp.local', {
 *   scope: { internalHosts: ['exp.corp.local'], externalHost: 'exp.example.com', internalPath: '/app/', externalPath: '/' },
 *   policy: { secure: true },
 * });
 * // 'sid=1; Path=/; Domain=exp.example.com; Secure'
 */
export function rewriteBackendSetCookie(header: string, options: BackendSetCookieOptions): string {
  const parsed = parseSetCookie(header);
  if (!parsed) return header;
  let cookie = parsed;
  if (options.scope) cookie = rewriteCookieScope(cookie, options.scope);
  if (options.policy) cookie = applyCookiePolicy(cookie, options.policy, options);
  return cookie === parsed ? header : serializeSetCookie(cookie);
}
