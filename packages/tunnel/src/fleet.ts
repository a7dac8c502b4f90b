import { EventEmitter } from 'node:events';
import { chmodSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import {
  TunnelDialer,
  type TunnelDialerOptions,
  type TunnelDown,
  type TunnelUp,
} from './dialer.js';
import {
  httpsOrigin,
  parseInstanceList,
  type InstanceList,
  type RelayInstance,
} from './protocol.js';

export interface RelayFleetOptions extends Omit<TunnelDialerOptions, 'relayUrl' | 'onInstances'> {
  /** The relay URL saved at registration: dialled first, and again when no instance answers. */
  bootstrapUrl: string;
  /**
   * A file that keeps the last instance list (written atomically, mode 0600), so that a
   * restart dials every instance at once. Absent: nothing is remembered.
   */
  instancesFile?: string;
  /** All dialers failing this long (every address changed): dial the bootstrap URL again. @default 60000 */
  bootstrapFallbackMs?: number;
  /** How long the tunnels of an instance no longer listed may finish their streams. @default 30000 */
  removalDrainTimeoutMs?: number;
}

/** Which dialer a tunnel event came from. */
export interface FleetTunnelRef {
  /** The instance the tunnel reached (its hello's name), else the one expected, else the URL's host. */
  instance: string;
  relayUrl: string;
}

export interface InstancesChanged {
  added: string[];
  removed: string[];
  instances: RelayInstance[];
  /** The instance whose hello or `instances` control brought the list, or `state` when read from the file. */
  from: string;
}

export interface FleetWarning {
  code:
    | 'APPPROXY_FLEET_INSTANCE_MISMATCH'
    | 'APPPROXY_FLEET_BOOTSTRAP_FALLBACK'
    | 'APPPROXY_FLEET_STATE_UNREADABLE'
    | 'APPPROXY_FLEET_STATE_UNWRITABLE';
  message: string;
  relayUrl?: string;
  expected?: string[];
  instance?: string;
}

interface RelayFleetEvents {
  connected: [TunnelUp & FleetTunnelRef];
  disconnected: [TunnelDown & FleetTunnelRef];
  connectFailed: [TunnelDown & { error: Error } & FleetTunnelRef];
  instancesChanged: [InstancesChanged];
  warning: [FleetWarning];
}

/** One dialer of the fleet: a relay URL and the instances reached through it. */
interface Member {
  url: string;
  dialer: TunnelDialer;
  /** Instances of the list this URL serves (empty: the bootstrap before any list). */
  expected: Set<string>;
  warnedMismatch: boolean;
}

const FILE_VERSION = 1;

/**
 * The connector's tunnels to every relay instance of a fleet (docs/tunnel-protocol.md §3.6):
 * one {@link TunnelDialer} per instance URL, each keeping `tunnels` connections. Starts with
 * the bootstrap URL; each hello or `instances` control with a non-empty list makes the fleet
 * dial the listed instances it lacks and drain those no longer listed. Without any list (an
 * older relay) it is exactly one dialer to the bootstrap URL.
 *
 * @example
 * const fleet = new RelayFleet({ bootstrapUrl, cert, key, ca, hello, onStream, tunnels: 2 });
 * fleet.start();
 * process.once('SIGTERM', () => fleet.stop({ drainTimeoutMs: 30_000 }));
 */
export class RelayFleet extends EventEmitter<RelayFleetEvents> {
  readonly #opts: RelayFleetOptions;
  readonly #bootstrap: string;
  readonly #members = new Map<string, Member>();
  readonly #leaving = new Set<Promise<void>>();
  #list: RelayInstance[] | undefined;
  #listKey = '';
  #credentials: { cert: string; key: string };
  #started = false;
  #stopping = false;
  /** Since when no tunnel of any dialer is connected (undefined: some is). */
  #downSince: number | undefined = Date.now();

  constructor(opts: RelayFleetOptions) {
    super();
    this.#opts = opts;
    this.#bootstrap = httpsOrigin(opts.bootstrapUrl) ?? opts.bootstrapUrl;
    this.#credentials = { cert: opts.cert, key: opts.key };
  }

  /** Tunnels connected now, over every instance. */
  get connectedCount(): number {
    let n = 0;
    for (const m of this.#members.values()) n += m.dialer.connectedCount;
    return n;
  }

  /** The list followed now (undefined: none received, one dialer to the bootstrap URL). */
  get instances(): readonly RelayInstance[] | undefined {
    return this.#list;
  }

  /** The URLs dialled now. */
  get relayUrls(): string[] {
    return [...this.#members.keys()];
  }

  /** Connected tunnels by instance label (see {@link FleetTunnelRef.instance}). */
  tunnelsByInstance(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const m of this.#members.values())
      for (const name of m.dialer.connectedInstances()) {
        const label = this.#label(m, name);
        counts.set(label, (counts.get(label) ?? 0) + 1);
      }
    return counts;
  }

  start(): void {
    if (this.#started) return;
    this.#started = true;
    const saved = this.#load();
    if (saved && this.#apply(saved, 'state')) return;
    this.#ensure(this.#bootstrap, []);
  }

  /** Resolves once at least `count` tunnels (over all instances) are connected. */
  waitConnected(count = 1): Promise<void> {
    if (this.connectedCount >= count) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (this.connectedCount < count) return;
        this.off('connected', check);
        resolve();
      };
      this.on('connected', check);
    });
  }

  /** Drains every dialer (see {@link TunnelDialer.stop}), those leaving included. */
  async stop(opts: { drainTimeoutMs?: number } = {}): Promise<void> {
    this.#stopping = true;
    const members = [...this.#members.values()];
    await Promise.all([...members.map((m) => m.dialer.stop(opts)), ...[...this.#leaving]]);
  }

  /** New credentials (a renewed certificate) for every dialer, and for those dialled later. */
  async updateCredentials(credentials: { cert: string; key: string }): Promise<void> {
    this.#credentials = credentials;
    await Promise.all(
      [...this.#members.values()].map((m) => m.dialer.updateCredentials(credentials)),
    );
  }

  /** A list from a tunnel (`from`: the instance that sent it). */
  #onList(list: InstanceList, via: Member): void {
    if (this.#stopping) return;
    this.#apply(list.instances, list.instance.name, via);
  }

  /**
   * Follows `instances` if non-empty: a dialer per distinct URL (an instance without a
   * tunnelUrl, or with the bootstrap's, is served by the bootstrap dialer), new ones dialled,
   * those no longer needed drained. Returns whether the list was taken.
   */
  #apply(instances: RelayInstance[], from: string, via?: Member): boolean {
    if (instances.length === 0) return false;
    const key = JSON.stringify([...instances].sort((a, b) => (a.name < b.name ? -1 : 1)));
    const changed = key !== this.#listKey;
    const before = new Set(this.#list?.map((i) => i.name) ?? []);
    this.#list = instances;
    this.#listKey = key;
    this.#reconcile(via);
    if (!changed) return true;
    const after = new Set(instances.map((i) => i.name));
    this.emit('instancesChanged', {
      added: [...after].filter((n) => !before.has(n)),
      removed: [...before].filter((n) => !after.has(n)),
      instances,
      from,
    });
    if (from !== 'state') this.#save(instances);
    return true;
  }

  /**
   * Dialers to match the list. The bootstrap dialer outside the list (all instances have
   * URLs of their own) stays while it alone has tunnels: listed URLs this host cannot reach
   * must not take the connector off the relay.
   */
  #reconcile(via?: Member): void {
    const list = this.#list;
    if (!list || this.#stopping) return;
    const wanted = new Map<string, string[]>();
    for (const i of list) {
      const url = i.tunnelUrl ?? this.#bootstrap;
      wanted.set(url, [...(wanted.get(url) ?? []), i.name]);
    }
    for (const [url, names] of wanted) this.#ensure(url, names);
    // The member whose hello brings the list is up, though its tunnel is not counted yet.
    const up = (m: Member) => m === via || m.dialer.connectedCount > 0;
    const othersUp = [...this.#members.values()].some((m) => m.url !== this.#bootstrap && up(m));
    for (const [url, member] of this.#members) {
      if (wanted.has(url)) continue;
      if (url === this.#bootstrap && up(member) && !othersUp) continue;
      this.#retire(url, member);
    }
  }

  #ensure(url: string, names: string[]): void {
    const existing = this.#members.get(url);
    if (existing) {
      existing.expected = new Set(names);
      return;
    }
    if (this.#stopping) return;
    const member: Member = {
      url,
      expected: new Set(names),
      warnedMismatch: false,
    } as Member;
    const dialer = new TunnelDialer({
      ...this.#opts,
      ...this.#credentials,
      relayUrl: url,
      onInstances: (list) => this.#onList(list, member),
    });
    member.dialer = dialer;
    this.#members.set(url, member);
    dialer.on('connected', (e) => {
      this.#downSince = undefined;
      this.#checkInstance(member, e.instance);
      this.emit('connected', { ...e, instance: this.#label(member, e.instance), relayUrl: url });
      // A kept bootstrap dialer goes once another instance is up.
      if (url !== this.#bootstrap && this.#members.has(this.#bootstrap)) this.#reconcile();
    });
    dialer.on('disconnected', (e) => {
      if (this.connectedCount === 0) this.#downSince ??= Date.now();
      this.emit('disconnected', { ...e, instance: this.#label(member), relayUrl: url });
      this.#checkFallback();
    });
    dialer.on('connectFailed', (e) => {
      if (this.connectedCount === 0) this.#downSince ??= Date.now();
      this.emit('connectFailed', { ...e, instance: this.#label(member), relayUrl: url });
      this.#checkFallback();
    });
    dialer.start();
  }

  #retire(url: string, member: Member): void {
    this.#members.delete(url);
    const done = member.dialer
      .stop({ drainTimeoutMs: this.#opts.removalDrainTimeoutMs ?? 30_000 })
      .finally(() => this.#leaving.delete(done));
    this.#leaving.add(done);
  }

  /** Every dialer failing for `bootstrapFallbackMs`: the addresses may all have changed. */
  #checkFallback(): void {
    if (this.#stopping || this.#members.has(this.#bootstrap)) return;
    if (this.connectedCount > 0) return void (this.#downSince = undefined);
    const since = this.#downSince ?? Date.now();
    if (Date.now() - since < (this.#opts.bootstrapFallbackMs ?? 60_000)) return;
    this.emit('warning', {
      code: 'APPPROXY_FLEET_BOOTSTRAP_FALLBACK',
      message: `no relay instance reachable for ${Math.round((Date.now() - since) / 1000)} s: dialling the registered relay URL again`,
      relayUrl: this.#bootstrap,
    });
    this.#ensure(this.#bootstrap, []);
  }

  /** A tunnel that reached another instance than its URL's (a load balancer in the way): said once. */
  #checkInstance(member: Member, instance: string | undefined): void {
    if (instance === undefined || member.expected.size === 0 || member.expected.has(instance))
      return;
    if (member.warnedMismatch) return;
    member.warnedMismatch = true;
    this.emit('warning', {
      code: 'APPPROXY_FLEET_INSTANCE_MISMATCH',
      message: `${member.url} reached instance ${instance}, not ${[...member.expected].join(', ')} (a load balancer in the way?); the tunnel is used anyway`,
      relayUrl: member.url,
      expected: [...member.expected],
      instance,
    });
  }

  #label(member: Member, reached?: string): string {
    if (reached !== undefined) return reached;
    if (member.expected.size === 1) return [...member.expected][0]!;
    return new URL(member.url).host;
  }

  #load(): RelayInstance[] | undefined {
    const file = this.#opts.instancesFile;
    if (!file) return undefined;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.#stateWarning('UNREADABLE', err);
      return undefined;
    }
    try {
      const saved = JSON.parse(text) as { version?: unknown; bootstrapUrl?: unknown };
      // A list of another relay (registered again elsewhere) is not ours.
      if (saved.version !== FILE_VERSION || saved.bootstrapUrl !== this.#bootstrap)
        return undefined;
      return parseInstanceList(saved)?.instances;
    } catch (err) {
      this.#stateWarning('UNREADABLE', err);
      return undefined;
    }
  }

  #save(instances: RelayInstance[]): void {
    const file = this.#opts.instancesFile;
    if (!file) return;
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      const body = {
        version: FILE_VERSION,
        bootstrapUrl: this.#bootstrap,
        savedAt: new Date().toISOString(),
        instance: { name: 'state' },
        instances,
      };
      writeFileSync(tmp, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o600 });
      chmodSync(tmp, 0o600);
      renameSync(tmp, file);
    } catch (err) {
      this.#stateWarning('UNWRITABLE', err);
    }
  }

  #stateWarning(kind: 'UNREADABLE' | 'UNWRITABLE', err: unknown): void {
    this.emit('warning', {
      code: `APPPROXY_FLEET_STATE_${kind}`,
      message: `${this.#opts.instancesFile}: ${(err as Error).message}`,
    });
  }
}
