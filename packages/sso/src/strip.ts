import { SsoError } from './errors.js';

/**
 * Identity and client-address headers a client must never be able to send to a backend:
 * lower-case; a trailing `*` matches any name that starts with the rest. `_` and `-` are the
 * same character when matching (see {@link HeaderStripper}).
 */
export const DEFAULT_STRIP_REQUEST_HEADERS: readonly string[] = Object.freeze([
  // Generic reverse-proxy auth (Apache/nginx REMOTE_USER, Grafana, Jenkins, many apps).
  'remote-user',
  'x-remote-user',
  'x-remote-email',
  'x-remote-groups',
  'x-remote-name',
  'x-webauth-*',
  // oauth2-proxy.
  'x-forwarded-user',
  'x-forwarded-email',
  'x-forwarded-preferred-username',
  'x-forwarded-groups',
  'x-forwarded-access-token',
  'x-auth-request-*',
  'gap-auth',
  // Pomerium.
  'x-pomerium-*',
  // Azure App Service / Entra application proxy style.
  'x-ms-client-principal*',
  'x-ms-token-*',
  // Google IAP, Cloudflare Access, AWS ALB.
  'x-goog-authenticated-user-*',
  'x-goog-iap-jwt-assertion',
  'cf-access-*',
  'x-amzn-oidc-*',
  // This relay's own.
  'x-appproxy-assertion',
  'x-appproxy-*',
  // Client address claimed by the client (X-Forwarded-For/Forwarded are rebuilt by the relay
  // from its trusted proxies, not stripped here).
  'x-real-ip',
  'x-client-ip',
  'true-client-ip',
  'cf-connecting-ip',
  'fastly-client-ip',
  'x-cluster-client-ip',
  'x-original-forwarded-for',
]);

const PATTERN = /^[!#$%&'+\-.^_`|~0-9a-z]+\*?$/;

const EMPTY: string[] = Object.freeze([]) as unknown as string[];

/** `_` and `-` fold together: CGI-style servers map both to the same `HTTP_X_REMOTE_USER`. */
const fold = (name: string) => {
  const lower = name.toLowerCase();
  return lower.includes('_') ? lower.replaceAll('_', '-') : lower;
};

/**
 * Removes the request headers a client could use to pose as another user.
 *
 * Names are compared case-insensitively and with `_` equal to `-`: PHP, WSGI, Rack, CGI and
 * nginx with `underscores_in_headers on` read both `X-Remote-User` and `X_Remote_User` as
 * `HTTP_X_REMOTE_USER`, so both must go.
 *
 * @example
 * const stripper = new HeaderStripper(DEFAULT_STRIP_REQUEST_HEADERS);
 * const headers = { 'x-remote-user': 'admin', 'x-remote-user-agent': 'ok' };
 * stripper.strip(headers); // ['x-remote-user']; headers is { 'x-remote-user-agent': 'ok' }
 */
export class HeaderStripper {
  readonly #exact = new Set<string>();
  readonly #prefixes: string[] = [];

  /**
   * @param patterns exact names or `prefix*`, any case.
   * @throws SsoError `APPPROXY_SSO_STRIP_INVALID` on a pattern that is not a header name
   *   (with an optional trailing `*`), or a bare `*`.
   */
  constructor(patterns: Iterable<string>) {
    for (const raw of patterns) {
      const p = typeof raw === 'string' ? raw.toLowerCase() : '';
      if (!PATTERN.test(p) || p === '*') {
        throw new SsoError(
          'APPPROXY_SSO_STRIP_INVALID',
          `Header strip pattern "${String(raw)}" is not a header name or "prefix*"`,
        );
      }
      const folded = fold(p);
      if (folded.endsWith('*')) {
        const prefix = folded.slice(0, -1);
        if (!this.#prefixes.includes(prefix)) this.#prefixes.push(prefix);
      } else this.#exact.add(folded);
    }
  }

  /** Whether a request header `name` (any case) is one to remove. */
  matches(name: string): boolean {
    const n = fold(name);
    if (this.#exact.has(n)) return true;
    for (const prefix of this.#prefixes) if (n.startsWith(prefix)) return true;
    return false;
  }

  /**
   * Removes matching headers in place from a Node-style headers object (`req.headers`).
   * `rawHeaders` is not touched: forward `headers`.
   *
   * @returns the names removed (for logs), or a shared frozen empty array when none matched.
   */
  strip(headers: Record<string, unknown>): string[] {
    let removed: string[] | undefined;
    for (const name in headers) {
      if (!Object.hasOwn(headers, name) || !this.matches(name)) continue;
      delete headers[name];
      (removed ??= []).push(name);
    }
    return removed ?? EMPTY;
  }
}
