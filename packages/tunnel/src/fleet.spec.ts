import { ConnectorCA, createKeyAndCsr } from '@appproxy/pki';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  CAPABILITY,
  RelayFleet,
  TunnelDialer,
  TunnelListener,
  parseInstanceList,
  type FleetWarning,
  type InstanceList,
  type InstancesChanged,
  type RelayFleetOptions,
  type RelayInstance,
  type TunnelSession,
} from './index.js';

interface Pki {
  ca: ConnectorCA;
  server: { certPem: string; keyPem: string };
  connector: { certPem: string; keyPem: string };
}
let pki: Pki;
const dirs: string[] = [];
const cleanups: Array<() => Promise<void> | void> = [];

async function issue(ca: ConnectorCA, id: string) {
  const { keyPem, csrPem } = await createKeyAndCsr({ commonName: id });
  const { certPem } = await ca.issueFromCsr(csrPem, { commonName: id });
  return { certPem, keyPem };
}

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-spec-'));
  dirs.push(dir);
  const ca = await ConnectorCA.loadOrCreate(dir);
  const server = await ca.issueServerCertificate({ hosts: ['localhost', '127.0.0.1'] });
  pki = {
    ca,
    server: { certPem: server.certPem + ca.certPem, keyPem: server.keyPem },
    connector: await issue(ca, 'conn-1'),
  };
  return () => dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A relay instance: a real TunnelListener naming itself `name`, listing what `list()` says. */
interface Relay {
  name: string;
  listener: TunnelListener;
  port: number;
  url: string;
  restart(): Promise<void>;
}

async function startRelay(
  name: string,
  list: (() => RelayInstance[] | undefined) | undefined,
  port = 0,
): Promise<Relay> {
  const make = () =>
    new TunnelListener({
      host: '127.0.0.1',
      port,
      cert: pki.server.certPem,
      key: pki.server.keyPem,
      ca: pki.ca.certPem,
      pingIntervalMs: 200,
      ...(list && {
        instances: () => {
          const instances = list();
          return instances && { instance: { name }, instances };
        },
      }),
    });
  const relay = { name, listener: make() } as Relay;
  relay.port = (await relay.listener.listen()).port;
  port = relay.port;
  relay.url = `https://127.0.0.1:${relay.port}`;
  relay.restart = async () => {
    relay.listener = make();
    await relay.listener.listen();
  };
  cleanups.push(() => relay.listener.close());
  return relay;
}

function startFleet(bootstrapUrl: string, extra: Partial<RelayFleetOptions> = {}) {
  const fleet = new RelayFleet({
    bootstrapUrl,
    cert: pki.connector.certPem,
    key: pki.connector.keyPem,
    ca: pki.ca.certPem,
    hello: {
      connectorId: 'conn-1',
      version: '0.0.0-test',
      hostname: 'test-host',
      capabilities: [CAPABILITY.websocket],
    },
    backoff: { baseMs: 20, maxMs: 100 },
    tunnels: 2,
    removalDrainTimeoutMs: 2000,
    onStream: (stream, headers) => {
      // `/slow` answers after 300 ms: a request in flight while its instance leaves.
      const delay = headers[':path'] === '/slow' ? 300 : 0;
      setTimeout(() => {
        if (!stream.destroyed) stream.respond({ ':status': 204 }, { endStream: true });
      }, delay);
    },
    ...extra,
  });
  const warnings: FleetWarning[] = [];
  const changes: InstancesChanged[] = [];
  fleet.on('warning', (w) => warnings.push(w));
  fleet.on('instancesChanged', (c) => changes.push(c));
  fleet.start();
  cleanups.push(() => fleet.stop());
  return { fleet, warnings, changes };
}

const ready = (r: Relay) => [...r.listener.sessions].filter((s) => s.state === 'ready');

/** Polls (bounded) until `check` holds; fails with what it last saw. */
async function until(check: () => boolean, what: string, timeoutMs = 8000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const asList = (relays: Relay[], extra: RelayInstance[] = []): RelayInstance[] => [
  ...relays.map((r) => ({ name: r.name, tunnelUrl: r.url })),
  ...extra,
];

describe('relay fleet', () => {
  it('a hello with a list makes the fleet keep `tunnels` to each instance, reusing the bootstrap', async () => {
    let list: RelayInstance[] = [];
    const relays = [
      await startRelay('a', () => list),
      await startRelay('b', () => list),
      await startRelay('c', () => list),
    ];
    list = asList(relays);
    const { fleet, changes, warnings } = startFleet(relays[0]!.url);
    await until(() => relays.every((r) => ready(r).length === 2), 'two tunnels at each instance');
    await fleet.waitConnected(6);
    // The bootstrap dialer serves instance a: no second dialer to the same URL.
    expect(fleet.relayUrls.sort()).toEqual(relays.map((r) => r.url).sort());
    expect(ready(relays[0]!)).toHaveLength(2);
    expect(Object.fromEntries(fleet.tunnelsByInstance())).toEqual({ a: 2, b: 2, c: 2 });
    expect(changes[0]).toMatchObject({ added: ['a', 'b', 'c'], removed: [], from: 'a' });
    expect(warnings).toEqual([]);
  });

  it('follows announceInstances: a removed instance is drained, an added one dialled', async () => {
    let list: RelayInstance[] = [];
    const [a, b, c] = [
      await startRelay('a', () => list),
      await startRelay('b', () => list),
      await startRelay('c', () => list),
    ] as [Relay, Relay, Relay];
    list = asList([a, b, c]);
    const { fleet, changes } = startFleet(a.url);
    await until(() => [a, b, c].every((r) => ready(r).length === 2), 'two tunnels at each');
    const aBefore = new Set(ready(a));

    list = asList([a, b]);
    const closed = [...c.listener.sessions].map(
      (s) => new Promise<void>((resolve) => s.once('closed', () => resolve())),
    );
    // A request in flight on c when c leaves the list still gets its answer (a drain).
    const slow = ready(c)[0]!.request({ ':method': 'GET', ':path': '/slow' }, { endStream: true });
    const slowStatus = new Promise<unknown>((resolve, reject) => {
      slow.once('response', (h) => resolve(h[':status']));
      slow.once('error', reject);
      slow.resume();
    });
    const announced = await Promise.all(
      [a, b, c].map((r) =>
        r.listener.announceInstances({ instance: { name: r.name }, instances: list }),
      ),
    );
    expect(announced.map((x) => x.delivered)).toEqual([2, 2, 2]);
    await Promise.all(closed);
    expect(await slowStatus).toBe(204);
    expect(c.listener.sessions.size).toBe(0);
    expect(fleet.relayUrls.sort()).toEqual([a.url, b.url].sort());
    expect(changes.at(-1)).toMatchObject({ added: [], removed: ['c'] });
    // The instances still listed kept their tunnels.
    expect(new Set(ready(a))).toEqual(aBefore);

    list = asList([a, b, c]);
    await a.listener.announceInstances({ instance: { name: 'a' }, instances: list });
    await until(() => ready(c).length === 2, 'c dialled again');
    expect(changes.at(-1)).toMatchObject({ added: ['c'], removed: [] });
    expect(new Set(ready(a))).toEqual(aBefore);
  });

  it('a relay that goes away leaves the others untouched and is dialled again when back', async () => {
    let list: RelayInstance[] = [];
    const [a, b, c] = [
      await startRelay('a', () => list),
      await startRelay('b', () => list),
      await startRelay('c', () => list),
    ] as [Relay, Relay, Relay];
    list = asList([a, b, c]);
    const { fleet } = startFleet(a.url);
    await until(() => [a, b, c].every((r) => ready(r).length === 2), 'two tunnels at each');
    const others = new Set([...ready(a), ...ready(c)]);
    const closedOthers: TunnelSession[] = [];
    for (const s of others) s.once('closed', () => closedOthers.push(s));

    await b.listener.close();
    await until(() => fleet.connectedCount === 4, 'b’s tunnels noticed gone');
    await b.restart();
    await until(() => ready(b).length === 2, 'b dialled again');
    expect(closedOthers).toEqual([]);
    expect(new Set([...ready(a), ...ready(c)])).toEqual(others);
    expect(Object.fromEntries(fleet.tunnelsByInstance())).toEqual({ a: 2, b: 2, c: 2 });
  });

  it('an older relay (a hello without a list) gets one dialer, as without a fleet', async () => {
    const old = await startRelay('old', undefined);
    const empty = await startRelay('empty', () => []);
    // A relay whose list cannot be had now sends a hello without one.
    const broken = await startRelay('broken', () => {
      throw new Error('store down');
    });
    for (const relay of [old, empty, broken]) {
      const { fleet, changes } = startFleet(relay.url);
      await fleet.waitConnected(2);
      expect(fleet.relayUrls).toEqual([relay.url]);
      expect(fleet.instances).toBeUndefined();
      expect(changes).toEqual([]);
      await until(() => ready(relay).length === 2, 'two tunnels');
      // Named by its hello if it names itself, else by its address.
      const label = relay === empty ? 'empty' : `127.0.0.1:${relay.port}`;
      expect(Object.fromEntries(fleet.tunnelsByInstance())).toEqual({ [label]: 2 });
    }
  });

  it('reads instance lists strictly: bad entries dropped, non-https URLs ignored', () => {
    expect(parseInstanceList(undefined)).toBeUndefined();
    expect(parseInstanceList({ instances: [] })).toBeUndefined();
    expect(parseInstanceList({ instance: { name: '' }, instances: [] })).toBeUndefined();
    expect(parseInstanceList({ instance: { name: 'a' }, instances: 'x' })).toBeUndefined();
    expect(
      parseInstanceList({
        instance: { name: 'a' },
        instances: [
          { name: 'a', tunnelUrl: 'https://a.example:8443/ignored' },
          { name: 'a', tunnelUrl: 'https://dup.example' },
          { name: 'b', tunnelUrl: 'http://b.example:8443' },
          { name: 'c', tunnelUrl: 'https://u:p@c.example' },
          { name: 7 },
          null,
          { name: 'x'.repeat(201) },
          { name: 'd', tunnelUrl: 'https://d.example:443' },
        ],
      }),
    ).toEqual({
      instance: { name: 'a' },
      instances: [
        { name: 'a', tunnelUrl: 'https://a.example:8443' },
        { name: 'b' },
        { name: 'c' },
        { name: 'd', tunnelUrl: 'https://d.example' },
      ],
    });
    const many = Array.from({ length: 300 }, (_, i) => ({ name: `i${i}` }));
    expect(parseInstanceList({ instance: { name: 'a' }, instances: many })?.instances).toHaveLength(
      256,
    );
  });

  it('a malformed instances control is refused with 400 and changes nothing', async () => {
    let list: RelayInstance[] = [];
    const a = await startRelay('a', () => list);
    list = asList([a]);
    const { fleet, changes } = startFleet(a.url);
    await until(() => ready(a).length === 2, 'two tunnels');
    const answer = await ready(a)[0]!.control('instances', { instances: [{ name: 'z' }] });
    expect(answer).toMatchObject({
      status: 400,
      body: { error: { code: 'APPPROXY_TUNNEL_CONTROL_MALFORMED' } },
    });
    expect(changes).toHaveLength(1);
    expect(fleet.relayUrls).toEqual([a.url]);
  });

  it('an older connector ignores the list; announcing to it fails no other tunnel', async () => {
    let list: RelayInstance[] = [];
    const a = await startRelay('a', () => list);
    list = asList([a]);
    const dialer = new TunnelDialer({
      relayUrl: a.url,
      cert: pki.connector.certPem,
      key: pki.connector.keyPem,
      ca: pki.ca.certPem,
      hello: { connectorId: 'conn-1', version: '0', hostname: 'h', capabilities: [] },
      onStream: (stream) => stream.respond({ ':status': 204 }, { endStream: true }),
    });
    dialer.start();
    cleanups.push(() => dialer.stop());
    await dialer.waitConnected(1);
    const { fleet } = startFleet(a.url);
    await fleet.waitConnected(2);
    const result = await a.listener.announceInstances({ instance: { name: 'a' }, instances: list });
    expect(result).toEqual({ delivered: 2, unsupported: 1, failed: 0 });
    expect(ready(a)).toHaveLength(3);
  });

  it('without listed URLs the bootstrap dialer is left once another instance is up, and dialled again when all fail', async () => {
    // The bootstrap URL is not any instance's own (a load balancer's, say).
    let list: RelayInstance[] = [];
    const lb = await startRelay('a', () => list);
    const b = await startRelay('b', () => list);
    list = [{ name: 'b', tunnelUrl: b.url }];
    const { fleet, warnings } = startFleet(lb.url, { bootstrapFallbackMs: 300 });
    await until(() => ready(b).length === 2 && lb.listener.sessions.size === 0, 'moved to b');
    expect(fleet.relayUrls).toEqual([b.url]);

    await b.listener.close();
    await until(() => ready(lb).length === 2, 'bootstrap dialled again');
    expect(warnings.map((w) => w.code)).toContain('APPPROXY_FLEET_BOOTSTRAP_FALLBACK');
    expect(fleet.relayUrls.sort()).toEqual([lb.url, b.url].sort());
    // b back: the fleet moves to it again and leaves the bootstrap.
    await b.restart();
    await until(() => ready(b).length === 2 && lb.listener.sessions.size === 0, 'back on b');
  });

  it('a tunnel reaching another instance than listed is used, with one warning', async () => {
    let list: RelayInstance[] = [];
    const a = await startRelay('a', () => list);
    const c = await startRelay('c', () => list);
    // The list says `b` is at c's address: c answers as `c`.
    list = [
      { name: 'a', tunnelUrl: a.url },
      { name: 'b', tunnelUrl: c.url },
    ];
    const { fleet, warnings } = startFleet(a.url);
    await until(() => ready(c).length === 2, 'two tunnels at c');
    await fleet.waitConnected(4);
    const mismatches = warnings.filter((w) => w.code === 'APPPROXY_FLEET_INSTANCE_MISMATCH');
    expect(mismatches).toHaveLength(1);
    expect(mismatches[0]).toMatchObject({ relayUrl: c.url, expected: ['b'], instance: 'c' });
    expect(Object.fromEntries(fleet.tunnelsByInstance())).toEqual({ a: 2, c: 2 });
  });

  it('instances without a tunnelUrl are reached through the bootstrap URL only', async () => {
    let list: RelayInstance[] = [];
    const a = await startRelay('a', () => list);
    const b = await startRelay('b', () => list);
    list = [{ name: 'a' }, { name: 'x' }, { name: 'b', tunnelUrl: b.url }];
    const { fleet } = startFleet(a.url);
    await until(() => ready(a).length === 2 && ready(b).length === 2, 'a and b');
    expect(fleet.relayUrls.sort()).toEqual([a.url, b.url].sort());
  });

  it('remembers the last list (0600) and dials every instance of it at restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fleet-state-'));
    dirs.push(dir);
    const file = join(dir, 'relay-instances.json');
    let list: RelayInstance[] | undefined;
    const a = await startRelay('a', () => list);
    const b = await startRelay('b', () => list);
    const c = await startRelay('c', () => list);
    list = asList([a, b, c]);
    const first = startFleet(a.url, { instancesFile: file });
    await first.fleet.waitConnected(6);
    await first.fleet.stop();
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const saved = JSON.parse(readFileSync(file, 'utf8')) as InstanceList & { bootstrapUrl: string };
    expect(saved.bootstrapUrl).toBe(a.url);
    expect(saved.instances).toEqual(list);

    // The relays send no list now: only the file can tell the fleet about b and c.
    list = undefined;
    const second = startFleet(a.url, { instancesFile: file });
    await until(() => [a, b, c].every((r) => ready(r).length === 2), 'every saved instance');
    expect(second.changes[0]).toMatchObject({ added: ['a', 'b', 'c'], from: 'state' });

    // A file of another relay (registered again elsewhere) is ignored.
    await second.fleet.stop();
    const other = startFleet(b.url, { instancesFile: file });
    await other.fleet.waitConnected(2);
    expect(other.fleet.relayUrls).toEqual([b.url]);
  });

  it('updateCredentials reaches every instance dialer', async () => {
    let list: RelayInstance[] = [];
    const a = await startRelay('a', () => list);
    const b = await startRelay('b', () => list);
    list = asList([a, b]);
    const { fleet } = startFleet(a.url, { rotationDrainTimeoutMs: 1000 });
    await until(() => ready(a).length === 2 && ready(b).length === 2, 'a and b');
    const renewed = await issue(pki.ca, 'conn-1');
    const fingerprint = (relay: Relay) => new Set(ready(relay).map((s) => s.peer.fingerprint));
    const old = [...fingerprint(a)][0];
    await fleet.updateCredentials({ cert: renewed.certPem, key: renewed.keyPem });
    await until(
      () => [a, b].every((r) => ready(r).length === 2 && !fingerprint(r).has(old!)),
      'every tunnel on the renewed certificate',
    );
  });
});
