/** Why a request target cannot be routed. */
export type PathRefusal = 'INVALID_PATH' | 'ENCODED_SEPARATOR' | 'DOT_SEGMENT_PARAMETERS';

export interface RequestTarget {
  /** Dot segments resolved; percent-encodings other than `%2e` kept byte for byte. */
  path: string;
  /** Including the leading `?`, or '' when absent. */
  search: string;
}

// Encoded '/', '\' and NUL are refused outright (as nginx and Apache do by default): a
// backend that decodes them after routing would see a different path than we routed.
const FORBIDDEN = /%2f|%5c|%00|\\/i;
// Path parameters (`;…`, also `%3b…`), which Tomcat, Jetty and Spring strip before resolving
// dot segments: to them `/pub/..;/admin` is `/admin`, to a router that ignores them it is
// under `/pub/`.
const PARAMETERS = /;|%3b/i;

/**
 * Parses an HTTP request target into a routable path: resolves `.` and `..` segments
 * (also when written `%2e`), and refuses encoded separators and dot segments with path
 * parameters (`..;x`, which some servers resolve as `..`). Never lets `..` climb above `/`.
 *
 * @example
 * normalizeRequestTarget('/app/x/../%2e%2e/admin?q=1') // { path: '/admin', search: '?q=1' }
 * normalizeRequestTarget('/app/%2F..%2Fadmin')         // 'ENCODED_SEPARATOR'
 * normalizeRequestTarget('/pub/..;/admin')             // 'DOT_SEGMENT_PARAMETERS'
 */
export function normalizeRequestTarget(target: string): RequestTarget | PathRefusal {
  let raw = target;
  if (!raw.startsWith('/')) {
    // absolute-form (`GET http://host/path`), as sent to proxies
    try {
      const url = new URL(raw);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'INVALID_PATH';
      raw = url.pathname + url.search;
    } catch {
      return 'INVALID_PATH';
    }
  }
  const q = raw.indexOf('?');
  const pathPart = q === -1 ? raw : raw.slice(0, q);
  const search = q === -1 ? '' : raw.slice(q);
  if (FORBIDDEN.test(pathPart)) return 'ENCODED_SEPARATOR';
  const out: string[] = [];
  const segments = pathPart.split('/');
  let trailingSlash = false;
  for (let i = 1; i < segments.length; i++) {
    const seg = segments[i]!;
    const decoded = seg.replace(/%2e/gi, '.');
    const params = decoded.search(PARAMETERS);
    if (params !== -1) {
      const bare = decoded.slice(0, params);
      if (bare === '.' || bare === '..') return 'DOT_SEGMENT_PARAMETERS';
    }
    const last = i === segments.length - 1;
    if (decoded === '.' || decoded === '..') {
      if (decoded === '..') out.pop();
      if (last) trailingSlash = true;
      continue;
    }
    out.push(seg);
  }
  let path = `/${out.join('/')}`;
  if (trailingSlash && !path.endsWith('/')) path += '/';
  return { path, search };
}
