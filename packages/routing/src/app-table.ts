import { parseRequestHost } from './host.js';
import { normalizeRequestTarget, type PathRefusal } from './path.js';

/** A Host that is not `host[:port]` (userinfo, lists, paths, spaces…): refused, never routed. */
export type HostRefusal = 'INVALID_HOST';

/** The part of a published app that routing needs. */
export interface RoutableApp {
  name: string;
  /** `https://host[:port]/prefix/` — path ends with '/'. */
  externalUrl: string;
  /** `http(s)://host[:port]/prefix/` — path ends with '/'. */
  internalUrl: string;
}

export interface RouteMatch<T extends RoutableApp> {
  app: T;
  /** Path and query to request from the backend (under the internal prefix, always). */
  internalPath: string;
  /** `http(s)://host:port` of the backend. */
  internalOrigin: string;
  /** `host[:port]` of the internal URL, for the Host header. */
  internalHost: string;
  /**
   * `host[:port]` of the app's configured external URL: what the backend is told the client
   * asked for (Host without header translation, X-Forwarded-Host), never the client's text.
   */
  externalHost: string;
}

/**
 * A request for an app's path prefix without its trailing slash (`/nr` for an app at
 * `/nr/`): answered with a redirect to the prefix, never forwarded — the page's relative
 * URLs would otherwise resolve against the parent path, i.e. another app.
 */
export interface RouteRedirect<T extends RoutableApp> {
  app: T;
  /** Path and query to redirect to: the prefix with its slash, the query kept. */
  location: string;
}

interface Entry<T> {
  app: T;
  host: string;
  prefix: string;
  internal: URL;
  externalHost: string;
}

/**
 * Published apps indexed by external host; a request goes to the app with the longest
 * external path prefix that contains it. Paths are normalised first, so `..` can never lead
 * outside the app's internal prefix.
 *
 * @example
 * const table = new AppTable([{ name: 'Expenses', externalUrl: 'https://exp.example.com/', internalUrl: 'http://exp.corp:8080/app/' }]);
 * table.route('exp.example.com', '/reports?y=2024') // { app, internalPath: '/app/reports?y=2024', … }
 */
export class AppTable<T extends RoutableApp> {
  readonly #byHost = new Map<string, Entry<T>[]>();

  constructor(apps: readonly T[]) {
    for (const app of apps) {
      const ext = new URL(app.externalUrl);
      const entry: Entry<T> = {
        app,
        host: ext.hostname.toLowerCase(),
        prefix: ext.pathname.endsWith('/') ? ext.pathname : `${ext.pathname}/`,
        internal: new URL(app.internalUrl),
        externalHost: ext.host,
      };
      const list = this.#byHost.get(entry.host) ?? [];
      list.push(entry);
      list.sort((a, b) => b.prefix.length - a.prefix.length);
      this.#byHost.set(entry.host, list);
    }
  }

  get size(): number {
    let n = 0;
    for (const list of this.#byHost.values()) n += list.length;
    return n;
  }

  /** The apps published on `host` (a port is ignored), longest path prefix first. */
  onHost(host: string): T[] {
    const hostname = parseRequestHost(host)?.hostname;
    if (hostname === undefined) return [];
    return (this.#byHost.get(hostname) ?? []).map((e) => e.app);
  }

  /**
   * Finds the app for a request. `host` may carry a port (ignored); `target` is the raw
   * request target. Returns a refusal code for hosts and targets that cannot be routed
   * safely, and a {@link RouteRedirect} for an app's prefix without its trailing slash.
   */
  route(
    host: string,
    target: string,
  ): RouteMatch<T> | RouteRedirect<T> | HostRefusal | PathRefusal | undefined {
    const hostname = parseRequestHost(host)?.hostname;
    if (hostname === undefined) return 'INVALID_HOST';
    const list = this.#byHost.get(hostname);
    if (!list) return undefined;
    const normalized = normalizeRequestTarget(target);
    if (typeof normalized === 'string') return normalized;
    const { path, search } = normalized;
    for (const entry of list) {
      let rest: string | undefined;
      if (path.startsWith(entry.prefix)) rest = path.slice(entry.prefix.length);
      else if (`${path}/` === entry.prefix)
        return { app: entry.app, location: entry.prefix + search };
      if (rest === undefined) continue;
      const internalPrefix = entry.internal.pathname.endsWith('/')
        ? entry.internal.pathname
        : `${entry.internal.pathname}/`;
      return {
        app: entry.app,
        internalPath: internalPrefix + rest + search,
        internalOrigin: entry.internal.origin,
        internalHost: entry.internal.host,
        externalHost: entry.externalHost,
      };
    }
    return undefined;
  }
}
