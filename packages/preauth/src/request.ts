/**
 * One request as the relay hands it to this package: nothing framework-specific, so it works
 * from node:http, http2, http-proxy or anything else.
 */
export interface PreauthRequest {
  /** `GET`, `POST`, … */
  method: string;
  /** The request target as received: path and query (`/reports?year=2025`). */
  url: string;
  /** Header names in lower case, as node:http and http2 give them. */
  headers: Record<string, string | string[] | undefined>;
  /** Request cookies by name, already parsed (and split cookies re-joined) by the relay. */
  cookies: Record<string, string>;
  /** The client's IP as the relay determined it (after trusted proxies), for IP rules. */
  clientIp?: string;
}

/** One header's value; repeated headers give their first value. */
export function header(req: Pick<PreauthRequest, 'headers'>, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * Whether the request comes from a script or a native/API client rather than a browser
 * navigation: an `X-Requested-With` header, or an `Accept` without `text/html` (and not a
 * navigation per `Sec-Fetch-Mode`). Such clients get `401` + `WWW-Authenticate: Bearer`
 * instead of the sign-in page.
 *
 * @example
 * isApiRequest({ headers: { accept: 'application/json' } }); // true
 * isApiRequest({ headers: { accept: 'text/html,application/xhtml+xml,*\/*;q=0.8' } }); // false
 */
export function isApiRequest(req: Pick<PreauthRequest, 'headers'>): boolean {
  if (header(req, 'x-requested-with')) return true;
  if (header(req, 'sec-fetch-mode') === 'navigate') return false;
  return !/(^|[\s,;])text\/html($|[\s,;])/i.test(header(req, 'accept') ?? '');
}

/** The token of an `Authorization: Bearer <token>` header, if that is what it holds. */
export function bearerToken(req: Pick<PreauthRequest, 'headers'>): string | undefined {
  const m = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(header(req, 'authorization') ?? '');
  return m?.[1];
}
