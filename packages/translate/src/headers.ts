import { rewriteBackendSetCookie, type CookiePolicy } from '@appproxy/cookies';
import { TranslateError } from './errors.js';
import { headerKey, mapHeader, setHeader, type HeaderObject } from './internal/header-object.js';
import type { MappedApp, UrlMap } from './url-map.js';

export type { HeaderObject };

/** Which app a request or response belongs to. */
export interface HeaderContext {
  map: UrlMap;
  /** Name of the app (as given to the `UrlMap`) the request was routed to. */
  app: string;
}

/** Context of a response header translation. */
export interface ResponseHeaderContext extends HeaderContext {
  /**
   * The browser's `Origin` request header (external). A backend that echoes it back (after
   * request translation, its internal form) gets exactly this origin returned.
   */
  requestOrigin?: string;
  /** Also apply this cookie policy to the app's `Set-Cookie` (see `@appproxy/cookies`). */
  cookiePolicy?: CookiePolicy;
  /** With `cookiePolicy`: also force `HttpOnly` on the app's cookies. @default false */
  forceHttpOnly?: boolean;
  /** Parent domain for the app's parent-domain cookies (`Domain=corp.local` → this). Unset: host-only. */
  externalParentDomain?: string;
}

/** One step of response header translation: changes `headers` in place. */
export type ResponseHeaderPass = (headers: HeaderObject, ctx: ResponseHeaderContext) => void;
/** One step of request header translation: changes `headers` in place. */
export type RequestHeaderPass = (headers: HeaderObject, ctx: HeaderContext) => void;

function appOf(ctx: HeaderContext): MappedApp {
  const app = ctx.map.app(ctx.app);
  if (!app)
    throw new TranslateError(
      'APPPROXY_TRANSLATE_INVALID_OPTION',
      `no app named ${JSON.stringify(ctx.app)}`,
    );
  return app;
}

/**
 * `Location` (redirects): an internal URL of any published app becomes its external URL.
 *
 * @example
 * const h = { location: 'http://expenses.corp.local:8080/login' };
 * translateLocation(h, { map, app: 'Expenses' }); // h.location === 'https://expenses.example.com/login'
 */
export function translateLocation(headers: HeaderObject, ctx: ResponseHeaderContext): void {
  mapHeader(headers, 'location', (v) => ctx.map.toExternal(v.trim(), ctx.app));
}

/**
 * `Content-Location`, as `Location`.
 *
 * @example
 * const h = { 'content-location': 'http://travel.corp.local/travel/trips/1.json' };
 * translateContentLocation(h, { map, app: 'Travel' }); // h['content-location'] === 'https://apps.example.com/trips/trips/1.json'
 */
export function translateContentLocation(headers: HeaderObject, ctx: ResponseHeaderContext): void {
  mapHeader(headers, 'content-location', (v) => ctx.map.toExternal(v.trim(), ctx.app));
}

/**
 * `Refresh: 5; url=http://…` — the URL part.
 *
 * @example
 * const h = { refresh: '0; URL=http://expenses.corp.local:8080/' };
 * translateRefresh(h, { map, app: 'Expenses' }); // h.refresh === '0; URL=https://expenses.example.com/'
 */
export function translateRefresh(headers: HeaderObject, ctx: ResponseHeaderContext): void {
  mapHeader(headers, 'refresh', (v) => {
    const m = /^(\s*[\d.]*\s*[;,]?\s*(?:url\s*=\s*)?)(["']?)(.*?)(\2\s*)$/is.exec(v);
    if (!m) return undefined;
    const url = ctx.map.toExternal(m[3]!, ctx.app);
    return url === undefined ? undefined : m[1]! + m[2]! + url + m[4]!;
  });
}

/**
 * `Link: <http://…>; rel=preload, …` — every URI reference in angle brackets.
 *
 * @example
 * const h = { link: '<http://expenses.corp.local:8080/app.css>; rel=preload; as=style' };
 * translateLink(h, { map, app: 'Expenses' }); // h.link === '<https://expenses.example.com/app.css>; rel=preload; as=style'
 */
export function translateLink(headers: HeaderObject, ctx: ResponseHeaderContext): void {
  mapHeader(headers, 'link', (v) =>
    v.replace(/<([^>]*)>/g, (all, uri: string) => {
      const out = ctx.map.toExternal(uri.trim(), ctx.app);
      return out === undefined ? all : `<${out}>`;
    }),
  );
}

/**
 * `Access-Control-Allow-Origin`: the backend's echo of the (translated) request origin goes
 * back as the browser's own origin; another published internal origin as its external one;
 * `*`, `null` and unknown origins stay.
 *
 * @example
 * const h = { 'access-control-allow-origin': 'http://travel.corp.local' };
 * translateAllowOrigin(h, { map, app: 'Expenses' }); // h['access-control-allow-origin'] === 'https://apps.example.com'
 */
export function translateAllowOrigin(headers: HeaderObject, ctx: ResponseHeaderContext): void {
  mapHeader(headers, 'access-control-allow-origin', (v) => {
    const value = v.trim();
    if (value === '*' || value === 'null') return undefined;
    if (ctx.requestOrigin !== undefined) {
      const internal = ctx.map.originToInternal(ctx.requestOrigin, ctx.app);
      if (internal !== undefined && internal === normaliseOrigin(value)) return ctx.requestOrigin;
    }
    return ctx.map.originToExternal(value, ctx.app);
  });
}

/**
 * `Set-Cookie`: `Domain` and `Path` from the app's internal URL to its external one (and the
 * cookie policy, when the context has one). Each cookie stays its own header value.
 *
 * @example
 * const h = { 'set-cookie': ['sid=1; Path=/; Domain=expenses.corp.local', 'theme=dark'] };
 * translateSetCookie(h, { map, app: 'Expenses' });
 * // h['set-cookie'][0] === 'sid=1; Path=/; Domain=expenses.example.com' && h['set-cookie'][1] === 'theme=dark'
 */
export function translateSetCookie(headers: HeaderObject, ctx: ResponseHeaderContext): void {
  if (headerKey(headers, 'set-cookie') === undefined) return;
  const scope = ctx.map.cookieScope(
    appOf(ctx),
    ctx.externalParentDomain === undefined
      ? {}
      : { externalParentDomain: ctx.externalParentDomain },
  );
  mapHeader(headers, 'set-cookie', (line) =>
    rewriteBackendSetCookie(line, {
      scope,
      ...(ctx.cookiePolicy && { policy: ctx.cookiePolicy }),
      ...(ctx.forceHttpOnly !== undefined && { forceHttpOnly: ctx.forceHttpOnly }),
    }),
  );
}

/**
 * `Host` (and HTTP/2 `:authority`): the app's internal host, as the backend expects it.
 * Leave this pass out (the reference's "Translate URLs in Headers" off) to send the external
 * host instead.
 *
 * @example
 * const h = { host: 'expenses.example.com' };
 * translateHost(h, { map, app: 'Expenses' }); // h.host === 'expenses.corp.local:8080'
 */
export function translateHost(headers: HeaderObject, ctx: HeaderContext): void {
  const app = appOf(ctx);
  const authority = headerKey(headers, ':authority');
  if (authority !== undefined) headers[authority] = app.internalHost;
  if (authority === undefined || headerKey(headers, 'host') !== undefined)
    setHeader(headers, 'host', app.internalHost);
}

/**
 * `Origin`: a published external origin becomes its internal origin.
 *
 * @example
 * const h = { origin: 'https://expenses.example.com' };
 * translateOrigin(h, { map, app: 'Expenses' }); // h.origin === 'http://expenses.corp.local:8080'
 */
export function translateOrigin(headers: HeaderObject, ctx: HeaderContext): void {
  mapHeader(headers, 'origin', (v) => ctx.map.originToInternal(v.trim(), ctx.app));
}

/**
 * `Referer`: a published external URL becomes its internal URL.
 *
 * @example
 * const h = { referer: 'https://expenses.example.com/reports?y=2024' };
 * translateReferer(h, { map, app: 'Expenses' }); // h.referer === 'http://expenses.corp.local:8080/reports?y=2024'
 */
export function translateReferer(headers: HeaderObject, ctx: HeaderContext): void {
  mapHeader(headers, 'referer', (v) => ctx.map.toInternal(v.trim(), ctx.app));
}

/**
 * `Destination` (WebDAV `COPY`/`MOVE`, used by SharePoint): as `Referer`.
 *
 * @example
 * const h = { destination: 'https://hr.example.com/Shared%20Documents/b.docx' };
 * translateDestination(h, { map, app: 'HR site' }); // h.destination === 'http://sharepoint.corp.local/sites/hr/Shared%20Documents/b.docx'
 */
export function translateDestination(headers: HeaderObject, ctx: HeaderContext): void {
  mapHeader(headers, 'destination', (v) => ctx.map.toInternal(v.trim(), ctx.app));
}

/** The response passes, in order. */
export const responseHeaderPasses: readonly ResponseHeaderPass[] = Object.freeze([
  translateLocation,
  translateContentLocation,
  translateRefresh,
  translateLink,
  translateAllowOrigin,
  translateSetCookie,
]);

/** The request passes, in order. */
export const requestHeaderPasses: readonly RequestHeaderPass[] = Object.freeze([
  translateHost,
  translateOrigin,
  translateReferer,
  translateDestination,
]);

/**
 * A translated copy of a backend response's headers (`IncomingHttpHeaders`,
 * `OutgoingHttpHeaders` or HTTP/2 headers; any key case; `set-cookie` kept as separate
 * values). The input is not changed.
 *
 * @example
 * translateResponseHeaders({ location: 'http://travel.corp.local/travel/trips/1', 'content-type': 'text/html' }, { map, app: 'Expenses' });
 * // { location: 'https://apps.example.com/trips/trips/1', 'content-type': 'text/html' }
 */
export function translateResponseHeaders<H extends HeaderObject>(
  headers: H,
  ctx: ResponseHeaderContext,
  passes: readonly ResponseHeaderPass[] = responseHeaderPasses,
): H {
  const out = copy(headers);
  for (const pass of passes) pass(out, ctx);
  return out;
}

/**
 * A translated copy of a browser request's headers, for the backend.
 *
 * @example
 * translateRequestHeaders({ host: 'expenses.example.com', referer: 'https://expenses.example.com/a' }, { map, app: 'Expenses' });
 * // { host: 'expenses.corp.local:8080', referer: 'http://expenses.corp.local:8080/a' }
 */
export function translateRequestHeaders<H extends HeaderObject>(
  headers: H,
  ctx: HeaderContext,
  passes: readonly RequestHeaderPass[] = requestHeaderPasses,
): H {
  const out = copy(headers);
  for (const pass of passes) pass(out, ctx);
  return out;
}

function copy<H extends HeaderObject>(headers: H): H {
  const out = { ...headers };
  for (const key of Object.keys(out)) {
    const v = out[key];
    if (Array.isArray(v)) (out as HeaderObject)[key] = [...v];
  }
  return out;
}

function normaliseOrigin(origin: string): string | undefined {
  try {
    return new URL(origin).origin;
  } catch {
    return undefined;
  }
}
