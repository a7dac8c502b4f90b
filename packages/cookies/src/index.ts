export { CookieError, type CookieErrorCode } from './errors.js';
export {
  cookieAttributes,
  getAttribute,
  parseCookieDate,
  parseSetCookie,
  serializeSetCookie,
  setAttribute,
  type CookieAttributes,
  type SameSite,
  type SetCookie,
  type SetCookieAttribute,
} from './set-cookie.js';
export {
  getCookie,
  parseCookieHeader,
  serializeCookieHeader,
  stripCookies,
  type CookieHeader,
  type CookiePair,
} from './cookie-header.js';
export {
  chunkCookieNames,
  chunkName,
  DEFAULT_MAX_CHUNKS,
  DEFAULT_MAX_COOKIE_BYTES,
  isChunkOf,
  joinCookies,
  joinCookieValue,
  splitCookieValue,
  type SplitOptions,
} from './chunks.js';
export {
  applyCookiePolicy,
  DEFAULT_COOKIE_POLICY,
  relayExpireCookie,
  relayCookieLines,
  relayExpireCookies,
  relaySetCookie,
  relaySetCookies,
  type BackendCookieOptions,
  type CookiePolicy,
  type RelayCookie,
  type RelayCookieOptions,
  type RelayCookiesOptions,
} from './policy.js';
export {
  rewriteBackendSetCookie,
  rewriteCookiePath,
  rewriteCookieScope,
  type BackendSetCookieOptions,
  type CookieScope,
} from './scope.js';
