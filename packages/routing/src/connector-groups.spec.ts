import { describe, expect, it } from 'vitest';
import {
  ConnectorGroups,
  IDEMPOTENT_METHODS,
  canRetry,
  rendezvousWeight,
  type ConnectorTunnel,
} from './index.js';

class FakeTunnel implements ConnectorTunnel {
  inFlight = 0;
  accepting = true;
  constructor(
    readonly connectorId: string,
    readonly capabilities: string[] = ['websocket'],
  ) {}
  hasCapability(name: string): boolean {
    return this.capabilities.includes(name);
  }
}

function groupOf(ids: string[], tunnelsEach = 2) {
  const groups = new ConnectorGroups<FakeTunnel>();
  const tunnels = ids.flatMap((id) =>
    Array.from({ length: tunnelsEach }, () => new FakeTunnel(id)),
  );
  for (const t of tunnels) groups.add('G', t);
  return { groups, tunnels };
}

const pickId = (groups: ConnectorGroups<FakeTunnel>, ...args: Parameters<typeof groups.pick>) => {
  const picked = groups.pick(...args);
  return typeof picked === 'string' ? picked : picked.connectorId;
};

describe('ConnectorGroups.pick', () => {
  it('never leaves the group', () => {
    const groups = new ConnectorGroups<FakeTunnel>();
    groups.add('Berlin', new FakeTunnel('b1'));
    groups.add('Paris', new FakeTunnel('p1'));
    for (let i = 0; i < 20; i++) expect(pickId(groups, 'Berlin')).toBe('b1');
    expect(pickId(groups, 'Tokyo')).toBe('NO_CONNECTOR');
  });

  it('equal connectors take turns (sequential load spreads evenly)', () => {
    const { groups } = groupOf(['a', 'b', 'c']);
    const counts = new Map<string, number>();
    for (let i = 0; i < 300; i++) {
      const id = pickId(groups, 'G');
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    expect([...counts.values()]).toEqual([100, 100, 100]);
  });

  it('the connector with the fewest streams in flight wins, over all its tunnels', () => {
    const { groups, tunnels } = groupOf(['a', 'b']);
    // a: 3 + 3 in flight; b: 5 + 0 — b is less busy overall, and its idle tunnel is picked.
    tunnels[0]!.inFlight = 3;
    tunnels[1]!.inFlight = 3;
    tunnels[2]!.inFlight = 5;
    const picked = groups.pick('G');
    expect(picked).toBe(tunnels[3]);
  });

  it('skips tunnels that do not accept, connectors excluded and missing capabilities', () => {
    const groups = new ConnectorGroups<FakeTunnel>();
    const old = new FakeTunnel('old', []);
    const draining = new FakeTunnel('new');
    draining.accepting = false;
    groups.add('G', old);
    groups.add('G', draining);
    expect(pickId(groups, 'G', { capability: 'websocket' })).toBe('NO_CAPABLE_CONNECTOR');
    expect(pickId(groups, 'G')).toBe('old');
    expect(pickId(groups, 'G', { exclude: new Set([old]) })).toBe('NO_CONNECTOR');
    draining.accepting = true;
    expect(pickId(groups, 'G', { capability: 'websocket' })).toBe('new');
  });

  it('with several capabilities, picks only a connector that has all of them', () => {
    const groups = new ConnectorGroups<FakeTunnel>();
    groups.add('G', new FakeTunnel('ws', ['websocket']));
    groups.add('G', new FakeTunnel('krb', ['kerberos']));
    expect(pickId(groups, 'G', { capability: ['kerberos'] })).toBe('krb');
    expect(pickId(groups, 'G', { capability: ['websocket', 'kerberos'] })).toBe(
      'NO_CAPABLE_CONNECTOR',
    );
    groups.add('G', new FakeTunnel('both', ['kerberos', 'websocket']));
    expect(pickId(groups, 'G', { capability: ['websocket', 'kerberos'] })).toBe('both');
  });

  it('affinity keeps a key on one connector; removing one moves only its keys', () => {
    const { groups, tunnels } = groupOf(['a', 'b', 'c'], 1);
    const keys = Array.from({ length: 300 }, (_, i) => `session-${i}`);
    const before = new Map(keys.map((k) => [k, pickId(groups, 'G', { affinityKey: k })]));
    // Stable whatever the load.
    tunnels[0]!.inFlight = 50;
    for (const k of keys) expect(pickId(groups, 'G', { affinityKey: k })).toBe(before.get(k));
    // Every connector gets a fair share of keys.
    for (const id of ['a', 'b', 'c'])
      expect([...before.values()].filter((v) => v === id).length).toBeGreaterThan(60);
    groups.remove(tunnels[1]!);
    for (const k of keys) {
      const now = pickId(groups, 'G', { affinityKey: k });
      if (before.get(k) !== 'b') expect(now).toBe(before.get(k));
      else expect(['a', 'c']).toContain(now);
    }
  });

  it('affinity falls to the next connector when its tunnel failed', () => {
    const { groups } = groupOf(['a', 'b', 'c'], 1);
    const first = groups.pick('G', { affinityKey: 'k' }) as FakeTunnel;
    const second = pickId(groups, 'G', { affinityKey: 'k', exclude: new Set([first]) });
    expect(second).not.toBe(first.connectorId);
    expect(['a', 'b', 'c']).toContain(second);
  });

  it('after a failed tunnel: other connectors first, then the same connector’s other tunnel', () => {
    const { groups, tunnels } = groupOf(['a', 'b'], 2);
    const [a1, a2, b1, b2] = tunnels as [FakeTunnel, FakeTunnel, FakeTunnel, FakeTunnel];
    b1.inFlight = 10;
    b2.inFlight = 10;
    // a is much less busy, but its tunnel just failed: b is tried first.
    expect(pickId(groups, 'G', { exclude: new Set([a1]) })).toBe('b');
    // b failed too: a's other tunnel is the last resort.
    expect(groups.pick('G', { exclude: new Set([a1, b1, b2]) })).toBe(a2);
    expect(pickId(groups, 'G', { exclude: new Set(tunnels) })).toBe('NO_CONNECTOR');
  });

  it('connectorId: only that connector (its other tunnel when one failed), else none', () => {
    const { groups, tunnels } = groupOf(['a', 'b', 'c']);
    for (let i = 0; i < 6; i++) expect(pickId(groups, 'G', { connectorId: 'b' })).toBe('b');
    const [b1, b2] = tunnels.filter((t) => t.connectorId === 'b');
    expect(groups.pick('G', { connectorId: 'b', exclude: new Set([b1!]) })).toBe(b2);
    b1!.accepting = false;
    b2!.accepting = false;
    expect(groups.pick('G', { connectorId: 'b' })).toBe('NO_CONNECTOR');
    expect(groups.pick('G', { connectorId: 'gone' })).toBe('NO_CONNECTOR');
    expect(groups.pick('Other', { connectorId: 'a' })).toBe('NO_CONNECTOR');
  });

  it('connectors() sums tunnels and in-flight per connector; remove forgets empty groups', () => {
    const { groups, tunnels } = groupOf(['a', 'b']);
    tunnels[0]!.inFlight = 2;
    tunnels[1]!.accepting = false;
    expect(groups.connectors()).toEqual([
      { connectorId: 'a', group: 'G', tunnels: 2, accepting: 1, inFlight: 2 },
      { connectorId: 'b', group: 'G', tunnels: 2, accepting: 2, inFlight: 0 },
    ]);
    for (const t of tunnels) groups.remove(t);
    expect(groups.connectors()).toEqual([]);
    expect(groups.tunnels()).toEqual([]);
    expect(pickId(groups, 'G')).toBe('NO_CONNECTOR');
  });

  it('rendezvousWeight is deterministic and spreads similar ids', () => {
    expect(rendezvousWeight('k', 'a')).toBe(rendezvousWeight('k', 'a'));
    const weights = new Set(Array.from({ length: 100 }, (_, i) => rendezvousWeight('k', `c${i}`)));
    expect(weights.size).toBe(100);
  });
});

describe('canRetry', () => {
  const base = {
    method: 'GET',
    refused: false,
    bodyBytesSent: 0,
    bodyReplayable: true,
    responseStarted: false,
  };
  it('idempotent methods without a body byte sent', () => {
    for (const method of IDEMPOTENT_METHODS) expect(canRetry({ ...base, method })).toBe(true);
    expect(canRetry({ ...base, method: 'POST' })).toBe(false);
    expect(canRetry({ ...base, method: 'PATCH' })).toBe(false);
    expect(canRetry({ ...base, method: 'PUT', bodyBytesSent: 1 })).toBe(false);
  });
  it('refused streams, when the body (if any) can be replayed', () => {
    expect(canRetry({ ...base, method: 'POST', refused: true })).toBe(true);
    expect(canRetry({ ...base, method: 'POST', refused: true, bodyBytesSent: 10 })).toBe(true);
    expect(
      canRetry({
        ...base,
        method: 'POST',
        refused: true,
        bodyBytesSent: 10,
        bodyReplayable: false,
      }),
    ).toBe(false);
  });
  it('never once the response started', () => {
    expect(canRetry({ ...base, responseStarted: true })).toBe(false);
    expect(canRetry({ ...base, refused: true, responseStarted: true })).toBe(false);
  });
});
