import { UrlMap, type PublishedAppUrls } from '@appproxy/translate';

/** Concrete hosts remembered per relay configuration; past this the cache starts afresh. */
const MAX_HOSTS = 1024;

/** An app whose external host is `*.…` (config refuses `*` anywhere else). */
export const isWildcardApp = (app: { externalUrl: string }): boolean =>
  app.externalUrl.startsWith('https://*.');

/**
 * Link translation for wildcard apps: routing hands over the app filled in for one host
 * (`https://hr.apps.example.com/` ↔ `http://hr.corp.local/`); its map is that app beside
 * every exact app, built once per host and kept (bounded). Links from one wildcard host to
 * another host of the same wildcard app are not translated: each map knows one of them.
 */
export class WildcardMaps {
  readonly #names: ReadonlySet<string>;
  readonly #exact: readonly PublishedAppUrls[];
  readonly #maps = new Map<string, UrlMap>();

  constructor(wildcards: readonly PublishedAppUrls[], exact: readonly PublishedAppUrls[]) {
    this.#names = new Set(wildcards.map((a) => a.name ?? a.externalUrl));
    this.#exact = exact;
  }

  /** True for the name of a wildcard app. */
  has(name: string): boolean {
    return this.#names.has(name);
  }

  /** The map for one concrete host of a wildcard app (its URLs filled in by routing). */
  mapFor(app: { name: string; internalUrl: string; externalUrl: string }): UrlMap {
    const key = `${app.name}\0${app.externalUrl}`;
    let map = this.#maps.get(key);
    if (map) return map;
    map = new UrlMap([
      { name: app.name, internalUrl: app.internalUrl, externalUrl: app.externalUrl },
      ...this.#exact,
    ]);
    if (this.#maps.size >= MAX_HOSTS) this.#maps.clear();
    this.#maps.set(key, map);
    return map;
  }
}
