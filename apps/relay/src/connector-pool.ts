import type { TunnelSession } from '@appproxy/tunnel';

/**
 * The ready tunnels of every connector, by connector group. Picks the tunnel with the
 * fewest streams in flight, so load follows capacity.
 */
export class ConnectorPool {
  readonly #byGroup = new Map<string, Set<TunnelSession>>();

  add(group: string, session: TunnelSession): void {
    const set = this.#byGroup.get(group) ?? new Set();
    set.add(session);
    this.#byGroup.set(group, set);
    session.once('closed', () => set.delete(session));
  }

  /** A ready tunnel of the group (one with `capability`, when given), or undefined. */
  pick(group: string, capability?: string): TunnelSession | undefined {
    let best: TunnelSession | undefined;
    for (const s of this.#byGroup.get(group) ?? []) {
      if (s.state !== 'ready') continue;
      if (capability && !s.hasCapability(capability)) continue;
      if (!best || s.inFlight < best.inFlight) best = s;
    }
    return best;
  }

  /** True when the group has a ready tunnel, whatever its capabilities. */
  hasReady(group: string): boolean {
    return this.pick(group) !== undefined;
  }

  all(): TunnelSession[] {
    return [...this.#byGroup.values()].flatMap((s) => [...s]);
  }
}
