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
  /** Wildcard apps: the app for each label seen, internal and external URLs filled in. */
  concrete?: Map<string, Concrete<T>>;
}

interface Concrete<T> {
  app: T;
  internal: URL;
  externalHost: string;
}

/** Labels remembered per wildcard app; past this the cache starts afresh (bounded memory). */
const MAX_LABELS = 4096;

/**
 * Published apps indexed by external host; a request goes to the app with the longest
 * external path prefix that contains it. Paths are normalised first, so `..` can never lead
 * outside the app's internal prefix. A wildcard app (`https://*.apps.example.com/` →
 * `http://*.corp.local/`) takes the hosts one label under its suffix that no exact app
 * takes, with that label put in place of `*` in its internal host.
 *
 * @example
 * const table = new AppTable([{ name: 'Expenses', externalUrl: 'https://exp.example.com/', internalUrl: 'http://exp.corp:8080/app/' }]);
 * table.route('exp.example.com', '/reports?y=2024') // { app, internalPath: '/app/reports?y=2024', … }
 * const sites = new AppTable([{ name: 'Sites', externalUrl: 'https://*.apps.example.com/', internalUrl: 'http://*.corp.local/' }]);
 * sites.route('hr.apps.example.com', '/') // { app: { …, internalUrl: 'http://hr.corp.local/' }, internalHost: 'hr.corp.local', … }
 */
export class AppTable<T extends RoutableApp> {
  readonly #byHost = new Map<string, Entry<T>[]>();
  /** Wildcard apps (`https://*.apps.example.com/`) by the part after `*`: `.apps.example.com`. */
  readonly #bySuffix = new Map<string, Entry<T>[]>();

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
      const wildcard = entry.host.startsWith('*.');
      if (wildcard) entry.concrete = new Map();
      const index = wildcard ? this.#bySuffix : this.#byHost;
      const key = wildcard ? entry.host.slice(1) : entry.host;
      const list = index.get(key) ?? [];
      list.push(entry);
      list.sort((a, b) => b.prefix.length - a.prefix.length);
      index.set(key, list);
    }
  }

  get size(): number {
    let n = 0;
    for (const list of this.#byHost.values()) n += list.length;
    for (const list of this.#bySuffix.values()) n += list.length;
    return n;
  }

  /**
   * The apps published on `host` (a port is ignored), longest path prefix first; the
   * wildcard apps covering it after the exact ones, with their URLs filled in.
   */
  onHost(host: string): T[] {
    const hostname = parseRequestHost(host)?.hostname;
    if (hostname === undefined) return [];
    const exact = (this.#byHost.get(hostname) ?? []).map((e) => e.app);
    const wild = this.#wildcards(hostname);
    return wild ? [...exact, ...wild.list.map((e) => this.#concrete(e, wild.label).app)] : exact;
  }

  /** The wildcard apps whose `*` covers `hostname` (one label), and that label. */
  #wildcards(hostname: string): { label: string; list: Entry<T>[] } | undefined {
    if (this.#bySuffix.size === 0) return undefined;
    const dot = hostname.indexOf('.');
    if (dot <= 0) return undefined;
    const list = this.#bySuffix.get(hostname.slice(dot));
    return list && { label: hostname.slice(0, dot), list };
  }

  /** A wildcard app for one label: `*` in both hosts replaced by it. */
  #concrete(entry: Entry<T>, label: string): Concrete<T> {
    const cache = entry.concrete!;
    let c = cache.get(label);
    if (c) return c;
    const fill = (url: string) => url.replace('*', label);
    const internal = new URL(fill(entry.internal.href));
    c = {
      app: { ...entry.app, internalUrl: internal.href, externalUrl: fill(entry.app.externalUrl) },
      internal,
      externalHost: fill(entry.externalHost),
    };
    if (cache.size >= MAX_LABELS) cache.clear();
    cache.set(label, c);
    return c;
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
    // Exact hosts first: a wildcard app only gets what no app of the host itself takes.
    let wild = list ? undefined : this.#wildcards(hostname);
    if (!list && !wild) return undefined;
    const normalized = normalizeRequestTarget(target);
    if (typeof normalized === 'string') return normalized;
    const { path, search } = normalized;
    const exact = list && this.#match(list, path, search);
    if (exact) return exact;
    wild ??= this.#wildcards(hostname);
    return wild && this.#match(wild.list, path, search, wild.label);
  }

  #match(
    list: Entry<T>[],
    path: string,
    search: string,
    label?: string,
  ): RouteMatch<T> | RouteRedirect<T> | undefined {
    for (const entry of list) {
      let rest: string | undefined;
      if (path.startsWith(entry.prefix)) rest = path.slice(entry.prefix.length);
      else if (`${path}/` === entry.prefix)
        return {
          app: label === undefined ? entry.app : this.#concrete(entry, label).app,
          location: entry.prefix + search,
        };
      if (rest === undefined) continue;
      const { app, internal, externalHost } =
        label === undefined ? entry : this.#concrete(entry, label);
      const internalPrefix = internal.pathname.endsWith('/')
        ? internal.pathname
        : `${internal.pathname}/`;
      return {
        app,
        internalPath: internalPrefix + rest + search,
        internalOrigin: internal.origin,
        internalHost: internal.host,
        externalHost,
      };
    }
    return undefined;
  }
}
