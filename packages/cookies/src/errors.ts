/** Stable codes of everything `@appproxy/cookies` refuses. */
export type CookieErrorCode =
  | 'APPPROXY_COOKIE_INVALID_NAME'
  | 'APPPROXY_COOKIE_INVALID_VALUE'
  | 'APPPROXY_COOKIE_INVALID_ATTRIBUTE'
  | 'APPPROXY_COOKIE_PREFIX_VIOLATION'
  | 'APPPROXY_COOKIE_SAMESITE_NONE_INSECURE'
  | 'APPPROXY_COOKIE_TOO_LARGE'
  | 'APPPROXY_COOKIE_INVALID_OPTION';

/**
 * A cookie cannot be built as asked. The message names the cookie and the rule; it never
 * contains the cookie's value (it may be a session).
 *
 * @example
 * try {
 *   relaySetCookie('bad name', 'v', {}, {});
 * } catch (err) {
 *   if (err instanceof CookieError) console.log(err.code); // 'APPPROXY_COOKIE_INVALID_NAME'
 * }
 */
export class CookieError extends Error {
  readonly code: CookieErrorCode;
  constructor(code: CookieErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CookieError';
    this.code = code;
  }
}
