import type { InstanceRecord, StateStore } from '@appproxy/config';
import type { Logger } from '@appproxy/telemetry';
import type { InstanceList, RelayInstance } from '@appproxy/tunnel';

/** How often an instance writes its heartbeat and reads the others'. */
export const HEARTBEAT_INTERVAL_MS = 1000;
/** An instance whose last heartbeat is older than this is gone (three missed heartbeats, and some). */
export const INSTANCE_LIVE_WINDOW_MS = 3500;

export interface InstanceDirectoryOptions {
  store: Pick<StateStore, 'heartbeatInstance' | 'listInstances' | 'removeInstance'>;
  self: { name: string; tunnelUrl?: string; version: string };
  log: Logger;
  /** Called with the new list whenever the live instances (or their tunnel URLs) change. */
  onChange: (list: InstanceList) => void;
  heartbeatIntervalMs?: number;
  liveWindowMs?: number;
  now?: () => Date;
}

/**
 * This relay instance among the others sharing its store: it writes a heartbeat every second
 * and reads the live instances, so tunnel hellos can name them all and connectors follow the
 * fleet as instances come and go. A store that cannot be reached keeps the last list (an
 * instance is never dropped because the store hiccupped) and is logged once per outage.
 */
export class InstanceDirectory {
  readonly #o: InstanceDirectoryOptions;
  readonly #startedAt: Date;
  #live: RelayInstance[];
  #timer: NodeJS.Timeout | undefined;
  #failing = false;
  /** The refresh running now, if any: a slow store skips ticks rather than queueing them. */
  #tick: Promise<void> | undefined;

  constructor(opts: InstanceDirectoryOptions) {
    this.#o = opts;
    this.#startedAt = this.#now();
    this.#live = [entry(opts.self)];
  }

  #now(): Date {
    return this.#o.now?.() ?? new Date();
  }

  /** This instance and every live one, itself first; what the tunnel hello carries. */
  list(): InstanceList {
    return { instance: { name: this.#o.self.name }, instances: this.#live };
  }

  /** Live instances, this one included (at least 1): the divisor of the fleet's rate limits. */
  get liveCount(): number {
    return this.#live.length;
  }

  /** First heartbeat and list now (so the first hello is complete), then every interval. */
  async start(): Promise<void> {
    await this.refresh();
    this.#timer = setInterval(() => {
      this.#tick ??= this.refresh().finally(() => (this.#tick = undefined));
    }, this.#o.heartbeatIntervalMs ?? HEARTBEAT_INTERVAL_MS);
    this.#timer.unref();
  }

  /** One heartbeat and one read; `onChange` when the live set changed. Never throws. */
  async refresh(): Promise<void> {
    const { store, self, log } = this.#o;
    const now = this.#now();
    let records: InstanceRecord[];
    try {
      await store.heartbeatInstance(
        {
          name: self.name,
          version: self.version,
          startedAt: this.#startedAt,
          ...(self.tunnelUrl && { tunnelUrl: self.tunnelUrl }),
        },
        now,
      );
      records = await store.listInstances({
        liveSince: new Date(now.getTime() - (this.#o.liveWindowMs ?? INSTANCE_LIVE_WINDOW_MS)),
      });
      if (this.#failing) log.info('instance heartbeat restored', { instance: self.name });
      this.#failing = false;
    } catch (err) {
      if (!this.#failing)
        log.warn('instance heartbeat failed; the last instance list is kept', {
          instance: self.name,
          error: err,
        });
      this.#failing = true;
      return;
    }
    const next = [
      entry(self),
      ...records
        .filter((r) => r.name !== self.name)
        .sort((a, b) => a.name.localeCompare(b.name))
        .map(entry),
    ];
    const key = (l: RelayInstance[]) => JSON.stringify(l);
    if (key(next) === key(this.#live)) return;
    const before = new Set(this.#live.map((i) => i.name));
    const after = new Set(next.map((i) => i.name));
    this.#live = next;
    log.info('relay instances changed', {
      instance: self.name,
      instances: next.map((i) => i.name),
      added: [...after].filter((n) => !before.has(n)),
      removed: [...before].filter((n) => !after.has(n)),
    });
    this.#o.onChange(this.list());
  }

  /**
   * Stops the heartbeat and leaves the fleet (removed from the store, so the other instances
   * tell the connectors at once rather than after the live window).
   */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#tick;
    await this.#o.store.removeInstance(this.#o.self.name).catch(() => false);
  }
}

function entry(i: { name: string; tunnelUrl?: string }): RelayInstance {
  return i.tunnelUrl ? { name: i.name, tunnelUrl: i.tunnelUrl } : { name: i.name };
}

/** Each worker of `relay.workers` is an instance of its own: `<name>-<index>`. */
export function instanceName(name: string, worker: { index: number } | undefined): string {
  return worker ? `${name}-${worker.index}` : name;
}

/**
 * The tunnel URL an instance announces: `relay.instance.tunnelUrl` with worker i's port
 * (the URL's port + i), or the port bound when `tunnelListen` says 0 (`boundPort`).
 *
 * @example
 * instanceTunnelUrl('https://relay.example.com:8443', { index: 2 }, undefined); // 'https://relay.example.com:8445'
 */
export function instanceTunnelUrl(
  configured: string,
  worker: { index: number } | undefined,
  boundPort: number | undefined,
): string {
  const url = new URL(configured);
  const port = Number(url.port || 443);
  url.port = String(boundPort ?? port + (worker?.index ?? 0));
  return url.origin;
}
