import { isIP } from 'node:net';
import type { CookieScope } from '@appproxy/cookies';
import { TranslateError } from './errors.js';
import { Matcher, type Page, type Target } from './internal/matcher.js';

/** What the map needs of a published app. */
export interface PublishedAppUrls {
  /** Unique; used to prefer this app when several are published from the same URL. @default externalUrl */
  name?: string;
  /** Absolute http(s) URL on the internal network; the path ends in `/`. */
  internalUrl: string;
  /** Absolute http(s) URL users open; the path ends in `/`. */
  externalUrl: string;
}

/** Options of {@link UrlMap}. */
export interface UrlMapOptions {
  /**
   * Also recognise an internal host by its NetBIOS short name, the first label of its DNS
   * name (`http://expenses/` for `expenses.corp.local`). A short name two different hosts
   * share is left out. @default true
   */
  shortNames?: boolean;
  /** Compare path prefixes ignoring case, as IIS does. @default false */
  ignorePathCase?: boolean;
}

/** A published app as the map resolved it. */
export interface MappedApp {
  name: string;
  /** Normalised (`new URL().href`): lower-case punycode host, default port dropped. */
  internalUrl: string;
  externalUrl: string;
  /** `http://expenses.corp.local:8080` */
  internalOrigin: string;
  externalOrigin: string;
  /** `Host` header value: host and port unless it is the scheme's default. */
  internalHost: string;
  externalHost: string;
  /** Host name alone, lower case, punycode. */
  internalHostname: string;
  externalHostname: string;
  /** Path prefixes, ending in `/`. */
  internalPath: string;
  externalPath: string;
  /** NetBIOS short name the map also recognises, if any. */
  shortName?: string;
}

interface Compiled {
  outbound: Matcher;
  inbound: Matcher;
  pages: Map<string, Page>;
}

const compiled = new WeakMap<UrlMap, Compiled>();

/** @internal The matcher of internal → external URLs, for the body rewriters. */
export function outboundMatcher(map: UrlMap): Matcher {
  return compiled.get(map)!.outbound;
}

/** @internal The internal origin of an app's pages, for root-relative links. */
export function pageOf(map: UrlMap, app: string | undefined): Page | undefined {
  return app === undefined ? undefined : compiled.get(map)!.pages.get(app);
}

function parseAppUrl(raw: string, app: string, field: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch (cause) {
    throw new TranslateError(
      'APPPROXY_TRANSLATE_INVALID_APP',
      `${app}: ${field} is not an absolute URL`,
      { cause },
    );
  }
  const problem =
    url.protocol !== 'http:' && url.protocol !== 'https:'
      ? 'must be http or https'
      : url.username || url.password
        ? 'must not carry credentials'
        : url.search || url.hash || raw.includes('#')
          ? 'must not have a query or fragment'
          : !url.pathname.endsWith('/')
            ? "path must end with '/'"
            : undefined;
  if (problem)
    throw new TranslateError('APPPROXY_TRANSLATE_INVALID_APP', `${app}: ${field} ${problem}`);
  return url;
}

function portOf(url: URL): number {
  return url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
}

/** `http://h:8080` → https on 8080; `http://h` (80) → `https://h` (443); and back. */
function otherScheme(url: URL): { scheme: 'http' | 'https'; port: number } {
  const scheme = url.protocol === 'https:' ? 'http' : 'https';
  return { scheme, port: url.port ? Number(url.port) : scheme === 'https' ? 443 : 80 };
}

function target(app: string, from: URL, to: URL): Target {
  const base = to.origin + to.pathname;
  return {
    app,
    scheme: from.protocol === 'https:' ? 'https' : 'http',
    port: portOf(from),
    prefix: from.pathname,
    prefixLower: from.pathname.toLowerCase(),
    base,
    origin: to.origin,
    basePath: to.pathname,
    same: [],
  };
}

/**
 * The internal ↔ external URL map of all published apps: by scheme, host, port and path
 * prefix (longest first), with NetBIOS short names, default ports, case-insensitive hosts,
 * IDNs (Unicode or punycode) and scheme-relative `//host/…` URLs. Only the matched
 * scheme + authority + prefix is replaced; the rest of a URL keeps its exact characters.
 * URLs of unpublished hosts, and relative URLs (they already work), map to `undefined`.
 *
 * @example
 * const map = new UrlMap([
 *   { name: 'Expenses', internalUrl: 'http://expenses.corp.local:8080/app/', externalUrl: 'https://expenses.example.com/' },
 * ]);
 * map.toExternal('http://EXPENSES:8080/app/reports?id=1'); // 'https://expenses.example.com/reports?id=1'
 * map.toInternal('https://expenses.example.com/new'); // 'http://expenses.corp.local:8080/app/new'
 * map.toExternal('http://feedback.corp.local/'); // undefined
 */
export class UrlMap {
  readonly apps: readonly MappedApp[];
  readonly #byName = new Map<string, MappedApp>();
  readonly #internalOrigins = new Map<string, MappedApp>();
  readonly #externalOrigins = new Map<string, MappedApp>();

  constructor(apps: readonly PublishedAppUrls[], options: UrlMapOptions = {}) {
    const ignorePathCase = options.ignorePathCase ?? false;
    const outbound = new Matcher(ignorePathCase);
    const inbound = new Matcher(ignorePathCase);
    const mapped: MappedApp[] = [];
    const pages = new Map<string, Page>();
    const parsed: { name: string; internal: URL; external: URL }[] = [];
    for (const [i, app] of apps.entries()) {
      const name = app.name ?? app.externalUrl;
      const label = app.name ?? `apps[${i}]`;
      const internal = parseAppUrl(app.internalUrl, label, 'internalUrl');
      const external = parseAppUrl(app.externalUrl, label, 'externalUrl');
      parsed.push({ name, internal, external });
    }
    // Short names: the first label of a DNS name, unless two different hosts share it.
    const shortOwners = new Map<string, Set<string>>();
    const fullHosts = new Set(parsed.map((p) => p.internal.hostname));
    if (options.shortNames ?? true) {
      for (const { internal } of parsed) {
        const host = internal.hostname;
        if (isIP(host) || host.startsWith('[') || !host.includes('.')) continue;
        const short = host.slice(0, host.indexOf('.'));
        const owners = shortOwners.get(short) ?? new Set<string>();
        owners.add(host);
        shortOwners.set(short, owners);
      }
    }
    for (const { name, internal, external } of parsed) {
      const host = internal.hostname;
      const short = host.includes('.') ? host.slice(0, host.indexOf('.')) : undefined;
      const shortName =
        short !== undefined && shortOwners.get(short)?.size === 1 && !fullHosts.has(short)
          ? short
          : undefined;
      const app: MappedApp = {
        name,
        internalUrl: internal.href,
        externalUrl: external.href,
        internalOrigin: internal.origin,
        externalOrigin: external.origin,
        internalHost: internal.host,
        externalHost: external.host,
        internalHostname: host,
        externalHostname: external.hostname,
        internalPath: internal.pathname,
        externalPath: external.pathname,
        ...(shortName !== undefined && { shortName }),
      };
      mapped.push(app);
      if (!this.#byName.has(name)) {
        this.#byName.set(name, app);
        pages.set(name, {
          host,
          scheme: internal.protocol === 'https:' ? 'https' : 'http',
          port: portOf(internal),
          origin: external.origin,
        });
      }
      outbound.add(host, target(name, internal, external));
      if (shortName !== undefined) outbound.add(shortName, target(name, internal, external));
      inbound.add(external.hostname, target(name, external, internal));
      if (!this.#internalOrigins.has(internal.origin))
        this.#internalOrigins.set(internal.origin, app);
      if (!this.#externalOrigins.has(external.origin))
        this.#externalOrigins.set(external.origin, app);
    }
    // The other scheme of each internal authority is the same app: a backend behind a proxy
    // that says `X-Forwarded-Proto: https` builds `https://<internal host:port>/…` links
    // (DokuWiki, Django, Laravel, WordPress do). An explicit port stays; a default one (an
    // absent port) is the other scheme's default. Never where an app is published from
    // that very URL.
    for (const { name, internal, external } of parsed) {
      const other = otherScheme(internal);
      const keys = [internal.hostname];
      const short = mapped.find(
        (m) => m.name === name && m.internalUrl === internal.href,
      )?.shortName;
      if (short !== undefined) keys.push(short);
      for (const key of keys) {
        if (outbound.hasExact(key, other.scheme, other.port, internal.pathname)) continue;
        outbound.add(key, { ...target(name, internal, external), ...other });
      }
    }
    this.apps = Object.freeze(mapped);
    compiled.set(this, { outbound, inbound, pages });
  }

  /**
   * The resolved app by name.
   *
   * @example
   * new UrlMap([{ name: 'E', internalUrl: 'http://e.corp.local:80/', externalUrl: 'https://e.example.com/' }]).app('E')?.internalHost; // 'e.corp.local'
   */
  app(name: string): MappedApp | undefined {
    return this.#byName.get(name);
  }

  /**
   * An internal URL as users outside reach it, or `undefined`. With `app` (the app whose
   * response the URL is in): that app wins when several are published from the same
   * internal URL, and a root-relative URL (`/app/x`) is read as on that app's internal
   * origin — it stays root-relative if it maps to the app's external origin, else becomes
   * absolute (nginx's `proxy_redirect default`, Apache's `ProxyHTMLURLMap` do the same).
   *
   * @example
   * const m = new UrlMap([{ name: 'J', internalUrl: 'http://j.corp.local:8080/jenkins/', externalUrl: 'https://ci.example.com/' }]);
   * m.toExternal('//j.corp.local:8080/jenkins/job/x'); // 'https://ci.example.com/job/x'
   * m.toExternal('/jenkins/job/x', 'J'); // '/job/x'
   * m.toExternal('/other/x', 'J'); // undefined
   */
  toExternal(url: string, app?: string): string | undefined {
    const c = compiled.get(this)!;
    const m = c.outbound.match(url, 0, url.length, true, undefined, app, pageOf(this, app));
    return m ? m.text + url.slice(m.end) : undefined;
  }

  /**
   * An external URL as the backend knows it (for `Referer`, `Destination`), or `undefined`.
   * `app` wins when several apps have the same external URL.
   *
   * @example
   * new UrlMap([{ internalUrl: 'http://e.corp.local/app/', externalUrl: 'https://e.example.com/' }]).toInternal('https://E.example.com:443/r?q'); // 'http://e.corp.local/app/r?q'
   */
  toInternal(url: string, app?: string): string | undefined {
    const m = compiled.get(this)!.inbound.match(url, 0, url.length, true, undefined, app);
    return m ? m.text + url.slice(m.end) : undefined;
  }

  /**
   * The external origin of an internal origin (`Access-Control-Allow-Origin`), whatever the
   * app's path; `prefer` wins when it has that origin.
   *
   * @example
   * new UrlMap([{ internalUrl: 'http://e.corp.local:8080/app/', externalUrl: 'https://e.example.com/' }]).originToExternal('http://E.corp.local:8080'); // 'https://e.example.com'
   */
  originToExternal(origin: string, prefer?: string): string | undefined {
    const o = normaliseOrigin(origin);
    if (o === undefined) return undefined;
    const preferred = prefer === undefined ? undefined : this.#byName.get(prefer);
    if (preferred?.internalOrigin === o) return preferred.externalOrigin;
    return this.#internalOrigins.get(o)?.externalOrigin;
  }

  /**
   * The internal origin of an external origin (`Origin` request header).
   *
   * @example
   * new UrlMap([{ internalUrl: 'http://e.corp.local:8080/app/', externalUrl: 'https://e.example.com/' }]).originToInternal('https://e.example.com'); // 'http://e.corp.local:8080'
   */
  originToInternal(origin: string, prefer?: string): string | undefined {
    const o = normaliseOrigin(origin);
    if (o === undefined) return undefined;
    const preferred = prefer === undefined ? undefined : this.#byName.get(prefer);
    if (preferred?.externalOrigin === o) return preferred.internalOrigin;
    return this.#externalOrigins.get(o)?.internalOrigin;
  }

  /**
   * The scope `@appproxy/cookies` rewrites an app's cookies with (`Domain`, `Path`).
   *
   * @example
   * new UrlMap([{ name: 'E', internalUrl: 'http://e.corp.local/app/', externalUrl: 'https://e.example.com/' }]).cookieScope('E');
   * // { internalHosts: ['e.corp.local', 'e'], externalHost: 'e.example.com', internalPath: '/app/', externalPath: '/' }
   */
  cookieScope(
    app: string | MappedApp,
    options: { externalParentDomain?: string } = {},
  ): CookieScope {
    const a = typeof app === 'string' ? this.#byName.get(app) : app;
    if (!a)
      throw new TranslateError(
        'APPPROXY_TRANSLATE_INVALID_OPTION',
        `no app named ${JSON.stringify(app)}`,
      );
    return {
      internalHosts: a.shortName ? [a.internalHostname, a.shortName] : [a.internalHostname],
      externalHost: a.externalHostname,
      internalPath: a.internalPath,
      externalPath: a.externalPath,
      ...(options.externalParentDomain !== undefined && {
        externalParentDomain: options.externalParentDomain,
      }),
    };
  }
}

function normaliseOrigin(origin: string): string | undefined {
  if (!/^https?:\/\//i.test(origin)) return undefined;
  try {
    const url = new URL(origin);
    return url.origin;
  } catch {
    return undefined;
  }
}
