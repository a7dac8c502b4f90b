import type { PublishedAppConfig } from '@appproxy/config';
import { rewriteBackendSetCookie } from '@appproxy/cookies';
import { isRelayCookie } from '@appproxy/preauth';
import {
  UrlMap,
  createBodyTranslation,
  requestHeaderPasses,
  responseHeaderPasses,
  translateHost,
  type BodyTranslation,
  type HeaderObject,
} from '@appproxy/translate';

/** The request passes but Host: the relay's router sets `:authority` itself (per flag). */
const REQUEST_PASSES = requestHeaderPasses.filter((pass) => pass !== translateHost);
import type { OutgoingHttpHeaders } from 'node:http';
import { WildcardMaps, isWildcardApp } from './wildcard-links.js';

/**
 * Link translation per app, with `@appproxy/translate` and `@appproxy/cookies`: the map of
 * every published app (so links to app B inside app A become B's external URL), header
 * passes applied in place on the headers the relay already built, and the streaming body
 * rewriter for apps with `translateBody`.
 */
export class LinkTranslation {
  /** The map of the apps with exact hosts. */
  readonly map: UrlMap;
  readonly #wildcard: WildcardMaps;

  constructor(apps: readonly PublishedAppConfig[]) {
    const urls = apps.map((a) => ({
      name: a.name,
      internalUrl: a.internalUrl,
      externalUrl: a.externalUrl,
    }));
    const exact = urls.filter((a) => !isWildcardApp(a));
    this.map = new UrlMap(exact);
    this.#wildcard = new WildcardMaps(urls.filter(isWildcardApp), exact);
  }

  /**
   * The map for a response of `app`: the exact apps' map, or for a wildcard app's host (the
   * app as routing filled it in) one where that host is mapped both ways.
   */
  #mapOf(app: PublishedAppConfig): UrlMap {
    return this.#wildcard.has(app.name) ? this.#wildcard.mapFor(app) : this.map;
  }

  /** `Origin`, `Referer`, `Destination` back to internal (`translateHeaders`); `Host` is set by the caller. */
  request(headers: OutgoingHttpHeaders, app: PublishedAppConfig): void {
    if (!app.translateHeaders) return;
    const ctx = { map: this.#mapOf(app), app: app.name };
    for (const pass of REQUEST_PASSES) pass(headers as HeaderObject, ctx);
  }

  /**
   * Drops what only the relay may set ({@link dropRelayOwnedHeaders}); then `Location`,
   * `Content-Location`, `Refresh`, `Link`, CORS origin and `Set-Cookie` Domain/Path to
   * external (`translateHeaders`); the app's cookie policy on its cookies either way.
   */
  response(
    headers: OutgoingHttpHeaders,
    app: PublishedAppConfig,
    requestOrigin: string | undefined,
  ): void {
    dropRelayOwnedHeaders(headers);
    if (app.translateHeaders) {
      const ctx = {
        map: this.#mapOf(app),
        app: app.name,
        cookiePolicy: app.cookies,
        ...(requestOrigin !== undefined && { requestOrigin }),
      };
      for (const pass of responseHeaderPasses) pass(headers as HeaderObject, ctx);
      return;
    }
    const cookies = headers['set-cookie'];
    if (cookies === undefined) return;
    headers['set-cookie'] = (Array.isArray(cookies) ? cookies : [String(cookies)]).map((line) =>
      rewriteBackendSetCookie(line, { policy: app.cookies }),
    );
  }

  /** The body rewriter for this response (`translateBody`, HTML/CSS/scripts), or undefined to pipe it as is. */
  body(
    statusCode: number,
    headers: OutgoingHttpHeaders,
    app: PublishedAppConfig,
    method: string,
  ): BodyTranslation<HeaderObject> | undefined {
    if (!app.translateBody) return undefined;
    return createBodyTranslation(
      { statusCode, headers: headers as HeaderObject },
      {
        map: this.#mapOf(app),
        app: app.name,
        method,
        scripts: app.translateScripts,
        json: app.translateJson,
        rootRelative: app.translateRootRelative,
      },
    );
  }
}

/**
 * Removes, in place, the backend response headers that only the relay may set: `Set-Cookie`
 * lines naming a relay cookie (a backend could otherwise plant a session on its host, fixing
 * the user's session for an oidc app there) and every `x-appproxy-*` / `appproxy-*` header
 * (error codes, correlation ids, identity). The relay adds its own after this pass.
 *
 * @example
 * const h = { 'set-cookie': ['__Host-appproxy_session=x; Path=/', 'sid=1'], 'x-appproxy-error': 'X', etag: '1' };
 * dropRelayOwnedHeaders(h);
 * h; // { 'set-cookie': ['sid=1'], etag: '1' }
 */
export function dropRelayOwnedHeaders(headers: OutgoingHttpHeaders): void {
  for (const name of Object.keys(headers)) {
    if (name.startsWith('x-appproxy-') || name.startsWith('appproxy-')) delete headers[name];
  }
  const cookies = headers['set-cookie'];
  if (cookies === undefined) return;
  const kept = (Array.isArray(cookies) ? cookies : [String(cookies)]).filter(
    (line) => !isRelayCookie(setCookieName(line)),
  );
  if (kept.length === 0) delete headers['set-cookie'];
  else headers['set-cookie'] = kept;
}

/** The cookie name of a `Set-Cookie` line (a nameless cookie: its value, as browsers store it). */
function setCookieName(line: string): string {
  const pair = line.split(';', 1)[0]!;
  const eq = pair.indexOf('=');
  return (eq === -1 ? pair : pair.slice(0, eq)).trim();
}
