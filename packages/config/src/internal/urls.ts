import { wildcardHostProblem } from './wildcard.js';

/** A checked, normalised URL, or why it was refused. Messages never repeat the input. */
export type UrlCheck = { ok: true; url: string } | { ok: false; message: string };

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * An app's internal or external URL: absolute, `http(s)` (external: `https` only), no
 * credentials, query or fragment; the path normalised to end with `/` (it is a prefix).
 */
export function checkAppUrl(v: string, kind: 'internal' | 'external'): UrlCheck {
  const absolute =
    kind === 'internal' ? 'must be an absolute http(s) URL' : 'must be an absolute https URL';
  const scheme = kind === 'internal' ? /^https?:\/\/[^/]/i : /^https:\/\/[^/]/i;
  const url = scheme.test(v) ? parseUrl(v) : undefined;
  if (!url?.host) return { ok: false, message: absolute };
  if (url.username || url.password) return { ok: false, message: 'must not contain credentials' };
  if (/[?#]/.test(v)) return { ok: false, message: 'must not have a query or fragment' };
  const wildcard = wildcardHostProblem(url.hostname, kind);
  if (wildcard) return { ok: false, message: wildcard };
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return { ok: true, url: url.href };
}

/**
 * An OpenID Connect issuer: an absolute `https` URL without query or fragment (`http` only
 * for a loopback host, for development IdPs). Kept exactly as written: it must equal the
 * `iss` the provider puts in its tokens.
 */
export function checkIssuer(v: string): UrlCheck {
  const url = /^https?:\/\/[^/]/i.test(v) ? parseUrl(v) : undefined;
  if (!url?.host || (url.protocol === 'http:' && !LOOPBACK.has(url.hostname))) {
    return { ok: false, message: 'must be an absolute https URL (http only for localhost)' };
  }
  if (url.username || url.password) return { ok: false, message: 'must not contain credentials' };
  if (/[?#]/.test(v)) return { ok: false, message: 'must not have a query or fragment' };
  return { ok: true, url: v };
}

/**
 * A forward proxy: `http://[user:pass@]host[:port]` (port 80 when absent), nothing after the
 * authority. Kept as written (credentials included; the logger redacts them).
 */
export function checkProxyUrl(v: string): UrlCheck {
  const url = /^http:\/\/[^/]/i.test(v) ? parseUrl(v) : undefined;
  if (!url?.host) return { ok: false, message: 'must be an http:// proxy URL (http://host:port)' };
  if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash)
    return { ok: false, message: 'must be http://host:port with no path, query or fragment' };
  return { ok: true, url: url.href.replace(/\/$/, '') };
}

/** `relay.adminUrl`: an http(s) origin, nothing after the authority; kept without a trailing `/`. */
export function checkAdminUrl(v: string): UrlCheck {
  const url = /^https?:\/\/[^/]/i.test(v) ? parseUrl(v) : undefined;
  if (!url?.host) return { ok: false, message: 'must be an absolute http(s) URL' };
  if (url.username || url.password) return { ok: false, message: 'must not contain credentials' };
  if ((url.pathname !== '/' && url.pathname !== '') || /[?#]/.test(v))
    return { ok: false, message: 'must be an origin (scheme, host, port) without a path or query' };
  return { ok: true, url: url.origin };
}

function parseUrl(v: string): URL | undefined {
  try {
    return new URL(v);
  } catch {
    return undefined;
  }
}
