/** What connector selection needs to know about one tunnel of a connector. */
export interface ConnectorTunnel {
  /** The connector this tunnel belongs to (several tunnels share one id). */
  readonly connectorId: string;
  /** Streams open on this tunnel now. */
  readonly inFlight: number;
  /** True while the tunnel takes new streams (false while handshaking, draining or closed). */
  readonly accepting: boolean;
  hasCapability(name: string): boolean;
}

export interface PickOptions {
  /** Only connectors that declare this capability (e.g. `websocket`), or all of these. */
  capability?: string | readonly string[];
  /**
   * Session persistence: the same key keeps reaching the same connector while it is healthy,
   * and only the keys of a connector that goes away move (rendezvous hashing).
   */
  affinityKey?: string;
  /**
   * Tunnels that already failed for this request: never picked again, and their connectors
   * are tried only when no other connector is left (one broken TCP connection is not a dead
   * connector, but a dead connector's other tunnels are likely dying too).
   */
  exclude?: ReadonlySet<ConnectorTunnel>;
  /**
   * Connection affinity: only this connector's tunnels (a client connection pinned to the
   * connector that holds its backend connection); none of them → no connector.
   */
  connectorId?: string;
}

/** One connector of a group as the relay sees it now. */
export interface ConnectorSummary {
  connectorId: string;
  group: string;
  /** Open tunnels, accepting or not. */
  tunnels: number;
  /** Tunnels that take new streams. */
  accepting: number;
  /** Streams in flight over all its tunnels. */
  inFlight: number;
}

function capable(tunnel: ConnectorTunnel, capability: string | readonly string[]): boolean {
  if (typeof capability === 'string') return tunnel.hasCapability(capability);
  return capability.every((c) => tunnel.hasCapability(c));
}

/** Why {@link ConnectorGroups.pick} found nothing. */
export type NoConnector = 'NO_CONNECTOR' | 'NO_CAPABLE_CONNECTOR';

/**
 * The connected connectors of every connector group, and the choice of one for a request:
 * the healthy connector with the fewest streams in flight (ties take turns), or — with an
 * affinity key — the same connector for the same key. Within the chosen connector, its
 * least busy tunnel carries the stream. A request never leaves its app's group.
 *
 * @example
 * const groups = new ConnectorGroups<TunnelSession>();
 * groups.add('Default', session);
 * const tunnel = groups.pick('Default', { capability: 'websocket' });
 */
export class ConnectorGroups<T extends ConnectorTunnel> {
  /** group → connector id → its tunnels. */
  readonly #groups = new Map<string, Map<string, Set<T>>>();
  readonly #groupOf = new Map<T, string>();
  /** Per group: where the next tie-break starts, so equal connectors take turns. */
  readonly #turn = new Map<string, number>();
  /** Per group: its connectors' tunnel sets as an array, rebuilt on add/remove, not per pick. */
  readonly #ordered = new Map<string, Set<T>[]>();

  add(group: string, tunnel: T): void {
    if (this.#groupOf.has(tunnel)) return;
    let connectors = this.#groups.get(group);
    if (!connectors) this.#groups.set(group, (connectors = new Map()));
    let tunnels = connectors.get(tunnel.connectorId);
    if (!tunnels) connectors.set(tunnel.connectorId, (tunnels = new Set()));
    tunnels.add(tunnel);
    this.#groupOf.set(tunnel, group);
    this.#ordered.set(group, [...connectors.values()]);
  }

  remove(tunnel: T): void {
    const group = this.#groupOf.get(tunnel);
    if (group === undefined) return;
    this.#groupOf.delete(tunnel);
    const connectors = this.#groups.get(group)!;
    const tunnels = connectors.get(tunnel.connectorId)!;
    tunnels.delete(tunnel);
    if (tunnels.size === 0) connectors.delete(tunnel.connectorId);
    if (connectors.size === 0) {
      this.#groups.delete(group);
      this.#ordered.delete(group);
    } else this.#ordered.set(group, [...connectors.values()]);
  }

  /** The tunnel to carry the next stream of an app in `group`, or why there is none. */
  pick(group: string, opts: PickOptions = {}): T | NoConnector {
    const { capability, affinityKey, exclude, connectorId } = opts;
    const ordered =
      connectorId === undefined ? this.#ordered.get(group) : this.#only(group, connectorId);
    if (!ordered) return 'NO_CONNECTOR';
    const start = affinityKey === undefined ? this.#nextTurn(group, ordered.length) : 0;
    let best: T | undefined;
    let bestScore = 0;
    let bestDemoted = true;
    let incapable = false;
    for (let i = 0; i < ordered.length; i++) {
      const tunnels = ordered[(start + i) % ordered.length]!;
      let tunnel: T | undefined;
      let load = 0;
      let demoted = false;
      for (const t of tunnels) {
        load += t.inFlight;
        if (exclude?.has(t)) {
          demoted = true;
          continue;
        }
        if (!t.accepting) continue;
        if (capability !== undefined && !capable(t, capability)) {
          incapable = true;
          continue;
        }
        if (!tunnel || t.inFlight < tunnel.inFlight) tunnel = t;
      }
      if (!tunnel) continue;
      // Affinity: the highest rendezvous weight wins. Otherwise the lowest load wins, and
      // the first seen in turn order keeps a tie, so equal connectors take turns. A
      // connector that already failed this request comes after every other.
      const score =
        affinityKey === undefined ? -load : rendezvousWeight(affinityKey, tunnel.connectorId);
      if (!best || (bestDemoted && !demoted) || (demoted === bestDemoted && score > bestScore)) {
        best = tunnel;
        bestScore = score;
        bestDemoted = demoted;
      }
    }
    if (best) return best;
    return incapable ? 'NO_CAPABLE_CONNECTOR' : 'NO_CONNECTOR';
  }

  /** Every connector with at least one open tunnel. */
  connectors(): ConnectorSummary[] {
    const out: ConnectorSummary[] = [];
    for (const [group, connectors] of this.#groups) {
      for (const [connectorId, tunnels] of connectors) {
        let accepting = 0;
        let inFlight = 0;
        for (const t of tunnels) {
          if (t.accepting) accepting++;
          inFlight += t.inFlight;
        }
        out.push({ connectorId, group, tunnels: tunnels.size, accepting, inFlight });
      }
    }
    return out;
  }

  /** Every tunnel, in no particular order. */
  tunnels(): T[] {
    return [...this.#groupOf.keys()];
  }

  #only(group: string, connectorId: string): Set<T>[] | undefined {
    const tunnels = this.#groups.get(group)?.get(connectorId);
    return tunnels ? [tunnels] : undefined;
  }

  #nextTurn(group: string, size: number): number {
    const turn = this.#turn.get(group) ?? 0;
    this.#turn.set(group, (turn + 1) % Math.max(1, size));
    return turn % Math.max(1, size);
  }
}

/**
 * Rendezvous (highest-random-weight) hashing: each (key, connector) pair gets a pseudo-random
 * weight; the key goes to the connector with the highest. Removing a connector moves only
 * the keys that were on it. FNV-1a over both strings, finished with murmur3's fmix32 so that
 * similar ids give unrelated weights.
 */
export function rendezvousWeight(key: string, connectorId: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  h = Math.imul(h ^ 0, 0x01000193);
  for (let i = 0; i < connectorId.length; i++)
    h = Math.imul(h ^ connectorId.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
