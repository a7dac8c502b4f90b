/** Cookie attributes of an app (`apps[].cookies` in appproxy.yaml). */
export interface AppCookiePolicy {
  /** Hide the session cookie from scripts. @default true */
  httpOnly?: boolean;
  /** Send the relay's cookies over HTTPS only. @default true */
  secure?: boolean;
  /** Keep the session cookie across browser restarts (until the session expires). @default false */
  persistent?: boolean;
  /**
   * `SameSite` of the session cookie. Unset follows the reference product: `None` when
   * `secure` (the app may be embedded in or called from another published app), else `Lax`.
   */
  sameSite?: 'Strict' | 'Lax' | 'None';
}

/**
 * A cookie the relay must set (or expire, `maxAge: 0`) on the response. The relay serializes
 * it (`@appproxy/cookies`), splitting values too long for one cookie and re-joining them on
 * the way in. `Path` is always `/`, there is never a `Domain`: each cookie belongs to the
 * app's own host.
 */
export interface CookieToSet {
  name: string;
  value: string;
  /** Seconds; `0` expires it now; absent makes a session cookie (gone when the browser closes). */
  maxAge?: number;
  path: '/';
  httpOnly: boolean;
  secure: boolean;
  sameSite: 'Strict' | 'Lax' | 'None';
}

/** Every cookie name this package uses starts with one of these (`__Host-` when secure). */
export const COOKIE_PREFIXES = ['__Host-appproxy_', 'appproxy_'] as const;

/**
 * Whether a request cookie belongs to the relay (session, transaction, or a chunk of one):
 * the relay removes these before the request goes to the connector.
 *
 * @example
 * isRelayCookie('__Host-appproxy_session'); // true
 * isRelayCookie('ASP.NET_SessionId');       // false
 */
export function isRelayCookie(name: string): boolean {
  return COOKIE_PREFIXES.some((p) => name.startsWith(p));
}

/** Session cookie name: `__Host-appproxy_session` when secure (host-only, Path=/), else `appproxy_session`. */
export function sessionCookieName(secure: boolean): string {
  return `${secure ? '__Host-' : ''}appproxy_session`;
}

/** Name of the transaction cookie of one sign-in (several may run at once, one per tab). */
export function transactionCookieName(secure: boolean, id: string): string {
  return `${secure ? '__Host-' : ''}appproxy_txn_${id}`;
}

/** Prefix of every transaction cookie name. */
export function transactionCookiePrefix(secure: boolean): string {
  return `${secure ? '__Host-' : ''}appproxy_txn_`;
}

/** The SameSite of the session cookie under `policy`. */
export function sessionSameSite(policy: AppCookiePolicy): 'Strict' | 'Lax' | 'None' {
  if (policy.sameSite) return policy.sameSite;
  return policy.secure === false ? 'Lax' : 'None';
}
